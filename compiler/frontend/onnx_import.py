"""ONNX (opset 13..21) -> ``graph`` dialect importer.

Contract: :func:`import_onnx` returns a verified module holding one ``func.func
@main`` whose arguments are the model inputs (static shapes) and whose results are the
model outputs, plus a :class:`~compiler.store.ConstantStore` attached to the module
with every initializer larger than 1024 elements.  Small integer subgraphs whose
inputs are all constant (shape arithmetic: Shape, Gather, Concat, Unsqueeze...) are
evaluated during import, so Reshape/Slice/Expand see constant shapes.  Every problem
a model can have raises a :class:`~compiler.errors.CompileError` subclass naming the
node, operator and reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint
from xdsl.utils.exceptions import VerifyException

from compiler.dialects import graph
from compiler.dialects.graph import MAX_INLINE_ELEMENTS
from compiler.errors import (
    CompileError,
    ModelFormatError,
    ShapeError,
    UnsupportedError,
    VerifyError,
)
from compiler.interpreter import evaluate
from compiler.ir import dense, elem_type, np_dtype, tensor_type
from compiler.store import ConstantStore, attach

MIN_OPSET, MAX_OPSET = 13, 21
INIT_INLINE_LIMIT = 16  # initializers above this size always go to the store
FOLD_LIMIT = 4096  # results up to this many elements are computed during import

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT16: "int16", onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.UINT16: "uint16", onnx.TensorProto.UINT32: "uint32",
    onnx.TensorProto.UINT64: "uint64",
}  # fmt: skip


def onnx_dtype(code: int, where: str) -> np.dtype:
    """numpy dtype of an ONNX element type; UnsupportedError for the others."""
    if code not in _ONNX_DTYPES:
        known = code in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(code) if known else code
        raise UnsupportedError(f"{where}: data type {name} is not supported")
    return np.dtype(_ONNX_DTYPES[code])


class Importer:
    """Builds the function body node by node; handlers live in onnx_ops."""

    def __init__(self, model: onnx.ModelProto, opset: int) -> None:
        self.model = model
        self.opset = opset
        self.store = ConstantStore()
        self.values: dict[str, SSAValue] = {}
        self.consts: dict[SSAValue, np.ndarray] = {}
        self.block = Block()
        self.builder = Builder(InsertPoint.at_end(self.block))
        self.node: onnx.NodeProto | None = None
        self.node_label = ""

    # -- errors -------------------------------------------------------------------
    def error(self, reason: str, cls: type[CompileError] = UnsupportedError) -> CompileError:
        node = self.node
        assert node is not None
        return cls(f"node {self.node_label!r} ({node.op_type}): {reason}")

    # -- values -------------------------------------------------------------------
    def value(self, name: str) -> SSAValue:
        if name not in self.values:
            raise self.error(
                f"input {name!r} is not produced by any node, initializer or graph input",
                ModelFormatError,
            )
        return self.values[name]

    def const(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is known at compile time."""
        return self.consts.get(self.value(name))

    def need_const(self, name: str, what: str) -> np.ndarray:
        val = self.const(name)
        if val is None:
            raise self.error(f"{what} (input {name!r}) must be a compile-time constant", ShapeError)
        return val

    def constant(
        self, array: np.ndarray, hint: str, inline_limit: int = MAX_INLINE_ELEMENTS
    ) -> SSAValue:
        """Materialize a compile-time constant (store entry above ``inline_limit``)."""
        array = np.asarray(array)
        try:
            typ = tensor_type(array.shape, array.dtype)
        except KeyError:
            raise UnsupportedError(
                f"constant {hint!r}: data type {array.dtype} is not supported"
            ) from None
        if array.size > inline_limit:
            ref = self.store.add(hint, array)
            op: Operation = graph.WeightOp.create(result_types=[typ], attributes={"ref": _str(ref)})
        else:
            op = graph.ConstantOp.create(result_types=[typ], attributes={"value": dense(array)})
        self.builder.insert(op)
        res = op.results[0]
        _hint(res, hint)
        self.consts[res] = array
        return res

    def emit(self, op: Operation, hint: str = "") -> SSAValue:
        """Verify ``op``; fold it if all operands are constants and it is small; insert."""
        try:
            op.verify()
        except VerifyException as exc:
            raise self.error(str(exc), ShapeError) from None
        res = op.results[0]
        typ = res.type
        assert isinstance(typ, TensorType)
        args = [self.consts.get(v) for v in op.operands]
        size = int(np.prod(typ.get_shape()))
        if op.operands and all(a is not None for a in args) and size <= FOLD_LIMIT:
            value = evaluate(op, args, self.store)  # type: ignore[arg-type]
            op.erase()
            return self.constant(value, hint or "folded")
        self.builder.insert(op)
        if hint:
            _hint(res, hint)
        return res

    def shape(self, name_or_value: str | SSAValue) -> tuple[int, ...]:
        v = self.value(name_or_value) if isinstance(name_or_value, str) else name_or_value
        typ = v.type
        assert isinstance(typ, TensorType)
        return typ.get_shape()

    def elem(self, v: SSAValue):
        typ = v.type
        assert isinstance(typ, TensorType)
        return typ.element_type


