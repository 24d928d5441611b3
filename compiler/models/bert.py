"""Build a BERT encoder as an ONNX graph from a dict of weights (HF BertModel names).

The graph follows the HuggingFace export: embeddings (word + position + token type 0)
and layer norm, then per layer self-attention, output dense + residual + layer norm,
feed-forward with erf GELU, residual and layer norm.  Padding is masked with
``Where(mask, scores, -10000)`` (the same value as HF's additive mask) so the mask
stays a boolean select.  Output: ``last_hidden_state`` [batch, seq, hidden].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class BertConfig:
    hidden: int = 384
    heads: int = 12
    intermediate: int = 1536
    layers: int = 6
    vocab: int = 30522
    max_positions: int = 512
    eps: float = 1e-12


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        self.count += 1
        out = f"{name}"
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=f"{name}_{op_type}", **attrs)
        )
        return out


def _dense(g: _Graph, x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
    """x @ w.T + b (HF Linear stores [out, in])."""
    wt = g.init(f"{name}.weight_t", np.ascontiguousarray(w.T))
    y = g.op("MatMul", [x, wt], f"{name}.mm")
    return g.op("Add", [y, g.init(f"{name}.bias", b)], f"{name}.out")


def _layernorm(g: _Graph, x: str, w: dict, prefix: str, eps: float, decomposed: bool) -> str:
    gamma = g.init(f"{prefix}.weight", w[f"{prefix}.weight"])
    beta = g.init(f"{prefix}.bias", w[f"{prefix}.bias"])
    if not decomposed:
        return g.op("LayerNormalization", [x, gamma, beta], f"{prefix}.out", axis=-1, epsilon=eps)
    axes = g.init(f"{prefix}.axes", np.array([-1], np.int64))
    mean = g.op("ReduceMean", [x, axes], f"{prefix}.mean")
    d = g.op("Sub", [x, mean], f"{prefix}.centered")
    sq = g.op("Pow", [d, g.init(f"{prefix}.two", np.array(2.0, np.float32))], f"{prefix}.sq")
    var = g.op("ReduceMean", [sq, axes], f"{prefix}.var")
    ve = g.op("Add", [var, g.init(f"{prefix}.eps", np.array(eps, np.float32))], f"{prefix}.ve")
    std = g.op("Sqrt", [ve], f"{prefix}.std")
    n = g.op("Div", [d, std], f"{prefix}.norm")
    return g.op("Add", [g.op("Mul", [n, gamma], f"{prefix}.scaled"), beta], f"{prefix}.out")


def _gelu(g: _Graph, x: str, name: str) -> str:
    d = g.op("Div", [x, g.init(f"{name}.sqrt2", np.array(math.sqrt(2), np.float32))], f"{name}.d")
    e = g.op("Erf", [d], f"{name}.erf")
    a = g.op("Add", [e, g.init(f"{name}.one", np.array(1.0, np.float32))], f"{name}.a")
    m = g.op("Mul", [x, a], f"{name}.m")
    return g.op("Mul", [m, g.init(f"{name}.half", np.array(0.5, np.float32))], f"{name}.out")


def _attention(
    g: _Graph, h: str, mask: str, w: dict, p: str, cfg: BertConfig, batch: int, seq: int
) -> str:
    hd = cfg.hidden // cfg.heads
    split = g.init(f"{p}.split_shape", np.array([batch, seq, cfg.heads, hd], np.int64))
    heads = {}
    for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
        y = _dense(
            g, h, w[f"{p}.self.{part}.weight"], w[f"{p}.self.{part}.bias"], f"{p}.self.{part}"
        )
        y = g.op("Reshape", [y, split], f"{p}.self.{part}.heads")
        heads[part] = g.op("Transpose", [y], f"{p}.self.{part}.t", perm=perm)
    s = g.op("MatMul", [heads["query"], heads["key"]], f"{p}.scores")
    s = g.op(
        "Div", [s, g.init(f"{p}.scale", np.array(math.sqrt(hd), np.float32))], f"{p}.scores_scaled"
    )
    s = g.op(
        "Where", [mask, s, g.init(f"{p}.neg", np.array(-10000.0, np.float32))], f"{p}.scores_masked"
    )
    prob = g.op("Softmax", [s], f"{p}.probs", axis=-1)
    ctx = g.op("MatMul", [prob, heads["value"]], f"{p}.context")
    ctx = g.op("Transpose", [ctx], f"{p}.context_t", perm=[0, 2, 1, 3])
    merge = g.init(f"{p}.merge_shape", np.array([batch, seq, cfg.hidden], np.int64))
    ctx = g.op("Reshape", [ctx, merge], f"{p}.context_merged")
    return _dense(
        g, ctx, w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"], f"{p}.output.dense"
    )


def build_bert(
    w: dict[str, np.ndarray],
    cfg: BertConfig,
    batch: int,
    seq: int,
    decomposed_layernorm: bool = False,
    opset: int = 18,
) -> onnx.ModelProto:
    """An ONNX BERT encoder; inputs input_ids and attention_mask [batch, seq] int64."""
    g = _Graph()
    ids, mask_in = "input_ids", "attention_mask"
    word = g.op(
        "Gather", [g.init("word_emb", w["embeddings.word_embeddings.weight"]), ids], "emb.word"
    )
    pos_ids = g.init("position_ids", np.arange(seq, dtype=np.int64).reshape(1, seq))
    pos = g.op(
        "Gather",
        [g.init("pos_emb", w["embeddings.position_embeddings.weight"]), pos_ids],
        "emb.pos",
    )
    tok = g.init("tok_emb0", w["embeddings.token_type_embeddings.weight"][0])
    e = g.op("Add", [g.op("Add", [word, pos], "emb.sum"), tok], "emb.total")
    h = _layernorm(g, e, w, "embeddings.LayerNorm", cfg.eps, decomposed_layernorm)
    m = g.op("Cast", [mask_in], "mask_bool", to=TensorProto.BOOL)
    m = g.op("Unsqueeze", [m, g.init("mask_axes", np.array([1, 2], np.int64))], "mask4d")
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}"
        a = _attention(g, h, m, w, f"{p}.attention", cfg, batch, seq)
        h = _layernorm(
            g,
            g.op("Add", [a, h], f"{p}.attention.residual"),
            w,
            f"{p}.attention.output.LayerNorm",
            cfg.eps,
            decomposed_layernorm,
        )
        f = _dense(
            g,
            h,
            w[f"{p}.intermediate.dense.weight"],
            w[f"{p}.intermediate.dense.bias"],
            f"{p}.intermediate.dense",
        )
        f = _gelu(g, f, f"{p}.gelu")
        f = _dense(
            g, f, w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"], f"{p}.output.dense"
        )
        h = _layernorm(
            g,
            g.op("Add", [f, h], f"{p}.output.residual"),
            w,
            f"{p}.output.LayerNorm",
            cfg.eps,
            decomposed_layernorm,
        )
    out = g.op("Identity", [h], "last_hidden_state")
    graph = helper.make_graph(
        g.nodes,
        "bert",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, [batch, seq]),
            helper.make_tensor_value_info(mask_in, TensorProto.INT64, [batch, seq]),
        ],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, seq, cfg.hidden])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def random_bert_weights(cfg: BertConfig, seed: int) -> dict[str, np.ndarray]:
    """Random weights with BERT-like scales (for tests)."""
    rng = np.random.default_rng(seed)

    def n(*shape: int, s: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape) * s).astype(np.float32)

    h, f = cfg.hidden, cfg.intermediate
    w = {
        "embeddings.word_embeddings.weight": n(cfg.vocab, h, s=0.5),
        "embeddings.position_embeddings.weight": n(cfg.max_positions, h, s=0.2),
        "embeddings.token_type_embeddings.weight": n(2, h, s=0.1),
        "embeddings.LayerNorm.weight": 1 + n(h, s=0.1),
        "embeddings.LayerNorm.bias": n(h),
    }
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}"
        for part in ("query", "key", "value"):
            w[f"{p}.attention.self.{part}.weight"] = n(h, h, s=1 / math.sqrt(h))
            w[f"{p}.attention.self.{part}.bias"] = n(h)
        w[f"{p}.attention.output.dense.weight"] = n(h, h, s=1 / math.sqrt(h))
        w[f"{p}.attention.output.dense.bias"] = n(h)
        w[f"{p}.intermediate.dense.weight"] = n(f, h, s=1 / math.sqrt(h))
        w[f"{p}.intermediate.dense.bias"] = n(f)
        w[f"{p}.output.dense.weight"] = n(h, f, s=1 / math.sqrt(f))
        w[f"{p}.output.dense.bias"] = n(h)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{ln}.weight"] = 1 + n(h, s=0.1)
            w[f"{p}.{ln}.bias"] = n(h)
    return w
