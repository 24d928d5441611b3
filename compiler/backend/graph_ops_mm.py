"""MAC-array lowerings of the whole-graph mapper: ``qnt.matmul`` and ``qnt.conv``.

Orientation: output channels on the MAC rows (R), tokens on the MAC columns (C).
``A`` tiles are the packed weights ``[Np/R][Kp][R]`` (host layout, like
layout.pack_a of the GEMM planner), ``B`` tiles the tokens' K values ``[T/C][Kp][C]``
gathered from the token-major input (a transpose; for conv the im2col gather, whose
padding holds the input zero point).  MATMUL writes int32 accumulators (out32), one
row per channel; the output stage runs on the vector unit per channel row:
``ADD bias'`` then ``REQ`` with the channel's MULT/SHIFT (``numerics.output_stage``
= ``sat32(acc + bias)`` then requantize, which is what ADD and REQ compute), with
``bias' = bias - zp_in * colsum(W)`` (the MAC multiplies raw codes).  int8 and int16
results take the same path.  A last gather turns channel-major back into the
token-major output.

An int16 activation operand (``mac-input-bits=16``) is split into int8 halves on the
vector unit (``gather_b``) and multiplied twice (``mac2``).

Activation x activation products (both operands produced on the chip, batched over
leading axes) correct the zero points at run time:
``sum (a - za)(b - zb) = sum ab - zb * rowsum(a) - za * colsum(b) + K za zb``; the
row and column sums come from the MAC array itself (a ones operand).
"""

from __future__ import annotations

import math

import numpy as np

from compiler import kernels
from compiler.backend.graph_ops import Lowering, _out_range, _zp
from compiler.backend.graph_prog import ceil16
from compiler.backend.layout import pack_a
from compiler.dialects.base import int_attr, ints, shape_of, str_attr
from hw.isa import Op

__all__ = ["ConstMatmul", "act_matmul"]


def _pack_a(w2: np.ndarray, R: int, kp: int, np_: int) -> np.ndarray:
    """[Np/R][Kp][R] int8 A tiles of a K x N weight matrix: the GEMM planner's A
    layout (layout.pack_a) of W^T, channels as the MAC rows."""
    return pack_a(np.ascontiguousarray(w2.T), np_, kp, R)


