"""DmaExecutor: walks a descriptor's 3-D address space and emits packet commands."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import Kind, Route, SignalMode
from hw.pe.dma_layouts import DESC, HEAD, WORD_SHIFT, check_arch, len_bits, packet_cmd_layout
from hw.pe.interfaces import ADDR_BITS, Coords

__all__ = ["DmaExecutor", "OUTSTANDING_BITS"]

# Width of the outstanding read-request counter; the executor stops issuing read
# requests while it is full (so any number of responses can be in flight).
OUTSTANDING_BITS = 8


class DmaExecutor(wiring.Component):
    """Executes queued descriptors in order, one packet command per cycle at most.

    For plane i2 < count2, row i1 < count1, the row's ``count0`` words are cut into
    packets of at most ``max_packet_flits`` words:

      * write, NODE/RECT: WRITE packet, payload read from the local row, ``addr`` =
        remote address of its first word;
      * read, NODE: READ_REQ head (``len`` words at the remote address, ``ret_addr``
        = local address); counted in ``outstanding`` until ``resp_done``;
      * read, RECT (multicast read): the same READ_REQ, route UNICAST to (x0, y0),
        with ``mcast = 1`` and (x1, y1) = the far corner of the receiving rectangle
        (the answerer sends one RECT READ_RESP to the rectangle from this PE to
        (x1, y1)); chunks of at most ``rect_payload_flits`` words, as RECT writes;
      * SELF: a WRITE packet tagged ``local`` (source local -> destination remote,
        or remote -> local when ``read``), written back by the inbound handler.

    The last packet of a descriptor carries ``signal``/``sem``/``count = 1`` when the
    descriptor asks for a signal (SELF: ``signal`` or ``read``; reads: always).
    Every packet's local SRAM range is checked: outside SRAM pulses ``error`` and
    abandons the rest of the descriptor.

    Ports: ``desc`` (stream of :data:`DESC`, taken when idle), ``pkt`` (stream of
    packet commands), ``resp_done`` (pulse: one answer to this PE's own read
    requests finished; answers of multicast reads issued by other PEs do not count),
    ``coords``, ``error`` (pulse), ``busy`` (a descriptor is active),
    ``outstanding`` (read requests sent and not yet answered).
    """

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self._arch = arch
        super().__init__(
            {
                "desc": In(stream.Signature(DESC)),
                "pkt": Out(stream.Signature(packet_cmd_layout(arch))),
                "resp_done": In(1),
                "coords": In(Coords()),
                "error": Out(1),
                "busy": Out(1),
                "outstanding": Out(OUTSTANDING_BITS),
            }
        )

    def _in_sram(self, addr: Value, words: Value) -> Value:
        end = addr.as_unsigned() + (words << WORD_SHIFT)
        return end <= self._arch.sram_bytes

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        d = Signal(DESC)
        active = Signal()
        lcur, lrow, lplane = (Signal(ADDR_BITS, name=n) for n in ("lcur", "lrow", "lplane"))
        rcur, rrow, rplane = (Signal(ADDR_BITS, name=n) for n in ("rcur", "rrow", "rplane"))
        done = Signal(16)
        i1 = Signal(16)
        i2 = Signal(16)

        left = Signal(16)
        chunk = Signal(len_bits())
        row_end = Signal()
        last = Signal()
        # Rectangle multicast packets must fit a router input buffer whole, with room
        # for pipelining (ArchConfig.rect_payload_flits, docs/noc_multicast.md); a
        # multicast read's request asks for no more, as its RECT answer forks.
        mcast_max = arch.rect_payload_flits
        limit = Mux(d.mode == SignalMode.RECT, mcast_max, arch.max_packet_flits)
        m.d.comb += [
            left.eq(d.count0 - done),
            row_end.eq(left <= limit),
            chunk.eq(Mux(row_end, left, limit)),
            last.eq(row_end & (i1 == d.count1 - 1) & (i2 == d.count2 - 1)),
        ]

        is_self = d.mode == SignalMode.SELF
        is_read = d.read & ~is_self
        src = Mux(is_self & d.read, rcur, lcur)
        dst = Mux(is_self & d.read, lcur, rcur)
        range_ok = self._in_sram(lcur, chunk) & (~is_self | self._in_sram(rcur, chunk))
        full = self.outstanding == (1 << OUTSTANDING_BITS) - 1
        # Reads always signal the local semaphore; writes and SELF copies when asked.
        signal = last & (d.signal | d.read)
        self._build_cmd(m, d, is_self, is_read, src, dst, lcur, chunk, signal)

        accept = self.pkt.valid & self.pkt.ready
        m.d.comb += [
            self.pkt.valid.eq(active & range_ok & ~(is_read & full)),
            self.desc.ready.eq(~active),
            self.busy.eq(active),
        ]
        with m.If(active & ~range_ok):
            m.d.comb += self.error.eq(1)
            m.d.sync += active.eq(0)

        inc = accept & is_read
        with m.If(inc & ~self.resp_done):
            m.d.sync += self.outstanding.eq(self.outstanding + 1)
        with m.Elif(~inc & self.resp_done & (self.outstanding != 0)):
            m.d.sync += self.outstanding.eq(self.outstanding - 1)

        with m.If(self.desc.valid & self.desc.ready):
            p = self.desc.payload
            m.d.sync += [d.eq(p), active.eq(1), done.eq(0), i1.eq(0), i2.eq(0)]
            m.d.sync += [lcur.eq(p.local), lrow.eq(p.local), lplane.eq(p.local)]
            m.d.sync += [rcur.eq(p.remote), rrow.eq(p.remote), rplane.eq(p.remote)]
        with m.If(accept):
            self._advance(
                m,
                d,
                row_end,
                last,
                active,
                done,
                chunk,
                i1,
                i2,
                (lcur, lrow, lplane),
                (rcur, rrow, rplane),
            )
        return m

    def _build_cmd(self, m, d, is_self, is_read, src, dst, lcur, chunk, signal):
        head = Signal(HEAD)
        cmd = self.pkt.payload
        is_rect = d.mode == SignalMode.RECT
        # A multicast read's request goes to the one remote node; its answer is the RECT.
        m.d.comb += [
            head.kind.eq(Mux(is_read, int(Kind.READ_REQ), int(Kind.WRITE))),
            head.route.eq(Mux(is_rect & ~is_read, int(Route.RECT), int(Route.UNICAST))),
            head.mcast.eq(is_rect & is_read),
            head.x0.eq(Mux(is_self, self.coords.x, d.x0)),
            head.y0.eq(Mux(is_self, self.coords.y, d.y0)),
            head.x1.eq(Mux(is_rect, d.x1, 0)),
            head.y1.eq(Mux(is_rect, d.y1, 0)),
            head.src_x.eq(self.coords.x),
            head.src_y.eq(self.coords.y),
            head.len.eq(chunk),
            head.sem.eq(Mux(signal, d.sem, 0)),
            head.signal.eq(signal),
            head.count.eq(signal),
            head.addr.eq(dst),
            head.ret_addr.eq(Mux(is_read, lcur, 0)),
            cmd.head.eq(head),
            cmd.addr.eq(src[WORD_SHIFT:]),
            cmd.n.eq(Mux(is_read, 0, chunk)),
            cmd.local.eq(is_self),
        ]

    def _advance(self, m, d, row_end, last, active, done, chunk, i1, i2, lptr, rptr):
        step = chunk.as_unsigned() << WORD_SHIFT
        with m.If(~row_end):
            m.d.sync += [done.eq(done + chunk), lptr[0].eq(lptr[0] + step)]
            m.d.sync += rptr[0].eq(rptr[0] + step)
        with m.Elif(last):
            m.d.sync += active.eq(0)
        with m.Elif(i1 != d.count1 - 1):
            m.d.sync += [done.eq(0), i1.eq(i1 + 1)]
            for cur, row, _ in (lptr, rptr):
                stride = d.lstride1 if cur is lptr[0] else d.rstride1
                nxt = (row + stride)[:ADDR_BITS]
                m.d.sync += [row.eq(nxt), cur.eq(nxt)]
        with m.Else():
            m.d.sync += [done.eq(0), i1.eq(0), i2.eq(i2 + 1)]
            for cur, row, plane in (lptr, rptr):
                stride = d.lstride2 if cur is lptr[0] else d.rstride2
                nxt = (plane + stride)[:ADDR_BITS]
                m.d.sync += [plane.eq(nxt), row.eq(nxt), cur.eq(nxt)]
