"""``myelin bench chip-gemm``, ``myelin bench chip-cosim-speed`` and ``myelin run-chip``."""

from __future__ import annotations

import argparse
import json

from myelin.cmd_bench import add_gemm_args

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    gemm = bench_sub.add_parser(
        "chip-gemm", help="GEMM split over every PE of the chip: cycles, scaling efficiency"
    )
    add_gemm_args(gemm, "small", (256, 256, 256))
    gemm.add_argument(
        "--no-baseline", action="store_true", help="skip the 1-PE run (no scaling_efficiency)"
    )
    gemm.add_argument("--json", action="store_true", help="print one JSON object")
    gemm.set_defaults(func=_gemm)

    speed = bench_sub.add_parser(
        "chip-cosim-speed", help="cycles/s of the whole chip: cocotb+Verilator vs raw Verilator"
    )
    speed.add_argument("--arch", default="small")
    speed.add_argument("--k", type=int, default=256)
    speed.add_argument("--reps", type=int, default=3, help="kernel runs per launch")
    speed.add_argument("--rounds", type=int, default=2)
    speed.add_argument("--json", action="store_true")
    speed.set_defaults(func=_speed)

    run = sub.add_parser("run-chip", help="run one program image per PE on the RTL chip")
    run.add_argument(
        "images",
        nargs="+",
        metavar="X,Y=DIR",
        help="PE coordinates and a program image directory (hw.image)",
    )
    run.add_argument("--arch", default="tiny")
    run.add_argument("--max-cycles", type=int, default=1_000_000)
    run.set_defaults(func=_run)


def _print(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


def _gemm(args: argparse.Namespace) -> int:
    from cosim.chip_bench import bench_chip_gemm
    from hw.arch import load_arch

    fig = bench_chip_gemm(
        load_arch(args.arch),
        args.m,
        args.n,
        args.k,
        on=args.on,
        seed=args.seed,
        baseline=not args.no_baseline,
    )
    _print(fig, args.json)
    return 0 if fig["bit_exact"] and fig["same_as_chipsim"] else 1


def _speed(args: argparse.Namespace) -> int:
    from cosim.chip_bench import bench_chip_cosim_speed
    from hw.arch import load_arch

    fig = bench_chip_cosim_speed(load_arch(args.arch), k=args.k, reps=args.reps, rounds=args.rounds)
    _print(fig, args.json)
    return 0


def _run(args: argparse.Namespace) -> int:
    from cosim.chip_driver import run_chip_programs
    from cosim.harness import Status
    from hw.arch import load_arch
    from hw.image import ProgramImage

    arch = load_arch(args.arch)
    images = {}
    for spec in args.images:
        where, _, path = spec.partition("=")
        x, y = (int(v) for v in where.split(","))
        images[(x, y)] = ProgramImage.load(path)
    out, _ = run_chip_programs(
        arch,
        [{"images": images, "max_cycles": args.max_cycles}],
        name="run-chip",
        sram_dump=0,
        checked=False,
    )
    run = out[0]
    print(f"status {Status(run['status']).name}, {run['cycles']} cycles")
    for msg in run["errors"]:
        print(msg)
    return 0 if run["status"] == Status.HALTED else 1
