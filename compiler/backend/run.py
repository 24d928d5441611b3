"""Executors for compiled program sets, and the bit-exact comparison with numpy.

An :class:`Executor` takes a :class:`CompiledKernel` (program images per PE, DRAM
map) and returns the output tensors' DRAM bytes plus cycle figures.  Executors:

* :class:`ChipSimExecutor` (``--on isa``): the chip reference simulator.  The
  compiler may not import ``sim.network`` (tests/test_layering.py), so the caller
  passes the chip class (``sim.network.ChipSim``) in; the executor only uses its
  documented API: ``ChipSim(arch, dram_bytes)``, ``.load(coords, image)``,
  ``.run()`` -> {coords: RunResult}, ``.network.dram(port).dump(addr, n)``.
  Its cycles are issue cycles (transfers take no time): an estimate.
* :class:`RtlExecutor` (``--on rtl``): the RTL chip through cocotb + Verilator.  The
  compiler may not import ``cosim`` either, so the caller passes the chip runner in
  (``cosim.chip_driver.run_chip_programs``); one simulator launch runs a batch of
  kernels (:meth:`RtlExecutor.run_many`).  Its cycles are measured: from the start
  edge to the edge on which the last PE halted.  A PE fault or a hang (watchdog)
  raises :class:`hw.errors.SimulationError` naming the kernel, PE, pc and address.

:func:`execute` runs a kernel and returns the figures of ``myelin bench kernel``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from compiler.backend.compile import CompiledKernel
from compiler.backend.pe_work import pe_serial
from hw.errors import SimulationError

__all__ = [
    "ChipSimExecutor",
    "ExecResult",
    "Executor",
    "PerfExecutor",
    "RtlExecutor",
    "bit_exact",
    "execute",
    "figures",
    "read_outputs",
    "roofline",
]

STATUS_HALTED, STATUS_ERROR, STATUS_TIMEOUT = 1, 2, 3  # cosim.harness.Status


@dataclass
class ExecResult:
    outputs: dict[str, np.ndarray]
    cycles: int  # ChipSim: the busiest PE's issue cycles; RTL: measured start-to-last-halt
    per_pe_cycles: dict[tuple[int, int], int]  # RTL: start to each PE's halt
    instructions: int | None  # None on RTL (not counted by the harness)
    timed: bool = False  # True when ``cycles`` is a cycle-accurate measurement
    extra: dict = field(default_factory=dict)


class Executor(Protocol):
    name: str

    def run(self, ck: CompiledKernel) -> ExecResult: ...


def _port_bytes(arch) -> int:
    return arch.dram_bytes // max(arch.dram_ports, 1)


def read_outputs(ck: CompiledKernel, dump: Callable[[int, int, int], bytes]) -> dict:
    """The output tensors of ``ck`` from DRAM, ``dump(port, offset, nbytes)``."""
    pb = _port_bytes(ck.arch)
    raw = {}
    for name, t in ck.mapped.dram.items():
        if t.data is None:  # written by the kernel
            port, off = divmod(t.offset, pb)
            raw[name] = bytes(dump(port, off, t.nbytes))
    return {n: fn(raw) for n, fn in ck.mapped.outputs.items()}


class ChipSimExecutor:
    name = "isa"

    def __init__(self, chip_class, max_instructions: int = 10**8):
        self.chip_class = chip_class
        self.max_instructions = max_instructions

    def run(self, ck: CompiledKernel) -> ExecResult:
        arch = ck.arch
        pb = _port_bytes(arch)
        # size each port's model to what the kernel uses, not to the whole DRAM
        dram = max((t.offset % pb + t.nbytes for t in ck.mapped.dram.values()), default=16)
        chip = self.chip_class(arch, dram)
        for coords, image in ck.images.items():
            chip.load(coords, image)
        results = chip.run(self.max_instructions)
        outputs = read_outputs(ck, lambda p, off, n: chip.network.dram(p).dump(off, n))
        per_pe = {c: r.cycles for c, r in results.items()}
        return ExecResult(
            outputs, max(per_pe.values()), per_pe, sum(r.instructions for r in results.values())
        )


class PerfExecutor:
    """The compiled kernel on the performance model (``sim.perf.PerfSim``, injected):
    the functional results are the reference simulator's, the cycles the model's
    (``timed`` False: modelled, not measured; ``extra["modelled"]``)."""

    name = "perf"

    def __init__(self, perf_class, max_instructions: int = 10**8):
        self.perf_class = perf_class
        self.max_instructions = max_instructions

    def run(self, ck: CompiledKernel) -> ExecResult:
        pb = _port_bytes(ck.arch)
        dram = max((t.offset % pb + t.nbytes for t in ck.mapped.dram.values()), default=16)
        sim = self.perf_class(ck.arch, dram_bytes=dram)
        for coords, image in ck.images.items():
            sim.load(coords, image)
        res = sim.run(self.max_instructions)
        network = sim.chips[(0, 0)][0]
        outputs = read_outputs(ck, lambda p, off, n: network.dram(p).dump(off, n))
        per_pe = {(k[2], k[3]): v["cycles"] for k, v in res.per_pe.items()}
        stall = {(k[2], k[3]): v["bank_stall"] for k, v in res.per_pe.items()}
        return ExecResult(
            outputs,
            res.cycles,
            per_pe,
            res.instructions,
            extra={"modelled": True, "bank_stall_max": max(stall.values(), default=0)},
        )


class RtlExecutor:
    """The compiled kernel on the RTL chip.

    ``runner`` is ``cosim.chip_driver.run_chip_programs`` (injected: the compiler may
    not import cosim).  ``stress`` is a list of seeds or None: with a seed, the DRAM
    endpoints add random latency to every request and random not-ready / stall
    cycles on their NoC ports (cosim/dram.py), so one kernel runs once per seed.
    ``watchdog`` gives the cycle limit of a run from its roofline cycles."""

    name = "rtl"

    def __init__(
        self,
        runner: Callable,
        *,
        stress: list[int] | None = None,
        watchdog: Callable[[float], int] | None = None,
        job: str = "rtl",
    ):
        self.runner = runner
        self.stress = stress
        self.watchdog = watchdog or (lambda roof: int(max(50_000, 30 * roof)))
        self.job = job

    def run(self, ck: CompiledKernel) -> ExecResult:
        return self.run_many([ck])[0]

    def run_many(self, cks: list[CompiledKernel], *, raise_errors: bool = True) -> list:
        """Run every kernel (once per stress seed) in one simulator launch.  Returns
        one ExecResult per (kernel, seed), kernels outer; with ``raise_errors`` a
        PE fault or hang raises SimulationError, otherwise that entry is the
        SimulationError itself."""
        if not cks:
            return []
        arch = cks[0].arch
        for ck in cks:
            if ck.arch != arch:
                raise SimulationError(
                    f"kernels of one RTL batch must share an arch: {ck.name!r} is for "
                    f"{ck.arch.name}, {cks[0].name!r} for {arch.name}"
                )
        seeds = self.stress if self.stress else [None]
        pb = _port_bytes(arch)
        dump = max(
            (t.offset % pb + t.nbytes for ck in cks for t in ck.mapped.dram.values()),
            default=0,
        )
        runs, keys = [], []
        for ck in cks:
            limit = self.watchdog(roofline(ck)["roofline"])
            for seed in seeds:
                run = {"images": ck.images, "max_cycles": limit}
                if seed is not None:
                    run["stress"] = int(seed)
                runs.append(run)
                keys.append((ck, seed))
        out, _ = self.runner(
            arch,
            runs,
            name=self.job,
            sram_dump=0,
            dram_dump=-(-dump // 16) * 16,
            sram_fill=0,
            checked=False,
            sparse=True,
        )
        results = []
        for (ck, seed), entry in zip(keys, out, strict=True):
            try:
                results.append(self._result(ck, seed, entry))
            except SimulationError as exc:
                if raise_errors:
                    raise
                results.append(exc)
        return results

    def _result(self, ck: CompiledKernel, seed: int | None, entry: dict) -> ExecResult:
        where = f"kernel {ck.name!r} on RTL ({ck.arch.name}"
        where += f", stress seed {seed})" if seed is not None else ")"
        status = int(entry["status"])
        if status == STATUS_TIMEOUT:
            raise SimulationError(
                f"{where} hung: no halt within the watchdog of {entry['cycles']} cycles: "
                + "; ".join(entry["errors"] or ["no PE reported"])
            )
        if status != STATUS_HALTED:
            raise SimulationError(
                f"{where} ended in a PE error after {entry['cycles']} cycles: "
                + "; ".join(entry["errors"] or [f"status {status}"])
            )
        dram = entry["dram"]
        outputs = read_outputs(ck, lambda p, off, n: dram[p][off : off + n].tobytes())
        cycles = int(entry["cycles"])
        cols = ck.arch.mesh_cols
        per_pe = {
            (t % cols, t // cols): int(pe["halt_cycle"])
            for t, pe in enumerate(entry["pes"])
            if pe.get("started") and pe.get("halt_cycle")
        }
        return ExecResult(
            outputs,
            cycles,
            per_pe,
            None,
            timed=True,
            extra={"stress_seed": seed, "run_seconds": entry.get("run_seconds")},
        )


def roofline(ck: CompiledKernel) -> dict[str, float]:
    """Lower bounds in cycles: compute on the used PEs, compulsory DRAM traffic (every
    DRAM tensor moved once) at full bandwidth, NoC injection/ejection of the busiest
    PE.  ``scheduled_dram`` is the DRAM time of the traffic the schedule really has."""
    a = ck.arch
    pes = len(ck.images)
    compute = ck.macs / (a.mac_rows * a.mac_cols * pes)
    dram_bw = a.dram_bytes_per_cycle * max(a.dram_ports, 1)
    dram = sum(t.nbytes for t in ck.mapped.dram.values()) / dram_bw
    scheduled = ck.traffic["dram_bytes"] / dram_bw
    flit = a.flit_bits // 8
    per_pe = [*ck.traffic["inject"].values(), *ck.traffic["eject"].values(), 0]
    noc = max(per_pe) / flit
    return {
        "compute": compute,
        "dram": dram,
        "noc": noc,
        "scheduled_dram": scheduled,
        "roofline": max(compute, dram, noc),
    }


def execute(ck: CompiledKernel, executor: Executor) -> dict:
    """Run ``ck`` and compare every output with its numpy reference bit for bit."""
    return figures(ck, executor.run(ck), executor.name)


def bit_exact(ck: CompiledKernel, res: ExecResult) -> bool:
    return all(
        n in res.outputs
        and np.array_equal(res.outputs[n], ck.expected[n])
        and res.outputs[n].dtype == ck.expected[n].dtype
        for n in ck.expected
    )


def figures(ck: CompiledKernel, res: ExecResult, on: str) -> dict:
    """The figures of ``myelin bench kernel`` for one run of ``ck``.  On a timed
    executor (RTL) ``cycles`` is the measurement, on the performance model its
    estimate; ChipSim moves data in zero time and, with nowait commands, counts only
    the controller's issue cycles, so its issue cycles are combined with the transfer
    and compute bounds into an estimate."""
    roof = roofline(ck)
    a = ck.arch
    if res.timed or res.extra.get("modelled"):
        cycles = int(res.cycles)
    else:
        cycles = math.ceil(max(res.cycles, roof["scheduled_dram"], roof["noc"], roof["compute"]))
    util = ck.macs / (cycles * a.mac_rows * a.mac_cols * len(ck.images)) if cycles else 0
    out = {
        "kernel": ck.name,
        "arch": a.name,
        "on": on,
        "cycles": cycles,
        "cycles_measured": res.timed,
        "sim_issue_cycles": None if res.timed or res.extra.get("modelled") else res.cycles,
        "roofline_cycles": round(roof["roofline"], 1),
        "roofline_ratio": round(cycles / roof["roofline"], 3) if roof["roofline"] else None,
        "roofline_bound": max(("compute", "dram", "noc"), key=lambda k: roof[k]),
        "compute_cycles": round(roof["compute"], 1),
        "dram_cycles": round(roof["dram"], 1),
        "noc_cycles": round(roof["noc"], 1),
        "scheduled_dram_cycles": round(roof["scheduled_dram"], 1),
        # the busiest PE's essential MAC + vector cycles (single-issue PE: pe_work.py)
        "pe_serial_cycles": round(pe_serial(ck), 1),
        "utilization": round(util, 4),
        "bit_exact": bit_exact(ck, res),
        "compile_s": round(ck.compile_s, 4),
        "pes": len(ck.images),
        "instructions": res.instructions,
        "imem_words_max": max(len(i.imem) for i in ck.images.values()),
        "plan": ck.plan,
    }
    if res.extra.get("modelled"):
        out["bank_stall_max"] = res.extra["bank_stall_max"]
    if res.extra.get("stress_seed") is not None:
        out["stress_seed"] = res.extra["stress_seed"]
    return out
