"""Single router (the centre of a 3 x 3 mesh) against the reference routing function."""

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module

from hw.arch import PRESETS
from hw.isa import Kind, MsgClass, Route, encode_head
from hw.noc.link import CONFIG, EAST, LOCAL, NORTH, PORT_NAMES, PORTS, SOUTH, WEST
from hw.noc.model import ref_route
from hw.noc.router import Router
from hw.noc.table import encode_entry
from tests.hw.noc_tb import LinkPort, Scoreboard, StreamPort, make_packet, rng_for, run_traffic

ARCH = PRESETS["tiny"].replace(mesh_cols=3, mesh_rows=3, routing_table_entries=4)
X, Y = 1, 1
TARGET = {LOCAL: (1, 1), NORTH: (1, 0), EAST: (2, 1), SOUTH: (1, 2), WEST: (0, 1)}


def key_of(o):
    return ("tile", X, Y) if o == LOCAL else ("link", PORT_NAMES[o])


class Placed(Elaboratable):
    """The router with its coordinate inputs tied to (x, y)."""

    def __init__(self, router, x, y):
        self.router, self.x, self.y = router, x, y

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = self.router
        m.d.comb += [self.router.x.eq(self.x), self.router.y.eq(self.y)]
        return m


class RouterBench:
    """``rtl_*`` side: the router with a driver on each port."""

    def __init__(self, seed, stall=0.0, table=()):
        self.rng = rng_for(seed)
        self.dut = Router(ARCH)
        self.sb = Scoreboard()
        self.table = list(table)
        self.ports = {LOCAL: StreamPort(key_of(LOCAL), self.dut.local, self.sb, self.rng, stall)}
        for p in range(1, PORTS):
            link_in, link_out = self.dut.port(p)
            self.ports[p] = LinkPort(
                key_of(p), link_in, link_out, ARCH.router_buffer_flits, self.sb, self.rng, stall
            )
        self.pid = 0

    def send(self, port, cls, length, expect=True, **head):
        """Queue a packet on ``port``; the expected outputs come from ``ref_route``."""
        self.pid += 1
        words = make_packet(self.pid, cls, length, **head)
        fields = {
            "kind": int(head.get("kind", 0)),
            "route": head.get("route", 0),
            "x0": 0,
            "y0": 0,
            "x1": 0,
            "y1": 0,
            "ret_addr": 0,
            **head,
        }
        outs = ref_route(ARCH, X, Y, port, fields, self.table)
        dsts = [key_of(o) for o in outs if o != CONFIG] if expect else []
        self.sb.expect(self.pid, key_of(port), cls, words, dsts)
        self.ports[port].send(self.pid, cls, words)
        return outs

    def run(self, limit=4000, inject=None):
        return run_traffic(
            Placed(self.dut, X, Y),
            list(self.ports.values()),
            self.sb,
            limit=limit,
            drop_signal=self.dut.drop,
            inject=inject,
        )


def test_router_converts_to_verilog():
    text = verilog.convert(Router(ARCH))
    assert "module" in text
    # one module for every position: the coordinates are ports
    assert "input [5:0] x;" in text and "input [5:0] y;" in text


def test_router_rejects_bad_arch():
    with pytest.raises(TypeError, match="ArchConfig"):
        Router("tiny")


def test_all_port_pairs_both_classes():
    bench = RouterBench(seed=1)
    pairs = 0
    for p in range(PORTS):
        for o in range(PORTS):
            if o == p and p != LOCAL:
                continue  # no U-turns
            for cls in MsgClass:
                x0, y0 = TARGET[o]
                outs = bench.send(
                    p,
                    cls,
                    length=(p + o + cls) % 4,
                    x0=x0,
                    y0=y0,
                    kind=Kind.WRITE if cls == MsgClass.REQUEST else Kind.READ_RESP,
                )
                assert outs == {o}
                pairs += 1
    cycles, drops = bench.run()
    assert bench.sb.delivered == pairs == 2 * 21
    assert drops == 0


def test_zero_load_latency_two_cycles_per_hop():
    bench = RouterBench(seed=2)
    bench.send(WEST, MsgClass.REQUEST, 0, x0=2, y0=1)  # W in -> E out
    bench.run()
    # on the west link in cycle 0, on the east link in cycle 2: a hop is 2 cycles (the
    # emulated neighbour pops its buffer one cycle after that, which the scoreboard sees)
    (latency,) = bench.sb.latencies
    assert latency - 1 == 2


def test_rect_multicast_from_every_port():
    bench = RouterBench(seed=3)
    rng = bench.rng
    for _ in range(24):
        p = rng.randrange(PORTS)
        x0, x1 = rng.randrange(4), rng.randrange(4)
        y0, y1 = rng.randrange(4), rng.randrange(4)
        bench.send(
            p,
            MsgClass(rng.randrange(2)),
            rng.randrange(4),
            route=Route.RECT,
            x0=x0,
            y0=y0,
            x1=x1,
            y1=y1,
        )
    # the whole mesh from local: every output at once
    assert bench.send(LOCAL, MsgClass.REQUEST, 2, route=Route.RECT, x0=0, y0=0, x1=2, y1=2) == set(
        range(PORTS)
    )
    bench.run()
    assert not bench.sb.in_flight()


