"""The bad-input corpus: each malformed model raises a CompileError naming the node,
operator and reason, and the CLI exits 2 with one line and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import compiler.errors as errors
from compiler.frontend.onnx_import import import_onnx
from myelin.cli import main

sys.path.insert(0, str(Path(__file__).parent / "bad_models"))
from make_bad_models import corpus  # noqa: E402

CORPUS = corpus()
ROOT = Path(__file__).resolve().parents[2]


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_model_raises_compile_error(name: str, tmp_path: Path) -> None:
    data, cls_name, parts = CORPUS[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(errors.CompileError) as info:
        import_onnx(path)
    assert type(info.value).__name__ == cls_name, str(info.value)
    for part in parts:
        assert part in str(info.value), f"{part!r} not in {info.value}"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_cli_exit_code_2_without_traceback(name: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / name
    path.write_bytes(CORPUS[name][0])
    assert main(["compile", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("myelin: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_subprocess_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "cycle.onnx"
    path.write_bytes(CORPUS["cycle.onnx"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "myelin.cli", "compile", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "cycle" in proc.stderr
