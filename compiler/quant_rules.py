"""Rules of post-training quantization: one function per float op kind.

Each rule receives the :class:`QuantBuilder` and the float op, builds the quantized
replacement and returns its value (quantized), or None to leave the op in float (a
"float island", reported by the pass).  Scales: activations asymmetric per tensor
from the calibrated range; weights symmetric int8 per output channel; biases int32
at scale ``S_x * S_w``; every float multiplier becomes an integer (M, shift).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, IntegerType, StringAttr, TensorType, i64
from xdsl.dialects.tosa import ClampOp
from xdsl.ir import Operation, SSAValue

from compiler import qmath
from compiler.dialects import graph, qnt
from compiler.dialects.base import int_attr, shape_of, str_attr
from compiler.dialects.qnt import QParamsAttr, int_range, qparams, qtype
from compiler.errors import QuantizeError

Rule = Callable[["QuantBuilder", Operation], SSAValue | None]  # noqa: F821
RULES: dict[type, Rule] = {}


def rule(*classes: type) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for c in classes:
            RULES[c] = fn
        return fn

    return register


def _i(v: int) -> IntegerAttr:
    return IntegerAttr(int(v), i64)


def mult_shift(qb, real: np.ndarray, hint: str) -> tuple[SSAValue, SSAValue]:
    pairs = [qmath.quantize_multiplier(float(r)) for r in np.atleast_1d(real)]
    m = qb.const(np.array([p[0] for p in pairs], np.int32), hint + "_mult")
    s = qb.const(np.array([p[1] for p in pairs], np.int32), hint + "_shift")
    return m, s


def per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per-channel weights along ``axis``: (int8 weights, scales)."""
    moved = np.moveaxis(w.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)
    scale = np.abs(moved).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def _accumulating(
    qb,
    op: Operation,
    x: SSAValue,
    w_val: np.ndarray | None,
    w: SSAValue,
    bias: np.ndarray | None,
    channel_axis: int,
    cls,
    attrs: dict,
) -> SSAValue:
    k = shape_of(x)[-1] if cls is qnt.MatMulOp else 1 << 20
    smooth = _smoothing(qb, x, w_val) if cls is qnt.MatMulOp else None
    if smooth is not None:
        w_val = w_val * smooth[:, None]  # type: ignore[index,operator]
    wq, sw = per_channel(w_val, channel_axis) if w_val is not None else (None, None)
    bits = qb.input_bits(x, k, wq if cls is qnt.MatMulOp else None)
    if smooth is not None and bits == 8:
        return _smoothed_matmul(qb, op, x, smooth, wq, sw, bias, attrs)
    if smooth is not None:  # 16-bit input after all: undo the weight scaling
        w_val = w_val / smooth[:, None]  # type: ignore[index,operator]
        wq, sw = per_channel(w_val, channel_axis)
    n = shape_of(op.results[0])[1 if cls is qnt.ConvOp and attrs.get("layout") != "nhwc" else -1]
    b = np.zeros(n) if bias is None else bias.astype(np.float64)
    while True:
        xq = qb.q(x, bits=bits)
        sx = qparams(xq).scale  # type: ignore[union-attr]
        b_int = np.rint(b / (sx * np.broadcast_to(sw if sw is not None else 1.0, (n,))))
        if wq is None or bits == 8 or _acc_fits(wq, b_int):
            break
        bits = 8  # the bias leaves no room for 16-bit activations
    out_t = qb.out_type(op.results[0])
    so = qparams(out_t).scale  # type: ignore[union-attr]
    if wq is not None:
        w_v = qb.const(wq, "w")
    else:
        w_v = qb.q(w, bits=8)
        if _width(xq) == 16 and k >= 512:
            xq = qb.requantize(xq, qb.out_type(x, 8))
        sw = np.array([qparams(w_v).scale])  # type: ignore[union-attr]
        b_int = np.rint(b / (sx * np.broadcast_to(sw, (n,))))
    b_int = np.clip(b_int, -(2**31), 2**31 - 1)
    b_v = qb.const(b_int.astype(np.int32), "bias")
    m, s = mult_shift(qb, sx * sw / so, "out")
    new = cls.create(operands=[xq, w_v, b_v, m, s], result_types=[out_t], attributes=attrs)
    return qb.emit(new, op)


