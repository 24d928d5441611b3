"""The transfers of the attention head (attention.py): who reads what from DRAM, in
which order, and how K^T and V reach every PE of the row grid.

Since stop 11 the head uses multicast reads (:func:`mcast_scores`, docs/isa.md): PE
(0, 0) reads every part of K^T and V once, to the whole grid, and nobody forwards
(RTL, `small`, seq 128: 4549 cycles with the tail of attention_tail.py; docs/backend.md).
The comb below stays for the front end's head (qattention.py).  Its history:

Measured on the RTL chip (``small``, seq 128, d 64; cycles of the whole head), each
step against the one before:

* K^T in parts along the unicast comb (chain.py), the score GEMM part by part as
  the parts arrive; V along the comb before its GEMM: 13453.
* SRAM banks by role (banks.py): 0 the MAC A operands and outputs, 1 the vector
  scratch and constants, 2 K^T, 3 V.  The SRAM arbiter serves the compute units
  first, so a part arriving in (or forwarded from) a bank that a MATMUL or VOP is
  streaming waits for it; with everything ``high`` in one bank the broadcasts ran
  one hop per GEMM part: 12507.
* V multicast by PE (0, 0) to all other PEs (two RECT writes per part) instead of
  the comb: the comb's forwarders reach V only in their own P V phase, one hop at
  a time behind each other's GEMMs: 8396 (V before the softmax along the comb:
  9640).
* K^T's parts in two banks by turns, the score GEMM one part behind the comb: a PE
  forwards part p from one bank while its MACs read part p - 1 in the other: 7027
  (two banks without the lag: 8044; three banks: 7030).  Later runs: 6994.

Tried and not kept (RTL): V in one or two parts (7188, 7252: PE (0, 0) sends fewer,
longer writes); V read and multicast by two PEs, (0, 0) and (gc - 1, 0), part by
part (7254); PE (0, 0) reading 2 or 5 parts ahead instead of 3 (7165, 7595); each
PE reading its row band when K^T's first part reaches it, so that the DRAM serves the
bands in comb order (7327); K^T in 4 or 2 parts instead of 8 (7454, 8395); P V and
the store of O m tile by m tile (7054: one QLOAD per tile and part, and the DRAM
port is not the tail).  The PEs that forward nothing (the comb's leaves) compute a
part as soon as it arrives: performance model 7835 -> 7754, RTL unchanged (6994: PE
(0, 0) ends last, about 50 cycles after the others; at 6800 cycles five PEs of rows
0 to 3 still ran).

The performance model (sim/perf.py) does not charge DMA for SRAM banks taken by
the compute units; it prefers the comb for V (6942 against 7692 modelled).

DRAM order: the DRAM serves reads in arrival order and every PE's first GEMM waits
for K^T's first part, so PE (0, 0) reads K^T's first part, its row band and two
more parts before it tells the other PEs (a SIGNAL on semaphore ``go``) to read
their row bands; then it reads one more part of K^T (then of V) per part it
forwards.
"""

from __future__ import annotations

import numpy as np

from compiler.backend.chain import END, LOAD, RowChain, Shared
from compiler.backend.chain_ops import MatmulWinOp
from compiler.backend.gemm import words_rows
from compiler.backend.groups import broadcast_load, broadcast_wait
from compiler.backend.layout import pack_a
from compiler.dialects import mapping as mp

__all__ = [
    "KParts",
    "band_reader",
    "others",
    "start_loads",
    "score_parts",
    "multicast_v",
    "wait_v",
    "whole_grid_v",
    "mcast_scores",
]

AHEAD = 3  # reads PE (0, 0) issues before the other PEs read their row bands


def others(gc: int, gr: int) -> list[list[int]]:
    """Rectangles covering the gc x gr grid without PE (0, 0)."""
    rects = [[1, 0, gc - 1, gr - 1]] if gc > 1 else []
    return rects + ([[0, 1, 0, gr - 1]] if gr > 1 else [])


