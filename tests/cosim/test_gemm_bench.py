"""The GEMM kernel and `myelin bench gemm`: bit-exact on the reference simulator and
on the RTL, layouts that keep A and B in different banks, errors for what does not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosim.kernels.gemm import gemm_case, gemm_layout
from hw.arch import preset
from hw.errors import ImageError

TINY = preset("tiny")


@pytest.mark.parametrize("m,n,k", [(4, 16, 16), (16, 48, 64), (64, 64, 256)])
def test_gemm_kernel_on_reference_is_bit_exact(m, n, k):
    from cosim.bench import bench_gemm

    fig = bench_gemm(TINY, m, n, k, on="isa", seed=m + n + k)
    assert fig["bit_exact"], fig
    assert fig["ideal_cycles"] == m * n * k // TINY.macs_per_cycle
    assert 0 < fig["utilization"] <= 1


def test_gemm_layout_separates_a_and_b_banks():
    lay = gemm_layout(TINY, 64, 64, 256)
    bank = TINY.bank_bytes
    a_banks = set(range(0, (64 * 256 - 1) // bank + 1))
    assert lay["b0"] // bank not in a_banks and lay["b1"] // bank not in a_banks
    assert lay["b0"] // bank != lay["b1"] // bank
    assert lay["end"] <= TINY.sram_bytes


def test_gemm_that_does_not_fit_names_the_bytes():
    with pytest.raises(ImageError, match="needs .* bytes of SRAM"):
        gemm_case(TINY, 64, 64, 1024)
    with pytest.raises(ImageError, match="M must be a positive multiple of 4"):
        gemm_layout(TINY, 6, 16, 16)


def test_gemm_operand_packing_matches_numpy():
    case = gemm_case(TINY, 8, 32, 32, seed=3)
    a_seg = np.frombuffer(case.image.sram[0][1], np.int8)
    r = TINY.mac_rows
    assert a_seg[: 32 * r].reshape(32, r).tolist() == case.a[:r].T.tolist()


@pytest.mark.rtl
@pytest.mark.xdist_group("cosim_pe_tiny")
def test_gemm_on_rtl_is_bit_exact(capsys):
    from myelin.cli import main

    assert (
        main(
            [
                "bench",
                "gemm",
                "--arch",
                "tiny",
                "--m",
                "16",
                "--n",
                "32",
                "--k",
                "64",
                "--on",
                "rtl",
                "--pe",
                "--json",
            ]
        )
        == 0
    )
    fig = json.loads(capsys.readouterr().out)
    print(fig)
    assert fig["bit_exact"] and fig["on"] == "rtl"
    assert fig["cycles"] >= fig["ideal_cycles"]
