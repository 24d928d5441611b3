"""quantize: post-training quantization of a float graph to the integer-only qnt dialect.

Contract: calibration samples (``compiler.calibration.set_samples`` or the
``calibration`` option naming an .npz) are run through the float interpreter to get the
range of every value; then each float op with a rule in :mod:`compiler.quant_rules`
is replaced by its quantized form.  Float inputs are quantized by ``qnt.quantize`` and
outputs dequantized by ``qnt.dequantize``; int/bool ops (masks, indices) are kept.
Ops without a rule stay in float between dequantize/quantize and are listed in the
module attribute ``myelin.float_ops`` (empty for integer-only graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from compiler import qmath
from compiler.calibration import collect_ranges, load_samples, samples_of
from compiler.dialects import graph, qnt
from compiler.dialects.base import i64_array, shape_of
from compiler.dialects.qnt import QParamsAttr, int_range, qparams, qtype
from compiler.errors import QuantizeError
from compiler.ir import np_dtype
from compiler.quant_rules import RULES
from compiler.store import ConstantStore, store_of
from compiler.transforms.common import const_value, make_constant, ops, sync_signature

_ = i64_array


class QuantBuilder:
    """State of one quantization run: ranges, the store and the op being replaced."""

    def __init__(self, module: ModuleOp, ranges, opts: QuantizePass) -> None:
        self.module = module
        self.ranges = ranges
        self.opts = opts
        self.store: ConstantStore = store_of(module)
        self.anchor: Operation | None = None
        self.wide: set[SSAValue] = set()
        self.ranges8: dict[SSAValue, tuple[float, float]] = {}
        self.channels: dict[SSAValue, tuple[np.ndarray, np.ndarray]] = {}

    # -- values -------------------------------------------------------------------
    def value(self, v: SSAValue) -> np.ndarray | None:
        return const_value(v, self.store)

    def params_for(self, lo: float, hi: float, bits: int) -> tuple[float, int]:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / (qmax - qmin)
        if scale <= 0:
            return 1.0, 0
        zp = int(np.clip(np.rint(qmin - lo / scale), qmin, qmax))
        return scale, zp

    def out_type(self, v: SSAValue, bits: int | None = None) -> TensorType:
        bits = bits or (self.opts.wide_bits if v in self.wide else self.opts.bits)
        if v not in self.ranges:
            raise QuantizeError(
                f"no calibration range for value %{v.name_hint or '?'} "
                f"({v.type}); was it produced by the calibrated graph?"
            )
        lo, hi = self.ranges[v]
        if bits == 8 and v in self.ranges8:
            lo, hi = self.ranges8[v]
        if bits == 16:  # 16-bit values can afford headroom against calibration misses
            lo, hi = lo * self.opts.wide_headroom, hi * self.opts.wide_headroom
        scale, zp = self.params_for(lo, hi, bits)
        return qtype(bits, shape_of(v), scale, zp)

    def input_bits(self, x: SSAValue, k: int, w_q: np.ndarray | None = None) -> int:
        """Bits of a matmul input: wide only if the int32 accumulator cannot overflow,
        either for any i8 weights (K < 512) or for the actual int8 weights ``w_q``
        (``2**15 * max column sum of |w_q| < 2**31 - 2**28``; the bias must fit in the
        rest, which the matmul rule checks)."""
        if x not in self.wide or self.opts.wide_bits != 16 or self.opts.mac_input_bits != 16:
            return 8
        if k < 512:
            return 16
        if w_q is not None and w_q.ndim == 2:
            if (1 << 15) * int(np.abs(w_q.astype(np.int64)).sum(axis=0).max()) < 2**31 - 2**28:
                return 16
        return 8

    def const(self, array: np.ndarray, hint: str, typ=None) -> SSAValue:
        op = make_constant(array, self.store, hint, typ)
        self._insert(op)
        return op.results[0]

    def _insert(self, op: Operation) -> None:
        assert self.anchor is not None
        block = self.anchor.parent_block()
        assert block is not None
        block.insert_op_before(op, self.anchor)

    def q(self, v: SSAValue, bits: int | None = None, like: QParamsAttr | None = None) -> SSAValue:
        """The quantized version of float value ``v`` (inserting ops as needed)."""
        owner = v.owner
        if isinstance(owner, qnt.DequantizeOp):
            if bits is None or _bits(owner.input) == bits:
                return owner.input
            return self.requantize(owner.input, self.out_type(v, bits))
        bits = bits or (self.opts.wide_bits if v in self.wide else self.opts.bits)
        val = self.value(v)
        if val is not None:
            return self._q_const(val, bits, like)
        typ = (
            self.out_type(v, bits)
            if like is None
            else qtype(bits, shape_of(v), like.scale, like.zp)
        )
        quant = qnt.QuantizeOp.create(operands=[v], result_types=[typ])
        self._insert(quant)
        return quant.results[0]

    def _q_const(self, val: np.ndarray, bits: int, like: QParamsAttr | None) -> SSAValue:
        if like is not None:
            scale, zp = like.scale, like.zp
        elif val.size == 1 and float(val.reshape(-1)[0]) != 0.0:
            scale, zp = abs(float(val.reshape(-1)[0])) / ((1 << (bits - 1)) - 1), 0
        else:
            scale, zp = self.params_for(float(val.min()), float(val.max()), bits)
        typ = qtype(bits, val.shape, scale, zp)
        lo, hi = int_range(typ)
        codes = np.clip(np.rint(val.astype(np.float64) / scale) + zp, lo, hi)
        return self.const(codes.astype(np_dtype(typ.element_type)), "qconst", typ)

    def requantize(self, v: SSAValue, typ: TensorType) -> SSAValue:
        if v.type == typ:
            return v
        real = qparams(v).scale / qparams(typ).scale  # type: ignore[union-attr]
        m, s = qmath.quantize_multiplier(real)
        from compiler.quant_rules import _i

        req = qnt.RequantizeOp.create(
            operands=[v], result_types=[typ], attributes={"multiplier": _i(m), "shift": _i(s)}
        )
        self._insert(req)
        return req.results[0]

    def emit(self, new: Operation, old: Operation) -> SSAValue:
        """Insert ``new`` and make ``old``'s users read its dequantized result."""
        self._insert(new)
        res = new.results[0]
        res.name_hint = old.results[0].name_hint
        dq = qnt.DequantizeOp.create(operands=[res], result_types=[old.results[0].type])
        self._insert(dq)
        if old.results[0] in self.ranges:
            self.ranges[dq.results[0]] = self.ranges[old.results[0]]
        if old.results[0] in self.ranges8:
            self.ranges8[dq.results[0]] = self.ranges8[old.results[0]]
        if old.results[0] in self.channels:
            self.channels[dq.results[0]] = self.channels[old.results[0]]
        if old.results[0] in self.wide:
            self.wide.add(dq.results[0])
        old.results[0].replace_all_uses_with(dq.results[0])
        return res


