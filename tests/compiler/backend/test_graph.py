"""Graph ops on the chip: every constant-weight qnt.matmul of a quantized module is
compiled as a back-end GEMM, run on ChipSim and compared bit for bit with the front
end's integer interpreter (zero points folded into the bias, ReLU, per-tensor and
per-channel requantization)."""

import numpy as np
import pytest

from compiler.backend.graph import run_graph_on_chip
from compiler.backend.run import ChipSimExecutor
from compiler.errors import UnsupportedError
from compiler.ir import parse_module
from sim.network import ChipSim


def _dense(a: np.ndarray, typ: str) -> str:
    return f"graph.constant {{value = dense<{str(a.tolist()).replace(' ', '')}> : {typ}}} : {typ}"


def mlp_module(seed: int, m: int, k: int, h: int, n: int, zp_w: int = 0) -> str:
    rng = np.random.default_rng(seed)
    x = f"tensor<{m}x{k}xi8, #qnt.q<0.05, 3>>"
    hid = f"tensor<{m}x{h}xi8, #qnt.q<0.1, -20>>"
    y = f"tensor<{m}x{n}xi8, #qnt.q<0.2, 5>>"
    w1 = f"tensor<{k}x{h}xi8>" if not zp_w else f"tensor<{k}x{h}xi8, #qnt.q<0.01, {zp_w}>>"
    w2 = f"tensor<{h}x{n}xi8>"
    vec = lambda c: f"tensor<{c}xi32>"  # noqa: E731
    lines = [
        f"%w1 = {_dense(rng.integers(-100, 100, (k, h)), w1)}",
        f"%b1 = {_dense(rng.integers(-3000, 3000, h), vec(h))}",
        f"%m1 = {_dense(rng.integers(1 << 30, (1 << 31) - 1, h), vec(h))}",
        f"%s1 = {_dense(np.full(h, 40), vec(h))}",
        f"%w2 = {_dense(rng.integers(-100, 100, (h, n)), w2)}",
        f"%b2 = {_dense(rng.integers(-3000, 3000, n), vec(n))}",
        f"%m2 = {_dense(np.array([1500000000]), vec(1))}",
        f"%s2 = {_dense(np.array([39]), vec(1))}",
        f'%h = qnt.matmul %x, %w1, %b1, %m1, %s1 {{act = "relu"}} : '
        f"({x}, {w1}, {vec(h)}, {vec(h)}, {vec(h)}) -> {hid}",
        f'%y = qnt.matmul %h, %w2, %b2, %m2, %s2 {{act = "none"}} : '
        f"({hid}, {w2}, {vec(n)}, {vec(1)}, {vec(1)}) -> {y}",
        f"func.return %y : {y}",
    ]
    return f"func.func @main(%x: {x}) -> {y} {{\n  " + "\n  ".join(lines) + "\n}"


@pytest.mark.parametrize(
    "arch_name,seed,shape",
    [
        ("tiny", 3, (12, 40, 24, 10)),
        ("small", 4, (37, 30, 30, 33)),
        ("small-8x8mac", 5, (20, 16, 40, 8)),
    ],
)
def test_qnt_mlp_ops_match_the_interpreter(archs, arch_name, seed, shape):
    print(f"seed={seed} arch={arch_name} shape={shape}")
    module = parse_module(mlp_module(seed, *shape))
    x = np.random.default_rng(seed).integers(-128, 128, shape[:2]).astype(np.int8)
    results = run_graph_on_chip(module, [x], archs[arch_name], ChipSimExecutor(ChipSim))
    assert [r.op for r in results] == ["qnt.matmul#0", "qnt.matmul#1"]
    assert all(r.bit_exact for r in results), results
    assert results[0].shape == (shape[0], shape[1], shape[2])


def test_weight_zero_point_is_rejected(archs):
    module = parse_module(mlp_module(1, 4, 16, 16, 16, zp_w=3))
    x = np.zeros((4, 16), np.int8)
    with pytest.raises(UnsupportedError, match=r"op #0 \(qnt.matmul\): weights with a non-zero"):
        run_graph_on_chip(module, [x], archs["tiny"], ChipSimExecutor(ChipSim))
