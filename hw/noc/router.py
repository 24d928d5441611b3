"""The mesh router: 5 ports, XY routing, wormhole, credits, 2 message classes.

Pipeline (``docs/noc.md``): a flit arriving on a port is written into the
input buffer of its class together with its route (route computation looks
ahead, in the arrival cycle); in the next cycle the allocator grants outputs
and switches it into the output register, which drives the link.  So a hop
costs 2 cycles at zero load, a head flit included.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import COORD_BITS, H_LEN, MsgClass
from hw.noc.alloc import Allocator
from hw.noc.buffer import InputBuffer
from hw.noc.link import CONFIG, LOCAL, OUTPUTS, PORT_NAMES, PORTS, Link
from hw.noc.route import RouteCompute
from hw.noc.table import KeyTable
from hw.pe.interfaces import Flit, NocPort

__all__ = ["Router", "router_signature"]


def router_signature(arch: ArchConfig) -> wiring.Signature:
    """The :class:`Router`'s signature (independent of its position)."""
    members = {"x": In(COORD_BITS), "y": In(COORD_BITS), "local": In(NocPort())}
    for p in range(1, PORTS):
        members[f"{PORT_NAMES[p]}_in"] = In(Link(arch))
        members[f"{PORT_NAMES[p]}_out"] = Out(Link(arch))
    members["drop"] = Out(1)
    return wiring.Signature(members)


_STREAMS = {MsgClass.REQUEST: ("out_req", "in_req"), MsgClass.RESPONSE: ("out_resp", "in_resp")}


