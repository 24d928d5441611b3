"""The ``resident`` GEMM schedule with a *paired* first pass (used by gemm.py when
:func:`pair_fits`): the data each PE needs grows gradually instead of front-loaded.

gemm_pipe.py's order (B tile outer, A tile inner) must receive the whole A band and
two B tiles during its first ``mtp`` MATMULs, so its first pass is DRAM-bound.  Here:

* pass 0 multiplies every A tile with B tiles 0 *and* 1, in groups of ``GROUP`` A
  tiles: each A tile of a group times B tile 0 as soon as it has arrived, then the
  group times B tile 1 (one QLOAD per group and B tile).  Each A tile feeds two
  MATMULs (the A stream needs half the DRAM rate) and B tile 1 is needed only after
  the first group.  Passes 1, 2, ... multiply the resident A band with B tiles
  2, 3, ... (B tile j + 1 is read and multicast piece by piece during pass j - 1).
* Banks (the MAC's B reads take every cycle of their bank, its A reads one in
  16 / R): A (one buffer) and C fill bank 0; B tile 0 the top bank, tile 1 the one
  below (whose bottom ``DESC_ROOM`` bytes keep the DMA descriptors), tile 2 bank 1
  (``X<x>``, with the parameters), later tiles alternate over the top two
  (:func:`b_place`).  A tile arriving never lands in a bank whose B is streamed.
* C: column strips ``[ntp][Mp][C]`` as in gemm_pipe.py.  Strips wait until the
  reads of the pass are done (``C_SEG0``): on the RTL, DRAM writes next to the
  reads of the next B tile delayed it by ~3,000 cycles (24,690 vs 21,575 RTL
  cycles, 256^3 on small); the last strip leaves in ``LAST_PIECES`` pieces.

Readers (gemm_pipe.readers), multicast and semaphores (0 = A tiles, 1 = B pieces) as
in gemm_pipe.py.  Measured (small, 256^3, RTL): 21,143 cycles = 1.29 x the roofline
(gemm_pipe.py's order: 22,578 on the same hardware).
"""

from __future__ import annotations

import math

from compiler.backend.alloc import align
from compiler.backend.builder import DESC_BYTES
from compiler.backend.gemm_pipe import LAST_GROUPS, MATMUL_INSTRS, b_parts, readers
from compiler.backend.tile_ops import MatmulAtOp
from compiler.dialects import mapping as mp
from hw.isa import qparam_layout

__all__ = ["DESC_ROOM", "GROUP", "b_place", "pair_fits", "pair_tasks"]

# knobs, measured on RTL (small, 256^3; cycles): GROUP 2 (21,143) / 4 (21,577);
# A_AHEAD 2 / 3 (21,891); FWD_AHEAD 1 / 0 (21,875) / 2 (21,619, GROUP 4); B tile 1
# requested with B tile 0 instead of once it is in: 21,859
# With the back-to-back DRAM endpoint (16 words in 17 cycles): GROUP 2 (20,950) / 3
# (20,785) / 4 (20,848) / 5 (21,148) / 6 (21,242) / 8 (21,212); with GROUP 3 the last
# strip in 4 pieces 20,745 / 2 20,793 / 8 20,785 / 16 20,831; A_AHEAD 3 21,192-21,482.
A_AHEAD = 2  # A tile reads in flight per row reader
FWD_AHEAD = 1  # the A reader forwards tile i + FWD_AHEAD before it multiplies tile i
GROUP = 3  # A tiles per group of pass 0 (one QLOAD per group and B tile)
LAST_PIECES = 4  # the last C strip leaves in this many pieces (at most LAST_GROUPS)
B1_SLOT = 1  # the B reader forwards B tile 1 before it multiplies A tile B1_SLOT
B2_FROM, B2_EVERY = 6, 2  # B tile 2 pieces: read from A tile slot B2_FROM, one per B2_EVERY
C_SEG0 = 8  # first segment (of 2 * b_parts per pass) with C strip writes (not the last pass)
DESC_ROOM = 4096  # bytes at the bottom of bank 2 kept for the DMA descriptors


def b_place(j: int) -> str:
    """Buffer suffix of B tile j: 'e' (top bank), 'o' (the one below), 'x' (bank 1)."""
    if j < 2:
        return "eo"[j]
    if j == 2:
        return "x"
    return "eo"[(j - 3) % 2]


