"""The ``mapping`` dialect: kernels placed on PEs as tiles, memory, transfers and sync.

A ``mapping.kernel`` holds the placement of one kernel on a chip: ``mapping.buffer``
symbols (a tensor piece in the SRAM of one PE or a rectangle of PEs, or in DRAM,
at a fixed byte offset) and one ``mapping.pe`` task list per used PE.  A task list
is executed in order by its PE; the ops in it are:

* ``mapping.transfer``: a DMA (3-D strided) between a local SRAM buffer and a DRAM
  or remote SRAM buffer; ``read`` moves remote -> local and increments the local
  semaphore ``sem``; a write goes to the node or rectangle ``to`` (multicast) and,
  with ``signal``, increments ``sem`` at every receiver.
* ``mapping.wait`` / ``mapping.signal``: semaphore synchronization; ``signal``
  targets the node or rectangle ``to``.
* ``mapping.matmul``: the output-stationary tile loop (``tiles`` = [m tiles, n tiles])
  of R x C MAC-array tiles over buffers ``a`` (packed K x R tiles), ``b`` (packed
  K x C tiles), output ``c`` and output-stage parameters ``params``.
* ``mapping.stream_matmul``: the same loop with A and B tiles streamed from DRAM
  in K chunks through two double-buffered slots each (the transfers and
  semaphores it uses are attributes, so the sync check sees them).
* ``mapping.stream_tiles``: one operand band resident, the other operand's whole-K
  tiles streamed from DRAM through two slots (each streamed tile is used for every
  tile of the resident band before its slot is refilled).
* ``mapping.transpose``: A-operand layout of an int8 row-major matrix, through the
  MAC array against selection matrices (docs/backend.md).
* ``mapping.softmax``: I-BERT integer softmax of int32 rows on the vector unit.

Every op prints as ``mapping.<op> {attributes}`` and has a verifier that checks the
attributes it needs, their types and ranges.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, Region
from xdsl.irdl import IRDLOperation, attr_def, irdl_op_definition, region_def, traits_def
from xdsl.traits import NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from compiler.dialects.pe_isa import int_attr

__all__ = ["Mapping", "MAPPING_OPS", "task", "ints_of", "int_of", "ref_of"]

# attribute kinds: "int", "ints", "str", "ref"
_KINDS = {"int": IntegerAttr, "ints": DenseArrayBase, "str": StringAttr, "ref": SymbolRefAttr}


def int_of(op: IRDLOperation, name: str) -> int:
    return int(op.attributes[name].value.data)


def ints_of(op: IRDLOperation, name: str) -> list[int]:
    return [int(v) for v in op.attributes[name].get_values()]


def ref_of(op: IRDLOperation, name: str) -> str:
    return op.attributes[name].root_reference.data


@cache
def _ints_attr(values: tuple[int, ...]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _attr(value) -> Attribute:
    """Attributes are immutable values in xDSL: equal ones are shared (a kernel builds
    tens of thousands of ops over few distinct numbers)."""
    if isinstance(value, bool | int):
        return int_attr(int(value))
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, SymbolRefAttr):
        return value
    if isinstance(value, list | tuple):
        return _ints_attr(tuple(int(v) for v in value))
    raise TypeError(f"no mapping attribute for {value!r}")


class TaskOp(IRDLOperation):
    """Base of the attribute-only mapping ops: ``NEEDS`` maps attribute -> kind,
    ``OPTIONAL`` likewise; ``check`` adds op-specific rules."""

    NEEDS: ClassVar[dict[str, str]] = {}
    OPTIONAL: ClassVar[dict[str, str]] = {}
    assembly_format = "attr-dict"

    def verify_(self) -> None:
        allowed = {**self.NEEDS, **self.OPTIONAL}
        for key in self.NEEDS:
            if key not in self.attributes:
                raise VerifyException(f"'{self.name}' needs attribute '{key}'")
        for key, attr in self.attributes.items():
            if key not in allowed:
                raise VerifyException(f"'{self.name}' has no attribute '{key}'")
            if not isinstance(attr, _KINDS[allowed[key]]):
                raise VerifyException(
                    f"'{self.name}' attribute '{key}' must be of kind {allowed[key]}"
                )
        self.check()

    def check(self) -> None:
        pass

    def _nonneg(self, *names: str) -> None:
        for n in names:
            if n in self.attributes:
                vals = (
                    ints_of(self, n)
                    if self.NEEDS.get(n, self.OPTIONAL.get(n)) == "ints"
                    else [int_of(self, n)]
                )
                if min(vals, default=0) < 0:
                    raise VerifyException(f"'{self.name}' attribute '{n}' must be >= 0")

    def _positive(self, *names: str) -> None:
        for n in names:
            vals = (
                ints_of(self, n)
                if self.NEEDS.get(n, self.OPTIONAL.get(n)) == "ints"
                else [int_of(self, n)]
            )
            if min(vals, default=1) < 1:
                raise VerifyException(f"'{self.name}' attribute '{n}' must be >= 1")

    def _rect(self, name: str) -> None:
        if name not in self.attributes:
            return
        r = ints_of(self, name)
        if len(r) != 4 or r[0] > r[2] or r[1] > r[3] or min(r) < 0:
            raise VerifyException(
                f"'{self.name}' attribute '{name}' must be a rectangle [x0, y0, x1, y1] "
                f"with x0 <= x1 and y0 <= y1, not {r}"
            )


def task(cls: type[TaskOp], **attrs) -> TaskOp:
    """Build a mapping op; symbol references are given as ``@name`` strings."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, str) and v.startswith("@"):
            v = SymbolRefAttr(v[1:])
        out[k] = _attr(v)
    return cls.build(attributes=out)


