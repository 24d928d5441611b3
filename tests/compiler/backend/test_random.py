"""Random shapes on random architectures, bit-exact on the chip reference simulator.

Seeds are fixed and printed; the default run draws a few cases, the extended suite
(``-m extended``) many more.
"""

import random

import pytest

from compiler.backend.alloc import AllocError
from compiler.backend.compile import compile_kernel
from hw.arch import preset


def random_arch(rng: random.Random):
    r = rng.choice([1, 2, 4, 8, 16])
    c = rng.choice([c for c in (4, 8, 16) if c % r == 0] or [16])
    return preset("tiny").replace(
        name="random",
        mesh_cols=rng.randint(1, 3),
        mesh_rows=rng.randint(1, 3),
        mac_rows=r,
        mac_cols=c,
        sram_bytes=rng.choice([16384, 32768, 65536]),
        loop_strides=rng.randint(1, 4),
        dram_bytes=2**22,
    )


def random_case(rng: random.Random):
    kind = rng.choice(["gemm", "gemm", "mlp", "attention"])
    if kind == "gemm":
        return kind, dict(
            m=rng.randint(1, 70),
            k=rng.randint(1, 1200),
            n=rng.randint(1, 70),
            relu=rng.randint(0, 1),
        )
    if kind == "mlp":
        return kind, dict(
            m=rng.randint(1, 40),
            d=rng.randint(1, 80),
            hidden=rng.randint(1, 100),
            n=rng.randint(1, 40),
        )
    return kind, dict(seq=rng.randint(1, 40), d=rng.randint(1, 40))


def check(seed: int, run_isa) -> None:
    rng = random.Random(seed)
    arch = random_arch(rng)
    kind, shape = random_case(rng)
    print(
        f"seed={seed} {kind} {shape} mesh={arch.mesh_cols}x{arch.mesh_rows} "
        f"mac={arch.mac_rows}x{arch.mac_cols} sram={arch.sram_bytes}"
    )
    try:
        ck = compile_kernel(kind, arch, seed=seed, **shape)
    except AllocError as exc:  # legitimately too big for this random SRAM
        assert "bytes" in str(exc)
        return
    assert run_isa(ck)["bit_exact"]


@pytest.mark.parametrize("seed", range(12))
def test_random(seed, run_isa):
    check(seed, run_isa)


@pytest.mark.extended
@pytest.mark.parametrize("seed", range(12, 300))
def test_random_extended(seed, run_isa):
    check(seed, run_isa)
