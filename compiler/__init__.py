"""Myelin's compiler: ONNX import, graph and quantized dialects, passes, interpreter.

Levels: ONNX -> ``graph`` dialect (float tensor ops) -> graph passes -> ``qnt``
dialect (integer-only) -> back end.  See docs/compiler.md.
"""

import os

# The interpreter's matmuls are small; OpenBLAS threads only contend on a shared
# machine (measured 10x slower with 2 threads on 2 busy cores).  An explicit setting
# by the user wins; this only has an effect if numpy is not imported yet.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
