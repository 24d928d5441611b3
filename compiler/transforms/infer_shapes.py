"""infer-shapes: replace dynamic (``?``) result dims by the sizes the ops compute.

Walks the function in order, so a refined operand refines its users; the function
signature is updated.  A dim that stays dynamic after the walk is a ShapeError
naming the op (``require_static=true``, the default).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass

from compiler.dialects.base import DYN, TensorOp, shape_of
from compiler.errors import ShapeError
from compiler.transforms.common import ops, set_type, sync_signature


@dataclass(frozen=True)
class InferShapesPass(ModulePass):
    """Shape inference over graph and qnt ops."""

    name = "infer-shapes"
    arch: str = "small"
    require_static: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for node in ops(op):
            if not isinstance(node, TensorOp):
                continue
            for res, shape in zip(node.results, node.infer_shapes(), strict=True):
                typ = res.type
                assert isinstance(typ, TensorType)
                if DYN in shape_of(res) and list(shape) != list(shape_of(res)):
                    set_type(res, TensorType(typ.element_type, shape, typ.encoding))
                if self.require_static and DYN in shape_of(node.results[0]):
                    raise ShapeError(
                        f"op '{node.name}': result shape "
                        f"{list(shape_of(node.results[0]))} cannot be resolved"
                    )
        sync_signature(op)
