"""Multicast reads (docs/isa.md, "Multicast reads": a DMA read with mode RECT) in the
reference simulator (sim/network.py ChipSim) and the performance model (sim/perf.py).

The functional cases run on both (the model executes through the reference PEs); the
expected receivers and bytes are computed here from docs/isa.md, independently of
``sim.network.mcast_rect``.  Random data from fixed, printed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.arch import preset
from hw.asm import assemble
from hw.errors import SimulationError
from hw.image import ProgramImage
from hw.isa import Op, PeError, SignalMode, decode, dram_node, encode, encode_desc, pack_node
from sim.footprint import footprint
from sim.network import ChipSim, StandInNetwork
from sim.pe_sim import PeSim
from sim.perf import PerfSim
from sim.perf_dma import fork_hold

TINY, SMALL = preset("tiny"), preset("small")
MB = 1 << 20
DESC_AT = 0x7000
LOCAL = 0x1000
SEED = 2024
SIMS = {"chipsim": ChipSim, "perf": PerfSim}


def img(text: str, sram=(), dram=()) -> ProgramImage:
    return ProgramImage(assemble(text), sram=list(sram), dram=list(dram))


def mcast_desc(node, far, *, local=LOCAL, remote=0, count0=4, count1=1, lstride1=0,
               rstride1=0, sem=1) -> bytes:  # fmt: skip
    return encode_desc(
        local=local, remote=remote, count0=count0, count1=count1, lstride1=lstride1,
        rstride1=rstride1, mode=int(SignalMode.RECT), read=1, x0=node[0], y0=node[1],
        x1=far[0], y1=far[1], sem=sem,
    )  # fmt: skip


def expected_receivers(arch, requester, far) -> set[tuple[int, int]]:
    """docs/isa.md: the rectangle spanned by the requester and the far corner,
    clipped to the mesh."""
    (rx, ry), (fx, fy) = requester, far
    xs = [x for x in range(min(rx, fx), max(rx, fx) + 1) if x < arch.mesh_cols]
    ys = [y for y in range(min(ry, fy), max(ry, fy) + 1) if y < arch.mesh_rows]
    return {(x, y) for x in xs for y in ys}


def every_pe(arch):
    return [(x, y) for y in range(arch.mesh_rows) for x in range(arch.mesh_cols)]


def run(sim_cls, arch, images: dict, check: bool = True):
    """Load ``images`` (every other PE runs ``halt``), run; returns (sim, result, pes)."""
    sim = sim_cls(arch, dram_bytes=MB)
    for c in every_pe(arch):
        sim.load(c, images.get(c, img("halt")))
    res = sim.run(check=check)
    if isinstance(sim, ChipSim):
        return sim, res, sim.pes
    net = sim.chips[(0, 0)][0]
    return sim, res, {c: net.endpoints[c] for c in every_pe(arch)}


def dram_nodes(arch):
    return {dram_node(arch, p) for p in range(arch.dram_ports)}


def strided_case(rng, arch, requester, node, far, *, count0=3, count1=4):
    """A multicast read of count1 rows of count0 words from ``node`` (remote rows
    back to back, local rows 32 bytes apart); returns (images, the bytes expected
    from LOCAL at every receiver)."""
    row = 16 * count0
    data = rng.integers(0, 256, row * count1, dtype=np.uint8).tobytes()
    lstride = row + 32
    want = bytearray(lstride * count1)
    for i in range(count1):
        want[i * lstride : i * lstride + row] = data[i * row : (i + 1) * row]
    from_dram = node in dram_nodes(arch)
    remote = 0x200 if from_dram else 0x3000
    desc = mcast_desc(node, far, remote=remote, count0=count0, count1=count1,
                      lstride1=lstride, rstride1=row)  # fmt: skip
    progs = {c: ["wait sem=1, count=1\nhalt", [], []]
             for c in expected_receivers(arch, requester, far)}  # fmt: skip
    progs[requester] = [
        f"li x1, {DESC_AT}\ndma x1, 0\nwait sem=1, count=1\nhalt",
        [(DESC_AT, desc)],
        [(remote, data)] if from_dram else [],
    ]
    if not from_dram:  # the answering PE holds the rows in its SRAM
        progs.setdefault(node, ["halt", [], []])[1].append((remote, data))
    return {c: img(*p) for c, p in progs.items()}, bytes(want)


def check_delivery(arch, pes, requester, far, want):
    """Every receiver holds ``want`` at LOCAL and took its one increment; every
    other PE has neither data there nor a semaphore count."""
    receivers = expected_receivers(arch, requester, far)
    assert requester in receivers
    for c in every_pe(arch):
        pe = pes[c]
        assert not pe.error, (c, pe.error_msg)
        got = pe.read_sram(LOCAL, len(want))
        if c in receivers:
            assert got == want, f"receiver {c} does not hold the data"
        else:
            assert not any(got), f"PE {c} outside the rectangle was written"
        assert not any(pe.sems), f"PE {c}: semaphores {pe.sems}"


CASES = [
    # arch, requester, far corner, answerer ("dram" or a PE)
    ("tiny", (0, 0), (1, 1), "dram"),  # the whole grid
    ("small", (0, 0), (3, 3), "dram"),  # the whole grid
    ("small", (1, 1), (2, 1), "dram"),  # a 1 x 2 rectangle (one row)
    ("tiny", (0, 1), (0, 0), "dram"),  # a 1 x 2 rectangle (one column)
    ("tiny", (1, 1), (0, 0), "dram"),  # from the opposite corner
    ("small", (3, 2), (1, 0), "dram"),  # 3 x 3, far corner north-west
    ("small", (2, 2), (255, 255), "dram"),  # clipped to (2, 2)..(3, 3)
    ("small", (1, 2), (1, 2), "dram"),  # the requester alone
    ("small", (2, 1), (3, 2), (0, 3)),  # PE to PE, the answerer outside
    ("small", (0, 0), (1, 1), (1, 0)),  # the answerer is a receiver too
    ("tiny", (1, 0), (0, 1), (1, 0)),  # the requester reads itself to the grid
]


@pytest.mark.parametrize("sim_name", SIMS)
@pytest.mark.parametrize("name, requester, far, answerer", CASES)
def test_every_receiver_holds_the_data(sim_name, name, requester, far, answerer):
    arch = preset(name)
    seed = SEED + CASES.index((name, requester, far, answerer))
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    node = dram_node(arch, 0) if answerer == "dram" else answerer
    images, want = strided_case(rng, arch, requester, node, far)
    _, res, pes = run(SIMS[sim_name], arch, images)
    statuses = res.status if sim_name == "perf" else {c: r.status for c, r in res.items()}
    assert set(statuses.values()) == {"halted"}
    check_delivery(arch, pes, requester, far, want)


def test_model_memories_equal_chipsim():
    """Several multicast reads in flight from several requesters: the model's final
    memories are ChipSim's."""
    arch = SMALL
    seed = SEED + 100
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 0x4000, dtype=np.uint8).tobytes()
    dx, dy = dram_node(arch, 0)
    images = {}
    for i, (req, far) in enumerate([((0, 0), (1, 3)), ((3, 3), (2, 0))]):
        descs = [
            mcast_desc((dx, dy), far, local=0x1000 + 0x800 * k, remote=0x1000 * (2 * i + k),
                       count0=32, count1=2, lstride1=0x400, rstride1=0x200)
            for k in range(2)
        ]  # fmt: skip
        text = "".join(f"li x1, {DESC_AT + 48 * k}\ndma x1, 0\n" for k in range(2))
        images[req] = img(text + "wait sem=1, count=2\nhalt",
                          sram=[(DESC_AT + 48 * k, d) for k, d in enumerate(descs)],
                          dram=[(0, data)] if i == 0 else ())  # fmt: skip
        for c in expected_receivers(arch, req, far) - {req}:
            images[c] = img("wait sem=1, count=2\nhalt")
    _, _, ref = run(ChipSim, arch, images)
    _, res, model = run(PerfSim, arch, images)
    assert set(res.status.values()) == {"halted"}
    for c in every_pe(arch):
        assert model[c].state() == ref[c].state(), c
    assert ref[(0, 3)].read_sram(0x1000, 32 * 16) == data[:0x200]