@irdl_op_definition
class BufferOp(TaskOp):
    """A tensor piece: ``bytes`` at ``offset`` of DRAM, or of the SRAM of every PE in
    the rectangle ``pes`` (same offset on each), in ``bank``."""

    name = "mapping.buffer"
    NEEDS: ClassVar[dict[str, str]] = {
        "sym_name": "str",
        "tensor": "str",
        "space": "str",
        "offset": "int",
        "bytes": "int",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "pes": "ints",
        "bank": "int",
        "live": "ints",
        "init": "str",
    }
    traits = traits_def(SymbolOpInterface())

    def check(self) -> None:
        space = self.attributes["space"].data
        if space not in ("sram", "dram"):
            raise VerifyException(f"'mapping.buffer' space must be sram or dram, not {space!r}")
        if space == "sram" and "pes" not in self.attributes:
            raise VerifyException("'mapping.buffer' in sram needs attribute 'pes'")
        if int_of(self, "offset") % 16 or int_of(self, "offset") < 0:
            raise VerifyException("'mapping.buffer' offset must be 16-aligned and >= 0")
        self._positive("bytes")
        self._rect("pes")


@irdl_op_definition
class TransferOp(TaskOp):
    """A DMA between ``local`` and ``remote`` (DRAM, or SRAM at the node or rectangle
    ``to``); ``read`` = 1: remote -> local.  A DRAM read with a rectangle ``to`` is a
    multicast read (docs/isa.md): the words land at ``local`` in every PE of ``to``,
    of which the issuing PE must be a corner, and signal ``sem`` in each."""

    name = "mapping.transfer"
    NEEDS: ClassVar[dict[str, str]] = {
        "local": "ref",
        "remote": "ref",
        "count": "ints",
        "sem": "int",
        "read": "int",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "local_offset": "int",
        "remote_offset": "int",
        "local_strides": "ints",
        "remote_strides": "ints",
        "to": "ints",
        "signal": "int",
    }

    def check(self) -> None:
        if len(ints_of(self, "count")) != 3:
            raise VerifyException("'mapping.transfer' count must be [words, rows, planes]")
        self._positive("count")
        self._nonneg("sem", "local_offset", "remote_offset")
        self._rect("to")


def _check_multicast_read(op: TransferOp, coords: tuple[int, int], bufs: dict) -> None:
    """A read with a rectangle ``to`` is a multicast read: from DRAM only (the back
    end does not multicast reads of another PE's SRAM), the reading PE a corner."""
    if not int_of(op, "read") or "to" not in op.attributes:
        return
    x0, y0, x1, y1 = ints_of(op, "to")
    if (x0, y0) == (x1, y1):
        return
    remote = ref_of(op, "remote")
    if bufs[remote].attributes["space"].data != "dram":
        raise VerifyException(
            f"'mapping.transfer' on PE {coords}: a multicast read must read DRAM, not the "
            f"SRAM buffer @{remote}"
        )
    if coords[0] not in (x0, x1) or coords[1] not in (y0, y1):
        raise VerifyException(
            f"'mapping.transfer' on PE {coords}: multicast read of @{remote} to "
            f"{[x0, y0, x1, y1]}: the reading PE must be a corner of the rectangle"
        )


@irdl_op_definition
class WaitOp(TaskOp):
    name = "mapping.wait"
    NEEDS: ClassVar[dict[str, str]] = {"sem": "int", "count": "int"}

    def check(self) -> None:
        self._nonneg("sem")
        self._positive("count")