def mac_tiles(prog, a: int, b: int, acc: int, ct: int, tt: int, kp: int, ldc: int) -> None:
    """MATMUL out32 of ``ct`` channel tiles x ``tt`` token tiles (two hardware loops)."""
    R, C = prog.arch.mac_rows, prog.arch.mac_cols
    prog.li(1, a)
    prog.li(2, b)
    prog.li(3, acc)
    saved, _ = prog.capture()
    inner, _ = prog.capture()
    prog.emit(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=kp // 16, out32=1, acc=0, noout=0, ldc=ldc)
    prog.addi(2, 2, kp * C)
    prog.addi(3, 3, 4 * C)
    body = prog.release(inner)
    prog.loop(tt, body)
    prog.addi(2, 2, -tt * kp * C)
    prog.addi(3, 3, R * ldc - tt * 4 * C)
    prog.addi(1, 1, kp * R)
    prog.loop(ct, prog.release(saved))


def gather_b(ctx, prog, m: np.ndarray, x, pad: int, wide: bool) -> tuple[int, int | None]:
    """The MAC operand gathered by element map ``m`` from chip tensor ``x``; for an
    int16 ``x`` two int8 halves ``(hi, lo)`` with ``x = 256 * hi + lo + 128`` (hi =
    floor(x / 256) from VOP SRA, which rounds, and one correction step; checked for
    every int16 value), so an int16 x int8 product is two int8 MATMULs."""
    if not wide:
        return ctx.gather(prog, m, 1, pad, src=x), None
    b16 = ctx.gather(prog, m, 2, pad, src=x)
    n = ceil16(len(m))
    hi, lo = prog.alloc(n), prog.alloc(n)
    mark = prog.top
    x32, h, lw, e = (prog.alloc(4 * n) for _ in range(4))
    prog.vop("mov", x32, b16, n, 2, 4)
    prog.vop("sub", h, x32, n, scalar=128)
    prog.vop("sra", h, h, n, scalar=8)
    prog.vop("shl", lw, h, n, scalar=8)
    prog.vop("sub", lw, x32, n, b=lw)
    prog.vop("sub", e, lw, n, scalar=255)  # 1 where SRA rounded up (lw = 256)
    prog.vop("max", e, e, n, scalar=0)
    prog.vop("add", h, h, n, b=e)
    prog.vop("shl", e, e, n, scalar=8)
    prog.vop("sub", lw, lw, n, b=e)
    prog.vop("mov", hi, h, n, 4, 1)
    prog.vop("sub", lo, lw, n, 4, 1, scalar=128)
    prog.top = mark
    return hi, lo


def mac2(prog, a, b, b_lo, acc, acc2, ct, tt, kp, ldc) -> None:
    """mac_tiles; with an int16 operand split in halves: acc = 256 * acc_hi + acc_lo."""
    mac_tiles(prog, a, b, acc, ct, tt, kp, ldc)
    if b_lo is None:
        return
    mac_tiles(prog, a, b_lo, acc2, ct, tt, kp, ldc)
    n = ct * prog.arch.mac_rows * ldc // 4
    prog.vop("shl", acc, acc, n, scalar=8)
    prog.vop("add", acc, acc, n, b=acc2)


def output_stage(prog, acc: int, params: int, n: int, tokens: int, ldc: int, es_out, rng, y, tmp):
    """Per channel row: ADD bias' (LW), REQ with the row's MULT and SHIFT (LW); the
    rows go to ``y`` with a stride of ``ceil16(tokens)`` elements."""
    zp, lo, hi = rng
    row = ceil16(tokens) * es_out  # VOPs move whole 16-element groups
    prog.req_cfg(None, 0, zp, lo, hi)
    prog.li(10, acc)
    prog.li(11, params)
    prog.li(12, y)
    saved, _ = prog.capture()
    prog.emit_lw(5, 11, 0)
    prog.vop("add", tmp, "x10", tokens, breg=5)
    prog.emit_lw(6, 11, 4)
    prog.vcfg("mult", 0, reg=6)
    prog.emit_lw(7, 11, 8)
    prog.vcfg("shift", 0, reg=7)
    prog.vop("req", "x12", tmp, tokens, 4, es_out)
    prog.addi(10, 10, ldc)
    prog.addi(11, 11, 16)
    prog.addi(12, 12, row)
    prog.loop(n, prog.release(saved))


class ConstMatmul(Lowering):
    min_elems = 64
    code_words = 150

    def check(self) -> None:
        op, arch = self.op, self.ctx.arch
        R, C = arch.mac_rows, arch.mac_cols
        x, w = op.operands[0], op.operands[1]
        if w.type.element_type.width.data != 8:
            raise self.unsupported(f"the MAC array takes int8; the weight is {w.type}")
        if x.type.element_type.width.data not in (8, 16):
            raise self.unsupported(f"the input must be int8 or int16, not {x.type}")
        self.wide = x.type.element_type.width.data == 16  # two int8 MATMULs
        if _zp(w) != 0:
            raise self.unsupported("weights with a non-zero zero point")
        if self.es_out not in (1, 2):
            raise self.unsupported(f"result type {self.out.type} is not int8/int16")
        wv = np.asarray(self.ctx.values[w]).astype(np.int64)
        zin = _zp(x)
        if op.name == "qnt.conv":
            if str_attr(op, "layout", "nchw") != "nhwc" or int_attr(op, "group", 1) != 1:
                raise self.unsupported("only nhwc convolutions with group 1 are lowered")
            kh, kw, cin, cout = wv.shape
            w2 = wv.reshape(kh * kw * cin, cout)
            n_, h, wd, _ = shape_of(x)
            idx = np.arange(n_ * h * wd * cin).reshape(n_, h, wd, cin).transpose(0, 3, 1, 2)
            win = kernels.windows(
                idx,
                [kh, kw],
                ints(op, "strides", [1, 1]),
                ints(op, "pads", [0] * 4),
                ints(op, "dilations", [1, 1]),
                -1,
            )  # N, Cin, OH, OW, KH, KW
            cols = win.transpose(0, 2, 3, 4, 5, 1)
            self.im2col = cols.reshape(-1, kh * kw * cin)
        else:
            if wv.ndim != 2:
                raise self.unsupported(f"weights must be 2-D, not {list(wv.shape)}")
            w2 = wv
            k = w2.shape[0]
            m = math.prod(shape_of(x)) // k
            self.im2col = np.arange(m * k).reshape(m, k)
        self.m, self.k = self.im2col.shape
        self.n = w2.shape[1]
        self.kp, self.np_ = ceil16(self.k), -(-self.n // R) * R
        self.macs = self.m * self.k * self.n
        vals = [np.asarray(self.ctx.values[v]).astype(np.int64) for v in op.operands[2:5]]
        bias = vals[0] - (zin - (128 if self.wide else 0)) * w2.sum(axis=0)
        if np.abs(bias).max(initial=0) >= 2**31:
            raise self.unsupported("the bias with the input zero point folded in overflows int32")
        params = np.zeros((self.n, 4), "<i4")
        params[:, 0] = bias
        params[:, 1] = np.resize(vals[1], self.n)
        params[:, 2] = np.resize(vals[2], self.n)
        self.params = params.tobytes()
        self.a = _pack_a(w2.astype(np.int8), R, self.kp, self.np_).tobytes()
        tok = C
        while tok * self.n % 16:
            tok += C
        self.unit = tok * self.n
        self.zin = zin
        self.rng = _out_range(op)

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        C = ctx.arch.mac_cols
        t0, t1 = e0 // self.n, min(self.m, -(-e1 // self.n))
        tt = -(-(t1 - t0) // C)
        tokens = tt * C
        tok = t0 + np.arange(tokens)
        src = np.full((tt, self.kp, C), -1, np.int64)
        cols = np.full((tokens, self.kp), -1, np.int64)
        ok = tok < self.m
        cols[ok, : self.k] = self.im2col[tok[ok]]
        src[:] = cols.reshape(tt, C, self.kp).transpose(0, 2, 1)
        x = ctx.tensor(self.op.operands[0])
        b, b_lo = gather_b(ctx, prog, src.reshape(-1), x, self.zin, self.wide)
        p = ctx.load_bytes(
            prog, ctx.const("p", self.params, key=(self.index, "p")), len(self.params)
        )
        R, es = ctx.arch.mac_rows, self.es_out
        ldc, vt = 4 * tokens, ceil16(tokens)
        a_off = ctx.const("w", self.a, key=(self.index, "a"))
        rng = _out_range(self.op)
        tmp = prog.alloc(4 * vt)
        if self.n * es % 16 == 0:
            self.blocks(ctx, prog, (b, b_lo), p, a_off, t0, t1, tt, tmp)
            return
        y = prog.alloc(self.n * vt * es + 64)
        # channel blocks: weights and accumulators of as many channel tiles as fit
        free = prog.room - (e1 - e0) * es - ctx.arch.sram_bytes // 8
        wide = 2 if self.wide else 1
        ct = max(1, min(self.np_ // R, free // (R * (self.kp + wide * ldc))))
        a, acc = prog.alloc(ct * R * self.kp), prog.alloc(ct * R * ldc + 64)
        acc2 = prog.alloc(ct * R * ldc + 64) if self.wide else None
        for c0 in range(0, self.np_ // R, ct):
            c1 = min(self.np_ // R, c0 + ct)
            prog.wait(0, prog.dram_read(a, a_off + c0 * R * self.kp, (c1 - c0) * R * self.kp))
            mac2(prog, a, b, b_lo, acc, acc2, c1 - c0, tt, self.kp, ldc)
            n0, n1 = c0 * R, min(self.n, c1 * R)
            y0 = y + n0 * vt * es
            output_stage(prog, acc, p + 16 * n0, n1 - n0, tokens, ldc, es, rng, y0, tmp)
        e = np.arange(e0, e1)
        m = np.where(e < self.m * self.n, (e % self.n) * vt + (e // self.n - t0), -1)
        out = ctx.gather(prog, m, es, 0, src_addr=y, reserve=0)
        ctx.store(prog, ctx.tensor(self.out), e0, e1, out)

    def blocks(self, ctx, prog, b, p, a_off, t0, t1, tt, tmp) -> None:
        """Rows of N * es bytes are whole words: each channel block is finished
        (output stage, transpose gather) and written as a 2-D DMA of token rows, so
        no buffer holds all channels (wide layers)."""
        R, C, es = ctx.arch.mac_rows, ctx.arch.mac_cols, self.es_out
        tokens, nt = tt * C, t1 - t0
        b, b_lo = b
        ldc, vt = 4 * tokens, ceil16(tokens)
        step = math.lcm(R, 16 // es) // R  # channel tiles per block: whole words
        per_tile = R * (self.kp + (2 if self.wide else 1) * ldc + vt * es + 9 * nt * es) + 64
        free = prog.room - ctx.arch.sram_bytes // 8
        ct = max(step, min(self.np_ // R, free // per_tile) // step * step)
        a, acc = prog.alloc(ct * R * self.kp), prog.alloc(ct * R * ldc + 64)
        acc2 = prog.alloc(ct * R * ldc + 64) if self.wide else None
        yb = prog.alloc(ct * R * vt * es + 64)
        out = ctx.tensor(self.out)
        for c0 in range(0, self.np_ // R, ct):
            c1 = min(self.np_ // R, c0 + ct)
            prog.wait(0, prog.dram_read(a, a_off + c0 * R * self.kp, (c1 - c0) * R * self.kp))
            mac2(prog, a, b, b_lo, acc, acc2, c1 - c0, tt, self.kp, ldc)
            n0, n1 = c0 * R, min(self.n, c1 * R)
            output_stage(prog, acc, p + 16 * n0, n1 - n0, tokens, ldc, es, self.rng, yb, tmp)
            t, n = np.meshgrid(np.arange(nt), np.arange(n1 - n0), indexing="ij")
            mark = prog.top
            tb = ctx.gather(prog, (n * vt + t).reshape(-1), es, 0, src_addr=yb, reserve=0)
            prog.dram_write_rows(
                tb, out.offset + (t0 * self.n + n0) * es, (n1 - n0) * es, nt, self.n * es
            )
            prog.fence()  # the next block reuses tb
            prog.top = mark


class ActMatmul(Lowering):
    """``qnt.matmul`` of two chip tensors ``[..., M, K] x [..., K, N]`` (same batch)."""

    min_elems = 16

    def check(self) -> None:
        op, arch, ctx = self.op, self.ctx.arch, self.ctx
        R, C = arch.mac_rows, arch.mac_cols
        a, b = op.operands[0], op.operands[1]
        sa, sb = shape_of(a), shape_of(b)
        if b.type.element_type.width.data != 8:
            raise self.unsupported(f"the MAC array takes int8; the rhs is {b.type}")
        if a.type.element_type.width.data not in (8, 16):
            raise self.unsupported(f"the lhs must be int8 or int16, not {a.type}")
        self.wide = a.type.element_type.width.data == 16
        if len(sa) < 2 or tuple(sa[:-2]) != tuple(sb[:-2]) or len(sb) != len(sa):
            raise self.unsupported(f"batch shapes {list(sa)} x {list(sb)} must be equal")
        if self.es_out not in (1, 2):
            raise self.unsupported(f"result type {self.out.type} is not int8/int16")
        for v in op.operands[2:5]:
            if not ctx.tensor_is_const(v):
                raise self.unsupported("bias, multiplier and shift must be constants")
        self.batch = math.prod(sa[:-2])
        self.m, self.k = sa[-2:]
        self.n = sb[-1]
        self.kp, self.np_ = ceil16(self.k), -(-self.n // R) * R
        self.tt = -(-self.m // C)
        self.za, self.zb = _zp(a), _zp(b)
        self.macs = self.batch * self.m * self.k * self.n
        vals = [np.asarray(ctx.values[v]).astype(np.int64) for v in op.operands[2:5]]
        params = np.zeros((self.n, 4), "<i4")
        # wide lhs (a = 256 hi + lo + 128): the row sums over Kp also count the
        # padded k (lo = -128 there), hence 128 * Kp
        params[:, 0] = (
            vals[0] + self.k * self.za * self.zb - (128 * self.kp * self.zb if self.wide else 0)
        )
        params[:, 1] = np.resize(vals[1], self.n)
        params[:, 2] = np.resize(vals[2], self.n)
        self.params = params.tobytes()
        self.unit = math.lcm(16, self.m * self.n)
        self.code_words = 70 * (self.unit // (self.m * self.n)) + 50

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        R, C = ctx.arch.mac_rows, ctx.arch.mac_cols
        mn = self.m * self.n
        b0, b1 = e0 // mn, min(self.batch, -(-e1 // mn))
        items = b1 - b0
        tokens = self.tt * C
        # B operand (lhs tokens): [item][tile][Kp][C] <- a[item][token][k]
        t = np.arange(tokens)
        k = np.arange(self.kp)
        ok = (t[:, None] < self.m) & (k[None, :] < self.k)
        src = np.where(ok, t[:, None] * self.k + k[None, :], -1)  # token x Kp
        src = src.reshape(self.tt, C, self.kp).transpose(0, 2, 1)
        base = np.arange(b0, b1)[:, None, None, None] * self.m * self.k
        bmap = np.where(src[None] >= 0, src[None] + base, -1)
        lhs = ctx.tensor(self.op.operands[0])
        bop, bop_lo = gather_b(ctx, prog, bmap.reshape(-1), lhs, 0, self.wide)
        # A operand (rhs channels): [item][Np/R][Kp][R] <- b[item][k][n]
        ch = np.arange(self.np_)
        ok = (k[:, None] < self.k) & (ch[None, :] < self.n)
        src = np.where(ok, k[:, None] * self.n + ch[None, :], -1)  # Kp x Np
        src = src.reshape(self.kp, self.np_ // R, R).transpose(1, 0, 2)
        base = np.arange(b0, b1)[:, None, None, None] * self.k * self.n
        amap = np.where(src[None] >= 0, src[None] + base, -1)
        aop = ctx.gather(prog, amap.reshape(-1), 1, 0, src=ctx.tensor(self.op.operands[1]))
        ones = ctx.load_const(prog, "ones", np.ones(self.kp * max(R, C), np.int8).tobytes())
        par = ctx.load_bytes(
            prog, ctx.const("p", self.params, key=(self.index, "p")), len(self.params)
        )
        ldc = 4 * tokens
        acc, cs = prog.alloc(self.np_ * ldc), prog.alloc(self.np_ * 4 * C)
        vt = ceil16(tokens)  # VOPs move whole 16-element groups
        rs, rsz = prog.alloc(R * ldc + 64), prog.alloc(4 * vt)
        acc2 = prog.alloc(self.np_ * ldc) if self.wide else None
        rs2 = prog.alloc(R * ldc + 64) if self.wide else None
        tmp = prog.alloc(4 * vt)
        ys = []
        zp, lo, hi = _out_range(self.op)
        for i in range(items):
            a_i = aop + i * self.np_ * self.kp
            b_i = bop + i * tokens * self.kp
            lo_i = None if bop_lo is None else bop_lo + i * tokens * self.kp
            mac2(prog, a_i, b_i, lo_i, acc, acc2, self.np_ // R, self.tt, self.kp, ldc)
            mac_tiles(prog, a_i, ones, cs, self.np_ // R, 1, self.kp, 4 * C)
            mac2(prog, ones, b_i, lo_i, rs, rs2, 1, self.tt, self.kp, ldc)
            prog.vop("mul", rsz, rs, tokens, scalar=-self.zb)
            y = prog.alloc(self.n * vt * self.es_out + 64)
            ys.append(y)
            prog.req_cfg(None, 0, zp, lo, hi)
            prog.li(10, acc)
            prog.li(11, par)
            prog.li(12, y)
            prog.li(13, cs)
            prog.li(4, (128 if self.wide else 0) - self.za)
            saved, _ = prog.capture()
            prog.emit_lw(5, 11, 0)
            prog.emit_lw(6, 13, 0)
            prog.emit(Op.MUL, rd=6, rs1=6, rs2=4)
            prog.emit(Op.ADD, rd=5, rs1=5, rs2=6)  # bias + K za zb - za * colsum(b), (wide)
            prog.vop("add", tmp, "x10", tokens, b=rsz)  # - zb * rowsum(a)
            prog.vop("add", tmp, tmp, tokens, breg=5)
            prog.emit_lw(6, 11, 4)
            prog.vcfg("mult", 0, reg=6)
            prog.emit_lw(7, 11, 8)
            prog.vcfg("shift", 0, reg=7)
            prog.vop("req", "x12", tmp, tokens, 4, self.es_out)
            prog.addi(10, 10, ldc)
            prog.addi(11, 11, 16)
            prog.addi(12, 12, vt * self.es_out)
            prog.addi(13, 13, 4 * C)
            prog.loop(self.n, prog.release(saved))
        e = np.arange(e0, e1)
        item, rem = e // mn - b0, e % mn
        m, n = rem // self.n, rem % self.n
        # the per-item results are consecutive allocations of equal size
        stride = (ys[1] - ys[0]) // self.es_out if len(ys) > 1 else 0
        omap = np.where(e < self.batch * mn, item * stride + n * vt + m, -1)
        out = ctx.gather(prog, omap, self.es_out, 0, src_addr=ys[0], reserve=0)
        ctx.store(prog, ctx.tensor(self.out), e0, e1, out)


def act_matmul(op, ctx, index: int):
    return ActMatmul(op, ctx, index)
