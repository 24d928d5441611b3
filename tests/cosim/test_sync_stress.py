"""Sync stress: compiled programs on RTL with randomized DRAM timing stay bit-exact.

The DRAM endpoints (cosim/dram.py) take ``stress_en``/``stress_seed`` from the chip
harness: random extra latency per request, random not-ready cycles on ``in_req``
(back-pressure into the mesh) and random bubbles on ``out_resp``.  One build serves
every seed; the seeds are fixed and printed.

* the endpoint alone (Amaranth simulator): the same answers in the same order under
  stress, later than nominal, different per seed; nominal timing when disabled;
* the compiled kernels on the tiny RTL chip under a few seeds: bit-exact, and the
  cycle counts move (the stress really perturbs the schedule);
* a kernel with one semaphore wait removed: under stress, a wrong result or a hang
  (the stress catches races);
* extended: more seeds on tiny, every kernel with several seeds on the small chip.
"""

import dataclasses

import pytest

from compiler.backend.compile import compile_kernel
from compiler.backend.run import RtlExecutor, bit_exact
from cosim.chip_driver import run_chip_programs
from cosim.kernel_set import COMPILED, compile_for, shape_for
from hw import isa
from hw.arch import preset
from hw.errors import SimulationError
from hw.image import ProgramImage

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_chip_tiny")]

TINY = preset("tiny")
SEEDS = [11, 12]
EXTENDED_SEEDS = list(range(1, 13))


def _endpoint_answers(arch, stress: int | None, variant: bool = True, max_cycles: int = 6000):
    """Drive cosim.dram.DramEndpoint (its stress ``variant`` or the nominal one) in the
    Amaranth simulator: two WRITEs and eight READ_REQs; returns the answers (return
    address, payload) and their head cycles."""
    from amaranth import Module
    from amaranth.lib.memory import Memory
    from amaranth.sim import Simulator

    from cosim.chip_driver import stress_state
    from cosim.dram import DramEndpoint

    dut = DramEndpoint(arch, stress=variant)
    m = Module()
    m.submodules.dut = dut
    m.submodules.mem = mem = Memory(shape=128, depth=1 << len(dut.mem.addr), init=[])
    rd, wr = mem.read_port(), mem.write_port()
    m.d.comb += [
        rd.addr.eq(dut.mem.addr),
        wr.addr.eq(dut.mem.addr),
        wr.data.eq(dut.mem.wdata),
        wr.en.eq(dut.mem.en & dut.mem.we),
        dut.mem.rdata.eq(rd.data),
    ]
    dx, dy = isa.dram_node(arch, 0)

    def h(**kw):
        return isa.encode_head(src_x=1, src_y=0, x0=dx, y0=dy, **kw)

    packets = [
        [h(kind=0, len=4, addr=0x100), 1, 2, 3, 4],
        [h(kind=0, len=2, addr=0x400), 5, 6],
    ]
    packets += [
        [h(kind=1, len=1 + i % 3, addr=0x100 + 16 * (i % 4), ret_addr=0x800 + i)] for i in range(8)
    ]
    answers, heads = [], []

    async def driver(ctx):
        if variant:
            ctx.set(dut.stress_en, stress is not None)
            ctx.set(dut.stress_seed, 0 if stress is None else stress_state(stress))
        s = dut.noc.in_req
        for flits in packets:
            for i, f in enumerate(flits):
                ctx.set(s.valid, 1)
                ctx.set(s.payload.data, f)
                ctx.set(s.payload.first, i == 0)
                ctx.set(s.payload.last, i == len(flits) - 1)
                await ctx.tick().until(s.ready)
            ctx.set(s.valid, 0)

    async def monitor(ctx):
        o = dut.noc.out_resp
        ctx.set(o.ready, 1)
        for cycle in range(max_cycles):
            await ctx.tick()
            if not ctx.get(o.valid):
                continue
            word = ctx.get(o.payload.data)
            if ctx.get(o.payload.first):
                heads.append(cycle)
                answers.append([isa.decode_head(word)["addr"]])
            else:
                answers[-1].append(word)
            if len(answers) == 8 and ctx.get(o.payload.last):
                return
        raise SimulationError(f"DRAM endpoint: no 8 answers within {max_cycles} cycles")

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return answers, heads


def test_endpoint_stress_keeps_answers_and_moves_timing():
    nominal, t_nom = _endpoint_answers(TINY, None)
    assert _endpoint_answers(TINY, None, variant=False) == (nominal, t_nom), (
        "the stress variant with stress_en low must have the nominal timing"
    )
    assert [a[0] for a in nominal] == [0x800 + i for i in range(8)]
    assert nominal[0][1:] == [1]  # read of 0x100, 1 word
    timings = {}
    for seed in SEEDS:
        print(f"stress seed {seed}")
        got, t = _endpoint_answers(TINY, seed)
        assert got == nominal, f"seed {seed}: answers changed"
        assert t[-1] > t_nom[-1], f"seed {seed}: stress did not slow the endpoint"
        timings[seed] = t
    assert timings[SEEDS[0]] != timings[SEEDS[1]], "different seeds, same timing"


def _tiny_kernels(seed: int = 5):
    return [compile_kernel(n, TINY, seed=seed, **shape_for(n, TINY)) for n in COMPILED]


