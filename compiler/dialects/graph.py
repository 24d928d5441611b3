"""The ``graph`` dialect: float (and integer index) tensor ops of transformers and CNNs.

Semantics are those of numpy / ONNX on the same data (NCHW convolution, numpy
broadcasting, numpy matmul).  ``tosa.clamp`` from xDSL's TOSA dialect is reused for
ReLU and Clip; TOSA's add/sub/mul are not reused because they require operands of
equal rank and ``tosa.mul`` carries an extra shift operand, while ONNX broadcasting
needs neither.  Weights are ``graph.weight`` ops naming an entry of the constant store
(:mod:`compiler.store`); ``graph.constant`` holds small inline values only.
"""

from __future__ import annotations

from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, StringAttr, TensorType
from xdsl.ir import Dialect
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from compiler.dialects.base import (
    DYN,
    Shape,
    TensorOp,
    broadcast,
    elem_of,
    int_attr,
    ints,
    matmul_shape,
    norm_axis,
    pool_out,
    shape_of,
    str_attr,
)

MAX_INLINE_ELEMENTS = 1024
ACTIVATIONS = ("none", "relu", "gelu")


@irdl_op_definition
class WeightOp(TensorOp):
    """A constant tensor held in the constant store under ``ref``."""

    name = "graph.weight"
    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"
    traits = traits_def(Pure())

    def check(self) -> None:
        ref = self.attributes.get("ref")
        if not isinstance(ref, StringAttr) or not ref.data:
            raise VerifyException("'graph.weight' needs a non-empty string attribute 'ref'")
        if DYN in shape_of(self.result):
            raise VerifyException("'graph.weight' must have a static shape")

    @property
    def ref(self) -> str:
        return str_attr(self, "ref")


@irdl_op_definition
class ConstantOp(TensorOp):
    """A small inline constant (at most 1024 elements); big data goes to the store."""

    name = "graph.constant"
    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"
    traits = traits_def(Pure())

    def check(self) -> None:
        value = self.attributes.get("value")
        if not isinstance(value, DenseIntOrFPElementsAttr):
            raise VerifyException("'graph.constant' needs a dense attribute 'value'")
        if len(value) > MAX_INLINE_ELEMENTS:
            raise VerifyException(
                f"'graph.constant' holds {len(value)} elements; more than "
                f"{MAX_INLINE_ELEMENTS} belong in the constant store (graph.weight)"
            )
        if value.type != self.result.type:
            raise VerifyException("'graph.constant' value type must equal the result type")


class BinaryOp(TensorOp):
    """Elementwise op with numpy broadcasting; operands share the element type."""

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        if elem_of(self.lhs) != elem_of(self.rhs):
            raise VerifyException(f"'{self.name}' operands must have the same element type")

    def infer_shapes(self) -> list[Shape]:
        return [broadcast(shape_of(self.lhs), shape_of(self.rhs), f"'{self.name}'")]


@irdl_op_definition
class AddOp(BinaryOp):
    name = "graph.add"


@irdl_op_definition
class SubOp(BinaryOp):
    name = "graph.sub"


@irdl_op_definition
class MulOp(BinaryOp):
    name = "graph.mul"


@irdl_op_definition
class DivOp(BinaryOp):
    """Float division, or integer division truncating toward zero (ONNX)."""

    name = "graph.div"


@irdl_op_definition
class PowOp(BinaryOp):
    name = "graph.pow"


@irdl_op_definition
class WhereOp(TensorOp):
    """``cond ? lhs : rhs`` elementwise with broadcasting; ``cond`` is i1."""

    name = "graph.where"
    cond = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        if str(elem_of(self.cond)) != "i1":
            raise VerifyException("'graph.where' condition must be a tensor of i1")
        if elem_of(self.lhs) != elem_of(self.rhs):
            raise VerifyException("'graph.where' branches must have the same element type")

    def infer_shapes(self) -> list[Shape]:
        s = broadcast(shape_of(self.cond), shape_of(self.lhs), "'graph.where'")
        return [broadcast(s, shape_of(self.rhs), "'graph.where'")]


