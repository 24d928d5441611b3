"""Interpreter kernels of the structural graph ops and of the ``qnt`` dialect."""

from __future__ import annotations

import numpy as np

from compiler import kernels, qmath
from compiler.dialects.base import float_attr, int_attr, ints, shape_of, str_attr
from compiler.dialects.qnt import int_range, qparams
from compiler.interpreter import _dtype, gelu, kernel

# ---- graph: linear algebra, reductions, layout ----------------------------------------


def _act(x: np.ndarray, act: str) -> np.ndarray:
    if act == "relu":
        return np.maximum(x, 0)
    if act == "gelu":
        return gelu(x)
    return x


@kernel("graph.matmul")
def _matmul(op, args, store):
    a, b = args
    if a.dtype.kind in "iu":
        return qmath.int_matmul(a, b)
    return np.matmul(a, b)


@kernel("graph.fused_matmul")
def _fused_matmul(op, args, store):
    return _act(np.matmul(args[0], args[1]) + args[2], str_attr(op, "act", "none"))


def _conv_attrs(op) -> tuple[list[int], list[int], list[int], int]:
    return (
        ints(op, "strides", [1, 1]),
        ints(op, "pads", [0] * 4),
        ints(op, "dilations", [1, 1]),
        int_attr(op, "group", 1),
    )


def _conv(op, x: np.ndarray, w: np.ndarray, pad_value: int = 0) -> np.ndarray:
    s, p, d, g = _conv_attrs(op)
    if str_attr(op, "layout", "nchw") == "nhwc":
        out = kernels.conv2d(
            x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), s, p, d, g, pad_value
        )
        return out.transpose(0, 2, 3, 1)
    return kernels.conv2d(x, w, s, p, d, g, pad_value)


def _channel(op, v: np.ndarray) -> np.ndarray:
    """Broadcast a per-output-channel vector against the conv result."""
    if str_attr(op, "layout", "nchw") == "nhwc":
        return v
    return v.reshape(-1, 1, 1)


@kernel("graph.conv")
def _graph_conv(op, args, store):
    x, w, b = args
    out = _conv(op, x, w) + _channel(op, b)
    return _act(out, str_attr(op, "act", "none"))


def _pool(op, x: np.ndarray, kind: str, pad_value) -> np.ndarray:
    return kernels.pool2d(
        x,
        kind,
        ints(op, "kernel"),
        ints(op, "strides", [1, 1]),
        ints(op, "pads", [0] * 4),
        bool(int_attr(op, "ceil_mode", 0)),
        bool(int_attr(op, "count_include_pad", 0)),
        pad_value,
        ints(op, "dilations", [1, 1]),
    )


@kernel("graph.max_pool")
def _max_pool(op, args, store):
    x = args[0]
    low = np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf
    return _pool(op, x, "max", low)


@kernel("graph.avg_pool")
def _avg_pool(op, args, store):
    return _pool(op, args[0], "avg", 0)


def _reduce(op, x: np.ndarray, fn) -> np.ndarray:
    return fn(x, axis=tuple(op.reduced_axes()), keepdims=bool(int_attr(op, "keepdims", 1)))


@kernel("graph.reduce_mean")
def _reduce_mean(op, args, store):
    return _reduce(op, args[0], np.mean)


@kernel("graph.reduce_sum")
def _reduce_sum(op, args, store):
    return _reduce(op, args[0], np.sum)


@kernel("graph.reduce_max")
def _reduce_max(op, args, store):
    return _reduce(op, args[0], np.max)


