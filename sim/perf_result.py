"""The figures of a performance-model run (sim/perf.py): :class:`PerfResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PerfResult", "build_result"]


@dataclass
class PerfResult:
    """Figures of one run (``to_dict`` is JSON-able)."""

    arch: str
    cycles: int
    instructions: int
    wall_seconds: float
    per_pe: dict[tuple, dict[str, int]]
    macs: int
    mac_utilization: float
    dram_bytes: int
    dram_utilization: float
    links: dict[str, Any]
    status: dict[tuple, str] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def speed(self) -> float:
        """Simulated PE instructions per second of CPU time (wall time on a shared
        machine measures the other users)."""
        t = self.cpu_seconds or self.wall_seconds
        return self.instructions / t if t else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "cycles": self.cycles,
            "instructions": self.instructions,
            "wall_seconds": round(self.wall_seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "instructions_per_second": round(self.speed),
            "macs": self.macs,
            "mac_utilization": self.mac_utilization,
            "dram_bytes": self.dram_bytes,
            "dram_utilization": self.dram_utilization,
            **self.links,
            "pes": {",".join(map(str, k)): v for k, v in sorted(self.per_pe.items())},
        }


def build_result(arch, chips, board, cycles, wall, per_pe, status) -> PerfResult:
    """The figures of a finished run (chips: {chip: (network, Fabric)})."""
    a = arch
    macs = sum(p["macs"] for p in per_pe.values())
    n_pe = max(len(per_pe), 1)
    dram = sum(sum(f.dram_bytes) for _, f in chips.values())
    ports = max(a.dram_ports, 1) * max(len(chips), 1)
    links: dict[str, Any] = {"link_util_max": 0.0, "link_util_mean": 0.0}
    if chips:
        stats = [f.link_stats(cycles) for _, f in chips.values()]
        links = {
            "link_util_max": max(s["link_util_max"] for s in stats),
            "link_util_mean": round(sum(s["link_util_mean"] for s in stats) / len(stats), 4),
            "busiest_link": max(stats, key=lambda s: s["link_util_max"])["busiest_link"],
        }
    if a.chips_cols * a.chips_rows > 1:
        links.update(board.stats(cycles))
    return PerfResult(
        arch=a.name,
        cycles=cycles,
        instructions=sum(p["instructions"] for p in per_pe.values()),
        wall_seconds=wall,
        per_pe=per_pe,
        macs=macs,
        mac_utilization=round(macs / (cycles * a.macs_per_cycle * n_pe), 4) if cycles else 0,
        dram_bytes=dram,
        dram_utilization=round(dram / (cycles * a.dram_bytes_per_cycle * ports), 4)
        if cycles
        else 0.0,
        links=links,
        status=status,
    )
