"""Cycle costs of PE instructions for the performance model (sim/perf.py).

Every figure is the RTL PE's, measured on the cocotb + Verilator PE (tiny preset,
see docs/perf.md): the cost of an instruction
is counted from the cycle it enters execute to the cycle the next one enters
(docs/pe.md, "Cycle costs as built").  Architecture numbers come from ArchConfig.

* scalar, LOOP, LSTRIDE, VCFG, SW, SIGNAL SELF, a ready WAIT: 1; LW: 2
* QLOAD: words(qparam block) + 3 (unit: words + 2, +1 to retire)
* MATMUL: int8 out K + R + 7; out32 K + R*C/4 + 5; noout K + 5 (+ K (R + C - 16) / 16
  when A and B share an SRAM bank)
* VOP (pipelined): n16 * max(words per step of A, B if read, D) + 9 + min(wA, wD)
  (wD = 1 for the reductions); RECIP/SQRT: per step 2 + per element 32 / 17
  (1 for a <= 0, or a saturated RECIP quotient), + 16; operands sharing a bank:
  see :func:`vop_cost`; with segments (the ``seg`` field) the same plus
  :func:`segment_cycles` (B is ``nseg`` words read once per segment, not per step)
* DMA: descriptor fetch ``DMA_FETCH`` cycles (plus waiting for a queue slot)
* FENCE: 1 once its units are idle; VCFG: 1 once the vector unit is idle
* a ``nowait`` QLOAD/MATMUL/VOP: NOWAIT_CYCLES (2: accept + retire) of the
  controller once its unit is idle; the unit is then busy for the cost above
  (sim/perf.py's decoupled-unit timing)

Costs that depend on operand values (RECIP, SQRT) or addresses (bank conflicts of
MATMUL and VOP) are computed at execution from the PE's registers and SRAM; the
others depend only on the instruction word.
"""

from __future__ import annotations

import numpy as np

from hw.errors import EncodingError
from hw.isa import (
    BINARY,
    NOWAIT_OPS,
    REDUCTIONS,
    WORD_BYTES,
    DType,
    Op,
    SignalMode,
    Unit,
    VCfg,
    VFn,
    decode,
    qparam_layout,
)
from sim.footprint import segment_count

__all__ = [
    "DMA_FETCH",
    "HALT_EXTRA",
    "Kind",
    "NOWAIT_CYCLES",
    "StaticCost",
    "iterative_cost",
    "matmul_cost",
    "out_cycles",
    "segment_cycles",
    "static_cost",
    "vop_cost",
]

NOWAIT_CYCLES = 2  # a nowait unit command holds the controller: accept + retire
DMA_FETCH = 6  # cycles from the DMA instruction to the engine's acceptance (docs/dma.md)
HALT_EXTRA = 2  # start edge and the edge that sees `halted` (run_cycles of the harness)
VOP_FIXED = 9  # plus min(words of A, of D) per VOP (measured)
ITER_FIXED = 16
ITER_STEP = 2
ITER_ELEM = {VFn.RECIP: 32, VFn.SQRT: 17}

# Segmented VOPs (the ``seg`` field, docs/isa.md "Segments") cost what the same VOP
# without segments costs (its B, one word per segment, reads fewer words per step
# than A), plus segment_cycles(): these two numbers, 0 until the RTL's vector unit
# with segments has been measured.  This is the one place to change.
VOP_SEG_FIXED = 0  # per segmented VOP
VOP_SEG_PER_SEGMENT = 0  # per segment (a reduction's result word, a B word)


class Kind:
    """How the model treats an instruction."""

    LOCAL = 0  # runs on the PE alone: its cost is known without other PEs
    WAIT = 1
    DMA = 2
    SIGNAL = 3  # SIGNAL NODE / RECT (a packet)
    HALT = 4
    ITER = 5  # local, but the cost depends on the operand values (RECIP, SQRT)
    VOP = 6  # local, but the cost depends on the SRAM banks of the operands
    MATMUL = 7  # local, the cost depends on whether A and B share a bank
    QLOAD = 8  # local, a MAC unit command
    FENCE = 9  # local, waits for the units in StaticCost.unit
    VCFG = 10  # local, waits for the vector unit


class StaticCost:
    """Per instruction word: the model kind, the cycles (for ITER: without the
    element terms; for a unit command: the unit's time, its controller cost when
    ``nowait`` is NOWAIT_CYCLES), the MACs done, whether it is a compute-unit command,
    its ``unit`` (hw.isa.Unit; for FENCE the units it waits for, else 0) and
    ``nowait``."""

    __slots__ = ("kind", "cycles", "macs", "compute", "ins", "vop", "unit", "nowait")

    def __init__(
        self,
        kind: int,
        cycles: int,
        macs: int = 0,
        compute: bool = False,
        ins=None,
        unit: int = 0,
    ):
        self.kind, self.cycles, self.macs, self.compute = kind, cycles, macs, compute
        self.unit = unit
        self.nowait = bool(ins is not None and ins.op in NOWAIT_OPS and ins["nowait"])
        # a plain dict (missing fields read 0): looked up on every execution
        self.ins = _Fields(ins.args) if ins is not None else None
        if ins is not None and ins.op == Op.VOP:
            self.vop = _vop_words(self.ins)


