"""Runs the filecheck tests of the back-end dialects (tests/filecheck/backend/*.mlir).

There is no lit configuration in tests/filecheck, so this runs each file's
``// RUN:`` lines itself: ``python`` is this interpreter, ``filecheck`` the one next
to it, ``%s`` the file; the command runs from the repository root.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FILES = sorted((ROOT / "tests" / "filecheck" / "backend").glob("*.mlir"))


def run_lines(path: Path) -> list[str]:
    return [
        ln.split("RUN:", 1)[1].strip()
        for ln in path.read_text().splitlines()
        if ln.startswith("// RUN:")
    ]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_filecheck(path: Path):
    bindir = Path(sys.executable).parent
    filecheck = shutil.which("filecheck", path=str(bindir)) or shutil.which("filecheck")
    assert filecheck, "filecheck is not installed"
    lines = run_lines(path)
    assert lines, f"{path.name} has no RUN line"
    for line in lines:
        cmd = (
            line.replace("%s", str(path))
            .replace("python ", f"{sys.executable} ", 1)
            .replace("| filecheck", f"| {filecheck}")
        )
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{path.name}: {line}\n{proc.stdout}\n{proc.stderr}"
