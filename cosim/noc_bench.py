"""NoC benchmarks on the RTL mesh: one load point, a latency-vs-load sweep, the
comparison with pymtl3-net (``myelin bench noc``, ``myelin bench noc-compare``).

Every figure comes from :func:`cosim.noc_traffic.run_traffic` (the Verilated
mesh driven by the C++ testbench); see that module for the definitions of
offered and accepted load and of the latencies.  A run whose scoreboard finds
any error makes the benchmark fail (``ok`` false in the figures).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cosim.noc_traffic import Traffic, TrafficResult, run_traffic
from hw.arch import ArchConfig, load_arch
from hw.errors import ConfigError

__all__ = ["bench_arch", "bench_noc", "bench_noc_compare", "bench_noc_sweep", "parse_mesh"]

SWEEP_RATES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8)
ZERO_LOAD_RATE = 0.005


def parse_mesh(text: str) -> tuple[int, int]:
    """``"8x8"`` -> (8, 8)."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"mesh must be COLSxROWS (e.g. 8x8), not {text!r}") from None
    return cols, rows


def bench_arch(spec: str, mesh: str | None) -> ArchConfig:
    """The architecture ``spec`` (preset or file), with its mesh replaced by ``mesh``."""
    arch = load_arch(spec)
    if mesh:
        cols, rows = parse_mesh(mesh)
        arch = arch.replace(mesh_cols=cols, mesh_rows=rows)
    return arch


def _warmup(arch: ArchConfig, rate: float, flits: int, packets: int) -> int:
    """1000 cycles, or fewer so that at most a fifth of the packets are warm-up."""
    per_cycle = arch.tiles * rate / flits
    return int(min(1000, 0.2 * packets / per_cycle))


def zero_load(arch: ArchConfig, *, flits: int = 4, seed: int = 1) -> TrafficResult:
    """Uniform traffic at a very low load (a packet in the mesh every few
    cycles): the per-hop fit of head latency."""
    rate = min(ZERO_LOAD_RATE * 64 / arch.tiles, 0.02)
    packets = max(500, 10 * arch.tiles)
    return run_traffic(arch, Traffic(rate=rate, packets=packets, flits=flits, seed=seed))


def _point(res: TrafficResult) -> dict[str, Any]:
    return {
        "offered": round(res.offered, 4),
        "accepted": round(res.accepted, 4),
        "latency_mean": round(res.latency_mean, 2),
        "latency_p99": res.latency_p99,
        "network_latency_mean": round(res.network_latency_mean, 2),
        "packets": res.packets,
        "cycles": res.cycles,
        "cycles_per_second": round(res.cycles_per_second),
        "ok": res.ok,
        "errors": {k: v for k, v in res.errors.items() if v},
    }


def bench_noc(
    arch: ArchConfig,
    pattern: str = "uniform",
    rate: float = 0.1,
    *,
    packets: int = 20000,
    flits: int = 4,
    stall: float = 0.0,
    seed: int = 1,
) -> dict[str, Any]:
    """One load point plus the zero-load per-hop latency."""
    t = Traffic(
        pattern=pattern,
        rate=rate,
        packets=packets,
        flits=flits,
        stall=stall,
        seed=seed,
        warmup=_warmup(arch, rate, flits, packets),
    )
    res = run_traffic(arch, t)
    zl = zero_load(arch, flits=flits, seed=seed)
    return {
        "arch": arch.name,
        "mesh": f"{arch.mesh_cols}x{arch.mesh_rows}",
        "traffic": pattern,
        "rate": rate,
        "flits_per_packet": flits,
        "stall": stall,
        "seed": seed,
        **_point(res),
        "zero_load_cycles_per_hop": round(zl.hop_latency, 3),
        "zero_load_intercept": round(zl.hop_intercept, 3),
        "zero_load_latency_mean": round(zl.network_latency_mean, 2),
        "ok": res.ok and zl.ok,
    }


