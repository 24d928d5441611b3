"""Multicast reads (docs/isa.md "Multicast reads") at the DMA engine and its answerers.

* DmaEngine (Amaranth simulator, tests/hw/dma_harness.py): a RECT read descriptor sends
  UNICAST READ_REQs with ``mcast`` and the far corner, cut at ``rect_payload_flits``;
  the answers land, the semaphore is signalled once, the outstanding count returns to
  0; RECT answers of another requester are written and signalled but never count as
  this PE's answers; the responder answers ``mcast`` READ_REQs with a RECT READ_RESP
  (ERROR: unicast to the requester).
* InboundHandler (response class): ``done`` only for answers whose (x0, y0) is this PE.
* The cosim DRAM models (cosim/dram.py, nominal and stress; cosim/netstub.py): a
  ``mcast`` READ_REQ is answered by a RECT READ_RESP.

The chip-level runs (Verilator) are in tests/cosim/test_mcast_read_chip.py.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator
from dma_harness import DATA_BASE, RemoteMemory, Run, load_descs, packet_flits, rtl_dma, word
from test_dma import Regions, fill_random, random_desc

from hw import isa
from hw.arch import preset
from hw.errors import SimulationError
from hw.isa import WORD_BYTES, Kind, Route, SignalMode, dram_node
from hw.pe.dma_inbound import InboundHandler

ARCH = preset("tiny")
SELF_XY = (1, 0)
OTHER_XY = (0, 1)  # another requester whose rectangle holds SELF_XY
DRAM_XY = dram_node(ARCH)


# -- reference ------------------------------------------------------------------------------


def ref_requests(d: dict, limit: int) -> list[tuple[int, int, int]]:
    """(remote address, local address, words) of each READ_REQ of descriptor ``d``."""
    out = []
    for i2 in range(d["count2"]):
        for i1 in range(d["count1"]):
            lo = d["local"] + i1 * d["lstride1"] + i2 * d["lstride2"]
            ro = d["remote"] + i1 * d["rstride1"] + i2 * d["rstride2"]
            for done in range(0, d["count0"], limit):
                n = min(limit, d["count0"] - done)
                out.append((ro + done * WORD_BYTES, lo + done * WORD_BYTES, n))
    return out


def ref_read(local: np.ndarray, source: np.ndarray, d: dict) -> None:
    """The local result of read descriptor ``d`` (``source``: the remote memory)."""
    for ro, lo, n in ref_requests(d, 1):
        local[lo : lo + n * WORD_BYTES] = source[ro : ro + n * WORD_BYTES]


def mcast_desc(rng, local_regions, remote_regions, src_xy, far_xy, counts, sem) -> dict:
    """A multicast read (test_dma.random_desc with mode RECT, then the far corner)."""
    d = random_desc(rng, local_regions, remote_regions, SignalMode.RECT, 1, 0, src_xy, counts)
    return {**d, "x1": far_xy[0], "y1": far_xy[1], "sem": sem}


def read_requests(run: Run, src_xy) -> list[dict]:
    return [
        h
        for s, h, _ in run.out_packets
        if s == "out_req" and h["kind"] == Kind.READ_REQ and (h["x0"], h["y0"]) == tuple(src_xy)
    ]


# -- DmaEngine ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,far", [(201, (0, 1)), (202, (1, 1)), (203, (0, 0))])
def test_mcast_read_requests_and_answers(seed, far):
    """A multicast read from DRAM and one from this PE's own SRAM, with a NODE read
    between them: request heads, chunking, data, one signal each, counter back to 0."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed} far corner={far}")
    remote = RemoteMemory(DRAM_XY, size=1 << 16, latency=ARCH.dram_latency)
    fill_random(rng, remote.mem, 0)
    sram = np.zeros(ARCH.sram_bytes, dtype=np.uint8)
    fill_random(rng, sram, DATA_BASE)
    local = Regions(rng, DATA_BASE, ARCH.sram_bytes)
    dram = Regions(rng, 0, len(remote.mem))
    from_dram = mcast_desc(rng, local, dram, DRAM_XY, far, (7, 3, 2), sem=3)
    node = mcast_desc(rng, local, dram, DRAM_XY, far, (5, 2, 1), sem=4)
    node.update(mode=int(SignalMode.NODE), x1=0, y1=0)
    from_self = mcast_desc(rng, local, local, SELF_XY, far, (4, 2, 1), sem=5)
    descs = [from_dram, node, from_self]
    run = Run(sram=sram.copy(), seed=seed, coords=SELF_XY, remote=remote, max_cycles=40000)
    run.descs = load_descs(run.sram, descs)
    want = run.sram.copy()
    ref_read(want, remote.mem, from_dram)
    ref_read(want, remote.mem, node)
    ref_read(want, want.copy(), from_self)  # the regions are disjoint
    rtl_dma(ARCH, run)
    print(f"cycles={run.cycles}")
    assert run.errors == []
    np.testing.assert_array_equal(run.sram, want)
    assert Counter(run.sem_incs) == Counter({(3, 1): 1, (4, 1): 1, (5, 1): 1})
    assert run.idle_while_due == []  # every request counted until its answer
    limit = ARCH.rect_payload_flits
    got = read_requests(run, DRAM_XY)
    want_dram = [(from_dram, 1, limit), (node, 0, ARCH.max_packet_flits)]
    want_heads = [(mc, r) for d, mc, lim in want_dram for r in ref_requests(d, lim)]
    assert len(got) == len(want_heads)
    for h, (mcast, (ro, lo, n)) in zip(got, want_heads, strict=True):
        assert (h["route"], h["mcast"]) == (Route.UNICAST, mcast)
        assert (h["x1"], h["y1"]) == (far if mcast else (0, 0))
        assert (h["src_x"], h["src_y"]) == SELF_XY
        assert (h["addr"], h["ret_addr"], h["len"]) == (ro, lo, n)
        assert h["len"] <= limit or not mcast
    to_self = read_requests(run, SELF_XY)
    assert [(h["addr"], h["ret_addr"], h["len"]) for h in to_self] == ref_requests(from_self, limit)
    assert all(h["mcast"] == 1 and (h["x1"], h["y1"]) == far for h in to_self)
    # the last request of each descriptor carries the signal
    for d, heads in [(from_dram, got[: len(ref_requests(from_dram, limit))]), (from_self, to_self)]:
        assert [h["signal"] for h in heads] == [0] * (len(heads) - 1) + [1]
        assert heads[-1]["sem"] == d["sem"] and heads[-1]["count"] == 1
    answers = [h for s, h, _ in run.out_packets if s == "out_resp"]
    assert len(answers) == len(to_self)
    for h in answers:  # this PE answered its own multicast read: RECT, requester first
        assert (h["kind"], h["route"]) == (Kind.READ_RESP, Route.RECT)
        assert (h["x0"], h["y0"], h["x1"], h["y1"]) == (*SELF_XY, *far)


