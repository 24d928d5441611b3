"""Row-major A for MATMUL (``alda`` >= 1): RTL MacUnit against the numpy reference.

The reference and the SRAM model are those of tests/hw/test_mac_unit.py (whose
``ref_a_tile`` reads the R rows of a row-major A and transposes them); here: random
programs mixing both layouts, cycle counts against ``alda`` = 0, back-to-back
commands, the fault boundaries, and the two new blocks on their own
(``OperandAddress``, ``RowTransposer``).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.arch import preset
from hw.errors import SimulationError
from hw.isa import Op, PeError, qparam_layout
from hw.pe.mac_arow import OperandAddress, RowTransposer
from hw.pe.mac_unit import MacUnit
from sim import numerics
from tests.hw import test_pe_top as pe_top
from tests.hw.test_mac_unit import (
    Outcome,
    bank_base,
    bank_pattern,
    check_program,
    command,
    random_qparams,
    ref_a_end,
    ref_fault,
    sram_testbench,
)

BASE = preset("small")
SHAPES = [(4, 16), (8, 8), (16, 4), (2, 16), (1, 16), (16, 16)]


def shape_arch(rows: int, cols: int):
    """``small`` itself for 4 x 16; other shapes with 16 KiB SRAM (4 banks of 4 KiB),
    so that large ``alda`` put the rows of A in different banks."""
    if (rows, cols) == (4, 16):
        return BASE
    return BASE.replace(mac_rows=rows, mac_cols=cols, sram_bytes=16384)


# -- back-to-back runner -------------------------------------------------------------------
def rtl_run_back_to_back(arch, sram, cmds: list[dict], *, max_cycles: int = 20000):
    """Offer each command from the cycle after its predecessor's acceptance on.

    ``Outcome.cycles``: acceptance to the next acceptance; for the last command,
    acceptance to the first cycle with ``busy`` low.  Error pulses count for the
    command accepted last before them.
    """
    dut = MacUnit(arch)
    state = {"done": False}
    accepts: list[int] = []
    errors = [0] * len(cmds)
    end = []

    async def driver(ctx):
        cycle = 0

        async def tick():
            nonlocal cycle
            if accepts:
                errors[len(accepts) - 1] += ctx.get(dut.error)
            await ctx.tick()
            cycle += 1
            if cycle > max_cycles:
                raise SimulationError(f"MacUnit did not finish {len(cmds)} commands")

        for cmd in cmds:
            ctx.set(dut.cmd.payload, cmd)
            ctx.set(dut.cmd.valid, 1)
            while not ctx.get(dut.cmd.ready):
                await tick()
            accepts.append(cycle)
            await tick()
        ctx.set(dut.cmd.valid, 0)
        while ctx.get(dut.busy):
            await tick()
        end.append(cycle)
        state["done"] = True

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(sram_testbench(dut, sram, state))
    sim.run()
    marks = [*accepts, end[0]]
    return [Outcome(marks[i + 1] - marks[i], errors[i]) for i in range(len(cmds))]


# -- random programs -----------------------------------------------------------------------
def random_alda(arch, rng: np.random.Generator, k16: int, limit: int) -> int:
    """0 (transposed tile), dense rows, rows with gaps, rows a bank apart, overlapping
    rows, or any stride that keeps A below ``limit``."""
    rows, k = arch.mac_rows, 16 * k16
    top = 1023 if rows == 1 else min(1023, (limit - k) // (16 * (rows - 1)))
    choices = [0, k16, k16 + int(rng.integers(1, 4)), int(rng.integers(1, top + 1))]
    if arch.bank_bytes // 16 <= top:
        choices.append(arch.bank_bytes // 16)
    if k16 > 1:
        choices.append(int(rng.integers(1, k16)))  # rows overlap each other
    return int(rng.choice(choices))


def random_arow_program(arch, seed: int, n: int) -> tuple[bytearray, list[dict]]:
    """QLOADs and ``n`` MATMULs with random layouts, placements (outputs may land in
    later operands), modes and accumulate chains over random memory."""
    rng = np.random.default_rng(seed)
    rows, cols, size = arch.mac_rows, arch.mac_cols, arch.sram_bytes
    mem = bytearray(rng.integers(0, 256, size, np.uint8).tobytes())
    qtotal = qparam_layout(cols)["total"][1]
    q0 = size - 2 * qtotal
    for q in (q0, q0 + qtotal):
        mem[q : q + qtotal] = random_qparams(arch, rng)
    cmds = [command(qload=1, a_addr=q0)]

    def place(nbytes: int, align: int = 16) -> int:
        return align * int(rng.integers(0, (q0 - nbytes) // align + 1))

    for i in range(n):
        if rng.random() < 0.15:
            cmds.append(command(qload=1, a_addr=q0 + qtotal * int(rng.integers(0, 2))))
        k16 = int(rng.integers(1, 5))
        alda = random_alda(arch, rng, k16, q0)
        while i < 2 and bool(alda) != bool(i):  # both layouts in every program
            alda = random_alda(arch, rng, k16, q0)
        a_bytes = ref_a_end(arch, command(k16=k16, alda=alda))
        out32, noout = int(rng.integers(0, 2)), int(rng.random() < 0.2)
        align, row_bytes = (16, 4 * cols) if out32 else (cols, cols)
        ldc = row_bytes + align * int(rng.choice([0, 1, 3]))
        cmds.append(
            command(
                a_addr=place(a_bytes),
                b_addr=place(16 * k16 * cols),
                c_addr=place((rows - 1) * ldc + row_bytes, align),
                k16=k16,
                ldc=ldc,
                out32=out32,
                acc=int(i > 0 and rng.random() < 0.6),
                noout=noout,
                alda=alda,
            )
        )
    return mem, cmds


@pytest.mark.parametrize(("rows", "cols"), SHAPES)
def test_random_row_major(rows: int, cols: int) -> None:
    arch = shape_arch(rows, cols)
    seed = 3000 + 17 * rows + cols
    print(f"seed {seed}")
    mem, cmds = random_arow_program(arch, seed, n=10)
    check_program(arch, mem, cmds, seed=seed)


@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (8, 8), (16, 4)])
def test_random_row_major_back_to_back(rows: int, cols: int) -> None:
    """Commands offered back to back (output overlap, hazards on A's rows)."""
    arch = shape_arch(rows, cols)
    seed = 4000 + 17 * rows + cols
    print(f"seed {seed}")
    mem, cmds = random_arow_program(arch, seed, n=10)
    check_program(arch, mem, cmds, run=rtl_run_back_to_back, seed=seed)


@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (8, 8), (16, 4), (2, 16)])
def test_random_row_major_backpressure(rows: int, cols: int) -> None:
    """Random ready (60%) and another requester taking a bank on a fixed pattern."""
    arch = shape_arch(rows, cols)
    seed = 5000 + 17 * rows + cols
    print(f"seed {seed}")
    mem, cmds = random_arow_program(arch, seed, n=6)
    check_program(arch, mem, cmds, seed=seed, ready_prob=0.6, busy_banks=bank_pattern(arch))


