"""Integer-only arithmetic of the ``qnt`` dialect: the bit-exact reference.

Every run-time function here is a composition of the PE's own operations, taken from
:mod:`sim.numerics` (the one definition of the hardware's arithmetic): the MAC output
stage, the vector functions (``hw.isa.VFn``: ADD, SUB, MUL, SRA, REQ, EXP, ERF, RECIP,
SQRT, ...) and the reductions RSUM / RMAX.  So right shifts round half *away from
zero* (``numerics.round_shift``) and every step saturates to its output type exactly
as the PE does.  The exact sequence of PE operations of each ``qnt`` op is listed in
docs/compiler.md ("Integer semantics = PE operations") and checked against the
reference ISA simulator in tests/compiler/test_pe_equivalence.py.

The compile-time helpers (``quantize_multiplier``, ``*_constants``) use floats and
produce the VCFG register values that the ops store as attributes; the run-time
functions never use floats.
"""

from __future__ import annotations

import math

import numpy as np

from hw.isa import DType, VCfg, VFn
from sim import numerics

I64 = np.int64
I32_MIN, I32_MAX = numerics.I32_MIN, numerics.I32_MAX
DTYPE_OF_BITS = {8: DType.I8, 16: DType.I16, 32: DType.I32}


# ---- PE operations ------------------------------------------------------------------


def vcfg(**regs: int) -> np.ndarray:
    """A vector config register file (``VCfg`` name -> value, others 0)."""
    cfg = np.zeros(len(VCfg), dtype=I64)
    for name, value in regs.items():
        cfg[VCfg[name.upper()]] = int(value)
    return cfg


_NO_CFG = vcfg()


def vop(
    fn: VFn,
    a: np.ndarray,
    b: np.ndarray | int | None = None,
    tout: DType = DType.I32,
    cfg: np.ndarray = _NO_CFG,
) -> np.ndarray:
    """One elementwise VOP; an int ``b`` is the ``bscalar`` form (a register value)."""
    bv = None if b is None else np.asarray(b, dtype=I64)
    return numerics.vector_elementwise(fn, a, bv, tout, cfg)


def req(a: np.ndarray, mult, shift, zp, lo, hi, tout: DType = DType.I32) -> np.ndarray:
    """VOP REQ with VCfg MULT, SHIFT, ZP, LO, HI.  Array-valued registers stand for one
    VCFG per row (a run-time MULT loaded from a register) or per channel."""
    return numerics.sat(numerics.requantize(a, mult, shift, zp, lo, hi), tout)


def reduce_rows(fn: VFn, a: np.ndarray) -> np.ndarray:
    """VOP RSUM / RMAX over the last axis of ``a``, one reduction per row (keepdims)."""
    a = np.asarray(a, dtype=I64)
    flat = a.reshape(-1, a.shape[-1])
    out = np.array([numerics.vector_reduce(fn, row) for row in flat], dtype=I64)
    return out.reshape(*a.shape[:-1], 1)


def rshift_round(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """``x / 2**shift`` rounded half away from zero (``numerics.round_shift``, VOP SRA)."""
    return numerics.round_shift(x, shift)


def requantize(
    acc: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int, zp: int, lo: int, hi: int
) -> np.ndarray:
    """``clamp(sat32(round_shift(acc * mult, shift)) + zp, lo, hi)`` (``numerics.requantize``,
    VOP REQ); ``acc`` and ``mult`` are int32 values."""
    return numerics.requantize(acc, mult, shift, zp, lo, hi)


def wrap32(x: np.ndarray) -> np.ndarray:
    """int32 wrap-around of exact integers (the MAC accumulator)."""
    return (np.asarray(x, dtype=I64) + 2**31) % 2**32 - 2**31


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M, s) with ``M * 2**-s ~= real``, M in [2**30, 2**31) and s in [0, 62]: M is an
    int32 and s a valid shift of the MAC output stage and of VOP REQ (0..63).

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
    """floor(sqrt(n)) exactly, for 0 <= n < 2**62."""
    n = np.asarray(n, dtype=I64)
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(I64)
    r = np.where(r * r > n, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= n, r + 1, r)
    return r


