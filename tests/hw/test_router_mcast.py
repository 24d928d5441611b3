"""RECT multicast on the RTL mesh (Amaranth simulator): fork throughput and deadlock freedom.

* Fork throughput: one tile streams RECT packets to a row, a column and a 2 x 2 rectangle
  of a 3 x 3 mesh, sinks always ready; with buffers of 8 flits and 5-flit packets every
  destination receives a flit per cycle, like a unicast stream; buffer-sized packets
  (the DMA's cut today) pay the credit loop: F / (F + 3) flit/cycle.
* Deadlock freedom: sustained mixed unicast + RECT multicast load from every tile, both
  message classes, random back-pressure at every sink, fixed printed seeds; the
  scoreboard (``tests.hw.noc_tb``) checks every copy and its watchdog fails the run if no
  flit moves for ``WATCHDOG`` cycles.  The allocator before per-branch allocation
  deadlocked on this load (``docs/noc_multicast.md``).
"""

from __future__ import annotations

import pytest

from hw.arch import PRESETS
from hw.isa import MsgClass, Route
from hw.noc.alloc import ORDER, Allocator
from hw.noc.cdg import find_cycle
from hw.noc.link import CONFIG, EAST, LOCAL, NORTH, SOUTH, WEST
from hw.noc.mcast_cdg import allocation_dependency_graph
from tests.hw.noc_tb import NocTimeout
from tests.hw.test_mesh import MESH3, MeshBench, bernoulli

SRC = ("tile", 0, 0)
SMALL = PRESETS["small"]
TARGETS = {  # name: RECT corners (x0, y0, x1, y1), seen from tile (0, 0)
    "row": (0, 1, 2, 1),  # forks east and south at (0, 0) and (1, 0)
    "column": (1, 0, 1, 2),  # forks local and south at (1, 0) and (1, 1)
    "rect2x2": (1, 1, 2, 2),
}


def stream_rate(arch, rect, length, packets=12, seed=1):
    """Delivered flits/cycle of the slowest destination of a stream of packets from SRC.

    ``rect`` None: unicast to tile (2, 2).  The rate is measured between the first and
    the last packet completing at each destination.
    """
    bench = MeshBench(arch, seed=seed)
    done_at = {}
    receive = bench.sb.receive

    def record(dst, cls, words, cycle):
        receive(dst, cls, words, cycle)
        done_at.setdefault(dst, []).append(cycle)

    bench.sb.receive = record
    for _ in range(packets):
        if rect is None:
            dsts = bench.send(SRC, MsgClass.REQUEST, length, x0=2, y0=2)
        else:
            x0, y0, x1, y1 = rect
            dsts = bench.send(
                SRC, MsgClass.REQUEST, length, route=Route.RECT, x0=x0, y0=y0, x1=x1, y1=y1
            )
    bench.run(limit=packets * (length + 1) * 10 + 200)
    assert sorted(done_at) == sorted(dsts)
    return min((len(c) - 1) * (length + 1) / (c[-1] - c[0]) for c in done_at.values())


DEEP = MESH3.replace(router_buffer_flits=8)  # the depth docs/noc_multicast.md recommends


def rect_cut(arch):
    """Payload flits of a full-rate RECT packet: it must fit the buffer with 3 slots to
    spare, the credit loop (docs/noc_multicast.md)."""
    return arch.router_buffer_flits - 4


@pytest.mark.parametrize("name", ["unicast", *TARGETS])
def test_fork_throughput_with_deeper_buffers(name):
    length = rect_cut(DEEP)
    rate = stream_rate(DEEP, TARGETS.get(name), length)
    print(f"depth 8, {name}: {rate:.3f} flit/cycle per destination, {length + 1}-flit packets")
    assert rate >= 0.95


@pytest.mark.parametrize("arch", [MESH3, DEEP], ids=["depth4", "depth8"])
def test_fork_throughput_of_buffer_sized_packets_pays_the_credit_loop(arch):
    """The DMA's RECT cut today (router_buffer_flits - 1 payload flits): a packet needs room
    for all its flits downstream, so the next one waits for the credit loop (3 cycles)."""
    flits = arch.router_buffer_flits
    rate = stream_rate(arch, TARGETS["row"], flits - 1)
    print(f"depth {flits}: {rate:.3f} flit/cycle per destination, {flits}-flit packets")
    assert rate == pytest.approx(flits / (flits + 3), abs=0.01)


