"""Row-wise vector-unit task ops of the GEMM chains, with their lowering templates.

Two ops beyond the shared mapping dialect, for chains whose GEMMs have two
activation operands (an attention head from the front end):

* ``mapping.requant_rows``: per row r of an int32 matrix ``src`` (``rows`` x ``cols``,
  row stride ``4*cols``): ``t = ADD(row, colterm)``; ``t = SUB(t, rowterm[r])``;
  ``dst row = REQ[req](t)`` (``req`` = [mult, shift, zp, lo, hi]; int8, or int32 with
  ``out32``).  This is the matmul output stage with zero-point corrections that
  depend on the data: the column term is ``colconst - colmac`` (``colmac`` = row 0
  of a MAC product against a constant tile), formed once in place, and the row term
  is word 0 of row r of ``rowterm`` (stride ``row_stride``).
* ``mapping.qsoftmax``: the front end's ``qnt.softmax`` (compiler.qmath.i_softmax) of
  int32 scores, after the score requantization above: per row ``[ADD colterm]``,
  ``[SUB rowterm[r]]``, ``REQ[score]``, ``[ADD mask]``, RMAX, SUB max, EXP, RSUM;
  the row sums gathered densely (LW/SW) and one RECIP over them (16 rows per 16
  elements); per row VCFG MULT = 1/sum and REQ to int8 codes
  (zero point and low clamp -2**(bits-1)).  ``consts`` = [ln2, b, c, inv_mult,
  inv_shift, recip_k, bits] exactly as the op carries them.  With 16-bit
  probabilities (``bits`` = 16) the qnt.requantize to int8 that follows is fused:
  the first REQ gives ``p16 - zp16`` directly (ZP 0, clamp 0..65535, which is
  ``clamp(x + zp16, lo16, hi16) - zp16`` for zp16 = lo16 = -32768) and a second
  pass applies ``preq`` = [mult, shift, zp, lo, hi].  With ``blocked`` = m tiles the
  int8 result is written as blocked R x 16 tiles (chain_ops.transpose_blocked's
  input) instead of row-major rows: one REQ per 16 columns.  Options of the back
  end's own softmax (attention.py), each usable alone:

  - ``score`` may be left out (no score requantization: the scores are the codes);
  - ``mask_from`` = the first 16-column group holding a masked key: the mask ADD
    runs on the groups from there on only;
  - ``scratch`` (int32 rows x cols in another SRAM bank): SUB max writes there and
    one EXP over all rows writes back to ``src``, then one RSUM per row - no int32
    VOP runs in place (in place, A and D share a bank: 8 words per 16 elements
    instead of 4);
  - ``out`` = [shift, zp, lo, hi] of the final REQ (with MULT = 1/sum) instead of
    the ones ``bits`` implies;
  - ``words`` (+ ``sem``): ``dst`` stays row-major, and after each m tile's R rows a
    SELF DMA copies their 16-byte words into ``words`` as blocked R x 16 tiles
    ``[cols/16][rows/R][R][16]`` (transpose_blocked's input), incrementing ``sem``
    once per tile: one REQ per row instead of one per 16 columns, the regrouping on
    the DMA engine (C = 16).  The copy's descriptors come from the PE's descriptor
    buffer: the planner adds rows/R to its count.

:class:`VecTemplates` is a mixin of the lowering (compiler.backend.lower._PeLowering),
like lower_stream.StreamTemplates; chain_emit.py lowers kernels that use these ops
until lower.py registers the mixin (docs/backend.md).
"""

from __future__ import annotations

import enum
from typing import ClassVar

from xdsl.irdl import irdl_op_definition
from xdsl.utils.exceptions import VerifyException

from compiler.backend.codegen import I, loop
from compiler.dialects.mapping import TaskOp, int_of, ints_of, ref_of
from compiler.errors import CompileError
from hw.isa import V_SEG, DType, Op, SignalMode, VCfg, VFn

__all__ = [
    "RequantRowsOp",
    "QSoftmaxOp",
    "VecTemplates",
    "dense_bytes",
    "SoftmaxPhase",
    "ALL_PHASES",
    "tmp_bytes",
]


