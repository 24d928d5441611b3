"""pad-to-mac: pad matmul and conv dimensions to multiples of the MAC array.

The R x C array (``mac_rows`` x ``mac_cols`` of the ArchConfig) computes an R x C
output tile per pass: the output width N of a matmul with constant weights [K, N]
(and the output channels of a conv) is padded to a multiple of C with zero weights,
zero bias and repeated requantization parameters, and the M rows of the activation
are padded to a multiple of R; the result is sliced back to the original shape, so
the function computes exactly what it did.  Ops already aligned are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from compiler.dialects import graph, qnt
from compiler.dialects.base import i64_array, shape_of, str_attr
from compiler.store import ConstantStore, store_of
from compiler.transforms.common import const_value, make_constant, ops, replace
from hw.arch import load_arch


def _up(n: int, m: int) -> int:
    return -(-n // m) * m


def _retyped(v: SSAValue, shape: list[int]) -> TensorType:
    t = v.type
    assert isinstance(t, TensorType)
    return TensorType(t.element_type, shape, t.encoding)


def _pad_op(v: SSAValue, high: list[int]) -> Operation:
    shape = [d + h for d, h in zip(shape_of(v), high, strict=True)]
    return graph.PadOp.create(
        operands=[v],
        result_types=[_retyped(v, shape)],
        attributes={"low": i64_array([0] * len(high)), "high": i64_array(high)},
    )


def _slice_op(v: SSAValue, shape: list[int]) -> Operation:
    rank = len(shape)
    return graph.SliceOp.create(
        operands=[v],
        result_types=[_retyped(v, shape)],
        attributes={
            "starts": i64_array([0] * rank),
            "ends": i64_array(shape),
            "steps": i64_array([1] * rank),
        },
    )


def _pad_vector(v: SSAValue, n: int, store: ConstantStore, edge: bool) -> SSAValue | Operation:
    val = const_value(v, store)
    assert val is not None
    if val.size == 1 and edge:
        return v
    mode = "edge" if edge else "constant"
    return make_constant(np.pad(val, (0, n - val.size), mode=mode), store, "padded")


@dataclass(frozen=True)
class PadToMacPass(ModulePass):
    """Zero padding to MAC-array multiples (from the arch preset)."""

    name = "pad-to-mac"
    arch: str = "small"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        cfg = load_arch(self.arch)
        store = store_of(op)
        for node in ops(op):
            if isinstance(node, (graph.FusedMatMulOp, qnt.MatMulOp, graph.MatMulOp)):
                self._matmul(node, cfg.mac_rows, cfg.mac_cols, store)

    def _matmul(self, mm: Operation, rows: int, cols: int, store: ConstantStore) -> None:
        lhs, rhs = mm.operands[0], mm.operands[1]
        w = const_value(rhs, store)
        out = shape_of(mm.results[0])
        if w is None or w.ndim != 2 or len(shape_of(lhs)) < 2:
            return
        m, n = shape_of(lhs)[-2], w.shape[1]
        pm, pn = _up(m, rows) - m, _up(n, cols) - n
        if pm == 0 and pn == 0:
            return
        new_ops: list[Operation] = []
        if pm:
            pad = _pad_op(lhs, [0] * (len(shape_of(lhs)) - 2) + [pm, 0])
            new_ops.append(pad)
            lhs = pad.results[0]
        operands = [lhs]
        if pn:
            w_op = make_constant(
                np.pad(w, ((0, 0), (0, pn))), store, "w_padded", _retyped(rhs, [w.shape[0], n + pn])
            )
            new_ops.append(w_op)
            operands.append(w_op.results[0])
            for i, v in enumerate(mm.operands[2:]):
                padded = _pad_vector(v, n + pn, store, edge=(i > 0))
                if isinstance(padded, Operation):
                    new_ops.append(padded)
                    padded = padded.results[0]
                operands.append(padded)
        else:
            operands += list(mm.operands[1:])
        shape = list(out[:-2]) + [m + pm, n + pn]
        new = type(mm).create(
            operands=operands,
            result_types=[_retyped(mm.results[0], shape)],
            attributes=dict(mm.attributes),
        )
        back = _slice_op(new.results[0], list(out))
        back.results[0].name_hint = mm.results[0].name_hint
        replace(mm, [*new_ops, new, back], back.results[0])
        _ = str_attr
