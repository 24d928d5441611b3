"""fold-constants: evaluate ops whose operands are all compile-time constants.

The interpreter computes the value; results above 1024 elements go to the constant
store (graph.weight), smaller ones become graph.constant.  Results larger than
``max_elements`` are left alone so folding never blows up the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from compiler.dialects import graph
from compiler.dialects.base import TensorOp, shape_of
from compiler.interpreter import evaluate
from compiler.store import store_of
from compiler.transforms.common import const_value, make_constant, ops, replace

_SOURCES = (graph.ConstantOp, graph.WeightOp)


@dataclass(frozen=True)
class FoldConstantsPass(ModulePass):
    """Constant folding through the numpy interpreter."""

    name = "fold-constants"
    arch: str = "small"
    max_elements: int = 1 << 24

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = store_of(op)
        for node in ops(op):
            if not isinstance(node, TensorOp) and node.name != "tosa.clamp":
                continue
            if isinstance(node, _SOURCES) or not node.operands:
                continue
            size = 1
            for d in shape_of(node.results[0]):
                size *= d
            if size > self.max_elements:
                continue
            args = [const_value(v, store) for v in node.operands]
            if any(a is None for a in args):
                continue
            value = evaluate(node, args, store)  # type: ignore[arg-type]
            hint = node.results[0].name_hint or "folded"
            new = make_constant(value, store, hint, node.results[0].type)
            new.results[0].name_hint = node.results[0].name_hint
            replace(node, [new], new.results[0])
