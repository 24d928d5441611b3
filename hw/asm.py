"""PE assembler and disassembler (the text form of hw.isa, see docs/isa.md).

Syntax, one instruction per line::

    label:                      # names the next instruction
    loop:  li x1, -0x20         # label and instruction on one line
    matmul rs1=x1, rs2=x2, rs3=x3, k16=16, ldc=64
    loop x0, imm=4, end=done    # body = instructions after the LOOP up to `done`
    lw x2, 8(x1)                # `imm(reg)` fills imm and rs1; then positional operands
    sw x2, 8(x1)                #   fill the remaining fields in order (SW: rs2)
    vop rd=x3, rs1=x1, rs2=x2, n16=1, fn=add, tin=i8, tout=i16
    .word 0x0000000000000021    # a raw 64-bit word (illegal words disassemble so)

Operands are ``name=value`` pairs (any order) after optional positional values in
``hw.isa.fields_of(op)`` order.  Registers are ``x0``..``x15``; enum fields take
lower-case names (``fn=add``, ``tin=i8``, ``mode=rect``, ``cfg=exp_qln2``) or
numbers; numbers are decimal, ``0x`` hex or ``0b`` binary, optionally negative.
Missing fields are 0.  The assembler rejects a line whose word ``hw.isa.decode``
would reject, with the decoder's message.  Every error is an
:class:`hw.errors.AssemblyError` naming the line number, its text and the problem.

``disassemble`` prints the ``name=value`` form (``.word`` for illegal words);
``assemble(disassemble(words)) == words`` for every list of 64-bit words.
"""

from __future__ import annotations

import enum
import re

from hw.errors import AssemblyError, EncodingError
from hw.isa import (
    INSTR_BITS,
    DType,
    Field,
    Op,
    SignalMode,
    VCfg,
    VFn,
    decode,
    fields_of,
)

__all__ = ["assemble", "disassemble", "format_instr"]

REG_FIELDS = frozenset({"rd", "rs1", "rs2", "rs3"})
ENUM_FIELDS: dict[str, type[enum.IntEnum]] = {
    "fn": VFn,
    "tin": DType,
    "tout": DType,
    "mode": SignalMode,
    "cfg": VCfg,
}
FLAG_FIELDS = frozenset({"out32", "acc", "noout", "bscalar", "nowait"})
QUIET_FIELDS = FLAG_FIELDS | {"seg", "alda"}  # left out of the disassembly when 0
MNEMONICS = {op.name.lower(): op for op in Op}
_NUM_RE = re.compile(r"^-?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*)$")
_LABEL_RE = re.compile(r"^[A-Za-z_.$][\w.$]*$")
_OFFSET_RE = re.compile(r"^(.*)\((\s*[xX]\d+\s*)\)$")


class _LineError(Exception):
    """A problem in one line; turned into AssemblyError with the line's context."""


def parse_int(text: str) -> int:
    """A decimal, 0x hex or 0b binary literal, optionally negative."""
    t = text.strip()
    if not _NUM_RE.match(t):
        raise _LineError(f"{text!r} is not a number")
    neg = t.startswith("-")
    body = t[1:] if neg else t
    value = int(body, 0) if body[:2].lower() in ("0x", "0b") else int(body, 10)
    return -value if neg else value


def _parse_reg(text: str) -> int:
    t = text.strip().lower()
    if re.fullmatch(r"x\d+", t):
        n = int(t[1:])
        if 0 <= n <= 15:
            return n
    raise _LineError(f"{text!r} is not a register (x0..x15)")


