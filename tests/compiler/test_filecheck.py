"""Run the lit + filecheck suite in tests/filecheck (dialect round trips, verifier
diagnostics, pass positive and must-not-fire cases) as one pytest test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parents[1] / "filecheck"
# the compiler front/middle end's part of the suite (backend/ belongs to the back end)
PARTS = [SUITE / "dialects" / "graph", SUITE / "dialects" / "qnt", SUITE / "passes"]


def test_lit_filecheck_suite() -> None:
    env = dict(
        os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    )
    lit = [sys.executable, "-c", "from lit.main import main; main()"]
    proc = subprocess.run(
        [*lit, "-q", "-j", "2", *map(str, PARTS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sum(len(list(p.rglob("*.mlir"))) for p in PARTS) >= 15
