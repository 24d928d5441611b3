# amaranth: UnusedElaboratable=no
"""The PE top in the Amaranth simulator: programs assembled with hw.isa.encode.

Each test compares the RTL (``rtl_run``: host load, start, run to HALT or a
fault, debug readback) with ``ref_run``, a small interpreter of the scalar,
loop, LW/SW and semaphore instructions written from docs/isa.md, including the
cycle cost of every instruction as built (docs/pe.md).  The MAC, vector and DMA
units are small protocol models defined below (``Fake*``), so the controller and
the wiring are tested independently of the real units.
"""

from __future__ import annotations

import random

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.arch import preset
from hw.errors import ConfigError
from hw.isa import (
    D_MODE,
    D_READ,
    D_SEM,
    WORD_BYTES,
    Op,
    PeError,
    SignalMode,
    decode,
    encode,
    encode_desc,
    is_legal,
)
from hw.pe.interfaces import (
    Coords,
    DmaCmd,
    MacCmd,
    NocPort,
    SemInc,
    SignalCmd,
    SramPort,
    VecCfgWrite,
    VecCmd,
)
from hw.pe.pe import DBG_PC, DBG_SEMS, Pe, unit_class

ARCH = preset("tiny")
MASK32 = (1 << 32) - 1


class CycleLimit(Exception):
    """A simulation ran past its cycle budget."""


# --------------------------------------------------------------------------------------
# Protocol models of the units (tests only)
# --------------------------------------------------------------------------------------

UNIT_BUSY = 4  # cycles a fake unit stays busy before its write
DMA_DELAY = 6  # cycles from a fake DMA's accept to its completion increment


class _FakeUnit(wiring.Component):
    """Accept a command, stay busy, write one word at the output address, drop busy.

    A misaligned (not 16-byte) address pulses ``error`` instead.  The word
    written is ``pattern(a, b)`` so a test can check which unit wrote it.
    """

    def _run(self, m: Module, cmd, a, b, out_addr, out_port, writes) -> None:
        la, lb, lout = Signal(32), Signal(32), Signal(32)
        count = Signal(8)
        bad = (a | b | out_addr)[:4] != 0
        keep_writes = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += cmd.ready.eq(1)
                with m.If(cmd.valid):
                    m.d.sync += [la.eq(a), lb.eq(b), lout.eq(out_addr), count.eq(UNIT_BUSY)]
                    m.d.sync += keep_writes.eq(writes)
                    with m.If(bad):
                        m.next = "ERROR"
                    with m.Else():
                        m.next = "RUN"
            with m.State("ERROR"):
                m.d.comb += [self.busy.eq(1), self.error.eq(1)]
                m.next = "IDLE"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count - 1)
                with m.If(count == 1):
                    with m.If(keep_writes):
                        m.next = "WRITE"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("WRITE"):
                m.d.comb += [
                    self.busy.eq(1),
                    out_port.valid.eq(1),
                    out_port.we.eq(1),
                    out_port.addr.eq(lout[4:]),
                    out_port.wdata.eq(pattern_value(la, lb)),
                    out_port.wmask.eq(0xFFFF),
                ]
                with m.If(out_port.ready):
                    m.next = "IDLE"


def pattern_value(a, b):
    """The word a fake unit writes: a in bits 0..31, b in bits 32..63, 0x5A in 64..71."""
    return a | (b << 32) | (0x5A << 64)


