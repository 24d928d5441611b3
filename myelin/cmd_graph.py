"""``myelin compile MODEL --programs -o OUT``: the whole-graph program set.

Adds ``--programs`` (and ``--inputs FILE.npz``) to ``myelin compile``: the model is
compiled to integer-only quantized IR (``--until quantized`` is implied and needs
``--calibration``), then the whole graph is mapped onto the chip
(compiler/backend/graph_map.py) and written as a compiled program directory
(compiler/backend/progdir.py), which ``myelin run OUT --on isa`` runs and compares
bit for bit with the interpreter.  The inputs baked into the directory are the
``--inputs`` file (one array per model input) or the first calibration sample.

Besides the program directory's files (program.json, expected.npz, layout.npz,
pe_<x>_<y>/), the folder gets model.mlir and weights.npz (the quantized IR),
schedule.txt (ops, PE groups, chunks, semaphores) and programs.s (the disassembly
of every PE with the op each instruction belongs to).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hw.errors import MyelinError


def _inputs(args: argparse.Namespace, module) -> dict:
    import numpy as np

    from compiler.calibration import load_samples
    from compiler.ir import main_func

    names = [a.name_hint for a in main_func(module).body.block.args]
    if args.inputs:
        try:
            with np.load(args.inputs) as f:
                feeds = {k: f[k] for k in f.files}
        except OSError as exc:
            raise MyelinError(f"cannot read --inputs {args.inputs!r}: {exc}") from None
    else:
        feeds = load_samples(args.calibration)[0]
    missing = [n for n in names if n not in feeds]
    if missing:
        raise MyelinError(f"--inputs has no array for model input(s) {missing}")
    return {n: feeds[n] for n in names}


def schedule_text(gr) -> str:
    """The placement, chunks and semaphores of a mapped graph, one op per line."""
    lines = ["# op  kind  output[shape]  PE(elements)", "# semaphores: producer->consumer = sem"]
    for o in gr.plan.ops:
        if o.get("alias"):
            what = "folded into its consumers' gathers" if o.get("folded") else "alias"
            lines.append(f"#{o['index']:<3} {o['op']:<18} ({what})")
            continue
        pes = " ".join(
            f"{tuple(p)}[{a}:{b}]" for p, (a, b) in zip(o["pes"], o["chunks"], strict=True)
        )
        lines.append(f"#{o['index']:<3} {o['op']:<18} {o['out']}{o['shape']}  {pes}")
    for k, v in sorted(gr.plan.semaphores.items()):
        lines.append(f"sem {k} = {v}")
    return "\n".join(lines) + "\n"


def disassembly(gr) -> str:
    from hw.asm import format_instr

    out = []
    for (x, y), image in sorted(gr.ck.images.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        notes = image.meta.get("notes", {})
        out.append(f"# ---- PE ({x}, {y}): {len(image.imem)} instructions")
        for i, w in enumerate(image.imem):
            if str(i) in notes:
                out.append(f"    # {notes[str(i)]}")
            out.append(f"{i:5d}  {format_instr(w)}")
    return "\n".join(out) + "\n"


def byte_outputs(gr):
    """The model outputs as the program directory stores them: int8 outputs as they
    are, wider ones as their little-endian bytes (``name`` shape + [bytes])."""
    import numpy as np

    ck = gr.ck
    outputs, expected = {}, {}
    for name in gr.plan.outputs:
        fn, want = ck.mapped.outputs[name], gr.expected[name]
        if want.dtype.itemsize == 1:
            outputs[name], expected[name] = fn, want
        else:
            es = want.dtype.itemsize
            outputs[name] = lambda raw, fn=fn, es=es: (
                np.asarray(fn(raw)).view(np.int8).reshape(*np.shape(fn(raw)), es)
            )
            expected[name] = want.view(np.int8).reshape(*want.shape, es)
    ck.mapped.outputs, ck.expected = outputs, expected


def cmd_compile_programs(args: argparse.Namespace, plain) -> int:
    if not args.programs:
        return plain(args)
    from compiler.backend.graph_map import compile_graph
    from compiler.backend.progdir import save_program
    from compiler.driver import compile_model
    from hw.arch import load_arch

    if not args.calibration:
        raise MyelinError("--programs needs --calibration FILE.npz (the model is quantized)")
    arch = load_arch(args.arch)
    result = compile_model(
        args.model,
        arch=args.arch,
        until="quantized",
        calibration=args.calibration,
        quant_options=args.quant_options or "",
    )
    gr = compile_graph(result.module, _inputs(args, result.module), arch)
    byte_outputs(gr)
    out = Path(args.output)
    save_program(gr.ck, out, shape={"model": str(args.model)}, seed=0)
    result.write(out)
    (out / "schedule.txt").write_text(schedule_text(gr))
    (out / "programs.s").write_text(disassembly(gr))
    print(
        f"wrote {out}: {len(gr.ck.images)} PE programs for {arch.name}, "
        f"{len([o for o in gr.plan.ops if not o.get('alias')])} ops on the chip, "
        f"host: {json.dumps(sorted(set(gr.plan.host_ops) - {'graph.constant', 'graph.weight'}))}"
    )
    return 0


def register(sub: argparse._SubParsersAction, bench_sub: argparse._SubParsersAction) -> None:
    """Extend ``myelin compile`` (registered by myelin.cmd_compiler) with --programs."""
    p = sub.choices.get("compile")
    if p is None:
        return
    p.add_argument(
        "--programs",
        action="store_true",
        help="map the whole quantized graph onto the chip and write a program directory "
        "for `myelin run OUT --on isa`",
    )
    p.add_argument("--inputs", help=".npz with one array per model input (with --programs)")
    plain = p.get_default("func")
    p.set_defaults(func=lambda args: cmd_compile_programs(args, plain))
