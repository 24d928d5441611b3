"""The R x C int8 MAC array with int32 accumulators (output stationary over K).

One K step multiplies an R-vector of A (one row of the transposed A tile, ``A[k][0..R)``)
with a C-vector of B (``B[k][0..C)``) and adds the R x C outer product to the
accumulators::

    acc[r][c] = (clear ? 0 : acc[r][c]) + a[r] * b[c]      (int32, wrapping)

which is ``sim.numerics.matmul_acc`` one K step at a time.

Pipeline (two stages, no stall): the operands of a step presented with ``valid``
in cycle t are registered at the end of t, accumulated at the end of t + 1, and
visible on ``acc`` from cycle t + 2 (``LATENCY``).  ``done`` is high for one
cycle, the first cycle in which ``acc`` includes a step that was presented with
``last``.  The accumulators keep their value while no step is presented, so a
later MATMUL with ``acc = 1`` continues where the previous one stopped; ``acc``
may be read at any time (the output stage and the int32 writer read it through
a row multiplexer in the MAC unit).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig

__all__ = ["MacArray", "acc_layout"]


def acc_layout(arch: ArchConfig) -> data.ArrayLayout:
    """R rows of C int32 accumulators: ``acc[r][c]``."""
    return data.ArrayLayout(data.ArrayLayout(signed(32), arch.mac_cols), arch.mac_rows)


class MacArray(wiring.Component):
    """R x C int8 multiply-accumulate array (R = arch.mac_rows, C = arch.mac_cols).

    Ports:
      a      In  R x int8   A[k][0..R) of this step
      b      In  C x int8   B[k][0..C) of this step
      valid  In  1          perform one K step with a, b
      clear  In  1          (with valid) start from zero instead of the accumulators
      last   In  1          (with valid) mark the step whose completion ``done`` reports
      acc    Out R x C x int32 accumulators
      done   Out 1          pulse: ``acc`` now includes the step marked ``last``
    """

    LATENCY = 2  # cycles from a step's valid to the accumulators that include it

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        super().__init__(
            {
                "a": In(data.ArrayLayout(signed(8), arch.mac_rows)),
                "b": In(data.ArrayLayout(signed(8), arch.mac_cols)),
                "valid": In(1),
                "clear": In(1),
                "last": In(1),
                "acc": Out(acc_layout(arch)),
                "done": Out(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        rows, cols = self.arch.mac_rows, self.arch.mac_cols

        # Stage 1: operand registers (cut the SRAM/FIFO mux path from the multipliers).
        a_q = Signal.like(self.a)
        b_q = Signal.like(self.b)
        valid_q = Signal()
        clear_q = Signal()
        last_q = Signal()
        m.d.sync += [
            valid_q.eq(self.valid),
            clear_q.eq(self.clear),
            last_q.eq(self.last),
        ]
        with m.If(self.valid):
            m.d.sync += [a_q.eq(self.a), b_q.eq(self.b)]

        # Stage 2: R x C multiply-accumulate, int32 wrapping.
        with m.If(valid_q):
            for r in range(rows):
                for c in range(cols):
                    acc = self.acc[r][c]
                    m.d.sync += acc.eq(Mux(clear_q, 0, acc) + a_q[r] * b_q[c])
        m.d.sync += self.done.eq(valid_q & last_q)
        return m
