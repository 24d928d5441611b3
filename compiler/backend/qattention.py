"""An attention head from the front end: qnt.matmul(Q, K^T) -> qnt.softmax -> qnt.matmul(P, V).

Bit-exact with the front end's interpreter (compiler.interpreter_ops, compiler.qmath):
the softmax constants (ln2, b, c, inv_mult, inv_shift, recip_k), the score and output
requantization (multiplier, shift, zero point, clamp) and every zero point come from
the ops.  Both GEMMs have two activation operands, so their zero-point terms depend
on the data and are computed on chip (vec_ops.py):

    S = sum_d (q - zq)(k - zk) + bias_s
      = MAC(Q, K^T) - zk*rowsum(Q) - zq*colsum(K^T) + (bias_s + d*zq*zk)
    O = sum_j (p - zp)(v - zv) + bias_o
      = MAC(P, V) - zv*rowsum(P) - zp*colsum(V) + (bias_o + keys_padded*zp*zv)

``zk * rowsum(Q)`` is a MAC of the Q tiles against a constant tile of ``zk``,
``zq * colsum(K^T)`` a MAC of a constant A tile of ``zq`` against K^T (likewise
``zp`` and V, P^T and ``zv``); both are subtracted on the vector unit, so every
zero point -128..127 works.  Padded keys get a mask of -2**30 after the score
requantization, so their EXP is 0 and their probability code is exactly ``zp``,
which the ``keys_padded`` constant accounts for.  Scores stay int32 on chip (MATMUL
``out32``); mapping.qsoftmax requantizes them to the score codes and runs the
softmax (a 16-bit softmax and the qnt.requantize to int8 after it are fused);
mapping.requant_rows is the output stage of P V.  Multipliers must be per tensor
(VOP REQ has one MULT), as the quantizer makes them for two activations.

The mapping is attention.py's (queries split over a rectangle of PEs, K^T and V
resident; K^T's parts along the comb in two SRAM banks by turns with the score GEMM
one part behind, V multicast by PE (0, 0): attention_load.py; the softmax with a
scratch bank; P V and the row terms read the probabilities' rows as a row-major A,
MATMUL ``alda``: no transposes).
"""

from __future__ import annotations

import math

import numpy as np

from compiler import qmath
from compiler.backend.alloc import AllocError
from compiler.backend.attention_load import (
    KParts,
    band_reader,
    multicast_v,
    score_parts,
    start_loads,
    wait_v,
    whole_grid_v,
)
from compiler.backend.banks import bank_side, use_banks
from compiler.backend.builder import Mapped
from compiler.backend.chain import RowChain, Shared, check_rc, transpose_buffers
from compiler.backend.chain_emit import compile_mapped
from compiler.backend.chain_ops import MatmulWinOp
from compiler.backend.compile import CompiledKernel
from compiler.backend.layout import ceil_to, pack_b
from compiler.backend.pe_work import pe_work
from compiler.backend.tile_ops import MatmulAtOp
from compiler.backend.vec_ops import QSoftmaxOp, RequantRowsOp, tmp_bytes
from compiler.dialects import mapping as mp
from compiler.errors import ShapeError
from hw.isa import DType, VFn

__all__ = [
    "map_qattention",
    "qattention_reference",
    "compile_qattention",
    "qattention_inputs",
]

LOAD, SCORE, SOFT, TRANS, PV, OREQ, STORE = range(7)
PARTS = 8  # K^T and V are broadcast in up to this many parts
MASK = -(1 << 30)


def qattention_reference(t: dict) -> np.ndarray:
    """The interpreter's arithmetic (qmath), op by op."""
    q, kt, v = (np.asarray(t[k], np.int64) for k in ("q", "kt", "v"))
    acc = qmath.wrap32(qmath.int_matmul(q - t["zq"], kt - t["zk"]))
    n = kt.shape[1]
    s = qmath.mac_output(acc, *_vecs(t, "s", n), *t["s_out"], t["s_bits"])
    ln2, b, c, inv_mult, inv_shift, recip_k, bits = t["consts"]
    p = qmath.i_softmax(s, -1, ln2, b, c, bits, inv_mult, inv_shift, recip_k, t["s_bits"])
    if bits == 16:  # qnt.requantize to int8: SUB the zero point, REQ
        p = qmath.req(qmath.vop(VFn.SUB, p, -(1 << 15)), *t["preq"], DType.I8)
    acc2 = qmath.wrap32(qmath.int_matmul(p.astype(np.int64) - t["zp"], v - t["zv"]))
    return qmath.mac_output(acc2, *_vecs(t, "o", v.shape[1]), *t["o_out"], 8).astype(np.int8)


