"""The multi-PE GEMM on a 2-D grid of PEs (program generator for cosim/kernels/gemm_multi.py).

PE (x, y) of the ``gc x gr`` mesh owns the output block of rows ``[y*Mp, (y+1)*Mp)``
and columns ``[x*Np, (x+1)*Np)``: its A band (``mt = Mp/R`` row tiles, K x R each)
is shared by its PE row, its B band (``nt = Np/C`` column tiles, K x C) by its PE
column.  Each band is read from DRAM once by one *reader* PE and multicast to the
rest of its row (A) or column (B), so DRAM moves every operand byte once and each
multicast tree has only ``gc - 1`` or ``gr - 1`` receivers (RECT multicast is
slower than unicast: a forked packet advances at the pace of its slowest branch).

Schedule (the same idea as the compiler's pipelined resident GEMM,
compiler/backend/gemm_pipe.py): column tile ``j`` outer ("passes"), row tile ``i``
inner.  Pass 0 multiplies each A tile as soon as it has arrived (one WAIT per
tile; the A reader keeps ``A_AHEAD`` DRAM reads in flight and multicasts each
tile when it lands).  B tile ``j + 1`` is read during the first half of pass ``j``
in ``B_PARTS`` pieces and multicast piece by piece in the second half, so the DMA
queue never holds a burst.  Readers: A of row y at (0, y) multicasting east, except
the last row's at (gc-1, gr-1) multicasting west; B of column x at (x, 0)
multicasting south, except column 0's at (0, gr-1) multicasting north: no PE reads
both operands, and no multicast runs against the DRAM answers (which flow west on
row 0, then south).  C stays in SRAM (row-major ``Mp x Np`` block per PE).
Semaphores: ``S_A`` counts A tiles, ``S_B`` B pieces.
"""

from __future__ import annotations

from hw import isa
from hw.arch import ArchConfig

__all__ = ["A_AHEAD", "B_PARTS", "grid_layout", "grid_program", "grid_readers"]

DESC = isa.DESC_WORDS * isa.WORD_BYTES
S_A, S_B = 0, 2
A_AHEAD = 3
PRO_TILES = 3
B_PARTS = 4


