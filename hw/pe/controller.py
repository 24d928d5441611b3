"""The PE controller: fetch, decode, scalar execute, hardware loops, unit issue.

Two stages.  *Fetch*: the instruction-memory read port (synchronous, one cycle)
is addressed with the pc of the *next* instruction, computed combinationally
by the execute stage (pc + 1, a loop back-edge, or the skip of a zero-count
LOOP), so no fetch is ever wrong and nothing is flushed.  *Execute*: decodes
the word, reads the register file (flip-flops), executes and writes back in
the same cycle, so there are no data hazards and scalar instructions retire
one per cycle.  A multi-cycle instruction holds the execute stage (and the
read port's ``en``) until it completes.

Ports (see the signature in ``__init__``): ``start`` pulse (pc = 0, registers,
loop stack and stride slots cleared, run; ignored while running or in error);
``running``/``halted``; the sticky ``error`` (:class:`hw.isa.PeError`) and
``err_pc``; ``imem``: host access to instruction memory while stopped
(valid/ready/rvalid like an SRAM port, 64-bit data, ``ready = ~running``);
``sram``: the LW/SW port; ``mac``/``vec``/``vec_cfg``/``dma``/``sig`` command
streams (valid held until ready); ``sem_inc``/``sem_wait`` to the semaphores.
Faults raised outside an instruction (``dma_error``, a network semaphore
overflow) are recorded with the pc of the instruction in execute.

Decoupled units (``arch.async_units``; docs/isa.md): a QLOAD/MATMUL/VOP with
``nowait`` retires in the cycle after its unit accepted it (the cycle of the
unit's ``error`` answer) while the unit runs on; a command for a busy unit waits
for it (units are ready only when idle).  FENCE, VCFG (vector unit) and HALT (both
units) wait for ``busy`` to drop.  A fault stops execution at once, but ``error``
reads 0 until no unit is busy, so the work issued before the fault is complete
when the host sees it.
"""

from __future__ import annotations

from amaranth import Array, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import INSTR_BITS, LOOP_BODY, RD, PeError
from hw.pe.decode import Decoder, field
from hw.pe.execute import ExecMixin
from hw.pe.interfaces import (
    DmaCmd,
    MacCmd,
    SemInc,
    SignalCmd,
    SramPort,
    VecCfgWrite,
    VecCmd,
)
from hw.pe.loops import LoopStack
from hw.pe.semaphores import SemWait

__all__ = ["Controller", "ImemPort", "pc_bits"]

ERR_PC_BITS = 16


def pc_bits(arch: ArchConfig) -> int:
    """Width of the execute-stage pc: holds any skip target past the end of imem."""
    return (arch.imem_words + (1 << LOOP_BODY.width)).bit_length()


class ImemPort(wiring.Signature):
    """Host access to instruction memory (host's view); SRAM-port timing."""

    def __init__(self, arch: ArchConfig):
        super().__init__(
            {
                "valid": Out(1),
                "we": Out(1),
                "addr": Out(range(arch.imem_words)),
                "wdata": Out(INSTR_BITS),
                "ready": In(1),
                "rvalid": In(1),
                "rdata": In(INSTR_BITS),
            }
        )


