"""The kernel set of ``make cosim``.

The default set is the back end's COMPILED multi-PE kernels (compiler/backend/
kernels.py): int8 GEMM, conv2d, an MLP block and one attention head with integer
softmax.  Each is compiled for the architecture with a shape chosen by its size
(:func:`shape_for`), run on the chip and compared with its numpy reference.

The hand-written single-PE kernels of cosim/kernels/ stay available under their own
names (``pe-gemm``, ``pe-softmax``) but are not in the default set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hw.arch import ArchConfig
from hw.errors import ConfigError
from hw.image import ProgramImage

__all__ = [
    "COMPILED",
    "DEFAULT",
    "HANDWRITTEN",
    "KernelRun",
    "KernelSpec",
    "compile_for",
    "select",
    "shape_for",
    "shape_text",
]

COMPILED = ("gemm", "conv2d", "mlp", "attention")
DEFAULT = COMPILED

# Shapes per size class: "full" for a chip of >= 16 PEs with >= 64 KiB SRAM each (the
# `small` preset: GEMM 256^3 is the benchmark; the others run in about a
# minute of Verilator each), "reduced" for anything smaller (`tiny`: seconds each).
_SHAPES = {
    "full": {
        "gemm": {"m": 256, "k": 256, "n": 256},
        "conv2d": {"cin": 32, "cout": 64, "h": 16, "w": 16, "kh": 3, "pad": 1},
        "mlp": {"m": 64, "d": 256, "hidden": 256, "n": 256},
        "attention": {"seq": 128, "d": 64},
    },
    "reduced": {
        "gemm": {"m": 32, "k": 64, "n": 64},
        "conv2d": {"cin": 8, "cout": 32, "h": 8, "w": 8, "kh": 3, "pad": 1},
        "mlp": {"m": 16, "d": 32, "hidden": 64, "n": 32},
        "attention": {"seq": 16, "d": 16},
    },
}


def shape_for(name: str, arch: ArchConfig) -> dict:
    """The default shape of compiled kernel ``name`` on ``arch``."""
    size = "full" if arch.tiles >= 16 and arch.sram_bytes >= 65536 else "reduced"
    return dict(_SHAPES[size][name])


def default_shape(name: str, arch: ArchConfig) -> dict:
    """``shape_for`` for a kernel of the set; {} (the kernel's own defaults) for others."""
    return shape_for(name, arch) if name in _SHAPES["full"] else {}


def shape_text(name: str, shape: dict) -> str:
    s = shape
    if name == "gemm":
        return f"{s['m']}x{s['k']}x{s['n']} int8"
    if name == "conv2d":
        return f"{s['cin']}->{s['cout']} {s['h']}x{s['w']} k{s['kh']}"
    if name == "mlp":
        return f"{s['m']}x{s['d']}->{s['hidden']}->{s['n']}"
    if name == "attention":
        return f"seq {s['seq']} d {s['d']}"
    return ", ".join(f"{k}={v}" for k, v in s.items())


def compile_for(name: str, arch: ArchConfig, seed: int = 0, **shape):
    """compile_kernel with the default shape of ``name`` on ``arch`` (overridable)."""
    from compiler.backend.compile import compile_kernel

    return compile_kernel(name, arch, seed=seed, **{**shape_for(name, arch), **shape})


@dataclass
class KernelRun:
    """A hand-written single-PE kernel: image, roofline, MACs and output check."""

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
    compiled: bool
    build: Callable[[ArchConfig], KernelRun] | None = None


def _pe_gemm(arch: ArchConfig) -> KernelRun:
    from cosim.kernels.gemm import gemm_case

    m, n, k = (64, 64, 256) if arch.sram_bytes < 65536 else (128, 128, 256)
    m, n = max(m, arch.mac_rows), max(n, 2 * arch.mac_cols)
    case = gemm_case(arch, m, n, k, seed=1)
    return KernelRun(
        "pe-gemm",
        f"{m}x{n}x{k} int8",
        1,
        case.image,
        case.ideal_cycles,
        m * n * k,
        lambda sram: bool(np.array_equal(case.output(sram), case.expected)),
        4 * case.ideal_cycles + 100_000,
    )


def _pe_softmax(arch: ArchConfig) -> KernelRun:
    from cosim.kernels.softmax import softmax_case

    rows, n = 8, 64
    case = softmax_case(arch, rows, n, 0.05, seed=2)
    return KernelRun(
        "pe-softmax",
        f"{rows}x{n} int8 (I-BERT)",
        1,
        case.image,
        case.ideal_cycles,
        0,
        lambda sram: bool(np.array_equal(case.output(sram), case.expected)),
        200 * case.ideal_cycles + 100_000,
    )


HANDWRITTEN = ("pe-gemm", "pe-softmax")

KERNELS: dict[str, KernelSpec] = {
    spec.name: spec
    for spec in (
        KernelSpec("gemm", "int8 GEMM over the PE grid, operands from DRAM, multicast", True),
        KernelSpec("conv2d", "int8 conv2d as im2col GEMM over the PE grid", True),
        KernelSpec("mlp", "MLP block: two GEMMs with ReLU, hidden kept on chip", True),
        KernelSpec("attention", "one attention head, integer softmax on the vector unit", True),
        KernelSpec("pe-gemm", "hand-written single-PE GEMM, B streamed from DRAM", False, _pe_gemm),
        KernelSpec("pe-softmax", "hand-written single-PE integer softmax", False, _pe_softmax),
    )
}


def select(name: str | None) -> list[KernelSpec]:
    """The default set (the compiled kernels), or the one named, or ``all``;
    ConfigError listing the names otherwise."""
    if not name:
        return [KERNELS[n] for n in DEFAULT]
    if name == "all":
        return list(KERNELS.values())
    if name not in KERNELS:
        raise ConfigError(f"unknown kernel {name!r}; kernels are: {', '.join(KERNELS)} (or all)")
    return [KERNELS[name]]
