"""Test models built in the tests (transformer encoder block, small CNN), float and
quantized, against onnxruntime; lowering (layout, padding) must not change results."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from compiler.driver import compile_model
from compiler.interpreter import run
from compiler.models.bert import BertConfig, build_bert, random_bert_weights
from compiler.models.cnn import build_cnn

SEED = 1234
CFG = BertConfig(hidden=64, heads=4, intermediate=128, layers=2, vocab=100, max_positions=32)
B, L = 2, 8


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ort_run(model, feeds: dict) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]


def bert_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    mask = np.ones((B, L), np.int64)
    mask[1, L - 3 :] = 0
    return {"input_ids": rng.integers(0, CFG.vocab, (B, L)), "attention_mask": mask}


@pytest.mark.parametrize("decomposed", [False, True])
def test_transformer_block_float_matches_onnxruntime(decomposed: bool) -> None:
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    model = build_bert(random_bert_weights(CFG, SEED), CFG, B, L, decomposed_layernorm=decomposed)
    feeds = bert_inputs(rng)
    result = compile_model(model)
    ops = {op.name for op in result.module.walk()}
    assert "graph.layer_norm" in ops and "graph.gelu" in ops  # raised composites
    assert "graph.fused_matmul" in ops
    got = run(result.module, feeds)[0]
    np.testing.assert_allclose(got, ort_run(model, feeds), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("options", ["", "smooth=true", "mac-input-bits=16"])
def test_transformer_block_quantized_is_integer_only_and_accurate(options: str) -> None:
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    model = build_bert(random_bert_weights(CFG, SEED), CFG, B, L)
    calib = [bert_inputs(rng) for _ in range(6)]
    result = compile_model(model, until="quantized", calibration=calib, quant_options=options)
    module = result.module
    assert list(module.attributes["myelin.float_ops"].data) == []
    names = {op.name for op in module.walk()}
    for kernel in ("qnt.softmax", "qnt.gelu", "qnt.layer_norm", "qnt.matmul", "qnt.add"):
        assert kernel in names
    float_compute = {
        n
        for n in names
        if n.startswith("graph.")
        and n
        not in (
            "graph.weight",
            "graph.constant",
            "graph.reshape",
            "graph.transpose",
            "graph.gather",
            "graph.where",
            "graph.cast",
            "graph.slice",
            "graph.pad",
        )
    }
    assert ("qnt.rescale" in names) == (options == "smooth=true")
    assert float_compute == set()
    feeds = bert_inputs(rng)
    got = run(module, feeds)[0]
    assert cosine(got, ort_run(model, feeds)) >= 0.99


def test_cnn_float_and_quantized() -> None:
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    model = build_cnn(SEED, batch=2)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    ref = ort_run(model, {"x": x})
    fl = compile_model(model)
    assert any(
        op.name == "graph.conv" and op.attributes["layout"].data == "nhwc"
        for op in fl.module.walk()
    )
    np.testing.assert_allclose(run(fl.module, [x])[0], ref, atol=1e-5, rtol=1e-4)
    calib = [{"x": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)} for _ in range(8)]
    q = compile_model(model, until="quantized", calibration=calib)
    assert list(q.module.attributes["myelin.float_ops"].data) == []
    assert cosine(run(q.module, [x])[0], ref) >= 0.99


def test_lowering_is_bit_exact_on_quantized_graph() -> None:
    """convert-layout and pad-to-mac keep the integer results identical."""
    from compiler.calibration import set_samples
    from compiler.frontend.onnx_import import import_onnx
    from compiler.pipeline import GRAPH_PIPELINE, LOWER_PIPELINE, QUANT_PIPELINE, run_pipeline

    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    model = build_cnn(SEED, batch=3, size=10)
    module = import_onnx(model)
    run_pipeline(module, ",".join(GRAPH_PIPELINE))
    set_samples(module, [{"x": rng.standard_normal((3, 3, 10, 10)).astype(np.float32)}])
    run_pipeline(module, ",".join(QUANT_PIPELINE))
    x = rng.standard_normal((3, 3, 10, 10)).astype(np.float32)
    before = run(module, [x])[0]
    run_pipeline(module, ",".join(LOWER_PIPELINE))
    names = [op.name for op in module.walk()]
    assert "graph.pad" in names and "graph.slice" in names  # batch 3 -> 4 rows, 10 -> 16 cols
    np.testing.assert_array_equal(run(module, [x])[0], before)