def test_standin_single_pe():
    """On the one-PE stand-in a multicast read to the requester alone is a read; a
    rectangle with other PEs is refused (DMA fault, nothing moves)."""
    arch = TINY
    seed = SEED + 200
    print(f"seed {seed}")
    data = np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8).tobytes()
    node = dram_node(arch, 0)
    text = f"li x1, {DESC_AT}\ndma x1, 0\nwait sem=1, count=1\nhalt"
    alone = img(text, sram=[(DESC_AT, mcast_desc(node, (0, 0)))], dram=[(0, data)])
    pe = PeSim(arch, (0, 0), StandInNetwork(arch, MB))
    pe.load(alone)
    assert pe.run().halted and pe.read_sram(LOCAL, 64) == data
    model = PerfSim(arch, standin=True, dram_bytes=MB)
    model.load((0, 0), alone)
    res = model.run()
    assert model.chips[(0, 0)][0].endpoints[(0, 0)].read_sram(LOCAL, 64) == data
    assert res.cycles > arch.dram_latency
    wide = img(text, sram=[(DESC_AT, mcast_desc(node, (1, 0)))], dram=[(0, data)])
    pe = PeSim(arch, (0, 0), StandInNetwork(arch, MB))
    pe.load(wide)
    r = pe.run()
    assert (r.error, r.error_pc) == (PeError.DMA, 1) and not pe.read_sram(LOCAL, 64).strip(b"\0")


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("sim_name", SIMS)
@pytest.mark.parametrize(
    "fields, why",
    [
        (dict(local=SMALL.sram_bytes - 16, count0=2), "local rows outside SRAM"),
        (dict(remote=MB - 16, count0=2), "DRAM refuses the range"),
        (dict(x0=9, y0=9), "the answerer is no node"),
        (dict(sem=SMALL.semaphores), "semaphore out of range"),
    ],
)
def test_faults_at_the_requester(sim_name, fields, why):
    """A refused multicast read faults the requester (DMA, at the DMA's pc) and
    nothing lands anywhere: the ERROR answer goes to the requester only."""
    arch = SMALL
    dx, dy = dram_node(arch, 0)
    f = dict(local=LOCAL, remote=0, count0=4, mode=int(SignalMode.RECT), read=1,
             x0=dx, y0=dy, x1=3, y1=3, sem=1)  # fmt: skip
    f.update(fields)
    text = f"li x1, {DESC_AT}\ndma x1, 0\nhalt"
    images = {(1, 1): img(text, sram=[(DESC_AT, encode_desc(**f))], dram=[(0, b"\xff" * 256)])}
    with pytest.raises(SimulationError, match=r"PE \((0, 0, )?1, 1\) stopped with error DMA"):
        run(SIMS[sim_name], arch, images)
    _, res, pes = run(SIMS[sim_name], arch, images, check=False)
    status = res.status if sim_name == "perf" else {c: r.status for c, r in res.items()}
    key = (0, 0, 1, 1) if sim_name == "perf" else (1, 1)
    assert status[key] == "error", why
    assert (pes[(1, 1)].error, pes[(1, 1)].error_pc) == (PeError.DMA, 1)
    for c in every_pe(arch):
        assert not pes[c].read_sram(LOCAL, 64).strip(b"\0") and not any(pes[c].sems), c
        assert c == (1, 1) or not pes[c].error


