"""numpy interpreter of the ``graph``, ``qnt`` and ``tosa.clamp`` ops.

For float graphs it is the reference of the importer (checked against onnxruntime);
for quantized graphs it is the bit-exact reference that the back end must match: each
``qnt`` kernel calls the integer-only functions of :mod:`compiler.qmath`.

``run(module, inputs)`` evaluates the module's function; ``evaluate(op, args, store)``
evaluates one op (used by constant folding and calibration).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from compiler.dialects.base import int_attr, shape_of, str_attr
from compiler.errors import CompileError
from compiler.ir import dense_value, main_func, np_dtype
from compiler.store import ConstantStore, store_of

Kernel = Callable[[Operation, list[np.ndarray], ConstantStore], np.ndarray]
KERNELS: dict[str, Kernel] = {}


def kernel(*names: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        for n in names:
            KERNELS[n] = fn
        return fn

    return register


def _dtype(value: SSAValue) -> np.dtype:
    typ = value.type
    assert isinstance(typ, TensorType)
    return np_dtype(typ.element_type)


def evaluate(op: Operation, args: list[np.ndarray], store: ConstantStore) -> np.ndarray:
    """Value of the single result of ``op`` given its operand values."""
    fn = KERNELS.get(op.name)
    if fn is None:
        raise CompileError(f"interpreter has no kernel for op '{op.name}'")
    out = np.asarray(fn(op, args, store))
    want = shape_of(op.results[0])
    if -1 not in want and out.shape != want:
        raise CompileError(f"'{op.name}' produced shape {list(out.shape)}, type says {list(want)}")
    return out.astype(_dtype(op.results[0]), copy=False)


def run(
    module: ModuleOp,
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    observer: Callable[[Operation, np.ndarray], None] | None = None,
) -> list[np.ndarray]:
    """Run the module's function; inputs by position or by argument name."""
    fn = main_func(module)
    store = store_of(module)
    args = fn.body.block.args
    if isinstance(inputs, Mapping):
        missing = [a.name_hint for a in args if a.name_hint not in inputs]
        if missing:
            raise CompileError(f"missing input(s) {missing}")
        vals = [inputs[a.name_hint] for a in args]  # type: ignore[index]
    else:
        vals = list(inputs)
    if len(vals) != len(args):
        raise CompileError(f"model takes {len(args)} inputs, {len(vals)} given")
    env: dict[SSAValue, np.ndarray] = {}
    for arg, val in zip(args, vals, strict=True):
        env[arg] = np.asarray(val).astype(_dtype(arg), copy=False)
    for op in fn.body.block.ops:
        if isinstance(op, func.ReturnOp):
            return [env[v] for v in op.operands]
        out = evaluate(op, [env[v] for v in op.operands], store)
        env[op.results[0]] = out
        if observer is not None:
            observer(op, out)
    raise CompileError("function has no func.return")


# ---- graph: sources and elementwise -------------------------------------------------


@kernel("graph.weight")
def _weight(op, args, store):
    return store.get(str_attr(op, "ref"))


@kernel("graph.constant")
def _constant(op, args, store):
    return dense_value(op.attributes["value"])


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.trunc(a.astype(np.float64) / b).astype(a.dtype)


_BINARY = {
    "graph.add": np.add, "graph.sub": np.subtract, "graph.mul": np.multiply,
    "graph.pow": np.power,
}  # fmt: skip


@kernel(*_BINARY)
def _binary(op, args, store):
    with np.errstate(all="ignore"):
        return _BINARY[op.name](args[0], args[1])


@kernel("graph.div")
def _div(op, args, store):
    a, b = args
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    with np.errstate(all="ignore"):
        return a / b


@kernel("graph.where")
def _where(op, args, store):
    return np.where(args[0], args[1], args[2])


_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 (Abramowitz and Stegun 7.1.26), computed in float64."""
    x64 = np.asarray(x, dtype=np.float64)
    t = 1.0 / (1.0 + _ERF_P * np.abs(x64))
    poly = t * (_ERF_A[0] + t * (_ERF_A[1] + t * (_ERF_A[2] + t * (_ERF_A[3] + t * _ERF_A[4]))))
    return np.sign(x64) * (1.0 - poly * np.exp(-x64 * x64))


@kernel("graph.erf")
def _erf(op, args, store):
    return erf(args[0])


@kernel("graph.tanh")
def _tanh(op, args, store):
    return np.tanh(args[0])


@kernel("graph.sigmoid")
def _sigmoid(op, args, store):
    x = args[0].astype(np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


@kernel("graph.sqrt")
def _sqrt(op, args, store):
    with np.errstate(invalid="ignore"):
        return np.sqrt(args[0])


@kernel("graph.round")
def _round(op, args, store):
    return np.rint(args[0])


@kernel("graph.exp")
def _exp(op, args, store):
    with np.errstate(over="ignore"):
        return np.exp(args[0])


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    x64 = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)
        return 0.5 * x64 * (1 + np.tanh(inner))
    return 0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))


@kernel("graph.gelu")
def _gelu(op, args, store):
    return gelu(args[0], str_attr(op, "approximate", "none"))


@kernel("graph.cast")
def _cast(op, args, store):
    dt = _dtype(op.results[0])
    x = args[0]
    if dt.kind in "iu" and x.dtype.kind == "f":
        x = np.trunc(np.nan_to_num(x))
    with np.errstate(invalid="ignore"):
        return x.astype(dt)


@kernel("tosa.clamp")
def _clamp(op, args, store):
    lo = op.properties["min_val"].value.data  # type: ignore[attr-defined]
    hi = op.properties["max_val"].value.data  # type: ignore[attr-defined]
    return np.clip(args[0], lo, hi)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@kernel("graph.softmax")
def _softmax(op, args, store):
    return softmax(args[0], int_attr(op, "axis"))


from compiler import interpreter_ops  # noqa: E402,F401  (registers the remaining kernels)