@pytest.mark.extended
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("rows", "cols"), [(r, c) for r in (1, 2, 4, 8, 16) for c in (4, 8, 16)])
def test_random_row_major_many_seeds(rows: int, cols: int, seed: int) -> None:
    arch = shape_arch(rows, cols)
    seed = 60000 + 1000 * seed + 17 * rows + cols
    print(f"seed {seed}")
    mem, cmds = random_arow_program(arch, seed, n=12)
    run = rtl_run_back_to_back if seed % 2 else None
    check_program(arch, mem, cmds, run=run, seed=seed, ready_prob=0.8)


def test_output_rows_in_the_gap_of_a() -> None:
    """The previous MATMUL's rows land between A's rows 0 and R-1 (past a + K*R): the
    next one, offered back to back, must wait for them."""
    arch = BASE
    rows = arch.mac_rows
    seed = 41
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    mem = bytearray(rng.integers(0, 256, arch.sram_bytes, np.uint8).tobytes())
    a0, alda = bank_base(arch, 0), 32  # rows 512 bytes apart, K = 64
    last_row = a0 + 16 * alda * (rows - 1)
    cmds = [
        command(a_addr=bank_base(arch, 2), b_addr=bank_base(arch, 1), c_addr=last_row,
                k16=4, ldc=0, out32=1),
        command(a_addr=a0, b_addr=bank_base(arch, 1), c_addr=bank_base(arch, 3), k16=4,
                ldc=64, out32=1, alda=alda),
    ]  # fmt: skip
    assert last_row > a0 + 64 * rows
    check_program(arch, mem, cmds, run=rtl_run_back_to_back)


