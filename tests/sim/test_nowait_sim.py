"""Decoupled units in the reference simulator (sim/pe_sim.py, sim/hazards.py,
sim/footprint.py): nowait commands, FENCE, ILLEGAL without async_units, and the
hazard checker of docs/isa.md ("Decoupled units", *Hazard rule*).

(Footprints against a byte-marking reference: tests/sim/test_footprint.py.)  The random
programs place their FENCEs with an independent static walk and must give the same
state as the blocking program, and removing any one of those FENCEs must be caught.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import (
    BINARY,
    REDUCTIONS,
    DType,
    Op,
    PeError,
    SignalMode,
    Unit,
    VFn,
    decode,
    dram_node,
    encode,
    encode_desc,
    qparam_layout,
)
from sim.footprint import Footprint, conflict, footprint
from sim.hazards import UnitHazard
from sim.network import ChipSim
from sim.pe_sim import PeSim
from sim.perf import PerfSim

TINY = preset("tiny")
# tiny: 4 x 16 MAC, 32 KiB SRAM in 4 banks of 8 KiB
A, B, C, D, Q = 0x0000, 0x2000, 0x4000, 0x6000, 0x7000
DESC = 0x7800
SETUP = f"""
li x1, {A}
li x2, {B}
li x3, {C}
li x4, {D}
li x5, {Q}
li x6, {DESC}
"""


def run(body: str, arch=TINY, sram=(), coords=(0, 0)):
    rng = np.random.default_rng(1)
    data = [(0, rng.integers(0, 256, DESC, dtype=np.uint8).tobytes()), *sram]
    pe = PeSim(arch, coords)
    pe.load(ProgramImage(assemble(SETUP + body + "\nhalt\n"), data))
    return pe, pe.run(100_000)


def hazard(body: str, **kw) -> UnitHazard:
    with pytest.raises(UnitHazard) as info:
        run(body, **kw)
    return info.value


MM = "matmul rs1=x1, rs2=x2, rs3=x3, k16=1, ldc=16"  # writes C: 4 rows of 16 bytes
VADD = "vop rd=x4, rs1=x3, rs2=x1, n16=1, fn=add, tin=i8, tout=i8"  # reads C and A


# -- hazards ------------------------------------------------------------------------------


def test_raw_vop_reads_matmul_output():
    h = hazard(f"{MM}, nowait=1\n{VADD}")
    assert (h.kind, h.unit, h.pending_pc, h.pc, h.pe) == ("RAW", Unit.MAC, 6, 7, (0, 0))
    assert h.overlap == (C, C + 16)  # the first common range: [C, C+64) and [C, C+16)
    assert h.pending_instr.op == Op.MATMUL and h.instr.op == Op.VOP
    msg = str(h)
    assert "PE (0, 0)" in msg and "pc 6" in msg and "pc 7" in msg and "0x4000" in msg
    assert "matmul" in msg and "nowait=1" in msg and "FENCE units=1" in msg


def test_war_vop_writes_matmul_input():
    h = hazard(f"{MM}, nowait=1\nvop rd=x2, rs1=x4, rs2=x4, n16=1, fn=add, tin=i8, tout=i8")
    assert h.kind == "WAR" and h.overlap == (B, B + 16)


def test_waw_and_matmul_reading_a_vop_result():
    h = hazard(f"vop rd=x3, rs1=x4, rs2=x4, n16=4, fn=mov, tin=i8, tout=i8, nowait=1\n{MM}")
    assert h.kind == "WAW" and h.unit == Unit.VEC and h.overlap == (C, C + 64)
    h = hazard(f"vop rd=x1, rs1=x4, rs2=x4, n16=1, fn=mov, tin=i8, tout=i8, nowait=1\n{MM}")
    assert h.kind == "RAW" and h.overlap == (A, A + 16)


def test_dma_reading_matmul_output_and_its_descriptor():
    # SELF copy of C (8 words) to D, then a DMA whose descriptor is the MATMUL's output
    desc = encode_desc(local=C, remote=D, count0=2, mode=SignalMode.SELF)
    sram = [(DESC, desc)]
    h = hazard(f"{MM}, nowait=1\ndma 0(x6)", sram=sram)
    assert h.kind == "RAW" and h.overlap == (C, C + 32) and h.instr.op == Op.DMA
    # the descriptor itself written by a pending VOP (a copy from DESC to C)
    h = hazard("vop rd=x3, rs1=x6, n16=3, fn=mov, tin=i8, tout=i8, nowait=1\ndma 0(x3)",
               sram=sram)  # fmt: skip
    assert h.kind == "RAW" and h.unit == Unit.VEC and h.overlap == (C, C + 48)
    # a read into the MATMUL's A operand (write of local rows)
    rd = encode_desc(local=A + 32, remote=D, count0=1, count1=2, lstride1=64, mode=0, read=1)
    h = hazard(f"{MM}, nowait=1\ndma 0(x6)", sram=[(DESC, rd)])
    assert h.kind == "WAR" and h.overlap == (A + 32, A + 48)
    # a write to DRAM reads only its local rows: A is not written
    x, y = dram_node(TINY, 0)
    wr = encode_desc(local=A, remote=D, count0=4, x0=x, y0=y, mode=SignalMode.NODE)
    pe, res = run(f"{MM}, nowait=1\ndma 0(x6)\nfence units=1", sram=[(DESC, wr)])
    assert res.halted


def test_signal_while_pending():
    h = hazard(
        "vop rd=x4, rs1=x1, rs2=x1, n16=1, fn=abs, tin=i8, tout=i8, nowait=1\n"
        "signal x0, sem=0, mode=self, count=1"
    )
    assert h.kind == "SIGNAL" and h.overlap is None and h.unit == Unit.VEC
    assert "SIGNAL at pc 7" in str(h)


def test_lw_and_sw():
    h = hazard(f"{MM}, nowait=1\nlw x7, 48(x3)")
    assert h.kind == "RAW" and h.overlap == (C + 48, C + 52)
    h = hazard(f"{MM}, nowait=1\nsw x7, 4(x1)")
    assert h.kind == "WAR" and h.overlap == (A + 4, A + 8)
    pe, res = run(f"{MM}, nowait=1\nlw x7, 0(x1)\nsw x7, 0(x4)\nlw x8, 64(x3)")
    assert res.halted  # reading an input, writing elsewhere, reading past C: fine


@pytest.mark.parametrize("units", [1, 3])
def test_fenced_versions_pass_and_match_the_blocking_program(units):
    bodies = [
        VADD,
        "vop rd=x2, rs1=x4, rs2=x4, n16=1, fn=add, tin=i8, tout=i8",
        "lw x7, 48(x3)\nsw x7, 4(x1)",
        "dma 0(x6)",
        "signal x0, sem=0, mode=self, count=1\nwait sem=0, count=1",
    ]
    sram = [(DESC, encode_desc(local=C, remote=D, count0=2, mode=SignalMode.SELF))]
    for body in bodies:
        ref, r1 = run(f"{MM}\n{body}", sram=sram)
        pe, r2 = run(f"{MM}, nowait=1\nfence units={units}\n{body}", sram=sram)
        assert r1.halted and r2.halted
        assert pe.read_sram(0, TINY.sram_bytes) == ref.read_sram(0, TINY.sram_bytes)
        assert pe.regs == ref.regs


def test_fence_of_the_wrong_unit_does_not_order():
    h = hazard(f"{MM}, nowait=1\nfence units=2\n{VADD}")
    assert h.pending_pc == 6 and h.pc == 8


def test_next_command_of_the_unit_vcfg_and_fence_clear():
    # a later MAC command orders the MATMUL; the vector unit's VOP does not
    ok = [
        f"{MM}, nowait=1\nqload 0(x5)\nlw x7, 0(x3)",
        f"{MM}, nowait=1\n{MM}, nowait=1\nfence units=1\nlw x7, 0(x3)",
        "vop rd=x4, rs1=x1, rs2=x1, n16=1, fn=abs, tin=i8, tout=i8, nowait=1\n"
        "vcfg rs1=x0, cfg=0, imm=3\nlw x7, 0(x4)",
        "vop rd=x4, rs1=x1, rs2=x1, n16=1, fn=abs, tin=i8, tout=i8, nowait=1\n"
        "vop rd=x3, rs1=x2, rs2=x2, n16=1, fn=abs, tin=i8, tout=i8\nlw x7, 0(x4)",
    ]
    for body in ok:
        pe, res = run(body)
        assert res.halted and not pe.hazards.pending, body
    h = hazard(
        f"{MM}, nowait=1\nvop rd=x4, rs1=x2, rs2=x2, n16=1, fn=abs, tin=i8, tout=i8\nlw x7, 0(x3)"
    )
    assert h.pc == 8 and h.unit == Unit.MAC


def test_both_units_pending_and_checked_against_each_other():
    body = f"{MM}, nowait=1\nvop rd=x4, rs1=x2, rs2=x2, n16=1, fn=abs, tin=i8, tout=i8, nowait=1\n"
    pe, res = run(body + "fence units=3\nlw x7, 0(x3)\nlw x7, 0(x4)")
    assert res.halted
    h = hazard(body + "fence units=1\nlw x7, 0(x4)")
    assert h.unit == Unit.VEC and h.kind == "RAW" and h.overlap == (D, D + 4)
    # the VOP itself is checked against the pending MATMUL
    h = hazard(
        f"{MM}, nowait=1\nvop rd=x4, rs1=x3, rs2=x3, n16=1, fn=abs, tin=i8, tout=i8, nowait=1"
    )
    assert h.pc == 7 and h.kind == "RAW"


def test_halt_clears_and_plain_closures_come_back():
    pe, res = run(f"{MM}, nowait=1\nlw x7, 0(x1)\nfence units=1\nlw x8, 0(x3)")
    assert res.halted and not pe.hazards.pending
    for pc in (7, 9):  # the LWs run the plain closures again: no check without pending
        assert pe._code[pc] is pe.hazards._plain[pc]
    pe, res = run(f"{MM}, nowait=1")  # HALT waits for the units
    assert res.halted and not pe.hazards.pending


def test_hazard_inside_a_loop_and_across_iterations():
    body = """