def _stress_run(cks, seeds, **kw):
    """(nominal results, {seed: results}) of ``cks`` in one launch."""
    nominal = RtlExecutor(run_chip_programs, job="test-stress", **kw).run_many(
        cks, raise_errors=False
    )
    stressed = RtlExecutor(run_chip_programs, stress=seeds, job="test-stress", **kw).run_many(
        cks, raise_errors=False
    )
    per = {s: stressed[i :: len(seeds)] for i, s in enumerate(seeds)}
    return nominal, per


def test_compiled_kernels_bit_exact_under_stress_on_tiny():
    cks = _tiny_kernels()
    # the synchronization of stop 14: the MLP's weight tiles through two slots with
    # credits back to the column reader, attention's ring of two m tiles of scores
    mlp = compile_kernel("mlp", TINY, seed=5, m=64, d=64, hidden=256, n=64)
    assert mlp.plan["split"] == "weights" and mlp.plan["weights"].startswith("streamed")
    ring = compile_kernel("attention", TINY, seed=5, seq=96, d=64)
    assert ring.plan["ring"] == 2
    cks += [dataclasses.replace(mlp, name="mlp-streamed"), dataclasses.replace(ring, name="ring")]
    print(f"stress seeds {SEEDS}")
    nominal, per = _stress_run(cks, SEEDS)
    for i, ck in enumerate(cks):
        assert bit_exact(ck, nominal[i]), ck.name
        cycles = {s: per[s][i].cycles for s in SEEDS}
        for s in SEEDS:
            res = per[s][i]
            assert not isinstance(res, Exception), f"{ck.name}, stress seed {s}: {res}"
            assert bit_exact(ck, res), f"{ck.name}, stress seed {s}: wrong result"
        print(f"{ck.name}: nominal {nominal[i].cycles} cycles, stressed {cycles}")
        assert all(c > nominal[i].cycles for c in cycles.values()), ck.name


def without_wait(image: ProgramImage, nth: int) -> ProgramImage:
    """``image`` with its ``nth`` WAIT instruction replaced by a NOP."""
    imem = list(image.imem)
    waits = [i for i, w in enumerate(imem) if isa.decode(w).op == isa.Op.WAIT]
    imem[waits[nth]] = isa.encode(isa.Op.NOP)
    return dataclasses.replace(image, imem=imem)


def _waits(image: ProgramImage) -> int:
    return sum(isa.decode(w).op == isa.Op.WAIT for w in image.imem)


def test_removed_wait_is_caught_under_stress():
    """Remove each WAIT of every PE's GEMM program in turn (one variant each) and run
    every variant at nominal timing and under two stress seeds: some removals are
    harmless (a wait another one covers) or caught at nominal timing already, but at
    least one race must be caught only by the stress (a wrong result or a hang while
    the nominal run is bit-exact)."""
    ck = compile_kernel("gemm", TINY, seed=5, **shape_for("gemm", TINY))
    variants = []
    for pe, image in sorted(ck.images.items()):
        for nth in range(_waits(image)):
            images = {**ck.images, pe: without_wait(image, nth)}
            name = f"gemm-pe{pe[0]}{pe[1]}-no-wait-{nth}"
            variants.append(dataclasses.replace(ck, name=name, images=images))
    assert variants, "the GEMM programs have no WAIT"
    seeds = [11, 13]
    print(f"{len(variants)} variants with one WAIT removed; stress seeds {seeds}")
    nominal, per = _stress_run(variants, seeds, watchdog=lambda r: 20_000)
    only_stress = []
    for i, v in enumerate(variants):
        at_nominal = isinstance(nominal[i], Exception) or not bit_exact(v, nominal[i])
        caught = [isinstance(per[s][i], Exception) or not bit_exact(v, per[s][i]) for s in seeds]
        print(f"{v.name}: caught at nominal timing {at_nominal}, under stress {caught}")
        if any(caught) and not at_nominal:
            only_stress.append(v.name)
    print(f"caught only under stress: {only_stress}")
    assert only_stress, "the stress caught no race that nominal timing hides"


@pytest.mark.extended
def test_more_seeds_on_tiny():
    cks = _tiny_kernels(seed=7)
    print(f"stress seeds {EXTENDED_SEEDS}")
    _, per = _stress_run(cks, EXTENDED_SEEDS)
    for s, results in per.items():
        for ck, res in zip(cks, results, strict=True):
            assert not isinstance(res, Exception) and bit_exact(ck, res), f"{ck.name}, seed {s}"


@pytest.mark.extended
def test_every_kernel_under_stress_on_small():
    arch = preset("small")
    cks = [compile_for(n, arch) for n in COMPILED]
    seeds = [1, 2, 3]
    print(f"stress seeds {seeds}")
    results = RtlExecutor(run_chip_programs, stress=seeds, job="test-stress-small").run_many(
        cks, raise_errors=False
    )
    for j, res in enumerate(results):
        ck, seed = cks[j // len(seeds)], seeds[j % len(seeds)]
        assert not isinstance(res, Exception), f"{ck.name}, seed {seed}: {res}"
        assert bit_exact(ck, res), f"{ck.name}, stress seed {seed}: wrong result"
        print(f"{ck.name} seed {seed}: {res.cycles} cycles")