def qattention_inputs(m: int, n: int, d: int, dv: int, seed: int) -> dict:
    """Random int8 Q, K^T, V with non-zero zero points, and the parameters the
    quantizer would give a head with scores of scale 0.02 (int16 codes) and int8
    probabilities (qmath.softmax_constants)."""
    for name, v in (("m", m), ("n", n), ("d", d), ("dv", dv)):
        if not isinstance(v, int) or v < 1:
            raise ShapeError(f"attention: {name} must be a positive integer, not {v!r}")
    rng = np.random.default_rng(seed)
    k = qmath.softmax_constants(0.02, 16, 8)
    s_mult, s_shift = qmath.quantize_multiplier(0.03 * 0.03 / 0.02 / math.sqrt(d))
    o_mult, o_shift = qmath.quantize_multiplier(0.05 / 256 / 0.04)
    return {
        "q": rng.integers(-128, 128, (m, d)).astype(np.int8),
        "kt": rng.integers(-128, 128, (d, n)).astype(np.int8),
        "v": rng.integers(-128, 128, (n, dv)).astype(np.int8),
        "zq": 5, "zk": -7, "zv": 3, "zp": -128, "preq": None,
        "s_bias": np.zeros(n, np.int64), "s_mult": s_mult, "s_shift": s_shift,
        "s_out": (9, -32768, 32767), "s_bits": 16,
        "consts": [k[x] for x in ("ln2", "b", "c", "inv_mult", "inv_shift", "recip_k")] + [8],
        "o_bias": rng.integers(-2000, 2000, dv), "o_mult": o_mult, "o_shift": o_shift,
        "o_out": (-6, -128, 127),
    }  # fmt: skip


def _vecs(t: dict, x: str, n: int):
    return (
        np.resize(np.asarray(t[f"{x}_bias"], np.int64), n),
        np.full(n, t[f"{x}_mult"], np.int64),
        np.full(n, t[f"{x}_shift"], np.int64),
    )


def _const(ch: RowChain, name: str, value: int, nbytes: int, live, side: str) -> str:
    """A constant MAC operand tile; A tiles go low, B tiles high (like the operands
    they meet, so that the MATMUL's two reads use different banks)."""
    return ch.group(name, name, nbytes, live, side, np.full(nbytes, value, np.int8).tobytes())


def _mm_on(kb, pe, ident: str):
    """``mm(a, b, c, tiles, k, ldc, part=None)``: an int32-output matmul on ``pe``;
    with ``part`` = (j0, j1) only those column tiles of b (mapping.matmul_win)."""
    C = kb.arch.mac_cols

    def mm(a: str, b: str, c: str, tiles: list[int], k: int, ldc: int, part=None) -> None:
        common = dict(a=a, b=b, c=c, k=k, ldc=ldc, params=f"@{ident}", out32=1, param_stride=0)
        if part is None:
            kb.add(pe, mp.MatmulOp, tiles=tiles, **common)
            return
        j0, j1 = part
        kb.add(
            pe, MatmulWinOp, tiles=[tiles[0], j1 - j0], col_step=4 * C,
            b_offset=j0 * k * C, c_offset=j0 * 4 * C, **common,
        )  # fmt: skip

    return mm


def map_qattention(arch, t: dict, name: str = "qattention", parts: int = PARTS) -> Mapped:
    try:
        return _map(arch, t, name, parts, True)
    except AllocError:  # without the softmax's scratch rows (its int32 VOPs in place)
        return _map(arch, t, name, parts, False)


