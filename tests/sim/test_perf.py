"""The performance model (sim/perf.py): functional results equal to the reference
simulators, instruction costs equal to the RTL's measured ones, timing of DMA,
semaphores, links and DRAM, scale, the image directory convention and the CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from hw.arch import preset
from hw.asm import assemble
from hw.errors import SimulationError
from hw.image import ProgramImage
from hw.isa import SignalMode, dram_node, encode_desc, pack_node
from sim.network import ChipSim, StandInNetwork
from sim.pe_sim import PeSim
from sim.perf import PerfSim, calibrate
from sim.perf_costs import matmul_cost, static_cost, vop_cost
from sim.perf_programs import load_image_dir, ring_images, save_image_dir
from sim.progen import random_program

TINY, SMALL = preset("tiny"), preset("small")
MB = 1 << 20


def run_single(arch, image, **kw):
    sim = PerfSim(arch, standin=True, dram_bytes=MB, **kw)
    sim.load((0, 0), image)
    return sim, sim.run()


def run_chip(arch, images, **kw):
    sim = PerfSim(arch, dram_bytes=MB, **kw)
    for c, img in images.items():
        sim.load(c, img)
    return sim, sim.run()


def img(text, sram=(), dram=(), name="t"):
    return ProgramImage(assemble(text), sram=list(sram), dram=list(dram), name=name)


# -- functional equality ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_single_pe_random_programs_equal_pesim(seed):
    print(f"seed {seed}")
    image, _ = random_program(TINY, seed)
    ref = PeSim(TINY, (0, 0), StandInNetwork(TINY, MB))
    ref.load(image)
    assert ref.run(10**6).halted
    sim, res = run_single(TINY, image)
    pe = sim.chips[(0, 0)][0].endpoints[(0, 0)]
    assert res.status[(0, 0, 0, 0)] == "halted"
    assert pe.state() == ref.state()
    assert np.array_equal(sim.chips[(0, 0)][0].dram(0).mem, ref.network.dram(0).mem)
    assert res.instructions == ref.instructions


@pytest.mark.parametrize("arch", [TINY, SMALL], ids=lambda a: a.name)
def test_ring_equals_chipsim(arch):
    images = ring_images(arch, rounds=3, seed=5)
    ref = ChipSim(arch, dram_bytes=MB)
    for c, im in images.items():
        ref.load(c, im)
    ref.run()
    sim, res = run_chip(arch, images)
    net = sim.chips[(0, 0)][0]
    for c in images:
        assert net.endpoints[c].state() == ref.pes[c].state(), c
    assert np.array_equal(net.dram(0).mem, ref.network.dram(0).mem)
    assert set(res.status.values()) == {"halted"}
    assert res.mac_utilization > 0 and res.links["link_util_max"] > 0
    assert res.dram_bytes == len(images) * 256


# -- instruction costs (RTL-measured figures, docs/perf.md) -----------------------------------


def cost(text, regs=None):
    c = static_cost(TINY, assemble(text)[0])
    return vop_cost(c, regs, TINY.bank_bytes) if regs is not None else c.cycles


def test_mac_costs_are_the_rtl_ones():
    # measured on the RTL PE (tiny, 4 x 16): instruction cycles in the program
    assert cost("matmul rs1=x1, rs2=x2, rs3=x3, k16=1, ldc=64") == 27
    assert cost("matmul rs1=x1, rs2=x2, rs3=x3, k16=4, ldc=64") == 75
    assert cost("matmul rs1=x1, rs2=x2, rs3=x3, k16=1, ldc=64, out32=1") == 37
    assert cost("matmul rs1=x1, rs2=x2, rs3=x3, k16=4, ldc=64, noout=1") == 69
    assert cost("qload x1, 0") == 13
    assert cost("lw x2, 0(x1)") == 2 and cost("sw x2, 0(x1)") == 1


@pytest.mark.parametrize(
    "text,regs,want",
    [
        # (A, B, D in banks 0, 2, 1: no conflicts) measured RTL cycles
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=add, tin=i8, tout=i8", (0, 0x4000, 0x2000), 18),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=add, tin=i32, tout=i32", (0, 0x4000, 0x2000), 45),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=4, fn=mov, tin=i8, tout=i32", (0, 0x4000, 0x2000), 26),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=sub, tin=i16, tout=i16", (0, 0x4000, 0x2000), 27),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=rsum, tin=i8, tout=i32", (0, 0x4000, 0x2000), 18),
        # operands sharing bank 0
        ("vop rd=x3, rs1=x1, rs2=x2, n16=8, fn=add, tin=i32, tout=i32", (0, 0x800, 0x1000), 99),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=2, fn=exp, tin=i32, tout=i32", (0, 0x4000, 0x800), 21),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=16, fn=sub, tin=i8, tout=i8", (0x2000, 0, 0), 35),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=4, fn=sub, tin=i8, tout=i8", (0x2000, 0, 0), 14),
        ("vop rd=x3, rs1=x1, rs2=x2, n16=16, fn=add, tin=i8, tout=i8", (0, 0, 0x4000), 42),
    ],
)
def test_vop_costs_are_the_rtl_ones(text, regs, want):
    r = [0] * 16
    r[1], r[2], r[3] = regs
    assert cost(text, r) == want


def test_matmul_bank_conflict_cost():
    c = static_cost(TINY, assemble("matmul rs1=x1, rs2=x2, rs3=x3, k16=4, ldc=16")[0])
    regs = [0] * 16
    regs[1], regs[2], regs[3] = 0x800, 0x2400, 0x6000
    assert matmul_cost(c, regs, TINY.bank_bytes, TINY) == 75  # RTL: A, B in banks 0, 1
    regs[2] = 0x1400
    assert matmul_cost(c, regs, TINY.bank_bytes, TINY) == 91  # RTL: A, B both in bank 0


def test_recip_cost_depends_on_the_operands():
    text = """li x1, 0
    vcfg cfg=recip_k, imm=30
    vop rd=x3, rs1=x1, rs2=x1, n16=1, fn=recip, tin=i32, tout=i32
    halt"""
    ones = np.ones(16, "<i4").tobytes()
    zeros = np.zeros(16, "<i4").tobytes()
    li_vcfg_halt = 1 + 1 + 1 + 2
    _, slow = run_single(TINY, img(text, sram=[(0, ones)]))
    _, fast = run_single(TINY, img(text, sram=[(0, zeros)]))
    assert slow.cycles == li_vcfg_halt + 2 + 16 * 32 + 16  # 530 measured (+ the LI and VCFG)
    assert fast.cycles == li_vcfg_halt + 2 + 16 + 16


def test_scalar_program_cycles():
    _, res = run_single(TINY, img("\n".join(["nop"] * 10) + "\nhalt"))
    assert res.cycles == 13  # RTL: n instructions + HALT = n + 3
    _, res = run_single(TINY, img("loop x0, body=1, imm=5\naddi x1, x1, 1\nhalt"))
    assert res.cycles == 1 + 5 + 3


# -- DMA, semaphores, NoC, DRAM ------------------------------------------------------------------


def test_standin_dma_costs_match_rtl():
    dx, dy = dram_node(TINY, 0)
    descs = (
        encode_desc(local=0x2000, remote=0x4000, count0=64, mode=0, sem=1, signal=1)
        + encode_desc(local=0x2000, remote=0, count0=64, mode=1, x0=dx, y0=dy, sem=1, read=1)
        + encode_desc(local=0x2000, remote=0, count0=256, mode=1, x0=dx, y0=dy)
    )
    rtl = {0: 84, 48: 252, 96: 285}  # measured: SELF copy, DRAM read (+ WAIT), DRAM write
    for off, want in rtl.items():
        wait = "" if off == 96 else "wait sem=1, count=1\n"
        _, res = run_single(
            TINY,
            img(
                f"li x1, 0x7000\ndma x1, {off}\n{wait}halt",
                sram=[(0x7000, descs)],
                dram=[(0, bytes(4096))],
            ),
        )
        print(off, res.cycles, want)
        assert abs(res.cycles - want) <= 0.03 * want


def signal_pair(arch, work_k16: int, dst=(1, 1)):
    sender = img(f"""li x1, {pack_node(*dst)}
    loop x0, body=1, imm=4
    matmul rs1=x0, rs2=x0, rs3=x0, k16={work_k16}, ldc=0, noout=1
    signal x1, sem=3, mode=node, count=2
    halt""")
    receiver = img("wait sem=3, count=2\nhalt")
    return {(0, 0): sender, dst: receiver}


def test_wait_blocks_until_the_signal_arrives():
    sim, res = run_chip(SMALL, signal_pair(SMALL, 16))
    # LI, LOOP, 4 noout MATMULs with A and B in one bank (K * 20 / 16 + 5, measured)
    send_time = 1 + 1 + 4 * (256 * 20 // 16 + 5)
    hops = 2
    arrival = send_time + 3 + 2 * hops + 2
    recv = res.per_pe[(0, 0, 1, 1)]
    assert recv["wait"] >= send_time
    assert arrival <= recv["cycles"] <= arrival + 6
    _, longer = run_chip(SMALL, signal_pair(SMALL, 16, dst=(3, 3)))
    assert longer.per_pe[(0, 0, 3, 3)]["cycles"] - recv["cycles"] == 2 * 4  # 4 more hops


def writer(dst, words: int, sem=0):
    desc = encode_desc(
        local=0,
        remote=0x8000,
        count0=words,
        mode=int(SignalMode.NODE),
        x0=dst[0],
        y0=dst[1],
        sem=sem,
        signal=1,
    )
    return img("li x1, 0x7000\ndma x1, 0\nhalt", sram=[(0x7000, desc)])


def test_link_contention_serialises_bursts():
    words = 1024
    one, _ = run_chip(
        SMALL, {(0, 0): writer((3, 0), words), (3, 0): img("wait sem=0, count=1\nhalt")}
    )
    t_one = one.tiles[(0, 0, 3, 0)].done
    # (1, 0) -> (3, 0) shares the links (1,0)->(2,0)->(3,0) with (0, 0) -> (3, 0)
    two, res = run_chip(
        SMALL,
        {
            (0, 0): writer((3, 0), words),
            (1, 0): writer((3, 0), words),
            (3, 0): img("wait sem=0, count=2\nhalt"),
        },
    )
    t_two = two.tiles[(0, 0, 3, 0)].done
    flits = words + words // SMALL.max_packet_flits
    print(t_one, t_two, flits)
    assert t_two - t_one >= 0.9 * flits
    assert res.links["link_util_max"] > 0.8


def test_dram_bandwidth_and_latency():
    a = preset("s2chip")
    words = 4096
    dx, dy = dram_node(a, 0)
    desc = encode_desc(
        local=0, remote=0, count0=words, mode=int(SignalMode.NODE), x0=dx, y0=dy, sem=0, read=1
    )
    sim, res = run_chip(
        a,
        {
            (dx - 1, dy): img(
                "li x1, 0x10000\ndma x1, 0\nwait sem=0, count=1\nhalt", sram=[(0x10000, desc)]
            )
        },
    )
    ideal = 16 * words // a.dram_bytes_per_cycle + a.dram_latency
    print(res.cycles, ideal)
    assert ideal <= res.cycles <= ideal + 60
    assert res.dram_bytes == 16 * words
    assert 0.8 < res.dram_utilization * a.dram_ports <= 1.0


def test_dram_write_waits_for_queued_reads_and_holds_later_requests():
    """The DRAM endpoint keeps reads and writes in order (cosim/dram.py): a write
    behind a read waits for the read's answer, and a read behind the write waits
    for the write: each read then pays the full latency again."""
    a = SMALL
    dx, dy = dram_node(a, 0)

    def desc(read: int, remote: int) -> bytes:
        return encode_desc(
            local=0, remote=remote, count0=64, mode=int(SignalMode.NODE), x0=dx, y0=dy,
            sem=0, read=read,
        )  # fmt: skip

    def prog(kinds: str):
        sram = [(0x4000 + 48 * i, desc(int(k == "r"), 0x10000 * i)) for i, k in enumerate(kinds)]
        text = "".join(f"li x1, {0x4000 + 48 * i}\ndma x1, 0\n" for i in range(len(kinds)))
        text += f"wait sem=0, count={kinds.count('r')}\nhalt"
        return {(dx - 1, dy): img(text, sram=sram)}

    _, reads = run_chip(a, prog("rr"))
    _, mixed = run_chip(a, prog("rwr"))
    print(reads.cycles, mixed.cycles)
    # the write costs its 64 words and the second read a whole latency more
    assert mixed.cycles - reads.cycles >= a.dram_latency + 64 - 8


def test_dma_queue_stalls_the_controller():
    a = TINY
    dx, dy = dram_node(a, 0)
    desc = encode_desc(local=0, remote=0, count0=256, mode=int(SignalMode.NODE), x0=dx, y0=dy)
    text = "li x1, 0x7000\n" + "dma x1, 0\n" * 6 + "halt"
    sim, res = run_chip(a, {(0, 0): img(text, sram=[(0x7000, desc)])})
    t = sim.tiles[(0, 0, 0, 0)]
    per = 256 + 16
    # the 6th DMA waits until the 2nd descriptor started (queue of 4 + 1 active)
    assert t.busy >= per + 6
    assert res.cycles >= 6 * per
    assert t.timer.descriptors == 6


def test_rect_multicast_reaches_every_tile():
    a = SMALL
    desc = encode_desc(
        local=0,
        remote=0x100,
        count0=2,
        mode=int(SignalMode.RECT),
        x0=1,
        y0=1,
        x1=3,
        y1=2,
        sem=1,
        signal=1,
    )
    images = {
        (0, 0): img("li x1, 0x7000\ndma x1, 0\nhalt", sram=[(0, bytes(range(32))), (0x7000, desc)])
    }
    for y in (1, 2):
        for x in (1, 2, 3):
            images[(x, y)] = img("wait sem=1, count=1\nhalt")
    sim, res = run_chip(a, images)
    net = sim.chips[(0, 0)][0]
    for y in (1, 2):
        for x in (1, 2, 3):
            assert net.endpoints[(x, y)].read_sram(0x100, 32) == bytes(range(32))
    near, far = res.per_pe[(0, 0, 1, 1)]["cycles"], res.per_pe[(0, 0, 3, 2)]["cycles"]
    assert far - near == 2 * 3  # three more hops along the tree


def test_deadlock_and_faults_are_reported():
    with pytest.raises(SimulationError, match="deadlock"):
        run_chip(TINY, {(0, 0): img("wait sem=0, count=1\nhalt")})
    bad = encode_desc(local=0, remote=0, count0=1, mode=int(SignalMode.NODE), x0=9, y0=9)
    with pytest.raises(SimulationError, match="error DMA"):
        run_chip(TINY, {(0, 0): img("li x1, 0x100\ndma x1, 0\nhalt", sram=[(0x100, bad)])})
    sim = PerfSim(TINY, dram_bytes=MB)
    sim.load((0, 0), img("li x1, 0x100\ndma x1, 0\nhalt", sram=[(0x100, bad)]))
    assert sim.run(check=False).status[(0, 0, 0, 0)] == "error"
    with pytest.raises(SimulationError, match="no PE at"):
        sim.load((5, 5), img("halt"))


# -- scale, boards, calibration helper, CLI --------------------------------------------------------


def test_s2chip_runs_in_seconds():
    a = preset("s2chip")
    images = ring_images(a, rounds=10, seed=1)
    t0 = time.process_time()
    sim, res = run_chip(a, images)
    cpu = time.process_time() - t0
    print(
        f"s2chip ring: {res.instructions} PE-instructions, {res.cycles} cycles, "
        f"{cpu:.2f} s CPU, {res.instructions / cpu:.0f} instructions/s"
    )
    assert len(res.per_pe) == 152 and res.cycles > 0
    assert cpu < 20


def test_s2board_chips_and_chip_links():
    a = preset("s2board")
    images = ring_images(a, rounds=2, seed=2)
    sim = PerfSim(a, dram_bytes=MB)
    for chip in ((0, 0), (7, 5)):
        for c, im in images.items():
            sim.load(c, im, chip=chip)
    res = sim.run()
    assert len(res.per_pe) == 2 * 152
    assert res.per_pe[(0, 0, 3, 4)]["cycles"] == res.per_pe[(7, 5, 3, 4)]["cycles"]
    hops = 7 + 5
    t = sim.chip_transfer((0, 0), (7, 5), 4000, 100)
    assert t == 100 + hops * a.chip_link_latency + 4000 // a.chip_link_bytes_per_cycle
    assert sim.chip_transfer((1, 0), (7, 5), 4000, 100) > t  # queued behind the first
    with pytest.raises(SimulationError, match="inside the 8 x 6 board"):
        sim.load((0, 0), images[(0, 0)], chip=(8, 0))


def test_calibrate_reports_errors():
    image = img("\n".join(["nop"] * 10) + "\nhalt", name="nops")
    rep = calibrate([(image, 13), (image, 26)], TINY)
    assert [r["error"] for r in rep["kernels"]] == [0.0, -0.5]
    assert rep["max_abs_error"] == 0.5


def test_image_dir_and_cli(tmp_path, capsys):
    from myelin.cli import main

    images = ring_images(TINY, rounds=2)
    save_image_dir(tmp_path / "ring", images)
    loaded = load_image_dir(tmp_path / "ring")
    assert {k[2:] for k in loaded} == set(images)
    assert (
        main(["perf", str(tmp_path / "ring"), "--arch", "tiny", "--json", "--dram-bytes", str(MB)])
        == 0
    )
    fig = json.loads(capsys.readouterr().out)
    _, res = run_chip(TINY, images)
    assert fig["cycles"] == res.cycles and fig["pes_loaded"] == 4
    assert main(["perf", str(tmp_path / "none"), "--arch", "tiny"]) == 2
