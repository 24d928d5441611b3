"""``myelin bench gemm`` and ``myelin bench cosim-speed`` (figures, JSON with --json)."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_gemm_args", "register"]


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    gemm = bench_sub.add_parser(
        "gemm",
        help="the hand-written GEMM split over every tile of the chip (scaling efficiency "
        "against one PE); --pe: the single-PE kernel",
    )
    add_gemm_args(gemm, "tiny", (64, 64, 256))
    gemm.add_argument(
        "--pe", action="store_true", help="run on one PE even when the preset has several tiles"
    )
    gemm.add_argument("--json", action="store_true", help="print one JSON object")
    gemm.set_defaults(func=_gemm)

    speed = bench_sub.add_parser(
        "cosim-speed",
        help="cycles/s of cocotb+Verilator, raw Verilator, Amaranth (the whole chip, "
        "without Amaranth, when the preset has more than one tile)",
    )
    speed.add_argument("--arch", default="tiny")
    speed.add_argument(
        "--reps", type=int, default=None, help="kernel runs per launch (default 5; chip: 3)"
    )
    speed.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating cosim / raw launches, the fastest run counts (default 3; chip: 2)",
    )
    speed.add_argument(
        "--amaranth-cycles",
        type=int,
        default=2000,
        help="cycles simulated by Amaranth's simulator (then extrapolated)",
    )
    speed.add_argument(
        "--pe", action="store_true", help="measure one PE even when the preset has several tiles"
    )
    speed.add_argument("--json", action="store_true")
    speed.set_defaults(func=_speed)


def add_gemm_args(p: argparse.ArgumentParser, arch: str, mnk: tuple[int, int, int]) -> None:
    """The options the GEMM benches share (``bench gemm``, ``bench chip-gemm``)."""
    p.add_argument("--arch", default=arch, help="preset name or TOML/JSON file")
    for name, default in zip(("--m", "--n", "--k"), mnk, strict=True):
        p.add_argument(name, type=int, default=default)
    p.add_argument(
        "--on",
        choices=("rtl", "isa"),
        default="rtl",
        help="rtl: cocotb + Verilator; isa: the reference simulator",
    )
    p.add_argument("--seed", type=int, default=0)


def _print(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


def _gemm(args: argparse.Namespace) -> int:
    from hw.arch import load_arch

    arch = load_arch(args.arch)
    if arch.tiles > 1 and not args.pe:
        from cosim.chip_bench import bench_chip_gemm

        figures = bench_chip_gemm(arch, args.m, args.n, args.k, on=args.on, seed=args.seed)
    else:
        from cosim.bench import bench_gemm

        figures = bench_gemm(arch, args.m, args.n, args.k, on=args.on, seed=args.seed)
    _print(figures, args.json)
    return 0 if figures["bit_exact"] else 1


def _speed(args: argparse.Namespace) -> int:
    from cosim.bench import bench_cosim_speed
    from hw.arch import load_arch

    figures = bench_cosim_speed(
        load_arch(args.arch),
        reps=args.reps,
        rounds=args.rounds,
        amaranth_cycles=args.amaranth_cycles,
        pe_only=args.pe,
    )
    _print(figures, args.json)
    return 0
