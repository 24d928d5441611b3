"""The ``resident`` GEMM schedule with pipelined band loading (used by gemm.py).

Every PE ends up holding its A band (``mtp`` tiles of ``K x R``), its B band (``ntp``
tiles of ``K x C``) and its C block, as before, but computing starts as soon as the
first tiles are there, so the band loads overlap the MAC work:

* Order: B tile ``j`` outer ("passes"), A tile ``i`` inner.  Pass 0 multiplies each A
  tile as it arrives (one ``mapping.matmul_at`` per tile, after a WAIT for that
  tile); later passes find the whole A band resident and run one tile loop each.
* A: one reader PE per PE row reads the A band tile by tile from DRAM, keeping
  ``A_AHEAD`` reads in flight, and multicasts each tile to the rest of the row (RECT
  write with signal, semaphore 0 at the receivers; its own reads count on semaphore
  0 too).  At the start it forwards ``PRO_CHUNKS`` tiles before it waits for B.
* B: one reader PE per PE column reads B tile ``j + 1`` in ``b_parts`` pieces during
  the first half of pass ``j`` and multicasts them one by one in the second half
  (semaphore 1); B tile 0 is forwarded piece by piece as it lands.
* Readers (:func:`readers`): no PE forwards both operands, and no multicast runs
  against the DRAM answers (west along row 0, then south).
* Banks (:func:`a_split`, :func:`b_split`): even / odd A tiles in banks 0 / 1, even /
  odd B tiles in the top two banks, so a tile arriving or being multicast never
  shares a bank with the tile being multiplied (the MAC wins every bank cycle).
* C: the block is kept as column strips ``[ntp][Mp][C]`` (MATMUL ``ldc = C``), so the
  strip of a pass is contiguous: it goes to DRAM with one DMA during the next pass;
  the last pass writes groups of ``LAST_GROUPS`` pieces so that little is left to
  write after the last MATMUL.

Measured (RTL, small, 256 x 256 x 256): 22,061 cycles = 1.35 x the roofline; pass 0
is DRAM-bound (A, B tile 0 and B tile 1, 96 KiB, must arrive during the first 16
MATMULs) and a MATMUL is K + R + 7 cycles.

Every receiver WAITs before it touches a tile; nothing is ever overwritten, so no
credits are needed.  Semaphores: 0 = A tiles, 1 = B pieces.
"""

from __future__ import annotations

import math

from compiler.backend.alloc import align
from compiler.backend.builder import DESC_BYTES
from compiler.backend.tile_ops import MatmulAtOp
from compiler.dialects import mapping as mp
from hw.isa import qparam_layout

__all__ = [
    "A_AHEAD",
    "LAST_GROUPS",
    "a_split",
    "b_parts",
    "b_split",
    "pipelined_tasks",
    "readers",
]

A_AHEAD = 3  # A chunk reads in flight per row reader
PRO_CHUNKS = 3  # A chunks an A reader forwards before it waits for its B tile 0
A_CHUNKS = 16  # at most this many A chunks (WAITs in pass 0) per band
LAST_GROUPS = 8  # C pieces written during the last pass (when no A is read in it)
# "bottom": A readers at x = 0, every B reader at the bottom of its column (PE (0, gr-1)
# forwards both); measured slower on RTL (23,980 vs 22,061 cycles, 256^3 on small)
READERS = "corner"
# B pieces read and multicast one by one over the pass; False: reads at the start,
# multicasts at mid-pass in a burst (measured slower: 23,029 vs 22,061 RTL cycles)
B_SPREAD = True
B_PART_BYTES = 1024  # B tiles move in pieces of about this size
MATMUL_INSTRS = 8  # instructions of one mapping.matmul_at, at most (lower.py)


