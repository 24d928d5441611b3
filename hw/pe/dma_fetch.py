"""DescFetch: reads DMA descriptors from SRAM, validates them and queues them."""

from __future__ import annotations

from amaranth import Cat, Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import COORD_BITS, DESC_WORDS, SignalMode
from hw.pe.dma_layouts import DESC, DESC_IMAGE, WORD_SHIFT, check_arch
from hw.pe.interfaces import DmaCmd, SramPort

__all__ = ["DescFetch", "desc_is_valid"]


def _aligned(v: Value) -> Value:
    return v.as_unsigned()[:WORD_SHIFT] == 0


def desc_is_valid(arch: ArchConfig, d: data.View) -> Value:
    """The descriptor rules of docs/isa.md (DMA fault when false).

    Counts >= 1; local, remote and all four strides 16-aligned; mode SELF, NODE
    or RECT (a RECT read is a multicast read); the semaphore in range when it is
    used; the target coordinates within the head flit's coordinate fields (RECT
    writes: x0 <= x1, y0 <= y1; a multicast read's far corner (x1, y1) may lie on
    either side of the requester, and (x0, y0) is the remote node, not a corner).
    The local range is checked per packet by the executor.
    """
    coord_max = 1 << COORD_BITS
    is_node = d.mode == SignalMode.NODE
    is_rect = d.mode == SignalMode.RECT
    mode_ok = (d.mode == SignalMode.SELF) | is_node | is_rect
    xy0_ok = (d.x0 < coord_max) & (d.y0 < coord_max)
    ordered = (d.x0 <= d.x1) & (d.y0 <= d.y1)
    rect_ok = (d.x1 < coord_max) & (d.y1 < coord_max) & (d.read | ordered)
    target_ok = (~(is_node | is_rect) | xy0_ok) & (~is_rect | rect_ok)
    sem_ok = ~(d.signal | d.read) | (d.sem < arch.semaphores)
    counts_ok = (d.count0 != 0) & (d.count1 != 0) & (d.count2 != 0)
    align_ok = Cat(
        _aligned(d.local),
        _aligned(d.remote),
        _aligned(d.lstride1),
        _aligned(d.lstride2),
        _aligned(d.rstride1),
        _aligned(d.rstride2),
    ).all()
    return mode_ok & target_ok & sem_ok & counts_ok & align_ok


class DescFetch(wiring.Component):
    """Descriptor fetch and the queue of ``arch.dma_queue`` descriptors.

    Ports:
      * ``cmd`` (stream of DmaCmd): while ``valid`` and the queue has room, the
        three descriptor words at ``desc_addr`` are read through ``sram``;
        ``ready`` is raised (one cycle) once the descriptor has been validated
        and queued, or rejected with a one-cycle ``error`` pulse.  ``desc_addr``
        is assumed 16-aligned and in range (the controller checks it).
      * ``desc`` (stream of :data:`DESC`): queued descriptors, in order.
      * ``sram`` (SramPort requester, reads only).
      * ``busy``: fetching, or the queue is not empty.
    """

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self._arch = arch
        super().__init__(
            {
                "cmd": In(stream.Signature(DmaCmd)),
                "desc": Out(stream.Signature(DESC)),
                "sram": Out(SramPort(arch)),
                "error": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        m.submodules.queue = queue = SyncFIFO(width=DESC.size, depth=arch.dma_queue)

        image = Signal(DESC_IMAGE)
        issued = Signal(range(DESC_WORDS + 1))
        got = Signal(range(DESC_WORDS + 1))
        base = self.cmd.payload.desc_addr[WORD_SHIFT:]
        word_bits = arch.flit_bits

        packed = Signal(DESC)
        for name, _ in DESC:
            m.d.comb += packed[name].eq(image[name])
        valid = Signal()
        m.d.comb += [
            valid.eq(desc_is_valid(arch, packed)),
            queue.w_data.eq(packed),
            self.desc.valid.eq(queue.r_rdy),
            self.desc.payload.eq(queue.r_data),
            queue.r_en.eq(self.desc.ready),
            self.sram.we.eq(0),
            self.sram.addr.eq(base + issued),
        ]

        with m.FSM(name="fetch") as fsm:
            with m.State("IDLE"):
                with m.If(self.cmd.valid & queue.w_rdy):
                    m.d.sync += [issued.eq(0), got.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.sram.valid.eq(issued != DESC_WORDS)
                with m.If(self.sram.valid & self.sram.ready):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(self.sram.rvalid):
                    # Words arrive in order: shift each one in at the top.
                    raw = image.as_value()
                    m.d.sync += [
                        raw.eq(Cat(raw[word_bits:], self.sram.rdata)),
                        got.eq(got + 1),
                    ]
                    with m.If(got == DESC_WORDS - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [
                    self.cmd.ready.eq(1),
                    queue.w_en.eq(valid),
                    self.error.eq(~valid),
                ]
                m.next = "IDLE"
        m.d.comb += self.busy.eq(queue.r_rdy | ~fsm.ongoing("IDLE"))
        return m
