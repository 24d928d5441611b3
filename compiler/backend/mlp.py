"""MLP block Y = requant(relu(requant(X @ W1)) @ W2) on a group of PEs.

Tokens (rows of X) are split over a rectangle of PEs (groups.row_grid); W1 and W2
are broadcast from PE (0, 0) by multicast.  Each PE runs, in order:

1. GEMM1 (mapping.matmul): H = relu(requant(X @ W1)) with the fused output stage;
   W1's columns are stored permuted inside each C-chunk (layout.chunk_perm).
2. mapping.transpose: H (tokens x hidden, row-major) -> the A-operand layout of
   GEMM2 ([M/R][hidden][R]).  The MAC array writes R x C row-major tiles but reads
   its A operand transposed, so chaining two GEMMs needs this step; it runs on
   the MAC array itself against 0/1 selection matrices with an identity output
   stage, which is exact (docs/backend.md).  The column permutation of step 1 is
   what makes each output row of the transpose a run of whole A-operand rows.
3. GEMM2: Y = requant(H @ W2).

Requires C % R == 0 (mac_cols a multiple of mac_rows); the weights, one token band
and the intermediates must fit SRAM (no streaming here).  SRAM is allocated with
liveness: X and W1 die after GEMM1, H after the transpose.
"""

from __future__ import annotations

import numpy as np

from compiler.backend.builder import KernelBuilder, Mapped
from compiler.backend.gemm import GemmSpec, gemm_inputs, words_rows
from compiler.backend.groups import broadcast_load, broadcast_wait, pes_of, row_grid
from compiler.backend.layout import ceil_to, chunk_perm, pack_a, pack_b, param_blocks, ref_gemm
from compiler.dialects import mapping as mp
from compiler.errors import ShapeError, UnsupportedError
from hw.isa import qparam_layout

__all__ = ["map_mlp", "mlp_inputs", "mlp_reference", "transpose_buffers"]

# phases for live ranges
LOAD, GEMM1, TRANS, GEMM2, STORE = range(5)


def check_rc(arch, what: str) -> None:
    if arch.mac_cols % arch.mac_rows:
        raise UnsupportedError(
            f"{what}: the on-chip transpose needs mac_cols to be a multiple of mac_rows, not "
            f"{arch.mac_rows} x {arch.mac_cols}"
        )


