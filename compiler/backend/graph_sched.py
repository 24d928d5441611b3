"""Emission and synchronization of the whole-graph mapper (graph_map.py).

For every chip op in program order and every (PE, chunk) of its placement: the
WAITs for the producer PEs of its inputs, the lowering's code, a fence (the last
written DRAM word read back), and a SIGNAL to every other PE that reads the output.

Semaphores: 0 counts the PE's own DMA completions; signals from producer PE q arrive
at consumer c on ``1 + index of q among c's producers``.  q signals c once after
each of its ops whose output c reads, in q's program order; before an op, c waits
on q's semaphore until the count reaches the rank of the producing op in that
list (``WAIT sem, rank - consumed``).  All PEs follow the same topological order, so
every wait names an earlier op: the program set cannot deadlock (graph_isa checks
it statically).

SRAM: a chunk whose scratch does not fit is split in halves (whole units); static
data (descriptors) grows down from the top while scratch restarts at 0 for every
op, so a PE whose static region ended up below an earlier op's scratch is emitted
again with its scratch kept below it.
"""

from __future__ import annotations

from compiler.backend.alloc import AllocError
from compiler.backend.graph_prog import PeProgram
from compiler.errors import CompileError

__all__ = ["emit_fitting"]


def emit_fitting(chip, lowerings, ctx, chunks, plan) -> dict:
    """Emit all programs; where a PE's static data (descriptors, constant words),
    which grows down from the top of SRAM as ops are emitted, ended up below the
    scratch an earlier op used, emit again with that PE's scratch kept below it."""
    limits: dict = {}
    for _ in range(6):
        snap = (dict(ctx.dram), ctx.dram_top, dict(ctx.cache), ctx.n_const)
        progs: dict = {}
        _emit(chip, lowerings, ctx, chunks, progs, plan, limits)
        bad = {c: p for c, p in progs.items() if p.peak > p.static_bottom}
        if not bad:
            return progs
        for c, p in bad.items():
            limits[c] = (min(limits.get(c, p.static_bottom), p.static_bottom) - 1024) // 16 * 16
        ctx.dram, ctx.dram_top, ctx.cache, ctx.n_const = snap
    c, p = next(iter(bad.items()))
    raise AllocError(
        f"PE {c}: {ctx.arch.sram_bytes - p.static_bottom} bytes of descriptors and "
        f"constants and {p.peak} bytes of op scratch do not fit {ctx.arch.sram_bytes} "
        "bytes of SRAM"
    )


def _emit(chip, lowerings, ctx, chunks, progs, plan, limits) -> None:
    arch = ctx.arch
    writers = {i: list(dict.fromkeys(c[0] for c in ch)) for i, ch in enumerate(chunks)}
    deps: dict[int, set] = {}  # op -> producer ops on the chip
    for index, op in enumerate(chip):
        deps[index] = {
            ctx.tensor(v).producer for v in op.operands if ctx.tensor(v).producer is not None
        }
    # signal lists: q -> c -> [producer op indices in q's order]
    sig: dict = {}
    for index, ch in enumerate(chunks):
        for pe, _, _ in ch:
            for p in sorted(deps[index]):
                for q in writers[p]:
                    if q != pe:
                        lst = sig.setdefault(q, {}).setdefault(pe, [])
                        if p not in lst:
                            lst.append(p)
    for q in sig:
        for c in sig[q]:
            sig[q][c].sort()
    sems: dict = {}
    for q in sorted(sig):
        for c in sorted(sig[q]):
            producers = sorted(qq for qq in sig if c in sig[qq])
            sems[(q, c)] = 1 + producers.index(q)
            if sems[(q, c)] >= arch.semaphores:
                raise CompileError(
                    f"PE {c} reads tensors written by {len(producers)} other PEs; it has "
                    f"{arch.semaphores} semaphores (one per producer PE plus one for its DMAs)"
                )
            if len(sig[q][c]) > arch.sem_max:
                raise CompileError(
                    f"PE {q} signals PE {c} {len(sig[q][c])} times, above sem_max {arch.sem_max}"
                )
    plan.semaphores = {f"{q}->{c}": s for (q, c), s in sems.items()}
    consumed: dict = {}
    for index, op in enumerate(chip):
        low = lowerings[index]
        if low is None:
            continue
        t = ctx.tensor(op.results[0])
        for pe, e0, e1 in chunks[index]:
            prog = progs.setdefault(pe, PeProgram(ctx.arch, pe, limits.get(pe)))
            prog.begin_op(f"#{index} {op.name} -> {t.name}[{e0}:{e1}]")
            for p in sorted(deps[index]):
                for q in writers[p]:
                    if q == pe:
                        continue
                    rank = sig[q][pe].index(p) + 1
                    have = consumed.get((q, pe), 0)
                    if rank > have:
                        prog.note(f"wait for PE {q} (op #{p})")
                        prog.wait(sems[(q, pe)], rank - have)
                        consumed[(q, pe)] = rank
            start = len(prog.code)
            _emit_range(ctx, prog, low, e0, e1)
            words = len(prog.code) - start + 6  # + the waits and signals around it
            plan.code_words[index] = max(plan.code_words.get(index, 0), words)
            for c in sorted(sig.get(pe, {})):
                if index in sig[pe][c]:
                    prog.note(f"signal PE {c}")
                    prog.signal(c, sems[(pe, c)])


def _emit_range(ctx, prog: PeProgram, low, e0: int, e1: int) -> None:
    """Emit elements [e0, e1) of an op; a chunk whose scratch does not fit SRAM is
    split in halves (whole units) and emitted one after the other."""
    snap = (
        len(prog.code),
        len(prog.sram),
        prog.static_bottom,
        dict(prog.notes),
        prog.top,
        dict(prog.static_at),
    )
    try:
        low.emit(ctx, prog, e0, e1)
        prog.fence()
    except AllocError:
        units = -(-(e1 - e0) // low.unit)
        if units < 2:
            raise
        del prog.code[snap[0] :]
        del prog.sram[snap[1] :]
        prog.static_bottom, prog.notes, prog.top, prog.static_at = snap[2:]
        prog.forget()
        mid = e0 + units // 2 * low.unit
        _emit_range(ctx, prog, low, e0, mid)
        prog.top = 0
        _emit_range(ctx, prog, low, mid, e1)
