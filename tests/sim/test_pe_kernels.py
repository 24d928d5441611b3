"""The hand-written kernels on the reference simulator: bit-exact against their
numpy references, and (softmax) accurate against float softmax."""

import numpy as np
import pytest

from cosim.kernels.gemm import gemm_case
from cosim.kernels.softmax import softmax_case
from hw.arch import preset
from hw.errors import ImageError
from sim.pe_sim import PeSim


def run_isa(arch, image):
    pe = PeSim(arch)
    pe.load(image)
    res = pe.run(10**7)
    assert res.halted, (res.status, res.error_msg)
    return pe.sram


@pytest.mark.parametrize(
    ("rows", "n", "scale", "seed"), [(4, 64, 0.05, 1), (2, 128, 0.1, 2), (3, 16, 0.02, 3)]
)
def test_softmax_bit_exact_and_accurate(rows, n, scale, seed):
    arch = preset("tiny")
    print(f"seed={seed}")
    case = softmax_case(arch, rows, n, scale, seed)
    out = case.output(run_isa(arch, case.image))
    assert np.array_equal(out, case.expected)
    ref = np.exp(case.q * scale)
    ref /= ref.sum(axis=1, keepdims=True)
    assert np.abs(out / 128 - ref).max() <= 3 / 128


def test_softmax_rejects_bad_shapes():
    with pytest.raises(ImageError, match="multiple of 16, not 20"):
        softmax_case(preset("tiny"), 2, 20)
    with pytest.raises(ImageError, match="needs .* bytes of SRAM"):
        softmax_case(preset("tiny"), 400, 64)


@pytest.mark.parametrize("arch_name", ["tiny", "small"])
def test_gemm_bit_exact(arch_name):
    arch = preset(arch_name)
    case = gemm_case(arch, 32, 64, 128, seed=5)
    assert np.array_equal(case.output(run_isa(arch, case.image)), case.expected)


def test_gemm_on_other_mac_shapes():
    for rows, cols in ((8, 8), (2, 16), (16, 4)):
        arch = preset("tiny").replace(mac_rows=rows, mac_cols=cols)
        case = gemm_case(arch, 32, 32, 64, seed=rows)
        assert np.array_equal(case.output(run_isa(arch, case.image)), case.expected)
