"""Instruction decoding for the PE controller: field extraction and legality.

Every bit position comes from the :class:`hw.isa.Field` tables; the legality
rules are the RTL form of :func:`hw.isa.decode` (unknown opcode, a set bit
outside :func:`hw.isa.used_mask`, a bad sub-field) and are tested against it
word for word.  Rules that depend on the architecture (loop nesting, LSTRIDE
level/slot, semaphore index) are the controller's.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.isa import (
    BINARY,
    FENCE_UNITS,
    INSTR_BITS,
    LOOP_BODY,
    MM_K16,
    OPCODE,
    REDUCTIONS,
    SEM_COUNT,
    SIG_MODE,
    V_BSCALAR,
    V_FN,
    V_N16,
    V_TIN,
    V_TOUT,
    VCFG_REG,
    DType,
    Field,
    Op,
    SignalMode,
    VCfg,
    VFn,
    used_mask,
)

__all__ = ["Decoder", "field"]


def field(word: Value, f: Field) -> Value:
    """The raw bits of field ``f`` of ``word`` (signed fields as ``signed`` values)."""
    raw = word[f.lo : f.lo + f.width]
    return raw.as_signed() if f.signed else raw


def _member(value: Value, members) -> Value:
    out = 0
    for v in sorted(int(x) for x in members):
        out = out | (value == v)
    return out


class Decoder(wiring.Component):
    """Combinational: ``legal`` is 1 exactly when :func:`hw.isa.is_legal` holds."""

    def __init__(self):
        super().__init__({"word": In(INSTR_BITS), "legal": Out(1)})

    def elaborate(self, platform) -> Elaboratable:
        m = Module()
        w = self.word
        opcode = field(w, OPCODE)
        with m.Switch(opcode):
            for op in Op:
                with m.Case(int(op)):
                    unused = (w & ~used_mask(op) & ((1 << INSTR_BITS) - 1)) == 0
                    m.d.comb += self.legal.eq(unused & self._subfields_ok(op))
        return m

    def _subfields_ok(self, op: Op) -> Value:
        w = self.word
        if op == Op.LOOP:
            return field(w, LOOP_BODY) != 0
        if op == Op.MATMUL:
            return field(w, MM_K16) != 0
        if op == Op.VCFG:
            return field(w, VCFG_REG) < len(VCfg)
        if op == Op.VOP:
            return self._vop_ok()
        if op == Op.FENCE:
            return field(w, FENCE_UNITS) != 0
        if op == Op.WAIT:
            return field(w, SEM_COUNT) != 0
        if op == Op.SIGNAL:
            return (field(w, SEM_COUNT) != 0) & (field(w, SIG_MODE) <= max(SignalMode))
        return 1

    def _vop_ok(self) -> Value:
        w = self.word
        fn = field(w, V_FN)
        tin, tout = field(w, V_TIN), field(w, V_TOUT)
        is_red = _member(fn, REDUCTIONS)
        return (
            (field(w, V_N16) != 0)
            & _member(fn, VFn)
            & (tin <= DType.I32)
            & (tout <= DType.I32)
            & (~is_red | (tout == DType.I32))
            & (~field(w, V_BSCALAR) | _member(fn, BINARY))
        )
