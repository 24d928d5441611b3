"""Byte footprints of PE instructions (sim/footprint.py) against a byte-marking
reference written here from docs/isa.md's hazard rule, and the conflict rule."""

from __future__ import annotations

import random

import pytest

from hw.arch import preset
from hw.asm import assemble
from hw.errors import SimulationError
from hw.isa import (
    BINARY,
    REDUCTIONS,
    DType,
    Op,
    SignalMode,
    Unit,
    VFn,
    decode,
    encode,
    encode_desc,
)
from sim.footprint import conflict, footprint, ordered_units, overlap

TINY = preset("tiny")


# -- footprints against a byte-marking reference -----------------------------------


def ref_bytes(instr, regs, arch, desc=None, coords=None):
    """Sets of byte addresses read and written, from docs/isa.md's hazard rule."""
    r, c = arch.mac_rows, arch.mac_cols
    rd, wr = set(), set()
    op = instr.op
    if op == Op.MATMUL:
        k = 16 * instr["k16"]
        rd |= set(range(regs[instr["rs1"]], regs[instr["rs1"]] + k * r))
        rd |= set(range(regs[instr["rs2"]], regs[instr["rs2"]] + k * c))
        if not instr["noout"]:
            row = 4 * c if instr["out32"] else c
            for i in range(r):
                base = regs[instr["rs3"]] + i * instr["ldc"]
                wr |= set(range(base, base + row))
    elif op == Op.VOP:
        n = 16 * instr["n16"]
        fn, tin, tout = VFn(instr["fn"]), DType(instr["tin"]), DType(instr["tout"])
        rd |= set(range(regs[instr["rs1"]], regs[instr["rs1"]] + n * tin.bytes))
        if fn in BINARY and not instr["bscalar"]:
            rd |= set(range(regs[instr["rs2"]], regs[instr["rs2"]] + n * tin.bytes))
        size = 16 if fn in REDUCTIONS else n * tout.bytes
        wr |= set(range(regs[instr["rd"]], regs[instr["rd"]] + size))
    elif op == Op.DMA:
        addr = regs[instr["rs1"]] + instr["imm"]
        rd |= set(range(addr, addr + 48))
        row = 16 * desc["count0"]

        def rows(base, s1, s2):
            out = set()
            for i2 in range(desc["count2"]):
                for i1 in range(desc["count1"]):
                    a = base + i1 * s1 + i2 * s2
                    out |= set(range(a, a + row))
            return out

        local = rows(desc["local"], desc["lstride1"], desc["lstride2"])
        remote = rows(desc["remote"], desc["rstride1"], desc["rstride2"])
        (wr if desc["read"] else rd).update(local)
        if desc["mode"] == SignalMode.SELF or (
            coords is not None and (desc["x0"], desc["y0"]) == coords
        ):
            (rd if desc["read"] else wr).update(remote)
    return rd, wr


def as_set(intervals):
    out = set()
    for lo, hi in intervals:
        out |= set(range(lo, hi))
    return out