def test_receiver_checks_its_local_range():
    """docs/isa.md: each receiver checks the local range of every answer it gets.
    With one SRAM size for every PE the requester's descriptor check fires first,
    so the receivers' own check is driven through the network: each faults itself
    (DMA, as for any inbound write outside its SRAM), none is signalled, and the
    PEs outside the rectangle are untouched."""
    arch = TINY
    chip = ChipSim(arch, dram_bytes=MB)
    for c in every_pe(arch):
        chip.load(c, img("halt"))
    node = dram_node(arch, 0)
    chip.network.dram(0).load(0, bytes(range(32)))
    bad = np.array([arch.sram_bytes - 16], dtype=np.int64)
    chip.network.read_multicast(node, (0, 0, 1, 0), np.array([0]), bad, 32, 1)
    for c, pe in chip.pes.items():
        if c[1] == 0:
            assert pe.error == PeError.DMA and "outside SRAM" in pe.error_msg, c
        else:
            assert not pe.error, c
        assert not any(pe.sems) and not pe.sram.any(), c


@pytest.mark.parametrize("sim_name", SIMS)
def test_sem_overflow_at_a_receiver(sim_name):
    """A receiver whose semaphore would pass sem_max faults itself (SEM_OVERFLOW);
    the requester completes."""
    arch = TINY
    node = dram_node(arch, 0)
    images = {
        (0, 0): img(f"wait sem=3, count=1\nli x1, {DESC_AT}\ndma x1, 0\n"
                    f"wait sem=1, count=1\nhalt", sram=[(DESC_AT, mcast_desc(node, (1, 0)))]),
        (1, 0): img(f"signal sem=1, count={arch.sem_max}\nli x2, {pack_node(0, 0)}\n"
                    f"signal x2, sem=3, mode=node, count=1\nwait sem=2, count=1\nhalt"),
    }  # fmt: skip
    _, _, pes = run(SIMS[sim_name], arch, images, check=False)
    assert pes[(0, 0)].halted and not pes[(0, 0)].error
    assert pes[(1, 0)].error == PeError.SEM_OVERFLOW and pes[(1, 0)].sems[1] == arch.sem_max


