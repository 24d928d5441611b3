"""conv2d (NCHW, OIHW, stride 1, zero padding) as an im2col GEMM.

The im2col gather is done by the host layout, not by DMA: the DMA moves 16-byte
words, and an im2col row of a 3 x 3 window over int8 pixels is a run of 3 bytes,
so a strided DMA cannot gather it without a byte-granular engine.  The host (or the
producing layer, when graphs are compiled) writes the patch matrix
``[OH*OW][Cin*KH*KW]`` in the packed A layout; the weights are the B operand
``[Cin*KH*KW][Cout]``; the GEMM's output ``[OH*OW][Cout]`` is NHWC and the host
view turns it into NCHW.  Everything else (tiling, multicast, K streaming, SRAM
planning) is the GEMM's (gemm.py).  The reference is compiler.kernels.conv2d
(exact for integers) followed by sim.numerics.output_stage, so it checks the
im2col layout too.
"""

from __future__ import annotations

import numpy as np

import sim.numerics as numerics
from compiler import kernels as graph_kernels
from compiler.backend.builder import Mapped
from compiler.backend.gemm import GemmSpec, gemm_inputs, map_gemm
from compiler.errors import ShapeError

__all__ = ["conv_inputs", "conv_reference", "map_conv2d", "im2col"]


def im2col(x: np.ndarray, kh: int, kw: int, pad: int) -> np.ndarray:
    """(OH*OW, Cin*KH*KW) patches of a (1, Cin, H, W) tensor; column order (c, i, j)."""
    win = graph_kernels.windows(x, [kh, kw], [1, 1], [pad] * 4, [1, 1], 0)
    _, c, oh, ow = win.shape[:4]
    return np.ascontiguousarray(win[0].transpose(1, 2, 0, 3, 4).reshape(oh * ow, c * kh * kw))


def conv_inputs(cin: int, cout: int, h: int, w: int, kh: int, pad: int, seed: int) -> dict:
    if min(cin, cout, h, w, kh) < 1 or pad < 0 or h + 2 * pad < kh or w + 2 * pad < kh:
        raise ShapeError(
            f"conv2d: input {cin}x{h}x{w} with a {kh}x{kh} kernel and padding {pad} has no output"
        )
    k = cin * kh * kh
    g = gemm_inputs(GemmSpec((h + 2 * pad - kh + 1) * (w + 2 * pad - kh + 1), k, cout), seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, cin, h, w)).astype(np.int8)
    wt = g["b"].T.reshape(cout, cin, kh, kh)
    return {"x": x, "w": wt, "bias": g["bias"], "mult": g["mult"], "shift": g["shift"], "pad": pad}


def conv_reference(t: dict) -> np.ndarray:
    pad = t["pad"]
    acc = graph_kernels.conv2d(t["x"], t["w"], [1, 1], [pad] * 4, [1, 1], 1).astype(np.int64)
    _, cout, oh, ow = acc.shape
    rows = acc[0].reshape(cout, oh * ow).T
    y = numerics.output_stage(rows, t["bias"], t["mult"], t["shift"], 0, -128, 127)
    return y.T.reshape(1, cout, oh, ow)


def map_conv2d(arch, t: dict, name: str = "conv2d") -> Mapped:
    cout, cin, kh, kw = t["w"].shape
    a = im2col(t["x"], kh, kw, t["pad"])
    b = np.ascontiguousarray(t["w"].reshape(cout, cin * kh * kw).T)
    spec = GemmSpec(a.shape[0], a.shape[1], cout)
    mapped = map_gemm(
        arch,
        spec,
        {"a": a, "b": b, "bias": t["bias"], "mult": t["mult"], "shift": t["shift"]},
        name,
    )
    _, _, h, w = t["x"].shape
    oh, ow = h + 2 * t["pad"] - kh + 1, w + 2 * t["pad"] - kw + 1
    gemm_out = mapped.outputs.pop("C")
    mapped.outputs["Y"] = lambda dram: gemm_out(dram).T.reshape(1, cout, oh, ow)
    mapped.plan["im2col"] = "host layout"
    mapped.plan["gemm"] = [spec.m, spec.k, spec.n]
    return mapped
