"""Host-side tensor layouts of the back end and the numpy references of its kernels.

MAC-array operand layouts (docs/isa.md): the A operand of one R-row tile is the
transposed tile, K x R row-major; the B operand of one C-column tile is K x C.
A packed A matrix is ``[M/R][K][R]`` (tile after tile), a packed B matrix
``[N/C][K][C]``; both are zero-padded to whole tiles and K to a multiple of 16, so
every tile is one contiguous, 16-byte aligned DMA.  The references are
compositions of :mod:`sim.numerics`, the bit-exact arithmetic of the PE.
"""

from __future__ import annotations

import numpy as np

import sim.numerics as numerics
from hw.isa import qparam_layout

__all__ = ["pack_a", "pack_b", "param_blocks", "ref_gemm", "ceil_to", "chunk_perm"]


def ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


def pack_a(a: np.ndarray, m_pad: int, k_pad: int, r: int) -> np.ndarray:
    """[m_pad/r][k_pad][r] int8: tile i holds A[i*r:(i+1)*r, :]^T."""
    full = np.zeros((m_pad, k_pad), np.int8)
    full[: a.shape[0], : a.shape[1]] = a
    return np.ascontiguousarray(full.reshape(m_pad // r, r, k_pad).transpose(0, 2, 1))


def pack_b(b: np.ndarray, k_pad: int, n_pad: int, c: int) -> np.ndarray:
    """[n_pad/c][k_pad][c] int8: tile j holds B[:, j*c:(j+1)*c]."""
    full = np.zeros((k_pad, n_pad), np.int8)
    full[: b.shape[0], : b.shape[1]] = b
    return np.ascontiguousarray(full.reshape(k_pad, n_pad // c, c).transpose(1, 0, 2))


def param_blocks(bias, mult, shift, zp: int, lo: int, hi: int, c: int) -> bytes:
    """QLOAD parameter blocks (hw.isa.qparam_layout), one per C channels."""
    lay = qparam_layout(c)
    n = len(bias)
    out = bytearray()
    for j in range(0, n, c):
        blk = bytearray(lay["total"][1])
        for key, arr, dt in (("bias", bias, "<i4"), ("mult", mult, "<i4"), ("shift", shift, "u1")):
            part = np.zeros(c, dt)
            part[: len(arr[j : j + c])] = arr[j : j + c]
            off = lay[key][0]
            blk[off : off + part.nbytes] = part.tobytes()
        off = lay["clamp"][0]
        blk[off : off + 3] = np.array([zp, lo, hi], np.int8).tobytes()
        out += blk
    return bytes(out)


def chunk_perm(n: int, r: int, c: int) -> np.ndarray:
    """Logical channel held by each physical column: within every C-column chunk,
    column j = g*R + r' holds channel r'*(C/R) + g (what mapping.transpose expects)."""
    j = np.arange(n)
    q, jj = divmod(j, c)
    return q * c + (jj % r) * (c // r) + jj // r


def ref_gemm(a, b, bias, mult, shift, zp, lo, hi) -> np.ndarray:
    """int8 C = output_stage(A @ B) with per-channel parameters (sim.numerics)."""
    acc = numerics.matmul_acc(np.asarray(a, np.int8).T, np.asarray(b, np.int8))
    return numerics.output_stage(
        acc, np.asarray(bias), np.asarray(mult), np.asarray(shift), zp, lo, hi
    )
