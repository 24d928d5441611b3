"""Multi-PE GEMM performance (issues 3 and 5) on the ``small`` chip.

* The compiled GEMM's pipelined resident schedule (compiler/backend/gemm_pair.py, and
  gemm_pipe.py's order): bit-exact, B tiles in banks of their own, faster than
  loading whole bands first (performance model), and on RTL (extended) within its
  cycle bound and within 10 % of the performance model.
* The hand-written 2-D grid GEMM (cosim/kernels/gemm_grid.py): bit-exact on ChipSim;
  on RTL (extended) its scaling efficiency against the 1-PE run.
"""

import numpy as np
import pytest

from compiler.backend.compile import compile_kernel
from compiler.backend.gemm_pipe import readers
from compiler.backend.run import ChipSimExecutor, execute, roofline
from cosim.kernels.gemm_grid import grid_readers
from cosim.kernels.gemm_multi import multi_gemm
from hw.arch import preset
from sim.network import ChipSim
from sim.perf import PerfSim

SMALL = preset("small")
ARCHS = {"tiny": preset("tiny"), "small": SMALL}
SHAPE = dict(m=256, k=256, n=256)
# RTL bounds (measured: compiled 21,143 cycles = 1.29 x the roofline, model +2.7 %;
# hand-written 21,487 cycles, scaling efficiency 0.8175; docs/chip.md, docs/perf.md)
RTL_COMPILED_MAX_RATIO = 1.31  # compiled cycles / roofline (issue 5 target: 1.25)
RTL_MODEL_ERROR = 0.10  # |model - RTL| / RTL
RTL_MIN_SCALING = 0.80  # hand-written 16-PE vs 1-PE (issue 3 target)


def _model(arch, images) -> int:
    sim = PerfSim(arch)
    for coords, image in images.items():
        sim.load(coords, image)
    return sim.run().cycles


def _offset(ck, name: str) -> int:
    return ck.mapped.kernel.buffers()[name].attributes["offset"].value.data