def _parse_value(name: str, text: str) -> int:
    if name in REG_FIELDS:
        return _parse_reg(text)
    enum_type = ENUM_FIELDS.get(name)
    if enum_type is not None and not _NUM_RE.match(text.strip()):
        try:
            return int(enum_type[text.strip().upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in enum_type)
            raise _LineError(f"{name}={text} is not one of: {names}") from None
    return parse_int(text)


def _split_operands(text: str) -> list[str]:
    text = re.sub(r"\s*=\s*", "=", text.strip())
    return [t for t in re.split(r"[,\s]+", text) if t]


def _parse_instr(op: Op, tokens: list[str]) -> tuple[dict[str, int], str | None]:
    """Field values and the `end=` label (LOOP) of one instruction's operands."""
    fields = {f.name: f for f in fields_of(op)}
    order = [f.name for f in fields_of(op)]
    values: dict[str, int] = {}
    end_label = None
    positional = 0
    # `imm(reg)` fills imm and rs1 first, so `sw x2, 8(x1)` reads as `SW rs2, imm(rs1)`
    tokens = sorted(tokens, key=lambda t: not (_OFFSET_RE.match(t) and "=" not in t))
    for tok in tokens:
        m = _OFFSET_RE.match(tok)
        if m and "imm" in fields and "rs1" in fields and "=" not in tok:
            for name, val in (("imm", m.group(1) or "0"), ("rs1", m.group(2))):
                _set(values, name, _parse_value(name, val))
            continue
        if "=" in tok:
            name, _, val = tok.partition("=")
            name = name.lower()
            if name == "end" and op == Op.LOOP:
                if not _LABEL_RE.match(val):
                    raise _LineError(f"end={val} is not a label")
                if "body" in values:
                    raise _LineError("LOOP takes body= or end=, not both")
                end_label = val
                continue
            if name not in fields:
                known = ", ".join(order) or "no operands"
                raise _LineError(f"{op.name.lower()} has no operand {name!r} (it takes {known})")
        else:
            while positional < len(order) and order[positional] in values:
                positional += 1
            if positional >= len(order):
                raise _LineError(f"too many operands for {op.name.lower()}: {tok!r}")
            name, val = order[positional], tok
        if name == "body" and end_label is not None:
            raise _LineError("LOOP takes body= or end=, not both")
        _set(values, name, _parse_value(name, val))
    return values, end_label


def _set(values: dict[str, int], name: str, value: int) -> None:
    if name in values:
        raise _LineError(f"operand {name!r} given twice")
    values[name] = value


def _encode_checked(op: Op, values: dict[str, int]) -> int:
    word = int(op)
    for f in fields_of(op):
        word |= f.put(values.get(f.name, 0), op.name.lower())
    decode(word)  # the decoder's sub-field rules (k16 != 0, fn known, ...)
    return word


def assemble(text: str) -> list[int]:
    """The 64-bit instruction words of a PE assembly program."""
    items: list[tuple[int, str, Op | None, dict[str, int], str | None]] = []
    labels: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        try:
            while True:
                m = re.match(r"^([A-Za-z_.$][\w.$]*)\s*:(.*)$", line)
                if not m:
                    break
                if m.group(1) in labels:
                    raise _LineError(f"label {m.group(1)!r} defined twice")
                labels[m.group(1)] = len(items)
                line = m.group(2).strip()
            if not line:
                continue
            mnemonic, _, rest = line.partition(" ")
            mnemonic = mnemonic.lower()
            if mnemonic == ".word":
                word = parse_int(rest)
                if not 0 <= word < 1 << INSTR_BITS:
                    raise _LineError(f".word must be in 0..2**64-1, not {rest.strip()}")
                items.append((lineno, raw, None, {"word": word}, None))
                continue
            op = MNEMONICS.get(mnemonic)
            if op is None:
                raise _LineError(f"unknown mnemonic {mnemonic!r}")
            values, end_label = _parse_instr(op, _split_operands(rest))
            if end_label is None:
                _encode_checked(op, values)  # report field errors on this line now
            items.append((lineno, raw, op, values, end_label))
        except (_LineError, EncodingError) as exc:
            raise AssemblyError(f"line {lineno}: {raw.strip()!r}: {exc}") from None
    return [_finish(i, item, labels) for i, item in enumerate(items)]


def _finish(index: int, item, labels: dict[str, int]) -> int:
    lineno, raw, op, values, end_label = item
    try:
        if op is None:
            return values["word"]
        if end_label is not None:
            if end_label not in labels:
                raise _LineError(f"unknown label {end_label!r}")
            values = dict(values, body=labels[end_label] - index)
            if values["body"] < 1:
                raise _LineError(f"end={end_label} must name an instruction after the loop")
        return _encode_checked(op, values)
    except (_LineError, EncodingError) as exc:
        raise AssemblyError(f"line {lineno}: {raw.strip()!r}: {exc}") from None


def _format_value(f: Field, value: int) -> str:
    if f.name in REG_FIELDS:
        return f"x{value}"
    enum_type = ENUM_FIELDS.get(f.name)
    if enum_type is not None:
        try:
            return enum_type(value).name.lower()
        except ValueError:
            return str(value)
    if f.name == "imm" and not f.signed and value > 9:
        return hex(value)
    return str(value)


def format_instr(word: int) -> str:
    """One word in ``name=value`` form, or ``.word 0x...`` if it is illegal."""
    try:
        instr = decode(word)
    except EncodingError:
        return f".word {word:#018x}"
    parts = []
    for f in fields_of(instr.op):
        value = instr[f.name]
        if f.name in QUIET_FIELDS and value == 0:
            continue
        parts.append(f"{f.name}={_format_value(f, value)}")
    mnemonic = instr.op.name.lower()
    return f"{mnemonic} {', '.join(parts)}" if parts else mnemonic


def disassemble(words) -> str:
    """The text of a list of 64-bit words, one line per word (see module docs)."""
    lines = []
    for w in words:
        w = int(w)
        if not 0 <= w < 1 << INSTR_BITS:
            raise EncodingError(f"instruction word must be 64 bits, not {w:#x}")
        lines.append(format_instr(w))
    return "\n".join(lines) + ("\n" if lines else "")
