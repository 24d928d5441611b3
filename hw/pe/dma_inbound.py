"""InboundHandler: sinks the packets that arrive at the PE in one message class."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import Kind, Route
from hw.pe.dma_layouts import HEAD, WORD_SHIFT, check_arch, len_bits, packet_cmd_layout
from hw.pe.interfaces import Coords, SemInc, SramPort, flit_stream, word_addr_bits

__all__ = ["InboundHandler"]


class InboundHandler(wiring.Component):
    """Handles inbound packets of the request class or of the response class.

    Request class (``responses=False``): WRITE writes its payload to SRAM at
    ``addr`` (then signals ``sem`` by ``count`` if ``signal``); READ_REQ hands a
    READ_RESP packet (``len`` words from ``addr``, to ``(src_x, src_y)`` at
    ``ret_addr``, signal/sem/count copied) to the responder through ``resp``; a
    READ_REQ with ``mcast`` (multicast read) is answered by a RECT READ_RESP to the
    rectangle from ``(src_x, src_y)`` to the request's ``(x1, y1)``; SIGNAL
    increments ``sem`` by ``count``; anything else is an error.

    Response class (``responses=True``): READ_RESP is written like a WRITE; ERROR
    pulses ``error``; anything else is an error.  A READ_RESP or ERROR whose
    ``(x0, y0)`` is ``coords`` answers one of this PE's read requests and pulses
    ``done`` when it ends; RECT answers to multicast reads of other PEs (their
    ``(x0, y0)`` is the requester) are written and signalled without ``done``.

    Inbound packets take effect in arrival order: a WRITE head waits while the
    responder (``resp_issuing``) still has reads of an earlier READ_REQ to issue.

    Faults (one-cycle ``error`` pulse, the packet is consumed and dropped): an
    address range outside SRAM or misaligned (READ_REQ: answered with an ERROR
    packet whose ``addr`` is the offending address), a semaphore number past
    ``arch.semaphores``, a payload flit beyond ``len``, a non-head flit where a
    head is expected, an unknown kind.  An overlong packet keeps its first ``len``
    words and is not signalled.

    Ports: ``flits`` (flit stream; payload flits are taken at one per cycle while
    ``wr`` is ready), ``wr`` (SramPort requester, writes only; ``valid`` follows
    ``flits.valid`` combinationally), ``sem_inc``, ``resp`` (request class only),
    ``coords``, ``error``, ``done`` (response class), ``busy`` (inside a packet).
    """

    def __init__(self, arch: ArchConfig, *, responses: bool):
        check_arch(self, arch)
        if not isinstance(responses, bool):
            raise TypeError(f"responses must be a bool, not {responses!r}")
        self._arch = arch
        self._responses = responses
        members = {
            "flits": In(flit_stream()),
            "wr": Out(SramPort(arch)),
            "sem_inc": Out(stream.Signature(SemInc)),
            "coords": In(Coords()),
            "error": Out(1),
            "busy": Out(1),
        }
        if responses:
            members["done"] = Out(1)
        else:
            members["resp"] = Out(stream.Signature(packet_cmd_layout(arch)))
            members["resp_issuing"] = In(1)
        super().__init__(members)

    def _range_ok(self, addr: Value, words: Value) -> Value:
        end = addr + (words << WORD_SHIFT)
        return (addr[:WORD_SHIFT] == 0) & (end <= self._arch.sram_bytes)

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        flit = self.flits.payload
        head = HEAD(flit.data)
        take = self.flits.valid & self.flits.ready

        addr = Signal(word_addr_bits(arch))
        left = Signal(len_bits())
        signal = Signal()
        sem = Signal(SemInc)
        done_kind = Signal()  # the current packet answers one of our read requests
        own = (head.x0 == self.coords.x) & (head.y0 == self.coords.y)

        ok = self._range_ok(head.addr, head.len)
        sem_ok = ~head.signal | (head.sem < arch.semaphores)
        data_kind = int(Kind.READ_RESP if self._responses else Kind.WRITE)
        finish = Signal()  # the current packet ends in this cycle
        wait_reads = Signal()
        if not self._responses:
            m.d.comb += wait_reads.eq(self.resp_issuing)

        m.d.comb += [
            self.wr.we.eq(1),
            self.wr.wmask.eq(-1),
            self.wr.addr.eq(addr),
            self.wr.wdata.eq(flit.data),
            self.sem_inc.payload.eq(sem),
        ]
        with m.FSM(name="inbound") as fsm:
            with m.State("HEAD"):
                m.d.comb += self.flits.ready.eq(1)
                m.d.sync += [
                    addr.eq(head.addr[WORD_SHIFT:]),
                    left.eq(head.len),
                    signal.eq(head.signal),
                    sem.sem.eq(head.sem),
                    sem.count.eq(head.count),
                    done_kind.eq(0),
                ]
                with m.If(self.flits.valid & ~flit.first):
                    m.d.comb += self.error.eq(1)
                with m.Elif(self.flits.valid & (head.kind == data_kind) & wait_reads):
                    # Write after read: the responder reads the old data first.
                    m.d.comb += self.flits.ready.eq(0)
                with m.Elif(self.flits.valid & (head.kind == data_kind)):
                    m.d.sync += done_kind.eq(own if self._responses else 0)
                    with m.If(~ok | ~sem_ok):
                        m.d.comb += self.error.eq(1)
                        m.d.sync += signal.eq(0)
                        self._goto_drop(m, flit, finish)
                    with m.Elif(flit.last):
                        m.d.comb += finish.eq(1)
                        self._after(m, head.signal)
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(self.flits.valid):
                    self._other_kinds(m, head, flit, ok, sem_ok, finish, done_kind, own)
            self._body_states(m, flit, take, addr, left, signal, finish)
        if self._responses:
            m.d.comb += self.done.eq(finish & self._done_now(head, own, done_kind, fsm))
        m.d.comb += self.busy.eq(~fsm.ongoing("HEAD"))
        return m

    def _body_states(self, m, flit, take, addr, left, signal, finish) -> None:
        """PAYLOAD (write one flit per cycle), DROP (consume to ``last``), SEMINC."""
        with m.State("PAYLOAD"):
            m.d.comb += [
                self.wr.valid.eq(self.flits.valid & (left != 0)),
                self.flits.ready.eq((left == 0) | self.wr.ready),
            ]
            with m.If(take & (left == 0)):
                # A payload flit beyond len: the rest of the packet is dropped.
                m.d.comb += self.error.eq(1)
                self._goto_drop(m, flit, finish)
            with m.Elif(take):
                m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                with m.If(flit.last):
                    m.d.comb += finish.eq(1)
                    self._after(m, signal)
        with m.State("DROP"):
            m.d.comb += self.flits.ready.eq(1)
            with m.If(take & flit.last):
                m.d.comb += finish.eq(1)
                m.next = "HEAD"
        with m.State("SEMINC"):
            m.d.comb += self.sem_inc.valid.eq(1)
            with m.If(self.sem_inc.ready):
                m.next = "HEAD"

    @staticmethod
    def _done_now(head, own, done_kind, fsm) -> Value:
        """The finishing packet is a READ_RESP or ERROR to this PE (one answered read
        request of its own)."""
        in_head = fsm.ongoing("HEAD")
        head_is_resp = (head.kind == int(Kind.READ_RESP)) | (head.kind == int(Kind.ERROR))
        return (in_head & head_is_resp & own) | (~in_head & done_kind)

    @staticmethod
    def _after(m: Module, signal: Value) -> None:
        with m.If(signal):
            m.next = "SEMINC"
        with m.Else():
            m.next = "HEAD"

    @staticmethod
    def _goto_drop(m: Module, flit, finish: Signal) -> None:
        with m.If(flit.last):
            m.d.comb += finish.eq(1)
            m.next = "HEAD"
        with m.Else():
            m.next = "DROP"

    def _other_kinds(self, m, head, flit, ok, sem_ok, finish, done_kind, own) -> None:
        if self._responses:
            with m.If(head.kind == int(Kind.ERROR)):
                m.d.sync += done_kind.eq(own)
            m.d.comb += self.error.eq(1)
            self._goto_drop(m, flit, finish)
            return
        with m.If(head.kind == int(Kind.SIGNAL)):
            with m.If((head.sem >= self._arch.semaphores) | ~flit.last):
                m.d.comb += self.error.eq(1)
                self._goto_drop(m, flit, finish)
            with m.Else():
                m.d.comb += finish.eq(1)
                m.next = "SEMINC"
        with m.Elif(head.kind == int(Kind.READ_REQ)):
            self._read_request(m, head, flit, ok, sem_ok, finish)
        with m.Else():
            m.d.comb += self.error.eq(1)
            self._goto_drop(m, flit, finish)

    def _read_request(self, m, head, flit, ok, sem_ok, finish) -> None:
        """Hand the READ_RESP (or ERROR) packet to the responder; wait until it is taken.

        A multicast read (``mcast``) is answered to the rectangle from the requester
        to the request's far corner (x1, y1); an ERROR goes to the requester alone.
        """
        good = ok & sem_ok
        rect = head.mcast & good
        resp = Signal(HEAD)
        cmd = self.resp.payload
        m.d.comb += [
            resp.kind.eq(int(Kind.READ_RESP)),
            resp.route.eq(Mux(rect, int(Route.RECT), int(Route.UNICAST))),
            resp.x0.eq(head.src_x),
            resp.y0.eq(head.src_y),
            resp.x1.eq(Mux(rect, head.x1, 0)),
            resp.y1.eq(Mux(rect, head.y1, 0)),
            resp.src_x.eq(self.coords.x),
            resp.src_y.eq(self.coords.y),
            resp.len.eq(head.len),
            resp.sem.eq(head.sem),
            resp.signal.eq(head.signal),
            resp.count.eq(head.count),
            resp.addr.eq(head.ret_addr),
            cmd.addr.eq(head.addr[WORD_SHIFT:]),
            cmd.n.eq(head.len),
            cmd.local.eq(0),
            self.resp.valid.eq(1),
            self.flits.ready.eq(self.resp.ready),
        ]
        with m.If(~good):
            m.d.comb += [
                resp.kind.eq(int(Kind.ERROR)),
                resp.len.eq(0),
                resp.signal.eq(0),
                resp.addr.eq(head.addr),
                cmd.n.eq(0),
            ]
        m.d.comb += cmd.head.eq(resp)
        with m.If(self.resp.ready):
            m.d.comb += self.error.eq(~good)
            with m.If(flit.last):
                m.d.comb += finish.eq(1)
            with m.Else():
                m.next = "DROP"
