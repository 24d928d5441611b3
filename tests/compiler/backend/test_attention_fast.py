"""The attention head's fast paths: softmax with a scratch bank, SUB fused into EXPB
and MUL into REQB, P V on P's rows (row-major A) when pipelined, else P regrouped
into blocked tiles by SELF DMA (one-MATMUL transpose), K^T and V in parts; the
per-PE serial bound of the figures (compiler/backend/pe_work.py)."""

import dataclasses

import numpy as np
import pytest

import sim.numerics as numerics
from compiler.backend import attention
from compiler.backend.compile import compile_kernel
from compiler.backend.pe_work import pe_serial, vector_cycles
from compiler.backend.qattention import compile_qattention, qattention_inputs
from compiler.errors import UnsupportedError
from hw.arch import preset
from hw.isa import DType, VCfg, VFn
from sim.perf import PerfSim


@pytest.mark.parametrize(
    "arch_name,seq,d,transpose",
    [
        ("small", 128, 64, "row-major A"),  # pipelined: P V reads P's rows, no transposes
        ("small", 20, 24, "row-major A"),  # masked keys, mask from the second 16 columns on
        ("small", 40, 16, "row-major A"),  # masked keys in the third group only
        ("tiny", 24, 40, "row-major A"),
        ("tiny", 64, 32, "row-major A"),  # 4 m tiles per PE, pipelined: no buffer may alias
        ("small-8x8mac", 36, 32, "row-major A"),
        ("small", 64, 32, "words"),  # one m tile per PE: not pipelined, blocked transpose
        ("tiny", 8, 16, "words"),
        ("small-8x8mac", 16, 16, "row-major"),  # C = 8: words are not tile rows
    ],
)
def test_attention_bit_exact(arch_name, seq, d, transpose, archs, run_isa):
    seed = 700 + seq
    print(f"seed={seed} arch={arch_name} seq={seq} d={d}")
    ck = compile_kernel("attention", archs[arch_name], seed=seed, seq=seq, d=d)
    assert ck.plan["transpose"] == transpose
    assert ck.plan["masked"] == (seq % 16 != 0)
    fig = run_isa(ck)
    assert fig["bit_exact"], fig


