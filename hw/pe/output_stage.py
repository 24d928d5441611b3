"""The MAC array's fused output stage: one row of C int32 accumulators -> C int8.

Per column c (``sim.numerics.output_stage``)::

    v = sat32(acc[c] + bias[c])
    p = v * mult[c]                                  exact 64-bit product
    r = sat32(round_shift(p, shift[c]))              half away from zero, shift 0..63
    y = clamp(r + zp, lo, hi)                        min(max(., lo), hi): hi wins

Area/speed choice: C full 32 x 32 -> 64 multipliers (one per MAC column), so a
whole row goes through per cycle and the output drain of a MATMUL is R + LATENCY
cycles, small against K.  (A single shared multiplier would cost C cycles per
row, R*C cycles per MATMUL: 64 cycles on 4 x 16, a quarter of a K = 256 MATMUL.)

Pipeline: three stages (bias + sat32; multiply; rounding shift + sat32 + zp +
clamp), one row per cycle, ``LATENCY`` = 3 cycles from input to output.  The
32 x 32 multiply is the longest stage; the third stage (a 66-bit add, a 6-level
barrel shifter, two compares and an 8-bit clamp) is shorter.  ``i`` and ``o`` are
``amaranth.lib.stream`` interfaces; the whole pipeline stalls while ``o.valid``
is high and ``o.ready`` low, and ``i.ready`` is low exactly then (so ``i.ready``
depends combinationally on ``o.ready``).  The parameters (bias .. hi) are plain
inputs that must stay stable while rows are in flight.

Rounding: the rounding shift is computed exactly in 66-bit arithmetic.  Note
that ``sim.numerics.round_shift`` computes ``x + 2**(s-1)`` in int64, which
overflows for the single input p = 2**62 (acc + bias <= -2**31, mult = -2**31)
with shift 63: numpy returns -1 where the exact result (and this RTL) is +1.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig

__all__ = ["OutputStage"]

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def _sat32(m: Module, value, name: str) -> Signal:
    out = Signal(signed(32), name=name)
    with m.If(value > I32_MAX):
        m.d.comb += out.eq(I32_MAX)
    with m.Elif(value < I32_MIN):
        m.d.comb += out.eq(I32_MIN)
    with m.Else():
        m.d.comb += out.eq(value)
    return out


def _round_shift(m: Module, x, shift, name: str) -> Signal:
    """``x / 2**shift`` rounded half away from zero (exact; x is a signed 64-bit value)."""
    half = Signal(unsigned(64), name=f"{name}_half")
    m.d.comb += half.eq((Const(1, 64) << shift) >> 1)
    nudge = Signal(signed(66), name=f"{name}_nudged")
    m.d.comb += nudge.eq(x + half - ((x < 0) & (shift != 0)))
    out = Signal(signed(66), name=name)
    m.d.comb += out.eq(nudge >> shift)
    return out


class OutputStage(wiring.Component):
    """Bias, requantize and clamp one row of C accumulators per cycle (C = arch.mac_cols).

    Ports:
      i      In  stream of C x int32 (a row of accumulators)
      o      Out stream of C x int8  (the row's output values)
      bias   In  C x int32
      mult   In  C x int32
      shift  In  C x uint6
      zp, lo, hi  In int8
    """

    LATENCY = 3

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        cols = arch.mac_cols
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(signed(32), cols))),
                "o": Out(stream.Signature(data.ArrayLayout(signed(8), cols))),
                "bias": In(data.ArrayLayout(signed(32), cols)),
                "mult": In(data.ArrayLayout(signed(32), cols)),
                "shift": In(data.ArrayLayout(unsigned(6), cols)),
                "zp": In(signed(8)),
                "lo": In(signed(8)),
                "hi": In(signed(8)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        cols = self.arch.mac_cols
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]
        v1, v2 = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [v1.eq(self.i.valid), v2.eq(v1), self.o.valid.eq(v2)]
        for c in range(cols):
            self._lane(m, c, advance)
        return m

    def _lane(self, m: Module, c: int, advance: Signal) -> None:
        s1 = Signal(signed(32), name=f"biased_{c}")
        s2 = Signal(signed(64), name=f"product_{c}")
        biased = _sat32(m, self.i.payload[c] + self.bias[c], f"biased_sat_{c}")
        shifted = _round_shift(m, s2, self.shift[c], f"rounded_{c}")
        shifted_sat = _sat32(m, shifted, f"shifted_sat_{c}")
        offset = Signal(signed(33), name=f"offset_{c}")
        lifted = Signal(signed(33), name=f"lifted_{c}")
        m.d.comb += [
            offset.eq(shifted_sat + self.zp),
            lifted.eq(Mux(offset < self.lo, self.lo, offset)),
        ]
        clamped = Mux(lifted > self.hi, self.hi, lifted)
        with m.If(advance):
            m.d.sync += [
                s1.eq(biased),
                s2.eq(s1 * self.mult[c]),
                self.o.payload[c].eq(clamped),
            ]
