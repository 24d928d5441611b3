"""Data layouts shared by the units of the DMA engine.

Every bit position comes from :mod:`hw.isa`: the descriptor image
(``D_*`` fields) and the packet head flit (``H_*`` fields) are turned into
:class:`amaranth.lib.data.FlexibleLayout` views here, so the RTL reads and writes
them by name and never writes a bit number itself.
"""

from __future__ import annotations

from amaranth import Shape, signed, unsigned
from amaranth.lib import data

from hw.arch import ArchConfig
from hw.isa import DESC_FIELDS, DESC_WORDS, HEAD_FIELDS, WORD_BYTES, Field
from hw.pe.interfaces import Flit, word_addr_bits

__all__ = [
    "DESC_IMAGE",
    "DESC",
    "HEAD",
    "TaggedFlit",
    "packet_cmd_layout",
    "len_bits",
    "SRAM_READ_LATENCY",
    "WORD_SHIFT",
    "check_arch",
]

# The SramPort protocol: read data arrives exactly one cycle after acceptance.
SRAM_READ_LATENCY = 1
# Byte address -> word address.
WORD_SHIFT = (WORD_BYTES - 1).bit_length()


def _shape(f: Field) -> Shape:
    return signed(f.width) if f.signed else unsigned(f.width)


# The 48-byte descriptor image as it sits in SRAM (three words, word 0 lowest).
DESC_IMAGE = data.FlexibleLayout(
    DESC_WORDS * WORD_BYTES * 8, {f.name: data.Field(_shape(f), f.lo) for f in DESC_FIELDS}
)

# The same fields packed densely: what the descriptor queue stores.
DESC = data.StructLayout({f.name: _shape(f) for f in DESC_FIELDS})

# The head flit of a packet.
HEAD = data.FlexibleLayout(
    WORD_BYTES * 8, {f.name: data.Field(_shape(f), f.lo) for f in HEAD_FIELDS}
)


def len_bits() -> int:
    """Width of a packet length (the head's ``len`` field)."""
    return HEAD["len"].width


# A flit plus the packetizer's routing tag (``local``: stays inside the PE).
TaggedFlit = data.StructLayout({"flit": Flit, "local": 1})


def packet_cmd_layout(arch: ArchConfig) -> data.StructLayout:
    """One packet for a :class:`hw.pe.dma_reader.PacketReader` to send.

    ``head`` is sent first, then ``n`` words read from SRAM starting at word
    address ``addr``; ``local`` is copied to every flit of the packet.
    """
    return data.StructLayout(
        {"head": HEAD, "addr": word_addr_bits(arch), "n": len_bits(), "local": 1}
    )


def check_arch(component: object, arch: object) -> None:
    """TypeError unless ``arch`` is an ArchConfig (the half-built component stays quiet)."""
    if not isinstance(arch, ArchConfig):
        # An Elaboratable that is never elaborated warns when collected; this one
        # was never complete, so silence it (amaranth's MustUse flag).
        component._MustUse__silence = True
        raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
