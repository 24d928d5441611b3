"""fuse-ops: fold bias, activation and requantization into matmul and conv.

Float: ``matmul(x, W) + b`` (b constant, 1-D over the output width) ->
``fused_matmul``; a following ReLU (``tosa.clamp`` from 0 to +inf) -> ``act = "relu"``;
``conv + b`` (b constant of shape [C,1,1] or [1,C,1,1]) -> conv bias; conv + ReLU ->
``act = "relu"``.  With ``fuse-gelu=true`` a following ``graph.gelu`` becomes
``act = "gelu"`` on ``fused_matmul``.  Quantized: ``qnt.matmul``/``qnt.conv``
followed by a clamp from the output zero point to the type maximum ->
``act = "relu"``; followed by ``qnt.requantize`` -> one requantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.dialects.tosa import ClampOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from compiler import qmath
from compiler.dialects import graph, qnt
from compiler.dialects.base import int_attr, shape_of, str_attr
from compiler.dialects.qnt import int_range, qparams
from compiler.store import ConstantStore, store_of
from compiler.transforms.common import const_value, make_constant, ops, replace, single_use


def _clamp_bounds(op: Operation) -> tuple[float, float]:
    return (
        float(op.properties["min_val"].value.data),  # type: ignore[attr-defined]
        float(op.properties["max_val"].value.data),
    )  # type: ignore[attr-defined]


def _is_relu(op: Operation | None) -> bool:
    if not isinstance(op, ClampOp):
        return False
    lo, hi = _clamp_bounds(op)
    return lo == 0.0 and hi >= 3.0e38


def _is_qrelu(op: Operation | None, producer: Operation) -> bool:
    if not isinstance(op, ClampOp) or op.results[0].type != producer.results[0].type:
        return False
    q = qparams(producer.results[0])
    lo, hi = _clamp_bounds(op)
    return q is not None and lo <= q.zp and hi >= int_range(producer.results[0])[1]


def _with(op: Operation, **attrs: str) -> dict:
    out = dict(op.attributes)
    for k, v in attrs.items():
        out[k] = StringAttr(v)
    return out


@dataclass(frozen=True)
class FuseOpsPass(ModulePass):
    """Producer-consumer fusion for the MAC array's output stage."""

    name = "fuse-ops"
    arch: str = "small"
    fuse_gelu: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = store_of(op)
        for node in ops(op):
            if node.parent is None:
                continue
            if isinstance(node, graph.MatMulOp):
                self._bias_matmul(node, store)
        for node in ops(op):
            if node.parent is None:
                continue
            if isinstance(node, graph.ConvOp):
                self._bias_conv(node, store)
        for node in ops(op):
            if node.parent is None:
                continue
            if isinstance(node, (graph.FusedMatMulOp, graph.ConvOp, qnt.MatMulOp, qnt.ConvOp)):
                self._activation(node)
            if isinstance(node, (qnt.MatMulOp, qnt.ConvOp)) and node.parent is not None:
                self._requant(node, store)

    def _bias_matmul(self, mm: graph.MatMulOp, store: ConstantStore) -> None:
        add = single_use(mm.result)
        if not isinstance(add, graph.AddOp) or add.result.type != mm.result.type:
            return
        bias = add.rhs if add.lhs is mm.result else add.lhs
        b = const_value(bias, store)
        width = shape_of(mm.result)[-1]
        if b is None or b.size != width or b.shape[-1:] != (width,):
            return
        b_op = make_constant(b.reshape(width), store, "bias")
        new = graph.FusedMatMulOp.create(
            operands=[mm.lhs, mm.rhs, b_op.results[0]],
            result_types=[mm.result.type],
            attributes={"act": StringAttr("none")},
        )
        new.results[0].name_hint = add.result.name_hint
        replace(add, [b_op, new], new.results[0])

    def _bias_conv(self, conv: graph.ConvOp, store: ConstantStore) -> None:
        add = single_use(conv.result)
        if not isinstance(add, graph.AddOp) or add.result.type != conv.result.type:
            return
        if str_attr(conv, "act", "none") != "none" or str_attr(conv, "layout", "nchw") != "nchw":
            return
        extra = const_value(add.rhs if add.lhs is conv.result else add.lhs, store)
        old = const_value(conv.bias, store)
        ch = shape_of(conv.result)[1]
        if extra is None or old is None or extra.size != ch:
            return
        if extra.ndim >= 3 and extra.shape[-2:] != (1, 1):
            return
        b_op = make_constant((old + extra.reshape(ch)).astype(old.dtype), store, "bias")
        new = graph.ConvOp.create(
            operands=[conv.input, conv.weight, b_op.results[0]],
            result_types=[conv.result.type],
            attributes=dict(conv.attributes),
        )
        replace(add, [b_op, new], new.results[0])

    def _activation(self, node: Operation) -> None:
        if str_attr(node, "act", "none") != "none":
            return
        user = single_use(node.results[0])
        quant = node.name.startswith("qnt.")
        if (quant and _is_qrelu(user, node)) or (not quant and _is_relu(user)):
            act = "relu"
        elif (
            self.fuse_gelu
            and isinstance(node, graph.FusedMatMulOp)
            and isinstance(user, graph.GeluOp)
            and str_attr(user, "approximate", "none") == "none"
        ):
            act = "gelu"
        else:
            return
        assert user is not None
        new = type(node).create(
            operands=list(node.operands),
            result_types=[user.results[0].type],
            attributes=_with(node, act=act),
        )
        new.results[0].name_hint = user.results[0].name_hint
        replace(user, [new], new.results[0])
        _erase_if_dead(node)

    def _requant(self, node: Operation, store: ConstantStore) -> None:
        user = single_use(node.results[0])
        if not isinstance(user, qnt.RequantizeOp) or str_attr(node, "act", "none") != "none":
            return
        mult, shift = (const_value(v, store) for v in node.operands[3:5])
        if mult is None or shift is None:
            return
        s_in, s_out = qparams(user.input), qparams(user.result)
        assert s_in is not None and s_out is not None
        m2 = int_attr(user, "multiplier") * 2.0 ** -int_attr(user, "shift")
        real = mult.astype(np.float64) * np.exp2(-shift.astype(np.float64)) * m2
        pairs = [qmath.quantize_multiplier(float(r)) for r in real]
        m_op = make_constant(np.array([p[0] for p in pairs], np.int32), store, "multiplier")
        s_op = make_constant(np.array([p[1] for p in pairs], np.int32), store, "shift")
        operands = [*node.operands[:3], m_op.results[0], s_op.results[0]]
        new = type(node).create(
            operands=operands, result_types=[user.result.type], attributes=dict(node.attributes)
        )
        new.results[0].name_hint = user.result.name_hint
        replace(user, [m_op, s_op, new], new.results[0])
        _erase_if_dead(node)
        _ = s_in, s_out


def _erase_if_dead(node: Operation) -> None:
    """Erase ``node`` once its result is unused (after a fusion took its place)."""
    from xdsl.rewriter import Rewriter

    if not node.results[0].uses:
        Rewriter.erase_op(node)
