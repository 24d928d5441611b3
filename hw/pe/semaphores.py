"""The PE's semaphore counters.

``arch.semaphores`` counters of ``arch.sem_bits`` bits, reset to 0.  Two
increment streams (always ready): ``local_inc`` from the controller's
``SIGNAL ... mode=SELF`` and ``net_inc`` from the DMA engine (inbound SIGNAL
packets and DMA completions).  One wait port from the controller's WAIT:
``wait.ok`` is high (combinationally) in a cycle where ``wait.valid`` is high
and the counter is ``>= wait.count``; in that cycle the counter is decremented
by ``wait.count``.  Increments and a successful wait on the same counter in the
same cycle combine exactly: ``new = old + local + net - count``.

``overflow`` is high (combinationally) in a cycle where a counter's new value
would pass ``arch.sem_max``, or an increment names a counter that does not
exist; the affected counter keeps its old value (the increment and the wait of
that cycle on it are dropped: the PE is in its error state from then on).
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import SEM_COUNT, SEM_ID
from hw.pe.interfaces import SemInc

__all__ = ["SemWait", "Semaphores"]


class SemWait(wiring.Signature):
    """A WAIT request (requester's view): ``ok`` answers in the same cycle."""

    def __init__(self):
        super().__init__(
            {
                "valid": Out(1),
                "sem": Out(SEM_ID.width),
                "count": Out(SEM_COUNT.width),
                "ok": In(1),
            }
        )


class Semaphores(wiring.Component):
    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        super().__init__(
            {
                "local_inc": In(stream.Signature(SemInc)),
                "net_inc": In(stream.Signature(SemInc)),
                "wait": In(SemWait()),
                "overflow": Out(1),
                "dbg_sel": In(SEM_ID.width),
                "dbg_count": Out(arch.sem_bits),
            }
        )

    def elaborate(self, platform) -> Elaboratable:
        m = Module()
        arch = self.arch
        n = arch.semaphores
        m.d.comb += [self.local_inc.ready.eq(1), self.net_inc.ready.eq(1)]
        counts = [Signal(arch.sem_bits, name=f"count{i}") for i in range(n)]

        wide = arch.sem_bits + 2 + SEM_COUNT.width
        overflows = []
        for i, count in enumerate(counts):
            inc = Signal(wide, name=f"inc{i}")
            dec = Signal(wide, name=f"dec{i}")
            new = Signal(wide, name=f"new{i}")
            over = Signal(name=f"over{i}")
            local, net, wait = self.local_inc, self.net_inc, self.wait
            hit_local = local.valid & (local.p.sem == i)
            hit_net = net.valid & (net.p.sem == i)
            hit_wait = wait.valid & (wait.sem == i) & (count >= wait.count)
            m.d.comb += [
                inc.eq(
                    (local.p.count & hit_local.replicate(SEM_COUNT.width))
                    + (net.p.count & hit_net.replicate(SEM_COUNT.width))
                ),
                dec.eq(wait.count & hit_wait.replicate(SEM_COUNT.width)),
                new.eq(count + inc - dec),
                over.eq(new > arch.sem_max),
            ]
            with m.If(~over):
                m.d.sync += count.eq(new)
            with m.If(hit_wait & ~over):
                m.d.comb += wait.ok.eq(1)
            overflows.append(over)

        missing = 0
        for stream_in in (self.local_inc, self.net_inc):
            missing = missing | (stream_in.valid & (stream_in.p.sem >= n))
        m.d.comb += self.overflow.eq(missing | _any(overflows))
        for i, count in enumerate(counts):
            with m.If(self.dbg_sel == i):
                m.d.comb += self.dbg_count.eq(count)
        return m


def _any(values: list) -> object:
    out = 0
    for v in values:
        out = out | v
    return out
