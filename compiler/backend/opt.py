"""``python -m compiler.backend.opt FILE``: parse, verify and print back-end IR.

The filecheck tests of the ``mapping`` and ``pe_isa`` dialects drive this: it reads
MLIR text (builtin, mapping, pe_isa), verifies it and prints it again; with
``--lower`` it lowers each ``mapping.kernel`` to ``pe_isa`` programs; with
``--emit-asm`` it prints each ``pe_isa.program``'s instructions through
hw.isa.encode and the disassembler instead.  A parse or verifier error is printed
as one line ``error: <message>`` and the exit status is 1 (with
``--split-input-file`` every ``// -----`` chunk is handled alone and the status is 0).
"""

from __future__ import annotations

import argparse
import sys

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.ir import Dialect
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from compiler.backend.chain_ops import MatmulWinOp, TransposeBlockedOp
from compiler.backend.tile_ops import MatmulAtOp
from compiler.backend.vec_ops import QSoftmaxOp, RequantRowsOp
from compiler.dialects.mapping import MAPPING_OPS
from compiler.dialects.pe_isa import PeIsa, ProgramOp
from hw.asm import disassemble

__all__ = ["main", "context"]


# the mapping dialect plus the task ops the back end's planners define next to
# their templates (compiler/backend/*_ops.py)
Mapping = Dialect(
    "mapping",
    [*MAPPING_OPS, MatmulAtOp, MatmulWinOp, TransposeBlockedOp, QSoftmaxOp, RequantRowsOp],
    [],
)


def context() -> Context:
    ctx = Context()
    for d in (Builtin, Mapping, PeIsa):
        ctx.load_dialect(d)
    return ctx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="compiler.backend.opt")
    ap.add_argument("file")
    ap.add_argument("--emit-asm", action="store_true")
    ap.add_argument(
        "--lower",
        action="store_true",
        help="lower every mapping.kernel to pe_isa programs (arch from the kernel)",
    )
    ap.add_argument(
        "--split-input-file",
        action="store_true",
        help="treat '// -----' separated chunks as separate inputs",
    )
    args = ap.parse_args(argv)
    text = sys.stdin.read() if args.file == "-" else open(args.file).read()
    if not args.split_input_file:
        return _one(text, args)
    for chunk in text.split("// -----"):
        _one(chunk, args)
        print("// -----")
    return 0


def _one(text: str, args: argparse.Namespace) -> int:
    try:
        module = Parser(context(), text, args.file).parse_module()
        module.verify()
    except (ParseError, VerifyException) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        msg = (lines[-1] if isinstance(exc, ParseError) else lines[0]) if lines else repr(exc)
        print(f"error: {msg}")
        return 1
    if args.lower:
        from compiler.backend.lower import lower_kernel
        from compiler.dialects.mapping import KernelOp
        from hw.arch import load_arch

        for op in list(module.walk()):
            if isinstance(op, KernelOp):
                for prog in lower_kernel(load_arch(op.arch.data), op, {}):
                    print(prog)
        return 0
    if args.emit_asm:
        for op in module.walk():
            if isinstance(op, ProgramOp):
                print(f"# {op.sym_name.data} at {op.coords}")
                print(disassemble([i.encode() for i in op.instructions()]), end="")
        return 0
    print(module)
    return 0


if __name__ == "__main__":
    sys.exit(main())
