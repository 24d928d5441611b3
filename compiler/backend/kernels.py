"""The kernels the back end compiles, registered by name for compile_kernel and the CLI.

Each entry maps (arch, seed, **shape) to (Mapped kernel, inputs, expected outputs,
useful MACs).  Shapes are in elements; inputs are random with a fixed seed.
"""

from __future__ import annotations

from compiler.backend import attention, conv, gemm, mlp
from compiler.backend.compile import register_kernel

__all__ = ["gemm_kernel"]


@register_kernel("gemm", {"m": 64, "k": 256, "n": 64, "relu": 0})
def gemm_kernel(arch, seed: int, m: int, k: int, n: int, relu: int):
    spec = gemm.GemmSpec(m, k, n, zp=0, relu=bool(relu))
    t = gemm.gemm_inputs(spec, seed)
    mapped = gemm.map_gemm(arch, spec, t)
    return mapped, t, {"C": gemm.reference(spec, t)}, m * k * n


@register_kernel("mlp", {"m": 32, "d": 64, "hidden": 128, "n": 64})
def mlp_kernel(arch, seed: int, m: int, d: int, hidden: int, n: int):
    t = mlp.mlp_inputs(m, d, hidden, n, seed)
    return mlp.map_mlp(arch, t), t, {"Y": mlp.mlp_reference(t)}, m * d * hidden + m * hidden * n


@register_kernel("attention", {"seq": 32, "d": 32})
def attention_kernel(arch, seed: int, seq: int, d: int):
    t = attention.attention_inputs(seq, d, seed)
    expected = attention.attention_reference(t, attention.padded_keys(seq))
    return attention.map_attention(arch, t), t, {"O": expected}, 2 * seq * seq * d


@register_kernel("conv2d", {"cin": 8, "cout": 32, "h": 12, "w": 12, "kh": 3, "pad": 1})
def conv2d_kernel(arch, seed: int, cin: int, cout: int, h: int, w: int, kh: int, pad: int):
    t = conv.conv_inputs(cin, cout, h, w, kh, pad, seed)
    y = conv.conv_reference(t)
    return conv.map_conv2d(arch, t), t, {"Y": y}, y.size * cin * kh * kh
