"""The MLP block with the weights split over the PEs (mlp_split.py) and the planner's
choice between it and the token split (mlp.map_mlp): chosen on small for the
``make cosim`` shape, bit-exact against numpy on the chip reference simulator for
every co-design architecture and both layouts, SRAM banks and instruction memory
respected, errors that name the tensor; one run on the tiny RTL chip."""

import numpy as np
import pytest

from compiler.backend import mlp, mlp_split
from compiler.backend.alloc import AllocError
from compiler.backend.compile import CompiledKernel, emit_programs, traffic
from compiler.backend.run import RtlExecutor, bit_exact, roofline
from compiler.dialects.mapping import int_of, ints_of, ref_of

COSIM = (64, 256, 256, 256)  # cosim/kernel_set.py, mlp on small


def _compile(arch, shape, seed, split=None, tgroups=None) -> CompiledKernel:
    t = mlp.mlp_inputs(*shape, seed=seed)
    if tgroups is None:
        mapped = mlp.map_mlp(arch, t, split=split)
    else:
        m, d, h, n = shape
        (ws,) = [w for w in mlp_split.split_layouts(arch, m, d, h, n) if w.tgroups == tgroups]
        mapped = mlp_split.map_mlp_weights(arch, t, "mlp", ws)
    programs, images = emit_programs(arch, mapped)
    m, d, h, n = shape
    return CompiledKernel("mlp", arch, mapped, programs, images, t,
                          {"Y": mlp.mlp_reference(t)}, m * h * (d + n), 0.0,
                          traffic(arch, mapped.kernel))  # fmt: skip


def test_weight_split_chosen_for_the_cosim_shape_on_small(archs, run_isa):
    seed = 5
    print(f"seed={seed} arch=small mlp {COSIM}")
    arch = archs["small"]
    ck = _compile(arch, COSIM, seed)
    plan = ck.plan
    assert plan["split"] == "weights"
    assert plan["groups"] == {"weights": 4, "tokens": 4} and plan["banked"]
    # the estimate that chose it: the token split's bound is its weight broadcast
    t = mlp.mlp_inputs(*COSIM, seed=seed)
    macs = ck.macs
    tokens = mlp.map_mlp(arch, t, split="tokens")
    assert tokens.plan["split"] == "tokens"
    cost_t = mlp.schedule_cost(arch, tokens, macs)
    assert plan["cost_cycles"] == pytest.approx(mlp.schedule_cost(arch, ck.mapped, macs))
    assert plan["cost_cycles"] < cost_t
    # compulsory DRAM traffic only (every tensor moved once), NoC far below the DRAM
    roof = roofline(ck)
    assert ck.traffic["dram_bytes"] == sum(x.nbytes for x in ck.mapped.dram.values())
    assert roof["roofline"] == roof["dram"] == 160 * 1024 / 16 and roof["noc"] < roof["dram"] / 3
    res = run_isa(ck)
    assert res["bit_exact"], "weight split differs from numpy"


