"""Synthetic NoC traffic on the RTL mesh: configuration, run, scoreboard figures.

A :class:`Traffic` describes one run; :func:`run_traffic` runs it on the
Verilated mesh (:func:`cosim.noc_harness.build_noc`, one build per design)
through the C++ testbench (:mod:`cosim.tb_noc`) and returns a
:class:`TrafficResult`.

Patterns (destination of a packet from tile (x, y) on a ``C x R`` mesh):

* ``uniform``: a uniformly random tile (the source itself included, as in BookSim);
* ``transpose``: (y, x) (square meshes only; the diagonal sends to itself);
* ``bitcomp``: (C-1-x, R-1-y), bit complement on power-of-two meshes;
* ``hotspot``: the tile (C//2, R//2) with probability ``hotspot_frac``, else uniform;
* ``neighbour``: a random adjacent tile (one hop);
* ``multicast``: with probability ``mcast_frac`` a RECT packet to a random
  rectangle (every tile in it gets a copy), else uniform unicast.  RECT
  packets are at most ``router_buffer_flits`` flits long (docs/noc.md: longer
  multicast packets are not deadlock-free).

Loads are in flits per node per cycle over the measurement window
``[warmup, end of injection)``: *offered* counts the flits generated, *accepted*
the flits ejected (every multicast copy counts).  Latencies, in cycles, are per
delivered copy of the packets generated in the window: *latency* from
generation (source queueing included) to the tail flit's ejection, *network
latency* from the head's injection.  Zero-load per-hop latency is the slope of
head latency (injection to ejection of the head flit) against hop count.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosim import verilator as vl
from hw.arch import ArchConfig
from hw.errors import SimulationError

__all__ = [
    "ERROR_KINDS",
    "PATTERNS",
    "Traffic",
    "TrafficResult",
    "ref_destination",
    "run_traffic",
]

PATTERNS = ("uniform", "transpose", "bitcomp", "hotspot", "neighbour", "multicast")
FAULTS = ("", "corrupt", "misroute", "duplicate", "stuck")
ERROR_KINDS = (
    "lost",
    "duplicated",
    "misrouted",
    "corrupted",
    "reordered",
    "framing",
    "unknown",
    "drops",
)


@dataclass(frozen=True)
class Traffic:
    """One traffic run.  ``rate``: offered flits/node/cycle; ``flits``: packet
    length including the head; ``stall``: probability that an endpoint's
    ``ready`` is low in a cycle (back-pressure)."""

    pattern: str = "uniform"
    rate: float = 0.1
    packets: int = 2000
    flits: int = 4
    warmup: int = 0
    stall: float = 0.0
    seed: int = 1
    hotspot_frac: float = 0.25
    mcast_frac: float = 0.25
    watchdog: int = 1024
    max_cycles: int = 0  # 0: derived from packets and rate
    pairs: bool = False  # raw["pairs"][src * tiles + dst]: copies delivered per tile pair
    fault: str = ""  # inject one fault to check the checker: see FAULTS

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, not {self.pattern!r}")
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must be in (0, 1] flit/node/cycle, not {self.rate!r}")
        if not (isinstance(self.packets, int) and self.packets >= 1):
            raise ValueError(f"packets must be a positive integer, not {self.packets!r}")
        if not 0 <= self.stall < 1:
            raise ValueError(f"stall must be in [0, 1), not {self.stall!r}")
        if not 0 <= self.hotspot_frac <= 1:
            raise ValueError(f"hotspot_frac must be in [0, 1], not {self.hotspot_frac!r}")
        if not 0 <= self.mcast_frac <= 1:
            raise ValueError(f"mcast_frac must be in [0, 1], not {self.mcast_frac!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise ValueError(f"warmup must be a non-negative integer, not {self.warmup!r}")
        if self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS!r}, not {self.fault!r}")
        if not (isinstance(self.watchdog, int) and self.watchdog >= 16):
            raise ValueError(f"watchdog must be an integer >= 16, not {self.watchdog!r}")

    def check(self, arch: ArchConfig) -> None:
        """Errors that depend on the mesh."""
        if not 1 <= self.flits <= arch.max_packet_flits + 1:
            raise ValueError(
                f"flits must be in 1..{arch.max_packet_flits + 1} (head + max_packet_flits), "
                f"not {self.flits!r}"
            )
        if self.pattern == "transpose" and arch.mesh_cols != arch.mesh_rows:
            raise ValueError(
                f"transpose traffic needs a square mesh, not {arch.mesh_cols}x{arch.mesh_rows}"
            )


@dataclass
class TrafficResult:
    """Figures of one run (see the module docstring) and the raw testbench output."""

    traffic: Traffic
    mesh: tuple[int, int]
    status: str
    cycles: int
    packets: int
    offered: float
    accepted: float
    latency_mean: float
    latency_p99: float
    network_latency_mean: float
    network_latency_p99: float
    hop_latency: float  # zero-load fit: cycles per hop (meaningful at low load)
    hop_intercept: float
    cycles_per_second: float
    wall_seconds: float
    errors: dict[str, int]
    raw: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not any(self.errors.values())

    def summary(self) -> str:
        t = self.traffic
        return (
            f"{self.mesh[0]}x{self.mesh[1]} {t.pattern} rate={t.rate} stall={t.stall} "
            f"seed={t.seed}: {self.status}, {self.packets} packets, {self.cycles} cycles, "
            f"offered {self.offered:.3f} accepted {self.accepted:.3f}, latency mean "
            f"{self.latency_mean:.1f} p99 {self.latency_p99:.0f}, errors {self.errors}"
        )

    def figures(self) -> dict[str, Any]:
        skip = {"raw", "traffic"}
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        d["mesh"] = f"{self.mesh[0]}x{self.mesh[1]}"
        return {**dataclasses.asdict(self.traffic), **d}


def ref_destination(arch: ArchConfig, pattern: str, x: int, y: int) -> tuple[int, int] | None:
    """The destination of the deterministic patterns (None for random ones)."""
    c, r = arch.mesh_cols, arch.mesh_rows
    if pattern == "transpose":
        return y, x
    if pattern == "bitcomp":
        return c - 1 - x, r - 1 - y
    return None


def fit_per_hop(head_sum: list[float], count: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of mean head latency against hop count."""
    pts = [(h, s / n, n) for h, (s, n) in enumerate(zip(head_sum, count, strict=True)) if n]
    if len(pts) < 2:
        return (pts[0][1] / max(pts[0][0], 1), 0.0) if pts else (0.0, 0.0)
    w = sum(n for *_, n in pts)
    mx = sum(h * n for h, _, n in pts) / w
    my = sum(m * n for _, m, n in pts) / w
    sxx = sum(n * (h - mx) ** 2 for h, _, n in pts)
    sxy = sum(n * (h - mx) * (m - my) for h, m, n in pts)
    slope = sxy / sxx
    return slope, my - slope * mx


