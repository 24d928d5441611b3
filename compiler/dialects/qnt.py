"""The ``qnt`` dialect: integer-only quantized tensor ops.

A quantized activation is ``tensor<...xi8, #qnt.q<scale, zp>>`` (or ``i16``): real
value = ``scale * (q - zp)``.  Weights are plain ``i8`` tensors, symmetric (zero point
0), per-channel: their scales live only in the integer multipliers of the op that
consumes them.  Every op here is defined on integers only; the exact arithmetic is
in :mod:`compiler.qmath` and documented in docs/compiler.md.  Layout ops (reshape,
transpose, concat, slice, gather, pad, max_pool, where) are the ``graph`` ops applied
to quantized tensors with the same encoding in and out; ReLU is ``tosa.clamp``.
"""

from __future__ import annotations

from xdsl.dialects.builtin import FloatData, IntAttr, IntegerType, Signedness, TensorType
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from compiler.dialects.base import (
    Shape,
    TensorOp,
    broadcast,
    int_attr,
    matmul_shape,
    norm_axis,
    shape_of,
    str_attr,
)
from compiler.dialects.graph import ReduceOp, conv_shape


@irdl_attr_definition
class QParamsAttr(ParametrizedAttribute):
    """Per-tensor quantization parameters ``#qnt.q<scale, zero_point>``."""

    name = "qnt.q"
    scale_data: FloatData
    zp_data: IntAttr

    def __init__(self, scale: float, zp: int) -> None:
        super().__init__(FloatData(float(scale)), IntAttr(int(zp)))

    @property
    def scale(self) -> float:
        return self.scale_data.data

    @property
    def zp(self) -> int:
        return self.zp_data.data

    def verify(self) -> None:
        if not self.scale > 0:
            raise VerifyException(f"#qnt.q scale must be positive, not {self.scale!r}")

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.scale!r}, {self.zp}>")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        with parser.in_angle_brackets():
            scale = parser.parse_float()
            parser.parse_punctuation(",")
            zp = parser.parse_integer()
        return [FloatData(scale), IntAttr(zp)]


def qtype(element_bits: int, shape: Shape, scale: float, zp: int) -> TensorType:
    """``tensor<shape x i{bits}, #qnt.q<scale, zp>>``."""
    return TensorType(IntegerType(element_bits), shape, QParamsAttr(scale, zp))


def qparams(value: SSAValue | Attribute) -> QParamsAttr | None:
    """The quantization encoding of a value or type, None if it has none."""
    typ = value.type if isinstance(value, SSAValue) else value
    if isinstance(typ, TensorType) and isinstance(typ.encoding, QParamsAttr):
        return typ.encoding
    return None


def int_range(value: SSAValue | Attribute) -> tuple[int, int]:
    """(min, max) representable by the integer element type of a tensor."""
    typ = value.type if isinstance(value, SSAValue) else value
    assert isinstance(typ, TensorType) and isinstance(typ.element_type, IntegerType)
    bits = typ.element_type.width.data
    if typ.element_type.signedness.data == Signedness.UNSIGNED:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _need_q(op: TensorOp, value: SSAValue, what: str, bits: tuple[int, ...] = (8, 16)) -> None:
    typ = value.type
    ok = isinstance(typ, TensorType) and isinstance(typ.element_type, IntegerType)
    if not ok or typ.element_type.width.data not in bits or qparams(value) is None:
        raise VerifyException(
            f"'{op.name}' {what} must be an i{'/i'.join(map(str, bits))} tensor with a "
            f"#qnt.q encoding, not {typ}"
        )


def _need_int(op: TensorOp, value: SSAValue | None, what: str, widths: tuple[int, ...]) -> None:
    if value is None:
        return
    typ = value.type
    if not (
        isinstance(typ, TensorType)
        and isinstance(typ.element_type, IntegerType)
        and typ.element_type.width.data in widths
    ):
        raise VerifyException(f"'{op.name}' {what} must be an integer tensor, not {typ}")


def _check_mult_shift(op: TensorOp, mult: int, shift: int) -> None:
    if not 0 <= mult < 2**31 or not 0 <= shift <= 62:
        raise VerifyException(
            f"'{op.name}' multiplier must be in [0, 2**31) and shift in [0, 62], "
            f"not {mult} and {shift}"
        )