def test_weight_readers_and_banks_on_small(archs):
    ck = _compile(archs["small"], COSIM, seed=1)
    kernel = ck.mapped.kernel
    bufs = kernel.buffers()
    region = archs["small"].region_bytes  # whole banks (a quarter of SRAM)
    bank = {n: int_of(b, "offset") // region for n, b in bufs.items()}
    # three regions claimed whole: W1 even + H^T, W1 odd + Y, W2 even + X; W2 odd in 0
    assert sorted(bank[n] for n in ("Wbank_a", "Wbank_b", "Wbank_c")) == [1, 2, 3]
    assert bank["W2o"] == 0
    for pe in kernel.pes():
        x, y = pe.coords
        ops = list(pe.body.ops)
        reads = [o for o in ops if o.name == "mapping.transfer" and int_of(o, "read")]
        casts = [o for o in ops if o.name == "mapping.transfer" and "to" in o.attributes]
        w_reads = [o for o in reads if ref_of(o, "remote") in ("W1", "W2")]
        # the top PE of each column reads its weight group and multicasts it down
        if y == 0:
            assert len(w_reads) == 2 * 4 * 4  # 4 + 4 tiles of 4 KiB in 1 KiB reads
            to = {tuple(ints_of(o, "to")) for o in casts if int_of(o, "sem") in (3, 4)}
            assert to == {(x, 1, x, 3)}
        else:
            assert not w_reads
        # the H slice goes to the whole PE row, strided into H^T's K range
        (gather,) = [o for o in casts if int_of(o, "sem") == 5]
        assert list(ints_of(gather, "to")) == [0, y, 3, y]
        assert list(ints_of(gather, "count")) == [16, 4, 1]
        assert int_of(gather, "remote_offset") % (16 * 4 * 4) == 0
        # Y leaves after the reads: no DRAM write before the last-but-one GEMM2 task
        y_writes = [i for i, o in enumerate(ops) if o.name == "mapping.transfer"
                    and ref_of(o, "remote") == "Y"]  # fmt: skip
        mm = [i for i, o in enumerate(ops) if o.name == "mapping.matmul_win"]
        assert len(mm) == 2 * 16  # per m tile: 4 x 4 for each GEMM
        assert len(y_writes) == 2 and mm[-5] < y_writes[0] < mm[-4] and y_writes[1] > mm[-1]


CASES = [  # (the 2-D layout of the cosim shape runs in the first test)
    ("small", COSIM, 1),
    ("small", (20, 40, 50, 24), None),  # padding of every dimension
    ("small-8x8mac", (64, 256, 256, 64), None),
    ("small-8x8mac", (32, 64, 128, 64), 4),
    ("small-32k", (32, 64, 128, 64), None),
    ("tiny", (32, 64, 128, 64), None),
    ("tiny", (16, 64, 64, 64), 1),
]


@pytest.mark.parametrize("arch_name,shape,tgroups", CASES)
def test_weight_split_bit_exact(archs, run_isa, arch_name, shape, tgroups):
    seed = 11
    print(f"seed={seed} arch={arch_name} mlp {shape} token groups {tgroups}")
    ck = _compile(archs[arch_name], shape, seed, split="weights", tgroups=tgroups)
    assert ck.plan["split"] == "weights"
    if tgroups is not None:
        assert ck.plan["groups"]["tokens"] == tgroups
    assert max(len(i.imem) for i in ck.images.values()) <= archs[arch_name].imem_words
    res = run_isa(ck)
    assert res["bit_exact"], f"{arch_name} {shape}"


def test_codesign_archs_choose_and_run(archs, run_isa):
    """The planner's choice on every co-design arch for the sweep's MLP shape."""
    shape = (64, 256, 256, 64)
    seed = 2
    print(f"seed={seed} mlp {shape}")
    want = {"small": "weights", "small-8x8mac": "weights", "small-32k": "weights",
            "tiny": "tokens"}  # fmt: skip
    for name, split in want.items():
        ck = _compile(archs[name], shape, seed)
        assert ck.plan["split"] == split, name
        assert run_isa(ck)["bit_exact"], name


def test_coarser_grain_when_instruction_memory_is_small(archs, run_isa):
    """1,024 words: m tile by m tile (1 KiB reads); 256: two m tiles per step (the
    finest grain whose program fits); 128: not even the coarsest fits."""
    fine = _compile(archs["small"], COSIM, seed=4, split="weights", tgroups=4)
    assert fine.plan["grain"]["m_tiles"] == 1
    arch = archs["small"].replace(name="small-imem256", imem_words=256)
    ck = _compile(arch, COSIM, seed=4, split="weights", tgroups=4)
    assert ck.plan["grain"]["m_tiles"] == 2 and ck.plan["grain"]["read_bytes"] == 2048
    assert max(len(i.imem) for i in ck.images.values()) <= 256
    assert run_isa(ck)["bit_exact"]
    with pytest.raises(mlp_split.ImemError, match="instruction memory holds 128"):
        _compile(arch.replace(imem_words=128), COSIM, seed=4, split="weights", tgroups=4)


def test_token_split_without_six_semaphores(archs, run_isa):
    arch = archs["small"].replace(name="small-4sem", semaphores=4)
    print("seed=6 arch=small-4sem mlp (32, 64, 128, 64)")
    ck = _compile(arch, (32, 64, 128, 64), seed=6)
    assert ck.plan["split"] == "tokens" and run_isa(ck)["bit_exact"]


def test_shapes_that_fit_neither_split_name_the_tensor(archs):
    t = mlp.mlp_inputs(64, 256, 256, 256, seed=0)
    with pytest.raises(AllocError, match=r"tensor '.*' \(.*\) needs \d+ bytes of SRAM"):
        mlp.map_mlp(archs["tiny"], t, split="weights")
    t = mlp.mlp_inputs(1024, 64, 64, 64, seed=0)
    with pytest.raises(AllocError, match=r"needs \d+ bytes of SRAM on PE"):
        mlp.map_mlp(archs["tiny"], t)


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_chip_tiny")
def test_weight_split_on_tiny_rtl(archs):
    from cosim.chip_driver import run_chip_programs

    seed = 7
    print(f"seed={seed} arch=tiny mlp (32, 64, 128, 64), token groups 2 and 1")
    cks = [_compile(archs["tiny"], (32, 64, 128, 64), seed, "weights", tg) for tg in (2, 1)]
    rtl = RtlExecutor(run_chip_programs, job="test-mlp-split", watchdog=lambda r: 40_000)
    for ck, res in zip(cks, rtl.run_many(cks), strict=True):
        assert res.timed and bit_exact(ck, res), ck.plan["groups"]
        assert np.array_equal(res.outputs["Y"], ck.expected["Y"])
        print(f"{ck.plan['groups']}: {res.cycles} RTL cycles, roofline {roofline(ck)['roofline']}")


@pytest.mark.parametrize(
    "arch_name,shape",
    [("small", (128, 512, 1024, 512)), ("small", (32, 512, 512, 512)),
     ("small-32k", (64, 256, 256, 256)), ("tiny", (64, 64, 256, 64))],
)  # fmt: skip
def test_streamed_weight_tiles(arch_name, shape, archs, run_isa):
    """Weights that do not fit beside the token band: every weight column tile passes
    through one of two slots; a column's members send credits to its reader before it
    reads the next tile into a slot. Bit-exact on the reference simulator (a credit
    counted for the wrong tile would overwrite a slot still being read)."""
    seed = 31
    print(f"seed={seed} arch={arch_name} mlp {shape}")
    ck = _compile(archs[arch_name], shape, seed)
    assert ck.plan["split"] == "weights" and ck.plan["weights"] == "streamed (2 slots)"
    assert run_isa(ck)["bit_exact"]


def test_streamed_128x512x1024x512_beats_the_token_split(archs):
    """small: the streamed weight split models at 1.52x the roofline, the token split
    (the only mapping before stop 14) at 2.74x."""
    from compiler.backend.run import PerfExecutor, execute
    from sim.perf import PerfSim

    arch, shape = archs["small"], (128, 512, 1024, 512)
    ck = _compile(arch, shape, seed=1)
    tokens = _compile(arch, shape, seed=1, split="tokens")
    f, g = (execute(k, PerfExecutor(PerfSim)) for k in (ck, tokens))
    assert f["bit_exact"] and g["bit_exact"]
    assert f["cycles"] < 0.7 * g["cycles"]
