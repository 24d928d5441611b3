"""PacketReader: turns packet commands into flit streams, reading payload from SRAM.

Used twice by the DMA engine: as the packetizer of outbound WRITE / READ_REQ
packets (and of SELF copies) and as the read responder (READ_RESP / ERROR).
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.pe.dma_layouts import SRAM_READ_LATENCY, TaggedFlit, check_arch, len_bits, packet_cmd_layout
from hw.pe.interfaces import SramPort, word_addr_bits

__all__ = ["PacketReader"]

# Flits in the reader's output buffer: enough to cover the issue -> buffer -> output
# round trip (SRAM latency + the buffer's own cycle + one) so that a steady
# consumer sees one flit per cycle.
BUFFER_FLITS = SRAM_READ_LATENCY + 3


class PacketReader(wiring.Component):
    """Sends the head flit of each command, then ``n`` payload words read from SRAM.

    Ports:
      * ``cmd`` (stream of :func:`packet_cmd_layout`): one packet per beat.  Ready
        when idle, and also in the cycle the last word of the current packet is
        issued, so consecutive packets follow each other without a bubble.
      * ``flits`` (stream of :class:`TaggedFlit`): head flit with ``first``
        (and ``last`` if ``n == 0``), then the payload, ``last`` on the final one.
        ``valid`` comes from a buffer (never depends on ``ready``).
      * ``sram`` (SramPort requester, reads only): a read is requested only when
        the output buffer has room for its data, so a stalled consumer never
        holds the SRAM port.
      * ``busy``: a packet is being issued or flits are buffered.
      * ``issuing``: a packet's SRAM reads are not all issued yet.
    """

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self._arch = arch
        super().__init__(
            {
                "cmd": In(stream.Signature(packet_cmd_layout(arch))),
                "flits": Out(stream.Signature(TaggedFlit)),
                "sram": Out(SramPort(arch)),
                "busy": Out(1),
                "issuing": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        width = Shape.cast(TaggedFlit).width
        m.submodules.buffer = buf = SyncFIFO(width=width, depth=BUFFER_FLITS)

        active = Signal()
        head_todo = Signal()
        addr = Signal(word_addr_bits(arch))
        left = Signal(len_bits())
        head = Signal(arch.flit_bits)
        local = Signal()

        # One-cycle stage so that heads and SRAM data reach the buffer in issue order.
        st_valid = Signal()
        st_head = Signal()
        st_last = Signal()
        st_local = Signal()
        st_data = Signal(arch.flit_bits)

        space = Signal()
        m.d.comb += space.eq(buf.w_level + st_valid < BUFFER_FLITS)
        issue_head = Signal()
        read_ok = Signal()
        finishing = Signal()
        m.d.comb += [
            issue_head.eq(active & head_todo & space),
            self.sram.valid.eq(active & ~head_todo & space),
            self.sram.addr.eq(addr),
            self.sram.we.eq(0),
            read_ok.eq(self.sram.valid & self.sram.ready),
            finishing.eq((issue_head & (left == 0)) | (read_ok & (left == 1))),
            self.cmd.ready.eq(~active | finishing),
        ]

        m.d.sync += st_valid.eq(issue_head | read_ok)
        with m.If(issue_head):
            m.d.sync += [
                head_todo.eq(0),
                st_head.eq(1),
                st_last.eq(left == 0),
                st_local.eq(local),
                st_data.eq(head),
            ]
        with m.If(read_ok):
            m.d.sync += [
                addr.eq(addr + 1),
                left.eq(left - 1),
                st_head.eq(0),
                st_last.eq(left == 1),
                st_local.eq(local),
            ]
        with m.If(self.cmd.valid & self.cmd.ready):
            p = self.cmd.payload
            m.d.sync += [
                active.eq(1),
                head_todo.eq(1),
                addr.eq(p.addr),
                left.eq(p.n),
                head.eq(p.head),
                local.eq(p.local),
            ]
        with m.Elif(finishing):
            m.d.sync += active.eq(0)

        w = Signal(TaggedFlit)
        m.d.comb += [
            w.flit.data.eq(Mux(st_head, st_data, self.sram.rdata)),
            w.flit.first.eq(st_head),
            w.flit.last.eq(st_last),
            w.local.eq(st_local),
            buf.w_data.eq(w),
            buf.w_en.eq(st_valid),
            self.flits.valid.eq(buf.r_rdy),
            self.flits.payload.eq(buf.r_data),
            buf.r_en.eq(self.flits.ready),
            self.busy.eq(active | st_valid | buf.r_rdy),
            self.issuing.eq(active),
        ]
        return m
