"""The cosim infrastructure on a small stand-in DUT (tests/cosim/toy_dut.py):
Verilator build cache, HDL clock, harness commands (load, run, dump, debug), the
DRAM backdoor, error reporting and hang detection."""

from __future__ import annotations

import os

import numpy as np
import pytest

from cosim import verilator as vl
from cosim.harness import Status, design_sources
from cosim.pe_driver import bytes_to_hex, hex_to_bytes
from cosim.runner import job_folder, run_testbench
from hw.arch import preset
from tests.cosim.toy_dut import ToyDut

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_toy")]
ARCH = preset("tiny")
HANG = 0xFFFFFFFF


def toy_build() -> vl.Build:
    spec = vl.BuildSpec(
        design="toy",
        preset=ARCH.name,
        top="cosim_top",
        sources=design_sources(ToyDut(ARCH), ARCH),
        waves=vl.waves_enabled(),
    )
    return vl.build(spec)


def ref_toy(count: int, err: int, imem0: int) -> dict:
    """What the toy DUT must do: run count cycles, write word 1, halt or fault."""
    word1 = np.zeros(16, np.uint8)
    word1[:4] = np.frombuffer(np.uint32(count).tobytes(), np.uint8)
    word1[4:12] = np.frombuffer(np.uint64(imem0).tobytes(), np.uint8)
    status = Status.ERROR if err else Status.HALTED
    return {"status": int(status), "error": err, "word1": word1, "cycles": count + 2}


def rtl_toy(programs: list[tuple[int, int, int]], max_cycles: int) -> list[dict]:
    """Run (count, error code, imem word 0) programs in one simulator launch."""
    arrays = {}
    for i, (count, err, imem0) in enumerate(programs):
        sram = np.zeros(32, np.uint8)
        sram[:8] = np.frombuffer(np.uint64(count | err << 32).tobytes(), np.uint8)
        arrays[f"imem_{i}"] = np.array([imem0], np.uint64)
        arrays[f"sram_{i}"] = sram
        arrays[f"dram_{i}"] = np.arange(32, dtype=np.uint8)
    meta = {
        "arch": ARCH.to_dict(),
        "programs": len(programs),
        "checked": True,
        "max_cycles": [max_cycles] * len(programs),
        "dram_bytes": 48,
    }
    res = run_testbench(toy_build(), "cosim.tb_pe", job_folder("toy"), meta, arrays)
    out = []
    for i, entry in enumerate(res.meta["runs"]):
        entry = dict(entry)
        if "hang" not in entry:
            entry.update(
                sram=res.arrays[f"sram_{i}"],
                dram=res.arrays[f"dram_{i}"],
                regs=res.arrays[f"regs_{i}"],
            )
        out.append(entry)
    return out


def test_hex_round_trip():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 16 * 37, dtype=np.uint8)
    text = bytes_to_hex(data)
    assert text.splitlines()[0] == data[:16][::-1].tobytes().hex()
    assert np.array_equal(hex_to_bytes(text), data)


def test_build_is_cached():
    first = toy_build()
    again = toy_build()
    assert again.folder == first.folder and again.seconds == 0.0
    assert first.executable.exists()
    assert first.folder.parent == vl.BUILD_ROOT
    assert first.folder.name.startswith(f"toy-{ARCH.name}-")


def test_toy_batch_halt_error_hang():
    programs = [(1000, 0, 0xDEADBEEF), (50_000, 0, 7), (300, 2, 1), (HANG, 0, 0)]
    runs = rtl_toy(programs, max_cycles=100_000)
    for (count, err, imem0), run in zip(programs[:3], runs[:3], strict=True):
        want = ref_toy(count, err, imem0)
        assert run["status"] == want["status"]
        assert run["error"] == want["error"]
        assert run["cycles"] == want["cycles"]
        assert np.array_equal(run["sram"][16:32], want["word1"])
        assert run["sram"].size == ARCH.sram_bytes
        assert list(run["regs"]) == [3 * i for i in range(16)]
        # DRAM backdoor: loaded bytes, and word 2 written by the toy at start
        assert np.array_equal(run["dram"][:32], np.arange(32, dtype=np.uint8))
        assert np.array_equal(run["dram"][32:40], run["sram"][:8])
    assert runs[2]["err_pc"] == 0x1234
    hang = runs[3]["hang"]
    assert "PE (0, 0) hung" in hang and "after 100000 cycles" in hang
    assert "pc " in hang and "cycle " in hang


def test_old_builds_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(vl, "BUILD_ROOT", tmp_path)
    folders = []
    for i in range(5):
        d = tmp_path / f"pe-tiny-{i:012x}"
        d.mkdir()
        (d / ".done").write_text("ok\n")
        os.utime(d / ".done", (1000 + i, 1000 + i))
        folders.append(d)
    other = tmp_path / "pe-tiny-exe-000000000000"
    other.mkdir()
    (other / ".done").write_text("ok\n")
    spec = vl.BuildSpec(design="pe", preset="tiny", top="cosim_top", sources=())
    vl._prune(spec, folders[4])
    left = sorted(d.name for d in tmp_path.iterdir() if d.is_dir())
    assert left == sorted([other.name, folders[2].name, folders[3].name, folders[4].name])
