"""VOP segments (the VOP ``seg`` field) and REQB on the VectorUnit, against sim.numerics.

The jobs, the SRAM model and the runner are those of test_vector_unit.py: ``ref_vop``
computes D segment by segment (``numerics.segments``: one reduction per segment, one
B value per segment for the binary functions), ``rtl_run`` runs the unit.  Seeds are
fixed and printed.  docs/isa.md "Segments".
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pe_top import E
from test_pe_top import rtl_run as pe_run
from test_vector_unit import (
    A_ADDR,
    B_ADDR,
    D_ADDR,
    SIZE,
    WB,
    Job,
    check,
    make_job,
    rand_values,
    realistic_cfg,
    ref_vop,
    rtl_run,
)

from hw.isa import BINARY, REDUCTIONS, V_SEG, DType, Op, VFn
from sim.numerics import NP_DTYPE

SEG_MAX = (1 << V_SEG.width) - 1
TYPE_PAIRS = [(tin, tout) for tin in DType for tout in DType]
UNARY = [VFn.MOV, VFn.REQ, VFn.EXP, VFn.ABS, VFn.RECIP]


def seg_values(n16: int) -> list[int]:
    """0, 1, 3 (last segment shorter unless 3 divides n16), n16 - 1, n16, > n16, max."""
    return [0, 1, 3, n16 - 1, n16, n16 + 5, SEG_MAX]


def _jobs(rng, fns, pairs, cfg) -> list[Job]:
    """Every fn x type pair, the seg values taken in turn so that each fn sees all."""
    jobs = []
    for fn in fns:
        for i, (tin, tout) in enumerate(pairs):
            n16 = int(rng.choice([5, 7, 8]))
            seg = seg_values(n16)[(i + int(fn)) % len(seg_values(n16))]
            jobs.append(make_job(rng, fn, tin, tout, n16, cfg, seg=seg))
    return jobs


@pytest.mark.parametrize("group", ["binary", "binary-scalar", "unary", "reduce"])
def test_segmented_random(group):
    seed = {"binary": 4000, "binary-scalar": 4001, "unary": 4002, "reduce": 4003}[group]
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    cfg = realistic_cfg(0.05)
    binary = sorted(BINARY)
    if group == "binary":
        jobs = _jobs(rng, binary, TYPE_PAIRS, cfg)
    elif group == "binary-scalar":  # bscalar: seg changes nothing for elementwise VOPs
        jobs = [
            make_job(rng, fn, tin, tin, 7, cfg, bscalar=True, seg=seg)
            for fn in binary
            for tin, seg in zip(DType, (1, 3, 6), strict=True)
        ]
    elif group == "unary":
        jobs = _jobs(rng, UNARY[:-1], TYPE_PAIRS, cfg)
        jobs += [make_job(rng, VFn.RECIP, DType.I32, DType.I32, 3, cfg, seg=1)]
    else:
        pairs = [(tin, DType.I32) for tin in DType]
        jobs = [
            make_job(rng, fn, tin, tout, n16, cfg, seg=seg)
            for fn in sorted(REDUCTIONS)
            for tin, tout in pairs
            for n16 in (7,)
            for seg in seg_values(n16)
        ]
    assert {j.seg for j in jobs if j.segmented} >= {1, 3}
    check(jobs, rtl_run(jobs, seed))


def test_reqb_per_segment_multiplier():
    """REQB's multiplier is b: per segment, per element, or the scalar; i32 -> i8."""
    seed = 4010
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    cfg = {1: 31, 2: -3, 3: -128, 4: 127}  # SHIFT, ZP, LO, HI (MULT 0: unused)
    n16 = 6
    jobs = []
    for seg in (0, 2, 5):
        job = make_job(rng, VFn.REQB, DType.I32, DType.I8, n16, cfg, seg=seg)
        job.b = rng.integers(1 << 20, 1 << 31, size=len(job.b)).astype(np.int64)
        jobs.append(job)
    jobs.append(make_job(rng, VFn.REQB, DType.I32, DType.I8, n16, cfg, bscalar=True))
    jobs[-1].b = 1 << 28
    check(jobs, rtl_run(jobs, seed))


