"""DramEndpoint: the behavioral DRAM at one of the chip's memory ports (cosim only).

The endpoint sits at ``hw.isa.dram_node(arch, port)`` beyond the mesh's east edge
and speaks NoC flits (endpoint view, ``noc: Out(NocPort())``).  Timing model:

* **latency**: the head flit of the answer to a READ_REQ leaves no earlier than
  ``arch.dram_latency`` cycles after the request's head was accepted;
* **pipelining**: up to ``arch.dram_queue`` requests wait in a queue, each with its own
  due cycle, so requests overlap their latency (one request at a time, as in
  cosim/netstub.py, would cap a 16-word read at 16 / (latency + 17) of the bandwidth);
* **bandwidth**: every data word read or written costs 16 bytes of a byte-credit
  counter refilled by ``arch.dram_bytes_per_cycle`` per cycle (shared by reads
  and writes; one word per cycle at most: a single storage port).

Request handling (``noc.in_req``), decided on the head flit:

* WRITE for this node inside the simulated capacity: payload stored in order.  A
  WRITE waits until every queued read has been answered, so reads and writes take
  effect in arrival order.
* READ_REQ for this node inside the capacity: queued; answered by a READ_RESP to
  the source at ``ret_addr`` with ``sem``/``signal``/``count`` copied.  With
  ``mcast`` (a multicast read, docs/isa.md) the READ_RESP is route RECT, from the
  source (x0, y0) to the request's far corner (x1, y1); it enters the mesh at this
  port and forks along the XY tree.
* anything else (SIGNAL, CONFIG, a packet for a non-existent node beyond this port,
  a range outside the capacity): consumed, answered by an ERROR packet (``addr`` =
  the packet's address) in queue order.

``noc.in_resp`` is consumed and dropped; ``noc.out_req`` never sends.  The storage
is the harness's array behind ``mem`` (:class:`cosim.harness.DramMemPort`,
``dram_sim_words(arch)`` words), loaded and dumped by the backdoor.

**Stress mode** (``DramEndpoint(arch, port, stress=True)``: a separate build of
the chip, so the nominal chip's Verilog does not change; one build serves every
seed).  While
``stress_en`` is low the endpoint has the timing above exactly, and a xorshift32
generator holds ``stress_seed`` (mixed with the port number, never 0); while it is
high the generator is loaded in the first cycle and then steps every cycle; from
independent bits of its state:

* every request's due cycle gets a random extra latency (0..63 cycles, one request
  in 8 gets 0..1020) on top of ``arch.dram_latency``;
* ``in_req`` is not ready in 1 cycle of 4 (back-pressure into the mesh: requests
  wait in the routers and hold their wormhole paths);
* an answer starts late, and its next data flit is fetched late, in 1 cycle of 4
  (``out_resp`` bubbles; a presented flit is never withdrawn).

Reads stay answered in order, so results must not change: a schedule that is only
correct under the nominal timing (a missing semaphore) shows up as a wrong result
or a hang.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from cosim.harness import DramMemPort, dram_sim_words
from hw import isa
from hw.arch import ArchConfig
from hw.isa import Kind, Route
from hw.pe.interfaces import NocPort

__all__ = ["DramEndpoint"]

_Entry = data.StructLayout(
    {
        "error": 1,
        "mcast": 1,  # answer with a RECT READ_RESP to (dst_x, dst_y)..(far_x, far_y)
        "dst_x": 6,
        "dst_y": 6,
        "far_x": 6,
        "far_y": 6,
        "len": 8,
        "sem": 5,
        "signal": 1,
        "count": 8,
        "addr": 32,
        "word": 32,
        "due": 32,
    }
)


class _Gated:
    """A stream view (payload, valid, ready) whose valid/ready the endpoint masks."""

    def __init__(self, payload, valid, ready):
        self.payload, self.valid, self.ready = payload, valid, ready


def _f(value, f: isa.Field):
    return value[f.lo : f.lo + f.width]


class DramEndpoint(wiring.Component):
    """Ports: ``noc`` (``Out(NocPort())``, to the mesh's outer port), ``mem``
    (``Out(DramMemPort(arch))``, the storage array in the harness), and with
    ``stress`` the controls ``stress_en`` (``In(1)``) and ``stress_seed`` (``In(32)``)."""

    def __init__(self, arch: ArchConfig, port: int = 0, *, stress: bool = False):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if not isinstance(port, int) or not 0 <= port < arch.dram_ports:
            raise ValueError(f"port must be in 0..{arch.dram_ports - 1}, not {port!r}")
        self.arch = arch
        self.port = port
        self.node = isa.dram_node(arch, port)
        self.stress = bool(stress)
        members = {"noc": Out(NocPort()), "mem": Out(DramMemPort(arch))}
        if self.stress:
            members.update(stress_en=In(1), stress_seed=In(32))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        m.submodules.queue = q = SyncFIFOBuffered(width=_Entry.size, depth=arch.dram_queue)
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        # byte credits, one word per cycle at most
        credit = Signal(range(isa.WORD_BYTES + arch.dram_bytes_per_cycle + 1))
        avail = Signal.like(credit)
        beat, used = Signal(), Signal()
        m.d.comb += [avail.eq(credit + arch.dram_bytes_per_cycle), beat.eq(avail >= isa.WORD_BYTES)]
        left = Signal.like(credit)
        m.d.comb += left.eq(avail - Mux(used, isa.WORD_BYTES, 0))
        m.d.sync += credit.eq(Mux(left > isa.WORD_BYTES, isa.WORD_BYTES, left))
        resp_busy = Signal()  # an answer is being sent (its entry left the queue)
        resp_mem = Signal()  # the response side uses the storage port this cycle
        if self.stress:
            self._stress(m)
        self._requests(m, q, now, beat, used, resp_busy, resp_mem)
        self._responses(m, q, now, beat, used, resp_busy, resp_mem)
        m.d.comb += [self.noc.in_resp.ready.eq(1), self.noc.out_req.valid.eq(0)]
        return m

    def _stress(self, m) -> None:
        """xorshift32 state ``rnd``; ``stall_in``, ``stall_out``, ``extra`` from it."""
        rnd = Signal(32, init=1)
        x1, x2, x3 = Signal(32), Signal(32), Signal(32)
        m.d.comb += [x1.eq(rnd ^ (rnd << 13)), x2.eq(x1 ^ (x1 >> 17)), x3.eq(x2 ^ (x2 << 5))]
        mix = Signal(32)
        m.d.comb += mix.eq(self.stress_seed ^ (0x5BD1E995 * (self.port + 1) & 0xFFFFFFFF))
        on = Signal()  # stress_en was already high in the previous cycle
        m.d.sync += on.eq(self.stress_en)
        with m.If(self.stress_en & on):
            m.d.sync += rnd.eq(x3)
        with m.Else():  # (re)load the seed, also in the first cycle of stress_en
            m.d.sync += rnd.eq(Mux(mix == 0, 1, mix))
        en = self.stress_en & on
        self.stall_in, self.stall_out = Signal(), Signal()
        self.extra = Signal(11)
        m.d.comb += [
            self.stall_in.eq(en & (rnd[0:2] == 0)),
            self.stall_out.eq(en & (rnd[2:4] == 0)),
            self.extra.eq(Mux(en, Mux(rnd[16:19] == 0, rnd[8:16] << 2, rnd[8:14]), 0)),
        ]

    def _gated(self, cond):
        """``cond``, and in stress mode also not ``stall_out``."""
        return cond & ~self.stall_out if self.stress else cond

    def _requests(self, m, q, now, beat, used, resp_busy, resp_mem) -> None:
        arch, src, mem = self.arch, self.noc.in_req, self.mem
        if self.stress:  # the FSM sees a stream whose valid and ready are masked by stall_in
            port, src = src, _Gated(src.payload, Signal(), Signal())
            m.d.comb += [
                src.valid.eq(port.valid & ~self.stall_in),
                port.ready.eq(src.ready & ~self.stall_in),
            ]
        d = src.payload.data
        entry = Signal(_Entry)
        m.d.comb += q.w_data.eq(entry)
        addr_w = Signal(33)
        length = _f(d, isa.H_LEN)
        m.d.comb += addr_w.eq(_f(d, isa.H_ADDR) >> 4)
        in_range = addr_w + length <= dram_sim_words(arch)
        to_me = (
            (_f(d, isa.H_ROUTE) == int(Route.UNICAST))
            & (_f(d, isa.H_X0) == self.node[0])
            & (_f(d, isa.H_Y0) == self.node[1])
            & (_f(d, isa.H_ADDR)[:4] == 0)
            & in_range
        )
        kind = _f(d, isa.H_KIND)
        head = Signal(_Entry)
        due = now + arch.dram_latency
        if self.stress:
            due = due + self.extra
        m.d.comb += [
            head.dst_x.eq(_f(d, isa.H_SRC_X)), head.dst_y.eq(_f(d, isa.H_SRC_Y)),
            head.far_x.eq(_f(d, isa.H_X1)), head.far_y.eq(_f(d, isa.H_Y1)),
            head.len.eq(length), head.sem.eq(_f(d, isa.H_SEM)),
            head.signal.eq(_f(d, isa.H_SIGNAL)), head.count.eq(_f(d, isa.H_COUNT)),
            head.word.eq(addr_w), head.due.eq(due),
        ]  # fmt: skip
        saved = Signal(_Entry)  # the head of a packet being drained (answered by ERROR)
        waddr = Signal(32)
        quiet = ~q.r_rdy & ~resp_busy
        with m.FSM(name="req"):
            with m.State("IDLE"):
                is_write = to_me & (kind == int(Kind.WRITE))
                is_read = to_me & (kind == int(Kind.READ_REQ))
                with m.If(src.valid & ~src.payload.first):
                    m.d.comb += src.ready.eq(1)  # a stray payload flit: dropped
                with m.Elif(src.valid & is_write):
                    m.d.comb += src.ready.eq(quiet)
                    with m.If(quiet & ~src.payload.last):
                        m.d.sync += waddr.eq(addr_w)
                        m.next = "WRITE"
                with m.Elif(src.valid & is_read):
                    m.d.comb += [
                        entry.eq(head),
                        entry.mcast.eq(_f(d, isa.H_MCAST)),
                        entry.addr.eq(_f(d, isa.H_RET)),
                        q.w_en.eq(1),
                        src.ready.eq(q.w_rdy),
                    ]
                    with m.If(q.w_rdy & ~src.payload.last):
                        m.next = "DRAIN_QUIET"  # a READ_REQ with payload: ignore the payload
                with m.Elif(src.valid):
                    m.d.comb += src.ready.eq(1)
                    m.d.sync += [
                        saved.eq(head),
                        saved.error.eq(1),
                        saved.addr.eq(_f(d, isa.H_ADDR)),
                        saved.due.eq(now),
                    ]
                    m.next = "ERROR"
                    with m.If(~src.payload.last):
                        m.next = "DRAIN"
            with m.State("WRITE"):
                ok = beat & ~resp_mem
                m.d.comb += src.ready.eq(ok)
                with m.If(src.valid & ok):
                    m.d.comb += [
                        used.eq(1),
                        mem.en.eq(1),
                        mem.we.eq(1),
                        mem.addr.eq(waddr),
                        mem.wdata.eq(d),
                    ]
                    m.d.sync += waddr.eq(waddr + 1)
                    with m.If(src.payload.last):
                        m.next = "IDLE"
            with m.State("DRAIN"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid & src.payload.last):
                    m.next = "ERROR"
            with m.State("DRAIN_QUIET"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid & src.payload.last):
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.comb += [entry.eq(saved), q.w_en.eq(1)]
                with m.If(q.w_rdy):
                    m.next = "IDLE"

    def _responses(self, m, q, now, beat, used, resp_busy, resp_mem) -> None:
        out, mem = self.noc.out_resp, self.mem
        e = Signal(_Entry)
        head_e = Signal(_Entry)
        m.d.comb += head_e.eq(q.r_data)
        remaining = Signal(9)
        raddr = Signal(32)
        have = Signal()
        hdr = Signal(self.arch.flit_bits)
        kind = Mux(e.error, int(Kind.ERROR), int(Kind.READ_RESP))
        rect = e.mcast & ~e.error  # ERROR answers go to the requester alone
        m.d.comb += hdr.eq(
            isa.encode_head(src_x=self.node[0], src_y=self.node[1])
            | kind << isa.H_KIND.lo
            | Mux(rect, int(Route.RECT), int(Route.UNICAST)) << isa.H_ROUTE.lo
            | e.dst_x << isa.H_X0.lo
            | e.dst_y << isa.H_Y0.lo
            | Mux(rect, e.far_x, 0) << isa.H_X1.lo
            | Mux(rect, e.far_y, 0) << isa.H_Y1.lo
            | Mux(e.error, 0, e.len) << isa.H_LEN.lo
            | e.sem << isa.H_SEM.lo
            | e.signal << isa.H_SIGNAL.lo
            | e.count << isa.H_COUNT.lo
            | e.addr << isa.H_ADDR.lo
        )
        late = Signal(32)  # now - due, modulo 2**32: bit 31 clear when the entry is due
        m.d.comb += late.eq(now - head_e.due)
        start = Signal()  # the queue's head is due and taken as the next answer
        m.d.comb += start.eq(self._gated(q.r_rdy & ~late[31]))

        def take_next() -> None:
            m.d.comb += q.r_en.eq(1)
            m.d.sync += [
                e.eq(head_e),
                remaining.eq(head_e.len),
                raddr.eq(head_e.word),
                have.eq(0),
            ]
            m.next = "HEAD"

        def fetch() -> None:  # read the next data word; it is on rdata from the next cycle
            m.d.comb += [resp_mem.eq(1), used.eq(1), mem.en.eq(1), mem.addr.eq(raddr)]
            m.d.sync += [have.eq(1), raddr.eq(raddr + 1), remaining.eq(remaining - 1)]

        # Back to back: the first data word is read while the head flit is offered, and
        # the next due answer starts in the cycle the last data flit leaves, so an
        # answer of n words takes n + 1 cycles (the head flit) at full bandwidth.
        with m.FSM(name="resp"):
            with m.State("IDLE"):
                with m.If(start):
                    take_next()
            with m.State("HEAD"):
                m.d.comb += [
                    resp_busy.eq(1),
                    out.valid.eq(1),
                    out.payload.data.eq(hdr),
                    out.payload.first.eq(1),
                    out.payload.last.eq(e.error | (e.len == 0)),
                ]
                with m.If(self._gated(~have & ~e.error & (remaining != 0) & beat)):
                    fetch()
                with m.If(out.ready):
                    m.next = "DATA"
                    with m.If(e.error | (e.len == 0)):
                        m.next = "IDLE"
            with m.State("DATA"):
                taken = Signal()
                m.d.comb += [
                    resp_busy.eq(1),
                    out.valid.eq(have),
                    out.payload.data.eq(mem.rdata),
                    out.payload.last.eq(remaining == 0),
                    taken.eq(have & out.ready),
                ]
                with m.If(self._gated((~have | taken) & (remaining != 0) & beat)):
                    fetch()
                with m.Elif(taken):
                    m.d.sync += have.eq(0)
                with m.If(taken & (remaining == 0)):
                    m.next = "IDLE"
                    with m.If(start):
                        take_next()
