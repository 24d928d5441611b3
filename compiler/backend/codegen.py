"""Instruction-building helpers shared by the lowering templates (lower*.py)."""

from __future__ import annotations

from compiler.dialects.pe_isa import InstrOp, instr
from hw.isa import Op, VCfg

__all__ = ["I", "loop", "softmax_vcfg"]


def softmax_vcfg(consts: list[int]) -> dict[VCfg, int]:
    """Vector config of mapping.softmax: I-BERT i-exp constants [qln2, qb, qc] and
    the reciprocal exponent recip_k; probabilities come out as int8 codes 0..127
    of scale 2**-7 (zero point 0, so that P @ V needs no zero-point correction)."""
    qln2, qb, qc, rk = consts
    inv_shift = 30
    return {
        VCfg.EXP_QLN2: qln2,
        VCfg.EXP_INV_MULT: -(-(1 << inv_shift) // qln2),
        VCfg.EXP_INV_SHIFT: inv_shift,
        VCfg.EXP_QB: qb,
        VCfg.EXP_QC: qc,
        VCfg.RECIP_K: rk,
        VCfg.MULT: 1,
        VCfg.SHIFT: rk - 7,
        VCfg.ZP: 0,
        VCfg.LO: 0,
        VCfg.HI: 127,
    }


def I(op: Op, **f: int) -> InstrOp:  # noqa: E743 - reads like assembly
    return instr(op, **f)


def loop(count: int, body: list[InstrOp]) -> list[InstrOp]:
    if not body:
        return []
    return [I(Op.LOOP, rs1=0, body=len(body), imm=count), *body]
