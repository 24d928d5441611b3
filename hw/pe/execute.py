"""The controller's execute stage, one method per instruction group.

Mixed into :class:`hw.pe.controller.Controller`; every method drives the
execute-stage outcome signals of the controller (``complete``, ``fault`` and
``fault_code``, ``wb_en``/``wb_val``, ``halt``, ``skip``) and the request side
of the port an instruction uses.  Faults are checked before any request is
raised, so a faulting instruction changes no state.  ``_unit`` issues QLOAD,
MATMUL and VOP, blocking or ``nowait`` (retire the cycle after acceptance); FENCE,
VCFG and HALT wait for the units they depend on (docs/pe.md, "Decoupled units").
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal

from hw.isa import (
    FENCE_UNITS,
    IMM,
    IMMU,
    LOOP_BODY,
    LSTRIDE_LEVEL,
    LSTRIDE_SLOT,
    MM_ACC,
    MM_ALDA,
    MM_K16,
    MM_LDC,
    MM_NOOUT,
    MM_NOWAIT,
    MM_OUT32,
    OPCODE,
    QL_NOWAIT,
    RD,
    RS1,
    RS2,
    RS3,
    SEM_COUNT,
    SEM_ID,
    SIG_MODE,
    V_BSCALAR,
    V_FN,
    V_N16,
    V_NOWAIT,
    V_SEG,
    V_TIN,
    V_TOUT,
    VCFG_REG,
    WORD_BYTES,
    Op,
    PeError,
    SignalMode,
    Unit,
    fields_of,
)
from hw.pe.decode import field
from hw.pe.interfaces import word_addr_bits

__all__ = ["ExecMixin"]

SHAMT = fields_of(Op.SHLI)[-1]  # the 5-bit shift amount inside imm
DESC_BYTES = 3 * WORD_BYTES  # hw.isa.DESC_WORDS words
WORD_SHIFT = (WORD_BYTES - 1).bit_length()
LANE_SHIFT = 2  # 32-bit lanes of a 16-byte word


class ExecMixin:
    def _execute(self, m: Module) -> None:
        w = self.word
        x = self.xr
        self.rs1v, self.rs2v = x[field(w, RS1)], x[field(w, RS2)]
        self.rs3v, self.rdv = x[field(w, RS3)], x[field(w, RD)]
        self.imm = field(w, IMM)
        self.addr = Signal(32)  # X[rs1] + imm, wrapping
        self.set_wait = Signal()
        m.d.comb += self.addr.eq(self.rs1v + self.imm)

        with m.If(self.running):
            with m.If(self.epc >= self.arch.imem_words):
                self._fault(m, PeError.ILLEGAL)
            with m.Elif(~self.decoder.legal):
                self._fault(m, PeError.ILLEGAL)
            with m.Else():
                with m.Switch(field(w, OPCODE)):
                    self._scalar(m)
                    self._memory(m)
                    self._loops(m)
                    self._units(m)
                    self._sync_ops(m)
        with m.If(self.complete):
            m.d.sync += self.waiting.eq(0)
        with m.Elif(self.set_wait):
            m.d.sync += self.waiting.eq(1)

    def _fault(self, m: Module, code: PeError) -> None:
        m.d.comb += [self.fault.eq(1), self.fault_code.eq(code)]

    def _done(self, m: Module, value=None) -> None:
        m.d.comb += self.complete.eq(1)
        if value is not None:
            m.d.comb += [self.wb_en.eq(1), self.wb_val.eq(value)]

    def _scalar(self, m: Module) -> None:
        shamt = field(self.word, SHAMT)
        with m.Case(Op.NOP):
            self._done(m)
        with m.Case(Op.HALT):
            # A halted PE has finished its work: wait for nowait commands still running.
            with m.If(~self.mac_busy & ~self.vec_busy):
                self._done(m)
                m.d.comb += self.halt.eq(1)
        with m.Case(Op.LI):
            self._done(m, self.imm)
        with m.Case(Op.ADDI):
            self._done(m, self.addr)
        with m.Case(Op.ADD):
            self._done(m, self.rs1v + self.rs2v)
        with m.Case(Op.SUB):
            self._done(m, self.rs1v - self.rs2v)
        with m.Case(Op.MUL):
            self._done(m, self.rs1v * self.rs2v)
        with m.Case(Op.SHLI):
            self._done(m, self.rs1v << shamt)
        with m.Case(Op.SHRI):
            self._done(m, self.rs1v >> shamt)

    def _memory(self, m: Module) -> None:
        """LW/SW: 4-aligned, inside SRAM; one 16-byte word access with byte enables."""
        addr, port = self.addr, self.sram
        lane = addr[LANE_SHIFT:WORD_SHIFT]
        bad = (addr[:LANE_SHIFT] != 0) | (addr >= self.arch.sram_bytes)
        with m.Case(Op.LW, Op.SW):
            is_sw = field(self.word, OPCODE) == Op.SW
            with m.If(bad):
                self._fault(m, PeError.ADDRESS)
            with m.Elif(~self.waiting):
                m.d.comb += [
                    port.valid.eq(1),
                    port.addr.eq(addr[WORD_SHIFT : WORD_SHIFT + word_addr_bits(self.arch)]),
                    port.we.eq(is_sw),
                    port.wdata.eq(Cat(self.rs2v, self.rs2v, self.rs2v, self.rs2v)),
                    port.wmask.eq(Const(0xF, 4) << (lane * 4)),
                ]
                with m.If(port.ready & is_sw):
                    self._done(m)
                with m.If(port.ready & ~is_sw):
                    m.d.comb += self.set_wait.eq(1)
            with m.Elif(port.rvalid):
                self._done(m, port.rdata.word_select(lane, 32))

    def _loops(self, m: Module) -> None:
        arch, loops, w = self.arch, self.loops, self.word
        with m.Case(Op.LOOP):
            count = Signal(32)
            end = Signal(self.pc_bits)
            m.d.comb += [
                count.eq(self.rs1v + field(w, IMMU)),
                end.eq(self.epc + field(w, LOOP_BODY)),
            ]
            room = loops.depth < arch.loop_depth
            nested = (loops.depth == 0) | (end < loops.top_end)
            with m.If(~room | ~nested):
                self._fault(m, PeError.ILLEGAL)
            with m.Else():
                self._done(m)
                m.d.comb += [loops.push_end.eq(end), loops.push_count.eq(count)]
                with m.If(count == 0):
                    m.d.comb += self.skip.eq(1)
                with m.Else():
                    m.d.comb += loops.push.eq(1)
        with m.Case(Op.LSTRIDE):
            level, slot = field(w, LSTRIDE_LEVEL), field(w, LSTRIDE_SLOT)
            with m.If((level >= arch.loop_depth) | (slot >= arch.loop_strides)):
                self._fault(m, PeError.ILLEGAL)
            with m.Else():
                self._done(m)
                m.d.comb += [
                    loops.ls_we.eq(1),
                    loops.ls_level.eq(level),
                    loops.ls_slot.eq(slot),
                    loops.ls_rd.eq(field(w, RD)),
                    loops.ls_imm.eq(self.imm),
                ]

    def _unit(self, m: Module, cmd, busy, error, nowait, payload: list) -> None:
        """Offer ``cmd`` until accepted (a busy unit is not ready: the offer stalls).

        Blocking: hold until the unit drops ``busy``.  ``nowait``: retire in the cycle
        after acceptance, where the unit has checked the command (``error``).
        """
        if not self.arch.async_units:  # the blocking PE: the nowait bit is ILLEGAL
            illegal, nowait = nowait, Const(0)
        else:
            illegal = Const(0)
        with m.If(illegal):
            self._fault(m, PeError.ILLEGAL)
        with m.Elif(~self.waiting):
            m.d.comb += [cmd.valid.eq(1), *payload]
            with m.If(cmd.ready):
                m.d.comb += self.set_wait.eq(1)
        with m.Elif(error):
            self._fault(m, PeError.ADDRESS)
        with m.Elif(nowait | ~busy):
            self._done(m)

    def _units(self, m: Module) -> None:
        w, mac, vec = self.word, self.mac.p, self.vec.p
        with m.Case(Op.QLOAD):
            self._unit(
                m,
                self.mac,
                self.mac_busy,
                self.mac_error,
                field(w, QL_NOWAIT),
                [mac.qload.eq(1), mac.a_addr.eq(self.addr)],
            )
        with m.Case(Op.MATMUL):
            self._unit(
                m,
                self.mac,
                self.mac_busy,
                self.mac_error,
                field(w, MM_NOWAIT),
                [
                    mac.a_addr.eq(self.rs1v),
                    mac.b_addr.eq(self.rs2v),
                    mac.c_addr.eq(self.rs3v),
                    mac.k16.eq(field(w, MM_K16)),
                    mac.ldc.eq(field(w, MM_LDC)),
                    mac.out32.eq(field(w, MM_OUT32)),
                    mac.acc.eq(field(w, MM_ACC)),
                    mac.noout.eq(field(w, MM_NOOUT)),
                    mac.alda.eq(field(w, MM_ALDA)),
                ],
            )
        with m.Case(Op.VOP):
            self._unit(
                m,
                self.vec,
                self.vec_busy,
                self.vec_error,
                field(w, V_NOWAIT),
                [
                    vec.fn.eq(field(w, V_FN)),
                    vec.tin.eq(field(w, V_TIN)),
                    vec.tout.eq(field(w, V_TOUT)),
                    vec.bscalar.eq(field(w, V_BSCALAR)),
                    vec.n16.eq(field(w, V_N16)),
                    vec.seg.eq(field(w, V_SEG)),
                    vec.a_addr.eq(self.rs1v),
                    vec.b.eq(self.rs2v),
                    vec.d_addr.eq(self.rdv),
                ],
            )
        with m.Case(Op.VCFG):
            # Never change a config register under a running VOP.
            cfg = self.vec_cfg
            with m.If(~self.vec_busy):
                m.d.comb += [
                    cfg.valid.eq(1),
                    cfg.p.idx.eq(field(w, VCFG_REG)),
                    cfg.p.value.eq(self.addr),
                ]
                with m.If(cfg.ready):
                    self._done(m)
        with m.Case(Op.FENCE):
            units = field(w, FENCE_UNITS)
            if not self.arch.async_units:
                self._fault(m, PeError.ILLEGAL)
            else:
                mac_wait = ((units & Unit.MAC) != 0) & self.mac_busy
                vec_wait = ((units & Unit.VEC) != 0) & self.vec_busy
                with m.If(~mac_wait & ~vec_wait):
                    self._done(m)

    def _sync_ops(self, m: Module) -> None:
        """DMA, WAIT and SIGNAL."""
        arch, w = self.arch, self.word
        sem, count, mode = field(w, SEM_ID), field(w, SEM_COUNT), field(w, SIG_MODE)
        with m.Case(Op.DMA):
            bad = (self.addr[:WORD_SHIFT] != 0) | (self.addr > arch.sram_bytes - DESC_BYTES)
            with m.If(bad):
                self._fault(m, PeError.ADDRESS)
            with m.Else():
                m.d.comb += [self.dma.valid.eq(1), self.dma.p.desc_addr.eq(self.addr)]
                with m.If(self.dma.ready):
                    self._done(m)
        with m.Case(Op.WAIT):
            wait = self.sem_wait
            with m.If(sem >= arch.semaphores):
                self._fault(m, PeError.ILLEGAL)
            with m.Else():
                m.d.comb += [wait.valid.eq(1), wait.sem.eq(sem), wait.count.eq(count)]
                with m.If(wait.ok):
                    self._done(m)
        with m.Case(Op.SIGNAL):
            with m.If(sem >= arch.semaphores):
                self._fault(m, PeError.ILLEGAL)
            with m.Elif(mode == SignalMode.SELF):
                inc = self.sem_inc
                m.d.comb += [inc.valid.eq(1), inc.p.sem.eq(sem), inc.p.count.eq(count)]
                with m.If(self.sem_overflow):
                    self._fault(m, PeError.SEM_OVERFLOW)
                with m.Elif(inc.ready):
                    self._done(m)
            with m.Else():
                sig = self.sig
                m.d.comb += [
                    sig.valid.eq(1),
                    sig.p.mode.eq(mode),
                    sig.p.target.eq(self.rs1v),
                    sig.p.sem.eq(sem),
                    sig.p.count.eq(count),
                ]
                with m.If(sig.ready):
                    self._done(m)
