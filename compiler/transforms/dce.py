"""dce: erase ops whose results are unused, then drop unreferenced store entries."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from compiler.dialects import graph
from compiler.store import store_of
from compiler.transforms.common import ops


@dataclass(frozen=True)
class DcePass(ModulePass):
    """Dead-code elimination (every graph/qnt op is side-effect free)."""

    name = "dce"
    arch: str = "small"
    prune_store: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for node in reversed(ops(op)):
            if isinstance(node, func.ReturnOp):
                continue
            if all(not r.uses for r in node.results):
                Rewriter.erase_op(node)
        if self.prune_store:
            refs = {n.ref for n in ops(op) if isinstance(n, graph.WeightOp)}
            store_of(op).prune(refs)
