"""Meshes (2 x 2, 3 x 3) under synthetic traffic, checked by a scoreboard.

Every packet's expected copies come from the reference routing function
(``hw.noc.model.ref_deliveries``); the scoreboard fails on a lost, duplicated,
misrouted, corrupted or reordered (per source, destination and class) packet,
and the run fails after ``WATCHDOG`` cycles without progress.
"""

import pytest

from hw.arch import PRESETS
from hw.isa import Kind, MsgClass, Route, dram_node, encode_head, host_node
from hw.noc.link import EAST, LOCAL
from hw.noc.mesh import Mesh, edge_ports
from hw.noc.model import ref_deliveries
from hw.noc.table import encode_entry
from tests.hw.noc_tb import Scoreboard, StreamPort, make_packet, rng_for, run_traffic

TINY = PRESETS["tiny"].replace(routing_table_entries=1)
MESH3 = TINY.replace(mesh_cols=3, mesh_rows=3)


class MeshBench:
    """``rtl_*`` side: a mesh with a stream driver on every tile and outer port."""

    def __init__(self, arch, seed, stall=0.0):
        self.arch = arch
        self.rng = rng_for(seed)
        self.dut = Mesh(arch)
        self.sb = Scoreboard()
        self.where = {}  # endpoint key -> (router x, y, port)
        self.ports = {}
        for y in range(arch.mesh_rows):
            for x in range(arch.mesh_cols):
                key = ("tile", x, y)
                self.where[key] = (x, y, LOCAL)
                self.ports[key] = StreamPort(key, self.dut.tile(x, y), self.sb, self.rng, stall)
        for name, x, y, side in edge_ports(arch):
            key = ("edge", x, y, side)
            self.where[key] = (x, y, side)
            self.ports[key] = StreamPort(key, getattr(self.dut, name), self.sb, self.rng, stall)
        self.pid = 0
        self.tables = {}  # (x, y) -> table entries, as written by CONFIG packets

    def send(self, src, cls, length, **head):
        self.pid += 1
        sx, sy, port = self.where[src]
        head.setdefault("kind", Kind.WRITE if cls == MsgClass.REQUEST else Kind.READ_RESP)
        words = make_packet(self.pid, cls, length, src_x=sx, src_y=sy, **head)
        fields = {"route": 0, "x0": 0, "y0": 0, "x1": 0, "y1": 0, "ret_addr": 0, **head}
        copies = ref_deliveries(self.arch, sx, sy, port, fields, self.tables)
        dsts = [c for c in copies if c[0] in ("tile", "edge")]
        self.sb.expect(self.pid, src, cls, words, dsts)
        self.ports[src].send(self.pid, cls, words)
        return dsts

    def run(self, inject=None, limit=30000):
        cycles, drops = run_traffic(
            self.dut,
            list(self.ports.values()),
            self.sb,
            inject=inject,
            limit=limit,
            drop_signal=self.dut.drop,
        )
        assert not self.sb.in_flight()
        return cycles, drops


def bernoulli(bench, rate, cycles, make):
    """An injection process: each tile starts a packet with probability ``rate``."""
    tiles = [k for k in bench.ports if k[0] == "tile"]

    def inject(cycle):
        if cycle >= cycles:
            return False
        for src in tiles:
            if bench.rng.random() < rate:
                make(src)
        return True

    return inject


def random_len(bench):
    return bench.rng.randrange(4)


def test_mesh_elaborates_and_names_ports():
    from amaranth.hdl import Fragment

    m = Mesh(TINY)
    names = set(m.signature.members)
    assert {"tile_0_0", "tile_1_1", "edge_east_0", "edge_south_1", "drop"} <= names
    Fragment.get(m, None)  # elaborates every router (and uses them)


@pytest.mark.extended
def test_mesh_converts_to_verilog():
    from amaranth.back import verilog

    assert "module" in verilog.convert(Mesh(MESH3))


