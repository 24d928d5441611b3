"""EXPB (EXP of sat32(a - b)) on the VectorUnit, against sim.numerics, and its cycles.

The jobs, the SRAM model and the runner are those of test_vector_unit.py: ``ref_vop``
computes D through ``numerics.vector_elementwise`` (one B value per segment when
segmented, ``numerics.segments``), ``rtl_run`` runs the unit.  B is read like SUB's:
an operand vector of ``tin``, the scalar (``bscalar``), or one word per segment.
The last test runs EXP and EXPB VOPs on the whole PE (test_pe_top's runner) for
their cost from issue to retire.  Seeds are fixed and printed.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pe_top import E
from test_pe_top import rtl_run as pe_run
from test_vector_unit import (
    A_ADDR,
    ARCH,
    Job,
    adversarial_cfg,
    check,
    make_job,
    realistic_cfg,
    ref_vop,
    rtl_run,
)

from hw.isa import DType, Op, VFn
from sim.numerics import NP_DTYPE

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


@pytest.mark.parametrize("tin", list(DType), ids=lambda t: t.name)
def test_expb_every_form(tin):
    """Every tout, B as a vector, the scalar and one word per segment; realistic and
    adversarial configs."""
    seed = 5000 + int(tin)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    jobs = []
    for cfg in (realistic_cfg(0.05), realistic_cfg(0.002), adversarial_cfg(rng)):
        for tout in DType:
            for bscalar in (False, True):
                for seg in (0, 1, 3):
                    n16 = int(rng.choice([4, 5, 7]))
                    jobs.append(make_job(rng, VFn.EXPB, tin, tout, n16, cfg, bscalar, seg))
    assert any(j.segmented and not isinstance(j.b, int) for j in jobs)
    check(jobs, rtl_run(jobs, seed))


def test_expb_saturated_difference():
    """a - b beyond int32 both ways (i32 operands and scalars): sat32 before EXP."""
    seed = 5010
    print(f"seed={seed}")
    cfg = realistic_cfg(0.002)
    a = np.array([I32_MIN, I32_MAX, -1, -2, 0, I32_MIN, I32_MAX, 5] * 2, dtype=np.int64)
    b = np.array([I32_MAX, I32_MIN, I32_MAX, I32_MAX, I32_MIN, 1, -1, 5] * 2, dtype=np.int64)
    jobs = [
        Job(VFn.EXPB, DType.I32, DType.I32, 1, a, b, cfg),
        Job(VFn.EXPB, DType.I32, DType.I16, 1, a, I32_MAX, cfg),
        Job(VFn.EXPB, DType.I32, DType.I32, 1, a, I32_MIN, cfg),
        Job(VFn.EXPB, DType.I8, DType.I32, 1, np.clip(a, -128, 127), I32_MAX, cfg),
        # segmented: a whole segment's b at the extremes
        Job(VFn.EXPB, DType.I32, DType.I32, 2, np.concatenate([a, a]), b[:2], cfg, seg=1),
    ]
    diff = a - b
    assert diff.min() < I32_MIN and diff.max() > I32_MAX
    check(jobs, rtl_run(jobs, seed))


def test_expb_softmax_rows():
    """The softmax use: b is each row's maximum (RMAX per segment), so a - b <= 0."""
    seed = 5020
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    cfg = realistic_cfg(0.05)
    jobs = []
    for tin, n16, seg in [(DType.I8, 6, 2), (DType.I32, 6, 3), (DType.I16, 4, 4)]:
        rmax = make_job(rng, VFn.RMAX, tin, DType.I32, n16, {}, seg=seg)
        jobs.append(Job(VFn.EXPB, tin, DType.I32, n16, rmax.a, ref_vop(rmax), cfg, seg=seg))
        if not jobs[-1].segmented:  # one row: the maximum as the scalar
            jobs[-1].b = int(ref_vop(rmax)[0])
    check(jobs, rtl_run(jobs, seed))


# (tin, tout, n16, seg, bscalar); EXP's (unary) cost is the reference
CYCLE_CASES = [
    (DType.I8, DType.I8, 8, 0, False),
    (DType.I8, DType.I32, 8, 0, False),
    (DType.I16, DType.I16, 8, 0, False),
    (DType.I32, DType.I32, 2, 0, False),
    (DType.I32, DType.I32, 10, 0, False),
    (DType.I32, DType.I8, 10, 0, False),
    (DType.I32, DType.I32, 10, 0, True),
    (DType.I32, DType.I32, 10, 3, False),
    (DType.I8, DType.I8, 10, 1, False),
    (DType.I16, DType.I32, 9, 4, False),
]


