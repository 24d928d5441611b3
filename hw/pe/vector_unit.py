"""The PE's vector unit: VCFG and VOP (docs/isa.md, bit-exact with sim.numerics).

Ports (``VectorUnit(arch)``):

* ``cmd`` In(stream of ``VecCmd``): ready only when idle.  ``busy`` is high from the
  cycle after acceptance until the cycle in which the last SRAM write is accepted.
* ``cfg`` In(stream of ``VecCfgWrite``): always ready; writes vector config register
  ``idx`` (``hw.isa.VCfg``; indices past the last register are ignored).
* ``error`` Out(1): pulses in the first busy cycle if the command faults (A, B unless
  ``bscalar``, D not 16-aligned or not inside SRAM; D is n elements of ``tout``, or
  one word per segment for RSUM/RMAX; B is n elements of ``tin``, or one word per
  segment); the unit then goes idle without any SRAM access.
* ``port_a``, ``port_b``, ``port_d`` Out(SramPort): A reads, B reads, D writes.

B is range-checked for every VOP without ``bscalar`` (docs/isa.md states the check
for all three operands) but read only by the binary functions (``hw.isa.BINARY``).

Segments (the command's ``seg`` = s, docs/isa.md): with 1 <= s < n16 ("segmented")
the steps form segments of s steps (``SegmentCounter``).  A binary function's B
reader reads one word per segment (``per_read`` = s) and ``VectorUnpack`` broadcasts
its element 0 to all lanes; that vector is consumed with the last step of its
segment.  The writer of a reduction restarts its accumulator and writes one word per
segment.  A segmented VOP takes the cycles of the unsegmented one (A streams on
while a segment's result is written; measured in tests/hw/test_vector_seg.py).  The
range check of the nseg = ceil(n16 / s) words of B or D needs no divider: ``nseg <=
room`` (room = whole words from the address to the SRAM end) is ``n16 <= room * s``,
one multiplier shared by B and D (a reduction's B and D both have nseg words: the
smaller room counts).

Datapath: ``VectorReader`` -> ``VectorUnpack`` for A and B (one word per cycle each),
then ``VectorAlu`` (``vec_lanes`` lanes, 3 stages), or ``VectorIter`` for RECIP/SQRT
(one element at a time), then ``VectorWriter`` (pack to ``tout`` words, or reduce).
A step costs ``max(words of A, B, D)`` cycles when the ports are always ready
(measured: i8 ADD 1, i32 ADD 4, REQ i32->i8 4, EXP i8 1 / i32 4, RSUM i8 1 / i32 4),
plus a fixed 8 cycles (11 when D has 4 words per step) from acceptance to the last
write; RECIP 2 + min(k - msb(a), 30) (at most 32) and SQRT 17 cycles per element (+2
per step), 1 for a <= 0 (vector_iter.py).

D may start at A or B (in place) only if ``tout`` is not wider than ``tin``: A and B
are read a few words ahead of the writes, so a wider D could overwrite operands not
yet read.  With segments, D must not overlap the B words of later segments (the B
reader runs only a few words ahead); a reduction may write its results over A
(segment g's word D + 16 g was read before segment g ended).
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import BINARY, DType, VCfg, VFn
from hw.pe.interfaces import SramPort, VecCfgWrite, VecCmd
from hw.pe.vector_alu import VectorAlu, cfg_layout, check_arch
from hw.pe.vector_iter import VectorIter
from hw.pe.vector_stream import (
    N16_BITS,
    Reduce,
    SegmentCounter,
    VectorReader,
    VectorUnpack,
    VectorWriter,
)

__all__ = ["VectorUnit"]

RECIP_K_MAX = 62
WORD_SHIFT = 4  # log2 of the 16-byte alignment of every operand


def _in_fn(fn, fns):
    return fn.matches(*[int(f) for f in fns])


class VectorUnit(wiring.Component):
    """The vector unit of one PE (see the module docstring for the protocol)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        if arch.word_bytes != 1 << WORD_SHIFT:
            self._MustUse__silence = True
            raise ValueError(f"arch.word_bytes must be {1 << WORD_SHIFT}, not {arch.word_bytes!r}")
        self.arch = arch
        super().__init__(
            {
                "cmd": In(stream.Signature(VecCmd)),
                "cfg": In(stream.Signature(VecCfgWrite)),
                "busy": Out(1),
                "error": Out(1),
                "port_a": Out(SramPort(arch)),
                "port_b": Out(SramPort(arch)),
                "port_d": Out(SramPort(arch)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        m.submodules.reader_a = reader_a = VectorReader(arch)
        m.submodules.reader_b = reader_b = VectorReader(arch)
        m.submodules.unpack_a = unpack_a = VectorUnpack(arch)
        m.submodules.unpack_b = unpack_b = VectorUnpack(arch)
        m.submodules.alu = alu = VectorAlu(arch)
        m.submodules.iter = it = VectorIter(arch)
        m.submodules.writer = writer = VectorWriter(arch)
        wiring.connect(m, reader_a.port, wiring.flipped(self.port_a))
        wiring.connect(m, reader_b.port, wiring.flipped(self.port_b))
        wiring.connect(m, writer.port, wiring.flipped(self.port_d))
        wiring.connect(m, reader_a.words, unpack_a.words)
        wiring.connect(m, reader_b.words, unpack_b.words)
        wiring.connect(m, alu.out, writer.vec)

        cmd = Signal(VecCmd)  # the command being executed
        cfg = Signal(cfg_layout())
        self._config_registers(m, cfg)
        is_iter = _in_fn(cmd.fn, (VFn.RECIP, VFn.SQRT))
        is_reduce = _in_fn(cmd.fn, (VFn.RSUM, VFn.RMAX))
        use_b = _in_fn(cmd.fn, BINARY) & ~cmd.bscalar
        seg = cmd.seg
        segmented = (seg != 0) & (seg < cmd.n16)
        seg_len = Signal(N16_BITS)  # steps per segment (n16: a single segment)
        m.d.comb += seg_len.eq(Mux(segmented, seg, cmd.n16))
        fault = self._fault(m, cmd, seg, segmented, is_reduce)

        start = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += cmd.eq(self.cmd.payload)
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [self.busy.eq(1), self.error.eq(fault), start.eq(~fault)]
                with m.If(fault):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(writer.done):
                    m.next = "IDLE"

        m.d.comb += [
            reader_a.start.eq(start),
            reader_a.base.eq(cmd.a_addr[WORD_SHIFT:]),
            reader_a.count.eq(cmd.n16 << cmd.tin),
            reader_a.per_read.eq(1),
            reader_b.start.eq(start & use_b),
            reader_b.base.eq(cmd.b[WORD_SHIFT:]),
            reader_b.count.eq(Mux(segmented, cmd.n16, cmd.n16 << cmd.tin)),
            reader_b.per_read.eq(Mux(segmented, seg, 1)),
            unpack_a.tin.eq(cmd.tin),
            unpack_b.tin.eq(cmd.tin),
            unpack_b.bcast.eq(segmented),
            writer.start.eq(start),
            writer.base.eq(cmd.d_addr[WORD_SHIFT:]),
            writer.steps.eq(cmd.n16),
            writer.seg_len.eq(seg_len),
            writer.tout.eq(cmd.tout),
            writer.reduce.eq(
                Mux(
                    cmd.fn == VFn.RSUM, Reduce.SUM, Mux(cmd.fn == VFn.RMAX, Reduce.MAX, Reduce.NONE)
                )
            ),
            alu.fn.eq(Mux(is_iter | is_reduce, VFn.MOV, cmd.fn)),
            alu.tout.eq(Mux(is_reduce, DType.I32, cmd.tout)),
            alu.cfg.eq(cfg),
            it.sqrt.eq(cmd.fn == VFn.SQRT),
            it.k.eq(Mux(cfg[VCfg.RECIP_K][0:6] > RECIP_K_MAX, RECIP_K_MAX, cfg[VCfg.RECIP_K][0:6])),
        ]
        m.submodules.steps = steps = SegmentCounter()
        m.d.comb += [steps.start.eq(start), steps.steps.eq(cmd.n16), steps.seg_len.eq(seg_len)]
        b_last = ~segmented | steps.seg_end  # the B vector ends with this step
        self._route(m, cmd, unpack_a.vec, unpack_b.vec, it, alu.inp, is_iter, use_b, b_last)
        m.d.comb += steps.advance.eq(alu.inp.valid & alu.inp.ready)
        return m

    def _config_registers(self, m, cfg):
        m.d.comb += self.cfg.ready.eq(1)
        with m.If(self.cfg.valid):
            with m.Switch(self.cfg.payload.idx):
                for reg in VCfg:
                    with m.Case(reg):
                        m.d.sync += cfg[reg].eq(self.cfg.payload.value)

    def _fault(self, m, cmd, seg, segmented, is_reduce):
        """ADDRESS fault of the latched command (alignment and SRAM range; B, and a
        reduction's D, are nseg words when segmented)."""
        size = self.arch.sram_bytes

        def bad(addr, nbytes):
            return (addr[0:WORD_SHIFT] != 0) | (addr + nbytes > size)

        def room(addr):  # whole words from addr to the SRAM end (if addr <= size)
            return (size - addr)[WORD_SHIFT:][0 : self.arch.sram_words.bit_length()]

        n_bytes = cmd.n16 << WORD_SHIFT
        one = 1 << WORD_SHIFT
        b_bytes = Mux(segmented, one, n_bytes << cmd.tin)
        d_bytes = Mux(is_reduce, one, n_bytes << cmd.tout)
        # nseg = ceil(n16 / seg) words fit in room words iff n16 <= room * seg
        room_b, room_d = room(cmd.b), room(cmd.d_addr)
        seg_room = Mux(
            is_reduce,
            Mux(cmd.bscalar | (room_d < room_b), room_d, room_b),
            room_b,
        )
        seg_checked = segmented & (is_reduce | ~cmd.bscalar)
        fault = Signal()
        m.d.comb += fault.eq(
            bad(cmd.a_addr, n_bytes << cmd.tin)
            | (~cmd.bscalar & bad(cmd.b, b_bytes))
            | bad(cmd.d_addr, d_bytes)
            | (seg_checked & (cmd.n16 > seg_room * seg))
        )
        return fault

    def _route(self, m, cmd, vec_a, vec_b, it, alu_in, is_iter, use_b, b_last):
        """A (and B or the broadcast scalar) into the ALU, through VectorIter if iterative;
        a B vector is consumed with the step for which ``b_last`` is set."""
        lanes = self.arch.vec_lanes
        scalar = cmd.b.as_signed()
        m.d.comb += [
            it.inp.payload.eq(vec_a.payload),
            alu_in.payload.b.eq(
                Mux(use_b, vec_b.payload.as_value(), Cat(scalar for _ in range(lanes)))
            ),
        ]
        with m.If(is_iter):
            m.d.comb += [
                it.inp.valid.eq(vec_a.valid),
                vec_a.ready.eq(it.inp.ready),
                alu_in.valid.eq(it.out.valid),
                it.out.ready.eq(alu_in.ready),
                alu_in.payload.a.eq(it.out.payload),
            ]
        with m.Else():
            b_ok = vec_b.valid | ~use_b
            m.d.comb += [
                alu_in.valid.eq(vec_a.valid & b_ok),
                vec_a.ready.eq(alu_in.ready & b_ok),
                vec_b.ready.eq(alu_in.ready & vec_a.valid & use_b & b_last),
                alu_in.payload.a.eq(vec_a.payload),
            ]
