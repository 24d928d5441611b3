"""Operand and result streams of the vector unit: SRAM reader, unpacker, writer.

``VectorReader`` streams SRAM words from ``base`` into a FIFO: one word per
``per_read`` units of ``count`` (``ceil(count / per_read)`` words; ``per_read`` = 1
for a whole operand, SEG for the one B word per segment).  A read is issued only
while the FIFO has room for its data (entries held plus the read in flight), since
``rdata`` arrives exactly one cycle after acceptance and cannot be stalled.

``VectorUnpack`` gathers the ``2**tin`` words of one step into ``vec_lanes``
sign-extended int32 elements (or, with ``bcast``, turns each word into a step whose
every lane is the word's element 0: a segment's B operand).  ``VectorWriter``
packs each result step into ``2**tout`` words (elementwise) or accumulates it (RSUM,
RMAX) and writes one result word per segment.  ``SegmentCounter`` tells where a
stream of steps is within its segments (docs/isa.md "Segments").
"""

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import DType
from hw.pe.interfaces import SramPort, VecCmd, word_addr_bits
from hw.pe.vector_alu import check_arch, lane_vector

__all__ = [
    "COUNT_BITS",
    "N16_BITS",
    "Reduce",
    "SegmentCounter",
    "VectorReader",
    "VectorUnpack",
    "VectorWriter",
]

N16_BITS = Shape.cast(data.Layout.cast(VecCmd)["n16"].shape).width
COUNT_BITS = N16_BITS + 2  # words of one operand: n16 * 2**tin, tin <= 2
# Read latency is one cycle: 3 entries sustain one word per cycle; 4 absorb a
# cycle of consumer backpressure without a bubble.
FIFO_DEPTH = 4
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


class Reduce:
    """``VectorWriter.reduce`` codes."""

    NONE = 0
    SUM = 1
    MAX = 2


