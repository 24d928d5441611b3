"""Multi-PE workloads for the performance model's tests and benchmarks, and the
image directory convention of ``myelin perf``.

:func:`ring_images`: every PE of the mesh (snake order) in a ring.  PE (0, 0)
first broadcasts a block to the whole mesh (RECT write with signal); then, for
``rounds`` rounds, each PE doubles its block X into Y, sends Y into the next PE's
buffer Z (write with signal) once that PE has freed Z, runs a MATMUL meanwhile,
waits for its own Z, computes X = Z - X and tells the previous PE that Z is free
(SIGNAL NODE).  Finally each PE writes X to DRAM port 0 at its own address.
Race-free by construction; every semaphore ends at 0.

Directory convention (what ``myelin backend emit`` writes): an image directory
holds ``pe_<x>_<y>/`` image directories (``hw.image.ProgramImage.save``), one per
loaded PE; a board's holds ``chip_<cx>_<cy>/pe_<x>_<y>/``.  A directory that is
itself an image is one PE at (0, 0).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hw.asm import assemble
from hw.errors import ImageError
from hw.image import ProgramImage
from hw.isa import SignalMode, dram_node, encode_desc, pack_node, qparam_layout

__all__ = ["load_image_dir", "ring_images", "save_image_dir"]

X, W, A, Z, BUF_B, BCAST, Y, OUT, QBLK, DESC = (
    0x0000,
    0x0400,
    0x0800,
    0x2000,
    0x2400,
    0x3000,
    0x4000,
    0x6000,
    0x6800,
    0x7000,
)
BLOCK = 256  # bytes of X, Y, Z, W
K = 64


def _ring_order(arch) -> list[tuple[int, int]]:
    order = []
    for y in range(arch.mesh_rows):
        xs = range(arch.mesh_cols) if y % 2 == 0 else range(arch.mesh_cols - 1, -1, -1)
        order += [(x, y) for x in xs]
    return order


def _text(rounds: int, first: bool) -> str:
    bcast = "    dma x4, 96\n" if first else ""
    return f"""
    li x1, {X}
    li x2, {Z}
    li x3, {Y}
    li x4, {DESC}
    li x5, {A}
    li x6, {BUF_B}
    li x7, {OUT}
    li x8, {QBLK}
    li x10, {W}
    li x11, {BCAST}
    lw x9, 144(x4)
    signal sem=1, mode=self, count=1
    qload x8, 0
{bcast}    wait sem=2, count=1
    vop rd=x1, rs1=x1, rs2=x11, n16={BLOCK // 16}, fn=add, tin=i8, tout=i8
    loop x0, imm={rounds}, end=round_end
    wait sem=1, count=1
    vop rd=x3, rs1=x1, rs2=x1, n16={BLOCK // 16}, fn=add, tin=i8, tout=i8
    dma x4, 0
    matmul rs1=x5, rs2=x6, rs3=x7, k16={K // 16}, ldc=16
    wait sem=0, count=1
    vop rd=x1, rs1=x2, rs2=x1, n16={BLOCK // 16}, fn=sub, tin=i8, tout=i8
round_end:
    signal x9, sem=1, mode=node, count=1
    wait sem=1, count=1
    dma x4, 48
    halt
"""


def ring_images(arch, rounds: int = 4, seed: int = 0) -> dict[tuple[int, int], ProgramImage]:
    """One image per PE of the mesh (see the module docstring)."""
    if arch.sram_bytes < 0x8000:
        raise ImageError(
            f"the ring workload needs 32 KiB of SRAM, {arch.name!r} has {arch.sram_bytes}"
        )
    if arch.dram_ports < 1:
        raise ImageError(f"the ring workload writes DRAM; {arch.name!r} has no DRAM port")
    rng = np.random.default_rng(seed)
    order = _ring_order(arch)
    n = len(order)
    dx, dy = dram_node(arch, 0)
    words = BLOCK // 16
    qtotal = qparam_layout(arch.mac_cols)["total"][1]
    images = {}
    for i, (x, y) in enumerate(order):
        nx, ny = order[(i + 1) % n]
        px, py = order[(i - 1) % n]
        desc = (
            encode_desc(
                local=Y,
                remote=Z,
                count0=words,
                mode=int(SignalMode.NODE),
                x0=nx,
                y0=ny,
                sem=0,
                signal=1,
            )
            + encode_desc(
                local=X, remote=i * BLOCK, count0=words, mode=int(SignalMode.NODE), x0=dx, y0=dy
            )
            + encode_desc(
                local=W,
                remote=BCAST,
                count0=words,
                mode=int(SignalMode.RECT),
                x0=0,
                y0=0,
                x1=arch.mesh_cols - 1,
                y1=arch.mesh_rows - 1,
                sem=2,
                signal=1,
            )
        )
        rnd = rng.integers(
            -20, 20, 3 * BLOCK + K * arch.mac_rows + K * arch.mac_cols, dtype=np.int8
        ).tobytes()
        qblk = np.zeros(qtotal, np.uint8)
        sram = [
            (X, rnd[:BLOCK]),
            (W, rnd[BLOCK : 2 * BLOCK]),
            (A, rnd[3 * BLOCK : 3 * BLOCK + K * arch.mac_rows]),
            (BUF_B, rnd[3 * BLOCK + K * arch.mac_rows :]),
            (QBLK, qblk.tobytes()),
            (DESC, desc + pack_node(px, py).to_bytes(4, "little")),
        ]
        img = ProgramImage(
            assemble(_text(rounds, i == 0)),
            sram=sram,
            name=f"ring-{x}-{y}",
            meta={"rounds": rounds, "seed": seed},
        )
        img.check(arch)
        images[(x, y)] = img
    return images


_PE_DIR = re.compile(r"pe_(\d+)_(\d+)$")
_CHIP_DIR = re.compile(r"chip_(\d+)_(\d+)$")


def save_image_dir(directory, images: dict) -> Path:
    """Write ``{(x, y): image}`` or ``{(cx, cy, x, y): image}`` in the convention."""
    d = Path(directory)
    for key, img in images.items():
        if len(key) == 4:
            img.save(d / f"chip_{key[0]}_{key[1]}" / f"pe_{key[2]}_{key[3]}")
        else:
            img.save(d / f"pe_{key[0]}_{key[1]}")
    return d


def load_image_dir(directory) -> dict[tuple[int, int, int, int], ProgramImage]:
    """``{(cx, cy, x, y): image}`` from a directory in the convention."""
    d = Path(directory)
    if not d.is_dir():
        raise ImageError(f"image directory {str(d)!r} does not exist")
    if (d / "manifest.json").is_file():
        return {(0, 0, 0, 0): ProgramImage.load(d)}
    out = {}
    for sub in sorted(d.iterdir()):
        if (m := _PE_DIR.match(sub.name)) and sub.is_dir():
            out[(0, 0, int(m[1]), int(m[2]))] = ProgramImage.load(sub)
        elif (m := _CHIP_DIR.match(sub.name)) and sub.is_dir():
            for pe in sorted(sub.iterdir()):
                if (p := _PE_DIR.match(pe.name)) and pe.is_dir():
                    out[(int(m[1]), int(m[2]), int(p[1]), int(p[2]))] = ProgramImage.load(pe)
    if not out:
        raise ImageError(
            f"{str(d)!r} holds no image: expected pe_<x>_<y>/ or "
            f"chip_<cx>_<cy>/pe_<x>_<y>/ image directories, or an image"
        )
    return out
