"""Generate the bad-input corpus: malformed ONNX models, each with the error it must
raise.  ``python make_bad_models.py`` writes them next to this file; the tests call
:func:`corpus` and write them to a temporary folder.

Each entry: file name -> (file bytes, error class name, substrings the message must
contain: node name and operator for node errors, the reason in every case).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

F = T.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset: int = 17, domains=()) -> bytes:
    g = h.make_graph(nodes, "bad", inputs, outputs, list(inits))
    ops = [h.make_opsetid("", opset), *[h.make_opsetid(d, 1) for d in domains]]
    m = h.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m.SerializeToString()


def _vi(name: str, shape, dtype: int = F):
    return h.make_tensor_value_info(name, dtype, shape)


def _init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _good() -> bytes:
    return _model(
        [h.make_node("Relu", ["x"], ["y"], name="relu")], [_vi("x", [2, 3])], [_vi("y", [2, 3])]
    )


def corpus() -> dict[str, tuple[bytes, str, list[str]]]:
    x23, y = [_vi("x", [2, 3])], [_vi("y", None)]
    w = _init("W", np.ones((3, 4), np.float32))
    return {
        "truncated.onnx": (_good()[:40], "ModelFormatError", ["cannot parse"]),
        "empty.onnx": (b"", "ModelFormatError", ["no ONNX graph"]),
        "not_onnx.onnx": (
            b"\xff\xfe this is not a protobuf \x00\x01",
            "ModelFormatError",
            ["cannot parse"],
        ),
        "cycle.onnx": (
            _model(
                [
                    h.make_node("Relu", ["b"], ["a"], name="n1"),
                    h.make_node("Relu", ["a"], ["b"], name="n2"),
                ],
                x23,
                [_vi("b", None)],
            ),
            "ModelFormatError",
            ["cycle", "Relu"],
        ),
        "missing_initializer.onnx": (
            _model([h.make_node("MatMul", ["x", "W"], ["y"], name="mm")], x23, y),
            "ModelFormatError",
            ["'mm'", "MatMul", "'W'", "not produced"],
        ),
        "dynamic_dim.onnx": (
            _model([h.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", ["batch", 3])], y),
            "ShapeError",
            ["'x'", "'batch'", "--dim"],
        ),
        "unknown_dim.onnx": (
            _model([h.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", [None, 3])], y),
            "ShapeError",
            ["'x'", "dimension 0 is unknown"],
        ),
        "unsupported_op.onnx": (
            _model([h.make_node("Hardmax", ["x"], ["y"], name="hm")], x23, y),
            "UnsupportedError",
            ["'hm'", "Hardmax", "not supported"],
        ),
        "unsupported_attr_value.onnx": (
            _model(
                [h.make_node("Gelu", ["x"], ["y"], name="g", approximate="cubic")], x23, y, opset=20
            ),
            "UnsupportedError",
            ["'g'", "Gelu", "approximate='cubic'"],
        ),
        "unknown_attr.onnx": (
            _model([h.make_node("Relu", ["x"], ["y"], name="r", alpha=0.1)], x23, y),
            "UnsupportedError",
            ["'r'", "Relu", "'alpha'"],
        ),
        "dtype_bfloat16.onnx": (
            _model(
                [h.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", [2, 3], T.BFLOAT16)], y
            ),
            "UnsupportedError",
            ["'x'", "BFLOAT16"],
        ),
        "dtype_string_init.onnx": (
            _model(
                [h.make_node("Identity", ["s"], ["y"], name="i")],
                [],
                y,
                [h.make_tensor("s", T.STRING, [1], [b"a"])],
            ),
            "UnsupportedError",
            ["'s'", "STRING"],
        ),
        "opset_too_old.onnx": (
            _model([h.make_node("Relu", ["x"], ["y"])], x23, y, opset=11),
            "UnsupportedError",
            ["opset 11", "13..21"],
        ),
        "opset_too_new.onnx": (
            _model([h.make_node("Relu", ["x"], ["y"])], x23, y, opset=23),
            "UnsupportedError",
            ["opset 23", "13..21"],
        ),
        "custom_domain.onnx": (
            _model(
                [h.make_node("FusedGemm", ["x"], ["y"], name="fg", domain="com.microsoft")],
                x23,
                y,
                domains=["com.microsoft"],
            ),
            "UnsupportedError",
            ["com.microsoft"],
        ),
        "dynamic_reshape.onnx": (
            _model(
                [h.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
                [*x23, _vi("s", [2], T.INT64)],
                y,
            ),
            "ShapeError",
            ["'rs'", "Reshape", "compile-time constant"],
        ),
        "matmul_mismatch.onnx": (
            _model(
                [h.make_node("MatMul", ["x", "W"], ["y"], name="mm")], [_vi("x", [2, 5])], y, [w]
            ),
            "ShapeError",
            ["'mm'", "MatMul", "contraction mismatch"],
        ),
        "broadcast_mismatch.onnx": (
            _model(
                [h.make_node("Add", ["x", "b"], ["y"], name="add")],
                x23,
                y,
                [_init("b", np.ones(4, np.float32))],
            ),
            "ShapeError",
            ["'add'", "Add", "do not broadcast"],
        ),
        "conv3d.onnx": (
            _model(
                [h.make_node("Conv", ["x", "k"], ["y"], name="c3")],
                [_vi("x", [1, 1, 4, 4, 4])],
                y,
                [_init("k", np.ones((1, 1, 2, 2, 2), np.float32))],
            ),
            "UnsupportedError",
            ["'c3'", "Conv", "2-D"],
        ),
        "gather_out_of_range.onnx": (
            _model(
                [h.make_node("Gather", ["x", "i"], ["y"], name="ga")],
                x23,
                y,
                [_init("i", np.array([7], np.int64))],
            ),
            "ShapeError",
            ["'ga'", "Gather", "out of range"],
        ),
        "softmax_axis.onnx": (
            _model([h.make_node("Softmax", ["x"], ["y"], name="sm", axis=5)], x23, y),
            "ShapeError",
            ["'sm'", "Softmax", "axis 5"],
        ),
        "output_not_produced.onnx": (
            _model([h.make_node("Relu", ["x"], ["y"])], x23, [_vi("z", None)]),
            "ModelFormatError",
            ["'z'", "not produced"],
        ),
        "reshape_size.onnx": (
            _model(
                [h.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
                x23,
                y,
                [_init("s", np.array([4, 4], np.int64))],
            ),
            "ShapeError",
            ["'rs'", "Reshape", "cannot reshape"],
        ),
        "transpose_perm.onnx": (
            _model([h.make_node("Transpose", ["x"], ["y"], name="tp", perm=[0, 0])], x23, y),
            "ShapeError",
            ["'tp'", "Transpose", "not a permutation"],
        ),
        "maxpool_indices.onnx": (
            _model(
                [h.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2])],
                [_vi("x", [1, 1, 4, 4])],
                [*y, _vi("idx", None)],
            ),
            "UnsupportedError",
            ["'mp'", "MaxPool", "Indices"],
        ),
        "split_sizes.onnx": (
            _model(
                [h.make_node("Split", ["x", "sp"], ["a", "b"], name="sp")],
                x23,
                [_vi("a", None)],
                [_init("sp", np.array([1, 5], np.int64))],
            ),
            "ShapeError",
            ["'sp'", "Split", "do not cover"],
        ),
    }


def main(folder: Path) -> None:
    for name, (data, _, _) in corpus().items():
        (folder / name).write_bytes(data)
    print(f"wrote {len(corpus())} models to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
