"""MAC-array task ops of the GEMM chains: windowed matmul and the one-MATMUL transpose.

* ``mapping.matmul_win``: mapping.matmul on a window of its buffers (``a_offset``,
  ``b_offset``, ``c_offset``, ``p_offset`` bytes in) with a free output layout: tile
  (i, j) of ``tiles`` = [mt, nt] goes to ``c + c_offset + i*R*ldc + j*col_step``.
  ``col_step = mt*R*ldc`` with ``ldc = C`` writes *blocked* tiles (tile after tile,
  ``[n tile][m tile][R][C]``), which is what ``transpose_blocked`` reads; a window of
  column tiles lets a GEMM start on the part of B that has arrived.
* ``mapping.transpose_blocked``: blocked int8 tiles ``[nt][mt][R][C]`` (columns
  permuted inside C-chunks, layout.chunk_perm) -> the A-operand layout
  ``[mt][nt*C][R]``.  Sixteen rows of R bytes of the MAC A operand are then 16/C whole
  tiles, so ONE MATMUL (K = 16) against a 0/1 selection matrix writes a whole
  transposed R x C tile: row r' holds channels r'*(C/R) + g (g < C/R) for the R
  tokens, i.e. C bytes of the A layout (row stride C).  mapping.transpose needs R
  accumulating MATMULs per tile for the same result, because a row-major source puts
  one token in each 16-row window.  Needs C <= 16 (16 % C == 0) and mt a multiple of
  16/C.

:class:`ChainTemplates` is the lowering mixin (used by chain_emit.ChainLowering).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from xdsl.irdl import irdl_op_definition
from xdsl.utils.exceptions import VerifyException

from compiler.backend.codegen import I, loop
from compiler.dialects.mapping import _MM, TaskOp, int_of, ints_of, ref_of
from hw.isa import Op

__all__ = ["MatmulWinOp", "TransposeBlockedOp", "ChainTemplates", "blocked_selection"]


def _opt(op, name: str, default: int = 0) -> int:
    return int_of(op, name) if name in op.attributes else default


@irdl_op_definition
class MatmulWinOp(TaskOp):
    name = "mapping.matmul_win"
    NEEDS: ClassVar[dict[str, str]] = {**_MM, "col_step": "int"}
    OPTIONAL: ClassVar[dict[str, str]] = {
        "out32": "int",
        "param_stride": "int",
        "a_offset": "int",
        "b_offset": "int",
        "c_offset": "int",
        "p_offset": "int",
    }

    def check(self) -> None:
        self._positive("tiles", "k", "ldc", "col_step")
        self._nonneg("a_offset", "b_offset", "c_offset", "p_offset")
        if int_of(self, "k") % 16:
            raise VerifyException("'mapping.matmul_win' k must be a multiple of 16")


@irdl_op_definition
class TransposeBlockedOp(TaskOp):
    name = "mapping.transpose_blocked"
    NEEDS: ClassVar[dict[str, str]] = {
        "src": "ref",
        "dst": "ref",
        "sel": "ref",
        "params": "ref",
        "tiles": "ints",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "src_offset": "int",
        "dst_offset": "int",
        "src_stride": "int",
    }

    def check(self) -> None:
        self._positive("tiles")
        self._nonneg("src_offset", "dst_offset", "src_stride")


def blocked_selection(r: int, c: int) -> bytes:
    """The 16/C selection matrices (16 x C int8) of transpose_blocked: matrix t takes,
    for output column c' = g*R + tau, row k = t*C + tau*(C/R) + g of the window."""
    mats = []
    for t in range(16 // c):
        sel = np.zeros((16, c), np.int8)
        for g in range(c // r):
            for tau in range(r):
                sel[t * c + tau * (c // r) + g, g * r + tau] = 1
        mats.append(sel.tobytes())
    return b"".join(mats)


class ChainTemplates:
    """Lowering templates of matmul_win and transpose_blocked (a _PeLowering mixin)."""

    def matmul_win(self, op: MatmulWinOp) -> None:
        R, C = self.arch.mac_rows, self.arch.mac_cols
        mt, nt = ints_of(op, "tiles")
        k, ldc, step = int_of(op, "k"), int_of(op, "ldc"), int_of(op, "col_step")
        out32 = _opt(op, "out32")
        pstride = _opt(op, "param_stride")
        self.code += [
            I(Op.LI, rd=1, imm=self.off(ref_of(op, "a")) + _opt(op, "a_offset")),
            I(Op.LI, rd=2, imm=self.off(ref_of(op, "b")) + _opt(op, "b_offset")),
            I(Op.LI, rd=3, imm=self.off(ref_of(op, "c")) + _opt(op, "c_offset")),
        ]
        if not out32:  # the output stage's parameters (out32 has none)
            self.code.append(
                I(Op.LI, rd=4, imm=self.off(ref_of(op, "params")) + _opt(op, "p_offset"))
            )
        mm = I(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=k // 16, out32=out32, ldc=ldc)
        if mt == 1 and out32:  # one m tile, no parameters: one loop over the n tiles
            if nt == 1:
                self.code.append(mm)
                return
            self.strides({0: [(2, k * C), (3, step)]})
            self.code += loop(nt, [mm, *self.spill(0)])
            return
        self.strides(
            {
                0: [(1, -mt * k * R), (2, k * C), (3, step - mt * R * ldc), (4, pstride)],
                1: [(1, k * R), (3, R * ldc)],
            }
        )
        # out32 skips the output stage: no parameters to load (a QLOAD would also wait
        # for the previous MATMUL's rows, hw/pe/mac_unit.py)
        q = [] if out32 else [I(Op.QLOAD, rs1=4, imm=0)]
        body = [*q, *loop(mt, [mm, *self.spill(1)]), *self.tail(0)]
        self.code += loop(nt, body)

    def transpose_blocked(self, op: TransposeBlockedOp) -> None:
        """``tiles`` = [mt, nt]: the source's 16-column groups of mt R x 16 tiles each
        follow each other (``src_stride`` bytes from group to group, default mt*R*16:
        a window of a larger source), the destination m tiles at ``dst_offset``."""
        R, C = self.arch.mac_rows, self.arch.mac_cols
        mt, nt = ints_of(op, "tiles")
        w = 16 // C  # tiles per 16-row window
        row = nt * C * R  # bytes of one m tile of the destination
        skip = _opt(op, "src_stride", mt * 16 * R) - mt * 16 * R  # to the next group
        self.code += [
            I(Op.LI, rd=1, imm=self.off(ref_of(op, "src")) + _opt(op, "src_offset")),
            I(Op.LI, rd=2, imm=self.off(ref_of(op, "sel"))),
            I(Op.LI, rd=3, imm=self.off(ref_of(op, "dst")) + _opt(op, "dst_offset")),
            I(Op.QLOAD, rs1=0, imm=self.off(ref_of(op, "params"))),
        ]
        body = []
        for t in range(w):
            body.append(I(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=1, ldc=C))
            if w > 1:
                step_b = 16 * C if t < w - 1 else -(w - 1) * 16 * C
                step_c = row if t < w - 1 else -(w - 1) * row
                body += [I(Op.ADDI, rd=2, rs1=2, imm=step_b), I(Op.ADDI, rd=3, rs1=3, imm=step_c)]
        # inner loop: next window (w m tiles); outer: next n tile (source continues)
        outer = [(3, C * R - mt * row), *([(1, skip)] if skip else [])]
        self.strides({0: outer, 1: [(1, 16 * R), (3, w * row)]})
        self.code += loop(nt, [*loop(mt // w, body + self.spill(1)), *self.tail(0)])
