"""SRAM byte footprints of PE instructions: the bytes an instruction reads and writes.

The footprints are the ones of docs/isa.md's *hazard rule* ("Decoupled units"), used
by the reference simulator's hazard checker (sim/hazards.py) and by the compiler pass
that places FENCEs (compiler/backend/overlap.py)::

    fp = footprint(instr, reg, arch, desc)   # Footprint(reads, writes)
    hit = conflict(pending_fp, fp)           # ("RAW" | "WAR" | "WAW", (lo, hi)) or None
    ordered_units(instr)                     # the pending commands instr completes

``instr`` is a decoded :class:`hw.isa.Instr`; ``reg(r)`` returns register ``r``'s
value (unsigned 32 bits, ``reg(0) == 0``) as it is when the instruction issues;
``desc`` is the 48-byte DMA descriptor (or its :func:`hw.isa.decode_desc` dict),
required for DMA only.  Intervals are half-open byte ranges ``(lo, hi)``, sorted and
merged (touching ranges join).  Addresses are computed, never checked: an
instruction whose operands are out of range or misaligned faults before it touches
SRAM, so its footprint does not matter.

Per instruction (R = mac_rows, C = mac_cols):

* MATMUL reads A ``[a, a + K*R)`` (with ``alda`` >= 1 the R rows ``[a + 16*alda*r,
  a + 16*alda*r + K)``, :func:`matmul_a_ranges`) and B ``[b, b + K*C)``; unless ``noout`` it writes
  rows ``[c + r*ldc, c + r*ldc + row)`` for r < R, row = 4C bytes with ``out32``,
  else C.
* QLOAD reads the parameter block ``[q, q + total)`` (``hw.isa.qparam_layout``).
* VOP reads A (``n * bytes(tin)``), B (the same) if the function is binary and not
  ``bscalar``; writes D (``n * bytes(tout)``, 16 bytes for RSUM/RMAX).  With
  segments (field ``seg`` = s, 1 <= s < n16: ``nseg`` = ceil(n16 / s) segments,
  docs/isa.md "Segments") B is ``nseg`` words and a reduction's D ``nseg`` words
  (:func:`vop_operand_bytes`).
* LW reads, SW writes 4 bytes.
* DMA reads its 48-byte descriptor; a write (``read = 0``) reads its local rows, a
  read (``read = 1``, a multicast read too: the requester's own copy) writes them.
  SELF copies also touch the ``remote`` rows (in local SRAM): written by a write,
  read by a read.  With ``coords`` (this PE's position) a NODE/RECT write whose
  target is this PE, or a read (NODE or multicast) whose node (x0, y0) is this PE,
  also touches its remote rows here (written by a write, read by a read).  The
  other receivers of a multicast read get inbound data, outside any footprint.
* Everything else (scalar, control, VCFG, WAIT, SIGNAL, FENCE, HALT) touches no SRAM
  bytes; SIGNAL's rule (any pending command is a hazard) is not a footprint.

This module imports only numpy, hw.isa and hw.errors, so any layer can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from hw.errors import SimulationError
from hw.isa import (
    BINARY,
    DESC_WORDS,
    NOWAIT_OPS,
    REDUCTIONS,
    WORD_BYTES,
    DType,
    Instr,
    Op,
    SignalMode,
    Unit,
    VFn,
    decode_desc,
    qparam_layout,
)

__all__ = [
    "DESC_BYTES",
    "Footprint",
    "Interval",
    "conflict",
    "footprint",
    "footprint_fn",
    "matmul_a_end",
    "matmul_a_ranges",
    "ordered_units",
    "overlap",
    "segment_count",
    "unit_of",
    "vop_operand_bytes",
]

M32 = 0xFFFFFFFF
DESC_BYTES = DESC_WORDS * WORD_BYTES
Interval = tuple[int, int]
_MERGE_ROWS = 64  # above this many DMA rows, merge in numpy


class Footprint(NamedTuple):
    """The bytes an instruction reads and writes: sorted, merged half-open intervals."""

    reads: list[Interval]
    writes: list[Interval]


NONE = Footprint([], [])


def unit_of(instr: Instr) -> Unit | None:
    """The unit that runs ``instr`` (MAC: QLOAD, MATMUL; vector: VOP), else None."""
    return NOWAIT_OPS.get(instr.op)


def footprint(
    instr: Instr,
    reg: Callable[[int], int],
    arch,
    desc: bytes | Mapping[str, int] | None = None,
    coords: tuple[int, int] | None = None,
) -> Footprint:
    """The SRAM bytes ``instr`` reads and writes with the registers ``reg`` (module
    docs).  ``desc``: the DMA descriptor (bytes or decoded), required for DMA;
    ``coords``: this PE's position, to count NODE/RECT transfers to itself."""
    return footprint_fn(instr, arch, coords)(reg, desc)