# -- cycles --------------------------------------------------------------------------------
def cycle_program(arch, k16: int, alda: int, n: int = 1, **cmd_kw) -> tuple[bytearray, list]:
    """``n`` MATMULs with A in bank 0 (``alda`` >= 1: rows 16*alda apart), B in bank 1,
    C in bank 2."""
    rng = np.random.default_rng(k16 + 100 * alda)
    mem = bytearray(arch.sram_bytes)
    a0, b0, c0 = (bank_base(arch, i) for i in (0, 1, 2))
    assert ref_a_end(arch, command(a_addr=a0, k16=k16, alda=alda)) <= bank_base(arch, 1)
    for base, nbytes in ((a0, arch.bank_bytes), (b0, 16 * k16 * arch.mac_cols)):
        mem[base : base + nbytes] = rng.integers(0, 256, nbytes, np.uint8).tobytes()
    cmd = command(a_addr=a0, b_addr=b0, c_addr=c0, k16=k16, ldc=64, alda=alda, **cmd_kw)
    return mem, [dict(cmd, acc=int(i > 0)) for i in range(n)]


def cycles(arch, k16: int, alda: int, n: int = 1, **cmd_kw) -> list[int]:
    mem, cmds = cycle_program(arch, k16, alda, n, **cmd_kw)
    run = rtl_run_back_to_back if n > 1 else None
    return [o.cycles for o in check_program(arch, mem, cmds, run=run)]


@pytest.mark.parametrize(("rows", "cols"), SHAPES)
@pytest.mark.parametrize("k", [16, 64, 256])
def test_row_major_cycles(rows: int, cols: int, k: int) -> None:
    """One MATMUL: the documented figure plus R - 1 (the first group needs R words)."""
    arch = BASE.replace(mac_rows=rows, mac_cols=cols)
    k16 = k // 16
    base = cycles(arch, k16, 0)[0]
    dense, gaps = cycles(arch, k16, k16)[0], cycles(arch, k16, k16 + 3)[0]
    print(f"{rows}x{cols} K={k}: alda 0 {base}, alda K/16 {dense}, alda K/16+3 {gaps} cycles")
    assert base == k + rows + 6
    assert dense == gaps == base + rows - 1


@pytest.mark.parametrize("mode", ["out32", "noout"])
@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (16, 4)])
def test_row_major_cycles_other_modes(rows: int, cols: int, mode: str) -> None:
    arch = BASE.replace(mac_rows=rows, mac_cols=cols)
    base, row_major = (cycles(arch, 8, alda, **{mode: 1})[0] for alda in (0, 9))
    print(f"{rows}x{cols} K=128 {mode}: alda 0 {base}, alda 9 {row_major} cycles")
    assert row_major == base + rows - 1


@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (8, 8), (16, 4), (2, 16)])
@pytest.mark.parametrize("out32", [0, 1])
def test_row_major_back_to_back_cycles(rows: int, cols: int, out32: int) -> None:
    """Four accumulating MATMULs back to back: each R - 1 cycles longer than alda = 0."""
    arch = BASE.replace(mac_rows=rows, mac_cols=cols)
    base, row_major = (cycles(arch, 4, alda, n=4, out32=out32) for alda in (0, 4))
    print(f"{rows}x{cols} K=64 out32={out32} back to back: {base} vs {row_major} cycles")
    assert base[:3] == [64 + 4] * 3  # the documented overlap figure
    assert row_major == [c + rows - 1 for c in base]


