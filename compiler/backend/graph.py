"""Graph ops on the chip, checked against the front end's interpreter.

``run_graph_on_chip`` runs a quantized module (qnt dialect) through the front end's
integer interpreter (compiler.interpreter, the bit-exact graph reference) and, for
every ``qnt.matmul`` whose weights are constants, compiles the op as a back-end GEMM
for the arch, runs it on the given executor with the op's real input tensor, and
compares the chip's result with the interpreter's, bit for bit.  This is op-level
(layer by layer, the host passing tensors).  Whole-graph mapping (every op of the
module in ONE program set, tensors in DRAM, semaphores between PE groups) is
:func:`compiler.backend.graph_map.compile_graph` / ``run_whole_graph``, re-exported
here.

Lowering of one ``qnt.matmul`` (``acc = sum((a - zp_a) * w) + bias``, then the MAC
output stage with the result's zero point, ReLU as ``lo = zp``): the MAC array
multiplies raw int8 codes, so the input zero point moves into the bias,
``bias' = bias - zp_a * colsum(w)`` (exact for constant weights).  Weights with a
non-zero zero point, 16-bit operands and results, and non-2-D weights are rejected
with UnsupportedError naming the op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.backend.compile import CompiledKernel, traffic
from compiler.backend.gemm import GemmSpec, map_gemm, reference
from compiler.backend.graph_map import compile_graph, run_whole_graph
from compiler.dialects.base import shape_of, str_attr
from compiler.dialects.qnt import int_range, qparams
from compiler.errors import UnsupportedError

__all__ = [
    "GraphOpResult",
    "compile_graph",
    "compile_qnt_matmul",
    "run_graph_on_chip",
    "run_whole_graph",
]


@dataclass
class GraphOpResult:
    op: str  # the op's name and index in the function
    shape: tuple[int, int, int]  # M, K, N
    bit_exact: bool
    cycles: int
    plan: dict


def _zp(value) -> int:
    q = qparams(value)
    return q.zp if q is not None else 0


def _check(op, index: int) -> None:
    where = f"op #{index} ({op.name})"
    for what, v in (
        ("input", op.operands[0]),
        ("weight", op.operands[1]),
        ("result", op.results[0]),
    ):
        if v.type.element_type.width.data != 8:
            raise UnsupportedError(
                f"{where}: the MAC array takes and gives int8; the {what} is {v.type.element_type}"
            )
    if _zp(op.operands[1]) != 0:
        raise UnsupportedError(
            f"{where}: weights with a non-zero zero point are not "
            f"supported (the term a * zp_w depends on the input)"
        )
    if len(shape_of(op.operands[1])) != 2:
        raise UnsupportedError(
            f"{where}: weights must be 2-D, not {list(shape_of(op.operands[1]))}"
        )


def compile_qnt_matmul(arch, op, args: list[np.ndarray], index: int = 0) -> CompiledKernel:
    """The back-end GEMM of one ``qnt.matmul`` with its operand values ``args``
    (input, weights, bias, multiplier, shift), as the interpreter saw them."""
    import time

    from compiler.backend.compile import emit_programs

    _check(op, index)
    a, w, bias, mult, shift = (np.asarray(x) for x in args)
    k, n = w.shape
    a2 = a.reshape(-1, k).astype(np.int8)
    zp_a = _zp(op.operands[0])
    zp_y = _zp(op.results[0])
    lo, hi = int_range(op.results[0])
    relu = str_attr(op, "act", "none") == "relu"
    folded = bias.astype(np.int64) - zp_a * w.astype(np.int64).sum(axis=0)
    if np.abs(folded).max(initial=0) >= 2**31:
        raise UnsupportedError(f"op #{index} ({op.name}): folded bias overflows int32")
    t = {
        "a": a2,
        "b": w.astype(np.int8),
        "bias": folded.astype(np.int32),
        "mult": np.resize(mult.astype(np.int32), n),
        "shift": np.resize(shift.astype(np.int32), n),
    }
    if (lo, hi) != (-128, 127):
        raise UnsupportedError(f"op #{index} ({op.name}): result range {lo}..{hi} is not int8")
    spec = GemmSpec(a2.shape[0], k, n, zp=zp_y, relu=relu)
    t0 = time.perf_counter()
    mapped = map_gemm(arch, spec, t, name=f"op{index}")
    programs, images = emit_programs(arch, mapped)
    return CompiledKernel(
        f"{op.name}#{index}",
        arch,
        mapped,
        programs,
        images,
        t,
        {"C": reference(spec, t)},
        a2.shape[0] * k * n,
        time.perf_counter() - t0,
        traffic(arch, mapped.kernel),
    )


def run_graph_on_chip(module, inputs, arch, executor) -> list[GraphOpResult]:
    """Interpret ``module``; run every constant-weight ``qnt.matmul`` on ``executor`` and
    compare with the interpreter's value of that op."""
    from compiler.interpreter import run
    from compiler.ir import main_func

    values: dict = {}
    if not isinstance(inputs, dict):
        values.update(zip(main_func(module).body.block.args, inputs, strict=True))
    else:
        values.update((a, inputs[a.name_hint]) for a in main_func(module).body.block.args)
    matmuls = []

    def observe(op, out):
        values[op.results[0]] = out
        if op.name == "qnt.matmul":
            matmuls.append(op)

    run(module, inputs, observer=observe)
    results = []
    for index, op in enumerate(matmuls):
        ck = compile_qnt_matmul(arch, op, [values[v] for v in op.operands], index)
        res = executor.run(ck)
        want = values[op.results[0]]
        got = res.outputs["C"].reshape(want.shape)
        m = ck.inputs["a"].shape[0]
        results.append(
            GraphOpResult(
                f"{op.name}#{index}",
                (m, *ck.inputs["b"].shape),
                bool(np.array_equal(got, want)),
                res.cycles,
                ck.plan,
            )
        )
    return results
