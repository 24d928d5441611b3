"""ONNX handlers for layout, shape and constant ops, and for ONNX's own quantized ops.

ONNX's QuantizeLinear / DequantizeLinear / QLinearMatMul / MatMulInteger are imported
as exact integer and float ``graph`` arithmetic (same rounding as onnxruntime), not as
``qnt`` ops: the ``qnt`` dialect is the target of Myelin's own quantizer.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from xdsl.dialects.builtin import IntegerAttr, i64
from xdsl.ir import SSAValue

from compiler.dialects import graph
from compiler.dialects.base import i64_array
from compiler.errors import ShapeError
from compiler.frontend.onnx_import import Importer, onnx_dtype
from compiler.frontend.onnx_ops import (
    _norm,
    attrs,
    binary,
    cast,
    handles,
    inputs,
    like,
    matmul,
    opt_input,
    out_hint,
    relu,
    transpose,
)
from compiler.ir import elem_type, np_dtype


def reshape(imp: Importer, x: SSAValue, shape: list[int], hint: str) -> SSAValue:
    if list(imp.shape(x)) == list(shape):
        return x
    if int(np.prod(imp.shape(x))) != int(np.prod(shape)):
        raise imp.error(f"cannot reshape {list(imp.shape(x))} to {list(shape)}", ShapeError)
    return imp.emit(graph.ReshapeOp.create(operands=[x], result_types=[like(imp, x, shape)]), hint)


@handles("Identity")
def _identity(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    return [imp.value(inputs(imp, node, 1, 1)[0])]


@handles("Reshape")
def _reshape(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"allowzero": 0})
    names = inputs(imp, node, 2, 2)
    x = imp.value(names[0])
    spec = [int(v) for v in imp.need_const(names[1], "target shape")]
    src = imp.shape(x)
    shape = [src[i] if d == 0 and not a["allowzero"] else d for i, d in enumerate(spec)]
    if shape.count(-1) > 1:
        raise imp.error("target shape has more than one -1", ShapeError)
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        total = int(np.prod(src))
        if known == 0 or total % known:
            raise imp.error(f"cannot infer -1 in {spec} for input {list(src)}", ShapeError)
        shape[shape.index(-1)] = total // known
    return [reshape(imp, x, shape, out_hint(node))]


@handles("Flatten")
def _flatten(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": 1})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    src = imp.shape(x)
    axis = int(a["axis"])  # type: ignore[arg-type]
    if not -len(src) <= axis <= len(src):
        raise imp.error(f"axis {axis} is out of range for rank {len(src)}", ShapeError)
    axis = axis + len(src) if axis < 0 else axis
    shape = [int(np.prod(src[:axis])), int(np.prod(src[axis:]))]
    return [reshape(imp, x, shape, out_hint(node))]


def _axes(imp: Importer, node: onnx.NodeProto, a: dict) -> list[int] | None:
    name = opt_input(node, 1)
    if name is not None:
        return [int(v) for v in imp.need_const(name, "axes").reshape(-1)]
    return None


@handles("Squeeze")
def _squeeze(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {})
    x = imp.value(inputs(imp, node, 1, 2)[0])
    src = imp.shape(x)
    axes = _axes(imp, node, a)
    if axes is None:
        axes = [i for i, d in enumerate(src) if d == 1]
    axes = [_norm(imp, ax, len(src)) for ax in axes]
    for ax in axes:
        if src[ax] != 1:
            raise imp.error(f"cannot squeeze axis {ax} of size {src[ax]}", ShapeError)
    shape = [d for i, d in enumerate(src) if i not in axes]
    return [reshape(imp, x, shape, out_hint(node))]


@handles("Unsqueeze")
def _unsqueeze(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {})
    x = imp.value(inputs(imp, node, 2, 2)[0])
    src = list(imp.shape(x))
    axes = _axes(imp, node, a) or []
    rank = len(src) + len(axes)
    axes = sorted(_norm(imp, ax, rank) for ax in axes)
    if len(set(axes)) != len(axes):
        raise imp.error(f"repeated axes {axes}", ShapeError)
    for ax in axes:
        src.insert(ax, 1)
    return [reshape(imp, x, src, out_hint(node))]


@handles("Transpose")
def _transpose(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    x = imp.value(inputs(imp, node, 1, 1)[0])
    rank = len(imp.shape(x))
    a = attrs(imp, node, {"perm": list(range(rank))[::-1]})
    perm = [int(p) for p in a["perm"]]  # type: ignore[union-attr]
    if sorted(perm) != list(range(rank)):
        raise imp.error(f"perm {perm} is not a permutation of rank {rank}", ShapeError)
    return [transpose(imp, x, perm, out_hint(node))]


@handles("Concat")
def _concat(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": None})
    vals = [imp.value(n) for n in node.input if n]
    if not vals:
        raise imp.error("needs at least one input")
    rank = len(imp.shape(vals[0]))
    axis = _norm(imp, int(a["axis"]), rank)  # type: ignore[arg-type]
    shape = list(imp.shape(vals[0]))
    shape[axis] = sum(imp.shape(v)[axis] for v in vals)
    op = graph.ConcatOp.create(
        operands=vals,
        result_types=[like(imp, vals[0], shape)],
        attributes={"axis": IntegerAttr(axis, i64)},
    )
    return [imp.emit(op, out_hint(node))]


def slice_op(imp: Importer, x: SSAValue, starts, ends, steps, hint: str) -> SSAValue:
    src = imp.shape(x)
    shape = [
        len(range(b, e if e >= 0 or s > 0 else -(d + 1), s))
        for b, e, s, d in zip(starts, ends, steps, src, strict=True)
    ]
    ends = [e if e >= 0 else -(d + 1) for e, d in zip(ends, src, strict=True)]
    unchanged = zip(starts, ends, steps, src, strict=True)
    if all(b == 0 and e == d and s == 1 for b, e, s, d in unchanged):
        return x
    op = graph.SliceOp.create(
        operands=[x],
        result_types=[like(imp, x, shape)],
        attributes={
            "starts": i64_array(starts),
            "ends": i64_array(ends),
            "steps": i64_array(steps),
        },
    )
    return imp.emit(op, hint)


def _clamp_slice(d: int, b: int, e: int, s: int) -> tuple[int, int]:
    """ONNX Slice start/end clamping; a negative end of -1 means 'before index 0'."""
    b = b + d if b < 0 else b
    e = e + d if e < 0 else e
    if s > 0:
        return min(max(b, 0), d), min(max(e, 0), d)
    return min(max(b, -1), d - 1), min(max(e, -1), d - 1)


@handles("Slice")
def _slice(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    names = inputs(imp, node, 3, 5)
    x = imp.value(names[0])
    src = imp.shape(x)
    starts = [int(v) for v in imp.need_const(names[1], "starts")]
    ends = [int(v) for v in imp.need_const(names[2], "ends")]
    axes_n, steps_n = opt_input(node, 3), opt_input(node, 4)
    axes = [int(v) for v in imp.need_const(axes_n, "axes")] if axes_n else list(range(len(starts)))
    steps = [int(v) for v in imp.need_const(steps_n, "steps")] if steps_n else [1] * len(starts)
    b_all, e_all, s_all = [0] * len(src), list(src), [1] * len(src)
    for b, e, ax, s in zip(starts, ends, axes, steps, strict=True):
        ax = _norm(imp, ax, len(src))
        if s == 0:
            raise imp.error("slice step must not be 0", ShapeError)
        b_all[ax], e_all[ax] = _clamp_slice(src[ax], b, e, s)
        s_all[ax] = s
    return [slice_op(imp, x, b_all, e_all, s_all, out_hint(node))]


@handles("Split")
def _split(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": 0, "num_outputs": None})
    x = imp.value(inputs(imp, node, 1, 2)[0])
    src = imp.shape(x)
    axis = _norm(imp, int(a["axis"]), len(src))  # type: ignore[arg-type]
    n_out = len(node.output)
    split_n = opt_input(node, 1)
    if split_n:
        sizes = [int(v) for v in imp.need_const(split_n, "split")]
    else:
        chunk = -(-src[axis] // n_out)
        sizes = [min(chunk, src[axis] - i * chunk) for i in range(n_out)]
    if sum(sizes) != src[axis] or len(sizes) != n_out or min(sizes) < 0:
        raise imp.error(f"split sizes {sizes} do not cover axis of size {src[axis]}", ShapeError)
    outs, pos = [], 0
    for i, size in enumerate(sizes):
        b, e = [0] * len(src), list(src)
        b[axis], e[axis] = pos, pos + size
        outs.append(slice_op(imp, x, b, e, [1] * len(src), out_hint(node, i)))
        pos += size
    return outs


@handles("Gather")
def _gather(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": 0})
    data, idx = (imp.value(n) for n in inputs(imp, node, 2, 2))
    rank = len(imp.shape(data))
    axis = _norm(imp, int(a["axis"]), rank)  # type: ignore[arg-type]
    known = imp.const(node.input[1])
    size = imp.shape(data)[axis]
    if known is not None and ((known >= size) | (known < -size)).any():
        raise imp.error(f"index out of range for axis of size {imp.shape(data)[axis]}", ShapeError)
    src = imp.shape(data)
    shape = list(src[:axis]) + list(imp.shape(idx)) + list(src[axis + 1 :])
    op = graph.GatherOp.create(
        operands=[data, idx],
        result_types=[like(imp, data, shape)],
        attributes={"axis": IntegerAttr(axis, i64)},
    )
    return [imp.emit(op, out_hint(node))]


@handles("Expand")
def _expand(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    names = inputs(imp, node, 2, 2)
    x = imp.value(names[0])
    target = [int(v) for v in imp.need_const(names[1], "shape")]
    try:
        shape = list(np.broadcast_shapes(tuple(imp.shape(x)), tuple(target)))
    except ValueError:
        raise imp.error(f"cannot expand {list(imp.shape(x))} to {target}", ShapeError) from None
    if shape == list(imp.shape(x)):
        return [x]
    op = graph.ExpandOp.create(operands=[x], result_types=[like(imp, x, shape)])
    return [imp.emit(op, out_hint(node))]


@handles("Shape")
def _shape(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"start": 0, "end": None})
    x = imp.value(inputs(imp, node, 1, 1)[0])
    shp = np.asarray(imp.shape(x), dtype=np.int64)
    return [imp.constant(shp[int(a["start"]) : a["end"]], out_hint(node))]  # type: ignore[misc,arg-type]


_CONST_KEYS = {
    "value": None,
    "value_float": None,
    "value_floats": None,
    "value_int": None,
    "value_ints": None,
    "sparse_value": None,
    "value_string": None,
    "value_strings": None,
}


@handles("Constant")
def _constant(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = {k: v for k, v in attrs(imp, node, _CONST_KEYS).items() if v is not None}
    if len(a) != 1:
        raise imp.error("needs exactly one value attribute")
    key, val = next(iter(a.items()))
    if key == "value":
        onnx_dtype(val.data_type, f"node {imp.node_label!r} (Constant) value")  # type: ignore[union-attr]
        arr = numpy_helper.to_array(val)  # type: ignore[arg-type]
    elif key in ("value_float", "value_floats"):
        arr = np.asarray(val, dtype=np.float32)
    elif key in ("value_int", "value_ints"):
        arr = np.asarray(val, dtype=np.int64)
    else:
        raise imp.error(f"attribute {key!r} is not supported")
    return [imp.constant(arr, out_hint(node))]


# ---- ONNX quantization ops (imported as exact graph arithmetic) ---------------------


def _qparam(
    imp: Importer,
    node: onnx.NodeProto,
    i: int,
    x_rank: int,
    axis: int,
    default: np.ndarray | None = None,
) -> np.ndarray:
    name = opt_input(node, i)
    if name is None:
        assert default is not None
        return default
    val = imp.need_const(name, "quantization parameter")
    if val.ndim == 1 and val.size > 1:  # per-axis: broadcast along axis
        axis = _norm(imp, axis, x_rank)
        shape = [1] * x_rank
        shape[axis] = val.size
        val = val.reshape(shape)
    return val


@handles("QuantizeLinear")
def _quantize_linear(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": 1, "saturate": 1, "block_size": 0, "output_dtype": 0})
    if a["block_size"]:
        raise imp.error("blocked quantization (block_size) is not supported")
    x = imp.value(inputs(imp, node, 2, 3)[0])
    rank = len(imp.shape(x))
    axis = int(a["axis"])  # type: ignore[arg-type]
    scale = _qparam(imp, node, 1, rank, axis)
    zp = _qparam(imp, node, 2, rank, axis, np.zeros((), np.uint8))
    if zp.dtype not in (np.int8, np.uint8, np.int16, np.uint16):
        raise imp.error(f"zero point type {zp.dtype} is not supported (8/16-bit only)")
    info = np.iinfo(zp.dtype)
    hint = out_hint(node)
    s_v = imp.constant(scale.astype(np_dtype(imp.elem(x))), hint + "_scale")
    y = binary(imp, graph.DivOp, x, s_v, hint + "_div")
    y = imp.emit(graph.RoundOp.create(operands=[y], result_types=[like(imp, y)]), hint + "_round")
    z_v = imp.constant(zp.astype(np_dtype(imp.elem(y))), hint + "_zp")
    y = binary(imp, graph.AddOp, y, z_v, hint + "_add")
    y = relu(imp, y, hint + "_sat", float(info.min), float(info.max))
    return [cast(imp, y, elem_type(zp.dtype), hint)]


def dequant(imp: Importer, x: SSAValue, scale: np.ndarray, zp: np.ndarray, hint: str) -> SSAValue:
    xf = cast(imp, x, elem_type(scale.dtype), hint + "_f")
    z_v = imp.constant(zp.astype(scale.dtype), hint + "_zp")
    xf = binary(imp, graph.SubOp, xf, z_v, hint + "_sub")
    return binary(imp, graph.MulOp, xf, imp.constant(scale, hint + "_scale"), hint)


@handles("DequantizeLinear")
def _dequantize_linear(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    a = attrs(imp, node, {"axis": 1, "block_size": 0})
    if a["block_size"]:
        raise imp.error("blocked quantization (block_size) is not supported")
    x = imp.value(inputs(imp, node, 2, 3)[0])
    rank = len(imp.shape(x))
    axis = int(a["axis"])  # type: ignore[arg-type]
    if np_dtype(imp.elem(x)) not in (np.int8, np.uint8, np.int16, np.uint16, np.int32):
        raise imp.error(f"input type {imp.elem(x)} is not supported (8/16/32-bit integers)")
    scale = _qparam(imp, node, 1, rank, axis)
    zp = _qparam(imp, node, 2, rank, axis, np.zeros((), np.int64))
    return [dequant(imp, x, scale, zp, out_hint(node))]


def int_matmul(imp: Importer, node, a: SSAValue, b: SSAValue, a_zp, b_zp, hint: str) -> SSAValue:
    a32 = cast(imp, a, elem_type("int32"), hint + "_a32")
    b32 = cast(imp, b, elem_type("int32"), hint + "_b32")
    if a_zp is not None and np.any(a_zp):
        azp = imp.constant(_row_zp(a_zp, 1), hint + "_azp")
        a32 = binary(imp, graph.SubOp, a32, azp, hint + "_a")
    if b_zp is not None and np.any(b_zp):
        bzp = imp.constant(_row_zp(b_zp, 0), hint + "_bzp")
        b32 = binary(imp, graph.SubOp, b32, bzp, hint + "_b")
    return matmul(imp, a32, b32, hint)


def _row_zp(zp: np.ndarray, which: int) -> np.ndarray:
    """A-side zero points are per row (shape [M, 1]), B-side per column ([N])."""
    zp = np.asarray(zp).astype(np.int32)
    if zp.ndim == 1 and zp.size > 1 and which == 1:
        return zp.reshape(-1, 1)
    return zp


@handles("MatMulInteger")
def _matmul_integer(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    names = inputs(imp, node, 2, 4)
    a, b = imp.value(names[0]), imp.value(names[1])
    a_zp = imp.need_const(opt_input(node, 2), "a_zero_point") if opt_input(node, 2) else None
    b_zp = imp.need_const(opt_input(node, 3), "b_zero_point") if opt_input(node, 3) else None
    return [int_matmul(imp, node, a, b, a_zp, b_zp, out_hint(node))]


@handles("QLinearMatMul")
def _qlinear_matmul(imp: Importer, node: onnx.NodeProto) -> list[SSAValue]:
    attrs(imp, node, {})
    n = inputs(imp, node, 8, 8)
    c = [imp.need_const(n[i], "quantization parameter") for i in (1, 2, 4, 5, 6, 7)]
    a_s, a_zp, b_s, b_zp, y_s, y_zp = c
    if a_s.size != 1 or y_s.size != 1:
        raise imp.error("per-row scales of A or Y are not supported")
    hint = out_hint(node)
    acc = int_matmul(imp, node, imp.value(n[0]), imp.value(n[3]), a_zp, b_zp, hint + "_acc")
    accf = cast(imp, acc, elem_type("float32"), hint + "_accf")
    f32 = np.float32
    mult = (a_s.astype(f32) * b_s.astype(f32) / y_s.astype(f32)).astype(f32)
    m_v = imp.constant(mult.reshape(-1) if mult.size > 1 else mult.reshape(()), hint + "_m")
    y = binary(imp, graph.MulOp, accf, m_v, hint + "_scaled")
    y = imp.emit(graph.RoundOp.create(operands=[y], result_types=[like(imp, y)]), hint + "_round")
    z_v = imp.constant(y_zp.astype(np.float32), hint + "_zp")
    y = binary(imp, graph.AddOp, y, z_v, hint + "_add")
    info = np.iinfo(y_zp.dtype)
    y = relu(imp, y, hint + "_sat", float(info.min), float(info.max))
    return [cast(imp, y, elem_type(y_zp.dtype), hint)]
