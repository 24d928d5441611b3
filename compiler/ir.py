"""Context, parsing, printing and building helpers shared by the whole compiler."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    Builtin,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    Signedness,
    TensorType,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.dialects.func import Func
from xdsl.dialects.tosa import TOSA
from xdsl.ir import Attribute, Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from compiler.dialects.graph import Graph
from compiler.dialects.qnt import Qnt
from compiler.errors import VerifyError

_NP_TO_ELEM: dict[str, Attribute] = {
    "float16": f16, "float32": f32, "float64": f64, "int64": i64, "int32": i32, "int16": i16,
    "int8": i8, "bool": i1, "uint8": IntegerType(8, Signedness.UNSIGNED),
    "uint16": IntegerType(16, Signedness.UNSIGNED), "uint32": IntegerType(32, Signedness.UNSIGNED),
    "uint64": IntegerType(64, Signedness.UNSIGNED),
}  # fmt: skip


def make_context() -> Context:
    """A context with builtin, func, tosa, graph and qnt loaded."""
    ctx = Context()
    for dialect in (Builtin, Func, TOSA, Graph, Qnt):
        ctx.load_dialect(dialect)
    return ctx


def parse_module(text: str, name: str = "<input>") -> ModuleOp:
    """Parse MLIR text; VerifyError (a CompileError) on a syntax or verifier error."""
    try:
        module = Parser(make_context(), text, name).parse_module()
        module.verify()
    except (ParseError, VerifyException) as exc:
        raise VerifyError(f"{name}: {exc}") from None
    return module


def module_text(module: Operation) -> str:
    import io

    buf = io.StringIO()
    Printer(stream=buf).print_op(module)
    return buf.getvalue() + "\n"


def elem_type(dtype: np.dtype | str) -> Attribute:
    """IR element type of a numpy dtype (float32, float64, int8..int64, bool)."""
    key = np.dtype(dtype).name
    if key not in _NP_TO_ELEM:
        raise KeyError(key)
    return _NP_TO_ELEM[key]


def np_dtype(elem: Attribute) -> np.dtype:
    """numpy dtype of an IR element type."""
    if isinstance(elem, Float32Type):
        return np.dtype(np.float32)
    if isinstance(elem, Float16Type):
        return np.dtype(np.float16)
    if isinstance(elem, Float64Type):
        return np.dtype(np.float64)
    if isinstance(elem, IntegerType):
        width = elem.width.data
        if width == 1:
            return np.dtype(np.bool_)
        if elem.signedness.data == Signedness.UNSIGNED:
            return np.dtype(f"uint{width}")
        return np.dtype(f"int{width}")
    raise VerifyError(f"element type {elem} has no numpy equivalent")


def tensor_type(shape: Sequence[int], dtype: np.dtype | str | Attribute) -> TensorType:
    elem = dtype if isinstance(dtype, Attribute) else elem_type(dtype)
    return TensorType(elem, [int(d) for d in shape])


def dense(array: np.ndarray) -> DenseIntOrFPElementsAttr:
    """A dense attribute holding a small numpy array."""
    typ = tensor_type(array.shape, array.dtype)
    flat = array.reshape(-1)
    if array.dtype == np.bool_:
        flat = flat.astype(np.int64)
    return DenseIntOrFPElementsAttr.from_list(typ, flat.tolist())


def dense_value(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    typ = attr.get_type()
    assert isinstance(typ, TensorType)
    dt = np_dtype(typ.element_type)
    return (
        np.array(attr.get_values(), dtype=np.float64 if dt.kind == "f" else np.int64)
        .astype(dt)
        .reshape(typ.get_shape())
    )


def main_func(module: ModuleOp) -> func.FuncOp:
    """The module's single function (the model)."""
    funcs = [op for op in module.ops if isinstance(op, func.FuncOp)]
    if len(funcs) != 1:
        raise VerifyError(f"module must hold exactly one func.func, found {len(funcs)}")
    return funcs[0]
