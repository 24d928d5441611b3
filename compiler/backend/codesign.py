"""Co-design sweep: the back end's kernel set compiled for several architectures.

``KERNEL_SET`` is the default kernels (int8 GEMM, conv2d, an MLP block - with the
standard templates and with the chain templates (``mlp-chain``: weights broadcast in
parts, blocked transpose) -, one attention head with the back end's softmax, and the
front end's attention head with its qnt.softmax) at fixed shapes; ``ARCHS`` the
architectures of the sweep: ``small``
(4 x 4 PEs, 4 x 16 MAC array, 128 KiB SRAM), the same with an 8 x 8 MAC array, the
same with 32 KiB SRAM, and ``tiny`` (2 x 2 PEs).  :func:`sweep` compiles every kernel
for every arch, runs it on the given executor (bit-exact check against the numpy /
interpreter reference) and reports how the mapping adapted: PE grid, MAC tile,
per-PE tiles, resident or streamed operands and the GEMM schedule.
"""

from __future__ import annotations

from collections.abc import Callable

from compiler.backend import mlp
from compiler.backend.chain_emit import compile_mapped
from compiler.backend.compile import CompiledKernel, compile_kernel
from compiler.backend.qattention import compile_qattention, qattention_inputs
from compiler.backend.run import Executor, execute, roofline
from hw.arch import preset

__all__ = [
    "ARCHS",
    "KERNEL_SET",
    "arch_variant",
    "compile_mlp_chain",
    "compile_set",
    "mapping_summary",
    "sweep",
]

KERNEL_SET: list[tuple[str, dict]] = [
    ("gemm", {"m": 128, "k": 256, "n": 128}),
    ("conv2d", {"cin": 16, "cout": 32, "h": 12, "w": 12, "kh": 3, "pad": 1}),
    ("mlp", {"m": 64, "d": 256, "hidden": 256, "n": 64}),
    ("mlp-chain", {"m": 64, "d": 256, "hidden": 256, "n": 64}),
    ("attention", {"seq": 64, "d": 32}),
    ("qattention", {"m": 32, "n": 64, "d": 32, "dv": 32}),
]


def arch_variant(name: str):
    """An arch of the sweep by name: a preset, or ``small-8x8mac`` / ``small-32k`` /
    ``small-2x2`` / ``small-blocking`` (the small preset with one parameter changed;
    ``small-blocking``: a controller that waits for every MAC and vector command)."""
    small = preset("small")
    variants = {
        "small-8x8mac": dict(mac_rows=8, mac_cols=8),
        "small-32k": dict(sram_bytes=32768),
        "small-2x2": dict(mesh_cols=2, mesh_rows=2),
        "small-blocking": dict(async_units=False),
    }
    if name in variants:
        return small.replace(name=name, **variants[name])
    return preset(name)


ARCHS = ["small", "small-8x8mac", "small-32k", "tiny"]


def compile_mlp_chain(arch, seed: int, m: int, d: int, hidden: int, n: int) -> CompiledKernel:
    """The MLP block with the chain templates (mlp.map_mlp ``fast``)."""
    t = mlp.mlp_inputs(m, d, hidden, n, seed)
    return compile_mapped(
        "mlp-chain",
        arch,
        lambda parts: mlp.map_mlp(arch, t, "mlp_chain", fast=True, parts=parts),
        t,
        {"Y": mlp.mlp_reference(t)},
        m * d * hidden + m * hidden * n,
        parts=16,
    )


def _compile(name: str, arch, seed: int, shape: dict) -> CompiledKernel:
    if name == "qattention":
        return compile_qattention(arch, qattention_inputs(seed=seed, **shape))
    if name == "mlp-chain":
        return compile_mlp_chain(arch, seed, **shape)
    return compile_kernel(name, arch, seed=seed, **shape)


def compile_set(arch, seed: int = 0, kernels=None) -> list[CompiledKernel]:
    return [_compile(n, arch, seed, s) for n, s in (kernels or KERNEL_SET)]


def mapping_summary(ck: CompiledKernel) -> dict:
    """What the mapping chose for this arch."""
    p = ck.plan
    out = {"grid": p.get("grid"), "mac": [p.get("R"), p.get("C")], "pes": len(ck.images)}
    out["tiles_per_pe"] = p.get("tiles_per_pe")
    if "split" in p:  # the MLP: weights or tokens split over the PEs
        out["split"] = p["split"]
    if "weights" in p:  # the weight split: its weight tiles resident or streamed
        out["weights"] = p["weights"]
    if "operands" in p:
        out["operands"] = {k: v["mode"] for k, v in p["operands"].items()}
        out["stream_blocks"] = {
            k: [v["blocks"], v["block_bytes"]]
            for k, v in p["operands"].items()
            if v["mode"] == "streamed"
        }
    else:
        out["schedule"] = p.get("mode")
        out["k_chunk"] = p.get("kc")
    return out


def sweep(
    executor: Executor,
    archs: list[str] | None = None,
    timing: Callable[[CompiledKernel], int] | None = None,
    kernels=None,
) -> list[dict]:
    """One row per (kernel, arch): figures of ``execute`` plus the mapping summary;
    ``timing(ck)`` (e.g. the performance model) adds ``timed_cycles``."""
    rows = []
    for name in archs or ARCHS:
        arch = arch_variant(name)
        kset = kernels or KERNEL_SET
        for (kernel, shape), ck in zip(kset, compile_set(arch, kernels=kset), strict=True):
            fig = execute(ck, executor)
            roof = roofline(ck)
            row = {
                "kernel": kernel,
                "shape": shape,
                "arch": name,
                "bit_exact": fig["bit_exact"],
                "cycles": fig["cycles"],
                "roofline_cycles": fig["roofline_cycles"],
                # compute and compulsory DRAM only: independent of the schedule's NoC use
                "bound_cycles": round(max(roof["compute"], roof["dram"]), 1),
                "compile_s": round(ck.compile_s, 3),
                **mapping_summary(ck),
            }
            if timing is not None:
                row["timed_cycles"] = int(timing(ck))
                row["timed_ratio"] = round(row["timed_cycles"] / row["bound_cycles"], 2)
            row["nowait"] = ck.plan.get("overlap", {}).get("nowait", 0)
            rows.append(row)
    return rows
