"""Decoupled units in the reference simulator: nowait commands, FENCE, hazard checks.

docs/isa.md ("Decoupled units"): QLOAD, MATMUL (MAC unit) and VOP (vector unit) with
``nowait = 1`` retire when their unit accepts them and the unit runs on; FENCE waits
for units, VCFG for the vector unit, HALT for both.  The reference simulator keeps
the functional order - a nowait command executes completely at issue - and instead
*checks* that the program could not tell the difference: while a nowait command of
unit U is pending (issued, not yet ordered by a FENCE of U, a later command of U,
VCFG for the vector unit, or HALT), a later instruction that writes a byte the
command reads or writes, or reads a byte it writes (footprints: sim/footprint.py), or
any SIGNAL, raises :class:`UnitHazard`.

:class:`HazardGuard` (one per PE, ``PeSim.hazards``) costs nothing while no command
is pending: the PE's decoded closures are the plain ones.  Issuing a nowait command
swaps in checking closures for the instructions that can conflict (LW, SW, DMA,
SIGNAL, QLOAD, MATMUL, VOP) or retire a pending command (VCFG, HALT); when the last
pending command is ordered, the plain closures come back.  FENCE and the nowait
commands themselves always run their (cheap) bookkeeping.

Decisions where docs/isa.md leaves room:

* A pending command's footprint uses the registers (and, for the checked DMA, the
  descriptor bytes) as they were at its issue; a later instruction's as at its issue.
* The check runs after the later instruction executed: if it faults (ADDRESS, DMA,
  ...) the fault is reported and no hazard, since a faulting instruction touches no
  SRAM; a nowait command that faults is not pending.  A hazard is a program error
  (an exception out of ``run``), the PE state after it is not meaningful.
* Commands of the same unit are ordered and never checked against each other; a
  command (nowait or not) of the other unit is checked like any instruction.  A
  nowait MATMUL after a nowait MATMUL keeps the earlier one's *writes* pending (the
  MAC unit writes its rows while it runs the next one, hw/pe/mac_unit.py) until the
  next MAC command after it, a FENCE or HALT.
* WAIT, scalar and control instructions are not checked; inbound network writes are
  not checked (ordering them is the semaphore protocol's job, and SIGNAL, which hands
  buffers over, is a hazard while anything is pending).
* A DMA whose NODE/RECT target is this PE itself (a read's, multicast or not: its
  node (x0, y0)) also touches its remote rows here.
* FENCE with nothing pending is a 1-cycle no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from hw.asm import format_instr
from hw.errors import SimulationError
from hw.isa import NOWAIT_OPS, Instr, Op, Unit, decode, decode_desc
from sim.footprint import DESC_BYTES, NONE, Footprint, Interval, conflict, footprint_fn

__all__ = [
    "CHECKED_OPS",
    "GUARDED_OPS",
    "HazardGuard",
    "PendingCommand",
    "UnitHazard",
    "needs_async_units",
]

M32 = 0xFFFFFFFF
NOWAIT_ISSUE_CYCLES = 2  # RunResult.cycles of a nowait command: accept + retire
_UNIT_NAME = {Unit.MAC: "MAC", Unit.VEC: "vector"}
# checked while a command is pending: they can touch its bytes, or they order it
CHECKED_OPS = frozenset(
    {Op.LW, Op.SW, Op.DMA, Op.QLOAD, Op.MATMUL, Op.VOP, Op.SIGNAL, Op.VCFG, Op.HALT}
)
GUARDED_OPS = CHECKED_OPS | {Op.FENCE}  # the ops PeSim passes to HazardGuard.install
_CHECKED = [code in CHECKED_OPS for code in range(max(Op) + 1)]
_UNIT_OF = [NOWAIT_OPS.get(code) for code in range(max(Op) + 1)]


class UnitHazard(SimulationError):
    """An instruction touched bytes of a pending nowait command without a FENCE.

    Attributes: ``pe`` (coordinates, or None), ``unit`` (hw.isa.Unit of the pending
    command), ``pending_pc``/``pending_instr`` and ``pc``/``instr`` (hw.isa.Instr of
    the command and of the conflicting instruction), ``kind`` ("RAW": the instruction
    reads bytes the command writes, "WAR", "WAW", or "SIGNAL") and ``overlap`` (the
    first common byte range ``(lo, hi)``, None for SIGNAL)."""

    def __init__(
        self,
        *,
        pe: tuple | None,
        unit: Unit,
        pending_pc: int,
        pending_instr: Instr,
        pc: int,
        instr: Instr,
        kind: str,
        overlap: Interval | None,
    ):
        self.pe, self.unit, self.kind, self.overlap = pe, unit, kind, overlap
        self.pending_pc, self.pending_instr = pending_pc, pending_instr
        self.pc, self.instr = pc, instr
        where = f"PE {pe}: " if pe is not None else ""
        cmd = f"nowait {_UNIT_NAME[unit]} command at pc {pending_pc} ({_text(pending_instr)})"
        if overlap is None:
            what = f"SIGNAL at pc {pc} ({_text(instr)}) while the {cmd} is pending"
        else:
            lo, hi = overlap
            verb = {"RAW": "reads", "WAR": "writes", "WAW": "writes"}[kind]
            cverb = "reads" if kind == "WAR" else "writes"
            what = (
                f"pc {pc} ({_text(instr)}) {verb} bytes [{lo:#x}, {hi:#x}) that the {cmd} {cverb}"
            )
        super().__init__(f"{where}{kind} hazard: {what}; needs a FENCE units={int(unit)} before it")


def _text(instr: Instr) -> str:
    return format_instr(instr.encode())


class PendingCommand(NamedTuple):
    """A nowait command not yet ordered: its pc, instruction and footprint; for a
    MATMUL, ``prior`` is the MATMUL before it whose rows may still be written (the MAC
    unit takes the next command while they go out: only its writes are left)."""

    pc: int
    instr: Instr
    footprint: Footprint
    prior: PendingCommand | None = None


def needs_async_units(instr: Instr) -> bool:
    """FENCE, or a unit command with ``nowait = 1`` (ILLEGAL without async_units)."""
    return instr.op == Op.FENCE or (instr.op in NOWAIT_OPS and bool(instr["nowait"]))


class HazardGuard:
    """The pending nowait commands of one PE (``pending``: Unit -> PendingCommand) and
    the closures that check against them (module docs)."""

    def __init__(self, pe):
        self.pe = pe
        self.code: list = pe._code  # the PE's decoded closures, swapped in place
        self.pending: dict[Unit, PendingCommand] = {}
        self._plain: dict[int, Callable] = {}
        self._checked: dict[int, Callable] = {}
        self._descs: dict[bytes, dict] = {}  # decoded DMA descriptors by their bytes

    # -- installing closures ---------------------------------------------------------
    def install(self, pc: int, instr: Instr, h: Callable, cost: int) -> tuple[Callable, int]:
        """The closure (and estimated cycles) to run for ``instr`` at ``pc``, given the
        plain closure ``h`` and its cycles."""
        op = instr.op
        if op == Op.FENCE:
            return self._fence(pc, instr), 1
        unit = _UNIT_OF[op]
        if unit and instr["nowait"]:
            return self._nowait(pc, instr, h, unit), NOWAIT_ISSUE_CYCLES
        if not _CHECKED[op]:
            return h, cost
        self._plain[pc] = h
        if self.pending:
            return self._checked_fn(pc), cost
        return h, cost

    def _checked_fn(self, pc: int) -> Callable:
        """The checking closure of the instruction at ``pc`` (built when first needed:
        programs without nowait commands never pay for it)."""
        g = self._checked.get(pc)
        if g is not None:
            return g
        h, instr = self._plain[pc], decode(self.pe.imem[pc])
        op = instr.op
        if op == Op.SIGNAL:
            g = self._checked_signal(pc, instr, h)
        elif op == Op.VCFG:
            g = self._retiring(h, Unit.VEC)
        elif op == Op.HALT:
            g = self._retiring(h, Unit.MAC | Unit.VEC)
        else:
            g = self._checked_access(pc, instr, h, NOWAIT_OPS.get(op))
        self._checked[pc] = g
        return g

    def _footprint(self, instr: Instr) -> Callable[[], Footprint]:
        """A function giving ``instr``'s footprint with the PE's current registers."""
        pe = self.pe
        fpf = footprint_fn(instr, pe.arch, pe.coords)
        reg = pe.regs.__getitem__
        if instr.op != Op.DMA:
            return lambda: fpf(reg, None)
        ra, imm, sram = instr["rs1"], instr["imm"] & M32, pe.sram
        top = pe.arch.sram_bytes - DESC_BYTES
        descs = self._descs

        def dma_fp() -> Footprint:
            addr = (reg(ra) + imm) & M32
            if addr & 15 or addr > top:
                return NONE  # the DMA faults ADDRESS before it reads anything
            raw = sram[addr : addr + DESC_BYTES].tobytes()
            d = descs.get(raw)
            if d is None:
                if len(descs) > 4096:
                    descs.clear()
                d = descs[raw] = decode_desc(raw)
            return fpf(reg, d)

        return dma_fp

    def _checked_access(self, pc, instr, h, unit):
        fp, check = self._footprint(instr), self.check

        def g():
            f = fp()
            nxt = h()
            check(pc, instr, f, unit)
            if unit is not None:
                self.retire(unit)  # the unit runs its commands in order
            return nxt

        return g

    def _checked_signal(self, pc, instr, h):
        def g():
            nxt = h()
            for unit, p in self.pending.items():
                self._hazard(unit, p, pc, instr, "SIGNAL", None)
            return nxt

        return g

    def _retiring(self, h, units: Unit):
        def g():
            nxt = h()
            self.retire(units)
            return nxt

        return g

    def _nowait(self, pc, instr, h, unit):
        fp, check, pending = self._footprint(instr), self.check, self.pending

        matmul = instr.op == Op.MATMUL

        def g():
            f = fp()
            nxt = h()
            if pending:
                check(pc, instr, f, unit)
                old = pending.get(unit)
                prior = None
                if matmul and old is not None and old.instr.op == Op.MATMUL:
                    prior = PendingCommand(old.pc, old.instr, Footprint([], old.footprint.writes))
                pending[unit] = PendingCommand(pc, instr, f, prior)
            else:
                pending[unit] = PendingCommand(pc, instr, f)
                self._arm()
            return nxt

        return g

    def _fence(self, pc, instr):
        nxt, units = pc + 1, Unit(instr["units"])

        def g():
            if self.pending:
                self.retire(units)
            return nxt

        return g

    # -- pending commands ------------------------------------------------------------
    def check(self, pc: int, instr: Instr, fp: Footprint, skip: Unit | None) -> None:
        """UnitHazard if ``fp`` (of ``instr`` at ``pc``) conflicts with a pending
        command of a unit other than ``skip``."""
        for unit, cmd in self.pending.items():
            if unit == skip:
                continue
            p, hit = cmd, conflict(cmd.footprint, fp)
            if hit is None and cmd.prior is not None:
                p, hit = cmd.prior, conflict(cmd.prior.footprint, fp)
            if hit is not None:
                self._hazard(unit, p, pc, instr, *hit)

    def _hazard(self, unit, p: PendingCommand, pc: int, instr: Instr, kind, overlap) -> None:
        raise UnitHazard(
            pe=self._pe_name(),
            unit=unit,
            pending_pc=p.pc,
            pending_instr=p.instr,
            pc=pc,
            instr=instr,
            kind=kind,
            overlap=overlap,
        )

    def retire(self, units: Unit) -> None:
        """The pending commands of ``units`` are ordered (FENCE, a later command of the
        unit, VCFG, HALT); with none left the plain closures come back."""
        pending = self.pending
        if not pending:
            return
        for unit in (Unit.MAC, Unit.VEC):
            if unit & units:
                pending.pop(unit, None)
        if not pending:
            code = self.code
            for pc, h in self._plain.items():
                code[pc] = h

    def _arm(self) -> None:
        code = self.code
        for pc in self._plain:
            code[pc] = self._checked_fn(pc)

    def _pe_name(self) -> tuple | None:
        pe = self.pe
        return tuple(getattr(pe, "perf_key", ()) or pe.coords)
