"""SRAM bank contention in the performance model (sim/perf_banks.py): inbound data
waits while the receiving PE's units stream the bank it lands in."""

from __future__ import annotations

import pytest

from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import SignalMode, encode_desc
from sim.perf import PerfSim
from sim.perf_banks import Streams, desc_banks

SMALL = preset("small")


def test_delay_appends_the_covered_cycles_after_each_interval():
    s = Streams()
    s.add(100, 200, 0b0010)
    s.add(250, 300, 0b0100)
    s.add(300, 400, 0b0010)
    # no interval on bank 0
    assert s.delay(150, 180, 0b0001) == 180
    # window [150, 180] inside [100, 200): all 31 words after 200
    assert s.delay(150, 180, 0b0010) == 200 + 30
    # window [90, 120]: 10 words before 100, the other 21 after 200
    assert s.delay(90, 120, 0b0010) == 200 + 20
    # window [280, 320] on bank 1: [300, 400) holds it; 20 words before, 21 after
    assert s.delay(280, 320, 0b0010) == 400 + 20
    # banks 1 and 2: [250, 300) then [300, 400)
    assert s.delay(240, 260, 0b0110) == 400 + 10


def test_desc_banks_covers_rows_and_planes():
    bank = SMALL.bank_bytes
    d = dict(local=bank - 32, count0=4, count1=1, count2=1, lstride1=0, lstride2=0)
    assert desc_banks(d, "local", SMALL) == 0b11  # 64 bytes across the bank boundary
    d = dict(remote=0, count0=1, count1=3, count2=1, rstride1=bank, rstride2=0)
    assert desc_banks(d, "remote", SMALL) == 0b111


def _run(vop_addr: int, words: int = 256) -> tuple[int, int]:
    """(0, 0) writes ``words`` into (1, 0) at 0x8000 (bank 1) and signals sem 0;
    (1, 0) runs a long int32 VOP with A and D at ``vop_addr``, then waits."""
    desc = encode_desc(
        local=0,
        remote=0x8000,
        count0=words,
        mode=int(SignalMode.NODE),
        x0=1,
        y0=0,
        sem=0,
        signal=1,
    )
    sender = ProgramImage(assemble("li x1, 0x7000\ndma x1, 0\nhalt"), sram=[(0x7000, desc)])
    receiver = ProgramImage(
        assemble(
            f"li x2, {vop_addr}\n"
            "vop rd=x2, rs1=x2, rs2=x2, n16=256, fn=add, tin=i32, tout=i32\n"
            "wait sem=0, count=1\nhalt"
        )
    )
    sim = PerfSim(SMALL, dram_bytes=1 << 20)
    sim.load((0, 0), sender)
    sim.load((1, 0), receiver)
    res = sim.run()
    pe = res.per_pe[(0, 0, 1, 0)]
    return pe["cycles"], pe["bank_stall"]


@pytest.mark.parametrize("words", [64, 256])
def test_inbound_write_waits_for_a_vop_streaming_its_bank(words):
    other, other_stall = _run(0x10000, words)  # bank 2: the write lands during the VOP
    same, same_stall = _run(0x9000, words)  # bank 1: it waits for the VOP to end
    print(f"words {words}: other bank {other} cycles, same bank {same} (stall {same_stall})")
    assert other_stall == 0 and same_stall > 0
    # the whole train lands after the VOP: about one cycle per word later
    assert words - 8 <= same - other <= words + 8
