"""RtlExecutor (``--on rtl``): compiled kernels on the RTL chip, outputs from DRAM.

Default suite: the four compiled kernels with small shapes on the tiny 2x2 chip in one
simulator launch (plus a hang variant), compared with numpy and with the chip
reference simulator; the CLI paths (``myelin run``, ``bench kernel --on rtl``).
Extended: every kernel of ``make cosim`` with its default shape on the small chip.
"""

import dataclasses
import json

import numpy as np
import pytest

from compiler.backend.compile import compile_kernel
from compiler.backend.run import (
    ChipSimExecutor,
    RtlExecutor,
    bit_exact,
    execute,
    figures,
    roofline,
)
from cosim.chip_driver import run_chip_programs
from cosim.kernel_set import COMPILED, compile_for, shape_for
from hw.arch import preset
from hw.errors import SimulationError
from myelin.cli import main
from sim.network import ChipSim

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("cosim_chip_tiny")]

TINY = preset("tiny")
SEED = 3


def _tiny_kernels():
    return [compile_kernel(n, TINY, seed=SEED, **shape_for(n, TINY)) for n in COMPILED]


def test_compiled_kernels_on_tiny_rtl_match_numpy_and_chipsim():
    cks = _tiny_kernels()
    # 24 query rows per PE: the pipelined head keeps the scores of two m tiles (a ring)
    ring = compile_kernel("attention", TINY, seed=SEED, seq=96, d=64)
    assert ring.plan["pipelined"] and ring.plan["ring"] == 2
    cks.append(dataclasses.replace(ring, name="attention-ring"))
    gemm = cks[0]
    # a PE that never starts: the others wait for its signals until the watchdog
    dropped = max(gemm.images)
    hang = dataclasses.replace(
        gemm, name="gemm-hang", images={c: i for c, i in gemm.images.items() if c != dropped}
    )
    rtl = RtlExecutor(run_chip_programs, job="test-rtl-exec", watchdog=lambda r: 20_000)
    results = rtl.run_many([*cks, hang], raise_errors=False)
    isa = ChipSimExecutor(ChipSim)
    for ck, res in zip(cks, results, strict=False):
        assert not isinstance(res, Exception), res
        assert res.timed and bit_exact(ck, res), ck.name
        ref = isa.run(ck)
        for name in ck.expected:
            assert np.array_equal(res.outputs[name], ref.outputs[name])
        f = figures(ck, res, "rtl")
        assert f["cycles"] == res.cycles and f["cycles_measured"]
        assert res.cycles >= roofline(ck)["compute"] > 0
        # per-PE halt cycles: every started PE, the last one ends the run
        assert set(res.per_pe_cycles) == set(ck.images)
        assert max(res.per_pe_cycles.values()) == res.cycles
        assert min(res.per_pe_cycles.values()) > 0
        print(f"{ck.name}: {res.cycles} RTL cycles, roofline {f['roofline_cycles']}")
    err = results[-1]
    assert isinstance(err, SimulationError)
    msg = str(err)
    assert "'gemm-hang'" in msg and "hung" in msg and "pc" in msg
    assert "PE (" in msg and f"PE ({dropped[0]}, {dropped[1]})" not in msg


def test_myelin_run_program_directory_on_isa_and_rtl(tmp_path, capsys):
    out = tmp_path / "prog"
    shape = ["--m", "16", "--k", "64", "--n", "32"]
    assert main(["backend", "emit", "gemm", "--arch", "tiny", *shape, "-o", str(out)]) == 0
    capsys.readouterr()
    figs = {}
    for on in ("isa", "rtl"):
        assert main(["run", str(out), "--on", on, "--json"]) == 0
        figs[on] = json.loads(capsys.readouterr().out)
        assert figs[on]["bit_exact"] and figs[on]["pes"] == 4
    assert figs["rtl"]["cycles_measured"] and not figs["isa"]["cycles_measured"]
    # a wrong reference is reported (exit 1), not papered over
    with np.load(out / "expected.npz") as f:
        want = {k: f[k] for k in f.files}
    want["C"] = want["C"].copy()
    want["C"][0, 0] ^= 1
    np.savez(out / "expected.npz", **want)
    assert main(["run", str(out), "--on", "isa"]) == 1
    assert "bit-exact: NO" in capsys.readouterr().out


def test_myelin_run_refuses_other_directories(tmp_path, capsys):
    (tmp_path / "model.mlir").write_text("")
    assert main(["run", str(tmp_path), "--on", "isa"]) == 2
    err = capsys.readouterr().err
    assert "not a compiled program directory" in err or "does not exist" in err


def test_bench_kernel_on_rtl_json(capsys):
    rc = main(
        ["bench", "kernel", "mlp", "--arch", "tiny", "--m", "8", "--d", "32", "--hidden", "32"]
        + ["--n", "32", "--on", "rtl", "--json"]
    )
    f = json.loads(capsys.readouterr().out)
    assert rc == 0 and f["bit_exact"] and f["on"] == "rtl" and f["cycles_measured"]
    for key in ("cycles", "roofline_cycles", "utilization", "bit_exact", "compile_s"):
        assert key in f
    assert 0 < f["utilization"] <= 1


def test_cosim_default_set_on_reference(capsys):
    assert main(["cosim", "--on", "isa", "--arch", "tiny", "--json"]) == 0
    rows = {r["kernel"]: r for r in json.loads(capsys.readouterr().out)["kernels"]}
    assert set(rows) == set(COMPILED)
    assert all(r["bit_exact"] and r["pes"] == 4 for r in rows.values())
    assert main(["cosim", "--on", "isa", "--arch", "tiny", "--kernel", "pe-gemm", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["kernels"]
    assert row["bit_exact"] and row["pes"] == 1 and row["utilization"] > 0.9


@pytest.mark.extended
@pytest.mark.parametrize("name", COMPILED)
def test_make_cosim_kernels_on_small_rtl(name):
    """Every kernel of ``make cosim`` with its default shape on the small chip's RTL."""
    arch = preset("small")
    ck = compile_for(name, arch)
    from myelin.cmd_backend import executor_for

    f = execute(ck, executor_for("rtl", job=f"test-small-{name}"))
    print(json.dumps({k: v for k, v in f.items() if k != "plan"}))
    assert f["bit_exact"] and f["cycles_measured"] and f["pes"] == 16
    assert f["cycles"] >= f["compute_cycles"]


@pytest.mark.extended
@pytest.mark.parametrize("seq", [384, 512])
def test_long_attention_on_small_rtl(seq):
    """seq 384 and 512 on the small chip: the pipelined head with a ring of two m
    tiles of scores (the scores of every tile would not fit beside K^T and V)."""
    arch = preset("small")
    ck = compile_kernel("attention", arch, seed=SEED, seq=seq, d=64)
    assert ck.plan["pipelined"] and ck.plan["ring"] == 2
    from myelin.cmd_backend import executor_for

    f = execute(ck, executor_for("rtl", job=f"test-small-attention-{seq}"))
    print(json.dumps({k: v for k, v in f.items() if k != "plan"}))
    assert f["bit_exact"] and f["cycles_measured"]
    assert f["cycles"] < 1.3 * f["roofline_cycles"]  # 1.18x / 1.14x at stop 14
