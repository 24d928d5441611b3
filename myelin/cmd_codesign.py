"""``myelin bench codesign``: the kernel set on several architectures, side by side.

``myelin bench codesign [--archs small,small-8x8mac,small-32k,tiny] [--perf] [--json]``
(also ``small-2x2`` and ``small-blocking``: decoupled units off)
compiles every kernel of compiler.backend.codesign.KERNEL_SET for every arch, runs it
on the chip reference simulator (bit-exact check) and, with ``--perf``, on the
performance model (sim/perf.py) for timed cycles; prints one row per kernel and arch
with the mapping the compiler chose (PE grid, MAC tile, resident/streamed operands).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("codesign", help="kernel set x architectures: mapping and figures")
    p.add_argument("--archs", default="small,small-8x8mac,small-32k,tiny")
    p.add_argument("--perf", action="store_true", help="also time on the performance model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_codesign)


def perf_cycles(ck) -> int:
    """Cycles of the compiled images on the performance model."""
    from sim.perf import PerfSim

    sim = PerfSim(ck.arch)
    for coords, image in ck.images.items():
        sim.load(coords, image)
    return sim.run().cycles


def _codesign(args: argparse.Namespace) -> int:
    from compiler.backend.codesign import sweep
    from compiler.backend.run import ChipSimExecutor
    from sim.network import ChipSim

    archs = [a for a in args.archs.split(",") if a]
    rows = sweep(ChipSimExecutor(ChipSim), archs, perf_cycles if args.perf else None)
    if args.json:
        print(json.dumps(rows))
    else:
        head = ["kernel", "arch", "grid", "mac", "pes", "operands/schedule", "cycles"]
        head += ["timed", "roofline", "bound", "exact"]
        print("  ".join(f"{h:<14}" for h in head))
        for r in rows:
            mode = r.get("operands") or r.get("schedule")
            if "weights" in r:  # the MLP's weight split
                mode = f"weight split, {r['weights']}"
            cells = [r["kernel"], r["arch"], r["grid"], r["mac"], r["pes"], mode, r["cycles"]]
            cells += [r.get("timed_cycles", "-"), r["roofline_cycles"], r["bound_cycles"]]
            cells.append(r["bit_exact"])
            print("  ".join(f"{str(c):<14}" for c in cells))
    return 0 if all(r["bit_exact"] for r in rows) else 1
