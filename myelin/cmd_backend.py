"""``myelin bench kernel NAME`` and ``myelin backend``: compile and run back-end kernels.

``myelin bench kernel gemm --arch small --m 64 --k 256 --n 64 --on isa --json`` compiles
the kernel for the architecture, runs it on the executor and prints cycles,
roofline_cycles, utilization, bit_exact and compile_s.  ``myelin backend emit NAME
-o DIR`` writes the mapping IR, the pe_isa IR and one image directory per PE.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
        choices=("isa", "rtl"),
        default="isa",
        help="isa: chip reference simulator; rtl: RTL chip (later)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_bench)

    p = sub.add_parser("backend", help="back-end kernels: emit IR and program images")
    bsub = p.add_subparsers(dest="backend_cmd", metavar="CMD")
    e = bsub.add_parser("emit", help="write mapping IR, pe_isa IR and images of a kernel")
    _add_common(e)
    e.add_argument("-o", "--output", required=True, help="output directory")
    e.set_defaults(func=_emit)


def _shape(args: argparse.Namespace) -> dict:
    return {s: getattr(args, s) for s in _SHAPE_ARGS if getattr(args, s) is not None}


def _compile(args: argparse.Namespace):
    from compiler.backend.compile import compile_kernel
    from hw.arch import load_arch

    return compile_kernel(args.name, load_arch(args.arch), seed=args.seed, **_shape(args))


def executor_for(on: str):
    """The executor named ``on`` (the CLI may import sim/, the compiler may not)."""
    from compiler.backend.run import ChipSimExecutor, RtlExecutor

    if on == "rtl":
        return RtlExecutor()
    from sim.network import ChipSim

    return ChipSimExecutor(ChipSim)


def _bench(args: argparse.Namespace) -> int:
    from compiler.backend.run import execute

    executor = executor_for(args.on)
    if args.on == "rtl":
        executor.run(None)
    figures = execute(_compile(args), executor)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:<16}  {value}")
    return 0 if figures["bit_exact"] else 1


def _emit(args: argparse.Namespace) -> int:
    ck = _compile(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mapping.mlir").write_text(str(ck.mapped.kernel) + "\n")
    (out / "pe_isa.mlir").write_text("\n".join(str(p) for p in ck.programs) + "\n")
    for (x, y), image in ck.images.items():
        image.save(out / f"pe_{x}_{y}")
    print(f"wrote {len(ck.images)} images and the IR to {out}")
    return 0