def mixed_load(arch, seed, rate, cycles, stall, mcast_frac=0.5, unicast_max=7, mcast_max=None):
    """Every tile starts a packet with probability ``rate`` per cycle: RECT to a random
    rectangle (up to ``mcast_max + 1`` flits, default router_buffer_flits) with
    probability ``mcast_frac``, else a unicast of up to ``unicast_max + 1`` flits;
    random class; sinks stall ``stall``."""
    bench = MeshBench(arch, seed=seed, stall=stall)
    rng = bench.rng
    mlen = arch.router_buffer_flits - 1 if mcast_max is None else mcast_max

    def make(src):
        cls = MsgClass(rng.randrange(2))
        if rng.random() < mcast_frac:
            c = [rng.randrange(arch.mesh_cols), rng.randrange(arch.mesh_rows)]
            c += [rng.randrange(arch.mesh_cols), rng.randrange(arch.mesh_rows)]
            bench.send(
                src, cls, rng.randint(0, mlen), route=Route.RECT, x0=c[0], y0=c[1], x1=c[2], y1=c[3]
            )
        else:
            bench.send(
                src,
                cls,
                rng.randint(0, unicast_max),
                x0=rng.randrange(arch.mesh_cols),
                y0=rng.randrange(arch.mesh_rows),
            )

    total, drops = bench.run(bernoulli(bench, rate, cycles, make), limit=40 * cycles)
    flits = sum(f for _, f in bench.sb.arrivals)
    print(
        f"seed {seed}: {bench.pid} packets, {bench.sb.delivered} copies, {flits} flits "
        f"delivered in {total} cycles ({flits / (arch.tiles * total):.3f} flit/node/cycle)"
    )
    assert drops == 0
    return bench


def test_mixed_multicast_load_does_not_deadlock_3x3():
    bench = mixed_load(MESH3, seed=31, rate=0.12, cycles=400, stall=0.3)
    assert bench.sb.delivered > 400


@pytest.mark.extended
@pytest.mark.parametrize("seed", [41, 42, 43])
def test_mixed_multicast_load_long_runs_3x3(seed):
    """Seed 43 deadlocked at cycle ~3,735 under the previous rule (a last branch that
    started without room lagged, docs/noc_multicast.md); now 4,172 packets, 9,587 copies
    in 5,037 cycles."""
    bench = mixed_load(MESH3, seed=seed, rate=0.15, cycles=3000, stall=0.25)
    assert bench.sb.delivered > 3000


def test_lagging_last_branch_closes_the_seed43_cycle():
    """The wait-for cycle of the seed-43 deadlock (3x3, 4-flit buffers), in the dependency
    graph of the previous rule (the last output started without room): the packet at the
    front of (2,1)'s south input waits for (2,1)'s local output, held by a packet starved
    by its fork at (1,0), whose last branch waits for (1,1)'s north input; its front
    waits for (1,1)'s local output, held by a packet starved by its fork at (2,2), whose
    last branch waits for (2,1)'s south input.  The current rule has neither edge."""
    arch = MESH3
    a, b = ("in", 2, 1, SOUTH), ("in", 1, 1, NORTH)
    old = allocation_dependency_graph(arch, MsgClass.REQUEST, ORDER, lagging_last=True)
    assert old.has_edge(a, b) and old.has_edge(b, a)
    assert find_cycle(old) is not None
    new = allocation_dependency_graph(arch, MsgClass.REQUEST, ORDER)
    assert not new.has_edge(a, b) and not new.has_edge(b, a)
    assert find_cycle(new) is None


class LaggingLastAllocator(Allocator):
    """The previous rule (a mutant): the last output of a multicast packet in ORDER
    starts without room for the whole packet."""

    def _needs_room(self, route, k):
        later = 0
        for o in ORDER[k + 1 :]:
            later = later | route[o]
        return later


