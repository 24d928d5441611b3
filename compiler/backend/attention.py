"""One attention head O = requant(softmax(Q K^T) V) with I-BERT integer softmax.

Queries are split over a rectangle of PEs; K^T and V reach them in parts by
multicast reads that PE (0, 0) issues (``MCAST``; else K^T along the unicast comb
and V by RECT writes from PE (0, 0); attention_load.py: transfers, DRAM order and
SRAM banks, measured on the RTL chip).  Each PE runs:

1. scores S = Q K^T (mapping.matmul_win with ``out32``: raw int32 accumulators, rows
   of ``Sp`` keys; unless pipelined, K^T's key columns are permuted inside C-chunks
   for the transposes, layout.chunk_perm): m tile 0 part by part as K^T arrives, the others beside
   tile 0's softmax (attention_tail.py; comb: every tile, one part behind the part
   the PE forwards); when the scores of every m tile do not fit, a ring of ``RING``
   m tiles, tile t + 1's scores beside tile t's softmax;
2. the softmax (mapping.qsoftmax, vec_ops.py; one segmented VOP per pass where it
   can, docs/isa.md "Segments": then RMAX, EXPB, RSUM, RECIP, REQB) over every row
   on the vector unit: [ADD mask, only on the 16-column groups holding padded keys],
   RMAX, SUB (x - max) into scratch rows in another bank, one EXP (I-BERT i-exp,
   constants from the score scale via compiler.qmath) over all rows, RSUM per row, RECIP
   (2**recip_k // sum) once for all rows, per row REQ with MULT = 1/sum to int8
   probabilities (codes 0..127 of scale 2**-7, zero point 0, so P @ V needs no
   zero-point term).  That REQ is MUL then REQ exactly (softmax_op_consts).
   Padded keys get a mask of -2**30, so their i-exp is 0;
3. pipelined (attention_tail.py): none - P V reads P's rows as a row-major A
   (MATMUL ``alda``, docs/isa.md); else after each m tile's rows a SELF DMA regroups
   the probabilities' 16-byte words into blocked tiles and mapping.transpose_blocked
   writes the A-operand layout with one MATMUL per tile (C = 16; otherwise
   mapping.transpose on row-major P);
4. O = requant(P V) with per-channel parameters (fused output stage).

``plan["pe_work"]`` is the busiest PE's essential MAC and vector work (pe_work.py:
the ``pe_serial_cycles`` bound of the figures).  The numpy reference applies the
sim.numerics functions of the softmax (ADD, RMAX, SUB, EXP, RSUM, RECIP, MUL, REQ)
row by row.
"""

from __future__ import annotations

import numpy as np

import sim.numerics as numerics
from compiler import qmath
from compiler.backend.alloc import AllocError
from compiler.backend.attention_load import (
    KParts,
    band_reader,
    mcast_scores,
    multicast_v,
    score_parts,
    start_loads,
    wait_v,
    whole_grid_v,
)
from compiler.backend.attention_tail import pipelined_tail
from compiler.backend.banks import bank_side, use_banks
from compiler.backend.builder import Mapped
from compiler.backend.chain import (
    RowChain,
    Shared,
    build_first_fit,
    check_rc,
    transpose_buffers,
)
from compiler.backend.chain_ops import TransposeBlockedOp
from compiler.backend.codegen import softmax_vcfg
from compiler.backend.layout import ceil_to, chunk_perm, pack_b, param_blocks, ref_gemm
from compiler.backend.lower import lower_kernel
from compiler.backend.pe_work import pe_work
from compiler.backend.vec_ops import QSoftmaxOp, tmp_bytes
from compiler.dialects import mapping as mp
from compiler.errors import CompileError, ShapeError, UnsupportedError
from hw.isa import DType, VCfg, VFn

__all__ = ["map_attention", "attention_inputs", "attention_reference", "softmax_cfg"]