@pytest.mark.parametrize(
    "arch_name,seq,d",
    [("small", 384, 64), ("small", 520, 64), ("tiny", 96, 64), ("tiny", 128, 64)],
)
def test_ring_of_m_tiles_when_every_tile_does_not_fit(arch_name, seq, d, archs, run_isa):
    """The scores of every m tile would not fit beside K^T and V: the pipelined head
    keeps two m tiles of scores and probabilities and one of scratch rows (seq 520:
    masked keys too; tiny seq 128: K^T in 2 parts, so that the program fits 512
    words), bit-exact on the reference simulator."""
    seed = 800 + seq
    print(f"seed={seed} arch={arch_name} seq={seq} d={d}")
    arch = archs[arch_name]
    ck = compile_kernel("attention", arch, seed=seed, seq=seq, d=d)
    assert ck.plan["pipelined"] and ck.plan["ring"] == 2 and ck.plan["transpose"] == "row-major A"
    R, sp = arch.mac_rows, -(-seq // 16) * 16
    sizes = {b.attributes["tensor"].data: int(b.attributes["bytes"].value.data)
             for b in ck.mapped.kernel.buffers().values()}  # fmt: skip
    assert sizes["scores"] == 2 * R * sp * 4 and sizes["probabilities"] == 2 * R * sp
    assert sizes["exp(scores - row max)"] == R * sp * 4
    assert run_isa(ck)["bit_exact"]


def test_every_m_tile_scored_when_it_fits(archs):
    """seq 256 on small: the scores of all 4 m tiles fit, no ring."""
    ck = compile_kernel("attention", archs["small"], seed=1, seq=256, d=64)
    assert ck.plan["pipelined"] and ck.plan["ring"] == 0


def test_tile_stores_need_whole_words(run_isa):
    """1 x 4 MAC array, d 9: an m tile's O rows are 4 bytes (R * vp = 1 * 12 is not a
    multiple of 16), so the per-tile stores of the pipelined tail cannot be described:
    the head runs in the sequential order (random case seed 277 of the extended suite)."""
    arch = preset("tiny").replace(
        name="r1c4", mesh_cols=1, mesh_rows=3, mac_rows=1, mac_cols=4, sram_bytes=16384,
        dram_bytes=2**22,
    )  # fmt: skip
    ck = compile_kernel("attention", arch, seed=277, seq=38, d=9)
    assert not ck.plan["pipelined"]
    assert run_isa(ck)["bit_exact"]


def test_mask_only_on_the_padded_groups(archs):
    ck = compile_kernel("attention", archs["small"], seq=40, d=16)
    ops = [o for pe in ck.mapped.kernel.pes() for o in pe.body.ops if o.name == "mapping.qsoftmax"]
    assert ops and all(int(o.attributes["mask_from"].value.data) == 2 for o in ops)


def test_fused_req_equals_mul_then_req():
    """REQ with MULT = 1/sum is MUL (saturating) then REQ with MULT 1, for the softmax
    output stage attention uses (shift recip_k - 7, clamp 0..127), also where the
    product saturates."""
    seed = 31
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    consts, cfg = attention.softmax_cfg(0.01)
    qconsts, (shift, zp, lo, hi) = attention.softmax_op_consts(consts)
    e = np.concatenate([rng.integers(-(2**31), 2**31, 4000), [0, 1, 2**31 - 1, -(2**31)]])
    rec = np.concatenate([rng.integers(1, 2**31, 4000), [2**31 - 1, 1, 2**31 - 1, 2**31 - 1]])
    mul = numerics.vector_elementwise(VFn.MUL, e, rec, DType.I32, cfg)
    ref = numerics.vector_elementwise(VFn.REQ, mul, None, DType.I8, cfg)
    fused = cfg.copy()
    fused[VCfg.SHIFT], fused[VCfg.ZP], fused[VCfg.LO], fused[VCfg.HI] = shift, zp, lo, hi
    got = np.array(
        [
            numerics.vector_elementwise(VFn.REQ, np.array([x]), None, DType.I8, _mult(fused, r))[0]
            for x, r in zip(e, rec, strict=True)
        ]
    )
    assert np.array_equal(got, ref)
    assert qconsts[5] == attention.RECIP_K


def _mult(cfg, m):
    c = cfg.copy()
    c[VCfg.MULT] = m
    return c


def test_fused_req_needs_a_small_shift(monkeypatch):
    monkeypatch.setattr(attention, "softmax_vcfg", lambda c: {VCfg.SHIFT: 25, VCfg.MULT: 1})
    with pytest.raises(UnsupportedError, match="shift 25"):
        attention.softmax_op_consts([709, 1385, 1006164, 32])


def test_pe_serial_bound(archs):
    arch = archs["small"]
    ck = compile_kernel("attention", arch, seq=128, d=64)
    work = ck.plan["pe_work"]
    # 8 query rows per PE: 8 * 128 * (64 + 64) MACs on 64 MACs per cycle; 5 int32
    # passes over 1024 scores at 4 elements per cycle; 8 RECIPs of at least 2 cycles
    assert work["mac_cycles"] == 2048
    assert work["vector_cycles"] == 1024 * 5 / 4 + 8 * 2
    assert pe_serial(ck) == 2048  # decoupled units: max(MAC, vector)
    blocking = dataclasses.replace(arch, async_units=False)
    assert pe_serial(compile_kernel("attention", blocking, seq=128, d=64)) == 2048 + 1296  # the sum
    gemm = compile_kernel("gemm", arch, m=64, k=256, n=64)
    assert "pe_work" not in gemm.plan
    assert pe_serial(gemm) == gemm.macs / (arch.mac_rows * arch.mac_cols * len(gemm.images))
    # int8 passes stream 16 elements per cycle (vec_lanes), int32 ones 4 (port words)
    assert vector_cycles(arch, [("ADD", 64, 1), ("EXP", 64, 4)], {"RECIP": 1}) == 4 + 16 + 2


def test_performance_model_cycles(archs):
    """The performance model of the compiled head (sim/perf.py): 10371 cycles with the
    per-row softmax and the R-MATMUL transpose.  (The model does not charge DMA for
    SRAM banks the compute units hold, so it ranks the RTL-chosen transfers lower:
    attention_load.py.)"""
    arch = archs["small"]
    ck = compile_kernel("attention", arch, seq=128, d=64)
    sim = PerfSim(arch)
    for coords, image in ck.images.items():
        sim.load(coords, image)
    res = sim.run()
    print(f"perf cycles {res.cycles}")
    assert pe_serial(ck) < res.cycles < 8500


@pytest.mark.parametrize("arch_name", ["small", "small-8x8mac"])
def test_qattention_row_major_p(arch_name, archs, run_isa):
    """The front end's head with the softmax scratch bank; P V and the row terms read
    P's rows (row-major A, no transposes), against the interpreter's arithmetic
    (qattention_reference)."""
    seed = 88
    print(f"seed={seed} arch={arch_name}")
    t = qattention_inputs(40, 50, 24, 16, seed=seed)
    ck = compile_qattention(archs[arch_name], t)
    assert ck.plan["transpose"] == "row-major A"
    ops = [o.name for pe in ck.mapped.kernel.pes() for o in pe.body.ops]
    assert "mapping.qsoftmax" in ops
    assert not any("transpose" in o for o in ops)
    assert any(
        o.name == "mapping.matmul_at" and "alda" in o.attributes
        for pe in ck.mapped.kernel.pes()
        for o in pe.body.ops
    )
    assert run_isa(ck)["bit_exact"]


def test_qattention_pe_work(archs):
    """Scores: ADD column term, SUB row term, REQ, RMAX, SUB, EXP, RSUM, REQ (zero
    points zq 5, zk -7: both terms); outputs: ADD, SUB (zv 3), REQ; 8 RECIPs."""
    ck = compile_qattention(archs["small"], qattention_inputs(128, 128, 64, 64, seed=3))
    work = ck.plan["pe_work"]
    assert work["mac_cycles"] == 8 * 128 * 128 / 64
    assert work["vector_cycles"] == 8 * 1024 / 4 + 3 * 512 / 4 + 8 * 2
    assert pe_serial(ck) == max(2048, 2448)


def test_softmax_in_place_when_the_scratch_does_not_fit(archs, run_isa):
    """1 x 4 MAC array, 16 KiB, 3 PEs (rows of 4 bytes: no pipelined tail), seq 80:
    27 query rows of 80 keys per PE leave no room for the scratch rows; the softmax
    then runs its int32 VOPs in place, still bit-exact."""
    seed = 96
    print(f"seed={seed}")
    arch = preset("tiny").replace(
        name="r1c4", mesh_cols=1, mesh_rows=3, mac_rows=1, mac_cols=4, sram_bytes=16384,
        dram_bytes=2**22,
    )  # fmt: skip
    ck = compile_kernel("attention", arch, seed=seed, seq=80, d=16)
    assert not ck.plan["pipelined"]
    ops = [o for pe in ck.mapped.kernel.pes() for o in pe.body.ops if o.name == "mapping.qsoftmax"]
    assert ops and all("scratch" not in o.attributes for o in ops)
    assert run_isa(ck)["bit_exact"]
    roomy = compile_kernel("attention", archs["tiny"], seed=seed, seq=96, d=32)
    ops = [o for pe in roomy.mapped.kernel.pes() for o in pe.body.ops if "scratch" in o.attributes]
    assert ops


def test_pipelined_tail_order_and_bit_exact(archs, run_isa):
    """small, seq 128: 2 m tiles per PE; the softmax of tile 0 in parts between the
    score MATMULs of tile 1, the softmax of tile 1 in parts between the P V MATMULs
    of tile 0 (attention_tail.py), bit-exact on the reference simulator,
    and no FENCE between the two streams (they touch disjoint buffers)."""
    arch = archs["small"]
    ck = compile_kernel("attention", arch, seq=128, d=64)
    assert ck.plan["pipelined"]
    pe = next(iter(ck.mapped.kernel.pes()))
    R = arch.mac_rows
    seq = []
    for o in pe.body.ops:
        if o.name == "mapping.qsoftmax":
            seq.append(
                ("sm", int(o.attributes["phases"].value.data), int(o.attributes["row0"].value.data))
            )
        elif o.name in ("mapping.matmul_at", "mapping.transpose_blocked"):
            seq.append(("mm" if o.name == "mapping.matmul_at" else "tr",))
        elif o.name == "mapping.matmul_win":
            seq.append(("s", int(o.attributes["c_offset"].value.data) >= R * 4 * 128))
    # tile 0's scores part by part as K^T arrives (multicast reads), then its softmax
    # (one segmented VOP per pass: max/sub, EXP, RSUM, RECIP, REQB) with tile 1's
    # scores (one MATMUL loop per K^T part) between its parts
    assert ck.plan["parts"]["KT"] == 8
    s1 = ("s", True)
    assert seq[:8] == [("s", False)] * 8
    tr, mm = ("tr",), ("mm",)
    assert seq[8:] == [
        # shares 0-3-2-2-1 (attention_tail.TILE0_SHARES: measured on the RTL)
        ("sm", 1, 0), ("sm", 2, 0), s1, s1, s1, ("sm", 4, 0), s1, s1, ("sm", 8, 0), s1, s1,
        ("sm", 16, 0), s1,
        # tile 1's softmax parts, each but the last followed by its share of tile 0's
        # P V (on P's rows: no transposes)
        ("sm", 1, R), mm, ("sm", 2, R), mm, ("sm", 4, R), mm, ("sm", 8, R), mm,
        ("sm", 16, R),
        # the last tile's P V
        mm, mm, mm, mm,
    ]  # fmt: skip
    assert tr not in seq
    assert run_isa(ck)["bit_exact"]


def test_softmax_parts_cover_the_phases():
    from compiler.backend.attention_tail import softmax_parts
    from compiler.backend.vec_ops import SoftmaxPhase

    parts = softmax_parts(8, 4)
    assert [(int(p), r, n) for p, r, n in parts] == [
        (1, 8, 2), (1, 10, 2), (2, 8, 4), (4, 8, 4), (8, 8, 4), (16, 8, 4),
    ]  # fmt: skip
    assert sum(p for p, r, n in parts if r == 8 and n == 4) | SoftmaxPhase.PASS1 == 31
    assert softmax_parts(0, 1) == [(SoftmaxPhase.PASS1, 0, 1), *softmax_parts(0, 1)[1:]]


def test_softmax_phases_need_scratch():
    from xdsl.utils.exceptions import VerifyException

    from compiler.backend.vec_ops import QSoftmaxOp
    from compiler.dialects.mapping import task

    attrs = dict(src="@S", dst="@P", tmp="@T", rows=4, cols=16, consts=[1, 2, 3, 4, 5, 30, 8])
    with pytest.raises(VerifyException, match="need scratch"):
        task(QSoftmaxOp, phases=2, **attrs).verify()
    with pytest.raises(VerifyException, match="phases must be a mask"):
        task(QSoftmaxOp, phases=32, scratch="@E", **attrs).verify()
