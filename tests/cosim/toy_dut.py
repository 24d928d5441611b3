"""A small stand-in DUT with the harness's port set, to test the cosim infrastructure.

On ``start`` it counts down from SRAM word 0 bits [31:0]; at zero it halts
(or, if word 0 bits [34:32] are non-zero, stops with that error code and
err_pc 0x1234) and writes ``imem[0] << 32 | count`` to SRAM word 1.  A count
of 0xFFFFFFFF never ends in a test (the hang case).  ``dbg_data`` is the
counter for sel 48, else ``3 * sel``.  On start, SRAM word 0 is also written to DRAM word 2.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from cosim.harness import dut_signature
from hw.arch import ArchConfig


class ToyDut(wiring.Component):
    def __init__(self, arch: ArchConfig):
        self.arch = arch
        super().__init__(dut_signature(arch))

    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        m.submodules.sram = sram = Memory(shape=128, depth=arch.sram_words, init=[])
        word0 = Signal(128)
        imem0 = Signal(64)
        count = Signal(32)
        total = Signal(32)
        rd = sram.read_port()
        wr = sram.write_port()
        host = self.host
        m.d.comb += [
            host.ready.eq(~self.running),
            rd.addr.eq(host.addr),
            rd.en.eq(1),
            host.rdata.eq(rd.data),
            wr.addr.eq(host.addr),
            wr.data.eq(host.wdata),
            wr.en.eq(host.valid & host.we & ~host.imem & ~self.running),
        ]
        m.d.sync += host.rvalid.eq(host.valid & ~host.we & ~host.imem & ~self.running)
        with m.If(host.valid & host.we & (host.addr == 0)):
            with m.If(host.imem):
                m.d.sync += imem0.eq(host.wdata[:64])
            with m.Else():
                m.d.sync += word0.eq(host.wdata)
        with m.If(self.start):
            m.d.sync += [
                count.eq(word0[:32]),
                total.eq(word0[:32]),
                self.running.eq(1),
                self.halted.eq(0),
            ]
        with m.Elif(self.running):
            m.d.sync += count.eq(count - 1)
            with m.If(count <= 1):
                m.d.sync += self.running.eq(0)
                m.d.comb += [wr.addr.eq(1), wr.data.eq(imem0 << 32 | total), wr.en.eq(1)]
                with m.If(word0[32:35] != 0):
                    m.d.sync += [self.error.eq(word0[32:35]), self.err_pc.eq(0x1234)]
                with m.Else():
                    m.d.sync += self.halted.eq(1)
        with m.If(self.dbg_sel == 48):
            m.d.comb += self.dbg_data.eq(count)
        with m.Else():
            m.d.comb += self.dbg_data.eq(self.dbg_sel * 3)
        bd = self.dram  # one DRAM word per run: copy SRAM word 0 to DRAM word 2
        m.d.comb += [bd.addr.eq(2), bd.wdata.eq(word0), bd.we.eq(self.start), bd.en.eq(self.start)]
        return m
