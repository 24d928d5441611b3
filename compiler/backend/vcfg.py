"""Vector configuration hoisting: each constant VCFG once, at the start of the program.

VCFG waits until the vector unit is idle (it never changes a register under a running
VOP; docs/isa.md), so a VCFG between two nowait VOPs holds the controller for the whole
running VOP and starves the MAC array of commands meanwhile.  The planners emit the
VCFGs of an operation right before it (attention sets the EXP and REQB registers
again for every m tile), although most registers only ever take one value per program.

For every configuration register that a program sets only with ``VCFG cfg, x0, imm``
and always to the same ``imm``, and that no VOP reads before the first of those VCFGs
(in program order, so also not in an earlier iteration of a loop around it), this pass
deletes those VCFGs and sets the register once at the start of the program, where the
vector unit is idle.  Every VOP then reads the same value as before: the register holds
it from the first instruction on and nothing else writes it.  Registers set from a
register operand or to two different values keep their VCFGs.  LOOP bodies shrink by
the VCFGs deleted inside them; a program where that would empty a loop body is left
alone.
"""

from __future__ import annotations

from compiler.dialects.pe_isa import InstrOp, ProgramOp, instr
from hw.isa import Op, VCfg, VFn

__all__ = ["CONFIG_READS", "hoist_vcfg"]

_REQ = (VCfg.SHIFT, VCfg.ZP, VCfg.LO, VCfg.HI)
# The configuration registers each vector function reads (sim/numerics.py).
CONFIG_READS: dict[VFn, frozenset[VCfg]] = {
    VFn.REQ: frozenset({VCfg.MULT, *_REQ}),
    VFn.REQB: frozenset(_REQ),
    VFn.EXPB: frozenset(
        {VCfg.EXP_QLN2, VCfg.EXP_INV_MULT, VCfg.EXP_INV_SHIFT, VCfg.EXP_QB, VCfg.EXP_QC}
    ),
    VFn.EXP: frozenset(
        {VCfg.EXP_QLN2, VCfg.EXP_INV_MULT, VCfg.EXP_INV_SHIFT, VCfg.EXP_QB, VCfg.EXP_QC}
    ),
    VFn.ERF: frozenset({VCfg.ERF_QB, VCfg.ERF_QC}),
    VFn.RECIP: frozenset({VCfg.RECIP_K}),
}


def _hoistable(code: list[InstrOp]) -> dict[int, int]:
    """cfg -> imm of the registers whose VCFGs can all move to the start."""
    values: dict[int, set] = {}
    first: dict[int, int] = {}
    for pc, op in enumerate(code):
        if op.OPCODE == Op.VCFG:
            v = op.values()
            cfg = v["cfg"]
            values.setdefault(cfg, set()).add(v["imm"] if v["rs1"] == 0 else None)
            first.setdefault(cfg, pc)
    read_early: set[int] = set()
    for pc, op in enumerate(code):
        if op.OPCODE == Op.VOP:
            for cfg in CONFIG_READS.get(VFn(op.values()["fn"]), ()):
                if pc < first.get(int(cfg), -1):
                    read_early.add(int(cfg))
    return {
        cfg: next(iter(vals))
        for cfg, vals in values.items()
        if len(vals) == 1 and None not in vals and cfg not in read_early
    }


def _without(code: list[InstrOp], drop: set[int]) -> list[InstrOp] | None:
    """``code`` without the instructions at ``drop``, LOOP bodies shrunk; None if a
    loop body would become empty."""
    gone = [0] * (len(code) + 1)  # instructions dropped before pc, cumulative
    for pc in range(len(code)):
        gone[pc + 1] = gone[pc] + (pc in drop)
    out = []
    for pc, op in enumerate(code):
        if pc in drop:
            continue
        if op.OPCODE == Op.LOOP:
            values = op.values()
            last = min(pc + values["body"], len(code) - 1)
            values["body"] -= gone[last + 1] - gone[pc + 1]
            if values["body"] < 1:
                return None
            op = instr(Op.LOOP, **values)
        else:
            op = instr(op.OPCODE, **op.values())
        out.append(op)
    return out


def hoist_vcfg(programs: list[ProgramOp]) -> tuple[list[ProgramOp], dict]:
    """The programs with their constant VCFGs hoisted (also out of loops), and figures:
    ``vcfg_removed``, the VCFG instructions deleted minus the ones placed at the starts."""
    out, removed = [], 0
    for p in programs:
        code = p.instructions()
        regs = _hoistable(code)
        drop = {
            pc for pc, op in enumerate(code) if op.OPCODE == Op.VCFG and op.values()["cfg"] in regs
        }
        new = _without(code, drop) if drop else None
        if new is not None:
            start = [instr(Op.VCFG, rs1=0, cfg=c, imm=v) for c, v in sorted(regs.items())]
            new = start + new
        if new is None or [op.encode() for op in new] == [op.encode() for op in code]:
            out.append(p)
            continue
        segments = [seg.clone() for seg in p.segments()]
        out.append(ProgramOp(p.sym_name.data, p.coords, [*segments, *new]))
        removed += len(drop) - len(regs)
    return out, {"vcfg_removed": removed}
