"""Signatures and payload layouts shared by the units of the processing element.

These are the contracts between the controller, the MAC unit, the vector
unit, the DMA engine, the semaphores, the banked SRAM and the NoC.  Each
signature is written from the side that *initiates* (the requester of an SRAM
port, the producer of a stream); the other side uses ``.flip()``.

SRAM port protocol (``SramPort``): the requester holds ``valid`` with ``addr``
(word address), ``we``, ``wdata`` and ``wmask`` (byte enables) until ``ready``;
the request is accepted in the cycle where both are high.  The data of an
accepted read arrives on ``rdata`` with ``rvalid`` high exactly one cycle later.
``ready`` may depend combinationally on ``valid`` and ``addr`` (the bank
arbiter); ``valid`` must not depend on ``ready``.

Unit protocol (MAC, vector): the controller offers a command on ``cmd`` (an
``amaranth.lib.stream`` interface); a unit is ready only when idle.  ``busy`` is
high from the cycle after the command is accepted until its last SRAM write has
been accepted; ``error`` pulses (one cycle, while ``busy``) if the command
faults (address out of range or misaligned), after which the unit drops ``busy``
without further writes.
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import COORD_BITS, V_SEG, WORD_BYTES

ADDR_BITS = 32  # byte addresses as seen by instructions and descriptors


def word_addr_bits(arch: ArchConfig) -> int:
    return max(1, (arch.sram_words - 1).bit_length())


class SramPort(wiring.Signature):
    """One requester port of the banked SRAM (requester's view)."""

    def __init__(self, arch: ArchConfig):
        self.arch = arch
        super().__init__(
            {
                "valid": Out(1),
                "addr": Out(word_addr_bits(arch)),
                "we": Out(1),
                "wdata": Out(arch.sram_port_bits),
                "wmask": Out(arch.sram_port_bits // 8),
                "ready": In(1),
                "rvalid": In(1),
                "rdata": In(arch.sram_port_bits),
            }
        )


class MacCmd(data.Struct):
    """MATMUL or QLOAD, with byte addresses already computed by the controller."""

    qload: 1  # 1: load the parameter block at a_addr
    a_addr: ADDR_BITS
    b_addr: ADDR_BITS
    c_addr: ADDR_BITS
    k16: 12
    ldc: 16
    out32: 1
    acc: 1
    noout: 1
    alda: 10  # A row stride / 16; 0: A is the transposed K x R tile (MM_ALDA)


class VecCmd(data.Struct):
    fn: 6
    tin: 2
    tout: 2
    bscalar: 1
    n16: 16
    seg: V_SEG.width  # segment length in steps (docs/isa.md "Segments")
    a_addr: ADDR_BITS
    b: ADDR_BITS  # operand B address, or the scalar value when bscalar
    d_addr: ADDR_BITS


class VecCfgWrite(data.Struct):
    idx: 4
    value: 32


class DmaCmd(data.Struct):
    desc_addr: ADDR_BITS


class SignalCmd(data.Struct):
    """An outbound SIGNAL packet (mode NODE or RECT); SELF never leaves the PE."""

    mode: 2
    target: 32  # x | y << 8 (NODE) or x0 | y0 << 8 | x1 << 16 | y1 << 24 (RECT)
    sem: 5
    count: 8


class SemInc(data.Struct):
    sem: 5
    count: 8


class Flit(data.Struct):
    """One NoC flit: 128 payload bits with packet framing."""

    data: WORD_BYTES * 8
    first: 1  # head flit (header, see hw.isa H_* fields)
    last: 1  # tail flit (a packet without payload is a single first+last flit)


def flit_stream() -> stream.Signature:
    return stream.Signature(Flit)


class NocPort(wiring.Signature):
    """The PE's network side: one stream per direction and message class."""

    def __init__(self):
        super().__init__(
            {
                "out_req": Out(flit_stream()),
                "out_resp": Out(flit_stream()),
                "in_req": In(flit_stream()),
                "in_resp": In(flit_stream()),
            }
        )


class HostPort(wiring.Signature):
    """Host/debug access to instruction memory and SRAM (host's view).

    ``imem`` selects instruction memory (64-bit words, writes only, allowed
    only while the PE is not running) or SRAM (16-byte words, read and write,
    through the lowest-priority SRAM port).  Same valid/ready/rvalid timing as
    an SRAM port.
    """

    def __init__(self, arch: ArchConfig):
        super().__init__(
            {
                "valid": Out(1),
                "imem": Out(1),
                "we": Out(1),
                "addr": Out(max(word_addr_bits(arch), (arch.imem_words - 1).bit_length())),
                "wdata": Out(arch.sram_port_bits),
                "ready": In(1),
                "rvalid": In(1),
                "rdata": In(arch.sram_port_bits),
            }
        )


class Coords(wiring.Signature):
    """This tile's mesh coordinates (constants tied off by the mesh)."""

    def __init__(self):
        super().__init__({"x": Out(COORD_BITS), "y": Out(COORD_BITS)})