def _align(v: int, a: int) -> int:
    return -(-v // a) * a


def grid_readers(gc: int, gr: int) -> tuple[dict, dict]:
    """{row: (reader, rect)} for A and {column: (reader, rect)} for B."""
    swap = gc > 1 and gr > 1
    a = {
        y: ((gc - 1, y), (0, y, gc - 2, y))
        if swap and y == gr - 1
        else ((0, y), (1, y, gc - 1, y) if gc > 1 else None)
        for y in range(gr)
    }
    b = {
        x: ((0, gr - 1), (0, 0, 0, gr - 2))
        if swap and x == 0
        else ((x, 0), (x, 1, x, gr - 1) if gr > 1 else None)
        for x in range(gc)
    }
    return a, b


def grid_layout(arch: ArchConfig, m: int, n: int, k: int) -> dict:
    """SRAM layout of every PE.  With four banks or more and bands small enough, the
    even / odd A tiles sit in banks 0 / 1 and the even / odd B tiles in the top two
    banks ("split": the MAC's reads win every bank cycle, so a tile arriving or being
    multicast must not share a bank with the tile being multiplied); C, the output
    parameters of every column tile and the descriptors follow the odd A tiles.
    Otherwise A, B, C, parameters and descriptors one after the other."""
    r, c = arch.mac_rows, arch.mac_cols
    gc, gr = arch.mesh_cols, arch.mesh_rows
    mp, np_ = m // gr, n // gc
    mt, nt = mp // r, np_ // c
    qtotal = isa.qparam_layout(c)["total"][1]
    lay = {"grid": (gc, gr), "mp": mp, "np": np_, "mt": mt, "nt": nt, "qtotal": qtotal}
    ta, tb, bank = k * r, k * c, arch.bank_bytes
    n_desc = 2 * mt + 2 * B_PARTS * nt + 2

    def tail(start: int) -> None:
        lay["c"] = _align(start, 16)
        lay["q"] = _align(lay["c"] + mp * np_, 16)
        lay["desc"] = lay["q"] + (n // c) * qtotal
        lay["end"] = lay["desc"] + n_desc * DESC

    top = (arch.sram_banks - 1) * bank
    lay["split"] = arch.sram_banks >= 4 and mt >= 2 and nt >= 2
    lay["split"] &= max(-(-mt // 2) * ta, -(-nt // 2) * tb) <= bank
    if lay["split"]:
        lay.update(a_even=0, a_odd=bank, b_even=top, b_odd=top - bank)
        tail(bank + (mt // 2) * ta)
        lay["split"] = lay["end"] <= 2 * bank
    if not lay["split"]:
        lay.update(a_even=0, a_odd=0, b_even=_align(mt * ta, bank))
        lay["b_odd"] = lay["b_even"]
        tail(lay["b_even"] + nt * tb)
    lay["b_dram"] = m * k
    return lay


def grid_program(arch: ArchConfig, m: int, n: int, k: int, x: int, y: int, lay: dict):
    """Assembly text and descriptor block of PE (x, y)."""
    r, c = arch.mac_rows, arch.mac_cols
    np_, mt, nt = lay["np"], lay["mt"], lay["nt"]
    gc, gr = lay["grid"]
    dx, dy = isa.dram_node(arch, 0)
    ta, tb = k * r, k * c
    part = tb // B_PARTS
    a_rd, b_rd = grid_readers(gc, gr)
    read_a, a_to = a_rd[y][0] == (x, y), a_rd[y][1]
    read_b, b_to = b_rd[x][0] == (x, y), b_rd[x][1]
    descs: list[bytes] = []

    def bb(j: int) -> int:  # SRAM address of B tile j
        if lay["split"]:
            return lay["b_odd" if j % 2 else "b_even"] + (j // 2) * tb
        return lay["b_even"] + j * tb

    def aa(i: int) -> int:  # SRAM address of A tile i
        if lay["split"]:
            return lay["a_odd" if i % 2 else "a_even"] + (i // 2) * ta
        return lay["a_even"] + i * ta

    def dma(**kw) -> str:
        descs.append(isa.encode_desc(**kw))
        return f"dma x15, {(len(descs) - 1) * DESC}"

    def cast(local: int, nbytes: int, sem: int, to) -> str:
        x0, y0, x1, y1 = to
        mode = isa.SignalMode.NODE if (x0, y0) == (x1, y1) else isa.SignalMode.RECT
        return dma(
            local=local,
            remote=local,
            count0=nbytes // 16,
            mode=int(mode),
            x0=x0,
            y0=y0,
            x1=x1,
            y1=y1,
            sem=sem,
            signal=1,
        )

    def a_read(i: int) -> str:
        return dma(
            local=aa(i),
            remote=(y * mt + i) * ta,
            count0=ta // 16,
            x0=dx,
            y0=dy,
            sem=S_A,
            read=1,
        )

    def b_read(j: int, p: int) -> str:
        off = j * tb + p * part
        return dma(
            local=bb(j) + p * part,
            remote=lay["b_dram"] + x * nt * tb + off,
            count0=part // 16,
            x0=dx,
            y0=dy,
            sem=S_B,
            read=1,
        )

    def a_arrive(i: int) -> list[str]:
        out = [f"wait sem={S_A}, count=1"]
        if read_a and a_to:
            out.append(cast(aa(i), ta, S_A, a_to))
        if read_a:
            first = i + 1 if i == 0 else i + A_AHEAD
            out += [a_read(n) for n in range(first, min(i + A_AHEAD, mt - 1) + 1)]
        return out

    def b_arrive(j: int, p: int) -> list[str]:
        out = [f"wait sem={S_B}, count=1"]
        if b_to:
            out.append(cast(bb(j) + p * part, part, S_B, b_to))
        return out

    events: list[list[list[str]]] = [[[] for _ in range(mt + 1)] for _ in range(nt)]
    # start: a reader forwards first (all of B tile 0; the first PRO_TILES A tiles),
    # then waits for what the others send it
    if read_b:
        for p in range(B_PARTS):
            events[0][0] += b_arrive(0, p)
    pro = min(PRO_TILES, mt) if read_a else 1
    for i in range(mt):
        events[0][0 if i < pro else i] += a_arrive(i)
    for j in range(nt):
        if read_b:
            if j + 1 < nt:
                for p in range(B_PARTS):
                    events[j][p * mt // (2 * B_PARTS)].append(b_read(j + 1, p))
                for p in range(B_PARTS):
                    events[j][(B_PARTS + p) * mt // (2 * B_PARTS) + 1] += b_arrive(j + 1, p)
        else:
            events[j][0].append(f"wait sem={S_B}, count={B_PARTS}")

    step = 2 if lay["split"] else 1  # tile loops run over even, then odd A tiles
    lines = [
        f"li x15, {lay['desc']}",
        f"lstride x1, level=0, slot=0, imm={ta}",
        f"lstride x3, level=0, slot=1, imm={step * r * np_}",
    ]
    if read_a:
        lines.append(a_read(0))
    if read_b:
        lines += [b_read(0, p) for p in range(B_PARTS)]
    for j in range(nt):
        lines += [f"li x4, {lay['q'] + (x * nt + j) * lay['qtotal']}", "qload x4, 0"]
        i = 0
        while i < mt:
            lines += events[j][i]
            nxt = i + 1
            while j > 0 and nxt < mt and not events[j][nxt]:
                nxt += 1
            for r0 in range(i, min(i + step, nxt)):
                lines += [
                    f"li x1, {aa(r0)}",
                    f"li x2, {bb(j)}",
                    f"li x3, {lay['c'] + r0 * r * np_ + j * c}",
                ]
                count = -(-(nxt - r0) // step)
                mm = f"matmul rs1=x1, rs2=x2, rs3=x3, k16={k // 16}, ldc={np_}"
                lines += [f"loop x0, body=1, imm={count}", mm] if count > 1 else [mm]
            i = nxt
        lines += events[j][mt]
    lines.append("halt")
    return "\n".join(lines) + "\n", b"".join(descs)
