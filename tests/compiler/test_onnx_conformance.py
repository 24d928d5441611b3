"""ONNX backend node tests through import + interpreter (see onnx_conformance.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_conformance import (
    all_cases,
    const_inputs,
    exclusions,
    in_scope,
    retarget,
)

from compiler.errors import CompileError
from compiler.frontend.onnx_import import import_onnx
from compiler.interpreter import run

IN_SCOPE = in_scope()
EXCLUDED = exclusions()


def _array(value) -> np.ndarray:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def run_case(name: str) -> None:
    case = all_cases()[name]
    model = retarget(case.model)
    assert model is not None, f"{name}: no opset in 13..21 has the same op definitions"
    inputs, expected = ([_array(v) for v in vs] for vs in case.data_sets[0])
    graph_inputs = [i.name for i in model.graph.input]
    values = dict(zip(graph_inputs, inputs, strict=False))
    frozen = {n: np.asarray(values[n]) for n in const_inputs(model)}
    live = [n for n in graph_inputs if n not in frozen]
    shapes = {n: list(np.asarray(values[n]).shape) for n in live}
    module = import_onnx(model, input_shapes=shapes, frozen_inputs=frozen)
    with np.errstate(all="ignore"):
        got = run(module, [values[n] for n in live])
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        e = np.asarray(e)
        assert g.shape == e.shape, f"{name}: shape {g.shape} != {e.shape}"
        np.testing.assert_allclose(
            g.astype(np.float64),
            e.astype(np.float64),
            rtol=max(case.rtol, 1e-4),
            atol=max(case.atol, 1e-5),
            equal_nan=True,
            err_msg=name,
        )


def test_in_scope_list_is_explicit() -> None:
    """onnx_in_scope.txt lists every in-scope test; a new onnx release shows up here."""
    listed = [
        line
        for line in (Path(__file__).parent / "onnx_in_scope.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert listed == IN_SCOPE


def test_exclusions_are_in_scope_and_explained():
    for name, why in EXCLUDED.items():
        assert name in IN_SCOPE, f"excluded test {name} is not in scope"
        assert why.split(": ", 1)[1].strip(), f"{name} needs a reason"


@pytest.mark.parametrize("name", [n for n in IN_SCOPE if n not in EXCLUDED])
def test_node(name: str) -> None:
    run_case(name)


@pytest.mark.parametrize("name", sorted(EXCLUDED))
def test_excluded_still_fails_cleanly(name: str) -> None:
    """An excluded test fails with a CompileError (or a known mismatch), never a crash."""
    try:
        run_case(name)
    except (CompileError, AssertionError):
        return
    pytest.fail(f"{name} passes now: remove it from onnx_exclusions.toml")
