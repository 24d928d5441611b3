"""VOP segments (the ``seg`` field) and REQB in the simulators (docs/isa.md "Segments").

The reference simulator (sim/pe_sim.py) against a row-by-row reference written here
(one ``sim.numerics`` call per segment), a whole softmax in six segmented VOPs against
compiler/backend/attention.py's row-by-row ``softmax_rows``, operand footprints and
ADDRESS faults with segments (sim/footprint.py), the hazard checker (sim/hazards.py)
and the performance model's costs (sim/perf_costs.py).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from compiler.backend.attention import attention_inputs, softmax_cfg, softmax_rows
from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import BINARY, REDUCTIONS, DType, Op, PeError, Unit, VCfg, VFn, decode, encode
from sim import numerics, perf_costs
from sim.footprint import footprint, segment_count, vop_operand_bytes
from sim.hazards import UnitHazard
from sim.network import ChipSim, StandInNetwork
from sim.pe_sim import PeSim
from sim.perf import PerfSim
from sim.perf_costs import segment_cycles, static_cost, vop_cost
from sim.progen import random_program

TINY = preset("tiny")  # 32 KiB SRAM in 4 banks of 8 KiB
NP = {DType.I8: "<i1", DType.I16: "<i2", DType.I32: "<i4"}
RANGE = {DType.I8: (-128, 127), DType.I16: (-(2**15), 2**15 - 1), DType.I32: (-(2**31), 2**31 - 1)}
CFG = {  # values that keep every function's results varied (as tests/sim/test_pe_sim.py)
    VCfg.MULT: 3,
    VCfg.SHIFT: 5,
    VCfg.ZP: -3,
    VCfg.LO: -20000,
    VCfg.HI: 20000,
    VCfg.EXP_QLN2: 700,
    VCfg.EXP_INV_MULT: 1500,
    VCfg.EXP_INV_SHIFT: 20,
    VCfg.EXP_QB: 650,
    VCfg.EXP_QC: -40000,
    VCfg.ERF_QB: -1200,
    VCfg.ERF_QC: 900,
    VCfg.RECIP_K: 40,
}
A, B, D = 0x0000, 0x2000, 0x4000  # banks 0, 1, 2
END = TINY.sram_bytes
bscalar_value = -7  # x2 of the VOPs with bscalar = 1


def vcfg_text(cfg) -> str:
    return "\n".join(f"vcfg x0, cfg={VCfg(c).name.lower()}, imm={int(v)}" for c, v in cfg.items())


def run(text: str, sram=(), arch=TINY, limit=100_000):
    pe = PeSim(arch)
    pe.load(ProgramImage(assemble(text + "\nhalt\n"), list(sram)))
    return pe, pe.run(limit)


def cfg_array(cfg) -> np.ndarray:
    out = np.zeros(len(VCfg), np.int64)
    for c, v in cfg.items():
        out[c] = v
    return out


# -- the row-by-row reference ------------------------------------------------------------


def ref_segments(n16: int, seg: int) -> list[tuple[int, int]]:
    """docs/isa.md: steps [g*s, min((g+1)*s, n16)) for 1 <= s < n16, else one."""
    if not 1 <= seg < n16:
        return [(0, 16 * n16)]
    return [(16 * s, 16 * min(s + seg, n16)) for s in range(0, n16, seg)]


def ref_vop_seg(fn, tin, tout, n16, seg, a, b_mem, bscalar, cfg) -> bytes:
    """D's bytes: one ``sim.numerics`` call per segment; b_mem: the bytes at B."""
    spans = ref_segments(n16, seg)
    if fn in REDUCTIONS:
        out = bytearray()
        for s, e in spans:
            out += numerics.vector_reduce(fn, a[s:e]).to_bytes(4, "little", signed=True)
            out += bytes(12)
        return bytes(out)
    res = []
    for g, (s, e) in enumerate(spans):
        b = None
        if fn in BINARY:
            if bscalar:
                b = np.int64(bscalar_value)
            elif len(spans) > 1:  # element 0 of word B + 16 g
                b = np.int64(np.frombuffer(b_mem[16 * g : 16 * g + tin.bytes], NP[tin])[0])
            else:
                b = np.frombuffer(b_mem, NP[tin]).astype(np.int64)[s:e]
        res.append(numerics.vector_elementwise(fn, a[s:e], b, tout, cfg))
    return np.concatenate(res).astype(NP[tout]).tobytes()


