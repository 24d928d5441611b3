# amaranth: UnusedElaboratable=no
"""Decoupled units on the RTL PE (docs/isa.md "Decoupled units"; docs/pe.md controller).

Programs with ``nowait`` QLOAD/MATMUL/VOP, FENCE, and the VCFG/HALT interlocks run
on the PE with its real MAC, vector and DMA units (``run`` below).  Final
registers and the SRAM bytes the program writes are compared with the reference
simulator ``sim.pe_sim.PeSim``, which executes one instruction at a time: every
program here is race-free by the hazard rule of docs/isa.md, so the sequential
result is the only correct one.  When PeSim does not know FENCE yet, FENCE words
are replaced by NOP for the reference (a FENCE has no architectural effect in a
sequential machine).  Key results are also checked against numpy directly.
Cycle counts are measured with a pc trace (``dbg_sel = DBG_PC`` every cycle).
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from test_pe_top import ARCH, FAKE_UNITS, CycleLimit, E, host_read, host_write

from hw.image import ProgramImage
from hw.isa import (
    MM_NOWAIT,
    QL_NOWAIT,
    V_NOWAIT,
    DType,
    Op,
    PeError,
    SignalMode,
    Unit,
    VCfg,
    VFn,
    decode,
    encode_desc,
    is_legal,
)
from hw.pe.pe import DBG_PC, DBG_REGS, Pe
from sim.pe_sim import PeSim

BANK = ARCH.bank_bytes
R, C = ARCH.mac_rows, ARCH.mac_cols
SYNC = dataclasses.replace(ARCH, async_units=False)
MATMUL_INT8 = 256 + R + 7  # docs/isa.md "Measured cycle costs": K + R + 7 at K = 256
MATMUL_OUT32 = 256 + R * C // 4 + 5  # K + R*C/4 + 5
NOWAIT_BITS = dict.fromkeys(Op, 0) | {
    Op.QLOAD: QL_NOWAIT.mask,
    Op.MATMUL: MM_NOWAIT.mask,
    Op.VOP: V_NOWAIT.mask,
}


# --------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------


def words_of(segs: list[tuple[int, bytes]]) -> dict[int, int]:
    out = {}
    for addr, data in segs:
        assert addr % 16 == 0 and len(data) % 16 == 0
        for i in range(len(data) // 16):
            out[addr // 16 + i] = int.from_bytes(data[16 * i : 16 * i + 16], "little")
    return out


def rtl_bytes(rtl: dict, addr: int, n: int) -> bytes:
    first, last = addr // 16, (addr + n + 15) // 16
    raw = b"".join(rtl["words"][w].to_bytes(16, "little") for w in range(first, last))
    return raw[addr - 16 * first :][:n]


def _sim_knows_fence() -> bool:
    pe = PeSim(ARCH)
    pe.load(ProgramImage([E(Op.FENCE, units=3), E(Op.HALT)]))
    try:
        return pe.run(10).status == "halted"
    except (KeyError, NotImplementedError):
        return False


SIM_FENCE = _sim_knows_fence()


def ref_program(program: list[int]) -> list[int]:
    if SIM_FENCE:
        return program
    return [E(Op.NOP) if is_legal(w) and decode(w).op == Op.FENCE else w for w in program]


def run(program, segs=(), regions=(), arch=ARCH, max_cycles=6000, units=None) -> dict:
    """Load, start and run until halted or a fault (CycleLimit past ``max_cycles``),
    recording the pc of every cycle; then read registers and ``regions`` back.

    Like ``test_pe_top.rtl_run`` with the real units, but the simulation ends when
    the testbench does (``Simulator.run``), so a short program costs a short run."""
    dut = Pe(arch, units={} if units is None else units)
    res: dict = {"trace": []}

    async def tb(ctx):
        for i, w in enumerate(program):
            await host_write(ctx, dut, True, i, w)
        for a, v in words_of(list(segs)).items():
            await host_write(ctx, dut, False, a, v)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.dbg_sel, DBG_PC)
        cycles = 1
        while not (ctx.get(dut.halted) or ctx.get(dut.error)):
            if cycles >= max_cycles:
                raise CycleLimit(f"PE neither halted nor faulted in {max_cycles} cycles")
            res["trace"].append(ctx.get(dut.dbg_data))
            await ctx.tick()
            cycles += 1
        res.update(
            status="halted" if ctx.get(dut.halted) else "fault",
            cycles=cycles,
            error=PeError(ctx.get(dut.error)),
            err_pc=ctx.get(dut.err_pc),
        )
        regs = []
        for r in range(16):
            ctx.set(dut.dbg_sel, DBG_REGS + r)
            regs.append(ctx.get(dut.dbg_data))
        res["regs"] = regs
        read = sorted({w for a, n in regions for w in range(a // 16, (a + n + 15) // 16)})
        res["words"] = {w: await host_read(ctx, dut, False, w) for w in read}

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return res


def check(program, segs=(), regions=(), **kw) -> tuple[dict, PeSim]:
    """Run on the RTL and on PeSim; registers, status and ``regions`` must agree."""
    rtl = run(program, segs, regions, **kw)
    pe = PeSim(kw.get("arch", ARCH))
    pe.load(ProgramImage(ref_program(list(program)), list(segs)))
    res = pe.run(100_000)
    assert rtl["status"] == {"halted": "halted", "error": "fault"}[res.status]
    assert rtl["error"] == res.error
    if res.status == "error":
        assert rtl["err_pc"] == res.error_pc
    assert rtl["regs"] == pe.regs
    for addr, n in regions:
        assert rtl_bytes(rtl, addr, n) == pe.read_sram(addr, n), f"SRAM [{addr:#x}, +{n})"
    return rtl, pe


def cycles_at(rtl: dict, pc: int) -> int:
    """Cycles the controller spent with ``pc`` in execute."""
    return rtl["trace"].count(pc)


def li(rd: int, value: int) -> int:
    return E(Op.LI, rd=rd, imm=value)


def rand_i8(rng, *shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def matmul_operands(rng, k: int, a_addr: int, b_addr: int):
    a = rand_i8(rng, k, R)  # the transposed A tile
    b = rand_i8(rng, k, C)
    acc = a.astype(np.int64).T @ b.astype(np.int64)
    return [(a_addr, a.tobytes()), (b_addr, b.tobytes())], acc


def qparams(rng) -> bytes:
    """A QLOAD parameter block: bias, mult, shift per column, then zp, lo, hi."""
    bias = rng.integers(-5000, 5000, size=C, dtype=np.int32)
    mult = rng.integers(1 << 20, 1 << 30, size=C, dtype=np.int32)
    shift = rng.integers(28, 40, size=C, dtype=np.uint8)
    clamp = np.array([3, -100, 100], dtype=np.int8)
    block = bias.tobytes() + mult.tobytes() + shift.tobytes() + clamp.tobytes()
    return block + bytes(-len(block) % 16)


# --------------------------------------------------------------------------------------
# Blocking programs keep their cycle counts
# --------------------------------------------------------------------------------------


def plain_program(rng):
    """QLOAD, MATMUL int8 (K = 256), VOP i8 ADD and i32 ADD, operands in separate banks."""
    a_addr, b_addr, c_addr, q_addr = 0, BANK, 2 * BANK, 2 * BANK + 0x400
    va, vb, vd = 3 * BANK, 0x1000, 2 * BANK + 0x800
    segs, _ = matmul_operands(rng, 256, a_addr, b_addr)
    segs += [(q_addr, qparams(rng)), (va, rand_i8(rng, 256).tobytes())]
    segs += [(vb, rand_i8(rng, 256).tobytes())]
    program = [
        li(1, a_addr),
        li(2, b_addr),
        li(3, c_addr),
        li(4, va),
        li(5, vb),
        li(6, vd),
        E(Op.QLOAD, rs1=0, imm=q_addr),
        E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=16, ldc=C),
        E(Op.VOP, rd=6, rs1=4, rs2=5, n16=4, fn=VFn.ADD),
        E(Op.VOP, rd=6, rs1=4, rs2=5, n16=4, fn=VFn.ADD, tin=DType.I32, tout=DType.I32),
        E(Op.HALT),
    ]
    regions = [(c_addr, R * C), (vd, 256)]
    return program, segs, regions


@pytest.mark.parametrize("arch", [ARCH, SYNC], ids=["async", "blocking_pe"])
def test_plain_program_keeps_cycle_count(arch) -> None:
    print("seed=11")
    program, segs, regions = plain_program(np.random.default_rng(11))
    rtl, _ = check(program, segs, regions, arch=arch)
    qload = 160 // 16 + 3  # docs/isa.md table: words of the block + 3
    expected = 1 + 6 + qload + MATMUL_INT8 + (4 + 10) + (4 * 4 + 13) + 1
    assert rtl["cycles"] == expected


# --------------------------------------------------------------------------------------
# Overlap: a nowait MATMUL and a VOP on disjoint banks
# --------------------------------------------------------------------------------------


def overlap_program(nowait: int, vop_first: bool):
    """MATMUL out32 K = 256 (A bank 0, B bank 1, C bank 0 after A) and a VOP i32
    ADD-scalar n16 = 32 (A bank 3, D bank 2); then FENCE both, HALT."""
    rng = np.random.default_rng(5)
    a_addr, b_addr, c_addr = 0, BANK, 0x1000
    va, vd = 3 * BANK, 2 * BANK
    segs, acc = matmul_operands(rng, 256, a_addr, b_addr)
    vec = rng.integers(-(2**30), 2**30, size=512, dtype=np.int32)
    segs.append((va, vec.tobytes()))
    mm = E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=16, out32=1, ldc=4 * C, nowait=nowait)
    vop = E(Op.VOP, rd=5, rs1=4, rs2=6, n16=32, fn=VFn.ADD, tin=2, tout=2, bscalar=1)
    vop |= V_NOWAIT.mask * nowait
    setup = [li(1, a_addr), li(2, b_addr), li(3, c_addr), li(4, va), li(5, vd), li(6, -7)]
    body = [vop, mm] if vop_first else [mm, vop]
    program = setup + body + [E(Op.FENCE, units=Unit.MAC | Unit.VEC), E(Op.HALT)]
    regions = [(c_addr, 4 * R * C), (vd, 4 * 512)]
    want = {
        c_addr: acc.astype("<i4").tobytes(),
        vd: (vec.astype(np.int64) - 7).astype("<i4").tobytes(),
    }
    return program, segs, regions, want


@pytest.mark.parametrize("vop_first", [False, True], ids=["mm_first", "vop_first"])
def test_overlap_disjoint_banks(vop_first: bool) -> None:
    print("seed=5")
    runs = {}
    for nowait in (0, 1):
        program, segs, regions, want = overlap_program(nowait, vop_first)
        rtl, _ = check(program, segs, regions)
        for addr, data in want.items():
            assert rtl_bytes(rtl, addr, len(data)) == data
        runs[nowait] = rtl
    vop_cost = 4 * 32 + 13  # VOP i32 -> i32, docs/isa.md table
    setup, fence, halt, start = 6, 1, 1, 1
    blocking = runs[0]["cycles"]
    assert blocking == start + setup + MATMUL_OUT32 + vop_cost + fence + halt
    overlapped = runs[1]["cycles"]
    print(f"blocking={blocking} nowait={overlapped} matmul={MATMUL_OUT32} vop={vop_cost}")
    # Both issue in 2 cycles each; the FENCE waits for the longer MATMUL.
    mm_pc, vop_pc = (7, 6) if vop_first else (6, 7)
    assert cycles_at(runs[1], mm_pc) == 2 and cycles_at(runs[1], vop_pc) == 2
    expected = start + setup + (2 if vop_first else 0) + MATMUL_OUT32 - 1 + fence + halt
    assert overlapped == expected
    assert overlapped < max(MATMUL_OUT32, vop_cost) + 15 < blocking


# --------------------------------------------------------------------------------------
# Same bank: the vector unit stalls behind the MAC unit's ports
# --------------------------------------------------------------------------------------


def test_same_bank_vector_stalls() -> None:
    """A nowait int8 MATMUL streams A (bank 0), B (bank 1) and writes C (bank 2);
    nowait VOPs read and write those banks on other bytes, so the lower-priority
    vector ports see ready = 0 for long stretches (B's bank is busy every cycle)."""
    rng = np.random.default_rng(23)
    print("seed=23")
    a_addr, b_addr, c_addr, q_addr = 0, BANK, 2 * BANK, 3 * BANK
    segs, _ = matmul_operands(rng, 256, a_addr, b_addr)
    segs.append((q_addr, qparams(rng)))
    x8 = (0x1000, rand_i8(rng, 512))  # bank 0 (after A)
    y8 = (BANK + 0x1000, rand_i8(rng, 512))  # bank 1 (after B)
    z32 = (3 * BANK + 0x100, rng.integers(-(2**20), 2**20, size=128, dtype=np.int32))
    segs += [(addr, arr.tobytes()) for addr, arr in (x8, y8, z32)]
    d1, d2, d3, d4 = BANK + 0x1400, 2 * BANK + 0x100, 0x1400, 2 * BANK + 0x800
    program = [
        li(1, a_addr),
        li(2, b_addr),
        li(3, c_addr),
        li(4, x8[0]),
        li(5, y8[0]),
        li(6, z32[0]),
        li(7, d1),
        li(8, d2),
        li(9, d3),
        li(10, d4),
        E(Op.QLOAD, rs1=0, imm=q_addr, nowait=1),
        E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=16, ldc=C, nowait=1),
        E(Op.VOP, rd=7, rs1=4, rs2=5, n16=32, fn=VFn.MAX, nowait=1),  # A b0, B b1, D b1
        E(Op.VOP, rd=8, rs1=5, rs2=4, n16=32, fn=VFn.SUB, tout=DType.I16, nowait=1),  # D b2
        E(Op.VOP, rd=9, rs1=6, rs2=0, n16=8, fn=VFn.RSUM, tin=2, tout=2, nowait=1),
        E(Op.VOP, rd=10, rs1=6, rs2=6, n16=8, fn=VFn.MUL, tin=2, tout=2),  # blocking
        E(Op.ADDI, rd=11, rs1=0, imm=1),
        E(Op.FENCE, units=Unit.MAC),
        E(Op.HALT),
    ]
    regions = [(c_addr, R * C), (d1, 512), (d2, 1024), (d3, 16), (d4, 512)]
    rtl, _ = check(program, segs, regions)
    assert rtl_bytes(rtl, d1, 512) == np.maximum(x8[1], y8[1]).tobytes()
    want_sub = y8[1].astype(np.int16) - x8[1].astype(np.int16)
    assert rtl_bytes(rtl, d2, 1024) == want_sub.astype("<i2").tobytes()
    assert int.from_bytes(rtl_bytes(rtl, d3, 4), "little", signed=True) == int(z32[1].sum())
    blocking = run([w & ~NOWAIT_BITS[decode(w).op] for w in program], segs)
    print(f"nowait cycles={rtl['cycles']} blocking cycles={blocking['cycles']}")
    assert rtl["cycles"] < blocking["cycles"]


