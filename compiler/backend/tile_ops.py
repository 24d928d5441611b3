"""Back-end task ops beyond the shared mapping dialect: ``mapping.matmul_at``.

``mapping.matmul_at`` is ``mapping.matmul`` on a window of its buffers: the A, B, C
and parameter pointers start at ``a_offset``/``b_offset``/``c_offset``/``p_offset``
bytes into their buffers, so a schedule can multiply the tiles that have arrived
so far (pipelined band loading, compiler/backend/gemm.py) without a buffer per tile.
``c_stride`` (one B tile only) is the C byte step from one A tile to the next (default
``R * ldc``: the tiles of a column strip; twice that for every other tile).
``qload = 0`` skips the parameter load when the previous op left the same
parameters in the output stage (one QLOAD per B tile instead of one per op).
``alda`` (>= 1) reads A row-major (docs/isa.md "Row-major A"): R rows of ``k`` bytes,
``16 * alda`` bytes apart, A tile i ``R * 16 * alda`` bytes after tile i - 1 (so a
row-major matrix of ``16 * alda`` columns needs no transposed copy).
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.irdl import irdl_op_definition
from xdsl.utils.exceptions import VerifyException

from compiler.dialects.mapping import _MM, TaskOp, int_of

__all__ = ["MatmulAtOp"]


@irdl_op_definition
class MatmulAtOp(TaskOp):
    """tiles = [mt, nt] starting at the offsets; C tile (i, j) at
    c + c_offset + i*R*ldc + j*C."""

    name = "mapping.matmul_at"
    NEEDS: ClassVar[dict[str, str]] = dict(_MM)
    OPTIONAL: ClassVar[dict[str, str]] = {
        "param_stride": "int",
        "a_offset": "int",
        "b_offset": "int",
        "c_offset": "int",
        "p_offset": "int",
        "qload": "int",
        "c_stride": "int",
        "alda": "int",
        "out32": "int",
    }

    def check(self) -> None:
        self._positive("tiles", "k")
        self._nonneg("a_offset", "b_offset", "c_offset", "p_offset", "c_stride", "alda")
        if "alda" in self.attributes and 16 * int_of(self, "alda") < int_of(self, "k"):
            raise VerifyException(
                "'mapping.matmul_at' alda rows of 16 * alda bytes must hold k bytes"
            )
        if int_of(self, "k") % 16:
            raise VerifyException("'mapping.matmul_at' k must be a multiple of 16")
        if "qload" in self.attributes and int_of(self, "qload") not in (0, 1):
            raise VerifyException("'mapping.matmul_at' qload must be 0 or 1")