class VectorReader(wiring.Component):
    """Ports: ``start`` (pulse, with ``base`` word address, ``count`` units and
    ``per_read`` >= 1 units per word: ``ceil(count / per_read)`` words are read),
    ``port`` Out(SramPort), ``words`` Out(stream of ``sram_port_bits``)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "start": In(1),
                "base": In(word_addr_bits(arch)),
                "count": In(COUNT_BITS),
                "per_read": In(N16_BITS),
                "port": Out(SramPort(arch)),
                "words": Out(stream.Signature(arch.sram_port_bits)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        fifo = m.submodules.fifo = SyncFIFO(width=self.arch.sram_port_bits, depth=FIFO_DEPTH)
        addr = Signal.like(self.base)
        left = Signal(COUNT_BITS)
        per_read = Signal(N16_BITS)
        in_flight = Signal()
        port = self.port
        m.d.comb += [
            port.valid.eq((left != 0) & (fifo.level + in_flight < FIFO_DEPTH)),
            port.addr.eq(addr),
            port.we.eq(0),
            fifo.w_data.eq(port.rdata),
            fifo.w_en.eq(port.rvalid),
            self.words.valid.eq(fifo.r_rdy),
            self.words.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.words.ready),
        ]
        accepted = port.valid & port.ready
        m.d.sync += in_flight.eq(accepted)
        with m.If(self.start):
            m.d.sync += [addr.eq(self.base), left.eq(self.count), per_read.eq(self.per_read)]
        with m.Elif(accepted):
            m.d.sync += [
                addr.eq(addr + 1),
                left.eq(Mux(left > per_read, left - per_read, 0)),
            ]
        return m


def _element(arch, word, dtype, lane):
    """Lane ``lane``'s element of type ``dtype`` within its word, sign-extended."""
    bits = 8 * DType(dtype).bytes
    offset = lane % (arch.word_bytes // DType(dtype).bytes)
    return word[offset * bits : (offset + 1) * bits].as_signed()


def _word_of(arch, dtype, lane):
    """Index (within a step) of the word that holds lane ``lane``'s element."""
    return lane // (arch.word_bytes // DType(dtype).bytes)


class VectorUnpack(wiring.Component):
    """Ports: ``words`` In(stream), ``tin`` In(2) and ``bcast`` In(1) (stable during a
    command; ``bcast``: one word per step, element 0 in every lane), ``vec`` Out(stream
    of ``lane_vector``)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "words": In(stream.Signature(arch.sram_port_bits)),
                "tin": In(2),
                "bcast": In(1),
                "vec": Out(stream.Signature(lane_vector(arch))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        part = Signal(lane_vector(arch))
        index = Signal(2)
        last = self.bcast | (index == (Const(1, 3) << self.tin)[0:3] - 1)
        word = self.words.payload
        m.d.comb += self.words.ready.eq(~last | ~self.vec.valid | self.vec.ready)
        take = self.words.valid & self.words.ready
        merged = Signal(lane_vector(arch))
        values = []
        for lane in range(arch.vec_lanes):
            value = Signal(signed(32), name=f"value{lane}")
            mine = Signal(name=f"mine{lane}")
            with m.Switch(self.tin):
                for dtype in DType:
                    with m.Case(dtype):
                        m.d.comb += [
                            value.eq(_element(arch, word, dtype, lane)),
                            mine.eq(index == _word_of(arch, dtype, lane)),
                        ]
            values.append(value)
            # lane 0's element is element 0 of the word for every tin
            picked = Mux(self.bcast, values[0], Mux(mine, value, part[lane]))
            m.d.comb += merged[lane].eq(picked)
        with m.If(self.vec.valid & self.vec.ready):
            m.d.sync += self.vec.valid.eq(0)
        with m.If(take):
            m.d.sync += [part.eq(merged), index.eq(Mux(last, 0, index + 1))]
            with m.If(last):
                m.d.sync += [self.vec.payload.eq(merged), self.vec.valid.eq(1)]
        return m


def _tree(values, op):
    while len(values) > 1:
        pairs = [op(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        values = pairs + values[len(pairs) * 2 :]
    return values[0]


class SegmentCounter(wiring.Component):
    """Where a stream of steps stands within the command and its segments.

    Ports: ``start`` (pulse, with ``steps`` = n16 >= 1), ``seg_len`` (steps per
    segment, 1..n16: SEG, or n16 for one segment; stable during a command),
    ``advance`` (a step passes), ``seg_end`` (the next step to pass is the last of its
    segment, which includes the command's last step), ``last`` (the next step to pass
    is the command's last).
    """

    def __init__(self):
        super().__init__(
            {
                "start": In(1),
                "steps": In(N16_BITS),
                "seg_len": In(N16_BITS),
                "advance": In(1),
                "seg_end": Out(1),
                "last": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        steps_left = Signal(N16_BITS)
        seg_left = Signal(N16_BITS)
        m.d.comb += [
            self.last.eq(steps_left == 1),
            self.seg_end.eq(self.last | (seg_left == 1)),
        ]
        with m.If(self.start):
            m.d.sync += [steps_left.eq(self.steps), seg_left.eq(self.seg_len)]
        with m.Elif(self.advance):
            m.d.sync += [
                steps_left.eq(steps_left - 1),
                seg_left.eq(Mux(self.seg_end, self.seg_len, seg_left - 1)),
            ]
        return m


class VectorWriter(wiring.Component):
    """Ports: ``start`` (pulse, with ``base`` word address, ``steps`` = n16), ``seg_len``,
    ``tout``, ``reduce`` (stable during a command), ``vec`` In(stream of
    ``lane_vector``, values already saturated to ``tout``), ``port`` Out(SramPort),
    ``done`` (pulse in the cycle the command's last write is accepted).

    A reduction writes one word per segment of ``seg_len`` steps (see
    ``SegmentCounter``), segment g's at ``base + g``: the saturated int32 in bytes
    0..3, zeros above.  The accumulator restarts with each segment; a finished
    total is written from the accumulator directly, or, if the port is busy, waits
    in a result register while the next segment accumulates, so the results are
    written while the operands stream on (the input stalls only if a second
    segment ends before the first result is written).
    """

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "start": In(1),
                "base": In(word_addr_bits(arch)),
                "steps": In(N16_BITS),
                "seg_len": In(N16_BITS),
                "tout": In(2),
                "reduce": In(2),
                "vec": In(stream.Signature(lane_vector(arch))),
                "port": Out(SramPort(arch)),
                "done": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.steps = steps = SegmentCounter()
        addr = Signal.like(self.base)
        m.d.comb += [
            steps.start.eq(self.start),
            steps.steps.eq(self.steps),
            steps.seg_len.eq(self.seg_len),
            self.port.addr.eq(addr),
            self.port.we.eq(1),
            self.port.wmask.eq(Const(-1, len(self.port.wmask))),
        ]
        with m.If(self.start):
            m.d.sync += addr.eq(self.base)
        with m.Elif(self.port.valid & self.port.ready):
            m.d.sync += addr.eq(addr + 1)
        with m.If(self.reduce == Reduce.NONE):
            self._pack(m, steps)
        with m.Else():
            self._accumulate(m, steps)
        return m

    def _pack(self, m, steps):
        arch, port = self.arch, self.port
        held = Signal(lane_vector(arch))
        full = Signal()
        index = Signal(2)
        last = index == (Const(1, 3) << self.tout)[0:3] - 1
        accepted = port.valid & port.ready
        m.d.comb += [
            port.valid.eq(full),
            self.vec.ready.eq(~full | (accepted & last)),
            steps.advance.eq(accepted & last),
            self.done.eq(accepted & last & steps.last),
        ]
        with m.Switch(Cat(index, self.tout)):
            for dtype in DType:
                per_word = arch.word_bytes // dtype.bytes
                bits = 8 * dtype.bytes
                for w in range(dtype.bytes):
                    lanes = range(w * per_word, (w + 1) * per_word)
                    with m.Case(w | dtype << 2):
                        m.d.comb += port.wdata.eq(Cat(held[i][0:bits] for i in lanes))
        with m.If(accepted):
            m.d.sync += index.eq(Mux(last, 0, index + 1))
            with m.If(last):
                m.d.sync += full.eq(0)
        with m.If(self.vec.valid & self.vec.ready):
            m.d.sync += [held.eq(self.vec.payload), full.eq(1)]

    def _accumulate(self, m, steps):
        arch, port = self.arch, self.port
        # Exact: |sum| <= steps * lanes * 2**31 with steps < 2**N16_BITS.
        acc = Signal(signed(32 + N16_BITS + (arch.vec_lanes - 1).bit_length() + 1))
        closed = Signal()  # acc holds a finished segment's total, not yet written or moved
        result = Signal(32)  # an earlier segment's total waiting for the port
        pending = Signal()  # result is valid
        all_in = Signal()  # every step has been accumulated
        is_max = self.reduce == Reduce.MAX
        init = Mux(is_max, I32_MIN, 0)
        total = Mux(acc < I32_MIN, I32_MIN, Mux(acc > I32_MAX, I32_MAX, acc))
        accepted = port.valid & port.ready
        # acc is free unless its total must wait for the pending result to be written;
        # it moves to the result register unless the port takes it directly.
        free = closed & ~(pending & ~accepted)
        move = closed & Mux(pending, accepted, ~accepted)
        take = self.vec.valid & self.vec.ready
        m.d.comb += [
            port.valid.eq(pending | closed),
            port.wdata.eq(Mux(pending, result, total[0:32])),
            self.vec.ready.eq(~closed | free),
            steps.advance.eq(take),
            self.done.eq(accepted & all_in & ~(pending & closed)),
        ]
        base = Mux(closed, init, acc)
        elems = [self.vec.payload[i] for i in range(arch.vec_lanes)]
        with m.If(self.start):
            m.d.sync += [acc.eq(init), closed.eq(0), pending.eq(0), all_in.eq(0)]
        with m.Else():
            with m.If(take):
                with m.If(is_max):
                    m.d.sync += acc.eq(_tree(elems + [base], lambda x, y: Mux(x > y, x, y)))
                with m.Else():
                    m.d.sync += acc.eq(base + _tree(elems, lambda x, y: x + y))
                m.d.sync += closed.eq(steps.seg_end)
                with m.If(steps.last):
                    m.d.sync += all_in.eq(1)
            with m.Elif(free):
                m.d.sync += [acc.eq(init), closed.eq(0)]
            with m.If(move):
                m.d.sync += [result.eq(total[0:32]), pending.eq(1)]
            with m.Elif(accepted):
                m.d.sync += pending.eq(0)