def footprint_fn(
    instr: Instr, arch, coords: tuple[int, int] | None = None
) -> Callable[[Callable[[int], int], bytes | Mapping[str, int] | None], Footprint]:
    """``footprint`` with the instruction's fields looked up once: a function of
    ``(reg, desc)`` (the simulator keeps one per instruction word)."""
    op = instr.op
    if op == Op.MATMUL:
        return _matmul_fn(instr, arch)
    if op == Op.VOP:
        return _vop_fn(instr)
    if op in (Op.LW, Op.SW, Op.QLOAD, Op.DMA):
        ra, imm = instr["rs1"], instr["imm"] & M32
        if op == Op.DMA:
            return lambda reg, desc: _dma(((reg(ra) + imm) & M32), desc, coords)
        size = 4 if op != Op.QLOAD else qparam_layout(arch.mac_cols)["total"][1]
        store = op == Op.SW

        def scalar(reg, desc=None):
            addr = (reg(ra) + imm) & M32
            span = [(addr, addr + size)]
            return Footprint([], span) if store else Footprint(span, [])

        return scalar
    return lambda reg, desc=None: NONE


def ordered_units(instr: Instr) -> Unit:
    """The units whose pending nowait command ``instr`` orders (after it, that command
    is complete): FENCE its ``units``, a unit command its own unit, VCFG the vector
    unit, HALT both; otherwise none (``Unit(0)``).  SIGNAL orders nothing but is a
    hazard while any command is pending (docs/isa.md)."""
    op = instr.op
    if op == Op.FENCE:
        return Unit(instr["units"])
    if op == Op.HALT:
        return Unit.MAC | Unit.VEC
    if op == Op.VCFG:
        return Unit.VEC
    return NOWAIT_OPS.get(op, Unit(0))


def _matmul_fn(instr: Instr, arch):
    r, c = arch.mac_rows, arch.mac_cols
    k = 16 * instr["k16"]
    ra, rb, rc, ldc = instr["rs1"], instr["rs2"], instr["rs3"], instr["ldc"]
    noout, alda = instr["noout"], instr["alda"]
    row = 4 * c if instr["out32"] else c

    def fp(reg, desc=None):
        a, b = reg(ra), reg(rb)
        reads = _merge([*matmul_a_ranges(a, k, r, alda), (b, b + k * c)])
        if noout:
            return Footprint(reads, [])
        d = reg(rc)
        return Footprint(reads, _merge([(d + i * ldc, d + i * ldc + row) for i in range(r)]))

    return fp


def matmul_a_ranges(a: int, k: int, r: int, alda: int) -> list[tuple[int, int]]:
    """The byte ranges of a MATMUL's A operand: the transposed K x R tile (``alda`` 0)
    or R rows of K bytes, ``16 * alda`` apart (docs/isa.md "Row-major A")."""
    if not alda:
        return [(a, a + k * r)]
    return [(a + 16 * alda * i, a + 16 * alda * i + k) for i in range(r)]


def matmul_a_end(a: int, k: int, r: int, alda: int) -> int:
    """One past the last byte of A (the address check: ``<= sram_bytes``)."""
    return a + (16 * alda * (r - 1) + k if alda else k * r)


