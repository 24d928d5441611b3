"""Python models around hw.pe.dma.DmaEngine: SRAM, network, remote memory, drivers.

``rtl_dma(arch, run)`` simulates the engine with:
  * a Python SRAM implementing the SramPort protocol on ``port_rd`` / ``port_desc`` /
    ``port_wr``
    (random ``ready``, data one cycle after acceptance);
  * a network on the four NoC streams with random valid/ready: packets that name
    this node are looped back (``out_req`` -> ``in_req``, ``out_resp`` -> ``in_resp``),
    packets to ``remote`` go to a :class:`RemoteMemory` (a DRAM-like endpoint that
    absorbs WRITE and answers READ_REQ after a latency), anything else is recorded;
  * drivers for ``cmd`` / ``sig`` and a sink for ``sem_inc``.
Everything is bounded by a cycle limit: a hung design raises SimulationError.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from hw.arch import ArchConfig
from hw.errors import SimulationError
from hw.isa import WORD_BYTES, Kind, Route, decode_desc, decode_head, encode_desc, encode_head
from hw.pe.dma import DmaEngine

DESC_BASE = 0x0000  # descriptor table of the tests; data regions start at DATA_BASE
DATA_BASE = 0x0400


def word(mem: np.ndarray, addr: int) -> int:
    return int.from_bytes(mem[addr * WORD_BYTES : (addr + 1) * WORD_BYTES].tobytes(), "little")


def put_word(mem: np.ndarray, addr: int, value: int) -> None:
    mem[addr * WORD_BYTES : (addr + 1) * WORD_BYTES] = np.frombuffer(
        value.to_bytes(WORD_BYTES, "little"), dtype=np.uint8
    )


def load_descs(sram: np.ndarray, descs: list[dict]) -> list[int]:
    addrs = []
    for i, d in enumerate(descs):
        a = DESC_BASE + 48 * i
        sram[a : a + 48] = np.frombuffer(encode_desc(**d), dtype=np.uint8)
        back = decode_desc(bytes(sram[a : a + 48]))
        assert {k: back[k] for k in d} == d
        addrs.append(a)
    return addrs


def packet_flits(head: dict, payload: list[int]) -> list[tuple[int, int, int]]:
    """(data, first, last) flits of a packet."""
    flits = [(encode_head(**head), 1, int(not payload))]
    flits += [(p, 0, int(i == len(payload) - 1)) for i, p in enumerate(payload)]
    return flits


def destinations(h: dict) -> list[tuple[int, int]]:
    """Nodes a head reaches (RECT: corners in any order, as the routers take them)."""
    if h["route"] == Route.RECT:
        (xa, xb), (ya, yb) = sorted((h["x0"], h["x1"])), sorted((h["y0"], h["y1"]))
        return [(x, y) for x in range(xa, xb + 1) for y in range(ya, yb + 1)]
    return [(h["x0"], h["y0"])]


@dataclass
class RemoteMemory:
    """A memory endpoint at node ``xy``: absorbs WRITE, answers READ_REQ after ``latency``
    (a multicast read, ``mcast``: a RECT READ_RESP from the requester to (x1, y1))."""

    xy: tuple[int, int]
    size: int
    latency: int
    mem: np.ndarray = None
    signals: list = field(default_factory=list)
    writes: int = 0

    def __post_init__(self):
        if self.mem is None:
            self.mem = np.zeros(self.size, dtype=np.uint8)

    def handle(self, h: dict, payload: list[int], now: int, send) -> None:
        if h["kind"] == Kind.WRITE:
            for i, p in enumerate(payload):
                put_word(self.mem, h["addr"] // WORD_BYTES + i, p)
            self.writes += 1
            if h["signal"]:
                self.signals.append((h["sem"], h["count"]))
        elif h["kind"] == Kind.READ_REQ:
            data = [word(self.mem, h["addr"] // WORD_BYTES + i) for i in range(h["len"])]
            mcast = h.get("mcast", 0)
            resp = dict(
                kind=Kind.READ_RESP,
                route=Route.RECT if mcast else Route.UNICAST,
                x0=h["src_x"],
                y0=h["src_y"],
                x1=h["x1"] if mcast else 0,
                y1=h["y1"] if mcast else 0,
                src_x=self.xy[0],
                src_y=self.xy[1],
                len=h["len"],
                sem=h["sem"],
                signal=h["signal"],
                count=h["count"],
                addr=h["ret_addr"],
            )
            send(now + self.latency, packet_flits(resp, data))
        elif h["kind"] == Kind.SIGNAL:
            self.signals.append((h["sem"], h["count"]))


@dataclass
class Run:
    """What to do in one simulation and, afterwards, what happened."""

    sram: np.ndarray
    seed: int
    coords: tuple[int, int] = (0, 0)
    descs: list[int] = field(default_factory=list)  # descriptor byte addresses
    sigs: list[dict] = field(default_factory=list)  # SignalCmd fields
    in_req: list[list] = field(default_factory=list)  # injected packets (flit lists)
    in_resp: list[list] = field(default_factory=list)
    remote: RemoteMemory | None = None
    p_ready: float = 0.7  # probability of ready/valid per cycle on the models' side
    p_sram: float = 0.8
    max_cycles: int = 20000
    block_out_req: int = 0  # out_req is not ready before this cycle
    # results
    sem_incs: list = field(default_factory=list)
    sem_inc_cycles: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    out_packets: list = field(default_factory=list)  # (stream, head dict, payload)
    cmd_accepts: list = field(default_factory=list)
    cycles: int = 0
    out_req_flit_cycles: list = field(default_factory=list)
    in_req_flit_cycles: list = field(default_factory=list)
    idle_while_due: list = field(default_factory=list)  # idle with remote answers pending


class _Source:
    """Drives a flit stream from a queue of flits with random valid gaps."""

    def __init__(self, port, rng, p):
        self.port, self.rng, self.p, self.q, self.showing = port, rng, p, deque(), False

    def drive(self, ctx):
        if not self.showing and self.q and self.rng.random() < self.p:
            self.showing = True
            d, f, last = self.q[0]
            ctx.set(self.port.payload.data, d)
            ctx.set(self.port.payload.first, f)
            ctx.set(self.port.payload.last, last)
        ctx.set(self.port.valid, int(self.showing))

    def commit(self, ctx):
        if self.showing and ctx.get(self.port.ready):
            self.q.popleft()
            self.showing = False


class _Sink:
    """Collects packets from a flit stream with random ready."""

    def __init__(self, port, rng, p):
        self.port, self.rng, self.p, self.cur, self.ready = port, rng, p, [], 0
        self.waiting = None

    def drive(self, ctx, blocked=False):
        self.ready = int(self.rng.random() < self.p and not blocked)
        ctx.set(self.port.ready, self.ready)

    def commit(self, ctx):
        valid = ctx.get(self.port.valid)
        offer = (valid, ctx.get(self.port.payload.data), ctx.get(self.port.payload.last))
        if self.waiting is not None:  # stream rule: hold valid and payload until ready
            assert offer == self.waiting, "flit changed or withdrawn before ready"
        self.waiting = offer if valid and not self.ready else None
        if not (self.ready and valid):
            return None
        d = ctx.get(self.port.payload.data)
        first, last = ctx.get(self.port.payload.first), ctx.get(self.port.payload.last)
        assert bool(first) == (not self.cur), "first flag out of place"
        self.cur.append(d)
        if not last:
            return True
        h, payload = decode_head(self.cur[0]), self.cur[1:]
        self.cur = []
        return h, payload


def rtl_dma(arch: ArchConfig, run: Run) -> Run:
    """Simulate ``run`` on the RTL; fills in the result fields of ``run``."""
    dut = DmaEngine(arch)
    rng = np.random.default_rng(run.seed)
    print(f"rtl_dma seed={run.seed}")
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(_bench(arch, dut, run, rng))
    waves = os.environ.get("WAVES") == "1"
    if waves:
        out = Path("build/waves")
        out.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(out / f"dma_{run.seed}.vcd")):
            sim.run()
    else:
        sim.run()
    return run


def _bench(arch, dut, run, rng):
    async def bench(ctx):
        ctx.set(dut.coords.x, run.coords[0])
        ctx.set(dut.coords.y, run.coords[1])
        noc = dut.noc
        srcs = {
            "in_req": _Source(noc.in_req, rng, run.p_ready),
            "in_resp": _Source(noc.in_resp, rng, run.p_ready),
        }
        for pkt in run.in_req:
            srcs["in_req"].q.extend(pkt)
        for pkt in run.in_resp:
            srcs["in_resp"].q.extend(pkt)
        sinks = {
            "out_req": _Sink(noc.out_req, rng, run.p_ready),
            "out_resp": _Sink(noc.out_resp, rng, run.p_ready),
        }
        later = []  # (cycle, flits) remote responses waiting for their latency
        descs, sigs = deque(run.descs), deque(run.sigs)
        rd_pending = desc_pending = None
        offered = {}
        quiet = 0
        for cycle in range(run.max_cycles):
            # -- drive this cycle's inputs ---------------------------------------------
            ctx.set(dut.cmd.valid, int(bool(descs)))
            if descs:
                ctx.set(dut.cmd.payload.desc_addr, descs[0])
            ctx.set(dut.sig.valid, int(bool(sigs)))
            if sigs:
                for k, v in sigs[0].items():
                    ctx.set(getattr(dut.sig.payload, k), v)
            sem_ready = int(rng.random() < run.p_ready)
            ctx.set(dut.sem_inc.ready, sem_ready)
            ctx.set(dut.port_rd.ready, int(rng.random() < run.p_sram))
            ctx.set(dut.port_desc.ready, int(rng.random() < run.p_sram))
            ctx.set(dut.port_wr.ready, int(rng.random() < run.p_sram))
            ctx.set(dut.port_rd.rvalid, int(rd_pending is not None))
            if rd_pending is not None:
                ctx.set(dut.port_rd.rdata, word(run.sram, rd_pending))
            ctx.set(dut.port_desc.rvalid, int(desc_pending is not None))
            if desc_pending is not None:
                ctx.set(dut.port_desc.rdata, word(run.sram, desc_pending))
            for s in srcs.values():
                s.drive(ctx)
            sinks["out_req"].drive(ctx, blocked=cycle < run.block_out_req)
            sinks["out_resp"].drive(ctx)
            # -- sample the handshakes of this cycle -------------------------------------
            for port in (dut.port_rd, dut.port_desc, dut.port_wr):  # hold until ready
                offer = (ctx.get(port.valid), ctx.get(port.addr), ctx.get(port.wdata))
                if offered.get(port.we.name):
                    assert offer == offered[port.we.name], "SRAM request changed before ready"
                offered[port.we.name] = offer if offer[0] and not ctx.get(port.ready) else None
            rd_pending = desc_pending = None
            if ctx.get(dut.port_rd.valid) and ctx.get(dut.port_rd.ready):
                assert not ctx.get(dut.port_rd.we)
                rd_pending = ctx.get(dut.port_rd.addr)
            if ctx.get(dut.port_desc.valid) and ctx.get(dut.port_desc.ready):
                assert not ctx.get(dut.port_desc.we)
                desc_pending = ctx.get(dut.port_desc.addr)
            if ctx.get(dut.port_wr.valid) and ctx.get(dut.port_wr.ready):
                assert ctx.get(dut.port_wr.we) and ctx.get(dut.port_wr.wmask) == 0xFFFF
                put_word(run.sram, ctx.get(dut.port_wr.addr), ctx.get(dut.port_wr.wdata))
            if descs and ctx.get(dut.cmd.ready):
                descs.popleft()
                run.cmd_accepts.append(cycle)
            if sigs and ctx.get(dut.sig.ready):
                sigs.popleft()
            if sem_ready and ctx.get(dut.sem_inc.valid):
                inc = ctx.get(dut.sem_inc.payload)
                run.sem_incs.append((inc.sem, inc.count))
                run.sem_inc_cycles.append(cycle)
            if ctx.get(dut.error):
                run.errors.append(cycle)
            if sinks["out_req"].ready and ctx.get(noc.out_req.valid):
                run.out_req_flit_cycles.append(cycle)
            if srcs["in_req"].showing and ctx.get(noc.in_req.ready):
                run.in_req_flit_cycles.append(cycle)
            for s in srcs.values():
                s.commit(ctx)
            for name, s in sinks.items():
                got = s.commit(ctx)
                if isinstance(got, tuple):
                    _route(run, name, got, srcs, later, cycle)
            for item in [x for x in later if x[0] <= cycle]:
                later.remove(item)
                srcs["in_resp"].q.extend(item[1])
            if later and ctx.get(dut.idle):  # a read is unanswered: it must count
                run.idle_while_due.append(cycle)
            busy = (
                descs or sigs or later or any(s.q for s in srcs.values()) or not ctx.get(dut.idle)
            )
            quiet = 0 if busy else quiet + 1
            await ctx.tick()
            if quiet > 4:
                run.cycles = cycle
                return
        raise SimulationError(
            f"DMA simulation did not finish in {run.max_cycles} cycles (seed {run.seed})"
        )

    return bench


def _route(run, stream_name, pkt, srcs, later, cycle):
    h, payload = pkt
    run.out_packets.append((stream_name, h, payload))
    loop = "in_req" if stream_name == "out_req" else "in_resp"
    for xy in destinations(h):
        if xy == tuple(run.coords):
            srcs[loop].q.extend(packet_flits(h, payload))
        elif run.remote is not None and xy == run.remote.xy and stream_name == "out_req":
            run.remote.handle(h, payload, cycle, lambda when, flits: later.append((when, flits)))
