"""SRAM bank contention between a PE's compute units and its inbound DMA traffic.

The PE's SRAM ports have fixed priorities (``hw.pe.pe.SRAM_PORTS``): the MAC array
and the vector unit come before the DMA engine's write port.  A MATMUL reads a row
of its B operand every cycle and a VOP streams its A operand (and D, and B unless it
is a scalar) at the same rate, so while such an op runs, DMA writes into one of
those banks wait for it to finish: the data of a transfer (a multicast, a read
response) lands late, and its semaphore increment with it.  Measured on the RTL
small chip: the attention head with V arriving in the bank of K^T and of the
transpose's selection matrix took ~3,000 cycles per PE longer than a model that
ignores this (docs/perf.md, "SRAM bank contention").

:class:`Streams` records, per PE, the intervals in which its units stream banks;
:meth:`Streams.delay` gives the cycle at which data arriving over a window of cycles
has been written when it is held off by those intervals.  Only intervals already
executed are known: the model processes increments in cycle order, and a running PE
has executed at least up to the current cycle, so the window before an arrival is
always covered.  The sender is not slowed (a multicast tree that stalls for one
branch is modelled per branch) - the model stays a little optimistic there.

With decoupled units (nowait commands, docs/isa.md) the MAC and the vector unit
stream at the same time and their intervals overlap; ``Streams`` keeps them in start
order with a running maximum of the ends.  Between the two units the MAC wins
(``SRAM_PORTS`` order): :func:`hold` gives the end of a vector op whose banks the
MAC streams meanwhile.
"""

from __future__ import annotations

from bisect import bisect_right

from hw.isa import REDUCTIONS

__all__ = ["Streams", "desc_banks", "hold", "op_banks"]

KEEP_CYCLES = 1 << 16  # intervals older than this before the latest are dropped


class Streams:
    """Stream intervals of one PE: ``start``/``end``/bank ``mask`` lists in start order,
    and ``reach``, the running maximum of the ends.  With one unit op at a time (all
    commands blocking) intervals arrive in order and do not overlap (reach == ends);
    the MAC and vector units running at once (nowait commands) give overlapping
    intervals, added a little out of order (a MATMUL's out32 write-out is recorded
    before a VOP that starts earlier): ``add`` inserts in start order."""

    __slots__ = ("ends", "masks", "reach", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.masks: list[int] = []
        self.reach: list[int] = []

    def add(self, start: int, end: int, mask: int) -> None:
        if end <= start:
            return
        starts, ends, reach = self.starts, self.ends, self.reach
        if not starts or start >= starts[-1]:
            starts.append(start)
            ends.append(end)
            self.masks.append(mask)
            reach.append(end if not reach or end > reach[-1] else reach[-1])
        else:
            i = bisect_right(starts, start)
            starts.insert(i, start)
            ends.insert(i, end)
            self.masks.insert(i, mask)
            reach.insert(i, end)
            for j in range(i, len(reach)):
                reach[j] = max(ends[j], reach[j - 1]) if j else ends[j]
        if len(ends) > 4096 and reach[2048] < start - KEEP_CYCLES:
            del starts[:2048], ends[:2048], self.masks[:2048], reach[:2048]

    def delay(self, first: int, last: int, mask: int) -> int:
        """The cycle data arriving over ``[first, last]`` into the banks of ``mask``
        is written: the cycles of the window spent inside a streaming interval on one
        of those banks are appended after the interval."""
        t, left = first, last - first + 1
        starts, ends, masks = self.starts, self.ends, self.masks
        for i in range(bisect_right(self.reach, t), len(ends)):
            if not masks[i] & mask:
                continue
            start = starts[i]
            if start >= t + left:
                break
            if start > t:
                left -= start - t
            t = max(t, ends[i])
        return t + left - 1


def hold(start: int, cycles: int, mask: int, intervals) -> int:
    """The end of a unit op of ``cycles`` cycles started at ``start`` on the banks of
    ``mask`` when a higher-priority unit streams ``intervals`` ((start, end, mask) in
    start order): every cycle inside one of them on a shared bank is lost.  (Rough:
    the vector unit stalls completely while the MAC streams one of its banks; the
    MAC's A operand, read one cycle in 16 / R, is not counted.)"""
    t, left = start, cycles
    for s, e, m in intervals:
        if not m & mask or e <= t:
            continue
        if s >= t + left:
            break
        if s > t:
            left -= s - t
        t = e
    return t + left


_SPARSE_D = frozenset(int(f) for f in REDUCTIONS)


def op_banks(kind_vop: bool, ins: dict, regs: list[int], arch) -> int:
    """Bank mask a MATMUL (B operand) or VOP (A, D, and B unless scalar) streams."""
    bank, size = arch.bank_bytes, arch.sram_bytes
    if not kind_vop:
        return 1 << (regs[ins["rs2"]] % size) // bank
    m = 1 << (regs[ins["rs1"]] % size) // bank
    if ins["fn"] not in _SPARSE_D:  # a reduction writes one word per segment: not a stream
        m |= 1 << (regs[ins["rd"]] % size) // bank
    if not ins.get("bscalar"):
        m |= 1 << (regs[ins["rs2"]] % size) // bank
    return m


def desc_banks(d: dict, side: str, arch) -> int:
    """Bank mask of the SRAM bytes a descriptor touches on ``side`` (``local`` or
    ``remote``; strides ``lstride*`` / ``rstride*``)."""
    bank, size = arch.bank_bytes, arch.sram_bytes
    base = d[side]
    s1, s2 = (d["lstride1"], d["lstride2"]) if side == "local" else (d["rstride1"], d["rstride2"])
    row = d["count0"] * 16
    m = 0
    for i2 in range(min(d["count2"], 64)):
        for i1 in range(min(d["count1"], 64)):
            lo = base + i1 * s1 + i2 * s2
            for b in range(lo // bank, (lo + row - 1) // bank + 1):
                m |= 1 << (b % (size // bank))
    return m
