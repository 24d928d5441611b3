"""Plain-Python reference of the router's routing function (``ref_*``).

The same rules as ``hw.noc.route`` (see its docstring and ``docs/noc.md``),
written without Amaranth: the scoreboards of the RTL tests and the channel
dependency analysis (``hw.noc.cdg``) use it.
"""

from __future__ import annotations

from collections.abc import Sequence

from hw.arch import ArchConfig
from hw.isa import Kind, Route
from hw.noc.link import CONFIG, EAST, LOCAL, NORTH, OPPOSITE, PORTS, SOUTH, WEST, outer_ports

__all__ = ["TableEntry", "ref_route", "ref_key_ports", "ref_deliveries", "neighbour"]

TableEntry = tuple[int, int, int, bool]  # key, mask, port set, enable
STEP = {NORTH: (0, -1), EAST: (1, 0), SOUTH: (0, 1), WEST: (-1, 0)}


def neighbour(arch: ArchConfig, x: int, y: int, port: int) -> tuple[int, int] | None:
    """The router beyond ``port`` of router (x, y), or None at an outer port."""
    dx, dy = STEP[port]
    nx, ny = x + dx, y + dy
    if 0 <= nx < arch.mesh_cols and 0 <= ny < arch.mesh_rows:
        return nx, ny
    return None


def ref_key_ports(table: Sequence[TableEntry], key: int) -> int | None:
    for entry_key, mask, ports, enable in table:
        if enable and key & mask == entry_key:
            return ports
    return None


def _unicast(arch: ArchConfig, x: int, y: int, x0: int, y0: int) -> set[int]:
    if x0 > x and x < arch.mesh_cols - 1:
        return {EAST}
    if x0 < x:
        return {WEST}
    if y0 > y and y < arch.mesh_rows - 1:
        return {SOUTH}
    if y0 < y:
        return {NORTH}
    if x0 >= arch.mesh_cols:
        return {EAST}
    if y0 >= arch.mesh_rows:
        return {SOUTH}
    return {LOCAL}


def _rect(arch: ArchConfig, x: int, y: int, port: int, head: dict[str, int]) -> set[int]:
    xlo, xhi = sorted((head["x0"], head["x1"]))
    ylo, yhi = sorted((head["y0"], head["y1"]))
    xhi, yhi = min(xhi, arch.mesh_cols - 1), min(yhi, arch.mesh_rows - 1)
    if xlo > xhi or ylo > yhi:
        return set()
    inject = port == LOCAL or port in outer_ports(arch, x, y)
    in_x, in_y = xlo <= x <= xhi, ylo <= y <= yhi
    out = set()
    if in_x and in_y:
        out.add(LOCAL)
    if (inject or port == WEST) and x < xhi:
        out.add(EAST)
    if (inject or port == EAST) and x > xlo:
        out.add(WEST)
    fork = in_x and (inject or port in (EAST, WEST))
    if (fork or (not inject and port == NORTH)) and y < yhi:
        out.add(SOUTH)
    if (fork or (not inject and port == SOUTH)) and y > ylo:
        out.add(NORTH)
    return out


def ref_route(
    arch: ArchConfig,
    x: int,
    y: int,
    port: int,
    head: dict[str, int],
    table: Sequence[TableEntry] = (),
) -> set[int]:
    """The output set (``hw.noc.link`` numbering, CONFIG = 5) of a head flit."""
    route = head["route"]
    if route == Route.UNICAST:
        out = _unicast(arch, x, y, head["x0"], head["y0"])
    elif route == Route.RECT:
        out = _rect(arch, x, y, port, head)
    elif route == Route.KEY:
        ports = ref_key_ports(table, head["ret_addr"])
        if ports is None:
            out = set() if port == LOCAL else {OPPOSITE[port]}
        else:
            out = {p for p in range(PORTS) if ports >> p & 1}
    else:
        out = set()
    if port != LOCAL:
        out.discard(port)
    if head["kind"] == Kind.CONFIG and LOCAL in out:
        out = (out - {LOCAL}) | {CONFIG}
    return out


def ref_deliveries(
    arch: ArchConfig,
    x: int,
    y: int,
    port: int,
    head: dict[str, int],
    tables: dict[tuple[int, int], Sequence[TableEntry]] | None = None,
) -> list[tuple]:
    """Where a packet entering router (x, y) on ``port`` ends up.

    A list of ``("tile", x, y)``, ``("edge", x, y, side)``, ``("config", x, y)``
    and ``("drop", x, y)``, one per copy, following the packet hop by hop.
    """
    tables = tables or {}
    result, todo, hops = [], [(x, y, port)], 0
    while todo:
        cx, cy, cport = todo.pop()
        hops += 1
        if hops > 64 * arch.tiles:
            raise RuntimeError("routing loop in the reference model")
        out = ref_route(arch, cx, cy, cport, head, tables.get((cx, cy), ()))
        if not out:
            result.append(("drop", cx, cy))
        for o in sorted(out):
            if o == LOCAL:
                result.append(("tile", cx, cy))
            elif o == CONFIG:
                result.append(("config", cx, cy))
            elif (n := neighbour(arch, cx, cy, o)) is None:
                result.append(("edge", cx, cy, o))
            else:
                todo.append((*n, OPPOSITE[o]))
    return result
