"""DmaEngine: inbound packets, the read responder, every error case, throughput."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from dma_harness import (
    DATA_BASE,
    RemoteMemory,
    Run,
    load_descs,
    packet_flits,
    put_word,
    rtl_dma,
    word,
)

from hw.arch import preset
from hw.isa import WORD_BYTES, Kind, Route, SignalMode, dram_node, pack_rect

ARCH = preset("tiny")

SELF_XY = (0, 1)
REQUESTER = (1, 1)


def ref_inbound(sram: np.ndarray, packets: list[tuple[dict, list[int]]], self_xy):
    """Apply inbound request packets in order; expected responses, increments, errors."""
    resps, incs, errors = [], Counter(), 0
    for h, payload in packets:
        kind = h.get("kind", 0)
        a, n = h.get("addr", 0), h.get("len", 0)
        in_range = a % WORD_BYTES == 0 and a + n * WORD_BYTES <= len(sram)
        if kind == Kind.WRITE and in_range:
            for i, p in enumerate(payload[:n]):
                put_word(sram, a // WORD_BYTES + i, p)
            if h.get("signal"):
                incs[(h["sem"], h["count"])] += 1
        elif kind == Kind.READ_REQ:
            head = dict(
                kind=Kind.READ_RESP,
                route=Route.UNICAST,
                x0=h["src_x"],
                y0=h["src_y"],
                x1=0,
                y1=0,
                src_x=self_xy[0],
                src_y=self_xy[1],
                len=n,
                sem=h.get("sem", 0),
                signal=h.get("signal", 0),
                count=h.get("count", 0),
                addr=h.get("ret_addr", 0),
                ret_addr=0,
            )
            data = []
            if in_range:
                data = [word(sram, a // WORD_BYTES + i) for i in range(n)]
            else:
                errors += 1
                head.update(kind=Kind.ERROR, len=0, signal=0, addr=a)
            resps.append((head, data))
        elif kind == Kind.SIGNAL:
            incs[(h["sem"], h["count"])] += 1
        else:
            errors += 1
    return resps, incs, errors


def random_inbound(rng, count: int, base: int = DATA_BASE) -> list[tuple[dict, list[int]]]:
    pkts = []
    for _ in range(count):
        kind = rng.choice([Kind.WRITE, Kind.WRITE, Kind.READ_REQ, Kind.SIGNAL])
        n = int(rng.integers(0 if kind != Kind.WRITE else 1, ARCH.max_packet_flits + 1))
        addr = base + int(rng.integers(0, 64)) * WORD_BYTES
        sig = int(rng.integers(0, 2)) if kind != Kind.SIGNAL else 1
        h = dict(
            kind=int(kind),
            route=0,
            x0=SELF_XY[0],
            y0=SELF_XY[1],
            src_x=REQUESTER[0],
            src_y=REQUESTER[1],
            len=n if kind != Kind.SIGNAL else 0,
            addr=addr,
            ret_addr=int(rng.integers(0, 1 << 12)) * WORD_BYTES,
            signal=sig,
            sem=int(rng.integers(0, ARCH.semaphores)),
            count=int(rng.integers(1, 9)),
        )
        payload = [int(x) for x in rng.integers(0, 1 << 62, size=n)] if kind == Kind.WRITE else []
        pkts.append((h, payload))
    return pkts


def make_run(seed, **kw) -> Run:
    sram = kw.pop("sram", None)
    if sram is None:
        sram = np.random.default_rng(seed).integers(0, 256, ARCH.sram_bytes, dtype=np.uint8)
    return Run(sram=sram, seed=seed, coords=SELF_XY, **kw)


def resp_packets(run: Run):
    return [(h, p) for s, h, p in run.out_packets if s == "out_resp"]


@pytest.mark.parametrize("seed", [31, 32])
def test_inbound_requests_and_responder(seed):
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    pkts = random_inbound(rng, 30)
    run = make_run(seed, in_req=[packet_flits(h, p) for h, p in pkts])
    want = run.sram.copy()
    resps, incs, errors = ref_inbound(want, pkts, SELF_XY)
    rtl_dma(ARCH, run)
    print(f"cycles={run.cycles}")
    assert errors == 0 and run.errors == []
    np.testing.assert_array_equal(run.sram, want)
    assert Counter(run.sem_incs) == incs
    got = resp_packets(run)
    assert len(got) == len(resps)
    for (gh, gp), (wh, wp) in zip(got, resps, strict=True):
        assert gp == wp
        assert all(gh[k] == v for k, v in wh.items()), (gh, wh)


def test_inbound_read_responses():
    """READ_RESP on in_resp (unsolicited here) is written and signals."""
    seed = 33
    rng = np.random.default_rng(seed)
    data = [int(x) for x in rng.integers(0, 1 << 62, size=5)]
    h = dict(
        kind=int(Kind.READ_RESP),
        x0=SELF_XY[0],
        y0=SELF_XY[1],
        len=5,
        signal=1,
        sem=7,
        count=1,
        addr=DATA_BASE + 0x100,
    )
    run = make_run(seed, in_resp=[packet_flits(h, data)])
    rtl_dma(ARCH, run)
    assert run.errors == [] and run.sem_incs == [(7, 1)]
    assert [word(run.sram, (DATA_BASE + 0x100) // WORD_BYTES + i) for i in range(5)] == data


GOOD = dict(
    local=DATA_BASE,
    remote=DATA_BASE + 0x1000,
    count0=3,
    count1=2,
    count2=1,
    lstride1=0x40,
    rstride1=0x40,
    mode=int(SignalMode.SELF),
    sem=2,
    signal=1,
)

BAD_DESCS = {
    "count0": dict(count0=0),
    "count1": dict(count1=0),
    "count2": dict(count2=0),
    "local_misaligned": dict(local=DATA_BASE + 4),
    "remote_misaligned": dict(remote=DATA_BASE + 8),
    "lstride1_misaligned": dict(lstride1=0x44),
    "lstride2_misaligned": dict(lstride2=-8),
    "rstride1_misaligned": dict(rstride1=0x41),
    "rstride2_misaligned": dict(rstride2=0x48),
    "mode3": dict(mode=3),
    # a RECT read is a multicast read (tests/hw/test_mcast_read.py); its far corner
    # must still fit the head flit's coordinates
    "read_rect_far_corner": dict(mode=int(SignalMode.RECT), read=1, x1=1 << 6, y1=1),
    "rect_inverted": dict(mode=int(SignalMode.RECT), x0=1, x1=0),
    "sem_range": dict(sem=ARCH.semaphores),
    "local_outside_sram": dict(local=ARCH.sram_bytes - 2 * WORD_BYTES),
    "self_dest_outside_sram": dict(remote=ARCH.sram_bytes),
}


@pytest.mark.parametrize("case", sorted(BAD_DESCS))
def test_bad_descriptor(case):
    """One error pulse, nothing moved; the next descriptor still runs."""
    bad = dict(GOOD, **BAD_DESCS[case])
    run = make_run(41)
    addrs = load_descs(run.sram, [bad, GOOD])
    want = run.sram.copy()
    for i1 in range(GOOD["count1"]):
        s, t = GOOD["local"] + 0x40 * i1, GOOD["remote"] + 0x40 * i1
        want[t : t + 48] = want[s : s + 48]
    run.descs = addrs
    rtl_dma(ARCH, run)
    assert len(run.errors) == 1
    assert run.sem_incs == [(GOOD["sem"], 1)]
    assert run.out_packets == []
    np.testing.assert_array_equal(run.sram, want)


def _write(addr, n, **kw):
    h = dict(kind=int(Kind.WRITE), x0=SELF_XY[0], y0=SELF_XY[1], len=n, addr=addr, **kw)
    return h, list(range(1, n + 1))


BAD_INBOUND = {
    "write_outside_sram": ("in_req", _write(ARCH.sram_bytes - 16, 2, signal=1, sem=1, count=1)),
    "write_misaligned": ("in_req", _write(DATA_BASE + 4, 2)),
    "write_bad_sem": ("in_req", _write(DATA_BASE, 2, signal=1, sem=ARCH.semaphores, count=1)),
    "config_at_pe": ("in_req", (dict(kind=int(Kind.CONFIG), len=2), [5, 6])),
    "read_resp_on_req": ("in_req", (dict(kind=int(Kind.READ_RESP), len=1, addr=DATA_BASE), [1])),
    "unknown_kind": ("in_req", (dict(kind=7), [])),
    "signal_with_payload": ("in_req", (dict(kind=int(Kind.SIGNAL), sem=1, count=1, len=1), [9])),
    "error_response": ("in_resp", (dict(kind=int(Kind.ERROR), addr=0x1234), [])),
    "write_on_resp": ("in_resp", (dict(kind=int(Kind.WRITE), len=1, addr=DATA_BASE), [1])),
    "resp_outside_sram": (
        "in_resp",
        (dict(kind=int(Kind.READ_RESP), len=1, addr=ARCH.sram_bytes), [1]),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INBOUND))
def test_bad_inbound_packet(case):
    """One error pulse, the packet is dropped whole; the next packet is handled."""
    stream_name, (h, payload) = BAD_INBOUND[case]
    good_h, good_p = _write(DATA_BASE + 0x200, 3, signal=1, sem=4, count=2)
    run = make_run(42)
    want = run.sram.copy()
    for i, p in enumerate(good_p):
        put_word(want, (DATA_BASE + 0x200) // WORD_BYTES + i, p)
    run.in_req = [packet_flits(good_h, good_p)]
    getattr(run, stream_name).insert(0, packet_flits(h, payload))
    rtl_dma(ARCH, run)
    assert len(run.errors) == 1
    assert run.sem_incs == [(4, 2)]
    np.testing.assert_array_equal(run.sram, want)


def test_overlong_write_is_an_error():
    h, p = _write(DATA_BASE, 2)
    run = make_run(43, in_req=[packet_flits(h, p + [77])])
    want = run.sram.copy()
    for i, v in enumerate(p):
        put_word(want, DATA_BASE // WORD_BYTES + i, v)
    rtl_dma(ARCH, run)
    assert len(run.errors) == 1
    np.testing.assert_array_equal(run.sram, want)


def test_read_request_outside_sram_answers_error():
    h = dict(
        kind=int(Kind.READ_REQ),
        len=4,
        addr=ARCH.sram_bytes - 32,
        src_x=REQUESTER[0],
        src_y=REQUESTER[1],
        ret_addr=0x40,
        signal=1,
        sem=3,
        count=1,
    )
    run = make_run(44, in_req=[packet_flits(h, [])])
    rtl_dma(ARCH, run)
    assert len(run.errors) == 1
    ((gh, gp),) = resp_packets(run)
    assert (gh["kind"], gh["addr"], gh["len"], gp) == (Kind.ERROR, h["addr"], 0, [])
    assert (gh["x0"], gh["y0"]) == REQUESTER


@pytest.mark.parametrize("mode", [SignalMode.NODE, SignalMode.RECT, SignalMode.SELF])
def test_signal_commands(mode):
    """SIGNAL commands become single-flit packets; SELF is not the DMA's job: error."""
    sigs = [dict(mode=int(mode), target=pack_rect(1, 1, 1, 1), sem=5, count=3)]
    run = make_run(45, sigs=sigs)
    rtl_dma(ARCH, run)
    if mode == SignalMode.SELF:
        assert len(run.errors) == 1 and run.out_packets == []
        return
    assert run.errors == []
    ((name, h, p),) = run.out_packets
    assert (name, h["kind"], h["sem"], h["count"], p) == ("out_req", Kind.SIGNAL, 5, 3, [])
    assert (h["x0"], h["y0"], h["src_x"], h["src_y"]) == (1, 1) + SELF_XY
    want_rect = (1, 1) if mode == SignalMode.RECT else (0, 0)
    assert (h["route"], h["x1"], h["y1"]) == (int(mode == SignalMode.RECT), *want_rect)


