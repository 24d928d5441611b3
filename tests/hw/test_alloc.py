"""The router's Allocator alone (Amaranth simulator), against hand-derived schedules.

A Python model stands in for the input buffers (one queue of flits per input and
class, popped on ``pop``) and for the credit counters (decremented by every grant,
never returned unless a test says so); each cycle records which output took which
flit.  Checked: same-cycle grant of a unicast head, the allocation order and the
virtual cut-through condition of multicast packets (room on every output,
``docs/noc_multicast.md``), output reservation across packets, round-robin
fairness, drops.
"""

from __future__ import annotations

from amaranth.sim import Simulator

from hw.arch import PRESETS
from hw.noc.alloc import ORDER, Allocator
from hw.noc.link import CONFIG, EAST, LOCAL, NORTH, OUTPUTS, PORTS, SOUTH, WEST

ARCH = PRESETS["tiny"]
DEPTH = ARCH.router_buffer_flits
REQ, RESP = 0, 1


def packet(tag, outputs, length, vc=REQ):
    """The flits of one packet: (tag, index, first, last, route bits, length)."""
    route = sum(1 << o for o in outputs)
    return [(tag, i, i == 0, i == length, route, length) for i in range(length + 1)], vc


def simulate(queues, credits=None, cycles=30, refill=None):
    """``queues``: {(input, vc): [flits]}; ``credits``: {(output, vc): n} (default DEPTH);
    ``refill(cycle, credits)`` may change the counters.  Returns per cycle the list of
    (output, tag, flit index) taken and the drop flag."""
    dut = Allocator(ARCH)
    queues = {k: list(v) for k, v in queues.items()}
    cred = {(o, v): DEPTH for o in range(OUTPUTS) for v in range(ARCH.vcs)}
    cred.update(credits or {})
    log = []

    async def tb(ctx):
        for cycle in range(cycles):
            if refill:
                refill(cycle, cred)
            for p in range(PORTS):
                for v in range(ARCH.vcs):
                    q, i = queues.get((p, v), []), dut.inputs[p][v]
                    ctx.set(i.valid, int(bool(q)))
                    if q:
                        _, _, first, last, route, length = q[0]
                        for sig, val in ((i.first, first), (i.last, last), (i.route, route)):
                            ctx.set(sig, int(val))
                        ctx.set(i.length, length)
            for (o, v), n in cred.items():
                ctx.set(dut.credits[o][v], n)
            took = []
            for o in range(OUTPUTS):
                g = dut.grant[o]
                if ctx.get(g.valid):
                    p, v = ctx.get(g.input), ctx.get(g.vc)
                    flit = queues[(p, v)][0]
                    took.append((o, flit[0], flit[1]))
                    assert cred[(o, v)] > 0, f"output {o} sent class {v} without a credit"
                    cred[(o, v)] -= 1
            pops = [
                (p, v)
                for p in range(PORTS)
                for v in range(ARCH.vcs)
                if ctx.get(dut.inputs[p][v].pop)
            ]
            log.append((sorted(took), bool(ctx.get(dut.drop))))
            for k in pops:
                queues[k].pop(0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return log


def first_cycle(log, output, tag, index=0):
    return next(c for c, (took, _) in enumerate(log) if (output, tag, index) in took)


def test_order_is_travel_direction_then_north_south_then_sinks():
    assert ORDER[:2] == (EAST, WEST) and ORDER[2:4] == (NORTH, SOUTH)
    assert set(ORDER[4:]) == {LOCAL, CONFIG} and sorted(ORDER) == list(range(OUTPUTS))


def test_unicast_head_is_granted_and_switched_in_the_same_cycle():
    flits, vc = packet("u", [EAST], 2)
    log = simulate({(WEST, vc): flits}, cycles=5)
    assert [took for took, _ in log[:3]] == [[(EAST, "u", i)] for i in range(3)]


def test_multicast_waits_for_room_for_the_whole_packet_on_every_output():
    flits, vc = packet("m", [EAST, SOUTH, LOCAL], 3)

    def refill(cycle, cr):
        if cycle == 5:
            cr[(EAST, REQ)] = DEPTH
        if cycle == 6:
            cr[(LOCAL, REQ)] = DEPTH

    # every output needs room for the 4 flits, the last in ORDER (LOCAL) too: a
    # branch that started without room would lag and starve its siblings' subtrees
    # (docs/noc_multicast.md, the seed-43 deadlock)
    log = simulate({(WEST, vc): flits}, {(EAST, REQ): 3, (LOCAL, REQ): 1}, 12, refill)
    assert all(not took for took, _ in log[:6])
    assert log[6][0] == sorted([(EAST, "m", 0), (SOUTH, "m", 0), (LOCAL, "m", 0)])
    assert [took for took, _ in log[6:10]] == [
        sorted((o, "m", i) for o in (EAST, SOUTH, LOCAL)) for i in range(4)
    ]


def test_long_multicast_is_not_held_to_cut_through():
    flits, vc = packet("m", [EAST, SOUTH], DEPTH + 2)
    log = simulate({(WEST, vc): flits}, {(EAST, REQ): 1}, cycles=6)
    assert log[0][0] == sorted([(EAST, "m", 0), (SOUTH, "m", 0)])


def test_multicast_holds_its_outputs_until_each_took_the_tail():
    m, vc = packet("m", [EAST, SOUTH], 1)
    u, _ = packet("u", [EAST], 0)

    def refill(cycle, cr):
        if cycle == 4:
            cr[(SOUTH, REQ)] = DEPTH

    # the multicast holds EAST (granted first, in ORDER) while SOUTH has no room; the
    # unicast waits for EAST until the multicast's tail took it; no branch lags
    log = simulate({(LOCAL, vc): m, (WEST, vc): u}, {(SOUTH, REQ): 0}, 10, refill)
    assert first_cycle(log, EAST, "m") == 4 and first_cycle(log, SOUTH, "m") == 4
    assert first_cycle(log, EAST, "m", 1) == 5 and first_cycle(log, SOUTH, "m", 1) == 5
    assert first_cycle(log, EAST, "u") == 6


def test_unicast_needs_no_room_for_the_whole_packet():
    flits, vc = packet("u", [SOUTH], DEPTH - 1)
    log = simulate({(NORTH, vc): flits}, {(SOUTH, REQ): 1}, cycles=4)
    assert log[0][0] == [(SOUTH, "u", 0)] and all(not took for took, _ in log[1:])


def test_unicast_inputs_share_an_output_round_robin():
    queues = {}
    for p in (WEST, NORTH, LOCAL):
        queues[(p, REQ)] = sum((packet(f"{p}.{k}", [SOUTH], 1)[0] for k in range(3)), [])
    log = simulate(queues, cycles=20, refill=lambda c, cr: cr.update({(SOUTH, REQ): DEPTH}))
    order = [tag for took, _ in log for o, tag, i in took if i == 0]
    assert len(order) == 9
    inputs = [tag.split(".")[0] for tag in order]
    assert all(len(set(inputs[k : k + 3])) == 3 for k in range(0, 9, 3)), inputs


def test_classes_alternate_on_one_output():
    a, _ = packet("a", [EAST], 3, REQ)
    b, _ = packet("b", [EAST], 3, RESP)
    log = simulate(
        {(WEST, REQ): a, (LOCAL, RESP): b},
        cycles=10,
        refill=lambda c, cr: cr.update({(EAST, REQ): DEPTH, (EAST, RESP): DEPTH}),
    )
    tags = [took[0][1] for took, _ in log if took]
    assert tags == ["a", "b"] * 4 or tags == ["b", "a"] * 4


def test_empty_route_and_stray_body_flits_are_dropped():
    head, vc = packet("d", [], 1)
    stray = [("s", 1, False, True, 1 << EAST, 0)]
    log = simulate({(NORTH, vc): head, (WEST, vc): stray}, cycles=4)
    assert [d for _, d in log[:3]] == [True, False, False]
    assert all(not took for took, _ in log)
