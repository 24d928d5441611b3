"""Benchmarks of the whole chip: the multi-PE GEMM and the chip cosim speed.

* :func:`bench_chip_gemm`: cosim/kernels/gemm_multi.py on every PE of the chip
  (RTL: cocotb + Verilator; ``on="isa"``: ChipSim), and the same generator on one
  PE as the baseline: cycles, ideal cycles, utilization, bit-exactness (against
  numpy + sim/numerics.py and, on RTL, against ChipSim's final SRAM/DRAM), and
  ``scaling_efficiency = cycles_1pe / (pes * cycles)``.
* :func:`bench_chip_cosim_speed`: the multi-PE GEMM through cocotb (``cosim_hz``:
  cycles over the wall time of the RUN command) and through the same Verilated
  harness under a plain C++ main (``raw_hz``), as cosim/bench.py does for one PE.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import numpy as np

from cosim.chip_driver import run_chip_programs
from cosim.harness import IN_FILE, Cmd, Status, dram_sim_words
from cosim.kernels.gemm_multi import MultiGemm, multi_gemm
from cosim.pe_driver import bytes_to_hex
from cosim.runner import _flatten, job_folder
from hw.arch import ArchConfig
from hw.errors import SimulationError

__all__ = ["bench_chip_cosim_speed", "bench_chip_gemm"]


def _limit(g: MultiGemm) -> int:
    return 4 * g.ideal_cycles + 200_000


def _chipsim(arch: ArchConfig, g: MultiGemm):
    from sim.network import ChipSim

    sim = ChipSim(arch, dram_bytes=dram_sim_words(arch) * arch.word_bytes)
    for c, img in g.images.items():
        sim.load(c, img)
    res = sim.run(10**8)
    return sim, max(r.cycles for r in res.values())


def _dump_sizes(g: MultiGemm) -> tuple[int, int]:
    lay = g.layout
    if g.pes == 1:
        return 0, lay["c_dram"] + g.m * g.n
    return lay["c"] + lay["mp"] * lay["np"], 0


def _rtl(arch: ArchConfig, cases: list[MultiGemm], name: str, dump: bool = True):
    sram_dump = max(_dump_sizes(g)[0] for g in cases) if dump else 0
    dram_dump = max(_dump_sizes(g)[1] for g in cases) if dump else 0
    runs = [{"images": g.images, "max_cycles": _limit(g)} for g in cases]
    out, _ = run_chip_programs(
        arch, runs, name=name, sram_dump=sram_dump, dram_dump=dram_dump, sram_fill=0
    )
    for g, run in zip(cases, out, strict=True):
        if run["status"] != Status.HALTED:
            raise SimulationError(
                f"multi-PE GEMM on {g.pes} PEs: status "
                f"{Status(run['status']).name}: {'; '.join(run['errors'])}"
            )
    return out


def _result(arch: ArchConfig, g: MultiGemm, run: dict, sim) -> dict[str, Any]:
    cols = arch.mesh_cols
    out = g.output(
        lambda x, y: run["pes"][y * cols + x]["sram"], run["dram"][0] if run["dram"] else None
    )
    same = True
    if sim is not None:
        sd, dd = _dump_sizes(g)
        for x, y in g.images:  # PEs without a program keep an earlier run's SRAM
            pe = sim.pes[(x, y)]
            if sd and not np.array_equal(run["pes"][y * cols + x]["sram"], pe.sram[:sd]):
                same = False
        if dd and not np.array_equal(run["dram"][0], sim.network.dram(0).mem[:dd]):
            same = False
    return {"out": out, "same_as_chipsim": same}


def bench_chip_gemm(
    arch: ArchConfig, m: int, n: int, k: int, on: str = "rtl", seed: int = 0, baseline: bool = True
) -> dict[str, Any]:
    """The multi-PE GEMM on all PEs (and on one PE for the scaling efficiency)."""
    t0 = time.monotonic()
    cases = [multi_gemm(arch, m, n, k, arch.tiles, seed)]
    if baseline:
        cases.append(multi_gemm(arch, m, n, k, 1, seed))
    sims = [_chipsim(arch, g) for g in cases]
    if on == "rtl":
        runs = _rtl(arch, cases, "chip-gemm")
        cycles = [int(r["cycles"]) for r in runs]
        checks = [_result(arch, g, r, s) for g, r, (s, _) in zip(cases, runs, sims, strict=True)]
        outs = [c["out"] for c in checks]
        same = all(c["same_as_chipsim"] for c in checks)
    elif on == "isa":
        cycles = [c for _, c in sims]
        outs = [
            g.output(lambda x, y, s=s: s.pes[(x, y)].sram, s.network.dram(0).mem)
            for g, (s, _) in zip(cases, sims, strict=True)
        ]
        same = True
    else:
        raise ValueError(f"on must be 'rtl' or 'isa', not {on!r}")
    g = cases[0]
    fig = {
        "bench": "chip-gemm",
        "arch": arch.name,
        "on": on,
        "m": m,
        "n": n,
        "k": k,
        "pes": g.pes,
        "cycles": cycles[0],
        "ideal_cycles": g.ideal_cycles,
        "utilization": round(g.ideal_cycles / cycles[0], 4),
        "bit_exact": bool(
            all(np.array_equal(o, c.expected) for o, c in zip(outs, cases, strict=True))
        ),
        "same_as_chipsim": same,
    }
    if baseline:
        fig.update(
            cycles_1pe=cycles[1],
            utilization_1pe=round(cases[1].ideal_cycles / cycles[1], 4),
            scaling_efficiency=round(cycles[1] / (g.pes * cycles[0]), 4),
        )
    fig["wall_seconds"] = round(time.monotonic() - t0, 2)
    return fig


# -- cosim speed ------------------------------------------------------------------------

_RAW_MAIN = r"""// Generated by cosim/chip_bench.py: the chip harness under a plain C++ loop.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include "Vtop.h"
#include "verilated.h"