# -- faults --------------------------------------------------------------------------------
def arow_fault_cases(arch) -> dict[str, tuple[dict, bool]]:
    """name -> (command, faults), around the row-major end ``a + 16*alda*(R-1) + K``."""
    rows, size = arch.mac_rows, arch.sram_bytes
    alda, k16 = 5, 2
    edge = size - (16 * alda * (rows - 1) + 32)  # the last legal A address
    mm = dict(b_addr=0x4000, c_addr=0x8000, k16=k16, ldc=64, alda=alda)
    tight = size - (16 * (rows - 1) + 32)  # alda = 1: legal, transposed tile would not be
    return {
        "end_at_sram_end": (command(**mm, a_addr=edge), False),
        "end_past_sram_end": (command(**mm, a_addr=edge + 16), True),
        "misaligned_4": (command(**mm, a_addr=edge - 16 + 4), True),
        "misaligned_8": (command(**mm, a_addr=0x100 + 8), True),
        "alda1_at_end": (command(**{**mm, "alda": 1}, a_addr=tight), False),
        "alda0_same_a": (command(**{**mm, "alda": 0}, a_addr=tight), rows > 1),
        "alda_max": (command(**{**mm, "alda": 1023}, a_addr=0), 16 * 1023 * (rows - 1) > size - 32),
        "a_huge": (command(**mm, a_addr=2**32 - 16), True),
    }


@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (8, 8), (16, 4), (1, 16)])
def test_row_major_faults(rows: int, cols: int) -> None:
    """Faults pulse error once and take 2 cycles; legal edge cases compute exactly."""
    arch = BASE.replace(mac_rows=rows, mac_cols=cols)
    cases = arow_fault_cases(arch)
    for name, (cmd, fault) in cases.items():
        assert ref_fault(arch, cmd) == fault, name
    rng = np.random.default_rng(6)
    mem = bytearray(rng.integers(0, 256, arch.sram_bytes, np.uint8).tobytes())
    cmds = [dict(c, acc=1) for c, _ in cases.values()]
    outcomes = check_program(arch, mem, cmds)
    for (name, (_, fault)), o in zip(cases.items(), outcomes, strict=True):
        assert o.errors == int(fault), f"{name}: {o}"
        assert not fault or o.cycles == 2, f"{name}: {o}"