def test_compiled_gemm_is_pipelined_and_bit_exact():
    ck = compile_kernel("gemm", SMALL, **SHAPE)
    assert ck.plan["mode"] == "resident" and ck.plan["pipelined"]
    assert ck.plan["order"] == "pair"  # compiler/backend/gemm_pair.py
    assert execute(ck, ChipSimExecutor(ChipSim))["bit_exact"]
    bank = SMALL.region_bytes  # whole banks: a quarter of SRAM
    # the paired layout: A and C in region 0, B tiles 0 / 1 / 2 in three others, the
    # DMA descriptors away from the bank of B tile 2 (streamed during pass 1)
    banks = {n: _offset(ck, n) // bank for n in ("A0", "C0_0", "B0e", "B0o", "X0")}
    assert banks["A0"] == banks["C0_0"] == 0
    assert len({banks[n] for n in ("A0", "B0e", "B0o", "X0")}) == 4
    for x in range(4):
        for y in range(4):
            assert _offset(ck, f"desc_{x}_{y}") // bank not in (banks["X0"], banks["A0"])


def test_pass_order_still_bit_exact(monkeypatch):
    """gemm_pipe.py's order (B tile outer from the start), forced with gemm.PAIR."""
    import compiler.backend.gemm as gemm

    monkeypatch.setattr(gemm, "PAIR", False)
    ck = compile_kernel("gemm", SMALL, **SHAPE)
    assert ck.plan["order"] == "pass" and ck.plan["a_split"] and ck.plan["b_split"]
    assert execute(ck, ChipSimExecutor(ChipSim))["bit_exact"]


@pytest.mark.parametrize(
    "arch,shape,order",
    [
        ("tiny", dict(m=64, k=128, n=64), "pass"),  # 2 B tiles per PE: no pair
        ("small", dict(m=128, k=512, n=256), "pair"),
        ("small", dict(m=100, k=200, n=300), "pair"),  # 7 A tiles (odd), 5 B tiles
        # 7 and 6 A tiles against 8 segments per pass: the first segment is empty and
        # the QLOAD of B tile 2's parameters must ride on the first MATMUL that runs
        ("small", dict(m=100, k=300, n=200), "pair"),
        ("small", dict(m=96, k=256, n=256), "pair"),
        ("small", dict(m=256, k=512, n=256), "pass"),  # A band + C > a bank
    ],
)
def test_pipelined_shapes_bit_exact(arch, shape, order):
    ck = compile_kernel("gemm", ARCHS[arch], **shape)
    assert ck.plan["pipelined"], ck.plan
    assert ck.plan["order"] == order
    assert execute(ck, ChipSimExecutor(ChipSim))["bit_exact"]


def test_pipelined_beats_whole_band_loading():
    """Performance model: pipelining the band loads saves more than 15 % against the
    schedule that loads whole bands first (forced by an instruction memory too small
    to unroll pass 0)."""
    ck = compile_kernel("gemm", SMALL, **SHAPE)
    flat = compile_kernel("gemm", SMALL.replace(imem_words=128), **SHAPE)
    assert not flat.plan["pipelined"]
    fast, slow = _model(SMALL, ck.images), _model(SMALL, flat.images)
    print(f"pipelined {fast} whole bands {slow} roofline {roofline(ck)['roofline']}")
    assert fast < 0.85 * slow
    assert fast < 1.4 * roofline(ck)["roofline"]


@pytest.mark.parametrize("gc,gr", [(4, 4), (2, 2), (4, 1), (1, 3)])
def test_no_pe_reads_both_operands(gc, gr):
    for rd in (readers(gc, gr), grid_readers(gc, gr)):
        a, b = rd
        a_pes = {pe for pe, _ in a.values()}
        b_pes = {pe for pe, _ in b.values()}
        if gc > 1 and gr > 1:
            assert not a_pes & b_pes
        for (x, y), rect in [*a.values(), *b.values()]:
            if rect is not None:  # the rectangle excludes its reader
                x0, y0, x1, y1 = rect
                assert not (x0 <= x <= x1 and y0 <= y <= y1)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_hand_written_grid_bit_exact(name):
    arch = ARCHS[name]
    g = multi_gemm(arch, 16 * arch.mesh_rows, 16 * arch.mesh_cols * 2, 128, arch.tiles, seed=4)
    sim = ChipSim(arch, dram_bytes=1 << 20)
    for coords, image in g.images.items():
        sim.load(coords, image)
    sim.run(10**7)
    out = g.output(lambda x, y: sim.pes[(x, y)].sram, sim.network.dram(0).mem)
    assert np.array_equal(out, g.expected)


@pytest.mark.extended
@pytest.mark.rtl
def test_compiled_gemm_on_rtl_small():
    from cosim.chip_driver import run_chip_programs

    ck = compile_kernel("gemm", SMALL, **SHAPE)
    end = max(t.offset + t.nbytes for t in ck.mapped.dram.values())
    (run,), _ = run_chip_programs(
        SMALL,
        [{"images": ck.images, "max_cycles": 200_000}],
        name="gemm-scaling",
        sram_dump=0,
        dram_dump=end,
        sram_fill=0,
    )
    raw = {
        n: run["dram"][0][t.offset : t.offset + t.nbytes].tobytes()
        for n, t in ck.mapped.dram.items()
    }
    assert np.array_equal(ck.mapped.outputs["C"](raw), ck.expected["C"])
    roof = roofline(ck)["roofline"]
    model = _model(SMALL, ck.images)
    err = (model - run["cycles"]) / run["cycles"]
    print(
        f"rtl {run['cycles']} roofline {roof} ratio {run['cycles'] / roof:.3f} "
        f"model {model} error {100 * err:+.1f} %"
    )
    assert run["cycles"] <= RTL_COMPILED_MAX_RATIO * roof
    assert abs(err) <= RTL_MODEL_ERROR


@pytest.mark.extended
@pytest.mark.rtl
def test_hand_written_scaling_on_rtl_small():
    from cosim.chip_bench import bench_chip_gemm

    fig = bench_chip_gemm(SMALL, 256, 256, 256, on="rtl")
    print(fig)
    assert fig["bit_exact"] and fig["same_as_chipsim"]
    assert fig["scaling_efficiency"] >= RTL_MIN_SCALING


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_chip_tiny")
def test_compiled_gemm_on_rtl_tiny_matches_model():
    """The pipelined schedule on the tiny RTL chip (2 x 2): bit-exact, and the
    performance model within 12 % of the RTL cycles (measured -9.0 %: on a problem
    this small the start-up, which the model sees optimistically - it does not
    stall the DRAM answers behind multicast packets - weighs more than on small)."""
    from cosim.chip_driver import run_chip_programs

    tiny = ARCHS["tiny"]
    ck = compile_kernel("gemm", tiny, m=64, k=256, n=128)
    assert ck.plan["pipelined"] and ck.plan["b_split"]
    end = max(t.offset + t.nbytes for t in ck.mapped.dram.values())
    (run,), _ = run_chip_programs(
        tiny,
        [{"images": ck.images, "max_cycles": 100_000}],
        name="gemm-scaling-tiny",
        sram_dump=0,
        dram_dump=end,
        sram_fill=0,
    )
    raw = {
        n: run["dram"][0][t.offset : t.offset + t.nbytes].tobytes()
        for n, t in ck.mapped.dram.items()
    }
    assert np.array_equal(ck.mapped.outputs["C"](raw), ck.expected["C"])
    model = _model(tiny, ck.images)
    err = (model - run["cycles"]) / run["cycles"]
    print(f"tiny rtl {run['cycles']} model {model} error {100 * err:+.1f} %")
    assert abs(err) <= 0.12
