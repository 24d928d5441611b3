"""The controller's hardware-loop stack and address-stride slots.

``arch.loop_depth`` levels of (start, end, remaining) and, per level,
``arch.loop_strides`` stride slots (register, stride), all cleared by
``clear``.  The stack works on the pc of the instruction in the execute stage
(``epc``):

* ``iter_end`` (combinational): ``epc`` is the last body instruction of the
  innermost loop.  When that instruction completes (``step``), the loop either
  goes back (``back`` high, ``back_pc`` = first body instruction, remaining
  count minus one) or, on its last iteration, pops.  The controller feeds
  ``back_pc`` straight to the instruction-memory address, so a back-edge costs
  no cycle.
* ``push`` (with ``push_end``, ``push_count`` > 0) enters a loop whose body is
  ``epc + 1 .. push_end``.  The controller checks room and nesting first.
* ``stride_rd`` / ``stride_imm``: the slots of the innermost level, including
  an LSTRIDE written in this very cycle (``ls_*``), to be added at the end of
  an iteration (``X[rd] += imm``, slot register 0 meaning no-op).
"""

from __future__ import annotations

from amaranth import Array, Elaboratable, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import IMM, LSTRIDE_LEVEL, LSTRIDE_SLOT, RD

__all__ = ["LoopStack"]


class LoopStack(wiring.Component):
    def __init__(self, arch: ArchConfig, pc_bits: int):
        if not isinstance(pc_bits, int) or pc_bits < 1:
            raise ValueError(f"pc_bits must be a positive integer, not {pc_bits!r}")
        self.arch = arch
        self.pc_bits = pc_bits
        n_slots = arch.loop_strides
        super().__init__(
            {
                "clear": In(1),
                "epc": In(pc_bits),
                "step": In(1),
                "push": In(1),
                "push_end": In(pc_bits),
                "push_count": In(32),
                "ls_we": In(1),
                "ls_level": In(LSTRIDE_LEVEL.width),
                "ls_slot": In(LSTRIDE_SLOT.width),
                "ls_rd": In(RD.width),
                "ls_imm": In(IMM.width),
                "depth": Out(range(arch.loop_depth + 1)),
                "top_end": Out(pc_bits),
                "iter_end": Out(1),
                "back": Out(1),
                "back_pc": Out(pc_bits),
                "stride_rd": Out(RD.width).array(n_slots),
                "stride_imm": Out(IMM.width).array(n_slots),
            }
        )

    def elaborate(self, platform) -> Elaboratable:
        m = Module()
        arch = self.arch
        levels = range(arch.loop_depth)
        pcb = self.pc_bits
        start = Array(Signal(pcb, name=f"start{i}") for i in levels)
        end = Array(Signal(pcb, name=f"end{i}") for i in levels)
        remaining = Array(Signal(32, name=f"remaining{i}") for i in levels)
        slot_rd = Array(
            Array(Signal(RD.width, name=f"slot{i}_{s}_rd") for s in range(arch.loop_strides))
            for i in levels
        )
        slot_imm = Array(
            Array(Signal(IMM.width, name=f"slot{i}_{s}_imm") for s in range(arch.loop_strides))
            for i in levels
        )

        depth = self.depth
        top = Signal(range(arch.loop_depth), name="top")
        m.d.comb += [
            top.eq(depth - 1),
            self.top_end.eq(end[top]),
            self.iter_end.eq((depth != 0) & (self.epc == end[top])),
            self.back.eq(self.iter_end & (remaining[top] > 1)),
            self.back_pc.eq(start[top]),
        ]
        for s in range(arch.loop_strides):
            bypass = self.ls_we & (self.ls_level == top) & (self.ls_slot == s)
            with m.If(bypass):
                m.d.comb += [self.stride_rd[s].eq(self.ls_rd), self.stride_imm[s].eq(self.ls_imm)]
            with m.Else():
                m.d.comb += [
                    self.stride_rd[s].eq(slot_rd[top][s]),
                    self.stride_imm[s].eq(slot_imm[top][s]),
                ]

        with m.If(self.ls_we):
            m.d.sync += [
                slot_rd[self.ls_level][self.ls_slot].eq(self.ls_rd),
                slot_imm[self.ls_level][self.ls_slot].eq(self.ls_imm),
            ]
        with m.If(self.push):
            m.d.sync += [
                start[depth].eq(self.epc + 1),
                end[depth].eq(self.push_end),
                remaining[depth].eq(self.push_count),
                depth.eq(depth + 1),
            ]
        with m.Elif(self.step & self.iter_end):
            with m.If(self.back):
                m.d.sync += remaining[top].eq(remaining[top] - 1)
            with m.Else():
                m.d.sync += depth.eq(depth - 1)
        with m.If(self.clear):
            m.d.sync += depth.eq(0)
            for i in levels:
                for s in range(arch.loop_strides):
                    m.d.sync += [slot_rd[i][s].eq(0), slot_imm[i][s].eq(0)]
        return m
