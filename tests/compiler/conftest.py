"""Shared fixtures of the compiler tests; makes the repository importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# numpy's OpenBLAS threads only contend on the shared 2-core test machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
