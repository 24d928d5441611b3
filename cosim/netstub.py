"""NetStub: a behavioral network for one PE under cosim (the RTL twin of
``sim.network.StandInNetwork``).  Simulation model, not meant for synthesis.

The PE sits at ``coords``; DRAM port 0 at ``hw.isa.dram_node(arch, 0)``.

* Request class (``noc.out_req``), per packet, decided on the head flit:
  - to the PE itself (UNICAST to ``coords``, or a RECT that is exactly
    ``coords``): looped back into ``noc.in_req`` through a FIFO of
    ``arch.router_buffer_flits`` flits;
  - UNICAST to the DRAM node: WRITE stores its payload, READ_REQ is answered
    after ``arch.dram_latency`` cycles by a READ_RESP (to the source at
    ``ret_addr``, ``sem``/``signal``/``count`` copied), both moving
    ``arch.dram_bytes_per_cycle`` bytes per cycle (a byte-credit counter); a
    READ_REQ with ``mcast`` (multicast read) is answered by a RECT READ_RESP from
    the source to the request's far corner (x1, y1), of which the PE, a corner,
    gets its copy (the other PEs of the rectangle do not exist here);
  - anything else (an unreachable node, a RECT beyond the PE, a SIGNAL or
    CONFIG to DRAM, a DRAM range outside the simulated capacity): the packet
    is consumed and an ERROR packet (``addr`` = the packet's address) goes back
    to the source, which the PE's DMA turns into a DMA fault, as the reference
    network's ``DmaRefused`` does.
* Response class (``noc.out_resp``): packets to the PE itself (UNICAST to
  ``coords``, or a RECT whose rectangle holds ``coords``: the PE's copy of a
  multicast read answer) loop back into ``noc.in_resp`` (through a FIFO); others
  are dropped.  ``noc.in_resp`` takes whole packets from the loopback FIFO or from
  the DRAM, round robin.

The DRAM has one request in service at a time.  Its storage is outside this
component (``dram``, a :class:`cosim.harness.DramMemPort`: the harness holds
the array and loads/dumps it by ``$readmemh``/``$writememh``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from cosim.harness import DramMemPort, dram_sim_words
from hw import isa
from hw.arch import ArchConfig
from hw.isa import Kind, Route
from hw.pe.interfaces import Flit, NocPort

__all__ = ["NetStub"]


def _field(value, f: isa.Field):
    return value[f.lo : f.lo + f.width]


_Head = data.StructLayout(
    {
        "kind": 3,
        "mcast": 1,
        "x1": 6,
        "y1": 6,
        "src_x": 6,
        "src_y": 6,
        "len": 8,
        "sem": 5,
        "signal": 1,
        "count": 8,
        "addr": 32,
        "ret": 32,
    }
)


def _resp_head(kind, dst_x, dst_y, src, length, h, addr, rect=0):
    """Head flit data of a response packet (READ_RESP or ERROR); with ``rect`` the
    RECT answer of a multicast read, (x1, y1) = the request's far corner."""
    route = Mux(rect, int(Route.RECT), int(Route.UNICAST))
    parts = [
        (isa.H_KIND, kind), (isa.H_ROUTE, route), (isa.H_X0, dst_x),
        (isa.H_Y0, dst_y), (isa.H_X1, Mux(rect, h.x1, 0)), (isa.H_Y1, Mux(rect, h.y1, 0)),
        (isa.H_SRC_X, src[0]), (isa.H_SRC_Y, src[1]), (isa.H_LEN, length),
        (isa.H_SEM, h.sem), (isa.H_SIGNAL, h.signal), (isa.H_COUNT, h.count), (isa.H_ADDR, addr),
    ]  # fmt: skip
    value = 0
    for f, v in parts:
        value = value | (v.as_value()[: f.width] if hasattr(v, "as_value") else v) << f.lo
    return value