class DramWithForeignAnswers(RemoteMemory):
    """RemoteMemory that, at the first READ_REQ (so this PE's read is outstanding),
    also sends the RECT answers of another PE's multicast read (``foreign``)."""

    foreign: list | None = None

    def handle(self, h: dict, payload: list[int], now: int, send) -> None:
        if h["kind"] == Kind.READ_REQ and self.foreign:
            for flits in self.foreign:
                send(now + 20, flits)
            self.foreign = None
        super().handle(h, payload, now, send)


def _foreign_answers(rng, base: int, packets: int) -> tuple[list, dict[int, int]]:
    """RECT READ_RESPs of OTHER_XY's multicast read (the last one signals sem 9)."""
    flits, words = [], {}
    for i in range(packets):
        n = int(rng.integers(1, ARCH.rect_payload_flits + 1))
        data = [int(x) for x in rng.integers(0, 1 << 62, size=n)]
        addr = base + 0x100 * i
        last = i == packets - 1
        h = dict(
            kind=int(Kind.READ_RESP),
            route=int(Route.RECT),
            x0=OTHER_XY[0],
            y0=OTHER_XY[1],
            x1=SELF_XY[0],
            y1=SELF_XY[1],
            src_x=DRAM_XY[0],
            src_y=DRAM_XY[1],
            len=n,
            addr=addr,
            signal=int(last),
            sem=9 if last else 0,
            count=int(last),
        )
        flits.append(packet_flits(h, data))
        words.update({addr // WORD_BYTES + k: v for k, v in enumerate(data)})
    return flits, words


@pytest.mark.parametrize("seed", [211, 212])
def test_answers_for_another_requester_do_not_count(seed):
    """While this PE waits for its own (slow) answers, RECT answers of OTHER_XY's
    multicast read arrive: written and signalled, but the PE stays busy (not idle)
    until its own answers are in: its outstanding count was not touched."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    remote = DramWithForeignAnswers(DRAM_XY, size=1 << 16, latency=600)
    fill_random(rng, remote.mem, 0)
    sram = np.zeros(ARCH.sram_bytes, dtype=np.uint8)
    local = Regions(rng, DATA_BASE, DATA_BASE + 0x2000)
    dram = Regions(rng, 0, len(remote.mem))
    own = mcast_desc(rng, local, dram, DRAM_XY, (0, 1), (2 * ARCH.rect_payload_flits, 1, 1), 2)
    foreign, words = _foreign_answers(rng, DATA_BASE + 0x4000, 4)
    remote.foreign = foreign
    run = Run(sram=sram, seed=seed, coords=SELF_XY, remote=remote)
    run.descs = load_descs(run.sram, [own])
    want = run.sram.copy()
    ref_read(want, remote.mem, own)
    rtl_dma(ARCH, run)
    print(f"cycles={run.cycles} sem_inc cycles={run.sem_inc_cycles}")
    assert run.errors == []
    assert Counter(run.sem_incs) == Counter({(9, 1): 1, (2, 1): 1})
    for a, v in words.items():
        assert word(run.sram, a) == v
    own_region = slice(own["local"], own["local"] + own["count0"] * WORD_BYTES)
    np.testing.assert_array_equal(run.sram[own_region], want[own_region])
    assert run.sem_inc_cycles[0] < 600 < run.sem_inc_cycles[1]  # foreign first, then own
    assert run.idle_while_due == [], "a foreign answer was counted as this PE's"


def test_responder_answers_mcast_with_rect():
    """READ_REQs with ``mcast`` from other requesters: a RECT READ_RESP from the
    requester to the far corner (this PE inside the rectangle gets its copy too);
    out of range: a unicast ERROR to the requester."""
    seed = 221
    rng = np.random.default_rng(seed)
    sram = rng.integers(0, 256, ARCH.sram_bytes, dtype=np.uint8)

    def req(src, far, addr, ret, n, **kw):
        h = dict(kind=int(Kind.READ_REQ), x0=SELF_XY[0], y0=SELF_XY[1], mcast=1, len=n)
        h.update(src_x=src[0], src_y=src[1], x1=far[0], y1=far[1], addr=addr, ret_addr=ret)
        return {**h, **kw}

    reqs = [
        req((0, 1), (1, 1), DATA_BASE, 0x2000, 3, signal=1, sem=6, count=1),  # beside this PE
        req((0, 0), (1, 0), DATA_BASE + 0x100, 0x3000, 2, signal=1, sem=7, count=1),  # over it
        req((1, 1), (0, 0), ARCH.sram_bytes - 16, 0x40, 2, signal=1, sem=8, count=1),  # refused
    ]
    run = Run(sram=sram.copy(), seed=seed, coords=SELF_XY)
    run.in_req = [packet_flits(h, []) for h in reqs]
    rtl_dma(ARCH, run)
    assert len(run.errors) == 1  # the refused request
    answers = [(h, p) for s, h, p in run.out_packets if s == "out_resp"]
    assert len(answers) == 3
    for (h, p), r in zip(answers[:2], reqs[:2], strict=True):
        assert (h["kind"], h["route"]) == (Kind.READ_RESP, Route.RECT)
        assert (h["x0"], h["y0"], h["x1"], h["y1"]) == (r["src_x"], r["src_y"], r["x1"], r["y1"])
        assert (h["src_x"], h["src_y"], h["addr"], h["len"]) == (*SELF_XY, r["ret_addr"], r["len"])
        assert (h["sem"], h["signal"], h["count"], h["mcast"]) == (r["sem"], 1, 1, 0)
        assert p == [word(sram, r["addr"] // WORD_BYTES + i) for i in range(r["len"])]
    h, p = answers[2]
    assert (h["kind"], h["route"], h["x0"], h["y0"], h["x1"], h["y1"]) == (
        Kind.ERROR,
        Route.UNICAST,
        1,
        1,
        0,
        0,
    )
    assert (h["addr"], h["len"], p) == (ARCH.sram_bytes - 16, 0, [])
    # the second answer's rectangle holds this PE: written at ret_addr and signalled
    assert run.sem_incs == [(7, 1)]
    r = reqs[1]
    n = r["len"] * WORD_BYTES
    np.testing.assert_array_equal(
        run.sram[r["ret_addr"] : r["ret_addr"] + n], sram[r["addr"] : r["addr"] + n]
    )


# -- InboundHandler: done only for this PE's answers -----------------------------------------


def rtl_resp_done(packets: list[list], coords, max_cycles: int = 500) -> tuple[int, list]:
    """Feed ``packets`` (flit lists) to InboundHandler(responses=True) at ``coords``;
    (done pulses, sem_inc payloads)."""
    dut = InboundHandler(ARCH, responses=True)
    flits = [f for p in packets for f in p]
    seen = {"done": 0, "incs": []}

    async def bench(ctx):
        ctx.set(dut.coords.x, coords[0])
        ctx.set(dut.coords.y, coords[1])
        ctx.set(dut.wr.ready, 1)
        ctx.set(dut.sem_inc.ready, 1)
        i = 0
        for _ in range(max_cycles):
            if i < len(flits):
                d, first, last = flits[i]
                ctx.set(dut.flits.valid, 1)
                ctx.set(dut.flits.payload.data, d)
                ctx.set(dut.flits.payload.first, first)
                ctx.set(dut.flits.payload.last, last)
            else:
                ctx.set(dut.flits.valid, 0)
            seen["done"] += ctx.get(dut.done)
            if ctx.get(dut.sem_inc.valid):
                seen["incs"].append(
                    (ctx.get(dut.sem_inc.payload.sem), ctx.get(dut.sem_inc.payload.count))
                )
            if i < len(flits) and ctx.get(dut.flits.ready):
                i += 1
            await ctx.tick()
            if i == len(flits) and not ctx.get(dut.busy):
                return
        raise SimulationError(f"InboundHandler: packets not consumed in {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen["done"], seen["incs"]


def test_inbound_done_only_for_own_answers():
    me, other = (1, 1), (0, 1)

    def resp(at, n, route=Route.UNICAST, kind=Kind.READ_RESP, sem=0):
        h = dict(kind=int(kind), route=int(route), x0=at[0], y0=at[1], x1=1, y1=1, len=n)
        h.update(addr=0x100, signal=int(sem != 0), sem=sem, count=int(sem != 0))
        return packet_flits(h, list(range(1, n + 1)))

    packets = [
        resp(me, 2),  # own, multi-flit
        resp(other, 3, Route.RECT, sem=4),  # another requester's, multi-flit
        resp(me, 0, Route.RECT, sem=5),  # own RECT answer, head only
        resp(other, 0, Route.RECT, sem=6),  # another's, head only
        resp(me, 0, kind=Kind.ERROR),  # own ERROR
        resp(me, 3, Route.RECT),  # own RECT answer
    ]
    done, incs = rtl_resp_done(packets, me)
    assert done == 4
    assert incs == [(4, 1), (5, 1), (6, 1)]


# -- cosim DRAM models -----------------------------------------------------------------------


def _endpoint_bench(top, send, recv, packets, answers: int, max_cycles: int, setup=()):
    """Drive ``send`` with ``packets`` and collect ``answers`` packets from ``recv``."""
    got: list[list] = []

    async def driver(ctx):
        for k, v in setup:
            ctx.set(k, v)
        for flits in packets:
            for i, f in enumerate(flits):
                ctx.set(send.valid, 1)
                ctx.set(send.payload.data, f)
                ctx.set(send.payload.first, i == 0)
                ctx.set(send.payload.last, i == len(flits) - 1)
                await ctx.tick().until(send.ready)
            ctx.set(send.valid, 0)

    async def monitor(ctx):
        ctx.set(recv.ready, 1)
        for _ in range(max_cycles):
            await ctx.tick()
            if not ctx.get(recv.valid):
                continue
            w = ctx.get(recv.payload.data)
            if ctx.get(recv.payload.first):
                got.append([isa.decode_head(w)])
            else:
                got[-1].append(w)
            if len(got) == answers and ctx.get(recv.payload.last):
                return
        raise SimulationError(f"no {answers} answers within {max_cycles} cycles")

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return got


def _with_memory(dut, port, init):
    m = Module()
    m.submodules.dut = dut
    m.submodules.mem = mem = Memory(shape=128, depth=1 << len(port.addr), init=init)
    rd, wr = mem.read_port(), mem.write_port()
    m.d.comb += [
        rd.addr.eq(port.addr),
        wr.addr.eq(port.addr),
        wr.data.eq(port.wdata),
        wr.en.eq(port.en & port.we),
        port.rdata.eq(rd.data),
    ]
    return m


def _dram_requests(src, far):
    dx, dy = DRAM_XY
    base = dict(kind=int(Kind.READ_REQ), x0=dx, y0=dy, src_x=src[0], src_y=src[1])
    return [
        dict(base, mcast=1, x1=far[0], y1=far[1], len=3, addr=0x20, ret_addr=0x500, signal=1,
             sem=3, count=1),
        dict(base, len=2, addr=0x10, ret_addr=0x600),
        dict(base, mcast=1, x1=far[0], y1=far[1], len=2, addr=1 << 30, ret_addr=0x700),
    ]  # fmt: skip


def _check_dram_answers(got, reqs, init, src, far):
    words = [init[i] for i in range(len(init))]
    assert len(got) == 3
    (h0, *p0), (h1, *p1), (h2, *p2) = got
    assert (h0["kind"], h0["route"]) == (Kind.READ_RESP, Route.RECT)
    assert (h0["x0"], h0["y0"], h0["x1"], h0["y1"]) == (*src, *far)
    assert (h0["sem"], h0["signal"], h0["count"], h0["addr"], h0["len"]) == (3, 1, 1, 0x500, 3)
    assert p0 == words[2:5]
    assert (h1["kind"], h1["route"], h1["x0"], h1["y0"], h1["x1"], h1["y1"]) == (
        Kind.READ_RESP,
        Route.UNICAST,
        *src,
        0,
        0,
    )
    assert p1 == words[1:3]
    assert (h2["kind"], h2["route"], h2["x0"], h2["y0"], h2["x1"], h2["y1"]) == (
        Kind.ERROR,
        Route.UNICAST,
        *src,
        0,
        0,
    )
    assert (h2["addr"], p2) == (reqs[2]["addr"], [])


@pytest.mark.parametrize("stress", [False, True])
def test_dram_endpoint_answers_mcast_with_rect(stress):
    """cosim/dram.py: mcast READ_REQ -> RECT READ_RESP (requester, far corner), a plain
    read stays UNICAST, a refused mcast read gets a UNICAST ERROR; stress timing too."""
    from cosim.dram import DramEndpoint

    seed = 231
    print(f"seed={seed} stress={stress}")
    src, far = (1, 1), (0, 0)
    init = [int(x) for x in np.random.default_rng(seed).integers(0, 1 << 62, size=16)]
    dut = DramEndpoint(ARCH, stress=stress)
    top = _with_memory(dut, dut.mem, init)
    reqs = _dram_requests(src, far)
    setup = [(dut.stress_en, 1), (dut.stress_seed, seed)] if stress else []
    got = _endpoint_bench(
        top,
        dut.noc.in_req,
        dut.noc.out_resp,
        [[isa.encode_head(**r)] for r in reqs],
        3,
        20000,
        setup,
    )
    _check_dram_answers(got, reqs, init, src, far)


def test_netstub_answers_mcast_with_rect():
    """cosim/netstub.py: the DRAM stub answers as the endpoint does; a RECT answer
    of the PE's own responder that holds the PE loops back to its in_resp."""
    from cosim.netstub import NetStub

    seed = 232
    src, far = (1, 1), (0, 1)
    init = [int(x) for x in np.random.default_rng(seed).integers(0, 1 << 62, size=16)]
    dut = NetStub(ARCH, src)
    top = _with_memory(dut, dut.dram, init)
    reqs = _dram_requests(src, far)
    got = _endpoint_bench(
        top, dut.noc.out_req, dut.noc.in_resp, [[isa.encode_head(**r)] for r in reqs], 3, 2000
    )
    _check_dram_answers(got, reqs, init, src, far)
    # responses of the PE: a RECT holding it loops back, one beside it is dropped
    own = dict(kind=int(Kind.READ_RESP), route=int(Route.RECT), len=1, addr=0x40)
    packets = [
        [isa.encode_head(**own, x0=0, y0=0, x1=1, y1=0), 5],  # (1, 1) not in it: dropped
        [isa.encode_head(**own, x0=1, y0=1, x1=0, y1=0), 6],  # holds (1, 1)
    ]
    dut = NetStub(ARCH, src)
    top = _with_memory(dut, dut.dram, [])
    got = _endpoint_bench(top, dut.noc.out_resp, dut.noc.in_resp, packets, 1, 500)
    assert [(h["x0"], h["y0"], p) for h, p in got] == [(1, 1, 6)]
