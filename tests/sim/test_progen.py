"""Random program generator (sim/progen.py) on the reference simulator."""

from __future__ import annotations

import collections
import time

import pytest

from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import Op, PeError, VFn, decode, encode_desc
from sim.pe_sim import PeSim
from sim.progen import _fault_variants, fault_program, random_program

SEEDS = range(150)


class DeferredDmaPe(PeSim):
    """A PE whose DMAs act as late as possible: when a WAIT would block, or after
    HALT.  A race-free program ends in the same state as on the reference, whose
    DMAs act at once."""

    def __init__(self, arch):
        super().__init__(arch)
        self.queue: list[dict] = []

    def _dma(self, d: dict) -> None:
        self.queue.append(d)

    def run_deferred(self, limit: int):
        while True:
            r = self.run(limit)
            if r.status not in ("blocked", "halted") or not self.queue:
                return r
            PeSim._dma(self, self.queue.pop(0))  # oldest first: DMA order is kept


def run_ref(arch, img):
    pe = PeSim(arch)
    pe.load(img)
    return pe, pe.run(2_000_000)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_random_programs_halt_without_faults(name):
    arch = preset(name)
    ops, fns, types = collections.Counter(), collections.Counter(), collections.Counter()
    instrs = 0
    t = time.perf_counter()
    for seed in SEEDS:
        # odd seeds: also REQB and VOP segments (sim/progen.py, ``segments``)
        img, desc = random_program(arch, seed, nowait=True, segments=seed % 2 == 1)
        img.check(arch)
        pe, r = run_ref(arch, img)
        assert r.status == "halted", f"seed {seed}: {r} {desc}"
        instrs += r.instructions
        for w in img.imem:
            i = decode(w)
            ops[i.op] += 1
            if i.op == Op.VOP:
                fns[VFn(i["fn"])] += 1
                types[(i["tin"], i["tout"], i["bscalar"])] += 1
                seg = i["seg"]
                types[("seg", "none" if not seg else "one" if seg >= i["n16"] else "many")] += 1
            if i.op == Op.MATMUL:
                types[("mm", i["out32"], i["acc"], i["noout"])] += 1
            if i.op == Op.SIGNAL:
                types[("signal", i["mode"])] += 1
    dt = time.perf_counter() - t
    print(
        f"{name}: {len(SEEDS)} programs, {instrs} instructions executed, {dt:.2f} s "
        f"({len(SEEDS) / dt:.0f} programs/s)"
    )
    assert set(ops) == set(Op)
    assert set(fns) == set(VFn)
    assert all(types[(ti, to, 0)] for ti in range(3) for to in range(3))
    assert any(types[(ti, to, 1)] for ti in range(3) for to in range(3))
    assert all(types[("mm", a, b, c)] for a in (0, 1) for b in (0, 1) for c in (0, 1))
    assert all(types[("signal", m)] for m in range(3))
    assert all(types[("seg", k)] for k in ("none", "one", "many"))


def test_program_blocks_and_dma_kinds():
    arch = preset("tiny")
    kinds = collections.Counter()
    for seed in range(60):
        _, desc = random_program(arch, seed)
        for b in desc["blocks"]:
            kinds[b.split("@")[0]] += 1
            for part in b.split(" ")[1:]:
                for k in part.split("+"):
                    kinds[k] += 1
    for k in (
        "scalar",
        "memory",
        "loops",
        "matmul",
        "vector",
        "dma",
        "signals",
        "self_write",
        "self_read",
        "node_write",
        "node_read",
        "rect_write",
        "dram_write",
        "dram_read",
    ):
        assert kinds[k] > 0, k


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_random_programs_are_race_free(name):
    arch = preset(name)
    for seed in range(40):
        img, _ = random_program(arch, seed, segments=seed % 2 == 1)
        ref, r = run_ref(arch, img)
        late = DeferredDmaPe(arch)
        late.load(img)
        r2 = late.run_deferred(2_000_000)
        assert r2.status == "halted", f"seed {seed}: {r2}"
        a, b = ref.state(), late.state()
        assert a == b, f"seed {seed}: DMA timing changes the result"
        span = min(arch.dram_bytes, 16384)
        assert ref.network.dram(0).dump(0, span) == late.network.dram(0).dump(0, span)


def test_race_detector_sees_a_race():
    """A program that writes a DMA source before its WAIT ends differently."""
    arch = preset("tiny")
    desc = encode_desc(local=0x100, remote=0x200, mode=0, sem=1, signal=1)
    img = ProgramImage(
        assemble("""
        li x1, 0x7000
        dma 0(x1)
        li x2, -1
        sw x2, 0x100(x0)      # races with the DMA reading 0x100
        wait sem=1, count=1
        halt
    """),
        [(0x7000, desc)],
    )
    ref, _ = run_ref(arch, img)
    late = DeferredDmaPe(arch)
    late.load(img)
    assert late.run_deferred(1000).halted
    assert ref.read_sram(0x200, 4) == bytes(4) and late.read_sram(0x200, 4) == b"\xff" * 4


def test_deterministic():
    arch = preset("tiny")
    a, da = random_program(arch, 17)
    b, db = random_program(arch, 17)
    assert a == b and da == db
    assert run_ref(arch, a)[0].state() == run_ref(arch, b)[0].state()
    assert random_program(arch, 18)[0].imem != a.imem


@pytest.mark.parametrize("name", ["tiny", "small"])
@pytest.mark.parametrize(
    "kind", [PeError.ILLEGAL, PeError.ADDRESS, PeError.SEM_OVERFLOW, PeError.DMA]
)
@pytest.mark.parametrize("segments", [False, True])
def test_fault_programs(name, kind, segments):
    arch = preset(name)
    seen = set()
    for seed in range(40):
        img, desc = fault_program(arch, kind, seed, segments=segments)
        pe, r = run_ref(arch, img)
        assert (r.status, r.error, r.error_pc) == ("error", kind, desc["pc"]), (
            f"seed {seed}: {desc} {r}"
        )
        seen.add(desc["variant"])
    assert seen == set(_fault_variants(arch, segments)[kind])


def test_seeds_give_the_same_programs_without_segments():
    """REQB and segments only with ``segments=True``: a seed's program is the one it
    gave before they existed (tests/sim/test_nowait_perf.py pins figures by seed)."""
    arch = preset("tiny")
    for seed in range(40):
        img, _ = random_program(arch, seed, nowait=seed % 2 == 1)
        vops = [decode(w) for w in img.imem if decode(w).op == Op.VOP]
        assert all(v["seg"] == 0 and v["fn"] != VFn.REQB for v in vops), seed
    assert random_program(arch, 5)[0].imem != random_program(arch, 5, segments=True)[0].imem


def test_fault_program_rejects_none():
    with pytest.raises(ValueError):
        fault_program(preset("tiny"), PeError.NONE, 0)
