"""One tile of the chip: a ``Pe``, its router and its network-error monitor.

The tile's coordinates are inputs, so every tile of the mesh is the same
module: the chip's Verilog holds it once (:func:`blackbox`, ``docs/chip.md``).
All four router sides leave the tile as credit links; the chip top joins
neighbours and closes the outer sides with ``hw.noc.edge.EdgeAdapter``
(``hw.noc.mesh.wire_grid``).

The network-error monitor latches the first ERROR packet that reaches the PE
(on ``in_resp``): its ``addr`` and source node, read through the debug port
(:data:`DBG_NET_ADDR`, :data:`DBG_NET_SRC`).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw import isa
from hw.arch import ArchConfig
from hw.isa import Kind
from hw.noc.link import PORT_NAMES, PORTS, Link
from hw.noc.router import Router
from hw.pe.controller import ERR_PC_BITS
from hw.pe.interfaces import Flit, HostPort
from hw.pe.pe import DBG_PC, DBG_SEL_BITS, Pe

__all__ = ["DBG_NET_ADDR", "DBG_NET_SRC", "Tile", "blackbox", "tile_signature"]

# Debug selectors added by the tile (the PE's own end at DBG_PC).
DBG_NET_ADDR = DBG_PC + 1  # addr of the first ERROR packet this PE received
DBG_NET_SRC = DBG_PC + 2  # its source: x | y << 8 | 1 << 16 (bit 16: one was received)


def _field(value, f: isa.Field):
    return value[f.lo : f.lo + f.width]


def tile_signature(arch: ArchConfig) -> wiring.Signature:
    """The :class:`Tile`'s signature (independent of its position)."""
    members = {"x": In(isa.COORD_BITS), "y": In(isa.COORD_BITS)}
    for p in range(1, PORTS):
        members[f"{PORT_NAMES[p]}_in"] = In(Link(arch))
        members[f"{PORT_NAMES[p]}_out"] = Out(Link(arch))
    members.update(
        {
            "start": In(1),
            "running": Out(1),
            "halted": Out(1),
            "error": Out(3),
            "err_pc": Out(ERR_PC_BITS),
            "host": In(HostPort(arch)),
            "dbg_sel": In(DBG_SEL_BITS),
            "dbg_data": Out(32),
            "drop": Out(1),
        }
    )
    return wiring.Signature(members)


class NetErrorMonitor(wiring.Component):
    """Latches the first ERROR head flit seen on a PE's ``in_resp`` handshake."""

    def __init__(self):
        super().__init__(
            {
                "valid": In(1),
                "ready": In(1),
                "flit": In(Flit),
                "seen": Out(1),
                "addr": Out(32),
                "src": Out(2 * isa.COORD_BITS),
            }
        )

    def elaborate(self, platform):
        m = Module()
        d = self.flit.data
        is_err = self.flit.first & (_field(d, isa.H_KIND) == int(Kind.ERROR))
        with m.If(self.valid & self.ready & is_err & ~self.seen):
            m.d.sync += [
                self.seen.eq(1),
                self.addr.eq(_field(d, isa.H_ADDR)),
                self.src.eq(_field(d, isa.H_SRC_X) | _field(d, isa.H_SRC_Y) << isa.COORD_BITS),
            ]
        return m


class Tile(wiring.Component):
    """``Pe`` + ``Router`` + :class:`NetErrorMonitor` at coordinates (``x``, ``y``).

    Ports (:func:`tile_signature`):

    * ``x``, ``y``: ``In(hw.isa.COORD_BITS)``, the tile's coordinates (constant;
      they feed the PE's ``coords`` and the router's route computation).
    * ``<side>_in: In(Link(arch))``, ``<side>_out: Out(Link(arch))`` for north,
      east, south and west: the router's links (to a neighbour or an edge adapter).
    * ``start``, ``running``, ``halted``, ``error``, ``err_pc``, ``host``: the PE's.
    * ``dbg_sel``/``dbg_data``: the PE's debug port, plus :data:`DBG_NET_ADDR` and
      :data:`DBG_NET_SRC` (the network-error monitor).
    * ``drop``: the router's.
    """

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            self._MustUse__silence = True
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        super().__init__(tile_signature(arch))
        self.pe = Pe(arch)
        self.router = Router(arch)
        self.netmon = NetErrorMonitor()

    def elaborate(self, platform):
        m = Module()
        pe, router, mon = self.pe, self.router, self.netmon
        m.submodules.pe, m.submodules.router, m.submodules.netmon = pe, router, mon
        wiring.connect(m, pe.noc, router.local)
        for p in range(1, PORTS):
            name = PORT_NAMES[p]
            wiring.connect(
                m, wiring.flipped(getattr(self, f"{name}_in")), getattr(router, f"{name}_in")
            )
            wiring.connect(
                m, getattr(router, f"{name}_out"), wiring.flipped(getattr(self, f"{name}_out"))
            )
        wiring.connect(m, wiring.flipped(self.host), pe.host)
        m.d.comb += [
            router.x.eq(self.x), router.y.eq(self.y),
            pe.coords.x.eq(self.x), pe.coords.y.eq(self.y),
            pe.start.eq(self.start), self.running.eq(pe.running), self.halted.eq(pe.halted),
            self.error.eq(pe.error), self.err_pc.eq(pe.err_pc), self.drop.eq(router.drop),
            mon.valid.eq(pe.noc.in_resp.valid), mon.ready.eq(pe.noc.in_resp.ready),
            mon.flit.eq(pe.noc.in_resp.payload),
            pe.dbg_sel.eq(self.dbg_sel),
        ]  # fmt: skip
        with m.If(self.dbg_sel == DBG_NET_ADDR):
            m.d.comb += self.dbg_data.eq(mon.addr)
        with m.Elif(self.dbg_sel == DBG_NET_SRC):
            m.d.comb += self.dbg_data.eq(
                mon.src[: isa.COORD_BITS] | mon.src[isa.COORD_BITS :] << 8 | mon.seen << 16
            )
        with m.Else():
            m.d.comb += self.dbg_data.eq(pe.dbg_data)
        return m


def instance_ports(sig: wiring.Signature, iface) -> dict:
    """``Instance`` keyword arguments (``i_<name>``/``o_<name>``) binding ``iface``'s
    signals to the ports that ``verilog.convert`` gives a component of signature
    ``sig`` (names from ``sig.flatten``, exactly as the converter derives them),
    plus ``clk``/``rst`` of the sync domain."""
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in sig.flatten(iface):
        prefix = "i_" if member.flow == wiring.In else "o_"
        ports[prefix + "__".join(map(str, path))] = Value.cast(value)
    return ports


def blackbox(module: str, signature: wiring.Signature) -> type[wiring.Component]:
    """A component class (constructor ``arch``) with ``signature`` whose body is an
    instance of the Verilog module ``module``: the output of
    ``verilog.convert(component, name=module)`` for a component of that signature
    (e.g. :class:`Tile` or ``Router``), supplied to the Verilog tools separately.
    Only for Verilog: the Amaranth simulator cannot run it."""

    class Blackbox(wiring.Component):
        def __init__(self, arch: ArchConfig):
            self.arch = arch
            super().__init__(signature)

        def elaborate(self, platform):
            m = Module()
            m.submodules.inst = Instance(module, **instance_ports(self.signature, self))
            return m

    Blackbox.__name__ = Blackbox.__qualname__ = f"Blackbox_{module}"
    return Blackbox
