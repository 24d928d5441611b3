"""The attention head's tail pipelined by m tile (attention.py): the softmax of m tile
t runs on the vector unit beside the transpose and P V of m tile t - 1 on the MAC.

With decoupled units (docs/isa.md) a nowait command overlaps what the controller
issues after it until the next command for the same unit; so the program pairs a
long command of one unit with a run of short commands of the other: each P V
MATMUL (K = keys cycles) with one part of the softmax (mapping.qsoftmax
``phases``: the EXP, the RSUMs, the RECIP, the REQs).  From tile t - 1's transpose
on, the MAC array is the busier unit (transpose and P V of two tiles), so it starts
as early as tile t - 1's probabilities allow.  compiler/backend/overlap.py places
the FENCEs: the two streams touch disjoint buffers, so it needs none between them.

Per PE (tiles 0 .. mt - 1 of R query rows each):

    softmax(0)
    for t in 1 .. mt - 1:
        softmax(t): RMAX/SUB over each half of the rows
        transpose(t - 1)
        P V(t - 1, n tile 0), EXP(t), P V(t - 1, n tile 1), RSUM(t), ..., REQ(t), ...
    transpose(mt - 1); P V(mt - 1, every n tile)

RTL, `small`, seq 128 (2 m tiles; before RECIP's early termination): sequential
6,483 cycles; the transpose first, then P V paired with every softmax part 6,276;
RMAX/SUB halves and EXP, then the transpose, then P V with RSUM, RECIP, REQ 6,158.
With RECIP's early termination that order takes 6,030, this one 5,981 (nine orders
measured, 5,981-6,102).

The first P V tile waits for V part by part (multicast_v signals each part).
"""

from __future__ import annotations

from compiler.backend.chain import RowChain, Shared
from compiler.backend.chain_ops import TransposeBlockedOp
from compiler.backend.tile_ops import MatmulAtOp
from compiler.backend.vec_ops import ALL_PHASES, QSoftmaxOp, SoftmaxPhase
from compiler.dialects import mapping as mp

__all__ = ["pipelined_tail", "softmax_parts"]


def softmax_parts(r0: int, rows: int) -> list[tuple[SoftmaxPhase, int, int]]:
    """(phases, first row, rows) of one m tile's softmax, in program order: the max
    and subtraction over each half of the rows, then the EXP, RSUM, RECIP and REQ."""
    half = max(rows // 2, 1)
    parts = [(SoftmaxPhase.PASS1, r, min(half, r0 + rows - r)) for r in range(r0, r0 + rows, half)]
    rest = (SoftmaxPhase.EXP, SoftmaxPhase.RSUM, SoftmaxPhase.RECIP, SoftmaxPhase.REQ)
    return parts + [(ph, r0, rows) for ph in rest]


def pipelined_tail(
    ch: RowChain, pe, i: int, vs: Shared, soft: dict, *, sel: str, ident: str, wsem: int, keys: int
) -> None:
    """PE ``pe`` (index ``i``): softmax, transposes and P V (module docstring).
    ``soft``: the QSoftmaxOp attributes shared by every part (src, dst, tmp, cols,
    consts, out, mask, scratch, words)."""
    kb, R, C = ch.kb, ch.arch.mac_rows, ch.arch.mac_cols
    mt, nt = ch.mtp, vs.n // C
    v_starts = {j0 for j0, _ in vs.part_tiles(C)}  # n tiles that begin a V part
    waits_v = not vs.streamed and (i > 0 or vs.read_sem is not None)

    def softmax(phases: int, r0: int, rows: int) -> None:
        kb.add(pe, QSoftmaxOp, **soft, rows=rows, row0=r0, phases=int(phases), mt_total=mt,
               sem=wsem)  # fmt: skip

    def transpose(t: int) -> None:
        kb.add(pe, mp.WaitOp, sem=wsem, count=1)  # the SELF copy of tile t's words
        kb.add(
            pe, TransposeBlockedOp, src=f"@PB{i}", dst=f"@PT{i}", sel=f"@{sel}",
            params=f"@{ident}", tiles=[1, keys // C], src_offset=t * R * 16,
            src_stride=mt * R * 16, dst_offset=t * keys * R,
        )  # fmt: skip

    def pv(t: int, j: int) -> None:
        if t == 0 and j in v_starts and waits_v:
            kb.add(pe, mp.WaitOp, sem=vs.sems[0], count=1)  # V part from column tile j
        kb.add(
            pe, MatmulAtOp, a=f"@PT{i}", b=f"@{vs.name}s", c=f"@O{i}", params="@PO",
            tiles=[1, 1], k=keys, ldc=vs.n, a_offset=t * keys * R, b_offset=j * keys * C,
            c_offset=t * R * vs.n + j * C, p_offset=j * ch.q,
        )  # fmt: skip

    softmax(ALL_PHASES, 0, R)  # tile 0 whole: the MAC has nothing to overlap yet
    for t in range(1, mt):
        parts = softmax_parts(t * R, R)
        pass1 = [p for p in parts if p[0] == SoftmaxPhase.PASS1]
        rest = parts[len(pass1) :]  # EXP, RSUM, RECIP, REQ
        for part in pass1:  # RMAX/SUB by halves: the MAC waits for tile t - 1's P
            softmax(*part)
        transpose(t - 1)  # short MATMULs under the last SUBs
        for k in range(max(nt, len(rest))):  # P V MATMULs between the other parts
            if k < nt:
                pv(t - 1, k)
            if k < len(rest):
                softmax(*rest[k])
    transpose(mt - 1)
    for j in range(nt):
        pv(mt - 1, j)
