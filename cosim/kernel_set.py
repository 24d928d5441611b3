"""The kernel set of ``make cosim``: each kernel builds a program image for an
architecture, knows its roofline lower bound and checks its own output.

Every kernel runs on one PE for now (the hand-written kernels of cosim/kernels/);
the compiled multi-PE kernels of the back end join this set as they gain an RTL
path.  A kernel is described by a :class:`KernelSpec`; ``build(arch)`` returns a
:class:`KernelRun` holding the image, the roofline cycles, the MACs it performs
and a function that extracts and compares its output from a final SRAM image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hw.arch import ArchConfig
from hw.errors import ConfigError
from hw.image import ProgramImage

__all__ = ["KERNELS", "KernelRun", "KernelSpec", "select"]


@dataclass
class KernelRun:
    name: str
    shape: str
    pes: int
    image: ProgramImage
    roofline_cycles: int
    macs: int
    check: Callable[[np.ndarray], bool]
    max_cycles: int


@dataclass(frozen=True)
class KernelSpec:
    name: str
    description: str
    build: Callable[[ArchConfig], KernelRun]


def _gemm(arch: ArchConfig) -> KernelRun:
    from cosim.kernels.gemm import gemm_case

    m, n, k = (64, 64, 256) if arch.sram_bytes < 65536 else (128, 128, 256)
    m, n = max(m, arch.mac_rows), max(n, 2 * arch.mac_cols)
    case = gemm_case(arch, m, n, k, seed=1)
    return KernelRun(
        "gemm",
        f"{m}x{n}x{k} int8",
        1,
        case.image,
        case.ideal_cycles,
        m * n * k,
        lambda sram: bool(np.array_equal(case.output(sram), case.expected)),
        4 * case.ideal_cycles + 100_000,
    )


def _softmax(arch: ArchConfig) -> KernelRun:
    from cosim.kernels.softmax import softmax_case

    rows, n = 8, 64
    case = softmax_case(arch, rows, n, 0.05, seed=2)
    return KernelRun(
        "softmax",
        f"{rows}x{n} int8 (I-BERT)",
        1,
        case.image,
        case.ideal_cycles,
        0,
        lambda sram: bool(np.array_equal(case.output(sram), case.expected)),
        200 * case.ideal_cycles + 100_000,
    )


KERNELS: dict[str, KernelSpec] = {
    spec.name: spec
    for spec in (
        KernelSpec("gemm", "int8 GEMM with fused requantize, B streamed from DRAM", _gemm),
        KernelSpec("softmax", "integer softmax rows on the vector unit", _softmax),
    )
}


def select(name: str | None) -> list[KernelSpec]:
    """All kernels, or the one named; ConfigError listing the names otherwise."""
    if not name:
        return list(KERNELS.values())
    if name not in KERNELS:
        raise ConfigError(f"unknown kernel {name!r}; kernels are: {', '.join(KERNELS)}")
    return [KERNELS[name]]