li x9, 0
loop x0, imm=3, end=e
matmul rs1=x1, rs2=x2, rs3=x3, k16=1, ldc=16, nowait=1
vop rd=x4, rs1=x1, rs2=x1, n16=1, fn=abs, tin=i8, tout=i8
e: addi x9, x9, 1
"""
    pe, res = run(body + "fence units=1\nlw x7, 0(x3)")
    assert res.halted and pe.regs[9] == 3
    h = hazard(body + "lw x7, 0(x3)")
    assert h.pending_pc == 8 and h.pc == 11


def test_fault_wins_over_hazard_and_a_faulting_nowait_is_not_pending():
    pe, res = run(f"{MM}, nowait=1\nlw x7, 2(x3)")  # misaligned: ADDRESS, no access
    assert res.error == PeError.ADDRESS and res.error_pc == 7
    pe, res = run("li x3, 0x7ff0\n" + MM + ", nowait=1")
    assert res.error == PeError.ADDRESS and res.error_pc == 7 and not pe.hazards.pending


def test_cycle_estimate_charges_two_per_nowait_command():
    _, sync = run(f"{MM}\n{VADD}\nfence units=3")
    _, asyn = run(f"{MM}, nowait=1\nfence units=1\n{VADD}, nowait=1\nfence units=3")
    k, r = 16, TINY.mac_rows
    assert sync.cycles == 6 + (k + r + 6) + 1 + 1 + 1  # LIs, MATMUL, VOP (n16*1), FENCE, HALT
    assert asyn.cycles == 6 + 2 + 1 + 2 + 1 + 1


def test_illegal_without_async_units():
    arch = dataclasses.replace(TINY, async_units=False)
    for body, pc in (
        (f"{MM}, nowait=1", 6),
        ("li x7, 1\nfence units=3", 7),
        ("qload 0(x5), nowait=1", 6),
        (f"{VADD}, nowait=1", 6),
    ):
        pe, res = run(body, arch=arch)
        assert res.error == PeError.ILLEGAL and res.error_pc == pc, body
        assert "async_units" in res.error_msg
    pe, res = run(f"{MM}\n{VADD}", arch=arch)  # blocking programs run as before
    ref, r = run(f"{MM}\n{VADD}")
    assert res.halted and r.halted and res.cycles == r.cycles
    assert pe.read_sram(0, TINY.sram_bytes) == ref.read_sram(0, TINY.sram_bytes)


def test_chipsim_and_perfsim_report_the_pe():
    img = ProgramImage(assemble(SETUP + f"{MM}, nowait=1\nlw x7, 0(x3)\nhalt"))
    chip = ChipSim(TINY)
    chip.load((1, 1), img)
    with pytest.raises(UnitHazard, match=r"PE \(1, 1\)"):
        chip.run()
    perf = PerfSim(TINY)
    perf.load((1, 0), img)
    with pytest.raises(UnitHazard, match=r"PE \(0, 0, 1, 0\)"):
        perf.run()


# -- random programs: blocking vs nowait with FENCEs where the rule needs them ------------

BUFS = [0x0400 * i for i in range(1, 14)]  # 1 KiB apart, some in each bank
QPAR = 0x6000
DESCS = 0x7000


def _random_ops(rng: random.Random, n: int):
    """(regs to set, instruction fields) pairs of a straight-line program."""
    addr = lambda: rng.choice(BUFS) + 16 * rng.randint(0, 20)  # noqa: E731
    out = []
    for _ in range(n):
        kind = rng.choices(["mm", "vop", "qload", "lw", "sw", "dma", "sig", "vcfg"],
                           [5, 5, 1, 2, 2, 2, 1, 1])[0]  # fmt: skip
        if kind == "mm":
            out32 = rng.randint(0, 1)
            f = dict(op=Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=rng.randint(1, 2), out32=out32,
                     acc=rng.randint(0, 1), noout=int(rng.random() < 0.2),
                     ldc=64 if out32 else 16 * rng.randint(1, 2))  # fmt: skip
            out.append(({1: addr(), 2: addr(), 3: addr()}, f))
        elif kind == "vop":
            fn = rng.choice([VFn.ADD, VFn.SUB, VFn.MAX, VFn.MOV, VFn.ABS, VFn.RSUM, VFn.SHL])
            tin = rng.choice(list(DType))
            tout = DType.I32 if fn in REDUCTIONS else rng.choice(list(DType))
            f = dict(op=Op.VOP, rd=4, rs1=5, rs2=6, n16=rng.randint(1, 3), fn=fn, tin=tin,
                     tout=tout, bscalar=int(fn in BINARY and rng.random() < 0.3))  # fmt: skip
            out.append(({4: addr(), 5: addr(), 6: addr() if not f["bscalar"] else 3}, f))
        elif kind == "qload":
            out.append(({7: QPAR}, dict(op=Op.QLOAD, rs1=7)))
        elif kind in ("lw", "sw"):
            f = dict(op=Op.LW, rd=9) if kind == "lw" else dict(op=Op.SW, rs2=9)
            out.append(({8: addr()}, dict(f, rs1=8, imm=4 * rng.randint(0, 3))))
        elif kind == "dma":
            out.append(({10: DESCS + 48 * rng.randint(0, 7)}, dict(op=Op.DMA, rs1=10)))
        elif kind == "sig":
            out.append(({}, dict(op=Op.SIGNAL, sem=1, mode=SignalMode.SELF, count=1)))
            out.append(({}, dict(op=Op.WAIT, sem=1, count=1)))
        else:
            out.append(({}, dict(op=Op.VCFG, cfg=0, imm=rng.randint(0, 20))))
    return out


def _descriptors(rng: random.Random) -> bytes:
    raw = b""
    for _ in range(8):
        src, dst = rng.sample(BUFS, 2)
        raw += encode_desc(local=src + 16 * rng.randint(0, 8), remote=dst, count0=rng.randint(1, 4),
                           count1=rng.randint(1, 3), lstride1=64, rstride1=80,
                           mode=SignalMode.SELF, read=rng.randint(0, 1))  # fmt: skip
    return raw


def build_program(ops, nowait_rng, arch, descs):
    """Words of the blocking program and of the nowait one with the FENCEs the hazard
    rule needs (a static walk with known registers), and the FENCE indices."""
    sync, asyn, fences = [], [], []
    regs = [0] * 16
    pending: dict[Unit, object] = {}
    prior, old_mm = None, False  # the MAC's earlier MATMUL writes still pending
    for setregs, f in ops:
        for r, v in setregs.items():
            regs[r] = v
            w = encode(Op.LI, rd=r, imm=v)
            sync.append(w)
            asyn.append(w)
        fields = {k: int(v) for k, v in f.items() if k != "op"}
        op = f["op"]
        sync.append(encode(op, **fields))
        unit = {Op.MATMUL: Unit.MAC, Op.QLOAD: Unit.MAC, Op.VOP: Unit.VEC}.get(op)
        nowait = unit is not None and nowait_rng.random() < 0.7
        ins = decode(encode(op, **fields))
        desc = None
        if op == Op.DMA:
            off = regs[10] - DESCS
            desc = descs[off : off + 48]
        fp = footprint(ins, regs.__getitem__, arch, desc)
        need = 0
        for u, pfp in pending.items():
            hit = conflict(pfp, fp) is not None
            if u == Unit.MAC and prior is not None:  # an earlier MATMUL's rows going out
                hit = hit or conflict(prior, fp) is not None
            if u != unit and (op == Op.SIGNAL or hit):
                need |= u
        if op == Op.VCFG:
            pending.pop(Unit.VEC, None)
        if need:
            fences.append(len(asyn))
            asyn.append(encode(Op.FENCE, units=need))
            for u in (Unit.MAC, Unit.VEC):
                if u & need:
                    pending.pop(u)
            if need & Unit.MAC:
                prior = None
        if unit is not None:
            old = pending.pop(unit, None)
            if unit == Unit.MAC:
                mm = op == Op.MATMUL and nowait and old is not None and old_mm
                prior = Footprint([], old.writes) if mm else None
                old_mm = op == Op.MATMUL
            if nowait:
                pending[unit] = fp
                fields["nowait"] = 1
        asyn.append(encode(op, **fields))
    halt = encode(Op.HALT)
    return sync + [halt], asyn + [halt], fences


def random_case(seed: int):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    data = nrng.integers(0, 256, DESCS, dtype=np.uint8)
    lay = qparam_layout(TINY.mac_cols)
    shift0, c = QPAR + lay["shift"][0], TINY.mac_cols
    data[shift0 : shift0 + c] = [rng.randint(8, 20) for _ in range(c)]  # sane shifts
    descs = _descriptors(rng)
    sram = [(0, data.tobytes()), (DESCS, descs)]
    sync, asyn, fences = build_program(_random_ops(rng, 40), rng, TINY, descs)
    return sram, sync, asyn, fences


def run_words(words, sram):
    pe = PeSim(TINY)
    pe.load(ProgramImage(words, sram))
    return pe, pe.run(100_000)


@pytest.mark.parametrize("seed", range(12))
def test_random_programs_nowait_equals_blocking(seed):
    print(f"seed {seed}")
    sram, sync, asyn, fences = random_case(seed)
    ref, r1 = run_words(sync, sram)
    pe, r2 = run_words(asyn, sram)
    assert r1.halted and r2.halted
    assert pe.read_sram(0, TINY.sram_bytes) == ref.read_sram(0, TINY.sram_bytes)
    assert pe.regs == ref.regs and pe.sems == ref.sems
    assert sum(1 for w in asyn if decode(w).op in (Op.MATMUL, Op.QLOAD, Op.VOP)
               and decode(w)["nowait"]) > 2  # fmt: skip
    # every FENCE the rule placed is needed: without it the checker reports the hazard
    for i in fences:
        with pytest.raises(UnitHazard) as info:
            run_words(asyn[:i] + asyn[i + 1 :], sram)
        assert info.value.pc == i  # the instruction that followed the FENCE


def test_random_programs_place_fences():
    assert sum(len(random_case(s)[3]) for s in range(12)) > 20  # the cases are not vacuous