def test_segment_accumulators_restart():
    """Each segment's sum is exact and saturated on its own; maxima restart at -2**31."""
    big, small = 2**31 - 1, -(2**31)
    sums = np.concatenate(
        [np.full(32, big), np.full(32, small), np.full(16, big), np.full(16, small), [1] * 32]
    ).astype(np.int64)
    maxes = np.concatenate([np.full(32, 5), np.full(64, small), np.full(32, -7)]).astype(np.int64)
    jobs = [
        Job(VFn.RSUM, DType.I32, DType.I32, 8, sums, None, seg=2),
        Job(VFn.RSUM, DType.I32, DType.I32, 8, sums, None, seg=3),
        Job(VFn.RMAX, DType.I32, DType.I32, 8, maxes, None, seg=2),
        Job(VFn.RMAX, DType.I32, DType.I32, 8, maxes, None, seg=4),
    ]
    assert list(ref_vop(jobs[0])) == [big, small, -16, 32]
    check(jobs, rtl_run(jobs, seed=4020, ready_prob=1.0))


@pytest.mark.parametrize("ready_prob", [0.25, 0.6])
def test_segments_under_backpressure(ready_prob):
    """seg = 1 (a result word per step) with the D port mostly busy, and segmented B."""
    seed = 4030 + int(100 * ready_prob)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    cfg = realistic_cfg(0.05)
    jobs = [
        make_job(rng, VFn.RSUM, DType.I8, DType.I32, 12, cfg, seg=1),
        make_job(rng, VFn.RMAX, DType.I8, DType.I32, 12, cfg, seg=2),
        make_job(rng, VFn.SUB, DType.I8, DType.I8, 12, cfg, seg=1),
        make_job(rng, VFn.ADD, DType.I16, DType.I32, 9, cfg, seg=4),
        make_job(rng, VFn.REQB, DType.I32, DType.I8, 7, cfg, seg=3),
    ]
    check(jobs, rtl_run(jobs, seed, ready_prob=ready_prob))


def test_reduction_in_place():
    """Segment g's result goes to A's word g, which was read before (docstring)."""
    seed = 4040
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    jobs = [
        make_job(rng, fn, tin, DType.I32, 9, {}, seg=seg)
        for fn, tin, seg in [(VFn.RSUM, DType.I8, 1), (VFn.RMAX, DType.I32, 2)]
    ]
    for job in jobs:
        job.d_addr = job.a_addr
    check(jobs, rtl_run(jobs, seed, ready_prob=0.5))


def test_longest_segment():
    """seg = 2**10 - 1 (the field's largest value) over n16 = seg + 2: two segments."""
    seed = 4050
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n16 = SEG_MAX + 2
    rsum = make_job(rng, VFn.RSUM, DType.I8, DType.I32, n16, {}, seg=SEG_MAX)
    sub = make_job(rng, VFn.SUB, DType.I8, DType.I8, n16, {}, seg=SEG_MAX)
    sub.d_addr, sub.b_addr = sub.a_addr, SIZE - 2 * WB  # in place; B ends at the SRAM end
    rsum.d_addr = SIZE - 2 * WB
    check([rsum, sub], rtl_run([rsum, sub], seed, ready_prob=1.0))


# -- faults -------------------------------------------------------------------------

