# amaranth: UnusedElaboratable=no
"""BankedSram: random multi-port traffic against a Python model of the memory."""

from __future__ import annotations

import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hw.arch import preset
from hw.pe.sram import BankedSram, bank_of

ARCH = preset("tiny")
WORD_BYTES = ARCH.word_bytes
BANK_WORDS = ARCH.bank_bytes // WORD_BYTES


class CycleLimit(Exception):
    pass


def ref_grants(arch, requests: list[tuple[int, int] | None]) -> list[bool]:
    """Fixed priority per bank: the lowest port index requesting a bank gets it."""
    taken: set[int] = set()
    grants = []
    for req in requests:
        if req is None:
            grants.append(False)
            continue
        bank = bank_of(arch, req[0])
        grants.append(bank not in taken)
        taken.add(bank)
    return grants


def ref_write(word: bytearray, data: bytes, mask: int) -> None:
    for i in range(WORD_BYTES):
        if mask >> i & 1:
            word[i] = data[i]


def random_request(rng: random.Random, hot: list[int]) -> dict:
    addr = rng.choice(hot) if rng.random() < 0.7 else rng.randrange(ARCH.sram_words)
    return {
        "addr": addr,
        "we": rng.random() < 0.5,
        "wdata": rng.getrandbits(8 * WORD_BYTES),
        "wmask": rng.choice([0xFFFF, rng.getrandbits(WORD_BYTES), 0x000F]),
    }


def rtl_random_traffic(seed: int, n_ports: int, cycles: int) -> tuple[int, int]:
    """Drive random requests (held until accepted) and check every grant and read."""
    print(f"seed={seed} n_ports={n_ports} cycles={cycles}")
    rng = random.Random(seed)
    # A few hot words in every bank force bank conflicts.
    hot = [b * BANK_WORDS + rng.randrange(BANK_WORDS) for b in range(ARCH.sram_banks)]
    model = {a: bytearray(WORD_BYTES) for a in range(ARCH.sram_words)}
    dut = BankedSram(ARCH, n_ports)
    stats = {"reads": 0, "conflicts": 0}

    async def tb(ctx):
        pending: list[dict | None] = [None] * n_ports
        expect: list[bytes | None] = [None] * n_ports
        for _ in range(cycles):
            for i, port in enumerate(dut.ports):
                if pending[i] is None and rng.random() < 0.6:
                    pending[i] = random_request(rng, hot)
                req = pending[i]
                ctx.set(port.valid, req is not None)
                if req is not None:
                    ctx.set(port.addr, req["addr"])
                    ctx.set(port.we, req["we"])
                    ctx.set(port.wdata, req["wdata"])
                    ctx.set(port.wmask, req["wmask"])
            grants = ref_grants(ARCH, [p and (p["addr"], p["we"]) for p in pending])
            reads: list[bytes | None] = [None] * n_ports
            for i, port in enumerate(dut.ports):
                req = pending[i]
                if req is None:
                    continue
                assert ctx.get(port.ready) == grants[i], f"port {i} ready"
                if not grants[i]:
                    stats["conflicts"] += 1
                    continue
                if not req["we"]:
                    reads[i] = bytes(model[req["addr"]])
                pending[i] = None
            await _apply_and_tick(ctx, dut, grants, reads, model, expect, stats)

    async def _apply_and_tick(ctx, dut, grants, reads, model, expect, stats):
        # Writes land after this cycle's reads were sampled (they hit other banks).
        for i, port in enumerate(dut.ports):
            if grants[i] and reads[i] is None:
                ref_write(
                    model[ctx.get(port.addr)],
                    ctx.get(port.wdata).to_bytes(WORD_BYTES, "little"),
                    ctx.get(port.wmask),
                )
        await ctx.tick()
        for i, port in enumerate(dut.ports):
            assert ctx.get(port.rvalid) == (reads[i] is not None), f"port {i} rvalid"
            if reads[i] is not None:
                stats["reads"] += 1
                got = ctx.get(port.rdata).to_bytes(WORD_BYTES, "little")
                assert got == reads[i], f"port {i} read data"
            expect[i] = reads[i]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(1e-6 * (cycles + 10))
    return stats["reads"], stats["conflicts"]


@pytest.mark.parametrize("seed,n_ports", [(1, 1), (2, 3), (3, 10)])
def test_random_traffic(seed: int, n_ports: int) -> None:
    reads, conflicts = rtl_random_traffic(seed, n_ports, cycles=1500)
    assert reads > 50
    if n_ports > 1:
        assert conflicts > 20


def test_priority_and_latency() -> None:
    """Two ports on one bank: port 0 wins; the loser waits; data one cycle later."""
    dut = BankedSram(ARCH, 2)
    addr = 3
    log = []

    async def tb(ctx):
        p0, p1 = dut.ports
        ctx.set(p0.valid, 1)
        ctx.set(p0.we, 1)
        ctx.set(p0.addr, addr)
        ctx.set(p0.wdata, 0x1234)
        ctx.set(p0.wmask, 0xFFFF)
        ctx.set(p1.valid, 1)
        ctx.set(p1.addr, addr + 1)  # same bank
        log.append((ctx.get(p0.ready), ctx.get(p1.ready)))
        await ctx.tick()
        ctx.set(p0.valid, 0)
        ctx.set(p1.addr, addr)
        log.append((ctx.get(p1.ready), ctx.get(p1.rvalid)))
        await ctx.tick()
        ctx.set(p1.valid, 0)
        log.append((ctx.get(p1.rvalid), ctx.get(p1.rdata)))
        await ctx.tick()
        log.append(ctx.get(p1.rvalid))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run_until(1e-5)
    assert log == [(1, 0), (1, 0), (1, 0x1234), 0]


def test_bank_of_is_block_banking() -> None:
    assert bank_of(ARCH, 0) == 0
    assert bank_of(ARCH, BANK_WORDS - 1) == 0
    assert bank_of(ARCH, BANK_WORDS) == 1
    assert bank_of(ARCH, ARCH.sram_words - 1) == ARCH.sram_banks - 1


def test_rejects_bad_port_count() -> None:
    with pytest.raises(ValueError, match="n_ports must be a positive integer, not 0"):
        BankedSram(ARCH, 0)


def test_converts_to_verilog() -> None:
    assert "module" in verilog.convert(BankedSram(ARCH, 3))
