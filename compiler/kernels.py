"""numpy kernels for convolution and pooling shared by the float and integer paths."""

from __future__ import annotations

import numpy as np

from compiler.dialects.base import pool_out


def _pad_nchw(x: np.ndarray, pads: list[int], value: float | int) -> np.ndarray:
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def windows(
    x: np.ndarray,
    kernel: list[int],
    strides: list[int],
    pads: list[int],
    dilations: list[int],
    pad_value: float | int,
    ceil: bool = False,
) -> np.ndarray:
    """Sliding windows of an NCHW tensor: shape (N, C, OH, OW, KH, KW)."""
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    n, c, h, w = x.shape
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    extra_b = extra_r = 0
    if ceil:
        oh = pool_out(h, kh, sh, pads[0], pads[2], dh, True)
        ow = pool_out(w, kw, sw, pads[1], pads[3], dw, True)
        extra_b = max(0, (oh - 1) * sh + span_h - (h + pads[0] + pads[2]))
        extra_r = max(0, (ow - 1) * sw + span_w - (w + pads[1] + pads[3]))
    xp = _pad_nchw(x, [pads[0], pads[1], pads[2] + extra_b, pads[3] + extra_r], pad_value)
    if not ceil:
        oh = (xp.shape[2] - span_h) // sh + 1
        ow = (xp.shape[3] - span_w) // sw + 1
    s = xp.strides
    view = np.lib.stride_tricks.as_strided(
        xp,
        shape=(n, c, oh, ow, kh, kw),
        strides=(s[0], s[1], s[2] * sh, s[3] * sw, s[2] * dh, s[3] * dw),
        writeable=False,
    )
    return view


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    strides: list[int],
    pads: list[int],
    dilations: list[int],
    group: int,
    pad_value: float | int = 0,
) -> np.ndarray:
    """NCHW x OIHW grouped convolution in float64 (exact for integer inputs < 2**53)."""
    o, ci, kh, kw = w.shape
    win = windows(x.astype(np.float64), [kh, kw], strides, pads, dilations, pad_value)
    n, c, oh, ow = win.shape[:4]
    outs = []
    og = o // group
    for g in range(group):
        part = win[:, g * ci : (g + 1) * ci]  # N, ci, OH, OW, KH, KW
        wg = w[g * og : (g + 1) * og].astype(np.float64)  # og, ci, KH, KW
        outs.append(np.einsum("ncxyhw,ochw->noxy", part, wg, optimize=True))
    return np.concatenate(outs, axis=1)


def pool2d(
    x: np.ndarray,
    kind: str,
    kernel: list[int],
    strides: list[int],
    pads: list[int],
    ceil: bool,
    count_include_pad: bool,
    pad_value: float | int,
    dil: list[int] | None = None,
) -> np.ndarray:
    """Max or average pooling over NCHW; average excludes padding unless asked."""
    dil = dil or [1, 1]
    if kind == "max":
        return windows(x, kernel, strides, pads, dil, pad_value, ceil).max(axis=(4, 5))
    win = windows(x.astype(np.float64), kernel, strides, pads, dil, 0, ceil)
    total = win.sum(axis=(4, 5))
    if count_include_pad:
        # padding inside the declared pads counts; the extra ceil-mode overhang does not
        ones = np.ones((1, 1) + x.shape[2:])
        padded = np.pad(
            ones, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=1
        )
        count = windows(padded, kernel, strides, [0, 0, 0, 0], dil, 0, ceil).sum(axis=(4, 5))
        count = count[:, :, : total.shape[2], : total.shape[3]]
    else:
        ones = np.ones((1, 1) + x.shape[2:])
        count = windows(ones, kernel, strides, pads, dil, 0, ceil).sum(axis=(4, 5))
    return (total / count).astype(x.dtype)
