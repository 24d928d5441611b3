"""The performance model against the RTL PE (cocotb + Verilator): cycles of the GEMM
and softmax kernels (cosim/kernels/) within 10 % per kernel."""

from __future__ import annotations

import pytest

from hw.arch import preset
from myelin.cmd_perf import calibration_records
from sim.perf import calibrate

TINY = preset("tiny")


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_pe_tiny")
def test_model_cycles_within_10_percent_of_rtl():
    report = calibrate(calibration_records(TINY), TINY)
    for row in report["kernels"]:
        print(
            f"{row['name']:<18} model {row['model_cycles']:>7} rtl {row['rtl_cycles']:>7} "
            f"error {100 * row['error']:+.2f} %"
        )
    names = {row["name"].split("-")[0] for row in report["kernels"]}
    assert names == {"gemm", "softmax"}
    for row in report["kernels"]:
        assert abs(row["error"]) <= 0.10, row


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_pe_tiny")
def test_bench_perf_calibration_cli(capsys):
    from myelin.cli import main

    assert main(["bench", "perf-calibration", "--arch", "tiny"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "max |error|" in out


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_pe_tiny")
def test_random_programs_within_10_percent_of_rtl():
    """Programs that exercise every instruction (sim/progen.py): not used to fit the model."""
    from cosim.runner import run_pe_programs
    from sim.progen import random_program

    images = [random_program(TINY, seed)[0] for seed in range(6)]
    runs, _ = run_pe_programs(TINY, images, max_cycles=400_000, name="perf_random", dump=False)
    report = calibrate([(img, run["cycles"]) for img, run in zip(images, runs, strict=True)], TINY)
    for row in report["kernels"]:
        print(row)
        assert abs(row["error"]) <= 0.10, row


def _img(text, sram=()):
    from hw.asm import assemble
    from hw.image import ProgramImage

    return ProgramImage(assemble(text), sram=list(sram), name=text.split("\n")[0])


def _chip_cases(arch, rounds: int = 10) -> dict[str, dict]:
    """Multi-PE programs: DMA and SIGNAL ping-pong, link contention, DRAM reads, ring."""
    from hw.isa import SignalMode, dram_node, encode_desc, pack_node
    from sim.perf_programs import ring_images

    def pingpong(words, b):
        descs = [
            encode_desc(
                local=0,
                remote=0x4000,
                count0=words,
                mode=int(SignalMode.NODE),
                x0=x,
                y0=y,
                sem=0,
                signal=1,
            )
            for x, y in (b, (0, 0))
        ]
        loop = f"li x1, 0x7000\nloop x0, imm={rounds}, end=e\n"
        return {
            (0, 0): _img(loop + "dma x1, 0\ne: wait sem=0, count=1\nhalt", [(0x7000, descs[0])]),
            b: _img(loop + "wait sem=0, count=1\ne: dma x1, 0\nhalt", [(0x7000, descs[1])]),
        }

    def signals(b):
        loop = f"loop x0, imm={rounds}, end=e\n"
        return {
            (0, 0): _img(
                f"li x1, {pack_node(*b)}\n"
                + loop
                + "signal x1, sem=1, mode=node, count=1\ne: wait sem=1, count=1\nhalt"
            ),
            b: _img(
                "li x1, 0\n"
                + loop
                + "wait sem=1, count=1\ne: signal x1, sem=1, mode=node, count=1\nhalt"
            ),
        }

    def writer(words):
        d = encode_desc(
            local=0,
            remote=0x4000,
            count0=words,
            mode=int(SignalMode.NODE),
            x0=1,
            y0=0,
            sem=0,
            signal=1,
        )
        return _img("li x1, 0x7000\ndma x1, 0\nhalt", [(0x7000, d)])

    dx, dy = dram_node(arch, 0)
    rd = encode_desc(
        local=0, remote=0, count0=256, mode=int(SignalMode.NODE), x0=dx, y0=dy, sem=0, read=1
    )
    reader = _img("li x1, 0x7000\ndma x1, 0\nwait sem=0, count=1\nhalt", [(0x7000, rd)])
    return {
        "dma-pingpong-1": pingpong(1, (1, 1)),
        "dma-pingpong-64": pingpong(64, (1, 0)),
        "signal-pingpong": signals((1, 1)),
        "write-contention": {
            (0, 0): writer(512),
            (0, 1): writer(512),
            (1, 0): _img("wait sem=0, count=2\nhalt"),
        },
        "dram-read-x4": {(x, y): reader for x in range(2) for y in range(2)},
        "ring": ring_images(arch, rounds=rounds, seed=3),
    }


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_chip_tiny")
def test_chip_programs_within_10_percent_of_rtl_chip():
    """Multi-PE timing (NoC hops, SIGNAL and write latency, contention, DRAM) against the
    RTL chip (cosim.chip_driver): not used to fit the per-instruction costs."""
    from cosim.chip_driver import run_chip_programs
    from sim.perf import PerfSim

    cases = _chip_cases(TINY)
    runs = [{"images": images, "max_cycles": 200_000} for images in cases.values()]
    out, _ = run_chip_programs(TINY, runs, name="perf_chip", sram_dump=0, dram_dump=0)
    for (name, images), rtl in zip(cases.items(), out, strict=True):
        sim = PerfSim(TINY, dram_bytes=1 << 20)
        for coords, image in images.items():
            sim.load(coords, image)
        model = sim.run().cycles
        err = (model - rtl["cycles"]) / rtl["cycles"]
        print(f"{name:<18} model {model:>6} rtl {rtl['cycles']:>6} error {100 * err:+.2f} %")
        assert rtl["status"] == 1 and abs(err) <= 0.10, (name, model, rtl["cycles"])
