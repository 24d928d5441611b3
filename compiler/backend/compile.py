"""Compile a kernel for an ArchConfig: mapping IR -> pe_isa programs -> program images.

``compile_kernel(name, arch, **shape)`` runs the kernel's planner (mapping level),
lowers every PE's task list to a ``pe_isa.program``, checks the program set for
deadlock, and emits one :class:`hw.image.ProgramImage` per used PE; the DRAM
inputs ride in the image of the first PE.  The result also carries the inputs and
the numpy reference outputs (compositions of sim.numerics), and the work and
traffic figures the roofline needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.backend.builder import Mapped
from compiler.backend.lower import lower_kernel
from compiler.backend.overlap import overlap_units
from compiler.backend.vcfg import hoist_vcfg
from compiler.dialects import mapping as mp
from compiler.dialects.mapping import int_of, ints_of, ref_of
from compiler.dialects.pe_isa import ProgramOp, emit_image
from compiler.errors import CompileError
from hw.image import ProgramImage
from hw.isa import Op

__all__ = ["CompiledKernel", "KERNELS", "compile_kernel", "register_kernel"]


@dataclass
class CompiledKernel:
    name: str
    arch: object
    mapped: Mapped
    programs: list[ProgramOp]
    images: dict[tuple[int, int], ProgramImage]
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    macs: int
    compile_s: float
    traffic: dict = field(default_factory=dict)

    @property
    def plan(self) -> dict:
        return self.mapped.plan


# name -> (map function(arch, seed, **shape) -> (Mapped, inputs, expected, macs), defaults)
KERNELS: dict[str, tuple[Callable, dict]] = {}


def register_kernel(name: str, defaults: dict):
    def deco(fn):
        KERNELS[name] = (fn, defaults)
        return fn

    return deco


def compile_kernel(name: str, arch, seed: int = 0, **shape) -> CompiledKernel:
    from compiler.backend import kernels  # noqa: F401 - registers the kernels

    if name not in KERNELS:
        raise CompileError(f"unknown kernel {name!r}; kernels are: {', '.join(sorted(KERNELS))}")
    fn, defaults = KERNELS[name]
    unknown = set(shape) - set(defaults)
    if unknown:
        raise CompileError(
            f"kernel {name!r} has no parameter {sorted(unknown)[0]!r}; "
            f"parameters are: {', '.join(defaults)}"
        )
    params = {**defaults, **{k: v for k, v in shape.items() if v is not None}}
    t0 = time.perf_counter()
    mapped, inputs, expected, macs = fn(arch, seed=seed, **params)
    programs, images = emit_programs(arch, mapped)
    return CompiledKernel(
        name,
        arch,
        mapped,
        programs,
        images,
        inputs,
        expected,
        macs,
        time.perf_counter() - t0,
        traffic(arch, mapped.kernel),
    )


def emit_programs(arch, mapped: Mapped) -> tuple[list[ProgramOp], dict]:
    """Lower, check for deadlock and emit images of a mapped kernel; the DRAM inputs
    ride in the image of the first PE.  ``mapped.store`` gains the descriptors."""
    if mapped.lowered is not None:
        programs, store = mapped.lowered
        mapped.lowered = None  # programs are rewritten in place: use them once
    else:
        store = dict(mapped.store)
        programs = lower_kernel(arch, mapped.kernel, store)
    return finish_programs(arch, mapped, programs, store)


def finish_programs(arch, mapped: Mapped, programs: list[ProgramOp], store: dict):
    """Hoist constant VCFGs (vcfg.py), check lowered programs for deadlock, issue
    their unit commands nowait with the FENCEs they need (overlap.py, with
    ``arch.async_units``), emit one image per PE; the DRAM inputs ride in the image of
    the first PE."""
    blocking = {Op[name] for name in mapped.plan.get("blocking_units", ())}
    programs, hoisted = hoist_vcfg(programs)
    programs, mapped.plan["overlap"] = overlap_units(arch, programs, store, blocking)
    mapped.plan["overlap"].update(hoisted)
    images = {p.coords: emit_image(p, store, arch) for p in programs}
    first = min(images, key=lambda c: (c[1], c[0]))
    images[first].dram = [(t.offset, t.data) for t in mapped.dram.values() if t.data is not None]
    images[first].check(arch)
    mapped.store = store
    return programs, images


def traffic(arch, kernel: mp.KernelOp) -> dict:
    """Bytes moved: DRAM total, and per PE injected into / ejected from the NoC."""
    bufs = kernel.buffers()
    R, C = arch.mac_rows, arch.mac_cols
    dram = 0
    inject: dict[tuple[int, int], int] = {}
    eject: dict[tuple[int, int], int] = {}
    for pe in kernel.pes():
        me = pe.coords
        for op in pe.body.ops:
            if isinstance(op, mp.TransferOp):
                n = 16
                for c in ints_of(op, "count"):
                    n *= c
                remote = bufs[ref_of(op, "remote")]
                is_dram = remote.attributes["space"].data == "dram"
                dram += n if is_dram else 0
                if int_of(op, "read"):  # a multicast read (``to``) lands in every PE of it
                    x0, y0, x1, y1 = ints_of(op, "to") if "to" in op.attributes else (*me, *me)
                    for x in range(min(x0, x1), max(x0, x1) + 1):
                        for y in range(min(y0, y1), max(y0, y1) + 1):
                            eject[(x, y)] = eject.get((x, y), 0) + n
                else:
                    inject[me] = inject.get(me, 0) + n
                    if not is_dram:
                        x0, y0, x1, y1 = ints_of(op, "to")
                        for x in range(x0, x1 + 1):
                            for y in range(y0, y1 + 1):
                                eject[(x, y)] = eject.get((x, y), 0) + n
            elif isinstance(op, mp.StreamTilesOp):
                mt, nt = ints_of(op, "tiles")
                k = int_of(op, "k")
                n = mt * k * R if op.attributes["streamed"].data == "a" else nt * k * C
                dram += 0 if "leader" in op.attributes else n
                eject[me] = eject.get(me, 0) + n
                if "lead_to" in op.attributes:
                    inject[me] = inject.get(me, 0) + n
                    x0, y0, x1, y1 = ints_of(op, "lead_to")
                    for x in range(x0, x1 + 1):
                        for y in range(y0, y1 + 1):
                            eject[(x, y)] = eject.get((x, y), 0) + n
            elif isinstance(op, mp.StreamMatmulOp):
                mt, nt = ints_of(op, "tiles")
                for x, width in (("a", R), ("b", C)):
                    n = mt * nt * int_of(op, "k") * width
                    dram += 0 if f"{x}_leader" in op.attributes else n
                    eject[me] = eject.get(me, 0) + n
                    if f"{x}_lead_to" in op.attributes:
                        inject[me] = inject.get(me, 0) + n
                        x0, y0, x1, y1 = ints_of(op, f"{x}_lead_to")
                        for xx in range(x0, x1 + 1):
                            for yy in range(y0, y1 + 1):
                                eject[(xx, yy)] = eject.get((xx, yy), 0) + n
    return {"dram_bytes": dram, "inject": inject, "eject": eject}
