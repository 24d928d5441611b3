"""Shared machinery of Myelin's tensor dialects.

Every op is a :class:`TensorOp`: its text form is ``name operands {attrs} :
(operand types) -> result types`` and its verifier checks the attributes
(:meth:`TensorOp.check`) and that each result shape agrees with the shape the op
computes from its operands (:meth:`TensorOp.infer_shapes`).  A dimension ``-1``
(printed ``?``) is dynamic: it agrees with anything, and the shape-inference pass
replaces it by the inferred size.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import IRDLOperation
from xdsl.utils.exceptions import VerifyException

DYN = -1
Shape = tuple[int, ...]


def shape_of(value: SSAValue | Attribute) -> Shape:
    """Static shape of a tensor value or type (``-1`` for dynamic dims)."""
    typ = value.type if isinstance(value, SSAValue) else value
    if not isinstance(typ, TensorType):
        raise VerifyException(f"expected a tensor, got {typ}")
    return tuple(DYN if d < 0 else d for d in typ.get_shape())


def elem_of(value: SSAValue | Attribute) -> Attribute:
    typ = value.type if isinstance(value, SSAValue) else value
    assert isinstance(typ, TensorType)
    return typ.element_type


def i64_array(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, [int(v) for v in values])


def ints(op: IRDLOperation, name: str, default: Sequence[int] | None = None) -> list[int]:
    """Integer list attribute ``name`` of ``op`` (``default`` when absent)."""
    attr = op.attributes.get(name)
    if attr is None:
        if default is None:
            raise VerifyException(f"'{op.name}' needs attribute '{name}'")
        return list(default)
    if isinstance(attr, DenseArrayBase):
        return [int(v) for v in attr.get_values()]
    raise VerifyException(f"'{op.name}' attribute '{name}' must be array<i64: ...>")


def int_attr(op: IRDLOperation, name: str, default: int | None = None) -> int:
    attr = op.attributes.get(name)
    if attr is None:
        if default is None:
            raise VerifyException(f"'{op.name}' needs attribute '{name}'")
        return default
    if not isinstance(attr, IntegerAttr):
        raise VerifyException(f"'{op.name}' attribute '{name}' must be an integer")
    return int(attr.value.data)


def float_attr(op: IRDLOperation, name: str, default: float | None = None) -> float:
    attr = op.attributes.get(name)
    if attr is None:
        if default is None:
            raise VerifyException(f"'{op.name}' needs attribute '{name}'")
        return default
    if isinstance(attr, IntegerAttr):
        return float(attr.value.data)
    if not isinstance(attr, FloatAttr):
        raise VerifyException(f"'{op.name}' attribute '{name}' must be a float")
    return float(attr.value.data)


def str_attr(op: IRDLOperation, name: str, default: str | None = None) -> str:
    attr = op.attributes.get(name)
    if attr is None:
        if default is None:
            raise VerifyException(f"'{op.name}' needs attribute '{name}'")
        return default
    if not isinstance(attr, StringAttr):
        raise VerifyException(f"'{op.name}' attribute '{name}' must be a string")
    return attr.data


def broadcast(a: Shape, b: Shape, what: str = "operands") -> Shape:
    """Numpy/ONNX multidirectional broadcast of two shapes."""
    out: list[int] = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif DYN in (x, y):
            out.append(x if y == DYN else y)
        else:
            raise VerifyException(f"{what} shapes {list(a)} and {list(b)} do not broadcast")
    return tuple(reversed(out))


def norm_axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < max(rank, 1):
        raise VerifyException(f"{what} axis {axis} out of range for rank {rank}")
    return axis % max(rank, 1)


def matmul_shape(a: Shape, b: Shape) -> Shape:
    """numpy.matmul result shape (1-D operands promoted and squeezed)."""
    if not a or not b:
        raise VerifyException("matmul operands must have rank >= 1")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if DYN not in (a2[-1], b2[-2]) and a2[-1] != b2[-2]:
        raise VerifyException(f"matmul contraction mismatch: {list(a)} x {list(b)}")
    batch = broadcast(a2[:-2], b2[:-2], "matmul batch")
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def agree(inferred: Shape, declared: Shape) -> bool:
    return len(inferred) == len(declared) and all(
        x == y or DYN in (x, y) for x, y in zip(inferred, declared, strict=True)
    )


class TensorOp(IRDLOperation):
    """Base of every Myelin tensor op: generic text form and shape-checking verifier."""

    assembly_format = "operands attr-dict `:` functional-type(operands, results)"

    def check(self) -> None:
        """Check attributes and operand types; raise VerifyException naming the fault."""

    def infer_shapes(self) -> list[Shape]:
        """Result shapes computed from the operands and attributes."""
        return [shape_of(r) for r in self.results]

    def verify_(self) -> None:
        self.check()
        inferred = self.infer_shapes()
        for i, (res, shp) in enumerate(zip(self.results, inferred, strict=True)):
            if not agree(shp, shape_of(res)):
                raise VerifyException(
                    f"'{self.name}' result #{i} has shape {list(shape_of(res))}, "
                    f"expected {list(shp)}"
                )


def pool_out(size: int, k: int, s: int, lo: int, hi: int, d: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window (convolution or pooling)."""
    if size == DYN:
        return DYN
    span = d * (k - 1) + 1
    num = size + lo + hi - span
    if num < 0:
        raise VerifyException(f"window {span} larger than padded input {size + lo + hi}")
    if not ceil:
        return num // s + 1
    out = -(-num // s) + 1
    if (out - 1) * s >= size + lo:  # the last window would start inside the end padding
        out -= 1
    return out
