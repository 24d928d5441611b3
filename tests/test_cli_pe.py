"""The CLI on bad input: a clear one-line error naming field, value and limit, exit 2,
never a traceback.  And a small happy path through asm -> run -> disasm."""

import json
import subprocess
import sys

import pytest

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def myelin(*args, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-m", "myelin.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def expect_error(args, *fragments):
    code, out, err = myelin(*args)
    assert code == 2, (out, err)
    assert "Traceback" not in err + out
    for frag in fragments:
        assert frag in err, err


@pytest.fixture
def program(tmp_path):
    src = tmp_path / "p.s"
    src.write_text(
        "    li x1, 5\n    li x2, 0\n    loop x1, body=1\n    addi x2, x2, 3\n"
        "    sw x2, 16(x0)\n    halt\n"
    )
    return src


def test_run_asm_disasm_round_trip(program, tmp_path):
    code, out, err = myelin("run", program, "--arch", "tiny", "--dump", "16:4", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "halted"
    assert result["regs"][2] == 15
    assert result["dump"]["0x10"] == "0f000000"
    code, out, err = myelin("asm", program, "-o", tmp_path / "img")
    assert code == 0, err
    code, out, err = myelin("disasm", tmp_path / "img")
    assert code == 0, err
    assert "loop" in out and "halt" in out


def test_unknown_preset(program):
    expect_error(["run", program, "--arch", "huge"], "unknown architecture preset 'huge'")


def test_config_file_unknown_key(program, tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text('base = "tiny"\nmacs = 3\n')
    expect_error(["run", program, "--arch", cfg], "unknown key 'macs'")


def test_config_file_bad_value(program, tmp_path):
    cfg = tmp_path / "a.json"
    cfg.write_text('{"sram_bytes": 1000}')
    expect_error(["run", program, "--arch", cfg], "sram_bytes must be a power of two", "1000")


def test_field_does_not_fit(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("    nop\n    addi x1, x0, 0x100000000\n")
    expect_error(["asm", src, "-o", tmp_path / "o"], "line 2", "imm", "2147483647")


def test_unknown_mnemonic(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("    frobnicate x1\n")
    expect_error(["run", src], "line 1", "unknown mnemonic 'frobnicate'")


def test_program_larger_than_imem(tmp_path):
    src = tmp_path / "big.s"
    src.write_text("    nop\n" * 600 + "    halt\n")
    expect_error(["run", src, "--arch", "tiny"], "601 instructions", "512 words")


def test_data_larger_than_sram(program, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(40000))
    expect_error(
        ["run", program, "--arch", "tiny", "--data", f"0x100:{blob}"], "SRAM segment", "0x8000"
    )


def test_missing_file():
    expect_error(["run", "does/not/exist.s"], "does not exist")


def test_cosim_kernel_set_on_reference():
    code, out, err = myelin("cosim", "--on", "isa", "--arch", "tiny", "--kernel", "all", "--json")
    assert code == 0, err
    rows = {r["kernel"]: r for r in json.loads(out)["kernels"]}
    assert set(rows) >= {"gemm", "pe-gemm", "pe-softmax"}
    assert all(r["bit_exact"] for r in rows.values())
    assert rows["pe-gemm"]["utilization"] > 0.9


def test_cosim_unknown_kernel():
    expect_error(["cosim", "--kernel", "nope", "--on", "isa"], "unknown kernel 'nope'", "gemm")
