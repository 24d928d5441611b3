"""The PE's banked scratchpad SRAM.

``sram_bytes`` of 16-byte words split into ``sram_banks`` equal blocks
(block banking: bank = word address // words per bank), so that the compiler
can place the A and B operands of a MATMUL in different banks and DMA can run
beside compute.  Each bank is one :class:`amaranth.lib.memory.Memory` with byte
write enables and serves one access (read or write) per cycle.

Requesters use :class:`hw.pe.interfaces.SramPort`: a request is accepted in the
cycle where ``valid`` and ``ready`` are both high; read data arrives on
``rdata`` with ``rvalid`` high exactly one cycle later.  Each bank grants the
requesting port with the lowest index (fixed priority); the other requesters of
that bank see ``ready = 0`` and retry.  ``ready`` is combinational in the
requests of all ports.
"""

from __future__ import annotations

from amaranth import Array, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from hw.arch import ArchConfig
from hw.pe.interfaces import SramPort

__all__ = ["BankedSram", "bank_of"]


def bank_of(arch: ArchConfig, word_addr: int) -> int:
    """The bank holding ``word_addr`` (the Python form of the RTL's bank select)."""
    return word_addr // (arch.bank_bytes // arch.word_bytes)


class BankedSram(wiring.Component):
    """``arch.sram_banks`` banks behind ``n_ports`` prioritized requester ports.

    Port 0 has the highest priority.  A port must not depend on ``ready`` to
    raise ``valid`` (see the SramPort protocol).
    """

    def __init__(self, arch: ArchConfig, n_ports: int):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if not isinstance(n_ports, int) or isinstance(n_ports, bool) or n_ports < 1:
            raise ValueError(f"n_ports must be a positive integer, not {n_ports!r}")
        self.arch = arch
        self.n_ports = n_ports
        self.bank_words = arch.bank_bytes // arch.word_bytes
        super().__init__({"ports": In(SramPort(arch)).array(n_ports)})

    def elaborate(self, platform) -> Elaboratable:
        m = Module()
        arch = self.arch
        lanes = arch.word_bytes
        offset_bits = (self.bank_words - 1).bit_length()
        n_banks = arch.sram_banks

        bank_sel = []
        for i, port in enumerate(self.ports):
            sel = Signal(range(n_banks), name=f"bank_sel_{i}")
            if n_banks > 1:
                m.d.comb += sel.eq(port.addr >> offset_bits)
            bank_sel.append(sel)

        read_data = []
        for b in range(n_banks):
            mem = Memory(shape=data.ArrayLayout(8, lanes), depth=self.bank_words, init=[])
            m.submodules[f"bank{b}"] = mem
            # For an ArrayLayout, granularity counts elements: 1 = one byte enable per byte.
            wp = mem.write_port(granularity=1)
            rp = mem.read_port(domain="sync")
            read_data.append(rp.data.as_value())
            m.d.comb += rp.en.eq(0)
            # Fixed priority: assigned last, the lowest requesting index wins.
            for i in reversed(range(self.n_ports)):
                port = self.ports[i]
                with m.If(port.valid & (bank_sel[i] == b)):
                    m.d.comb += [
                        wp.addr.eq(port.addr[:offset_bits]),
                        rp.addr.eq(port.addr[:offset_bits]),
                        wp.data.eq(port.wdata),
                        wp.en.eq(Mux(port.we, port.wmask, 0)),
                        rp.en.eq(~port.we),
                    ]

        # ready: a port is granted if no lower-index port requests the same bank.
        for i, port in enumerate(self.ports):
            blocked = 0
            for j in range(i):
                other = self.ports[j]
                blocked = blocked | (other.valid & (bank_sel[j] == bank_sel[i]))
            m.d.comb += port.ready.eq(~blocked)
            rvalid = Signal(name=f"rvalid_{i}")
            rbank = Signal(range(n_banks), name=f"rbank_{i}")
            m.d.sync += [
                rvalid.eq(port.valid & port.ready & ~port.we),
                rbank.eq(bank_sel[i]),
            ]
            m.d.comb += [
                port.rvalid.eq(rvalid),
                port.rdata.eq(Array(read_data)[rbank]),
            ]
        return m
