"""Lowerings of the graph's ops for the whole-graph mapper (graph_map.py).

Each lowering computes a chunk ``[e0, e1)`` of its output's flat elements on one PE
and writes it to the output's DRAM tensor.  The PE sequences are those of the
interpreter (compiler/interpreter_ops.py, docs/compiler.md), op for op:

* ``qnt.lut`` (a scalar table walk) and ``qnt.rescale`` (per channel: gathered
  channel-major, one REQ per channel row);
* elementwise (``qnt.requantize/add/mul/gelu``, ``tosa.clamp``, ``graph.where``):
  inputs DMA'd (broadcast constants expanded by the host, broadcast run-time
  tensors gathered), centred with VOP SUB to int32, then MUL/ADD/SRA/ERF/REQ;
* row ops (``qnt.softmax``, ``qnt.layer_norm``, ``qnt.mean`` over trailing axes) in
  graph_ops_rows.py;
* ``qnt.matmul`` with constant weights and ``qnt.conv`` (nhwc, group 1): output
  channels on the MAC rows, tokens on the MAC columns: A = packed weights (host),
  B = the tokens' K values (a gather: transpose, or im2col for conv), MATMUL out32,
  then per channel ADD bias' and REQ (the MAC output stage, with the input zero point
  folded into the bias), then a gather back to token-major;
* activation x activation ``qnt.matmul`` (batched, both operands on the chip) in
  graph_ops_mm.py;
* layout ops (transpose, pad, slice, expand) and max_pool: gathers (max_pool: one
  gather per window position, then VOP MAX).
"""

from __future__ import annotations

import math

import numpy as np

from compiler import kernels
from compiler.backend.graph_prog import ceil16
from compiler.dialects.base import int_attr, ints, shape_of, str_attr
from compiler.dialects.qnt import int_range, qparams
from compiler.errors import UnsupportedError
from compiler.interpreter import KERNELS

__all__ = ["lowering", "Lowering"]

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def _zp(v) -> int:
    q = qparams(v)
    return q.zp if q is not None else 0


def _es(v) -> int:
    w = v.type.element_type.width.data
    return 1 if w == 1 else w // 8


def _out_range(op) -> tuple[int, int, int]:
    out = op.results[0]
    lo, hi = int_range(out)
    zp = _zp(out)
    if str_attr(op, "act", "none") == "relu":
        lo = max(lo, zp)
    return zp, lo, hi


class Lowering:
    unit = 16  # output elements per chunk unit
    min_elems = 512  # smallest chunk worth another PE
    macs = 0
    code_words = 40  # instruction words of one chunk (estimate, for placement)

    def __init__(self, op, ctx, index: int):
        self.op, self.ctx, self.index = op, ctx, index
        self.out = op.results[0]
        self.es_out = _es(self.out)
        self.check()

    def check(self) -> None:
        pass

    def unsupported(self, why: str):
        return UnsupportedError(f"op #{self.index} ({self.op.name}): {why}")

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        raise NotImplementedError


def pieces(e0: int, e1: int, size: int):
    for a in range(e0, e1, size):
        yield a, min(e1, a + size)


