"""DmaEngine against a numpy model of docs/isa.md "DMA and semaphores" (loopback, remote).

The error cases, inbound handling and throughput live in test_dma_inbound.py.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from amaranth.back import verilog
from dma_harness import DATA_BASE, RemoteMemory, Run, load_descs, packet_flits, rtl_dma
from test_dma_inbound import REQUESTER, random_inbound, ref_inbound

from hw.arch import preset
from hw.isa import WORD_BYTES, Kind, SignalMode, dram_node
from hw.pe.dma import DmaEngine

ARCH = preset("tiny")
SELF_XY = (1, 0)


def ref_dma(local: np.ndarray, remote: dict, descs: list[dict], self_xy) -> Counter:
    """Apply ``descs`` in order to ``local`` and the remote memories (keyed by (x, y)).

    Returns the expected local semaphore increments as a Counter of (sem, count).
    """
    incs = Counter()

    def mem_of(xy):
        return local if tuple(xy) == tuple(self_xy) else remote[tuple(xy)]

    for d in descs:
        mode = SignalMode(d["mode"])
        nodes = [(d["x0"], d["y0"])]
        if mode == SignalMode.RECT:
            nodes = [
                (x, y) for x in range(d["x0"], d["x1"] + 1) for y in range(d["y0"], d["y1"] + 1)
            ]
        n = d["count0"] * WORD_BYTES
        for i2 in range(d["count2"]):
            for i1 in range(d["count1"]):
                lo = d["local"] + i1 * d["lstride1"] + i2 * d["lstride2"]
                ro = d["remote"] + i1 * d["rstride1"] + i2 * d["rstride2"]
                if mode == SignalMode.SELF:
                    s, t = (ro, lo) if d["read"] else (lo, ro)
                    local[t : t + n] = local[s : s + n]
                elif d["read"]:
                    local[lo : lo + n] = mem_of(nodes[0])[ro : ro + n]
                else:
                    for xy in nodes:
                        mem_of(xy)[ro : ro + n] = local[lo : lo + n]
        if d["read"] or (d["signal"] and (mode == SignalMode.SELF or self_xy in nodes)):
            incs[(d["sem"], 1)] += 1
    return incs


class Regions:
    """Bump allocator of disjoint 16-aligned regions with random gaps."""

    def __init__(self, rng, start: int, end: int):
        self.rng, self.next, self.end = rng, start, end

    def strided(self, c0: int, c1: int, c2: int) -> tuple[int, int, int]:
        """(base, stride1, stride2) of a c2 x c1 x c0-word block; strides may be negative."""
        s1 = (c0 + int(self.rng.integers(0, 3))) * WORD_BYTES
        s2 = c1 * s1 + int(self.rng.integers(0, 3)) * WORD_BYTES
        size = c2 * s2
        start = self.next
        self.next += size + WORD_BYTES
        assert self.next <= self.end, "test regions do not fit the SRAM"
        base = start
        if self.rng.random() < 0.3:  # rows walk downwards
            base, s1 = base + (c1 - 1) * s1, -s1
        if self.rng.random() < 0.3:  # planes walk downwards
            base, s2 = base + (c2 - 1) * s2, -s2
        return base, s1, s2


def random_desc(
    rng,
    regions: Regions,
    remote_regions: Regions | None,
    mode,
    read,
    signal,
    target,
    counts: tuple[int, int, int] | None = None,
) -> dict:
    c0, c1, c2 = counts or (
        int(rng.integers(1, 21)),
        int(rng.integers(1, 4)),
        int(rng.integers(1, 4)),
    )
    local, ls1, ls2 = regions.strided(c0, c1, c2)
    remote, rs1, rs2 = (remote_regions or regions).strided(c0, c1, c2)
    return dict(
        local=local,
        remote=remote,
        count0=c0,
        count1=c1,
        count2=c2,
        lstride1=ls1,
        lstride2=ls2,
        rstride1=rs1,
        rstride2=rs2,
        mode=int(mode),
        x0=target[0],
        y0=target[1],
        x1=target[0],
        y1=target[1],
        sem=int(rng.integers(0, 16)),
        read=read,
        signal=signal,
    )


def fill_random(rng, mem: np.ndarray, start: int) -> None:
    mem[start:] = rng.integers(0, 256, size=len(mem) - start, dtype=np.uint8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_loopback_random(seed):
    """SELF copies, NODE writes to this node with signal, reads from this node."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    sram = np.zeros(ARCH.sram_bytes, dtype=np.uint8)
    fill_random(rng, sram, DATA_BASE)
    regions = Regions(rng, DATA_BASE, ARCH.sram_bytes)
    kinds = [
        (SignalMode.SELF, 0, 0),
        (SignalMode.SELF, 1, 0),
        (SignalMode.SELF, 0, 1),
        (SignalMode.NODE, 0, 1),
        (SignalMode.NODE, 0, 0),
        (SignalMode.NODE, 1, 0),
    ]
    descs = [random_desc(rng, regions, None, m, r, s, SELF_XY) for m, r, s in kinds]
    order = rng.permutation(len(descs))
    descs = [descs[i] for i in order]
    addrs = load_descs(sram, descs)
    run = Run(sram=sram.copy(), seed=seed, coords=SELF_XY, descs=addrs)
    want = sram.copy()
    incs = ref_dma(want, {}, descs, SELF_XY)
    rtl_dma(ARCH, run)
    print(f"cycles={run.cycles}")
    assert run.errors == []
    assert Counter(run.sem_incs) == incs
    np.testing.assert_array_equal(run.sram, want)


