"""``myelin run OUT_DIR --on isa|rtl [--json]``: run a compiled program directory.

A compiled program directory (``myelin backend emit NAME -o OUT_DIR``, see
compiler/backend/progdir.py) holds one program image per PE, the DRAM map and the
numpy reference of every output.  ``--on isa`` runs it on the chip reference
simulator (sim.network.ChipSim, cycles estimated), ``--on rtl`` on the RTL chip
through cocotb + Verilator (cycles measured); ``--stress SEEDS`` (rtl) repeats the
run with randomized DRAM latency and back-pressure per seed.  The outputs are
compared with the reference bit for bit; the exit status is 1 if any differs.

``myelin run`` of a single-PE image or assembly file stays the PE command
(myelin/cmd_pe.py): :func:`install` makes the ``run`` parser dispatch on the
directory's content.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hw.errors import ConfigError

__all__ = ["install", "is_program_dir", "parse_seeds", "run_compiled"]


def is_program_dir(path: str) -> bool:
    return (Path(path) / "program.json").is_file()


def parse_seeds(text: str | None) -> list[int] | None:
    """``"1,2,7"`` or ``"1-4"`` (or a mix) -> [1, 2, 7] / [1, 2, 3, 4]; None -> None."""
    if not text:
        return None
    seeds = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
        except ValueError:
            raise ConfigError(f"--stress must look like 1,2,3 or 1-8, not {text!r}") from None
    return seeds


def install(sub: argparse._SubParsersAction) -> None:
    """Let the existing ``myelin run`` parser (cmd_pe) also run compiled directories."""
    run = sub.choices.get("run")
    if run is None:
        run = sub.add_parser("run", help="run a compiled program directory")
        run.add_argument("program", help="compiled program directory")
        run.add_argument("--on", choices=("isa", "perf", "rtl"), default="isa")
        run.add_argument("--json", action="store_true")
        pe_run = None
    else:
        pe_run = run.get_default("func")
    run.add_argument(
        "--stress",
        default=None,
        metavar="SEEDS",
        help="compiled program on rtl: rerun with randomized DRAM timing per seed (1,2 or 1-8)",
    )

    def dispatch(args: argparse.Namespace) -> int:
        d = Path(args.program)
        if is_program_dir(args.program) or (d.is_dir() and not (d / "manifest.json").exists()):
            return run_compiled(args)  # not a PE image directory: explain what is expected
        if pe_run is None:
            raise ConfigError(f"{args.program!r} is not a compiled program directory")
        return pe_run(args)

    run.set_defaults(func=dispatch)


def run_compiled(args: argparse.Namespace) -> int:
    from compiler.backend.progdir import load_program
    from compiler.backend.run import figures
    from myelin.cmd_backend import executor_for

    ck = load_program(args.program)
    seeds = parse_seeds(getattr(args, "stress", None))
    executor = executor_for(args.on, stress=seeds, job=f"run-{ck.name}")
    if args.on == "rtl":
        results = executor.run_many([ck])
    else:
        results = [executor.run(ck)]
    rows = [figures(ck, res, args.on) for res in results]
    for row in rows:
        row.pop("plan", None)
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else {"runs": rows}))
    else:
        for row in rows:
            seed = f" (stress seed {row['stress_seed']})" if "stress_seed" in row else ""
            how = "measured" if row["cycles_measured"] else "estimated"
            how = "modelled" if args.on == "perf" else how
            print(
                f"{ck.name} on {args.on}{seed}: {row['cycles']} cycles "
                f"({how}), roofline "
                f"{row['roofline_cycles']}, utilization {row['utilization']:.3f}, "
                f"{row['pes']} PEs, bit-exact: {'yes' if row['bit_exact'] else 'NO'}"
            )
    return 0 if all(r["bit_exact"] for r in rows) else 1
