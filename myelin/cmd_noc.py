"""``myelin bench noc`` and ``myelin bench noc-compare``: NoC figures on the RTL mesh."""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    from cosim.noc_traffic import PATTERNS

    noc = bench_sub.add_parser(
        "noc", help="NoC load/latency on the Verilated mesh (one rate, or --sweep)"
    )
    noc.add_argument("--arch", default="small", help="preset name or TOML/JSON file")
    noc.add_argument("--mesh", default=None, help="COLSxROWS, overrides the preset's mesh")
    noc.add_argument("--traffic", choices=PATTERNS, default="uniform")
    noc.add_argument("--rate", type=float, default=0.1, help="offered flit/node/cycle")
    noc.add_argument("--packets", type=int, default=20000, help="packets per load point")
    noc.add_argument("--flits", type=int, default=4, help="flits per packet (head included)")
    noc.add_argument("--stall", type=float, default=0.0, help="endpoint back-pressure")
    noc.add_argument("--seed", type=int, default=1)
    noc.add_argument("--sweep", action="store_true", help="latency-vs-load CSV + PNG")
    noc.add_argument("--rates", default=None, help="comma-separated rates for --sweep")
    noc.add_argument("--out", default="build/noc_bench", help="folder for --sweep output")
    noc.add_argument("--json", action="store_true", help="print one JSON object")
    noc.set_defaults(func=_noc)

    cmp_ = bench_sub.add_parser(
        "noc-compare", help="our mesh vs pymtl3-net's, uniform random, same packets"
    )
    cmp_.add_argument("--arch", default="small")
    cmp_.add_argument("--mesh", default="8x8")
    cmp_.add_argument("--rates", default="0.05,0.2,0.4,0.6")
    cmp_.add_argument("--cycles", type=int, default=600, help="pymtl3-net cycles per rate")
    cmp_.add_argument("--seed", type=int, default=1)
    cmp_.add_argument("--json", action="store_true")
    cmp_.set_defaults(func=_compare)


def _rates(text: str | None):
    from hw.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"rates must be comma-separated numbers, not {text!r}") from None


def _print(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


def _noc(args: argparse.Namespace) -> int:
    from cosim.noc_bench import SWEEP_RATES, bench_arch, bench_noc, bench_noc_sweep

    arch = bench_arch(args.arch, args.mesh)
    common = dict(packets=args.packets, flits=args.flits, stall=args.stall, seed=args.seed)
    try:
        if args.sweep:
            fig = bench_noc_sweep(
                arch, args.out, args.traffic, _rates(args.rates) or SWEEP_RATES, **common
            )
        else:
            fig = bench_noc(arch, args.traffic, args.rate, **common)
    except ValueError as exc:
        from hw.errors import ConfigError

        raise ConfigError(str(exc)) from None
    _print(fig, args.json)
    return 0 if fig["ok"] else 1


def _compare(args: argparse.Namespace) -> int:
    from cosim.noc_bench import bench_arch, bench_noc_compare

    arch = bench_arch(args.arch, args.mesh)
    fig = bench_noc_compare(arch, _rates(args.rates), cycles=args.cycles, seed=args.seed)
    _print(fig, args.json)
    return 0