def _config_text(arch: ArchConfig, t: Traffic, out: Path) -> str:
    code = PATTERNS.index(t.pattern)
    max_cycles = t.max_cycles or int(40 * t.packets * t.flits / (t.rate * arch.tiles)) + 100_000
    items = {
        "pattern": code,
        "rate": t.rate,
        "packets": t.packets,
        "flits": t.flits,
        "mcast_flits": min(t.flits, arch.router_buffer_flits),
        "warmup": t.warmup,
        "stall": t.stall,
        "seed": t.seed,
        "hotspot_frac": t.hotspot_frac,
        "mcast_frac": t.mcast_frac,
        "max_cycles": max_cycles,
        "watchdog": t.watchdog,
        "pairs": int(t.pairs),
        "fault": FAULTS.index(t.fault),
        "out": out,
    }
    return "".join(f"{k} {v}\n" for k, v in items.items())


def run_traffic(arch: ArchConfig, traffic: Traffic, *, timeout: float = 3600) -> TrafficResult:
    """Run ``traffic`` on ``arch``'s mesh; a simulator crash raises SimulationError
    (scoreboard errors do not: they are in ``errors`` and ``ok``)."""
    from cosim.noc_harness import build_noc  # Amaranth: imported only to run

    traffic.check(arch)
    build = build_noc(arch)
    with tempfile.TemporaryDirectory(prefix="noc-", dir=_runs_dir()) as tmp:
        folder = Path(tmp)
        cfg, out = folder / "config.txt", folder / "result.json"
        cfg.write_text(_config_text(arch, traffic, out))
        proc = subprocess.run(
            [str(build.executable), str(cfg)], capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0 or not out.exists():
            raise SimulationError(
                f"NoC testbench {build.folder.name} exited with {proc.returncode}:\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        raw = json.loads(out.read_text())
    return _result(arch, traffic, raw)


def _runs_dir() -> Path:
    path = vl.BUILD_ROOT / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _result(arch: ArchConfig, t: Traffic, raw: dict[str, Any]) -> TrafficResult:
    denom = arch.tiles * raw["window"]
    slope, intercept = fit_per_hop(raw["hop_head_sum"], raw["hop_count"])
    return TrafficResult(
        traffic=t,
        mesh=(arch.mesh_cols, arch.mesh_rows),
        status=raw["status"],
        cycles=raw["cycles"],
        packets=raw["packets"],
        offered=raw["offered_flits"] / denom,
        accepted=raw["accepted_flits"] / denom,
        latency_mean=raw["latency_mean"],
        latency_p99=raw["latency_p99"],
        network_latency_mean=raw["network_latency_mean"],
        network_latency_p99=raw["network_latency_p99"],
        hop_latency=slope,
        hop_intercept=intercept,
        cycles_per_second=raw["cycles"] / max(raw["seconds"], 1e-9),
        wall_seconds=raw["seconds"],
        errors={k: raw[k] for k in ERROR_KINDS},
        raw=raw,
    )