@irdl_op_definition
class SignalOp(TaskOp):
    name = "mapping.signal"
    NEEDS: ClassVar[dict[str, str]] = {"sem": "int", "count": "int", "to": "ints"}

    def check(self) -> None:
        self._nonneg("sem")
        self._positive("count")
        self._rect("to")


_MM = {
    "a": "ref",
    "b": "ref",
    "c": "ref",
    "params": "ref",
    "tiles": "ints",
    "k": "int",
    "ldc": "int",
}


@irdl_op_definition
class MatmulOp(TaskOp):
    """tiles = [mt, nt]; c tile (i, j) at c + i*R*ldc + j*C (or 4*C with out32)."""

    name = "mapping.matmul"
    NEEDS: ClassVar[dict[str, str]] = dict(_MM)
    OPTIONAL: ClassVar[dict[str, str]] = {"out32": "int", "param_stride": "int"}

    def check(self) -> None:
        self._positive("tiles", "k")
        if int_of(self, "k") % 16:
            raise VerifyException("'mapping.matmul' k must be a multiple of 16")


@irdl_op_definition
class StreamMatmulOp(TaskOp):
    """K-streamed tiles: chunks of ``kc`` from DRAM buffers ``a_src``/``b_src`` into two
    slots each (``a``/``b`` hold both slots), completion on semaphores ``sems``.  With
    ``a_lead_to``/``b_lead_to`` the PE multicasts its chunks to that rectangle; with
    ``a_leader``/``b_leader`` it receives them from that PE and returns each slot by a
    SIGNAL on ``credits`` (A slot 0, 1, B slot 0, 1)."""

    name = "mapping.stream_matmul"
    NEEDS: ClassVar[dict[str, str]] = {
        **_MM,
        "a_src": "ref",
        "b_src": "ref",
        "kc": "int",
        "sems": "ints",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "param_stride": "int",
        "a_offset": "int",
        "b_offset": "int",
        "a_lead_to": "ints",
        "b_lead_to": "ints",
        "a_leader": "ints",
        "b_leader": "ints",
        "credits": "ints",
    }

    def check(self) -> None:
        self._positive("tiles", "k", "kc")
        k, kc = int_of(self, "k"), int_of(self, "kc")
        if kc % 16 or k % (2 * kc):
            raise VerifyException(
                f"'mapping.stream_matmul' kc must be a multiple of 16 and k a multiple "
                f"of 2*kc, not k={k}, kc={kc}"
            )
        if len(ints_of(self, "sems")) != 2:
            raise VerifyException("'mapping.stream_matmul' sems must name two semaphores")
        self._rect("a_lead_to")
        self._rect("b_lead_to")
        roles = [
            r for r in ("a_lead_to", "b_lead_to", "a_leader", "b_leader") if r in self.attributes
        ]
        if roles and len(ints_of(self, "credits") if "credits" in self.attributes else []) != 4:
            raise VerifyException(
                "'mapping.stream_matmul' multicast needs four credit semaphores "
                "(A slot 0, 1, B slot 0, 1)"
            )