@pytest.mark.parametrize("seed", [11, 12])
def test_remote_memory(seed):
    """Reads from and writes to a DRAM-like endpoint; RECT writes; remote signals."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    dram_xy = dram_node(ARCH)
    remote = RemoteMemory(dram_xy, size=1 << 16, latency=ARCH.dram_latency)
    fill_random(rng, remote.mem, 0)
    sram = np.zeros(ARCH.sram_bytes, dtype=np.uint8)
    fill_random(rng, sram, DATA_BASE)
    local_regions = Regions(rng, DATA_BASE, ARCH.sram_bytes)
    remote_regions = Regions(rng, 0, len(remote.mem))
    descs = [
        random_desc(rng, local_regions, remote_regions, SignalMode.NODE, r, s, dram_xy)
        for r, s in [(1, 0), (0, 1), (1, 1), (0, 0), (1, 0)]
    ]
    # A rectangle that holds this node and one other (recorded, not modelled).
    rect = random_desc(rng, local_regions, None, SignalMode.RECT, 0, 1, SELF_XY)
    rect.update(x0=0, y0=0, x1=1, y1=0)
    descs.append(rect)
    addrs = load_descs(sram, descs)
    run = Run(
        sram=sram.copy(), seed=seed, coords=SELF_XY, descs=addrs, remote=remote, max_cycles=40000
    )
    want_local, want_remote = sram.copy(), remote.mem.copy()
    other = np.zeros_like(sram)
    incs = ref_dma(want_local, {dram_xy: want_remote, (0, 0): other}, descs, SELF_XY)
    rtl_dma(ARCH, run)
    print(f"cycles={run.cycles}")
    assert run.errors == []
    assert Counter(run.sem_incs) == incs
    np.testing.assert_array_equal(run.sram, want_local)
    np.testing.assert_array_equal(remote.mem, want_remote)
    want_signals = [(d["sem"], 1) for d in descs[:5] if d["signal"] and not d["read"]]
    assert remote.signals == want_signals
    rect_heads = [h for s, h, _ in run.out_packets if s == "out_req" and h["route"] == 1]
    assert rect_heads and all(
        (h["x0"], h["y0"], h["x1"], h["y1"]) == (0, 0, 1, 0) for h in rect_heads
    )


def test_queue_fills_back_to_back():
    """While out_req is blocked, exactly dma_queue + 1 descriptors are taken.

    Each descriptor needs two packets, so the active one is still in the executor
    (its first packet waits in the packetizer) and dma_queue more fill the queue.
    """
    seed = 21
    rng = np.random.default_rng(seed)
    sram = np.zeros(ARCH.sram_bytes, dtype=np.uint8)
    fill_random(rng, sram, DATA_BASE)
    regions = Regions(rng, DATA_BASE, ARCH.sram_bytes)
    descs = []
    for _ in range(ARCH.dma_queue + 4):
        descs.append(
            random_desc(
                rng,
                regions,
                None,
                SignalMode.NODE,
                0,
                1,
                SELF_XY,
                counts=(ARCH.max_packet_flits + 1, 1, 1),
            )
        )
    block = 400
    addrs = load_descs(sram, descs)
    run = Run(
        sram=sram.copy(),
        seed=seed,
        coords=SELF_XY,
        descs=addrs,
        block_out_req=block,
        p_ready=1.0,
        p_sram=1.0,
    )
    want = sram.copy()
    incs = ref_dma(want, {}, descs, SELF_XY)
    rtl_dma(ARCH, run)
    taken_early = sum(c < block for c in run.cmd_accepts)
    print(f"accept cycles={run.cmd_accepts}")
    assert taken_early == ARCH.dma_queue + 1
    assert len(run.cmd_accepts) == len(descs)
    assert Counter(run.sem_incs) == incs
    np.testing.assert_array_equal(run.sram, want)


def test_verilog_and_arguments():
    for name in ("tiny", "small"):
        text = verilog.convert(DmaEngine(preset(name)), name="dma")
        assert "module dma" in text
    with pytest.raises(TypeError, match="arch must be an ArchConfig"):
        DmaEngine("tiny")


def _mixed(seed: int, p_ready: float, p_sram: float, arch=ARCH) -> None:
    """Loopback descriptors, inbound requests and SIGNAL commands all at once."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed} p_ready={p_ready} p_sram={p_sram}")
    sram = np.zeros(arch.sram_bytes, dtype=np.uint8)
    fill_random(rng, sram, DATA_BASE)
    inbound_base = arch.sram_bytes - 0x800  # inbound traffic stays in the top 2 KiB
    regions = Regions(rng, DATA_BASE, inbound_base)
    kinds = [
        (SignalMode.SELF, int(rng.integers(0, 2)), int(rng.integers(0, 2))),
        (SignalMode.NODE, 0, 1),
        (SignalMode.NODE, 1, 0),
        (SignalMode.NODE, 0, 0),
    ]
    descs = [random_desc(rng, regions, None, m, r, s, SELF_XY) for m, r, s in kinds]
    pkts = random_inbound(rng, 12, base=inbound_base)
    for h, _ in pkts:
        h.update(x0=SELF_XY[0], y0=SELF_XY[1])
    sigs = [
        dict(mode=int(SignalMode.NODE), target=REQUESTER[0] | REQUESTER[1] << 8, sem=1, count=2)
    ] * 3
    addrs = load_descs(sram, descs)
    run = Run(
        sram=sram.copy(),
        seed=seed,
        coords=SELF_XY,
        descs=addrs,
        sigs=sigs,
        in_req=[packet_flits(h, p) for h, p in pkts],
        p_ready=p_ready,
        p_sram=p_sram,
        max_cycles=60000,
    )
    want = sram.copy()
    incs = ref_dma(want, {}, descs, SELF_XY)
    resps, in_incs, _ = ref_inbound(want, pkts, SELF_XY)
    rtl_dma(arch, run)
    print(f"cycles={run.cycles}")
    assert run.errors == []
    assert Counter(run.sem_incs) == incs + in_incs
    np.testing.assert_array_equal(run.sram, want)
    got = [
        (h, p) for s, h, p in run.out_packets if s == "out_resp" and (h["x0"], h["y0"]) == REQUESTER
    ]
    assert [p for _, p in got] == [p for _, p in resps]
    signals = [h for s, h, _ in run.out_packets if s == "out_req" and h["kind"] == Kind.SIGNAL]
    assert len(signals) == 3


@pytest.mark.parametrize("seed,p_ready,p_sram", [(61, 0.5, 0.6), (62, 0.9, 0.9)])
def test_mixed_traffic(seed, p_ready, p_sram):
    _mixed(seed, p_ready, p_sram)


def test_mixed_traffic_other_arch():
    """Short packets, a one-entry queue, 32 semaphores."""
    _mixed(63, 0.7, 0.8, ARCH.replace(max_packet_flits=4, dma_queue=1, semaphores=32))


@pytest.mark.extended
@pytest.mark.parametrize("seed", range(100, 120))
def test_mixed_traffic_many_seeds(seed):
    rng = np.random.default_rng(seed)
    _mixed(seed, float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.3, 1.0)))
