"""Differential tests: the RTL PE (cocotb + Verilator) against the reference PeSim.

Random valid programs (sim.progen.random_program, fixed printed seeds) must end
in identical SRAM, DRAM (the span programs touch), register and semaphore
state and pc; fault programs (sim.progen.fault_program) in the same PeError code
(and, for faults the controller finds itself, the same faulting pc); a
program that never halts is reported as a SimulationError naming the PE, pc
and cycle.  Many programs run per simulator launch (load, run, dump, reset,
next) so the start-up cost is paid once per batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.harness import Status, dram_sim_words
from cosim.runner import run_pe_programs
from hw.arch import preset
from hw.isa import PeError

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_pe_tiny")]
ARCH = preset("tiny")
BATCH = 100  # programs per simulator launch
DEFAULT_BATCHES = 3  # a few hundred programs per `make test`
EXTENDED_BATCHES = 30


def _progen():
    try:
        import hw.pe.pe  # noqa: F401
        from sim import progen
    except ImportError as exc:  # pragma: no cover - while the PE is being written
        pytest.skip(f"PE or program generator not importable: {exc}")
    return progen


def dram_span() -> int:
    return _progen().DRAM_SPAN


def ref_run(image, max_instructions: int = 2_000_000) -> dict:
    """Run ``image`` on the reference simulator with the cosim DRAM capacity."""
    from sim.network import StandInNetwork
    from sim.pe_sim import PeSim

    net = StandInNetwork(ARCH, dram_bytes=dram_sim_words(ARCH) * ARCH.word_bytes)
    pe = PeSim(ARCH, (0, 0), net)
    pe.load(image)
    res = pe.run(max_instructions)
    return {
        "status": res.status,
        "error": int(res.error),
        "error_pc": res.error_pc,
        "pc": res.pc,
        "cycles": res.cycles,
        "sram": pe.sram.copy(),
        "dram": np.frombuffer(net.dram(0).dump(0, dram_span()), np.uint8),
        "regs": np.array(pe.regs, dtype=np.uint32),
        "sems": np.array(pe.sems, dtype=np.uint32),
    }


def rtl_run(images, refs, name: str) -> list[dict]:
    limits = [20 * r["cycles"] + 20_000 for r in refs]
    runs, _ = run_pe_programs(ARCH, images, max_cycles=limits, dram_bytes=dram_span(), name=name)
    return runs


def _diff(ref: dict, rtl: dict) -> list[str]:
    problems = []
    for key in ("sram", "dram", "regs", "sems"):
        a, b = np.asarray(ref[key]), np.asarray(rtl.get(key, []))
        if a.shape != b.shape or not np.array_equal(a, b):
            where = np.flatnonzero(a != b)[:8] if a.shape == b.shape else "shape"
            problems.append(f"{key} differs at {where}")
    if ref["pc"] != rtl.get("pc"):
        problems.append(f"pc {rtl.get('pc')}, reference {ref['pc']}")
    return problems


def _check_batch(seeds: list[int], name: str, segments: bool = False) -> None:
    progen = _progen()
    print(f"random program seeds {seeds[0]}..{seeds[-1]} on {ARCH.name}, segments {segments}")
    # odd seeds: half of the unit commands nowait, each ordered by a FENCE
    images = [
        progen.random_program(ARCH, s, nowait=s % 2 == 1, segments=segments)[0] for s in seeds
    ]
    refs = [ref_run(img) for img in images]
    assert all(r["status"] == "halted" for r in refs), [r["status"] for r in refs]
    runs = rtl_run(images, refs, name)
    failures = []
    for seed, ref, rtl in zip(seeds, refs, runs, strict=True):
        if rtl.get("status") != Status.HALTED:
            failures.append(
                f"seed {seed}: RTL status {rtl.get('status')} error "
                f"{rtl.get('error')} at pc {rtl.get('err_pc')} ({rtl.get('hang')})"
            )
            continue
        problems = _diff(ref, rtl)
        if problems:
            failures.append(f"seed {seed}: {'; '.join(problems)}")
    assert not failures, f"{len(failures)} of {len(seeds)} programs differ:\n" + "\n".join(
        failures[:20]
    )


@pytest.mark.parametrize("batch", range(DEFAULT_BATCHES))
def test_random_programs_match_reference(batch):
    seeds = list(range(1000 + batch * BATCH, 1000 + (batch + 1) * BATCH))
    _check_batch(seeds, f"diff{batch}")


def test_segmented_programs_match_reference():
    """VOP segments and REQB (docs/isa.md "Segments") in random programs."""
    _check_batch(list(range(3000, 3000 + BATCH)), "diffseg", segments=True)


@pytest.mark.extended
@pytest.mark.parametrize("batch", range(EXTENDED_BATCHES))
def test_random_programs_match_reference_extended(batch):
    seeds = list(range(100_000 + batch * BATCH, 100_000 + (batch + 1) * BATCH))
    _check_batch(seeds, f"diffx{batch}")


FAULT_KINDS = [PeError.ILLEGAL, PeError.ADDRESS, PeError.SEM_OVERFLOW, PeError.DMA]
# Faults found by the controller itself carry the faulting pc on both sides; faults
# that arrive from the DMA engine or the network are reported by the RTL at the pc
# the controller has reached by then (the reference: at the DMA/SIGNAL's pc).
SYNC_FAULTS = (PeError.ILLEGAL, PeError.ADDRESS)


def _check_faults(seeds: list[int], name: str, segments: bool = False) -> None:
    progen = _progen()
    cases = [(kind, s) for kind in FAULT_KINDS for s in seeds]
    print(f"fault program seeds {seeds} x {[k.name for k in FAULT_KINDS]}, segments {segments}")
    images, descs = zip(
        *(progen.fault_program(ARCH, kind, s, segments=segments) for kind, s in cases), strict=True
    )
    refs = [ref_run(img) for img in images]
    runs = rtl_run(list(images), refs, name)
    failures = []
    for (kind, seed), desc, ref, rtl in zip(cases, descs, refs, runs, strict=True):
        assert ref["error"] == kind, f"reference: {desc} ended in {ref['error']}"
        if rtl.get("error") == int(kind) and kind in SYNC_FAULTS:
            if rtl.get("err_pc") != ref["error_pc"]:
                failures.append(
                    f"{kind.name} seed {seed} ({desc['variant']}): RTL err_pc "
                    f"{rtl.get('err_pc')}, reference {ref['error_pc']}"
                )
        if rtl.get("error") != int(kind):
            failures.append(
                f"{kind.name} seed {seed} ({desc['variant']}): RTL error "
                f"{rtl.get('error')} status {rtl.get('status')}, want {int(kind)}"
            )
    assert not failures, "\n".join(failures)


def test_fault_programs_match_reference():
    _check_faults(list(range(8)), "faults")


def test_segmented_fault_programs_match_reference():
    # seed 20: ADDRESS by a row-major A's last row (matmul_arow)
    _check_faults([*range(8), 20], "faultseg", segments=True)


@pytest.mark.extended
def test_fault_programs_match_reference_extended():
    _check_faults(list(range(8, 200)), "faultsx")


def test_hang_is_reported_within_the_timeout():
    _progen()
    from hw.asm import assemble
    from hw.image import ProgramImage

    image = ProgramImage(assemble("li x1, 5\nwait sem=0, count=1\nhalt\n"), name="hang")
    runs, _ = run_pe_programs(ARCH, [image], max_cycles=5000, name="hang")
    msg = runs[0].get("hang", "")
    assert "PE (0, 0) hung" in msg and "after 5000 cycles" in msg, runs[0]
    assert "pc 1" in msg, msg  # blocked on the WAIT