def test_zero_load_latency_per_hop():
    """One packet at a time from tile (0, 0) to targets 0..4 hops away."""
    bench = MeshBench(MESH3, seed=10)
    targets = [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2)]
    todo = list(targets)

    def inject(cycle):
        if len(bench.sb.latencies) == len(targets) - len(todo) and not bench.sb.in_flight():
            x0, y0 = todo.pop(0)
            bench.send(("tile", 0, 0), MsgClass.REQUEST, 0, x0=x0, y0=y0)
        return bool(todo)

    bench.run(inject)
    latency = {x + y: lat for (x, y), lat in zip(targets, bench.sb.latencies, strict=True)}
    print("zero-load latency (PE stream to PE stream) by hops:", latency)
    assert all(latency[h] - latency[0] == 2 * h for h in latency)
    assert latency[0] == 3  # local input buffer, switch, ejection buffer


@pytest.mark.parametrize("arch", [TINY, MESH3], ids=["2x2", "3x3"])
def test_uniform_random(arch):
    bench = MeshBench(arch, seed=11)
    dsts = [(x, y) for x in range(arch.mesh_cols) for y in range(arch.mesh_rows)]
    dsts += [dram_node(arch), host_node(arch), (arch.mesh_cols + 2, 1)]  # last: no such tile

    def make(src):
        x0, y0 = bench.rng.choice(dsts)
        bench.send(src, MsgClass(bench.rng.randrange(2)), random_len(bench), x0=x0, y0=y0)

    cycles, drops = bench.run(bernoulli(bench, 0.15, 150, make))
    print(f"{bench.sb.delivered} packets in {cycles} cycles")
    assert drops == 0 and bench.sb.delivered > 40


def test_transpose_and_hotspot_3x3():
    bench = MeshBench(MESH3, seed=12, stall=0.3)
    for y in range(3):
        for x in range(3):
            for i in range(3):
                bench.send(("tile", x, y), MsgClass(i % 2), 2, x0=y, y0=x)  # transpose
                bench.send(("tile", x, y), MsgClass.REQUEST, 3, x0=1, y0=1)  # hotspot
    bench.run()


def test_edge_endpoints_inject_and_receive():
    arch = MESH3
    bench = MeshBench(arch, seed=13)
    dx, dy = dram_node(arch)
    edge_dram = ("edge", arch.mesh_cols - 1, dy, 2)
    hx, hy = host_node(arch)
    edge_host = ("edge", hx, arch.mesh_rows - 1, 3)
    assert bench.send(("tile", 0, 2), MsgClass.REQUEST, 1, x0=dx, y0=dy) == [edge_dram]
    assert bench.send(("tile", 2, 0), MsgClass.REQUEST, 1, x0=hx, y0=hy) == [edge_host]
    # DRAM answers a tile, the host writes a tile, a packet to a missing tile leaves east
    bench.send(edge_dram, MsgClass.RESPONSE, 2, x0=0, y0=2)
    bench.send(edge_host, MsgClass.REQUEST, 2, x0=2, y0=0)
    assert bench.send(("tile", 0, 1), MsgClass.REQUEST, 0, x0=40, y0=1) == [("edge", 2, 1, 2)]
    bench.run()


def test_edge_adapters_add_no_latency():
    """Through an edge adapter a packet takes as long as through the local port: edge to
    the tile beside it, and that tile to the edge, 3 cycles each (like PE to itself);
    edge to edge across a 2x2 mesh 3 + 2 per hop.  Both classes, one at a time."""
    arch = TINY
    bench = MeshBench(arch, seed=18)
    west0, east1 = ("edge", 0, 0, 4), ("edge", 1, 1, 2)
    plan = [  # source, class, target
        (west0, MsgClass.RESPONSE, (0, 0)),
        (west0, MsgClass.REQUEST, (0, 0)),
        (("tile", 1, 1), MsgClass.REQUEST, (5, 1)),  # beyond the east edge: east1
        (("tile", 1, 1), MsgClass.RESPONSE, (5, 1)),
        (west0, MsgClass.REQUEST, (7, 1)),  # 2 hops to (1, 1), out east
    ]
    todo = list(plan)

    def inject(cycle):
        if len(bench.sb.latencies) == len(plan) - len(todo) and not bench.sb.in_flight():
            src, cls, (x0, y0) = todo.pop(0)
            bench.send(src, cls, 0, x0=x0, y0=y0)
        return bool(todo)

    bench.run(inject)
    assert bench.sb.delivered == len(plan)
    assert bench.sb.latencies == [3, 3, 3, 3, 3 + 2 * 2], bench.sb.latencies
    assert east1 in bench.ports


