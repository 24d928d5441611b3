"""Helpers shared by the passes: walking the model function and rewriting values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.rewriter import Rewriter

from compiler.dialects import graph
from compiler.dialects.graph import MAX_INLINE_ELEMENTS
from compiler.ir import dense, dense_value, main_func, tensor_type
from compiler.store import ConstantStore, store_of

__all__ = [
    "body", "ops", "const_value", "make_constant", "insert_before", "replace",
    "set_type", "sync_signature", "uses", "single_use",
]  # fmt: skip


def body(module: ModuleOp) -> Block:
    return main_func(module).body.block


def ops(module: ModuleOp) -> list[Operation]:
    """A snapshot of the function's ops (safe to rewrite while iterating)."""
    return list(body(module).ops)


def const_value(value: SSAValue, store: ConstantStore) -> np.ndarray | None:
    """The compile-time value of ``value`` if it is a graph.constant or graph.weight."""
    owner = value.owner
    if isinstance(owner, graph.ConstantOp):
        return dense_value(owner.attributes["value"])  # type: ignore[arg-type]
    if isinstance(owner, graph.WeightOp):
        return store.get(owner.ref)
    return None


def make_constant(
    array: np.ndarray, store: ConstantStore, hint: str, typ: Attribute | None = None
) -> Operation:
    """A graph.constant (small) or graph.weight (store entry) op holding ``array``."""
    typ = typ or tensor_type(array.shape, array.dtype)
    if array.size > MAX_INLINE_ELEMENTS:
        ref = store.add(hint, array)
        return graph.WeightOp.create(result_types=[typ], attributes={"ref": StringAttr(ref)})
    attr = dense(array)
    if attr.type != typ:  # an encoded (quantized) type cannot be written inline
        return graph.WeightOp.create(
            result_types=[typ], attributes={"ref": StringAttr(store.add(hint, array))}
        )
    return graph.ConstantOp.create(result_types=[typ], attributes={"value": attr})


def insert_before(anchor: Operation, new_ops: Sequence[Operation]) -> None:
    block = anchor.parent_block()
    assert block is not None
    block.insert_ops_before(list(new_ops), anchor)


def replace(op: Operation, new_ops: Sequence[Operation], value: SSAValue) -> None:
    """Insert ``new_ops`` before ``op``, redirect op's result to ``value``, erase op."""
    if new_ops:
        insert_before(op, new_ops)
    op.results[0].replace_all_uses_with(value)
    Rewriter.erase_op(op)


def set_type(value: SSAValue, typ: Attribute) -> SSAValue:
    if value.type == typ:
        return value
    return Rewriter.replace_value_with_new_type(value, typ)


def sync_signature(module: ModuleOp) -> None:
    """Make the function type agree with its arguments and return operands."""
    fn = main_func(module)
    ret = fn.body.block.last_op
    assert isinstance(ret, func.ReturnOp)
    fn.function_type = func.FunctionType.from_lists(
        [a.type for a in fn.body.block.args], [v.type for v in ret.operands]
    )


def uses(value: SSAValue) -> list[Operation]:
    return [u.operation for u in value.uses]


def single_use(value: SSAValue) -> Operation | None:
    users = uses(value)
    return users[0] if len(users) == 1 else None


def walk_reverse(module: ModuleOp) -> Iterator[Operation]:
    return reversed(ops(module))


_ = store_of
