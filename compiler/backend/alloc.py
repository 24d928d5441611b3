"""SRAM allocation per PE with liveness, and DRAM allocation.

A buffer lives in the SRAM of every PE of a rectangle at the same offset (so a
multicast write can name one address), during the steps ``[first, last]`` of the
task lists.  Buffers whose live ranges overlap on a common PE never overlap in
bytes.  ``side`` chooses where the search starts: ``low`` from address 0 upwards,
``high`` from the top of SRAM downwards, which keeps MAC A operands (low) and B
operands (high) in different banks whenever they fit in disjoint banks.

Errors name the tensor, the PE, the bytes required and the bytes available.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.errors import CompileError

__all__ = ["AllocError", "SramBuffer", "SramAllocator", "DramAllocator", "align"]


class AllocError(CompileError):
    """A tensor that does not fit the SRAM of a PE or the DRAM of the chip."""


def align(n: int, a: int = 16) -> int:
    return -(-n // a) * a


@dataclass
class SramBuffer:
    name: str
    tensor: str
    nbytes: int
    pes: tuple[int, int, int, int]  # rectangle x0, y0, x1, y1
    live: tuple[int, int] = (0, 1 << 30)
    side: str = "low"
    offset: int = -1
    meta: dict = field(default_factory=dict)

    def covers(self, pe: tuple[int, int]) -> bool:
        x0, y0, x1, y1 = self.pes
        return x0 <= pe[0] <= x1 and y0 <= pe[1] <= y1

    def shares_pe(self, other: SramBuffer) -> bool:
        a, b = self.pes, other.pes
        return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])

    def overlaps_in_time(self, other: SramBuffer) -> bool:
        return not (self.live[1] < other.live[0] or other.live[1] < self.live[0])


class SramAllocator:
    """First-fit placement of all declared buffers (largest first)."""

    def __init__(self, arch):
        self.arch = arch
        self.buffers: list[SramBuffer] = []

    def add(self, buf: SramBuffer) -> SramBuffer:
        buf.nbytes = align(buf.nbytes)
        self.buffers.append(buf)
        return buf

    def place(self) -> None:
        size = self.arch.sram_bytes
        placed: list[SramBuffer] = []
        for buf in sorted(self.buffers, key=lambda b: (-b.nbytes, b.name)):
            rivals = [p for p in placed if p.shares_pe(buf) and p.overlaps_in_time(buf)]
            spans = sorted((p.offset, p.offset + p.nbytes) for p in rivals)
            off = self._first_fit(spans, buf.nbytes, size, buf.side)
            if off is None:
                self._fail(buf, rivals)
            buf.offset = off
            placed.append(buf)

    @staticmethod
    def _first_fit(spans, n, size, side):
        if side == "low":
            cand = [0] + [e for _, e in spans]
            for c in sorted(cand):
                if c + n <= size and all(c + n <= s or c >= e for s, e in spans):
                    return c
        else:
            cand = [size - n] + [align(s - n - 15) if (s - n) % 16 else s - n for s, _ in spans]
            for c in sorted(cand, reverse=True):
                c = c - c % 16
                if c >= 0 and c + n <= size and all(c + n <= s or c >= e for s, e in spans):
                    return c
        return None

    def _fail(self, buf: SramBuffer, rivals: list[SramBuffer]) -> None:
        # a group buffer spans several PEs: name the one whose live buffers take most
        free = self._largest_gap(rivals)
        x0, y0, x1, y1 = buf.pes
        pes = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
        pe = max(pes, key=lambda c: (sum(r.nbytes for r in rivals if r.covers(c)), -c[1], -c[0]))
        rivals = [r for r in rivals if r.covers(pe)]
        used = sum(r.nbytes for r in rivals)
        others = ", ".join(
            f"{r.tensor} {r.nbytes}" for r in sorted(rivals, key=lambda r: -r.nbytes)
        )
        avail = max(self.arch.sram_bytes - used, 0)
        pieces = ""
        if buf.nbytes <= avail:  # enough bytes, but not in one piece
            where = "" if len(pes) == 1 else " at one address on every PE of its rectangle"
            pieces = (
                f"; they are in pieces between buffers placed for other live ranges, the "
                f"largest {free} bytes{where}"
            )
        raise AllocError(
            f"tensor {buf.tensor!r} ({buf.name}) needs {buf.nbytes} bytes of SRAM on PE {pe} "
            f"but only {avail} of {self.arch.sram_bytes} bytes "
            f"are available while it is live (live there: {others or 'nothing'}){pieces}"
        )

    def _largest_gap(self, rivals: list[SramBuffer]) -> int:
        """The largest free range (16-byte aligned) between the ``rivals``' spans."""
        best, at = 0, 0
        for s, e in sorted((r.offset, r.offset + r.nbytes) for r in rivals):
            best = max(best, s - align(at))
            at = max(at, e)
        return max(best, self.arch.sram_bytes - align(at))

    def peak(self, pe: tuple[int, int]) -> int:
        """Highest end address used on ``pe``."""
        return max((b.offset + b.nbytes for b in self.buffers if b.covers(pe)), default=0)


class DramAllocator:
    """Bump allocation of DRAM tensors; a tensor never straddles two DRAM ports."""

    def __init__(self, arch):
        self.arch = arch
        self.next = 0
        self.port_bytes = arch.dram_bytes // max(arch.dram_ports, 1)

    def alloc(self, tensor: str, nbytes: int) -> int:
        if self.arch.dram_ports == 0:
            raise AllocError(f"tensor {tensor!r} ({nbytes} bytes) needs DRAM; the arch has none")
        n = align(nbytes)
        off = self.next
        if off // self.port_bytes != (off + n - 1) // self.port_bytes:
            off = align(off, self.port_bytes)
        if off + n > self.arch.dram_bytes or n > self.port_bytes:
            raise AllocError(
                f"tensor {tensor!r} needs {n} bytes of DRAM but only "
                f"{max(self.arch.dram_bytes - off, 0)} of {self.arch.dram_bytes} bytes "
                f"({self.port_bytes} per port) are available"
            )
        self.next = off + n
        return off
