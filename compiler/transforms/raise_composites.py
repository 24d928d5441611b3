"""raise-composites: recognize decomposed GELU and layer norm and raise them to one op.

Exporters emit ``x * 0.5 * (1 + erf(x / sqrt(2)))`` and ``(x - mean) / sqrt(var +
eps) * gamma + beta`` as chains of elementwise ops; the quantizer has integer-only
kernels for ``graph.gelu`` and ``graph.layer_norm``, so they are recognized here.
Constants must match (1/sqrt(2), 0.5, 1, exponent 2) to 1e-4 or the rule does not fire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, ModuleOp, StringAttr, f32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from compiler.dialects import graph
from compiler.dialects.base import int_attr, shape_of
from compiler.store import ConstantStore, store_of
from compiler.transforms.common import const_value, make_constant, ops, replace, single_use


def _scalar(v: SSAValue, store: ConstantStore) -> float | None:
    c = const_value(v, store)
    if c is None or c.size != 1:
        return None
    return float(c.reshape(-1)[0])


def _other(op: Operation, v: SSAValue) -> SSAValue | None:
    a, b = op.operands
    return b if a is v else a if b is v else None


def _near(x: float | None, want: float) -> bool:
    return x is not None and abs(x - want) < 1e-4 * max(1.0, abs(want))


def _match_gelu(erf: graph.ErfOp, store: ConstantStore) -> tuple[SSAValue, Operation] | None:
    """(x, last op) of x * 0.5 * (1 + erf(x / sqrt 2)) anchored at the erf."""
    scaled = erf.input.owner
    if isinstance(scaled, graph.DivOp) and _near(_scalar(scaled.rhs, store), math.sqrt(2)):
        x = scaled.lhs
    elif isinstance(scaled, graph.MulOp) and _near(_scalar(scaled.rhs, store), 1 / math.sqrt(2)):
        x = scaled.lhs
    else:
        return None
    add = single_use(erf.result)
    if not isinstance(add, graph.AddOp) or not _near(_scalar(_other(add, erf.result), store), 1):
        return None
    mul = single_use(add.result)
    if not isinstance(mul, graph.MulOp):
        return None
    partner = _other(mul, add.result)
    if partner is x:  # (x * (1 + erf)) * 0.5
        half = single_use(mul.result)
        if isinstance(half, graph.MulOp) and _near(_scalar(_other(half, mul.result), store), 0.5):
            return x, half
        return None
    pre = partner.owner if partner is not None else None  # (x * 0.5) * (1 + erf)
    if isinstance(pre, graph.MulOp) and pre.lhs is x and _near(_scalar(pre.rhs, store), 0.5):
        return x, mul
    return None


def _is_mean_last(op: Operation | None, x: SSAValue) -> bool:
    if not isinstance(op, graph.ReduceMeanOp) or op.input is not x:
        return False
    rank = len(shape_of(x))
    return op.reduced_axes() == [rank - 1] and int_attr(op, "keepdims", 1) == 1


def _match_layernorm(div: graph.DivOp, store: ConstantStore):
    """(x, eps, last op, gamma, beta) of the decomposed layer norm ending at ``div``."""
    sub, sqrt = div.lhs.owner, div.rhs.owner
    if not isinstance(sub, graph.SubOp) or not isinstance(sqrt, graph.SqrtOp):
        return None
    x = sub.lhs
    if not _is_mean_last(sub.rhs.owner, x):
        return None
    add_eps = sqrt.input.owner
    if not isinstance(add_eps, graph.AddOp):
        return None
    eps = _scalar(add_eps.rhs, store)
    var = add_eps.lhs.owner
    if eps is None or not isinstance(var, graph.ReduceMeanOp):
        return None
    sq = var.input.owner
    is_pow = (
        isinstance(sq, graph.PowOp) and sq.lhs is sub.result and _near(_scalar(sq.rhs, store), 2.0)
    )
    is_mul = isinstance(sq, graph.MulOp) and sq.lhs is sub.result and sq.rhs is sub.result
    if not (is_pow or is_mul) or not _is_mean_last(var, var.input):
        return None
    last, gamma, beta = div, None, None
    user = single_use(div.result)
    if isinstance(user, graph.MulOp) and const_value(_other(user, div.result), store) is not None:
        last, gamma = user, _other(user, div.result)
        user = single_use(user.result)
    if isinstance(user, graph.AddOp):
        other = _other(user, last.results[0])
        if other is not None and const_value(other, store) is not None:
            last, beta = user, other
    return x, eps, last, gamma, beta


@dataclass(frozen=True)
class RaiseCompositesPass(ModulePass):
    """Pattern recognition of GELU (erf form) and layer norm (ReduceMean form)."""

    name = "raise-composites"
    arch: str = "small"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = store_of(op)
        for node in ops(op):
            if node.parent is None:
                continue
            if isinstance(node, graph.ErfOp):
                self._gelu(node, store)
            elif isinstance(node, graph.DivOp):
                self._layernorm(node, store)

    def _gelu(self, erf: graph.ErfOp, store: ConstantStore) -> None:
        found = _match_gelu(erf, store)
        if found is None:
            return
        x, last = found
        if last.results[0].type != x.type:
            return
        new = graph.GeluOp.create(
            operands=[x], result_types=[x.type], attributes={"approximate": StringAttr("none")}
        )
        replace(last, [new], new.results[0])

    def _layernorm(self, div: graph.DivOp, store: ConstantStore) -> None:
        found = _match_layernorm(div, store)
        if found is None:
            return
        x, eps, last, gamma, beta = found
        width = shape_of(x)[-1]
        dt = np.float32
        if last.results[0].type != x.type:
            return
        g_val = (
            np.ones(width, dt)
            if gamma is None
            else np.broadcast_to(const_value(gamma, store), (width,)).astype(dt)
        )
        b_val = (
            np.zeros(width, dt)
            if beta is None
            else np.broadcast_to(const_value(beta, store), (width,)).astype(dt)
        )
        g_op = make_constant(g_val, store, "ln_gamma")
        b_op = make_constant(b_val, store, "ln_beta")
        pre = [g_op, b_op]
        new = graph.LayerNormOp.create(
            operands=[x, g_op.results[0], b_op.results[0]],
            result_types=[x.type],
            attributes={"axis": IntegerAttr(-1, i64), "epsilon": FloatAttr(eps, f32)},
        )
        replace(last, [*pre, new], new.results[0])
