"""The ``resident`` GEMM schedule with a *paired* first pass (used by gemm.py when
:func:`pair_fits`): the data each PE needs grows gradually instead of front-loaded.

gemm_pipe.py's order (B tile outer, A tile inner) must receive the whole A band and
two B tiles during its first ``mtp`` MATMULs, so its first pass is DRAM-bound.  Here:

* pass 0 multiplies every A tile with B tiles 0 *and* 1, in groups of ``GROUP`` A
  tiles: each A tile of a group times B tile 0 as soon as it has arrived, then the
  whole group times B tile 1 (one QLOAD per group and B tile).  Each A tile thus
  feeds two MATMULs (the A stream needs half the DRAM rate), and B tile 1 is needed
  only after the first group.  Passes 1, 2, ... multiply the resident A band with
  B tiles 2, 3, ... as in gemm_pipe.py.
* A (whole band, one buffer) and C share bank 0: the MAC reads A one word in R / 16
  of its cycles, so arriving A tiles and outgoing C get the other cycles.  B tiles
  live in three banks (:func:`b_place`): tile 0 in the top bank, tile 1 in the one
  below, tile 2 in bank 1, then alternating over the top two; the tile being
  multiplied never shares a bank with one arriving (the MAC's B reads take every
  cycle of their bank).
* C: column strips ``[ntp][Mp][C]`` as in gemm_pipe.py; strips 0 and 1 leave group
  by group during pass 0, strip j (j >= 2) during the next pass, the last one in
  ``LAST_GROUPS`` pieces as its tiles finish.

Readers, multicast and semaphores (0 = A tiles, 1 = B pieces) as in gemm_pipe.py.
"""

from __future__ import annotations

import math

from compiler.backend.alloc import align
from compiler.backend.builder import DESC_BYTES
from compiler.backend.gemm_pipe import A_AHEAD, LAST_GROUPS, MATMUL_INSTRS, b_parts, readers
from compiler.backend.tile_ops import MatmulAtOp
from compiler.dialects import mapping as mp
from hw.isa import qparam_layout

__all__ = ["GROUP", "b_place", "pair_fits", "pair_tasks"]

GROUP = 4  # A tiles per group of pass 0 (one QLOAD per group and B tile)
PRO_TILES = 3  # A tiles an A reader forwards before it waits for B tile 0


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
    """Whether the paired layout fits: A, C, parameters and descriptors in bank 0,
    B tiles in banks 1, 2 and 3 (one A tile per A chunk)."""
    mtp, ntp = plan["tiles_per_pe"]
    tb = plan["k_pad"] * plan["C"]
    low = align(a_band) + align(plan["block"][0] * plan["block"][1])
    low += align(ntp * qparam_layout(plan["C"])["total"][1])
    e_tiles = sum(b_place(j) == "e" for j in range(ntp))
    return (
        ntp >= 3
        and mtp >= 2 * GROUP
        and mtp <= 16
        and arch.sram_banks == 4
        and e_tiles * tb <= arch.bank_bytes
        and tb + (DESC_BYTES * (4 * mtp + 8 * ntp + 32)) <= arch.bank_bytes
        and low <= arch.bank_bytes
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
        return f"@B{gx}{b_place(j)}", b_slot(j) * tb + off

    def a_read(i: int) -> None:
        xfer(
            local=Ab,
            local_offset=i * ta,
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
                local=Ab,
                local_offset=i * ta,
                remote=Ab,
                remote_offset=i * ta,
                count=words_rows(ta),
                sem=0,
                read=0,
                signal=1,
                to=a_to,
            )
        if read_a:  # keep A_AHEAD reads in flight (only tile 0 before B tile 0)
            for n in range(i + 1 if i == 0 else i + A_AHEAD, min(i + A_AHEAD, mtp - 1) + 1):
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
        add(
            MatmulAtOp,
            MATMUL_INSTRS,
            a=Ab,
            b=bbuf(j)[0],
            c=Cb,
            params=f"@P{gx}",
            tiles=[n, 1],
            k=kp,
            ldc=C,
            a_offset=i0 * ta,
            b_offset=bbuf(j)[1],
            c_offset=j * strip + i0 * R * C,
            p_offset=j * pstride,
            qload=qload,
            c_stride=R * C,
        )

    # start: a reader forwards what it reads before it waits for the other operand
    if read_a:
        a_read(0)
    if read_b:
        for p in range(parts):
            b_read(0, p)
    pro = min(PRO_TILES, mtp) if read_a else 0
    for i in range(pro):
        a_arrive(i)
    b_in(0)
    if read_b:  # B tile 1 is needed after the first group
        for p in range(parts):
            b_read(1, p)
    # pass 0: B tile 2 is read piece by piece in its second half, each piece forwarded
    # two A tiles later
    slot: dict[int, list] = {}
    if read_b:
        half = mtp // 2
        for p in range(parts):
            rd = half - 2 + p * half // parts
            slot.setdefault(rd, []).append((b_read, 2, p))
            slot.setdefault(min(rd + 2, mtp - 1), []).append((b_arrive, 2, p))
    for g0 in range(0, mtp, GROUP):
        g1 = min(mtp, g0 + GROUP)
        for i in range(g0, g1):
            if i >= pro:
                a_arrive(i)
            for fn, j, p in sorted(slot.get(i, []), key=lambda e: e[0] is b_read):
                fn(j, p)
            matmul(i, 1, 0, int(i == g0))
        if g0 == 0:
            b_in(1)
        matmul(g0, g1 - g0, 1, 1)
        if (g0 * R * C) % 16 == 0 and ((g1 - g0) * R * C) % 16 == 0:
            for j in range(2):
                c_write(j * strip + g0 * R * C, (g1 - g0) * R * C)
    if (GROUP * R * C) % 16 or (mtp * R * C) % 16:  # strips 0 and 1 whole
        c_write(0, 2 * strip)
    for j in range(2, ntp):  # pass j - 1: B tile j, while B tile j + 1 arrives
        if not read_b:  # the reader forwarded B tile j during the previous pass
            wait(1, parts)
        if j >= 3:  # the previous strip leaves during this pass
            c_write((j - 1) * strip, strip)
        last = j + 1 == ntp
        segs = 2 * parts if not last else max(1, min(LAST_GROUPS, mtp // unit))
        bounds = [mtp * q // segs for q in range(segs + 1)]
        if last:
            bounds = [unit * ((mtp // unit) * q // segs) for q in range(segs + 1)]
            bounds[-1] = mtp
        for q, (r0, r1) in enumerate(zip(bounds, bounds[1:], strict=False)):
            if not last and read_b:  # B tile j + 1: reads, then forwards, spread
                if q < parts:
                    b_read(j + 1, q)
                else:
                    b_arrive(j + 1, q - parts)
            if r1 > r0:
                matmul(r0, r1 - r0, j, int(q == 0))
            if last and r1 > r0:
                c_write(j * strip + r0 * R * C, (r1 - r0) * R * C)
    return count[0]
