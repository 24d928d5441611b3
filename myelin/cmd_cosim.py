"""``myelin cosim``: run the kernel set on the RTL (cocotb + Verilator) and report.

This is what ``make cosim`` runs.  For each kernel it builds the program image,
runs it on the RTL and on the reference simulator, and prints a table: kernel,
shape, PEs used, cycles, roofline lower-bound cycles, MAC utilization and whether
the RTL result is bit-exact (against numpy and against the reference simulator).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from hw.arch import load_arch
from hw.errors import SimulationError


def register(sub, bench_sub) -> None:
    p = sub.add_parser("cosim", help="run the kernel set on the RTL and print a table")
    p.add_argument("--arch", default="small", help="preset name or config file")
    p.add_argument("--kernel", default=None, help="run only this kernel")
    p.add_argument("--on", choices=("rtl", "isa"), default="rtl", help="executor")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_cosim)


def _run_one(arch, run, on: str) -> dict:
    from sim.pe_sim import PeSim

    ref = PeSim(arch)
    ref.load(run.image)
    res = ref.run(10**8)
    if not res.halted:
        raise SimulationError(
            f"kernel {run.name} on the reference simulator: {res.status} "
            f"{res.error.name} at pc {res.error_pc}: {res.error_msg}"
        )
    row = {
        "kernel": run.name,
        "shape": run.shape,
        "pes": run.pes,
        "roofline_cycles": run.roofline_cycles,
    }
    if on == "isa":
        cycles, sram, agree = res.cycles, ref.sram, True
    else:
        from cosim.harness import Status
        from cosim.runner import run_pe_programs
        from hw.isa import PeError

        runs, _ = run_pe_programs(
            arch, [run.image], max_cycles=run.max_cycles, name=f"cosim-{run.name}"
        )
        out = runs[0]
        if out.get("hang") or out.get("status") != Status.HALTED:
            why = out.get("hang") or f"error {PeError(out.get('error', 0)).name}"
            raise SimulationError(
                f"kernel {run.name} on RTL did not halt: {why} "
                f"(pc {out.get('pc')}, status {out.get('status')})"
            )
        cycles, sram = int(out["cycles"]), out["sram"]
        agree = bool((sram[: arch.sram_bytes] == ref.sram).all())
    row.update(
        cycles=int(cycles),
        utilization=round(run.macs / (cycles * arch.macs_per_cycle * run.pes), 4)
        if run.macs
        else None,
        bit_exact=run.check(sram) and agree,
    )
    return row


def cmd_cosim(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from cosim.kernel_set import select

    arch = load_arch(args.arch)
    specs = select(args.kernel)
    rows = []
    width = max(110, shutil.get_terminal_size((110, 24)).columns)
    console = Console(stderr=args.json, width=width)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"cosim on {arch.name}", total=len(specs))
        for spec in specs:
            progress.update(task, description=f"{spec.name}: building and running on {args.on}")
            t0 = time.monotonic()
            row = _run_one(arch, spec.build(arch), args.on)
            row["wall_s"] = round(time.monotonic() - t0, 1)
            rows.append(row)
            progress.advance(task)
    if args.json:
        print(json.dumps({"arch": arch.name, "on": args.on, "kernels": rows}, indent=2))
    else:
        table = Table(title=f"Myelin kernels on {args.on.upper()} - arch {arch.name}")
        for col in (
            "kernel",
            "shape",
            "PEs",
            "cycles",
            "roofline",
            "MAC util.",
            "bit-exact",
            "wall s",
        ):
            table.add_column(col, justify="right" if col not in ("kernel", "shape") else "left")
        for r in rows:
            util = "-" if r["utilization"] is None else f"{r['utilization']:.3f}"
            table.add_row(
                r["kernel"],
                r["shape"],
                str(r["pes"]),
                str(r["cycles"]),
                str(r["roofline_cycles"]),
                util,
                "yes" if r["bit_exact"] else "NO",
                str(r["wall_s"]),
            )
        console.print(table)
    return 0 if all(r["bit_exact"] for r in rows) else 1
