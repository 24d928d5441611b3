"""Decoupled units: issue MAC and vector commands with ``nowait`` and place the FENCEs.

With ``ArchConfig.async_units`` a QLOAD, MATMUL or VOP with ``nowait = 1`` retires as
soon as its unit accepted it, so the controller goes on issuing scalar work, WAITs,
DMAs and commands of the *other* unit while the unit runs (docs/isa.md, "Decoupled
units"). Nothing orders the running command's SRAM accesses against later
instructions except a FENCE, a later command of the same unit, VCFG (vector unit)
and HALT. This pass makes every unit command of a lowered program ``nowait`` and
inserts the FENCEs that keep the program's meaning:

1. the programs run abstractly (compiler/backend/deadlock.py's executor: registers,
   loops, stride slots, SW-patched descriptors, every PE round robin), and an
   observer tracks per PE and unit the pending command and its byte footprint
   (sim/footprint.py, the reference simulator's hazard rule);
2. an instruction that would conflict with a pending command of a unit - a write
   to bytes the command reads or writes, a read of bytes it writes, a DMA's
   descriptor or local rows, any SIGNAL (it may hand a buffer to another PE) -
   gets a ``FENCE units`` right before it (inside its loop body if it is in one,
   so every iteration is ordered); an address computed from a loaded value (LW)
   counts as touching everything;
3. a command whose very next instruction would FENCE it stays blocking (nowait would
   only add the FENCE's cycle); the FENCEs are inserted and every LOOP's body length
   grows by the FENCEs inside it.

A FENCE at a static pc orders every dynamic instance, so the real pending set is
never larger than the one the observer tracked: the placement is conservative.
The reference simulator checks the result independently at run time (UnitHazard).
A program that would outgrow the instruction memory keeps its blocking commands.
"""

from __future__ import annotations

from collections.abc import Mapping

from compiler.backend.deadlock import check_deadlock
from compiler.dialects.pe_isa import InstrOp, ProgramOp, instr
from hw.isa import NOWAIT_OPS, Op, Unit, decode
from sim.footprint import DESC_BYTES, Footprint, conflict, footprint_fn

__all__ = ["overlap_units", "plan_fences"]

M32 = 0xFFFFFFFF
ANY = object()  # the footprint of an address the abstract run cannot know (LW)
_MEMORY_OPS = (Op.LW, Op.SW, Op.DMA)
# The register fields that hold addresses, per opcode.
_ADDRESS_REGS = {
    Op.LW: lambda v: ("rs1",),
    Op.SW: lambda v: ("rs1",),
    Op.DMA: lambda v: ("rs1",),
    Op.QLOAD: lambda v: ("rs1",),
    Op.MATMUL: lambda v: ("rs1", "rs2", "rs3"),
    Op.VOP: lambda v: ("rs1", "rd") if v["bscalar"] else ("rs1", "rs2", "rd"),
}


class _Planner:
    """The observer: pending unit commands per PE, FENCEs needed per (PE, pc)."""

    def __init__(self, arch, keep=frozenset()):
        self.arch = arch
        self.keep = keep  # opcodes issued blocking: never pending
        self.pending: dict[tuple[int, int], dict[Unit, tuple | None]] = {}
        # the writes of the MATMUL before a pending nowait MATMUL: the MAC unit takes
        # a command while the previous one's rows still go out (hw/pe/mac_unit.py)
        self.prior: dict[tuple[int, int], object] = {}
        self.last_mm: dict[tuple[int, int], bool] = {}
        self.fences: dict[tuple[int, int], dict[int, int]] = {}
        self.words: dict[tuple[int, int], list[int]] = {}
        self.fns: dict[tuple[int, int], dict] = {}  # per PE: pc -> footprint function

    def __call__(self, pe, pc: int, op: Op, v: dict[str, int]) -> None:
        pending = self.pending.setdefault(pe.coords, {Unit.MAC: None, Unit.VEC: None})
        if pending[Unit.MAC] is None:
            self.prior.pop(pe.coords, None)
        if op == Op.HALT:
            pending[Unit.MAC] = pending[Unit.VEC] = None
            return
        if op == Op.VCFG:
            pending[Unit.VEC] = None
            return
        if op == Op.FENCE:
            for u in (Unit.MAC, Unit.VEC):
                if v["units"] & u:
                    pending[u] = None
            return
        if op == Op.SIGNAL:
            self._fence(pe.coords, pc, pending, [u for u in pending if pending[u]])
            return
        unit = NOWAIT_OPS.get(op)
        if unit is None and op not in _MEMORY_OPS:
            return
        fp = self._footprint(pe, pc, op, v)
        prior = self.prior.get(pe.coords)
        others = [
            u
            for u in pending
            if u != unit
            and pending[u]
            and (_conflict(fp, pending[u]) or (u == Unit.MAC and prior and _conflict(fp, prior)))
        ]
        self._fence(pe.coords, pc, pending, others)
        if unit == Unit.MAC:
            old = pending[Unit.MAC]
            chained = op == Op.MATMUL and old is not None and self.last_mm.get(pe.coords)
            if chained and op not in self.keep:
                self.prior[pe.coords] = old if old is ANY else Footprint([], list(old.writes))
            else:
                self.prior.pop(pe.coords, None)
            self.last_mm[pe.coords] = op == Op.MATMUL
        if unit is not None:
            pending[unit] = None if op in self.keep else fp

    def _footprint(self, pe, pc: int, op: Op, v: dict[str, int]):
        """(reads, writes) byte intervals, or ANY (an address loaded from memory)."""
        if any(v.get(f, 0) in pe.unknown for f in _ADDRESS_REGS[op](v)):
            return ANY
        fns = self.fns[pe.coords]
        fn = fns.get(pc)
        if fn is None:  # fields looked up once per instruction, not per execution
            fn = fns[pc] = footprint_fn(decode(self.words[pe.coords][pc]), self.arch, pe.coords)
        desc = None
        if op == Op.DMA:
            desc = pe.read((pe.regs[v["rs1"]] + v["imm"]) & M32, DESC_BYTES)
        return fn(pe.regs.__getitem__, desc)

    def _fence(self, coords, pc: int, pending: dict, units: list[Unit]) -> None:
        if not units:
            return
        mask = 0
        for u in units:
            mask |= int(u)
            pending[u] = None
        at = self.fences.setdefault(coords, {})
        at[pc] = at.get(pc, 0) | mask