@irdl_op_definition
class QuantizeOp(TensorOp):
    """float -> int: ``clamp(round_half_even(x / scale) + zp)`` (host-side entry)."""

    name = "qnt.quantize"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.result, "result")

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class DequantizeOp(TensorOp):
    """int -> float: ``scale * (q - zp)`` (host-side exit)."""

    name = "qnt.dequantize"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand")

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class RequantizeOp(TensorOp):
    """``clamp(rshift_round((q - zp_in) * multiplier, shift) + zp_out)``."""

    name = "qnt.requantize"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand")
        _need_q(self, self.result, "result")
        _check_mult_shift(self, int_attr(self, "multiplier"), int_attr(self, "shift"))

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class RescaleOp(TensorOp):
    """Per-channel requantization along the last axis:
    ``clamp(rshift_round((q - zp_in) * multiplier[k], shift[k]) + zp_out)``.
    Used to smooth activation outliers into the weights before an int8 MAC."""

    name = "qnt.rescale"
    input = operand_def(TensorType)
    multiplier = operand_def(TensorType)
    shift = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand")
        _need_q(self, self.result, "result")
        width = shape_of(self.input)[-1]
        for what, v in (("multiplier", self.multiplier), ("shift", self.shift)):
            _need_int(self, v, what, (32,))
            if shape_of(v) != (width,):
                raise VerifyException(f"'qnt.rescale' {what} must have {width} elements")

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


class _Accumulating(TensorOp):
    """Shared checks of ops with bias, per-channel multiplier and shift operands."""

    def check_common(self, out_channels: int) -> None:
        _need_q(self, self.operands[0], "input")
        _need_int(self, self.operands[1], "weight", (8, 16))
        _need_q(self, self.result, "result")
        _need_int(self, self.bias, "bias", (32,))
        _need_int(self, self.multiplier, "multiplier", (32,))
        _need_int(self, self.shift, "shift", (32,))
        if str_attr(self, "act", "none") not in ("none", "relu"):
            raise VerifyException(f'\'{self.name}\' act must be "none" or "relu"')
        for what, v in (("multiplier", self.multiplier), ("shift", self.shift)):
            n = shape_of(v)
            if len(n) != 1 or n[0] not in (1, out_channels):
                raise VerifyException(
                    f"'{self.name}' {what} must have 1 or {out_channels} elements, not {list(n)}"
                )
        if self.bias is not None and shape_of(self.bias) != (out_channels,):
            raise VerifyException(f"'{self.name}' bias must have {out_channels} elements")


@irdl_op_definition
class MatMulOp(_Accumulating):
    """int32 ``acc = sum((a - zp_a) * (b - zp_b)) + bias``; then per-column requantize
    with ``multiplier``/``shift`` (1 or N entries), zero point of the result, optional
    ReLU (``act``), saturation.  ``b`` without encoding has zero point 0."""

    name = "qnt.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    bias = operand_def(TensorType)
    multiplier = operand_def(TensorType)
    shift = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        self.check_common(self.infer_shapes()[0][-1])
        k = shape_of(self.lhs)[-1]
        bits = [v.type.element_type.width.data for v in (self.lhs, self.rhs)]  # type: ignore[attr-defined]
        owner = self.rhs.owner
        weights = getattr(owner, "name", None) in ("graph.weight", "graph.constant")
        # constant weights: the quantizer bounds 2**15 * max column sum |w| instead
        if not weights and k * (1 << (bits[0] - 1)) * (1 << (bits[1] - 1)) >= 2**31:
            raise VerifyException(
                f"'qnt.matmul' int32 accumulator can overflow: K = {k} with "
                f"i{bits[0]} x i{bits[1]} operands (i16 operands need K < 512)"
            )

    def infer_shapes(self) -> list[Shape]:
        return [matmul_shape(shape_of(self.lhs), shape_of(self.rhs))]


@irdl_op_definition
class ConvOp(_Accumulating):
    """Quantized 2-D convolution (same attributes as ``graph.conv``); padding holds the
    input zero point; accumulate, requantize and activation as ``qnt.matmul``."""

    name = "qnt.conv"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = operand_def(TensorType)
    multiplier = operand_def(TensorType)
    shift = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        out = self.infer_shapes()[0]
        nhwc = str_attr(self, "layout", "nchw") == "nhwc"
        self.check_common(out[3] if nhwc else out[1])

    def infer_shapes(self) -> list[Shape]:
        return [conv_shape(self, shape_of(self.input), shape_of(self.weight))]


class _BinaryQ(TensorOp):
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def infer_shapes(self) -> list[Shape]:
        return [broadcast(shape_of(self.lhs), shape_of(self.rhs), f"'{self.name}'")]


@irdl_op_definition
class AddOp(_BinaryQ):
    """``rshift_round((a - zp_a) * lhs_mult + (b - zp_b) * rhs_mult, shift) + zp``;
    multipliers below 2**15 so the sum fits int32."""

    name = "qnt.add"

    def check(self) -> None:
        for what, v in (("lhs", self.lhs), ("rhs", self.rhs), ("result", self.result)):
            _need_q(self, v, what)
        for key in ("lhs_mult", "rhs_mult"):
            m = int_attr(self, key)
            if not -(2**15) < m < 2**15:
                raise VerifyException(f"'qnt.add' {key} must be in (-2**15, 2**15), not {m}")
        _check_mult_shift(self, 0, int_attr(self, "shift"))


