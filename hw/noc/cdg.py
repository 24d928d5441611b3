"""Channel dependency graphs (CDG) of the routing function, per message class.

Dally and Seitz: a wormhole network whose routing function has an acyclic
channel dependency graph cannot deadlock.  A channel here is one input buffer
of one class: ``("in", x, y, port)`` (link, local or outer input of router
(x, y)); packets leave the network through ``("out", x, y, port)`` (local,
outer or configuration outputs), which have no dependencies.  An edge
``c1 -> c2`` means a packet holding ``c1`` may wait for ``c2``.

The graph is built by tracing packets: from every injection channel (local
and outer inputs) every head flit is followed hop by hop through the routing
function (by default the reference ``hw.noc.model.ref_route``), so only
dependencies that a packet can really create are in the graph.  The heads are
all unicast targets (on and off the mesh), the rectangles with corners in a
covering subset of coordinates (all of them on meshes up to 4 x 4), and the
KEY routes of the given tables (plus a key that matches nothing).

Each class has its own virtual channels, so the two graphs are separate; the
routing function is the same for both in this design.

``branch_coupling=True`` adds the dependencies that multicast forks create in
a wormhole router that frees a flit only when every branch took it: the
branch holding output ``o1`` waits for every sibling ``o2``.  That graph is
cyclic for the XY tree: this is why the router allocates the outputs of a
multicast packet that fits in a buffer in a fixed order and starts it only
when every output has room for the whole packet, so no branch lags; the waits
that rule adds are in ``hw.noc.mcast_cdg``, whose graph is acyclic
(``docs/noc_multicast.md``).  Longer multicast packets are unsafe.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import networkx as nx

from hw.arch import ArchConfig
from hw.isa import Kind, MsgClass, Route
from hw.noc.link import EAST, LOCAL, NORTH, OPPOSITE, SOUTH, WEST, outer_ports
from hw.noc.model import STEP, TableEntry, neighbour, ref_route

__all__ = ["channel_dependency_graph", "find_cycle", "xy_or_yx_route", "heads_for"]

RouteFn = Callable[..., set]


def _injection_ports(arch: ArchConfig, x: int, y: int) -> list[int]:
    return [LOCAL, *sorted(outer_ports(arch, x, y))]


def _coords(size: int) -> list[int]:
    if size <= 4:
        return list(range(size + 1))
    return sorted({0, 1, size // 2, size - 2, size - 1, size})


def heads_for(
    arch: ArchConfig, msg_class: MsgClass, keys: Iterable[int] = ()
) -> Iterable[dict[str, int]]:
    """Head flits covering every case of the routing function (see module doc)."""
    # CONFIG differs from WRITE only in taking the configuration output instead of
    # the local one (both leave the network), so one kind per class covers both.
    kind = Kind.READ_RESP if msg_class == MsgClass.RESPONSE else Kind.WRITE
    base = {"kind": kind, "x1": 0, "y1": 0, "ret_addr": 0}
    xs, ys = _coords(arch.mesh_cols), _coords(arch.mesh_rows)
    for x0 in range(arch.mesh_cols + 2):
        for y0 in range(arch.mesh_rows + 2):
            yield {**base, "route": Route.UNICAST, "x0": x0, "y0": y0}
    # corners are normalised by the router, so ordered corners cover all rectangles
    for x0, x1 in itertools.combinations_with_replacement(xs, 2):
        for y0, y1 in itertools.combinations_with_replacement(ys, 2):
            yield {**base, "route": Route.RECT, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    for key in [*keys, 0xFFFF_FFFF]:
        yield {**base, "route": Route.KEY, "x0": 0, "y0": 0, "ret_addr": key}


def channel_dependency_graph(
    arch: ArchConfig,
    msg_class: MsgClass,
    route_fn: RouteFn = ref_route,
    tables: dict[tuple[int, int], Sequence[TableEntry]] | None = None,
    branch_coupling: bool = False,
) -> nx.DiGraph:
    """The CDG of ``route_fn`` for one message class."""
    tables = tables or {}
    g = nx.DiGraph(msg_class=msg_class)
    keys = sorted({e[0] for t in tables.values() for e in t})
    for head in heads_for(arch, msg_class, keys):
        seen: set[tuple[int, int, int]] = set()
        todo = [
            (x, y, p)
            for y in range(arch.mesh_rows)
            for x in range(arch.mesh_cols)
            for p in _injection_ports(arch, x, y)
        ]
        while todo:
            state = todo.pop()
            if state in seen:
                continue
            seen.add(state)
            x, y, port = state
            src = ("in", x, y, port)
            outs = route_fn(arch, x, y, port, head, tables.get((x, y), ()))
            targets = [_channel(arch, x, y, o) for o in sorted(outs)]
            g.add_node(src)
            g.add_edges_from((src, t) for t in targets)
            if branch_coupling and len(targets) > 1:
                g.add_edges_from(
                    (a, b) for a in targets for b in targets if a != b and a[0] == b[0] == "in"
                )
            todo += [t[1:] for t in targets if t[0] == "in"]
    return g


def _channel(arch: ArchConfig, x: int, y: int, o: int) -> tuple:
    if o in STEP and (n := neighbour(arch, x, y, o)) is not None:
        return ("in", *n, OPPOSITE[o])
    return ("out", x, y, o)


def find_cycle(g: nx.DiGraph) -> list | None:
    """One dependency cycle as a list of edges, or None if the graph is acyclic."""
    try:
        return nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None


def xy_or_yx_route(
    arch: ArchConfig,
    x: int,
    y: int,
    port: int,
    head: dict[str, int],
    table: Sequence[TableEntry] = (),
) -> set[int]:
    """A deliberately unsafe routing function: unicast may take XY *or* YX order."""
    out = ref_route(arch, x, y, port, head, table)
    if head["route"] != Route.UNICAST:
        return out
    x0, y0 = head["x0"], head["y0"]
    if y0 > y and y < arch.mesh_rows - 1:
        out.add(SOUTH)
    elif y0 < y:
        out.add(NORTH)
    elif x0 > x and x < arch.mesh_cols - 1:
        out.add(EAST)
    elif x0 < x:
        out.add(WEST)
    out.discard(port if port != LOCAL else -1)
    return out