class FakeMac(_FakeUnit):
    def __init__(self, arch):
        super().__init__(
            {
                "cmd": In(stream.Signature(MacCmd)),
                "busy": Out(1),
                "error": Out(1),
                "port_a": Out(SramPort(arch)),
                "port_b": Out(SramPort(arch)),
                "port_c": Out(SramPort(arch)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        p = self.cmd.p
        b = p.b_addr & ~p.qload.replicate(32)
        out = p.c_addr & ~p.qload.replicate(32)
        self._run(m, self.cmd, p.a_addr, b, out, self.port_c, writes=~p.qload)
        return m


class FakeVec(_FakeUnit):
    def __init__(self, arch):
        super().__init__(
            {
                "cmd": In(stream.Signature(VecCmd)),
                "cfg": In(stream.Signature(VecCfgWrite)),
                "busy": Out(1),
                "error": Out(1),
                "port_a": Out(SramPort(arch)),
                "port_b": Out(SramPort(arch)),
                "port_d": Out(SramPort(arch)),
                "last_cfg": Out(36),
            }
        )

    def elaborate(self, platform):
        m = Module()
        p = self.cmd.p
        m.d.comb += self.cfg.ready.eq(1)
        with m.If(self.cfg.valid):
            m.d.sync += self.last_cfg.eq(self.cfg.p.as_value())
        b_addr = p.b & ~p.bscalar.replicate(32)
        self._run(m, self.cmd, p.a_addr, b_addr, p.d_addr, self.port_d, writes=1)
        return m


def _desc_bits(word2, f):
    lo = f.lo - 2 * WORD_BYTES * 8  # the fake fetches descriptor word 2 only
    return word2[lo : lo + f.width]


class FakeDma(wiring.Component):
    """Reads descriptor word 2 before accepting; completes after DMA_DELAY cycles.

    On completion: descriptor ``read`` set -> increment local semaphore ``sem``;
    descriptor mode 3 (not a SignalMode) -> ``error`` pulse.  SIGNAL commands loop
    back to the local semaphores (as if this PE were their target).
    """

    def __init__(self, arch):
        super().__init__(
            {
                "cmd": In(stream.Signature(DmaCmd)),
                "sig": In(stream.Signature(SignalCmd)),
                "sem_inc": Out(stream.Signature(SemInc)),
                "idle": Out(1),
                "error": Out(1),
                "port_desc": Out(SramPort(arch)),
                "port_rd": Out(SramPort(arch)),
                "port_wr": Out(SramPort(arch)),
                "noc": Out(NocPort()),
                "coords": In(Coords()),
            }
        )

    def elaborate(self, platform):
        m = Module()
        word2 = Signal(128)
        count = Signal(8)
        done_inc = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.cmd.valid):
                    m.d.comb += [
                        self.port_desc.valid.eq(1),
                        self.port_desc.addr.eq(self.cmd.p.desc_addr[4:] + 2),
                    ]
                    with m.If(self.port_desc.ready):
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.d.sync += [word2.eq(self.port_desc.rdata), count.eq(6)]
                m.d.comb += self.cmd.ready.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += count.eq(count - 1)
                with m.If(count == 1):
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(_desc_bits(word2, D_MODE) == 3):
                    m.d.comb += self.error.eq(1)
                    m.next = "IDLE"
                with m.Elif(_desc_bits(word2, D_READ)):
                    m.d.comb += done_inc.eq(1)
                    with m.If(self.sem_inc.ready):
                        m.next = "IDLE"
                with m.Else():
                    m.next = "IDLE"
        with m.If(done_inc):
            m.d.comb += [
                self.sem_inc.valid.eq(1),
                self.sem_inc.p.sem.eq(_desc_bits(word2, D_SEM)),
                self.sem_inc.p.count.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                self.sem_inc.valid.eq(self.sig.valid),
                self.sem_inc.p.sem.eq(self.sig.p.sem),
                self.sem_inc.p.count.eq(self.sig.p.count),
                self.sig.ready.eq(self.sem_inc.ready),
            ]
        return m


FAKE_UNITS = {"mac": FakeMac, "vec": FakeVec, "dma": FakeDma}


# --------------------------------------------------------------------------------------
# Reference: scalar, loops, LW/SW, WAIT/SIGNAL SELF, HALT (docs/isa.md + docs/pe.md)
# --------------------------------------------------------------------------------------


def ref_run(program: list[int], arch=ARCH, mem: bytes | None = None, max_steps=20000) -> dict:
    """Run until HALT, a fault or a blocked WAIT; cycles = sum of the costs as built."""
    x = [0] * 16
    sems = [0] * arch.semaphores
    sram = bytearray(mem or bytes(arch.sram_bytes))
    stack: list[list[int]] = []  # [start, end, remaining]
    slots = [[(0, 0)] * arch.loop_strides for _ in range(arch.loop_depth)]
    pc = cycles = 0

    def out(status, error=PeError.NONE):
        return {
            "status": status,
            "regs": x,
            "error": error,
            "err_pc": pc,
            "cycles": cycles,
            "sems": sems,
            "sram": sram,
            "pc": pc,
        }

    def setx(r, v):
        if r:
            x[r] = v & MASK32

    for _ in range(max_steps):
        if pc >= arch.imem_words or not is_legal(program[pc] if pc < len(program) else 0):
            return out("fault", PeError.ILLEGAL)
        ins = decode(program[pc] if pc < len(program) else 0)
        op, nxt, cost = ins.op, pc + 1, 1
        addr = (x[ins["rs1"]] + ins["imm"]) & MASK32
        if op == Op.HALT:
            cycles += 1
            return out("halted")
        if op == Op.LI:
            setx(ins["rd"], ins["imm"])
        elif op == Op.ADDI:
            setx(ins["rd"], addr)
        elif op in (Op.ADD, Op.SUB, Op.MUL):
            a, b = x[ins["rs1"]], x[ins["rs2"]]
            setx(ins["rd"], {Op.ADD: a + b, Op.SUB: a - b, Op.MUL: a * b}[op])
        elif op == Op.SHLI:
            setx(ins["rd"], x[ins["rs1"]] << ins["imm"])
        elif op == Op.SHRI:
            setx(ins["rd"], x[ins["rs1"]] >> ins["imm"])
        elif op in (Op.LW, Op.SW):
            if addr % 4 or addr >= arch.sram_bytes:
                return out("fault", PeError.ADDRESS)
            if op == Op.LW:
                setx(ins["rd"], int.from_bytes(sram[addr : addr + 4], "little"))
                cost = 2
            else:
                sram[addr : addr + 4] = x[ins["rs2"]].to_bytes(4, "little")
        elif op == Op.LOOP:
            n, end = (x[ins["rs1"]] + ins["imm"]) & MASK32, pc + ins["body"]
            if len(stack) == arch.loop_depth or (stack and end >= stack[-1][1]):
                return out("fault", PeError.ILLEGAL)
            if n == 0:
                nxt = end + 1
            else:
                stack.append([pc + 1, end, n])
        elif op == Op.LSTRIDE:
            if ins["level"] >= arch.loop_depth or ins["slot"] >= arch.loop_strides:
                return out("fault", PeError.ILLEGAL)
            slots[ins["level"]][ins["slot"]] = (ins["rd"], ins["imm"])
        elif op in (Op.WAIT, Op.SIGNAL):
            s, count = ins["sem"], ins["count"]
            if s >= arch.semaphores:
                return out("fault", PeError.ILLEGAL)
            if op == Op.WAIT:
                if sems[s] < count:
                    return out("blocked")
                sems[s] -= count
            elif ins["mode"] == SignalMode.SELF:
                if sems[s] + count > arch.sem_max:
                    return out("fault", PeError.SEM_OVERFLOW)
                sems[s] += count
        elif op != Op.NOP:
            raise NotImplementedError(op.name)
        cycles += cost
        if stack and pc == stack[-1][1]:
            for rd, imm in slots[len(stack) - 1]:
                setx(rd, x[rd] + imm)
            if stack[-1][2] > 1:
                stack[-1][2] -= 1
                nxt = stack[-1][0]
            else:
                stack.pop()
        pc = nxt
    raise CycleLimit(f"reference ran past {max_steps} steps")


# --------------------------------------------------------------------------------------
# RTL harness
# --------------------------------------------------------------------------------------


async def host_write(ctx, dut, imem: bool, addr: int, value: int) -> None:
    h = dut.host
    ctx.set(h.valid, 1)
    ctx.set(h.imem, imem)
    ctx.set(h.we, 1)
    ctx.set(h.addr, addr)
    ctx.set(h.wdata, value)
    for _ in range(100):
        ready = ctx.get(h.ready)
        await ctx.tick()
        if ready:
            ctx.set(h.valid, 0)
            return
    raise CycleLimit("host write never accepted")


async def host_read(ctx, dut, imem: bool, addr: int) -> int:
    h = dut.host
    ctx.set(h.valid, 1)
    ctx.set(h.imem, imem)
    ctx.set(h.we, 0)
    ctx.set(h.addr, addr)
    for _ in range(100):
        ready = ctx.get(h.ready)
        await ctx.tick()
        if ready:
            ctx.set(h.valid, 0)
            assert ctx.get(h.rvalid) == 1
            return ctx.get(h.rdata)
    raise CycleLimit("host read never accepted")


def rtl_run(
    program: list[int],
    arch=ARCH,
    sram: dict[int, int] | None = None,
    read_words: tuple[int, ...] = (),
    max_cycles: int = 3000,
    stall_ok: bool = False,
    units=FAKE_UNITS,
    probe=None,
) -> dict:
    """Load ``program`` and ``sram`` (word address -> 16-byte value) through the host
    port, pulse start, run until halted or error (or ``max_cycles`` if ``stall_ok``),
    then read registers, semaphores, pc and ``read_words`` back."""
    dut = Pe(arch, units=units)
    res: dict = {}

    async def tb(ctx):
        for i, w in enumerate(program):
            await host_write(ctx, dut, True, i, w)
        for a, v in (sram or {}).items():
            await host_write(ctx, dut, False, a, v)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles, status = 1, "stalled"
        while True:
            if ctx.get(dut.halted):
                status = "halted"
                break
            if ctx.get(dut.error):
                status = "fault"
                break
            if probe:
                probe(ctx, dut, cycles)
            if cycles >= max_cycles:
                if not stall_ok:
                    raise CycleLimit(f"PE neither halted nor faulted in {max_cycles} cycles")
                break
            await ctx.tick()
            cycles += 1
        res.update(
            status=status,
            cycles=cycles,
            error=PeError(ctx.get(dut.error)),
            err_pc=ctx.get(dut.err_pc),
            running=ctx.get(dut.running),
        )
        regs, sems = [], []
        for r in range(16):
            ctx.set(dut.dbg_sel, r)
            regs.append(ctx.get(dut.dbg_data))
        for s in range(arch.semaphores):
            ctx.set(dut.dbg_sel, DBG_SEMS + s)
            sems.append(ctx.get(dut.dbg_data))
        ctx.set(dut.dbg_sel, DBG_PC)
        res.update(regs=regs, sems=sems, pc=ctx.get(dut.dbg_data))
        res["words"] = {a: await host_read(ctx, dut, False, a) for a in read_words}
        if not res["running"]:
            res["imem"] = [await host_read(ctx, dut, True, i) for i in range(len(program))]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    budget = len(program) + len(sram or {}) + len(read_words) * 2 + max_cycles + 200
    sim.run_until(1e-6 * (budget + 2 * len(program)))
    if "status" not in res:
        raise CycleLimit("testbench did not finish")
    return res


def E(op, **kw) -> int:  # noqa: N802 - reads like assembly
    return encode(op, **kw)


def check_against_ref(program: list[int], **kw) -> dict:
    ref, rtl = ref_run(program), rtl_run(program, **kw)
    assert rtl["status"] == ref["status"]
    assert rtl["regs"] == ref["regs"]
    assert rtl["error"] == ref["error"]
    if ref["status"] == "fault":
        assert rtl["err_pc"] == ref["err_pc"]
    else:
        assert rtl["cycles"] == ref["cycles"] + 1, "cycle count as documented in docs/pe.md"
    assert rtl["sems"] == ref["sems"]
    return rtl


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_scalar_ops() -> None:
    program = [
        E(Op.LI, rd=1, imm=-5),
        E(Op.LI, rd=2, imm=0x12345678),
        E(Op.ADDI, rd=3, rs1=1, imm=7),
        E(Op.ADD, rd=4, rs1=1, rs2=2),
        E(Op.SUB, rd=5, rs1=1, rs2=2),
        E(Op.MUL, rd=6, rs1=2, rs2=2),
        E(Op.SHLI, rd=7, rs1=2, imm=31),
        E(Op.SHRI, rd=8, rs1=1, imm=3),
        E(Op.LI, rd=0, imm=99),  # x0 stays 0
        E(Op.ADDI, rd=9, rs1=0, imm=1),
        E(Op.NOP),
        E(Op.HALT),
    ]
    rtl = check_against_ref(program)
    assert rtl["regs"][1] == (-5) & MASK32 and rtl["regs"][0] == 0 and rtl["regs"][9] == 1
    assert rtl["pc"] == len(program) - 1


@pytest.mark.parametrize("n", [1, 5, 20])
def test_scalar_ops_retire_one_per_cycle(n: int) -> None:
    program = [E(Op.ADDI, rd=1, rs1=1, imm=1)] * n + [E(Op.HALT)]
    rtl = rtl_run(program)
    assert rtl["regs"][1] == n
    assert rtl["cycles"] == n + 2  # n ops + HALT + the start (fetch) cycle


@pytest.mark.parametrize("body,count", [(1, 7), (3, 5)])
def test_loop_back_edge_costs_no_cycle(body: int, count: int) -> None:
    program = [E(Op.LOOP, rs1=0, body=body, imm=count)]
    program += [E(Op.ADDI, rd=1 + i, rs1=1 + i, imm=1) for i in range(body)] + [E(Op.HALT)]
    rtl = check_against_ref(program)
    assert rtl["regs"][1 : 1 + body] == [count] * body
    assert rtl["cycles"] == 1 + body * count + 1 + 1  # LOOP + body iterations + HALT + start


def test_nested_loops_with_strides() -> None:
    program = [
        E(Op.LI, rd=5, imm=2),
        E(Op.LSTRIDE, rd=2, level=0, slot=0, imm=100),
        E(Op.LSTRIDE, rd=3, level=1, slot=0, imm=1),
        E(Op.LSTRIDE, rd=3, level=1, slot=1, imm=10),  # two slots on one register add up
        E(Op.LSTRIDE, rd=4, level=2, slot=3, imm=-1),
        E(Op.LOOP, rs1=5, body=6, imm=1),  # 3 iterations (x5 + 1)
        E(Op.LOOP, rs1=0, body=3, imm=4),  # level 1
        E(Op.LOOP, rs1=0, body=1, imm=2),  # level 2: body = the ADD below
        E(Op.ADD, rd=6, rs1=6, rs2=3),
        E(Op.ADD, rd=7, rs1=7, rs2=4),  # end of level 1 body: strides add after it
        E(Op.ADDI, rd=3, rs1=3, imm=1000),
        E(Op.ADD, rd=8, rs1=8, rs2=2),  # end of level 0 body
        E(Op.LOOP, rs1=0, body=2, imm=0),  # count 0: skip the body
        E(Op.LI, rd=9, imm=1),
        E(Op.LI, rd=9, imm=2),
        E(Op.HALT),
    ]
    rtl = check_against_ref(program)
    assert rtl["regs"][9] == 0 and rtl["regs"][2] == 300


def test_lstride_at_loop_end_applies_this_iteration() -> None:
    program = [
        E(Op.LOOP, rs1=0, body=2, imm=3),
        E(Op.ADDI, rd=1, rs1=1, imm=1),
        E(Op.LSTRIDE, rd=2, level=0, slot=0, imm=5),
        E(Op.HALT),
    ]
    check_against_ref(program)


@pytest.mark.parametrize("seed", [101, 102, 103, 104, 105, 106])
def test_random_loop_programs(seed: int) -> None:
    print(f"seed={seed}")
    check_against_ref(random_loop_program(random.Random(seed)))


@pytest.mark.extended
@pytest.mark.parametrize("seed", range(200, 260))
def test_random_loop_programs_many(seed: int) -> None:
    print(f"seed={seed}")
    check_against_ref(random_loop_program(random.Random(seed)), max_cycles=20000)


def random_loop_program(rng: random.Random) -> list[int]:
    """Random scalar bodies inside up to three strictly nested loops, with strides."""
    prog = [E(Op.LI, rd=r, imm=rng.randint(-50, 50)) for r in range(1, 8)]
    for _ in range(rng.randint(2, 6)):
        prog.append(
            E(
                Op.LSTRIDE,
                rd=rng.randrange(16),
                level=rng.randrange(3),
                slot=rng.randrange(4),
                imm=rng.randint(-9, 9),
            )
        )

    def scalar():
        ops = [Op.ADDI, Op.ADD, Op.SUB, Op.MUL, Op.SHLI, Op.SHRI, Op.NOP, Op.LW, Op.SW, Op.SIGNAL]
        op = rng.choice(ops)
        rd, rs1, rs2 = rng.randrange(1, 12), rng.randrange(12), rng.randrange(12)
        if op == Op.NOP:
            return E(op)
        if op in (Op.LW, Op.SW):  # x0-based: always aligned and in range
            mem = {"rd": rd} if op == Op.LW else {"rs2": rs2}
            return E(op, rs1=0, imm=4 * rng.randrange(64), **mem)
        if op == Op.SIGNAL:
            return E(op, sem=rng.randrange(3), mode=SignalMode.SELF, count=rng.randint(1, 3))
        if op in (Op.SHLI, Op.SHRI):
            return E(op, rd=rd, rs1=rs1, imm=rng.randrange(32))
        if op == Op.ADDI:
            return E(op, rd=rd, rs1=rs1, imm=rng.randint(-100, 100))
        return E(op, rd=rd, rs1=rs1, rs2=rs2)

    def block(level):
        body = [scalar() for _ in range(rng.randint(0, 2))]
        if level < 3 and rng.random() < 0.8:
            inner = block(level + 1)
            body += [E(Op.LOOP, rs1=0, body=len(inner), imm=rng.choice([0, 1, 2, 3, 5]))] + inner
        return body + [scalar() for _ in range(rng.randint(1, 2))]

    return prog + block(0) + [E(Op.HALT)]


def test_lw_sw_and_host_sram() -> None:
    base = 0x100
    program = [
        E(Op.LI, rd=1, imm=base),
        E(Op.LW, rd=2, rs1=1, imm=4),
        E(Op.LW, rd=3, rs1=1, imm=12),
        E(Op.ADDI, rd=4, rs1=2, imm=1),
        E(Op.SW, rs1=1, rs2=4, imm=8),
        E(Op.SW, rs1=1, rs2=3, imm=16),
        E(Op.LW, rd=5, rs1=1, imm=8),
        E(Op.HALT),
    ]
    init = 0x44444444_33333333_22222222_11111111
    mem = bytearray(ARCH.sram_bytes)
    mem[base : base + 16] = init.to_bytes(16, "little")
    ref = ref_run(program, mem=bytes(mem))
    rtl = rtl_run(program, sram={base // 16: init}, read_words=(base // 16, base // 16 + 1))
    assert rtl["regs"] == ref["regs"] and rtl["cycles"] == ref["cycles"] + 1
    for a in (base // 16, base // 16 + 1):
        assert rtl["words"][a] == int.from_bytes(ref["sram"][16 * a : 16 * a + 16], "little")
    assert rtl["imem"] == program  # host readback of instruction memory


def test_wait_signal_self() -> None:
    program = [
        E(Op.SIGNAL, rs1=0, sem=3, mode=SignalMode.SELF, count=5),
        E(Op.WAIT, sem=3, count=2),
        E(Op.WAIT, sem=3, count=3),
        E(Op.SIGNAL, rs1=0, sem=15, mode=SignalMode.SELF, count=9),
        E(Op.HALT),
    ]
    rtl = check_against_ref(program)
    assert rtl["sems"][3] == 0 and rtl["sems"][15] == 9


def test_wait_blocks() -> None:
    program = [E(Op.LI, rd=1, imm=1), E(Op.WAIT, sem=2, count=1), E(Op.LI, rd=1, imm=2)]
    rtl = rtl_run(program, max_cycles=50, stall_ok=True)
    assert rtl["status"] == "stalled" and rtl["running"] and rtl["pc"] == 1
    assert rtl["regs"][1] == 1


def test_signal_node_and_dma_wiring() -> None:
    """SIGNAL NODE goes to the DMA engine (the fake loops it back); a DMA read
    descriptor completes with a local increment that a WAIT consumes."""
    desc = encode_desc(local=0, remote=0, read=1, sem=4, mode=SignalMode.NODE)
    words = {0x40 + i: int.from_bytes(desc[16 * i : 16 * i + 16], "little") for i in range(3)}
    program = [
        E(Op.LI, rd=1, imm=0x400),
        E(Op.SIGNAL, rs1=1, sem=6, mode=SignalMode.NODE, count=7),
        E(Op.DMA, rs1=1, imm=0),
        E(Op.WAIT, sem=4, count=1),
        E(Op.HALT),
    ]
    rtl = rtl_run(program, sram=words)
    assert rtl["status"] == "halted" and rtl["sems"][6] == 7 and rtl["sems"][4] == 0


def test_halted_waits_for_dma_idle() -> None:
    desc = encode_desc(local=0, remote=0, read=1, sem=1, mode=SignalMode.NODE)
    words = {i: int.from_bytes(desc[16 * i : 16 * i + 16], "little") for i in range(3)}
    seen = []
    rtl = rtl_run(
        [E(Op.DMA), E(Op.HALT)],
        sram=words,
        probe=lambda ctx, dut, c: seen.append(ctx.get(dut.running)),
    )
    assert rtl["sems"][1] == 1  # the DMA finished before halted rose
    assert seen.count(0) >= 2  # HALT retired, then halted waited for the DMA engine


def test_unit_commands_block_until_done() -> None:
    program = [
        E(Op.LI, rd=1, imm=0x200),
        E(Op.LI, rd=2, imm=0x300),
        E(Op.LI, rd=3, imm=0x1000),
        E(Op.LI, rd=4, imm=0x1100),
        E(Op.QLOAD, rs1=1, imm=0x40),
        E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=1),
        E(Op.VCFG, cfg=3, rs1=1, imm=1),
        E(Op.VOP, rd=4, rs1=2, rs2=1, n16=1),
        E(Op.HALT),
    ]
    rtl = rtl_run(program, read_words=(0x100, 0x110))
    assert rtl["status"] == "halted"
    assert rtl["words"][0x100] == pattern_value(0x200, 0x300)
    assert rtl["words"][0x110] == pattern_value(0x300, 0x200)
    # QLOAD and MATMUL, VOP: 1 (issue) + busy cycles + 1; VCFG 1; 4 LI; HALT; start.
    unit = 1 + UNIT_BUSY + 1
    assert rtl["cycles"] == 4 + unit + (unit + 1) + 1 + (unit + 1) + 1 + 1


FAULTS = {
    "illegal_word": ([E(Op.NOP), E(Op.NOP) | 1 << 40], PeError.ILLEGAL, 1),
    "loop_too_deep": (
        [
            E(Op.LOOP, body=8, imm=1),
            E(Op.LOOP, body=6, imm=1),
            E(Op.LOOP, body=4, imm=1),
            E(Op.LOOP, body=1, imm=1),
        ]
        + [E(Op.NOP)] * 6,
        PeError.ILLEGAL,
        3,
    ),
    "loop_not_strictly_inside": (
        [E(Op.LOOP, body=3, imm=2), E(Op.NOP), E(Op.LOOP, body=1, imm=2), E(Op.NOP)],
        PeError.ILLEGAL,
        2,
    ),
    "lstride_level": ([E(Op.LSTRIDE, rd=1, level=3, slot=0, imm=1)], PeError.ILLEGAL, 0),
    "wait_missing_sem": ([E(Op.NOP), E(Op.WAIT, sem=20, count=1)], PeError.ILLEGAL, 1),
    "past_imem_end": ([E(Op.LI, rd=1, imm=3)], PeError.ILLEGAL, ARCH.imem_words),
    "lw_misaligned": ([E(Op.LI, rd=1, imm=2), E(Op.LW, rd=2, rs1=1)], PeError.ADDRESS, 1),
    "sw_out_of_range": ([E(Op.SW, rs2=1, imm=ARCH.sram_bytes)], PeError.ADDRESS, 0),
    "lw_wraps": ([E(Op.LW, rd=1, imm=-4)], PeError.ADDRESS, 0),
    "dma_misaligned": ([E(Op.DMA, imm=8)], PeError.ADDRESS, 0),
    "dma_past_end": ([E(Op.DMA, imm=ARCH.sram_bytes - 32)], PeError.ADDRESS, 0),
    "mac_error": ([E(Op.LI, rd=1, imm=4), E(Op.MATMUL, rs1=1, k16=1)], PeError.ADDRESS, 1),
    "vec_error": ([E(Op.LI, rd=1, imm=4), E(Op.VOP, rd=1, n16=1)], PeError.ADDRESS, 1),
    "sem_overflow": (
        [E(Op.SIGNAL, sem=1, count=200), E(Op.SIGNAL, sem=1, count=100)],
        PeError.SEM_OVERFLOW,
        1,
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_faults(name: str) -> None:
    program, code, pc = FAULTS[name]
    rtl = rtl_run(program + [E(Op.HALT)] * (name != "past_imem_end"), max_cycles=800)
    assert (rtl["status"], rtl["error"], rtl["err_pc"]) == ("fault", code, pc)
    assert not rtl["running"]
    if name in ("illegal_word", "lw_misaligned", "sem_overflow"):
        ref = ref_run(program)
        assert (ref["error"], ref["err_pc"]) == (code, pc)
        assert rtl["regs"] == ref["regs"] and rtl["sems"] == ref["sems"]


def test_lstride_slot_out_of_range() -> None:
    arch = ARCH.replace(loop_strides=2)
    program = [E(Op.LSTRIDE, rd=1, level=0, slot=2, imm=1), E(Op.HALT)]
    rtl = rtl_run(program, arch=arch)
    assert (rtl["error"], rtl["err_pc"]) == (PeError.ILLEGAL, 0)


def test_dma_engine_error() -> None:
    desc = encode_desc(local=0, remote=0, mode=3)
    words = {i: int.from_bytes(desc[16 * i : 16 * i + 16], "little") for i in range(3)}
    program = [E(Op.DMA), E(Op.WAIT, sem=0, count=1), E(Op.HALT)]
    rtl = rtl_run(program, sram=words)
    assert (rtl["error"], rtl["err_pc"]) == (PeError.DMA, 1)


def test_error_is_sticky_and_start_ignored() -> None:
    dut = Pe(ARCH, units=FAKE_UNITS)
    seen = []

    async def tb(ctx):
        await host_write(ctx, dut, True, 0, E(Op.LI, rd=1, imm=5))
        await host_write(ctx, dut, True, 1, E(Op.NOP) | 1 << 63)
        for _ in range(2):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(4):
                await ctx.tick()
            ctx.set(dut.dbg_sel, 1)
            seen.append(
                (
                    ctx.get(dut.error),
                    ctx.get(dut.err_pc),
                    ctx.get(dut.running),
                    ctx.get(dut.dbg_data),
                )
            )

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(1e-4)
    assert seen == [(PeError.ILLEGAL, 1, 0, 5)] * 2  # registers kept for debugging


def test_rejects_unknown_unit_role() -> None:
    with pytest.raises(ValueError, match="units must name roles"):
        Pe(ARCH, units={"fpu": FakeMac})


def test_pe_converts_to_verilog_with_fakes() -> None:
    assert "module" in verilog.convert(Pe(ARCH, units=FAKE_UNITS), name="pe")


def test_pe_with_real_units() -> None:
    """The real MAC, vector and DMA units wired in: a scalar/loop/LW/SW/semaphore
    program behaves exactly as with the protocol models."""
    try:
        for role in ("mac", "vec", "dma"):
            unit_class(role)
    except ConfigError as exc:
        pytest.skip(str(exc))
    program = [
        E(Op.LI, rd=1, imm=0x40),
        E(Op.LSTRIDE, rd=1, level=0, slot=0, imm=4),
        E(Op.LOOP, rs1=0, body=3, imm=4),
        E(Op.ADDI, rd=2, rs1=2, imm=3),
        E(Op.SW, rs1=1, rs2=2, imm=0),
        E(Op.SIGNAL, sem=1, mode=SignalMode.SELF, count=1),
        E(Op.WAIT, sem=1, count=4),
        E(Op.LW, rd=3, rs1=0, imm=0x48),
        E(Op.HALT),
    ]
    ref, rtl = ref_run(program), rtl_run(program, units={}, read_words=(4,))
    assert (rtl["status"], rtl["regs"], rtl["cycles"]) == ("halted", ref["regs"], ref["cycles"] + 1)
    assert rtl["words"][4] == int.from_bytes(ref["sram"][0x40:0x50], "little")


def test_synth_block_stats() -> None:
    """Yosys `stat -width -json` and memory-cell dump parsing (no Yosys run)."""
    from hw.pe.synth import block_stats, memory_bits

    stat = {
        "modules": {
            "\\pe": {"num_cells_by_type": {"$and_1": 2, "\\pe.ctrl": 1}},
            "\\pe.ctrl": {"num_cells_by_type": {"$sdff_32": 3, "$mux_4": 1, "$_DFF_P_": 2}},
            "\\pe.ctrl.loops": {"num_cells_by_type": {"$dffe_11": 1, "$dlatch_1": 1}},
            "\\pe.sram": {"num_cells_by_type": {"$mem_v2": 2}},
        }
    }
    dump = "\n".join(
        [
            "module \\pe.sram",
            "  cell $mem_v2 \\bank0",
            "    parameter \\WIDTH 128",
            "    parameter \\SIZE 512",
            "  end",
            "  cell $mem_v2 \\bank1",
            "    parameter \\SIZE 32'00000000000000000000000000000100",
            "    parameter \\WIDTH 8",
            "  end",
            "end",
        ]
    )
    mems = memory_bits(dump)
    assert mems == {"\\pe.sram": 128 * 512 + 8 * 4}
    blocks = block_stats(stat, mems)
    ctrl = blocks["controller"]
    assert (ctrl.cells, ctrl.flip_flops, ctrl.latches) == (8, 3 * 32 + 2 + 11, 1)
    assert blocks["sram"].memory_bits == 128 * 512 + 32 and blocks["top"].cells == 2


def test_cli_verilog(tmp_path) -> None:
    from myelin.cli import main

    try:
        for role in ("mac", "vec", "dma"):
            unit_class(role)
    except ConfigError as exc:
        pytest.skip(str(exc))
    assert main(["verilog", "--arch", "tiny", "-o", str(tmp_path)]) == 0
    assert "module pe(" in (tmp_path / "pe_tiny.v").read_text()
    assert main(["verilog", "--arch", "no-such-preset", "-o", str(tmp_path)]) == 2


def _words(data: bytes, base_word: int) -> dict[int, int]:
    return {
        base_word + i: int.from_bytes(data[16 * i : 16 * i + 16], "little")
        for i in range(len(data) // 16)
    }


def test_real_units_matmul_vop_dma() -> None:
    """Wiring smoke test of the real units: MATMUL out32, VOP ADD and a DMA SELF copy."""
    try:
        for role in ("mac", "vec", "dma"):
            unit_class(role)
    except ConfigError as exc:
        pytest.skip(str(exc))
    import numpy as np

    rng = np.random.default_rng(7)
    print("seed=7")
    r, c, k = ARCH.mac_rows, ARCH.mac_cols, 16
    bank = ARCH.bank_bytes
    a = rng.integers(-128, 128, size=(k, r), dtype=np.int8)  # transposed A tile
    b = rng.integers(-128, 128, size=(k, c), dtype=np.int8)
    v = rng.integers(-60, 60, size=(2, 16), dtype=np.int8)
    a_addr, b_addr, c_addr, v_addr, d_addr = 0, bank, 2 * bank, 3 * bank, 3 * bank + 0x100
    src, dst, desc_addr = 3 * bank + 0x200, 3 * bank + 0x300, 3 * bank + 0x400
    desc = encode_desc(local=src, remote=dst, mode=SignalMode.SELF, signal=1, sem=2)
    sram = {
        **_words(a.tobytes(), a_addr // 16),
        **_words(b.tobytes(), b_addr // 16),
        **_words(v.tobytes(), v_addr // 16),
        **_words(desc, desc_addr // 16),
        src // 16: 0x0123456789ABCDEF_FEDCBA9876543210,
    }
    program = [
        E(Op.LI, rd=1, imm=a_addr),
        E(Op.LI, rd=2, imm=b_addr),
        E(Op.LI, rd=3, imm=c_addr),
        E(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=k // 16, out32=1, ldc=4 * c),
        E(Op.LI, rd=4, imm=v_addr),
        E(Op.LI, rd=5, imm=v_addr + 16),
        E(Op.LI, rd=6, imm=d_addr),
        E(Op.VOP, rd=6, rs1=4, rs2=5, n16=1, fn=0, tin=0, tout=0),
        E(Op.LI, rd=7, imm=desc_addr),
        E(Op.DMA, rs1=7),
        E(Op.WAIT, sem=2, count=1),
        E(Op.HALT),
    ]
    c_words = tuple(c_addr // 16 + i for i in range(r * 4 * c // 16))
    rtl = rtl_run(
        program,
        units={},
        sram=sram,
        read_words=(*c_words, d_addr // 16, dst // 16),
        max_cycles=2000,
    )
    assert (rtl["status"], rtl["error"]) == ("halted", PeError.NONE)
    print(f"cycles={rtl['cycles']}")
    acc = a.astype(np.int64).T @ b.astype(np.int64)
    got = b"".join(rtl["words"][w].to_bytes(16, "little") for w in c_words)
    assert (np.frombuffer(got, dtype="<i4").reshape(r, c) == acc).all()
    vsum = np.clip(v[0].astype(int) + v[1], -128, 127).astype(np.int8)
    assert rtl["words"][d_addr // 16].to_bytes(16, "little") == vsum.tobytes()
    assert rtl["words"][dst // 16] == sram[src // 16]


@pytest.mark.parametrize("name", ["mac_error", "vec_error", "dma_engine"])
def test_real_units_faults(name: str) -> None:
    try:
        for role in ("mac", "vec", "dma"):
            unit_class(role)
    except ConfigError as exc:
        pytest.skip(str(exc))
    sram = {}
    if name == "dma_engine":
        desc = encode_desc(local=0x100, remote=0x200, count0=0, mode=SignalMode.SELF, sem=1)
        sram = _words(desc, 0)
        # The engine checks the descriptor before accepting it: the DMA is still in execute.
        program, code, pc = [E(Op.DMA), E(Op.WAIT, sem=1, count=1)], PeError.DMA, 0
    else:
        program, code, pc = FAULTS[name]
    rtl = rtl_run(program + [E(Op.HALT)], units={}, sram=sram, max_cycles=500)
    assert (rtl["status"], rtl["error"], rtl["err_pc"]) == ("fault", code, pc)
