"""MLP block with the weights split over the PEs (mlp.py's ``split = "weights"``).

Y = requant(relu(requant(X @ W1)) @ W2) on a ``gc x gr`` rectangle of PEs.  Each PE
owns a *weight group* ``w`` (a slice of W1's and of W2's columns) and a *token
group* ``t`` (a band of X's rows).  Two layouts (``WeightSplit.tgroups``):

* ``1``: every PE is its own weight group (``gc*gr`` of them) and sees all tokens:
  X goes to every PE, each W1 / W2 column slice to one PE only;
* ``gr``: weight group = PE column, token group = PE row (a 2-D tiling of both
  GEMMs): X bands travel along the PE rows, W1 / W2 column slices down the PE
  columns.

Per PE, in program order:

1. DRAM reads of its share of the operands it forwards: X m-tiles of its token
   band, W1 / W2 column tiles of its weight group (shares split evenly among the
   PEs that need the operand); the reads complete in order on semaphore ``RD``.
2. Each share, once read, is multicast (RECT write with signal, the sender
   included, so every copy lands at the same offset and every PE counts the same
   arrivals) to the PEs sharing it: X on ``SX``, W1 on ``SW1``, W2 on ``SW2``.  A
   slice only one PE needs is read straight into place.
3. GEMM1 ``H_w = relu(requant(X_t @ W1_w))`` with blocked output tiles (chain_ops
   ``matmul_win``; W1 columns permuted inside C-chunks, layout.chunk_perm), then the
   one-MATMUL transpose (``transpose_blocked``) into the A-operand layout of its
   column slice, ``[mtp][s1][R]``; row-major GEMM1 + ``mapping.transpose`` where the
   blocked form does not apply.
4. All-gather of H within the token group: one strided RECT write puts the slice at
   K offset ``w*s1`` of every group member's ``HT`` (``[mtp][hp][R]``: runs of
   ``s1*R`` bytes, row stride ``hp*R``), semaphore ``SH``.
5. GEMM2 ``Y_tw = requant(HT_t @ W2_w)`` and the store of the ``mp x s2`` block.

Buffers that are written remotely are live from the start and buffers multicast
from stay live to the end (chain.py explains why).  mlp.py chooses between this and
the token split (:func:`split_cost`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.backend.builder import KernelBuilder, Mapped
from compiler.backend.chain import END, transpose_buffers
from compiler.backend.chain_ops import MatmulWinOp, TransposeBlockedOp
from compiler.backend.gemm import words_rows
from compiler.backend.groups import pes_of
from compiler.backend.layout import ceil_to, chunk_perm, pack_a, pack_b, param_blocks
from compiler.dialects import mapping as mp
from hw.isa import qparam_layout

__all__ = ["WeightSplit", "map_mlp_weights", "split_layouts"]

LOAD, GEMM1, TRANS, GEMM2, STORE = range(5)
RD, SX, SW1, SW2, SH = 1, 2, 3, 4, 5  # semaphores


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
    """The weight-split layouts that give every PE at least one tile of each GEMM."""
    R, C = arch.mac_rows, arch.mac_cols
    unit = math.lcm(16, C)  # H slices: whole C tiles and whole 16-row K steps of GEMM2
    out = []
    for gc, gr in {(arch.mesh_cols, arch.mesh_rows)}:
        for tg in sorted({1, gr}):
            wg = gc * gr // tg
            mt = -(-m // R)
            if mt < tg or -(-hidden // C) < wg or -(-n // C) < wg:
                continue
            mtp = -(-mt // tg)
            if C < 16 and 16 % C == 0:  # transpose_blocked reads 16/C m tiles at a time
                mtp = ceil_to(mtp, 16 // C)
            s1 = unit * -(-hidden // (wg * unit))
            s2 = C * -(-n // (wg * C))
            out.append(WeightSplit(gc, gr, tg, mtp, s1, s2, ceil_to(d, 16)))
    return out


def _pad(v, n: int) -> np.ndarray:
    return np.pad(np.asarray(v, np.int64), (0, n - len(v)))


def _others(rect: list[int], pe) -> list[list[int]]:
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


def _members(rect: list[int]) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = rect
    return [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


@dataclass
class _Piece:
    """One DRAM read of a stream: ``nbytes`` from ``dram`` + ``remote`` into ``buf`` +
    ``local``, then multicast (write with signal on ``sem``) to the rectangles ``to``."""

    buf: str
    dram: str
    local: int
    remote: int
    nbytes: int
    to: list
    sem: int


class _Reads:
    """The reads of one PE: issued per stream with at most ``depth`` in flight; they
    complete in issue order (one DRAM, in-order responses), so handling a piece waits
    for - and forwards - every older read first."""

    def __init__(self, kb: KernelBuilder, pe, streams: dict[str, list[_Piece]], depth: int):
        self.kb, self.pe, self.streams = kb, pe, streams
        self.depth = depth if isinstance(depth, dict) else {k: depth for k in streams}
        self.issued = {k: 0 for k in streams}
        self.handled = {k: 0 for k in streams}
        self.queue: list[tuple[str, _Piece]] = []  # issued, not yet waited for

    def issue(self, kind: str) -> None:
        pieces = self.streams[kind]
        while self.issued[kind] < len(pieces) and self.issued[kind] - self.handled[kind] < self.depth[kind]:
            p = pieces[self.issued[kind]]
            self.kb.add(self.pe, mp.TransferOp, local=f"@{p.buf}", remote=f"@{p.dram}",
                        local_offset=p.local, remote_offset=p.remote,
                        count=words_rows(p.nbytes), sem=RD, read=1)  # fmt: skip
            self.issued[kind] += 1
            self.queue.append((kind, p))

    def handle(self, kind: str, upto: int) -> None:
        """Wait for and forward the pieces of ``kind`` before index ``upto``."""
        while self.handled[kind] < min(upto, len(self.streams[kind])):
            if self.issued[kind] <= self.handled[kind]:
                self.issue(kind)
            k, p = self.queue.pop(0)
            self.kb.add(self.pe, mp.WaitOp, sem=RD, count=1)
            self.handled[k] += 1
            self.issue(k)
            for to in p.to:
                self.kb.add(self.pe, mp.TransferOp, local=f"@{p.buf}", remote=f"@{p.buf}",
                            local_offset=p.local, remote_offset=p.local,
                            count=words_rows(p.nbytes), sem=p.sem, read=0, signal=1,
                            to=to)  # fmt: skip

    def finish(self) -> None:
        for kind, pieces in self.streams.items():
            self.handle(kind, len(pieces))


class _Builder:
    def __init__(self, arch, t: dict, name: str, ws: WeightSplit, depth: int = 1, w2_start=None, x_piece: int = 4096, banked: bool = False, **opts):
        self.arch, self.t, self.ws = arch, t, ws
        self.R, self.C = arch.mac_rows, arch.mac_cols
        self.q = qparam_layout(self.C)["total"][1]
        self.kb = KernelBuilder(arch, name)
        self.pes = pes_of(ws.gc, ws.gr)
        self.rect = (0, 0, ws.gc - 1, ws.gr - 1)
        C = self.C
        self.blocked = C <= 16 and 16 % C == 0 and ws.mtp % (16 // C) == 0
        self.depth = depth  # reads in flight per stream
        self.w2_start = ws.s1 // C - 1 if w2_start is None else w2_start
        self.x_piece = x_piece  # bytes of X per read (whole m tiles, at least one)
        self.opts = opts
        self.banked = banked

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
                kb.sram_buffer(name, "W1/W2 tiles, X, H^T, Y", self.arch.bank_bytes, rect,
                               (LOAD, END), "high")  # fmt: skip
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
        fits = all(sum(n for _, n in parts) <= a.bank_bytes for parts in plan.values())
        rest = sum(n for _, n in w2[1::2]) + 2 * sizes["Yb"] + 8 * 1024  # H, T, params, desc
        if a.sram_banks < 4 or not fits or rest > (a.sram_banks - 3) * a.bank_bytes:
            return None
        return plan

    # -- per-PE program -----------------------------------------------------------------
    def x_reader(self, trect) -> tuple[int, int]:
        """The PE that reads a token group's X band: an end of its row (away from the
        weight readers' corner where it can be), so its multicast is one rectangle."""
        return (trect[0], trect[1]) if trect[1] % 2 else (trect[2], trect[1])

    def w_reader(self, wrect, kind: str) -> tuple[int, int]:
        """W1 is read by the top of the weight group's column, W2 by its bottom."""
        if kind == "W1" or self.opts.get("w2_top"):
            return (wrect[0], wrect[1])
        return (wrect[2], wrect[3])

    def pieces(self, pe) -> dict[str, list[_Piece]]:
        """The reads of PE ``pe`` per stream (X, W1, W2), each forwarded on arrival."""
        ws, R, C = self.ws, self.R, self.C
        w, tg = ws.groups_of(pe)
        trect, wrect = ws.token_rect(pe), ws.weight_rect(pe)
        out: dict[str, list[_Piece]] = {"X": [], "W1": [], "W2": []}
        if pe == self.x_reader(trect):
            x_tile = ws.dp * R
            per = max(1, self.x_piece // x_tile)  # m tiles per piece
            cast = _others(trect, pe)
            for i0 in range(0, ws.mtp, per):
                n = min(per, ws.mtp - i0) * x_tile
                xb, xo = self.at["Xs"]
                out["X"].append(_Piece(xb, "X", xo + i0 * x_tile, (tg * ws.mtp + i0) * x_tile, n,
                                       cast, SX))  # fmt: skip
        for kind, k, nt, sem in (("W1", ws.dp, ws.s1 // C, SW1), ("W2", ws.hp, ws.s2 // C, SW2)):
            if pe == self.w_reader(wrect, kind):
                tile = k * C
                for j in range(nt):
                    buf, off = self.at[kind, j]
                    out[kind].append(_Piece(buf, kind, off, (w * nt + j) * tile, tile,
                                            _others(wrect, pe), sem))  # fmt: skip
        return out

    def program(self, pe) -> None:
        """GEMM1 by column tiles of W1, transpose, all-gather of H, GEMM2 by column tiles
        of W2; the reads of the PE's streams are issued (at most ``depth`` in flight per
        stream) and forwarded between those steps, and the PE waits for the pieces that
        others forward just before it needs them."""
        ws, R, C, kb = self.ws, self.R, self.C, self.kb
        w, tg = ws.groups_of(pe)
        tag = f"{pe[0]}_{pe[1]}"
        nc1, nc2, mp_ = ws.s1 // C, ws.s2 // C, ws.mtp * R
        trect, wrect = ws.token_rect(pe), ws.weight_rect(pe)
        io = _Reads(kb, pe, self.pieces(pe), self.depth)

        io.issue("X")
        if self.opts.get("w1_early"):
            io.issue("W1")
        io.handle("X", len(io.streams["X"]))
        if len(_members(trect)) > 1 and pe != self.x_reader(trect):
            kb.add(pe, mp.WaitOp, sem=SX, count=len(self.pieces(self.x_reader(trect))["X"]))
        io.issue("W1")
        w2_start = min(self.w2_start, nc1 - 1)
        for j in range(nc1):
            io.handle("W1", j + 1)
            if j == w2_start:  # after the last W1 read this PE issues before window j
                io.issue("W2")
            if len(_members(wrect)) > 1 and pe != self.w_reader(wrect, "W1"):
                kb.add(pe, mp.WaitOp, sem=SW1, count=1)
            self.gemm1(pe, tag, j)
        if self.opts.get("stop") == "gemm1":
            return
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
        block = mp_ * C  # one column tile of Y (blocked output)
        base = (tg * ws.wgroups + w) * nc2 * block
        for j in range(nc2):
            io.handle("W2", j + 1)
            if j == 0:
                kb.add(pe, mp.WaitOp, sem=SH, count=len(_members(trect)))
                if self.opts.get("stop") == "gather":
                    return
            if len(_members(wrect)) > 1 and pe != self.w_reader(wrect, "W2"):
                kb.add(pe, mp.WaitOp, sem=SW2, count=1)
            wb, wo = self.at["W2", j]
            kb.add(pe, MatmulWinOp, a=f"@{hb}", b=f"@{wb}", c=f"@{yb}", params=f"@P2_{tag}",
                   tiles=[ws.mtp, 1], k=ws.hp, ldc=C, col_step=block, param_stride=self.q,
                   a_offset=ho, b_offset=wo, c_offset=yo + j * block,
                   p_offset=j * self.q)  # fmt: skip
            kb.add(pe, mp.TransferOp, local=f"@{yb}", remote="@Y", local_offset=yo + j * block,
                   remote_offset=base + j * block, count=words_rows(block), sem=0,
                   read=0)  # fmt: skip
        io.finish()

    def gemm1(self, pe, tag: str, j: int) -> None:
        ws, R, C, kb = self.ws, self.R, self.C, self.kb
        wb, wo = self.at["W1", j]
        xb, xo = self.at["Xs"]
        if self.blocked:
            tile = ws.mtp * R * C
            kb.add(pe, MatmulWinOp, a=f"@{xb}", b=f"@{wb}", c="@H", params=f"@P1_{tag}",
                   tiles=[ws.mtp, 1], k=ws.dp, ldc=C, col_step=tile, param_stride=self.q,
                   a_offset=xo, b_offset=wo, c_offset=j * tile, p_offset=j * self.q)  # fmt: skip
        else:
            kb.add(pe, MatmulWinOp, a=f"@{xb}", b=f"@{wb}", c="@H", params=f"@P1_{tag}",
                   tiles=[ws.mtp, 1], k=ws.dp, ldc=ws.s1, col_step=C, param_stride=self.q,
                   a_offset=xo, b_offset=wo, c_offset=j * C, p_offset=j * self.q)  # fmt: skip

    def output(self) -> None:
        ws, mp_ = self.ws, self.ws.mtp * self.R
        m, n = self.t["x"].shape[0], self.t["w2"].shape[1]

        def unpack(raw: dict[str, bytes]) -> np.ndarray:
            nc2 = ws.s2 // self.C
            blocks = np.frombuffer(raw["Y"], np.int8)[: len(self.pes) * mp_ * ws.s2]
            blocks = blocks.reshape(ws.tgroups, ws.wgroups * nc2, mp_, self.C)
            return blocks.transpose(0, 2, 1, 3).reshape(ws.tgroups * mp_, ws.op)[:m, :n]

        self.kb.outputs["Y"] = unpack


def map_mlp_weights(
    arch, t: dict[str, np.ndarray], name: str, ws: WeightSplit, depth: int = 1, w2_start=None, x_piece: int = 4096, banked: bool = False, **opts
) -> Mapped:
    """The weight-split MLP block for layout ``ws`` (inputs as mlp.mlp_inputs)."""
    b = _Builder(arch, t, name, ws, depth, w2_start, x_piece, banked, **opts)
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
    }
    return b.kb.finish(plan)
