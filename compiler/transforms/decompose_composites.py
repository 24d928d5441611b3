"""decompose-composites: rewrite ops without a direct kernel into ones that have one.

Rules: float ``x / c`` (constant c) -> ``x * (1/c)``; ``x ** 2`` -> ``x * x``;
``fused_matmul{act = "gelu"}`` -> ``fused_matmul`` + ``gelu`` (the quantized GELU is
its own kernel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from compiler.dialects import graph
from compiler.dialects.base import str_attr
from compiler.ir import np_dtype
from compiler.store import store_of
from compiler.transforms.common import const_value, make_constant, ops, replace


@dataclass(frozen=True)
class DecomposeCompositesPass(ModulePass):
    """Rewrites towards ops with hardware / quantized kernels."""

    name = "decompose-composites"
    arch: str = "small"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = store_of(op)
        for node in ops(op):
            if isinstance(node, graph.DivOp):
                c = const_value(node.rhs, store)
                if c is None or c.dtype.kind != "f" or np.any(c == 0):
                    continue
                k = make_constant((1.0 / c).astype(c.dtype), store, "reciprocal")
                mul = graph.MulOp.create(
                    operands=[node.lhs, k.results[0]], result_types=[node.result.type]
                )
                replace(node, [k, mul], mul.results[0])
            elif isinstance(node, graph.PowOp):
                c = const_value(node.rhs, store)
                if c is None or c.size != 1 or float(c.reshape(-1)[0]) != 2.0:
                    continue
                if np_dtype(node.lhs.type.element_type).kind != "f":  # type: ignore[attr-defined]
                    continue
                mul = graph.MulOp.create(
                    operands=[node.lhs, node.lhs], result_types=[node.result.type]
                )
                replace(node, [mul], mul.results[0])
            elif isinstance(node, graph.FusedMatMulOp) and str_attr(node, "act", "none") == "gelu":
                mm = graph.FusedMatMulOp.create(
                    operands=list(node.operands),
                    result_types=[node.result.type],
                    attributes={"act": StringAttr("none")},
                )
                gelu = graph.GeluOp.create(
                    operands=[mm.results[0]], result_types=[node.result.type]
                )
                replace(node, [mm, gelu], gelu.results[0])
