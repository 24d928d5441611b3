"""Sharing inside the DMA engine: SRAM port arbiters, a packet mux, a stream arbiter."""

from __future__ import annotations

from amaranth import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.pe.interfaces import SramPort, flit_stream

__all__ = ["SramReadArbiter", "SramWriteArbiter", "PacketMux", "StreamArbiter"]


def _check_n(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"number of requesters must be an integer >= 1, not {n!r}")
    return n


def _hold_grant(m: Module, port, grant: Signal, n: int) -> tuple[Signal, Signal]:
    """Keep a request that was offered but not accepted on the port until it is.

    The SramPort protocol asks a requester to hold ``valid`` and ``addr`` until
    ``ready``; the arbiter does the same on its shared port.
    """
    hold = Signal()
    held = Signal(range(n))
    m.d.sync += [hold.eq(port.valid & ~port.ready), held.eq(grant)]
    return hold, held


class SramReadArbiter(wiring.Component):
    """Round-robin sharing of one SramPort by ``n`` read requesters ``req_0..``.

    Each cycle the first valid requester after the one granted last wins (a request
    offered but not accepted keeps the port); the others see ``ready = 0``.
    ``rdata`` is broadcast and ``rvalid`` goes to the requester whose read was
    accepted one cycle earlier.  ``ready`` depends
    combinationally on the requesters' ``valid``s and on ``port.ready``.
    """

    def __init__(self, arch: ArchConfig, n: int):
        self._n = _check_n(n)
        members = {f"req_{i}": In(SramPort(arch)) for i in range(self._n)}
        members["port"] = Out(SramPort(arch))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self._n
        reqs = [getattr(self, f"req_{i}") for i in range(n)]
        last = Signal(range(n))
        grant = Signal(range(n))
        owner = Signal(n)  # one-hot: who gets the data of the read accepted last cycle
        port = self.port
        hold, held = _hold_grant(m, port, grant, n)
        with m.If(hold):
            m.d.comb += grant.eq(held)
        with m.Else():
            with m.Switch(last):
                for k in range(n):
                    with m.Case(k):
                        order = [(k + 1 + j) % n for j in range(n)]
                        # The first valid in round-robin order wins: assign in reverse.
                        for i in reversed(order):
                            with m.If(reqs[i].valid):
                                m.d.comb += grant.eq(i)
        accepted = Signal()
        m.d.comb += accepted.eq(port.valid & port.ready)
        for i, r in enumerate(reqs):
            with m.If(grant == i):
                m.d.comb += [
                    port.valid.eq(r.valid),
                    port.addr.eq(r.addr),
                    port.we.eq(r.we),
                    port.wdata.eq(r.wdata),
                    port.wmask.eq(r.wmask),
                    r.ready.eq(port.ready),
                ]
            m.d.comb += [r.rdata.eq(port.rdata), r.rvalid.eq(port.rvalid & owner[i])]
        with m.If(accepted):
            m.d.sync += last.eq(grant)
        m.d.sync += owner.eq(accepted << grant)
        return m


class SramWriteArbiter(wiring.Component):
    """Fixed-priority sharing of one SramPort by ``n`` write requesters (``req_0`` first).

    Writes have no response, so a grant lasts until its write is accepted; the
    highest priority requester always makes progress.
    """

    def __init__(self, arch: ArchConfig, n: int):
        self._n = _check_n(n)
        members = {f"req_{i}": In(SramPort(arch)) for i in range(self._n)}
        members["port"] = Out(SramPort(arch))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self._n
        reqs = [getattr(self, f"req_{i}") for i in range(n)]
        port = self.port
        grant = Signal(range(n))
        hold, held = _hold_grant(m, port, grant, n)
        with m.If(hold):
            m.d.comb += grant.eq(held)
        with m.Else():
            for i in reversed(range(n)):
                with m.If(reqs[i].valid):
                    m.d.comb += grant.eq(i)
        for i, r in enumerate(reqs):
            with m.If(grant == i):
                m.d.comb += [
                    port.valid.eq(r.valid),
                    port.addr.eq(r.addr),
                    port.we.eq(r.we),
                    port.wdata.eq(r.wdata),
                    port.wmask.eq(r.wmask),
                    r.ready.eq(port.ready),
                ]
        return m


class PacketMux(wiring.Component):
    """Merges ``n`` flit streams ``in_0..`` into ``out`` a whole packet at a time.

    Between packets the next input in round-robin order with a valid flit is
    chosen; the choice then holds until that packet's ``last`` flit.  ``out.valid``
    never depends on ``out.ready``.  ``busy`` is high inside a packet.
    """

    def __init__(self, n: int):
        self._n = _check_n(n)
        members = {f"in_{i}": In(flit_stream()) for i in range(self._n)}
        members["out"] = Out(flit_stream())
        members["busy"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self._n
        ins = [getattr(self, f"in_{i}") for i in range(n)]
        locked = Signal()
        held = Signal(range(n))
        sel = Signal(range(n))
        with m.If(locked):
            m.d.comb += sel.eq(held)
        with m.Else():
            with m.Switch(held):
                for k in range(n):
                    with m.Case(k):
                        for i in reversed([(k + 1 + j) % n for j in range(n)]):
                            with m.If(ins[i].valid):
                                m.d.comb += sel.eq(i)
        for i, s in enumerate(ins):
            with m.If(sel == i):
                m.d.comb += [
                    self.out.valid.eq(s.valid),
                    self.out.payload.eq(s.payload),
                    s.ready.eq(self.out.ready),
                ]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += [held.eq(sel), locked.eq(~self.out.payload.last)]
        m.d.comb += self.busy.eq(locked)
        return m


class StreamArbiter(wiring.Component):
    """Fixed-priority merge of ``n`` single-beat streams ``in_0..`` (``in_0`` first)."""

    def __init__(self, shape, n: int):
        self._n = _check_n(n)
        Shape.cast(shape)
        members = {f"in_{i}": In(stream.Signature(shape)) for i in range(self._n)}
        members["out"] = Out(stream.Signature(shape))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ins = [getattr(self, f"in_{i}") for i in range(self._n)]
        for s in reversed(ins):
            with m.If(s.valid):
                m.d.comb += [self.out.valid.eq(1), self.out.payload.eq(s.payload)]
        taken = Signal()
        for s in ins:
            m.d.comb += s.ready.eq(self.out.ready & ~taken)
            taken_next = Signal()
            m.d.comb += taken_next.eq(taken | s.valid)
            taken = taken_next
        return m
