"""The chip top: a mesh of tiles (``hw.tile.Tile``: Pe + router) with its off-chip ports.

Block diagram (docs/chip.md has the full description)::

    host load bus ──host_tile──► tile (x, y).host   (one PE at a time)
    start[t] / halted[t] / error[t] / err_pc[t]  per tile t = y * mesh_cols + x
    tiles ── links ── tiles; every outer side ── EdgeAdapter ── NocPort:
         edge_east_<dram_node(p).y> ──► dram_<p>   (NoC flit streams, off chip)
         edge_south_0              ──► host_noc  (NoC flit streams, off chip)
         every other outer port    ──► EdgeSink  (answers requests with ERROR)

Every outer port of the mesh is terminated: packets to a non-existent tile leave
the mesh through an outer port, and the :class:`EdgeSink` there answers each
request packet with an ERROR packet (``addr`` = the packet's address) so that the
sender's DMA faults instead of waiting for ever.

Each tile also has a small network-error monitor: the first ERROR packet that
reaches the PE (on ``in_resp``) is latched (its ``addr`` and source node) and can
be read through the debug port (:data:`DBG_NET_ADDR`, :data:`DBG_NET_SRC`).

The tiles are position-independent (coordinates are inputs): ``Chip(arch,
tile=hw.tile.blackbox("myelin_tile", tile_signature(arch)))`` instantiates a
separately converted tile module instead, so that the chip's Verilog holds the
tile once (``cosim/chip_harness.py``).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw import isa
from hw.arch import ArchConfig
from hw.isa import Kind, Route
from hw.noc.link import EAST, NORTH, SOUTH, WEST
from hw.noc.mesh import edge_ports, wire_grid
from hw.pe.controller import ERR_PC_BITS
from hw.pe.interfaces import HostPort, NocPort
from hw.pe.pe import DBG_SEL_BITS
from hw.tile import DBG_NET_ADDR, DBG_NET_SRC, Tile

__all__ = ["DBG_NET_ADDR", "DBG_NET_SRC", "Chip", "EdgeSink", "chip_port_names"]


def _field(value, f: isa.Field):
    return value[f.lo : f.lo + f.width]


def chip_port_names(arch: ArchConfig) -> dict[str, str]:
    """Mesh outer port name -> the chip port that terminates it (``dram_<p>``,
    ``host_noc``); outer ports not listed get an :class:`EdgeSink`."""
    names = {}
    for p in range(arch.dram_ports):
        _, y = isa.dram_node(arch, p)
        names[f"edge_east_{y}"] = f"dram_{p}"
    hx, _ = isa.host_node(arch)
    names[f"edge_south_{hx}"] = "host_noc"
    return names


class EdgeSink(wiring.Component):
    """Terminator of an unused outer port (endpoint view: ``noc: Out(NocPort())``).

    Request packets are consumed; each one is answered by a single-flit ERROR
    packet (response class) to its source with ``addr`` = the packet's ``addr`` and
    ``src`` = the node it was addressed to (``x0``, ``y0``), so the sender learns
    which node does not exist.  ``node`` (the virtual node just outside the port)
    is used instead for routes other than UNICAST.
    Response packets are consumed silently.  Never sends a request.
    """

    def __init__(self, arch: ArchConfig, node: tuple[int, int]):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        self.node = node
        super().__init__({"noc": Out(NocPort())})

    def elaborate(self, platform):
        m = Module()
        noc = self.noc
        req = noc.in_req
        d = req.payload.data
        src = Signal(2 * isa.COORD_BITS)
        addr = Signal(32)
        x, y = self.node
        here = (x & 63) | (y & 63) << isa.COORD_BITS
        target = Signal(2 * isa.COORD_BITS)
        m.d.comb += [noc.in_resp.ready.eq(1), noc.out_req.valid.eq(0)]
        with m.FSM(name="sink"):
            with m.State("IDLE"):
                m.d.comb += req.ready.eq(1)
                with m.If(req.valid & req.payload.first):
                    unicast = _field(d, isa.H_ROUTE) == int(Route.UNICAST)
                    m.d.sync += [
                        src.eq(_field(d, isa.H_SRC_X) | _field(d, isa.H_SRC_Y) << isa.COORD_BITS),
                        addr.eq(_field(d, isa.H_ADDR)),
                        target.eq(
                            Mux(
                                unicast,
                                _field(d, isa.H_X0) | _field(d, isa.H_Y0) << isa.COORD_BITS,
                                here,
                            )
                        ),
                    ]
                    m.next = "ANSWER"
                    with m.If(~req.payload.last):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += req.ready.eq(1)
                with m.If(req.valid & req.payload.last):
                    m.next = "ANSWER"
            with m.State("ANSWER"):
                head = Signal(self.arch.flit_bits)
                m.d.comb += [
                    head.eq(
                        isa.encode_head(kind=int(Kind.ERROR), route=int(Route.UNICAST))
                        | target[: isa.COORD_BITS] << isa.H_SRC_X.lo
                        | target[isa.COORD_BITS :] << isa.H_SRC_Y.lo
                        | src[: isa.COORD_BITS] << isa.H_X0.lo
                        | src[isa.COORD_BITS :] << isa.H_Y0.lo
                        | addr << isa.H_ADDR.lo
                    ),
                    noc.out_resp.valid.eq(1),
                    noc.out_resp.payload.data.eq(head),
                    noc.out_resp.payload.first.eq(1),
                    noc.out_resp.payload.last.eq(1),
                ]
                with m.If(noc.out_resp.ready):
                    m.next = "IDLE"
        return m


class Chip(wiring.Component):
    """``arch.mesh_cols x arch.mesh_rows`` tiles; tile ``t = y * mesh_cols + x``.

    Ports:

    * ``start``: ``In(tiles)``, bit t starts PE t (a one-cycle pulse).
    * ``running``, ``halted``: ``Out(tiles)``; ``error``: ``Out(ArrayLayout(3, tiles))``
      (``hw.isa.PeError`` per PE, sticky until reset); ``err_pc``: ``Out(ArrayLayout(16,
      tiles))``.
    * ``host``: ``In(HostPort(arch))``, the load bus, routed to the host port of PE
      ``host_tile`` (``In(range(tiles))``).  ``host_tile`` must stay constant while
      a request is pending or read data is due (one cycle after acceptance).
    * ``dbg_tile``, ``dbg_sel`` (``In(6)``), ``dbg_data`` (``Out(32)``): the debug
      port of PE ``dbg_tile``, plus :data:`DBG_NET_ADDR` / :data:`DBG_NET_SRC`.
    * ``dram_<p>`` for each DRAM port p, ``host_noc``: ``In(NocPort())`` (the
      endpoint's view is ``NocPort``): NoC flit streams of the outer ports at
      ``hw.isa.dram_node(arch, p)`` and ``hw.isa.host_node(arch)``.
    * ``drop``: ``Out(tiles)``, router t discarded a packet (``Router.drop``).

    ``tile``: a callable ``arch -> component with the Tile's signature``
    (default :class:`hw.tile.Tile`; ``hw.tile.blackbox`` for Verilog).
    """

    def __init__(self, arch: ArchConfig, tile=Tile):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if arch.mesh_cols > 62 or arch.mesh_rows > 62:
            raise ValueError(
                f"arch mesh must be at most 62 x 62 (6-bit coordinates), not "
                f"{arch.mesh_cols} x {arch.mesh_rows}"
            )
        self.arch = arch
        self._tile = tile
        t = arch.tiles
        members = {
            "start": In(t),
            "running": Out(t),
            "halted": Out(t),
            "error": Out(data.ArrayLayout(3, t)),
            "err_pc": Out(data.ArrayLayout(ERR_PC_BITS, t)),
            "host": In(HostPort(arch)),
            "host_tile": In(range(t)),
            "dbg_tile": In(range(t)),
            "dbg_sel": In(DBG_SEL_BITS),
            "dbg_data": Out(32),
            "host_noc": In(NocPort()),
            "drop": Out(t),
        }
        for p in range(arch.dram_ports):
            members[f"dram_{p}"] = In(NocPort())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        tiles = []
        for t in range(arch.tiles):
            x, y = t % arch.mesh_cols, t // arch.mesh_cols
            m.submodules[f"tile_{x}_{y}"] = tile = self._tile(arch)
            m.d.comb += [
                tile.start.eq(self.start[t]),
                self.running[t].eq(tile.running), self.halted[t].eq(tile.halted),
                self.error[t].eq(tile.error), self.err_pc[t].eq(tile.err_pc),
            ]  # fmt: skip
            tiles.append(tile)
        grid = [tiles[y * arch.mesh_cols : (y + 1) * arch.mesh_cols] for y in range(arch.mesh_rows)]
        self._edges(m, wire_grid(m, arch, grid))
        self._host(m, tiles)
        self._debug(m, tiles)
        m.d.comb += self.drop.eq(Cat(tile.drop for tile in tiles))
        return m

    def _edges(self, m: Module, adapters) -> None:
        named = chip_port_names(self.arch)
        step = {EAST: (1, 0), WEST: (-1, 0), SOUTH: (0, 1), NORTH: (0, -1)}
        for name, x, y, side in edge_ports(self.arch):
            port = adapters[name].noc
            if name in named:
                wiring.connect(m, wiring.flipped(getattr(self, named[name])), port)
                continue
            dx, dy = step[side]
            m.submodules[f"sink_{name}"] = sink = EdgeSink(self.arch, (x + dx, y + dy))
            wiring.connect(m, sink.noc, port)

    def _host(self, m: Module, pes: list) -> None:
        host = self.host
        rsel = Signal.like(self.host_tile)
        m.d.sync += rsel.eq(self.host_tile)
        for t, pe in enumerate(pes):
            sel = self.host_tile == t
            m.d.comb += [
                pe.host.valid.eq(host.valid & sel),
                pe.host.imem.eq(host.imem),
                pe.host.we.eq(host.we),
                pe.host.addr.eq(host.addr),
                pe.host.wdata.eq(host.wdata),
            ]
            with m.If(sel):
                m.d.comb += host.ready.eq(pe.host.ready)
            with m.If(rsel == t):
                m.d.comb += [host.rvalid.eq(pe.host.rvalid), host.rdata.eq(pe.host.rdata)]

    def _debug(self, m: Module, tiles: list) -> None:
        for t, tile in enumerate(tiles):
            m.d.comb += tile.dbg_sel.eq(Mux(self.dbg_tile == t, self.dbg_sel, 0))
            with m.If(self.dbg_tile == t):
                m.d.comb += self.dbg_data.eq(tile.dbg_data)
