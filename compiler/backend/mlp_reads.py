"""The DRAM reads of the MLP weight split (mlp_split.py): pieces a reader PE reads
and forwards, and the order of their WAITs.

A reader's pieces are issued in one order with at most ``depth`` in flight.  Reads
from one DRAM complete in issue order (one endpoint, answers in order), so one
semaphore (``RD``) counts them all and the n-th WAIT is for the n-th read; handling a
piece waits for it, issues the next read and multicasts the piece to the rest of its
group (write with signal: one sender per semaphore, so receivers count in order).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.backend.builder import KernelBuilder
from compiler.backend.gemm import words_rows
from compiler.dialects import mapping as mp
from compiler.errors import CompileError

__all__ = ["RD", "Piece", "Reads", "members", "others"]

RD = 1  # the reader's own DRAM reads complete on this semaphore


def others(rect: list[int], pe) -> list[list[int]]:
    """Rectangles covering ``rect`` without ``pe`` (a multicast never includes its
    sender: the sender's own copy is already in place)."""
    x0, y0, x1, y1 = rect
    x, y = pe
    out = []
    if y > y0:
        out.append([x0, y0, x1, y - 1])
    if y < y1:
        out.append([x0, y + 1, x1, y1])
    if x > x0:
        out.append([x0, y, x - 1, y])
    if x < x1:
        out.append([x + 1, y, x1, y])
    return out


def members(rect: list[int]) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = rect
    return [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


@dataclass
class Piece:
    """One DRAM read: ``nbytes`` from ``dram`` + ``remote`` into ``buf`` + ``local``,
    then multicast (write with signal on ``sem``) to the rectangles ``to``; ``tag``
    names the tile it belongs to, e.g. ("W1", 2)."""

    buf: str
    dram: str
    local: int
    remote: int
    nbytes: int
    to: list
    sem: int
    tag: tuple
    # streamed weights: the read may go out only once the PE opened this gate
    # (Reads.open: its slot is free here and, after a WAIT for credits, everywhere)
    gate: tuple | None = None


class Reads:
    """The reads of one PE in one order (X, W1, W2): at most ``depth`` in flight; they
    complete in issue order (one DRAM, in-order answers), so the n-th WAIT on ``RD``
    is for the n-th read.  Handling a piece waits for it, issues the next read and
    forwards the piece."""

    def __init__(self, kb: KernelBuilder, pe, pieces: list[Piece], depth: int):
        self.kb, self.pe, self.pieces, self.depth = kb, pe, pieces, depth
        self.issued = self.handled = 0
        self.opened: set = set()

    def open(self, gate: tuple, sem: int | None = None, count: int = 0) -> None:
        """Let the reads behind ``gate`` go out, after a WAIT for ``count`` credits on
        ``sem`` (the other PEs that use the slot have let it go)."""
        if count:
            self.kb.add(self.pe, mp.WaitOp, sem=sem, count=count)
        self.opened.add(gate)
        self.issue()

    def issue(self) -> None:
        while self.issued < len(self.pieces) and self.issued - self.handled < self.depth:
            p = self.pieces[self.issued]
            if p.gate is not None and p.gate not in self.opened:
                return
            self.kb.add(self.pe, mp.TransferOp, local=f"@{p.buf}", remote=f"@{p.dram}",
                        local_offset=p.local, remote_offset=p.remote,
                        count=words_rows(p.nbytes), sem=RD, read=1)  # fmt: skip
            self.issued += 1

    def step(self, n: int = 1) -> None:
        """Handle the next ``n`` pieces (fewer if the PE has no more)."""
        for _ in range(n):
            if self.handled == len(self.pieces):
                return
            self.issue()
            if self.handled == self.issued:  # the next read waits behind a closed gate
                return
            p = self.pieces[self.handled]
            self.kb.add(self.pe, mp.WaitOp, sem=RD, count=1)
            self.handled += 1
            self.issue()
            for to in p.to:
                self.kb.add(self.pe, mp.TransferOp, local=f"@{p.buf}", remote=f"@{p.buf}",
                            local_offset=p.local, remote_offset=p.local,
                            count=words_rows(p.nbytes), sem=p.sem, read=0, signal=1,
                            to=to)  # fmt: skip

    def until(self, tag: tuple) -> None:
        """Handle pieces up to the last one of tile ``tag`` (if this PE reads it)."""
        last = max((i for i, p in enumerate(self.pieces) if p.tag == tag), default=-1)
        self.step(last + 1 - self.handled)
        if self.handled <= last:
            raise CompileError(f"PE {self.pe}: the reads of {tag} wait behind a closed gate")

    def finish(self) -> None:
        self.step(len(self.pieces) - self.handled)