_MATMUL_LIKE = (graph.MatMulOp, graph.FusedMatMulOp, graph.ConvOp)
_SCORE_PATH = (graph.WhereOp, graph.MulOp, graph.ReshapeOp, graph.TransposeOp)


def wide_values(module: ModuleOp) -> set[SSAValue]:
    """Values that get ``wide_bits``: softmax inputs back to their matmul (attention
    scores), and the residual stream (results and matmul operands of activation adds,
    layer-norm inputs).  Matmul *inputs* always stay at ``bits`` (int8 MAC array)."""
    wide: set[SSAValue] = set()
    store = store_of(module)
    for node in ops(module):
        if isinstance(node, graph.SoftmaxOp):
            wide.add(node.results[0])
            v = node.input
            while True:
                wide.add(v)
                owner = v.owner
                if not isinstance(owner, _SCORE_PATH):
                    break
                live = [x for x in owner.operands if const_value(x, store) is None and _is_float(x)]
                if len(live) != 1:
                    break
                v = live[0]
        elif isinstance(node, (graph.AddOp, graph.SubOp)):
            wide.add(node.results[0])
            for x in node.operands:  # residual branches and embedding lookups
                if isinstance(x.owner, (*_MATMUL_LIKE, graph.GatherOp)):
                    wide.add(x)
        elif isinstance(node, graph.LayerNormOp):
            wide.add(node.input)
            wide.add(node.results[0])  # outliers of gamma; narrowed per consumer
        elif isinstance(node, graph.GeluOp) and isinstance(node.input.owner, _MATMUL_LIKE):
            wide.add(node.input)
        elif isinstance(node, (graph.MatMulOp, graph.FusedMatMulOp)):
            if True:  # the matmul rule narrows to i8 when the accumulator could overflow
                v = node.lhs
                while True:
                    wide.add(v)
                    if not isinstance(v.owner, (graph.ReshapeOp, graph.TransposeOp)):
                        break
                    v = v.owner.operands[0]
    return wide