def random_desc(rng, coords_hit=False):
    c0, c1, c2 = rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 3)
    s = lambda: 16 * rng.choice([-8, -2, 0, 1, 2, 3, c0, 9])  # noqa: E731
    mode = SignalMode.SELF if rng.random() < 0.5 else SignalMode.NODE
    return {
        "local": 16 * rng.randint(40, 200), "remote": 16 * rng.randint(40, 200),
        "count0": c0, "count1": c1, "count2": c2,
        "lstride1": s(), "lstride2": s(), "rstride1": s(), "rstride2": s(),
        "mode": int(mode), "x0": 1 if coords_hit else 0, "y0": 0, "x1": 0, "y1": 0,
        "sem": 0, "read": rng.randint(0, 1), "signal": 0,
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_footprints_match_byte_reference(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    for _ in range(150):
        regs = [0] + [16 * rng.randint(0, 400) for _ in range(15)]
        kind = rng.choice(["mm", "vop", "dma", "lw"])
        desc, coords = None, None
        if kind == "mm":
            ins = decode(encode(Op.MATMUL, rs1=rng.randint(1, 15), rs2=rng.randint(1, 15),
                                rs3=rng.randint(1, 15), k16=rng.randint(1, 3),
                                out32=rng.randint(0, 1), noout=rng.randint(0, 1),
                                ldc=16 * rng.randint(0, 9)))  # fmt: skip
        elif kind == "vop":
            fn = rng.choice(list(VFn))
            tout = DType.I32 if fn in REDUCTIONS else rng.choice(list(DType))
            ins = decode(encode(Op.VOP, rd=rng.randint(1, 15), rs1=rng.randint(1, 15),
                                rs2=rng.randint(1, 15), n16=rng.randint(1, 3), fn=fn,
                                tin=rng.choice(list(DType)), tout=tout,
                                bscalar=int(fn in BINARY and rng.random() < 0.3)))  # fmt: skip
        elif kind == "dma":
            ins = decode(encode(Op.DMA, rs1=rng.randint(1, 15), imm=16 * rng.randint(0, 4)))
            desc = random_desc(rng, coords_hit=rng.random() < 0.3)
            coords = (1, 0)
        else:
            op = rng.choice([Op.LW, Op.SW])
            other = {"rd": 3} if op == Op.LW else {"rs2": 3}
            ins = decode(encode(op, rs1=rng.randint(1, 15), imm=4 * rng.randint(-4, 4), **other))
        fp = footprint(ins, regs.__getitem__, TINY, desc, coords)
        if kind == "lw":
            addr = regs[ins["rs1"]] + ins["imm"]
            want = (set(), set(range(addr, addr + 4)))
            want = want if ins.op == Op.SW else want[::-1]
        else:
            want = ref_bytes(ins, regs, TINY, desc, coords)
        assert (as_set(fp.reads), as_set(fp.writes)) == want, ins
        for part in fp:  # sorted, merged, not touching
            assert all(a[1] < b[0] for a, b in zip(part, part[1:], strict=False))
    if seed == 0:  # the encoded descriptor form equals the decoded one
        d = random_desc(rng)
        ins = decode(encode(Op.DMA, rs1=1))
        assert footprint(ins, regs.__getitem__, TINY, encode_desc(**d)) == footprint(
            ins, regs.__getitem__, TINY, d
        )
        big = dict(d, count0=1, count1=300, count2=3, lstride1=48, lstride2=-16, read=0)
        assert (
            as_set(footprint(ins, regs.__getitem__, TINY, big).reads)
            == ref_bytes(ins, regs, TINY, big)[0]
        )


def test_overlap_and_conflict_kinds():
    assert overlap([(0, 4), (10, 20)], [(4, 10)]) is None
    assert overlap([(0, 4), (10, 20)], [(3, 12)]) == (3, 4)
    cmd = footprint(decode(encode(Op.LW, rs1=1)), [0, 64].__getitem__, TINY)
    assert conflict(cmd, cmd) is None  # read after read
    w = footprint(decode(encode(Op.SW, rs1=1, rs2=2)), [0, 66, 0].__getitem__, TINY)
    assert conflict(cmd, w) == ("WAR", (66, 68))
    assert conflict(w, cmd) == ("RAW", (66, 68))
    assert conflict(w, w) == ("WAW", (66, 70))


def test_ordered_units():
    cases = {
        "fence units=1": Unit.MAC,
        "fence units=3": Unit.MAC | Unit.VEC,
        "halt": Unit.MAC | Unit.VEC,
        "vcfg rs1=x0, cfg=0, imm=0": Unit.VEC,
        "qload 0(x1), nowait=1": Unit.MAC,
        "matmul rs1=x1, rs2=x2, rs3=x3, k16=1, ldc=16": Unit.MAC,
        "vop rd=x1, rs1=x1, n16=1, fn=abs, tin=i8, tout=i8": Unit.VEC,
        "signal x0, sem=0, mode=self, count=1": Unit(0),
        "lw x1, 0(x2)": Unit(0),
    }
    for text, want in cases.items():
        assert ordered_units(decode(assemble(text)[0])) == want, text


def test_dma_footprint_needs_the_descriptor():
    with pytest.raises(SimulationError, match="descriptor"):
        footprint(decode(encode(Op.DMA, rs1=1)), [0, 64].__getitem__, TINY)
