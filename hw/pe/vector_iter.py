"""The vector unit's iterative functions RECIP and SQRT, one element at a time.

``VectorIter`` takes one step (``vec_lanes`` int32 elements) on ``inp`` and returns
the results on ``out``; a single shared datapath processes the elements in order
through a shift register (load the step, then per element: compute lane 0, shift
the result in at the top), so the area is one 33-bit subtract-and-compare.

RECIP (``numerics._recip``): ``a > 0 ? min(2**k // a, 2**31-1) : 2**31-1`` with
``k = min(RECIP_K & 63, 62)`` (the vector unit passes ``k`` already clamped).  The
quotient saturates exactly when ``k >= 31 and a <= 2**(k-31)`` (found in the first
cycle); otherwise it has at most 31 bits, and its bits above ``j0 = k - msb(a)`` are
0 (``msb``: the highest set bit, a priority encoder): restoring division starts at
quotient bit ``j = min(j0, 30)`` with the partial remainder ``2**k >> (j + 1)`` and
produces bits j..0, one per cycle.  Cost: 2 + j cycles per element (at most 32: 1
cycle for a <= 0, a saturated quotient or ``a > 2**k``, whose quotient is 0).  The
softmax's reciprocals (2**30 // a row sum of about 2**22) take about 10.

SQRT (``numerics._isqrt``): ``a > 0 ? isqrt(a) : 0`` by the digit-by-digit method,
two radicand bits per cycle: 1 + 16 cycles per element (1 for a <= 0).

Stream protocol: ``inp`` is accepted when the unit is idle (the elements are copied);
``out`` holds the results until it is accepted; ``sqrt`` and ``k`` must be stable
from the acceptance of ``inp`` until ``out`` is accepted.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.pe.vector_alu import check_arch, lane_vector

__all__ = ["VectorIter"]

I32_MAX = 2**31 - 1
RECIP_BITS = 31  # quotient bits computed when the result does not saturate
SQRT_BITS = 16  # result bits of isqrt of a 31-bit radicand
K_BITS = 6


class VectorIter(wiring.Component):
    """Ports: ``inp`` In(stream of ``lane_vector``), ``out`` Out(stream of
    ``lane_vector``), ``sqrt`` In(1) (1: SQRT, 0: RECIP), ``k`` In(6) (RECIP's
    exponent, 0..62)."""

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "inp": In(stream.Signature(lane_vector(arch))),
                "out": Out(stream.Signature(lane_vector(arch))),
                "sqrt": In(1),
                "k": In(K_BITS),
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes = self.arch.vec_lanes
        elems = Signal(lane_vector(self.arch))  # operands, then results (shifted in)
        left = Signal(range(lanes + 1))  # elements still to compute
        iters = Signal(range(max(RECIP_BITS, SQRT_BITS) + 1))  # iterations to go
        rem = Signal(33)  # RECIP partial remainder, SQRT remaining radicand
        quo = Signal(32)  # RECIP quotient, SQRT root
        bit = Signal(range(RECIP_BITS))  # RECIP: dividend bit index
        one = Signal(32)  # SQRT: the current power of four
        result = Signal(32)
        finish = Signal()

        a = elems[0]
        m.d.comb += [self.inp.ready.eq((left == 0) & ~self.out.valid), self.out.payload.eq(elems)]
        with m.If(self.inp.valid & self.inp.ready):
            m.d.sync += [elems.eq(self.inp.payload), left.eq(lanes), iters.eq(0)]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)

        with m.If((left != 0) & (iters == 0)):
            self._start_element(m, a, rem, quo, bit, one, iters, result, finish)
        with m.Elif(left != 0):
            self._iterate(m, a, rem, quo, bit, one, iters, result, finish)

        with m.If(finish):
            m.d.sync += [elems.eq(Cat(elems.as_value()[32:], result)), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += self.out.valid.eq(1)
        return m

    def _start_element(self, m, a, rem, quo, bit, one, iters, result, finish):
        k = self.k
        # RECIP saturates iff 2**k // a >= 2**31, i.e. k >= 31 and a <= 2**(k-31).
        top = (Const(1, 64) << k)[RECIP_BITS:64]  # 2**k >> 31
        recip_sat = (k >= RECIP_BITS) & (a <= top)
        msb = Signal(range(32))  # highest set bit of a (a > 0 where it is used)
        for i in range(31):
            with m.If(a[i]):
                m.d.comb += msb.eq(i)
        lead = Signal(range(-32, 64))  # quotient bits above k - msb(a) are 0
        m.d.comb += lead.eq(k - msb)
        with m.If(a <= 0):
            m.d.comb += [finish.eq(1), result.eq(Mux(self.sqrt, 0, I32_MAX))]
        with m.Elif(~self.sqrt & recip_sat):
            m.d.comb += [finish.eq(1), result.eq(I32_MAX)]
        with m.Elif(~self.sqrt & (lead < 0)):  # a > 2**k: quotient 0
            m.d.comb += [finish.eq(1), result.eq(0)]
        with m.Elif(self.sqrt):
            m.d.sync += [
                rem.eq(a),
                quo.eq(0),
                one.eq(1 << (2 * SQRT_BITS - 2)),
                iters.eq(SQRT_BITS),
            ]
        with m.Elif(lead >= RECIP_BITS - 1):
            m.d.sync += [rem.eq(top), quo.eq(0), bit.eq(RECIP_BITS - 1), iters.eq(RECIP_BITS)]
        with m.Else():  # start at quotient bit lead with 2**k >> (lead + 1) = 2**(msb - 1)
            m.d.sync += [
                rem.eq((Const(1, 33) << msb) >> 1),
                quo.eq(0),
                bit.eq(lead),
                iters.eq(lead + 1),
            ]

    def _iterate(self, m, a, rem, quo, bit, one, iters, result, finish):
        m.d.sync += iters.eq(iters - 1)
        last = iters == 1
        with m.If(self.sqrt):
            trial = quo + one
            take = rem >= trial
            new_rem = Mux(take, rem - trial, rem)
            new_quo = Mux(take, (quo >> 1) + one, quo >> 1)
            m.d.sync += [rem.eq(new_rem), quo.eq(new_quo), one.eq(one >> 2)]
            m.d.comb += result.eq(new_quo)
        with m.Else():
            shifted = Cat(bit == self.k, rem)  # 2 * rem + (dividend bit)
            take = shifted >= a
            m.d.sync += [
                rem.eq(Mux(take, shifted - a, shifted)),
                quo.eq(Cat(take, quo)),
                bit.eq(bit - 1),
            ]
            m.d.comb += result.eq(Cat(take, quo))
        m.d.comb += finish.eq(last)