LOAD, SCORE, SOFT, TRANS, PV, STORE = range(6)
RECIP_K = 30
MASK = -(1 << 30)
PARTS = 8  # K^T is broadcast in up to this many parts
V_PARTS = 4  # V is multicast in up to this many parts
# Pipelined, when the scores, scratch rows and probabilities of every m tile do not
# fit beside K^T and V: those of this many m tiles, reused in turn (attention_tail.py)
RING = 2
MCAST = True  # K^T and V by multicast reads (attention_load.mcast_scores), else the comb
# The pipelined head's O in DRAM (and SRAM) in R x C tiles, m tile by m tile, n tile by
# n tile (as tt-metal's TILE_LAYOUT): a column piece of the last m tile is one packet
TILED_O = True
# Banks of the pipelined head with multicast reads, by role (None: the "low" side;
# a tuple: parts by turns): K^T, V, scores, scratch rows, P, row sums, parameters, O.
# 4 banks (RTL-measured, stop 12): K^T's parts in 1 and 2, V alone in 3.
PIPE_BANKS = {"kt": (1, 2), "v": 3, "s": 1, "e": None, "p": 2, "t": 1, "consts": 1, "o": None}
# 8 banks: every stream of the overlapped phases in a bank of its own; V's parts in
# 6 and 7, then in K^T's banks once the scores are done (RTL, small: V whole in 6
# 3,242, in 6 and 7 by turns 3,283, in 6, 7, 4, 5 3,210, in 6, 7, 0, 3 3,320)
PIPE_BANKS8 = {
    "kt": (4, 5), "v": (6, 7, 4, 5), "s": 1, "e": 2, "p": 3, "t": 7, "consts": 7, "o": None,
}  # fmt: skip


def pipe_sides(arch) -> dict:
    """The allocator sides of PIPE_BANKS8 (8 banks or more) or PIPE_BANKS."""
    table = PIPE_BANKS8 if arch.sram_banks >= 8 else PIPE_BANKS
    side = lambda v: "low" if v is None else bank_side(arch, v)  # noqa: E731
    return {k: [side(x) for x in v] if isinstance(v, tuple) else side(v) for k, v in table.items()}


def softmax_cfg(scale: float) -> tuple[list[int], np.ndarray]:
    """mapping.softmax consts [qln2, qb, qc, recip_k] and the VCFG values they set."""
    k = qmath.softmax_constants(scale)
    consts = [k["ln2"], k["b"], k["c"], RECIP_K]
    cfg = np.zeros(len(VCfg), np.int64)
    for reg, value in softmax_vcfg(consts).items():
        cfg[reg] = value
    return consts, cfg


def attention_inputs(seq: int, d: int, seed: int) -> dict:
    for name, v in (("seq", seq), ("d", d)):
        if not isinstance(v, int) or v < 1:
            raise ShapeError(f"attention: {name} must be a positive integer, not {v!r}")
    rng = np.random.default_rng(seed)
    q, k, v = (rng.integers(-64, 64, (seq, d)).astype(np.int8) for _ in range(3))
    # score scale: s_q * s_k / sqrt(d) with activations of scale 2/64
    scale = (2 / 64) ** 2 / np.sqrt(d) * 8
    dv = d
    return {
        "q": q,
        "k": k,
        "v": v,
        "scale": float(scale),
        "bias": np.zeros(dv, np.int32),
        "mult": np.full(dv, 1 << 30, np.int32),
        "shift": np.full(dv, 36, np.int32),
        "zp": 0,
    }