def transpose_buffers(kb: KernelBuilder, rect, live) -> tuple[str, str]:
    """Selection matrices and identity output-stage parameters for mapping.transpose."""
    R, C = kb.arch.mac_rows, kb.arch.mac_cols
    per = 16 // C if C < 16 else 1
    mats = []
    for p in range(per):
        delta = p * C // R
        for rr in range(R):
            sel = np.zeros((16, C), np.int8)
            for c in range(C):
                if c % R == rr:
                    sel[delta + c // R, c] = 1
            mats.append(sel.tobytes())
    sel = kb.sram_buffer(
        "sel", "transpose selection", 16 * C * per * R, rect, live, "high", b"".join(mats)
    )
    ident = param_blocks(
        np.zeros(C, np.int64), np.full(C, 1 << 30), np.full(C, 30), 0, -128, 127, C
    )
    params = kb.sram_buffer("ident", "identity output stage", len(ident), rect, live, "high", ident)
    return sel, params


def mlp_inputs(m: int, d: int, hidden: int, n: int, seed: int) -> dict[str, np.ndarray]:
    for name, v in (("m", m), ("d", d), ("hidden", hidden), ("n", n)):
        if not isinstance(v, int) or v < 1:
            raise ShapeError(f"mlp: {name} must be a positive integer, not {v!r}")
    t1 = gemm_inputs(GemmSpec(m, d, hidden), seed)
    t2 = gemm_inputs(GemmSpec(m, hidden, n), seed + 1)
    # relu keeps about half of H: halve the second shift's headroom accordingly
    return {
        "x": t1["a"],
        "w1": t1["b"],
        "b1": t1["bias"],
        "m1": t1["mult"],
        "s1": t1["shift"],
        "w2": t2["b"],
        "b2": t2["bias"],
        "m2": t2["mult"],
        "s2": t2["shift"] - 1,
    }


def mlp_reference(t: dict[str, np.ndarray]) -> np.ndarray:
    h = ref_gemm(t["x"], t["w1"], t["b1"], t["m1"], t["s1"], 0, 0, 127)
    return ref_gemm(h, t["w2"], t["b2"], t["m2"], t["s2"], 0, -128, 127)


def _pad(v: np.ndarray, n: int) -> np.ndarray:
    return np.pad(np.asarray(v, np.int64), (0, n - len(v)))


def map_mlp(arch, t: dict[str, np.ndarray], name: str = "mlp") -> Mapped:
    check_rc(arch, "mlp")
    R, C = arch.mac_rows, arch.mac_cols
    m, d = t["x"].shape
    hidden, n = t["w1"].shape[1], t["w2"].shape[1]
    if t["w2"].shape[0] != hidden or t["w1"].shape[0] != d:
        raise ShapeError(
            f"mlp: W1 {t['w1'].shape} and W2 {t['w2'].shape} do not chain with X {t['x'].shape}"
        )
    gc, gr, mtp = row_grid(arch, -(-m // R))
    dp, hp, op = ceil_to(d, 16), ceil_to(hidden, 16), ceil_to(n, C)
    while (mtp * R * op) % 16:
        mtp += 1
    mp_ = mtp * R
    pes = pes_of(gc, gr)
    rect = (0, 0, gc - 1, gr - 1)
    kb = KernelBuilder(arch, name)
    perm = chunk_perm(hp, R, C)
    w1 = np.zeros((dp, hp), np.int8)
    w1[:d, :hidden] = t["w1"]
    w1 = w1[:, perm]
    pw1 = pack_b(w1, dp, hp, C)
    pw2 = pack_b(t["w2"], hp, op, C)
    px = pack_a(t["x"], len(pes) * mp_, dp, R)
    kb.dram_tensor("X", px.nbytes, px.tobytes())
    kb.dram_tensor("W1", pw1.nbytes, pw1.tobytes())
    kb.dram_tensor("W2", pw2.nbytes, pw2.tobytes())
    kb.dram_tensor("Y", len(pes) * mp_ * op)
    p1 = param_blocks(*(_pad(t[k], hp)[perm] for k in ("b1", "m1", "s1")), 0, 0, 127, C)
    p2 = param_blocks(*(_pad(t[k], op) for k in ("b2", "m2", "s2")), 0, -128, 127, C)
    kb.sram_buffer("P1", "params1", len(p1), rect, (LOAD, GEMM1), "high", p1)
    kb.sram_buffer("P2", "params2", len(p2), rect, (LOAD, GEMM2), "high", p2)
    kb.sram_buffer("W1s", "W1", pw1.nbytes, rect, (LOAD, GEMM1), "high")
    kb.sram_buffer("W2s", "W2", pw2.nbytes, rect, (LOAD, GEMM2), "high")
    sel, ident = transpose_buffers(kb, rect, (TRANS, TRANS))
    x_band = mtp * dp * R
    for gy in range(gr):
        for gx in range(gc):
            i = gy * gc + gx
            kb.sram_buffer(f"X{i}", "X", x_band, (gx, gy), (LOAD, GEMM1), "low")
            # the transpose reads up to 16 rows of R bytes past a row start: pad H
            kb.sram_buffer(f"H{i}", "H", mp_ * hp + 16 * R, (gx, gy), (GEMM1, TRANS), "low")
            kb.sram_buffer(f"HT{i}", "H transposed", mtp * hp * R, (gx, gy), (TRANS, GEMM2), "low")
            kb.sram_buffer(f"Y{i}", "Y", mp_ * op, (gx, gy), (GEMM2, STORE), "low")
            kb.add(
                (gx, gy),
                mp.TransferOp,
                local=f"@X{i}",
                remote="@X",
                remote_offset=i * x_band,
                count=words_rows(x_band),
                sem=0,
                read=1,
            )
    broadcast_load(kb, gc, gr, "W1s", "W1", pw1.nbytes, 1)
    broadcast_load(kb, gc, gr, "W2s", "W2", pw2.nbytes, 2)
    broadcast_wait(kb, gc, gr, "W1s", pw1.nbytes, 1)
    broadcast_wait(kb, gc, gr, "W2s", pw2.nbytes, 2)
    q = qparam_layout(C)["total"][1]
    for i, pe in enumerate(pes):
        kb.add(pe, mp.WaitOp, sem=0, count=1)
        kb.add(
            pe,
            mp.MatmulOp,
            a=f"@X{i}",
            b="@W1s",
            c=f"@H{i}",
            params="@P1",
            tiles=[mtp, hp // C],
            k=dp,
            ldc=hp,
            param_stride=q,
        )
        kb.add(
            pe,
            mp.TransposeOp,
            src=f"@H{i}",
            dst=f"@HT{i}",
            sel=f"@{sel}",
            params=f"@{ident}",
            rows=mp_,
            cols=hp,
            ldc=hp,
        )
        kb.add(
            pe,
            mp.MatmulOp,
            a=f"@HT{i}",
            b="@W2s",
            c=f"@Y{i}",
            params="@P2",
            tiles=[mtp, op // C],
            k=hp,
            ldc=op,
            param_stride=q,
        )
        kb.add(
            pe,
            mp.TransferOp,
            local=f"@Y{i}",
            remote="@Y",
            remote_offset=i * mp_ * op,
            count=words_rows(mp_ * op),
            sem=0,
            read=0,
        )

    def unpack(dram: dict[str, bytes]) -> np.ndarray:
        raw = np.frombuffer(dram["Y"], np.int8)[: len(pes) * mp_ * op]
        return raw.reshape(len(pes) * mp_, op)[:m, :n]

    kb.outputs["Y"] = unpack
    plan = {
        "R": R,
        "C": C,
        "grid": [gc, gr],
        "tiles_per_pe": mtp,
        "padded": [dp, hp, op],
        "mode": "resident",
        "pes": len(pes),
    }
    return kb.finish(plan)