# --------------------------------------------------------------------------------------
# FENCE
# --------------------------------------------------------------------------------------


def fence_program(fence_units: int | None, read_mac_output: str):
    """nowait MATMUL out32 (C in bank 2) then [FENCE units] then LW or VOP of C."""
    rng = np.random.default_rng(31)
    segs, acc = matmul_operands(rng, 64, 0, BANK)
    c_addr, d_addr = 2 * BANK, 3 * BANK
    program = [li(1, 0), li(2, BANK), li(3, c_addr), li(4, d_addr)]
    program.append(E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=4, out32=1, ldc=4 * C, nowait=1))
    if fence_units is not None:
        program.append(E(Op.FENCE, units=fence_units))
    if read_mac_output == "lw":
        program.append(E(Op.LW, rd=5, rs1=3, imm=4 * (C + 1)))  # acc[1][1]
    else:  # the other unit reads C: a VOP MOV of the int32 accumulators
        program.append(E(Op.VOP, rd=4, rs1=3, rs2=0, n16=R * C // 16, fn=VFn.MOV, tin=2, tout=2))
    program.append(E(Op.HALT))
    return program, segs, acc, d_addr


@pytest.mark.parametrize("reader", ["lw", "vop"])
def test_fence_orders_mac_output(reader: str) -> None:
    print("seed=31")
    program, segs, acc, d_addr = fence_program(Unit.MAC, reader)
    rtl, _ = check(program, segs, [(d_addr, 4 * R * C)])
    if reader == "lw":
        assert rtl["regs"][5] == int(acc[1][1]) & 0xFFFFFFFF
    else:
        assert rtl_bytes(rtl, d_addr, 4 * R * C) == acc.astype("<i4").tobytes()
    fence_pc = 5
    # FENCE waits out the MATMUL's busy time after its 2 issue cycles: cost - 2.
    assert cycles_at(rtl, fence_pc) == 64 + R * C // 4 + 5 - 2


def test_without_fence_the_race_is_visible() -> None:
    """The same program without FENCE (a hazard by docs/isa.md) reads the old bytes:
    the FENCE in the test above is what orders the read."""
    program, segs, acc, _ = fence_program(None, "lw")
    rtl = run(program, segs)
    assert rtl["status"] == "halted" and rtl["regs"][5] == 0 != int(acc[1][1])
    # The vector-only FENCE does not wait for the MAC unit either.
    program, segs, acc, _ = fence_program(Unit.VEC, "lw")
    rtl = run(program, segs)
    assert rtl["regs"][5] == 0 and cycles_at(rtl, 5) == 1


def test_fence_costs() -> None:
    """FENCE on idle units: 1 cycle.  Otherwise it retires in the first cycle in which
    none of its units is busy (the cycle HALT would retire in); a FENCE of the other
    unit does not wait."""
    idle = [li(1, 5)] + [E(Op.FENCE, units=u) for u in (1, 2, 3)] + [E(Op.HALT)]
    assert run(idle, units=FAKE_UNITS)["cycles"] == 1 + 5
    vop = E(Op.VOP, rd=0, rs1=0, rs2=0, n16=4, fn=VFn.ADD, tin=2, tout=2, nowait=1)
    plain = run([li(1, 5), vop, E(Op.HALT)])
    vop_left = cycles_at(plain, 2)  # HALT waits for the vector unit to go idle
    k16 = 4
    mm = E(Op.MATMUL, rs1=0, rs2=2, rs3=3, k16=k16, out32=1, ldc=4 * C, nowait=1)
    mm_cost = 16 * k16 + R * C // 4 + 5  # blocking, docs/isa.md table
    program = [li(2, BANK), li(3, 2 * BANK), vop]  # pc 2: VOP
    program += [E(Op.FENCE, units=u) for u in (Unit.MAC, Unit.VEC, Unit.VEC, 3)]  # pc 3..6
    program += [mm] + [E(Op.FENCE, units=u) for u in (Unit.VEC, 3, Unit.MAC)]  # pc 7..10
    rtl = run(program + [E(Op.HALT)])
    print(f"vop issue={cycles_at(plain, 1)} vop remaining busy={vop_left}")
    assert cycles_at(plain, 1) == cycles_at(rtl, 2) == cycles_at(rtl, 7) == 2  # issue
    expected = [1, vop_left - 1, 1, 1, 2, 1, mm_cost - 2 - 1, 1, 1]
    assert [cycles_at(rtl, pc) for pc in range(3, 12)] == expected


# --------------------------------------------------------------------------------------
# VCFG and HALT interlocks
# --------------------------------------------------------------------------------------


def test_vcfg_waits_for_running_vop() -> None:
    """REQ reads MULT/SHIFT/ZP/LO/HI while it runs: a VCFG after a nowait REQ must not
    change them under it (the second REQ uses the new values)."""
    rng = np.random.default_rng(41)
    print("seed=41")
    src = 3 * BANK
    vals = rng.integers(-(2**16), 2**16, size=256, dtype=np.int32)
    d1, d2 = 2 * BANK, 2 * BANK + 0x200
    cfg = [(VCfg.MULT, 1 << 20), (VCfg.SHIFT, 30), (VCfg.ZP, 1), (VCfg.LO, -128), (VCfg.HI, 127)]
    program = [E(Op.VCFG, cfg=r, rs1=0, imm=v) for r, v in cfg]
    program += [li(1, src), li(2, d1), li(3, d2)]
    req = dict(fn=VFn.REQ, tin=DType.I32, tout=DType.I8, n16=16)
    program += [
        E(Op.VOP, rd=2, rs1=1, rs2=0, nowait=1, **req),
        E(Op.VCFG, cfg=VCfg.MULT, rs1=0, imm=-(1 << 22)),
        E(Op.VCFG, cfg=VCfg.SHIFT, rs1=0, imm=31),
        E(Op.VOP, rd=3, rs1=1, rs2=0, nowait=1, **req),
        E(Op.HALT),
    ]
    rtl, _ = check(program, [(src, vals.tobytes())], [(d1, 256), (d2, 256)])
    assert rtl_bytes(rtl, d1, 256) != rtl_bytes(rtl, d2, 256)
    vcfg_pc = 9
    assert cycles_at(rtl, vcfg_pc) > 1 + 4 * 16  # it waited for the REQ
    assert cycles_at(rtl, vcfg_pc + 1) == 1


@pytest.mark.parametrize("unit", ["mac", "vec"])
def test_halt_waits_for_nowait_command(unit: str) -> None:
    rng = np.random.default_rng(51)
    print("seed=51")
    segs, acc = matmul_operands(rng, 256, 0, BANK)
    vec = rng.integers(-1000, 1000, size=256, dtype=np.int32)
    segs.append((3 * BANK, vec.tobytes()))
    c_addr = 2 * BANK
    if unit == "mac":
        cmd = E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=16, out32=1, ldc=4 * C)
        want = acc.astype("<i4").tobytes()
    else:
        cmd = E(Op.VOP, rd=3, rs1=4, rs2=4, n16=16, fn=VFn.MUL, tin=2, tout=2)
        want = (vec.astype(np.int64) ** 2).astype("<i4").tobytes()
    setup = [li(1, 0), li(2, BANK), li(3, c_addr), li(4, 3 * BANK)]
    runs = []
    for nowait in (0, 1):
        program = setup + [cmd | NOWAIT_BITS[decode(cmd).op] * nowait, E(Op.HALT)]
        rtl, _ = check(program, segs, [(c_addr, len(want))])
        assert rtl_bytes(rtl, c_addr, len(want)) == want  # complete when halted
        runs.append(rtl)
    # nowait + HALT: HALT retires in the cycle the unit drops busy, one cycle before
    # the blocking command would have retired.
    assert runs[1]["cycles"] == runs[0]["cycles"] - 1
    assert cycles_at(runs[1], 4) == 2


# --------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------

FAULTING = {
    "matmul": E(Op.MATMUL, rs1=5, rs2=2, rs3=3, k16=1, nowait=1),  # A misaligned
    "qload": E(Op.QLOAD, rs1=5, imm=0, nowait=1),
    "vop": E(Op.VOP, rd=3, rs1=5, rs2=2, n16=1, fn=VFn.ADD, nowait=1),
    "vop_past_end": E(Op.VOP, rd=6, rs1=2, rs2=2, n16=1, fn=VFn.ADD, nowait=1),
}


@pytest.mark.parametrize("name", list(FAULTING))
def test_nowait_address_fault(name: str) -> None:
    """The fault is reported at the nowait command's pc; nothing after it runs."""
    program = [
        li(2, BANK),
        li(3, 2 * BANK),
        li(5, 8),
        li(6, ARCH.sram_bytes - 8),
        FAULTING[name],
        li(7, 99),
        E(Op.HALT),
    ]
    rtl, _ = check(program)
    assert (rtl["status"], rtl["error"], rtl["err_pc"]) == ("fault", PeError.ADDRESS, 4)
    assert rtl["regs"][7] == 0


LATER_FAULTS = {
    "vop_address": (E(Op.VOP, rd=3, rs1=5, rs2=2, n16=1, fn=VFn.ADD, nowait=1), PeError.ADDRESS),
    "lw_address": (E(Op.LW, rd=6, rs1=5, imm=2), PeError.ADDRESS),
    "illegal": (E(Op.NOP) | 1 << 40, PeError.ILLEGAL),
}


@pytest.mark.parametrize("name", list(LATER_FAULTS))
def test_fault_while_mac_runs(name: str) -> None:
    """A later instruction faults while a nowait MATMUL runs: its pc is reported, and
    ``error`` shows only once the MATMUL has finished, so the SRAM the host reads
    holds the MATMUL's output, as in the (sequential) reference."""
    print("seed=61")
    segs, acc = matmul_operands(np.random.default_rng(61), 64, 0, BANK)
    faulting, code = LATER_FAULTS[name]
    c_addr = 2 * BANK
    program = [
        li(2, BANK),
        li(3, c_addr),
        E(Op.MATMUL, rs1=0, rs2=2, rs3=3, k16=4, out32=1, ldc=4 * C, nowait=1),
        li(5, 4),
        faulting,
        E(Op.HALT),
    ]
    rtl, _ = check(program, segs, [(c_addr, 4 * R * C)])
    assert (rtl["status"], rtl["error"], rtl["err_pc"]) == ("fault", code, 4)
    assert rtl_bytes(rtl, c_addr, 4 * R * C) == acc.astype("<i4").tobytes()
    # Visible in the cycle after the MATMUL's last busy cycle: start + 2 LI + cost - 1.
    assert rtl["trace"][-1] == 4 and rtl["cycles"] == 1 + 2 + (64 + R * C // 4 + 5) - 1


ILLEGAL_ON_BLOCKING_PE = {
    "qload": E(Op.QLOAD, rs1=0, imm=0, nowait=1),
    "matmul": E(Op.MATMUL, rs1=0, rs2=0, rs3=0, k16=1, nowait=1),
    "vop": E(Op.VOP, rd=0, rs1=0, rs2=0, n16=1, fn=VFn.ADD, nowait=1),
    "fence_mac": E(Op.FENCE, units=Unit.MAC),
    "fence_vec": E(Op.FENCE, units=Unit.VEC),
    "fence_both": E(Op.FENCE, units=3),
}


@pytest.mark.parametrize("name", list(ILLEGAL_ON_BLOCKING_PE))
def test_async_units_false_is_illegal(name: str) -> None:
    program = [li(1, 3), ILLEGAL_ON_BLOCKING_PE[name], li(1, 4), E(Op.HALT)]
    rtl = run(program, arch=SYNC, units=FAKE_UNITS)
    assert (rtl["status"], rtl["error"], rtl["err_pc"]) == ("fault", PeError.ILLEGAL, 1)
    assert rtl["regs"][1] == 3
    ok = run(program, units=FAKE_UNITS)  # the same program on the decoupled PE
    assert (ok["status"], ok["regs"][1]) == ("halted", 4)


# --------------------------------------------------------------------------------------
# Random race-free programs
# --------------------------------------------------------------------------------------

VIN_BYTES = 1024
VFNS = [VFn.ADD, VFn.SUB, VFn.MUL, VFn.MAX, VFn.MOV, VFn.ABS, VFn.SRA, VFn.RSUM, VFn.REQ]


def random_program(rng: random.Random):
    """Read-only inputs; every command writes its own output region, any bank.

    MAC inputs: A tiles in bank 0, B tiles in bank 1.  Vector inputs in every bank,
    also read by LW and copied by DMA SELF (descriptors in bank 3).  Outputs
    (MATMUL, VOP, SW, DMA) are never read by anyone, so no FENCE is needed for
    correctness; random FENCEs, VCFGs, blocking and nowait commands mix the timing,
    and the LW/SW and DMA ports compete with both units for the banks."""
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    segs = [(0, rand_i8(nrng, 2048).tobytes()), (BANK, rand_i8(nrng, 4096).tobytes())]
    segs.append((3 * BANK, qparams(nrng)))
    vin = [b * BANK + 0x1800 for b in range(4)]  # VIN_BYTES of vector inputs per bank
    segs += [(a, nrng.integers(-3000, 3000, size=256, dtype=np.int32).tobytes()) for a in vin]
    # Output space per bank: [free, limit), after the inputs, before the vector inputs.
    free = {0: 0x800, 1: BANK + 0x1000, 2: 2 * BANK, 3: 3 * BANK + 0x100}
    limit = {b: b * BANK + 0x1800 for b in range(4)}

    def alloc(nbytes: int):
        banks = [b for b in range(4) if free[b] + nbytes <= limit[b]]
        if not banks:
            return None
        b = rng.choice(banks)
        addr = free[b]
        free[b] += -(-nbytes // 16) * 16
        return addr

    program, regions = [], []
    desc_addr, dma_pending = 3 * BANK + 0x1C00, 0
    kinds = ["mm", "mm", "vop", "vop", "vop", "vcfg", "fence", "qload", "lw", "sw", "dma"]
    for _ in range(rng.randint(6, 12)):
        kind = rng.choice(kinds)
        nowait = int(rng.random() < 0.75)
        if kind == "mm":
            k16, out32 = rng.randint(1, 4), rng.randint(0, 1)
            row = 4 * C if out32 else C
            out = alloc(R * row)
            if out is None:
                continue
            program += [
                li(1, 16 * rng.randrange(2048 // 16 - k16 * R)),
                li(2, BANK + 16 * rng.randrange(4096 // 16 - k16 * C)),
                li(3, out),
            ]
            mm = dict(k16=k16, out32=out32, ldc=row, acc=rng.randint(0, 1), nowait=nowait)
            program.append(E(Op.MATMUL, rs1=1, rs2=2, rs3=3, **mm))
            regions.append((out, R * row))
        elif kind == "vop":
            fn = rng.choice(VFNS)
            tin = rng.choice([0, 1, 2])
            tout = 2 if fn == VFn.RSUM else rng.choice([t for t in (0, 1, 2) if t <= tin])
            n16 = rng.randint(1, VIN_BYTES // (16 << tin))
            out_bytes = 16 if fn == VFn.RSUM else 16 * n16 << tout
            out = alloc(out_bytes)
            if out is None:
                continue
            in_bytes = 16 * n16 << tin
            a = rng.choice(vin) + 16 * rng.randrange((VIN_BYTES - in_bytes) // 16 + 1)
            b = rng.choice(vin)
            program += [li(4, a), li(5, b), li(6, out)]
            v = dict(fn=fn, tin=tin, tout=tout, n16=n16, nowait=nowait)
            program.append(E(Op.VOP, rd=6, rs1=4, rs2=5, **v))
            regions.append((out, out_bytes))
        elif kind == "vcfg":
            reg, value = rng.choice([(VCfg.MULT, rng.randint(1, 1 << 24)), (VCfg.SHIFT, 20)])
            program.append(E(Op.VCFG, cfg=reg, rs1=0, imm=value))
        elif kind == "fence":
            program.append(E(Op.FENCE, units=rng.randint(1, 3)))
        elif kind == "lw":
            addr = rng.choice(vin) + 4 * rng.randrange(256)
            program.append(E(Op.LW, rd=8 + rng.randrange(4), rs1=0, imm=addr))
        elif kind == "sw":
            out = alloc(16)
            if out is None:
                continue
            addr = out + 4 * rng.randrange(4)
            program.append(E(Op.SW, rs1=0, rs2=rng.randrange(1, 8), imm=addr))
            regions.append((out, 16))
        elif kind == "dma":
            words = rng.randint(1, 8)
            out = alloc(16 * words)
            if out is None or desc_addr + 48 > 3 * BANK + 0x2000:
                continue
            src = rng.choice(vin) + 16 * rng.randrange(VIN_BYTES // 16 - words + 1)
            desc = dict(local=src, remote=out, count0=words, mode=SignalMode.SELF, signal=1)
            segs.append((desc_addr, encode_desc(sem=1, **desc)))
            program.append(E(Op.DMA, rs1=0, imm=desc_addr))
            desc_addr += 48
            dma_pending += 1
            if rng.random() < 0.5:
                program.append(E(Op.WAIT, sem=1, count=dma_pending))
                dma_pending = 0
            regions.append((out, 16 * words))
        else:
            program.append(E(Op.QLOAD, rs1=0, imm=3 * BANK, nowait=nowait))
        program.append(E(Op.ADDI, rd=7, rs1=7, imm=1))
    if dma_pending:
        program.append(E(Op.WAIT, sem=1, count=dma_pending))
    return program + [E(Op.HALT)], segs, regions


@pytest.mark.parametrize("seed", [706, 717, 724])
def test_random_race_free_programs(seed: int) -> None:
    print(f"seed={seed}")
    program, segs, regions = random_program(random.Random(seed))
    rtl, _ = check(program, segs, regions, max_cycles=20000)
    assert rtl["status"] == "halted"


@pytest.mark.extended
@pytest.mark.parametrize("seed", range(760, 800))
def test_random_race_free_programs_many(seed: int) -> None:
    test_random_race_free_programs(seed)


# --------------------------------------------------------------------------------------
# Back-to-back MATMULs: the MAC unit takes the next one while the rows go out
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("out32", [0, 1], ids=["int8", "out32"])
@pytest.mark.parametrize("reread", [False, True], ids=["independent", "reads_c"])
def test_next_matmul_overlaps_the_output_rows(out32: int, reread: bool) -> None:
    """The second nowait MATMUL is accepted K + 4 cycles after the first (its compute
    part), not after the first one's rows are written - unless it reads those rows
    (A = the first one's C), then it waits for them. Results against the reference."""
    print("seed=21")
    rng = np.random.default_rng(21)
    k = 64
    a0, b0, a1, b1 = 0, BANK, 0x800, BANK + 0x800
    c0, c1, q = 2 * BANK, 2 * BANK + 0x400, 3 * BANK
    segs, _ = matmul_operands(rng, k, a0, b0)
    segs += matmul_operands(rng, k, a1, b1)[0] + [(q, qparams(rng))]
    row = 4 * C if out32 else C
    mm = dict(k16=k // 16, out32=out32, ldc=row, nowait=1)
    program = [
        li(1, a0), li(2, b0), li(3, c0), li(4, c0 if reread else a1), li(5, b1), li(6, c1),
        E(Op.QLOAD, rs1=0, imm=q),
        E(Op.MATMUL, rs1=1, rs2=2, rs3=3, **mm),
        E(Op.MATMUL, rs1=4, rs2=5, rs3=6, **mm),
        E(Op.FENCE, units=Unit.MAC),
        E(Op.HALT),
    ]  # fmt: skip
    rtl, _ = check(program, segs, [(c0, R * row), (c1, R * row)])
    first = k + R * C // 4 + 4 if out32 else k + R + 6  # its busy cycles
    waited = cycles_at(rtl, 8)  # pcs: 6 QLOAD, 7 and 8 the MATMULs, 9 FENCE
    print(f"second MATMUL held the controller {waited} cycles (first busy {first})")
    assert cycles_at(rtl, 7) == 2
    # offered 2 cycles after the first one's acceptance, retired 1 after its own
    assert waited == (first if reread else k + 4)


def test_handoff_waits_for_the_previous_rows() -> None:
    """8 x 16 MAC array, out32, K = 16: a MATMUL's 32 row words take longer than the
    next MATMUL's K + 4 cycles, so the next one waits in HANDOFF; a third one reads
    the second one's B (an independent tile) and a fourth one the first's C (it waits
    for the rows). Every result against the reference simulator."""
    print("seed=23")
    arch = dataclasses.replace(ARCH, mac_rows=8, name="tiny-8x16")
    rows, cols, bank = arch.mac_rows, arch.mac_cols, arch.bank_bytes
    rng = np.random.default_rng(23)
    k = 16
    segs, addr = [], {}
    for i in range(3):
        a, b = i * 0x200, bank + i * 0x200
        addr[i] = (a, b)
        segs += [(a, rand_i8(rng, k, rows).tobytes()), (b, rand_i8(rng, k, cols).tobytes())]
    c = [2 * bank + i * 0x400 for i in range(4)]
    mm = dict(k16=1, out32=1, ldc=4 * cols, nowait=1)
    regs = [addr[0][0], addr[0][1], c[0], addr[1][0], addr[1][1], c[1], addr[2][0], c[2]]
    program = [li(r, v) for r, v in enumerate(regs, 1)]
    program += [
        E(Op.MATMUL, rs1=1, rs2=2, rs3=3, **mm),
        E(Op.MATMUL, rs1=4, rs2=5, rs3=6, **mm),
        E(Op.MATMUL, rs1=7, rs2=5, rs3=8, **mm),
        li(9, c[3]),
        E(Op.MATMUL, rs1=3, rs2=2, rs3=9, **dict(mm, k16=2)),  # A = the first C (32 rows x 8)
        E(Op.FENCE, units=Unit.MAC),
        E(Op.HALT),
    ]
    rtl, _ = check(program, segs, [(x, rows * 4 * cols) for x in c], arch=arch)
    print("cycles at the MATMULs:", [cycles_at(rtl, pc) for pc in (8, 9, 10, 12)])
    # the second is taken K + 4 cycles after the first; the third waits until the
    # second has left HANDOFF (the first one's 32 row words went out first)
    assert cycles_at(rtl, 9) == k + 4
    assert cycles_at(rtl, 10) > k + 4