class KParts:
    """K^T's parts (runs of column tiles, ``kts.part_tiles``) in buffers ``KTs<r>``
    that take turns by part, one per bank of ``sides`` (the buffer RowChain.assign
    declared whole is dropped).  Buffers a PE forwards from stay live to the end."""

    def __init__(self, ch: RowChain, kts: Shared, sides: list[str]):
        self.ch, self.op = ch, kts
        C = ch.arch.mac_cols
        sides = sides[: len(kts.part_tiles(C))]
        fill = [0] * len(sides)
        self.parts: list[tuple[int, int, str, int, int]] = []  # j0, j1, buf, off, bytes
        for p, (j0, j1) in enumerate(kts.part_tiles(C)):
            r, nbytes = p % len(sides), (j1 - j0) * kts.k * C
            self.parts.append((j0, j1, f"{kts.name}s{r}", fill[r], nbytes))
            fill[r] += nbytes
        kb = ch.kb
        whole = kb.sram_bufs.pop(f"{kts.name}s")
        kb.sram.buffers.remove(whole)
        for r, side in enumerate(sides):
            ch.group(f"{kts.name}s{r}", kts.tensor, fill[r], (LOAD, END), side)

    def __len__(self) -> int:
        return len(self.parts)

    def load(self, p: int, to: list[int] | None = None) -> None:
        """PE (0, 0) reads part ``p`` from DRAM (a multicast read to ``to``)."""
        j0, _, buf, off, nbytes = self.parts[p]
        self.ch.kb.add(
            (0, 0), mp.TransferOp, local=f"@{buf}", remote=f"@{self.op.name}",
            count=words_rows(nbytes), sem=self.op.sems[0], read=1,
            **({"local_offset": off} if off else {}),
            **({"remote_offset": j0 * self.op.k * self.ch.arch.mac_cols} if j0 else {}),
            **({"to": to} if to else {}),
        )  # fmt: skip

    def arrive(self, p: int) -> None:
        """Every PE waits for part ``p`` and forwards it along the comb."""
        _, _, buf, off, nbytes = self.parts[p]
        ch = self.ch
        broadcast_wait(ch.kb, ch.gc, ch.gr, buf, nbytes, self.op.sems[0], off, "comb")

    def matmul(
        self,
        pe,
        p: int,
        a: str,
        c: str,
        params: str,
        ldc: int,
        mt: int | None = None,
        t0: int = 0,
        c_t0: int | None = None,
    ) -> None:
        """int32 ``c`` columns of part ``p`` = ``a`` (``mt`` tiles from m tile ``t0``,
        default the row band's) @ part ``p`` (out32), into ``c``'s rows of m tile
        ``c_t0`` (default ``t0``; a ring of m tiles)."""
        j0, j1, buf, off, _ = self.parts[p]
        R, C = self.ch.arch.mac_rows, self.ch.arch.mac_cols
        mt = self.ch.mtp if mt is None else mt
        c_t0 = t0 if c_t0 is None else c_t0
        self.ch.kb.add(
            pe, MatmulWinOp, a=a, b=f"@{buf}", c=c, params=params, tiles=[mt, j1 - j0],
            k=self.op.k, ldc=ldc, col_step=4 * C, out32=1, param_stride=0,
            c_offset=j0 * 4 * C + c_t0 * R * ldc, **({"b_offset": off} if off else {}),
            **({"a_offset": t0 * self.op.k * R} if t0 else {}),
        )  # fmt: skip


def band_reader(ch: RowChain, a: np.ndarray, kp: int, last: int):
    """Declare the row bands ``Q<i>`` (DRAM ``Q``, packed A layout) and return
    ``read(i, t0=0, t1=all)``, which adds PE i's read of m tiles [t0, t1) of its band
    (semaphore 0)."""
    kb, R = ch.kb, ch.arch.mac_rows
    packed = pack_a(a, len(ch.pes) * ch.mp, kp, R)
    kb.dram_tensor("Q", packed.nbytes, packed.tobytes())
    tile = kp * R
    for i, pe in enumerate(ch.pes):
        kb.sram_buffer(f"Q{i}", "Q", ch.mtp * tile, pe, (LOAD, last), "low")

    def read(i: int, t0: int = 0, t1: int | None = None) -> None:
        t1 = ch.mtp if t1 is None else t1
        kb.add(
            ch.pes[i], mp.TransferOp, local=f"@Q{i}", remote="@Q",
            remote_offset=(i * ch.mtp + t0) * tile, count=words_rows((t1 - t0) * tile), sem=0,
            read=1, **({"local_offset": t0 * tile} if t0 else {}),
        )  # fmt: skip

    return read


