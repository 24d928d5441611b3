"""MacArray RTL against sim.numerics.matmul_acc and a step-by-step reference."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.arch import preset
from hw.errors import SimulationError
from hw.pe.mac_array import MacArray
from sim import numerics

BASE = preset("small")


def pack(values, bits: int) -> int:
    mask = (1 << bits) - 1
    return sum((int(v) & mask) << (i * bits) for i, v in enumerate(values))


def unpack_acc(word: int, rows: int, cols: int) -> np.ndarray:
    raw = word.to_bytes(rows * cols * 4, "little")
    return np.frombuffer(raw, dtype="<i4").reshape(rows, cols).astype(np.int32)


def ref_mac_steps(a, b, valid, clear) -> list[np.ndarray]:
    """Accumulators after each input cycle (steps with valid = 0 keep them)."""
    rows, cols = a.shape[1], b.shape[1]
    acc = np.zeros((rows, cols), dtype=np.int32)
    out = []
    for t in range(len(a)):
        if valid[t]:
            prev = None if clear[t] else acc
            acc = numerics.matmul_acc(a[t : t + 1], b[t : t + 1], prev)
        out.append(acc.copy())
    return out


def rtl_mac_steps(arch, a, b, valid, clear, last) -> tuple[list[np.ndarray], list[int]]:
    """Drive one input vector per cycle; the accumulators and ``done`` LATENCY cycles later.

    Element t of each result belongs to the inputs of cycle t.
    """
    rows, cols = arch.mac_rows, arch.mac_cols
    dut = MacArray(arch)
    n, lat = len(a), MacArray.LATENCY
    accs: list[np.ndarray] = []
    dones: list[int] = []

    async def tb(ctx):
        for t in range(n + lat):
            if t < n:
                ctx.set(dut.a.as_value(), pack(a[t], 8))
                ctx.set(dut.b.as_value(), pack(b[t], 8))
                ctx.set(dut.valid, int(valid[t]))
                ctx.set(dut.clear, int(clear[t]))
                ctx.set(dut.last, int(last[t]))
            else:
                ctx.set(dut.valid, 0)
            if t >= lat:
                accs.append(unpack_acc(ctx.get(dut.acc.as_value()), rows, cols))
                dones.append(ctx.get(dut.done))
            await ctx.tick()
        if len(accs) != n:
            raise SimulationError(f"collected {len(accs)} of {n} accumulator snapshots")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return accs, dones


def all_pairs_steps(arch) -> tuple[np.ndarray, np.ndarray]:
    """K steps whose outer products cover every int8 x int8 pair exactly once."""
    rows, cols = arch.mac_rows, arch.mac_cols
    values = np.arange(-128, 128, dtype=np.int8)
    a_groups = values.reshape(-1, rows)
    b_groups = values.reshape(-1, cols)
    a = np.repeat(a_groups, len(b_groups), axis=0)
    b = np.tile(b_groups, (len(a_groups), 1))
    return a, b


@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (16, 4)])
def test_every_product(rows: int, cols: int) -> None:
    """Each of the 65536 int8 x int8 products, one cleared step at a time."""
    arch = BASE.replace(mac_rows=rows, mac_cols=cols)
    a, b = all_pairs_steps(arch)
    n = len(a)
    ones = np.ones(n, dtype=bool)
    accs, _ = rtl_mac_steps(arch, a, b, ones, ones, np.zeros(n, dtype=bool))
    for t in range(n):
        want = a[t].astype(np.int32)[:, None] * b[t].astype(np.int32)[None, :]
        assert np.array_equal(accs[t], want), f"step {t}: a {a[t]} b {b[t]}"


@pytest.mark.parametrize(("rows", "cols"), [(4, 16), (8, 8), (1, 4), (16, 16)])
def test_all_pairs_accumulated_k256(rows: int, cols: int) -> None:
    """All pairs in runs of K = 256 steps; each run's sum against matmul_acc."""
    arch = BASE.replace(mac_rows=rows, mac_cols=cols)
    a, b = all_pairs_steps(arch)
    seed = rows * 100 + cols
    print(f"seed {seed}")
    order = np.random.default_rng(seed).permutation(len(a))
    a, b = a[order], b[order]
    k = 256
    n = len(a)
    clear = np.arange(n) % k == 0
    last = np.arange(n) % k == k - 1
    accs, dones = rtl_mac_steps(arch, a, b, np.ones(n, dtype=bool), clear, last)
    for run in range(n // k):
        sl = slice(run * k, (run + 1) * k)
        want = numerics.matmul_acc(a[sl], b[sl])
        assert np.array_equal(accs[(run + 1) * k - 1], want), f"run {run}"
    assert [t for t, d in enumerate(dones) if d] == [t for t in range(n) if last[t]]


def test_accumulate_clear_control() -> None:
    """Idle cycles hold the accumulators; clear restarts them; acc continues across runs."""
    arch = BASE.replace(mac_rows=2, mac_cols=8)
    seed = 4242
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n = 300
    a = rng.integers(-128, 128, (n, arch.mac_rows)).astype(np.int8)
    b = rng.integers(-128, 128, (n, arch.mac_cols)).astype(np.int8)
    valid = rng.random(n) < 0.7
    clear = rng.random(n) < 0.05
    clear[0] = True
    last = rng.random(n) < 0.1
    accs, dones = rtl_mac_steps(arch, a, b, valid, clear, last)
    want = ref_mac_steps(a, b, valid, clear)
    for t in range(n):
        assert np.array_equal(accs[t], want[t]), f"cycle {t}"
    assert dones == [int(valid[t] and last[t]) for t in range(n)]


def test_extreme_sums() -> None:
    """Long runs of the largest products: (-128)*(-128) and (-128)*127 summed 2000 times."""
    arch = BASE.replace(mac_rows=2, mac_cols=4)
    n = 2000
    a = np.tile(np.array([[-128, 127]], np.int8), (n, 1))
    b = np.tile(np.array([[-128, 127, -128, 0]], np.int8), (n, 1))
    ones = np.ones(n, dtype=bool)
    accs, _ = rtl_mac_steps(arch, a, b, ones, np.arange(n) == 0, np.zeros(n, dtype=bool))
    assert np.array_equal(accs[-1], numerics.matmul_acc(a, b))
