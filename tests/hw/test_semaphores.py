# amaranth: UnusedElaboratable=no
"""Semaphores: random increments and waits against a Python model."""

from __future__ import annotations

import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hw.arch import preset
from hw.pe.semaphores import Semaphores

ARCH = preset("tiny").replace(sem_bits=5)


def ref_step(counts: list[int], local, net, wait, sem_max: int) -> tuple[bool, bool]:
    """One cycle of the model: (wait_ok, overflow); ``counts`` updated in place."""
    n = len(counts)
    incs = [0] * n
    missing = False
    for inc in (local, net):
        if inc is not None:
            if inc[0] >= n:
                missing = True
            else:
                incs[inc[0]] += inc[1]
    ok = wait is not None and counts[wait[0]] >= wait[1]
    overflow = missing
    for i in range(n):
        dec = wait[1] if ok and wait[0] == i else 0
        new = counts[i] + incs[i] - dec
        if new > sem_max:
            overflow = True
            if ok and wait[0] == i:
                ok = False
        else:
            counts[i] = new
    return ok, overflow


def rtl_random(seed: int, cycles: int, arch=ARCH) -> dict:
    print(f"seed={seed} cycles={cycles}")
    rng = random.Random(seed)
    dut = Semaphores(arch)
    counts = [0] * arch.semaphores
    stats = {"ok": 0, "overflow": 0, "combined": 0}

    def pick_inc():
        if rng.random() < 0.4:
            sem = rng.randrange(4) if rng.random() < 0.9 else rng.randrange(32)
            return sem, rng.randrange(1, 6)
        return None

    async def tb(ctx):
        for _ in range(cycles):
            local, net = pick_inc(), pick_inc()
            wait = (rng.randrange(4), rng.randrange(1, 8)) if rng.random() < 0.5 else None
            for port, inc in ((dut.local_inc, local), (dut.net_inc, net)):
                ctx.set(port.valid, inc is not None)
                if inc is not None:
                    ctx.set(port.p.sem, inc[0])
                    ctx.set(port.p.count, inc[1])
                assert ctx.get(port.ready) == 1
            ctx.set(dut.wait.valid, wait is not None)
            if wait is not None:
                ctx.set(dut.wait.sem, wait[0])
                ctx.set(dut.wait.count, wait[1])
            same = [inc for inc in (local, net) if inc and wait and inc[0] == wait[0]]
            if same:
                stats["combined"] += 1
            ok, overflow = ref_step(counts, local, net, wait, arch.sem_max)
            assert ctx.get(dut.wait.ok) == ok
            assert ctx.get(dut.overflow) == overflow
            stats["ok"] += ok
            stats["overflow"] += overflow
            await ctx.tick()
            for i in range(arch.semaphores):
                ctx.set(dut.dbg_sel, i)
                assert ctx.get(dut.dbg_count) == counts[i], f"counter {i}"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(1e-6 * (cycles + 10))
    return stats


@pytest.mark.parametrize("seed", [11, 12])
def test_random_against_model(seed: int) -> None:
    stats = rtl_random(seed, cycles=800)
    assert stats["ok"] > 50 and stats["overflow"] > 5 and stats["combined"] > 20


def test_increment_and_wait_same_cycle_combine() -> None:
    dut = Semaphores(ARCH)
    seen = []

    async def tb(ctx):
        ctx.set(dut.local_inc.valid, 1)
        ctx.set(dut.local_inc.p.sem, 2)
        ctx.set(dut.local_inc.p.count, 3)
        await ctx.tick()  # count2 = 3
        ctx.set(dut.net_inc.valid, 1)
        ctx.set(dut.net_inc.p.sem, 2)
        ctx.set(dut.net_inc.p.count, 4)
        ctx.set(dut.wait.valid, 1)
        ctx.set(dut.wait.sem, 2)
        ctx.set(dut.wait.count, 3)
        seen.append(ctx.get(dut.wait.ok))  # 3 >= 3: ok, new = 3 + 3 + 4 - 3
        await ctx.tick()
        ctx.set(dut.local_inc.valid, 0)
        ctx.set(dut.net_inc.valid, 0)
        ctx.set(dut.wait.count, 8)
        ctx.set(dut.dbg_sel, 2)
        seen.append((ctx.get(dut.dbg_count), ctx.get(dut.wait.ok)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(1e-5)
    assert seen == [1, (7, 0)]


def test_overflow_at_sem_max() -> None:
    dut = Semaphores(ARCH)
    seen = []

    async def tb(ctx):
        ctx.set(dut.net_inc.valid, 1)
        ctx.set(dut.net_inc.p.sem, 0)
        ctx.set(dut.net_inc.p.count, ARCH.sem_max)
        seen.append(ctx.get(dut.overflow))
        await ctx.tick()
        ctx.set(dut.net_inc.p.count, 1)
        seen.append(ctx.get(dut.overflow))
        await ctx.tick()
        ctx.set(dut.net_inc.valid, 0)
        seen.append(ctx.get(dut.dbg_count))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(1e-5)
    assert seen == [0, 1, ARCH.sem_max]


def test_rejects_non_arch() -> None:
    with pytest.raises(TypeError, match="arch must be an ArchConfig, not 3"):
        Semaphores(3)


def test_converts_to_verilog() -> None:
    assert "module" in verilog.convert(Semaphores(preset("small")))
