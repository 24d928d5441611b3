"""Bit-exact integer arithmetic of the PE, vectorised with numpy.

These functions *are* the semantics of the MAC output stage and of the vector
unit's functions (hw.isa.VFn); the reference simulator, the RTL unit tests and
the compiler's quantized graph interpreter all call them, so there is exactly
one definition of every rounding and saturation rule:

* Integer values are computed exactly (in int64, whose range every
  intermediate provably fits) and saturated once, to the output type, at the
  end of each step named below.
* Right shifts round half away from zero (``round_shift``).
* ``clamp(x, lo, hi) = min(max(x, lo), hi)`` (``hi`` wins if ``lo > hi``).
"""

from __future__ import annotations

import numpy as np

from hw.isa import DType, VCfg, VFn

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
I64 = np.int64

_RANGE = {
    DType.I8: (-128, 127),
    DType.I16: (-(2**15), 2**15 - 1),
    DType.I32: (I32_MIN, I32_MAX),
}
NP_DTYPE = {DType.I8: np.int8, DType.I16: np.int16, DType.I32: np.int32}


def sat(x: np.ndarray, dtype: DType = DType.I32) -> np.ndarray:
    """Saturate exact int64 values to ``dtype`` (returned as int64)."""
    lo, hi = _RANGE[DType(dtype)]
    return np.clip(np.asarray(x, dtype=I64), lo, hi)


