"""Row ops of the whole-graph mapper: ``qnt.softmax`` (last axis), ``qnt.layer_norm``
and ``qnt.mean`` (over trailing axes).

Rows are gathered into 16-element padded rows (padding = the type minimum for
softmax, so RMAX is unchanged); padded lanes are zeroed by a 0/1 lane mask before
every RSUM.  One hardware loop runs the per-row PE sequence of the interpreter op
(compiler/qmath.py: i_softmax, i_layernorm; the mean is SUB + RSUM, then one REQ
over all row sums); per-row scalars (row max, mean, 1/std, reciprocal of the sum)
go from the 16-byte result word of a reduction through LW into a register (bscalar
operand or VCFG MULT).  Softmax batches the reciprocals of all rows into one RECIP
(up to 32 cycles per element, 16 elements minimum).  A last gather compacts the padded
rows into the output chunk.
"""

from __future__ import annotations

import math

import numpy as np

from compiler import qmath
from compiler.backend.graph_ops import I32_MAX, I32_MIN, Lowering, _es, _out_range, _zp
from compiler.backend.graph_prog import ceil16
from compiler.dialects.base import int_attr, shape_of
from compiler.dialects.qnt import int_range
from compiler.interpreter_ops import layernorm_consts

__all__ = ["RowOp"]


