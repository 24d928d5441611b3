"""The integer-only kernels of compiler.qmath against float references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compiler import qmath
from compiler.interpreter import erf, softmax

SEED = 7


def test_rshift_round_is_half_away_from_zero() -> None:
    """The PE's rounding (sim.numerics.round_shift): 2.5 -> 3, -2.5 -> -3, -3.5 -> -4."""
    x = np.array([5, 6, 7, -5, -6, -7, 8], dtype=np.int64)
    assert qmath.rshift_round(x, 1).tolist() == [3, 3, 4, -3, -3, -4, 4]
    assert qmath.rshift_round(np.array([-6, -5, -3, 3, 5, 6]), 2).tolist() == [-2, -1, -1, 1, 1, 2]
    assert qmath.rshift_round(x, 0).tolist() == x.tolist()


@pytest.mark.parametrize("real", [1e-6, 0.00123, 0.5, 0.999999, 1.0, 3.75, 1234.5])
def test_quantize_multiplier(real: float) -> None:
    m, s = qmath.quantize_multiplier(real)
    assert 2**30 <= m < 2**31 and 0 <= s <= 62
    assert abs(m * 2.0**-s - real) <= real * 2**-30


def test_requantize_saturates() -> None:
    out = qmath.requantize(np.array([10**6, -(10**6), 0]), 2**30, 30, 5, -128, 127)
    assert out.tolist() == [127, -128, 5]
    # sat32 before the zero point: (2**31 - 1) * 2**31 >> 30 saturates to 2**31 - 1, + (-10)
    big = qmath.requantize(np.array([2**31 - 1]), 2**31 - 1, 30, -10, -(2**31), 2**31 - 1)
    assert big.tolist() == [2**31 - 1 - 10]


def test_isqrt_exact() -> None:
    rng = np.random.default_rng(SEED)
    print(f"seed={SEED}")
    n = np.concatenate(
        [
            rng.integers(0, 2**62, 1000),
            np.arange(0, 1000),
            np.array([2**62 - 1, (2**31 - 1) ** 2, (2**31 - 1) ** 2 - 1]),
        ]
    )
    r = qmath.isqrt(n)
    assert all(int(a) == math.isqrt(int(b)) for a, b in zip(r, n, strict=True))


@pytest.mark.parametrize("scale,bound", [(0.1, 0.08), (0.01, 0.01), (0.002, 0.005)])
def test_i_softmax_close_to_float(scale: float, bound: float) -> None:
    """i-exp's error shrinks with the input scale (ln2 / scale levels per octave)."""
    rng = np.random.default_rng(SEED)
    print(f"seed={SEED}")
    q = rng.integers(-int(8 / scale), int(8 / scale), (16, 24))
    for bits in (8, 16):
        c = qmath.softmax_constants(scale, 16, bits)
        got = qmath.i_softmax(
            q, -1, c["ln2"], c["b"], c["c"], bits, c["inv_mult"], c["inv_shift"], c["recip_k"]
        )
        got = (got + 2 ** (bits - 1)) / 2**bits
        assert np.abs(got - softmax(q * scale, -1)).max() < bound


@pytest.mark.parametrize("scale,bits", [(0.05, 8), (0.0005, 16)])
def test_i_gelu_close_to_float(scale: float, bits: int) -> None:
    lim = (1 << (bits - 1)) - 1
    q = np.arange(-lim, lim + 1, max(1, lim // 500))
    shift, c = qmath.gelu_shift(scale, bits)
    acc = qmath.i_gelu(q, int(c["b"]), int(c["c"]), shift)
    assert np.abs(acc).max() < 2**31
    x = q * scale
    ref = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    assert np.abs(acc * c["out_scale"] - ref).max() < 0.03 * max(1.0, np.abs(x).max() / 4)


def test_i_layernorm_close_to_float() -> None:
    rng = np.random.default_rng(SEED)
    print(f"seed={SEED}")
    x = rng.standard_normal((6, 96)) * 3
    x[:, 3] = 40.0
    scale = np.abs(x).max() / 32767
    q = np.rint(x / scale).astype(np.int64)
    gamma, beta = rng.uniform(0.1, 2, 96), rng.standard_normal(96) * 0.1
    sg = gamma.max() / qmath.LN_GAMMA_MAX
    unit = sg / 2**qmath.LN_FRAC_BITS
    consts = qmath.layernorm_constants(96, 16, 0.0)
    acc = qmath.i_layernorm(q, np.rint(gamma / sg), np.rint(beta / unit), consts)
    assert np.abs(acc).max() < 2**31
    xf = q * scale
    ref = (xf - xf.mean(-1, keepdims=True)) / xf.std(-1, keepdims=True) * gamma + beta
    assert np.abs(acc * unit - ref).max() < 5e-3


def test_mse_range_clips_a_lone_outlier() -> None:
    from compiler.calibration import mse_range

    rng = np.random.default_rng(SEED)
    print(f"seed={SEED}")
    values = np.concatenate([rng.standard_normal(200_000), [40.0]])
    lo, hi = mse_range(values, float(values.min()), 40.0, bits=8)
    assert hi < 40.0 and lo > values.min()
    narrow = rng.uniform(-1, 1, 5000)
    assert mse_range(narrow, -1.0, 1.0, bits=8) == (-1.0, 1.0)