class SoftmaxPhase(enum.IntFlag):
    """The parts of mapping.qsoftmax one op may lower (``phases``), in program order:
    PASS1 = [ADD mask], RMAX, SUB per row; EXP over the rows; RSUM per row; RECIP =
    the sums gathered and their reciprocals; REQ = the probabilities (and the SELF
    copies of ``words``).  Ops over the same rows split by phase run in this order
    (the vector unit is in order); RSUM, RECIP and REQ share ``tmp``."""

    PASS1 = 1
    EXP = 2
    RSUM = 4
    RECIP = 8
    REQ = 16


ALL_PHASES = 31

_TERMS = {"colterm": "ref", "colconst": "ref", "rowterm": "ref", "row_stride": "int"}


class _RowsOp(TaskOp):
    def _rows_check(self) -> None:
        self._positive("rows", "cols")
        if int_of(self, "cols") % 16:
            raise VerifyException(f"'{self.name}' cols must be a multiple of 16")
        if ("colconst" in self.attributes) != ("colterm" in self.attributes):
            raise VerifyException(f"'{self.name}' colconst needs colterm")
        if ("rowterm" in self.attributes) != ("row_stride" in self.attributes):
            raise VerifyException(f"'{self.name}' rowterm needs row_stride")


@irdl_op_definition
class RequantRowsOp(_RowsOp):
    name = "mapping.requant_rows"
    NEEDS: ClassVar[dict[str, str]] = {
        "src": "ref",
        "dst": "ref",
        "rows": "int",
        "cols": "int",
        "req": "ints",
    }
    OPTIONAL: ClassVar[dict[str, str]] = dict(_TERMS)

    def check(self) -> None:
        self._rows_check()
        if len(ints_of(self, "req")) != 5:
            raise VerifyException("'mapping.requant_rows' req must be [mult, shift, zp, lo, hi]")


@irdl_op_definition
class QSoftmaxOp(_RowsOp):
    name = "mapping.qsoftmax"
    NEEDS: ClassVar[dict[str, str]] = {
        "src": "ref",
        "dst": "ref",
        "tmp": "ref",
        "rows": "int",
        "cols": "int",
        "consts": "ints",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        **_TERMS,
        "score": "ints",
        "mask": "ref",
        "mask_from": "int",
        "preq": "ints",
        "blocked": "int",
        "scratch": "ref",
        "out": "ints",
        "words": "ref",
        "sem": "int",
        "row0": "int",
        "scratch_row0": "int",
        "phases": "int",
        "mt_total": "int",
    }

    def check(self) -> None:
        self._rows_check()
        self._nonneg("mask_from", "sem", "row0", "scratch_row0")
        phases = int_of(self, "phases") if "phases" in self.attributes else ALL_PHASES
        if not 1 <= phases <= ALL_PHASES:
            raise VerifyException(f"'mapping.qsoftmax' phases must be a mask in 1..{ALL_PHASES}")
        if phases != ALL_PHASES and "scratch" not in self.attributes:
            raise VerifyException("'mapping.qsoftmax' phases other than all need scratch rows")
        if "score" in self.attributes and len(ints_of(self, "score")) != 5:
            raise VerifyException("'mapping.qsoftmax' score must be [mult, shift, zp, lo, hi]")
        if "out" in self.attributes and len(ints_of(self, "out")) != 4:
            raise VerifyException("'mapping.qsoftmax' out must be [shift, zp, lo, hi]")
        if ("words" in self.attributes) != ("sem" in self.attributes):
            raise VerifyException("'mapping.qsoftmax' words needs sem (and sem words)")
        if "words" in self.attributes and "blocked" in self.attributes:
            raise VerifyException("'mapping.qsoftmax' has either words or blocked output")
        if "mask_from" in self.attributes and (
            "mask" not in self.attributes or int_of(self, "mask_from") >= int_of(self, "cols") // 16
        ):
            raise VerifyException(
                "'mapping.qsoftmax' mask_from needs a mask and must name a 16-column group"
            )
        c = ints_of(self, "consts")
        if len(c) != 7 or c[0] < 1 or c[6] not in (8, 16):
            raise VerifyException(
                "'mapping.qsoftmax' consts must be [ln2, b, c, inv_mult, inv_shift, recip_k, "
                "bits] with bits 8 or 16"
            )
        if (c[6] == 16) != ("preq" in self.attributes) or (
            "preq" in self.attributes and len(ints_of(self, "preq")) != 5
        ):
            raise VerifyException(
                "'mapping.qsoftmax' 16-bit probabilities need preq = [mult, shift, zp, lo, hi] "
                "(the requantization to int8), 8-bit ones none"
            )