def b_slot(j: int) -> int:
    """Index of B tile j inside its buffer."""
    if j < 3:
        return 0
    return 1 + (j - 3) // 2


def pair_fits(arch, plan: dict, a_band: int) -> bool:
    """Whether the paired layout fits: A and C in bank 0, B tile 2 and the parameters
    in bank 1, the other B tiles in the top two banks (descriptors under them)."""
    mtp, ntp = plan["tiles_per_pe"]
    tb = plan["k_pad"] * plan["C"]
    e_tiles = sum(b_place(j) == "e" for j in range(ntp))
    o_tiles = sum(b_place(j) == "o" for j in range(ntp))
    params = align(ntp * qparam_layout(plan["C"])["total"][1])
    # DMAs of a reader: its operand's reads and multicasts, plus the C writes
    descs = DESC_BYTES * (max(2 * mtp, 2 * b_parts(tb) * ntp) + ntp + LAST_GROUPS)
    return (
        ntp >= 3
        and plan["block"][0] * plan["C"] % 16 == 0  # each C strip leaves in whole words
        and 2 * GROUP <= mtp <= 16
        and arch.regions == 4
        and align(a_band) + align(plan["block"][0] * plan["block"][1]) <= arch.region_bytes
        and tb + params <= arch.region_bytes
        and e_tiles * tb <= arch.region_bytes
        and o_tiles * tb <= arch.region_bytes - DESC_ROOM
        and descs <= DESC_ROOM
    )


