"""VectorAlu and VectorIter on their own, against sim.numerics, with stream backpressure.

``ref_*`` call sim.numerics; ``rtl_*`` run one simulation that feeds vectors through
the component's ``inp`` stream (random valid gaps) and collects ``out`` (random ready).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.arch import preset
from hw.errors import SimulationError
from hw.isa import DType, VCfg, VFn
from hw.pe.vector_alu import VectorAlu
from hw.pe.vector_iter import VectorIter
from sim.numerics import vector_elementwise

ARCH = preset("tiny")
LANES = ARCH.vec_lanes
I32 = [-(2**31), 2**31 - 1, 0, -1, 1, 2, -2, 127, -128, 2**15, -(2**15), 63, 64, 31, 32, 33]
PIPELINED = [
    VFn.ADD,
    VFn.SUB,
    VFn.MUL,
    VFn.MIN,
    VFn.MAX,
    VFn.SHL,
    VFn.SRA,
    VFn.MOV,
    VFn.REQ,
    VFn.REQB,
    VFn.EXP,
    VFn.EXPB,
    VFn.ERF,
    VFn.ABS,
]
CYCLE_LIMIT = 50000


def rand_i32(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.integers(-(2**31), 2**31, size=n, dtype=np.int64)
    picks = rng.random(n) < 0.4
    v[picks] = rng.choice(I32, size=int(picks.sum()))
    small = rng.random(n) < 0.2
    v[small] = rng.integers(-70, 70, size=int(small.sum()))
    return v


def rand_cfg(rng: np.random.Generator) -> np.ndarray:
    cfg = rand_i32(rng, len(VCfg))
    if rng.random() < 0.5:  # plausible shifts more often
        cfg[VCfg.SHIFT] = rng.integers(0, 64)
        cfg[VCfg.EXP_INV_SHIFT] = rng.integers(0, 64)
    return cfg.astype(np.int32)


def ref_alu(fn: VFn, tout: DType, cfg: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return vector_elementwise(fn, a, b, tout, cfg)


def _stream_sim(dut, vectors, payload_of, collect, seed, setup):
    """Feed ``vectors`` into dut.inp and collect as many results from dut.out."""
    rng = random.Random(seed)
    out: list[list[int]] = []

    async def produce(ctx):
        setup(ctx)
        for vec in vectors:
            while rng.random() < 0.3:
                await ctx.tick()
            payload_of(ctx, vec)
            ctx.set(dut.inp.valid, 1)
            await ctx.tick().until(dut.inp.ready)
            ctx.set(dut.inp.valid, 0)

    async def consume(ctx):
        cycles = 0
        while len(out) < len(vectors):
            ready = rng.random() < 0.7
            ctx.set(dut.out.ready, ready)
            if ready and ctx.get(dut.out.valid):
                out.append(collect(ctx))
            await ctx.tick()
            cycles += 1
            if cycles > CYCLE_LIMIT:
                raise SimulationError(f"no result after {cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(produce)
    sim.add_testbench(consume)
    sim.run()
    return np.array(out, dtype=np.int64)


def rtl_alu(
    fn: VFn, tout: DType, cfg: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int
) -> np.ndarray:
    dut = VectorAlu(ARCH)

    def setup(ctx):
        ctx.set(dut.fn, int(fn))
        ctx.set(dut.tout, int(tout))
        for i, v in enumerate(cfg):
            ctx.set(dut.cfg[i], int(v))

    def payload_of(ctx, i):
        for lane in range(LANES):
            ctx.set(dut.inp.payload.a[lane], int(a[i, lane]))
            ctx.set(dut.inp.payload.b[lane], int(b[i, lane]))

    def collect(ctx):
        return [ctx.get(dut.out.payload[lane]) for lane in range(LANES)]

    return _stream_sim(dut, range(len(a)), payload_of, collect, seed, setup)


@pytest.mark.parametrize("fn", PIPELINED, ids=lambda f: f.name)
def test_alu_random(fn):
    seed = 500 + int(fn)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    steps = 6
    cfg = rand_cfg(rng)
    tout = DType(int(rng.integers(0, 3)))
    a = rand_i32(rng, steps * LANES).reshape(steps, LANES)
    b = rand_i32(rng, steps * LANES).reshape(steps, LANES)
    got = rtl_alu(fn, tout, cfg, a, b, seed)
    want = ref_alu(fn, tout, cfg, a, b)
    assert np.array_equal(got, want), (np.argwhere(got != want)[:4], tout)


def ref_iter(sqrt: bool, k: int, a: np.ndarray) -> np.ndarray:
    cfg = np.zeros(len(VCfg), dtype=np.int32)
    cfg[VCfg.RECIP_K] = k
    return vector_elementwise(VFn.SQRT if sqrt else VFn.RECIP, a, None, DType.I32, cfg)


def rtl_iter(sqrt: bool, k: int, a: np.ndarray, seed: int) -> np.ndarray:
    dut = VectorIter(ARCH)

    def setup(ctx):
        ctx.set(dut.sqrt, sqrt)
        ctx.set(dut.k, k)

    def payload_of(ctx, i):
        for lane in range(LANES):
            ctx.set(dut.inp.payload[lane], int(a[i, lane]))

    def collect(ctx):
        return [ctx.get(dut.out.payload[lane]) for lane in range(LANES)]

    return _stream_sim(dut, range(len(a)), payload_of, collect, seed, setup)


@pytest.mark.parametrize(
    "sqrt,k", [(True, 0), (False, 0), (False, 20), (False, 31), (False, 45), (False, 62)]
)
def test_iter_random(sqrt, k):
    seed = 600 + k + 100 * sqrt
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    a = rand_i32(rng, 2 * LANES)
    a[:3] = [1 << max(0, k - 31), (1 << max(0, k - 31)) + 1, 2**31 - 1]
    a = a.reshape(2, LANES)
    got = rtl_iter(sqrt, k, a, seed)
    assert np.array_equal(got, ref_iter(sqrt, k, a))


# -- EXPB: EXP of sat32(a - b) ------------------------------------------------------

# (a, b) pairs whose difference leaves int32 (both ways) or lands on its edges
EXPB_EDGES = [
    (I32[0], I32[1]),  # -2**32 + 1: saturates to -2**31
    (I32[1], I32[0]),  # 2**32 - 1: saturates to 2**31 - 1 (x = 0)
    (I32[0], 1),  # -2**31 - 1
    (-1, I32[1]),  # exactly -2**31
    (-2, I32[1]),  # -2**31 - 1
    (0, I32[0]),  # 2**31
    (I32[1], -1),  # 2**31
    (I32[0], I32[0]),  # 0
    (I32[1], I32[1]),  # 0
    (5, 5),  # 0
    (4, 5),  # -1
    (6, 5),  # 1
    (0, 0),
    (I32[0], 0),  # -2**31, as EXP
    (-(2**30), 2**30),  # -2**31
    (-(2**30), 2**30 + 1),  # -2**31 - 1
]


def expb_operands(rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """a, b (steps x LANES): random int32s, b close to a (small a - b of either sign),
    and the edge pairs of EXPB_EDGES in the first step."""
    n = steps * LANES
    a, b = rand_i32(rng, n), rand_i32(rng, n)
    near = rng.random(n) < 0.35
    b[near] = np.clip(a[near] + rng.integers(-3000, 3000, size=int(near.sum())), *I32[:2])
    a[: len(EXPB_EDGES)], b[: len(EXPB_EDGES)] = zip(*EXPB_EDGES, strict=True)
    return a.reshape(steps, LANES), b.reshape(steps, LANES)


def ibert_exp_cfg(scale: float) -> np.ndarray:
    """Realistic I-BERT i-exp constants for an input scale (softmax inputs)."""
    cfg = np.zeros(len(VCfg), dtype=np.int32)
    q_ln2 = int(np.floor(np.log(2) / scale))
    cfg[VCfg.EXP_QLN2] = q_ln2
    cfg[VCfg.EXP_INV_SHIFT] = 30
    cfg[VCfg.EXP_INV_MULT] = -(-(2**30) // q_ln2)
    cfg[VCfg.EXP_QB] = int(np.floor(1.353 / scale))
    cfg[VCfg.EXP_QC] = int(np.floor(0.344 / (0.3585 * scale * scale)))
    return cfg


@pytest.mark.parametrize("tout", list(DType), ids=lambda t: t.name)
@pytest.mark.parametrize("cfg_kind", ["random", "ibert"])
def test_expb_random(tout, cfg_kind):
    """EXPB bit-exact against numerics, a - b overflowing int32 both ways."""
    seed = 700 + 10 * int(tout) + (cfg_kind == "ibert")
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    steps = 6
    a, b = expb_operands(rng, steps)
    diff = a - b
    assert diff.min() < I32[0] and diff.max() > I32[1]
    # a random config per step would need one simulation each: two configs per run
    for part in range(2):
        cfg = rand_cfg(rng) if cfg_kind == "random" else ibert_exp_cfg([0.05, 0.002][part])
        got = rtl_alu(VFn.EXPB, tout, cfg, a, b, seed + part)
        want = ref_alu(VFn.EXPB, tout, cfg, a, b)
        assert np.array_equal(got, want), (part, np.argwhere(got != want)[:4])
        # EXPB is EXP of the saturated difference
        sat_diff = np.clip(diff, *I32[:2])
        assert np.array_equal(want, ref_alu(VFn.EXP, tout, cfg, sat_diff, b))