def _smoothing(qb, x: SSAValue, w_val: np.ndarray | None) -> np.ndarray | None:
    """SmoothQuant factors ``s_k = sqrt(max|x_k| / max|w_k|)`` for an int8 matmul input
    that comes from a 16-bit value with per-channel statistics, else None."""
    if not qb.opts.smooth or w_val is None or w_val.ndim != 2 or x not in qb.channels:
        return None
    if qb.opts.mac_input_bits != 8 or x not in qb.wide:
        return None
    cmin, cmax = qb.channels[x]
    amax_x = np.maximum(np.abs(cmin), np.abs(cmax)).astype(np.float64)
    amax_w = np.abs(w_val).max(axis=1).astype(np.float64)
    if amax_x.shape != amax_w.shape:
        return None
    alpha = qb.opts.smooth_alpha
    s = np.maximum(amax_x, 1e-6) ** alpha / np.maximum(amax_w, 1e-6) ** (1 - alpha)
    return np.clip(s / np.exp(np.mean(np.log(s))), 1e-3, 1e3)


def _smoothed_matmul(
    qb,
    op: Operation,
    x: SSAValue,
    s: np.ndarray,
    wq: np.ndarray,
    sw: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict,
) -> SSAValue:
    """x (16-bit) -> qnt.rescale by 1/s per channel to int8 -> qnt.matmul with W * s."""
    x16 = qb.q(x)
    q16 = qparams(x16)
    cmin, cmax = qb.channels[x]
    lo, hi = float(min(0.0, (cmin / s).min())), float(max(0.0, (cmax / s).max()))
    s8, zp8 = qb.params_for(lo, hi, 8)
    x8_t = qtype(8, shape_of(x), s8, zp8)
    m, sh = mult_shift(qb, q16.scale / (s8 * s), "smooth")  # type: ignore[union-attr]
    rescale = qnt.RescaleOp.create(operands=[x16, m, sh], result_types=[x8_t])
    qb._insert(rescale)
    x8 = rescale.results[0]
    out_t = qb.out_type(op.results[0])
    n = shape_of(op.results[0])[-1]
    b = np.zeros(n) if bias is None else bias.astype(np.float64)
    b_int = np.clip(np.rint(b / (s8 * sw)), -(2**31), 2**31 - 1)
    w_v = qb.const(wq, "w")
    b_v = qb.const(b_int.astype(np.int32), "bias")
    mo, so = mult_shift(qb, s8 * sw / qparams(out_t).scale, "out")  # type: ignore[union-attr]
    new = qnt.MatMulOp.create(
        operands=[x8, w_v, b_v, mo, so], result_types=[out_t], attributes=attrs
    )
    return qb.emit(new, op)


@rule(graph.MatMulOp, graph.FusedMatMulOp)
def _matmul(qb, op: Operation) -> SSAValue | None:
    act = str_attr(op, "act", "none")
    if act not in ("none", "relu"):
        return None
    w_val = qb.value(op.operands[1])
    if w_val is not None and w_val.ndim != 2:
        w_val = None
    bias = qb.value(op.operands[2]) if isinstance(op, graph.FusedMatMulOp) else None
    if isinstance(op, graph.FusedMatMulOp) and bias is None:
        return None
    return _accumulating(
        qb,
        op,
        op.operands[0],
        w_val,
        op.operands[1],
        bias,
        1,
        qnt.MatMulOp,
        {"act": StringAttr(act)},
    )


@rule(graph.ConvOp)
def _conv(qb, op: Operation) -> SSAValue | None:
    w_val, bias = qb.value(op.operands[1]), qb.value(op.operands[2])
    if w_val is None or bias is None:
        return None
    axis = 3 if str_attr(op, "layout", "nchw") == "nhwc" else 0
    return _accumulating(
        qb, op, op.operands[0], w_val, op.operands[1], bias, axis, qnt.ConvOp, dict(op.attributes)
    )


@rule(graph.AddOp, graph.SubOp)
def _add(qb, op: Operation) -> SSAValue | None:
    out_t = qb.out_type(op.results[0])
    bits = _width_t(out_t)
    a, b = (qb.q(v, bits=bits) if qb.value(v) is not None else qb.q(v) for v in op.operands)
    so = qparams(out_t).scale  # type: ignore[union-attr]
    ra = qparams(a).scale / so  # type: ignore[union-attr]
    rb = qparams(b).scale / so * (-1 if isinstance(op, graph.SubOp) else 1)  # type: ignore[union-attr]
    big = max(abs(ra), abs(rb))
    shift = int(min(30, max(0, math.floor(math.log2((2**14 - 1) / big)))))
    attrs = {
        "lhs_mult": _i(round(ra * 2**shift)),
        "rhs_mult": _i(round(rb * 2**shift)),
        "shift": _i(shift),
    }
    return qb.emit(qnt.AddOp.create(operands=[a, b], result_types=[out_t], attributes=attrs), op)