def test_requester_footprint_is_its_local_rows():
    """sim/footprint.py: the requester's footprint writes its local rows (reads the
    remote rows only when it is the answerer itself)."""
    arch = SMALL
    ins = decode(encode(Op.DMA, rs1=1, imm=0))
    regs = [0, DESC_AT] + [0] * 14
    d = mcast_desc(dram_node(arch, 0), (3, 3), count0=2, count1=2, lstride1=0x100,
                   rstride1=0x40, remote=0x2000)  # fmt: skip
    fp = footprint(ins, regs.__getitem__, arch, d, (1, 1))
    assert fp.writes == [(LOCAL, LOCAL + 32), (LOCAL + 0x100, LOCAL + 0x120)]
    assert fp.reads == [(DESC_AT, DESC_AT + 48)]
    d = mcast_desc((1, 1), (3, 3), count0=2, remote=0x2000)
    fp = footprint(ins, regs.__getitem__, arch, d, (1, 1))
    assert fp.reads == [(0x2000, 0x2020), (DESC_AT, DESC_AT + 48)]


# -- the performance model -------------------------------------------------------------


def whole_grid_read(arch, nbytes: int, data: bytes):
    """(0, 0) reads ``nbytes`` (``data``) from DRAM to every PE of the grid."""
    far = (arch.mesh_cols - 1, arch.mesh_rows - 1)
    desc = mcast_desc(dram_node(arch, 0), far, count0=nbytes // 16)
    images = {c: img("wait sem=1, count=1\nhalt") for c in every_pe(arch)}
    images[(0, 0)] = img(
        f"li x1, {DESC_AT}\ndma x1, 0\nwait sem=1, count=1\nhalt",
        sram=[(DESC_AT, desc)],
        dram=[(0, data)],
    )
    return images


def read_then_rect_writes(arch, nbytes: int, data: bytes):
    """The same bytes read by (0, 0), then multicast by RECT writes with signal to
    the rest of the grid (two rectangles: a multicast never includes its sender)."""
    node, words = dram_node(arch, 0), nbytes // 16
    cols, rows = arch.mesh_cols, arch.mesh_rows
    descs = [
        encode_desc(local=LOCAL, remote=0, count0=words, mode=int(SignalMode.NODE),
                    x0=node[0], y0=node[1], sem=2, read=1),
        encode_desc(local=LOCAL, remote=LOCAL, count0=words, mode=int(SignalMode.RECT),
                    x0=1, y0=0, x1=cols - 1, y1=rows - 1, sem=1, signal=1),
        encode_desc(local=LOCAL, remote=LOCAL, count0=words, mode=int(SignalMode.RECT),
                    x0=0, y0=1, x1=0, y1=rows - 1, sem=1, signal=1),
    ]  # fmt: skip
    text = f"li x1, {DESC_AT}\ndma x1, 0\nwait sem=2, count=1\ndma x1, 48\ndma x1, 96\nhalt"
    images = {c: img("wait sem=1, count=1\nhalt") for c in every_pe(arch)}
    sram = [(DESC_AT + 48 * i, d) for i, d in enumerate(descs)]
    images[(0, 0)] = img(text, sram=sram, dram=[(0, data)])
    return images


def test_perf_multicast_read_rate_and_arrivals():
    """8 KiB to the 16 PEs of `small` in rect_payload_flits-word packets: about
    N / (16 * p / (p + 1)) cycles plus the DRAM latency and the tree's hops; each
    receiver's semaphore increments at its own arrival, 2 cycles per hop further
    from the DRAM port's router (3, 0)."""
    arch, nbytes = SMALL, 8192
    p = arch.rect_payload_flits
    stream = nbytes * (p + 1) // (16 * p)  # 640 flits
    _, res, _ = run(PerfSim, arch, whole_grid_read(arch, nbytes, bytes(nbytes)))
    cycles = {k[2:]: v["cycles"] for k, v in res.per_pe.items()}
    print(f"8 KiB multicast read to 16 PEs: {res.cycles} cycles (stream {stream})")
    assert stream + arch.dram_latency <= res.cycles <= stream + arch.dram_latency + 60
    first = cycles[(arch.mesh_cols - 1, 0)]
    for (x, y), t in cycles.items():
        assert t - first == 2 * (arch.mesh_cols - 1 - x + y), (x, y)
    assert res.dram_bytes == nbytes


def test_perf_multicast_read_beats_read_then_rect_writes():
    arch, nbytes = SMALL, 8192
    seed = SEED + 300
    print(f"seed {seed}")
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    _, mcast, pes = run(PerfSim, arch, whole_grid_read(arch, nbytes, data))
    assert all(pe.read_sram(LOCAL, nbytes) == data for pe in pes.values())
    _, relay, pes = run(PerfSim, arch, read_then_rect_writes(arch, nbytes, data))
    assert all(pe.read_sram(LOCAL, nbytes) == data for pe in pes.values())
    print(f"8 KiB to 16 PEs: multicast read {mcast.cycles}, read + RECT writes {relay.cycles}")
    assert mcast.cycles < relay.cycles
    assert relay.cycles - mcast.cycles > nbytes // 16  # at least the read's words


def test_perf_forked_answers_hold_the_tree():
    """On `tiny` (4-flit router buffers) a packet forking to >= 2 PEs holds its tree
    fork_hold cycles (sim/perf_dma.py); answering the requester alone does not fork."""
    arch, words = TINY, 96
    node = dram_node(arch, 0)
    p = arch.rect_payload_flits

    def only(far):
        desc = mcast_desc(node, far, count0=words)
        text = f"li x1, {DESC_AT}\ndma x1, 0\nwait sem=1, count=1\nhalt"
        others = expected_receivers(arch, (0, 0), far) - {(0, 0)}
        images = {c: img("wait sem=1, count=1\nhalt") for c in others}
        images[(0, 0)] = img(text, sram=[(DESC_AT, desc)])
        return run(PerfSim, arch, images)[1].per_pe[(0, 0, 0, 0)]["cycles"]

    alone, pair = only((0, 0)), only((0, 1))
    hold = fork_hold(arch, [p] * (words // p) + ([words % p] if words % p else []))
    flits = words + -(-words // p)
    print(f"tiny, {words} words: requester alone {alone}, 2 receivers {pair}, hold {hold}")
    assert pair - alone == hold - flits


def test_perf_pe_answerer():
    """PE to PE: the answer leaves the answering PE's injection link and forks to a
    2 x 2 rectangle: about its flits plus the hops, no DRAM latency."""
    arch = SMALL
    words = 128
    flits = words + words // arch.rect_payload_flits
    images = {
        (2, 1): img(
            f"li x1, {DESC_AT}\ndma x1, 0\nwait sem=1, count=1\nhalt",
            sram=[(DESC_AT, mcast_desc((0, 3), (3, 2), count0=words, remote=0x3000))],
        ),
        (0, 3): img("halt", sram=[(0x3000, bytes(range(256)) * 8)]),
    }
    for c in [(3, 1), (2, 2), (3, 2)]:
        images[c] = img("wait sem=1, count=1\nhalt")
    _, res, pes = run(PerfSim, arch, images)
    print(f"PE-to-PE multicast read of {words} words: {res.cycles} cycles")
    assert flits < res.cycles < flits + 60
    assert all(pes[c].read_sram(LOCAL, 2048) == bytes(range(256)) * 8 for c in images
               if c != (0, 3))  # fmt: skip