def softmax_rows(scores: np.ndarray, cfg: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The vector-unit sequence of mapping.softmax, row by row (sim.numerics)."""
    i32 = DType.I32
    out = np.zeros(scores.shape, np.int8)
    for r, row in enumerate(np.asarray(scores, np.int64)):
        if mask is not None:
            row = numerics.vector_elementwise(VFn.ADD, row, mask, i32, cfg)
        mx = numerics.vector_reduce(VFn.RMAX, row)
        row = numerics.vector_elementwise(VFn.SUB, row, np.int64(mx), i32, cfg)
        row = numerics.vector_elementwise(VFn.EXP, row, None, i32, cfg)
        total = numerics.vector_reduce(VFn.RSUM, row)
        rec = numerics.vector_elementwise(VFn.RECIP, np.array([total]), None, i32, cfg)[0]
        row = numerics.vector_elementwise(VFn.MUL, row, np.int64(rec), i32, cfg)
        out[r] = numerics.vector_elementwise(VFn.REQ, row, None, DType.I8, cfg)
    return out


def attention_reference(t: dict, sp: int) -> np.ndarray:
    seq = t["q"].shape[0]
    _, cfg = softmax_cfg(t["scale"])
    scores = numerics.matmul_acc(t["q"].T, t["k"].T).astype(np.int64)
    mask = None
    if sp > seq:
        scores = np.pad(scores, ((0, 0), (0, sp - seq)))
        mask = np.where(np.arange(sp) < seq, 0, MASK)
    p = softmax_rows(scores, cfg, mask)[:, :seq]
    return ref_gemm(p, t["v"], t["bias"], t["mult"], t["shift"], t["zp"], -128, 127)


def padded_keys(seq: int) -> int:
    return ceil_to(seq, 16)


def map_attention(arch, t: dict, name: str = "attention", parts: int | None = None) -> Mapped:
    """The head on ``arch``; the pipelined tail (attention_tail.py) unless its programs
    would not fit the instruction memory (its code grows with the m tiles per PE:
    every m tile's scores take a MATMUL task per K^T part, so K^T then comes in fewer
    parts - 4, then 2 - before the head gives the pipelined tail up)."""
    mapped = _map(arch, t, name, PARTS if parts is None else parts, True)
    fewer = [p for p in (4, 2) if parts is None and p < PARTS]
    while mapped.plan["pipelined"] and not _fits_imem(arch, mapped) and fewer:
        mapped = _map(arch, t, name, fewer.pop(0), True)
    if mapped.plan["pipelined"] and not _fits_imem(arch, mapped):
        try:
            mapped = _map(arch, t, name, PARTS if parts is None else parts, False)
        except AllocError as exc:
            raise AllocError(
                f"attention: the pipelined head's program outgrows the instruction memory "
                f"({arch.imem_words} words), and without the pipelined tail: {exc}"
            ) from exc
    return mapped


def _map(arch, t: dict, name: str, parts: int, pipeline: bool) -> Mapped:
    check_rc(arch, "attention")
    seq, dv = t["q"].shape[0], t["v"].shape[1]
    sizes = [("V", padded_keys(seq) * ceil_to(dv, arch.mac_cols))]  # K^T: out32, resident
    ring_err = None
    if pipeline:  # the pipelined tail with every m tile's scores, else with a ring of two
        for ring in (0, RING):
            try:
                return _build(arch, t, name, set(), parts, pipeline=True, ring=ring)
            except AllocError as exc:
                ring_err = exc
    try:
        return build_first_fit(
            lambda streamed: _build(arch, t, name, streamed, parts, pipeline=pipeline), sizes
        )
    except AllocError:  # without the softmax's scratch rows (its int32 VOPs in place)
        try:
            return build_first_fit(
                lambda streamed: _build(arch, t, name, streamed, parts, False, pipeline), sizes
            )
        except AllocError as exc:
            if ring_err is None:
                raise
            # the ring holds the fewest scores: its shortfall is the one to report
            raise AllocError(
                f"{ring_err} [pipelined with a ring of {RING} m tiles of scores; every "
                f"other mapping needs more]"
            ) from exc


def _fits_imem(arch, mapped: Mapped) -> bool:
    """Lower ``mapped`` once (kept in ``mapped.lowered`` for emit_programs)."""
    store = dict(mapped.store)
    try:
        programs = lower_kernel(arch, mapped.kernel, store)
    except CompileError as e:
        if "instruction memory" not in str(e):
            raise
        return False
    mapped.lowered = (programs, store)
    return True


def softmax_op_consts(consts: list[int]) -> tuple[list[int], list[int]]:
    """mapping.qsoftmax ``consts`` and ``out`` of this softmax: the i-exp constants as
    softmax_vcfg sets them; the final REQ with MULT = 1/sum replaces MUL then REQ
    (MULT 1): ``e * rec`` never needs the int32 saturation that MUL applies, because
    a saturated product requantizes past ``hi`` anyway (round_shift(2**31 - 1, shift)
    >= 128 for shift <= 24)."""
    cfg = softmax_vcfg(consts)
    shift = int(cfg[VCfg.SHIFT])
    if not 0 <= shift <= 24 or cfg[VCfg.MULT] != 1:
        raise UnsupportedError(f"attention: softmax output shift {shift} outside 0..24")
    qconsts = [
        int(cfg[VCfg.EXP_QLN2]), int(cfg[VCfg.EXP_QB]), int(cfg[VCfg.EXP_QC]),
        int(cfg[VCfg.EXP_INV_MULT]), int(cfg[VCfg.EXP_INV_SHIFT]), int(cfg[VCfg.RECIP_K]), 8,
    ]  # fmt: skip
    return qconsts, [shift, int(cfg[VCfg.ZP]), int(cfg[VCfg.LO]), int(cfg[VCfg.HI])]


def _build(
    arch,
    t: dict,
    name: str,
    streamed: set[str],
    parts: int,
    scratch: bool = True,
    pipeline: bool = True,
    ring: int = 0,
) -> Mapped:
    R, C = arch.mac_rows, arch.mac_cols
    seq, d = t["q"].shape
    dv = t["v"].shape[1]
    sp, dp, vp = padded_keys(seq), ceil_to(d, 16), ceil_to(dv, C)
    ch = RowChain(arch, name, seq, lambda mtp: (mtp * R * vp) % 16 == 0)
    kb, mp_, mt = ch.kb, ch.mp, ch.mtp
    # banks (attention_load.py): 0 the MAC A operands and outputs (Q, S, PT, O; "low"),
    # 1 the vector scratch and constants, 2 and 3 (comb: 1) K^T's parts by turns, 3 V;
    # P's blocked copy in 2 (written after K^T's last use). Pipelined with multicast
    # reads: the tables PIPE_BANKS (4 banks) and PIPE_BANKS8 (8 or more), pipe_sides.
    use_banks(kb)
    b1, b2, b3 = (bank_side(arch, k) for k in (1, 2, 3))
    pipe = pipe_sides(arch)
    # pipelined (attention_tail.py): P V reads P's rows as a row-major A, no transposes;
    # each m tile's O leaves on its own (whole 16-byte words: R * vp a multiple of 16)
    pipelined = pipeline and scratch and ch.mtp > 1 and "V" not in streamed
    pipelined = pipelined and (R * vp) % 16 == 0
    # a ring of m tiles for the scores and probabilities (one tile of scratch rows)
    ring = ring if pipelined and MCAST and 0 < ring < ch.mtp else 0
    s_rows = ring * R if ring else mp_
    # the transposes expect K^T's key columns permuted within C-chunks; P's rows not
    perm = np.arange(sp) if pipelined else chunk_perm(sp, R, C)
    kt = np.zeros((dp, sp), np.int8)
    kt[:d, :seq] = t["k"].T
    kts = ch.add_shared(Shared("KT", "K^T", pack_b(kt[:, perm], dp, sp, C), dp, sp, SCORE, False))
    vs = ch.add_shared(Shared("V", "V", pack_b(t["v"], sp, vp, C), sp, vp, PV))
    vs.streamed = "V" in streamed
    kts.parts = min(parts, sp // C)
    if not vs.streamed:
        vs.parts = min(V_PARTS, vp // C)
    ch.assign()
    mcast = MCAST and not vs.streamed and len(ch.pes) > 1
    # multicast reads, pipelined (PIPE_BANKS with 4 banks): K^T's parts in banks 1 and
    # 2 by turns, V in bank 3 alone: V lands (multicast: one busy receiver stalls every
    # branch) while the MACs read K^T for the later m tiles (RTL, seq 128: 3,607 cycles;
    # parts in 2 and 3,
    # V sharing 3: 3,874; all parts in 2: 3,739); not pipelined: K^T's odd parts share
    # V's bank (V arrives after K^T), so the vector scratch (bank 1) is the vector
    # unit's alone while the MACs read K^T
    if mcast:
        kparts = KParts(ch, kts, pipe["kt"] if pipelined else [b2, b3])
    else:
        kparts = KParts(ch, kts, [b2, b1])
    vparts = None  # V's parts in buffers by turns over several banks (KParts)
    if not vs.streamed and pipelined and mcast and isinstance(pipe["v"], list):
        vparts = KParts(ch, vs, pipe["v"])
    elif not vs.streamed:
        kb.sram_bufs["Vs"].side = pipe["v"] if pipelined and mcast else b3
    used = [0, *(s for op in ch.shared.values() for s in op.sems), *ch.credits]
    wsem, gsem = max(used) + 1, max(used) + 2
    # P leaves the softmax as rows; a SELF DMA per m tile regroups its 16-byte words
    # into blocked tiles for the one-MATMUL transpose (needs C = 16 and a semaphore)
    words = C == 16 and wsem < arch.semaphores and mt < 1 << arch.sem_bits
    words = words and not pipelined
    # pipelined (attention_tail.py): the softmax of one m tile runs beside the transpose
    # and P V of the one before, so their buffers live together (one phase)
    soft_ph, trans_ph, pv_ph = (SOFT, SOFT, SOFT) if pipelined else (SOFT, TRANS, PV)
    go = gsem if gsem < arch.semaphores and len(ch.pes) > 1 else None
    if not mcast:
        whole_grid_v(ch, vs, gsem + 1)
        queue = start_loads(ch, kparts, vs, band_reader(ch, t["q"], dp, SCORE), go)
    kb.dram_tensor("O", len(ch.pes) * mp_ * vp)
    pad = lambda v: np.pad(np.asarray(v, np.int64), (0, vp - len(v)))  # noqa: E731
    po = param_blocks(pad(t["bias"]), pad(t["mult"]), pad(t["shift"]), t["zp"], -128, 127, C)
    blocks = [po[j : j + ch.q] for j in range(0, len(po), ch.q)]
    params_once = pipelined and all(b == blocks[0] for b in blocks)  # per-tensor in effect
    cb = pipe["consts"] if pipelined and mcast else b1
    ch.group("PO", "output params", len(po), (LOAD, pv_ph), cb, po)
    # ident: the out32 GEMMs' params; the selection matrices only for the transposes
    sel, ident = transpose_buffers(
        kb, ch.rect, (SCORE, trans_ph), blocked=words, selection=not pipelined
    )
    for buf in (sel, ident) if sel else (ident,):
        kb.sram_bufs[buf].side = cb
    consts, _ = softmax_cfg(t["scale"])
    qconsts, out = softmax_op_consts(consts)
    extra: dict = {}
    if sp > seq:
        mvec = np.where(perm < seq, 0, MASK).astype("<i4")
        mask = ch.group("mask", "key mask", mvec.nbytes, (soft_ph, soft_ph), cb, mvec.tobytes())
        f16 = int(np.flatnonzero(mvec)[0]) // 16  # the first 16 columns with masked keys
        extra = {"mask": f"@{mask}", **({"mask_from": f16} if f16 else {})}
    # pipelined, 4 banks: the scores in bank 1 and the scratch rows in bank 0, so the
    # second query tile (bank 0) lands while the vector unit streams tile 0's scores
    # (performance model, every placement of Q, S, E, P, O: 3,512 .. 3,575 cycles for seq 128; RTL:
    # scores in 0 and scratch in 1 4,054 against 3,874, P in 0, 1 or 3 worse than in 2)
    s_side, e_side = (pipe["s"], pipe["e"]) if pipelined else ("low", b1)
    ch.per_pe("S", "scores", s_rows * sp * 4, (SCORE, soft_ph), s_side)
    if scratch:
        e_rows = R if ring else mp_
        ch.per_pe("E", "exp(scores - row max)", e_rows * sp * 4, (soft_ph, soft_ph), e_side)
        extra["scratch"] = "@E{}"
    # the row-major transpose reads up to 16 rows of R bytes past a row start
    if pipelined:  # P V reads P's rows (row-major A)
        ch.per_pe("P", "probabilities", s_rows * sp, (soft_ph, pv_ph), pipe["p"])
    else:
        # the row-major transpose reads up to 16 rows of R bytes past a row start
        ch.per_pe(
            "P", "probabilities", mp_ * sp + (0 if words else 16 * R), (soft_ph, trans_ph), b1
        )
    if words:
        ch.per_pe("PB", "probabilities in blocked tiles", mp_ * sp, (soft_ph, trans_ph), b2)
        for pe in ch.pes:  # the SELF copies' descriptors (lowered by mapping.qsoftmax)
            kb.n_desc[pe] = kb.n_desc.get(pe, 0) + mt
    if not pipelined:
        ch.per_pe("PT", "P transposed", mp_ * sp, (trans_ph, pv_ph))
    ch.per_pe("O", "O", mp_ * vp, (pv_ph, STORE), pipe["o"] if pipelined else "low")
    t_side = pipe["t"] if pipelined else b1
    ch.per_pe("T", "softmax row sums", tmp_bytes(mp_), (soft_ph, soft_ph), t_side)
    later = None
    if mcast:  # attention_load.py: K^T and V by multicast reads, scores m tile by m tile
        later = mcast_scores(
            ch, kparts, vs, t["q"], dp,
            lambda pe, i, p, t0, tiles: kparts.matmul(pe, p, f"@Q{i}", f"@S{i}", f"@{ident}",
                                                      4 * sp, mt=tiles, t0=t0,
                                                      c_t0=t0 % ring if ring else t0),
            soft_ph, split=pipelined, vparts=vparts,
        )  # fmt: skip
    else:
        score_parts(
            ch,
            kparts,
            queue,
            lambda pe, i, p: kparts.matmul(pe, p, f"@Q{i}", f"@S{i}", f"@{ident}", 4 * sp),
        )
        if not vs.streamed:
            multicast_v(ch, vs)
    if pipelined:  # attention_tail.py: softmax of m tile t beside P V of tile t - 1
        for i, pe in enumerate(ch.pes):

            def store_o(t: int, cols: tuple[int, int] | None = None, pe=pe, i=i) -> None:
                """O of m tile t (only the byte columns [c0, c1) of its rows, if given;
                tiled: those R x C blocks, contiguous)."""
                if TILED_O:
                    c0, c1 = cols if cols else (0, vp)
                    ch.store(pe, i, "O", "O", mp_ * vp, (t * R * vp + c0 * R, (c1 - c0) * R))
                    return
                rows = (t * R * vp, R * vp)
                ch.store(pe, i, "O", "O", mp_ * vp, rows, (*cols, vp) if cols else None)

            soft = dict(src=f"@S{i}", dst=f"@P{i}", tmp=f"@T{i}", cols=sp, consts=qconsts,
                        out=out, **_at(extra, i))  # fmt: skip
            pipelined_tail(ch, pe, i, vs, soft, keys=sp, scores=later(i) if later else None,
                           store_o=store_o, params_once=params_once, vparts=vparts,
                           tiled_o=TILED_O, ring=ring)  # fmt: skip
        mapped = _finish(ch, t, "mask" in extra, consts, len(kparts), "row-major A", pipelined)
        mapped.plan["ring"] = ring
        return mapped
    for i, pe in enumerate(ch.pes):
        for step in later(i) if later else []:
            step()
        out_at = {"words": f"@PB{i}", "sem": wsem} if words else {}
        kb.add(
            pe, QSoftmaxOp, src=f"@S{i}", dst=f"@P{i}", tmp=f"@T{i}", rows=mp_, cols=sp,
            consts=qconsts, out=out, **_at(extra, i), **out_at,
        )  # fmt: skip
        if words:
            kb.add(pe, mp.WaitOp, sem=wsem, count=mt)
            kb.add(
                pe, TransposeBlockedOp, src=f"@PB{i}", dst=f"@PT{i}", sel=f"@{sel}",
                params=f"@{ident}", tiles=[mt, sp // C],
            )  # fmt: skip
        else:
            kb.add(
                pe, mp.TransposeOp, src=f"@P{i}", dst=f"@PT{i}", sel=f"@{sel}",
                params=f"@{ident}", rows=mp_, cols=sp, ldc=sp,
            )  # fmt: skip
    if not vs.streamed:
        wait_v(ch, vs)
    for i, pe in enumerate(ch.pes):
        ch.gemm(pe, i, f"PT{i}", vs, f"O{i}", "PO", vp)
    for i, pe in enumerate(ch.pes):
        ch.store(pe, i, "O", "O", mp_ * vp)
    transpose = "words" if words else "row-major"
    return _finish(ch, t, "mask" in extra, consts, len(kparts), transpose, pipelined)


def _finish(
    ch: RowChain, t: dict, masked: bool, consts, kparts: int, transpose: str, pipelined: bool
) -> Mapped:
    """The output, plan and pe_work of the head built on ``ch``."""
    seq, d = t["q"].shape
    dv = t["v"].shape[1]
    sp, vp = padded_keys(seq), ceil_to(dv, ch.arch.mac_cols)
    if pipelined and TILED_O:
        ch.tiled_output("O", seq, dv, vp)
    else:
        ch.rows_output("O", seq, dv, vp)
    plan = ch.plan(keys_padded=sp, masked=masked, softmax_consts=consts)
    plan["transpose"] = transpose
    plan["pipelined"] = pipelined
    plan["parts"] = {"KT": kparts}
    rows = min(ch.mp, seq)  # the busiest PE's query rows
    n = rows * seq  # score elements: RMAX, SUB, EXP, RSUM, REQ (MUL fused); RECIP per row
    passes = [(f, n, 4) for f in ("RMAX", "SUB", "EXP", "RSUM", "REQ")]
    plan["pe_work"] = pe_work(ch.arch, rows * seq * (d + dv), passes, {"RECIP": rows})
    return ch.kb.finish(plan)


def _at(attrs: dict, i: int) -> dict:
    """``attrs`` with the per-PE buffer names (``{}`` -> PE index ``i``) filled in."""
    return {k: v.format(i) if isinstance(v, str) else v for k, v in attrs.items()}