@rule(graph.MulOp)
def _mul(qb, op: Operation) -> SSAValue | None:
    a, b = qb.q(op.operands[0]), qb.q(op.operands[1])
    out_t = qb.out_type(op.results[0])
    real = qparams(a).scale * qparams(b).scale / qparams(out_t).scale  # type: ignore[union-attr]
    m, s = qmath.quantize_multiplier(real)
    attrs = {"multiplier": _i(m), "shift": _i(s)}
    return qb.emit(qnt.MulOp.create(operands=[a, b], result_types=[out_t], attributes=attrs), op)


@rule(graph.SoftmaxOp)
def _softmax(qb, op: Operation) -> SSAValue | None:
    x = qb.q(op.operands[0])
    bits = qb.opts.wide_bits if op.results[0] in qb.wide else 8
    try:
        consts = qmath.softmax_constants(qparams(x).scale, _width(x), bits)  # type: ignore[union-attr]
    except ValueError as exc:
        raise QuantizeError(f"softmax {op.results[0].name_hint or '?'}: {exc}") from None
    out_t = qtype(bits, shape_of(op.results[0]), 2.0**-bits, -(2 ** (bits - 1)))
    attrs = {"axis": _i(int_attr(op, "axis")), **{k: _i(v) for k, v in consts.items()}}
    return qb.emit(qnt.SoftmaxOp.create(operands=[x], result_types=[out_t], attributes=attrs), op)


@rule(graph.GeluOp)
def _gelu(qb, op: Operation) -> SSAValue | None:
    x = qb.q(op.operands[0])
    in_shift, c = qmath.gelu_shift(qparams(x).scale, _width(x), qparams(x).zp)  # type: ignore[union-attr]
    out_t = qb.out_type(op.results[0])
    m, s = qmath.quantize_multiplier(c["out_scale"] / qparams(out_t).scale)  # type: ignore[union-attr]
    attrs = {
        "b": _i(c["b"]),
        "c": _i(c["c"]),
        "multiplier": _i(m),
        "shift": _i(s),
        "in_shift": _i(in_shift),
    }
    return qb.emit(qnt.GeluOp.create(operands=[x], result_types=[out_t], attributes=attrs), op)


@rule(graph.LayerNormOp)
def _layer_norm(qb, op: Operation) -> SSAValue | None:
    x = op.operands[0]
    rank = len(shape_of(x))
    gamma, beta = qb.value(op.operands[1]), qb.value(op.operands[2])
    if int_attr(op, "axis", -1) % rank != rank - 1 or gamma is None or beta is None:
        return None
    width = shape_of(x)[-1]
    gamma = np.broadcast_to(gamma, (width,)).astype(np.float64)
    beta = np.broadcast_to(beta, (width,)).astype(np.float64)
    xq = qb.q(x)
    sx = qparams(xq).scale  # type: ignore[union-attr]
    sg = max(float(np.abs(gamma).max()), 1e-12) / qmath.LN_GAMMA_MAX
    unit = sg / 2**qmath.LN_FRAC_BITS  # real value of one unit of n * gamma
    g_v = qb.const(np.rint(gamma / sg).astype(np.int16), "gamma")
    b_v = qb.const(np.clip(np.rint(beta / unit), -(2**31), 2**31 - 1).astype(np.int32), "beta")
    out_t = qb.out_type(op.results[0])
    m, s = qmath.quantize_multiplier(unit / qparams(out_t).scale)  # type: ignore[union-attr]
    eps = float(op.attributes["epsilon"].value.data)  # type: ignore[attr-defined]
    attrs = {"multiplier": _i(m), "shift": _i(s), "eps": _i(round(256 * eps / (sx * sx)))}
    consts = qmath.layernorm_constants(width, _width(xq), eps / (sx * sx))
    attrs.update({k: _i(v) for k, v in consts.items()})
    new = qnt.LayerNormOp.create(operands=[xq, g_v, b_v], result_types=[out_t], attributes=attrs)
    return qb.emit(new, op)


_LUT_FUNCS = {
    graph.TanhOp: np.tanh, graph.SigmoidOp: lambda v: 1 / (1 + np.exp(-v)),
    graph.ExpOp: np.exp, graph.SqrtOp: lambda v: np.sqrt(np.maximum(v, 0)),
}  # fmt: skip


@rule(*_LUT_FUNCS, graph.ErfOp)
def _lut(qb, op: Operation) -> SSAValue | None:
    from compiler.interpreter import erf

    fn = erf if isinstance(op, graph.ErfOp) else _LUT_FUNCS[type(op)]
    x = qb.q(op.operands[0], bits=8)
    qx = qparams(x)
    out_t = qb.out_type(op.results[0], 8)
    qo = qparams(out_t)
    codes = np.arange(-128, 128)
    with np.errstate(all="ignore"):
        y = fn(qx.scale * (codes - qx.zp))  # type: ignore[union-attr]
    table = np.clip(np.rint(y / qo.scale) + qo.zp, -128, 127).astype(np.int8)  # type: ignore[union-attr]
    t_v = qb.const(table, "lut")
    return qb.emit(qnt.LutOp.create(operands=[x, t_v], result_types=[out_t]), op)


