"""``myelin bench kernel NAME`` and ``myelin backend``: compile and run back-end kernels.

``myelin bench kernel gemm --arch small --m 64 --k 256 --n 64 --on isa --json`` compiles
the kernel for the architecture, runs it on the executor and prints cycles,
roofline_cycles, utilization, bit_exact and compile_s.  ``myelin backend emit NAME
-o DIR`` writes a compiled program directory (compiler/backend/progdir.py: one image
directory per PE, the DRAM map, the reference outputs, the mapping and pe_isa IR);
``myelin run DIR --on isa|rtl`` (myelin/cmd_run.py) runs it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hw.errors import MyelinError

__all__ = ["register"]

_SHAPE_ARGS = ("m", "k", "n", "d", "hidden", "seq", "cin", "cout", "h", "w", "kh", "relu")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="kernel: gemm, mlp, conv2d, attention")
    p.add_argument("--arch", default="small", help="preset name or TOML/JSON file")
    for s in _SHAPE_ARGS:
        p.add_argument(f"--{s}", type=int, default=None, help=f"shape parameter {s}")
    p.add_argument("--seed", type=int, default=0)


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("kernel", help="compile and run a back-end kernel; figures")
    _add_common(p)
    p.add_argument(
        "--on",
        choices=("isa", "perf", "rtl"),
        default="isa",
        help="isa: chip reference simulator (cycles estimated); perf: performance model "
        "(cycles modelled); rtl: RTL chip (measured)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_bench)

    p = sub.add_parser("backend", help="back-end kernels: emit IR and program images")
    bsub = p.add_subparsers(dest="backend_cmd", metavar="CMD")
    e = bsub.add_parser("emit", help="write mapping IR, pe_isa IR and images of a kernel")
    _add_common(e)
    e.add_argument("-o", "--output", required=True, help="output directory")
    e.set_defaults(func=_emit)

    from myelin.cmd_run import install

    install(sub)  # ``myelin run OUT_DIR``: compiled program directories


def _shape(args: argparse.Namespace) -> dict:
    """The shape options given, over the kernel's `make cosim` shape on ``--arch``
    (so `myelin bench kernel gemm --arch small` measures the benchmark's GEMM)."""
    from cosim.kernel_set import default_shape
    from hw.arch import load_arch

    given = {s: getattr(args, s) for s in _SHAPE_ARGS if getattr(args, s) is not None}
    return {**default_shape(args.name, load_arch(args.arch)), **given}


def _compile(args: argparse.Namespace):
    from compiler.backend.compile import compile_kernel
    from hw.arch import load_arch

    return compile_kernel(args.name, load_arch(args.arch), seed=args.seed, **_shape(args))


def executor_for(on: str, *, stress: list[int] | None = None, job: str = "rtl"):
    """The executor named ``on`` (the CLI may import sim/ and cosim/, the compiler may
    not: the chip class / chip runner are injected here)."""
    from compiler.backend.run import ChipSimExecutor, RtlExecutor

    if on == "rtl":
        from cosim.chip_driver import run_chip_programs

        return RtlExecutor(run_chip_programs, stress=stress, job=job)
    if stress:
        raise MyelinError("--stress needs --on rtl (the simulators have no DRAM stress mode)")
    if on == "perf":
        from compiler.backend.run import PerfExecutor
        from sim.perf import PerfSim

        return PerfExecutor(PerfSim)
    from sim.network import ChipSim

    return ChipSimExecutor(ChipSim)


def _bench(args: argparse.Namespace) -> int:
    from compiler.backend.run import execute

    executor = executor_for(args.on, job=f"bench-{args.name}")
    figures = execute(_compile(args), executor)
    figures = {"kernel": figures["kernel"], "shape": _shape(args), **figures}
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:<16}  {value}")
    return 0 if figures["bit_exact"] else 1


def _emit(args: argparse.Namespace) -> int:
    from compiler.backend.progdir import save_program

    ck = _compile(args)
    out = Path(args.output)
    save_program(ck, out, shape=_shape(args), seed=args.seed)
    (out / "mapping.mlir").write_text(str(ck.mapped.kernel) + "\n")
    (out / "pe_isa.mlir").write_text("\n".join(str(p) for p in ck.programs) + "\n")
    print(
        f"wrote {len(ck.images)} images, the IR and the reference outputs to {out} "
        f"(run it with `myelin run {out} --on isa|rtl`)"
    )
    return 0