def b_parts(tile_bytes: int) -> int:
    """Pieces per B tile: about B_PART_BYTES each, at most 4, a whole number of words."""
    n = min(4, max(1, tile_bytes // B_PART_BYTES))
    while (tile_bytes // 16) % n:
        n -= 1
    return n


def b_split(arch, plan: dict, a_band: int, b_band: int) -> bool:
    """Whether the even B tiles fill the top bank (padded to it), the odd ones fit
    below it in the next bank, and A, C and the rest stay under that bank."""
    ntp = plan["tiles_per_pe"][1]
    tb = plan["k_pad"] * plan["C"]
    low = align(a_band) + align(plan["block"][0] * plan["block"][1]) + 16 * DESC_BYTES
    low += align(ntp * qparam_layout(plan["C"])["total"][1]) + 2 * 8 * DESC_BYTES * ntp
    return (
        ntp >= 2
        and arch.regions >= 3
        and -(-ntp // 2) * tb <= arch.region_bytes
        and low <= (arch.regions - 2) * arch.region_bytes
    )


def a_split(arch, plan: dict, a_band: int) -> bool:
    """Whether even A tiles fill bank 0 (padded to it) and the odd ones, C and the
    rest fit in bank 1 (one A tile per chunk, B split over the two top banks)."""
    mtp = plan["tiles_per_pe"][0]
    ta = plan["k_pad"] * plan["R"]
    rest = align((mtp // 2) * ta) + align(plan["block"][0] * plan["block"][1])
    rest += align(plan["tiles_per_pe"][1] * qparam_layout(plan["C"])["total"][1])
    rest += DESC_BYTES * (2 * mtp + 8 * plan["tiles_per_pe"][1] + 16)
    return (
        mtp >= 2
        and mtp <= 16
        and arch.regions >= 4
        and -(-mtp // 2) * ta <= arch.region_bytes
        and rest <= arch.region_bytes
    )


def readers(gc: int, gr: int) -> tuple[dict, dict]:
    """Reader PE and multicast rectangle of each A band (per PE row) and B band (per PE
    column).  A rows read at x = 0 and multicast east, B columns at y = 0 and multicast
    south, except that the last row's A reader is (gc - 1, gr - 1) (multicast west) and
    column 0's B reader (0, gr - 1) (multicast north): no PE reads and multicasts both
    operands, and no multicast runs against the DRAM answers, which flow west along
    row 0 and south."""
    swap = gc > 1 and gr > 1
    a, b = {}, {}
    if swap and READERS == "bottom":
        for gy in range(gr):
            a[gy] = ((0, gy), [1, gy, gc - 1, gy])
        for gx in range(gc):
            b[gx] = ((gx, gr - 1), [gx, 0, gx, gr - 2])
        return a, b
    for gy in range(gr):
        if swap and gy == gr - 1:
            a[gy] = ((gc - 1, gy), [0, gy, gc - 2, gy])
        else:
            a[gy] = ((0, gy), [1, gy, gc - 1, gy] if gc > 1 else None)
    for gx in range(gc):
        if swap and gx == 0:
            b[gx] = ((0, gr - 1), [0, 0, 0, gr - 2])
        else:
            b[gx] = ((gx, 0), [gx, 1, gx, gr - 1] if gr > 1 else None)
    return a, b


def pipelined_tasks(kb, pe, plan: dict, a_band: int, b_band: int, c_off: int) -> int:
    """Add the task list of PE ``pe`` (C block at ``c_off`` of DRAM tensor C) to ``kb``
    (``kb = None``: only count); returns an upper bound of its instruction count."""
    from compiler.backend.gemm import words_rows

    gx, gy = pe
    gc, gr = plan["grid"]
    mtp, ntp = plan["tiles_per_pe"]
    R, C, kp = plan["R"], plan["C"], plan["k_pad"]
    mp_ = plan["block"][0]
    ta, tb = kp * R, kp * C
    ga = -(-mtp // A_CHUNKS)  # A tiles per chunk
    chunks = -(-mtp // ga)
    parts = b_parts(tb)
    part = tb // parts
    strip = mp_ * C
    unit = 16 // math.gcd(16, R * C)  # tiles per 16-byte multiple of C
    strips = strip % 16 == 0  # each pass's C strip can leave on its own
    pstride = qparam_layout(C)["total"][1]
    Cb = f"@C{gx}_{gy}"

    def abuf(i: int) -> tuple[str, int]:
        """A tile (chunk) i lives in A<gy>e / A<gy>o (even / odd, two banks) when
        split, else in A<gy>: (buffer, offset)."""
        if plan.get("a_split"):
            return f"@A{gy}{'eo'[i % 2]}", (i // 2) * ta
        return f"@A{gy}", i * ta

    def bbuf(j: int, off: int = 0) -> tuple[str, int]:
        """B tile j lives in B<gx>e / B<gx>o (even / odd tiles, two banks) when split,
        else in B<gx>: (buffer, offset of byte ``off`` of the tile)."""
        if plan.get("b_split"):
            return f"@B{gx}{'eo'[j % 2]}", (j // 2) * tb + off
        return f"@B{gx}", j * tb + off

    a_rd, b_rd = readers(gc, gr)
    read_a, read_b = a_rd[gy][0] == pe, b_rd[gx][0] == pe
    a_to, b_to = a_rd[gy][1], b_rd[gx][1]
    plan.update(b_parts=parts, a_chunk_tiles=ga, a_ahead=A_AHEAD, c_layout="strips")
    # events[j][i]: task emitters that run before tile i of pass j (i = mtp: after it)
    events = [[[] for _ in range(mtp + 1)] for _ in range(ntp)]
    count = [0]

    def at(j: int, i: int, fn, *args) -> None:
        events[j][i].append(lambda: fn(*args))

    def add(cls, n: int, **kw) -> None:
        count[0] += n
        if kb is not None:
            kb.add(pe, cls, **kw)

    def xfer(**kw) -> None:
        add(mp.TransferOp, 1, **kw)

    def wait(sem: int, n: int) -> None:
        add(mp.WaitOp, 1, sem=sem, count=n)

    def span(c: int) -> tuple[int, int]:
        return c * ga * ta, (min(mtp, (c + 1) * ga) - c * ga) * ta

    def a_read(c: int) -> None:
        off, n = span(c)
        buf, loc = abuf(c) if plan.get("a_split") else (f"@A{gy}", off)
        xfer(
            local=buf,
            local_offset=loc,
            remote="@A",
            remote_offset=gy * a_band + off,
            count=words_rows(n),
            sem=0,
            read=1,
        )

    def a_arrive(c: int) -> None:
        wait(0, 1)
        if read_a and a_to:
            off, n = span(c)
            buf, loc = abuf(c) if plan.get("a_split") else (f"@A{gy}", off)
            xfer(
                local=buf,
                local_offset=loc,
                remote=buf,
                remote_offset=loc,
                count=words_rows(n),
                sem=0,
                read=0,
                signal=1,
                to=a_to,
            )
        if read_a:  # keep A_AHEAD reads in flight (only chunk 0 before the first B tile)
            for n in range(c + 1 if c == 0 else c + A_AHEAD, min(c + A_AHEAD, chunks - 1) + 1):
                a_read(n)

    def b_read(j: int, p: int) -> None:
        buf, off = bbuf(j, p * part)
        xfer(
            local=buf,
            local_offset=off,
            remote="@B",
            remote_offset=gx * b_band + j * tb + p * part,
            count=words_rows(part),
            sem=1,
            read=1,
        )

    def b_arrive(j: int, p: int) -> None:  # the reader: piece p of tile j is in
        wait(1, 1)
        if b_to:
            buf, off = bbuf(j, p * part)
            xfer(
                local=buf,
                local_offset=off,
                remote=buf,
                remote_offset=off,
                count=words_rows(part),
                sem=1,
                read=0,
                signal=1,
                to=b_to,
            )

    def c_write(off: int, n: int) -> None:
        xfer(
            local=Cb,
            local_offset=off,
            remote="@C",
            remote_offset=c_off + off,
            count=words_rows(n),
            sem=0,
            read=0,
        )

    # pass 0 waits for each A chunk; B tile j + 1 is read in the first half of pass j
    # and multicast in the second, piece by piece (no burst in the DMA queue)
    # start: a reader first forwards what it reads (a B reader all of B tile 0, an A
    # reader its first PRO_CHUNKS A chunks), then waits for what others send it
    pro = min(PRO_CHUNKS, chunks) if read_a else 1
    if read_a and read_b:  # forwards both: A tile 0 first, it is the smaller
        at(0, 0, a_arrive, 0)
    if read_b:
        for p in range(parts):
            at(0, 0, b_arrive, 0, p)
    for c in range(1 if read_a and read_b else 0, chunks):
        at(0, 0 if c < pro else c * ga, a_arrive, c)
    for j in range(ntp):
        if not read_b:
            at(j, 0, wait, 1, parts)
        elif j + 1 < ntp and B_SPREAD:  # pieces spread over the pass: no DMA burst
            for p in range(parts):
                at(j, p * mtp // (2 * parts), b_read, j + 1, p)
                at(j, (parts + p) * mtp // (2 * parts) + 1, b_arrive, j + 1, p)
        elif j + 1 < ntp:  # reads at the start, multicasts at mid-pass
            for p in range(parts):
                at(j, 0, b_read, j + 1, p)
            for p in range(parts):
                at(j, mtp // 2, b_arrive, j + 1, p)
        if strips and j + 1 < ntp:
            at(j + 1, 0, c_write, j * strip, strip)
    if strips:  # the last strip in groups of whole words, as its tiles finish
        units = mtp // unit
        # with one pass the A band still streams in: a DRAM write waits for every
        # queued read (cosim/dram.py), so each piece would drain the readers' pipeline
        # (conv2d 32->64 16x16 on small: 8 pieces 14,325 RTL cycles, 2 11,425, 1 8,435)
        groups = min(LAST_GROUPS if ntp > 1 else 1, units)
        bounds = [unit * (units * g // groups) for g in range(groups + 1)]
        for g0, g1 in zip(bounds, bounds[1:], strict=False):
            at(ntp - 1, g1, c_write, (ntp - 1) * strip + g0 * R * C, (g1 - g0) * R * C)
    else:
        at(ntp - 1, mtp, c_write, 0, mp_ * plan["block"][1])

    if read_a:
        a_read(0)
    if read_b:
        for p in range(parts):
            b_read(0, p)
    for j in range(ntp):
        first = True
        i = 0
        while i < mtp:
            for fn in events[j][i]:
                fn()
            nxt = i + 1
            while nxt < mtp and not events[j][nxt]:
                nxt += 1
            split = plan.get("a_split")
            runs = [(i + h, nxt, 2) for h in range(2) if i + h < nxt] if split else [(i, nxt, 1)]
            for r0, r1, step in runs:  # split A: the even, then the odd tiles of [i, nxt)
                a_sym, a_off = abuf(r0) if split else (f"@A{gy}", r0 * ta)
                add(
                    MatmulAtOp,
                    MATMUL_INSTRS,
                    a=a_sym,
                    b=bbuf(j)[0],
                    c=Cb,
                    params=f"@P{gx}",
                    tiles=[-(-(r1 - r0) // step), 1],
                    k=kp,
                    ldc=C,
                    a_offset=a_off,
                    b_offset=bbuf(j)[1],
                    c_offset=j * strip + r0 * R * C,
                    p_offset=j * pstride,
                    qload=int(first),
                    c_stride=step * R * C,
                )
                first = False
            first = False
            i = nxt
        for fn in events[j][mtp]:
            fn()
    return count[0]
