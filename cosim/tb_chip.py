"""cocotb testbench: a batch of chip runs on the chip's ``cosim_top``.

The job (written by :func:`cosim.chip_driver.run_chip_programs`)::

    job.json  {"arch": ArchConfig.to_dict(), "runs": [{"tiles": [t..], "max_cycles": n}],
               "sram_fill": bytes, "sram_dump": bytes, "dram_dump": bytes}
    job.npz   imem_<r>_<t>, sram_<r>_<t> (uint8, leading part of SRAM), dram_<r>_<p>

Per run: reset; load every started PE's imem (zeros past the program); load every
PE's SRAM (zero-filled up to ``sram_fill``; or, when the run has ``sram_chunks``
{tile: [base byte, ...]}, only the arrays ``sram_<r>_<t>_<i>`` at those bases and
only the program's imem words) and every DRAM port; start the PEs of
``tiles`` together; wait for all halted, an error or the watchdog; dump every PE's
SRAM (``sram_dump`` bytes), registers, semaphores, pc and first refused packet, and
``dram_dump`` bytes of every DRAM port.  Results: ``result.json`` (per run: status,
cycles, run_seconds, pes[...]) and ``result.npz``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np

from cosim.chip_driver import ChipDriver
from hw.arch import ArchConfig


def _job() -> tuple[Path, dict, dict[str, np.ndarray]]:
    folder = Path(os.environ.get("COSIM_JOB_DIR", "."))
    meta = json.loads((folder / "job.json").read_text())
    with np.load(folder / "job.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return folder, meta, arrays


async def _load(drv: ChipDriver, r: int, run: dict, meta: dict, arrays: dict) -> None:
    arch = drv.arch
    chunks = run.get("sram_chunks")  # {tile: [base byte, ...]}: load only these ranges
    for t in range(arch.tiles):
        if t in run["tiles"]:
            prog = arrays[f"imem_{r}_{t}"]
            imem = np.zeros(len(prog) if chunks is not None else arch.imem_words, np.uint64)
            imem[: len(prog)] = prog
            await drv.load_imem(t, imem)
        if chunks is not None:
            for i, base in enumerate(chunks.get(str(t), [])):
                await drv.load_sram(t, arrays[f"sram_{r}_{t}_{i}"], int(base))
            continue
        image = arrays.get(f"sram_{r}_{t}", np.zeros(0, np.uint8))
        sram = np.zeros(max(int(meta["sram_fill"]), len(image)), np.uint8)
        sram[: len(image)] = image
        await drv.load_sram(t, sram)
    for p in range(arch.dram_ports):
        dram = arrays.get(f"dram_{r}_{p}", np.zeros(0, np.uint8))
        await drv.load_dram(p, dram)


async def _dump(drv: ChipDriver, r: int, meta: dict, out: dict, pes: list[dict]) -> list:
    arch = drv.arch
    for t, pe in enumerate(pes):
        if int(meta["sram_dump"]):
            out[f"sram_{r}_{t}"] = await drv.dump_sram(t, 0, int(meta["sram_dump"]))
        state = await drv.dump_debug(t)
        out[f"regs_{r}_{t}"], out[f"sems_{r}_{t}"] = state["regs"], state["sems"]
        pe.update(
            pc=state["pc"],
            net_error=state["net_error"],
            net_addr=state["net_addr"],
            net_node=list(state["net_node"]),
        )
    for p in range(arch.dram_ports):
        if int(meta["dram_dump"]):
            out[f"dram_{r}_{p}"] = await drv.dump_dram(p, 0, int(meta["dram_dump"]))
    return pes


@cocotb.test()
async def run_chip(dut) -> None:
    """Run every chip run of the job and write the results."""
    folder, meta, arrays = _job()
    arch = ArchConfig(**meta["arch"])
    drv = ChipDriver(dut, arch, workdir=folder)
    out: dict[str, np.ndarray] = {}
    runs = []
    t_all = time.perf_counter()
    for r, run in enumerate(meta["runs"]):
        await drv.reset()
        await _load(drv, r, run, meta, arrays)
        t0 = time.perf_counter()
        res = await drv.run(run["tiles"], int(run["max_cycles"]), run.get("stress"))
        seconds = time.perf_counter() - t0
        pes = [
            {
                "started": t in run["tiles"],
                "halted": res.halted[t],
                "halt_cycle": res.halt_cycles[t],
                "error": res.errors[t],
                "err_pc": res.err_pcs[t],
            }
            for t in range(arch.tiles)
        ]
        if meta.get("dump", True):
            await _dump(drv, r, meta, out, pes)
        runs.append(
            {"status": int(res.status), "cycles": res.cycles, "run_seconds": seconds, "pes": pes}
        )
    np.savez(folder / "result.npz", **out)
    (folder / "result.json").write_text(
        json.dumps({"runs": runs, "tb_seconds": time.perf_counter() - t_all})
    )