def pair_tasks(kb, pe, plan: dict, a_band: int, b_band: int, c_off: int) -> int:
    """Add the task list of PE ``pe`` (C block at ``c_off`` of DRAM tensor C) to ``kb``
    (``kb = None``: only count); returns an upper bound of its instruction count."""
    from compiler.backend.gemm import words_rows

    gx, gy = pe
    gc, gr = plan["grid"]
    mtp, ntp = plan["tiles_per_pe"]
    R, C, kp = plan["R"], plan["C"], plan["k_pad"]
    mp_ = plan["block"][0]
    ta, tb = kp * R, kp * C
    parts = b_parts(tb)
    part = tb // parts
    strip = mp_ * C
    unit = 16 // math.gcd(16, R * C)
    pstride = qparam_layout(C)["total"][1]
    Cb, Ab = f"@C{gx}_{gy}", f"@A{gy}"
    a_rd, b_rd = readers(gc, gr)
    read_a, read_b = a_rd[gy][0] == pe, b_rd[gx][0] == pe
    a_to, b_to = a_rd[gy][1], b_rd[gx][1]
    plan.update(b_parts=parts, a_chunk_tiles=1, a_ahead=A_AHEAD, c_layout="strips")
    count = [0]

    def add(cls, n: int, **kw) -> None:
        count[0] += n
        if kb is not None:
            kb.add(pe, cls, **kw)

    def xfer(**kw) -> None:
        add(mp.TransferOp, 1, **kw)

    def wait(sem: int, n: int) -> None:
        add(mp.WaitOp, 1, sem=sem, count=n)

    def bbuf(j: int, off: int = 0) -> tuple[str, int]:
        if b_place(j) == "x":
            return f"@X{gx}", off
        return f"@B{gx}{b_place(j)}", b_slot(j) * tb + off

    def abuf(i: int) -> tuple[str, int]:
        return Ab, i * ta

    def a_read(i: int) -> None:
        xfer(
            local=abuf(i)[0],
            local_offset=abuf(i)[1],
            remote="@A",
            remote_offset=gy * a_band + i * ta,
            count=words_rows(ta),
            sem=0,
            read=1,
        )

    def a_arrive(i: int) -> None:
        wait(0, 1)
        if read_a and a_to:
            xfer(
                local=abuf(i)[0],
                local_offset=abuf(i)[1],
                remote=abuf(i)[0],
                remote_offset=abuf(i)[1],
                count=words_rows(ta),
                sem=0,
                read=0,
                signal=1,
                to=a_to,
            )
        if read_a:  # keep A_AHEAD reads in flight
            while issued[0] <= min(i + A_AHEAD, mtp - 1):
                a_read(issued[0])
                issued[0] += 1

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

    def b_arrive(j: int, p: int) -> None:
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

    def b_in(j: int) -> None:  # B tile j is complete here (reader: forwarded too)
        if read_b:
            for p in range(parts):
                b_arrive(j, p)
        else:
            wait(1, parts)

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

    def matmul(i0: int, n: int, j: int, qload: int) -> None:
        mm(i0, n, j, qload, 1)

    def mm(i0: int, n: int, j: int, qload: int, step: int) -> None:
        add(
            MatmulAtOp,
            MATMUL_INSTRS,
            a=abuf(i0)[0],
            b=bbuf(j)[0],
            c=Cb,
            params=f"@P{gx}",
            tiles=[n, 1],
            k=kp,
            ldc=C,
            a_offset=abuf(i0)[1],
            b_offset=bbuf(j)[1],
            c_offset=j * strip + i0 * R * C,
            p_offset=j * pstride,
            qload=qload,
            c_stride=step * R * C,
        )

    # start: A tile 0 and B tile 0 are requested, a reader forwards what it reads
    # before it waits for the other operand; B tile 1 is requested once B tile 0 is in
    issued = [0]  # A tiles requested so far (by the A reader)
    if read_a:
        a_read(0)
        issued[0] = 1
    if read_b:
        for p in range(parts):
            b_read(0, p)
    pro = 1 if read_a else 0
    if read_a:
        a_arrive(0)
    b_in(0)
    if read_b:
        for p in range(parts):
            b_read(1, p)
    # pass 0: B tile 2 is read piece by piece from about B2_FROM / 16 of the way on,
    # each piece forwarded two A tiles after its read
    slot: dict[int, list] = {}
    if read_b:
        for p in range(parts):
            rd = min(mtp - 1, B2_FROM * mtp // 16 + p * B2_EVERY)
            ar = min(mtp - 1, rd + 2)
            slot.setdefault(rd, []).append((1, b_read, 2, p))
            slot.setdefault(ar, []).append((2 if ar == rd else 0, b_arrive, 2, p))
    # the A reader forwards each tile one MATMUL before the one that needs it (the
    # followers' WAIT then finds it there), a follower waits right before it
    ahead = FWD_AHEAD if read_a and a_to else 0
    for g0 in range(0, mtp, GROUP):
        g1 = min(mtp, g0 + GROUP)
        for i in range(g0, g1):
            if not ahead:
                if i >= pro:
                    a_arrive(i)
            else:
                for n in range(max(pro, i + ahead if i else 0), min(mtp, i + ahead + 1)):
                    a_arrive(n)
            if read_b and i == B1_SLOT < GROUP:  # the B reader forwards B tile 1 early
                b_in(1)
            for _, fn, j, p in sorted(slot.get(i, []), key=lambda e: (e[0], e[3])):
                fn(j, p)
            matmul(i, 1, 0, int(i == g0))
        if g0 == 0 and not (read_b and B1_SLOT < GROUP):
            b_in(1)
        matmul(g0, g1 - g0, 1, 1)
    done = [0, 1]  # finished strips not yet written
    for j in range(2, ntp):  # pass j - 1: B tile j, while B tile j + 1 arrives
        if not read_b:  # the reader forwarded B tile j during the previous pass
            wait(1, parts)
        last = j + 1 == ntp
        segs = 2 * parts if not last else max(1, min(LAST_PIECES, mtp // unit))
        bounds = [mtp * q // segs for q in range(segs + 1)]
        if last:
            bounds = [unit * ((mtp // unit) * q // segs) for q in range(segs + 1)]
            bounds[-1] = mtp
        # finished strips leave once B tile j + 1 is in (DRAM writes next to the reads
        # of B tile j + 1 delay them: measured on RTL); in the last pass from its start
        first = 0 if last else min(C_SEG0, segs)
        pending = done if last or first < segs else []
        at_q = [
            (first + n * (segs - first) // max(1, len(pending)), sj) for n, sj in enumerate(pending)
        ]
        loaded = False  # B tile j's parameters: QLOADed by the first MATMUL of the pass
        for q, (r0, r1) in enumerate(zip(bounds, bounds[1:], strict=False)):
            if not last and read_b:  # B tile j + 1: reads, then forwards, spread
                if q < parts:
                    b_read(j + 1, q)
                else:
                    b_arrive(j + 1, q - parts)
            for sj in (sj for qq, sj in at_q if qq == q):
                c_write(sj * strip, strip)
            if r1 > r0:  # (a segment is empty when mtp < segs)
                matmul(r0, r1 - r0, j, int(not loaded))
                loaded = True
            if last and r1 > r0:
                c_write(j * strip + r0 * R * C, (r1 - r0) * R * C)
        done = ([] if pending else done) + [j]
    return count[0]