class Router(wiring.Component):
    """One router of an ``arch.mesh_cols x arch.mesh_rows`` mesh, at any position.

    Ports (the same for every position, so that the Verilog of the mesh holds
    the router module once):

    * ``x``, ``y``: ``In(hw.isa.COORD_BITS)``, the router's coordinates; they must
      hold a tile of the mesh and stay constant (the mesh ties them to constants).
    * ``local``: ``In(NocPort())``, the PE side: the PE's ``out_req``/``out_resp``
      streams enter the local input buffers (``ready`` = buffer not full); the
      ``in_req``/``in_resp`` streams come from an ejection buffer of
      ``router_buffer_flits`` per class, fed under credits like a link.
    * ``<side>_in``: ``In(Link(arch))`` and ``<side>_out``: ``Out(Link(arch))`` for
      every side (``north``, ``east``, ``south``, ``west``): credit links to the
      neighbour, or, on a side facing the mesh edge (``hw.noc.link.faces_edge``
      of ``x``/``y``), to an :class:`hw.noc.edge.EdgeAdapter` that turns them
      into the ``NocPort`` view of the off-chip endpoint there.
    * ``drop``: pulses when a packet with no output, or a stray body flit, is
      discarded.
    """

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            self._MustUse__silence = True  # a rejected component is no unused one
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        super().__init__(router_signature(arch))
        vcs, depth = arch.vcs, arch.router_buffer_flits
        self.inbuf = [[InputBuffer(arch) for _ in range(vcs)] for _ in range(PORTS)]
        self.ejbuf = [InputBuffer(arch) for _ in range(vcs)]  # of the local port
        self.alloc = Allocator(arch)
        self.table = KeyTable(arch, lookups=vcs + PORTS - 1)
        # credits[o][v]: free slots downstream of output o for class v
        self.credits = [
            [Signal(range(depth + 1), init=depth, name=f"credits_{o}_{v}") for v in range(vcs)]
            for o in range(PORTS)
        ]
        # credit returns in flight (registered pops), per input or ejection buffer
        self.credit_out = [
            [Signal(name=f"credit_out_{p}_{v}") for v in range(vcs)] for p in range(PORTS)
        ]
        self.eject_credit = [Signal(name=f"eject_credit_{v}") for v in range(vcs)]
        self.out_valid = [Signal(name=f"out_valid_{o}") for o in range(PORTS)]
        self.out_vc = [Signal(range(vcs), name=f"out_vc_{o}") for o in range(PORTS)]
        self.out_flit = [Signal(Flit, name=f"out_flit_{o}") for o in range(PORTS)]

    def port(self, p: int):
        """The interface object of port ``p``: ``local``, or the ``(in, out)`` links."""
        name = PORT_NAMES[p]
        if p == LOCAL:
            return self.local
        return getattr(self, f"{name}_in"), getattr(self, f"{name}_out")

    def elaborate(self, platform):
        m = Module()
        m.submodules.alloc = self.alloc
        m.submodules.table = self.table
        for p in range(PORTS):
            for v, buf in enumerate(self.inbuf[p]):
                m.submodules[f"inbuf_{PORT_NAMES[p]}_{v}"] = buf
                m.d.comb += [
                    self.alloc.inputs[p][v].valid.eq(buf.r.valid),
                    self.alloc.inputs[p][v].first.eq(buf.r.payload.flit.first),
                    self.alloc.inputs[p][v].last.eq(buf.r.payload.flit.last),
                    self.alloc.inputs[p][v].route.eq(buf.r.payload.route),
                    self.alloc.inputs[p][v].length.eq(
                        buf.r.payload.flit.data[H_LEN.lo : H_LEN.lo + H_LEN.width]
                    ),
                    buf.r.ready.eq(self.alloc.inputs[p][v].pop),
                ]
        lookups = iter(self.table.lookup)
        for p in range(PORTS):
            self._input_side(m, p, lookups)
        self._crossbar(m)
        for p in range(PORTS):
            self._output_side(m, p)
        m.d.comb += self.drop.eq(self.alloc.drop)
        return m

    def _route(self, m, p, head, lookups, suffix):
        rc = RouteCompute(self.arch, p)
        m.submodules[f"route_{PORT_NAMES[p]}{suffix}"] = rc
        lookup = next(lookups)
        m.d.comb += [
            rc.x.eq(self.x),
            rc.y.eq(self.y),
            rc.head.eq(head),
            lookup.key.eq(rc.key),
            rc.key_hit.eq(lookup.hit),
            rc.key_ports.eq(lookup.ports),
        ]
        return rc.route

    def _input_side(self, m, p, lookups):
        bufs = self.inbuf[p]
        if p == LOCAL:
            noc = self.local
            for v in range(self.arch.vcs):
                src = getattr(noc, _STREAMS[MsgClass(v)][0])
                route = self._route(m, p, src.payload.data, lookups, f"_{v}")
                m.d.comb += [
                    bufs[v].w.valid.eq(src.valid),
                    bufs[v].w.payload.flit.eq(src.payload),
                    bufs[v].w.payload.route.eq(route),
                    src.ready.eq(bufs[v].w.ready),
                ]
            return
        link_in, _ = self.port(p)
        route = self._route(m, p, link_in.flit.data, lookups, "")
        for v in range(self.arch.vcs):
            m.d.comb += [
                bufs[v].w.valid.eq(link_in.valid & (link_in.vc == v)),
                bufs[v].w.payload.flit.eq(link_in.flit),
                bufs[v].w.payload.route.eq(route),
                link_in.credit[v].eq(self.credit_out[p][v]),
            ]
            m.d.sync += self.credit_out[p][v].eq(self._credit_event(bufs[v]))

    def _credit_event(self, buf):
        """The cycle a slot is freed (a formal mutant overrides this)."""
        return buf.r.valid & buf.r.ready

    def _crossbar(self, m):
        vcs = self.arch.vcs
        for o in range(OUTPUTS):
            g = self.alloc.grant[o]
            flit = Signal(Flit, name=f"xbar_{o}")
            with m.Switch(g.input):
                for p in range(PORTS):
                    with m.Case(p):
                        with m.Switch(g.vc):
                            for v in range(vcs):
                                with m.Case(v):
                                    m.d.comb += flit.eq(self.inbuf[p][v].r.payload.flit)
            if o == CONFIG:
                m.d.comb += [
                    self.table.cfg.valid.eq(g.valid),
                    self.table.cfg.payload.eq(flit),
                ]
                for v in range(vcs):  # always ready: as if its buffer were always empty
                    m.d.comb += self.alloc.credits[o][v].eq(self.arch.router_buffer_flits)
                continue
            m.d.sync += [
                self.out_valid[o].eq(g.valid),
                self.out_vc[o].eq(g.vc),
                self.out_flit[o].eq(flit),
            ]
            for v in range(vcs):
                m.d.comb += self.alloc.credits[o][v].eq(self.credits[o][v])

    def _output_side(self, m, o):
        vcs = self.arch.vcs
        if o == LOCAL:
            noc = self.local
            returned = []
            for v in range(vcs):
                buf = self.ejbuf[v]
                m.submodules[f"ejbuf_{PORT_NAMES[o]}_{v}"] = buf
                dst = getattr(noc, _STREAMS[MsgClass(v)][1])
                m.d.comb += [
                    buf.w.valid.eq(self.out_valid[o] & (self.out_vc[o] == v)),
                    buf.w.payload.flit.eq(self.out_flit[o]),
                    dst.valid.eq(buf.r.valid),
                    dst.payload.eq(buf.r.payload.flit),
                    buf.r.ready.eq(dst.ready),
                ]
                m.d.sync += self.eject_credit[v].eq(buf.r.valid & buf.r.ready)
                returned.append(self.eject_credit[v])
        else:
            _, link_out = self.port(o)
            m.d.comb += [
                link_out.valid.eq(self.out_valid[o]),
                link_out.vc.eq(self.out_vc[o]),
                link_out.flit.eq(self.out_flit[o]),
            ]
            returned = [link_out.credit[v] for v in range(vcs)]
        g = self.alloc.grant[o]
        for v in range(vcs):
            spent = g.valid & (g.vc == v)
            m.d.sync += self.credits[o][v].eq(self.credits[o][v] - spent + returned[v])
