"""The ``pe_isa`` dialect: one op per PE instruction, emitted as binary program images.

The op classes are generated from :func:`hw.isa.fields_of`: ``pe_isa.<mnemonic>``
carries exactly the fields of that opcode as integer attributes, in the order of
the encoding table, so no field is retyped here.  The text form mirrors the
assembler's ``name=value`` operands::

    pe_isa.program @gemm_0_0 attributes {pe = array<i64: 0, 0>} {
      pe_isa.segment {space = "sram", addr = 4096 : i64, ref = "qparams"}
      pe_isa.li rd = 1, imm = 4096
      pe_isa.loop rs1 = 0, body = 1, imm = 8
      pe_isa.matmul rs1 = 1, rs2 = 2, rs3 = 3, k16 = 4, out32 = 0, acc = 0, noout = 0, ldc = 64
      pe_isa.halt
    }

Every field must fit its encoding (the verifier runs ``hw.isa.decode(encode(...))``,
so sub-field rules such as ``k16 >= 1`` are checked too).  ``pe_isa.segment`` places
bytes held in a constant store (never inline in the IR) in SRAM or DRAM.
:func:`emit_image` turns a program into a :class:`hw.image.ProgramImage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import ClassVar

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    i64,
)
from xdsl.ir import Block, Dialect, Region
from xdsl.irdl import (
    IRDLOperation,
    attr_def,
    irdl_op_definition,
    region_def,
    traits_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from hw.errors import EncodingError
from hw.image import ProgramImage
from hw.isa import Op, decode, encode, fields_of

__all__ = [
    "ISA_OPS", "PeIsa", "InstrOp", "ProgramOp", "SegmentOp", "emit_image", "instr", "int_attr"
]  # fmt: skip


class InstrOp(IRDLOperation):
    """Base of the generated instruction ops; ``OPCODE`` is set per subclass."""

    OPCODE: ClassVar[Op] = Op.NOP

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return _field_names(cls.OPCODE)

    def values(self) -> dict[str, int]:
        out = {}
        for name in self.field_names():
            attr = self.attributes.get(name)
            out[name] = int(attr.value.data) if isinstance(attr, IntegerAttr) else 0
        return out

    def set_field(self, name: str, value: int) -> None:
        """Set one field in place (the caller verifies the op afterwards)."""
        self.attributes[name] = int_attr(int(value))

    def encode(self) -> int:
        return _encode(self.OPCODE, tuple(self.values().items()))

    def verify_(self) -> None:
        names = set(self.field_names())
        for key, attr in self.attributes.items():
            if key not in names:
                raise VerifyException(f"'{self.name}' has no field '{key}'")
            if not isinstance(attr, IntegerAttr):
                raise VerifyException(f"'{self.name}' field '{key}' must be an integer")
        try:
            _check(self.OPCODE, tuple(self.values().items()))
        except EncodingError as exc:
            raise VerifyException(f"'{self.name}': {exc}") from None

    def print(self, printer: Printer) -> None:
        parts = [f"{k} = {v}" for k, v in self.values().items()]
        if parts:
            printer.print_string(" " + ", ".join(parts))

    @classmethod
    def parse(cls, parser: Parser) -> InstrOp:
        values: dict[str, int] = {}
        names = cls.field_names()
        while True:
            name = next((n for n in names if parser.parse_optional_keyword(n)), None)
            if name is None:
                if values:
                    parser.raise_error(f"'{cls.name}' expects one of the fields {', '.join(names)}")
                break
            if name in values:
                parser.raise_error(f"'{cls.name}' field '{name}' is given twice")
            parser.parse_punctuation("=")
            values[name] = parser.parse_integer(allow_boolean=False)
            if parser.parse_optional_punctuation(",") is None:
                break
        return cls.build(attributes={k: int_attr(v) for k, v in values.items()})


@cache
def _field_names(op: Op) -> tuple[str, ...]:
    return tuple(f.name for f in fields_of(op))


@cache
def _encode(op: Op, values: tuple[tuple[str, int], ...]) -> int:
    return encode(op, **dict(values))


@cache
def _check(op: Op, values: tuple[tuple[str, int], ...]) -> None:
    """Raise EncodingError unless the fields encode and decode (sub-field rules)."""
    decode(_encode(op, values))


@cache
def int_attr(value: int) -> IntegerAttr:
    """Field values as shared attributes: xDSL attributes are immutable values, and a
    program of thousands of instructions uses few distinct numbers."""
    return IntegerAttr(value, i64)


def _make_instr_class(op: Op) -> type[InstrOp]:
    cls = type(
        f"{op.name.capitalize()}Op",
        (InstrOp,),
        {
            "name": f"pe_isa.{op.name.lower()}",
            "OPCODE": op,
            "__annotations__": {"OPCODE": ClassVar[Op]},
            "__doc__": f"PE instruction {op.name}.",
        },
    )
    return irdl_op_definition(cls)


INSTR_CLASSES: dict[Op, type[InstrOp]] = {op: _make_instr_class(op) for op in Op}


def instr(op: Op, **values: int) -> InstrOp:
    """A ``pe_isa`` op for opcode ``op`` with the given field values."""
    cls = INSTR_CLASSES[Op(op)]
    return cls.build(attributes={k: int_attr(int(v)) for k, v in values.items()})


@irdl_op_definition
class SegmentOp(IRDLOperation):
    """Initial memory contents: the store entry ``ref`` placed at ``addr`` of ``space``."""

    name = "pe_isa.segment"
    space = attr_def(StringAttr)
    addr = attr_def(IntegerAttr)
    ref = attr_def(StringAttr)
    assembly_format = "attr-dict"

    def verify_(self) -> None:
        if self.space.data not in ("sram", "dram"):
            raise VerifyException(
                f'\'pe_isa.segment\' space must be "sram" or "dram", not {self.space.data!r}'
            )
        addr = int(self.addr.value.data)
        if addr < 0 or addr % 16:
            raise VerifyException(f"'pe_isa.segment' addr must be 16-aligned and >= 0, not {addr}")
        if not self.ref.data:
            raise VerifyException("'pe_isa.segment' ref must not be empty")


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """The program of the PE at ``pe`` = [x, y]: segments, then instructions in order."""

    name = "pe_isa.program"
    sym_name = attr_def(SymbolNameConstraint())
    pe = attr_def(DenseArrayBase)
    body = region_def("single_block")
    traits = traits_def(NoTerminator(), SymbolOpInterface())
    assembly_format = "$sym_name attr-dict-with-keyword $body"

    def __init__(self, sym_name: str, pe: tuple[int, int], ops=()) -> None:
        super().__init__(
            attributes={
                "sym_name": StringAttr(sym_name),
                "pe": DenseArrayBase.from_list(i64, list(pe)),
            },
            regions=[Region(Block(list(ops)))],
        )

    @property
    def coords(self) -> tuple[int, int]:
        x, y = (int(v) for v in self.pe.get_values())
        return x, y

    def instructions(self) -> list[InstrOp]:
        return [op for op in self.body.ops if isinstance(op, InstrOp)]

    def segments(self) -> list[SegmentOp]:
        return [op for op in self.body.ops if isinstance(op, SegmentOp)]

    def verify_(self) -> None:
        if len(self.pe.get_values()) != 2 or min(self.pe.get_values()) < 0:
            raise VerifyException("'pe_isa.program' pe must be two coordinates >= 0")
        for op in self.body.ops:
            if not isinstance(op, InstrOp | SegmentOp):
                raise VerifyException(
                    f"'pe_isa.program' holds pe_isa instructions and segments, not '{op.name}'"
                )
        seen = False
        for op in self.body.ops:
            if isinstance(op, InstrOp):
                seen = True
            elif seen:
                raise VerifyException("'pe_isa.program' segments must precede the instructions")


def emit_image(program: ProgramOp, store: Mapping[str, bytes], arch) -> ProgramImage:
    """The binary image of ``program``: ``hw.isa.encode`` of every instruction, the
    segments' bytes from ``store``; checked against ``arch`` (ImageError)."""
    sram, dram = [], []
    for seg in program.segments():
        data = store[seg.ref.data]
        (sram if seg.space.data == "sram" else dram).append((int(seg.addr.value.data), data))
    image = ProgramImage(
        [op.encode() for op in program.instructions()],
        sram,
        dram,
        name=program.sym_name.data,
        meta={"pe": list(program.coords)},
    )
    image.check(arch)
    return image


ISA_OPS = [*INSTR_CLASSES.values(), SegmentOp, ProgramOp]
PeIsa = Dialect("pe_isa", ISA_OPS, [])
