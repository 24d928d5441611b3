"""The SpiNNaker-style key/mask multicast routing table and its CONFIG sink.

An entry matches a key when ``key & entry.mask == entry.key`` and the entry is
enabled; the lowest matching index wins and gives a set of output ports
(bit p = port p, ``hw.noc.link`` numbering).

CONFIG packets write the table (``docs/noc.md``): the head flit's ``addr``
field is the index of the first entry written; payload flit ``i`` writes
entry ``addr + i``::

    data[31:0]   key
    data[63:32]  mask
    data[68:64]  output port set (bit 0 local, 1 north, 2 east, 3 south, 4 west)
    data[69]     enable (0 disables the entry)

Payload flits whose index is ``>= routing_table_entries`` are ignored.
"""

from amaranth.hdl import C, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import H_ADDR
from hw.noc.link import PORTS
from hw.pe.interfaces import Flit

__all__ = ["KeyEntry", "KeyLookup", "KeyTable", "KEY_BITS", "encode_entry"]

KEY_BITS = 32


class KeyEntry(data.Struct):
    key: KEY_BITS
    mask: KEY_BITS
    ports: PORTS
    enable: 1


def encode_entry(key: int, mask: int, ports: int, enable: bool = True) -> int:
    """The 128-bit CONFIG payload word of one table entry."""
    for what, value, bits in (("key", key, 32), ("mask", mask, 32), ("ports", ports, PORTS)):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"{what} must fit in {bits} bits, not {value!r}")
    return key | mask << 32 | ports << 64 | int(enable) << 69


class KeyLookup(wiring.Signature):
    """One lookup port (requester's view): ``hit``/``ports`` follow ``key`` combinationally."""

    def __init__(self):
        super().__init__({"key": Out(KEY_BITS), "hit": In(1), "ports": In(PORTS)})


class KeyTable(wiring.Component):
    """``arch.routing_table_entries`` entries, ``lookups`` parallel lookup ports.

    ``cfg`` carries the flits of CONFIG packets addressed to this router, in
    packet order; it is always ready.  All entries are disabled after reset.
    """

    def __init__(self, arch: ArchConfig, lookups: int):
        if not isinstance(lookups, int) or lookups < 1:
            raise ValueError(f"lookups must be a positive integer, not {lookups!r}")
        self.arch = arch
        self.entries = arch.routing_table_entries
        super().__init__(
            {
                "cfg": In(stream.Signature(Flit)),
                "lookup": In(KeyLookup()).array(lookups),
            }
        )
        self.table = [Signal(KeyEntry, name=f"entry{i}") for i in range(self.entries)]

    def elaborate(self, platform):
        m = Module()
        n = self.entries
        index = Signal(range(n + 1))  # n: past the end, writes ignored
        m.d.comb += self.cfg.ready.eq(1)
        flit = self.cfg.payload
        with m.If(self.cfg.valid):
            with m.If(flit.first):
                addr = H_ADDR.lo
                head_index = flit.data[addr : addr + H_ADDR.width]
                m.d.sync += index.eq(Mux(head_index < n, head_index, n))
            with m.Elif(index != n):
                with m.Switch(index):
                    for i in range(n):
                        with m.Case(i):
                            m.d.sync += self.table[i].eq(flit.data[: len(self.table[i].as_value())])
                m.d.sync += index.eq(index + 1)
        for port in self.lookup:
            ports = C(0, PORTS)
            hit = 0
            for entry in reversed(self.table):
                match = entry.enable & ((port.key & entry.mask) == entry.key)
                ports = Mux(match, entry.ports, ports)
                hit = hit | match
            m.d.comb += [port.hit.eq(hit), port.ports.eq(ports)]
        return m
