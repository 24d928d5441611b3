"""``myelin compile``, ``myelin opt`` and ``myelin bench compile``.

compile: ONNX -> graph IR (``--until graph``) or integer-only quantized IR
(``--until quantized``, needs ``--calibration FILE.npz``); writes ``model.mlir`` and
``weights.npz`` (the constant store) to the output folder.
opt: xdsl-opt-style driver over Myelin's dialects and passes (MLIR text in and out).
bench compile: times of import, graph passes and quantization for a named model.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see compiler/__init__.py

from hw.errors import MyelinError  # noqa: E402


def _shapes(items: list[str]) -> dict[str, list[int]]:
    out = {}
    for item in items or []:
        name, _, dims = item.partition("=")
        try:
            out[name] = [int(d) for d in dims.split(",") if d]
        except ValueError:
            raise MyelinError(f"--input-shape {item!r} must look like NAME=1,128") from None
    return out


def _dims(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items or []:
        name, _, size = item.partition("=")
        if not size.isdigit():
            raise MyelinError(f"--dim {item!r} must look like NAME=SIZE")
        out[name] = int(size)
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    from compiler.driver import compile_model
    from hw.arch import load_arch

    load_arch(args.arch)  # validate early
    result = compile_model(
        args.model,
        arch=args.arch,
        until=args.until,
        input_shapes=_shapes(args.input_shape),
        dim_params=_dims(args.dim),
        calibration=args.calibration,
        print_after_all=args.print_after_all,
        quant_options=args.quant_options or "",
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    result.write(out)
    print(
        f"wrote {out / 'model.mlir'} and {out / 'weights.npz'} "
        f"({len(result.store)} constants, {result.store.nbytes()} bytes)"
    )
    return 0


def cmd_opt(args: argparse.Namespace) -> int:
    from compiler.ir import module_text, parse_module
    from compiler.pipeline import parse_passes, run_pipeline
    from compiler.store import ConstantStore, attach

    text = sys.stdin.read() if args.input == "-" else _read(args.input)
    chunks = text.split("// -----") if args.split_input_file else [text]
    outputs, failed = [], False
    for chunk in chunks:
        try:
            module = parse_module(chunk, args.input)
            if args.weights:
                attach(module, ConstantStore.load(args.weights))
            passes = parse_passes(args.passes or "", arch=args.arch)
            run_pipeline(module, passes, print_after_all=args.print_after_all)
            outputs.append(module_text(module))
        except MyelinError as exc:
            if not args.split_input_file:
                raise
            print(f"myelin: error: {exc}", file=sys.stderr)
            failed = True
    text = "// -----\n".join(outputs)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 2 if failed else 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise MyelinError(f"cannot read {path!r}: {exc.strerror}") from None


def cmd_bench_compile(args: argparse.Namespace) -> int:
    import json

    from compiler.driver import bench_minilm

    if args.model != "minilm":
        raise MyelinError(f"unknown benchmark model {args.model!r}; models are: minilm")
    report = bench_minilm(batch=args.batch, seq=args.seq, arch=args.arch)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:28s} {value}")
    return 0


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    """Add ``compile``, ``opt`` and ``bench compile`` to the myelin command."""
    p = sub.add_parser("compile", help="compile an ONNX model to graph or quantized IR")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--arch", default="small", help="preset name or .toml/.json file")
    p.add_argument("--until", choices=["graph", "quantized"], default="graph")
    p.add_argument("--calibration", help=".npz with one array per input (axis 0 = samples)")
    p.add_argument(
        "--quant-options", metavar="OPTS", help="quantize pass options, e.g. mac-input-bits=16"
    )
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    p.add_argument("--dim", action="append", metavar="NAME=SIZE", help="size of a dim_param")
    p.add_argument("--print-after-all", action="store_true", help="print IR after each pass")
    p.add_argument("-o", "--output", default="out", help="output folder")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("opt", help="run passes over MLIR text (xdsl-opt style)")
    p.add_argument("input", help="MLIR file, or - for stdin")
    p.add_argument("-p", "--passes", help="comma-separated passes, e.g. fold-constants,dce")
    p.add_argument("--arch", default=None, help="arch preset given to every pass")
    p.add_argument("--weights", help="constant store (.npz) for graph.weight refs")
    p.add_argument("--print-after-all", action="store_true")
    p.add_argument(
        "--split-input-file",
        action="store_true",
        help="process chunks separated by '// -----' independently",
    )
    p.add_argument("-o", "--output", help="output file (default stdout)")
    p.set_defaults(func=cmd_opt)

    b = bench_sub.add_parser("compile", help="front+middle end compile times")
    b.add_argument("--model", default="minilm")
    b.add_argument("--arch", default="small")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--seq", type=int, default=128)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_compile)
