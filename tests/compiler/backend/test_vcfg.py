"""compiler/backend/vcfg.py: constant VCFGs set once at the start of a program.

The hoisted program must leave the reference simulator in the state the original
leaves it in (an independent check of the rule), the registers the rule excludes keep
their VCFGs, and LOOP bodies shrink by the VCFGs deleted inside them.
"""

from __future__ import annotations

import numpy as np

from compiler.backend.vcfg import CONFIG_READS, hoist_vcfg
from compiler.dialects.pe_isa import ProgramOp, instr
from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import ELEMENTWISE, Op, VCfg, VFn, decode
from sim.pe_sim import PeSim

TINY = preset("tiny")


def program(text: str) -> ProgramOp:
    ops = []
    for w in assemble(text):
        ins = decode(w)
        ops.append(instr(ins.op, **dict(ins.args)))
    return ProgramOp("p", (0, 0), ops)


def words(p: ProgramOp) -> list[int]:
    return [op.encode() for op in p.instructions()]


def run(code: list[int], seed: int) -> PeSim:
    rng = np.random.default_rng(seed)
    data = rng.integers(-3000, 3000, 2048, dtype=np.int64).astype("<i4").tobytes()
    pe = PeSim(TINY)
    pe.load(ProgramImage(code, [(0, data)]))
    pe.run(100_000)
    assert not pe.error, pe.error
    return pe


EXP = """
    vcfg x0, cfg=exp_qln2, imm=700
    vcfg x0, cfg=exp_inv_mult, imm=1500
    vcfg x0, cfg=exp_inv_shift, imm=20
    vcfg x0, cfg=exp_qb, imm=650
    vcfg x0, cfg=exp_qc, imm=-40000
"""
REQ = """
    vcfg x0, cfg=shift, imm={shift}
    vcfg x0, cfg=zp, imm=0
    vcfg x0, cfg=lo, imm=-128
    vcfg x0, cfg=hi, imm=127
"""
BODY = """
    li x1, 0
    li x2, 4096
    li x3, 8192
    vop rd=x2, rs1=x1, rs2=x3, n16=4, fn=expb, tin=i32, tout=i32
    vop rd=x3, rs1=x2, rs2=x1, n16=4, fn=reqb, tin=i32, tout=i8, bscalar=1
"""


def test_repeated_constant_vcfgs_go_to_the_start():
    text = EXP + REQ.format(shift=12) + BODY + EXP + REQ.format(shift=12) + BODY + "halt\n"
    p = program(text)
    (new,), figs = hoist_vcfg([p])
    ops = new.instructions()
    n_vcfg = sum(op.OPCODE == Op.VCFG for op in ops)
    assert n_vcfg == 9 and figs == {"vcfg_removed": 9}
    assert all(op.OPCODE == Op.VCFG for op in ops[:9])  # all at the start
    assert np.array_equal(run(words(new), 1).sram, run(words(p), 1).sram)


def test_two_values_or_a_register_keep_their_vcfgs():
    text = (
        EXP + REQ.format(shift=12) + BODY + REQ.format(shift=13) + BODY
        + "li x5, 3\nvcfg x5, cfg=exp_qb, imm=600\n" + BODY + "halt\n"
    )  # fmt: skip
    p = program(text)
    (new,), _ = hoist_vcfg([p])
    kept = [op.values() for op in new.instructions() if op.OPCODE == Op.VCFG]
    # SHIFT (12, 13) and EXP_QB (from x5) stay where they were, twice / twice
    assert sum(v["cfg"] == VCfg.SHIFT for v in kept) == 2
    assert sum(v["cfg"] == VCfg.EXP_QB for v in kept) == 2
    # ZP, LO, HI (twice each, one value) now once each
    assert sum(v["cfg"] == VCfg.ZP for v in kept) == 1
    assert np.array_equal(run(words(new), 2).sram, run(words(p), 2).sram)


def test_a_register_read_before_its_first_vcfg_is_not_hoisted():
    """The EXPB before the first EXP VCFGs reads the reset values (0): moving the
    VCFGs up would change its result."""
    text = BODY + EXP + BODY + EXP + "halt\n"
    p = program(text)
    (new,), figs = hoist_vcfg([p])
    assert figs == {"vcfg_removed": 0}
    assert words(new) == words(p)


def test_loop_bodies_shrink():
    text = (
        """
        li x6, 0
        loop x6, body=9, imm=3
    """
        + EXP
        + BODY
        + "halt\n"
    )
    p = program(text)
    (new,), figs = hoist_vcfg([p])
    assert figs == {"vcfg_removed": 0}  # five deleted, five placed at the start
    loop = next(op for op in new.instructions() if op.OPCODE == Op.LOOP)
    assert loop.values()["body"] == 4  # the four instructions of BODY after li x1..
    assert np.array_equal(run(words(new), 3).sram, run(words(p), 3).sram)


def test_every_configured_function_is_listed():
    """The functions whose results depend on VCFG registers (sim/numerics.py) are the
    ones CONFIG_READS lists: changing a register changes only their results."""
    rng = np.random.default_rng(4)
    a = rng.integers(1, 3000, 64)
    b = rng.integers(1, 30, 64)
    base = np.zeros(len(VCfg), np.int64)
    base[[VCfg.SHIFT, VCfg.HI, VCfg.EXP_QLN2, VCfg.EXP_INV_MULT, VCfg.RECIP_K]] = 4, 99, 7, 9, 20
    from sim import numerics

    for fn in ELEMENTWISE:
        for reg in VCfg:
            cfg = base.copy()
            cfg[reg] += 5
            r0 = numerics.vector_elementwise(fn, a, b, numerics.DType.I32, base)
            r1 = numerics.vector_elementwise(fn, a, b, numerics.DType.I32, cfg)
            if not np.array_equal(r0, r1):
                assert reg in CONFIG_READS.get(VFn(fn), ()), (fn, reg)
