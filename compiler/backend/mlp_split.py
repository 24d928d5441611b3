"""MLP block with the weights split over the PEs (mlp.py's ``plan["split"] = "weights"``).

Y = requant(relu(requant(X @ W1)) @ W2) on a ``gc x gr`` rectangle of PEs.  Each PE
owns a *weight group* ``w`` (column slices of W1 and W2) and a *token group* ``t``
(a band of X's rows).  Two layouts (:func:`split_layouts`, ``WeightSplit.tgroups``):

* ``gr``: weight group = PE column, token group = PE row, a 2-D tiling of both
  GEMMs: X bands travel along the PE rows, W1 / W2 column tiles down the columns;
* ``1``: every PE is a weight group of its own and sees all tokens (the brief form
  of the split: each slice is read by its PE alone, X goes to every PE).

DRAM reads.  The top PE of each column reads its group's W1 then W2 column tiles,
one PE at the end of each PE row reads the row's X band; everything is read once,
in pieces of ``piece`` bytes with at most ``depth`` pieces in flight per reader, and
each piece is multicast on arrival to the rest of its group (RECT writes with signal
on ``SX`` / ``SW1`` / ``SW2``; one sender per semaphore, so arrivals count in order).
Few requests in flight matter on the chip: the DRAM endpoint queues 16 requests, the
rest wait in the routers and hold up every write behind them.  A reader handles its
next piece after every MATMUL task (``chunk`` m tiles), so its reads keep pace with
its own compute and the four readers keep the DRAM busy; ``_Reads`` keeps the WAITs
on ``RD`` in issue order (mlp_reads.py).

Per PE: GEMM1 ``H = relu(requant(X_t @ W1_w))`` column tile by column tile in blocked
output tiles (chain_ops ``matmul_win``; W1's columns permuted inside C-chunks,
layout.chunk_perm), the one-MATMUL transpose (``transpose_blocked``; row-major GEMM1
+ ``mapping.transpose`` where it does not apply) of the slice into ``[mtp][s1][R]``,
the all-gather of H within the token group (one strided RECT write puts the slice at
K offset ``w*s1`` of every member's ``HT`` = ``[mtp][hp][R]``: ``mtp`` runs of
``s1*R`` bytes, row stride ``hp*R``, semaphore ``SH``), GEMM2
``Y = requant(HT_t @ W2_w)`` column tile by column tile, and Y to DRAM after the
reads (a DRAM write waits for every queued read: Y tiles leave before the last
column tile and after it).

SRAM banks (``bank_plan``, when the arch has 4 banks and the parts fit): the MAC
reads its B operand every cycle and wins its bank, so W1 even tiles + HT, W1 odd
tiles + Y, W2 even tiles + X each claim a whole bank and W2's odd tiles share the
rest: no DMA ever targets the bank of the B tile being multiplied.  Buffers written
remotely are live from the start and buffers multicast from stay live to the end
(chain.py explains why).  :data:`GRAINS` coarsens ``chunk`` and ``piece`` until the
programs fit the instruction memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.backend.alloc import AllocError
from compiler.backend.builder import KernelBuilder, Mapped
from compiler.backend.chain import END, transpose_buffers
from compiler.backend.chain_ops import MatmulWinOp, TransposeBlockedOp
from compiler.backend.gemm import words_rows
from compiler.backend.groups import pes_of
from compiler.backend.layout import ceil_to, chunk_perm, pack_a, pack_b, param_blocks
from compiler.backend.lower import lower_pe
from compiler.backend.mlp_reads import Piece, Reads, members, others
from compiler.dialects import mapping as mp
from compiler.errors import CompileError
from hw.isa import qparam_layout

__all__ = ["GRAINS", "ImemError", "WeightSplit", "map_mlp_weights", "split_layouts"]

LOAD, GEMM1, TRANS, GEMM2, STORE = range(5)


class ImemError(CompileError):
    """No grain of the weight split fits the instruction memory."""


SX, SW1, SW2, SH = 2, 3, 4, 5  # arrival semaphores (RD = 1: mlp_reads.py)
# streamed weights: W1 and W2 column tiles pass through SLOTS buffers each; slot s's
# credits (a group member is done with the tile in it) count on SC + s
SLOTS, SC = 2, 6


@dataclass(frozen=True)
class WeightSplit:
    """Geometry of one weight-split layout (all sizes padded)."""

    gc: int
    gr: int
    tgroups: int  # 1 or gr
    mtp: int  # m tiles per token group
    s1: int  # hidden columns per weight group
    s2: int  # output columns per weight group
    dp: int

    @property
    def wgroups(self) -> int:
        return self.gc * self.gr // self.tgroups

    @property
    def hp(self) -> int:
        return self.wgroups * self.s1

    @property
    def op(self) -> int:
        return self.wgroups * self.s2

    def groups_of(self, pe) -> tuple[int, int]:
        """(weight group, token group) of PE ``pe``."""
        x, y = pe
        return (y * self.gc + x, 0) if self.tgroups == 1 else (x, y)

    def token_rect(self, pe) -> list[int]:
        if self.tgroups == 1:
            return [0, 0, self.gc - 1, self.gr - 1]
        return [0, pe[1], self.gc - 1, pe[1]]

    def weight_rect(self, pe) -> list[int]:
        return [pe[0], pe[1], pe[0], pe[1]] if self.tgroups == 1 else [pe[0], 0, pe[0], self.gr - 1]


def split_layouts(arch, m: int, d: int, hidden: int, n: int) -> list[WeightSplit]:
    """The weight-split layouts (token groups = PE rows, or one token group) on the
    largest PE rectangle that gives every PE a tile of each GEMM (none with fewer
    than 6 semaphores)."""
    if arch.semaphores <= SH:  # the reads, X, W1, W2 and H each count on their own
        return []
    R, C = arch.mac_rows, arch.mac_cols
    unit = math.lcm(16, C)  # H slices: whole C tiles and whole 16-row K steps of GEMM2
    mt, wt = -(-m // R), min(-(-hidden // C), -(-n // C))  # m tiles; column tiles
    grids = [(gc, gr) for gr in range(1, arch.mesh_rows + 1) for gc in range(1, arch.mesh_cols + 1)]
    out = []
    for rows in (True, False):
        fit = [(gc * gr, gc, gr) for gc, gr in grids
               if (gc <= wt and gr <= mt if rows else gc * gr <= wt and gr > 1)]  # fmt: skip
        if not fit:
            continue
        _, gc, gr = max(fit)
        tg = gr if rows else 1
        wg = gc * gr // tg
        mtp = -(-mt // tg)
        if C < 16 and 16 % C == 0:  # transpose_blocked reads 16/C m tiles at a time
            mtp = ceil_to(mtp, 16 // C)
        s1 = unit * -(-hidden // (wg * unit))
        s2 = C * -(-n // (wg * C))
        out.append(WeightSplit(gc, gr, tg, mtp, s1, s2, ceil_to(d, 16)))
    return out


def _pad(v, n: int) -> np.ndarray:
    return np.pad(np.asarray(v, np.int64), (0, n - len(v)))


class _Builder:
    def __init__(self, arch, t: dict, name: str, ws: WeightSplit, **opts):
        self.arch, self.t, self.ws = arch, t, ws
        self.R, self.C = arch.mac_rows, arch.mac_cols
        self.q = qparam_layout(self.C)["total"][1]
        self.kb = KernelBuilder(arch, name)
        self.pes = pes_of(ws.gc, ws.gr)
        self.rect = (0, 0, ws.gc - 1, ws.gr - 1)
        C = self.C
        self.blocked = C <= 16 and 16 % C == 0 and ws.mtp % (16 // C) == 0
        self.depth = opts.get("depth", 2)  # reads in flight per reader
        self.piece = opts.get("piece", 1024)  # bytes per read
        self.chunk = opts.get("chunk", 1)  # m tiles per MATMUL task
        self.steps = opts.get("steps", 1)  # reads handled after each chunk
        self.banked = opts.get("banked", True)
        self.gather_steps = opts.get("gather_steps", 2)  # reads handled before the gather
        self.y_early = opts.get("y_early", -1)  # when Y tiles but the last leave (program)
        # weight tiles through SLOTS slots per weight (credits back to the column reader)
        self.stream = opts.get("stream", False)
        if self.stream:
            # a reader must keep a tile's pieces coming at the pace of its tasks: with
            # reads handled one per task, W2's 4 pieces per tile behind 2 tasks took
            # 128 x 512 x 1024 x 512 on the RTL (small) to 307,148 cycles; two tiles'
            # worth per tile and 3 in flight 196,386 (steps 2: 208,963, 4: 203,870, 8:
            # 205,960, all with 2 in flight)
            per_tile = max(len(self.split(ws.dp * self.C)), len(self.split(ws.hp * self.C)))
            tasks = -(-ws.mtp // self.chunk)
            self.steps = opts.get("steps", max(1, -(-2 * per_tile // tasks)))
            self.depth = opts.get("depth", 3)

    # -- operands ---------------------------------------------------------------------
    def tensors(self) -> None:
        ws, t, R, C, kb = self.ws, self.t, self.R, self.C, self.kb
        m, d = t["x"].shape
        hidden, n = t["w1"].shape[1], t["w2"].shape[1]
        x = pack_a(t["x"], ws.tgroups * ws.mtp * R, ws.dp, R)
        kb.dram_tensor("X", x.nbytes, x.tobytes())
        perm = chunk_perm(ws.hp, R, C)
        w1 = np.zeros((ws.dp, ws.hp), np.int8)
        w1[:d, :hidden] = t["w1"]
        kb.dram_tensor("W1", ws.dp * ws.hp, pack_b(w1[:, perm], ws.dp, ws.hp, C).tobytes())
        w2 = np.zeros((ws.hp, ws.op), np.int8)
        w2[:hidden, :n] = t["w2"]
        kb.dram_tensor("W2", ws.hp * ws.op, pack_b(w2, ws.hp, ws.op, C).tobytes())
        mp_ = ws.mtp * R
        kb.dram_tensor("Y", len(self.pes) * mp_ * ws.s2)
        p1 = param_blocks(*(_pad(t[k], ws.hp)[perm] for k in ("b1", "m1", "s1")), 0, 0, 127, C)
        p2 = param_blocks(*(_pad(t[k], ws.op) for k in ("b2", "m2", "s2")), 0, -128, 127, C)
        b1, b2 = self.q * ws.s1 // C, self.q * ws.s2 // C
        for pe in self.pes:
            w, _ = ws.groups_of(pe)
            kb.sram_buffer(f"P1_{pe[0]}_{pe[1]}", "params1", b1, pe, (LOAD, GEMM1), "high",
                           p1[w * b1 : (w + 1) * b1])  # fmt: skip
            kb.sram_buffer(f"P2_{pe[0]}_{pe[1]}", "params2", b2, pe, (LOAD, GEMM2), "high",
                           p2[w * b2 : (w + 1) * b2])  # fmt: skip

    def buffers(self) -> None:
        """SRAM: ``self.at[name]`` = (buffer, offset) of the logical buffers Xs, HT, Yb
        and of every W1 / W2 column tile (``("W1", j)``)."""
        ws, R, C, kb, rect = self.ws, self.R, self.C, self.kb, self.rect
        mp_ = ws.mtp * R
        nc1, nc2 = ws.s1 // C, ws.s2 // C
        t1, t2 = ws.dp * C, ws.hp * C
        sizes = {"Xs": ws.mtp * ws.dp * R, "HT": ws.mtp * ws.hp * R, "Yb": mp_ * ws.s2}
        if self.stream:  # only the slots take SRAM; tile j uses slot j % SLOTS
            nc1, nc2 = min(nc1, SLOTS), min(nc2, SLOTS)
        tiles = [(("W1", j), t1) for j in range(nc1)] + [(("W2", j), t2) for j in range(nc2)]
        self.at: dict = {}
        banks = self.bank_plan(sizes, tiles) if self.banked else None
        if banks is not None:
            # the MAC reads its B operand every cycle and wins the bank, so no DMA
            # (a DRAM answer, a multicast) may target the bank of the B tile being
            # multiplied, nor should C writes or the A operand share it.  Three banks are
            # claimed whole (the allocator places equal sizes by name from the top):
            # W1 even + HT, W1 odd + Yb, W2 even + Xs; W2 odd and the rest take bank 0
            for name, parts in banks.items():
                off = 0
                for key, n in parts:
                    self.at[key] = (name, off)
                    off += n
                kb.sram_buffer(name, "W1/W2 tiles, X, H^T, Y", self.arch.region_bytes, rect,
                               (LOAD, END), "high")  # fmt: skip
            if nc2 > 1:
                kb.sram_buffer("W2o", "W2", (nc2 // 2) * t2, rect, (LOAD, END))
            for j in range(1, nc2, 2):
                self.at["W2", j] = ("W2o", (j // 2) * t2)
        else:
            # remote writes reach Xs, W1s, W2s, HT from the start; they (and T) are sent
            kb.sram_buffer("Xs", "X", sizes["Xs"], rect, (LOAD, END))
            kb.sram_buffer("HT", "H transposed", sizes["HT"], rect, (LOAD, GEMM2))
            kb.sram_buffer("Yb", "Y", sizes["Yb"], rect, (GEMM2, STORE))
            kb.sram_buffer("W1s", "W1", nc1 * t1, rect, (LOAD, END), "high")
            kb.sram_buffer("W2s", "W2", nc2 * t2, rect, (LOAD, END), "high")
            self.at.update({k: (k, 0) for k in sizes})
            for (kind, j), tb in tiles:
                self.at[kind, j] = (f"{kind}s", j * tb)
        if self.stream:
            for kind, nt in (("W1", ws.s1 // C), ("W2", ws.s2 // C)):
                for j in range(SLOTS, nt):
                    self.at[kind, j] = self.at[kind, j % SLOTS]
        pad = 0 if self.blocked else 16 * R  # the row-major transpose reads past a row
        kb.sram_buffer("H", "H", mp_ * ws.s1 + pad, rect, (GEMM1, TRANS))
        kb.sram_buffer("T", "H slice transposed", ws.mtp * ws.s1 * R, rect, (TRANS, END))
        self.sel, self.ident = transpose_buffers(kb, rect, (TRANS, TRANS), blocked=self.blocked)

    def bank_plan(self, sizes: dict, tiles: list) -> dict | None:
        """{bank buffer: [(logical buffer, bytes)]} for the three top banks, or None
        when the arch has fewer than 4 banks or the parts do not fit."""
        a = self.arch
        w1 = [t for t in tiles if t[0][0] == "W1"]
        w2 = [t for t in tiles if t[0][0] == "W2"]
        # names sort in placement order: "Wbank_a" ends up in the top bank
        plan = {
            "Wbank_a": [*w1[0::2], ("HT", sizes["HT"])],
            "Wbank_b": [*w1[1::2], ("Yb", sizes["Yb"])],
            "Wbank_c": [*w2[0::2], ("Xs", sizes["Xs"])],
        }
        fits = all(sum(n for _, n in parts) <= a.region_bytes for parts in plan.values())
        rest = sum(n for _, n in w2[1::2]) + 2 * sizes["Yb"] + 8 * 1024  # H, T, params, desc
        if a.regions < 4 or not fits or rest > (a.regions - 3) * a.region_bytes:
            return None
        return plan

    # -- per-PE program -----------------------------------------------------------------
    def x_reader(self, trect) -> tuple[int, int]:
        """The PE that reads a token group's X band: an end of its row (away from the
        weight readers' corner where it can be), so its multicast is one rectangle."""
        return (trect[0], trect[1]) if trect[1] % 2 else (trect[2], trect[1])

    def w_reader(self, wrect) -> tuple[int, int]:
        """The PE that reads a weight group's W1 and W2 tiles: the top of its column."""
        return (wrect[0], wrect[1])

    def split(self, nbytes: int) -> list[tuple[int, int]]:
        """(offset, bytes) pieces of at most ``self.piece`` bytes (whole words)."""
        n = -(-nbytes // self.piece)
        cuts = [ceil_to(nbytes * p // n, 16) for p in range(n)] + [nbytes]
        return [(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]

    def pieces(self, pe) -> list[Piece]:
        """The reads of PE ``pe`` in issue order, each forwarded on arrival."""
        ws, R, C = self.ws, self.R, self.C
        w, tg = ws.groups_of(pe)
        trect, wrect = ws.token_rect(pe), ws.weight_rect(pe)
        out: list[Piece] = []
        if pe == self.x_reader(trect) and len(members(trect)) > 1:
            band = ws.mtp * ws.dp * R
            xb, xo = self.at["Xs"]
            for off, n in self.split(band):
                out.append(Piece(xb, "X", xo + off, tg * band + off, n, others(trect, pe), SX,
                                  ("X", 0)))  # fmt: skip
        elif len(members(trect)) == 1:  # a token group of one PE reads its own band
            band = ws.mtp * ws.dp * R
            xb, xo = self.at["Xs"]
            for off, n in self.split(band):
                out.append(Piece(xb, "X", xo + off, tg * band + off, n, [], SX, ("X", 0)))
        if pe == self.w_reader(wrect):
            for kind, k, nt, sem in (("W1", ws.dp, ws.s1 // C, SW1),
                                     ("W2", ws.hp, ws.s2 // C, SW2)):  # fmt: skip
                tile = k * C
                for j in range(nt):
                    buf, loc = self.at[kind, j]
                    gate = (kind, j) if self.stream and j >= SLOTS else None
                    for off, n in self.split(tile):
                        out.append(Piece(buf, kind, loc + off, (w * nt + j) * tile + off, n,
                                          others(wrect, pe), sem, (kind, j), gate))  # fmt: skip
        return out

    def program(self, pe) -> None:
        """GEMM1 by column tiles of W1 (each in chunks of ``chunk`` m tiles), transpose,
        all-gather of H, GEMM2 by column tiles of W2, the Y store per column tile.  A
        reader handles the next of its reads after every chunk (so the DRAM sees a few
        requests of every reader at a time) and, before a column tile, all reads of
        that tile; the others wait for the tile's pieces just before they need it."""
        ws, R, C, kb = self.ws, self.R, self.C, self.kb
        w, tg = ws.groups_of(pe)
        tag = f"{pe[0]}_{pe[1]}"
        nc1, nc2, mp_ = ws.s1 // C, ws.s2 // C, ws.mtp * R
        trect, wrect = ws.token_rect(pe), ws.weight_rect(pe)
        io = Reads(kb, pe, self.pieces(pe), self.depth)
        reader = pe == self.w_reader(wrect)
        wshared = len(members(wrect)) > 1
        chunks = [(i, min(self.chunk, ws.mtp - i)) for i in range(0, ws.mtp, self.chunk)]

        io.issue()
        io.until(("X", 0))
        if len(members(trect)) > 1 and pe != self.x_reader(trect):
            n = len(self.split(ws.mtp * ws.dp * R))
            kb.add(pe, mp.WaitOp, sem=SX, count=n)
        for j in range(nc1):
            io.until(("W1", j))
            if wshared and not reader:
                kb.add(pe, mp.WaitOp, sem=SW1, count=len(self.split(ws.dp * C)))
            for i, n in chunks:
                self.gemm1(pe, tag, j, i, n)
                io.step(self.steps)
            self.release(pe, io, "W1", j, nc1)
        if self.blocked:
            kb.add(pe, TransposeBlockedOp, src="@H", dst="@T", sel=f"@{self.sel}",
                   params=f"@{self.ident}", tiles=[ws.mtp, nc1])  # fmt: skip
        else:
            kb.add(pe, mp.TransposeOp, src="@H", dst="@T", sel=f"@{self.sel}",
                   params=f"@{self.ident}", rows=mp_, cols=ws.s1, ldc=ws.s1)  # fmt: skip
        run = ws.s1 * R
        hb, ho = self.at["HT"]
        yb, yo = self.at["Yb"]
        kb.add(pe, mp.TransferOp, local="@T", remote=f"@{hb}", remote_offset=ho + w * run,
               count=[run // 16, ws.mtp, 1], local_strides=[run, 0],
               remote_strides=[ws.hp * R, 0], sem=SH, read=0, signal=1, to=trect)  # fmt: skip
        io.step(self.gather_steps)
        block = mp_ * C  # one column tile of Y (blocked output)
        base = (tg * ws.wgroups + w) * nc2 * block

        def store(first: int, last: int) -> None:  # Y column tiles [first, last)
            kb.add(pe, mp.TransferOp, local=f"@{yb}", remote="@Y",
                   local_offset=yo + first * block, remote_offset=base + first * block,
                   count=words_rows((last - first) * block), sem=0, read=0)  # fmt: skip

        # a DRAM write waits for every queued read (cosim/dram.py), which empties the
        # DRAM pipeline: Y leaves after the reads - the column tiles but the last one
        # at ``y_early`` (-1: before the last column tile, k: before its k-th task),
        # the last one at the end (all at the end when ``y_early`` is None)
        early = self.y_early if nc2 > 1 else None
        for j in range(nc2):
            if j == nc2 - 1 and early == -1:
                store(0, nc2 - 1)
            io.until(("W2", j))
            if j == 0:
                kb.add(pe, mp.WaitOp, sem=SH, count=len(members(trect)))
            if wshared and not reader:
                kb.add(pe, mp.WaitOp, sem=SW2, count=len(self.split(ws.hp * C)))
            wb, wo = self.at["W2", j]
            for c, (i, n) in enumerate(chunks):
                if j == nc2 - 1 and early is not None and c == min(early, len(chunks) - 1):
                    store(0, nc2 - 1)
                kb.add(pe, MatmulWinOp, a=f"@{hb}", b=f"@{wb}", c=f"@{yb}",
                       params=f"@P2_{tag}", tiles=[n, 1], k=ws.hp, ldc=C, col_step=block,
                       param_stride=self.q, a_offset=ho + i * ws.hp * R, b_offset=wo,
                       c_offset=yo + j * block + i * R * C, p_offset=j * self.q)  # fmt: skip
                io.step(self.steps)
            self.release(pe, io, "W2", j, nc2)
        store(0 if early is None else nc2 - 1, nc2)
        io.finish()

    def release(self, pe, io: Reads, kind: str, j: int, nt: int) -> None:
        """Streamed weights: PE ``pe`` is done with ``kind``'s tile j.  If a later tile
        reuses its slot, the column reader opens that tile's reads once every other
        member has sent its credit; a member sends one.  Slot s's credits count on
        SC + s alone: a member can be a tile ahead only in the other slot."""
        if not self.stream or j + SLOTS >= nt:
            return
        wrect = self.ws.weight_rect(pe)
        reader = self.w_reader(wrect)
        n = len(members(wrect)) - 1
        if pe == reader:
            io.open((kind, j + SLOTS), SC + j % SLOTS, n)
        else:
            self.kb.add(pe, mp.SignalOp, sem=SC + j % SLOTS, count=1, to=[*reader, *reader])

    def gemm1(self, pe, tag: str, j: int, i: int, n: int) -> None:
        """m tiles [i, i + n) of H's column tile j: blocked tiles for transpose_blocked,
        else row-major rows of ``s1`` bytes."""
        ws, R, C, kb = self.ws, self.R, self.C, self.kb
        wb, wo = self.at["W1", j]
        xb, xo = self.at["Xs"]
        if self.blocked:
            tile = ws.mtp * R * C
            c_off, ldc = j * tile + i * R * C, C
        else:
            tile, c_off, ldc = C, i * R * ws.s1 + j * C, ws.s1
        kb.add(pe, MatmulWinOp, a=f"@{xb}", b=f"@{wb}", c="@H", params=f"@P1_{tag}",
               tiles=[n, 1], k=ws.dp, ldc=ldc, col_step=tile, param_stride=self.q,
               a_offset=xo + i * ws.dp * R, b_offset=wo, c_offset=c_off,
               p_offset=j * self.q)  # fmt: skip

    def output(self) -> None:
        ws, mp_ = self.ws, self.ws.mtp * self.R
        m, n = self.t["x"].shape[0], self.t["w2"].shape[1]

        def unpack(raw: dict[str, bytes]) -> np.ndarray:
            nc2 = ws.s2 // self.C
            blocks = np.frombuffer(raw["Y"], np.int8)[: len(self.pes) * mp_ * ws.s2]
            blocks = blocks.reshape(ws.tgroups, ws.wgroups * nc2, mp_, self.C)
            return blocks.transpose(0, 2, 1, 3).reshape(ws.tgroups * mp_, ws.op)[:m, :n]

        self.kb.outputs["Y"] = unpack


# (m tiles per MATMUL task, bytes per read), finest first: a coarser grain when the
# finer one's program does not fit the instruction memory or its DMA descriptors
# (one per read and per forward) do not fit SRAM
GRAINS = ((1, 1024), (2, 2048), (4, 4096), (1 << 30, 1 << 30))


def map_mlp_weights(arch, t: dict[str, np.ndarray], name: str, ws: WeightSplit, **opts) -> Mapped:
    """The weight-split MLP block for layout ``ws`` (inputs as mlp.mlp_inputs), at the
    finest grain (:data:`GRAINS`) that fits SRAM (coarser pieces need fewer DMA
    descriptors) and whose programs fit ``arch.imem_words``; the finest grain's
    AllocError when none fits SRAM, else ImemError when none fits.  ``opts`` (chunk,
    piece, depth, ...) fix the grain instead."""
    if "chunk" in opts or "piece" in opts:
        return _map(arch, t, name, ws, **opts)
    longest, alloc_err = 0, None
    for chunk, piece in GRAINS:
        try:
            mapped = _map(arch, t, name, ws, chunk=chunk, piece=piece, **opts)
        except AllocError as exc:  # coarser pieces need fewer DMA descriptors
            alloc_err = alloc_err or exc
            continue
        longest = _longest_program(arch, mapped)
        if longest <= arch.imem_words:
            return mapped
    if longest == 0:
        raise alloc_err
    raise ImemError(
        f"mlp {name!r}: the weight split's longest PE program has {longest} instructions; "
        f"instruction memory holds {arch.imem_words}"
    )


# instructions a task op lowers to, at most (lower.py, chain_ops.py: LIs, stride slots
# and their clearing, loops, QLOAD, MATMUL; a transfer is one DMA, a wait one WAIT)
_AT_MOST = {"mapping.matmul_win": 24, "mapping.transpose_blocked": 64, "mapping.transpose": 96}


def _longest_program(arch, mapped: Mapped) -> int:
    """Instructions of the longest PE program, or an upper bound of it when that bound
    fits the instruction memory; otherwise the two PEs with the largest bound are
    lowered (emit_programs checks every PE again)."""
    bound = {
        pe: 1 + sum(_AT_MOST.get(op.name, 2) for op in pe.body.ops) for pe in mapped.kernel.pes()
    }
    if max(bound.values()) <= arch.imem_words:
        return max(bound.values())
    roomy = arch.replace(imem_words=1 << 16)
    store = dict(mapped.store)
    top = sorted(bound, key=lambda pe: -bound[pe])[:2]
    return max(len(lower_pe(roomy, mapped.kernel, store, pe).instructions()) for pe in top)


def _map(arch, t: dict[str, np.ndarray], name: str, ws: WeightSplit, **opts) -> Mapped:
    b = _Builder(arch, t, name, ws, **opts)
    b.tensors()
    b.buffers()
    for pe in b.pes:
        b.program(pe)
    b.output()
    plan = {
        "R": b.R,
        "C": b.C,
        "grid": [ws.gc, ws.gr],
        "tiles_per_pe": ws.mtp,
        "pes": len(b.pes),
        "split": "weights",
        "groups": {"weights": ws.wgroups, "tokens": ws.tgroups},
        "slices": {"hidden": ws.s1, "out": ws.s2},
        "padded": [ws.dp, ws.hp, ws.op],
        "transpose": "blocked" if b.blocked else "row-major",
        "grain": {"m_tiles": min(b.chunk, ws.mtp), "read_bytes": b.piece, "depth": b.depth},
        "banked": b.at["Xs"][0] != "Xs",
        "weights": f"streamed ({SLOTS} slots)" if b.stream else "resident",
        # all of X and the first W1 column tile of every weight group precede the
        # last PE's first MATMUL
        "fill_bytes": ws.tgroups * ws.mtp * ws.dp * b.R + ws.wgroups * ws.dp * b.C,
        # Measured on the RTL (small, 64 x 256 -> 256 -> 256): with nowait MATMULs the
        # column readers issue their next weight read and multicast while the MATMUL
        # still streams, and the multicast into the followers' streamed banks stalls
        # the tree: 14,759 cycles against 14,016 blocking (the performance model,
        # which delays only the stalled branch, predicts the opposite: 12,597 vs
        # 13,221). VOPs and QLOADs stay nowait: 13,951.
        "blocking_units": ["MATMUL"],
    }
    return b.kb.finish(plan)
