"""PE groups and the shared-operand broadcast used by the row-partitioned kernels.

``row_grid`` picks the largest rectangle of PEs (``gc x gr`` at the origin) that
has at least one R-row tile per PE.  ``broadcast_*`` is the load of a tensor that
every PE of the group needs (weights, K and V): PE (0, 0) reads it from DRAM once
and multicasts it along row 0; each PE of row 0 forwards it down its column (or, in
parts, a unicast comb: along row 0 and down every column), every write incrementing
semaphore ``sem`` at its receivers; every PE waits on ``sem`` (PE (0, 0) on its own
read).
"""

from __future__ import annotations

from compiler.backend.builder import KernelBuilder
from compiler.backend.gemm import words_rows
from compiler.dialects import mapping as mp

__all__ = ["row_grid", "broadcast_load", "broadcast_wait", "pes_of"]


def row_grid(arch, m_tiles: int) -> tuple[int, int, int]:
    """(gc, gr, tiles per PE) for ``m_tiles`` R-row tiles split over a rectangle."""
    best = (1, 1)
    for gr in range(1, arch.mesh_rows + 1):
        for gc in range(1, arch.mesh_cols + 1):
            if gc * gr <= m_tiles and gc * gr > best[0] * best[1]:
                best = (gc, gr)
    gc, gr = best
    return gc, gr, -(-m_tiles // (gc * gr))


def pes_of(gc: int, gr: int) -> list[tuple[int, int]]:
    return [(x, y) for y in range(gr) for x in range(gc)]


def broadcast_load(
    kb: KernelBuilder,
    gc: int,
    gr: int,
    buf: str,
    dram: str,
    nbytes: int,
    sem: int,
    offset: int = 0,
) -> None:
    """PE (0, 0): read bytes ``[offset, offset + nbytes)`` of ``dram`` into ``buf``
    (completion on ``sem``); broadcast_wait multicasts them."""
    kb.add(
        (0, 0),
        mp.TransferOp,
        local=f"@{buf}",
        remote=f"@{dram}",
        count=words_rows(nbytes),
        sem=sem,
        read=1,
        **({"local_offset": offset, "remote_offset": offset} if offset else {}),
    )


def broadcast_wait(
    kb: KernelBuilder,
    gc: int,
    gr: int,
    buf: str,
    nbytes: int,
    sem: int,
    offset: int = 0,
    tree: str = "shallow",
) -> None:
    """Every PE waits for ``buf`` (bytes ``[offset, offset + nbytes)``), delivered by a
    tree of writes with signal.  ``shallow``: PE (0, 0) multicasts to the rest of row 0
    and of column 0, each PE (x, 0) to column x below it (two levels, the root
    injects twice).  ``comb``: unicast only - each PE of row 0 writes its right
    neighbour and the PE below it, every other PE the PE below it (depth gc + gr - 2;
    no forked packets, which move at about 3 words per 7 cycles on the RTL chip).
    Performance model: shallow is faster for a tensor sent whole, comb for one sent in
    parts that the GEMMs start on as they arrive.  Parts of one buffer broadcast one
    after the other on the same semaphore arrive in order (one sender per receiver,
    in-order DMA queue and path), so the n-th WAIT of a PE is for the n-th part."""
    count = words_rows(nbytes)
    at = {"local_offset": offset, "remote_offset": offset} if offset else {}

    def cast(pe, rect):
        kb.add(
            pe,
            mp.TransferOp,
            local=f"@{buf}",
            remote=f"@{buf}",
            count=count,
            sem=sem,
            read=0,
            signal=1,
            to=rect,
            **at,
        )

    if tree == "comb":
        for y in range(gr):
            for x in range(gc):
                kb.add((x, y), mp.WaitOp, sem=sem, count=1)
                if y == 0 and x + 1 < gc:
                    cast((x, y), [x + 1, 0, x + 1, 0])
                if y + 1 < gr:
                    cast((x, y), [x, y + 1, x, y + 1])
        return
    for x in range(gc):
        pe = (x, 0)
        kb.add(pe, mp.WaitOp, sem=sem, count=1)
        if x == 0 and gc > 1:
            cast(pe, [1, 0, gc - 1, 0])
        if gr > 1:
            cast(pe, [x, 1, x, gr - 1])
    for pe in pes_of(gc, gr):
        if pe[1] > 0:
            kb.add(pe, mp.WaitOp, sem=sem, count=1)
