"""canonicalize: fold reshape/transpose/squeeze chains and identity ops.

Rules (each returns early when it does not apply), repeated to a fixed point:
reshape to the same shape -> x; reshape(reshape(x)) -> reshape(x); transpose with the
identity permutation -> x; transpose(transpose(x)) -> one transpose (or x); expand,
slice or cast that changes nothing -> x; concat of one operand -> x;
x + 0, x - 0, x * 1, x / 1 (constant, not broadcasting x) -> x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from compiler.dialects import graph
from compiler.dialects.base import i64_array, ints, shape_of
from compiler.store import ConstantStore, store_of
from compiler.transforms.common import const_value, ops, replace

_NEUTRAL = {graph.AddOp: 0.0, graph.SubOp: 0.0, graph.MulOp: 1.0, graph.DivOp: 1.0}


def _identity(node: Operation, store: ConstantStore) -> SSAValue | None:
    """The value ``node`` is equivalent to, if it does nothing."""
    if isinstance(node, (graph.ReshapeOp, graph.ExpandOp, graph.CastOp)):
        x = node.operands[0]
        return x if x.type == node.results[0].type else None
    if isinstance(node, graph.TransposeOp):
        perm = ints(node, "perm")
        return node.operands[0] if perm == sorted(perm) else None
    if isinstance(node, graph.SliceOp):
        x = node.operands[0]
        return x if x.type == node.results[0].type and set(ints(node, "steps")) == {1} else None
    if isinstance(node, graph.ConcatOp):
        return node.operands[0] if len(node.operands) == 1 else None
    if type(node) in _NEUTRAL:
        x, c = node.operands
        value = const_value(c, store)
        if value is None or x.type != node.results[0].type:
            return None
        return x if np.all(value == _NEUTRAL[type(node)]) else None
    return None


def _merge_chain(node: Operation) -> Operation | None:
    """A single op replacing ``node`` applied to the result of a same-kind op."""
    src = node.operands[0].owner if node.operands else None
    if isinstance(node, graph.ReshapeOp) and isinstance(src, graph.ReshapeOp):
        return graph.ReshapeOp.create(
            operands=[src.operands[0]], result_types=[node.results[0].type]
        )
    if isinstance(node, graph.TransposeOp) and isinstance(src, graph.TransposeOp):
        inner, outer = ints(src, "perm"), ints(node, "perm")
        perm = [inner[p] for p in outer]
        return graph.TransposeOp.create(
            operands=[src.operands[0]],
            result_types=[node.results[0].type],
            attributes={"perm": i64_array(perm)},
        )
    return None


@dataclass(frozen=True)
class CanonicalizePass(ModulePass):
    """Local simplifications to a fixed point."""

    name = "canonicalize"
    arch: str = "small"
    max_iterations: int = 10

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = store_of(op)
        for _ in range(self.max_iterations):
            changed = False
            for node in ops(op):
                same = _identity(node, store)
                if same is not None:
                    replace(node, [], same)
                    changed = True
                    continue
                merged = _merge_chain(node)
                if merged is not None:
                    merged.results[0].name_hint = node.results[0].name_hint
                    replace(node, [merged], merged.results[0])
                    changed = True
            if not changed:
                return


_ = shape_of
