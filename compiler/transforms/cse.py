"""cse: merge ops with the same name, operands, attributes, properties and types."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from compiler.transforms.common import ops, replace


@dataclass(frozen=True)
class CsePass(ModulePass):
    """Common-subexpression elimination within the model function."""

    name = "cse"
    arch: str = "small"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        seen: dict[tuple, object] = {}
        for node in ops(op):
            if isinstance(node, func.ReturnOp) or len(node.results) != 1:
                continue
            key = (
                node.name,
                tuple(id(v) for v in node.operands),
                tuple(sorted((k, str(v)) for k, v in node.attributes.items())),
                tuple(sorted((k, str(v)) for k, v in node.properties.items())),
                str(node.results[0].type),
            )
            if key in seen:
                replace(node, [], seen[key])  # type: ignore[arg-type]
            else:
                seen[key] = node.results[0]
