"""Fixtures of the back-end tests: architectures and a bounded chip run.

pytest runs with ``--import-mode=importlib``, so test modules cannot import helpers
from this directory; everything shared is a fixture.
"""

import pytest

from compiler.backend.run import ChipSimExecutor, execute
from hw.arch import preset
from sim.network import ChipSim

ARCHS = {
    "tiny": preset("tiny"),
    "small": preset("small"),
    "small-8x8mac": preset("small").replace(name="small-8x8mac", mac_rows=8, mac_cols=8),
    "small-32k": preset("small").replace(name="small-32k", sram_bytes=32768),
    "small-2x2": preset("small").replace(name="small-2x2", mesh_cols=2, mesh_rows=2),
    "tiny-2x4mac": preset("tiny").replace(name="tiny-2x4mac", mac_rows=2, mac_cols=4),
}


def _run_isa(ck, max_instructions: int = 5_000_000) -> dict:
    """Run on the chip reference simulator (bounded: raises past the limit)."""
    return execute(ck, ChipSimExecutor(ChipSim, max_instructions=max_instructions))


@pytest.fixture
def archs() -> dict:
    return ARCHS


@pytest.fixture
def run_isa():
    return _run_isa


@pytest.fixture(params=list(ARCHS))
def arch(request):
    return ARCHS[request.param]
