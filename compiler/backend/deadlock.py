"""Static deadlock check of a program set: semaphores, signals and transfers.

The check executes the ``pe_isa`` programs abstractly: scalar instructions, loops,
stride slots and SW/LW (on a sparse memory holding the SRAM segments, so patched
DMA descriptors are seen) run exactly; MATMUL, QLOAD, VCFG and VOP move no data.
Every semaphore increment that a DMA (local read completion, remote write with
signal) or a SIGNAL produces is applied at once, since the network delivers every
packet eventually.  The PEs run round-robin until all halt or none can move.

An *observer* (``check_deadlock(..., observer=f)``) sees every executed instruction
before it runs as ``f(pe, pc, op, values)`` with the PE's registers and memory as
they are then (compiler/backend/overlap.py places FENCEs from it).  Registers
loaded by LW hold 0 here and are marked unknown in ``pe.unknown`` (an ALU result
of an unknown register is unknown), so an observer can tell a computed address
from a data-dependent one.

If some PE is blocked, a wait-for graph (networkx) is built: an edge P -> Q when
PE P waits on a semaphore that only an instruction still ahead in Q's program can
increment (found from Q's SIGNAL and DMA instructions and their descriptors).  A
cycle is reported as a circular wait; a blocked PE without any producer is
reported as a missing signal.  Messages name the PE, the semaphore, the count and
the instruction (index and text).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import networkx as nx

from compiler.dialects.pe_isa import InstrOp, ProgramOp
from compiler.errors import CompileError
from hw.asm import format_instr
from hw.isa import DESC_WORDS, WORD_BYTES, Op, SignalMode, decode_desc

__all__ = ["DeadlockError", "check_deadlock"]

M32 = 0xFFFFFFFF


class DeadlockError(CompileError):
    """A program set in which some PE can wait forever."""


class _Pe:
    def __init__(self, arch, prog: ProgramOp, store: Mapping[str, bytes]):
        self.arch = arch
        self.coords = prog.coords
        self.code = [(op.OPCODE, op.values()) for op in prog.instructions()]
        self.ops: list[InstrOp] = prog.instructions()
        self.mem: dict[int, int] = {}
        for seg in prog.segments():
            if seg.space.data == "sram":
                base = int(seg.addr.value.data)
                for i, b in enumerate(store[seg.ref.data]):
                    self.mem[base + i] = b
        self.regs = [0] * 16
        self.pc = 0
        self.stack: list[list[int]] = []
        self.slots = [[(0, 0)] * arch.loop_strides for _ in range(arch.loop_depth)]
        self.sems = [0] * arch.semaphores
        self.halted = False
        self.unknown: set[int] = set()  # registers loaded from memory (LW) or derived
        self.observer = None

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.mem.get(addr + i, 0) for i in range(n))

    def desc(self, addr: int) -> dict[str, int]:
        return decode_desc(self.read(addr, DESC_WORDS * WORD_BYTES))


def _targets(mode: int, x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    if mode == SignalMode.NODE:
        return [(x0, y0)]
    return [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def _increments(pe: _Pe, op: Op, v: dict[str, int]) -> list[tuple[tuple[int, int], int, int]]:
    """(target PE, sem, count) increments produced by one DMA or SIGNAL."""
    if op == Op.SIGNAL:
        t = pe.regs[v["rs1"]]
        if v["mode"] == SignalMode.SELF:
            return [(pe.coords, v["sem"], v["count"])]
        rect = (
            (t & 255, t >> 8 & 255, t >> 16 & 255, t >> 24)
            if v["mode"] == SignalMode.RECT
            else (t & 255, t >> 8 & 255, t & 255, t >> 8 & 255)
        )
        return [(c, v["sem"], v["count"]) for c in _targets(v["mode"], *rect)]
    d = pe.desc((pe.regs[v["rs1"]] + v["imm"]) & M32)
    if d["read"] and d["mode"] == SignalMode.RECT:  # multicast read: every PE of the rectangle
        (x, y), fx, fy = pe.coords, d["x1"], d["y1"]
        rect = (min(x, fx), min(y, fy), max(x, fx), max(y, fy))
        return [(c, d["sem"], 1) for c in _targets(SignalMode.RECT, *rect)]
    if d["read"] or (d["mode"] == SignalMode.SELF and d["signal"]):
        return [(pe.coords, d["sem"], 1)]
    if d["signal"]:
        return [(c, d["sem"], 1) for c in _targets(d["mode"], d["x0"], d["y0"], d["x1"], d["y1"])]
    return []


def _step(pe: _Pe, pes: dict) -> bool:
    """Execute one instruction; False if blocked or halted."""
    if pe.halted:
        return False
    if pe.pc >= len(pe.code):
        pe.halted = True
        return False
    op, v = pe.code[pe.pc]
    r = pe.regs
    nxt = pe.pc + 1
    if pe.observer is not None and not (op == Op.WAIT and pe.sems[v["sem"]] < v["count"]):
        pe.observer(pe, pe.pc, op, v)
    if op == Op.HALT:
        pe.halted = True
        return False
    if op == Op.WAIT:
        if pe.sems[v["sem"]] < v["count"]:
            return False
        pe.sems[v["sem"]] -= v["count"]
    elif op in (Op.DMA, Op.SIGNAL):
        for target, sem, count in _increments(pe, op, v):
            if target in pes:
                pes[target].sems[sem] += count
    elif op == Op.LOOP:
        n = (r[v["rs1"]] + v["imm"]) & M32
        if n == 0:
            nxt = pe.pc + v["body"] + 1
        else:
            pe.stack.append([pe.pc + 1, pe.pc + v["body"], n])
    elif op == Op.LSTRIDE:
        pe.slots[v["level"]][v["slot"]] = (v["rd"], v["imm"])
    elif op == Op.SW:
        addr = (r[v["rs1"]] + v["imm"]) & M32
        for i, b in enumerate((r[v["rs2"]] & M32).to_bytes(4, "little")):
            pe.mem[addr + i] = b
    elif op in _ALU:
        _alu(op, v, r)
        _taint(op, v, pe.unknown)
    if pe.stack and pe.pc == pe.stack[-1][1]:
        top = pe.stack[-1]
        for rd, imm in pe.slots[len(pe.stack) - 1]:
            if rd:
                r[rd] = (r[rd] + imm) & M32
        top[2] -= 1
        if top[2]:
            nxt = top[0]
        else:
            pe.stack.pop()
    pe.pc = nxt
    return True


_ALU = {Op.LI, Op.ADDI, Op.ADD, Op.SUB, Op.MUL, Op.SHLI, Op.SHRI, Op.LW}


def _alu(op: Op, v: dict[str, int], r: list[int]) -> None:
    if v.get("rd", 0) == 0:
        return
    a, b, imm = r[v.get("rs1", 0)], r[v.get("rs2", 0)], v.get("imm", 0)
    out = {
        Op.LI: imm,
        Op.ADDI: a + imm,
        Op.ADD: a + b,
        Op.SUB: a - b,
        Op.MUL: a * b,
        Op.SHLI: a << (imm & 31),
        Op.SHRI: a >> (imm & 31),
        Op.LW: 0,
    }[op]
    r[v["rd"]] = out & M32


def _taint(op: Op, v: dict[str, int], unknown: set[int]) -> None:
    rd = v.get("rd", 0)
    if not rd:
        return
    srcs = {Op.ADDI: ("rs1",), Op.SHLI: ("rs1",), Op.SHRI: ("rs1",)}.get(op, ("rs1", "rs2"))
    if op == Op.LW or (op != Op.LI and any(v.get(s, 0) in unknown for s in srcs)):
        unknown.add(rd)
    else:
        unknown.discard(rd)


def _producers(pe: _Pe, pes: dict) -> set[tuple[tuple[int, int], int]]:
    """(target, sem) pairs that instructions at or after pe.pc may increment."""
    out = set()
    for op, v in pe.code[pe.pc :]:
        if op in (Op.DMA, Op.SIGNAL):
            try:
                incs = _increments(pe, op, v)
            except Exception:  # a descriptor address from a register not yet set
                continue
            out |= {(t, s) for t, s, _ in incs}
    return out


def check_deadlock(
    arch,
    programs: list[ProgramOp],
    store: Mapping[str, bytes],
    max_steps: int = 5_000_000,
    observer: Callable | None = None,
) -> dict:
    """Raise DeadlockError if some PE of ``programs`` can block forever; else a summary.
    ``observer(pe, pc, op, values)`` sees every instruction before it executes."""
    pes = {p.coords: _Pe(arch, p, store) for p in programs}
    for pe in pes.values():
        pe.observer = observer
    steps = 0
    while True:
        moved = False
        for pe in pes.values():
            n = 0
            while n < 4096 and _step(pe, pes):
                n += 1
            steps += n
            moved |= n > 0
        if all(p.halted for p in pes.values()):
            _check_balanced(pes)
            return {"pes": len(pes), "abstract_steps": steps}
        if not moved:
            break
        if steps > max_steps:
            raise DeadlockError(f"deadlock check gave up after {steps} abstract steps")
    _report(pes)
    raise AssertionError("unreachable")


def _check_balanced(pes: dict) -> None:
    """Every signal is waited for: a semaphore left with a count when every PE has
    halted is a SIGNAL or write-with-signal that no WAIT consumed - most likely a
    missing WAIT, whose data the PE then reads without knowing it arrived (a race
    that only the timing can show)."""
    for c, pe in pes.items():
        for sem, n in enumerate(pe.sems):
            if n:
                raise DeadlockError(
                    f"PE {c} halts with semaphore {sem} at count {n}: signals that no WAIT "
                    f"consumes (a missing WAIT?)"
                )


def _describe(pe: _Pe) -> str:
    op = pe.ops[pe.pc]
    v = op.values()
    return (
        f"PE {pe.coords} waits on semaphore {v['sem']} for count {v['count']} "
        f"(has {pe.sems[v['sem']]}) at instruction {pe.pc} "
        f"({format_instr(op.encode())})"
    )


def _report(pes: dict) -> None:
    blocked = [p for p in pes.values() if not p.halted]
    graph = nx.DiGraph()
    lonely = []
    for pe in blocked:
        sem = pe.code[pe.pc][1]["sem"]
        graph.add_node(pe.coords)
        sources = [
            q.coords
            for q in pes.values()
            if not q.halted and (pe.coords, sem) in _producers(q, pes)
        ]
        for q in sources:
            graph.add_edge(pe.coords, q)
        if not sources:
            lonely.append(pe)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = []
    if cycle:
        parts = "; ".join(_describe(pes[a]) for a, _ in cycle)
        raise DeadlockError(f"circular wait between PEs {[a for a, _ in cycle]}: {parts}")
    pe = lonely[0] if lonely else blocked[0]
    raise DeadlockError(
        f"{_describe(pe)}, but no instruction left on any PE signals it "
        f"(a missing SIGNAL or write-with-signal); {len(blocked)} PE(s) blocked"
    )
