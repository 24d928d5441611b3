"""End-to-end compilation of a model (used by the CLI, the benchmark and tests)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from compiler.calibration import load_samples, set_samples
from compiler.errors import QuantizeError
from compiler.frontend.onnx_import import import_onnx
from compiler.ir import module_text
from compiler.pipeline import (
    GRAPH_PIPELINE,
    LOWER_PIPELINE,
    QUANT_PIPELINE,
    parse_passes,
    run_pipeline,
)
from compiler.store import ConstantStore, store_of


@dataclass
class CompileResult:
    module: ModuleOp
    times: dict[str, float] = field(default_factory=dict)

    @property
    def store(self) -> ConstantStore:
        return store_of(self.module)

    def write(self, folder: Path) -> None:
        (folder / "model.mlir").write_text(module_text(self.module))
        self.store.save(folder / "weights.npz")


def compile_model(
    model,
    arch: str = "small",
    until: str = "graph",
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dim_params: Mapping[str, int] | None = None,
    calibration: str | Sequence[dict] | None = None,
    print_after_all: bool = False,
    quant_options: str = "",
) -> CompileResult:
    """Import and run the graph (and quantization) pipelines, then layout and padding.

    ``quant_options`` are options of the quantize pass, space-separated, e.g.
    ``"mac-input-bits=16 wide-headroom=2.0"``.
    """
    times = {}
    start = time.perf_counter()
    module = import_onnx(model, input_shapes, dim_params)
    times["import"] = time.perf_counter() - start
    graph = run_pipeline(module, parse_passes(GRAPH_PIPELINE, arch), print_after_all)
    times["graph_passes"] = graph.total()
    if until == "quantized":
        if calibration is None:
            raise QuantizeError(
                "--until quantized needs --calibration FILE.npz "
                "(one array per model input, axis 0 indexes samples)"
            )
        samples = (
            load_samples(calibration) if isinstance(calibration, (str, Path)) else list(calibration)
        )
        set_samples(module, samples)
        spec = [
            f"quantize{{{quant_options}}}" if quant_options else "quantize",
            *QUANT_PIPELINE[1:],
        ]
        quant = run_pipeline(module, parse_passes(spec, arch), print_after_all)
        times["quantization"] = quant.total()
    lower = run_pipeline(module, parse_passes(LOWER_PIPELINE, arch), print_after_all)
    times["layout_and_padding"] = lower.total()
    return CompileResult(module, times)


def bench_minilm(batch: int = 1, seq: int = 128, arch: str = "small") -> dict:
    """Compile times of all-MiniLM-L6-v2 through the quantized pipeline."""
    from compiler.models.minilm import build_minilm, calibration_batch

    start = time.perf_counter()
    model = build_minilm(batch, seq)
    build = time.perf_counter() - start
    result = compile_model(
        model, arch=arch, until="quantized", calibration=[calibration_batch(batch, seq)]
    )
    times = {k: round(v, 3) for k, v in result.times.items()}
    return {
        "model": "all-MiniLM-L6-v2",
        "batch": batch,
        "seq": seq,
        "arch": arch,
        "build_onnx_s": round(build, 3),
        **{f"{k}_s": v for k, v in times.items()},
        "front_middle_total_s": round(sum(result.times.values()), 3),
        "float_ops_left": len(result.module.attributes["myelin.float_ops"].data),  # type: ignore[attr-defined]
        "constants": len(result.store),
        "constant_bytes": result.store.nbytes(),
    }