def test_rect_and_key_multicast_3x3():
    arch = MESH3
    bench = MeshBench(arch, seed=14)

    def make(src):
        rng = bench.rng
        if rng.random() < 0.7:
            c = [rng.randrange(4) for _ in range(4)]
            bench.send(
                src,
                MsgClass(rng.randrange(2)),
                random_len(bench),
                route=Route.RECT,
                x0=c[0],
                y0=c[1],
                x1=c[2],
                y1=c[3],
            )
        else:  # empty tables: KEY packets go straight on (local ones are dropped)
            bench.send(src, MsgClass.REQUEST, 1, route=Route.KEY, ret_addr=rng.randrange(99))

    host = ("edge", 0, arch.mesh_rows - 1, 3)
    bench.send(host, MsgClass.REQUEST, 2, route=Route.RECT, x0=0, y0=0, x1=2, y1=2)
    bench.send(("edge", 2, 1, 2), MsgClass.REQUEST, 1, route=Route.KEY, ret_addr=5)
    _, drops = bench.run(bernoulli(bench, 0.06, 120, make))
    assert drops > 0  # the local KEY packets
    assert bench.sb.delivered > 50


def test_host_configures_every_router_then_key_multicast():
    arch = MESH3
    bench = MeshBench(arch, seed=17)
    host = ("edge", 0, arch.mesh_rows - 1, 3)
    entry = (0x42, 0xFF, 1 << EAST | 1 << LOCAL, True)
    words = [encode_head(kind=Kind.CONFIG, route=Route.RECT, x0=0, y0=0, x1=2, y1=2, len=1)]
    words.append(encode_entry(*entry))
    bench.pid += 1
    bench.sb.expect(bench.pid, host, MsgClass.REQUEST, words, [])  # consumed by the routers
    bench.ports[host].send(bench.pid, MsgClass.REQUEST, words)

    def inject(cycle):
        if cycle < 60:  # every router configured by then
            return True
        bench.tables = {(x, y): [entry] for x in range(3) for y in range(3)}
        for y in range(3):
            copies = bench.send(
                ("tile", 0, y), MsgClass.REQUEST, 2, route=Route.KEY, ret_addr=0x142
            )
            want = [("tile", x, y) for x in range(3)] + [("edge", 2, y, EAST)]
            assert sorted(copies) == sorted(want)
        return False

    bench.run(inject)
    assert bench.sb.delivered == 3 * 4


@pytest.mark.extended
@pytest.mark.parametrize("arch", [TINY, MESH3], ids=["2x2", "3x3"])
def test_uniform_random_long_with_backpressure(arch):
    bench = MeshBench(arch, seed=15, stall=0.2)
    dsts = [(x, y) for x in range(arch.mesh_cols) for y in range(arch.mesh_rows)]

    def make(src):
        x0, y0 = bench.rng.choice(dsts)
        bench.send(src, MsgClass(bench.rng.randrange(2)), bench.rng.randrange(8), x0=x0, y0=y0)

    bench.run(bernoulli(bench, 0.2, 2000, make), limit=100000)


def rtl_accepted_throughput(cols, rows, offered, cycles, warmup, seed, flits=4):
    """Accepted flits/node/cycle in [warmup, cycles) under uniform random unicast."""
    arch = TINY.replace(mesh_cols=cols, mesh_rows=rows)
    bench = MeshBench(arch, seed=seed)
    tiles = [(x, y) for x in range(cols) for y in range(rows)]

    def make(src):
        x0, y0 = bench.rng.choice(tiles)
        bench.send(src, MsgClass(bench.rng.randrange(2)), flits - 1, x0=x0, y0=y0)

    bench.run(bernoulli(bench, offered / flits, cycles, make), limit=20 * cycles)
    window = [f for c, f in bench.sb.arrivals if warmup <= c < cycles]
    return sum(window) / (arch.tiles * (cycles - warmup))


@pytest.mark.extended
@pytest.mark.parametrize("mesh", [(4, 4), (8, 8)], ids=["4x4", "8x8"])
def test_saturation_throughput(mesh):
    """Offered 0.6 flit/node/cycle (beyond saturation): accepted >= 0.35."""
    accepted = rtl_accepted_throughput(*mesh, offered=0.6, cycles=1200, warmup=400, seed=16)
    print(f"{mesh[0]}x{mesh[1]} uniform random, 4-flit packets: accepted {accepted:.3f}")
    assert accepted >= 0.35
