"""GEMM split over the PEs of a chip: C[M][N] = outstage(A[M][K] @ B[K][N]).

Program generator (one unrolled program per PE, written with hw/asm.py).  Operands
start in DRAM (port 0):

* A at 0, packed per PE: PE p owns rows ``[p*mp, (p+1)*mp)`` (``mp = M / P``) as
  row tiles transposed (K x R each, as in cosim/kernels/gemm.py); every PE reads
  its slice with one DMA at the start.
* B at ``M*K`` as N/C column tiles (K x C each).  The *loader* PE (0, 0) reads
  each tile from DRAM into B buffer ``j % NB`` of its own SRAM and multicasts it
  (one RECT write with signal, to the same buffer of every PE, itself included:
  its own copy rewrites identical bytes).  Every PE signals the loader (sem FREE)
  when it has finished a tile, and the loader waits for all of them before it
  refills that buffer: NB buffers, the next tile multicast one tile ahead, the
  DRAM read ``NB - 1`` tiles ahead.
* Per column tile every PE does one QLOAD and ``mp / R`` MATMULs in a hardware
  loop.  With more than one PE the int8 result stays in SRAM (``mp x N``, row
  major) and the host reads it back; with one PE (A fills half the SRAM) each
  column tile goes through one of two C buffers back to DRAM at ``M*K + K*N``
  (row-major M x N), a SELF copy with signal marking each write-back as sent.

``scaling``: the same generator with P = 1 on PE (0, 0) gives the 1-PE baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.kernels.gemm import _qblock, ref_gemm
from cosim.kernels.gemm_grid import grid_layout, grid_program
from hw import isa
from hw.arch import ArchConfig
from hw.asm import assemble
from hw.errors import ImageError
from hw.image import ProgramImage

__all__ = ["MultiGemm", "multi_gemm"]

DESC = isa.DESC_WORDS * isa.WORD_BYTES
S_A, S_LOAD, S_B, S_FREE, S_C = 0, 1, 2, 3, 4
NB = 4  # B buffers


def _align(v: int, a: int) -> int:
    return -(-v // a) * a


@dataclass
class MultiGemm:
    arch: ArchConfig
    m: int
    n: int
    k: int
    pes: int
    images: dict  # (x, y) -> ProgramImage
    layout: dict
    expected: np.ndarray

    @property
    def ideal_cycles(self) -> int:
        return self.m * self.n * self.k // (self.arch.macs_per_cycle * self.pes)

    def output(self, sram_of, dram: np.ndarray) -> np.ndarray:
        """C from the final state: ``sram_of(x, y)`` -> SRAM bytes, ``dram`` port 0 bytes."""
        lay = self.layout
        if self.pes == 1:
            c = np.asarray(dram[lay["c_dram"] : lay["c_dram"] + self.m * self.n], np.uint8)
            return c.view(np.int8).reshape(self.m, self.n)
        out = np.zeros((self.m, self.n), np.int8)
        mp, np_ = lay["mp"], lay["np"]
        gc, gr = lay["grid"]
        for y in range(gr):
            for x in range(gc):
                s = np.asarray(sram_of(x, y)[lay["c"] : lay["c"] + mp * np_], np.uint8)
                out[y * mp : (y + 1) * mp, x * np_ : (x + 1) * np_] = s.view(np.int8).reshape(
                    mp, np_
                )
        return out


def _layout(arch: ArchConfig, m: int, n: int, k: int, pes: int) -> dict:
    r, c = arch.mac_rows, arch.mac_cols
    for name, v, unit in (("M", m, r * pes), ("N", n, c), ("K", k, 16)):
        if v <= 0 or v % unit:
            raise ImageError(
                f"multi-PE GEMM {name} must be a positive multiple of {unit}, not {v!r}"
            )
    mp, bank, tiles = m // pes, arch.bank_bytes, n // c
    qtotal = isa.qparam_layout(c)["total"][1]
    lay = {"a": 0, "mp": mp, "tiles": tiles, "qtotal": qtotal}
    # B buffers alternate between two banks other than A's, so that the multicast
    # filling buffer j+1 does not compete with the MATMULs reading buffer j.
    lay["nb"] = NB if pes == 1 else tiles  # with several PEs every B tile stays resident
    half = -(-lay["nb"] // 2) * k * c
    lay["b0"] = _align(mp * k, bank)
    lay["b1"] = lay["b0"] + _align(half, bank)
    c_bytes = mp * n if pes > 1 else 2 * mp * c
    extra = tiles * qtotal + (4 * tiles + mp // r + 4) * DESC + 32
    lay["c"] = lay["b1"] + _align(half, bank)
    if lay["c"] + c_bytes + extra > arch.sram_bytes:  # no bank left: after buffers 1, 3
        lay["c"] = lay["b1"] + half
    lay["q"] = _align(lay["c"] + c_bytes, 16)
    lay["desc"] = lay["q"] + tiles * qtotal
    lay["scratch"] = lay["desc"] + (4 * tiles + mp // r + 4) * DESC
    lay["end"] = lay["scratch"] + 32
    if lay["end"] > arch.sram_bytes:
        raise ImageError(
            f"multi-PE GEMM {m}x{n}x{k} on {pes} PEs needs {lay['end']} bytes of "
            f"SRAM per PE, more than {arch.name!r} has ({arch.sram_bytes})"
        )
    lay["b_dram"] = m * k
    lay["c_dram"] = m * k + k * n
    return lay


def _check_grid(arch: ArchConfig, m: int, n: int, k: int) -> None:
    """Shape rules of the 2-D split (cosim/kernels/gemm_grid.py)."""
    r, c = arch.mac_rows, arch.mac_cols
    rules = (
        ("M", m, r * arch.mesh_rows),
        ("N", n, c * arch.mesh_cols),
        ("K", k, 16),
    )
    for name, v, unit in rules:
        if v <= 0 or v % unit:
            raise ImageError(
                f"multi-PE GEMM {name} must be a positive multiple of {unit}, not {v!r}"
            )
    lay = grid_layout(arch, m, n, k)
    if lay["end"] > arch.sram_bytes:
        raise ImageError(
            f"multi-PE GEMM {m}x{n}x{k} on {arch.tiles} PEs needs {lay['end']} bytes of "
            f"SRAM per PE, more than {arch.name!r} has ({arch.sram_bytes})"
        )


def _bbuf(lay: dict, j: int, tile_bytes: int) -> int:
    i = j % lay["nb"]
    return lay[f"b{i % 2}"] + (i // 2) * tile_bytes


def _program(arch, m, n, k, pes, p, lay) -> tuple[str, bytes]:
    """Assembly text and descriptor block of PE ``p``."""
    r, c = arch.mac_rows, arch.mac_cols
    mp, tiles = lay["mp"], lay["tiles"]
    dx, dy = isa.dram_node(arch, 0)
    cols = arch.mesh_cols if pes > 1 else 1
    rows = pes // cols
    loader = p == 0
    descs: list[bytes] = []

    def d(**kw) -> int:
        descs.append(isa.encode_desc(**kw))
        return (len(descs) - 1) * DESC

    def bbuf(j: int) -> int:
        return _bbuf(lay, j, k * c)

    def read_b(j: int) -> str:
        off = d(
            local=bbuf(j),
            remote=lay["b_dram"] + j * k * c,
            count0=k * c // 16,
            x0=dx,
            y0=dy,
            sem=S_LOAD,
            read=1,
        )
        return f"dma x15, {off}"

    def cast_b(j: int) -> str:
        off = d(
            local=bbuf(j),
            remote=bbuf(j),
            count0=k * c // 16,
            mode=int(isa.SignalMode.RECT),
            x0=0,
            y0=0,
            x1=cols - 1,
            y1=rows - 1,
            sem=S_B,
            signal=1,
        )
        return f"wait sem={S_LOAD}, count=1\ndma x15, {off}"

    a_off = d(local=lay["a"], remote=p * mp * k, count0=mp * k // 16, x0=dx, y0=dy, sem=S_A, read=1)
    ldc = n if pes > 1 else c
    lines = [
        f"li x15, {lay['desc']}",
        f"li x12, {isa.pack_node(0, 0)}",
        f"lstride x1, level=0, slot=0, imm={k * r}",
        f"lstride x3, level=0, slot=1, imm={r * ldc}",
    ]
    if loader:
        lines += [read_b(j) for j in range(min(NB - 1, tiles))]
        lines += [cast_b(0)]
    lines += [f"dma x15, {a_off}", f"wait sem={S_A}, count=1"]
    for j in range(tiles):
        if loader:
            if j + 1 < tiles:
                lines.append(cast_b(j + 1))
            if j + NB - 1 < tiles:
                if j >= 1:
                    lines.append(f"wait sem={S_FREE}, count={pes}")
                lines.append(read_b(j + NB - 1))
        cdst = lay["c"] + j * c if pes > 1 else lay["c"] + (j % 2) * mp * c
        if pes == 1 and j >= 2:
            lines.append(f"wait sem={S_C}, count=1")
        lines += [
            f"wait sem={S_B}, count=1",
            f"li x4, {lay['q'] + j * lay['qtotal']}",
            "qload x4, 0",
            f"li x1, {lay['a']}",
            f"li x2, {bbuf(j)}",
            f"li x3, {cdst}",
            f"loop x0, body=1, imm={mp // r}",
            f"matmul rs1=x1, rs2=x2, rs3=x3, k16={k // 16}, ldc={ldc}",
            f"signal rs1=x12, sem={S_FREE}, mode=node, count=1",
        ]
        if pes == 1:
            wb = d(
                local=cdst,
                remote=lay["c_dram"] + j * c,
                count1=mp,
                lstride1=c,
                rstride1=n,
                x0=dx,
                y0=dy,
            )
            mark = d(
                local=lay["scratch"],
                remote=lay["scratch"] + 16,
                mode=int(isa.SignalMode.SELF),
                sem=S_C,
                signal=1,
            )
            lines += [f"dma x15, {wb}", f"dma x15, {mark}"]
    if loader:  # the FREE signals of the tiles whose buffer was not refilled
        lines.append(f"wait sem={S_FREE}, count={pes * (tiles - max(0, tiles - NB))}")
    if pes == 1 and tiles >= 2:
        lines.append(f"wait sem={S_C}, count=2")
    elif pes == 1:
        lines.append(f"wait sem={S_C}, count=1")
    lines.append("halt")
    return "\n".join(lines) + "\n", b"".join(descs)


def multi_gemm(
    arch: ArchConfig, m: int, n: int, k: int, pes: int | None = None, seed: int = 0
) -> MultiGemm:
    """Random int8 operands and parameters; one program image per PE."""
    pes = arch.tiles if pes is None else pes
    if pes not in (1, arch.tiles):
        raise ImageError(f"pes must be 1 or {arch.tiles} (the whole mesh), not {pes!r}")
    if arch.dram_ports < 1:
        raise ImageError(
            f"the multi-PE GEMM reads its operands from DRAM; {arch.name!r} has no DRAM port"
        )
    rng = np.random.default_rng(seed)
    r, c = arch.mac_rows, arch.mac_cols
    if pes == 1:
        lay = _layout(arch, m, n, k, pes)
    else:
        _check_grid(arch, m, n, k)
        lay = grid_layout(arch, m, n, k)
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
    a_packed = a.reshape(m // r, r, k).transpose(0, 2, 1).reshape(-1)
    b_packed = b.reshape(k, n // c, c).transpose(1, 0, 2).reshape(-1)
    qblocks = b"".join(_qblock(arch, q, j) for j in range(n // c))
    images = {}
    for p in range(pes):
        x, y = p % arch.mesh_cols, p // arch.mesh_cols
        if pes == 1:
            text, descs = _program(arch, m, n, k, pes, p, lay)
        else:
            text, descs = grid_program(arch, m, n, k, x, y, lay)
        dram = [(0, a_packed.tobytes()), (lay["b_dram"], b_packed.tobytes())] if p == 0 else []
        img = ProgramImage(
            assemble(text),
            sram=[(lay["q"], qblocks), (lay["desc"], descs)],
            dram=dram,
            name=f"gemm-multi-{m}x{n}x{k}-pe{p}",
            meta={"m": m, "n": n, "k": k, "pes": pes, "seed": seed},
        )
        img.check(arch)
        images[(x, y)] = img
    return MultiGemm(arch, m, n, k, pes, images, lay, ref_gemm(a, b, q))
