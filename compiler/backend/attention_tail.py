"""The attention head's tail pipelined by m tile (attention.py): the softmax of m tile
t runs on the vector unit beside the MAC array's work on the neighbouring tiles.

With decoupled units (docs/isa.md) a nowait command overlaps what the controller
issues after it until the next command for the same unit.  Each softmax part
(mapping.qsoftmax ``phases``, one segmented VOP per pass: the RMAX, the EXPB, the
RSUM, the RECIP, the REQB) goes out first, nowait, and then its share of the MAC
array's steps, on which the controller waits (:func:`interleave`).
compiler/backend/overlap.py places the FENCEs: the two streams touch disjoint
buffers, so it needs none between them.  P V reads the probabilities' rows as they
leave the REQB, as a row-major A (MATMUL ``alda``, docs/isa.md "Row-major A"): no
transposes.

Per PE (tiles 0 .. mt - 1 of R query rows each; with multicast reads tile 0's
scores come first, attention_load.mcast_scores):

    softmax(0) beside the scores of tiles 1 ..
    for t in 1 .. mt - 1:
        softmax(t) beside P V(t - 1, every n tile)
        O of tile t - 1 to DRAM
    P V(mt - 1, every n tile), O of tile mt - 1 by 16-byte columns as they finish

With a ring (``ring`` = 2, attention.RING: the scores of every m tile do not fit),
softmax(0) runs beside the scores of tile 1 only, and softmax(t) beside the scores
of tile t + 1 (into the slot of tile t - 1) followed by P V(t - 1).

RTL, `small`, seq 128 (2 m tiles): before multicast reads and segments, sequential
6,483 cycles; P V paired with the softmax parts 6,276; nine orders measured,
5,981-6,102 (with RECIP's early termination).  With multicast reads and segments
4,549; with row-major A (no transposes), EXPB, one QLOAD and the banks of
attention.py 3,607.

The first P V tile waits for V part by part.
"""

from __future__ import annotations

from compiler.backend.chain import RowChain, Shared
from compiler.backend.tile_ops import MatmulAtOp
from compiler.backend.vec_ops import ALL_PHASES, QSoftmaxOp, SoftmaxPhase
from compiler.dialects import mapping as mp
from compiler.errors import CompileError

# tile 0's score steps of the later m tiles per softmax part (RMAX, EXPB, RSUM, RECIP,
# REQB).  The controller waits for each MATMUL's acceptance, so a step placed before a
# VOP holds that VOP back.  Measured on the RTL (small, seq 128, 8 banks): 0-3-2-2-1
# 3,061 cycles, 0-2-3-2-1 3,062, 0-2-2-2-2 3,063, 1-3-2-2-0 3,119, 0-1-3-2-2 3,130: no
# step before the EXPB, whose issue would otherwise wait for the other query tiles
# (the last PEs' arrive some 170 cycles after tile 0's scores; stop 12, 4 banks:
# 1-3-2-2-0 was best)
TILE0_SHARES = (0, 3, 2, 2, 1)
# the last m tile's O leaves by columns of this many bytes (16 or 32) as they finish
TAIL_COL_BYTES = 32
__all__ = ["pipelined_tail", "softmax_parts", "interleave"]


