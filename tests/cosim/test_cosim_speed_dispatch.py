"""``myelin bench cosim-speed`` measures the whole chip for a preset with more than one
tile (cosim.chip_bench), one PE otherwise or with ``--pe``.  The benches themselves are
replaced by recorders: only the dispatch is under test here."""

from __future__ import annotations

import json

from hw.arch import preset


def _fake_chip(calls):
    def bench_chip_cosim_speed(arch, k=256, reps=3, rounds=2):
        calls.append(("chip", arch.name, k, reps, rounds))
        return {"bench": "chip-cosim-speed", "arch": arch.name, "cosim_over_raw": 0.9}

    return bench_chip_cosim_speed


def test_multi_tile_preset_dispatches_to_the_chip_bench(monkeypatch, capsys):
    import cosim.chip_bench
    from myelin.cli import main

    calls = []
    monkeypatch.setattr(cosim.chip_bench, "bench_chip_cosim_speed", _fake_chip(calls))
    assert main(["bench", "cosim-speed", "--arch", "small", "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert calls == [("chip", "small", 256, 3, 2)]
    assert fig["bench"] == "cosim-speed" and fig["design"] == "chip"
    assert fig["cosim_over_raw"] == 0.9
    assert main(["bench", "cosim-speed", "--arch", "tiny", "--reps", "1", "--rounds", "1"]) == 0
    assert calls[-1] == ("chip", "tiny", 256, 1, 1)


def test_pe_flag_and_single_tile_presets_measure_one_pe(monkeypatch):
    import cosim.bench
    import cosim.chip_bench

    calls = []
    monkeypatch.setattr(cosim.chip_bench, "bench_chip_cosim_speed", _fake_chip(calls))

    class Stop(Exception):
        pass

    def gemm_case(arch, m, n, k):  # the first step of the one-PE bench
        calls.append(("pe", arch.name))
        raise Stop

    monkeypatch.setattr(cosim.bench, "gemm_case", gemm_case)
    for arch, pe_only in (
        (preset("tiny"), True),
        (preset("tiny").replace(mesh_cols=1, mesh_rows=1), False),
    ):
        try:
            cosim.bench.bench_cosim_speed(arch, pe_only=pe_only)
        except Stop:
            pass
    assert calls == [("pe", "tiny"), ("pe", "tiny")]
