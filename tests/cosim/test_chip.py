"""The RTL chip (hw/chip.py, tiny preset: 2 x 2) against the reference ChipSim.

Multi-PE programs written with hw/asm.py run on the Verilated chip (cosim.tb_chip)
and on ``sim.network.ChipSim``; final SRAM, DRAM, registers and semaphores must
be identical.  Error programs must end in the same PeError on the same PE, and
the host driver must name the PE, pc and (for refused packets) the address; a
program that never halts is stopped by the watchdog.  All runs of a test share
one simulator launch.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosim.harness import Status, dram_sim_words
from hw import isa
from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import PeError, SignalMode

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_chip_tiny")]
ARCH = preset("tiny")
PORT_BYTES = dram_sim_words(ARCH) * ARCH.word_bytes
DRAM_SPAN = 0x4000
DESC = 0x7000  # descriptors (16 per PE at most)
MAX_CYCLES = 200_000


def node(x: int, y: int) -> int:
    return isa.pack_node(x, y)


def desc(**kw) -> bytes:
    return isa.encode_desc(**kw)


def image(text: str, descs: list[bytes] = (), sram=(), dram=(), name="chip-test"):
    """A program with its descriptors at DESC (x15 = DESC) and data segments."""
    prog = assemble(f"li x15, {DESC}\n" + text + "\nhalt\n")
    segs = list(sram) + ([(DESC, b"".join(descs))] if descs else [])
    return ProgramImage(prog, sram=segs, dram=list(dram), name=name)


def _data(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# -- programs -----------------------------------------------------------------------------


def p2p_program() -> dict:
    """(0,0) writes 4 words to (1,1) with signal; (1,1) forwards them to (0,1) with signal;
    (1,0) reads 4 words from (0,0) and 8 from DRAM; (0,1) writes them to DRAM."""
    dram = (0x1000, _data(7, 128))
    a = image(
        "dma x15, 0\n",
        [desc(local=0x100, remote=0x200, count0=4, x0=1, y0=1, sem=1, signal=1)],
        sram=[(0x100, _data(1, 64))],
    )
    d = image(
        "wait sem=1, count=1\ndma x15, 0\n",
        [desc(local=0x200, remote=0x300, count0=4, x0=0, y0=1, sem=2, signal=1)],
    )
    dx, dy = isa.dram_node(ARCH, 0)
    b = image(
        "dma x15, 0\ndma x15, 48\nwait sem=0, count=2\ndma x15, 96\n",
        [
            desc(local=0x400, remote=0x100, count0=4, x0=0, y0=0, sem=0, read=1),
            desc(local=0x500, remote=0x1000, count0=8, x0=dx, y0=dy, sem=0, read=1),
            desc(
                local=0x500,
                remote=0x2000,
                count0=2,
                count1=4,
                lstride1=32,
                rstride1=64,
                x0=dx,
                y0=dy,
            ),
        ],
    )
    c = image(
        "wait sem=2, count=1\ndma x15, 0\n",
        [desc(local=0x300, remote=0x3000, count0=4, x0=dx, y0=dy)],
    )
    return {"images": {(0, 0): a, (1, 0): b, (0, 1): c, (1, 1): d}, "dram": [dram]}


def multicast_barrier_program(rounds: int = 3) -> dict:
    """(0,0) multicasts 3 words to the whole mesh (RECT write with signal) and a RECT
    SIGNAL; then every PE runs ``rounds`` barriers built from RECT signals, adding its
    round counter into SRAM between them."""
    every = isa.pack_rect(0, 0, ARCH.mesh_cols - 1, ARCH.mesh_rows - 1)
    n = ARCH.tiles
    barrier = f"""
    li x1, {every}
    loop x0, imm={rounds}, end=round_end
    signal rs1=x1, sem=3, mode=rect, count=1
    wait sem=3, count={n}
    addi x2, x2, 1
    sw x2, 0x600(x0)
