"""The ``myelin`` command.

Each area of the project contributes its subcommands through a ``register``
function (``register(subparsers)``) listed in ``_AREAS``; this keeps the CLI in
one place without making it import the world at start-up.  Errors of the
project's own type (:class:`hw.errors.MyelinError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hw.errors import MyelinError

# module path -> its ``register(subparsers, bench_subparsers)`` function
_AREAS = [
    "myelin.cmd_pe",
    "myelin.cmd_cosim",
    "myelin.cmd_hw",
    "myelin.cmd_compiler",
    "myelin.cmd_graph",
    "myelin.cmd_backend",
    "myelin.cmd_codesign",
    "myelin.cmd_bench",
    "myelin.cmd_chip",
    "myelin.cmd_perf",
    "myelin.cmd_noc",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="myelin",
        description="Myelin: hardware/software co-design for SpiNNaker2-style accelerators",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser("bench", help="benchmarks that print figures (JSON with --json)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH")
    for name in _AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub, bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except MyelinError as exc:
        print(f"myelin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("myelin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
