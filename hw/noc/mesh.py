"""A mesh of routers, ``arch.mesh_cols x arch.mesh_rows``, and the wiring it shares
with the chip top (:func:`wire_grid`)."""

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.noc.edge import EdgeAdapter
from hw.noc.link import EAST, NORTH, PORT_NAMES, SOUTH, WEST
from hw.noc.router import Router
from hw.pe.interfaces import NocPort

__all__ = ["Mesh", "edge_ports", "wire_grid"]


def edge_ports(arch: ArchConfig) -> list[tuple[str, int, int, int]]:
    """``(name, x, y, side)`` of every outer port: router (x, y), its port ``side``."""
    ports = []
    for x in range(arch.mesh_cols):
        ports.append((f"edge_north_{x}", x, 0, NORTH))
        ports.append((f"edge_south_{x}", x, arch.mesh_rows - 1, SOUTH))
    for y in range(arch.mesh_rows):
        ports.append((f"edge_west_{y}", 0, y, WEST))
        ports.append((f"edge_east_{y}", arch.mesh_cols - 1, y, EAST))
    return ports


def wire_grid(m: Module, arch: ArchConfig, nodes) -> dict[str, EdgeAdapter]:
    """Tie ``nodes[y][x]`` (routers or tiles: ``x``, ``y`` inputs and ``<side>_in`` /
    ``<side>_out`` links) to their coordinates, link neighbours and close every
    outer side with an :class:`EdgeAdapter` (submodule ``<edge port name>``).

    Returns the adapters by :func:`edge_ports` name; the caller connects their
    ``noc`` ports to the endpoints.
    """
    for y, row in enumerate(nodes):
        for x, n in enumerate(row):
            m.d.comb += [n.x.eq(x), n.y.eq(y)]
            if x + 1 < arch.mesh_cols:
                e = nodes[y][x + 1]
                wiring.connect(m, n.east_out, e.west_in)
                wiring.connect(m, e.west_out, n.east_in)
            if y + 1 < arch.mesh_rows:
                s = nodes[y + 1][x]
                wiring.connect(m, n.south_out, s.north_in)
                wiring.connect(m, s.north_out, n.south_in)
    adapters = {}
    for name, x, y, side in edge_ports(arch):
        n = nodes[y][x]
        m.submodules[name] = adapter = EdgeAdapter(arch)
        wiring.connect(m, adapter.to_router, getattr(n, f"{PORT_NAMES[side]}_in"))
        wiring.connect(m, getattr(n, f"{PORT_NAMES[side]}_out"), adapter.from_router)
        adapters[name] = adapter
    return adapters


class Mesh(wiring.Component):
    """Routers joined by credit links; every PE port and every outer port exposed.

    * ``tile_<x>_<y>``: ``In(NocPort())``, the local port of router (x, y), for
      its PE (the PE's view is ``NocPort``).
    * ``edge_<side>_<i>``: ``In(NocPort())``, the outer port on ``side`` of the
      edge router in column (north/south) or row (east/west) ``i``, for an
      off-chip endpoint: DRAM port p at ``edge_east_<dram_node(p).y>``, the
      host at ``edge_south_0``; an :class:`EdgeAdapter` sits between it and the
      router.  The chip top must terminate every outer port (at least by
      consuming what arrives): packets to non-existent tiles leave through them.
    * ``drop``: bit ``y * mesh_cols + x`` pulses when router (x, y) discards a
      packet (``Router.drop``).

    ``router``: a callable ``arch -> component with the Router's signature``;
    ``hw.tile.blackbox`` makes one that instantiates a separately converted
    router module (the Verilog then holds the router once).
    """

    def __init__(self, arch: ArchConfig, router=Router):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        members = {}
        for y in range(arch.mesh_rows):
            for x in range(arch.mesh_cols):
                members[f"tile_{x}_{y}"] = In(NocPort())
        for name, *_ in edge_ports(arch):
            members[name] = In(NocPort())
        members["drop"] = Out(arch.tiles)
        super().__init__(members)
        self.routers = [
            [router(arch) for x in range(arch.mesh_cols)] for y in range(arch.mesh_rows)
        ]

    def tile(self, x: int, y: int):
        return getattr(self, f"tile_{x}_{y}")

    def elaborate(self, platform):
        m = Module()
        for y, row in enumerate(self.routers):
            for x, r in enumerate(row):
                m.submodules[f"router_{x}_{y}"] = r
                wiring.connect(m, wiring.flipped(self.tile(x, y)), r.local)
        adapters = wire_grid(m, self.arch, self.routers)
        for name, adapter in adapters.items():
            wiring.connect(m, wiring.flipped(getattr(self, name)), adapter.noc)
        m.d.comb += self.drop.eq(Cat(r.drop for row in self.routers for r in row))
        return m
