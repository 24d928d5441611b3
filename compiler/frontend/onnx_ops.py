"""ONNX operator handlers: one function per op type, registered in HANDLERS.

A handler receives the :class:`Importer` and the node, and returns the SSA values of
the node's outputs.  It rejects attributes it does not know (UnsupportedError) and
normalizes ONNX conventions (negative axes, optional inputs, opset differences) so
that the graph ops carry only static, explicit attributes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr, f32, i64
from xdsl.dialects.tosa import ClampOp
from xdsl.ir import Attribute, SSAValue

from compiler.dialects import graph
from compiler.dialects.base import DYN, broadcast, i64_array, matmul_shape
from compiler.errors import ShapeError
from compiler.frontend.onnx_import import Importer, onnx_dtype
from compiler.ir import np_dtype, tensor_type

Handler = Callable[[Importer, onnx.NodeProto], list[SSAValue]]
HANDLERS: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn

    return register


def attrs(imp: Importer, node: onnx.NodeProto, known: dict[str, object]) -> dict[str, object]:
    """Node attributes with defaults; UnsupportedError on an unknown attribute."""
    out = dict(known)
    for a in node.attribute:
        if a.name not in known:
            raise imp.error(f"attribute {a.name!r} is not supported")
        out[a.name] = onnx.helper.get_attribute_value(a)
        if isinstance(out[a.name], bytes):
            out[a.name] = out[a.name].decode()
    return out


def inputs(imp: Importer, node: onnx.NodeProto, lo: int, hi: int) -> list[str]:
    n = len(node.input)
    if not lo <= n <= hi:
        raise imp.error(f"expects {lo}..{hi} inputs, got {n}")
    return list(node.input)


def opt_input(node: onnx.NodeProto, i: int) -> str | None:
    return node.input[i] if len(node.input) > i and node.input[i] else None


def out_hint(node: onnx.NodeProto, i: int = 0) -> str:
    return node.output[i] if len(node.output) > i else node.op_type


def like(imp: Importer, v: SSAValue, shape=None, elem: Attribute | None = None):
    return tensor_type(imp.shape(v) if shape is None else shape, elem or imp.elem(v))


def _iattr(v: int) -> IntegerAttr:
    return IntegerAttr(int(v), i64)


def _norm(imp: Importer, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise imp.error(f"axis {axis} is out of range for rank {rank}", ShapeError)
    return axis % max(rank, 1)


# ---- elementwise -----------------------------------------------------------------

_BIN = {
    "Add": graph.AddOp,
    "Sub": graph.SubOp,
    "Mul": graph.MulOp,
    "Div": graph.DivOp,
    "Pow": graph.PowOp,
}


def binary(imp: Importer, cls, a: SSAValue, b: SSAValue, hint: str) -> SSAValue:
    try:
        shape = broadcast(imp.shape(a), imp.shape(b))
    except Exception as exc:
        raise imp.error(str(exc), ShapeError) from None
    op = cls.create(operands=[a, b], result_types=[like(imp, a, shape)])
    return imp.emit(op, hint)


@handles(*_BIN)
def _binary(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    x, y = (imp.value(n) for n in inputs(imp, node, 2, 2))
    if imp.elem(x) != imp.elem(y):
        if node.op_type != "Pow":
            raise imp.error(f"operand element types differ ({imp.elem(x)} vs {imp.elem(y)})")
        y = cast(imp, y, imp.elem(x), node.input[1] + "_cast")
    return [binary(imp, _BIN[node.op_type], x, y, out_hint(node))]


def cast(imp: Importer, v: SSAValue, elem: Attribute, hint: str) -> SSAValue:
    if imp.elem(v) == elem:
        return v
    return imp.emit(graph.CastOp.create(operands=[v], result_types=[like(imp, v, elem=elem)]), hint)


_UNARY = {
    "Erf": graph.ErfOp,
    "Tanh": graph.TanhOp,
    "Sigmoid": graph.SigmoidOp,
    "Sqrt": graph.SqrtOp,
    "Exp": graph.ExpOp,
}


@handles(*_UNARY)
def _unary(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    _need_float(imp, x)
    op = _UNARY[node.op_type].create(operands=[x], result_types=[like(imp, x)])
    return [imp.emit(op, out_hint(node))]


def _need_float(imp: Importer, x: SSAValue) -> None:
    if np_dtype(imp.elem(x)).kind != "f":
        raise imp.error(f"element type {imp.elem(x)} is not supported (float only)")


@handles("Gelu")
def _gelu(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"approximate": "none"})
    if a["approximate"] not in ("none", "tanh"):
        raise imp.error(f"approximate={a['approximate']!r} is not supported")
    x = imp.value(inputs(imp, node, 1, 1)[0])
    _need_float(imp, x)
    op = graph.GeluOp.create(
        operands=[x],
        result_types=[like(imp, x)],
        attributes={"approximate": StringAttr(str(a["approximate"]))},
    )
    return [imp.emit(op, out_hint(node))]


def relu(imp: Importer, x: SSAValue, hint: str, lo: float = 0.0, hi: float = 3.4e38) -> SSAValue:
    elem = imp.elem(x)
    if np_dtype(elem).kind == "f":
        props = {"min_val": FloatAttr(lo, elem), "max_val": FloatAttr(hi, elem)}
    else:
        info = np.iinfo(np_dtype(elem))
        props = {
            "min_val": IntegerAttr(int(max(lo, info.min)), elem),
            "max_val": IntegerAttr(int(min(hi, info.max)), elem),
        }
    op = ClampOp.create(operands=[x], result_types=[like(imp, x)], properties=props)
    return imp.emit(op, hint)


@handles("Relu")
def _relu(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    return [relu(imp, x, out_hint(node))]


@handles("Where")
def _where(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    c, x, y = (imp.value(n) for n in inputs(imp, node, 3, 3))
    try:
        shape = broadcast(broadcast(imp.shape(c), imp.shape(x)), imp.shape(y))
    except Exception as exc:
        raise imp.error(str(exc), ShapeError) from None
    op = graph.WhereOp.create(operands=[c, x, y], result_types=[like(imp, x, shape)])
    return [imp.emit(op, out_hint(node))]


@handles("Cast")
def _cast(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"to": None, "saturate": 1})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    dt = onnx_dtype(int(a["to"]), f"node {imp.node_label!r} (Cast) target")  # type: ignore[arg-type]
    return [cast(imp, x, tensor_type([], dt).element_type, out_hint(node))]


@handles("Softmax")
def _softmax(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": -1})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    _need_float(imp, x)
    axis = _norm(imp, int(a["axis"]), len(imp.shape(x)))  # type: ignore[arg-type]
    op = graph.SoftmaxOp.create(
        operands=[x], result_types=[like(imp, x)], attributes={"axis": _iattr(axis)}
    )
    return [imp.emit(op, out_hint(node))]


# ---- linear algebra ----------------------------------------------------------------


def matmul(imp: Importer, a: SSAValue, b: SSAValue, hint: str) -> SSAValue:
    try:
        shape = matmul_shape(imp.shape(a), imp.shape(b))
    except Exception as exc:
        raise imp.error(str(exc), ShapeError) from None
    op = graph.MatMulOp.create(operands=[a, b], result_types=[like(imp, a, shape)])
    return imp.emit(op, hint)


@handles("MatMul")
def _matmul(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    a, b = (imp.value(n) for n in inputs(imp, node, 2, 2))
    if imp.elem(a) != imp.elem(b):
        raise imp.error("operand element types differ")
    return [matmul(imp, a, b, out_hint(node))]


def transpose(imp: Importer, x: SSAValue, perm: list[int], hint: str) -> SSAValue:
    shape = [imp.shape(x)[p] for p in perm]
    op = graph.TransposeOp.create(
        operands=[x], result_types=[like(imp, x, shape)], attributes={"perm": i64_array(perm)}
    )
    return imp.emit(op, hint)


def scalar(imp: Importer, value: float, like_value: SSAValue, hint: str) -> SSAValue:
    return imp.constant(np.asarray(value, dtype=np_dtype(imp.elem(like_value))), hint)


@handles("Gemm")
def _gemm(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
    names = inputs(imp, node, 2, 3)
    x, w = imp.value(names[0]), imp.value(names[1])
    if len(imp.shape(x)) != 2 or len(imp.shape(w)) != 2:
        raise imp.error("Gemm operands must be 2-D", ShapeError)
    if a["transA"]:
        x = transpose(imp, x, [1, 0], names[0] + "_t")
    if a["transB"]:
        w = transpose(imp, w, [1, 0], names[1] + "_t")
    hint = out_hint(node)
    y = matmul(imp, x, w, hint + "_mm")
    if a["alpha"] != 1.0:
        y = binary(imp, graph.MulOp, y, scalar(imp, a["alpha"], y, "alpha"), hint + "_alpha")  # type: ignore[arg-type]
    c = opt_input(node, 2)
    if c is not None and a["beta"] != 0.0:
        cv = imp.value(c)
        if a["beta"] != 1.0:
            cv = binary(imp, graph.MulOp, cv, scalar(imp, a["beta"], cv, "beta"), c + "_beta")  # type: ignore[arg-type]
        y = binary(imp, graph.AddOp, y, cv, hint)
    return [y]


def _pads(
    imp: Importer,
    a: dict,
    spatial: list[int],
    kernel: list[int],
    strides: list[int],
    dil: list[int],
) -> list[int]:
    """ONNX pads [x1_begin, x2_begin, x1_end, x2_end] after auto_pad resolution."""
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(a.get("pads") or [0] * 4)
        if len(pads) != 4:
            raise imp.error(f"pads must have 4 entries for 2-D, not {pads}", ShapeError)
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise imp.error(f"auto_pad={auto!r} is not supported")
    lo, hi = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dil, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
        small, big = total // 2, total - total // 2
        lo.append(small if auto == "SAME_UPPER" else big)
        hi.append(big if auto == "SAME_UPPER" else small)
    return lo + hi


@handles("Conv")
def _conv(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(
        imp,
        node,
        {
            "auto_pad": "NOTSET",
            "dilations": None,
            "group": 1,
            "kernel_shape": None,
            "pads": None,
            "strides": None,
        },
    )
    names = inputs(imp, node, 2, 3)
    x, w = imp.value(names[0]), imp.value(names[1])
    if len(imp.shape(x)) != 4:
        raise imp.error(f"only 2-D convolution is supported (input rank {len(imp.shape(x))})")
    kernel = list(imp.shape(w)[2:])
    strides = list(a["strides"] or [1, 1])
    dil = list(a["dilations"] or [1, 1])
    pads = _pads(imp, a, list(imp.shape(x)[2:]), kernel, strides, dil)
    b = opt_input(node, 2)
    bias = (
        imp.value(b)
        if b
        else imp.constant(np.zeros(imp.shape(w)[0], np_dtype(imp.elem(w))), names[1] + "_zero_bias")
    )
    op = graph.ConvOp.create(
        operands=[x, w, bias],
        result_types=[like(imp, x, [0, 0, 0, 0])],
        attributes={
            "strides": i64_array(strides),
            "pads": i64_array(pads[:1] + pads[1:2] + pads[2:]),
            "dilations": i64_array(dil),
            "group": _iattr(int(a["group"])),
        },
    )  # type: ignore[arg-type]
    try:
        shape = op.infer_shapes()[0]
    except Exception as exc:
        raise imp.error(str(exc), ShapeError) from None
    op = graph.ConvOp.create(
        operands=[x, w, bias], result_types=[like(imp, x, shape)], attributes=dict(op.attributes)
    )
    return [imp.emit(op, out_hint(node))]


def _pool_common(imp: Importer, node: onnx.NodeProto, extra: dict) -> tuple[SSAValue, dict]:
    known = {
        "auto_pad": "NOTSET",
        "ceil_mode": 0,
        "kernel_shape": None,
        "pads": None,
        "strides": None,
        **extra,
    }
    a = attrs(imp, node, known)
    x = imp.value(inputs(imp, node, 1, 1)[0])
    rank = len(imp.shape(x))
    if rank not in (3, 4):
        raise imp.error(f"only 1-D and 2-D pooling are supported (input rank {rank})")
    if len([o for o in node.output if o]) > 1:
        raise imp.error("the Indices output of MaxPool is not supported")
    kernel = list(a["kernel_shape"])  # type: ignore[arg-type]
    strides = list(a["strides"] or [1] * len(kernel))
    dil = list(a.get("dilations") or [1] * len(kernel))
    if rank == 3:  # 1-D pooling runs as 2-D pooling over (N, C, 1, L)
        n, c, length = imp.shape(x)
        x = _reshape_to(imp, x, [n, c, 1, length], out_hint(node) + "_2d")
        pads = list(a.get("pads") or [0, 0])
        a = {**a, "pads": [0, pads[0], 0, pads[1]]}
        kernel, strides, dil = [1, *kernel], [1, *strides], [1, *dil]
    if a.get("storage_order", 0):
        raise imp.error("storage_order=1 is not supported")
    pads = _pads(imp, a, list(imp.shape(x)[2:]), kernel, strides, dil)
    at = {
        "kernel": i64_array(kernel),
        "strides": i64_array(strides),
        "pads": i64_array(pads),
        "ceil_mode": _iattr(int(a["ceil_mode"])),
    }  # type: ignore[arg-type]
    if dil != [1, 1]:
        at["dilations"] = i64_array(dil)
    return x, at


def _reshape_to(imp: Importer, x: SSAValue, shape: list[int], hint: str) -> SSAValue:
    op = graph.ReshapeOp.create(operands=[x], result_types=[like(imp, x, shape)])
    return imp.emit(op, hint)


def _emit_pool(imp: Importer, node, cls, x: SSAValue, at: dict, rank: int) -> SSAValue:
    op = cls.create(operands=[x], result_types=[like(imp, x)], attributes=at)
    try:
        shape = op.infer_shapes()[0]
    except Exception as exc:
        raise imp.error(str(exc), ShapeError) from None
    op = cls.create(operands=[x], result_types=[like(imp, x, shape)], attributes=at)
    if rank == 3:
        y = imp.emit(op, out_hint(node) + "_2d")
        return _reshape_to(imp, y, [shape[0], shape[1], shape[3]], out_hint(node))
    return imp.emit(op, out_hint(node))


@handles("MaxPool")
def _maxpool(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    x, at = _pool_common(imp, node, {"dilations": None, "storage_order": 0})
    rank = len(imp.shape(imp.value(node.input[0])))
    return [_emit_pool(imp, node, graph.MaxPoolOp, x, at, rank)]


@handles("AveragePool")
def _avgpool(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    x, at = _pool_common(imp, node, {"count_include_pad": 0, "dilations": None})
    a = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    at["count_include_pad"] = _iattr(int(a.get("count_include_pad", 0)))
    rank = len(imp.shape(imp.value(node.input[0])))
    return [_emit_pool(imp, node, graph.AvgPoolOp, x, at, rank)]


@handles("GlobalAveragePool")
def _gap(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    rank = len(imp.shape(x))
    if rank < 3:
        raise imp.error("input must have rank >= 3", ShapeError)
    return [reduce(imp, graph.ReduceMeanOp, x, list(range(2, rank)), True, out_hint(node))]


def reduce(imp: Importer, cls, x: SSAValue, axes: list[int], keep: bool, hint: str) -> SSAValue:
    op = cls.create(
        operands=[x],
        result_types=[like(imp, x)],
        attributes={"axes": i64_array(axes), "keepdims": _iattr(int(keep))},
    )
    shape = op.infer_shapes()[0]
    op = cls.create(
        operands=[x], result_types=[like(imp, x, shape)], attributes=dict(op.attributes)
    )
    return imp.emit(op, hint)


_REDUCE = {
    "ReduceMean": (graph.ReduceMeanOp, 18),
    "ReduceSum": (graph.ReduceSumOp, 13),
    "ReduceMax": (graph.ReduceMaxOp, 18),
}


@handles(*_REDUCE)
def _reduce(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    cls, axes_input_from = _REDUCE[node.op_type]
    known = {"keepdims": 1, "noop_with_empty_axes": 0}
    if imp.opset < axes_input_from:
        known["axes"] = None
    a = attrs(imp, node, known)
    x = imp.value(inputs(imp, node, 1, 1 if imp.opset < axes_input_from else 2)[0])
    rank = len(imp.shape(x))
    axes_name = opt_input(node, 1)
    if axes_name is not None:
        axes = [int(v) for v in imp.need_const(axes_name, "axes").reshape(-1)]
    else:
        axes = list(a.get("axes") or [])  # type: ignore[arg-type]
    if not axes and a["noop_with_empty_axes"]:
        return [x]
    axes = [_norm(imp, ax, rank) for ax in axes] or list(range(rank))
    return [reduce(imp, cls, x, axes, bool(a["keepdims"]), out_hint(node))]


@handles("LayerNormalization")
def _layernorm(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": -1, "epsilon": 1e-5, "stash_type": 1})
    names = inputs(imp, node, 2, 3)
    x, g = imp.value(names[0]), imp.value(names[1])
    _need_float(imp, x)
    axis = _norm(imp, int(a["axis"]), len(imp.shape(x)))  # type: ignore[arg-type]
    b = opt_input(node, 2)
    beta = (
        imp.value(b)
        if b
        else imp.constant(np.zeros(imp.shape(g), np_dtype(imp.elem(g))), names[1] + "_zero_bias")
    )
    op = graph.LayerNormOp.create(
        operands=[x, g, beta],
        result_types=[like(imp, x)],
        attributes={"axis": _iattr(axis), "epsilon": FloatAttr(float(a["epsilon"]), f32)},
    )  # type: ignore[arg-type]
    outs = [imp.emit(op, out_hint(node))]
    if len(node.output) > 1:
        outs += _layernorm_stats(imp, x, axis, float(a["epsilon"]), node)  # type: ignore[arg-type]
    return outs


def _layernorm_stats(
    imp: Importer, x: SSAValue, axis: int, eps: float, node: onnx.NodeProto
) -> list[SSAValue]:
    """The optional Mean and InvStdDev outputs, as graph arithmetic."""
    axes = list(range(axis, len(imp.shape(x))))
    mean = reduce(imp, graph.ReduceMeanOp, x, axes, True, out_hint(node, 1))
    cen = binary(imp, graph.SubOp, x, mean, "centered")
    var = reduce(
        imp, graph.ReduceMeanOp, binary(imp, graph.MulOp, cen, cen, "sq"), axes, True, "var"
    )
    std = imp.emit(
        graph.SqrtOp.create(
            operands=[binary(imp, graph.AddOp, var, scalar(imp, eps, var, "eps"), "var_eps")],
            result_types=[like(imp, var)],
        ),
        "std",
    )
    inv = binary(
        imp,
        graph.DivOp,
        scalar(imp, 1.0, std, "one"),
        std,
        out_hint(node, 2) if len(node.output) > 2 else "inv_std",
    )
    return [mean, inv]


_ = DYN


from compiler.frontend import onnx_shape_ops  # noqa: E402,F401  (registers more handlers)
