"""MATMUL's row-major A (field ``alda``) and the fused VOP EXPB in the simulators.

docs/isa.md "Row-major A" and "EXPB": the reference simulator against numpy written
here (A given as R rows; EXPB as SUB then EXP, two ``sim.numerics`` calls), operand
footprints, ADDRESS faults at the exact limit, the performance model's costs, the
assembler and the random program generator.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.arch import ArchConfig, preset
from hw.asm import assemble, disassemble
from hw.errors import EncodingError
from hw.image import ProgramImage
from hw.isa import DType, Op, PeError, VCfg, VFn, decode, encode, qparam_layout
from sim import numerics
from sim.footprint import footprint, matmul_a_end, matmul_a_ranges
from sim.pe_sim import PeSim
from sim.perf import PerfSim
from sim.progen import random_program
from tests.sim.test_vop_seg import assert_perf_ends_like_pesim

TINY = preset("tiny")
SMALL = preset("small")
EXP_CFG = {
    VCfg.EXP_QLN2: 700,
    VCfg.EXP_INV_MULT: 1500,
    VCfg.EXP_INV_SHIFT: 20,
    VCfg.EXP_QB: 650,
    VCfg.EXP_QC: -40000,
}


def run(text: str, sram=(), arch=TINY, limit=100_000):
    pe = PeSim(arch)
    pe.load(ProgramImage(assemble(text + "\nhalt\n"), list(sram)))
    return pe, pe.run(limit)


def qparams(arch, rng) -> tuple[bytes, dict]:
    """A QLOAD block with random per-column parameters, and its values."""
    c, lay = arch.mac_cols, qparam_layout(arch.mac_cols)
    block = bytearray(lay["total"][1])
    q = {
        "bias": rng.integers(-5000, 5000, c),
        "mult": rng.integers(1 << 20, 1 << 30, c),
        "shift": rng.integers(28, 36, c),
        "zp": int(rng.integers(-5, 5)),
        "lo": -128,
        "hi": 127,
    }
    for key in ("bias", "mult"):
        off = lay[key][0]
        block[off : off + 4 * c] = q[key].astype("<i4").tobytes()
    off = lay["shift"][0]
    block[off : off + c] = q["shift"].astype(np.uint8).tobytes()
    off = lay["clamp"][0]
    block[off : off + 3] = np.array([q["zp"], q["lo"], q["hi"]], np.int8).tobytes()
    return bytes(block), q


SHAPES = [(4, 16), (8, 8), (1, 16), (16, 4), (2, 8)]


@pytest.mark.parametrize("r,c", SHAPES)
def test_row_major_a_matmul_equals_numpy(r, c):
    arch = ArchConfig(name=f"t{r}x{c}", mac_rows=r, mac_cols=c, sram_bytes=32768)
    seed = 910 + 10 * r + c
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    bank = arch.bank_bytes
    for case in range(6):
        k16 = int(rng.integers(1, 5))
        k = 16 * k16
        alda = k16 + int(rng.integers(0, 3)) * (case % 2)
        a_addr, b_addr, c_addr, q_addr = 0, bank, 2 * bank, 3 * bank
        rows = rng.integers(-128, 128, (r, 16 * alda), dtype=np.int64).astype(np.int8)
        bm = rng.integers(-128, 128, (k, c), dtype=np.int64).astype(np.int8)
        block, q = qparams(arch, rng)
        out32 = case % 3 == 0
        row = 4 * c if out32 else c
        ldc = row + (16 if out32 else c) * int(rng.integers(0, 2))
        text = f"""
            li x1, {a_addr}
            li x2, {b_addr}
            li x3, {c_addr}
            li x4, {q_addr}
            qload 0(x4)
            matmul rs1=x1, rs2=x2, rs3=x3, k16={k16}, ldc={ldc}, out32={int(out32)}, alda={alda}
        """
        pe, _ = run(text, [(a_addr, rows.tobytes()), (b_addr, bm.tobytes()), (q_addr, block)], arch)
        assert not pe.error, pe.error
        acc = numerics.matmul_acc(rows[:, :k].T, bm, None)
        if out32:
            want = acc.astype("<i4").view(np.uint8)
        else:
            want = numerics.output_stage(
                acc, q["bias"], q["mult"], q["shift"], q["zp"], q["lo"], q["hi"]
            ).view(np.uint8)
        got = np.stack([pe.sram[c_addr + i * ldc : c_addr + i * ldc + row] for i in range(r)])
        assert np.array_equal(got, want.reshape(r, row)), (case, k16, alda)


def test_row_major_and_transposed_a_accumulate_alike():
    """acc chains may mix the layouts: the same operand either way, the same sums."""
    arch, r, c = SMALL, SMALL.mac_rows, SMALL.mac_cols
    rng = np.random.default_rng(77)
    print("seed 77")
    k = 64
    p = rng.integers(-128, 128, (r, k), dtype=np.int64).astype(np.int8)  # R rows of K
    bm = rng.integers(-128, 128, (2 * k, c), dtype=np.int64).astype(np.int8)
    text = """
        li x1, 0
        li x5, 4096
        li x2, 32768
        li x6, 33792
        li x3, 65536
        matmul rs1=x1, rs2=x2, rs3=x3, k16=4, ldc=64, out32=1, noout=1, alda=4
        matmul rs1=x5, rs2=x6, rs3=x3, k16=4, ldc=64, out32=1, acc=1
    """
    sram = [(0, p.tobytes()), (4096, np.ascontiguousarray(p.T).tobytes()), (32768, bm.tobytes())]
    pe, _ = run(text, sram, arch)
    assert not pe.error
    want = numerics.matmul_acc(p.T, bm[:k], None) + numerics.matmul_acc(p.T, bm[k:], None)
    got = pe.sram[65536 : 65536 + r * 4 * c].view("<i4").reshape(r, c)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("alda", [2, 3])
def test_row_major_a_address_limit(alda):
    """A ends at a + 16*alda*(R-1) + K: that end at sram_bytes is fine, 16 more faults."""
    arch = TINY
    r, k16 = arch.mac_rows, 2
    end = matmul_a_end(0, 16 * k16, r, alda)
    assert end == 16 * alda * (r - 1) + 32
    for a, ok in ((arch.sram_bytes - end, True), (arch.sram_bytes - end + 16, False)):
        text = f"""
            li x1, {a}
            li x2, 0
            matmul rs1=x1, rs2=x2, rs3=x0, k16={k16}, ldc={arch.mac_cols}, noout=1, alda={alda}
        """
        pe, _ = run(text)
        assert pe.error == (PeError.NONE if ok else PeError.ADDRESS), (a, pe.error)
    # the transposed layout's limit is K*R: a row-major A of the same K reaches further
    assert matmul_a_end(0, 32, r, 0) == 32 * r


def test_row_major_a_footprint_is_the_rows():
    arch, r = SMALL, SMALL.mac_rows
    ins = decode(encode(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=2, ldc=16, noout=1, alda=8))
    regs = {1: 0x1000, 2: 0x8000, 3: 0}
    fp = footprint(ins, lambda i: regs.get(i, 0), arch)
    rows = [(0x1000 + 128 * i, 0x1000 + 128 * i + 32) for i in range(r)]
    assert matmul_a_ranges(0x1000, 32, r, 8) == rows
    assert list(fp.reads) == [*rows, (0x8000, 0x8000 + 32 * arch.mac_cols)]
    assert fp.writes == []
    # contiguous rows (alda = k16) merge into one range
    ins = decode(encode(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=2, ldc=16, noout=1, alda=2))
    fp = footprint(ins, lambda i: regs.get(i, 0), arch)
    assert fp.reads[0] == (0x1000, 0x1000 + 32 * r)


def test_alda_in_assembly_and_encoding():
    word = encode(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=4, ldc=16, alda=1023)
    assert decode(word)["alda"] == 1023
    text = disassemble([word])
    assert "alda=1023" in text
    assert assemble(text) == [word]
    # alda = 0 is left out, as the flags are: old programs disassemble as before
    old = encode(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=4, ldc=16)
    assert "alda" not in disassemble([old])
    with pytest.raises(EncodingError, match="alda"):
        encode(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=4, ldc=16, alda=1024)


def test_row_major_a_costs_r_minus_1_more_on_the_perf_model():
    """The same words are read in another order; the first K step waits for one word
    of each of the R rows (hw/pe/mac_arow.py): R - 1 cycles more per MATMUL."""
    arch = SMALL

    def cycles(alda: int) -> int:
        text = f"""
            li x1, 0
            li x2, 32768
            li x3, 65536
            matmul rs1=x1, rs2=x2, rs3=x3, k16=8, ldc=64, out32=1, alda={alda}
            matmul rs1=x1, rs2=x2, rs3=x3, k16=8, ldc=64, out32=1, alda={alda}
            halt
        """
        sim = PerfSim(arch)
        sim.load((0, 0), ProgramImage(assemble(text), []))
        return sim.run(10**6).cycles

    assert cycles(8) == cycles(0) + 2 * (arch.mac_rows - 1)


# -- EXPB ------------------------------------------------------------------------------


def exp_cfg() -> np.ndarray:
    cfg = np.zeros(len(VCfg), np.int64)
    for c, v in EXP_CFG.items():
        cfg[c] = v
    return cfg


def test_expb_is_sub_then_exp_in_numerics():
    seed = 515
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = exp_cfg()
    lo, hi = -(2**31), 2**31 - 1
    a = rng.integers(lo, hi + 1, 4096, dtype=np.int64)
    b = rng.integers(lo, hi + 1, 4096, dtype=np.int64)
    a[:6] = [lo, hi, lo, hi, 0, -5]  # a - b saturates both ways
    b[:6] = [hi, lo, 1, -1, 0, 10]
    small = rng.integers(-3000, 3000, 4096)
    for x, y in ((a, b), (small, rng.integers(-3000, 3000, 4096))):
        for tout in DType:
            d = numerics.vector_elementwise(VFn.SUB, x, y, DType.I32, cfg)
            want = numerics.vector_elementwise(VFn.EXP, d, None, tout, cfg)
            got = numerics.vector_elementwise(VFn.EXPB, x, y, tout, cfg)
            assert np.array_equal(got, want), tout


@pytest.mark.parametrize("seg,bscalar", [(0, 0), (2, 0), (0, 1), (3, 0)])
def test_expb_vop_equals_sub_and_exp_vops(seg, bscalar):
    """One EXPB VOP on the reference simulator writes what SUB then EXP write."""
    seed = 520 + seg + 10 * bscalar
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n16 = 6
    a = rng.integers(-5000, 2000, 16 * n16, dtype=np.int64).astype("<i4")
    b = rng.integers(-3000, 3000, 16 * n16, dtype=np.int64).astype("<i4")
    cfg = "\n".join(f"vcfg x0, cfg={c.name.lower()}, imm={v}" for c, v in EXP_CFG.items())
    bs = f"bscalar={bscalar}"
    head = f"{cfg}\nli x1, 0\nli x2, 8192\nli x3, 16384\nli x4, 24576\n"
    if bscalar:
        head += "li x2, -1234\n"
    fused = (
        head + f"vop rd=x3, rs1=x1, rs2=x2, n16={n16}, fn=expb, tin=i32, tout=i32, {bs}, seg={seg}"
    )
    split = head + (
        f"vop rd=x4, rs1=x1, rs2=x2, n16={n16}, fn=sub, tin=i32, tout=i32, {bs}, seg={seg}\n"
        f"vop rd=x3, rs1=x4, rs2=x0, n16={n16}, fn=exp, tin=i32, tout=i32"
    )
    sram = [(0, a.tobytes()), (8192, b.tobytes())]
    pf, _ = run(fused, sram, TINY)
    ps, _ = run(split, sram, TINY)
    assert not pf.error and not ps.error
    n = 4 * 16 * n16
    assert np.array_equal(pf.sram[16384 : 16384 + n], ps.sram[16384 : 16384 + n])
    assert np.any(pf.sram[16384 : 16384 + n])


@pytest.mark.parametrize("seed", range(6))
def test_random_programs_with_the_new_features_run_alike_on_pesim_and_perf(seed):
    """``segments=True`` programs also draw row-major MATMULs and EXPB VOPs: the
    performance model ends in the reference simulator's state."""
    print(f"seed {seed}")
    image, _ = random_program(SMALL, seed, nowait=seed % 2 == 1, segments=True)
    assert_perf_ends_like_pesim(SMALL, image)


def test_random_programs_draw_the_new_features():
    seen = {"alda": 0, "expb": 0}
    for seed in range(12):
        image, _ = random_program(SMALL, seed, segments=True)
        for w in image.imem:
            ins = decode(w)
            seen["alda"] += ins.op == Op.MATMUL and ins["alda"] > 0
            seen["expb"] += ins.op == Op.VOP and ins["fn"] == VFn.EXPB
    assert seen["alda"] > 3 and seen["expb"] > 3, seen
