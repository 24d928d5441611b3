"""A small CNN as an ONNX graph: conv-relu-maxpool, conv-relu (+bias), global average
pool, flatten, gemm.  Used by tests and examples."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_cnn(
    seed: int, batch: int = 1, channels: int = 3, size: int = 16, classes: int = 10, opset: int = 17
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def w(*shape: int, s: float) -> np.ndarray:
        return (rng.standard_normal(shape) * s).astype(np.float32)

    inits = {
        "c1.w": w(8, channels, 3, 3, s=0.3),
        "c1.b": w(8, s=0.1),
        "c2.w": w(12, 8, 3, 3, s=0.15),
        "c2.b": w(12, s=0.1),
        "fc.w": w(classes, 12, s=0.3),
        "fc.b": w(classes, s=0.1),
    }
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2.w", "c2.b"], ["c2"], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model