def test_segments_helpers():
    assert numerics.segments(8, 0) == [(0, 128)]
    assert numerics.segments(8, 8) == numerics.segments(8, 1023) == [(0, 128)]
    assert numerics.segments(8, 3) == [(0, 48), (48, 96), (96, 128)]  # the last shorter
    assert numerics.segments(3, 1) == [(0, 16), (16, 32), (32, 48)]
    for n16 in range(1, 40):
        for seg in range(0, 50):
            assert numerics.segments(n16, seg) == ref_segments(n16, seg)
            assert segment_count(n16, seg) == len(ref_segments(n16, seg))
    # operand bytes: B and a reduction's D become nseg words
    assert vop_operand_bytes(VFn.ADD, DType.I32, DType.I32, 8, 0, 3) == (512, 48, 512)
    assert vop_operand_bytes(VFn.ADD, DType.I32, DType.I32, 8, 0, 8) == (512, 512, 512)
    assert vop_operand_bytes(VFn.RSUM, DType.I8, DType.I32, 8, 0, 2) == (128, 64, 64)
    assert vop_operand_bytes(VFn.RSUM, DType.I8, DType.I32, 8, 0, 0) == (128, 128, 16)
    assert vop_operand_bytes(VFn.EXP, DType.I16, DType.I32, 8, 0, 4) == (256, 32, 512)
    assert vop_operand_bytes(VFn.REQB, DType.I32, DType.I8, 8, 1, 4) == (512, 0, 128)


SEG_CASES = [(5, 2), (6, 1), (8, 3), (4, 4), (3, 7), (7, 0)]  # (n16, seg)


@pytest.mark.parametrize("fn", list(VFn), ids=lambda f: f.name)
@pytest.mark.parametrize("tin", list(DType), ids=lambda t: t.name)
def test_segmented_vop_equals_row_by_row_reference(fn, tin):
    seed = 4000 + 10 * int(fn) + int(tin)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    lo, hi = RANGE[tin]
    for case, (n16, seg) in enumerate(SEG_CASES):
        tout = DType.I32 if fn in REDUCTIONS else DType(int(rng.integers(0, 3)))
        bscalar = int(fn in BINARY and case % 3 == 2)
        n = 16 * n16
        a = rng.integers(lo, hi + 1, n, dtype=np.int64)
        a[:4] = [lo, hi, 0, -1]
        b = rng.integers(lo, hi + 1, n, dtype=np.int64)  # enough bytes for either B
        if fn == VFn.REQB:  # multipliers that do not saturate every result
            b = rng.integers(-300, 300, n, dtype=np.int64)
        b_mem = b.astype(NP[tin]).tobytes()
        fill = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
        types = f"tin={tin.name.lower()}, tout={tout.name.lower()}"
        rs2 = f"li x2, {bscalar_value}" if bscalar else f"li x2, {B}"
        fields = f"n16={n16}, fn={fn.name.lower()}, {types}, bscalar={bscalar}, seg={seg}"
        pe, r = run(
            f"""{vcfg_text(CFG)}
            li x1, {A}
            {rs2}
            li x3, {D}
            vop rd=x3, rs1=x1, rs2=x2, {fields}
            """,
            [(A, a.astype(NP[tin]).tobytes()), (B, b_mem), (D, fill)],
        )
        assert r.halted, r
        want = ref_vop_seg(fn, tin, tout, n16, seg, a, b_mem, bscalar, cfg_array(CFG))
        got = pe.read_sram(D, 2048)
        assert got[: len(want)] == want, (n16, seg, tout, bscalar)
        assert got[len(want) :] == fill[len(want) :], "wrote past D"


def test_segments_with_one_segment_read_b_per_element():
    """seg = 0 or seg >= n16: one segment, B is n elements (as without segments)."""
    x = np.arange(64, dtype="<i4")
    y = (np.arange(64, dtype="<i4") * 7) % 11
    for seg in (0, 4, 9, 1023):
        pe, r = run(
            f"""li x1, {A}
            li x2, {B}
            li x3, {D}
            vop rd=x3, rs1=x1, rs2=x2, n16=4, fn=sub, tin=i32, tout=i32, seg={seg}""",
            [(A, x.tobytes()), (B, y.tobytes())],
        )
        assert r.halted
        assert np.array_equal(np.frombuffer(pe.read_sram(D, 256), "<i4"), x - y), seg


# -- the softmax of attention in six VOPs ------------------------------------------------


