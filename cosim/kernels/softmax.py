"""The hand-written integer softmax kernel (I-BERT style) on the vector unit.

For each of ``rows`` rows of ``n`` int8 logits q (real value ``q * scale``)::

    x   = int32(q)                      VOP mov   i8 -> i32
    m   = max(x)                        VOP rmax  (then LW into a register)
    d   = x - m            (<= 0)       VOP sub   bscalar
    e   = i_exp(d)                      VOP exp   (VCFG exp_* from the scale)
    s   = sum(e)                        VOP rsum
    r   = 2**k // s                     VOP recip (then LW)
    p   = round_shift(e * r, k - 7)     VOP mul bscalar, VOP sra bscalar -> int8

so ``p / 128`` approximates softmax(q * scale) (p saturates at 127).  The loop
over rows is a hardware loop whose pointers advance by stride slots.  The
constants follow I-BERT (Kim et al., 2021): exp(t) ~ a (t + b)^2 + c on
(-ln 2, 0] with a = 0.3585, b = 1.353, c = 0.344, and exp(t) = 2^-z exp(p) with
t = p - z ln 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hw.arch import ArchConfig
from hw.asm import assemble
from hw.errors import ImageError
from hw.image import ProgramImage
from hw.isa import DType, VCfg, VFn
from sim import numerics

__all__ = ["SoftmaxCase", "softmax_case", "softmax_constants", "ref_softmax"]

A_COEF, B_COEF, C_COEF = 0.3585, 1.353, 0.344
RECIP_K = 30  # e * (2^k / sum) <= 2^k: stays inside int32
INV_SHIFT = 16


def softmax_constants(scale: float) -> dict[int, int]:
    """The vector config registers of i-exp for logits of the given scale."""
    if not 1e-4 <= scale <= 0.5:
        raise ImageError(f"softmax logit scale must be in 1e-4..0.5, not {scale!r}")
    q_ln2 = math.floor(math.log(2) / scale)
    return {
        VCfg.EXP_QLN2: q_ln2,
        VCfg.EXP_INV_MULT: math.ceil((1 << INV_SHIFT) / q_ln2),
        VCfg.EXP_INV_SHIFT: INV_SHIFT,
        VCfg.EXP_QB: math.floor(B_COEF / scale),
        VCfg.EXP_QC: math.floor(C_COEF / (A_COEF * scale * scale)),
        VCfg.RECIP_K: RECIP_K,
    }


def ref_softmax(q: np.ndarray, scale: float) -> np.ndarray:
    """The kernel's exact integer result, composed from sim/numerics.py."""
    cfg = np.zeros(len(VCfg), dtype=np.int64)
    for reg, value in softmax_constants(scale).items():
        cfg[reg] = value
    out = np.zeros(q.shape, dtype=np.int8)
    for i, row in enumerate(np.asarray(q, dtype=np.int64)):
        d = row - row.max()
        e = numerics.vector_elementwise(VFn.EXP, d, None, DType.I32, cfg)
        s = numerics.vector_reduce(VFn.RSUM, e)
        r = numerics.vector_elementwise(VFn.RECIP, np.array([s]), None, DType.I32, cfg)[0]
        p = numerics.vector_elementwise(VFn.MUL, e, np.full_like(e, r), DType.I32, cfg)
        out[i] = numerics.vector_elementwise(
            VFn.SRA, p, np.full_like(p, RECIP_K - 7), DType.I8, cfg
        )
    return out


