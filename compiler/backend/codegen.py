"""Instruction-building helpers shared by the lowering templates (lower*.py)."""

from __future__ import annotations

from compiler.dialects.pe_isa import InstrOp, instr
from hw.isa import Op, VCfg

__all__ = ["I", "loop", "softmax_vcfg", "drop_same_strides"]


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


_UNKNOWN = object()  # a slot set inside a loop body: its value differs by iteration


def drop_same_strides(code: list[InstrOp]) -> list[InstrOp]:
    """``code`` without the LSTRIDEs that set a stride slot to what it holds already
    (the lowering templates set every slot they use; consecutive ones often share
    strides).  Only outside loop bodies, so no body length changes; slots start
    cleared (docs/isa.md), and ``LSTRIDE x0`` clears one."""
    state: dict[tuple[int, int], object] = {}
    out: list[InstrOp] = []
    end = -1  # the last pc of the outermost loop body being passed
    for pc, op in enumerate(code):
        inside = pc <= end
        if op.OPCODE == Op.LOOP and not inside:
            end = pc + op.values()["body"]
        if op.OPCODE == Op.LSTRIDE:
            v = op.values()
            key, val = (v["level"], v["slot"]), (v["rd"], v["imm"] if v["rd"] else 0)
            if inside:
                state[key] = _UNKNOWN
            elif state.get(key, (0, 0)) == val:
                continue
            else:
                state[key] = val
        out.append(op)
    return out