class UnaryOp(TensorOp):
    """Elementwise float function; result type equals operand type."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class ErfOp(UnaryOp):
    name = "graph.erf"


@irdl_op_definition
class TanhOp(UnaryOp):
    name = "graph.tanh"


@irdl_op_definition
class SigmoidOp(UnaryOp):
    name = "graph.sigmoid"


@irdl_op_definition
class SqrtOp(UnaryOp):
    name = "graph.sqrt"


@irdl_op_definition
class ExpOp(UnaryOp):
    name = "graph.exp"


@irdl_op_definition
class RoundOp(UnaryOp):
    """Round half to even (ONNX Round, numpy.rint)."""

    name = "graph.round"


@irdl_op_definition
class GeluOp(UnaryOp):
    """GELU; ``approximate`` is "none" (erf form) or "tanh"."""

    name = "graph.gelu"

    def check(self) -> None:
        if str_attr(self, "approximate", "none") not in ("none", "tanh"):
            raise VerifyException('\'graph.gelu\' approximate must be "none" or "tanh"')


@irdl_op_definition
class CastOp(UnaryOp):
    """Element type conversion (float -> int truncates toward zero, as numpy)."""

    name = "graph.cast"


@irdl_op_definition
class SoftmaxOp(UnaryOp):
    name = "graph.softmax"

    def check(self) -> None:
        norm_axis(int_attr(self, "axis"), len(shape_of(self.input)), "'graph.softmax'")


@irdl_op_definition
class MatMulOp(TensorOp):
    """numpy.matmul (batched, broadcasting)."""

    name = "graph.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        return [matmul_shape(shape_of(self.lhs), shape_of(self.rhs))]


@irdl_op_definition
class FusedMatMulOp(TensorOp):
    """``act(matmul(lhs, rhs) + bias)``; bias is 1-D over the last result dim."""

    name = "graph.fused_matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    bias = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        if str_attr(self, "act", "none") not in ACTIVATIONS:
            raise VerifyException(f"'graph.fused_matmul' act must be one of {ACTIVATIONS}")
        out = self.infer_shapes()[0]
        if len(shape_of(self.bias)) != 1 or shape_of(self.bias)[0] not in (out[-1], DYN):
            raise VerifyException("'graph.fused_matmul' bias must be 1-D of the output width")

    def infer_shapes(self) -> list[Shape]:
        return [matmul_shape(shape_of(self.lhs), shape_of(self.rhs))]


def conv_shape(op: TensorOp, x: Shape, w: Shape) -> Shape:
    """NCHW x OIHW (or NHWC x HWIO with layout = "nhwc") 2-D convolution shape."""
    nhwc = str_attr(op, "layout", "nchw") == "nhwc"
    if len(x) != 4 or len(w) != 4:
        raise VerifyException(f"'{op.name}' supports 2-D convolution (rank-4 tensors) only")
    n, c, h, wd = (x[0], x[3], x[1], x[2]) if nhwc else x
    o, ci, kh, kw = (w[3], w[2], w[0], w[1]) if nhwc else w
    group = int_attr(op, "group", 1)
    if DYN not in (c, ci) and c != ci * group:
        raise VerifyException(f"'{op.name}' has {c} input channels, weights expect {ci * group}")
    s, p, d = ints(op, "strides", [1, 1]), ints(op, "pads", [0] * 4), ints(op, "dilations", [1, 1])
    oh = pool_out(h, kh, s[0], p[0], p[2], d[0])
    ow = pool_out(wd, kw, s[1], p[1], p[3], d[1])
    return (n, oh, ow, o) if nhwc else (n, o, oh, ow)


@irdl_op_definition
class ConvOp(TensorOp):
    """2-D convolution with optional bias and fused activation.

    Attributes: strides [sh, sw], pads [top, left, bottom, right], dilations, group,
    act ("none" | "relu"), layout ("nchw" with OIHW weights | "nhwc" with HWIO).
    """

    name = "graph.conv"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        if str_attr(self, "act", "none") not in ("none", "relu"):
            raise VerifyException('\'graph.conv\' act must be "none" or "relu"')
        if str_attr(self, "layout", "nchw") not in ("nchw", "nhwc"):
            raise VerifyException('\'graph.conv\' layout must be "nchw" or "nhwc"')
        if len(ints(self, "pads", [0] * 4)) != 4 or len(ints(self, "strides", [1, 1])) != 2:
            raise VerifyException("'graph.conv' needs 2 strides and 4 pads")

    def infer_shapes(self) -> list[Shape]:
        return [conv_shape(self, shape_of(self.input), shape_of(self.weight))]


class PoolOp(TensorOp):
    """2-D NCHW pooling: kernel [kh, kw], strides, pads [t, l, b, r], dilations,
    ceil_mode."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        if len(shape_of(self.input)) != 4:
            raise VerifyException(f"'{self.name}' supports rank-4 NCHW input only")
        if len(ints(self, "kernel")) != 2 or len(ints(self, "pads", [0] * 4)) != 4:
            raise VerifyException(f"'{self.name}' needs a 2-D kernel and 4 pads")

    def infer_shapes(self) -> list[Shape]:
        n, c, h, w = shape_of(self.input)
        k, s = ints(self, "kernel"), ints(self, "strides", [1, 1])
        p, ceil = ints(self, "pads", [0] * 4), bool(int_attr(self, "ceil_mode", 0))
        d = ints(self, "dilations", [1, 1])
        return [
            (
                n,
                c,
                pool_out(h, k[0], s[0], p[0], p[2], d[0], ceil),
                pool_out(w, k[1], s[1], p[1], p[3], d[1], ceil),
            )
        ]