def test_key_multicast_after_config():
    table = [
        (0x100, 0xF00, 1 << EAST | 1 << LOCAL, True),
        (0x000, 0x000, 1 << NORTH | 1 << SOUTH, False),  # disabled
        (0x120, 0xFF0, 1 << WEST, True),  # shadowed by entry 0
        (0x200, 0xF00, 1 << NORTH | 1 << SOUTH | 1 << WEST, True),
    ]
    bench = RouterBench(seed=4)
    pid = bench.pid = bench.pid + 1
    words = [encode_head(kind=Kind.CONFIG, x0=X, y0=Y, len=len(table), addr=0)]
    words += [encode_entry(k, msk, ports, en) for k, msk, ports, en in table]
    bench.sb.expect(pid, key_of(LOCAL), MsgClass.REQUEST, words, [])
    bench.ports[LOCAL].send(pid, MsgClass.REQUEST, words)
    bench.table = table
    sends = [
        (LOCAL, 0x123),
        (LOCAL, 0x2FF),
        (WEST, 0x1AB),
        (NORTH, 0x200),
        (SOUTH, 0x999),
        (WEST, 0x999),
        (EAST, 0x0),
        (LOCAL, 0x777),
    ]

    def inject(cycle):
        if cycle < 20:  # the table is written by then
            return True
        for p, key in sends:
            for cls in MsgClass:
                bench.send(p, cls, 2, route=Route.KEY, ret_addr=key)
        return False

    _, drops = bench.run(inject=inject)
    assert drops == 2  # local injections without a match (both classes)
    assert bench.sb.delivered > 2 * len(sends)


def test_backpressure_random_traffic():
    bench = RouterBench(seed=5, stall=0.6)
    rng = bench.rng
    for _ in range(60):
        p = rng.randrange(PORTS)
        o = rng.choice([o for o in range(PORTS) if o != p or p == LOCAL])
        x0, y0 = TARGET[o]
        bench.send(p, MsgClass(rng.randrange(2)), rng.randrange(5), x0=x0, y0=y0)
    cycles, _ = bench.run(limit=8000)
    assert not bench.sb.in_flight()
    print(f"60 packets under 60% back-pressure in {cycles} cycles")


@pytest.mark.parametrize("xy", [(0, 0), (1, 1), (2, 2), (2, 0)], ids=str)
def test_route_compute_matches_reference(xy):
    """``rtl_route`` of random heads at every port equals ``ref_route`` (empty table)."""
    from amaranth.sim import Simulator

    from hw.isa import decode_head
    from hw.noc.route import RouteCompute

    rng = rng_for(20 + xy[0] * 3 + xy[1])
    rcs = [RouteCompute(ARCH, p) for p in range(PORTS)]
    top = Module()
    for p, rc in enumerate(rcs):
        top.submodules[f"rc{p}"] = rc
    cases = []
    for _ in range(150):
        fields = {
            "kind": rng.choice([Kind.WRITE, Kind.CONFIG, Kind.READ_RESP]),
            "route": rng.randrange(4),
            "ret_addr": rng.randrange(1 << 32),
        }
        for f in ("x0", "y0", "x1", "y1"):
            fields[f] = rng.choice([0, 1, 2, 3, 4, 63])
        cases.append(encode_head(**fields))

    async def tb(ctx):
        for word in cases:
            head = decode_head(word)
            for p, rc in enumerate(rcs):
                ctx.set(rc.x, xy[0])
                ctx.set(rc.y, xy[1])
                ctx.set(rc.head, word)
                got = ctx.get(rc.route)
                want = ref_route(ARCH, *xy, p, head) if head["route"] < 3 else set()
                assert {o for o in range(6) if got >> o & 1} == want, (p, head)

    sim = Simulator(top)
    sim.add_testbench(tb)
    sim.run()


def _module_ports(text, name):
    import re

    header = re.search(rf"module {re.escape(name)}\((.*?)\);", text, re.S)
    assert header, f"module {name} not found"
    return {p.strip() for p in header.group(1).split(",")}


def _instance_ports(text, module):
    """Port names connected by each instance of ``module`` in ``text``."""
    import re

    found = []
    for inst in re.finditer(rf"^\s*{re.escape(module)}\s+\S+\s*\((.*?)\);", text, re.S | re.M):
        found.append(set(re.findall(r"\.(\w+)\(", inst.group(1))))
    return found


def test_mesh_verilog_holds_the_router_once():
    """The blackbox mesh instantiates one converted router module per position, with
    exactly its ports (names derived from the Router's signature)."""
    from hw.noc.mesh import Mesh
    from hw.noc.router import router_signature
    from hw.tile import blackbox

    router = verilog.convert(Router(ARCH), name="myelin_router", emit_src=False)
    mesh = Mesh(ARCH, router=blackbox("myelin_router", router_signature(ARCH)))
    text = verilog.convert(mesh, name="noc_mesh", emit_src=False)
    assert "module myelin_router" not in text
    insts = _instance_ports(text, "myelin_router")
    assert len(insts) == ARCH.tiles
    ports = _module_ports(router, "myelin_router")
    assert all(conns == ports for conns in insts)