@kernel("graph.layer_norm")
def _layer_norm(op, args, store):
    x, g, b = args
    axis = int_attr(op, "axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x64 - mean) / np.sqrt(var + float_attr(op, "epsilon", 1e-5)) * g + b


def _zero(op, x: np.ndarray) -> int:
    q = qparams(op.operands[0])
    return q.zp if q is not None else 0


@kernel("graph.reshape")
def _reshape(op, args, store):
    return args[0].reshape(shape_of(op.results[0]))


@kernel("graph.expand")
def _expand(op, args, store):
    return np.broadcast_to(args[0], shape_of(op.results[0])).copy()


@kernel("graph.transpose")
def _transpose(op, args, store):
    return np.transpose(args[0], ints(op, "perm"))


@kernel("graph.concat")
def _concat(op, args, store):
    return np.concatenate(args, axis=int_attr(op, "axis"))


@kernel("graph.slice")
def _slice(op, args, store):
    st, en, sp = ints(op, "starts"), ints(op, "ends"), ints(op, "steps")
    bounds = zip(st, en, sp, strict=True)
    idx = tuple(slice(b, None if e < 0 and s < 0 else e, s) for b, e, s in bounds)
    return args[0][idx]


@kernel("graph.pad")
def _pad(op, args, store):
    lo, hi = ints(op, "low"), ints(op, "high")
    return np.pad(args[0], list(zip(lo, hi, strict=True)), constant_values=_zero(op, args[0]))


@kernel("graph.gather")
def _gather(op, args, store):
    data, idx = args
    axis = int_attr(op, "axis", 0) % data.ndim
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return np.take(data, idx, axis=axis)


# ---- qnt ---------------------------------------------------------------------------


def _q(value):
    q = qparams(value)
    assert q is not None
    return q


@kernel("qnt.quantize")
def _quantize(op, args, store):
    q, (lo, hi) = _q(op.results[0]), int_range(op.results[0])
    return np.clip(np.rint(args[0].astype(np.float64) / q.scale) + q.zp, lo, hi)


@kernel("qnt.dequantize")
def _dequantize(op, args, store):
    q = _q(op.operands[0])
    return (args[0].astype(np.float64) - q.zp) * q.scale


# Every kernel below is a composition of PE operations (compiler.qmath wraps
# sim.numerics); docs/compiler.md lists the sequence of each op.

I32 = qmath.DType.I32
VFn = qmath.VFn


def _out(op) -> tuple[int, int, int, int]:
    """(zp, lo, hi, bits) of the result; ReLU raises lo to the zero point."""
    out = op.results[0]
    lo, hi = int_range(out)
    zp = _q(out).zp
    if str_attr(op, "act", "none") == "relu":
        lo = max(lo, zp)
    return zp, lo, hi, out.type.element_type.width.data


def _requant(op, acc: np.ndarray, mult, shift) -> np.ndarray:
    """VOP REQ (MULT, SHIFT, ZP, LO, HI) of int32 ``acc`` to the result type."""
    zp, lo, hi, bits = _out(op)
    return qmath.req(acc, mult, shift, zp, lo, hi, qmath.DTYPE_OF_BITS[bits])


def _zp(value) -> int:
    q = qparams(value)
    return q.zp if q is not None else 0


def _centred(op, i: int, x: np.ndarray) -> np.ndarray:
    """VOP SUB (bscalar zero point), i8/i16 -> i32."""
    return qmath.vop(VFn.SUB, x, _zp(op.operands[i]))


@kernel("qnt.requantize")
def _requantize(op, args, store):
    return _requant(op, _centred(op, 0, args[0]), int_attr(op, "multiplier"), int_attr(op, "shift"))


@kernel("qnt.rescale")
def _rescale(op, args, store):
    # one REQ per channel (last axis) with that channel's MULT and SHIFT
    return _requant(
        op, _centred(op, 0, args[0]), args[1].astype(np.int64), args[2].astype(np.int64)
    )


def _finish(op, acc: np.ndarray, bias, mult, shift, channel_axis: int = -1) -> np.ndarray:
    """MAC output stage: ``acc`` is the exact accumulator, wrapped to int32 as the MAC
    does; per-channel bias, multiplier and shift along ``channel_axis``."""
    zp, lo, hi, bits = _out(op)
    acc = np.moveaxis(qmath.wrap32(acc), channel_axis, -1)
    y = qmath.mac_output(
        acc, bias.astype(np.int64), mult.astype(np.int64), shift.astype(np.int64), zp, lo, hi, bits
    )
    return np.moveaxis(y, -1, channel_axis)


@kernel("qnt.matmul")
def _qmatmul(op, args, store):
    a, b, bias, mult, shift = args
    a = a.astype(np.int64) - _zp(op.operands[0])
    b = b.astype(np.int64) - _zp(op.operands[1])
    return _finish(op, qmath.int_matmul(a, b), bias, mult, shift)


@kernel("qnt.conv")
def _qconv(op, args, store):
    x, w, bias, mult, shift = args
    x = x.astype(np.int64) - _zp(op.operands[0])
    acc = _conv(op, x, w.astype(np.int64)).astype(np.int64)
    axis = -1 if str_attr(op, "layout", "nchw") == "nhwc" else 1
    return _finish(op, acc, bias, mult, shift, axis)


@kernel("qnt.add")
def _qadd(op, args, store):
    a = qmath.vop(VFn.MUL, _centred(op, 0, args[0]), int_attr(op, "lhs_mult"))
    b = qmath.vop(VFn.MUL, _centred(op, 1, args[1]), int_attr(op, "rhs_mult"))
    return _requant(op, qmath.vop(VFn.ADD, a, b), 1, int_attr(op, "shift"))


@kernel("qnt.mul")
def _qmul(op, args, store):
    p = qmath.vop(VFn.MUL, _centred(op, 0, args[0]), _centred(op, 1, args[1]))
    return _requant(op, p, int_attr(op, "multiplier"), int_attr(op, "shift"))


def _opt(op, name: str) -> int | None:
    return int_attr(op, name) if name in op.attributes else None


@kernel("qnt.softmax")
def _qsoftmax(op, args, store):
    bits = op.results[0].type.element_type.width.data
    return qmath.i_softmax(
        args[0],
        int_attr(op, "axis"),
        int_attr(op, "ln2"),
        int_attr(op, "b"),
        int_attr(op, "c"),
        bits,
        _opt(op, "inv_mult"),
        _opt(op, "inv_shift"),
        _opt(op, "recip_k"),
        op.operands[0].type.element_type.width.data,
    )


@kernel("qnt.gelu")
def _qgelu(op, args, store):
    neg = qmath.i_gelu_neg(
        _centred(op, 0, args[0]), int_attr(op, "b"), int_attr(op, "c"), int_attr(op, "in_shift", 0)
    )
    return _requant(op, neg, -int_attr(op, "multiplier"), int_attr(op, "shift"))


LN_KEYS = (
    "mean_mult",
    "mean_shift",
    "var_shift",
    "var_mult",
    "var_rshift",
    "eps_fine",
    "eps_coarse",
    "recip_k",
    "norm_shift",
)


def layernorm_consts(op) -> dict[str, int]:
    """The op's layer-norm VCFG constants; computed from ``eps`` (256 * eps / scale**2)
    for IR written without them."""
    if all(k in op.attributes for k in LN_KEYS):
        return {k: int_attr(op, k) for k in LN_KEYS}
    n = shape_of(op.operands[0])[-1]
    bits = op.operands[0].type.element_type.width.data
    return qmath.layernorm_constants(n, bits, int_attr(op, "eps", 0) / 256)


@kernel("qnt.layer_norm")
def _qlayer_norm(op, args, store):
    acc = qmath.i_layernorm(_centred(op, 0, args[0]), args[1], args[2], layernorm_consts(op))
    return _requant(op, acc, int_attr(op, "multiplier"), int_attr(op, "shift"))


@kernel("qnt.lut")
def _qlut(op, args, store):
    return args[1][args[0].astype(np.int64) + 128]


@kernel("qnt.mean")
def _qmean(op, args, store):
    x = _centred(op, 0, args[0])
    axes = tuple(op.reduced_axes())
    keep = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, keep + list(axes))
    s = qmath.reduce_rows(VFn.RSUM, moved.reshape(*moved.shape[: len(keep)], -1))[..., 0]
    if bool(int_attr(op, "keepdims", 1)):
        s = np.expand_dims(s, axes)
    return _requant(op, s, int_attr(op, "multiplier"), int_attr(op, "shift"))


_ = _dtype