@irdl_op_definition
class MaxPoolOp(PoolOp):
    name = "graph.max_pool"


@irdl_op_definition
class AvgPoolOp(PoolOp):
    """Average pooling; count_include_pad = 1 divides by the full window."""

    name = "graph.avg_pool"


class ReduceOp(TensorOp):
    """Reduction over ``axes`` (all axes when empty) with ``keepdims``."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def reduced_axes(self) -> list[int]:
        rank = len(shape_of(self.input))
        axes = ints(self, "axes", [])
        return sorted({norm_axis(a, rank, f"'{self.name}'") for a in axes}) or list(range(rank))

    def infer_shapes(self) -> list[Shape]:
        shp, axes = shape_of(self.input), self.reduced_axes()
        keep = bool(int_attr(self, "keepdims", 1))
        if keep:
            return [tuple(1 if i in axes else d for i, d in enumerate(shp))]
        return [tuple(d for i, d in enumerate(shp) if i not in axes)]


@irdl_op_definition
class ReduceMeanOp(ReduceOp):
    name = "graph.reduce_mean"


@irdl_op_definition
class ReduceSumOp(ReduceOp):
    name = "graph.reduce_sum"


@irdl_op_definition
class ReduceMaxOp(ReduceOp):
    name = "graph.reduce_max"


@irdl_op_definition
class LayerNormOp(TensorOp):
    """Layer normalization over the trailing dims from ``axis``; gamma/beta broadcast."""

    name = "graph.layer_norm"
    input = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        rank = len(shape_of(self.input))
        axis = norm_axis(int_attr(self, "axis", -1), rank, "'graph.layer_norm'")
        tail = shape_of(self.input)[axis:]
        for what, v in (("gamma", self.gamma), ("beta", self.beta)):
            if not broadcast(tail, shape_of(v)) == tail:
                raise VerifyException(f"'graph.layer_norm' {what} does not fit the normalized dims")

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class ReshapeOp(TensorOp):
    """Reshape to the result type's shape (element count preserved)."""

    name = "graph.reshape"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        a, b = shape_of(self.input), shape_of(self.result)
        if DYN not in a + b and _prod(a) != _prod(b):
            raise VerifyException(f"'graph.reshape' cannot reshape {list(a)} to {list(b)}")