@irdl_op_definition
class StreamTilesOp(TaskOp):
    """One operand resident, the other streamed: ``streamed = "a"`` keeps the B band
    in ``b`` and streams the full-K A tiles from ``src`` (+ ``src_offset``) through the
    two slots of ``a`` (semaphores ``sems``), reusing each A tile for all n tiles;
    ``"b"`` is the mirror image (A band resident, B tiles streamed).  With ``lead_to``
    the PE also multicasts every tile to that rectangle of followers, which name it in
    ``leader``; followers return each slot with a SIGNAL on ``credits[slot]``."""

    name = "mapping.stream_tiles"
    NEEDS: ClassVar[dict[str, str]] = {
        **_MM,
        "streamed": "str",
        "src": "ref",
        "sems": "ints",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {
        "param_stride": "int",
        "src_offset": "int",
        "lead_to": "ints",
        "leader": "ints",
        "credits": "ints",
    }

    def check(self) -> None:
        self._positive("tiles", "k")
        self._rect("lead_to")
        if ("lead_to" in self.attributes or "leader" in self.attributes) and len(
            ints_of(self, "credits") if "credits" in self.attributes else []
        ) != 2:
            raise VerifyException("'mapping.stream_tiles' multicast needs two credit semaphores")
        if self.attributes["streamed"].data not in ("a", "b"):
            raise VerifyException('\'mapping.stream_tiles\' streamed must be "a" or "b"')
        if int_of(self, "k") % 16:
            raise VerifyException("'mapping.stream_tiles' k must be a multiple of 16")
        if len(ints_of(self, "sems")) != 2:
            raise VerifyException("'mapping.stream_tiles' sems must name two semaphores")


@irdl_op_definition
class TransposeOp(TaskOp):
    """src: rows x cols int8 (row stride ldc, columns permuted within C-chunks) ->
    dst: A-operand tiles [rows/R][cols][R]; ``sel`` holds the selection matrices."""

    name = "mapping.transpose"
    NEEDS: ClassVar[dict[str, str]] = {
        "src": "ref",
        "dst": "ref",
        "sel": "ref",
        "params": "ref",
        "rows": "int",
        "cols": "int",
        "ldc": "int",
    }

    def check(self) -> None:
        self._positive("rows", "cols", "ldc")


@irdl_op_definition
class SoftmaxOp(TaskOp):
    """I-BERT softmax over each of ``rows`` int32 rows of ``cols`` in ``src`` -> int8
    probabilities (scale 2**-8, zero point -128) in ``dst``; ``mask`` (int32 per
    column) is added to every row first."""

    name = "mapping.softmax"
    NEEDS: ClassVar[dict[str, str]] = {
        "src": "ref",
        "dst": "ref",
        "tmp": "ref",
        "rows": "int",
        "cols": "int",
        "consts": "ints",
    }
    OPTIONAL: ClassVar[dict[str, str]] = {"mask": "ref"}

    def check(self) -> None:
        self._positive("rows", "cols")
        if int_of(self, "cols") % 16 or int_of(self, "rows") % 4:
            raise VerifyException(
                "'mapping.softmax' cols must be a multiple of 16 and rows a multiple of 4"
            )
        if len(ints_of(self, "consts")) != 4:
            raise VerifyException("'mapping.softmax' consts must be [qln2, qb, qc, recip_k]")


class _Container(IRDLOperation):
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def __init__(self, attributes: dict[str, Attribute], ops=()) -> None:
        super().__init__(attributes=attributes, regions=[Region(Block(list(ops)))])


@irdl_op_definition
class PeOp(_Container):
    """The ordered task list of the PE at ``pe`` = [x, y]."""

    name = "mapping.pe"
    pe = attr_def(DenseArrayBase)
    assembly_format = "attr-dict-with-keyword $body"

    def verify_(self) -> None:
        vals = [int(v) for v in self.pe.get_values()]
        if len(vals) != 2 or min(vals) < 0:
            raise VerifyException("'mapping.pe' pe must be [x, y] with x, y >= 0")
        for op in self.body.ops:
            if not isinstance(op, TaskOp) or isinstance(op, BufferOp):
                raise VerifyException(f"'mapping.pe' holds task ops, not '{op.name}'")

    @property
    def coords(self) -> tuple[int, int]:
        x, y = (int(v) for v in self.pe.get_values())
        return x, y


@irdl_op_definition
class KernelOp(_Container):
    """One kernel mapped onto a chip: buffers, then one task list per used PE."""

    name = "mapping.kernel"
    sym_name = attr_def(SymbolNameConstraint())
    arch = attr_def(StringAttr)
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def verify_(self) -> None:
        names: set[str] = set()
        pes: set[tuple[int, int]] = set()
        for op in self.body.ops:
            if isinstance(op, BufferOp):
                n = op.attributes["sym_name"].data
                if n in names:
                    raise VerifyException(f"'mapping.kernel' defines buffer @{n} twice")
                names.add(n)
            elif isinstance(op, PeOp):
                if op.coords in pes:
                    raise VerifyException(f"'mapping.kernel' has two task lists for PE {op.coords}")
                pes.add(op.coords)
            else:
                raise VerifyException(f"'mapping.kernel' holds buffers and PEs, not '{op.name}'")
        for pe in self.body.ops:
            if not isinstance(pe, PeOp):
                continue
            for op in pe.body.ops:
                for key, attr in op.attributes.items():
                    if isinstance(attr, SymbolRefAttr) and attr.root_reference.data not in names:
                        raise VerifyException(
                            f"'{op.name}' on PE {pe.coords}: attribute '{key}' names "
                            f"unknown buffer @{attr.root_reference.data}"
                        )
                if isinstance(op, TransferOp):
                    _check_multicast_read(op, pe.coords, self.buffers())

    def buffers(self) -> dict[str, BufferOp]:
        return {
            op.attributes["sym_name"].data: op for op in self.body.ops if isinstance(op, BufferOp)
        }

    def pes(self) -> list[PeOp]:
        return [op for op in self.body.ops if isinstance(op, PeOp)]


MAPPING_OPS = [
    BufferOp,
    StreamTilesOp,
    TransferOp,
    WaitOp,
    SignalOp,
    MatmulOp,
    StreamMatmulOp,
    TransposeOp,
    SoftmaxOp,
    PeOp,
    KernelOp,
]
Mapping = Dialect("mapping", MAPPING_OPS, [])