def softmax_program(rows: int, cols: int, cfg) -> tuple[str, dict]:
    n16, seg = rows * cols // 16, cols // 16
    # every VOP's operands in different banks of tiny (8 KiB each): no bank conflicts
    at = {"S": 0x0000, "X": 0x0800, "M": 0x2000, "SUM": 0x2400, "REC": 0x2800}
    at.update(E=0x4000, P=0x6000)
    rec16 = -(-rows // 4)  # the sums' words as int32 elements: 4 per word
    text = f"""{vcfg_text({c: cfg[c] for c in VCfg})}
    li x1, {at["S"]}
    li x2, {at["M"]}
    li x3, {at["E"]}
    li x4, {at["SUM"]}
    li x5, {at["REC"]}
    li x6, {at["P"]}
    li x7, {at["X"]}
    vop rd=x2, rs1=x1, n16={n16}, fn=rmax, tin=i32, tout=i32, seg={seg}
    vop rd=x3, rs1=x1, rs2=x2, n16={n16}, fn=sub, tin=i32, tout=i32, seg={seg}
    vop rd=x7, rs1=x3, n16={n16}, fn=exp, tin=i32, tout=i32, seg={seg}
    vop rd=x4, rs1=x7, n16={n16}, fn=rsum, tin=i32, tout=i32, seg={seg}
    vop rd=x5, rs1=x4, n16={rec16}, fn=recip, tin=i32, tout=i32, seg={seg}
    vop rd=x6, rs1=x7, rs2=x5, n16={n16}, fn=reqb, tin=i32, tout=i8, seg={seg}"""
    return text, at


def softmax_case(kind: str, seed: int, rows: int = 4, cols: int = 128):
    """(int32 scores, VCFG values): the attention head's own scores and scale
    (attention_inputs: peaked rows), or random scores of a scale that spreads the
    probabilities, one row constant (uniform)."""
    if kind == "attention":
        t = attention_inputs(cols, 64, seed)
        scores = numerics.matmul_acc(t["q"][:rows].T, t["k"].T).astype(np.int64)
        return scores, softmax_cfg(t["scale"])[1]
    rng = np.random.default_rng(seed)
    scores = rng.integers(-2000, 2000, (rows, cols))
    scores[-1] = int(rng.integers(-5000, 5000))
    return scores, softmax_cfg(4e-3)[1]


@pytest.mark.parametrize("kind, seed", [("attention", 11), ("random", 12), ("random", 13)])
def test_softmax_in_six_segmented_vops_equals_softmax_rows(kind, seed):
    print(f"{kind} seed {seed}")
    rows, cols = 4, 128
    scores, cfg = softmax_case(kind, seed, rows, cols)
    want = softmax_rows(scores, cfg, None)
    if kind == "random":  # a spread distribution, and a uniform row
        assert len(np.unique(want)) > 10 and len(np.unique(want[-1])) == 1
    text, at = softmax_program(rows, cols, cfg)
    sram = [(at["S"], scores.astype("<i4").tobytes())]
    pe, r = run(text, sram)
    assert r.halted, r
    got = np.frombuffer(pe.read_sram(at["P"], rows * cols), np.int8).reshape(rows, cols)
    assert np.array_equal(got, want)
    maxima = np.frombuffer(pe.read_sram(at["M"], 16 * rows), "<i4").reshape(rows, 4)
    assert np.array_equal(maxima[:, 0], scores.max(axis=1)) and not maxima[:, 1:].any()
    # ChipSim and the performance model run the same PeSim semantics
    chip = ChipSim(TINY)
    chip.load((0, 0), ProgramImage(assemble(text + "\nhalt"), sram))
    chip.run()
    assert chip.pes[(0, 0)].read_sram(at["P"], rows * cols) == got.tobytes()
    perf = PerfSim(TINY)
    perf.load((0, 0), ProgramImage(assemble(text + "\nhalt"), sram))
    perf.run()
    assert perf.chips[(0, 0)][0].endpoints[(0, 0)].read_sram(at["P"], rows * cols) == got.tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_random_segment_programs_equal_on_pesim_and_the_perf_model(seed):
    """sim/progen.py with ``segments`` (REQB, seg): the performance model (its own
    costs, the same functional PeSim closures) ends in the reference's state."""
    print(f"seed {seed}")
    image, _ = random_program(TINY, seed, nowait=seed % 2 == 1, segments=True)
    assert any(decode(w).op == Op.VOP and decode(w)["seg"] for w in image.imem)
    assert_perf_ends_like_pesim(TINY, image)


def assert_perf_ends_like_pesim(arch, image) -> None:
    """The performance model (stand-in PE on DRAM port 0) halts in the state the
    reference simulator halts in."""
    ref = PeSim(arch, (0, 0), StandInNetwork(arch, 1 << 20))
    ref.load(image)
    assert ref.run(10**6).halted
    perf = PerfSim(arch, standin=True, dram_bytes=1 << 20)
    perf.load((0, 0), image)
    res = perf.run()
    assert res.status[(0, 0, 0, 0)] == "halted"
    assert perf.chips[(0, 0)][0].endpoints[(0, 0)].state() == ref.state()


# -- footprints and ADDRESS faults -------------------------------------------------------


def ref_vop_bytes(ins, regs):
    """Byte sets read and written, from docs/isa.md's hazard rule and "Segments"."""
    fn, tin, tout = VFn(ins["fn"]), DType(ins["tin"]), DType(ins["tout"])
    n16, seg = ins["n16"], ins["seg"]
    nseg = len(ref_segments(n16, seg))
    a, b, d = regs[ins["rs1"]], regs[ins["rs2"]], regs[ins["rd"]]
    reads = set(range(a, a + 16 * n16 * tin.bytes))
    if fn in BINARY and not ins["bscalar"]:
        reads |= set(range(b, b + (16 * nseg if nseg > 1 else 16 * n16 * tin.bytes)))
    out = 16 * nseg if fn in REDUCTIONS else 16 * n16 * tout.bytes
    return reads, set(range(d, d + out))


def as_set(intervals):
    return {x for lo, hi in intervals for x in range(lo, hi)}


@pytest.mark.parametrize("seed", range(3))
def test_segmented_footprints_match_byte_reference(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    for _ in range(300):
        regs = [0] + [16 * rng.randint(0, 300) for _ in range(15)]
        fn = rng.choice(list(VFn))
        n16 = rng.randint(1, 12)
        ins = decode(encode(Op.VOP, rd=rng.randint(1, 15), rs1=rng.randint(1, 15),
                            rs2=rng.randint(1, 15), n16=n16, fn=fn,
                            tin=rng.choice(list(DType)),
                            tout=DType.I32 if fn in REDUCTIONS else rng.choice(list(DType)),
                            bscalar=int(fn in BINARY and rng.random() < 0.3),
                            seg=rng.choice([0, 1, rng.randint(1, 13), 1023])))  # fmt: skip
        fp = footprint(ins, regs.__getitem__, TINY)
        assert (as_set(fp.reads), as_set(fp.writes)) == ref_vop_bytes(ins, regs), ins


def vop_fault(line: str, regs: dict[int, int]):
    setup = "\n".join(f"li x{r}, {v}" for r, v in regs.items())
    fill = bytes(range(256)) * (END // 256)
    return run(f"{setup}\n{line}", [(0, fill)])


@pytest.mark.parametrize(
    "line, fits, past",
    [
        # binary, per-segment B (n16 = 8, seg = 3: 3 words)
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=add, tin=i32, tout=i32, seg=3", 2, END - 48),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=reqb, tin=i16, tout=i8, seg=3", 2, END - 48),
        # unary: B (3 words) is checked though not read
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=abs, tin=i8, tout=i8, seg=3", 2, END - 48),
        # a reduction: B (4 words) and D (4 words)
        ("vop rd=x3, rs1=x1, rs2=x2, n16=7, fn=rmax, tin=i8, tout=i32, seg=2", 2, END - 64),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=7, fn=rsum, tin=i8, tout=i32, seg=2", 3, END - 64),
        # one segment (seg >= n16): B is n16 * 16 * bytes(tin) again
        ("vop rd=x3, rs1=x1, rs2=x2, n16=4, fn=add, tin=i8, tout=i8, seg=4", 2, END - 64),
    ],
)
def test_segmented_operand_range_faults(line, fits, past):
    """The operand register ``fits`` ends exactly at the end of SRAM: no fault; 16
    bytes later: ADDRESS, nothing written."""
    regs = {1: 0x100, 2: 0x1000, 3: 0x3000}
    regs[fits] = past
    pe, r = vop_fault(line, regs)
    assert r.halted, r
    regs[fits] = past + 16
    pe, r = vop_fault(line, regs)
    assert (r.error, r.error_pc) == (PeError.ADDRESS, 3), r
    assert pe.read_sram(0, END) == bytes(range(256)) * (END // 256), "a faulting VOP wrote"


def test_segmented_b_must_be_aligned():
    line = "vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=exp, tin=i32, tout=i32, seg=2"
    _, r = vop_fault(line, {1: 0, 2: 0x1008, 3: 0x3000})
    assert r.error == PeError.ADDRESS
    line = line.replace("fn=exp", "fn=mul, bscalar=1")  # scalar B: not an address
    _, r = vop_fault(line, {1: 0, 2: 0x1008, 3: 0x3000})
    assert r.halted


# -- hazards -------------------------------------------------------------------------------

SETUP = f"li x1, {A}\nli x2, {B}\nli x3, {D}\nli x4, 0x6000\n"
RSUM8 = "vop rd=x2, rs1=x1, n16=32, fn=rsum, tin=i32, tout=i32, seg=8"  # 4 words at B
MM = "matmul rs1=x2, rs2=x4, rs3=x3, k16=1, ldc=16"  # reads [B, B + 64), writes D


def hazard(body: str) -> UnitHazard:
    with pytest.raises(UnitHazard) as info:
        run(SETUP + body)
    return info.value


def test_reading_a_pending_segmented_reduction_is_a_hazard():
    # the last segment's word: outside the 16 bytes of an unsegmented RSUM
    h = hazard(f"{RSUM8}, nowait=1\nlw x5, 48(x2)")
    assert (h.kind, h.unit, h.overlap) == ("RAW", Unit.VEC, (B + 48, B + 52))
    h = hazard(f"{RSUM8}, nowait=1\n{MM}")  # the MAC reads the 4 result words
    assert (h.kind, h.unit, h.overlap) == ("RAW", Unit.VEC, (B, B + 64))
    _, r = run(SETUP + f"{RSUM8}, nowait=1\nlw x5, 64(x2)")  # past the 4 words
    assert r.halted
    _, r = run(SETUP + f"{RSUM8}, nowait=1\nfence units=2\nlw x5, 48(x2)")
    assert r.halted


def test_a_vop_reading_a_pending_segmented_reduction_is_ordered():
    """The vector unit runs its commands in order: a VOP reading the words of a
    pending segmented reduction is no hazard and sees its results."""
    x = np.arange(512, dtype="<i4") - 200
    pe, r = run(
        SETUP + f"{RSUM8}, nowait=1\nvop rd=x3, rs1=x1, rs2=x2, n16=32, fn=sub, tin=i32, "
        "tout=i32, seg=8, nowait=1\nfence units=2",
        [(A, x.tobytes())],
    )
    assert r.halted
    rows = x.reshape(4, 128).astype(np.int64)
    got = np.frombuffer(pe.read_sram(D, 2048), "<i4").reshape(4, 128)
    assert np.array_equal(got, rows - rows.sum(axis=1, keepdims=True))


def test_segmented_b_footprint_in_hazards():
    sub = "vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=sub, tin=i32, tout=i32, seg=2"  # B: 4 words
    h = hazard(f"{sub}, nowait=1\nsw x0, 60(x2)")  # the last B word
    assert (h.kind, h.overlap) == ("WAR", (B + 60, B + 64))
    _, r = run(SETUP + f"{sub}, nowait=1\nsw x0, 64(x2)")  # B of seg=0 would be 512 bytes
    assert r.halted
    # a segmented VOP reading rows a pending MATMUL writes
    mm = "matmul rs1=x1, rs2=x4, rs3=x2, k16=1, ldc=16, nowait=1"  # writes [B, B + 64)
    h = hazard(f"{mm}\nvop rd=x3, rs1=x4, rs2=x2, n16=16, fn=reqb, tin=i32, tout=i8, seg=4")
    assert (h.kind, h.unit, h.overlap) == ("RAW", Unit.MAC, (B, B + 64))
    _, r = run(SETUP + f"{mm}\nvop rd=x3, rs1=x4, rs2=x1, n16=16, fn=reqb, tin=i32, seg=4")
    assert r.halted


# -- costs ---------------------------------------------------------------------------------


def cost(text: str, regs=(A, B, D)) -> int:
    c = static_cost(TINY, assemble(text)[0])
    r = [0] * 16
    r[1], r[2], r[3] = regs
    return vop_cost(c, r, TINY.bank_bytes)


@pytest.mark.parametrize(
    "fn, tin, tout, n16, want",
    [  # docs/isa.md's table: a segmented VOP costs what the unsegmented one costs
        ("sub", "i32", "i32", 32, 4 * 32 + 13),
        ("add", "i8", "i8", 32, 32 + 10),
        ("rsum", "i32", "i32", 32, 4 * 32 + 10),
        ("rmax", "i32", "i32", 32, 4 * 32 + 10),
        ("reqb", "i32", "i8", 32, 4 * 32 + 10),
        ("exp", "i32", "i32", 32, 4 * 32 + 13),
    ],
)
def test_segmented_vop_costs(fn, tin, tout, n16, want):
    text = f"vop rd=x3, rs1=x1, rs2=x2, n16={n16}, fn={fn}, tin={tin}, tout={tout}"
    assert cost(text) == want
    for seg in (1, 3, 8, n16, 1023):
        assert cost(f"{text}, seg={seg}") == want


def test_per_segment_b_in_a_shared_bank():
    """A and B in one bank serialise per step without segments (VOP_READ_CONFLICT);
    a per-segment B reads nseg words, once per segment."""
    text = "vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=add, tin=i32, tout=i32"
    assert cost(text, (0, 0x800, D)) == 77  # VOP_READ_CONFLICT[(4, 4, 4)] at n16 = 8
    assert cost(f"{text}, seg=2", (0, 0x800, D)) == 4 * 8 + 13
    # D in A's bank: the bank's accesses bound the time, plus the B words if there too
    base = cost(f"{text}, seg=2", (0, B, 0x1000))
    assert base == max(4 * 8 + 13, perf_costs.VOP_SERIAL_FIXED + 2 * 4 * 8)
    assert cost(f"{text}, seg=2", (0, 0x800, 0x1000)) == base + 4


def test_segment_cycles_is_the_one_place(monkeypatch):
    """The extra cycles of segments (0 until measured) come from VOP_SEG_FIXED and
    VOP_SEG_PER_SEGMENT only, for the functions segments change."""
    monkeypatch.setattr(perf_costs, "VOP_SEG_FIXED", 5)
    monkeypatch.setattr(perf_costs, "VOP_SEG_PER_SEGMENT", 2)
    base = "vop rd=x3, rs1=x1, rs2=x2, n16=32, tin=i32, tout=i32"
    for fn, extra in (("rsum", 5 + 2 * 4), ("sub", 5 + 2 * 4), ("exp", 0), ("recip", 0)):
        ins = decode(assemble(f"{base}, fn={fn}, seg=8")[0])
        assert segment_cycles(ins) == extra, fn
        plain = static_cost(TINY, assemble(f"{base}, fn={fn}")[0]).cycles
        assert static_cost(TINY, assemble(f"{base}, fn={fn}, seg=8")[0]).cycles == plain + extra
    ins = decode(assemble(f"{base}, fn=sub, bscalar=1, seg=8")[0])
    assert segment_cycles(ins) == 0  # a scalar B: nothing per segment
    assert segment_cycles(decode(assemble(f"{base}, fn=rsum, seg=32")[0])) == 0


def test_perf_model_times_the_softmax_by_the_cost_table():
    rows, cols = 4, 128
    scores, cfg = softmax_case("random", 12, rows, cols)
    text, at = softmax_program(rows, cols, cfg)
    sram = [(at["S"], scores.astype("<i4").tobytes())]
    perf = PerfSim(TINY)
    perf.load((0, 0), ProgramImage(assemble(text + "\nhalt"), sram))
    res = perf.run()
    pe = perf.chips[(0, 0)][0].endpoints[(0, 0)]
    sums = np.frombuffer(pe.read_sram(at["SUM"], 64), "<i4")
    k = int(cfg[VCfg.RECIP_K])
    recip = sum(
        1 if s <= 0 or (1 << k) // s > 2**31 - 1 else 2 + min(k - (int(s).bit_length() - 1), 30)
        for s in sums
    )
    n16 = rows * cols // 16
    want = (
        (4 * n16 + 10)  # RMAX
        + (4 * n16 + 13) * 2  # SUB, EXP
        + (4 * n16 + 10)  # RSUM
        + (16 + 2 + recip)  # RECIP of one step (16 elements: 4 sums and zeros)
        + (4 * n16 + 10)  # REQB
    )
    assert res.per_pe[(0, 0, 0, 0)]["compute"] == want
