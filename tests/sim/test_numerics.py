"""sim/numerics.py against exact rational arithmetic (fractions)."""

import math
import random
from fractions import Fraction

import numpy as np

from hw.isa import DType
from sim import numerics

SEED = 7


def exact_round_shift(x: int, s: int) -> int:
    f = Fraction(x, 2**s)
    mag = math.floor(abs(f) + Fraction(1, 2))
    return mag if f >= 0 else -mag


def test_round_shift_random_and_ties():
    rng = random.Random(SEED)
    print(f"seed={SEED}")
    xs, ss = [], []
    for _ in range(20000):
        s = rng.randint(0, 63)
        x = rng.randint(-(2**62), 2**62)
        if rng.random() < 0.3 and s > 0:  # exact ties
            x = (rng.randint(-(2**20), 2**20) * 2 + 1) * 2 ** (s - 1)
            x = max(min(x, 2**62), -(2**62))
        xs.append(x)
        ss.append(s)
    got = numerics.round_shift(np.array(xs, dtype=np.int64), np.array(ss, dtype=np.int64))
    for x, s, g in zip(xs, ss, got, strict=True):
        assert int(g) == exact_round_shift(x, s), (x, s)


def test_round_shift_extremes():
    for x in (2**62, -(2**62), 2**62 - 1, 1, -1, 0):
        for s in (0, 1, 62, 63):
            assert int(numerics.round_shift(np.int64(x), s)) == exact_round_shift(x, s)


def test_requantize_matches_exact_formula():
    rng = random.Random(SEED + 1)
    for _ in range(5000):
        acc = rng.randint(-(2**31), 2**31 - 1)
        mult = rng.randint(-(2**31), 2**31 - 1)
        shift = rng.randint(0, 63)
        zp, lo, hi = rng.randint(-128, 127), -128, 127
        r = max(min(exact_round_shift(acc * mult, shift), 2**31 - 1), -(2**31))
        want = min(max(r + zp, lo), hi)
        assert int(numerics.requantize(acc, mult, shift, zp, lo, hi)) == want


def test_saturation_per_type():
    x = np.array([-(2**40), -129, -128, 127, 128, 2**40])
    assert numerics.sat(x, DType.I8).tolist() == [-128, -128, -128, 127, 127, 127]
    assert numerics.sat(x, DType.I32).tolist()[0] == -(2**31)


def test_matmul_acc_wraps():
    a = np.full((4, 1), 127, dtype=np.int8)
    b = np.full((4, 1), 127, dtype=np.int8)
    acc = np.array([[2**31 - 1]], dtype=np.int32)
    got = numerics.matmul_acc(a, b, acc)
    assert int(got[0, 0]) == ((2**31 - 1 + 4 * 127 * 127 + 2**31) % 2**32) - 2**31
