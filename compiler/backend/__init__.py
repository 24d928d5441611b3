"""Myelin's compiler back end: mapping, memory planning, sync, ISA code generation.

Levels: kernel planners (gemm.py, mlp.py, conv.py, attention.py, with groups.py and
layout.py) build ``mapping`` IR (compiler/dialects/mapping.py) through builder.py,
which places SRAM buffers with liveness (alloc.py); lower.py and lower_stream.py
turn every PE's task list into a ``pe_isa`` program (compiler/dialects/pe_isa.py);
deadlock.py checks the program set; compile.py emits program images; run.py
executes them and compares outputs bit-exactly with the numpy references; graph.py
runs the qnt.matmul ops of a front-end module on the chip against the front end's
interpreter.  docs/backend.md describes the model.
"""
