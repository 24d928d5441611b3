"""Lowering and emission of kernels that use the chain ops (chain_ops.py, vec_ops.py).

lower.py dispatches a fixed table of op classes, so until it registers the chain
templates (``VecTemplates``, ``ChainTemplates``; docs/backend.md, "Lowering of the
chain ops"), :class:`ChainLowering` lowers these kernels: ``_PeLowering`` with the
mixins, which places the SRAM segments as lower.py does and sends every op to the
template named like it (``mapping.<name>`` -> ``<name>``; ``mapping.matmul_at`` ->
``matmul``).  :func:`emit_programs` is compile.emit_programs with this lowering and
:func:`compile_mapped` builds a CompiledKernel with it.
"""

from __future__ import annotations

import time

from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64

from compiler.backend.chain_ops import ChainTemplates, MatmulWinOp, TransposeBlockedOp
from compiler.backend.codegen import I, drop_same_strides
from compiler.backend.compile import CompiledKernel, finish_programs, traffic
from compiler.backend.lower import _PeLowering
from compiler.backend.vec_ops import QSoftmaxOp, RequantRowsOp, VecTemplates
from compiler.dialects.mapping import ints_of
from compiler.dialects.pe_isa import ProgramOp, SegmentOp
from compiler.errors import CompileError
from hw.isa import Op

__all__ = ["ChainLowering", "ImemError", "emit_programs", "compile_mapped"]


_OWN = {
    RequantRowsOp: "requant_rows",
    QSoftmaxOp: "qsoftmax",
    MatmulWinOp: "matmul_win",
    TransposeBlockedOp: "transpose_blocked",
}


class ImemError(CompileError):
    """A program longer than the instruction memory."""


class ChainLowering(_PeLowering, VecTemplates, ChainTemplates):
    """_PeLowering with the vector-row templates.  Until lower.py dispatches on the
    mixin itself, this driver does: it places the SRAM segments as lower.py does and
    sends every other op to the template named like the op (mapping.<name> ->
    <name>; mapping.matmul_at -> matmul)."""

    def lower(self) -> ProgramOp:
        for name, buf in self.bufs.items():
            if buf.attributes["space"].data != "sram" or "init" not in buf.attributes:
                continue
            x0, y0, x1, y1 = ints_of(buf, "pes")
            if x0 <= self.coords[0] <= x1 and y0 <= self.coords[1] <= y1:
                self.segments.append(
                    SegmentOp.build(
                        attributes={
                            "space": StringAttr("sram"),
                            "addr": IntegerAttr(self.off(name), i64),
                            "ref": StringAttr(buf.attributes["init"].data),
                        }
                    )
                )
        for op in self.pe.body.ops:
            name = _OWN.get(type(op)) or op.name.split(".", 1)[1].removesuffix("_at")
            getattr(self, name)(op)
        self.code = drop_same_strides(self.code)
        self.code.append(I(Op.HALT))
        if len(self.code) > self.arch.imem_words:
            raise ImemError(
                f"program of PE {self.coords} has {len(self.code)} instructions; instruction "
                f"memory holds {self.arch.imem_words}"
            )
        return ProgramOp(self.prefix.replace(".", "_"), self.coords, [*self.segments, *self.code])


def emit_programs(arch, mapped) -> tuple[list[ProgramOp], dict]:
    """compile.emit_programs with the vector-row templates."""
    store = dict(mapped.store)
    programs = [ChainLowering(arch, mapped.kernel, store, pe).lower() for pe in mapped.kernel.pes()]
    for p in programs:
        p.verify()
    return finish_programs(arch, mapped, programs, store)


def compile_mapped(
    name: str, arch, build, inputs: dict, expected: dict, macs: int, parts: int = 0
) -> CompiledKernel:
    """A CompiledKernel of ``build()`` (-> Mapped) lowered with the chain templates.
    With ``parts``, ``build(p)`` broadcasts shared operands in ``p`` parts: p is halved
    until the programs fit the instruction memory (more parts: earlier compute, more
    instructions)."""
    t0 = time.perf_counter()
    while True:
        mapped = build(parts) if parts else build()
        try:
            programs, images = emit_programs(arch, mapped)
            break
        except ImemError:
            if parts <= 1:
                raise
            parts //= 2
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