class Elementwise(Lowering):
    def inputs(self, ctx, prog, e0: int, e1: int) -> list[int]:
        out_shape = shape_of(self.out)
        addrs = []
        for v in self.op.operands:
            t = ctx.tensor(v)
            if tuple(t.shape) == tuple(out_shape):
                addrs.append(ctx.load(prog, t, e0, e1))
            elif t.data is not None:  # a constant: the host expands the broadcast
                full = np.broadcast_to(ctx.values[v], out_shape).astype(t.dtype).reshape(-1)
                full = np.concatenate([full, np.zeros(ceil16(full.size) - full.size, t.dtype)])
                off = ctx.const(f"bcast{self.index}", full.tobytes(), key=(self.index, v))
                addrs.append(ctx.load_bytes(prog, off + e0 * t.es, (e1 - e0) * t.es))
            else:
                idx = np.broadcast_to(np.arange(t.size).reshape(t.shape), out_shape).reshape(-1)
                idx = np.concatenate([idx, np.full(ceil16(idx.size) - idx.size, -1)])
                addrs.append(ctx.gather(prog, idx[e0:e1], t.es, 0, src=t))
        return addrs

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        piece = max(16, (ctx.arch.sram_bytes // 4 // 48) // 16 * 16)
        for a, b in pieces(e0, e1, piece):
            mark = prog.top
            ins = self.inputs(ctx, prog, a, b)
            y = self.compute(prog, ins, b - a)
            ctx.store(prog, ctx.tensor(self.out), a, b, y)
            if b < e1:
                prog.fence()  # the next piece reuses the scratch the write reads
            prog.top = mark

    def centred(self, prog, i: int, addr: int, n: int) -> int:
        t = prog.alloc(4 * n)
        prog.vop("sub", t, addr, n, _es(self.op.operands[i]), 4, scalar=_zp(self.op.operands[i]))
        return t

    def requant(self, prog, src: int, n: int, mult: int, shift: int) -> int:
        zp, lo, hi = _out_range(self.op)
        y = prog.alloc(n * self.es_out)
        prog.req_cfg(mult, shift, zp, lo, hi)
        prog.vop("req", y, src, n, 4, self.es_out)
        return y

    def compute(self, prog, ins: list[int], n: int) -> int:
        op, name = self.op, self.op.name
        if name == "qnt.requantize":
            t = self.centred(prog, 0, ins[0], n)
            return self.requant(prog, t, n, int_attr(op, "multiplier"), int_attr(op, "shift"))
        if name == "qnt.add":
            a, b = self.centred(prog, 0, ins[0], n), self.centred(prog, 1, ins[1], n)
            prog.vop("mul", a, a, n, scalar=int_attr(op, "lhs_mult"))
            prog.vop("mul", b, b, n, scalar=int_attr(op, "rhs_mult"))
            prog.vop("add", a, a, n, b=b)
            return self.requant(prog, a, n, 1, int_attr(op, "shift"))
        if name == "qnt.mul":
            a, b = self.centred(prog, 0, ins[0], n), self.centred(prog, 1, ins[1], n)
            prog.vop("mul", a, a, n, b=b)
            return self.requant(prog, a, n, int_attr(op, "multiplier"), int_attr(op, "shift"))
        if name == "qnt.gelu":
            x = self.centred(prog, 0, ins[0], n)
            prog.vop("sra", x, x, n, scalar=int_attr(op, "in_shift", 0))
            prog.vcfg("erf_qb", -int_attr(op, "b"))
            prog.vcfg("erf_qc", -int_attr(op, "c"))
            f = prog.alloc(4 * n)
            prog.vop("erf", f, x, n)
            prog.vop("sub", f, f, n, scalar=int_attr(op, "c"))
            prog.vop("mul", f, x, n, b=f)
            return self.requant(prog, f, n, -int_attr(op, "multiplier"), int_attr(op, "shift"))
        if name == "tosa.clamp":
            es = self.es_out
            lo = op.properties["min_val"].value.data  # type: ignore[attr-defined]
            hi = op.properties["max_val"].value.data  # type: ignore[attr-defined]
            prog.vop("min", ins[0], ins[0], n, es, es, scalar=int(hi))
            prog.vop("max", ins[0], ins[0], n, es, es, scalar=int(lo))
            return ins[0]
        if name == "graph.where":
            c, a, b = (self.widen(prog, i, addr, n) for i, addr in enumerate(ins))
            prog.vop("sub", a, a, n, b=b)
            prog.vop("mul", a, a, n, b=c)
            y = prog.alloc(n * self.es_out)
            prog.vop("add", y, a, n, 4, self.es_out, b=b)
            return y
        raise self.unsupported("no elementwise lowering")

    def widen(self, prog, i: int, addr: int, n: int) -> int:
        t = prog.alloc(4 * n)
        prog.vop("mov", t, addr, n, _es(self.op.operands[i]), 4)
        return t


class Lut(Lowering):
    """qnt.lut on the scalar unit (tests/compiler/test_pe_equivalence.py): per byte
    of a loaded word, index = (u + 128) mod 256, LW the table word, pack the result
    bytes back into a word, SW; one hardware loop over the words."""

    code_words = 60

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        from hw.isa import Op

        x = ctx.load(prog, ctx.tensor(self.op.operands[0]), e0, e1)
        table = np.asarray(ctx.values[self.op.operands[1]]).astype("<i4").tobytes()
        t_at = ctx.load_bytes(prog, ctx.const("lut", table, key=(self.index, "t")), len(table))
        y = prog.alloc(e1 - e0)
        prog.li(1, x)
        prog.li(2, t_at)
        prog.li(3, y)
        saved, _ = prog.capture()
        prog.emit_lw(4, 1, 0)
        prog.emit(Op.ADDI, rd=7, rs1=0, imm=0)
        for j in range(4):
            prog.emit(Op.SHLI, rd=5, rs1=4, imm=24 - 8 * j)
            prog.emit(Op.SHRI, rd=5, rs1=5, imm=24)
            prog.emit(Op.ADDI, rd=5, rs1=5, imm=128)
            prog.emit(Op.SHLI, rd=5, rs1=5, imm=24)
            prog.emit(Op.SHRI, rd=5, rs1=5, imm=22)
            prog.emit(Op.ADD, rd=5, rs1=5, rs2=2)
            prog.emit_lw(6, 5, 0)
            prog.emit(Op.SHLI, rd=6, rs1=6, imm=24)
            prog.emit(Op.SHRI, rd=6, rs1=6, imm=24 - 8 * j)
            prog.emit(Op.ADD, rd=7, rs1=7, rs2=6)
        prog.emit(Op.SW, rs1=3, rs2=7, imm=0)
        prog.addi(1, 1, 4)
        prog.addi(3, 3, 4)
        prog.loop((e1 - e0) // 4, prog.release(saved))
        ctx.store(prog, ctx.tensor(self.out), e0, e1, y)


class Rescale(Lowering):
    """qnt.rescale: per-channel requantization along the last axis.  REQ has one
    MULT/SHIFT per VOP, so the rows are gathered channel-major, each channel row is
    SUB zp_in + REQ with that channel's MULT and SHIFT (LW in a hardware loop), and
    a gather turns the result back."""

    code_words = 60

    def check(self) -> None:
        self.c = shape_of(self.op.operands[0])[-1]
        self.rows = math.prod(shape_of(self.op.operands[0])) // self.c
        self.unit = math.lcm(16, self.c)
        self.es_in = _es(self.op.operands[0])
        mult, shift = (np.asarray(self.ctx.values[v]) for v in self.op.operands[1:3])
        if not all(self.ctx.tensor_is_const(v) for v in self.op.operands[1:3]):
            raise self.unsupported("multiplier and shift must be constants")
        params = np.zeros((self.c, 4), "<i4")
        params[:, 0], params[:, 1] = mult, shift
        self.params = params.tobytes()

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        r0, r1 = e0 // self.c, min(self.rows, -(-e1 // self.c))
        rp = ceil16(r1 - r0)
        ch, r = np.meshgrid(np.arange(self.c), np.arange(rp), indexing="ij")
        m = np.where(r < r1 - r0, (r0 + r) * self.c + ch, -1)
        x = ctx.gather(prog, m.reshape(-1), self.es_in, 0, src=ctx.tensor(self.op.operands[0]))
        p = ctx.load_bytes(prog, ctx.const("p", self.params, key=(self.index, "p")), self.c * 16)
        tmp, y = prog.alloc(4 * rp), prog.alloc(self.c * rp * self.es_out)
        zp, lo, hi = _out_range(self.op)
        prog.req_cfg(None, 0, zp, lo, hi)
        prog.li(10, x)
        prog.li(11, p)
        prog.li(12, y)
        saved, _ = prog.capture()
        prog.vop("sub", tmp, "x10", rp, self.es_in, 4, scalar=_zp(self.op.operands[0]))
        prog.emit_lw(6, 11, 0)
        prog.vcfg("mult", 0, reg=6)
        prog.emit_lw(7, 11, 4)
        prog.vcfg("shift", 0, reg=7)
        prog.vop("req", "x12", tmp, rp, 4, self.es_out)
        prog.addi(10, 10, rp * self.es_in)
        prog.addi(11, 11, 16)
        prog.addi(12, 12, rp * self.es_out)
        prog.loop(self.c, prog.release(saved))
        e = np.arange(e0, e1)
        m = np.where(e < self.rows * self.c, (e % self.c) * rp + (e // self.c - r0), -1)
        out = ctx.gather(prog, m, self.es_out, 0, src_addr=y, reserve=0)
        ctx.store(prog, ctx.tensor(self.out), e0, e1, out)


class Layout(Lowering):
    """transpose, pad, slice, expand: element i of the output = a source element."""

    def check(self) -> None:
        src = self.op.operands[0]
        shp = shape_of(src)
        idx = np.arange(math.prod(shp), dtype=np.int64).reshape(shp)
        if self.op.name == "graph.pad":
            lo, hi = ints(self.op, "low"), ints(self.op, "high")
            if min(lo + hi) < 0:
                raise self.unsupported("negative padding")
            m = np.pad(idx, list(zip(lo, hi, strict=True)), constant_values=-1)
        else:
            m = KERNELS[self.op.name](self.op, [idx], None)
        self.map = np.asarray(m, np.int64).reshape(-1)
        self.map = np.concatenate([self.map, np.full(ceil16(self.map.size) - self.map.size, -1)])
        self.pad = _zp(src)

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        src = ctx.tensor(self.op.operands[0])
        y = ctx.gather(prog, self.map[e0:e1], src.es, self.pad, src=src)
        ctx.store(prog, ctx.tensor(self.out), e0, e1, y)


class MaxPool(Lowering):
    def check(self) -> None:
        op = self.op
        shp = shape_of(op.operands[0])
        idx = np.arange(math.prod(shp), dtype=np.int64).reshape(shp)
        win = kernels.windows(
            idx,
            ints(op, "kernel"),
            ints(op, "strides", [1, 1]),
            ints(op, "pads", [0] * 4),
            ints(op, "dilations", [1, 1]),
            -1,
            bool(int_attr(op, "ceil_mode", 0)),
        )
        self.maps = [
            win[..., i, j].reshape(-1) for i in range(win.shape[4]) for j in range(win.shape[5])
        ]
        self.low = int_range(op.operands[0])[0]
        self.code_words = 30 * len(self.maps)

    def emit(self, ctx, prog, e0: int, e1: int) -> None:
        src, es, n = ctx.tensor(self.op.operands[0]), self.es_out, e1 - e0
        acc = None
        for m in self.maps:
            m = np.concatenate([m, np.full(ceil16(m.size) - m.size, -1)])[e0:e1]
            g = ctx.gather(prog, m, es, self.low, src=src)
            if acc is None:
                acc = g
            else:
                prog.vop("max", acc, acc, n, es, es, b=g)
        ctx.store(prog, ctx.tensor(self.out), e0, e1, acc)


def lowering(op, ctx, index: int) -> Lowering:
    from compiler.backend.graph_ops_mm import ConstMatmul, act_matmul
    from compiler.backend.graph_ops_rows import RowOp

    name = op.name
    if name in ("qnt.requantize", "qnt.add", "qnt.mul", "qnt.gelu", "tosa.clamp", "graph.where"):
        return Elementwise(op, ctx, index)
    if name in ("qnt.softmax", "qnt.layer_norm", "qnt.mean"):
        return RowOp(op, ctx, index)
    if name == "qnt.lut":
        return Lut(op, ctx, index)
    if name == "qnt.rescale":
        return Rescale(op, ctx, index)
    if name in ("graph.transpose", "graph.pad", "graph.slice", "graph.expand", "graph.reshape"):
        return Layout(op, ctx, index)
    if name == "graph.max_pool":
        return MaxPool(op, ctx, index)
    if name in ("qnt.matmul", "qnt.conv"):
        w = op.operands[1]
        if name == "qnt.conv" or ctx.tensor_is_const(w):
            return ConstMatmul(op, ctx, index)
        return act_matmul(op, ctx, index)
    raise UnsupportedError(f"op #{index} ({name}): the whole-graph mapper has no lowering for it")