# the four flows of the seed-43 wait-for cycle (docs/noc_multicast.md), RECT corners
SEED43_FLOWS = {
    (0, 0): [(1, 1, 2, 1)],  # forks E + S at (1,0); its E branch holds (2,1)'s local output
    (2, 2): [(0, 1, 2, 1)],  # forks W + N at (2,2); its W branch holds (1,1)'s local output
    (1, 2): [(2, 0, 2, 1)],  # asks N then L at (2,1)
    (1, 0): [(1, 1, 1, 2)],  # asks S then L at (1,1)
}


def seed43_flows(seed, allocator=None, rate=0.5, cycles=300, stall=0.4):
    """The flows of the seed-43 cycle on a 3 x 3 mesh of 4-flit buffers: RECT packets of
    1-4 flits, class REQUEST, sinks stalled ``stall``."""
    bench = MeshBench(MESH3, seed=seed, stall=stall)
    if allocator is not None:
        for row in bench.dut.routers:
            for r in row:
                r.alloc._MustUse__silence = True  # replaced before elaboration
                r.alloc = allocator(MESH3)
    rng = bench.rng

    def inject(cycle):
        if cycle >= cycles:
            return False
        for (x, y), rects in SEED43_FLOWS.items():
            if rng.random() < rate:
                c = rng.choice(rects)
                n = rng.randint(0, MESH3.router_buffer_flits - 1)
                bench.send(
                    ("tile", x, y),
                    MsgClass.REQUEST,
                    n,
                    route=Route.RECT,
                    x0=c[0],
                    y0=c[1],
                    x1=c[2],
                    y1=c[3],
                )
        return True

    total, drops = bench.run(inject, limit=40 * cycles + 2000)
    print(f"seed {seed}: {bench.pid} packets, {bench.sb.delivered} copies in {total} cycles")
    assert drops == 0
    return bench


def test_seed43_cycle_flows_do_not_deadlock():
    """The minimal failing case found: the previous rule deadlocks on it (watchdog at
    cycle 1,629, ``test_previous_rule_deadlocks_on_the_seed43_flows``); 590 packets."""
    bench = seed43_flows(1)
    assert bench.sb.delivered == 1326


@pytest.mark.extended
def test_previous_rule_deadlocks_on_the_seed43_flows():
    with pytest.raises(NocTimeout, match="no progress"):
        seed43_flows(1, allocator=LaggingLastAllocator)


@pytest.mark.parametrize("mesh", [(2, 2), (3, 3), (4, 4), (5, 3), (8, 8)])
def test_allocation_order_keeps_the_dependency_graph_acyclic(mesh):
    arch = SMALL.replace(mesh_cols=mesh[0], mesh_rows=mesh[1])
    for cls in MsgClass:
        assert find_cycle(allocation_dependency_graph(arch, cls, ORDER)) is None


@pytest.mark.parametrize(
    "order",
    [
        (LOCAL, CONFIG, EAST, WEST, NORTH, SOUTH),  # sinks first
        (NORTH, EAST, WEST, SOUTH, LOCAL, CONFIG),  # a Y output before the X one
        (EAST, WEST, LOCAL, CONFIG, NORTH, SOUTH),  # a sink between north and south
    ],
    ids=["sinks-first", "north-first", "sink-between"],
)
def test_other_allocation_orders_are_cyclic(order):
    arch = SMALL.replace(mesh_cols=4, mesh_rows=4)
    cycle = find_cycle(allocation_dependency_graph(arch, MsgClass.REQUEST, order))
    print(cycle)
    assert cycle is not None


@pytest.mark.extended
def test_single_flit_rect_multicast_at_high_load_4x4():
    """The case that deadlocked the Verilated 4x4 mesh: RECT only, single-flit packets,
    0.35 packets/node/cycle, no back-pressure."""
    arch = MESH3.replace(mesh_cols=4, mesh_rows=4)
    bench = mixed_load(arch, 51, 0.35, 300, 0.0, mcast_frac=1.0, unicast_max=0, mcast_max=0)
    assert bench.sb.delivered > 5000