# (name, fn, n16, seg, bscalar, b_addr, d_addr, faults); tin = tout = i32 except for
# reductions (tout i32 always).  nseg = ceil(n16 / seg).
SEG_FAULTS = [
    ("b-edge-ok", VFn.SUB, 100, 7, False, SIZE - 15 * WB, D_ADDR, False),
    ("b-one-word-past", VFn.SUB, 100, 7, False, SIZE - 14 * WB, D_ADDR, True),
    ("b-exact-multiple-ok", VFn.SUB, 21, 7, False, SIZE - 3 * WB, D_ADDR, False),
    ("b-exact-multiple-past", VFn.SUB, 21, 7, False, SIZE - 2 * WB, D_ADDR, True),
    ("b-seg1-ok", VFn.REQB, 5, 1, False, SIZE - 5 * WB, D_ADDR, False),
    ("b-seg1-past", VFn.REQB, 5, 1, False, SIZE - 4 * WB, D_ADDR, True),
    ("b-misaligned", VFn.ADD, 4, 2, False, B_ADDR + 4, D_ADDR, True),
    ("b-at-end", VFn.ADD, 4, 2, False, SIZE, D_ADDR, True),
    ("b-wraps", VFn.ADD, 4, 2, False, 0xFFFFFFF0, D_ADDR, True),
    ("b-one-segment-full", VFn.SUB, 4, 4, False, SIZE - 4 * 4 * WB, D_ADDR, False),
    ("b-one-segment-past", VFn.SUB, 4, 4, False, SIZE - 4 * 4 * WB + WB, D_ADDR, True),
    ("b-unary-checked-ok", VFn.ABS, 9, 3, False, SIZE - 3 * WB, D_ADDR, False),
    ("b-unary-checked-past", VFn.ABS, 9, 3, False, SIZE - 2 * WB, D_ADDR, True),
    ("b-scalar-unchecked", VFn.ADD, 9, 3, True, -7, D_ADDR, False),
    ("d-reduce-ok", VFn.RSUM, 100, 7, False, B_ADDR, SIZE - 15 * WB, False),
    ("d-reduce-past", VFn.RSUM, 100, 7, False, B_ADDR, SIZE - 14 * WB, True),
    ("d-reduce-seg1-ok", VFn.RMAX, 12, 1, False, B_ADDR, SIZE - 12 * WB, False),
    ("d-reduce-seg1-past", VFn.RMAX, 12, 1, False, B_ADDR, SIZE - 11 * WB, True),
    ("reduce-b-past-d-ok", VFn.RMAX, 12, 5, False, SIZE - 2 * WB, B_ADDR, True),
    ("reduce-b-ok-d-ok", VFn.RMAX, 12, 5, False, SIZE - 3 * WB, SIZE - 6 * WB, False),
    ("d-reduce-unsegmented", VFn.RSUM, 12, 12, False, B_ADDR, SIZE - WB, False),
]


def test_segment_faults():
    seed = 4100
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    jobs = []
    for _name, fn, n16, seg, bscalar, b, d_addr, _faults in SEG_FAULTS:
        job = make_job(rng, fn, DType.I32, DType.I32, n16, {}, bscalar=bscalar, seg=seg)
        job.b_addr, job.d_addr = (0 if bscalar else b), d_addr
        if bscalar:
            job.b = b
        jobs.append(job)
    results = rtl_run(jobs, seed=seed, ready_prob=0.8)
    for (name, *_rest, faults), job, res in zip(SEG_FAULTS, jobs, results, strict=True):
        if faults:
            assert (res.error, res.cycles, res.accesses) == (1, 1, 0), name
        else:
            assert res.error == 0, name
            assert np.array_equal(res.d, ref_vop(job)), name


# -- cycle counts -------------------------------------------------------------------

CYCLE_JOBS = [  # (fn, tin, tout, n16, seg); seg 0 first, then the segmented VOP
    (VFn.RMAX, DType.I32, DType.I32, 32, 8),
    (VFn.RSUM, DType.I32, DType.I32, 32, 8),
    (VFn.SUB, DType.I32, DType.I32, 32, 8),
    (VFn.REQB, DType.I32, DType.I8, 32, 8),
    (VFn.RSUM, DType.I8, DType.I32, 32, 1),
    (VFn.SUB, DType.I8, DType.I8, 32, 1),
]