def _conflict(fp, pending) -> bool:
    return fp is ANY or pending is ANY or conflict(pending, fp) is not None


def plan_fences(
    arch, programs: list[ProgramOp], store: Mapping[str, bytes], keep=frozenset()
) -> dict:
    """{PE: {pc: FENCE units mask}} for ``programs`` with every unit command nowait
    but the opcodes in ``keep``; also runs the deadlock check (DeadlockError as
    check_deadlock)."""
    planner = _Planner(arch, frozenset(keep))
    for p in programs:
        planner.words[p.coords] = [op.encode() for op in p.instructions()]
        planner.fns[p.coords] = {}
    check_deadlock(arch, programs, store, observer=planner)
    return planner.fences


def _useless_nowait(code: list[InstrOp], fences: dict[int, int]) -> set[int]:
    """Unit commands whose very next instruction must FENCE them: nowait would only add
    the FENCE's cycle, so they stay blocking and the FENCE loses their unit. (Not for
    a command that ends a loop body: its next instruction differs by iteration.)"""
    ends = {pc + op.values()["body"] for pc, op in enumerate(code) if op.OPCODE == Op.LOOP}
    out = set()
    for pc, op in enumerate(code):
        unit = NOWAIT_OPS.get(op.OPCODE)
        if unit is not None and pc not in ends and fences.get(pc + 1, 0) & unit:
            out.add(pc)
            fences[pc + 1] &= ~int(unit)
            if not fences[pc + 1]:
                del fences[pc + 1]
    return out


def _rewrite(
    arch, program: ProgramOp, fences: dict[int, int], keep: frozenset = frozenset()
) -> bool:
    """Make ``program``'s unit commands nowait (not the opcodes in ``keep``) and insert
    the FENCEs, in place; False (program untouched) if it would outgrow imem."""
    code = program.instructions()
    blocking = _useless_nowait(code, fences)
    blocking |= {pc for pc, op in enumerate(code) if op.OPCODE in keep}
    before = [0] * (len(code) + 1)  # FENCEs inserted before pc, cumulative
    for pc in range(len(code)):
        before[pc + 1] = before[pc] + (1 if pc in fences else 0)
    if len(code) + before[len(code)] > arch.imem_words:
        return False
    block = program.body.block
    for pc, op in enumerate(code):
        if pc in fences:
            fence = instr(Op.FENCE, units=fences[pc])
            block.insert_op_before(fence, op)
            fence.verify()
        changed = False
        if op.OPCODE == Op.LOOP:
            body = op.values()["body"]
            grow = before[min(pc + body, len(code) - 1) + 1] - before[pc + 1]
            if grow:
                op.set_field("body", body + grow)
                changed = True
        if op.OPCODE in NOWAIT_OPS and pc not in blocking:
            op.set_field("nowait", 1)
            changed = True
        if changed:
            op.verify()
    return True


def overlap_units(
    arch, programs: list[ProgramOp], store: Mapping[str, bytes], keep=frozenset()
) -> tuple[list[ProgramOp], dict]:
    """Programs, rewritten in place, with nowait unit commands and FENCEs (unchanged without
    ``arch.async_units``; the opcodes in ``keep`` stay blocking, a planner's choice),
    and figures: ``nowait`` commands, ``fences`` placed."""
    if not arch.async_units:
        check_deadlock(arch, programs, store)
        return programs, {"nowait": 0, "fences": 0}
    fences = plan_fences(arch, programs, store, keep)
    n_nowait, n_fence, kept = 0, 0, []
    for p in programs:
        f = fences.get(p.coords, {})
        if not _rewrite(arch, p, f, frozenset(keep)):
            kept.append(p.coords)
            continue
        n_fence += len(f)
        n_nowait += sum(1 for op in p.instructions() if op.values().get("nowait"))
    return programs, {"nowait": n_nowait, "fences": n_fence, "blocking_pes": kept}
