"""A mesh of routers, ``arch.mesh_cols x arch.mesh_rows``."""

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.noc.link import EAST, NORTH, PORT_NAMES, SOUTH, WEST
from hw.noc.router import Router
from hw.pe.interfaces import NocPort

__all__ = ["Mesh", "edge_ports"]


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


class Mesh(wiring.Component):
    """Routers joined by credit links; every PE port and every outer port exposed.

    * ``tile_<x>_<y>``: ``In(NocPort())``, the local port of router (x, y), for
      its PE (the PE's view is ``NocPort``).
    * ``edge_<side>_<i>``: ``In(NocPort())``, the outer port on ``side`` of the
      edge router in column (north/south) or row (east/west) ``i``, for an
      off-chip endpoint: DRAM port p at ``edge_east_<dram_node(p).y>``, the
      host at ``edge_south_0``.  The chip top must terminate every outer port
      (at least by consuming what arrives): packets to non-existent tiles
      leave through them.
    * ``drop``: bit ``y * mesh_cols + x`` pulses when router (x, y) discards a
      packet (``Router.drop``).
    """

    def __init__(self, arch: ArchConfig):
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
            [Router(arch, x, y) for x in range(arch.mesh_cols)] for y in range(arch.mesh_rows)
        ]

    def tile(self, x: int, y: int):
        return getattr(self, f"tile_{x}_{y}")

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        for y, row in enumerate(self.routers):
            for x, r in enumerate(row):
                m.submodules[f"router_{x}_{y}"] = r
                wiring.connect(m, wiring.flipped(self.tile(x, y)), r.local)
        for name, x, y, side in edge_ports(a):
            r = self.routers[y][x]
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(r, PORT_NAMES[side]))
        for y in range(a.mesh_rows):
            for x in range(a.mesh_cols):
                r = self.routers[y][x]
                if x + 1 < a.mesh_cols:
                    e = self.routers[y][x + 1]
                    wiring.connect(m, r.east_out, e.west_in)
                    wiring.connect(m, e.west_out, r.east_in)
                if y + 1 < a.mesh_rows:
                    s = self.routers[y + 1][x]
                    wiring.connect(m, r.south_out, s.north_in)
                    wiring.connect(m, s.north_out, r.south_in)
        m.d.comb += self.drop.eq(Cat(r.drop for row in self.routers for r in row))
        return m
