"""The router's flit FIFO: input buffers (one per port and VC) and ejection buffers."""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.noc.link import OUTPUTS
from hw.pe.interfaces import Flit

__all__ = ["BufEntry", "InputBuffer"]


class BufEntry(data.Struct):
    """A buffered flit and, for a head flit, the output set computed on arrival."""

    flit: Flit
    route: OUTPUTS  # bit o: output o (hw.noc.link numbering); meaningless for body flits


class InputBuffer(wiring.Component):
    """First-in first-out buffer of ``arch.router_buffer_flits`` entries.

    ``w`` and ``r`` follow the ``amaranth.lib.stream`` rules; ``r`` is
    first-word-fall-through (the head entry is on ``r.payload`` whenever
    ``r.valid``); ``w.ready`` is high when not full.  A write and a read may
    happen in the same cycle.  ``level`` is the number of
    entries held.  The entries are registers (``slots``), so that formal
    harnesses can state invariants over them.
    """

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        self.depth = arch.router_buffer_flits
        super().__init__(
            {
                "w": In(stream.Signature(BufEntry)),
                "r": Out(stream.Signature(BufEntry)),
                "level": Out(range(self.depth + 1)),
            }
        )
        self.slots = [Signal(BufEntry, name=f"slot{i}") for i in range(self.depth)]
        self.rptr = Signal(range(self.depth))
        self.wptr = Signal(range(self.depth))

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        slots = Array(self.slots)
        pop = self.r.valid & self.r.ready
        push = self.w.valid & self.w.ready
        m.d.comb += [
            self.r.valid.eq(self.level != 0),
            self.r.payload.eq(slots[self.rptr]),
            self.w.ready.eq(self.level != depth),
        ]
        with m.If(push):
            m.d.sync += slots[self.wptr].eq(self.w.payload)
            m.d.sync += self.wptr.eq(self._next(self.wptr))
        with m.If(pop):
            m.d.sync += self.rptr.eq(self._next(self.rptr))
        m.d.sync += self.level.eq(self.level + push - pop)
        return m

    def _next(self, ptr):
        """The slot after ``ptr``; a subclass may override it (formal mutants)."""
        return Mux(ptr == self.depth - 1, 0, ptr + 1)