static VerilatedContext* ctx;
static Vtop* top;

static void command(int cmd, unsigned tile, unsigned base, unsigned count,
                    unsigned long long mask, unsigned long long maxc) {
    top->cmd = cmd; top->arg_tile = tile; top->arg_base = base; top->arg_count = count;
    top->start_mask = mask; top->max_cycles = maxc;
    top->req = !top->req;
    top->eval();
    while (top->ack != top->req) {
        if (!top->eventsPending()) { std::fprintf(stderr, "no events pending\n"); std::exit(2); }
        ctx->time(top->nextTimeSlot());
        top->eval();
    }
}

int main(int argc, char** argv) {
    if (argc < 3) { std::fprintf(stderr, "usage: reps script\n"); return 2; }
    int reps = std::atoi(argv[1]);
    ctx = new VerilatedContext;
    top = new Vtop{ctx};
    top->req = 0;
    top->eval();
    for (int r = 0; r < reps; r++) {
        std::ifstream script(argv[2]);
        int cmd; unsigned tile, base, count; unsigned long long mask, maxc; std::string file;
        while (script >> cmd >> tile >> base >> count >> mask >> maxc >> file) {
            if (file != "-")
                std::filesystem::copy_file(file, "IN_FILE",
                                           std::filesystem::copy_options::overwrite_existing);
            auto t0 = std::chrono::steady_clock::now();
            command(cmd, tile, base, count, mask, maxc);
            double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                .count();
            if (cmd == CMD_RUN)
                std::printf("{\"cycles\": %llu, \"seconds\": %.6f, \"status\": %d}\n",
                            (unsigned long long)top->run_cycles, s, (int)top->status);
        }
    }
    top->final();
    delete top;
    return 0;
}
"""


def _raw_main() -> str:
    return _RAW_MAIN.replace("IN_FILE", IN_FILE).replace("CMD_RUN", str(int(Cmd.RUN)))


def raw_chip_run(arch: ArchConfig, g: MultiGemm, reps: int) -> list[dict]:
    """The multi-PE GEMM on the chip harness with a plain C++ main: per-run figures."""
    from cosim.chip_harness import build_chip

    build = build_chip(arch, kind="exe", main_cpp=_raw_main())
    folder = job_folder("chip-raw")
    lines = [f"{int(Cmd.RESET)} 0 0 0 0 0 -"]
    mask = 0
    for (x, y), img in g.images.items():
        t = y * arch.mesh_cols + x
        mask |= 1 << t
        imem = np.zeros((len(img.imem), 2), np.uint64)
        imem[:, 0] = img.imem
        for kind, data in (
            (Cmd.LOAD_IMEM, imem.view(np.uint8).reshape(-1)),
            (Cmd.LOAD_SRAM, _flatten(img.sram, arch.sram_bytes)),
        ):
            data = np.concatenate([data, np.zeros(-len(data) % 16, np.uint8)])
            path = folder / f"{kind.name.lower()}_{t}.hex"
            path.write_text(bytes_to_hex(data))
            lines.append(f"{int(kind)} {t} 0 {len(data) // 16} 0 0 {path}")
        if img.dram:
            data = _flatten(img.dram, dram_sim_words(arch) * arch.word_bytes)
            data = np.concatenate([data, np.zeros(-len(data) % 16, np.uint8)])
            path = folder / f"dram_{t}.hex"
            path.write_text(bytes_to_hex(data))
            lines.append(f"{int(Cmd.LOAD_DRAM)} 0 0 {len(data) // 16} 0 0 {path}")
    lines.append(f"{int(Cmd.RUN)} 0 0 0 {mask} {_limit(g)} -")
    (folder / "script.txt").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [str(build.executable), str(reps), str(folder / "script.txt")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode:
        raise SimulationError(f"raw chip Verilator run failed: {proc.stderr[-2000:]}")
    return [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]


def bench_chip_cosim_speed(
    arch: ArchConfig,
    m: int | None = None,
    n: int | None = None,
    k: int = 256,
    reps: int = 3,
    rounds: int = 2,
) -> dict[str, Any]:
    """The multi-PE GEMM ``reps`` times per launch under cocotb and under a raw C++ main;
    the fastest run of each counts (the machine is shared), medians reported too."""
    m = 4 * arch.mac_rows * arch.tiles if m is None else m
    n = 4 * arch.mac_cols if n is None else n
    g = multi_gemm(arch, m, n, k, arch.tiles)
    raw_chip_run(arch, g, 1)  # build the raw model before timing anything
    cosim_s, raw_s = [], []
    cyc = 0
    for _ in range(rounds):
        runs = _rtl(arch, [g] * reps, "chip-speed", dump=False)
        cosim_s += [r["run_seconds"] for r in runs]
        cyc = int(runs[0]["cycles"])
        raw = raw_chip_run(arch, g, reps)
        raw_s += [r["seconds"] for r in raw]
    cosim, raw_hz = cyc / min(cosim_s), cyc / min(raw_s)
    return {
        "bench": "chip-cosim-speed",
        "arch": arch.name,
        "tiles": arch.tiles,
        "kernel": f"gemm-multi {m}x{n}x{k}",
        "cycles_per_run": cyc,
        "runs": reps * rounds,
        "cosim_hz": round(cosim),
        "raw_hz": round(raw_hz),
        "cosim_over_raw": round(cosim / raw_hz, 3),
        "cosim_median_hz": round(cyc / sorted(cosim_s)[len(cosim_s) // 2]),
        "raw_median_hz": round(cyc / sorted(raw_s)[len(raw_s) // 2]),
    }
