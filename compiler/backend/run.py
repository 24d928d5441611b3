"""Executors for compiled program sets, and the bit-exact comparison with numpy.

An :class:`Executor` takes a :class:`CompiledKernel` (program images per PE, DRAM
map) and returns the output tensors' DRAM bytes plus cycle figures.  Executors:

* :class:`ChipSimExecutor` (``--on isa``): the chip reference simulator.  The
  compiler may not import ``sim.network`` (tests/test_layering.py), so the caller
  passes the chip class (``sim.network.ChipSim``) in; the executor only uses its
  documented API: ``ChipSim(arch, dram_bytes)``, ``.load(coords, image)``,
  ``.run()`` -> {coords: RunResult}, ``.network.dram(port).dump(addr, n)``.
* :class:`RtlExecutor` (``--on rtl``): the RTL chip through cosim, not available
  yet (raises MyelinError).  It will plug in with the same ``run`` signature.

:func:`execute` runs a kernel and returns the figures of ``myelin bench kernel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from compiler.backend.compile import CompiledKernel
from hw.errors import MyelinError

__all__ = ["ChipSimExecutor", "ExecResult", "Executor", "RtlExecutor", "execute", "roofline"]


@dataclass
class ExecResult:
    outputs: dict[str, np.ndarray]
    cycles: int  # the busiest PE's cycle estimate
    per_pe_cycles: dict[tuple[int, int], int]
    instructions: int


class Executor(Protocol):
    name: str

    def run(self, ck: CompiledKernel) -> ExecResult: ...


class ChipSimExecutor:
    name = "isa"

    def __init__(self, chip_class, max_instructions: int = 10**8):
        self.chip_class = chip_class
        self.max_instructions = max_instructions

    def run(self, ck: CompiledKernel) -> ExecResult:
        arch = ck.arch
        port_bytes = arch.dram_bytes // max(arch.dram_ports, 1)
        # size each port's model to what the kernel uses, not to the whole DRAM
        dram = max((t.offset % port_bytes + t.nbytes for t in ck.mapped.dram.values()), default=16)
        chip = self.chip_class(arch, dram)
        for coords, image in ck.images.items():
            chip.load(coords, image)
        results = chip.run(self.max_instructions)
        raw = {}
        for name, t in ck.mapped.dram.items():
            if t.data is None:  # written by the kernel
                port, off = divmod(t.offset, port_bytes)
                raw[name] = chip.network.dram(port).dump(off, t.nbytes)
        outputs = {n: fn(raw) for n, fn in ck.mapped.outputs.items()}
        per_pe = {c: r.cycles for c, r in results.items()}
        return ExecResult(
            outputs, max(per_pe.values()), per_pe, sum(r.instructions for r in results.values())
        )


class RtlExecutor:
    name = "rtl"

    def run(self, ck: CompiledKernel) -> ExecResult:
        raise MyelinError(
            "executor 'rtl' (the RTL chip through cosim) is not available yet: the mesh "
            "top is being built; use --on isa"
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
    res = executor.run(ck)
    exact = all(
        np.array_equal(res.outputs[n], ck.expected[n])
        and res.outputs[n].dtype == ck.expected[n].dtype
        for n in ck.expected
    )
    roof = roofline(ck)
    a = ck.arch
    # ChipSim moves data in zero time: combine its issue cycles with the transfer bounds
    cycles = int(max(res.cycles, roof["scheduled_dram"], roof["noc"]))
    util = ck.macs / (cycles * a.mac_rows * a.mac_cols * len(ck.images)) if cycles else 0
    return {
        "kernel": ck.name,
        "arch": a.name,
        "on": executor.name,
        "cycles": cycles,
        "sim_issue_cycles": res.cycles,
        "roofline_cycles": round(roof["roofline"], 1),
        "roofline_bound": max(("compute", "dram", "noc"), key=lambda k: roof[k]),
        "compute_cycles": round(roof["compute"], 1),
        "dram_cycles": round(roof["dram"], 1),
        "noc_cycles": round(roof["noc"], 1),
        "scheduled_dram_cycles": round(roof["scheduled_dram"], 1),
        "utilization": round(util, 4),
        "bit_exact": bool(exact),
        "compile_s": round(ck.compile_s, 4),
        "pes": len(ck.images),
        "instructions": res.instructions,
        "imem_words_max": max(len(i.imem) for i in ck.images.values()),
        "plan": ck.plan,
    }