def _vop(fn, rd, rs1, rs2, n16, tout=DType.I32, bscalar=0, seg=0):
    i32 = int(DType.I32)
    return I(
        Op.VOP, rd=rd, rs1=rs1, rs2=rs2, n16=n16, fn=int(fn), tin=i32, tout=int(tout),
        bscalar=bscalar, seg=seg,
    )  # fmt: skip


SEG_MAX = (1 << V_SEG.width) - 1  # steps of the longest segment (row)


def _segmented(op, rows: int, n16: int) -> bool:
    """Whether qsoftmax ``op`` lowers to one segmented VOP per pass (docs/isa.md
    "Segments"): the back end's own softmax (scratch rows, 8-bit probabilities, no
    zero-point terms, row-major or ``words`` output), two rows or more (a ``seg`` of
    n16 or more is one segment, with B per element), rows that fit a segment and one
    VOP."""
    a = op.attributes
    plain = not any(k in a for k in ("colterm", "rowterm", "preq", "blocked"))
    fits = 1 < rows and n16 <= SEG_MAX and rows * n16 <= 0xFFFF  # one row: no segments
    return "scratch" in a and plain and fits


class VecTemplates:
    """Lowering templates of requant_rows and qsoftmax (a _PeLowering mixin).
    Registers: x1 = row, x2 = destination row, x5 = column term, x6 = row term,
    x7 = mask, x11/x12 = per-row scalars."""

    def _vcfg(self, **regs: int) -> None:
        for name, value in regs.items():
            self.code.append(I(Op.VCFG, rs1=0, cfg=int(VCfg[name.upper()]), imm=int(value)))

    def _terms(self, op) -> tuple[list, list]:
        """(setup, per-row code) adding the column term and subtracting the row term."""
        n16 = int_of(op, "cols") // 16
        setup, row = [], []
        a = op.attributes
        if "colterm" in a:
            col = self.off(ref_of(op, "colterm"))
            setup += [
                I(Op.LI, rd=5, imm=col),
                I(Op.LI, rd=6, imm=self.off(ref_of(op, "colconst"))),
                _vop(VFn.SUB, 5, 6, 5, n16),  # colterm = colconst - colmac, in place
            ]
            row.append(_vop(VFn.ADD, 1, 1, 5, n16))
        if "rowterm" in a:
            setup.append(I(Op.LI, rd=6, imm=self.off(ref_of(op, "rowterm"))))
            row += [I(Op.LW, rd=12, rs1=6, imm=0), _vop(VFn.SUB, 1, 1, 12, n16, bscalar=1)]
        return setup, row

    def requant_rows(self, op: RequantRowsOp) -> None:
        rows, cols = int_of(op, "rows"), int_of(op, "cols")
        mult, shift, zp, lo, hi = ints_of(op, "req")
        self._vcfg(mult=mult, shift=shift, zp=zp, lo=lo, hi=hi)
        setup, row = self._terms(op)
        self.code += setup
        self.code += [
            I(Op.LI, rd=1, imm=self.off(ref_of(op, "src"))),
            I(Op.LI, rd=2, imm=self.off(ref_of(op, "dst"))),
        ]
        row.append(_vop(VFn.REQ, 2, 1, 1, cols // 16, DType.I8))
        steps = [(1, 4 * cols), (2, cols)]
        if "rowterm" in op.attributes:
            steps.append((6, int_of(op, "row_stride")))
        self.strides({0: steps})
        self.code += loop(rows, row + self.spill(0))

    def qsoftmax(self, op: QSoftmaxOp) -> None:
        rows, cols = int_of(op, "rows"), int_of(op, "cols")
        n16 = cols // 16
        ln2, b, c, inv_mult, inv_shift, recip_k, bits = ints_of(op, "consts")
        a = op.attributes
        ph = SoftmaxPhase(int_of(op, "phases") if "phases" in a else ALL_PHASES)
        r0 = int_of(op, "row0") if "row0" in a else 0  # rows from row0 on (tmp: local)
        scratch = "scratch" in a
        cfg: dict[str, int] = {}
        if ph & SoftmaxPhase.EXP or (ph & SoftmaxPhase.PASS1 and not scratch):
            cfg.update(exp_qln2=ln2, exp_inv_mult=inv_mult, exp_inv_shift=inv_shift,
                       exp_qb=b, exp_qc=c)  # fmt: skip
        if ph & SoftmaxPhase.RECIP:
            cfg.update(recip_k=recip_k)
        if "score" in a and ph & SoftmaxPhase.PASS1:
            mult, shift, zp, lo, hi = ints_of(op, "score")
            cfg.update(mult=mult, shift=shift, zp=zp, lo=lo, hi=hi)
        self._vcfg(**cfg)
        tmp = self.off(ref_of(op, "tmp"))
        src = self.off(ref_of(op, "src")) + r0 * 4 * cols
        # the scratch rows of a ring of m tiles may sit at other rows than src's and dst's
        sr0 = int_of(op, "scratch_row0") if "scratch_row0" in a else r0
        scr = self.off(ref_of(op, "scratch")) + sr0 * 4 * cols if scratch else 0
        if _segmented(op, rows, n16):
            self._qsoftmax_seg(op, ph, src, scr, tmp, rows, n16)
            return
        if ph & SoftmaxPhase.PASS1:
            self._softmax_pass1(op, src, tmp, scr if scratch else None, rows, n16)
        if scratch and ph & SoftmaxPhase.EXP:
            self.code += [I(Op.LI, rd=1, imm=scr), I(Op.LI, rd=2, imm=src)]
            self.code += _chunked(VFn.EXP, 2, 1, rows * n16)
        if scratch and ph & SoftmaxPhase.RSUM:
            self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=3, imm=tmp)]
            self.strides({0: [(1, 4 * cols), (3, 16)]})
            self.code += loop(rows, [_vop(VFn.RSUM, 3, 1, 1, n16), *self.spill(0)])
        half = 1 << (bits - 1)
        sums, recips = tmp + 16 * rows, tmp + 16 * rows + dense_bytes(rows)
        if ph & SoftmaxPhase.RECIP:
            # RSUM leaves one word per 16 bytes: gather the sums densely (LW/SW, 3 cycles
            # a row), so that one RECIP runs on 16 rows' sums (up to 32 cycles per element)
            self.code += [I(Op.LI, rd=3, imm=tmp), I(Op.LI, rd=4, imm=sums)]
            self.strides({0: [(3, 16), (4, 4)]})
            gather = [I(Op.LW, rd=13, rs1=3, imm=0), I(Op.SW, rs1=4, rs2=13, imm=0)]
            self.code += loop(rows, gather + self.spill(0))
            self.code += [
                I(Op.LI, rd=3, imm=sums),
                I(Op.LI, rd=4, imm=recips),
                _vop(VFn.RECIP, 4, 3, 3, dense_bytes(rows) // 64),
            ]
        if not ph & SoftmaxPhase.REQ:
            return
        if not ph & SoftmaxPhase.RECIP:
            self.code.append(I(Op.LI, rd=4, imm=recips))
        dst = self.off(ref_of(op, "dst")) + r0 * cols
        wide = "preq" in a
        if wide:  # p16 - zp16 in place, then the requantization to int8
            self._vcfg(shift=recip_k - bits, zp=0, lo=0, hi=(1 << bits) - 1)
        elif "out" in a:  # the final REQ's shift and clamp as given (MULT = 1/sum)
            shift, zp, lo, hi = ints_of(op, "out")
            self._vcfg(shift=shift, zp=zp, lo=lo, hi=hi)
        else:
            self._vcfg(shift=recip_k - bits, zp=-half, lo=-half, hi=half - 1)
        per_row = [I(Op.LW, rd=12, rs1=4, imm=0), I(Op.VCFG, rs1=12, cfg=int(VCfg.MULT), imm=0)]
        if wide:
            self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=2, imm=src)]
            self.strides({0: [(1, 4 * cols), (2, 4 * cols), (4, 4)]})
            body = [*per_row, _vop(VFn.REQ, 2, 1, 1, n16), *self.spill(0)]
            self.code += loop(rows, body)
            mult, shift, zp, lo, hi = ints_of(op, "preq")
            self._vcfg(mult=mult, shift=shift, zp=zp, lo=lo, hi=hi)
            per_row = []
        self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=2, imm=dst)]
        if "words" in a:
            self._int8_words(op, rows, cols, per_row, {} if wide else {4: 4})
        else:
            self._int8_rows(op, rows, cols, per_row, {} if wide else {4: 4})

    def _qsoftmax_seg(
        self, op, ph: SoftmaxPhase, src: int, scr: int, tmp: int, rows: int, n16: int
    ) -> None:
        """The phases of ``op`` with one segmented VOP per pass (a segment per row):
        [score REQ], [ADD mask per row], RMAX -> the row maxima (a word per row at
        ``tmp``), EXPB (the EXP of each row minus its maximum) into the scratch rows,
        RSUM -> the row sums (words at ``tmp``), RECIP over those words -> ``tmp +
        16*rows``, REQB (each scratch row times its reciprocal) to int8."""
        a = op.attributes
        cols, n = 16 * n16, rows * n16
        recips = tmp + seg_words_bytes(rows)  # RECIP reads whole 4-word groups of sums
        if ph & SoftmaxPhase.PASS1:
            self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=3, imm=tmp)]
            if "score" in a:  # score codes, kept in int32 lanes
                self.code.append(_vop(VFn.REQ, 1, 1, 1, n))
            if "mask" in a:  # per row: the mask is one row (only groups from mask_from)
                f = int_of(op, "mask_from") if "mask_from" in a else 0
                self.code += [
                    I(Op.LI, rd=7, imm=self.off(ref_of(op, "mask")) + 64 * f),
                    I(Op.LI, rd=9, imm=src + 64 * f),
                ]
                self.strides({0: [(9, 4 * cols)]})
                self.code += loop(rows, [_vop(VFn.ADD, 9, 9, 7, n16 - f), *self.spill(0)])
            self.code.append(_vop(VFn.RMAX, 3, 1, 1, n, seg=n16))
        if ph & SoftmaxPhase.EXP:  # EXPB: EXP of (row - its maximum), SUB fused
            self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=2, imm=scr), I(Op.LI, rd=3, imm=tmp)]
            self.code.append(_vop(VFn.EXPB, 2, 1, 3, n, seg=n16))
        if ph & SoftmaxPhase.RSUM:
            self.code += [I(Op.LI, rd=1, imm=scr), I(Op.LI, rd=3, imm=tmp)]
            self.code.append(_vop(VFn.RSUM, 3, 1, 1, n, seg=n16))
        if ph & SoftmaxPhase.RECIP:  # the sums' words: 4 int32 elements each
            self.code += [I(Op.LI, rd=3, imm=tmp), I(Op.LI, rd=4, imm=recips)]
            self.code.append(_vop(VFn.RECIP, 4, 3, 3, -(-rows // 4)))
        if not ph & SoftmaxPhase.REQ:
            return
        bits = ints_of(op, "consts")[6]
        half = 1 << (bits - 1)
        if "out" in a:
            shift, zp, lo, hi = ints_of(op, "out")
            self._vcfg(shift=shift, zp=zp, lo=lo, hi=hi)
        else:
            recip_k = ints_of(op, "consts")[5]
            self._vcfg(shift=recip_k - bits, zp=-half, lo=-half, hi=half - 1)
        dst = self.off(ref_of(op, "dst")) + (int_of(op, "row0") if "row0" in a else 0) * cols
        self.code += [
            I(Op.LI, rd=1, imm=scr),
            I(Op.LI, rd=2, imm=dst),
            I(Op.LI, rd=4, imm=recips),
            _vop(VFn.REQB, 2, 1, 4, n, DType.I8, seg=n16),
        ]
        if "words" in a:
            self._words_copies(op, rows, cols)

    def _softmax_pass1(self, op, src: int, tmp: int, scr: int | None, rows: int, n16: int) -> None:
        """[score REQ], [ADD mask], RMAX, SUB per row (without scratch rows also EXP and
        RSUM in place)."""
        a = op.attributes
        cols = 16 * n16
        setup, pass1 = self._terms(op)
        self.code += setup
        self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=3, imm=tmp)]
        steps = [(1, 4 * cols), (3, 16)]
        if "score" in a:
            pass1.append(_vop(VFn.REQ, 1, 1, 1, n16))  # score codes, kept in int32 lanes
        if "mask" in a:
            # only the 16-column groups from mask_from on hold masked keys
            f = int_of(op, "mask_from") if "mask_from" in a else 0
            self.code.append(I(Op.LI, rd=7, imm=self.off(ref_of(op, "mask")) + 64 * f))
            if f:
                self.code.append(I(Op.LI, rd=9, imm=src + 64 * f))
                steps.append((9, 4 * cols))
            pass1.append(_vop(VFn.ADD, 9 if f else 1, 9 if f else 1, 7, n16 - f))
        pass1 += [_vop(VFn.RMAX, 3, 1, 1, n16), I(Op.LW, rd=11, rs1=3, imm=0)]
        if scr is not None:
            # x - max into the scratch rows (another SRAM bank: no in-place conflicts),
            # then one EXP over all rows back into src and one RSUM per row
            self.code.append(I(Op.LI, rd=8, imm=scr))
            pass1.append(_vop(VFn.SUB, 8, 1, 11, n16, bscalar=1))
            steps.append((8, 4 * cols))
        else:
            pass1 += [
                _vop(VFn.SUB, 1, 1, 11, n16, bscalar=1),
                _vop(VFn.EXP, 1, 1, 1, n16),
                _vop(VFn.RSUM, 3, 1, 1, n16),
            ]
        if "rowterm" in a:
            steps.append((6, int_of(op, "row_stride")))
        self.strides({0: steps})
        self.code += loop(rows, pass1 + self.spill(0))

    def _int8_words(self, op, rows: int, cols: int, head: list, more: dict) -> None:
        """Per row ``head`` and REQ to int8 rows at x2 (row-major ``dst``); after each
        m tile's R rows, one SELF DMA (semaphore ``sem``) moves its 16-byte words into
        ``words`` as blocked R x 16 tiles ``[cols/16][rows/R][R][16]`` (what
        transpose_blocked reads): word (row i*R + t, group j) to tile (j, i), row t.
        The copy runs on the DMA engine while the next tile's rows are requantized."""
        R, n16 = self.arch.mac_rows, cols // 16
        descs = self._word_descs(op, rows, cols)
        mt = len(descs)
        extra = [(reg, step) for reg, step in more.items()]
        self.code.append(I(Op.LI, rd=10, imm=descs[0]))
        self.strides({0: [(10, descs[1] - descs[0] if mt > 1 else 0)],
                      1: [(1, 4 * cols), (2, cols), *extra]})  # fmt: skip
        inner = loop(R, [*head, _vop(VFn.REQ, 2, 1, 1, n16, DType.I8), *self.spill(1)])
        self.code += loop(mt, [*inner, I(Op.DMA, rs1=10, imm=0), *self.spill(0)])

    def _words_copies(self, op, rows: int, cols: int) -> None:
        """The SELF copies of _int8_words after a REQB of all rows (one per m tile)."""
        descs = self._word_descs(op, rows, cols)
        self.code.append(I(Op.LI, rd=10, imm=descs[0]))
        self.strides({0: [(10, descs[1] - descs[0] if len(descs) > 1 else 0)]})
        self.code += loop(len(descs), [I(Op.DMA, rs1=10, imm=0), *self.spill(0)])

    def _word_descs(self, op, rows: int, cols: int) -> list[int]:
        """Descriptor addresses of the SELF copies of ``words`` (one per m tile)."""
        R, n16 = self.arch.mac_rows, cols // 16
        if self.arch.mac_cols != 16 or rows % R:
            raise CompileError(
                f"'{op.name}' words output needs 16 MAC columns and whole R-row tiles, not "
                f"{self.arch.mac_rows} x {self.arch.mac_cols} with {rows} rows"
            )
        mt = rows // R
        r0 = int_of(op, "row0") if "row0" in op.attributes else 0
        total = int_of(op, "mt_total") if "mt_total" in op.attributes else mt
        if r0 % R or r0 // R + mt > total:
            raise CompileError(
                f"'{op.name}' words output: rows {r0}..{r0 + rows - 1} are not whole R-row "
                f"tiles inside mt_total = {total}"
            )
        src = self.off(ref_of(op, "dst")) + r0 * cols
        words = self.off(ref_of(op, "words")) + r0 * 16
        return [
            self.descriptor(
                local=src + i * R * cols,
                remote=words + i * R * 16,
                count0=1,
                count1=n16,
                lstride1=16,
                rstride1=total * R * 16,
                count2=R,
                lstride2=cols,
                rstride2=16,
                mode=int(SignalMode.SELF),
                signal=1,
                read=0,
                sem=int_of(op, "sem"),
            )  # fmt: skip
            for i in range(mt)
        ]

    def _int8_rows(self, op, rows: int, cols: int, head: list, more: dict) -> None:
        """Per row: ``head``, then REQ of the int32 row at x1 to int8 at x2: one VOP
        (row-major ``dst``), or one per 16 columns into blocked tiles (``blocked`` =
        m tiles: 16-column chunk j of row i*R + t goes to tile (j, i), row t)."""
        n16 = cols // 16
        extra = [(reg, step) for reg, step in more.items()]
        if "blocked" not in op.attributes:
            self.strides({0: [(1, 4 * cols), (2, cols), *extra]})
            body = [*head, _vop(VFn.REQ, 2, 1, 1, n16, DType.I8), *self.spill(0)]
            self.code += loop(rows, body)
            return
        C = self.arch.mac_cols
        if C != 16:
            raise CompileError(f"'{op.name}' blocked output needs 16 MAC columns, not {C}")
        tile = int_of(op, "blocked") * self.arch.mac_rows * C  # one column of tiles
        self.strides({0: [(2, C - n16 * tile), *extra], 1: [(1, 64), (2, tile)]})
        inner = loop(n16, [_vop(VFn.REQ, 2, 1, 1, 1, DType.I8), *self.spill(1)])
        self.code += loop(rows, [*head, *inner, *self.tail(0)])


def _chunked(fn, rd: int, rs: int, n16: int) -> list:
    """One elementwise VOP over ``n16`` groups in place of x[rd] <- fn(x[rs]), split
    into VOPs of at most 65535 groups (the n16 field); advances x[rs] and x[rd]."""
    code = []
    while n16 > 0:
        n = min(n16, 0xFFFF)
        code.append(_vop(fn, rd, rs, rs, n))
        n16 -= n
        if n16:
            code += [I(Op.ADDI, rd=rs, rs1=rs, imm=64 * n), I(Op.ADDI, rd=rd, rs1=rd, imm=64 * n)]
    return code


def seg_words_bytes(rows: int) -> int:
    """Bytes of one result word per row (segmented RMAX/RSUM), whole RECIP steps."""
    return -(-rows // 4) * 64


def tmp_bytes(rows: int) -> int:
    """Bytes of qsoftmax's ``tmp`` for ``rows`` rows (either lowering)."""
    return max(16 * rows + 2 * dense_bytes(rows), 2 * seg_words_bytes(rows))


def dense_bytes(rows: int) -> int:
    """Bytes of one dense int32 word per row, whole 16-element RECIP groups."""
    return -(-rows // 16) * 64