# -- the blocks on their own ---------------------------------------------------------------
def ref_addresses(base: int, stride: int, rows: int, count: int) -> list[int]:
    if stride == 0:
        return [base + i for i in range(count)]
    return [base + i // rows + stride * (i % rows) for i in range(count)]


@pytest.mark.parametrize("rows", [1, 2, 4, 16])
@pytest.mark.parametrize("stride", [0, 1, 3, 64])
def test_operand_address(rows: int, stride: int) -> None:
    seed = 7 * rows + stride
    print(f"seed {seed}")
    dut = OperandAddress(13, rows)
    count, got = 3 * rows + 5, []
    rng = random.Random(seed)

    async def bench(ctx):
        ctx.set(dut.base, 100)
        ctx.set(dut.stride, stride)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(4 * count):  # bounded: about half the cycles step
            if len(got) == count:
                return
            step = rng.random() < 0.6
            if step:
                got.append(ctx.get(dut.addr))
            ctx.set(dut.next, step)
            await ctx.tick()
        raise SimulationError("OperandAddress bench ran out of cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = ref_addresses(100, stride, rows, count)
    assert got == (want if rows > 1 else ref_addresses(100, 0, 1, count))


def ref_transpose(words: list[int], rows: int) -> list[int]:
    """Groups of ``rows`` row words -> the transposed-tile words of the same K steps."""
    out = []
    for g in range(0, len(words), rows):
        rowb = [w.to_bytes(16, "little") for w in words[g : g + rows]]
        flat = bytes(rowb[t % rows][t // rows] for t in range(16 * rows))
        out += [int.from_bytes(flat[16 * j : 16 * j + 16], "little") for j in range(rows)]
    return out


def rtl_transpose(rows: int, words: list[int], bypass: int, seed: int, in_p: float, out_p: float):
    """Push ``words`` through a RowTransposer with random valid / ready; the words out."""
    arch = BASE.replace(mac_rows=rows)
    dut = RowTransposer(arch)
    got: list[int] = []
    rng = random.Random(seed)
    limit = 40 * len(words) + 100

    async def producer(ctx):
        ctx.set(dut.bypass, bypass)
        for w in words:
            ctx.set(dut.i.payload, w)
            ctx.set(dut.i.valid, 0)
            while rng.random() >= in_p:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        for _ in range(limit):
            if len(got) == len(words):
                return
            ready = rng.random() < out_p
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if ready and valid:
                got.append(payload)
        raise SimulationError(f"RowTransposer gave {len(got)} of {len(words)} words")

    top = Module()  # with R = 1 the transposer is wires: give the bench a clock domain
    top.submodules.dut = dut
    top.d.sync += Signal(name="tick").eq(1)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return got


@pytest.mark.parametrize("rows", [1, 2, 4, 8, 16])
@pytest.mark.parametrize(("in_p", "out_p"), [(1.0, 1.0), (0.5, 0.9), (0.9, 0.3)])
def test_row_transposer(rows: int, in_p: float, out_p: float) -> None:
    seed = 900 + rows + int(10 * in_p) + int(100 * out_p)
    print(f"seed {seed}")
    rng = random.Random(seed)
    words = [rng.getrandbits(128) for _ in range(3 * rows)]
    assert rtl_transpose(rows, words, 0, seed, in_p, out_p) == ref_transpose(words, rows)
    assert rtl_transpose(rows, words, 1, seed, in_p, out_p) == words


def test_verilog_converts_row_major() -> None:
    text = verilog.convert(MacUnit(BASE.replace(mac_rows=8, mac_cols=4)), name="mac_unit")
    assert "module mac_unit" in text


# -- through the PE: the MATMUL instruction's alda field -----------------------------------
def test_pe_matmul_row_major() -> None:
    """The decoder passes ``alda`` to the real MAC unit; a row-major A past the end of
    SRAM is an ADDRESS fault at the MATMUL."""
    arch = pe_top.ARCH
    r, c, k16, alda = arch.mac_rows, arch.mac_cols, 2, 5
    seed = 8
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    a_rows = rng.integers(-128, 128, size=(r, 16 * alda), dtype=np.int8)  # row r at 80*r
    b = rng.integers(-128, 128, size=(16 * k16, c), dtype=np.int8)
    a_addr, b_addr, c_addr = 0x100, arch.bank_bytes, 2 * arch.bank_bytes
    sram = {
        **pe_top._words(a_rows.tobytes(), a_addr // 16),
        **pe_top._words(b.tobytes(), b_addr // 16),
    }
    mm = dict(rs1=1, rs2=2, rs3=3, k16=k16, out32=1, ldc=4 * c, alda=alda)
    bad = arch.sram_bytes - 16 * alda * (r - 1) - 16 * k16 + 16  # one word too far
    program = [
        pe_top.E(Op.LI, rd=1, imm=a_addr),
        pe_top.E(Op.LI, rd=2, imm=b_addr),
        pe_top.E(Op.LI, rd=3, imm=c_addr),
        pe_top.E(Op.MATMUL, **mm),
        pe_top.E(Op.LI, rd=1, imm=bad),
        pe_top.E(Op.MATMUL, **mm),
        pe_top.E(Op.HALT),
    ]
    c_words = tuple(c_addr // 16 + i for i in range(r * 4 * c // 16))
    rtl = pe_top.rtl_run(program, units={}, sram=sram, read_words=c_words, max_cycles=2000)
    assert (rtl["status"], rtl["error"], rtl["err_pc"]) == ("fault", PeError.ADDRESS, 5)
    got = b"".join(rtl["words"][w].to_bytes(16, "little") for w in c_words)
    want = numerics.matmul_acc(a_rows[:, : 16 * k16].T, b)
    assert (np.frombuffer(got, dtype="<i4").reshape(r, c) == want).all()