def segment_count(n16: int, seg: int) -> int:
    """The segments of an ``n16``-step VOP with the ``seg`` field s: ceil(n16 / s) for
    1 <= s < n16, else 1 (docs/isa.md "Segments"; ``len(sim.numerics.segments(n16,
    seg))`` without building the list)."""
    return -(-n16 // seg) if 0 < seg < n16 else 1


def vop_operand_bytes(
    fn: VFn, tin: DType, tout: DType, n16: int, bscalar: int, seg: int = 0
) -> tuple[int, int, int]:
    """Bytes of a VOP's A, B and D operands (docs/isa.md): A ``n * bytes(tin)``; B 0
    with ``bscalar``, else - whether or not ``fn`` reads it, B is range-checked - the
    same as A, or ``nseg`` words with segments; D ``n * bytes(tout)``, for RSUM/RMAX
    one word per segment (16 bytes without segments)."""
    nseg = segment_count(n16, seg)
    a = 16 * n16 * DType(tin).bytes
    b = 0 if bscalar else (16 * nseg if nseg > 1 else a)
    d = 16 * nseg if VFn(fn) in REDUCTIONS else 16 * n16 * DType(tout).bytes
    return a, b, d


def _vop_fn(instr: Instr):
    fn, tin, tout = VFn(instr["fn"]), DType(instr["tin"]), DType(instr["tout"])
    in_bytes, b_bytes, out_bytes = vop_operand_bytes(
        fn, tin, tout, instr["n16"], instr["bscalar"], instr["seg"]
    )
    ra, rb, rd = instr["rs1"], instr["rs2"], instr["rd"]
    reads_b = fn in BINARY and not instr["bscalar"]

    def fp(reg, desc=None):
        a, d = reg(ra), reg(rd)
        reads = [(a, a + in_bytes)]
        if reads_b:
            b = reg(rb)
            reads = _merge([*reads, (b, b + b_bytes)])
        return Footprint(reads, [(d, d + out_bytes)])

    return fp


def _dma(addr: int, desc, coords) -> Footprint:
    if desc is None:
        raise SimulationError("the footprint of a DMA needs its descriptor (desc=None)")
    d = decode_desc(bytes(desc)) if isinstance(desc, (bytes, bytearray, memoryview)) else desc
    row = 16 * d["count0"]
    local = _rows(d["local"], d["lstride1"], d["lstride2"], d["count1"], d["count2"], row)
    reads, writes = [(addr, addr + DESC_BYTES)], []
    (writes if d["read"] else reads).extend(local)
    mode = d["mode"]
    here = mode == SignalMode.SELF
    if not here and coords is not None:
        x, y = coords
        if mode == SignalMode.RECT and not d["read"]:
            here = d["x0"] <= x <= d["x1"] and d["y0"] <= y <= d["y1"]
        else:
            here = (d["x0"], d["y0"]) == (x, y)
    if here:
        remote = _rows(d["remote"], d["rstride1"], d["rstride2"], d["count1"], d["count2"], row)
        (reads if d["read"] else writes).extend(remote)
    return Footprint(_merge(reads), _merge(writes))


def _rows(base: int, s1: int, s2: int, c1: int, c2: int, row: int) -> list[Interval]:
    """The rows ``base + i1*s1 + i2*s2`` (i1 < c1, i2 < c2) of ``row`` bytes, merged."""
    if c1 == 0 or c2 == 0 or row == 0:
        return []
    if (c1 == 1 or s1 == row) and (c2 == 1 or s2 == c1 * row):
        return [(base, base + c1 * c2 * row)]  # one contiguous block
    if c1 * c2 <= _MERGE_ROWS:
        return _merge(
            [
                (base + i1 * s1 + i2 * s2, base + i1 * s1 + i2 * s2 + row)
                for i2 in range(c2)
                for i1 in range(c1)
            ]
        )
    starts = np.sort(
        (base + np.arange(c1, dtype=np.int64)[None, :] * s1)
        + np.arange(c2, dtype=np.int64)[:, None] * s2,
        axis=None,
    )
    ends = starts + row
    reach = np.maximum.accumulate(ends)
    new = np.ones(len(starts), dtype=bool)
    new[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(starts) - 1)
    return list(zip(starts[first].tolist(), reach[last].tolist(), strict=True))


def _merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined; empty ones dropped."""
    out: list[Interval] = []
    for lo, hi in sorted(intervals):
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def overlap(a: list[Interval], b: list[Interval]) -> Interval | None:
    """The first (lowest) common byte range of two sorted, merged interval lists."""
    if not a or not b or a[0][0] >= b[-1][1] or b[0][0] >= a[-1][1]:
        return None  # disjoint spans: the usual case, decided at once
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo < hi:
            return (lo, hi)
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return None


def conflict(command: Footprint, later: Footprint) -> tuple[str, Interval] | None:
    """Whether ``later`` (an instruction after a pending nowait command) conflicts with
    ``command``: it writes a byte the command reads ("WAR") or writes ("WAW"), or
    reads a byte it writes ("RAW").  Returns the kind and the first common range."""
    if later.writes:
        hit = overlap(command.writes, later.writes)
        if hit is not None:
            return "WAW", hit
        hit = overlap(command.reads, later.writes)
        if hit is not None:
            return "WAR", hit
    if later.reads and command.writes:
        hit = overlap(command.writes, later.reads)
        if hit is not None:
            return "RAW", hit
    return None
