"""Operand and result streams of the vector unit: SRAM reader, unpacker, writer.

``VectorReader`` streams ``count`` consecutive SRAM words from ``base`` into a FIFO:
a read is issued only while the FIFO has room for its data (entries held plus the
read in flight), since ``rdata`` arrives exactly one cycle after acceptance and
cannot be stalled.

``VectorUnpack`` gathers the ``2**tin`` words of one step into ``vec_lanes``
sign-extended int32 elements; ``VectorWriter`` packs each result step into
``2**tout`` words (elementwise) or accumulates it (RSUM, RMAX) and writes the
single result word at the end.
"""

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import DType
from hw.pe.interfaces import SramPort, VecCmd, word_addr_bits
from hw.pe.vector_alu import check_arch, lane_vector

__all__ = ["COUNT_BITS", "N16_BITS", "Reduce", "VectorReader", "VectorUnpack", "VectorWriter"]

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
    """Ports: ``start`` (pulse, with ``base`` word address and ``count`` words),
    ``port`` Out(SramPort), ``words`` Out(stream of ``sram_port_bits``)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "start": In(1),
                "base": In(word_addr_bits(arch)),
                "count": In(COUNT_BITS),
                "port": Out(SramPort(arch)),
                "words": Out(stream.Signature(arch.sram_port_bits)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        fifo = m.submodules.fifo = SyncFIFO(width=self.arch.sram_port_bits, depth=FIFO_DEPTH)
        addr = Signal.like(self.base)
        left = Signal(COUNT_BITS)
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
            m.d.sync += [addr.eq(self.base), left.eq(self.count)]
        with m.Elif(accepted):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
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
    """Ports: ``words`` In(stream), ``tin`` In(2) (stable during a command),
    ``vec`` Out(stream of ``lane_vector``)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "words": In(stream.Signature(arch.sram_port_bits)),
                "tin": In(2),
                "vec": Out(stream.Signature(lane_vector(arch))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        part = Signal(lane_vector(arch))
        index = Signal(2)
        last = index == (Const(1, 3) << self.tin)[0:3] - 1
        word = self.words.payload
        m.d.comb += self.words.ready.eq(~last | ~self.vec.valid | self.vec.ready)
        take = self.words.valid & self.words.ready
        merged = Signal(lane_vector(arch))
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
            m.d.comb += merged[lane].eq(Mux(mine, value, part[lane]))
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


class VectorWriter(wiring.Component):
    """Ports: ``start`` (pulse, with ``base`` word address, ``steps`` = n16, ``tout``,
    ``reduce``; ``tout``/``reduce`` stable during a command), ``vec`` In(stream of
    ``lane_vector``, values already saturated to ``tout``), ``port`` Out(SramPort),
    ``done`` (pulse in the cycle the command's last write is accepted)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "start": In(1),
                "base": In(word_addr_bits(arch)),
                "steps": In(N16_BITS),
                "tout": In(2),
                "reduce": In(2),
                "vec": In(stream.Signature(lane_vector(arch))),
                "port": Out(SramPort(arch)),
                "done": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        steps_left = Signal(N16_BITS)
        addr = Signal.like(self.base)
        m.d.comb += [
            self.port.addr.eq(addr),
            self.port.we.eq(1),
            self.port.wmask.eq(Const(-1, len(self.port.wmask))),
        ]
        with m.If(self.start):
            m.d.sync += [addr.eq(self.base), steps_left.eq(self.steps)]
        with m.If(self.reduce == Reduce.NONE):
            self._pack(m, steps_left, addr)
        with m.Else():
            self._accumulate(m, steps_left)
        return m

    def _pack(self, m, steps_left, addr):
        arch, port = self.arch, self.port
        held = Signal(lane_vector(arch))
        full = Signal()
        index = Signal(2)
        last = index == (Const(1, 3) << self.tout)[0:3] - 1
        accepted = port.valid & port.ready
        m.d.comb += [
            port.valid.eq(full),
            self.vec.ready.eq(~full | (accepted & last)),
            self.done.eq(accepted & last & (steps_left == 1)),
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
            m.d.sync += [addr.eq(addr + 1), index.eq(Mux(last, 0, index + 1))]
            with m.If(last):
                m.d.sync += [full.eq(0), steps_left.eq(steps_left - 1)]
        with m.If(self.vec.valid & self.vec.ready):
            m.d.sync += [held.eq(self.vec.payload), full.eq(1)]

    def _accumulate(self, m, steps_left):
        arch, port = self.arch, self.port
        # Exact: |sum| <= steps * lanes * 2**31 with steps < 2**N16_BITS.
        acc = Signal(signed(32 + N16_BITS + (arch.vec_lanes - 1).bit_length() + 1))
        result = Signal()
        elems = [self.vec.payload[i] for i in range(arch.vec_lanes)]
        with m.If(self.start):
            m.d.sync += [acc.eq(Mux(self.reduce == Reduce.MAX, I32_MIN, 0)), result.eq(0)]
        total = Mux(acc < I32_MIN, I32_MIN, Mux(acc > I32_MAX, I32_MAX, acc))
        m.d.comb += [
            port.valid.eq(result),
            port.wdata.eq(total[0:32]),
            self.vec.ready.eq(~result),
            self.done.eq(port.valid & port.ready),
        ]
        with m.If(self.vec.valid & self.vec.ready):
            with m.If(self.reduce == Reduce.MAX):
                best = _tree(elems + [acc], lambda x, y: Mux(x > y, x, y))
                m.d.sync += acc.eq(best)
            with m.Else():
                m.d.sync += acc.eq(acc + _tree(elems, lambda x, y: x + y))
            m.d.sync += steps_left.eq(steps_left - 1)
            with m.If(steps_left == 1):
                m.d.sync += result.eq(1)
        with m.If(port.valid & port.ready):
            m.d.sync += result.eq(0)