@irdl_op_definition
class ExpandOp(TensorOp):
    """Broadcast the operand to the result type's shape."""

    name = "graph.expand"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        out = shape_of(self.result)
        if broadcast(shape_of(self.input), out, "'graph.expand'") != out:
            raise VerifyException("'graph.expand' result must be the broadcast shape")


@irdl_op_definition
class TransposeOp(TensorOp):
    name = "graph.transpose"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        perm = ints(self, "perm")
        if sorted(perm) != list(range(len(shape_of(self.input)))):
            raise VerifyException(f"'graph.transpose' perm {perm} is not a permutation")

    def infer_shapes(self) -> list[Shape]:
        shp = shape_of(self.input)
        return [tuple(shp[p] for p in ints(self, "perm"))]


@irdl_op_definition
class ConcatOp(TensorOp):
    name = "graph.concat"
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        shapes = [shape_of(v) for v in self.inputs]
        if not shapes:
            raise VerifyException("'graph.concat' needs at least one operand")
        axis = norm_axis(int_attr(self, "axis"), len(shapes[0]), "'graph.concat'")
        for s in shapes:
            if len(s) != len(shapes[0]) or any(
                i != axis and DYN not in (d, shapes[0][i]) and d != shapes[0][i]
                for i, d in enumerate(s)
            ):
                raise VerifyException(f"'graph.concat' operand shapes {shapes} do not match")
        total = DYN if any(s[axis] == DYN for s in shapes) else sum(s[axis] for s in shapes)
        return [shapes[0][:axis] + (total,) + shapes[0][axis + 1 :]]


@irdl_op_definition
class SliceOp(TensorOp):
    """Static strided slice: ``starts``/``ends``/``steps`` per dim (already clamped)."""

    name = "graph.slice"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        shp = shape_of(self.input)
        st, en, sp = ints(self, "starts"), ints(self, "ends"), ints(self, "steps")
        if not len(st) == len(en) == len(sp) == len(shp):
            raise VerifyException("'graph.slice' needs starts, ends and steps for every dim")
        out = []
        for d, b, e, s in zip(shp, st, en, sp, strict=True):
            if s == 0:
                raise VerifyException("'graph.slice' step must not be 0")
            out.append(DYN if d == DYN else len(range(b, e, s)))
        return [tuple(out)]


@irdl_op_definition
class PadOp(TensorOp):
    """Constant zero padding: ``low``/``high`` elements added before/after each dim."""

    name = "graph.pad"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        shp, lo, hi = shape_of(self.input), ints(self, "low"), ints(self, "high")
        if len(lo) != len(shp) or len(hi) != len(shp) or min(lo + hi, default=0) < 0:
            raise VerifyException("'graph.pad' needs non-negative low/high for every dim")
        return [tuple(DYN if d == DYN else d + a + b for d, a, b in zip(shp, lo, hi, strict=True))]


@irdl_op_definition
class GatherOp(TensorOp):
    """numpy.take(data, indices, axis) with negative indices wrapping (ONNX Gather)."""

    name = "graph.gather"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        d = shape_of(self.data)
        axis = norm_axis(int_attr(self, "axis", 0), len(d), "'graph.gather'")
        return [d[:axis] + shape_of(self.indices) + d[axis + 1 :]]


def _prod(shape: Shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


GRAPH_OPS = [
    WeightOp, ConstantOp, AddOp, SubOp, MulOp, DivOp, PowOp, WhereOp, ErfOp, TanhOp,
    SigmoidOp, SqrtOp, ExpOp, RoundOp, GeluOp, CastOp, SoftmaxOp, MatMulOp, FusedMatMulOp, ConvOp,
    MaxPoolOp, AvgPoolOp, ReduceMeanOp, ReduceSumOp, ReduceMaxOp, LayerNormOp, ReshapeOp,
    ExpandOp, TransposeOp, ConcatOp, SliceOp, PadOp, GatherOp,
]  # fmt: skip

Graph = Dialect("graph", GRAPH_OPS, [])