def _read(ch: RowChain, items) -> None:
    """PE (0, 0) reads these: (KParts, index) or (resident Shared, column tiles)."""
    for op, part in items:
        if isinstance(op, KParts):
            op.load(part)
            continue
        off, nbytes = ch._part(op, *part)
        sem = op.sems[0] if op.read_sem is None else op.read_sem
        broadcast_load(ch.kb, ch.gc, ch.gr, f"{op.name}s", op.name, nbytes, sem, off)


def start_loads(ch: RowChain, kparts: KParts, vs: Shared, band, go: int | None) -> list:
    """The first reads (module docstring); returns the reads still to issue."""
    queue: list = [(kparts, p) for p in range(len(kparts))]
    if not vs.streamed:
        queue += [(vs, part) for part in vs.part_tiles(ch.arch.mac_cols)]
    ahead = AHEAD if go is not None else 1
    _read(ch, queue[:1])
    band(0)
    _read(ch, queue[1:ahead])
    for rect in others(ch.gc, ch.gr) if go is not None else []:
        ch.kb.add((0, 0), mp.SignalOp, sem=go, count=1, to=rect)
    for i, pe in enumerate(ch.pes[1:], 1):
        if go is not None:
            ch.kb.add(pe, mp.WaitOp, sem=go, count=1)
        band(i)
    return queue[ahead:]


def forwards(ch: RowChain, pe) -> bool:
    """Whether ``pe`` passes parts on along the comb (groups.broadcast_wait)."""
    x, y = pe
    return (y == 0 and x + 1 < ch.gc) or y + 1 < ch.gr