def _layout(arch: ArchConfig, rows: int, n: int) -> dict[str, int]:
    if n <= 0 or n % 16:
        raise ImageError(f"softmax row length must be a positive multiple of 16, not {n!r}")
    if rows <= 0:
        raise ImageError(f"softmax rows must be positive, not {rows!r}")
    lay = {"q": 0, "p": rows * n}
    lay["x"] = -(-(2 * rows * n) // 16) * 16
    lay["d"] = lay["x"] + 4 * n
    lay["e"] = lay["d"] + 4 * n
    lay["t"] = lay["e"] + 4 * n
    lay["s"] = lay["t"] + 4 * n  # the sum, then 2^k / sum (one word each)
    lay["r"] = lay["s"] + 16
    lay["end"] = lay["r"] + 16
    if lay["end"] > arch.sram_bytes:
        raise ImageError(
            f"softmax {rows}x{n} needs {lay['end']} bytes of SRAM, more than "
            f"{arch.name!r} has ({arch.sram_bytes})"
        )
    return lay


def kernel_text(arch: ArchConfig, rows: int, n: int, scale: float) -> str:
    lay = _layout(arch, rows, n)
    n16 = n // 16
    cfg = "\n".join(
        f"    vcfg cfg={VCfg(reg).name.lower()}, imm={value}"
        for reg, value in softmax_constants(scale).items()
    )
    return f"""
{cfg}
    li x1, {lay["q"]}            # this row's logits
    li x2, {lay["p"]}            # this row's probabilities
    li x3, {lay["x"]}
    li x4, {lay["d"]}
    li x5, {lay["e"]}
    li x6, {lay["t"]}
    li x7, {lay["s"]}
    li x8, {lay["r"]}
    li x11, {RECIP_K - 7}
    lstride x1, level=0, slot=0, imm={n}
    lstride x2, level=0, slot=1, imm={n}
    loop x0, imm={rows}, end=row_end
    vop rd=x3, rs1=x1, n16={n16}, fn=mov, tin=i8, tout=i32
    vop rd=x7, rs1=x3, rs2=x3, n16={n16}, fn=rmax, tin=i32, tout=i32
    lw x9, 0(x7)
    vop rd=x4, rs1=x3, rs2=x9, n16={n16}, fn=sub, tin=i32, tout=i32, bscalar=1
    vop rd=x5, rs1=x4, rs2=x4, n16={n16}, fn=exp, tin=i32, tout=i32
    vop rd=x7, rs1=x5, rs2=x5, n16={n16}, fn=rsum, tin=i32, tout=i32
    vop rd=x8, rs1=x7, rs2=x7, n16=1, fn=recip, tin=i32, tout=i32
    lw x10, 0(x8)
    vop rd=x6, rs1=x5, rs2=x10, n16={n16}, fn=mul, tin=i32, tout=i32, bscalar=1
row_end:
    vop rd=x2, rs1=x6, rs2=x11, n16={n16}, fn=sra, tin=i32, tout=i8, bscalar=1
    halt
"""


@dataclass
class SoftmaxCase:
    arch: ArchConfig
    rows: int
    n: int
    scale: float
    q: np.ndarray
    image: ProgramImage
    layout: dict[str, int]
    expected: np.ndarray
    text: str = field(repr=False, default="")

    @property
    def ideal_cycles(self) -> int:
        """Lower bound: the i32 passes (mov, rmax, sub, exp, rsum, mul, sra) each move
        at least n*4 bytes through one 16-byte port."""
        return self.rows * 7 * (4 * self.n // 16)

    def output(self, sram: np.ndarray) -> np.ndarray:
        base = self.layout["p"]
        raw = np.asarray(sram[base : base + self.rows * self.n], np.uint8)
        return raw.view(np.int8).reshape(self.rows, self.n)


def softmax_case(
    arch: ArchConfig, rows: int, n: int, scale: float = 0.05, seed: int = 0
) -> SoftmaxCase:
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (rows, n), dtype=np.int8)
    text = kernel_text(arch, rows, n, scale)
    lay = _layout(arch, rows, n)
    image = ProgramImage(
        assemble(text),
        sram=[(lay["q"], q.tobytes())],
        name=f"softmax-{rows}x{n}",
        meta={"rows": rows, "n": n, "seed": seed},
    )
    image.check(arch)
    return SoftmaxCase(arch, rows, n, scale, q, image, lay, ref_softmax(q, scale), text)