@irdl_op_definition
class MulOp(_BinaryQ):
    """``rshift_round((a - zp_a) * (b - zp_b) * multiplier, shift) + zp``."""

    name = "qnt.mul"

    def check(self) -> None:
        for what, v in (("lhs", self.lhs), ("rhs", self.rhs), ("result", self.result)):
            _need_q(self, v, what)
        _check_mult_shift(self, int_attr(self, "multiplier"), int_attr(self, "shift"))


@irdl_op_definition
class SoftmaxOp(TensorOp):
    """I-BERT integer softmax: i-exp with ``ln2``, ``b``, ``c`` (integer polynomial
    constants), row sum, reciprocal; result scale 2**-bits and zero point -2**(bits-1)
    (i8: 1/256 and -128; i16: 1/65536 and -32768)."""

    name = "qnt.softmax"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand")
        _need_q(self, self.result, "result")
        norm_axis(int_attr(self, "axis"), len(shape_of(self.input)), "'qnt.softmax'")
        q = qparams(self.result)
        assert q is not None
        bits = self.result.type.element_type.width.data  # type: ignore[attr-defined]
        if q.scale != 2.0**-bits or q.zp != -(2 ** (bits - 1)):
            raise VerifyException(
                f"'qnt.softmax' result must be #qnt.q<{2.0**-bits!r}, "
                f"{-(2 ** (bits - 1))}> for i{bits}"
            )
        if int_attr(self, "ln2") < 1 or int_attr(self, "b") < 0 or int_attr(self, "c") < 0:
            raise VerifyException("'qnt.softmax' needs ln2 >= 1 and b, c >= 0")

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class GeluOp(TensorOp):
    """I-BERT integer GELU (second-order polynomial erf): ``b`` clip point, ``c`` the
    integer 1.0, then requantize by ``multiplier``/``shift``."""

    name = "qnt.gelu"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand")
        _need_q(self, self.result, "result")
        if int_attr(self, "b") < 1 or int_attr(self, "c") < 1:
            raise VerifyException("'qnt.gelu' needs b >= 1 and c >= 1")
        if not 0 <= int_attr(self, "in_shift", 0) <= 16:
            raise VerifyException("'qnt.gelu' in_shift must be in 0..16")
        _check_mult_shift(self, int_attr(self, "multiplier"), int_attr(self, "shift"))

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class LayerNormOp(TensorOp):
    """Integer layer norm over the last dim: integer mean, variance, integer square
    root (i-sqrt), one reciprocal per row, normalized value with 12 fraction bits, times
    ``gamma`` (int16 holding 12-bit values) plus int32 ``beta``, requantized by
    ``multiplier``/``shift``."""

    name = "qnt.layer_norm"
    input = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand")
        _need_q(self, self.result, "result")
        _need_int(self, self.gamma, "gamma", (16,))
        _need_int(self, self.beta, "beta", (32,))
        width = shape_of(self.input)[-1]
        if shape_of(self.gamma) != (width,) or shape_of(self.beta) != (width,):
            raise VerifyException(f"'qnt.layer_norm' gamma and beta must have {width} elements")
        if int_attr(self, "eps", 0) < 0:
            raise VerifyException("'qnt.layer_norm' eps must be >= 0")
        _check_mult_shift(self, int_attr(self, "multiplier"), int_attr(self, "shift"))

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class LutOp(TensorOp):
    """Table lookup ``table[q + 128]`` for i8 input: any unary function (tanh, sigmoid,
    erf) with a 256-entry table computed at compile time."""

    name = "qnt.lut"
    input = operand_def(TensorType)
    table = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())

    def check(self) -> None:
        _need_q(self, self.input, "operand", (8,))
        _need_q(self, self.result, "result", (8,))
        if shape_of(self.table) != (256,) or self.table.type.element_type != IntegerType(8):
            raise VerifyException("'qnt.lut' table must be tensor<256xi8>")

    def infer_shapes(self) -> list[Shape]:
        return [shape_of(self.input)]


@irdl_op_definition
class MeanOp(ReduceOp):
    """Integer mean: ``requant(sum(q - zp_in), multiplier, shift) + zp_out``; the
    multiplier includes the 1/N factor."""

    name = "qnt.mean"

    def check(self) -> None:
        _need_q(self, self.input, "operand")
        _need_q(self, self.result, "result")
        _check_mult_shift(self, int_attr(self, "multiplier"), int_attr(self, "shift"))


QNT_OPS = [
    QuantizeOp, DequantizeOp, RequantizeOp, RescaleOp, MatMulOp, ConvOp, AddOp, MulOp, SoftmaxOp,
    GeluOp, LayerNormOp, LutOp, MeanOp,
]  # fmt: skip

Qnt = Dialect("qnt", QNT_OPS, [QParamsAttr])
