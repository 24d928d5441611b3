"""Run a cocotb testbench on a cached Verilator model, from ordinary Python or pytest.

:func:`run_testbench` writes the job (any JSON-able dict, plus numpy arrays
in ``job.npz``) into a test folder, starts the simulator through
``cocotb_tools.runner`` (cocotb 2.1's own pytest plugin is marked unstable
and is not used), and returns the testbench's results (``result.json`` and
``result.npz``, written by the testbench into the same folder).  The
testbench finds the folder in ``COSIM_JOB_DIR`` (its working directory).

A testbench that fails, or a simulator that exits without results, raises
:class:`hw.errors.SimulationError` with the tail of the simulator log.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosim import verilator as vl
from hw.errors import SimulationError

__all__ = ["TbResult", "run_testbench"]


@dataclass
class TbResult:
    """What a testbench wrote back, and how long the simulator ran."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    wall_seconds: float
    folder: Path


def _write_job(folder: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("result.json", "result.npz", "job.npz"):
        (folder / name).unlink(missing_ok=True)
    (folder / "job.json").write_text(json.dumps(meta))
    np.savez(folder / "job.npz", **arrays)


def run_testbench(
    build: vl.Build,
    test_module: str,
    folder: Path,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
    *,
    testcase: str | None = None,
) -> TbResult:
    """Run ``test_module`` (a cocotb module, e.g. ``cosim.tb_pe``) on ``build``."""
    from cocotb_tools.runner import get_results, get_runner

    vl.activate()
    folder = Path(folder).resolve()
    _write_job(folder, meta, arrays or {})
    runner = get_runner("verilator")
    log = folder / "sim.log"
    env = {
        "COSIM_JOB_DIR": str(folder),
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
    }
    t0 = time.monotonic()
    try:
        xml = runner.test(
            test_module=test_module,
            hdl_toplevel=build.top,
            hdl_toplevel_lang="verilog",
            build_dir=build.executable.parent,
            test_dir=folder,
            testcase=testcase,
            extra_env=env,
            waves=vl.waves_enabled(),
            results_xml=str(folder / "results.xml"),
            log_file=log,
        )
    except SystemExit as exc:
        raise SimulationError(
            f"simulator for {build.folder.name} exited with {exc.code}:\n{_tail(log)}"
        ) from None
    wall = time.monotonic() - t0
    try:
        tests, failed = get_results(Path(xml))
    except RuntimeError as exc:
        raise SimulationError(
            f"no cocotb results from {build.folder.name}: {exc}\n{_tail(log)}"
        ) from None
    if failed or not tests:
        raise SimulationError(
            f"cocotb testbench {test_module} failed ({failed} of {tests}):\n{_tail(log)}"
        )
    return _read_result(folder, wall)


def _read_result(folder: Path, wall: float) -> TbResult:
    meta_path = folder / "result.json"
    if not meta_path.exists():
        raise SimulationError(f"testbench wrote no {meta_path}")
    meta = json.loads(meta_path.read_text())
    arrays: dict[str, np.ndarray] = {}
    if (folder / "result.npz").exists():
        with np.load(folder / "result.npz") as data:
            arrays = {k: data[k] for k in data.files}
    return TbResult(meta=meta, arrays=arrays, wall_seconds=wall, folder=folder)


def _tail(log: Path, lines: int = 40) -> str:
    if not log.exists():
        return "(no simulator log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def job_folder(name: str) -> Path:
    """A fresh folder for one run, ``build/cosim/runs/<name>-<pid>/``; folders of
    the same name left by processes that have ended are removed."""
    runs = vl.BUILD_ROOT / "runs"
    for old in runs.glob(f"{name}-*"):
        pid = old.name[len(name) + 1 :]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = runs / f"{name}-{os.getpid()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def run_pe_programs(
    arch,
    images: list,
    *,
    max_cycles: int | list[int],
    dram_bytes: int = 0,
    name: str = "pe",
    coords: tuple[int, int] = (0, 0),
    checked: bool = True,
    dump: bool = True,
) -> tuple[list[dict], TbResult]:
    """Run ``images`` (hw.image.ProgramImage) one after another on the RTL PE in one
    simulator launch (cosim.tb_pe).  Returns one dict per program: status, cycles,
    error, err_pc, pc, and (with ``dump``) sram, dram (first ``dram_bytes``), regs,
    sems as numpy arrays; with ``checked``, a program that hangs (no halt or error
    within its ``max_cycles``) has ``hang``: the SimulationError message naming the
    PE, pc and cycle (and no dump).  DRAM is loaded with each image's DRAM segments, zero-filled
    up to ``dram_bytes`` (so that a previous program's writes are cleared there)."""
    from cosim.harness import build_pe, dram_sim_words

    build = build_pe(arch, coords)
    limits = [max_cycles] * len(images) if isinstance(max_cycles, int) else list(max_cycles)
    arrays: dict[str, np.ndarray] = {}
    for i, img in enumerate(images):
        img.check(arch)
        arrays[f"imem_{i}"] = np.array(img.imem, dtype=np.uint64)
        arrays[f"sram_{i}"] = _flatten(img.sram, arch.sram_bytes)
        if img.dram:
            arrays[f"dram_{i}"] = _flatten(img.dram, dram_sim_words(arch) * arch.word_bytes)
    meta = {
        "arch": arch.to_dict(),
        "coords": list(coords),
        "programs": len(images),
        "max_cycles": limits,
        "dram_bytes": dram_bytes,
        "checked": checked,
        "dump": dump,
    }
    res = run_testbench(build, "cosim.tb_pe", job_folder(name), meta, arrays)
    runs = []
    for i, entry in enumerate(res.meta["runs"]):
        entry = dict(entry)
        for key in ("sram", "dram", "regs", "sems"):
            if f"{key}_{i}" in res.arrays:
                entry[key] = res.arrays[f"{key}_{i}"]
        runs.append(entry)
    return runs, res


def _flatten(segments: list[tuple[int, bytes]], size: int) -> np.ndarray:
    """The memory image of ``segments``: zeros up to the end of the last segment."""
    end = max((a + len(d) for a, d in segments), default=0)
    if end > size:
        raise SimulationError(f"memory segments end at {end:#x}, past {size:#x} bytes")
    mem = np.zeros(end, np.uint8)
    for addr, data in segments:
        mem[addr : addr + len(data)] = np.frombuffer(data, np.uint8)
    return mem