class _Fields(dict):
    def __missing__(self, key: str) -> int:
        return 0


# VOP operands sharing an SRAM bank (the bank of each operand's first byte), measured
# on the RTL (tiny): when A and B share a bank the reads serialise; the cycles are
# linear in n16, measured at n16 = 2 and 8 per (words per step of A, B, D):
VOP_READ_CONFLICT = {
    (1, 1, 1): (14, 26),
    (2, 2, 2): (19, 43),
    (4, 4, 4): (29, 77),
    (1, 1, 2): (16, 31),
    (1, 1, 4): (20, 47),
}
# When D's writes share a bank with reads (or A with B), a write-behind buffer absorbs
# the first conflicts; from then on every access to the busiest bank takes a cycle:
# at least VOP_SERIAL_FIXED + n16 * (accesses per step to that bank).
VOP_SERIAL_FIXED = 3


def _vop_words(ins) -> tuple[int, int, int, bool, int]:
    """Words per step of A, B (0: B is a scalar or not read, or is read once per
    segment) and D (1 for a reduction), whether it is a reduction, and the words of a
    per-segment B (0 without)."""
    fn, tin, tout = VFn(ins["fn"]), DType(ins["tin"]), DType(ins["tout"])
    wa = tin.bytes
    reads_b = fn in BINARY and not ins["bscalar"]
    nseg = segment_count(ins["n16"], ins["seg"])
    wb = tin.bytes if reads_b and nseg == 1 else 0
    reduce = fn in REDUCTIONS
    return wa, wb, 1 if reduce else tout.bytes, reduce, nseg if reads_b and nseg > 1 else 0


def segment_cycles(ins) -> int:
    """The cycles a VOP's segments add to its cost without them: VOP_SEG_FIXED +
    VOP_SEG_PER_SEGMENT * nseg for a reduction or a binary function with a per-segment
    B (nseg > 1), else 0 (other functions ignore ``seg``)."""
    fn = VFn(ins["fn"])
    nseg = segment_count(ins["n16"], ins["seg"])
    if nseg == 1 or not (fn in REDUCTIONS or (fn in BINARY and not ins["bscalar"])):
        return 0
    return VOP_SEG_FIXED + VOP_SEG_PER_SEGMENT * nseg


def _vop_cycles(ins) -> tuple[int, int]:
    fn = VFn(ins["fn"])
    n16 = ins["n16"]
    if fn in ITER_ELEM:
        return Kind.ITER, n16 * ITER_STEP + ITER_FIXED
    wa, wb, wd, reduce, _ = _vop_words(ins)
    per = max(wa, wb, 0 if reduce else wd)
    return Kind.VOP, n16 * per + VOP_FIXED + min(wa, wd) + segment_cycles(ins)


def vop_cost(cost: StaticCost, regs: list[int], bank_bytes: int) -> int:
    """The cycles of a pipelined VOP with its operands at the addresses in ``regs``
    (bank conflicts as measured, see VOP_READ_CONFLICT and VOP_SERIAL_FIXED; a
    per-segment B adds its nseg reads to its bank)."""
    ins = cost.ins
    wa, wb, wd, reduce, seg_b = cost.vop
    n16 = ins["n16"]
    total: dict[int, int] = {}  # accesses to each bank over the whole VOP
    operands = 0
    for reg, n in (
        (ins["rs1"], n16 * wa),
        (ins["rs2"], n16 * wb or seg_b),
        (ins["rd"], 0 if reduce else n16 * wd),
    ):
        if n:
            operands += 1
            bank = regs[reg] // bank_bytes
            total[bank] = total.get(bank, 0) + n
    if len(total) == operands:
        return cost.cycles  # every operand in its own bank
    base = cost.cycles
    if wb and regs[ins["rs1"]] // bank_bytes == regs[ins["rs2"]] // bank_bytes:
        known = VOP_READ_CONFLICT.get((wa, wb, wd))
        if known is not None:
            c2, c8 = known
            base = round(c2 + (n16 - 2) * (c8 - c2) / 6)
        else:
            base = n16 * max(wa + wb, wd) + VOP_FIXED + min(wa, wd)
    return max(base, VOP_SERIAL_FIXED + max(total.values()) + segment_cycles(ins))


