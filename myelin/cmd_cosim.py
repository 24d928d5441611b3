"""``myelin cosim``: run the kernel set on the RTL chip (cocotb + Verilator) and report.

This is what ``make cosim`` runs.  The default set is the back end's compiled
multi-PE kernels (cosim/kernel_set.py: GEMM, conv2d, MLP block, attention head),
each compiled for ``--arch`` with its default shape, run on the RTL chip
(``compiler.backend.run.RtlExecutor``; ``--on isa``: the chip reference simulator)
and compared with its numpy reference bit for bit.  The table: kernel, shape, PEs
used, cycles (measured on RTL), the performance model's cycles (sim/perf.py) and its
error, roofline lower-bound cycles, their ratio, MAC
utilization, bit-exact, compile and wall seconds.  ``--stress SEEDS`` reruns every
kernel with randomized DRAM timing per seed (cosim/dram.py).  The hand-written
single-PE kernels run with ``--kernel pe-gemm`` / ``pe-softmax`` (or ``all``).
Exit status 1 if any kernel is not bit-exact.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from hw.arch import load_arch
from hw.errors import MyelinError, SimulationError


def register(sub, bench_sub) -> None:
    p = sub.add_parser("cosim", help="run the kernel set on the RTL and print a table")
    p.add_argument("--arch", default="small", help="preset name or config file")
    p.add_argument("--kernel", default=None, help="run only this kernel (or 'all')")
    p.add_argument("--on", choices=("rtl", "perf", "isa"), default="rtl", help="executor")
    p.add_argument(
        "--stress", default=None, metavar="SEEDS", help="rtl: randomized DRAM timing seeds"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_cosim)


def _run_handwritten(arch, run, on: str) -> dict:
    from sim.pe_sim import PeSim

    ref = PeSim(arch)
    ref.load(run.image)
    res = ref.run(10**8)
    if not res.halted:
        raise SimulationError(
            f"kernel {run.name} on the reference simulator: {res.status} "
            f"{res.error.name} at pc {res.error_pc}: {res.error_msg}"
        )
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
    util = run.macs / (cycles * arch.macs_per_cycle * run.pes) if run.macs else None
    return {
        "kernel": run.name,
        "shape": run.shape,
        "pes": run.pes,
        "cycles": int(cycles),
        "roofline_cycles": run.roofline_cycles,
        "roofline_ratio": round(cycles / run.roofline_cycles, 3),
        "utilization": None if util is None else round(util, 4),
        "bit_exact": run.check(sram) and agree,
        "compile_s": 0.0,
    }


def _run_compiled(arch, name: str, on: str, seeds, progress, task) -> list[dict]:
    from compiler.backend.run import figures
    from cosim.kernel_set import compile_for, shape_for, shape_text
    from myelin.cmd_backend import executor_for

    progress.update(task, description=f"{name}: compiling for {arch.name}")
    ck = compile_for(name, arch)
    where = "RTL (cocotb + Verilator)" if on == "rtl" else "the reference simulator"
    runs = f", {len(seeds)} stress seeds" if seeds else ""
    progress.update(task, description=f"{name}: {len(ck.images)} PEs on {where}{runs}")
    executor = executor_for(on, stress=seeds, job=f"cosim-{name}")
    results = executor.run_many([ck]) if on == "rtl" else [executor.run(ck)]
    # the performance model's prediction next to the run (it takes well under a second)
    model = executor.run(ck) if on == "perf" else executor_for("perf").run(ck)
    rows = []
    for res in results:
        f = figures(ck, res, on)
        rows.append(
            {
                "kernel": name,
                "shape": shape_text(name, shape_for(name, arch)),
                "pes": f["pes"],
                "cycles": f["cycles"],
                "roofline_cycles": f["roofline_cycles"],
                "roofline_ratio": f["roofline_ratio"],
                "roofline_bound": f["roofline_bound"],
                "utilization": f["utilization"],
                "bit_exact": f["bit_exact"],
                "compile_s": f["compile_s"],
                "model_cycles": int(model.cycles),
                "stress_seed": f.get("stress_seed"),
            }
        )
    return rows


def cmd_cosim(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from cosim.kernel_set import select
    from myelin.cmd_run import parse_seeds

    arch = load_arch(args.arch)
    specs = select(args.kernel)
    seeds = parse_seeds(args.stress)
    if seeds and args.on != "rtl":
        raise MyelinError("--stress needs --on rtl (the reference simulator has no timing)")
    rows = []
    width = max(132, shutil.get_terminal_size((120, 24)).columns)
    console = Console(stderr=args.json, width=width)
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} kernels"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"cosim on {arch.name}", total=len(specs))
        for spec in specs:
            t0 = time.monotonic()
            if spec.compiled:
                new = _run_compiled(arch, spec.name, args.on, seeds, progress, task)
            else:
                progress.update(task, description=f"{spec.name}: single PE on {args.on}")
                new = [_run_handwritten(arch, spec.build(arch), args.on)]
            wall = round(time.monotonic() - t0, 1)
            for row in new:
                row["wall_s"] = wall
                rows.append(row)
                mark = "[green]bit-exact" if row["bit_exact"] else "[red]NOT bit-exact"
                console.log(f"{row['kernel']}: {row['cycles']} cycles, {mark}[/], {wall} s")
            progress.advance(task)
    if args.json:
        print(json.dumps({"arch": arch.name, "on": args.on, "kernels": rows}, indent=2))
    else:
        console.print(_table(Table, arch, args.on, rows, seeds))
    return 0 if all(r["bit_exact"] for r in rows) else 1


def _table(Table, arch, on: str, rows: list[dict], seeds):
    errs = on == "rtl" and not seeds  # the model has no DRAM stress mode
    title = f"Myelin kernels on {on.upper()} - arch {arch.name} ({arch.tiles} PEs)"
    title += " (model: sim/perf.py, err vs measured)" if errs else ""
    table = Table(title=title)
    cols = ["kernel", "shape", "PEs", "cycles", "model"]
    cols += ["err"] if errs else []
    cols += ["roofline", "x roof", "MAC util"]
    cols += ["stress seed"] if seeds else []
    cols += ["exact", "compile s", "wall s"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("kernel", "shape") else "right")
    for r in rows:
        util = "-" if r["utilization"] is None else f"{r['utilization']:.3f}"
        cells = [
            r["kernel"],
            r["shape"],
            str(r["pes"]),
            str(r["cycles"]),
            str(r.get("model_cycles", "-")),
            *([_model_error(r)] if errs else []),
            f"{r['roofline_cycles']:.0f}",
            f"{r['roofline_ratio']:.2f}",
            util,
        ]
        cells += [str(r.get("stress_seed"))] if seeds else []
        cells += [
            "yes" if r["bit_exact"] else "[red]NO[/]",
            f"{r['compile_s']:.2f}",
            str(r["wall_s"]),
        ]
        table.add_row(*cells)
    return table


def _model_error(r: dict) -> str:
    """The performance model's error against the measured cycles."""
    m = r.get("model_cycles")
    if m is None or not r["cycles"]:
        return "-"
    return f"{100 * (m - r['cycles']) / r['cycles']:+.1f} %"
