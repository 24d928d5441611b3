"""Integer-only arithmetic of the ``qnt`` dialect: the bit-exact reference.

All functions take and return numpy ``int64`` arrays.  Intermediate values stay
within int32 except where a docstring says 64 bits (the 32x32 -> 64 multiply of a
requantization, the layer-norm variance).  Rounding is *round half up* (toward
+infinity): ``rshift_round(x, s) = (x + 2**(s-1)) >> s`` with an arithmetic shift.
The compile-time helpers (``quantize_multiplier``, ``*_constants``) use floats; the
run-time functions never do.
"""

from __future__ import annotations

import math

import numpy as np

I64 = np.int64


def rshift_round(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """``(x + 2**(shift-1)) >> shift`` for shift > 0, ``x`` for shift == 0."""
    x = np.asarray(x, dtype=I64)
    s = np.asarray(shift, dtype=I64)
    half = np.where(s > 0, np.left_shift(I64(1), np.maximum(s - 1, 0)), 0)
    return np.right_shift(x + half, s)


def requantize(acc: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int, zp: int,
               lo: int, hi: int) -> np.ndarray:
    """``clamp(rshift_round(acc * mult, shift) + zp, lo, hi)``; ``acc * mult`` is 64-bit."""
    prod = np.asarray(acc, dtype=I64) * np.asarray(mult, dtype=I64)
    return np.clip(rshift_round(prod, shift) + zp, lo, hi)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M, s) with ``M * 2**-s ~= real``, M in [2**30, 2**31) and s in [0, 62].

    Values too small for s = 62 give (0, 0); the caller checks they do not matter.
    """
    if real <= 0:
        return 0, 0
    mant, exp = math.frexp(real)
    m = round(mant * (1 << 31))
    if m == 1 << 31:
        m //= 2
        exp += 1
    s = 31 - exp
    while s < 0:  # real >= 2**31: keep the multiplier in range (saturates anyway)
        m, s = min(m << 1, 2**31 - 1), s + 1
    if s > 62:
        return 0, 0
    return m, s


def isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) exactly, for 0 <= n < 2**62 (what I-BERT's Newton steps reach)."""
    n = np.asarray(n, dtype=I64)
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(I64)
    r = np.where(r * r > n, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= n, r + 1, r)
    return r


def rdiv(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """Integer division rounding half up: ``floor((2a + b) / 2b)`` for b > 0."""
    a = np.asarray(a, dtype=I64)
    b = np.asarray(b, dtype=I64)
    return np.floor_divide(2 * a + b, 2 * b)


# ---- I-BERT kernels -------------------------------------------------------------

EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344  # exp(p) ~ A (p + B)**2 + C on (-ln2, 0]
ERF_A, ERF_B = 0.2888, 1.769  # erf(x) ~ sgn(x) (1 - A (min(|x|, B) - B)**2)


def softmax_constants(scale: float) -> dict[str, int]:
    """Integer constants of i-exp for an input of ``scale``: ln2, b, c."""
    return {
        "ln2": max(1, math.floor(math.log(2) / scale)),
        "b": math.floor(EXP_B / scale),
        "c": math.floor(EXP_C / (EXP_A * scale * scale)),
    }


def i_softmax(q: np.ndarray, axis: int, ln2: int, b: int, c: int, bits: int = 8) -> np.ndarray:
    """I-BERT softmax of int codes ``q`` along ``axis``; codes of scale 2**-bits with zero
    point -2**(bits-1) (bits = 8 or 16).

    d = q - max(q); z = floor(-d / ln2); p = d + z*ln2; e = ((p + b)**2 + c) >> z;
    out = clamp(rshift_round(e * floor(2**32 / sum(e)), 32 - bits), 0, 2**bits - 1)
    - 2**(bits-1).
    """
    q = np.asarray(q, dtype=I64)
    d = q - q.max(axis=axis, keepdims=True)
    z = np.floor_divide(-d, ln2)
    p = d + z * ln2
    e = np.right_shift((p + b) ** 2 + c, np.minimum(z, 62))
    total = np.maximum(e.sum(axis=axis, keepdims=True), 1)
    recip = np.floor_divide(I64(1) << 32, total)
    top = (1 << bits) - 1
    return np.clip(rshift_round(e * recip, 32 - bits), 0, top) - (1 << (bits - 1))


def gelu_constants(scale: float) -> dict[str, int | float]:
    """Integer constants of i-GELU for input ``scale``; ``out_scale`` of the int32 result."""
    s_e = scale / math.sqrt(2.0)
    b = math.floor(ERF_B / s_e)
    c = math.floor(1.0 / (ERF_A * s_e * s_e))
    return {"b": max(b, 1), "c": max(c, 1), "out_scale": scale * ERF_A * s_e * s_e / 2}


def gelu_shift(scale: float, bits: int) -> tuple[int, dict[str, int | float]]:
    """Smallest input right-shift keeping i-GELU's ``x * (E + c)`` below 2**31, and the
    constants for the shifted scale."""
    for shift in range(17):
        consts = gelu_constants(scale * 2**shift)
        xmax = (1 << (bits - 1)) >> shift
        if (xmax + 1) * 2 * int(consts["c"]) < 2**31:
            return shift, consts
    return 16, gelu_constants(scale * 2**16)


def i_gelu(x: np.ndarray, b: int, c: int, in_shift: int = 0) -> np.ndarray:
    """int32 GELU of zero-point-free codes ``x``: first ``x = rshift_round(x, in_shift)``
    (keeps 16-bit inputs within int32), then ``x * (E + c)`` with
    ``E = sgn(x) * (c - (min(|x|, b) - b)**2)``; real value = result * out_scale, where
    the constants come from gelu_constants(scale * 2**in_shift)."""
    x = rshift_round(np.asarray(x, dtype=I64), in_shift)
    ax = np.minimum(np.abs(x), b)
    e = np.sign(x) * (c - (ax - b) ** 2)
    return x * (e + c)


LN_FRAC_BITS = 12  # fraction bits of the normalized value (x - mean) / std
LN_GAMMA_MAX = 13000


def i_layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: int) -> np.ndarray:
    """int32 layer norm over the last axis of zero-point-free codes ``x``.

    mean = rdiv(sum x, N); c = x - mean; var = sum c**2 (64-bit);
    std = max(isqrt(rdiv(var << 8, N) + eps), 1)  (16 * std in input units);
    inv = floor(2**40 / std) (one division per row);
    n = rshift_round(c * inv, 36 - 12)  (= 4096 * c / std_real, 64-bit product);
    return n * gamma + beta  (gamma within +-2047, so the result fits int32).
    """
    x = np.asarray(x, dtype=I64)
    n_el = x.shape[-1]
    mean = rdiv(x.sum(axis=-1, keepdims=True), n_el)
    cen = x - mean
    var = (cen * cen).sum(axis=-1, keepdims=True)
    std = np.maximum(isqrt(rdiv(np.left_shift(var, 8), n_el) + eps), 1)
    inv = np.floor_divide(I64(1) << 40, std)
    norm = rshift_round(cen * inv, 36 - LN_FRAC_BITS)
    return norm * np.asarray(gamma, dtype=I64) + np.asarray(beta, dtype=I64)


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul through float64 BLAS (exact while |acc| < 2**53)."""
    out = np.matmul(a.astype(np.float64), b.astype(np.float64))
    return out.astype(I64)
