"""SRAM bank contention on the RTL chip, against the performance model.

A PE that streams a bank with its vector unit holds off DMA writes into that bank
(the DMA write port has the lowest priority but the host's): a signalled write from a
neighbour lands only after the VOP.  The model (sim/perf_banks.py) charges the same
delay; the RTL's per-PE halt cycles and the model's agree within a few cycles, with
and without the conflict."""

import pytest

from cosim.chip_driver import run_chip_programs
from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import SignalMode, encode_desc
from sim.perf import PerfSim

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_chip_tiny")]

TINY = preset("tiny")
BANK = TINY.bank_bytes


def _write_desc(local: int, remote: int, words: int) -> bytes:
    """A signalled write of ``words`` from ``local`` to ``remote`` of PE (1, 0), sem 0."""
    return encode_desc(
        local=local,
        remote=remote,
        count0=words,
        mode=int(SignalMode.NODE),
        x0=1,
        y0=0,
        sem=0,
        signal=1,
    )


def _images(vop_addr: int, words: int) -> dict:
    """(0, 0) writes ``words`` into bank 1 of (1, 0) and signals it; (1, 0) runs a
    64-step int32 VOP with A and D at ``vop_addr``, then waits for the write."""
    desc = _write_desc(0, BANK + 0x100, words)
    sender = ProgramImage(assemble(f"li x1, {3 * BANK}\ndma x1, 0\nhalt"), sram=[(3 * BANK, desc)])
    receiver = ProgramImage(
        assemble(
            f"li x2, {vop_addr}\n"
            "vop rd=x2, rs1=x2, rs2=x2, n16=64, fn=add, tin=i32, tout=i32\n"
            "wait sem=0, count=1\nhalt"
        )
    )
    return {(0, 0): sender, (1, 0): receiver}


def _sender_images(vop_addr: int, words: int) -> dict:
    """(0, 0) writes ``words`` from its bank 1 into (1, 0) and then runs the VOP at
    ``vop_addr``: its own DMA reads wait for the VOP when that is in bank 1."""
    desc = _write_desc(BANK + 0x100, 2 * BANK, words)
    sender = ProgramImage(
        assemble(
            f"li x1, {3 * BANK}\nli x2, {vop_addr}\ndma x1, 0\n"
            "vop rd=x2, rs1=x2, rs2=x2, n16=64, fn=add, tin=i32, tout=i32\nhalt"
        ),
        sram=[(3 * BANK, desc)],
    )
    return {(0, 0): sender, (1, 0): ProgramImage(assemble("wait sem=0, count=1\nhalt"))}


def test_streaming_vop_holds_off_dma_rtl_vs_model():
    """Receiver side (inbound writes) and sender side (the DMA's own reads)."""
    cases = [
        (_images, BANK + 0x1000, 64),
        (_images, 2 * BANK, 64),
        (_images, BANK + 0x1000, 200),
        (_images, 2 * BANK, 200),
        (_sender_images, BANK + 0x1000, 200),
        (_sender_images, 2 * BANK, 200),
    ]
    runs = [{"images": f(a, w), "max_cycles": 100_000} for f, a, w in cases]
    out, _ = run_chip_programs(TINY, runs, name="test-bank-contention", dram_dump=0)
    rtl, model = [], []
    for (f, addr, words), entry, run in zip(cases, out, runs, strict=True):
        sim = PerfSim(TINY, dram_bytes=1 << 16)
        for c, image in run["images"].items():
            sim.load(c, image)
        pe = sim.run().per_pe[(0, 0, 1, 0)]
        rtl.append(entry["pes"][1]["halt_cycle"])
        model.append(pe["cycles"])
        print(f"{f.__name__} bank {addr // BANK}, {words} words: RTL {rtl[-1]}, model {model[-1]}")
        assert (pe["bank_stall"] > 0) == (addr // BANK == 1)
    # the conflict costs about one cycle per word on the RTL, and in the model
    assert rtl[0] - rtl[1] >= 50 and rtl[2] - rtl[3] >= 180 and rtl[4] - rtl[5] >= 180
    for r, m in zip(rtl, model, strict=True):
        assert abs(r - m) <= 0.03 * r