class Controller(ExecMixin, wiring.Component):
    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        self.pc_bits = pc_bits(arch)
        super().__init__(
            {
                "start": In(1),
                "running": Out(1),
                "halted": Out(1),
                "error": Out(3),
                "err_pc": Out(ERR_PC_BITS),
                "pc": Out(ERR_PC_BITS),
                "imem": In(ImemPort(arch)),
                "sram": Out(SramPort(arch)),
                "mac": Out(stream.Signature(MacCmd)),
                "mac_busy": In(1),
                "mac_error": In(1),
                "vec": Out(stream.Signature(VecCmd)),
                "vec_cfg": Out(stream.Signature(VecCfgWrite)),
                "vec_busy": In(1),
                "vec_error": In(1),
                "dma": Out(stream.Signature(DmaCmd)),
                "dma_error": In(1),
                "sig": Out(stream.Signature(SignalCmd)),
                "sem_inc": Out(stream.Signature(SemInc)),
                "sem_wait": Out(SemWait()),
                "sem_overflow": In(1),
                "dbg_reg_sel": In(RD.width),
                "dbg_reg": Out(32),
            }
        )

    def elaborate(self, platform) -> Elaboratable:
        m = Module()
        arch = self.arch
        m.submodules.decoder = self.decoder = Decoder()
        m.submodules.loops = self.loops = LoopStack(arch, self.pc_bits)
        m.submodules.imem = imem = Memory(shape=INSTR_BITS, depth=arch.imem_words, init=[])
        self.rport = imem.read_port(domain="sync")
        self.wport = imem.write_port()

        self.epc = Signal(self.pc_bits)
        self.regs = [Const(0, 32)] + [Signal(32, name=f"x{i}") for i in range(1, 16)]
        self.xr = Array(self.regs)
        self.word = self.rport.data
        self.waiting = Signal()  # an accepted LW or unit command is in flight
        # The sticky error code; ``error`` shows it once no unit is busy, so that the
        # nowait commands issued before the fault have finished when the host looks.
        self.err = Signal(3)
        # Execute-stage outcome of this cycle (driven by the ExecMixin).
        self.complete = Signal()
        self.fault = Signal()
        self.fault_code = Signal(3)
        self.halt = Signal()
        self.skip = Signal()  # a LOOP with count 0: continue after its body
        self.wb_en = Signal()
        self.wb_val = Signal(32)

        self.go = Signal()  # an accepted start pulse
        m.d.comb += [
            self.decoder.word.eq(self.word),
            self.go.eq(self.start & ~self.running & (self.err == 0)),
        ]
        self._execute(m)
        self._writeback(m)
        self._sequence(m)
        self._host_imem(m)
        m.d.comb += [
            self.error.eq(Mux(self.mac_busy | self.vec_busy, 0, self.err)),
            self.pc.eq(self.epc),
            self.dbg_reg.eq(self.xr[self.dbg_reg_sel]),
        ]
        return m

    def _next_pc(self, m: Module) -> Signal:
        loops = self.loops
        nxt = Signal(self.pc_bits)
        body_end = self.epc + field(self.word, LOOP_BODY)
        with m.If(self.skip):
            m.d.comb += nxt.eq(body_end + 1)
        with m.Elif(loops.back):
            m.d.comb += nxt.eq(loops.back_pc)
        with m.Else():
            m.d.comb += nxt.eq(self.epc + 1)
        return nxt

    def _sequence(self, m: Module) -> None:
        """Run state, fetch addressing, faults and the loop-stack strobes."""
        nxt = self._next_pc(m)
        running, loops = self.running, self.loops
        async_fault = Signal(3)
        with m.If(self.dma_error):
            m.d.comb += async_fault.eq(PeError.DMA)
        with m.Elif(self.sem_overflow):
            m.d.comb += async_fault.eq(PeError.SEM_OVERFLOW)
        m.d.comb += [
            self.rport.en.eq(0),
            loops.epc.eq(self.epc),
            loops.step.eq(self.complete & ~self.halt),
            loops.clear.eq(self.go),
        ]
        with m.If(self.go):
            m.d.comb += [self.rport.addr.eq(0), self.rport.en.eq(1)]
            m.d.sync += [running.eq(1), self.halted.eq(0), self.epc.eq(0), self.waiting.eq(0)]
        with m.Elif(running):
            m.d.comb += self.rport.en.eq(self.complete)
            m.d.comb += self.rport.addr.eq(nxt)
            with m.If(self.complete & ~self.halt):
                m.d.sync += self.epc.eq(nxt)
            with m.If(self.complete & self.halt):
                m.d.sync += [running.eq(0), self.halted.eq(1)]
        with m.If(self.err == 0):
            with m.If(self.fault):
                m.d.sync += [self.err.eq(self.fault_code), self.err_pc.eq(self.epc)]
            with m.Elif(async_fault != 0):
                m.d.sync += [self.err.eq(async_fault), self.err_pc.eq(self.epc)]
            with m.If(self.fault | (async_fault != 0)):
                m.d.sync += [running.eq(0), self.waiting.eq(0)]

    def _writeback(self, m: Module) -> None:
        """Register writes: the instruction's result, then the iteration-end strides."""
        loops = self.loops
        rd = field(self.word, RD)
        apply = Signal()
        m.d.comb += apply.eq(self.complete & ~self.halt & loops.iter_end)
        for r in range(1, 16):
            reg = self.regs[r]
            hit = self.complete & self.wb_en & (rd == r)
            total = Mux(hit, self.wb_val, reg)
            touched = hit
            for s in range(self.arch.loop_strides):
                on = apply & (loops.stride_rd[s] == r)
                total = total + Mux(on, loops.stride_imm[s], 0)
                touched = touched | on
            with m.If(self.go):
                m.d.sync += reg.eq(0)
            with m.Elif(touched):
                m.d.sync += reg.eq(total[:32])

    def _host_imem(self, m: Module) -> None:
        host = self.imem
        stopped = ~self.running & ~self.start
        m.d.comb += host.ready.eq(stopped)
        accept = host.valid & stopped
        with m.If(accept & host.we):
            m.d.comb += [
                self.wport.en.eq(1),
                self.wport.addr.eq(host.addr),
                self.wport.data.eq(host.wdata),
            ]
        with m.If(accept & ~host.we):
            m.d.comb += [self.rport.en.eq(1), self.rport.addr.eq(host.addr)]
        m.d.sync += host.rvalid.eq(accept & ~host.we)
        m.d.comb += host.rdata.eq(self.rport.data)