def softmax_parts(r0: int, rows: int, split: int = 2) -> list[tuple[SoftmaxPhase, int, int]]:
    """(phases, first row, rows) of one m tile's softmax, in program order: the max
    and subtraction over each of ``split`` runs of rows, then the EXP, RSUM, RECIP
    and REQ."""
    half = max(rows // split, 1)
    parts = [(SoftmaxPhase.PASS1, r, min(half, r0 + rows - r)) for r in range(r0, r0 + rows, half)]
    rest = (SoftmaxPhase.EXP, SoftmaxPhase.RSUM, SoftmaxPhase.RECIP, SoftmaxPhase.REQ)
    return parts + [(ph, r0, rows) for ph in rest]


def pipelined_tail(
    ch: RowChain,
    pe,
    i: int,
    vs: Shared,
    soft: dict,
    *,
    keys: int,
    scores: list | None = None,
    store_o=None,
    params_once: bool = False,
    vparts=None,
    tiled_o: bool = False,
    ring: int = 0,
) -> None:
    """PE ``pe`` (index ``i``): softmax and P V (module docstring). ``soft``: the
    QSoftmaxOp attributes shared by every part (src, dst, tmp, cols, consts, out, mask,
    scratch); P V reads the probabilities' rows in ``dst`` as a row-major A
    (``alda``, docs/isa.md "Row-major A"). ``scores``: steps that add the MATMULs of
    the scores of m tiles 1.. (attention_load.mcast_scores), paired one by one with
    the parts of tile 0's softmax. ``params_once``: every n tile has the same output
    parameters, loaded by the first P V only (a QLOAD waits for the rows of the
    MATMUL before it, so each one would cost the P V its output overlap). ``ring``:
    the scores and probabilities of m tile t sit in slot t % ring of ``src`` and
    ``dst``, the scratch rows of every tile in the same R rows; the scores of tile
    t + 1 are computed beside the softmax of tile t, after the P V of tile t - 1
    (``scores`` then holds the same number of steps per tile)."""
    kb, R, C = ch.kb, ch.arch.mac_rows, ch.arch.mac_cols
    mt, nt = ch.mtp, vs.n // C
    v_starts = {j0 for j0, _ in vs.part_tiles(C)}  # n tiles that begin a V part
    waits_v = not vs.streamed and (i > 0 or vs.read_sem is not None or vs.mcast_read)

    def softmax(phases: int, r0: int, rows: int) -> None:
        if ring:  # m tile r0 // R in its slot; the scratch rows of one tile
            at = {"row0": (r0 // R) % ring * R + r0 % R, "scratch_row0": r0 % R}
            kb.add(pe, QSoftmaxOp, **soft, rows=rows, **at, phases=int(phases), mt_total=ring)
            return
        kb.add(pe, QSoftmaxOp, **soft, rows=rows, row0=r0, phases=int(phases), mt_total=mt)

    def store(t: int, cols: tuple[int, int] | None = None) -> None:
        """O of tile t to DRAM (its last P V MATMUL's rows: overlap.py fences them);
        ``cols``: only those byte columns of its rows."""
        if store_o is not None:
            store_o(t, cols)

    def pv(t: int, j: int) -> None:
        # O tile-major (R x C blocks, contiguous per n tile), else rows of vs.n bytes
        if tiled_o:
            out = {"ldc": C, "c_offset": t * R * vs.n + j * R * C}
        else:
            out = {"ldc": vs.n, "c_offset": t * R * vs.n + j * C}
        if t == 0 and j in v_starts and waits_v:
            kb.add(pe, mp.WaitOp, sem=vs.sems[0], count=1)  # V part from column tile j
        params = {"qload": int(t == j == 0)} if params_once else {"p_offset": j * ch.q}
        b, b_off = f"@{vs.name}s", j * keys * C
        if vparts is not None:  # the buffer of the part holding n tile j
            j0, _, buf, off, _ = next(pt for pt in vparts.parts if pt[0] <= j < pt[1])
            b, b_off = f"@{buf}", off + (j - j0) * keys * C
        a_t = t % ring if ring else t  # P's slot
        kb.add(
            pe, MatmulAtOp, a=soft["dst"], b=b, c=f"@O{i}", params="@PO",
            tiles=[1, 1], k=keys, a_offset=a_t * R * keys, b_offset=b_off, alda=keys // 16,
            **out, **params,
        )  # fmt: skip

    per_tile = len(scores) // (mt - 1) if ring and scores else 0
    if ring and (not scores or per_tile * (mt - 1) != len(scores)):
        raise CompileError("pipelined_tail: a ring needs the same score steps for each m tile")
    tile_scores = lambda t: scores[(t - 1) * per_tile : t * per_tile] if t < mt else []  # noqa: E731
    if scores:  # tile 0's softmax beside the MAC array's other score tiles (ring: tile 1's)
        parts = [lambda p=p: softmax(*p) for p in softmax_parts(0, R, 1)]
        interleave(parts, tile_scores(1) if ring else scores, TILE0_SHARES)
    else:
        softmax(ALL_PHASES, 0, R)  # tile 0 whole: the MAC has nothing to overlap yet
    for t in range(1, mt):
        mac = [lambda t=t, j=j: pv(t - 1, j) for j in range(nt)]
        if ring:  # tile t + 1's scores, into the slot of tile t - 1, whose softmax is done
            mac = tile_scores(t + 1) + mac
        interleave([lambda p=p: softmax(*p) for p in softmax_parts(t * R, R, 1)], mac)
        store(t - 1)
    # the last tile's O by columns of two 16-byte words (else one) as its P V tiles
    # finish: only the last columns' store follows the last MATMUL (whole words only;
    # each store FENCEs the MATMULs before it. RTL, seq 128: 32-byte columns 3512,
    # 16-byte 3540, whole rows 3656)
    width = TAIL_COL_BYTES if vs.n % TAIL_COL_BYTES == 0 else 16
    per = width // C if width % C == 0 and vs.n % 16 == 0 else nt
    ends = {j for j in range(nt) if (j + 1) % per == 0} | {nt - 1}
    j0 = 0
    for j in range(nt):
        pv(mt - 1, j)
        if j in ends:
            store(mt - 1, (j0 * C, (j + 1) * C) if per < nt else None)
            j0 = j + 1


def interleave(vector: list, mac: list, weights: tuple | None = None) -> None:
    """Add the vector parts, each followed by its share of the MAC steps: a part's VOPs
    go out nowait and run while the controller waits on the MAC array's commands.
    The shares follow ``weights`` (one per part, cumulative rounding); by default
    equal shares for every part but the last (whose successor, the next tile's
    softmax, waits for them: the next scores or P V)."""
    w = weights or (1,) * (len(vector) - 1) + (0,)
    total, acc, at = sum(w), 0, 0
    for part, wk in zip(vector, w, strict=True):
        part()
        acc += wk
        hi = round(acc * len(mac) / total)
        for step in mac[at:hi]:
            step()
        at = hi