def bench_noc_sweep(
    arch: ArchConfig,
    out_dir: Path,
    pattern: str = "uniform",
    rates=SWEEP_RATES,
    *,
    packets: int = 20000,
    flits: int = 4,
    stall: float = 0.0,
    seed: int = 1,
) -> dict[str, Any]:
    """Latency and accepted load against offered load: a CSV and a PNG in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in rates:
        t = Traffic(
            pattern=pattern,
            rate=r,
            packets=packets,
            flits=flits,
            stall=stall,
            seed=seed,
            warmup=_warmup(arch, r, flits, packets),
        )
        rows.append({"rate": r, **_point(run_traffic(arch, t))})
    zl = zero_load(arch, flits=flits, seed=seed)
    stem = f"noc-{arch.mesh_cols}x{arch.mesh_rows}-{pattern}"
    csv_path, png_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.png"
    keys = [
        "rate",
        "offered",
        "accepted",
        "latency_mean",
        "latency_p99",
        "network_latency_mean",
        "packets",
        "cycles",
        "cycles_per_second",
        "ok",
    ]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    _plot(
        rows,
        png_path,
        f"{arch.mesh_cols}x{arch.mesh_rows} mesh, {pattern}, {flits}-flit packets, stall {stall}",
    )
    return {
        "arch": arch.name,
        "mesh": f"{arch.mesh_cols}x{arch.mesh_rows}",
        "traffic": pattern,
        "flits_per_packet": flits,
        "saturation_accepted": max(r["accepted"] for r in rows),
        "zero_load_cycles_per_hop": round(zl.hop_latency, 3),
        "zero_load_intercept": round(zl.hop_intercept, 3),
        "csv": str(csv_path),
        "png": str(png_path),
        "points": rows,
        "ok": zl.ok and all(r["ok"] for r in rows),
    }


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    off = [r["offered"] for r in rows]
    ax1.plot(off, [r["latency_mean"] for r in rows], "o-", label="mean")
    ax1.plot(off, [r["latency_p99"] for r in rows], "s--", label="p99")
    ax1.set_xlabel("offered load (flit/node/cycle)")
    ax1.set_ylabel("packet latency (cycles)")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.plot(off, [r["accepted"] for r in rows], "o-")
    ax2.plot([0, max(off)], [0, max(off)], ":", color="grey")
    ax2.set_xlabel("offered load (flit/node/cycle)")
    ax2.set_ylabel("accepted load (flit/node/cycle)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_noc_compare(
    arch: ArchConfig,
    rates=(0.05, 0.2, 0.4, 0.6),
    *,
    cycles: int = 600,
    seed: int = 1,
    ours_packets: int = 20000,
) -> dict[str, Any]:
    """Uniform random single-flit packets on our mesh and on pymtl3-net's, per rate."""
    from cosim.pymtl_compare import mflit_status, pymtl_version, run_pymtl_uniform

    rows = []
    for r in rates:
        ours = run_traffic(
            arch,
            Traffic(
                rate=r,
                flits=1,
                packets=ours_packets,
                seed=seed,
                warmup=_warmup(arch, r, 1, ours_packets),
            ),
        )
        theirs = run_pymtl_uniform(arch, r, cycles=cycles, warmup=cycles // 5, seed=seed)
        rows.append(
            {
                "rate": r,
                "ours": _point(ours),
                "pymtl3_net": {
                    k: v for k, v in theirs.figures().items() if k not in ("mesh", "rate")
                },
            }
        )
    return {
        "mesh": f"{arch.mesh_cols}x{arch.mesh_rows}",
        "traffic": "uniform",
        "flits_per_packet": 1,
        "pymtl3_net_version": pymtl_version(),
        "pymtl3_net_network": "MeshNetworkRTL (single-flit), XY route unit (DORY, X first)",
        "pymtl3_net_mflit": mflit_status(arch),
        "ours_simulator": "Verilator (C++ testbench)",
        "pymtl3_net_simulator": "PyMTL3 Python simulation (DefaultPassGroup)",
        "points": rows,
    }
