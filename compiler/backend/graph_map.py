"""Whole-graph mapping: a quantized module -> one program set for the chip.

``compile_graph(module, inputs, arch)`` maps every op of a quantized (qnt) module
onto PE groups and emits one :class:`hw.image.ProgramImage` per used PE, so that the
chip reference simulator runs the whole model; ``run_whole_graph`` runs it and
compares every chip tensor with the front end's interpreter, bit for bit.

* **Host entry/exit**: ``qnt.quantize`` (float -> int codes), ``graph.cast`` and
  layout ops of the non-quantized inputs (a boolean mask), and ``graph.gather`` of a
  constant table by input indices (an embedding lookup) run on the host before the
  chip starts; ``qnt.dequantize`` runs on the host after it.  Ops whose operands
  are all constants are constants (folded by the host).  Everything else runs on
  the chip, or raises UnsupportedError naming the op.
* **Tensors** live in DRAM, flat row-major, padded to 16 elements (every chunk
  boundary is then a 16-byte word).  ``graph.reshape`` is an alias (same bytes); a
  transpose/slice/expand whose uses are all chip ops is folded: its tensor is the
  source plus an index map, and its consumers gather through the composed map.
* **Placement**: an op's output is cut into chunks of whole units (16 elements, or
  rows for row ops, token tiles for matmuls); the PEs with the least code so far
  compute one chunk each (lowerings in graph_ops*.py).  At most ``arch.semaphores``
  PEs are used (one semaphore per producer PE at a consumer, plus its DMAs).  If a
  program overflows instruction memory, the graph is placed again with the measured
  code size of every op.
* **Sync** (graph_sched.py): a PE that wrote chunks of a tensor fences (reads its
  last word back) and SIGNALs every other PE that reads the tensor; consumers WAIT
  per producer PE in the global topological order, so no deadlock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from xdsl.ir import BlockArgument

from compiler.backend.builder import Mapped
from compiler.backend.compile import CompiledKernel
from compiler.backend.graph_ctx import Ctx, GraphPlan, Tensor
from compiler.backend.graph_prog import ceil16
from compiler.backend.graph_sched import emit_fitting
from compiler.dialects.qnt import qparams
from compiler.errors import CompileError, UnsupportedError
from compiler.ir import main_func
from hw.image import ProgramImage

__all__ = ["Tensor", "GraphPlan", "compile_graph", "run_whole_graph", "GraphRun"]

HOST_ENTRY = ("qnt.quantize", "graph.cast")
LAYOUT_NAMES = ("graph.reshape", "graph.expand", "graph.transpose", "graph.squeeze")


def _live_ops(fn) -> list:
    ops = list(fn.body.block.ops)
    ret = ops[-1]
    live = set(ret.operands)
    keep = []
    for op in reversed(ops[:-1]):
        if any(r in live for r in op.results):
            keep.append(op)
            live.update(op.operands)
    return list(reversed(keep)), ret


def _classify(ops) -> tuple[set, set, list]:
    """(host values, constant values, chip ops)."""
    host: set = set()
    consts: set = set()
    chip = []
    for op in ops:
        ins = list(op.operands)
        if op.name in ("graph.constant", "graph.weight") or (ins and all(v in consts for v in ins)):
            host.update(op.results)
            consts.update(op.results)
        elif op.name in HOST_ENTRY and all(v in host or _is_arg(v) for v in ins):
            host.update(op.results)
        elif (
            op.name == "graph.gather"
            and ins[0] in consts
            and all(v in host or _is_arg(v) for v in ins)
        ):
            host.update(op.results)
        elif op.name in LAYOUT_NAMES and qparams(ins[0]) is None and ins[0] in host:
            host.update(op.results)
        elif op.name == "qnt.dequantize":
            continue
        else:
            chip.append(op)
    return host, consts, chip


FOLDABLE = ("graph.transpose", "graph.slice", "graph.expand")


def _all_uses_on_chip(v, chip, live) -> bool:
    ops = [u.operation for u in v.uses if u.operation in live]
    return bool(ops) and all(o in chip for o in ops)


def _is_arg(v) -> bool:
    return isinstance(v, BlockArgument)


@dataclass
class GraphRun:
    ck: CompiledKernel
    plan: GraphPlan
    expected: dict[str, np.ndarray]


def compile_graph(module, inputs, arch, max_pes: int | None = None, fold: bool = True) -> GraphRun:
    """Map the whole quantized ``module`` for ``arch``; ``inputs`` as for the
    interpreter.  The interpreter's values give the host entry tensors and the
    expected value of every chip tensor."""
    from compiler.backend import graph_ops
    from compiler.interpreter import run

    t0 = time.perf_counter()
    fn = main_func(module)
    values: dict = {}
    args = fn.body.block.args
    if isinstance(inputs, dict):
        values.update((a, np.asarray(inputs[a.name_hint])) for a in args)
    else:
        values.update(zip(args, (np.asarray(x) for x in inputs), strict=True))

    def observe(op, out):
        values[op.results[0]] = out

    run(module, inputs, observer=observe)
    ops, ret = _live_ops(fn)
    host, consts, chip = _classify(ops)
    live = set(ops) | {ret}
    ctx = Ctx(arch, values)
    ctx.consts = consts
    plan = GraphPlan(host_ops=[op.name for op in ops if op not in chip])
    names: dict = {}

    def name_of(v) -> str:
        if v not in names:
            hint = v.name_hint or f"v{len(names)}"
            names[v] = hint if hint not in names.values() else f"{hint}.{len(names)}"
        return names[v]

    lowerings = []
    for index, op in enumerate(chip):
        for v in op.operands:
            if v not in ctx.tensors:
                if v not in host and not _is_arg(v):
                    raise CompileError(f"op #{index} ({op.name}): operand not produced yet")
                val = np.ascontiguousarray(values[v])
                t = Tensor(name_of(v), tuple(val.shape), _chip_dtype(val))
                t.data = val.astype(t.dtype).tobytes()
                t.data += bytes(t.nbytes - len(t.data))
                ctx.place(t)
                ctx.tensors[v] = t
        res = op.results[0]
        src = ctx.tensor(op.operands[0]) if op.operands else None
        materialize = src is not None and src.base is not None
        if op.name == "graph.reshape" and not (
            materialize and not _all_uses_on_chip(res, chip, live)
        ):  # same bytes, new shape: an alias (of a folded tensor: folded too)
            t = Tensor(name_of(res), tuple(values[res].shape), src.dtype, src.offset)
            t.producer, t.data, t.dram_name = src.producer, src.data, src.dram_name
            t.base, t.vmap = src.base, src.vmap
            ctx.tensors[res] = t
            lowerings.append(None)
            continue
        if fold and op.name in FOLDABLE and _all_uses_on_chip(res, chip, live):
            # a layout move without padding feeding only chip ops: no op of its own,
            # its consumers gather from the source with the composed index map
            src = ctx.tensor(op.operands[0])
            t = Tensor(name_of(res), tuple(values[res].shape), src.dtype)
            t.producer, t.base, t.vmap = src.producer, src, graph_ops.Layout(op, ctx, index).map
            ctx.tensors[res] = t
            lowerings.append(None)
            plan.folded.append(index)
            continue
        low = graph_ops.lowering(op, ctx, index)
        t = Tensor(name_of(res), tuple(values[res].shape), _chip_dtype(values[res]))
        t.producer = index
        ctx.place(t)
        ctx.tensors[res] = t
        lowerings.append(low)
    pes = [(x, y) for y in range(arch.mesh_rows) for x in range(arch.mesh_cols)]
    # a consumer has one semaphore per producer PE (and one for its own DMAs): with
    # at most `semaphores` PEs in use that can never run out
    pes = pes[: min(max_pes or len(pes), arch.semaphores)]
    chunks = _place(chip, lowerings, ctx, pes, plan)
    snap = (dict(ctx.dram), ctx.dram_top, dict(ctx.cache), ctx.n_const)
    progs = emit_fitting(chip, lowerings, ctx, chunks, plan)
    if max(len(p.code) for p in progs.values()) > arch.imem_words:
        # place again with the measured code size of every op's chunks
        for index, words in plan.code_words.items():
            lowerings[index].code_words = words
        ctx.dram, ctx.dram_top, ctx.cache, ctx.n_const = snap
        plan.ops = []
        chunks = _place(chip, lowerings, ctx, pes, plan)
        progs = emit_fitting(chip, lowerings, ctx, chunks, plan)
    images = {}
    for c, p in progs.items():
        from hw.isa import Op, encode

        p.code.append(encode(Op.HALT))
        images[c] = ProgramImage(p.code, sram=p.sram, name=f"graph_pe_{c[0]}_{c[1]}")
        images[c].meta = {"notes": {str(k): v for k, v in p.notes.items()}}
    first = min(images, key=lambda c: (c[1], c[0]))
    images[first].dram = [(t.offset, t.data) for t in ctx.dram.values() if t.data is not None]
    for im in images.values():
        im.check(arch)
    ret_vals = [v.owner.operands[0] if _deq(v) else v for v in ret.operands]
    expected, outputs = {}, {}
    for v, t in {v: t for v, t in ctx.tensors.items() if t.data is None and not t.base}.items():
        want = np.asarray(values[v])
        expected[t.name] = want.astype(t.dtype)
        outputs[t.name] = _decoder(t, want.shape)
    plan.tensors = {t.name: t for t in ctx.tensors.values()}
    plan.outputs = [ctx.tensors[v].name for v in ret_vals]
    mapped = Mapped(None, {}, dict(ctx.dram), outputs, {"ops": plan.ops})
    mapped.sram_peak = {c: p.peak for c, p in progs.items()}
    macs = sum(o.get("macs", 0) for o in plan.ops)
    traffic = {
        "dram_bytes": sum(p.dram_in + p.dram_out for p in progs.values()),
        "inject": {c: p.dram_out for c, p in progs.items()},
        "eject": {c: p.dram_in for c, p in progs.items()},
    }
    ck = CompiledKernel(
        "graph", arch, mapped, [], images, {}, expected, macs, time.perf_counter() - t0, traffic
    )
    return GraphRun(ck, plan, expected)


def _deq(v) -> bool:
    return getattr(getattr(v, "owner", None), "name", "") == "qnt.dequantize"


def _chip_dtype(val: np.ndarray) -> np.dtype:
    if val.dtype == np.bool_:
        return np.dtype(np.int8)
    if val.dtype.kind not in "iu" or val.dtype.itemsize > 4:
        raise UnsupportedError(f"a chip tensor must be int8/16/32, not {val.dtype}")
    return np.dtype(f"<i{val.dtype.itemsize}")


def _decoder(t: Tensor, shape):
    def decode(raw: dict) -> np.ndarray:
        return np.frombuffer(raw[t.dram_name], t.dtype)[: t.size].reshape(shape)

    return decode


def _place(chip, lowerings, ctx, pes, plan) -> list[list[tuple]]:
    """Per op: [(pe, e0, e1)] chunks of the output.  The group is the ``g`` PEs with
    the least code so far (estimated words per chunk), so that instruction memory
    fills evenly (it is what limits model size: no instruction streaming)."""
    out = []
    load = {pe: 0 for pe in pes}
    for index, (op, low) in enumerate(zip(chip, lowerings, strict=True)):
        if low is None:
            out.append([])
            folded = index in plan.folded
            plan.ops.append({"op": op.name, "index": index, "alias": True, "folded": folded})
            continue
        t = ctx.tensor(op.results[0])
        units = -(-t.size // low.unit)
        g = max(1, min(len(pes), units, -(-t.size // low.min_elems)))
        per = -(-units // g)
        chunks = []
        group = sorted(pes, key=lambda pe: load[pe])[:g]
        for i in range(g):
            e0, e1 = i * per * low.unit, min((i + 1) * per, units) * low.unit
            if e0 >= e1:
                break
            chunks.append((group[i], e0, min(e1, ceil16(t.size))))
            load[group[i]] += low.code_words
        out.append(chunks)
        plan.ops.append(
            {
                "op": op.name,
                "index": index,
                "out": t.name,
                "shape": list(t.shape),
                "pes": [list(c[0]) for c in chunks],
                "chunks": [[c[1], c[2]] for c in chunks],
                "macs": low.macs,
            }
        )
    return out


def run_whole_graph(module, inputs, arch, executor, max_pes: int | None = None) -> dict:
    """Compile, run on ``executor`` and compare every chip tensor with the interpreter."""
    gr = compile_graph(module, inputs, arch, max_pes)
    res = executor.run(gr.ck)
    mismatched = [n for n, want in gr.expected.items() if not np.array_equal(res.outputs[n], want)]
    return {
        "bit_exact": not mismatched,
        "mismatched": mismatched,
        "outputs": {n: res.outputs[n] for n in gr.plan.outputs},
        "cycles": res.cycles,
        "per_pe_cycles": res.per_pe_cycles,
        "instructions": res.instructions,
        "pes": len(gr.ck.images),
        "ops": len([o for o in gr.plan.ops if not o.get("alias")]),
        "imem_words_max": max(len(i.imem) for i in gr.ck.images.values()),
        "compile_s": gr.ck.compile_s,
        "run": gr,
    }
