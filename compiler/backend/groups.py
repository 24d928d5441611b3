"""PE groups and the shared-operand broadcast used by the row-partitioned kernels.

``row_grid`` picks the largest rectangle of PEs (``gc x gr`` at the origin) that
has at least one R-row tile per PE.  ``broadcast_*`` is the load of a tensor that
every PE of the group needs (weights, K and V): PE (0, 0) reads it from DRAM once
and multicasts it along row 0; each PE of row 0 forwards it down its column (PE
(1, 0) also down column 0), every rectangle write incrementing semaphore ``sem`` at
its receivers; every PE waits on ``sem`` (PE (0, 0) on its own read).
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
    kb: KernelBuilder, gc: int, gr: int, buf: str, dram: str, nbytes: int, sem: int
) -> None:
    """PE (0, 0): read ``dram`` into ``buf``, wait, multicast to the other PEs."""
    root = (0, 0)
    kb.add(
        root,
        mp.TransferOp,
        local=f"@{buf}",
        remote=f"@{dram}",
        count=words_rows(nbytes),
        sem=sem,
        read=1,
    )


def broadcast_wait(kb: KernelBuilder, gc: int, gr: int, buf: str, nbytes: int, sem: int) -> None:
    """Every PE waits for ``buf``; the broadcast is a two-level multicast tree, so no PE
    injects the tensor more than once: PE (0, 0) writes the rest of row 0, then each
    PE (x, 0) writes column x below it (PE (1, 0) also column 0)."""
    count = words_rows(nbytes)

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
        )

    for x in range(gc):
        pe = (x, 0)
        kb.add(pe, mp.WaitOp, sem=sem, count=1)
        if x == 0 and gc > 1:
            cast(pe, [1, 0, gc - 1, 0])
        if gr > 1 and gc == 1:
            cast(pe, [0, 1, 0, gr - 1])
        elif gr > 1 and x >= 1:
            cast(pe, [0 if x == 1 else x, 1, x, gr - 1])
    for pe in pes_of(gc, gr):
        if pe[1] > 0:
            kb.add(pe, mp.WaitOp, sem=sem, count=1)
