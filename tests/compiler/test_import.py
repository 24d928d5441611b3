"""Importer behaviour beyond the ONNX node tests: ONNX's quantized ops against
onnxruntime, shape subgraphs folded at import, weights in the constant store."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from compiler.frontend.onnx_import import import_onnx
from compiler.interpreter import run
from compiler.ir import module_text
from compiler.store import store_of

SEED = 21


def _model(nodes, inputs, outputs, inits, opset=17):
    g = h.make_graph(
        nodes, "t", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()]
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString()).run(None, feeds)


def test_qdq_and_qlinear_matmul_match_onnxruntime() -> None:
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    inits = {
        "xs": np.array(0.05, np.float32),
        "xz": np.array(3, np.uint8),
        "w": rng.integers(0, 255, (6, 5)).astype(np.uint8),
        "ws": np.array(0.02, np.float32),
        "wz": np.array(120, np.uint8),
        "ys": np.array(0.1, np.float32),
        "yz": np.array(128, np.uint8),
        "wi": rng.integers(-100, 100, (6, 5)).astype(np.int8),
        "wiz": np.array(2, np.int8),
    }
    nodes = [
        h.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        h.make_node("QLinearMatMul", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["yq"]),
        h.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
        h.make_node("MatMulInteger", ["xq", "wi", "xz", "wiz"], ["acc"]),
    ]
    model = _model(
        nodes,
        [h.make_tensor_value_info("x", T.FLOAT, [4, 6])],
        [
            h.make_tensor_value_info("y", T.FLOAT, None),
            h.make_tensor_value_info("acc", T.INT32, None),
        ],
        inits,
    )
    x = rng.standard_normal((4, 6)).astype(np.float32) * 3
    want = _ort(model, {"x": x})
    got = run(import_onnx(model), [x])
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    np.testing.assert_array_equal(got[1], want[1])


def test_shape_subgraph_folds_at_import_and_weights_go_to_store() -> None:
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    nodes = [
        h.make_node("MatMul", ["x", "w"], ["m"]),
        h.make_node("Shape", ["m"], ["s"]),
        h.make_node("Gather", ["s", "zero"], ["b"]),
        h.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        h.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
        h.make_node("Reshape", ["m", "shape"], ["y"]),
    ]
    inits = {
        "w": w,
        "zero": np.array(0, np.int64),
        "ax": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    model = _model(
        nodes,
        [h.make_tensor_value_info("x", T.FLOAT, ["n", 64])],
        [h.make_tensor_value_info("y", T.FLOAT, None)],
        inits,
    )
    module = import_onnx(model, dim_params={"n": 3})
    text = module_text(module)
    assert 'graph.weight {ref = "w"}' in text and "dense<" not in text.split("graph.matmul")[0]
    assert "graph.reshape" not in text  # [3, 32] -> [3, -1] is the same shape
    assert store_of(module).get("w").shape == (64, 32)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    np.testing.assert_allclose(run(module, [x])[0], _ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)