def test_expb_cycles_equal_exp():
    """With always-ready ports an EXPB costs exactly the cycles of the same EXP."""
    seed = 5030
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    cfg = realistic_cfg(0.05)
    jobs = []
    for tin, tout, n16, seg, bscalar in CYCLE_CASES:
        jobs.append(make_job(rng, VFn.EXP, tin, tout, n16, cfg, seg=seg))
        jobs.append(make_job(rng, VFn.EXPB, tin, tout, n16, cfg, bscalar, seg))
    results = rtl_run(jobs, seed, ready_prob=1.0)
    check(jobs, results)
    for i, (tin, tout, n16, seg, bscalar) in enumerate(CYCLE_CASES):
        exp, expb = results[2 * i].cycles, results[2 * i + 1].cycles
        print(
            f"cycles {tin.name}->{tout.name} n16={n16} seg={seg} bscalar={bscalar}: "
            f"EXP {exp}, EXPB {expb}"
        )
        assert expb == exp, (tin.name, tout.name, n16, seg, bscalar)
    # i32 -> i32: 4 cycles per step and a fixed part
    assert results[2 * 4].cycles - results[2 * 3].cycles == 4 * 8


# -- in the PE ----------------------------------------------------------------------


def _sram_words(raw: bytes, base: int) -> dict[int, int]:
    """``raw`` at byte address ``base`` as SRAM words (word address -> value)."""
    wb = ARCH.word_bytes
    words = [raw[i : i + wb].ljust(wb, b"\0") for i in range(0, len(raw), wb)]
    return {base // wb + i: int.from_bytes(w, "little") for i, w in enumerate(words)}


def _pe_vop_cycles(job: Job, bscalar: bool) -> tuple[int, np.ndarray]:
    """Run VCFG writes and the one VOP of ``job`` on the PE (real units); the cycles
    from start to halt and D's values.  A, B and D lie in different SRAM banks unless
    ``job.b_addr`` says otherwise."""
    n16, wb = job.n16, ARCH.word_bytes
    sram = _sram_words(job.a.astype(NP_DTYPE[job.tin]).tobytes(), job.a_addr)
    if isinstance(job.b, np.ndarray):
        if job.segmented:  # one word per segment, b in element 0
            size = job.tin.bytes
            raw = b"".join(
                int(v).to_bytes(size, "little", signed=True).ljust(wb, b"\0") for v in job.b
            )
        else:
            raw = job.b.astype(NP_DTYPE[job.tin]).tobytes()
        sram |= _sram_words(raw, job.b_addr)
    b_reg = job.b if bscalar else job.b_addr
    program = [
        E(Op.LI, rd=1, imm=job.a_addr),
        E(Op.LI, rd=2, imm=b_reg),
        E(Op.LI, rd=3, imm=job.d_addr),
    ]
    program += [E(Op.VCFG, cfg=k, rs1=0, imm=v) for k, v in job.cfg.items()]
    program += [
        E(Op.VOP, rd=3, rs1=1, rs2=2, fn=job.fn, n16=n16, tin=job.tin, tout=job.tout,
          seg=job.seg, bscalar=bscalar),
        E(Op.HALT),
    ]  # fmt: skip
    d_words = tuple(job.d_addr // wb + i for i in range(n16 * job.tout.bytes))
    rtl = pe_run(program, units={}, sram=sram, read_words=d_words, max_cycles=1000)
    assert rtl["status"] == "halted"
    raw = b"".join(rtl["words"][w].to_bytes(wb, "little") for w in d_words)
    return rtl["cycles"], np.frombuffer(raw, dtype=NP_DTYPE[job.tout]).astype(np.int64)


def test_expb_cycles_in_the_pe():
    """In the PE an EXPB costs what EXP does (i32 -> i32: 4 * n16 + 13 cycles from
    issue to retire) when B is the scalar, one word per segment, or in another bank."""
    seed = 5040
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    cfg = {int(k): v for k, v in realistic_cfg(0.05).items()}
    n16 = 8
    cases = []  # (job, bscalar)
    exp = make_job(rng, VFn.EXP, DType.I32, DType.I32, n16, cfg)
    cases.append((exp, False))
    for seg, bscalar in [(0, False), (0, True), (3, False)]:
        job = make_job(rng, VFn.EXPB, DType.I32, DType.I32, n16, cfg, bscalar, seg)
        cases.append((job, bscalar))
    shared = make_job(rng, VFn.EXPB, DType.I32, DType.I32, n16, cfg)
    shared.b_addr = A_ADDR + 16 * n16 * 4  # B in A's bank: the reads take turns
    cases.append((shared, False))
    runs = [_pe_vop_cycles(job, bscalar) for job, bscalar in cases]
    for (job, bscalar), (cycles, d) in zip(cases, runs, strict=True):
        print(
            f"PE cycles {job.fn.name} seg={job.seg} bscalar={bscalar} b={job.b_addr:#x}: {cycles}"
        )
        assert np.array_equal(d, ref_vop(job)), (job.fn.name, job.seg, bscalar)
    # 3 LI, the VCFGs, the VOP, HALT and the start cycle; EXP's VOP: 4 * n16 + 13
    assert runs[0][0] == 3 + len(cfg) + (4 * n16 + 13) + 2
    assert [c for c, _ in runs[1:4]] == [runs[0][0]] * 3
    # B in A's bank costs as for SUB: A's and B's 4 + 4 words per step take turns
    assert runs[4][0] == runs[0][0] + 4 * n16
