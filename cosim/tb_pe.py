"""cocotb testbench: run a batch of PE programs on ``cosim_top`` and dump the results.

The job (written by cosim.runner) is ``job.json`` + ``job.npz`` in the working
directory::

    job.json  {"arch": ArchConfig.to_dict(), "coords": [x, y], "programs": n,
               "max_cycles": [..n], "dram_bytes": d, "checked": bool}
    job.npz   imem_<i> (uint64 words), sram_<i> (uint8, whole or leading part
              of SRAM; the rest is zero), dram_<i> (uint8, optional; loaded at 0 and
              zero-filled up to dram_bytes)

For each program: reset, load imem, SRAM (and DRAM), run until halted/error
or ``max_cycles``, dump SRAM, the first ``dram_bytes`` of DRAM, registers,
semaphores and pc.  One simulator launch runs the whole batch, so the start-up
cost (about a second) is paid once.  Results: ``result.json`` (one entry per
program: status, cycles, error, err_pc, pc, load_seconds (reset + imem + SRAM +
DRAM), run_seconds, dump_seconds, and ``hang`` with the
SimulationError message when ``checked`` and the program hung) and
``result.npz`` (sram_<i>, dram_<i>, regs_<i>, sems_<i>).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np

from cosim.pe_driver import PeDriver
from hw.arch import ArchConfig
from hw.errors import SimulationError


def _job() -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = Path(os.environ.get("COSIM_JOB_DIR", "."))
    meta = json.loads((folder / "job.json").read_text())
    with np.load(folder / "job.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return folder, meta, arrays


async def _run_one(drv: PeDriver, i: int, meta: dict, arrays: dict, out: dict) -> dict:
    arch = drv.arch
    t_load = time.perf_counter()
    await drv.reset()
    imem = np.zeros(arch.imem_words, np.uint64)  # zeros past the program, as PeSim has
    program = arrays[f"imem_{i}"]
    imem[: len(program)] = program
    await drv.load_imem(imem)
    sram = np.zeros(arch.sram_bytes, np.uint8)
    image = arrays.get(f"sram_{i}", np.zeros(0, np.uint8))
    sram[: len(image)] = image
    await drv.load_sram(sram)
    dram_bytes = int(meta.get("dram_bytes", 0))
    dimage = arrays.get(f"dram_{i}", np.zeros(0, np.uint8))
    if dram_bytes or len(dimage):
        dram = np.zeros(max(dram_bytes, len(dimage)), np.uint8)
        dram[: len(dimage)] = dimage
        await drv.load_dram(dram)
    max_cycles = int(meta["max_cycles"][i])
    entry: dict = {"load_seconds": time.perf_counter() - t_load}
    t0 = time.perf_counter()
    try:
        run = await (drv.run_checked(max_cycles) if meta.get("checked") else drv.run(max_cycles))
    except SimulationError as exc:
        entry["hang"] = str(exc)
        run = None
    entry["run_seconds"] = time.perf_counter() - t0
    if run is not None:
        entry.update(status=int(run.status), cycles=run.cycles, error=run.error, err_pc=run.err_pc)
    if meta.get("dump", True) and run is not None:  # a hung PE may hold its host port
        t_dump = time.perf_counter()
        out[f"sram_{i}"] = await drv.dump_sram()
        if dram_bytes:
            out[f"dram_{i}"] = await drv.dump_dram(0, dram_bytes)
        state = await drv.dump_debug()
        out[f"regs_{i}"], out[f"sems_{i}"] = state["regs"], state["sems"]
        entry["pc"] = state["pc"]
        entry["dump_seconds"] = time.perf_counter() - t_dump
    return entry


@cocotb.test()
async def run_programs(dut) -> None:
    """Run every program of the job and write the results."""
    folder, meta, arrays = _job()
    arch = ArchConfig(**meta["arch"])
    drv = PeDriver(dut, arch, workdir=folder, coords=tuple(meta.get("coords", (0, 0))))
    out: dict[str, np.ndarray] = {}
    runs = []
    t0 = time.perf_counter()
    for i in range(int(meta["programs"])):
        runs.append(await _run_one(drv, i, meta, arrays, out))
    result = {"runs": runs, "tb_seconds": time.perf_counter() - t0}
    np.savez(folder / "result.npz", **out)
    (folder / "result.json").write_text(json.dumps(result))