@rule(graph.ReduceMeanOp)
def _mean(qb, op: Operation) -> SSAValue | None:
    x = qb.q(op.operands[0])
    n = int(np.prod([shape_of(x)[a] for a in op.reduced_axes()]))
    out_t = qb.out_type(op.results[0])
    m, s = qmath.quantize_multiplier(qparams(x).scale / n / qparams(out_t).scale)  # type: ignore[union-attr]
    attrs = {**dict(op.attributes), "multiplier": _i(m), "shift": _i(s)}
    return qb.emit(qnt.MeanOp.create(operands=[x], result_types=[out_t], attributes=attrs), op)


_LAYOUT = (
    graph.ReshapeOp,
    graph.TransposeOp,
    graph.SliceOp,
    graph.ExpandOp,
    graph.PadOp,
    graph.MaxPoolOp,
)


@rule(*_LAYOUT)
def _layout(qb, op: Operation) -> SSAValue | None:
    x = qb.q(op.operands[0])
    out_t = _retype(op.results[0], x)
    new = type(op).create(operands=[x], result_types=[out_t], attributes=dict(op.attributes))
    return qb.emit(new, op)


@rule(graph.GatherOp)
def _gather(qb, op: Operation) -> SSAValue | None:
    bits = qb.opts.wide_bits if op.results[0] in qb.wide else qb.opts.bits
    data = qb.q(op.operands[0], bits=bits)
    out_t = _retype(op.results[0], data)
    new = graph.GatherOp.create(
        operands=[data, op.operands[1]], result_types=[out_t], attributes=dict(op.attributes)
    )
    return qb.emit(new, op)


@rule(graph.ConcatOp)
def _concat(qb, op: Operation) -> SSAValue | None:
    out_t = qb.out_type(op.results[0])
    parts = [qb.requantize(qb.q(v), out_t) for v in op.operands]
    new = graph.ConcatOp.create(
        operands=parts, result_types=[out_t], attributes=dict(op.attributes)
    )
    return qb.emit(new, op)


@rule(graph.WhereOp)
def _where(qb, op: Operation) -> SSAValue | None:
    cond, a, b = op.operands
    lead = b if qb.value(a) is not None and qb.value(b) is None else a
    lq = qb.q(lead)
    params = qparams(lq)
    assert params is not None
    other = b if lead is a else a
    bits = lq.type.element_type.width.data  # type: ignore[attr-defined]
    oq = (
        qb.q(other, bits=bits, like=params)
        if qb.value(other) is not None
        else qb.requantize(qb.q(other), lq.type)
    )
    operands = [cond, lq, oq] if lead is a else [cond, oq, lq]
    new = graph.WhereOp.create(operands=operands, result_types=[_retype(op.results[0], lq)])
    return qb.emit(new, op)


@rule(ClampOp)
def _clamp(qb, op: Operation) -> SSAValue | None:
    x = qb.q(op.operands[0])
    q = qparams(x)
    assert q is not None
    lo_q, hi_q = int_range(x)
    lo = float(op.properties["min_val"].value.data)  # type: ignore[attr-defined]
    hi = float(op.properties["max_val"].value.data)  # type: ignore[attr-defined]
    elem = x.type.element_type  # type: ignore[attr-defined]
    code = lambda v: int(np.clip(np.rint(min(max(v / q.scale, -1e9), 1e9)) + q.zp, lo_q, hi_q))  # noqa: E731
    props = {"min_val": IntegerAttr(code(lo), elem), "max_val": IntegerAttr(code(hi), elem)}
    new = ClampOp.create(operands=[x], result_types=[x.type], properties=props)
    return qb.emit(new, op)


def _acc_fits(wq: np.ndarray, b_int: np.ndarray) -> bool:
    """True when 16-bit activations times ``wq`` plus the bias always fit int32."""
    if wq.ndim != 2:
        return False
    colsum = np.abs(wq.astype(np.int64)).sum(axis=0)
    return bool(((1 << 15) * colsum + np.abs(b_int)).max() < 2**31)


def _width_t(t: TensorType) -> int:
    return t.element_type.width.data  # type: ignore[attr-defined]


def _width(v: SSAValue) -> int:
    return v.type.element_type.width.data  # type: ignore[attr-defined]


def _retype(result: SSAValue, like: SSAValue) -> TensorType:
    t = like.type
    assert isinstance(t, TensorType) and isinstance(t.encoding, QParamsAttr)
    assert isinstance(t.element_type, IntegerType)
    return TensorType(t.element_type, shape_of(result), t.encoding)
