"""Multicast reads on the RTL chip (tiny preset: 2 x 2, DRAM port 0 at (2, 0)).

A PE issues a RECT read descriptor (docs/isa.md "Multicast reads"): the remote range
(DRAM, or another PE's SRAM) must land in every PE of the rectangle from the requester
to the far corner, each of which WAITs on the semaphore; PEs outside the rectangle are
untouched.  The expected final SRAM is computed with numpy from the images (no
reference simulator: the answer is a plain copy).  All runs share one simulator
launch; each has a watchdog (``max_cycles``); the data seeds are fixed and printed.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.harness import Status
from hw import isa
from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import SignalMode

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_chip_tiny")]
ARCH = preset("tiny")
DESC = 0x7000  # descriptors, x15 = DESC
SEM = 1
MAX_CYCLES = 50_000
DRAM_XY = isa.dram_node(ARCH, 0)
EVERY = [(x, y) for y in range(ARCH.mesh_rows) for x in range(ARCH.mesh_cols)]


def _data(seed: int, n: int) -> bytes:
    print(f"data seed={seed} bytes={n}")
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _rect(a, b) -> list[tuple[int, int]]:
    """Tiles of the rectangle with corners ``a`` and ``b``, clipped to the mesh."""
    (x0, x1), (y0, y1) = sorted((a[0], b[0])), sorted((a[1], b[1]))
    return [(x, y) for (x, y) in EVERY if x0 <= x <= x1 and y0 <= y <= y1]


def _program(text: str, desc: bytes | None = None) -> ProgramImage:
    prog = assemble(f"li x15, {DESC}\n" + text + "\nhalt\n")
    return ProgramImage(prog, sram=[(DESC, desc)] if desc else [], name="mcast-read")


def mcast_case(requester, far, source, seed: int, *, rows: int = 2, words: int = 10) -> dict:
    """``requester`` reads ``rows`` x ``words`` words from ``source`` (DRAM_XY or a tile)
    into the rectangle (requester .. far).  Returns the run and the expected SRAMs."""
    local, lstride = 0x1000, 0x200
    remote, rstride = 0x2400, 0x300
    data = _data(seed, rows * rstride)
    d = isa.encode_desc(
        local=local,
        remote=remote,
        count0=words,
        count1=rows,
        lstride1=lstride,
        rstride1=rstride,
        mode=int(SignalMode.RECT),
        x0=source[0],
        y0=source[1],
        x1=far[0],
        y1=far[1],
        sem=SEM,
        read=1,
    )
    rect = _rect(requester, far)
    images, dram = {}, []
    srams = {c: np.zeros(ARCH.sram_bytes, np.uint8) for c in EVERY}
    for c in rect:
        images[c] = _program(f"wait sem={SEM}, count=1\n")
    images[requester] = _program(f"dma x15, 0\nwait sem={SEM}, count=1\n", d)
    srams[requester][DESC : DESC + len(d)] = np.frombuffer(d, np.uint8)
    if source == DRAM_XY:
        dram = [(remote, data)]
    else:  # another PE's SRAM; it answers whether or not it is in the rectangle
        seg = (remote, data)
        old = images.get(source, _program(""))
        images[source] = ProgramImage(old.imem, [*old.sram, seg], name=old.name)
        srams[source][remote : remote + len(data)] = np.frombuffer(data, np.uint8)
    src, n = np.frombuffer(data, np.uint8), words * isa.WORD_BYTES
    for c in rect:
        for r in range(rows):
            at = local + r * lstride
            srams[c][at : at + n] = src[r * rstride : r * rstride + n]
    if dram:  # DRAM contents ride on the requester's image
        img = images[requester]
        images[requester] = ProgramImage(img.imem, img.sram, dram, img.name)
    return {
        "name": f"{requester} reads {source} -> far corner {far}",
        "run": {"images": images, "max_cycles": MAX_CYCLES},
        "rect": rect,
        "srams": srams,
    }


CASES = [
    # from DRAM: the whole grid from (0, 0); a 2 x 1 and a 1 x 2 rectangle from other
    # corners; the whole grid from (1, 1) (both axes reversed); a far corner beyond the
    # mesh (clipped)
    ((0, 0), (1, 1), DRAM_XY, 301),
    ((1, 1), (0, 1), DRAM_XY, 302),
    ((1, 1), (1, 0), DRAM_XY, 303),
    ((1, 1), (0, 0), DRAM_XY, 304),
    ((0, 1), (40, 1), DRAM_XY, 305),
    # PE to PE: the answerer outside the rectangle, and inside it
    ((0, 1), (1, 1), (1, 0), 311),
    ((0, 0), (1, 1), (1, 1), 312),
]


def check_case(case: dict, got: dict, name: str) -> None:
    """Halted without error; every semaphore back at 0 (every signal awaited); every
    PE's SRAM as expected (the rectangle holds the copy, the others are untouched)."""
    print(name, "cycles", got["cycles"])
    assert got["status"] == Status.HALTED, (name, got["errors"])
    for c in EVERY:
        pe = got["pes"][c[1] * ARCH.mesh_cols + c[0]]
        assert pe["error"] == 0, (name, c, got["errors"])
        assert not pe["sems"].any(), (name, c, pe["sems"])
        bad = np.flatnonzero(pe["sram"] != case["srams"][c])
        where = "in" if c in case["rect"] else "outside"
        assert bad.size == 0, f"{name}: PE {c} ({where} the rectangle) differs at {bad[:4]}"


def test_multicast_reads_on_the_chip():
    from cosim.chip_driver import run_chip_programs

    cases = [mcast_case(*c[:3], seed=c[3]) for c in CASES]
    res, _ = run_chip_programs(ARCH, [c["run"] for c in cases], name="chip-mcast-read")
    for case, got in zip(cases, res, strict=True):
        check_case(case, got, case["name"])


STRESS_SEEDS = [21, 22]


def test_multicast_reads_under_dram_stress():
    """The DRAM cases with randomized DRAM timing (cosim/dram.py stress mode: extra
    latency, back-pressure, bubbles inside the RECT answers): the same final state."""
    from cosim.chip_driver import run_chip_programs

    cases = [mcast_case(*c[:3], seed=c[3]) for c in CASES if c[2] == DRAM_XY]
    runs = [{**case["run"], "stress": seed} for seed in STRESS_SEEDS for case in cases]
    print(f"stress seeds={STRESS_SEEDS}")
    res, _ = run_chip_programs(ARCH, runs, name="chip-mcast-read-stress")
    for i, got in enumerate(res):
        case = cases[i % len(cases)]
        check_case(case, got, f"{case['name']} (stress seed {STRESS_SEEDS[i // len(cases)]})")
