"""The whole-graph program set at the ISA level: ``pe_isa`` IR and the static check.

``pe_isa_programs(ck)`` turns the images of a mapped graph (graph_map.compile_graph)
into ``pe_isa.program`` ops (one per PE: its SRAM segments, named by keys of a
constant store, then one op per instruction word), the same IR level that
compile.py emits for kernels, so the back end's static deadlock check
(deadlock.check_deadlock: abstract execution of every program with every semaphore
increment applied when its DMA or SIGNAL issues, then a wait-for graph) runs on a
whole model: ``check_graph(ck)`` raises DeadlockError naming the PE, semaphore and
instruction if some WAIT can never be satisfied (a SIGNAL removed by hand, say).
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64

from compiler.backend.deadlock import check_deadlock
from compiler.dialects.pe_isa import ProgramOp, SegmentOp, instr
from hw.isa import decode

__all__ = ["pe_isa_programs", "check_graph"]


def pe_isa_programs(ck) -> tuple[list[ProgramOp], dict[str, bytes]]:
    """(programs, store) of the images of ``ck``, PEs in row-major order."""
    store: dict[str, bytes] = {}
    programs = []
    for (x, y), image in sorted(ck.images.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ops = []
        for i, (addr, data) in enumerate(image.sram):
            key = f"graph.pe_{x}_{y}.sram{i}"
            store[key] = data
            ops.append(
                SegmentOp.build(
                    attributes={
                        "space": StringAttr("sram"),
                        "addr": IntegerAttr(addr, i64),
                        "ref": StringAttr(key),
                    }
                )
            )
        for word in image.imem:
            d = decode(word)
            ops.append(instr(d.op, **dict(d.args)))
        programs.append(ProgramOp(f"graph_pe_{x}_{y}", (x, y), ops))
    return programs, store


def check_graph(ck, max_steps: int = 50_000_000) -> dict:
    """The static deadlock check of a whole-graph program set (DeadlockError)."""
    programs, store = pe_isa_programs(ck)
    return check_deadlock(ck.arch, programs, store, max_steps)