round_end:
    nop
    """
    root = image(
        f"dma x15, 0\nli x1, {every}\nsignal rs1=x1, sem=4, mode=rect, count=2\n"
        "wait sem=2, count=1\nwait sem=4, count=2\n" + barrier,
        [
            desc(
                local=0x100,
                remote=0x800,
                count0=3,
                mode=int(SignalMode.RECT),
                x0=0,
                y0=0,
                x1=ARCH.mesh_cols - 1,
                y1=ARCH.mesh_rows - 1,
                sem=2,
                signal=1,
            )
        ],
        sram=[(0x100, _data(3, 48))],
    )
    other = image("wait sem=2, count=1\nwait sem=4, count=2\n" + barrier)
    imgs = {(x, y): other for y in range(ARCH.mesh_rows) for x in range(ARCH.mesh_cols)}
    imgs[(0, 0)] = root
    return {"images": imgs, "dram": []}


def error_programs() -> list[tuple[str, dict, dict]]:
    """(name, run, expected {(x, y): PeError}) for each refused-packet case."""
    dx, dy = isa.dram_node(ARCH, 0)
    ghost = (ARCH.mesh_cols + 3, 1)
    return [
        (
            "no such tile",
            {
                "images": {
                    (0, 0): image(
                        "dma x15, 0\nwait sem=0, count=1\n",
                        [
                            desc(
                                local=0x100,
                                remote=0x40,
                                count0=1,
                                x0=ghost[0],
                                y0=ghost[1],
                                sem=0,
                                signal=1,
                            )
                        ],
                    )
                }
            },
            {(0, 0): PeError.DMA},
        ),
        (
            "dram out of range",
            {
                "images": {
                    (1, 0): image(
                        "dma x15, 0\nwait sem=0, count=1\n",
                        [
                            desc(
                                local=0x100,
                                remote=PORT_BYTES,
                                count0=2,
                                x0=dx,
                                y0=dy,
                                sem=0,
                                read=1,
                            )
                        ],
                    )
                }
            },
            {(1, 0): PeError.DMA},
        ),
        (
            "remote sram overrun",
            {
                "images": {
                    (0, 1): image(
                        "dma x15, 0\n",
                        [desc(local=0x100, remote=ARCH.sram_bytes - 16, count0=2, x0=1, y0=1)],
                    )
                }
            },
            {(1, 1): PeError.DMA},
        ),
        (
            "local sram overrun",
            {
                "images": {
                    (1, 1): image(
                        "dma x15, 0\n",
                        [desc(local=ARCH.sram_bytes - 32, remote=0x100, count0=4, x0=0, y0=0)],
                    )
                }
            },
            {(1, 1): PeError.DMA},
        ),
    ]


# -- reference and RTL --------------------------------------------------------------------


def ref_chip(run: dict) -> dict:
    """Final state of ``run`` on ChipSim with the cosim DRAM capacity."""
    from sim.network import ChipSim

    sim = ChipSim(ARCH, dram_bytes=PORT_BYTES)
    for coords, img in run["images"].items():
        sim.load(coords, img)
    for addr, data in run.get("dram", []):
        sim.network.load_dram([(addr, data)])
    results = sim.run(max_instructions=10**6, check=False)
    pes = {}
    for c, pe in sim.pes.items():
        r = results.get(c)
        pes[c] = {
            "sram": pe.sram.copy(),
            "regs": np.array(pe.regs, np.uint32),
            "sems": np.array(pe.sems, np.uint32),
            "error": int(pe.error),
            "status": r.status if r else "idle",
        }
    return {"pes": pes, "dram": sim.network.dram(0).mem[:DRAM_SPAN].copy()}


def rtl_chip(runs: list[dict], name: str = "chip-test") -> list[dict]:
    from cosim.chip_driver import run_chip_programs

    chip_runs = []
    for run in runs:
        imgs = dict(run["images"])
        dram_segs = run.get("dram", [])
        if dram_segs:  # DRAM contents ride on one of the images
            first = next(iter(imgs))
            img = imgs[first]
            imgs[first] = ProgramImage(img.imem, img.sram, list(img.dram) + dram_segs, img.name)
        chip_runs.append({"images": imgs, "max_cycles": run.get("max_cycles", MAX_CYCLES)})
    out, _ = run_chip_programs(ARCH, chip_runs, name=name, dram_dump=DRAM_SPAN, checked=False)
    return out


def _tile(c) -> int:
    return c[1] * ARCH.mesh_cols + c[0]


def check_same(ref: dict, rtl: dict) -> None:
    assert rtl["status"] == Status.HALTED, rtl["errors"]
    for c, want in ref["pes"].items():
        got = rtl["pes"][_tile(c)]
        assert got["error"] == want["error"] == 0, (c, rtl["errors"])
        for key in ("sram", "regs", "sems"):
            assert np.array_equal(got[key], want[key]), f"PE {c}: {key} differs"
    assert np.array_equal(rtl["dram"][0], ref["dram"]), "DRAM differs"


# -- tests --------------------------------------------------------------------------------


def test_chip_converts_and_terminates_every_outer_port():
    from hw.chip import Chip, chip_port_names
    from hw.noc.mesh import edge_ports

    chip = Chip(ARCH)
    named = chip_port_names(ARCH)
    assert set(named.values()) == {"dram_0", "host_noc"}
    assert len(edge_ports(ARCH)) == 2 * (ARCH.mesh_cols + ARCH.mesh_rows)
    assert "dram_0" in dict(chip.signature.members)
    with pytest.raises(TypeError, match="arch must be an ArchConfig"):
        Chip("tiny")


def test_chip_verilog_holds_the_tile_once():
    """tile.v defines the tile module; dut.v instantiates it once per position with
    exactly its ports (the Instance port list comes from the Tile's signature)."""
    from cosim.chip_harness import TILE_MODULE, chip_sources
    from tests.hw.test_router import _instance_ports, _module_ports

    src = dict(chip_sources(ARCH))
    assert set(src) == {"tile.vlt", "tile.v", "dut.v", "cosim_top.sv"}
    assert f'hier_block -module "{TILE_MODULE}"' in src["tile.vlt"]
    assert f"module {TILE_MODULE}(" not in src["dut.v"]
    ports = _module_ports(src["tile.v"], TILE_MODULE)
    assert {"x", "y", "clk", "rst", "east_in__flit", "west_out__credit", "dbg_data"} <= ports
    insts = _instance_ports(src["dut.v"], TILE_MODULE)
    assert len(insts) == ARCH.tiles
    assert all(conns == ports for conns in insts)


def test_chip_programs_match_chipsim():
    """PE-to-PE writes with signal, remote and DRAM reads, DRAM writes, RECT multicast
    writes and signals, semaphore barriers; then the error cases, all in one launch."""
    good = [p2p_program(), multicast_barrier_program()]
    errs = error_programs()
    hang = {"images": {(1, 1): image("wait sem=5, count=1\n")}, "max_cycles": 5000}
    rtl = rtl_chip(good + [run for _, run, _ in errs] + [hang])
    for run, got in zip(good, rtl, strict=False):
        check_same(ref_chip(run), got)
    for (name, run, expected), got in zip(errs, rtl[len(good) :], strict=False):
        ref = ref_chip(run)
        assert got["status"] == Status.ERROR, (name, got["errors"])
        for c, code in expected.items():
            assert ref["pes"][c]["error"] == code, (name, c)
            assert got["pes"][_tile(c)]["error"] == code, (name, c, got["errors"])
        assert any(f"PE ({c[0]}, {c[1]})" in m for m in got["errors"] for c in expected), name
        print(name, got["errors"])
    assert "node (5, 1) refused address 0x40" in rtl[len(good)]["errors"][0]
    assert f"{PORT_BYTES:#x}" in rtl[len(good) + 1]["errors"][0]
    hung = rtl[-1]
    assert hung["status"] == Status.TIMEOUT
    assert hung["errors"] == ["PE (1, 1): no halt after 5000 cycles, pc 1"]


def ref_dram_answers(arch) -> list[tuple]:
    """What the DRAM endpoint must answer to the requests of :func:`rtl_dram_answers`."""
    dx, dy = isa.dram_node(arch, 0)
    resp = {
        k: v
        for k, v in {
            "kind": int(isa.Kind.READ_RESP),
            "x0": 1,
            "y0": 1,
            "src_x": dx,
            "src_y": dy,
        }.items()
        if v
    }
    err = {**resp, "kind": int(isa.Kind.ERROR)}
    return [
        ({**resp, "len": 2, "sem": 3, "signal": 1, "count": 1, "addr": 0x500}, 11, 22),
        ({**resp, "len": 2, "addr": 0x600}, 22, 0),
        ({**err, "addr": PORT_BYTES},),
        ({**err, "addr": 0x40},),
    ]


def rtl_dram_answers(arch, max_cycles: int = 2000) -> tuple[list[tuple], list[int]]:
    """Drive cosim.dram.DramEndpoint (Amaranth simulator): a WRITE, two READ_REQs, a read
    out of range, a WRITE to a node beyond the port; returns the answers (head fields and
    payload words) and the cycle of each answer's head."""
    from amaranth import Module
    from amaranth.lib.memory import Memory
    from amaranth.sim import Simulator

    from cosim.dram import DramEndpoint
    from hw.errors import SimulationError

    dut = DramEndpoint(arch)
    m = Module()
    m.submodules.dut = dut
    m.submodules.mem = mem = Memory(shape=128, depth=1 << len(dut.mem.addr), init=[])
    rd, wr = mem.read_port(), mem.write_port()
    m.d.comb += [
        rd.addr.eq(dut.mem.addr),
        wr.addr.eq(dut.mem.addr),
        wr.data.eq(dut.mem.wdata),
        wr.en.eq(dut.mem.en & dut.mem.we),
        dut.mem.rdata.eq(rd.data),
    ]
    dx, dy = isa.dram_node(arch, 0)

    def h(**kw):
        return isa.encode_head(src_x=1, src_y=1, **kw)

    packets = [
        [h(kind=0, x0=dx, y0=dy, len=2, addr=0x100), 11, 22],
        [h(kind=1, x0=dx, y0=dy, len=2, addr=0x100, ret_addr=0x500, sem=3, signal=1, count=1)],
        [h(kind=1, x0=dx, y0=dy, len=2, addr=0x110, ret_addr=0x600)],
        [h(kind=1, x0=dx, y0=dy, len=2, addr=PORT_BYTES, ret_addr=0x600)],
        [h(kind=0, x0=dx + 3, y0=dy, len=1, addr=0x40), 5],
    ]
    answers: list[list] = []
    heads: list[int] = []

    async def driver(ctx):
        s = dut.noc.in_req
        for flits in packets:
            for i, f in enumerate(flits):
                ctx.set(s.valid, 1)
                ctx.set(s.payload.data, f)
                ctx.set(s.payload.first, i == 0)
                ctx.set(s.payload.last, i == len(flits) - 1)
                await ctx.tick().until(s.ready)
            ctx.set(s.valid, 0)

    async def monitor(ctx):
        o = dut.noc.out_resp
        ctx.set(o.ready, 1)
        for cycle in range(max_cycles):
            await ctx.tick()
            if not ctx.get(o.valid):
                continue
            word = ctx.get(o.payload.data)
            if ctx.get(o.payload.first):
                heads.append(cycle)
                answers.append([{k: v for k, v in isa.decode_head(word).items() if v}])
            else:
                answers[-1].append(word)
            if len(answers) == 4 and ctx.get(o.payload.last):
                return
        raise SimulationError(f"DRAM endpoint: no 4 answers within {max_cycles} cycles")

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return [tuple(a) for a in answers], heads


def test_dram_endpoint_answers_in_order_with_latency():
    got, heads = rtl_dram_answers(ARCH)
    assert got == ref_dram_answers(ARCH)
    assert heads[0] >= ARCH.dram_latency
    assert heads[1] - heads[0] <= 6, "queued reads overlap their latency"


def test_multi_gemm_matches_chipsim_and_numpy():
    """The multi-PE GEMM generator on 4 PEs and on 1 PE (tiny)."""
    from cosim.chip_bench import bench_chip_gemm

    fig = bench_chip_gemm(ARCH, 64, 64, 64, on="rtl")
    print(fig)
    assert fig["bit_exact"] and fig["same_as_chipsim"]
    assert fig["cycles"] < fig["cycles_1pe"]


@pytest.mark.extended
def test_multi_gemm_larger_and_more_barriers():
    from cosim.chip_bench import bench_chip_gemm

    fig = bench_chip_gemm(ARCH, 64, 128, 128, on="rtl", seed=5)
    print(fig)
    assert fig["bit_exact"] and fig["same_as_chipsim"]
    run = multicast_barrier_program(rounds=40)
    check_same(ref_chip(run), rtl_chip([run], name="chip-barriers")[0])
