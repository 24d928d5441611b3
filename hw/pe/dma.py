"""DmaEngine: the PE's DMA engine and network interface (docs/dma.md).

Structure (all submodules named)::

    cmd -> fetch (descriptor fetch, validation, queue) -> executor (3-D address walk)
        -> packetizer (PacketReader) -+-> out_mux -> noc.out_req
                                      |      ^ signaller (SIGNAL packets) <- sig
                                      +-> (SELF copies) -> in_mux
    noc.in_req  -> in_mux -> req_in (WRITE / READ_REQ / SIGNAL) -> responder
                                                               -> noc.out_resp
    noc.in_resp -> resp_in (READ_RESP / ERROR) -> executor.resp_done (answers to this PE)

``port_desc`` serves the descriptor fetch alone (the PE gives it the highest SRAM
priority: a DMA instruction waits for its fetch, and a MAC or vector stream on the
descriptor's bank would hold the controller for the whole command); ``port_rd`` is
shared round-robin by packetizer and responder; ``port_wr``
by resp_in (first) and req_in; ``sem_inc`` by resp_in (first) and req_in.  The
response path (noc.in_resp -> port_wr -> sem_inc) depends on nothing else, so
responses always drain whatever the request class is doing.

Multicast reads (a RECT read descriptor, docs/isa.md): the executor sends UNICAST
READ_REQs with ``mcast``; the answerer (a DRAM port, or ``responder`` of another PE)
sends one RECT READ_RESP to the rectangle from the requester to the far corner.
Every PE of the rectangle writes and signals it through ``resp_in``; only the
requester (the answer's (x0, y0)) counts it in ``executor.outstanding``.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.pe.dma_arbiters import PacketMux, SramReadArbiter, SramWriteArbiter, StreamArbiter
from hw.pe.dma_exec import DmaExecutor
from hw.pe.dma_fetch import DescFetch
from hw.pe.dma_inbound import InboundHandler
from hw.pe.dma_layouts import check_arch
from hw.pe.dma_reader import PacketReader
from hw.pe.dma_signal import SignalSender
from hw.pe.interfaces import Coords, DmaCmd, NocPort, SemInc, SignalCmd, SramPort

__all__ = ["DmaEngine"]


class DmaEngine(wiring.Component):
    """DMA descriptors, SIGNAL packets, and every packet that arrives at the PE.

    Ports:
      * ``cmd`` (stream of DmaCmd): ``ready`` once the descriptor at ``desc_addr``
        has been fetched and queued (or rejected with ``error``); not started while
        the queue of ``arch.dma_queue`` descriptors is full.
      * ``sig`` (stream of SignalCmd): one SIGNAL packet per command (NODE or RECT).
      * ``sem_inc`` (stream of SemInc): local semaphore increments.
      * ``idle``: queue empty, no descriptor active, no read outstanding, no packet
        partly sent or received.
      * ``error``: one-cycle pulse per DMA fault (bad descriptor, a local range
        outside SRAM, a bad inbound packet).
      * ``port_desc`` / ``port_rd`` / ``port_wr``: SramPort requesters (descriptor
        reads / data reads / writes).
      * ``noc``: NocPort (out_req, out_resp, in_req, in_resp flit streams).
      * ``coords``: this tile's coordinates.
    """

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self._arch = arch
        super().__init__(
            {
                "cmd": In(stream.Signature(DmaCmd)),
                "sig": In(stream.Signature(SignalCmd)),
                "sem_inc": Out(stream.Signature(SemInc)),
                "idle": Out(1),
                "error": Out(1),
                "port_desc": Out(SramPort(arch)),
                "port_rd": Out(SramPort(arch)),
                "port_wr": Out(SramPort(arch)),
                "noc": Out(NocPort()),
                "coords": In(Coords()),
            }
        )

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        u = {
            "fetch": DescFetch(arch),
            "executor": DmaExecutor(arch),
            "packetizer": PacketReader(arch),
            "responder": PacketReader(arch),
            "req_in": InboundHandler(arch, responses=False),
            "resp_in": InboundHandler(arch, responses=True),
            "signaller": SignalSender(arch),
            "rd_arb": SramReadArbiter(arch, 2),
            "wr_arb": SramWriteArbiter(arch, 2),
            "out_mux": PacketMux(2),
            "in_mux": PacketMux(2),
            "sem_arb": StreamArbiter(SemInc, 2),
        }
        for name, unit in u.items():
            m.submodules[name] = unit
        self._connect_commands(m, u)
        self._connect_packets(m, u)
        self._connect_memory(m, u)
        busy = [
            u[k].busy
            for k in (
                "fetch",
                "executor",
                "packetizer",
                "responder",
                "req_in",
                "resp_in",
                "signaller",
                "out_mux",
                "in_mux",
            )
        ]
        m.d.comb += [
            self.idle.eq(~busy_any(busy) & (u["executor"].outstanding == 0)),
            self.error.eq(
                u["fetch"].error
                | u["executor"].error
                | u["req_in"].error
                | u["resp_in"].error
                | u["signaller"].error
            ),
        ]
        return m

    def _connect_commands(self, m: Module, u: dict) -> None:
        wiring.connect(m, wiring.flipped(self.cmd), u["fetch"].cmd)
        wiring.connect(m, wiring.flipped(self.sig), u["signaller"].sig)
        wiring.connect(m, u["fetch"].desc, u["executor"].desc)
        wiring.connect(m, u["executor"].pkt, u["packetizer"].cmd)
        wiring.connect(m, u["req_in"].resp, u["responder"].cmd)
        m.d.comb += u["req_in"].resp_issuing.eq(u["responder"].issuing)
        for k in ("executor", "req_in", "resp_in", "signaller"):
            wiring.connect(m, wiring.flipped(self.coords), u[k].coords)
        m.d.comb += u["executor"].resp_done.eq(u["resp_in"].done)
        wiring.connect(m, u["resp_in"].sem_inc, u["sem_arb"].in_0)
        wiring.connect(m, u["req_in"].sem_inc, u["sem_arb"].in_1)
        wiring.connect(m, u["sem_arb"].out, wiring.flipped(self.sem_inc))

    def _connect_packets(self, m: Module, u: dict) -> None:
        noc = self.noc
        pk, out_mux, in_mux = u["packetizer"].flits, u["out_mux"], u["in_mux"]
        # The packetizer's flits leave on the network or, tagged local (SELF copies),
        # loop back into the request handler as WRITE packets.
        m.d.comb += [
            out_mux.in_0.valid.eq(pk.valid & ~pk.payload.local),
            out_mux.in_0.payload.eq(pk.payload.flit),
            in_mux.in_1.valid.eq(pk.valid & pk.payload.local),
            in_mux.in_1.payload.eq(pk.payload.flit),
            pk.ready.eq(
                (pk.payload.local & in_mux.in_1.ready) | (~pk.payload.local & out_mux.in_0.ready)
            ),
        ]
        wiring.connect(m, u["signaller"].flit, out_mux.in_1)
        wiring.connect(m, out_mux.out, wiring.flipped(noc.out_req))
        wiring.connect(m, wiring.flipped(noc.in_req), in_mux.in_0)
        wiring.connect(m, in_mux.out, u["req_in"].flits)
        wiring.connect(m, wiring.flipped(noc.in_resp), u["resp_in"].flits)
        rs = u["responder"].flits
        m.d.comb += [
            noc.out_resp.valid.eq(rs.valid),
            noc.out_resp.payload.eq(rs.payload.flit),
            rs.ready.eq(noc.out_resp.ready),
        ]

    def _connect_memory(self, m: Module, u: dict) -> None:
        wiring.connect(m, u["fetch"].sram, wiring.flipped(self.port_desc))
        wiring.connect(m, u["packetizer"].sram, u["rd_arb"].req_0)
        wiring.connect(m, u["responder"].sram, u["rd_arb"].req_1)
        wiring.connect(m, u["rd_arb"].port, wiring.flipped(self.port_rd))
        wiring.connect(m, u["resp_in"].wr, u["wr_arb"].req_0)
        wiring.connect(m, u["req_in"].wr, u["wr_arb"].req_1)
        wiring.connect(m, u["wr_arb"].port, wiring.flipped(self.port_wr))


def busy_any(signals: list) -> object:
    """OR of a list of one-bit values."""
    out = signals[0]
    for s in signals[1:]:
        out = out | s
    return out