def static_cost(arch, word: int) -> StaticCost:
    """The cost of one instruction word (an illegal word costs 1: it faults; so do
    FENCE and ``nowait = 1`` without ``arch.async_units``)."""
    try:
        ins = decode(word)
    except EncodingError:
        return StaticCost(Kind.LOCAL, 1)
    op = ins.op
    if not arch.async_units and (op == Op.FENCE or (op in NOWAIT_OPS and ins["nowait"])):
        return StaticCost(Kind.LOCAL, 1)
    r, c = arch.mac_rows, arch.mac_cols
    if op == Op.MATMUL:
        k = 16 * ins["k16"]
        if ins["noout"]:
            cyc = k + 5
        elif ins["out32"]:
            cyc = k + r * c // 4 + 5
        else:
            cyc = k + r + 7
        if ins["alda"]:  # row-major A: the first K step waits for R words (one per row)
            cyc += r - 1
        return StaticCost(Kind.MATMUL, cyc, k * r * c, True, ins, Unit.MAC)
    if op == Op.QLOAD:
        cyc = qparam_layout(c)["total"][1] // WORD_BYTES + 3
        return StaticCost(Kind.QLOAD, cyc, 0, True, ins, Unit.MAC)
    if op == Op.VOP:
        kind, cyc = _vop_cycles(ins)
        return StaticCost(kind, cyc, 0, True, ins, Unit.VEC)
    if op == Op.FENCE:
        return StaticCost(Kind.FENCE, 1, unit=ins["units"])
    if op == Op.VCFG:
        return StaticCost(Kind.VCFG, 1)
    if op == Op.LW:
        return StaticCost(Kind.LOCAL, 2)
    if op == Op.WAIT:
        return StaticCost(Kind.WAIT, 1, ins=ins)
    if op == Op.DMA:
        return StaticCost(Kind.DMA, DMA_FETCH, ins=ins)
    if op == Op.SIGNAL and ins["mode"] != SignalMode.SELF:
        return StaticCost(Kind.SIGNAL, 1, ins=ins)
    if op == Op.HALT:
        return StaticCost(Kind.HALT, 1)
    return StaticCost(Kind.LOCAL, 1)


def out_cycles(cost: StaticCost, arch) -> int:
    """The cycles at the end of a MATMUL in which its rows go out while the MAC unit
    already runs the next command (hw/pe/mac_unit.py: the output side works on a copy
    of the accumulators): the cost beyond a ``noout`` MATMUL's."""
    ins = cost.ins
    if ins["noout"]:
        return 0
    if ins["out32"]:
        return arch.mac_rows * arch.mac_cols // 4
    return arch.mac_rows + 2


def matmul_cost(cost: StaticCost, regs: list[int], bank_bytes: int, arch) -> int:
    """A MATMUL whose A and B share an SRAM bank reads (R + C) / 16 words per K step
    through one bank instead of max(R, C) / 16 (measured: K = 256 noout on 4 x 16
    takes 325 cycles, not 261)."""
    ins = cost.ins
    if regs[ins["rs1"]] // bank_bytes != regs[ins["rs2"]] // bank_bytes:
        return cost.cycles
    per = arch.mac_rows + arch.mac_cols
    if per <= 16:
        return cost.cycles
    k = 16 * ins["k16"]
    return cost.cycles + k * (per - 16) // 16


def iterative_cost(cost: StaticCost, regs: list[int], sram: np.ndarray, vcfg) -> int:
    """The cycles of a RECIP / SQRT VOP on the operands now in SRAM."""
    ins = cost.ins
    fn = VFn(ins["fn"])
    n = 16 * ins["n16"]
    tin = DType(ins["tin"])
    a = regs[ins["rs1"]]
    nbytes = n * tin.bytes
    if a % 16 or a + nbytes > len(sram):
        return cost.cycles  # faults in the unit: the functional step reports it
    vals = sram[a : a + nbytes].view({1: "<i1", 2: "<i2", 4: "<i4"}[tin.bytes]).astype(np.int64)
    slow = vals > 0
    if fn == VFn.RECIP:
        # hw/pe/vector_iter.py: 2 + min(k - msb(a), 30) cycles; 1 when a <= 0, the
        # quotient saturates or a > 2**k
        k = min(int(vcfg[VCfg.RECIP_K]) & 63, 62)
        if k >= 31:
            slow &= vals > (1 << (k - 31))
        msb = np.frexp(np.maximum(vals, 1).astype(np.float64))[1] - 1
        lead = k - msb
        slow &= lead >= 0
        per = np.where(slow, 2 + np.minimum(lead, 30), 1)
        return cost.cycles + int(per.sum())
    n_slow = int(np.count_nonzero(slow))
    return cost.cycles + n_slow * ITER_ELEM[fn] + (n - n_slow)
