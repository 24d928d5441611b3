"""The edge adapter: terminates a router side that faces the mesh edge.

Every router has credit links on all four sides (``hw.noc.router``), so that one
router (and one tile) module serves every position.  Outside the tile, each side
that faces the mesh edge is closed by an :class:`EdgeAdapter`, which gives the
off-chip endpoint there (a DRAM port, the host NoC port, an ``EdgeSink``) the
same ``NocPort`` streams as a PE::

    router.<side>_out ──► from_router ─ ejection buffer per class ─► noc.in_req/in_resp
    router.<side>_in  ◄── to_router   ◄─ class arbiter, credits  ◄─ noc.out_req/out_resp

* Ejection: one ``InputBuffer`` of ``router_buffer_flits`` per class, written by
  the link unconditionally (the router holds its credits) and read by the
  endpoint's stream; each pop returns a credit from a register: exactly the
  ejection path of the local port.
* Injection: the endpoint's two streams share the link, one flit per cycle; when
  both classes can send, they alternate.  The link is driven combinationally
  from the stream, and a credit returned in this cycle can be spent in this
  cycle, so ``ready`` equals "the router's input buffer of that class is not
  full" and a flit enters that buffer in the cycle of its handshake: with one
  class sending, the timing is that of a stream written straight into the
  router's input buffer.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import MsgClass
from hw.noc.buffer import InputBuffer
from hw.noc.link import Link
from hw.pe.interfaces import NocPort

__all__ = ["EdgeAdapter"]

_STREAMS = {MsgClass.REQUEST: ("out_req", "in_req"), MsgClass.RESPONSE: ("out_resp", "in_resp")}


class EdgeAdapter(wiring.Component):
    """Link pair of a router's outer side <-> ``NocPort`` of the endpoint there.

    * ``to_router``: ``Out(Link(arch))``, connect to ``router.<side>_in``.
    * ``from_router``: ``In(Link(arch))``, connect to ``router.<side>_out``.
    * ``noc``: ``In(NocPort())`` (the endpoint's view is ``NocPort``).
    """

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            self._MustUse__silence = True
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if arch.vcs != len(MsgClass):
            self._MustUse__silence = True
            raise ValueError(f"arch.vcs must be {len(MsgClass)} (one per class), not {arch.vcs}")
        self.arch = arch
        super().__init__(
            {"to_router": Out(Link(arch)), "from_router": In(Link(arch)), "noc": In(NocPort())}
        )
        depth = arch.router_buffer_flits
        self.ejbuf = [InputBuffer(arch) for _ in range(arch.vcs)]
        self.credits = [
            Signal(range(depth + 1), init=depth, name=f"credits_{v}") for v in range(arch.vcs)
        ]

    def elaborate(self, platform):
        m = Module()
        self._eject(m)
        self._inject(m)
        return m

    def _eject(self, m):
        link = self.from_router
        for v, buf in enumerate(self.ejbuf):
            m.submodules[f"ejbuf_{v}"] = buf
            dst = getattr(self.noc, _STREAMS[MsgClass(v)][1])
            m.d.comb += [
                buf.w.valid.eq(link.valid & (link.vc == v)),
                buf.w.payload.flit.eq(link.flit),
                dst.valid.eq(buf.r.valid),
                dst.payload.eq(buf.r.payload.flit),
                buf.r.ready.eq(dst.ready),
            ]
            m.d.sync += link.credit[v].eq(buf.r.valid & buf.r.ready)

    def _inject(self, m):
        link = self.to_router
        srcs = [getattr(self.noc, _STREAMS[MsgClass(v)][0]) for v in range(self.arch.vcs)]
        # a credit returned in this cycle may be spent in this cycle
        avail = [(self.credits[v] != 0) | link.credit[v] for v in range(self.arch.vcs)]
        cand = [src.valid & ok for src, ok in zip(srcs, avail, strict=True)]
        last = Signal(name="last_vc")  # class that sent last, loses a tie
        vc = Signal(name="vc")
        m.d.comb += vc.eq(Mux(cand[0] & cand[1], ~last, cand[1]))
        m.d.comb += [
            link.valid.eq(cand[0] | cand[1]),
            link.vc.eq(vc),
            link.flit.eq(Mux(vc, srcs[1].payload, srcs[0].payload)),
        ]
        with m.If(link.valid):
            m.d.sync += last.eq(vc)
        for v, src in enumerate(srcs):
            sent = link.valid & (vc == v)
            m.d.comb += src.ready.eq(avail[v] & (vc == v))
            m.d.sync += self.credits[v].eq(self.credits[v] - sent + link.credit[v])
        return m
