"""Reference simulator of one PE: the executable form of docs/isa.md.

:class:`PeSim` executes a program image bit-exactly (all arithmetic through
sim/numerics.py).  Each instruction word is decoded once, on first execution,
into a closure; MATMUL and VOP run vectorised in numpy.  DMA and SIGNAL act at
once, functionally, through a :mod:`sim.network` object (programs are race-free).

Decoupled units (docs/isa.md, "Decoupled units"): a QLOAD, MATMUL or VOP with
``nowait = 1`` also executes completely at issue (the functional order is the
program order); ``self.hazards`` (:class:`sim.hazards.HazardGuard`) records it as
pending and raises :class:`sim.hazards.UnitHazard` when a later instruction touches
its bytes before a FENCE orders it (rules and decisions in sim/hazards.py, byte
footprints in sim/footprint.py).  Without pending commands no check runs.  With
``arch.async_units`` False, FENCE and ``nowait = 1`` fault ILLEGAL.

Decisions where docs/isa.md leaves room (the RTL must match them):

* Running past the last word of instruction memory faults ILLEGAL when the pc
  reaches an index >= ``imem_words``, with that index as ``error_pc`` (after the
  last word, ``imem_words``; after a zero-count LOOP skipping past the end, its
  skip target).  A LOOP body may extend past the end: it faults only when the pc
  gets there.  LOOP checks depth and nesting even when its count is 0.
* Strides of a loop level apply at the end of *every* iteration, the last
  included, after the last body instruction's own register write.
* WAIT/SIGNAL with ``sem >= semaphores`` is ILLEGAL.  A SIGNAL to a node the
  network cannot reach is a DMA fault.  A semaphore increment past ``sem_max``
  faults SEM_OVERFLOW at the receiver and leaves the count unchanged.
* VOP checks (alignment and range) operand B whenever ``bscalar`` is 0, even
  for functions that do not read it; D spans ``n * tout`` bytes (16 for
  reductions).  With segments (``seg``, docs/isa.md "Segments") B spans ``nseg``
  words, a reduction's D ``nseg`` words (``sim.footprint.vop_operand_bytes``).  A
  segmented VOP reads all of its B words before it writes D (docs/isa.md does not
  settle D overlapping the B word of a later segment).
  MATMUL checks the output range only without ``noout``.
* A DMA fault (descriptor rules below) is reported at the DMA instruction's pc
  and moves no data.  Descriptor rules: counts >= 1, mode 0..2,
  local, remote and all four strides multiples of 16, ``sem < semaphores`` if
  it is used (``signal`` or ``read``),
  every row inside SRAM (exact arithmetic over the strides), and, for SELF, the
  remote rows inside SRAM too.  A write to DRAM ignores ``signal`` (DRAM has no
  semaphores); a refused remote access (outside the remote memory, unreachable
  node) faults the sender, except that a PE receiving a write outside its SRAM
  faults itself.
* A multicast read (RECT read) lands, with its increment, at every PE of the
  rectangle at once (``Network.read_multicast``), the requester included; a
  receiver checks its local range as for an inbound write (with one SRAM size
  for all PEs the requester's descriptor check catches it first).

Cycle estimate (``RunResult.cycles``, from docs/isa.md; blocked WAIT time is not
counted): 1 per scalar, control, VCFG, DMA, WAIT, SIGNAL and FENCE instruction; 2 per
LW/SW; QLOAD ``total / 16 + 2``; MATMUL ``K + R + 6``; VOP ``n16 * max(bytes per
element of A, of B if read, of D)`` (words per 16 elements), RECIP ``34 * n`` and
SQRT ``17 * n``, reductions ``n16 * bytes per element of A``; the same with segments
(a per-segment B reads fewer words than A).  A nowait command
costs 2 (accept + retire): the estimate is the controller's issue time and does not
model unit overlap (sim/perf.py does).

State for comparison with the RTL: ``regs`` (16 unsigned 32-bit ints), ``sems``,
``sram`` (numpy uint8, also ``read_sram``/``write_sram``), ``vcfg``, ``qparams``,
``acc``, ``pc``, ``halted``, ``error``/``error_pc``/``error_msg``, ``hazards.pending``; ``state()``
returns the plain values.  ``load`` zeroes SRAM before writing the segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.errors import EncodingError, SimulationError
from hw.isa import (
    BINARY,
    DESC_WORDS,
    LOOP_BODY,
    REDUCTIONS,
    WORD_BYTES,
    DType,
    Op,
    PeError,
    SignalMode,
    VCfg,
    VFn,
    decode,
    decode_desc,
    qparam_layout,
)
from sim import numerics
from sim.footprint import matmul_a_end, matmul_a_ranges, vop_operand_bytes
from sim.hazards import GUARDED_OPS, HazardGuard, UnitHazard, needs_async_units
from sim.network import (
    DmaRefused,
    StandInNetwork,
    gather_rows,
    mcast_rect,
    rows_in_range,
    scatter_rows,
)

__all__ = ["PeSim", "RunResult", "UnitHazard"]

M32 = 0xFFFFFFFF
_BLOCK = -1  # WAIT not ready
_HALT = -2
_LE = {DType.I8: "<i1", DType.I16: "<i2", DType.I32: "<i4"}


def s32(v: int) -> int:
    """A 32-bit register value as a signed integer."""
    return v - (1 << 32) if v & 0x80000000 else v


class _Fault(Exception):
    def __init__(self, code: PeError, msg: str = "", pc: int | None = None):
        super().__init__(msg)
        self.code, self.msg, self.pc = code, msg, pc


@dataclass(frozen=True)
class RunResult:
    """The outcome of :meth:`PeSim.run`.

    status: "halted", "error", "blocked" (WAIT that nothing can satisfy, with a
    stand-in network) or "limit" (``max_instructions`` reached).  ``instructions``
    and ``cycles`` count since load; ``executed`` counts this call only.
    """

    status: str
    pc: int
    error: PeError
    error_pc: int | None
    error_msg: str
    instructions: int
    cycles: int
    executed: int

    @property
    def halted(self) -> bool:
        return self.status == "halted"


class PeSim:
    """One PE at ``coords`` on ``network`` (a private StandInNetwork by default)."""

    def __init__(self, arch, coords: tuple[int, int] = (0, 0), network=None):
        x, y = coords
        if not (0 <= x < arch.mesh_cols and 0 <= y < arch.mesh_rows):
            raise SimulationError(
                f"coords must be inside the {arch.mesh_cols} x "
                f"{arch.mesh_rows} mesh, not {coords!r}"
            )
        self.arch = arch
        self.coords = (x, y)
        self.network = StandInNetwork(arch) if network is None else network
        self.network.attach(self)
        self.sram = np.zeros(arch.sram_bytes, dtype=np.uint8)
        self._sram32 = self.sram.view("<u4")
        self.regs = [0] * 16
        self.sems = [0] * arch.semaphores
        self.vcfg = np.zeros(len(VCfg), dtype=np.int64)
        self.imem = [0] * arch.imem_words
        self._layout = qparam_layout(arch.mac_cols)
        self.reset()

    # -- state ---------------------------------------------------------------------
    def reset(self) -> None:
        """Reset registers, loops, semaphores, parameters and errors (memories kept)."""
        a = self.arch
        self.regs[:] = [0] * 16
        self.sems[:] = [0] * a.semaphores
        self.vcfg[:] = 0
        self.pc = 0
        self.halted = False
        self.error = PeError.NONE
        self.error_pc: int | None = None
        self.error_msg = ""
        self.instructions = 0
        self.cycles = 0
        self._stack: list[list[int]] = []
        self._loop_end = -1
        self._slots = [[(0, 0)] * a.loop_strides for _ in range(a.loop_depth)]
        self._strides: list[list[tuple[int, int]]] = [[] for _ in range(a.loop_depth)]
        c = a.mac_cols
        self.qparams = {
            "bias": np.zeros(c, np.int64),
            "mult": np.zeros(c, np.int64),
            "shift": np.zeros(c, np.int64),
            "zp": 0,
            "lo": 0,
            "hi": 0,
        }
        self.acc = np.zeros((a.mac_rows, c), dtype=np.int32)
        # indices past the end (up to a LOOP's longest skip) fault when reached
        past = 1 << LOOP_BODY.width
        self._code: list = [None] * a.imem_words + [self._past_end] * past
        self._costs = [1] * (a.imem_words + past)
        self.hazards = HazardGuard(self)  # pending nowait commands (sim/hazards.py)

    def load(self, image, load_dram: bool = True) -> None:
        """Reset, then load instruction memory, SRAM (zeroed first) and DRAM segments."""
        image.check(self.arch)
        self.imem = list(image.imem) + [0] * (self.arch.imem_words - len(image.imem))
        self.sram[:] = 0
        for addr, data in image.sram:
            self.sram[addr : addr + len(data)] = np.frombuffer(data, dtype=np.uint8)
        if load_dram and image.dram:
            self.network.load_dram(image.dram)
        self.reset()

    def read_sram(self, addr: int, nbytes: int) -> bytes:
        return self.sram[addr : addr + nbytes].tobytes()

    def write_sram(self, addr: int, data: bytes) -> None:
        self.sram[addr : addr + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def state(self) -> dict:
        """Plain values to compare against the RTL after a run."""
        return {
            "regs": list(self.regs),
            "sems": list(self.sems),
            "pc": self.pc,
            "halted": self.halted,
            "error": int(self.error),
            "error_pc": self.error_pc,
            "sram": self.sram.tobytes(),
        }

    # -- running -------------------------------------------------------------------
    def run(self, max_instructions: int = 10_000_000) -> RunResult:
        """Execute until HALT, an error, a WAIT that blocks, or the instruction limit."""
        n = 0
        if not (self.halted or self.error):
            n = self._run(max_instructions)
        if self.error:
            status = "error"
        elif self.halted:
            status = "halted"
        else:
            status = "limit" if n >= max_instructions else "blocked"
        return RunResult(
            status,
            self.pc,
            self.error,
            self.error_pc,
            self.error_msg,
            self.instructions,
            self.cycles,
            n,
        )

    def _run(self, limit: int) -> int:
        code, costs = self._code, self._costs
        pc, n, cycles = self.pc, 0, 0
        try:
            while n < limit:
                h = code[pc]
                if h is None:
                    h = self._compile(pc)
                nxt = h()
                if nxt < 0:
                    if nxt == _HALT:
                        self.halted = True
                        n += 1
                        cycles += 1
                    break
                n += 1
                cycles += costs[pc]
                if pc == self._loop_end:
                    nxt = self._iteration_end()
                pc = nxt
        except _Fault as f:
            if not self.error:
                self.error, self.error_msg = f.code, f.msg
                self.error_pc = pc if f.pc is None else f.pc
        self.pc = pc
        self.instructions += n
        self.cycles += cycles
        return n

    def _iteration_end(self) -> int:
        top = self._stack[-1]
        regs = self.regs
        for rd, s in self._strides[len(self._stack) - 1]:
            regs[rd] = (regs[rd] + s) & M32
        top[2] -= 1
        if top[2]:
            return top[0]
        self._stack.pop()
        self._loop_end = self._stack[-1][1] if self._stack else -1
        return top[1] + 1

    def _past_end(self) -> int:
        raise _Fault(PeError.ILLEGAL, "ran past the end of instruction memory")

    # -- network endpoint (sim.network.Endpoint) --------------------------------------
    def _inbound_fault(self, code: PeError, msg: str) -> None:
        if not self.error:
            self.error, self.error_pc, self.error_msg = code, self.pc, msg

    def net_write(self, addrs, rows, sem) -> bool:
        if not rows_in_range(addrs, rows.shape[1], self.arch.sram_bytes):
            self._inbound_fault(PeError.DMA, "inbound write outside SRAM")
            return True
        scatter_rows(self.sram, addrs, rows)
        if sem is not None:
            self.net_signal(sem, 1)
        return True

    def net_read(self, addrs, row_bytes):
        if not rows_in_range(addrs, row_bytes, self.arch.sram_bytes):
            return None
        return gather_rows(self.sram, addrs, row_bytes)

    def net_signal(self, sem, count) -> bool:
        if not 0 <= sem < len(self.sems):
            self._inbound_fault(PeError.DMA, f"inbound signal of semaphore {sem}")
        elif self.sems[sem] + count > self.arch.sem_max:
            self._inbound_fault(
                PeError.SEM_OVERFLOW, f"semaphore {sem} = {self.sems[sem]} + {count} > sem_max"
            )
        else:
            self.sems[sem] += count
        return True

    # -- decoding into closures ----------------------------------------------------
    def _compile(self, pc: int):
        word = self.imem[pc]
        try:
            instr = decode(word)
        except EncodingError as exc:
            msg = str(exc)

            def illegal():
                raise _Fault(PeError.ILLEGAL, msg)

            h = illegal
        else:
            h, cost = getattr(self, _BUILDERS[instr.op])(instr, pc)
            if _GUARDED[instr.op]:
                if not self.arch.async_units and needs_async_units(instr):
                    h, cost = self._no_async_units(instr), 1
                else:
                    h, cost = self.hazards.install(pc, instr, h, cost)
            self._costs[pc] = cost
        self._code[pc] = h
        return h

    def _no_async_units(self, ins):
        what = "FENCE" if ins.op == Op.FENCE else f"{ins.op.name} with nowait = 1"
        msg = f"{what} needs ArchConfig.async_units (arch {self.arch.name!r} has it off)"

        def illegal():
            raise _Fault(PeError.ILLEGAL, msg)

        return illegal

    # -- control and scalar ----------------------------------------------------------
    def _b_nop(self, ins, pc):  # also FENCE: HazardGuard.install gives its closure
        nxt = pc + 1
        return (lambda: nxt), 1

    def _b_halt(self, ins, pc):
        return (lambda: _HALT), 1

    def _b_alu(self, ins, pc):
        R, rd, a, b, nxt = self.regs, ins["rd"], ins["rs1"], ins["rs2"], pc + 1
        imm = ins["imm"] & M32
        op = ins.op
        if rd == 0:
            return (lambda: nxt), 1
        if op == Op.LI:

            def h():
                R[rd] = imm
                return nxt
        elif op == Op.ADDI:

            def h():
                R[rd] = (R[a] + imm) & M32
                return nxt
        elif op == Op.ADD:

            def h():
                R[rd] = (R[a] + R[b]) & M32
                return nxt
        elif op == Op.SUB:

            def h():
                R[rd] = (R[a] - R[b]) & M32
                return nxt
        elif op == Op.MUL:

            def h():
                R[rd] = (R[a] * R[b]) & M32
                return nxt
        elif op == Op.SHLI:

            def h():
                R[rd] = (R[a] << imm) & M32
                return nxt
        else:  # SHRI

            def h():
                R[rd] = R[a] >> imm
                return nxt

        return h, 1

    def _b_mem(self, ins, pc):
        R, S32, rd, a, b, nxt = self.regs, self._sram32, ins["rd"], ins["rs1"], ins["rs2"], pc + 1
        imm, top = ins["imm"] & M32, self.arch.sram_bytes - 4
        store = ins.op == Op.SW

        def h():
            addr = (R[a] + imm) & M32
            if addr & 3 or addr > top:
                raise _Fault(PeError.ADDRESS, f"{ins.op.name} address {addr:#x}")
            if store:
                S32[addr >> 2] = R[b]
            elif rd:
                R[rd] = int(S32[addr >> 2])
            return nxt

        return h, 2

    def _b_loop(self, ins, pc):
        R, a, imm, end = self.regs, ins["rs1"], ins["imm"], pc + ins["body"]
        depth = self.arch.loop_depth
        stack = self._stack

        def h():
            if len(stack) >= depth:
                raise _Fault(PeError.ILLEGAL, f"LOOP nested deeper than loop_depth {depth}")
            if stack and end >= stack[-1][1]:
                raise _Fault(
                    PeError.ILLEGAL,
                    f"LOOP body end {end} is not strictly inside "
                    f"the enclosing body ending at {stack[-1][1]}",
                )
            n = (R[a] + imm) & M32
            if n == 0:
                return end + 1
            stack.append([pc + 1, end, n])
            self._loop_end = end
            return pc + 1

        return h, 1

    def _b_lstride(self, ins, pc):
        level, slot, rd, imm, nxt = ins["level"], ins["slot"], ins["rd"], ins["imm"], pc + 1
        a = self.arch
        if level >= a.loop_depth or slot >= a.loop_strides:
            msg = f"LSTRIDE level {level} / slot {slot} outside {a.loop_depth} x {a.loop_strides}"

            def bad():
                raise _Fault(PeError.ILLEGAL, msg)

            return bad, 1
        slots, active = self._slots[level], self._strides

        def h():
            slots[slot] = (rd, imm & M32)
            active[level] = [(r, s) for r, s in slots if r]
            return nxt

        return h, 1

    # -- MAC array -------------------------------------------------------------------
    def _b_qload(self, ins, pc):
        R, a, imm, nxt = self.regs, ins["rs1"], ins["imm"] & M32, pc + 1
        lay, S, q = self._layout, self.sram, self.qparams
        total, c = lay["total"][1], self.arch.mac_cols
        limit = self.arch.sram_bytes - total

        def h():
            addr = (R[a] + imm) & M32
            if addr & 15 or addr > limit:
                raise _Fault(PeError.ADDRESS, f"QLOAD address {addr:#x}")
            for key in ("bias", "mult"):
                off = addr + lay[key][0]
                q[key] = S[off : off + 4 * c].view("<i4").astype(np.int64)
            off = addr + lay["shift"][0]
            q["shift"] = S[off : off + c].astype(np.int64) & 63
            zp, lo, hi = S[addr + lay["clamp"][0] :][:3].view(np.int8).tolist()
            q["zp"], q["lo"], q["hi"] = zp, lo, hi
            return nxt

        return h, total // WORD_BYTES + 2

    def _b_matmul(self, ins, pc):
        R, S, q = self.regs, self.sram, self.qparams
        ra, rb, rc, nxt = ins["rs1"], ins["rs2"], ins["rs3"], pc + 1
        r, c, lim = self.arch.mac_rows, self.arch.mac_cols, self.arch.sram_bytes
        k, ldc = 16 * ins["k16"], ins["ldc"]
        out32, accum, noout, alda = ins["out32"], ins["acc"], ins["noout"], ins["alda"]
        row_bytes = 4 * c if out32 else c
        align = 16 if out32 else c

        def h():
            a, b, d = R[ra], R[rb], R[rc]
            if a & 15 or matmul_a_end(a, k, r, alda) > lim or b & 15 or b + k * c > lim:
                raise _Fault(PeError.ADDRESS, f"MATMUL operands A {a:#x} / B {b:#x}")
            if not noout and (d % align or ldc % align or d + (r - 1) * ldc + row_bytes > lim):
                raise _Fault(PeError.ADDRESS, f"MATMUL output {d:#x} ldc {ldc}")
            if alda:  # row-major A: R rows of K bytes, 16 * alda apart
                am = np.stack([S[lo:hi] for lo, hi in matmul_a_ranges(a, k, r, alda)])
                am = am.view(np.int8).T
            else:
                am = S[a : a + k * r].view(np.int8).reshape(k, r)
            bm = S[b : b + k * c].view(np.int8).reshape(k, c)
            self.acc = numerics.matmul_acc(am, bm, self.acc if accum else None)
            if not noout:
                if out32:
                    out = self.acc.astype("<i4").view(np.uint8)
                else:
                    out = numerics.output_stage(
                        self.acc, q["bias"], q["mult"], q["shift"], q["zp"], q["lo"], q["hi"]
                    ).view(np.uint8)
                for i in range(r):
                    S[d + i * ldc : d + i * ldc + row_bytes] = out[i]
            return nxt

        return h, k + r + 6 + (r - 1 if alda else 0)

    # -- vector unit -----------------------------------------------------------------
    def _b_vcfg(self, ins, pc):
        R, a, imm, idx, cfg, nxt = self.regs, ins["rs1"], ins["imm"], ins["cfg"], self.vcfg, pc + 1

        def h():
            cfg[idx] = s32((R[a] + imm) & M32)
            return nxt

        return h, 1

    def _b_vop(self, ins, pc):
        R, S, cfg, nxt = self.regs, self.sram, self.vcfg, pc + 1
        rd, ra, rb = ins["rd"], ins["rs1"], ins["rs2"]
        fn, tin, tout = VFn(ins["fn"]), DType(ins["tin"]), DType(ins["tout"])
        n16, seg, bscalar, lim = ins["n16"], ins["seg"], ins["bscalar"], self.arch.sram_bytes
        checks_b = not bscalar  # docs/isa.md: B is checked even where fn does not read it
        takes_b = fn in BINARY
        reduce = fn in REDUCTIONS
        in_bytes, b_bytes, out_bytes = vop_operand_bytes(fn, tin, tout, n16, bscalar, seg)
        spans = numerics.segments(n16, seg)
        segmented = len(spans) > 1  # docs/isa.md "Segments"
        dt_in, dt_out = _LE[tin], _LE[tout]
        if segmented and takes_b and not bscalar:
            lengths = np.array([e - s for s, e in spans])
            word_step = 16 // tin.bytes  # element 0 of every 16-byte B word

        def h():
            a, b, d = R[ra], R[rb], R[rd]
            if (
                a & 15
                or a + in_bytes > lim
                or d & 15
                or d + out_bytes > lim
                or (checks_b and (b & 15 or b + b_bytes > lim))
            ):
                raise _Fault(PeError.ADDRESS, f"VOP operands A {a:#x} B {b:#x} D {d:#x}")
            av = S[a : a + in_bytes].view(dt_in)
            if reduce:
                if segmented:
                    res = _segment_reduce(fn, av, 16 * seg)
                else:
                    res = np.array([numerics.vector_reduce(fn, av)], np.int64)
                words = np.zeros((len(res), 4), "<i4")  # the result in bytes 0..3
                words[:, 0] = res
                S[d : d + out_bytes] = words.view(np.uint8).ravel()
                return nxt
            bv = None
            if takes_b:
                if bscalar:
                    bv = np.int64(s32(b))
                elif segmented:  # one b per segment, for all of its elements
                    first = S[b : b + b_bytes].view(dt_in)[::word_step]
                    bv = np.repeat(first.astype(np.int64), lengths)
                else:
                    bv = S[b : b + in_bytes].view(dt_in)
            res = numerics.vector_elementwise(fn, av, bv, tout, cfg)
            S[d : d + out_bytes] = res.astype(dt_out).view(np.uint8)
            return nxt

        # segments do not change the estimate: a per-segment B (nseg words) reads no
        # more per step than A, a reduction writes at most one word per step
        words = [
            tin.bytes,
            tin.bytes if takes_b and not bscalar else 0,
            0 if reduce else tout.bytes,
        ]
        per = {VFn.RECIP: 34 * 16, VFn.SQRT: 17 * 16}.get(fn, max(words))
        return h, n16 * per

    # -- DMA and semaphores ----------------------------------------------------------
    def _b_dma(self, ins, pc):
        R, a, imm, nxt = self.regs, ins["rs1"], ins["imm"] & M32, pc + 1
        limit = self.arch.sram_bytes - DESC_WORDS * WORD_BYTES

        def h():
            addr = (R[a] + imm) & M32
            if addr & 15 or addr > limit:
                raise _Fault(PeError.ADDRESS, f"DMA descriptor address {addr:#x}")
            self.pc = pc
            self._dma(decode_desc(self.sram[addr : addr + DESC_WORDS * WORD_BYTES].tobytes()))
            return nxt

        return h, 1

    def _dma(self, d: dict) -> None:
        lim, sems = self.arch.sram_bytes, len(self.sems)
        c0, c1, c2, mode = d["count0"], d["count1"], d["count2"], d["mode"]
        problem = None
        if not (c0 and c1 and c2):
            problem = f"zero count ({c0}, {c1}, {c2})"
        elif mode > SignalMode.RECT:
            problem = f"mode {mode}"
        elif any(
            d[f] % 16 for f in ("local", "remote", "lstride1", "lstride2", "rstride1", "rstride2")
        ):
            problem = "an address or stride that is not a multiple of 16"
        elif (d["signal"] or d["read"]) and d["sem"] >= sems:
            problem = f"semaphore {d['sem']} >= {sems}"
        row = 16 * c0
        if problem is None and not _span_ok(
            d["local"], d["lstride1"], d["lstride2"], c1, c2, row, lim
        ):
            problem = f"local rows from {d['local']:#x} outside SRAM"
        if (
            problem is None
            and mode == SignalMode.SELF
            and not _span_ok(d["remote"], d["rstride1"], d["rstride2"], c1, c2, row, lim)
        ):
            problem = f"SELF remote rows from {d['remote']:#x} outside SRAM"
        if problem:
            raise _Fault(PeError.DMA, f"DMA descriptor: {problem}")
        if c1 * c2 * c0 > 1 << 24:  # a simulator limit, not a PE rule
            raise SimulationError(
                f"DMA of {c2} x {c1} x {c0} words exceeds the reference "
                f"simulator's limit of 2**24 words per descriptor"
            )
        i1 = np.arange(c1, dtype=np.int64)[None, :]
        i2 = np.arange(c2, dtype=np.int64)[:, None]
        la = (d["local"] + i1 * d["lstride1"] + i2 * d["lstride2"]).ravel()
        ra = (d["remote"] + i1 * d["rstride1"] + i2 * d["rstride2"]).ravel()
        S, read = self.sram, d["read"]
        try:
            if mode == SignalMode.SELF:
                src, dst = (ra, la) if read else (la, ra)
                scatter_rows(S, dst, gather_rows(S, src, row))
                if read or d["signal"]:
                    self.net_signal(d["sem"], 1)
            elif read and mode == SignalMode.RECT:  # multicast read
                rect = mcast_rect(self.arch, self.coords, d["x1"], d["y1"])
                node = (d["x0"], d["y0"])
                self.network.read_multicast(node, rect, ra, la, row, d["sem"])
            elif read:
                target = (d["x0"], d["y0"], d["x0"], d["y0"])
                scatter_rows(S, la, self.network.read(target, ra, row))
                self.net_signal(d["sem"], 1)
            else:
                target = (d["x0"], d["y0"], d["x1"], d["y1"])
                sem = d["sem"] if d["signal"] else None
                self.network.write(mode, target, ra, gather_rows(S, la, row), sem)
        except DmaRefused as exc:
            raise _Fault(PeError.DMA, str(exc)) from None
        if self.error:
            raise _Fault(self.error, self.error_msg)

    def _b_wait(self, ins, pc):
        s, count, sems, nxt = ins["sem"], ins["count"], self.sems, pc + 1
        if s >= len(sems):
            return self._illegal_sem(s), 1

        def h():
            if sems[s] >= count:
                sems[s] -= count
                return nxt
            return _BLOCK

        return h, 1

    def _b_signal(self, ins, pc):
        R, a, s, count, mode, nxt = (
            self.regs,
            ins["rs1"],
            ins["sem"],
            ins["count"],
            ins["mode"],
            pc + 1,
        )
        if s >= len(self.sems):
            return self._illegal_sem(s), 1

        def h():
            self.pc = pc
            if mode == SignalMode.SELF:
                self.net_signal(s, count)
            else:
                t = R[a]
                target = (
                    (t & 255, t >> 8 & 255) * 2
                    if mode == SignalMode.NODE
                    else (t & 255, t >> 8 & 255, t >> 16 & 255, t >> 24)
                )
                try:
                    self.network.signal(mode, target, s, count)
                except DmaRefused as exc:
                    raise _Fault(PeError.DMA, f"SIGNAL: {exc}") from None
            if self.error:
                raise _Fault(self.error, self.error_msg)
            return nxt

        return h, 1

    def _illegal_sem(self, s: int):
        msg = f"semaphore {s} >= semaphores {len(self.sems)}"

        def bad():
            raise _Fault(PeError.ILLEGAL, msg)

        return bad


def _segment_reduce(fn: VFn, a: np.ndarray, elems: int) -> np.ndarray:
    """RSUM / RMAX of every segment of ``elems`` elements of ``a`` (the last one may be
    shorter), each as numerics.vector_reduce computes it: the exact sum saturated to
    int32, or the maximum."""
    starts = np.arange(0, len(a), elems)
    a = a.astype(np.int64)
    if fn == VFn.RSUM:
        return numerics.sat(np.add.reduceat(a, starts))
    return np.maximum.reduceat(a, starts)


def _span_ok(base: int, s1: int, s2: int, c1: int, c2: int, row: int, limit: int) -> bool:
    """Every row base + i1*s1 + i2*s2 (exact arithmetic) lies inside [0, limit)."""
    lo = base + min(0, (c1 - 1) * s1) + min(0, (c2 - 1) * s2)
    hi = base + max(0, (c1 - 1) * s1) + max(0, (c2 - 1) * s2)
    return lo >= 0 and hi + row <= limit


_BUILDERS = {
    Op.NOP: "_b_nop",
    Op.HALT: "_b_halt",
    Op.LI: "_b_alu",
    Op.ADDI: "_b_alu",
    Op.ADD: "_b_alu",
    Op.SUB: "_b_alu",
    Op.MUL: "_b_alu",
    Op.SHLI: "_b_alu",
    Op.SHRI: "_b_alu",
    Op.LW: "_b_mem",
    Op.SW: "_b_mem",
    Op.LOOP: "_b_loop",
    Op.LSTRIDE: "_b_lstride",
    Op.QLOAD: "_b_qload",
    Op.MATMUL: "_b_matmul",
    Op.VCFG: "_b_vcfg",
    Op.VOP: "_b_vop",
    Op.DMA: "_b_dma",
    Op.WAIT: "_b_wait",
    Op.SIGNAL: "_b_signal",
    Op.FENCE: "_b_nop",
}
_GUARDED = [code in GUARDED_OPS for code in range(max(Op) + 1)]