def _str(s: str):
    from xdsl.dialects.builtin import StringAttr

    return StringAttr(s)


_IDENT = re.compile(r"[^A-Za-z0-9_]")


def _hint(value: SSAValue, name: str) -> None:
    clean = _IDENT.sub("_", name)
    if clean and not clean[0].isalpha():
        clean = "v" + clean
    value.name_hint = clean or None


def load_model(path_or_model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """Read an ONNX file; ModelFormatError when it is missing, truncated or not ONNX."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    path = Path(path_or_model)
    if not path.is_file():
        raise ModelFormatError(f"model file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelFormatError(
            f"cannot parse ONNX model {str(path)!r}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'truncated'}"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise ModelFormatError(f"{str(path)!r} holds no ONNX graph (empty or not a model)")
    return model


def model_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset; UnsupportedError outside 13..21."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise UnsupportedError("model imports no default-domain (ai.onnx) opset")
    opset = versions[0]
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedError(
            f"opset {opset} is not supported (supported: {MIN_OPSET}.."
            f"{MAX_OPSET}); convert the model with onnx.version_converter"
        )
    for o in model.opset_import:
        if o.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"operator domain {o.domain!r} is not supported")
    return opset


def topo_order(graph_proto: onnx.GraphProto, known: set[str]) -> list[int]:
    """Node indices in dependency order; ModelFormatError on a cycle or an unproduced input."""
    producers = {}
    for i, node in enumerate(graph_proto.node):
        for out in node.output:
            if out:
                producers[out] = i
    order, state = [], [0] * len(graph_proto.node)  # 0 new, 1 visiting, 2 done
    for start in range(len(graph_proto.node)):
        stack = [(start, False)]
        while stack:
            i, expanded = stack.pop()
            if expanded:
                state[i] = 2
                order.append(i)
                continue
            if state[i] == 2:
                continue
            if state[i] == 1:
                continue
            state[i] = 1
            stack.append((i, True))
            node = graph_proto.node[i]
            for inp in node.input:
                if not inp or inp in known:
                    continue
                if inp not in producers:
                    raise ModelFormatError(
                        f"node {_label(node, i)!r} ({node.op_type}): input {inp!r} is not "
                        "produced by any node, initializer or graph input"
                    )
                j = producers[inp]
                if state[j] == 1:
                    raise ModelFormatError(
                        f"node {_label(node, i)!r} ({node.op_type}): graph has a cycle "
                        f"through tensor {inp!r}"
                    )
                if state[j] == 0:
                    stack.append((j, False))
    return order


def _label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"#{index}:{node.output[0] if node.output else node.op_type}"


# inputs that must be compile-time constants, by operator (positions)
CONST_SLOTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Slice": (1, 2, 3, 4), "Split": (1,), "Squeeze": (1,),
    "Unsqueeze": (1,), "ReduceMean": (1,), "ReduceSum": (1,), "ReduceMax": (1,),
    "Expand": (1,), "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7), "MatMulInteger": (2, 3),
}  # fmt: skip


def import_onnx(
    model: str | Path | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dim_params: Mapping[str, int] | None = None,
    frozen_inputs: Mapping[str, np.ndarray] | None = None,
) -> ModuleOp:
    """Import an ONNX model.

    ``input_shapes`` / ``dim_params`` resolve dynamic dims; ``frozen_inputs`` binds
    graph inputs to compile-time values (they become initializers).
    """
    from compiler.frontend.onnx_ops import HANDLERS

    proto = load_model(model)
    opset = model_opset(proto)
    if frozen_inputs:
        proto = _freeze(proto, frozen_inputs)
    imp = Importer(proto, opset)
    g = proto.graph
    inits = {t.name for t in g.initializer}
    for t in g.initializer:
        arr = numpy_helper.to_array(t)
        onnx_dtype(t.data_type, f"initializer {t.name!r}")
        imp.values[t.name] = imp.constant(arr, t.name, INIT_INLINE_LIMIT)
    args = _add_inputs(
        imp, [i for i in g.input if i.name not in inits], input_shapes or {}, dim_params or {}
    )
    for index in topo_order(g, set(imp.values)):
        node = g.node[index]
        imp.node, imp.node_label = node, _label(node, index)
        handler = HANDLERS.get(node.op_type)
        if handler is None or node.domain not in ("", "ai.onnx"):
            raise imp.error(
                f"operator {node.domain + '.' if node.domain else ''}"
                f"{node.op_type} is not supported"
            )
        outs = handler(imp, node)
        for name, val in zip(node.output, outs, strict=False):
            if name:
                imp.values[name] = val
    imp.node = None
    return _finish(imp, g, args)


def _freeze(proto: onnx.ModelProto, frozen: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    names = {i.name for i in proto.graph.input}
    unknown = sorted(set(frozen) - names)
    if unknown:
        raise ModelFormatError(f"cannot freeze {unknown[0]!r}: the model has no such input")
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    keep = [i for i in out.graph.input if i.name not in frozen]
    del out.graph.input[:]
    out.graph.input.extend(keep)
    for name, value in frozen.items():
        out.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return out


def _add_inputs(imp: Importer, inputs, shapes, dim_params) -> list[SSAValue]:
    args = []
    for vi in inputs:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedError(f"graph input {vi.name!r}: only tensor inputs are supported")
        dtype = onnx_dtype(tt.elem_type, f"graph input {vi.name!r}")
        if vi.name in shapes:
            shape = [int(d) for d in shapes[vi.name]]
        else:
            shape = []
            for k, d in enumerate(tt.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    shape.append(d.dim_value)
                elif d.HasField("dim_param") and d.dim_param in dim_params:
                    shape.append(int(dim_params[d.dim_param]))
                else:
                    what = repr(d.dim_param) if d.HasField("dim_param") else "unknown"
                    raise ShapeError(
                        f"graph input {vi.name!r}: dimension {k} is {what}; give it a size "
                        f"with --input-shape {vi.name}=... or --dim NAME=SIZE"
                    )
        arg = imp.block.insert_arg(tensor_type(shape, dtype), len(imp.block.args))
        _hint(arg, vi.name)
        imp.values[vi.name] = arg
        args.append(arg)
    return args


def _finish(imp: Importer, g: onnx.GraphProto, args: list[SSAValue]) -> ModuleOp:
    outs = []
    for o in g.output:
        if o.name not in imp.values:
            raise ModelFormatError(f"graph output {o.name!r} is not produced by any node")
        outs.append(imp.values[o.name])
    imp.builder.insert(func.ReturnOp(*outs))
    _drop_unused_constants(imp.block)
    ftype = func.FunctionType.from_lists([a.type for a in args], [v.type for v in outs])
    fn = func.FuncOp("main", ftype, Region(imp.block))
    module = ModuleOp([fn])
    try:
        module.verify()
    except VerifyException as exc:
        raise VerifyError(f"imported module does not verify: {exc}") from None
    used = {op.attributes["ref"].data for op in imp.block.ops if op.name == "graph.weight"}  # type: ignore[attr-defined]
    imp.store.prune(used)
    attach(module, imp.store)
    return module


def _drop_unused_constants(block: Block) -> None:
    for op in reversed(list(block.ops)):
        if op.name in ("graph.constant", "graph.weight") and not op.results[0].uses:
            block.erase_op(op)


__all__ = ["import_onnx", "load_model", "model_opset", "Importer", "np_dtype", "elem_type"]
