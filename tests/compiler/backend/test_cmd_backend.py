"""``myelin bench kernel`` and ``myelin backend emit`` through the CLI entry point."""

import json

from hw.image import ProgramImage
from myelin.cli import main


def test_bench_kernel_json(capsys):
    rc = main(
        [
            "bench",
            "kernel",
            "gemm",
            "--arch",
            "tiny",
            "--m",
            "16",
            "--k",
            "64",
            "--n",
            "32",
            "--on",
            "isa",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("cycles", "roofline_cycles", "utilization", "bit_exact", "compile_s"):
        assert key in out
    assert out["bit_exact"] is True and out["cycles"] > 0
    assert out["cycles"] >= out["roofline_cycles"]


def test_bench_every_kernel_text(capsys):
    for name in ("mlp", "conv2d", "attention"):
        assert main(["bench", "kernel", name, "--arch", "tiny"]) == 0
    assert "bit_exact" in capsys.readouterr().out


def test_errors_are_one_line(capsys):
    assert main(["bench", "kernel", "gemm", "--arch", "tiny", "--m", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("myelin: error: gemm: dimension M") and err.count("\n") == 1


def test_emit_writes_ir_and_images(tmp_path, capsys):
    assert main(["backend", "emit", "mlp", "--arch", "tiny", "-o", str(tmp_path)]) == 0
    assert "mapping.kernel @mlp" in (tmp_path / "mapping.mlir").read_text()
    assert "pe_isa.program" in (tmp_path / "pe_isa.mlir").read_text()
    image = ProgramImage.load(tmp_path / "pe_0_0")
    assert image.imem and image.dram


def test_bench_kernel_on_the_performance_model(capsys):
    """``--on perf``: the same outputs as the reference simulator (bit-exact), cycles
    modelled (not measured) and at least the reference simulator's issue cycles."""
    args = ["bench", "kernel", "attention", "--arch", "tiny", "--json"]
    assert main([*args, "--on", "isa"]) == 0
    isa = json.loads(capsys.readouterr().out)
    assert main([*args, "--on", "perf"]) == 0
    perf = json.loads(capsys.readouterr().out)
    assert perf["on"] == "perf" and perf["bit_exact"] is True
    assert perf["cycles_measured"] is False and perf["sim_issue_cycles"] is None
    assert perf["cycles"] >= isa["sim_issue_cycles"] > 0
    assert perf["bank_stall_max"] >= 0


def test_run_pe_program_on_perf_is_an_error_naming_the_tool(tmp_path, capsys):
    prog = tmp_path / "p.s"
    prog.write_text("halt\n")
    assert main(["run", str(prog), "--on", "perf"]) == 2
    assert "myelin perf" in capsys.readouterr().err