class NetStub(wiring.Component):
    """Ports: ``noc`` (the PE's NocPort, flipped), ``dram`` (DramMemPort requester)."""

    def __init__(self, arch: ArchConfig, coords: tuple[int, int] = (0, 0)):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if arch.dram_ports < 1:
            raise ValueError(f"arch.dram_ports must be >= 1, not {arch.dram_ports!r}")
        self.arch = arch
        self.coords = coords
        self.dram_node = isa.dram_node(arch, 0)
        super().__init__({"noc": In(NocPort()), "dram": Out(DramMemPort(arch))})

    def elaborate(self, platform):
        m = Module()
        depth = self.arch.router_buffer_flits
        m.submodules.loop_req = loop_req = SyncFIFOBuffered(width=Flit.as_shape().size, depth=depth)
        m.submodules.loop_resp = loop_resp = SyncFIFOBuffered(
            width=Flit.as_shape().size, depth=depth
        )
        dram_out = stream.Signature(Flit).create()
        self._requests(m, loop_req, dram_out)
        self._responses(m, loop_resp)
        m.d.comb += [
            self.noc.in_req.payload.eq(loop_req.r_data),
            self.noc.in_req.valid.eq(loop_req.r_rdy),
            loop_req.r_en.eq(self.noc.in_req.ready),
        ]
        self._merge(m, loop_resp, dram_out)
        return m

    def _is_self(self, flit) -> Signal:
        x, y = self.coords
        d = flit.data
        route = _field(d, isa.H_ROUTE)
        at = (_field(d, isa.H_X0) == x) & (_field(d, isa.H_Y0) == y)
        rect_self = (_field(d, isa.H_X1) == x) & (_field(d, isa.H_Y1) == y)
        return (at & (route == int(Route.UNICAST))) | (at & rect_self & (route == int(Route.RECT)))

    def _in_rect(self, flit) -> Signal:
        """A RECT head whose rectangle (corners in any order) holds ``coords``."""
        x, y = self.coords
        d = flit.data
        ax, bx = _field(d, isa.H_X0), _field(d, isa.H_X1)
        ay, by = _field(d, isa.H_Y0), _field(d, isa.H_Y1)
        in_x = ((ax <= x) & (x <= bx)) | ((bx <= x) & (x <= ax))
        in_y = ((ay <= y) & (y <= by)) | ((by <= y) & (y <= ay))
        return (_field(d, isa.H_ROUTE) == int(Route.RECT)) & in_x & in_y

    def _responses(self, m: Module, loop_resp) -> None:
        src = self.noc.out_resp
        keep = Signal()
        keep_now = Signal()
        with m.If(src.valid & src.payload.first):
            m.d.comb += keep_now.eq(self._is_self(src.payload) | self._in_rect(src.payload))
        with m.Else():
            m.d.comb += keep_now.eq(keep)
        with m.If(src.valid & src.ready & src.payload.first):
            m.d.sync += keep.eq(keep_now)
        m.d.comb += [
            loop_resp.w_data.eq(src.payload),
            loop_resp.w_en.eq(src.valid & keep_now),
            src.ready.eq(~keep_now | loop_resp.w_rdy),
        ]

    def _merge(self, m: Module, loop_resp, dram_out) -> None:
        """noc.in_resp <- whole packets from the loopback FIFO or the DRAM."""
        dst = self.noc.in_resp
        owner = Signal(2)  # 0: free, 1: loopback, 2: DRAM
        loop_flit = Signal(Flit)
        m.d.comb += loop_flit.eq(loop_resp.r_data)
        cur = Signal(2)
        last_pick = Signal()
        with m.If(owner != 0):
            m.d.comb += cur.eq(owner)
        with m.Elif(loop_resp.r_rdy & (~dram_out.valid | last_pick)):
            m.d.comb += cur.eq(1)
        with m.Elif(dram_out.valid):
            m.d.comb += cur.eq(2)
        with m.If(cur == 1):
            m.d.comb += [
                dst.payload.eq(loop_flit),
                dst.valid.eq(loop_resp.r_rdy),
                loop_resp.r_en.eq(dst.ready),
            ]
        with m.Elif(cur == 2):
            m.d.comb += [
                dst.payload.eq(dram_out.payload),
                dst.valid.eq(dram_out.valid),
                dram_out.ready.eq(dst.ready),
            ]
        with m.If(dst.valid & dst.ready):
            m.d.sync += owner.eq(cur)
            with m.If(dst.payload.last):
                m.d.sync += [owner.eq(0), last_pick.eq(cur == 2)]

    def _requests(self, m: Module, loop_req, out) -> None:
        arch = self.arch
        src = self.noc.out_req
        flit = src.payload
        d = flit.data
        h = Signal(_Head)
        words = dram_sim_words(arch)
        dram = self.dram
        remaining = Signal(9)
        addr = Signal(32)  # word address in DRAM
        ok = Signal()
        wait = Signal(range(arch.dram_latency + 1))
        # Byte credits: dram_bytes_per_cycle per cycle, at most one word banked while idle.
        credit = Signal(range(isa.WORD_BYTES + 1))
        avail = Signal(range(isa.WORD_BYTES + arch.dram_bytes_per_cycle + 1))
        left = Signal.like(avail)
        have = Signal()  # a read word is on dram.rdata
        beat = Signal()
        used = Signal()
        m.d.comb += [
            avail.eq(credit + arch.dram_bytes_per_cycle),
            beat.eq(avail >= isa.WORD_BYTES),
            left.eq(avail - Mux(used, isa.WORD_BYTES, 0)),
        ]
        m.d.sync += credit.eq(Mux(left > isa.WORD_BYTES, isa.WORD_BYTES, left))
        head_addr_w = Signal(33)
        in_range = Signal()
        m.d.comb += [
            head_addr_w.eq(_field(d, isa.H_ADDR) >> 4),
            in_range.eq(head_addr_w + _field(d, isa.H_LEN) <= words),
        ]
        dx, dy = self.dram_node
        to_dram = (
            (_field(d, isa.H_ROUTE) == int(Route.UNICAST))
            & (_field(d, isa.H_X0) == dx)
            & (_field(d, isa.H_Y0) == dy)
        )
        kind = _field(d, isa.H_KIND)
        with m.FSM(name="req"):
            with m.State("IDLE"):
                with m.If(src.valid & flit.first & self._is_self(flit)):
                    m.next = "FWD"
                with m.Elif(src.valid):
                    m.d.comb += src.ready.eq(1)
                    m.d.sync += [
                        h.kind.eq(kind), h.mcast.eq(_field(d, isa.H_MCAST)),
                        h.x1.eq(_field(d, isa.H_X1)), h.y1.eq(_field(d, isa.H_Y1)),
                        h.src_x.eq(_field(d, isa.H_SRC_X)),
                        h.src_y.eq(_field(d, isa.H_SRC_Y)), h.len.eq(_field(d, isa.H_LEN)),
                        h.sem.eq(_field(d, isa.H_SEM)), h.signal.eq(_field(d, isa.H_SIGNAL)),
                        h.count.eq(_field(d, isa.H_COUNT)), h.addr.eq(_field(d, isa.H_ADDR)),
                        h.ret.eq(_field(d, isa.H_RET)),
                        addr.eq(head_addr_w), remaining.eq(_field(d, isa.H_LEN)),
                        ok.eq(to_dram & in_range),
                        wait.eq(arch.dram_latency),
                    ]  # fmt: skip
                    is_write = to_dram & (kind == int(Kind.WRITE))
                    is_read = to_dram & (kind == int(Kind.READ_REQ)) & in_range
                    with m.If(~flit.first):
                        pass  # a stray payload flit: dropped
                    with m.Elif(is_write & ~flit.last):
                        m.next = "WRITE"
                    with m.Elif(is_write & in_range):
                        pass  # an empty WRITE
                    with m.Elif(is_read):
                        m.next = "READ_WAIT"
                    with m.Elif(flit.last):
                        m.next = "ERROR"
                    with m.Else():
                        m.next = "DRAIN"
            with m.State("FWD"):
                m.d.comb += [
                    loop_req.w_data.eq(flit),
                    loop_req.w_en.eq(src.valid),
                    src.ready.eq(loop_req.w_rdy),
                ]
                with m.If(src.valid & src.ready & flit.last):
                    m.next = "IDLE"
            with m.State("DRAIN"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid & flit.last):
                    m.next = "ERROR"
            with m.State("WRITE"):
                m.d.comb += src.ready.eq(beat)
                with m.If(src.valid & beat):
                    m.d.sync += addr.eq(addr + 1)
                    m.d.comb += [
                        used.eq(1),
                        dram.en.eq(ok),
                        dram.we.eq(1),
                        dram.addr.eq(addr),
                        dram.wdata.eq(d),
                    ]
                    with m.If(flit.last):
                        m.next = "IDLE"
                        with m.If(~ok):
                            m.next = "ERROR"
            with m.State("READ_WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait <= 1):
                    m.next = "READ_HEAD"
            with m.State("READ_HEAD"):
                m.d.comb += [
                    out.valid.eq(1),
                    out.payload.first.eq(1),
                    out.payload.last.eq(h.len == 0),
                    out.payload.data.eq(
                        _resp_head(
                            int(Kind.READ_RESP),
                            h.src_x,
                            h.src_y,
                            self.dram_node,
                            h.len,
                            h,
                            h.ret,
                            rect=h.mcast,
                        )
                    ),
                ]
                with m.If(out.ready):
                    m.d.sync += have.eq(0)
                    m.next = "READ_DATA"
                    with m.If(h.len == 0):
                        m.next = "IDLE"
            with m.State("READ_DATA"):
                taken = Signal()
                m.d.comb += [
                    out.valid.eq(have),
                    out.payload.data.eq(dram.rdata),
                    out.payload.last.eq(remaining == 0),
                    taken.eq(have & out.ready),
                ]
                with m.If((~have | taken) & (remaining != 0) & beat):
                    m.d.comb += [used.eq(1), dram.en.eq(1), dram.addr.eq(addr)]
                    m.d.sync += [have.eq(1), addr.eq(addr + 1), remaining.eq(remaining - 1)]
                with m.Elif(taken):
                    m.d.sync += have.eq(0)
                with m.If(taken & (remaining == 0)):
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.comb += [
                    out.valid.eq(1),
                    out.payload.first.eq(1),
                    out.payload.last.eq(1),
                    out.payload.data.eq(
                        _resp_head(int(Kind.ERROR), h.src_x, h.src_y, self.dram_node, 0, h, h.addr)
                    ),
                ]
                with m.If(out.ready):
                    m.next = "IDLE"