def round_shift(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """``x / 2**shift`` rounded half away from zero; shift in 0..63.

    Computed exactly for any int64 ``x``: floor quotient q and remainder
    0 <= rem < 2**s, then q + 1 if rem > 2**(s-1), or rem == 2**(s-1) and x >= 0.
    (The hardware form ``(x + 2**(s-1) - (x < 0)) >> s`` is the same function
    evaluated with enough bits.)
    """
    x = np.asarray(x, dtype=I64)
    s = np.asarray(shift, dtype=I64) & 63
    q = x >> s
    rem = x - (q << s)
    half = np.where(s > 0, np.left_shift(I64(1), np.maximum(s - 1, 0)), 0)
    up = (rem > half) | ((rem == half) & (x >= 0))
    return np.where(s > 0, q + up.astype(I64), x)


def requantize(
    acc: np.ndarray,
    mult: np.ndarray | int,
    shift: np.ndarray | int,
    zp: np.ndarray | int,
    lo: np.ndarray | int,
    hi: np.ndarray | int,
) -> np.ndarray:
    """clamp(sat32(round_shift(acc * mult, shift)) + zp, lo, hi), exact int64 result.

    ``acc`` and ``mult`` are int32 values; the product is exact in int64.
    """
    p = np.asarray(acc, dtype=I64) * np.asarray(mult, dtype=I64)
    r = sat(round_shift(p, shift))
    return np.minimum(np.maximum(r + np.asarray(zp, dtype=I64), lo), hi)


def output_stage(
    acc: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    zp: int,
    lo: int,
    hi: int,
) -> np.ndarray:
    """MATMUL's fused output stage on an R x C int32 tile -> int8 tile.

    Per column c: y = clamp(sat32(round_shift(sat32(acc + bias[c]) * mult[c],
    shift[c])) + zp, lo, hi), with zp, lo, hi int8.
    """
    v = sat(np.asarray(acc, dtype=I64) + np.asarray(bias, dtype=I64)[None, :])
    y = requantize(v, np.asarray(mult)[None, :], np.asarray(shift)[None, :], zp, lo, hi)
    return sat(y, DType.I8).astype(np.int8)


def matmul_acc(a_kr: np.ndarray, b_kc: np.ndarray, acc: np.ndarray | None = None) -> np.ndarray:
    """int32 accumulators (R x C) of A^T (K x R) and B (K x C), wrapping mod 2**32."""
    prod = a_kr.astype(I64).T @ b_kc.astype(I64)
    if acc is not None:
        prod = prod + acc.astype(I64)
    return ((prod + 2**31) % 2**32 - 2**31).astype(np.int32)


def _iexp(a: np.ndarray, cfg: np.ndarray) -> np.ndarray:
    x = np.minimum(a, 0)
    z = (-x * I64(cfg[VCfg.EXP_INV_MULT])) >> (I64(cfg[VCfg.EXP_INV_SHIFT]) & 63)
    z = np.clip(z, 0, 63)
    p = x + z * I64(cfg[VCfg.EXP_QLN2])
    t = sat(p + I64(cfg[VCfg.EXP_QB]))
    return (t * t + I64(cfg[VCfg.EXP_QC])) >> z


def _ierf(a: np.ndarray, cfg: np.ndarray) -> np.ndarray:
    qb = I64(cfg[VCfg.ERF_QB])
    t = sat(np.minimum(np.abs(a), -qb) + qb)
    return np.sign(a) * (t * t + I64(cfg[VCfg.ERF_QC]))


def _recip(a: np.ndarray, cfg: np.ndarray) -> np.ndarray:
    k = min(int(cfg[VCfg.RECIP_K]) & 63, 62)
    safe = np.where(a > 0, a, 1)
    return np.where(a > 0, np.minimum(I64(1 << k) // safe, I32_MAX), I32_MAX)


def _isqrt(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    for i, v in enumerate(a.flat):
        out.flat[i] = _isqrt_scalar(int(v)) if v > 0 else 0
    return out


def _isqrt_scalar(v: int) -> int:
    import math

    return math.isqrt(v)


def vector_elementwise(
    fn: VFn, a: np.ndarray, b: np.ndarray | None, tout: DType, cfg: np.ndarray
) -> np.ndarray:
    """One elementwise VOP on exact int64 inputs; the result saturated to ``tout``.

    ``cfg`` holds the 32-bit signed vector config registers (indexed by VCfg).
    """
    a = np.asarray(a, dtype=I64)
    b = None if b is None else np.asarray(b, dtype=I64)
    fn = VFn(fn)
    if fn == VFn.ADD:
        r = a + b
    elif fn == VFn.SUB:
        r = a - b
    elif fn == VFn.MUL:
        r = a * b
    elif fn == VFn.MIN:
        r = np.minimum(a, b)
    elif fn == VFn.MAX:
        r = np.maximum(a, b)
    elif fn == VFn.SHL:
        r = a << (b & 31)
    elif fn == VFn.SRA:
        r = round_shift(a, b & 63)
    elif fn == VFn.MOV:
        r = a
    elif fn in (VFn.REQ, VFn.REQB):
        mult = cfg[VCfg.MULT] if fn == VFn.REQ else b
        r = requantize(a, mult, int(cfg[VCfg.SHIFT]) & 63, cfg[VCfg.ZP], cfg[VCfg.LO], cfg[VCfg.HI])
    elif fn == VFn.EXP:
        r = _iexp(a, cfg)
    elif fn == VFn.EXPB:  # SUB (saturated to int32) then EXP
        r = _iexp(sat(a - b, DType.I32), cfg)
    elif fn == VFn.ERF:
        r = _ierf(a, cfg)
    elif fn == VFn.RECIP:
        r = _recip(a, cfg)
    elif fn == VFn.SQRT:
        r = _isqrt(a)
    elif fn == VFn.ABS:
        r = np.abs(a)
    else:
        raise ValueError(f"{fn.name} is not an elementwise vector function")
    return sat(r, tout)


def segments(n16: int, seg: int) -> list[tuple[int, int]]:
    """Element ranges [start, end) of the segments of an ``n16``-step VOP with
    segment length ``seg`` steps (its ``seg`` field; 0: one segment)."""
    s = int(seg)
    if s == 0 or s >= n16:
        return [(0, 16 * n16)]
    return [(16 * g, 16 * min(g + s, n16)) for g in range(0, n16, s)]


def vector_reduce(fn: VFn, a: np.ndarray) -> int:
    """RSUM (exact sum, saturated to int32) or RMAX of int64 inputs."""
    a = np.asarray(a, dtype=I64)
    if VFn(fn) == VFn.RSUM:
        return int(sat(np.sum(a)))
    if VFn(fn) == VFn.RMAX:
        return int(np.max(a))
    raise ValueError(f"{VFn(fn).name} is not a reduction")