def rdiv(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """Integer division rounding half up: ``floor((2a + b) / 2b)`` for b > 0 (host side)."""
    a = np.asarray(a, dtype=I64)
    b = np.asarray(b, dtype=I64)
    return np.floor_divide(2 * a + b, 2 * b)


# ---- I-BERT softmax ---------------------------------------------------------------

EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344  # exp(p) ~ A (p + B)**2 + C on (-ln2, 0]
ERF_A, ERF_B = 0.2888, 1.769  # erf(x) ~ sgn(x) (1 - A (min(|x|, B) - B)**2)


def exp_inv(ln2: int, in_bits: int) -> tuple[int, int]:
    """(EXP_INV_MULT, EXP_INV_SHIFT) with ``(v * mult) >> shift == v // ln2`` for every
    ``0 <= v < 2**in_bits`` (checked exhaustively), mult < 2**31."""
    v = np.arange(1 << in_bits, dtype=I64)
    for shift in range(40, 0, -1):
        mult = -(-(1 << shift) // ln2)
        if mult < 2**31 and np.array_equal((v * mult) >> shift, v // ln2):
            return mult, shift
    raise ValueError(f"no exact reciprocal multiplier for ln2 = {ln2}")


def exp_cfg(
    ln2: int, b: int, c: int, inv_mult: int, inv_shift: int, recip_k: int = 0
) -> np.ndarray:
    return vcfg(
        exp_qln2=ln2,
        exp_inv_mult=inv_mult,
        exp_inv_shift=inv_shift,
        exp_qb=b,
        exp_qc=c,
        recip_k=recip_k,
    )


def softmax_recip_k(ln2: int, b: int, c: int, out_bits: int) -> int:
    """Largest RECIP_K <= 62 with 2**K // e0 < 2**31, e0 = EXP(0) = the smallest
    possible row sum (the row maximum contributes EXP(0))."""
    e0 = int(vop(VFn.EXP, np.zeros(1, I64), None, DType.I32, exp_cfg(ln2, b, c, 1, 0))[0])
    k = 62
    while k > out_bits and (1 << k) // max(e0, 1) > I32_MAX:
        k -= 1
    return k


def softmax_constants(scale: float, in_bits: int = 16, out_bits: int = 8) -> dict[str, int]:
    """VCFG values of the softmax of an input of ``scale``: EXP_QLN2 (ln2), EXP_QB (b),
    EXP_QC (c), EXP_INV_MULT/SHIFT (inv_mult, inv_shift) and RECIP_K (recip_k)."""
    ln2 = max(1, math.floor(math.log(2) / scale))
    b = math.floor(EXP_B / scale)
    c = math.floor(EXP_C / (EXP_A * scale * scale))
    if b * b + c >= 2**31:
        raise ValueError(f"softmax input scale {scale!r} is too small for int32 i-exp")
    inv_mult, inv_shift = exp_inv(ln2, in_bits)
    return {
        "ln2": ln2,
        "b": b,
        "c": c,
        "inv_mult": inv_mult,
        "inv_shift": inv_shift,
        "recip_k": softmax_recip_k(ln2, b, c, out_bits),
    }


def i_softmax(
    q: np.ndarray,
    axis: int,
    ln2: int,
    b: int,
    c: int,
    bits: int = 8,
    inv_mult: int | None = None,
    inv_shift: int | None = None,
    recip_k: int | None = None,
    in_bits: int = 16,
) -> np.ndarray:
    """Softmax of int codes ``q`` along ``axis`` as PE operations; result codes of scale
    2**-bits, zero point -2**(bits-1).  Per row::

        m = RMAX(q); d = SUB(q, m); e = EXP(d); s = RSUM(e); r = RECIP(s)
        out = REQ(e) with MULT = r, SHIFT = recip_k - bits, ZP = LO = -2**(bits-1)
    """
    if inv_mult is None or inv_shift is None:
        inv_mult, inv_shift = exp_inv(ln2, in_bits)
    if recip_k is None:
        recip_k = softmax_recip_k(ln2, b, c, bits)
    cfg = exp_cfg(ln2, b, c, inv_mult, inv_shift, recip_k)
    q = np.moveaxis(np.asarray(q, dtype=I64), axis, -1)
    m = reduce_rows(VFn.RMAX, q)
    d = vop(VFn.SUB, q, m)
    e = vop(VFn.EXP, d, None, DType.I32, cfg)
    s = reduce_rows(VFn.RSUM, e)
    r = vop(VFn.RECIP, s, None, DType.I32, cfg)
    half = 1 << (bits - 1)
    out = req(e, r, recip_k - bits, -half, -half, half - 1, DTYPE_OF_BITS[bits])
    return np.moveaxis(out, -1, axis)


# ---- I-BERT GELU ------------------------------------------------------------------


def gelu_constants(scale: float) -> dict[str, int | float]:
    """Integer constants of i-GELU for input ``scale``; ``out_scale`` of the int32 result."""
    s_e = scale / math.sqrt(2.0)
    b = round(ERF_B / s_e)
    c = round(1.0 / (ERF_A * s_e * s_e))
    return {"b": max(b, 1), "c": max(c, 1), "out_scale": scale * ERF_A * s_e * s_e / 2}


def gelu_shift(
    scale: float, bits: int, zp: int | None = None
) -> tuple[int, dict[str, int | float]]:
    """Smallest input right-shift (SRA) keeping i-GELU's ``x * (E + c)`` within int32 for
    every code of ``bits`` with zero point ``zp`` (None: any), and the constants for the
    shifted scale."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    span = (1 << bits) - 1 if zp is None else max(zp - lo, hi - zp)
    for shift in range(17):
        consts = gelu_constants(scale * 2**shift)
        xmax = int(rshift_round(np.array(span), shift))
        if xmax * 2 * int(consts["c"]) < 2**31:
            return shift, consts
    return 16, gelu_constants(scale * 2**16)


def i_gelu_neg(x: np.ndarray, b: int, c: int, in_shift: int = 0) -> np.ndarray:
    """``-x * (E + c)`` (int32) of zero-point-free codes as PE operations, with
    ``E = sgn(x) (c - (min(|x|, b) - b)**2)``::

        x = SRA(x, in_shift); f = ERF(x) (ERF_QB = -b, ERF_QC = -c, so f = -E)
        h = SUB(f, c); return MUL(x, h)

    The caller requantizes with MULT = -multiplier (round_shift is odd, so this equals
    requantizing ``x * (E + c)`` by ``multiplier``)."""
    x = vop(VFn.SRA, x, in_shift)
    f = vop(VFn.ERF, x, None, DType.I32, vcfg(erf_qb=-b, erf_qc=-c))
    return vop(VFn.MUL, x, vop(VFn.SUB, f, c))


def i_gelu(x: np.ndarray, b: int, c: int, in_shift: int = 0) -> np.ndarray:
    """int32 GELU ``x * (E + c)``; real value = result * out_scale (see i_gelu_neg)."""
    return -i_gelu_neg(x, b, c, in_shift)


# ---- layer norm -------------------------------------------------------------------

LN_FRAC_BITS = 12  # fraction bits of the normalized value (x - mean) / std
LN_GAMMA_MAX = 13000
LN_RECIP_K = 30


def layernorm_constants(n: int, in_bits: int, eps_code2: float) -> dict[str, int]:
    """VCFG values of the layer norm of ``n`` codes of ``in_bits`` (eps in code**2 units).

    The sum of squares is taken twice: exactly (``MUL(c, c)``, saturating on wide rows)
    and coarsely on ``c2 = SRA(c, var_shift)``, with var_shift the smallest k such that
    ``n * max(c2)**2 < 2**31``; the exact one is used unless it saturated.  Both are
    scaled by ``4**j / n`` (REQ var_mult/var_rshift, ``4**j <= n``) so that SQRT gives
    ``std * 2**j`` (fine) or ``std * 2**(j - k)`` (coarse, then SHL k).  The normalized
    value ``c * RECIP(std') >> norm_shift`` carries LN_FRAC_BITS fraction bits."""
    cmax = (1 << in_bits) - 1
    k = 0
    while n * int(rshift_round(np.array(cmax), k)) ** 2 > I32_MAX:
        k += 1
    j = max(0, (n.bit_length() - 1) // 2)
    mean_mult, mean_shift = quantize_multiplier(1.0 / n)
    var_mult, var_rshift = quantize_multiplier(4.0**j / n)
    return {
        "mean_mult": mean_mult,
        "mean_shift": mean_shift,
        "var_shift": k,
        "var_mult": var_mult,
        "var_rshift": var_rshift,
        "eps_fine": min(round(eps_code2 * 4.0**j), I32_MAX),
        "eps_coarse": min(round(eps_code2 * 4.0 ** (j - k)), I32_MAX),
        "recip_k": LN_RECIP_K,
        "norm_shift": LN_RECIP_K - LN_FRAC_BITS - j,
    }


def _ln_std(v: np.ndarray, k: dict[str, int], eps: int) -> np.ndarray:
    """SQRT(REQ(v; var_mult, var_rshift, ZP = eps, LO = 1))."""
    return vop(VFn.SQRT, req(v, k["var_mult"], k["var_rshift"], eps, 1, I32_MAX))


def i_layernorm(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, consts: dict[str, int]
) -> np.ndarray:
    """int32 layer norm over the last axis of zero-point-free codes ``x`` (int32), as PE
    operations per row (``consts`` from :func:`layernorm_constants`)::

        s = RSUM(x); mean = REQ(s; mean_mult, mean_shift); c = SUB(x, mean)
        vf = RSUM(MUL(c, c));  c2 = SRA(c, var_shift); vc = RSUM(MUL(c2, c2))
        sf = SQRT(REQ(vf; var_mult, var_rshift, ZP = eps_fine, LO = 1))
        sc = SHL(SQRT(REQ(vc; var_mult, var_rshift, ZP = eps_coarse, LO = 1)), var_shift)
        flag = MAX(SUB(vf, 2**31 - 2), 0)            (1 iff vf saturated)
        std = ADD(sf, MUL(SUB(sc, sf), flag))
        inv = RECIP(std) (RECIP_K = recip_k); n = REQ(c; MULT = inv, SHIFT = norm_shift)
        return ADD(MUL(n, gamma), beta)
    """
    k = consts
    s = reduce_rows(VFn.RSUM, x)
    mean = req(s, k["mean_mult"], k["mean_shift"], 0, I32_MIN, I32_MAX)
    cen = vop(VFn.SUB, x, mean)
    vf = reduce_rows(VFn.RSUM, vop(VFn.MUL, cen, cen))
    c2 = vop(VFn.SRA, cen, k["var_shift"])
    vc = reduce_rows(VFn.RSUM, vop(VFn.MUL, c2, c2))
    sf = _ln_std(vf, k, k["eps_fine"])
    sc = vop(VFn.SHL, _ln_std(vc, k, k["eps_coarse"]), k["var_shift"])
    flag = vop(VFn.MAX, vop(VFn.SUB, vf, I32_MAX - 1), 0)
    std = vop(VFn.ADD, sf, vop(VFn.MUL, vop(VFn.SUB, sc, sf), flag))
    inv = vop(VFn.RECIP, std, None, DType.I32, vcfg(recip_k=k["recip_k"]))
    norm = req(cen, inv, k["norm_shift"], 0, I32_MIN, I32_MAX)
    return vop(VFn.ADD, vop(VFn.MUL, norm, np.asarray(gamma, I64)), np.asarray(beta, I64))


# ---- MAC ---------------------------------------------------------------------------


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul through float64 BLAS (exact while |acc| < 2**53)."""
    out = np.matmul(a.astype(np.float64), b.astype(np.float64))
    return out.astype(I64)


def mac_output(
    acc: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    zp: int,
    lo: int,
    hi: int,
    out_bits: int,
) -> np.ndarray:
    """The MAC output stage on int32 accumulators whose last axis is the channel:
    ``clamp(sat32(round_shift(sat32(acc + bias[c]) * mult[c], shift[c])) + zp, lo, hi)``.
    int8 results are ``numerics.output_stage``; int16 results are the same function done
    by the vector unit (ADD bias, REQ per channel, on the out32 accumulators)."""
    acc = np.asarray(acc, dtype=I64)
    ch = acc.shape[-1]
    flat = acc.reshape(-1, ch)
    b = np.broadcast_to(np.asarray(bias, I64), (ch,))
    m = np.broadcast_to(np.asarray(mult, I64), (ch,))
    s = np.broadcast_to(np.asarray(shift, I64), (ch,))
    if out_bits == 8:
        y = numerics.output_stage(flat, b, m, s, zp, lo, hi).astype(I64)
    else:
        y = req(
            vop(VFn.ADD, flat, b[None, :]),
            m[None, :],
            s[None, :],
            zp,
            lo,
            hi,
            DTYPE_OF_BITS[out_bits],
        )
    return y.reshape(acc.shape)