def score_parts(ch: RowChain, kparts: KParts, queue: list, gemm) -> None:
    """Every PE: K^T part by part along the comb, ``gemm(pe, i, p)`` one part behind
    the part it forwards (a PE that forwards nothing: on the part that arrived, whose
    bank the next part does not use); PE (0, 0) issues the remaining reads on the
    way."""
    n = len(kparts)
    lag = [1 if forwards(ch, pe) else 0 for pe in ch.pes]
    for p in range(n):
        kparts.arrive(p)
        per = -(-len(queue) // (n - p))  # every read issued by the last part
        _read(ch, queue[:per])
        queue = queue[per:]
        for i, pe in enumerate(ch.pes):
            if p == 0:
                ch.kb.add(pe, mp.WaitOp, sem=0, count=1)  # the row band
            if p >= lag[i]:
                gemm(pe, i, p - lag[i])
    for i, pe in enumerate(ch.pes):
        if lag[i]:
            gemm(pe, i, n - 1)


def whole_grid_v(ch: RowChain, vs: Shared, sem: int) -> None:
    """Give PE (0, 0)'s reads of resident V semaphore ``sem`` if there is one, so that
    multicast_v writes one RECT over the whole grid."""
    if not vs.streamed and sem < ch.arch.semaphores and len(ch.pes) > 1:
        vs.read_sem = sem


def multicast_v(ch: RowChain, vs: Shared) -> None:
    """PE (0, 0) writes each part of resident V to all PEs as it arrives from DRAM
    (semaphore vs.sems[0] at the receivers).  With ``vs.read_sem`` (the reads' own
    semaphore) the grid is one RECT, (0, 0) included: its DMA engine injects every
    flit once instead of once per rectangle; else two RECTs around (0, 0)."""
    whole = vs.read_sem is not None
    rects = [[0, 0, ch.gc - 1, ch.gr - 1]] if whole else others(ch.gc, ch.gr)
    for j0, j1 in vs.part_tiles(ch.arch.mac_cols):
        off, nbytes = ch._part(vs, j0, j1)
        ch.kb.add((0, 0), mp.WaitOp, sem=vs.read_sem if whole else vs.sems[0], count=1)
        for rect in rects:
            ch.kb.add(
                (0, 0), mp.TransferOp, local=f"@{vs.name}s", remote=f"@{vs.name}s",
                count=words_rows(nbytes), sem=vs.sems[0], read=0, signal=1, to=rect,
                **({"local_offset": off, "remote_offset": off} if off else {}),
            )  # fmt: skip


def wait_v(ch: RowChain, vs: Shared) -> None:
    """Every PE waits for all parts of V (multicast_v); PE (0, 0) only for its
    self-writes (when it writes itself), so that none lands under its P V."""
    for pe in ch.pes[0 if vs.read_sem is not None or vs.mcast_read else 1 :]:
        ch.kb.add(pe, mp.WaitOp, sem=vs.sems[0], count=len(vs.part_tiles(ch.arch.mac_cols)))


# K^T parts a PE waits for before it reads its other query tiles (RTL, small, seq 128:
# after part 6 3,160 cycles, 5 or 4 3,122, 3 3,272: the PEs whose tile arrives last
# finish last, the others wait on their softmax)
Q_REST_AFTER = 5
READS_AHEAD = 4  # PE (0, 0)'s reads queued before its first WAIT


def mcast_scores(
    ch: RowChain,
    kparts: KParts,
    vs: Shared,
    q: np.ndarray,
    kp: int,
    score,
    q_last: int,
    split: bool = True,
    vparts: KParts | None = None,
):
    """The loads and scores with multicast reads (docs/isa.md): PE (0, 0) reads each
    part of K^T, then of V, once from DRAM to the whole grid (every PE, itself too,
    is signalled on the part's semaphore); every PE reads its own query tiles, the
    first at once, the others after K^T's part ``Q_REST_AFTER`` (so that the DRAM
    serves K^T first).  Scores: m tile 0 part by part as K^T arrives, then the
    other m tiles on the resident K^T (``score(pe, i, part, m tile)``), so the
    softmax of tile 0 can start while the MAC array works on the next: the returned
    ``later(i)`` is the list of steps that add PE i's scores of those tiles (the
    first after a WAIT for its query tiles), for the caller to place among the
    softmax's VOPs (attention_tail.py); the query tiles live until phase ``q_last``.
    Not ``split``: every m tile is scored part by part as K^T arrives (fewer
    instructions: one MATMUL loop per part) and ``later(i)`` is empty.  PE (0, 0)
    spreads its reads over the parts (its DMA queue holds ``dma_queue`` descriptors;
    a full queue stalls its controller)."""
    kb, C = ch.kb, ch.arch.mac_cols
    grid = [0, 0, ch.gc - 1, ch.gr - 1]
    vs.mcast_read = True
    read_q = band_reader(ch, q, kp, q_last)
    n = len(kparts)
    mt = ch.mtp if split else 1  # query tiles read and scored first (all if not split)

    def read_v(j0: int, j1: int) -> None:
        off, nbytes = ch._part(vs, j0, j1)
        kb.add(
            (0, 0), mp.TransferOp, local=f"@{vs.name}s", remote=f"@{vs.name}",
            count=words_rows(nbytes), sem=vs.sems[0], read=1, to=grid,
            **({"local_offset": off, "remote_offset": off} if off else {}),
        )  # fmt: skip

    rest = min(Q_REST_AFTER, n - 1)
    queue: list = [lambda p=p: kparts.load(p, grid) for p in range(1, n)]
    queue.insert(rest, lambda: read_q(0, 1, mt) if mt > 1 else None)
    first = 1 if split else ch.mtp
    kparts.load(0, grid)
    read_q(0, 0, first)
    for read in queue[: READS_AHEAD - 1]:
        read()
    queue = queue[READS_AHEAD - 1 :]
    for i in range(1, len(ch.pes)):
        read_q(i, 0, first)
    for p in range(n):
        per = -(-len(queue) // (n - p))  # every read issued by the last part
        for read in queue[:per]:
            read()
        queue = queue[per:]
        for i, pe in enumerate(ch.pes):
            kb.add(pe, mp.WaitOp, sem=kparts.op.sems[0], count=1)
            if p == 0:
                kb.add(pe, mp.WaitOp, sem=0, count=1)  # query tile 0
            score(pe, i, p, 0, first)
            if p == rest and i > 0 and mt > 1:
                read_q(i, 1, mt)
    # V after the other query tiles' reads (the DRAM serves reads in arrival order);
    # V among K^T's parts: performance model 4758-5251 against 4509-4656
    # (V's parts in buffers by turns over banks, or one buffer; RTL, 8 banks: read by
    # the opposite corner after its other query tiles instead, 3,235 against 3,210)
    if vparts is not None:
        for p in range(len(vparts)):
            vparts.load(p, grid)
    else:
        for j in vs.part_tiles(C):
            read_v(*j)

    def later(i: int) -> list:
        """PE i's scores of m tiles 1.. (the softmax of tile 0 can run beside them)."""
        pe = ch.pes[i]

        def step(t: int, p: int) -> None:
            if (t, p) == (1, 0):
                kb.add(pe, mp.WaitOp, sem=0, count=1)  # the other query tiles
            score(pe, i, p, t, 1)

        return [lambda t=t, p=p: step(t, p) for t in range(1, mt) for p in range(n)]

    return later