def _map(arch, t: dict, name: str, parts: int, scratch: bool) -> Mapped:
    check_rc(arch, "attention")
    R, C = arch.mac_rows, arch.mac_cols
    (m, d), (d2, n), (n2, dv) = t["q"].shape, t["kt"].shape, t["v"].shape
    if d2 != d or n2 != n:
        raise ShapeError(f"attention: Q {t['q'].shape}, K^T {t['kt'].shape} and V {t['v'].shape}")
    unit = math.lcm(16, C)
    sp, dp, vp = ceil_to(n, unit), ceil_to(d, 16), ceil_to(dv, unit)
    ch = RowChain(arch, name, m, lambda mtp: True)
    kb, mp_ = ch.kb, ch.mp
    use_banks(kb)  # the softmax scratch in bank 1, P's blocked copy in bank 2
    perm = np.arange(sp)  # P V reads P's rows (row-major A): keys in natural order
    kt = np.zeros((dp, sp), np.int8)
    kt[:d, :n] = t["kt"]
    kts = ch.add_shared(Shared("KT", "K^T", pack_b(kt[:, perm], dp, sp, C), dp, sp, SCORE, False))
    vs = ch.add_shared(Shared("V", "V", pack_b(t["v"], sp, vp, C), sp, vp, PV, False))
    kts.parts, vs.parts = min(parts, sp // C), min(parts, vp // C)
    ch.assign()
    # transfers and banks as attention.py's (attention_load.py): K^T's parts in banks
    # 2 and 1 by turns, V (multicast by PE (0, 0)) in 3, the vector scratch and
    # constants in 1, the MAC A operands and outputs in 0
    b1, b2, b3 = (bank_side(arch, k) for k in (1, 2, 3))
    kparts = KParts(ch, kts, [b2, b1])
    kb.sram_bufs["Vs"].side = b3
    used = [0, *(s for op in ch.shared.values() for s in op.sems), *ch.credits]
    gsem = max(used) + 1
    go = gsem if gsem < arch.semaphores and len(ch.pes) > 1 else None
    whole_grid_v(ch, vs, gsem + 1)
    queue = start_loads(ch, kparts, vs, band_reader(ch, t["q"], dp, SCORE), go)
    kb.dram_tensor("O", len(ch.pes) * mp_ * vp)
    # the out32 GEMMs' params (P V reads P's rows: no selection matrices)
    _, ident = transpose_buffers(kb, ch.rect, (LOAD, OREQ), selection=False)
    kb.sram_bufs[ident].side = b1
    zq, zk, zv = (int(t[k]) for k in ("zq", "zk", "zv"))
    # score terms (key columns permuted like K^T)
    s_terms: dict = {}
    sconst = np.zeros(sp, np.int64)
    sconst[:n] = np.resize(np.asarray(t["s_bias"], np.int64), n) + d * zq * zk
    if zq or sconst.any():
        _const(ch, "ZQ", zq, dp * R, (LOAD, SCORE), "low")
        cc = sconst[perm].astype("<i4").tobytes()
        ch.group("SC", "score column constants", len(cc), (LOAD, SOFT), b1, cc)
        ch.per_pe("CS", "score column terms", R * sp * 4, (SCORE, SOFT))
        s_terms.update(colconst="@SC")
    if zk:
        _const(ch, "ZK", zk, dp * C, (LOAD, SCORE), b3)
        ch.per_pe("RS", "score row terms", mp_ * C * 4, (SCORE, SOFT))
        s_terms.update(row_stride=4 * C)
    if sp > n:
        mvec = np.where(perm < n, 0, MASK).astype("<i4").tobytes()
        ch.group("mask", "key mask", len(mvec), (LOAD, SOFT), b1, mvec)
        s_terms["mask"] = "@mask"
    # output terms
    zp = int(t["zp"])  # of P; padded keys have probability code zp exactly
    oc = (np.resize(np.asarray(t["o_bias"], np.int64), vp) + sp * zp * zv).astype("<i4")
    ch.group("OC", "output column constants", oc.nbytes, (LOAD, OREQ), b1, oc.tobytes())
    _const(ch, "ZP", zp, sp * R, (LOAD, PV), "low")
    ch.per_pe("CO", "output column terms", R * vp * 4, (PV, OREQ))
    o_terms: dict = {"colconst": "@OC"}
    if zv:
        _const(ch, "ZV", zv, sp * C, (LOAD, PV), b3)
        ch.per_pe("RO", "output row terms", mp_ * C * 4, (PV, OREQ))
        o_terms["row_stride"] = 4 * C
    ch.per_pe("S", "scores", mp_ * sp * 4, (SCORE, SOFT))
    ch.per_pe("P", "probabilities", mp_ * sp, (SOFT, PV), b2)
    if scratch:
        ch.per_pe("E", "scores - row max", mp_ * sp * 4, (SOFT, SOFT), b1)
    tmp = tmp_bytes(mp_)
    ch.per_pe("T", "softmax row sums", tmp, (SOFT, SOFT), b1)
    ch.per_pe("O32_", "P V accumulators", mp_ * vp * 4, (PV, OREQ))
    ch.per_pe("O", "O", mp_ * vp, (OREQ, STORE))

    def score(pe, i: int, p: int) -> None:  # S and the column terms of K^T's part p
        if p == 0 and zk:  # the row terms need no shared operand
            _mm_on(kb, pe, ident)(f"@Q{i}", "@ZK", f"@RS{i}", [ch.mtp, 1], dp, 4 * C)
        kparts.matmul(pe, p, f"@Q{i}", f"@S{i}", f"@{ident}", 4 * sp)
        if "colconst" in s_terms:
            kparts.matmul(pe, p, "@ZQ", f"@CS{i}", f"@{ident}", 4 * sp, mt=1)

    score_parts(ch, kparts, queue, score)
    multicast_v(ch, vs)
    for i, pe in enumerate(ch.pes):
        terms = dict(s_terms)
        if "colconst" in terms:
            terms["colterm"] = f"@CS{i}"
        if zk:
            terms["rowterm"] = f"@RS{i}"
        kb.add(
            pe,
            QSoftmaxOp,
            src=f"@S{i}",
            dst=f"@P{i}",
            tmp=f"@T{i}",
            rows=mp_,
            cols=sp,
            score=[t["s_mult"], t["s_shift"], *t["s_out"]],
            consts=list(t["consts"]),
            **terms,
            **({"preq": list(t["preq"])} if t["consts"][6] == 16 else {}),
            **({"scratch": f"@E{i}"} if scratch else {}),
        )

    def pv(pe, i: int, b: str, c: str, nt: int, ldc: int) -> None:
        """A GEMM on P's rows (row-major A, docs/isa.md): int32 accumulators."""
        kb.add(
            pe, MatmulAtOp, a=f"@P{i}", b=b, c=c, params=f"@{ident}", tiles=[ch.mtp, nt],
            k=sp, ldc=ldc, out32=1, param_stride=0, alda=sp // 16,
        )  # fmt: skip

    for i, pe in enumerate(ch.pes):
        if zv:
            pv(pe, i, "@ZV", f"@RO{i}", 1, 4 * C)
    wait_v(ch, vs)
    for i, pe in enumerate(ch.pes):
        pv(pe, i, "@Vs", f"@O32_{i}", vp // C, 4 * vp)
        _mm_on(kb, pe, ident)("@ZP", "@Vs", f"@CO{i}", [1, vp // C], sp, 4 * vp)
    for i, pe in enumerate(ch.pes):
        terms = dict(o_terms, colterm=f"@CO{i}")
        if zv:
            terms["rowterm"] = f"@RO{i}"
        kb.add(
            pe,
            RequantRowsOp,
            src=f"@O32_{i}",
            dst=f"@O{i}",
            rows=mp_,
            cols=vp,
            req=[t["o_mult"], t["o_shift"], *t["o_out"]],
            **terms,
        )
        ch.store(pe, i, "O", "O", mp_ * vp)
    ch.rows_output("O", m, dv, vp)
    plan = ch.plan(keys_padded=sp, masked=sp > n, softmax_consts=list(t["consts"]))
    plan["transpose"] = "row-major A"
    plan["parts"] = {"KT": len(kparts)}
    plan["zero_points"] = {"q": zq, "k": zk, "v": zv}
    plan["pe_work"] = _pe_work(arch, t, min(mp_, m), "colconst" in s_terms, bool(zk), bool(zv))
    return kb.finish(plan)


def _pe_work(arch, t: dict, rows: int, colterm: bool, rowterm: bool, zv: bool) -> dict:
    """The busiest PE's useful MACs and the vector passes of its algorithm: per score
    [ADD column term] [SUB row term] REQ, RMAX, SUB, EXP, RSUM, REQ [REQ to int8 of a
    16-bit softmax]; per output ADD column term [SUB row term] REQ; RECIP per row."""
    d, n, dv = t["q"].shape[1], t["kt"].shape[1], t["v"].shape[1]
    s = ["REQ", "RMAX", "SUB", "EXP", "RSUM", "REQ"] + (["REQ"] if t["consts"][6] == 16 else [])
    s = (["ADD"] if colterm else []) + (["SUB"] if rowterm else []) + s
    o = ["ADD"] + (["SUB"] if zv else []) + ["REQ"]
    passes = [(f, rows * n, 4) for f in s] + [(f, rows * dv, 4) for f in o]
    return pe_work(arch, rows * n * (d + dv), passes, {"RECIP": rows})


def compile_qattention(arch, t: dict, name: str = "qattention") -> CompiledKernel:
    """Map, lower (with the vector-row templates), check and emit one attention head;
    K^T and V in as many parts as the instruction memory allows."""
    m, d = t["q"].shape
    n, dv = t["v"].shape
    return compile_mapped(
        name,
        arch,
        lambda parts: map_qattention(arch, t, name, parts),
        t,
        {"O": qattention_reference(t)},
        m * n * (d + dv),
        parts=PARTS,
    )