def _bits(v: SSAValue) -> int:
    return v.type.element_type.width.data  # type: ignore[attr-defined]


def _is_float(v: SSAValue) -> bool:
    t = v.type
    return isinstance(t, TensorType) and np_dtype(t.element_type).kind == "f"


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    """Post-training static quantization.

    Options: ``bits`` (default activation width, 8), ``wide_bits`` (width of the
    sensitive vector-unit values: residual stream, softmax, layer norm, GELU; 16),
    ``mac_input_bits`` (8: every MAC-array input is int8; 16: W8A16 where the int32
    accumulator provably cannot overflow), ``wide_headroom`` (range multiplier of
    16-bit values), ``percentile`` (calibration clipping, 100 = min/max),
    ``range_method`` ("minmax", or "mse": MSE-optimal clipping of 8-bit ranges),
    ``smooth`` / ``smooth_alpha`` (SmoothQuant, off by default: per-channel factors
    ``max|x|**alpha / max|w|**(1-alpha)`` moved from a 16-bit activation into the
    constant weights of the int8 matmul it feeds, via ``qnt.rescale``),
    ``calibration`` (.npz path when samples are not attached programmatically).
    """

    name = "quantize"
    arch: str = "small"
    calibration: str = ""
    bits: int = 8
    wide_bits: int = 16
    wide_headroom: float = 4.0
    mac_input_bits: int = 8
    range_method: str = "minmax"
    smooth: bool = False
    smooth_alpha: float = 0.5
    percentile: float = 100.0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.range_method not in ("minmax", "mse"):
            raise QuantizeError(
                f"quantize: range-method must be minmax or mse, not {self.range_method!r}"
            )
        for key in ("bits", "wide_bits", "mac_input_bits"):
            if getattr(self, key) not in (8, 16):
                raise QuantizeError(f"quantize: {key} must be 8 or 16, not {getattr(self, key)}")
        samples = samples_of(op)
        if samples is None:
            if not self.calibration:
                raise QuantizeError(
                    "quantize needs calibration inputs: pass "
                    "--calibration FILE.npz (one array per model input)"
                )
            samples = load_samples(self.calibration)
        channels: dict = {}
        ranges = collect_ranges(op, samples, self.percentile, channels=channels)
        qb = QuantBuilder(op, ranges, self)
        qb.channels = channels
        if self.range_method == "mse":
            qb.ranges8 = collect_ranges(op, samples, self.percentile, mse_bits=8)
        qb.wide = wide_values(op)
        floats: list[str] = []
        for node in ops(op):
            if isinstance(node, func.ReturnOp) or node.name in ("graph.constant", "graph.weight"):
                continue
            if not any(_is_float(r) for r in node.results):
                continue
            fn = RULES.get(type(node))
            qb.anchor = node
            if fn is None or fn(qb, node) is None:
                floats.append(node.name)
                continue
            node.parent_block().erase_op(node)  # type: ignore[union-attr]
        op.attributes["myelin.float_ops"] = ArrayAttr([StringAttr(n) for n in floats])
        sync_signature(op)