def _span(cycles: list[int]) -> int:
    return cycles[-1] - cycles[0] + 1


@pytest.mark.parametrize("shape", [(256, 1), (64, 4)])
def test_write_throughput(shape):
    """A long write DMA at full network acceptance: flits per cycle on out_req."""
    c0, c1 = shape
    dram = RemoteMemory(dram_node(ARCH), size=1 << 16, latency=ARCH.dram_latency)
    desc = dict(
        local=DATA_BASE,
        remote=0,
        count0=c0,
        count1=c1,
        lstride1=c0 * 16,
        rstride1=c0 * 16,
        mode=int(SignalMode.NODE),
        x0=dram.xy[0],
        y0=dram.xy[1],
    )
    run = make_run(46, remote=dram, p_ready=1.0, p_sram=1.0)
    run.descs = load_descs(run.sram, [desc])
    rtl_dma(ARCH, run)
    words = c0 * c1
    packets = c1 * -(-c0 // ARCH.max_packet_flits)
    span = _span(run.out_req_flit_cycles)
    print(
        f"write DMA {c1}x{c0} words: {len(run.out_req_flit_cycles)} flits in {span} cycles, "
        f"{words / span:.3f} payload flits/cycle, total {run.cycles} cycles"
    )
    assert len(run.out_req_flit_cycles) == words + packets
    assert span == words + packets  # no bubble anywhere: heads are the only overhead
    for i in range(c1):
        s = DATA_BASE + i * c0 * 16
        np.testing.assert_array_equal(
            dram.mem[s - DATA_BASE : s - DATA_BASE + c0 * 16], run.sram[s : s + c0 * 16]
        )


def test_inbound_write_throughput():
    n_pkts, n = 8, ARCH.max_packet_flits
    pkts = [_write(DATA_BASE + i * n * 16, n) for i in range(n_pkts)]
    run = make_run(47, in_req=[packet_flits(h, p) for h, p in pkts], p_ready=1.0, p_sram=1.0)
    rtl_dma(ARCH, run)
    span = _span(run.in_req_flit_cycles)
    flits = n_pkts * (n + 1)
    print(f"inbound WRITE: {flits} flits in {span} cycles")
    assert len(run.in_req_flit_cycles) == flits and span == flits


def test_read_throughput():
    """A long read from DRAM: requests go out back to back, responses sink at full rate."""
    words = 256
    dram = RemoteMemory(dram_node(ARCH), size=1 << 16, latency=ARCH.dram_latency)
    dram.mem[:] = np.random.default_rng(48).integers(0, 256, len(dram.mem), dtype=np.uint8)
    desc = dict(
        local=DATA_BASE,
        remote=0,
        count0=words,
        mode=int(SignalMode.NODE),
        x0=dram.xy[0],
        y0=dram.xy[1],
        read=1,
        sem=6,
    )
    run = make_run(48, remote=dram, p_ready=1.0, p_sram=1.0)
    run.descs = load_descs(run.sram, [desc])
    rtl_dma(ARCH, run)
    print(f"read DMA {words} words from DRAM (latency {ARCH.dram_latency}): {run.cycles} cycles")
    assert run.sem_incs == [(6, 1)]
    np.testing.assert_array_equal(
        run.sram[DATA_BASE : DATA_BASE + words * 16], dram.mem[: words * 16]
    )


def test_responses_and_inbound_writes_drain_while_out_req_is_blocked():
    """Message-class independence: with out_req stuck behind a long write DMA, inbound
    READ_RESP (in_resp), WRITE (in_req) and READ_REQ (answered on out_resp) still finish."""
    block = 1500
    desc = dict(
        local=DATA_BASE,
        remote=DATA_BASE + 0x2000,
        count0=64,
        count1=2,
        lstride1=64 * 16,
        rstride1=64 * 16,
        mode=int(SignalMode.NODE),
        x0=1,
        y0=0,
    )
    resp_h = dict(
        kind=int(Kind.READ_RESP), len=4, addr=DATA_BASE + 0x4000, signal=1, sem=8, count=1
    )
    wr_h, wr_p = _write(DATA_BASE + 0x5000, 6, signal=1, sem=9, count=1)
    rd_h = dict(
        kind=int(Kind.READ_REQ),
        len=3,
        addr=DATA_BASE,
        src_x=REQUESTER[0],
        src_y=REQUESTER[1],
        ret_addr=0x80,
    )
    run = make_run(49, block_out_req=block)
    run.descs = load_descs(run.sram, [desc])
    run.in_resp = [packet_flits(resp_h, [11, 12, 13, 14])] * 3
    run.in_req = [packet_flits(wr_h, wr_p), packet_flits(rd_h, [])] * 3
    rtl_dma(ARCH, run)
    assert run.errors == []
    assert Counter(run.sem_incs) == Counter({(8, 1): 3, (9, 1): 3})
    assert max(run.sem_inc_cycles) < block
    assert len(resp_packets(run)) == 3
    assert min(c for c in run.out_req_flit_cycles) >= block


def test_overlong_write_drops_the_excess_once():
    h, p = _write(DATA_BASE, 2, signal=1, sem=1, count=1)
    good_h, good_p = _write(DATA_BASE + 0x100, 1)
    run = make_run(50, in_req=[packet_flits(h, p + [77, 78, 79]), packet_flits(good_h, good_p)])
    want = run.sram.copy()
    for a, v in [(DATA_BASE, 1), (DATA_BASE + 16, 2), (DATA_BASE + 0x100, 1)]:
        put_word(want, a // WORD_BYTES, v)
    rtl_dma(ARCH, run)
    assert len(run.errors) == 1 and run.sem_incs == []
    np.testing.assert_array_equal(run.sram, want)