def test_segment_cycles():
    """A segmented VOP costs what the unsegmented one does (always-ready ports): the
    reduction results are written while the next segment streams in."""
    seed = 4200
    rng = np.random.default_rng(seed)
    cfg = realistic_cfg(0.05)
    jobs = [
        make_job(rng, fn, tin, tout, n16, cfg, seg=seg)
        for fn, tin, tout, n16, segs in CYCLE_JOBS
        for seg in (0, segs)
    ]
    results = rtl_run(jobs, seed=seed, ready_prob=1.0)
    check(jobs, results)
    for i, (fn, tin, tout, n16, seg) in enumerate(CYCLE_JOBS):
        plain, segmented = results[2 * i].cycles, results[2 * i + 1].cycles
        print(
            f"cycles {fn.name} {tin.name}->{tout.name} n16={n16}: "
            f"seg=0 {plain}, seg={seg} {segmented}"
        )
        assert segmented == plain, fn.name


# -- in the PE ----------------------------------------------------------------------


def _words(raw: bytes, base: int) -> dict[int, int]:
    return {base // WB + i: int.from_bytes(raw[i * WB : (i + 1) * WB], "little")
            for i in range(len(raw) // WB)}  # fmt: skip


def test_seg_field_in_the_pe():
    """The VOP's seg field reaches the vector unit (real units): RMAX over 3 rows of
    2 steps, then SUB of each row's maximum, then REQB i32 -> i8 by a per-row b."""
    seed = 4300
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    n16, seg = 6, 2
    a = rand_values(rng, DType.I32, 16 * n16)
    mult = np.array([1 << 29, 3 << 27, -(1 << 30)], dtype=np.int64)
    rmax = Job(VFn.RMAX, DType.I32, DType.I32, n16, a, None, seg=seg)
    maxes = ref_vop(rmax)
    sub = Job(VFn.SUB, DType.I32, DType.I32, n16, a, maxes, seg=seg)
    cfg = {1: 30, 2: 0, 3: -128, 4: 127}
    reqb = Job(VFn.REQB, DType.I32, DType.I8, n16, ref_vop(sub), mult, cfg, seg=seg)
    m_addr, s_addr, b_addr, r_addr = D_ADDR, D_ADDR + 0x100, D_ADDR + 0x800, D_ADDR + 0x900
    b_words = b"".join(int(v).to_bytes(4, "little", signed=True) + bytes(12) for v in mult)
    sram = _words(a.astype(np.int32).tobytes(), A_ADDR) | _words(b_words, b_addr)
    vop = dict(n16=n16, tin=DType.I32, seg=seg)
    program = [
        E(Op.LI, rd=1, imm=A_ADDR),
        E(Op.LI, rd=2, imm=m_addr),
        E(Op.LI, rd=3, imm=s_addr),
        E(Op.LI, rd=4, imm=b_addr),
        E(Op.LI, rd=5, imm=r_addr),
        E(Op.VOP, rd=2, rs1=1, rs2=1, fn=VFn.RMAX, tout=DType.I32, **vop),
        E(Op.VOP, rd=3, rs1=1, rs2=2, fn=VFn.SUB, tout=DType.I32, **vop),
    ]
    program += [E(Op.VCFG, cfg=k, rs1=0, imm=v) for k, v in cfg.items()]
    program += [
        E(Op.VOP, rd=5, rs1=3, rs2=4, fn=VFn.REQB, tout=DType.I8, **vop),
        E(Op.HALT),
    ]
    reads = [m_addr // WB + g for g in range(3)] + [r_addr // WB + i for i in range(n16)]
    rtl = pe_run(program, units={}, sram=sram, read_words=tuple(reads), max_cycles=1000)
    assert rtl["status"] == "halted"
    got_max = [rtl["words"][m_addr // WB + g] for g in range(3)]
    assert [w & 0xFFFFFFFF for w in got_max] == [int(v) & 0xFFFFFFFF for v in maxes]
    assert all(w >> 32 == 0 for w in got_max)
    raw = b"".join(rtl["words"][r_addr // WB + i].to_bytes(WB, "little") for i in range(n16))
    got = np.frombuffer(raw, dtype=NP_DTYPE[DType.I8]).astype(np.int64)
    assert np.array_equal(got, ref_vop(reqb))
