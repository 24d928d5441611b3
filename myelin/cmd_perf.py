"""``myelin perf``: the performance model on a directory of per-PE program images,
and ``myelin bench perf-calibration``: model cycles against RTL cycles per kernel.

Image directory convention (sim/perf_programs.py): ``pe_<x>_<y>/`` image
directories (what ``myelin backend emit`` writes), ``chip_<cx>_<cy>/pe_<x>_<y>/``
for boards, or a single image directory (one PE at (0, 0)).
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perf", help="cycle timing of per-PE images on the performance model")
    p.add_argument("images", help="directory of pe_<x>_<y>/ image directories (or one image)")
    p.add_argument("--arch", default="s2chip", help="preset name or TOML/JSON file")
    p.add_argument("--hop-latency", type=int, default=2, help="cycles per router hop")
    p.add_argument(
        "--standin",
        action="store_true",
        help="one PE on the cosim network stand-in (as calibrated against RTL)",
    )
    p.add_argument(
        "--dram-bytes",
        type=int,
        default=None,
        help="simulated DRAM bytes per port (default: the architecture's)",
    )
    p.add_argument("--per-pe", action="store_true", help="include per-PE figures")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_perf)

    c = bench_sub.add_parser(
        "perf-calibration", help="performance model vs RTL cycles per kernel (runs the RTL)"
    )
    c.add_argument("--arch", default="tiny")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_calibration)


def run_perf(
    arch,
    images: dict,
    *,
    hop_latency: int = 2,
    standin: bool = False,
    dram_bytes: int | None = None,
):
    """Run ``{(cx, cy, x, y): image}`` on a PerfSim; returns the PerfResult."""
    from sim.perf import PerfSim

    sim = PerfSim(arch, hop_latency=hop_latency, standin=standin, dram_bytes=dram_bytes)
    for (cx, cy, x, y), image in sorted(images.items()):
        sim.load((x, y), image, chip=(cx, cy))
    return sim.run()


def _perf(args: argparse.Namespace) -> int:
    from hw.arch import load_arch
    from sim.perf_programs import load_image_dir

    arch = load_arch(args.arch)
    res = run_perf(
        arch,
        load_image_dir(args.images),
        hop_latency=args.hop_latency,
        standin=args.standin,
        dram_bytes=args.dram_bytes,
    )
    fig = res.to_dict()
    if not args.per_pe:
        fig.pop("pes")
    fig["pes_loaded"] = len(res.per_pe)
    fig["microseconds"] = round(res.cycles / arch.clock_mhz, 3)
    _print(fig, args.json)
    return 0


def calibration_records(arch) -> list:
    """(image, rtl_cycles) of the GEMM and softmax kernels, run on the RTL PE."""
    from cosim.kernels.gemm import gemm_case
    from cosim.kernels.softmax import softmax_case
    from cosim.runner import run_pe_programs
    from hw.errors import SimulationError

    images = [
        gemm_case(arch, 16, 32, 64).image,
        gemm_case(arch, 8, 48, 128).image,
        gemm_case(arch, 64, 64, 256).image,
        softmax_case(arch, 4, 64).image,
        softmax_case(arch, 8, 128).image,
    ]
    runs, _ = run_pe_programs(arch, images, max_cycles=400_000, name="perf_calibration", dump=False)
    records = []
    for img, run in zip(images, runs, strict=True):
        if "hang" in run or run.get("status") != 1:
            raise SimulationError(f"{img.name} on RTL did not halt: {run}")
        records.append((img, int(run["cycles"])))
    return records


def _calibration(args: argparse.Namespace) -> int:
    from hw.arch import load_arch
    from sim.perf import calibrate

    arch = load_arch(args.arch)
    report = calibrate(calibration_records(arch), arch)
    if args.json:
        print(json.dumps(report))
    else:
        for row in report["kernels"]:
            print(
                f"{row['name']:<20} model {row['model_cycles']:>8}  rtl {row['rtl_cycles']:>8}"
                f"  error {100 * row['error']:+.2f} %"
            )
        print(f"max |error| {100 * report['max_abs_error']:.2f} %")
    return 0 if report["max_abs_error"] <= 0.10 else 1


def _print(fig: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(fig))
        return
    width = max(len(k) for k in fig)
    for key, value in fig.items():
        print(f"{key:<{width}}  {value}")
