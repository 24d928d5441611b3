"""The hand-written int8 GEMM kernel: C[M][N] = outstage(A[M][K] @ B[K][N]).

Operand packing (docs/isa.md, MATMUL; R = mac_rows, C = mac_cols):

* A lives in SRAM as M/R row tiles, each transposed (K x R: ``At[k][r] =
  A[i*R + r][k]``), tile after tile from address 0.
* B lives in DRAM as N/C column tiles (K x C: ``Bt[k][c] = B[k][j*C + c]``);
  tile 0 is also preloaded into SRAM buffer 0 by the host; the kernel streams
  the others into two SRAM buffers in *other banks than A* with DMA,
  double-buffered: tile j+1 is read while tile j is multiplied.
* The output-stage parameters of column tile j (``hw.isa.qparam_layout``) are
  QLOADed once per column tile; C is written int8 row-major (ldc = N).

Kernel shape: an outer hardware loop over pairs of column tiles; per column
tile one DMA (prefetch), one QLOAD, one inner hardware loop of M/R MATMULs
whose A and C pointers advance by stride slots (zero loop overhead), two
pointer fix-ups and one WAIT.  MATMUL costs about K + R + 6 cycles, so the
utilization approaches K / (K + R + 6) (0.96 for K = 256, 0.99 for K = 1024).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw import isa
from hw.arch import ArchConfig
from hw.asm import assemble
from hw.errors import ImageError
from hw.image import ProgramImage
from sim import numerics

__all__ = ["GemmCase", "gemm_case", "gemm_layout", "ref_gemm"]

DESC_BYTES = isa.DESC_WORDS * isa.WORD_BYTES
SEM = 0


def _align(v: int, a: int) -> int:
    return -(-v // a) * a


def gemm_layout(arch: ArchConfig, m: int, n: int, k: int) -> dict[str, int]:
    """SRAM byte addresses of A, the two B buffers, C, the QLOAD blocks and the
    DMA descriptors; ImageError (naming the bytes) if they do not fit."""
    r, c = arch.mac_rows, arch.mac_cols
    for name, v, unit in (("M", m, r), ("N", n, c), ("K", k, 16)):
        if v <= 0 or v % unit:
            raise ImageError(f"GEMM {name} must be a positive multiple of {unit}, not {v!r}")
    bank = arch.bank_bytes
    qtotal = isa.qparam_layout(c)["total"][1]
    sizes = {
        "a": m * k,
        "b": k * c,
        "c": m * n,
        "q": (n // c) * qtotal,
        "desc": (n // c) * DESC_BYTES,
    }
    lay = {"a": 0}
    lay["b0"] = _align(sizes["a"], bank)
    lay["b1"] = _align(lay["b0"] + sizes["b"], bank)
    # C, then the parameter blocks and descriptors, go first-fit into the gap after
    # buffer 0 (before buffer 1) or after buffer 1.
    free = [[lay["b0"] + sizes["b"], lay["b1"]], [lay["b1"] + sizes["b"], arch.sram_bytes]]
    for name, size in (("c", sizes["c"]), ("q", sizes["q"] + sizes["desc"])):
        hole = next((h for h in free if h[0] + size <= h[1]), free[-1])
        lay[name] = hole[0]
        hole[0] = _align(hole[0] + size, 16)
    lay["desc"] = lay["q"] + sizes["q"]
    end = max(lay["desc"] + sizes["desc"], lay["b1"] + sizes["b"])
    if end > arch.sram_bytes:
        raise ImageError(
            f"GEMM {m}x{n}x{k} needs {end} bytes of SRAM (A {sizes['a']}, two B buffers of "
            f"{sizes['b']} in their own banks, C {sizes['c']}), more than {arch.name!r} has "
            f"({arch.sram_bytes})"
        )
    lay["end"] = end
    return lay


def kernel_text(arch: ArchConfig, m: int, n: int, k: int, lay: dict[str, int]) -> str:
    """The assembly text of the kernel."""
    r, c = arch.mac_rows, arch.mac_cols
    qtotal = isa.qparam_layout(c)["total"][1]
    tiles_n = n // c
    half = f"""
    dma x5, 0                      # prefetch the next B tile into the other buffer
    addi x5, x5, {DESC_BYTES}
    qload x4, 0                    # output stage of this column tile
    addi x4, x4, {qtotal}
    loop x0, body=1, imm={m // r}
    matmul rs1=x1, rs2=%s, rs3=x3, k16={k // 16}, ldc={n}
    addi x1, x1, {-m * k}
    addi x3, x3, {c - m * n}
    wait sem={SEM}, count=1"""
    lines = f"""
    li x1, {lay["a"]}
    li x2, {lay["b0"]}
    li x6, {lay["b1"]}
    li x3, {lay["c"]}
    li x4, {lay["q"]}
    li x5, {lay["desc"]}
    lstride x1, level=1, slot=0, imm={k * r}
    lstride x3, level=1, slot=1, imm={r * n}
    loop x0, imm={tiles_n // 2}, end=pair_end
    {half % "x2"}
    {half % "x6"}
pair_end:
    nop
    """
    if tiles_n % 2:  # the last tile, inside a 1-trip loop so that the strides' level is 1
        lines += f"""
    loop x0, imm=1, end=tail_end
    {half % "x2"}
tail_end:
    nop
"""
    return lines + "\n    halt\n"


@dataclass
class GemmCase:
    """One GEMM problem: operands, parameters, the program image and the answer."""

    arch: ArchConfig
    m: int
    n: int
    k: int
    a: np.ndarray  # M x K int8
    b: np.ndarray  # K x N int8
    q: dict[str, np.ndarray | int]
    image: ProgramImage
    layout: dict[str, int]
    expected: np.ndarray  # M x N int8
    text: str = field(repr=False, default="")

    @property
    def ideal_cycles(self) -> int:
        return self.m * self.n * self.k // self.arch.macs_per_cycle

    def output(self, sram: np.ndarray) -> np.ndarray:
        base = self.layout["c"]
        return (
            np.asarray(sram[base : base + self.m * self.n], np.uint8)
            .view(np.int8)
            .reshape(self.m, self.n)
        )


def ref_gemm(a: np.ndarray, b: np.ndarray, q: dict) -> np.ndarray:
    """numpy int8 GEMM + the output stage of sim/numerics.py."""
    acc = numerics.matmul_acc(a.T.copy(), b)
    return numerics.output_stage(acc, q["bias"], q["mult"], q["shift"], q["zp"], q["lo"], q["hi"])


def _qblock(arch: ArchConfig, q: dict, j: int) -> bytes:
    c = arch.mac_cols
    lay = isa.qparam_layout(c)
    blk = np.zeros(lay["total"][1], np.uint8)
    cols = slice(j * c, (j + 1) * c)
    for name, dtype in (("bias", "<i4"), ("mult", "<i4"), ("shift", "u1")):
        off, size = lay[name]
        blk[off : off + size] = np.asarray(q[name][cols], dtype).view(np.uint8)
    off = lay["clamp"][0]
    blk[off : off + 3] = np.array([q["zp"], q["lo"], q["hi"]], np.int8).view(np.uint8)
    return blk.tobytes()


def _descs(arch: ArchConfig, n: int, k: int, lay: dict[str, int]) -> bytes:
    c = arch.mac_cols
    dx, dy = isa.dram_node(arch, 0)
    tiles = n // c
    out = b""
    for j in range(1, tiles + 1):  # tile 0 is preloaded; the last refills it, harmlessly
        out += isa.encode_desc(
            local=lay["b0"] if j % 2 == 0 else lay["b1"],
            remote=(j % tiles) * k * c,
            count0=k * c // isa.WORD_BYTES,
            mode=int(isa.SignalMode.NODE),
            x0=dx,
            y0=dy,
            sem=SEM,
            read=1,
        )
    return out


def gemm_case(arch: ArchConfig, m: int, n: int, k: int, seed: int = 0) -> GemmCase:
    """Random int8 operands and parameters, packed into a program image."""
    if arch.dram_ports < 1:
        raise ImageError(f"the GEMM kernel streams B from DRAM; {arch.name!r} has no DRAM port")
    rng = np.random.default_rng(seed)
    r, c = arch.mac_rows, arch.mac_cols
    lay = gemm_layout(arch, m, n, k)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    shift = 25 + int(round(np.log2(np.sqrt(k / 256))))
    q = {
        "bias": rng.integers(-1000, 1000, n),
        "mult": rng.integers(1 << 14, 1 << 15, n),
        "shift": np.full(n, shift),
        "zp": 3,
        "lo": -128,
        "hi": 127,
    }
    a_packed = a.reshape(m // r, r, k).transpose(0, 2, 1).reshape(-1)  # K x R per row tile
    b_packed = b.reshape(k, n // c, c).transpose(1, 0, 2).reshape(-1)  # K x C per col tile
    qblocks = b"".join(_qblock(arch, q, j) for j in range(n // c))
    text = kernel_text(arch, m, n, k, lay)
    image = ProgramImage(
        assemble(text),
        sram=[
            (lay["a"], a_packed.tobytes()),
            (lay["b0"], b_packed[: k * c].tobytes()),
            (lay["q"], qblocks),
            (lay["desc"], _descs(arch, n, k, lay)),
        ],
        dram=[(0, b_packed.tobytes())],
        name=f"gemm-{m}x{n}x{k}",
        meta={"m": m, "n": n, "k": k, "seed": seed},
    )
    image.check(arch)
    return GemmCase(arch, m, n, k, a, b, q, image, lay, ref_gemm(a, b, q), text)