class RowOp(Lowering):
    """Rows along the last axis (qnt.mean: the reduced trailing axes)."""

    min_elems = 256

    def check(self) -> None:
        shp = shape_of(self.op.operands[0])
        if self.op.name == "qnt.mean":
            axes = self.op.reduced_axes()
            if axes != list(range(len(shp) - len(axes), len(shp))):
                raise self.unsupported(f"mean over axes {axes} that are not the trailing axes")
            self.n = math.prod(shp[a] for a in axes)
            self.per_row = 1
        else:
            if self.op.name == "qnt.softmax":
                axis = int_attr(self.op, "axis") % len(shp)
                if axis != len(shp) - 1:
                    raise self.unsupported(f"softmax over axis {axis}, not the last axis")
            self.n = shp[-1]
            self.per_row = self.n
        self.code_words = {"qnt.layer_norm": 110, "qnt.softmax": 70}.get(self.op.name, 50)
        self.rows = math.prod(shp) // self.n
        self.np = ceil16(self.n)
        self.unit = math.lcm(16, self.per_row)
        self.es_in = _es(self.op.operands[0])

    def load_rows(self, ctx, prog, r0: int, r1: int, pad: int) -> int:
        j = np.arange(self.np)
        m = np.where(j[None, :] < self.n, np.arange(r0, r1)[:, None] * self.n + j[None, :], -1)
        return ctx.gather(prog, m.reshape(-1), self.es_in, pad, src=ctx.tensor(self.op.operands[0]))

    def valid(self, ctx, prog) -> int | None:
        if self.n == self.np:
            return None
        row = (np.arange(self.np) < self.n).astype("<i4")
        return ctx.load_const(prog, "valid", row.tobytes())

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        r0 = e0 // self.per_row
        r1 = min(self.rows, -(-e1 // self.per_row))
        rows = r1 - r0
        if self.op.name == "qnt.mean":
            y = self.mean(ctx, prog, r0, rows)
            m = np.arange(e0, e1) - e0
            m = np.where(np.arange(e0, e1) < self.rows, 4 * m, -1)
        else:
            fn = self.softmax if self.op.name == "qnt.softmax" else self.layer_norm
            y = fn(ctx, prog, r0, rows)
            e = np.arange(e0, e1)
            m = np.where(e < self.rows * self.n, (e // self.n - r0) * self.np + e % self.n, -1)
        out = ctx.gather(prog, m, self.es_out, 0, src_addr=y, reserve=0)
        ctx.store(prog, ctx.tensor(self.out), e0, e1, out)

    def row_loop(self, prog, rows: int, body_fn, strides: dict[int, int]) -> None:
        saved, _ = prog.capture()
        body_fn()
        for reg, step in strides.items():
            prog.addi(reg, reg, step)
        prog.loop(rows, prog.release(saved))

    def mean(self, ctx, prog, r0: int, rows: int) -> int:
        op = self.op
        x = self.load_rows(ctx, prog, r0, r0 + rows, 0)
        valid = self.valid(ctx, prog)
        xc, sums = prog.alloc(4 * self.np), prog.alloc(16 * rows + 48)
        prog.li(10, x)
        prog.li(11, sums)

        def body():
            prog.vop("sub", xc, "x10", self.np, self.es_in, 4, scalar=_zp(op.operands[0]))
            if valid is not None:
                prog.vop("mul", xc, xc, self.np, b=valid)
            prog.vop("rsum", "x11", xc, self.np)

        self.row_loop(prog, rows, body, {10: self.np * self.es_in, 11: 16})
        zp, lo, hi = _out_range(op)
        y = prog.alloc(4 * rows * self.es_out + 64)
        prog.req_cfg(int_attr(op, "multiplier"), int_attr(op, "shift"), zp, lo, hi)
        prog.vop("req", y, sums, 4 * rows, 4, self.es_out)
        return y

    def softmax(self, ctx, prog, r0: int, rows: int) -> int:
        op, bits = self.op, 8 * self.es_out
        lo_in = int_range(op.operands[0])[0]
        x = self.load_rows(ctx, prog, r0, r0 + rows, lo_in)
        valid = self.valid(ctx, prog)
        ln2, b, c = (int_attr(op, k) for k in ("ln2", "b", "c"))
        in_bits = 8 * self.es_in
        inv = (
            (int_attr(op, "inv_mult"), int_attr(op, "inv_shift"))
            if "inv_mult" in op.attributes
            else qmath.exp_inv(ln2, in_bits)
        )
        recip_k = (
            int_attr(op, "recip_k")
            if "recip_k" in op.attributes
            else qmath.softmax_recip_k(ln2, b, c, bits)
        )
        for name, v in (
            ("exp_qln2", ln2),
            ("exp_inv_mult", inv[0]),
            ("exp_inv_shift", inv[1]),
            ("exp_qb", b),
            ("exp_qc", c),
            ("recip_k", recip_k),
        ):
            prog.vcfg(name, v)
        e, tmp = prog.alloc(4 * self.np * rows), prog.alloc(4 * self.np)
        sums, rec = prog.alloc(16 * rows + 48), prog.alloc(16 * rows + 48)
        y = prog.alloc(self.np * rows * self.es_out)
        prog.li(10, x)
        prog.li(11, e)
        prog.li(13, sums)

        def body1():
            prog.vop("rmax", "x13", "x10", self.np, self.es_in, 4)
            prog.emit_lw(5, 13)
            prog.vop("sub", "x11", "x10", self.np, self.es_in, 4, breg=5)
            prog.vop("exp", "x11", "x11", self.np)
            if valid is not None:
                prog.vop("mul", tmp, "x11", self.np, b=valid)
                prog.vop("rsum", "x13", tmp, self.np)
            else:
                prog.vop("rsum", "x13", "x11", self.np)

        self.row_loop(prog, rows, body1, {10: self.np * self.es_in, 11: 4 * self.np, 13: 16})
        prog.vop("recip", rec, sums, 4 * rows)
        half = 1 << (bits - 1)
        prog.req_cfg(None, recip_k - bits, -half, -half, half - 1)
        prog.li(11, e)
        prog.li(12, y)
        prog.li(13, rec)

        def body2():
            prog.emit_lw(5, 13)
            prog.vcfg("mult", 0, reg=5)
            prog.vop("req", "x12", "x11", self.np, 4, self.es_out)

        self.row_loop(prog, rows, body2, {11: 4 * self.np, 12: self.np * self.es_out, 13: 16})
        return y

    def layer_norm(self, ctx, prog, r0: int, rows: int) -> int:
        op, n = self.op, self.np
        k = layernorm_consts(op)
        x = self.load_rows(ctx, prog, r0, r0 + rows, 0)
        valid = self.valid(ctx, prog)
        gamma = np.zeros(n, "<i4")
        gamma[: self.n] = ctx.values[op.operands[1]]
        beta = np.zeros(n, "<i4")
        beta[: self.n] = ctx.values[op.operands[2]]
        g_at = ctx.load_const(prog, "gamma", gamma.tobytes())
        b_at = ctx.load_const(prog, "beta", beta.tobytes())
        xc, c, sq = prog.alloc(4 * n), prog.alloc(4 * n), prog.alloc(4 * n)
        s = {name: prog.alloc(64) for name in ("s", "mean", "vf", "vc", "t", "sf", "sc", "fl")}
        y = prog.alloc(n * rows * self.es_out)
        zp, lo, hi = _out_range(op)
        prog.li(10, x)
        prog.li(12, y)

        def body():
            prog.vop("sub", xc, "x10", n, self.es_in, 4, scalar=_zp(op.operands[0]))
            if valid is not None:
                prog.vop("mul", xc, xc, n, b=valid)
            prog.vop("rsum", s["s"], xc, n)
            prog.req_cfg(k["mean_mult"], k["mean_shift"], 0, I32_MIN, I32_MAX)
            prog.vop("req", s["mean"], s["s"], 16)
            prog.li(6, s["mean"])
            prog.emit_lw(5, 6)
            prog.vop("sub", c, xc, n, breg=5)
            if valid is not None:
                prog.vop("mul", c, c, n, b=valid)
            prog.vop("mul", sq, c, n, b=c)
            prog.vop("rsum", s["vf"], sq, n)
            prog.vop("sra", sq, c, n, scalar=k["var_shift"])
            prog.vop("mul", sq, sq, n, b=sq)
            prog.vop("rsum", s["vc"], sq, n)
            prog.req_cfg(k["var_mult"], k["var_rshift"], k["eps_fine"], 1, I32_MAX)
            prog.vop("req", s["t"], s["vf"], 16)
            prog.vop("sqrt", s["sf"], s["t"], 16)
            prog.vcfg("zp", k["eps_coarse"])
            prog.vop("req", s["t"], s["vc"], 16)
            prog.vop("sqrt", s["sc"], s["t"], 16)
            prog.vop("shl", s["sc"], s["sc"], 16, scalar=k["var_shift"])
            prog.vop("sub", s["fl"], s["vf"], 16, scalar=I32_MAX - 1)
            prog.vop("max", s["fl"], s["fl"], 16, scalar=0)
            prog.vop("sub", s["t"], s["sc"], 16, b=s["sf"])
            prog.vop("mul", s["t"], s["t"], 16, b=s["fl"])
            prog.vop("add", s["t"], s["sf"], 16, b=s["t"])
            prog.vcfg("recip_k", k["recip_k"])
            prog.vop("recip", s["s"], s["t"], 16)
            prog.li(6, s["s"])
            prog.emit_lw(5, 6)
            prog.req_cfg(None, k["norm_shift"], 0, I32_MIN, I32_MAX)
            prog.vcfg("mult", 0, reg=5)
            prog.vop("req", sq, c, n)
            prog.vop("mul", sq, sq, n, b=g_at)
            prog.vop("add", sq, sq, n, b=b_at)
            prog.req_cfg(int_attr(op, "multiplier"), int_attr(op, "shift"), zp, lo, hi)
            prog.vop("req", "x12", sq, n, 4, self.es_out)

        self.row_loop(prog, rows, body, {10: n * self.es_in, 12: n * self.es_out})
        return y
