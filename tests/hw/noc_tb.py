"""Traffic generators, stream/link drivers and a scoreboard for the NoC RTL tests.

One testbench coroutine drives every endpoint: each cycle the drivers set
their outputs (``drive``), observe the handshakes (``sample``) and the clock
ticks.  Helpers raise instead of hanging: a global cycle limit and a watchdog
(``WATCHDOG`` cycles without a flit moving while packets are in flight).
"""

from __future__ import annotations

import random
from collections import defaultdict

from amaranth.sim import Simulator

from hw.isa import Kind, MsgClass, decode_head, encode_head
from hw.pe.interfaces import Flit

WATCHDOG = 1024
MASK128 = (1 << 128) - 1
KIND_OF_CLASS = {MsgClass.REQUEST: Kind.WRITE, MsgClass.RESPONSE: Kind.READ_RESP}


class NocTimeout(AssertionError):
    pass


def payload_word(pid: int, i: int) -> int:
    """A payload flit that names its packet and position (corruption check)."""
    return ((pid * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9) << 40 | pid << 8 | i) & MASK128


def make_packet(pid: int, cls: MsgClass, length: int, **head) -> list[int]:
    head.setdefault("kind", KIND_OF_CLASS[cls])
    words = [encode_head(len=length, addr=pid, **head)]
    words += [payload_word(pid, i) for i in range(length)]
    return words


class Setter:
    """ctx.set only on change: each set settles the whole design (slow)."""

    def __init__(self):
        self.last = {}

    def __call__(self, ctx, sig, value):
        key = id(sig)
        if self.last.get(key) != value:
            self.last[key] = value
            ctx.set(sig, value)


class Scoreboard:
    """Every expected copy arrives once, intact, in order per (src, dst, class)."""

    def __init__(self):
        self.expected = defaultdict(int)  # (dst, pid) -> copies
        self.packets = {}  # pid -> (src, cls, words)
        self.last_seen = {}  # (src, dst, cls) -> pid
        self.delivered = 0
        self.latencies = []
        self.sent_at = {}
        self.arrivals = []  # (cycle, flits) of every delivered copy

    def expect(self, pid, src, cls, words, dsts):
        self.packets[pid] = (src, cls, words)
        for d in dsts:
            self.expected[(d, pid)] += 1

    def in_flight(self) -> int:
        return sum(self.expected.values())

    def receive(self, dst, cls, words, cycle):
        head = decode_head(words[0])
        pid = head["addr"]
        assert (dst, pid) in self.expected, f"packet {pid} misrouted to {dst} or duplicated"
        src, pcls, sent = self.packets[pid]
        assert cls == pcls, f"packet {pid} arrived in class {cls}, sent in {pcls}"
        assert words == sent, f"packet {pid} corrupted at {dst}"
        self.expected[(dst, pid)] -= 1
        if not self.expected[(dst, pid)]:
            del self.expected[(dst, pid)]
        key = (src, dst, cls)
        assert self.last_seen.get(key, -1) < pid, f"packet {pid} overtook another on {key}"
        self.last_seen[key] = pid
        self.delivered += 1
        self.arrivals.append((cycle, len(words)))
        if pid in self.sent_at:
            self.latencies.append(cycle - self.sent_at[pid])


class StreamPort:
    """Drives the PE side (``NocPort`` view) of a router local or outer port."""

    def __init__(self, key, noc, sb, rng, stall=0.0):
        self.key, self.noc, self.sb, self.rng, self.stall = key, noc, sb, rng, stall
        self.queues = {c: [] for c in MsgClass}  # flits (pid, word, first, last)
        self.rx = {c: [] for c in MsgClass}
        self.set = Setter()
        self.offer = {}
        self.ready = {}

    def send(self, pid, cls, words):
        n = len(words)
        self.queues[cls] += [(pid, w, i == 0, i == n - 1) for i, w in enumerate(words)]

    def pending(self):
        return sum(map(len, self.queues.values()))

    def _streams(self, cls):
        if cls == MsgClass.REQUEST:
            return self.noc.out_req, self.noc.in_req
        return self.noc.out_resp, self.noc.in_resp

    def drive(self, ctx, cycle):
        for cls in MsgClass:
            out, inp = self._streams(cls)
            q = self.queues[cls]
            self.offer[cls] = bool(q)
            self.set(ctx, out.valid, int(bool(q)))
            if q:
                _, w, first, last = q[0]
                self.set(ctx, out.payload, {"data": w, "first": first, "last": last})
            self.ready[cls] = self.rng.random() >= self.stall
            self.set(ctx, inp.ready, int(self.ready[cls]))

    def sample(self, ctx, cycle):
        moved = False
        for cls in MsgClass:
            out, inp = self._streams(cls)
            if self.offer[cls] and ctx.get(out.ready):
                pid, _, first, _ = self.queues[cls].pop(0)
                if first:
                    self.sb.sent_at.setdefault(pid, cycle)
                moved = True
            if self.ready[cls] and ctx.get(inp.valid):
                flit = ctx.get(inp.payload)
                moved = True
                self._assemble(cls, flit.data, flit.first, flit.last, cycle)
        return moved

    def _assemble(self, cls, data, first, last, cycle):
        rx = self.rx[cls]
        assert bool(first) == (not rx), f"{self.key}: framing error (first={first})"
        rx.append(int(data))
        if last:
            self.sb.receive(self.key, cls, list(rx), cycle)
            rx.clear()


class LinkPort(StreamPort):
    """Emulates the neighbour router beyond a link port (credits both ways)."""

    def __init__(self, key, link_in, link_out, depth, sb, rng, stall=0.0):
        super().__init__(key, None, sb, rng, stall)
        self.link_in, self.link_out, self.depth = link_in, link_out, depth
        self.credits = {c: depth for c in MsgClass}
        self.buf = {c: [] for c in MsgClass}
        self.rr = 0

    def drive(self, ctx, cycle):
        order = sorted(MsgClass, key=lambda c: (c + self.rr) % 2)
        self.sent = None
        for cls in order:
            if self.queues[cls] and self.credits[cls]:
                pid, w, first, last = self.queues[cls].pop(0)
                if first:
                    self.sb.sent_at.setdefault(pid, cycle)
                self.credits[cls] -= 1
                self.sent = cls
                self.rr += 1
                self.set(ctx, self.link_in.vc, int(cls))
                self.set(ctx, self.link_in.flit, {"data": w, "first": first, "last": last})
                break
        self.set(ctx, self.link_in.valid, int(self.sent is not None))
        credit = 0
        for cls in MsgClass:
            if self.buf[cls] and self.rng.random() >= self.stall:
                self._assemble(cls, *self.buf[cls].pop(0), cycle)
                credit |= 1 << cls
        self.set(ctx, self.link_out.credit, credit)

    def sample(self, ctx, cycle):
        moved = self.sent is not None
        credit = ctx.get(self.link_in.credit)
        for cls in MsgClass:
            if credit >> cls & 1:
                self.credits[cls] += 1
                assert self.credits[cls] <= self.depth, f"{self.key}: credit overflow"
        if ctx.get(self.link_out.valid):
            cls = MsgClass(ctx.get(self.link_out.vc))
            flit = ctx.get(self.link_out.flit)
            self.buf[cls].append((flit.data, flit.first, flit.last))
            assert len(self.buf[cls]) <= self.depth, f"{self.key}: buffer overflow (credits)"
            moved = True
        return moved


def run_traffic(dut, ports, sb, *, inject=None, limit=20000, drop_signal=None):
    """Simulate until every queued and expected packet is delivered.

    ``inject(cycle)`` (optional) may queue more packets and returns False once
    it is done.  Returns ``(cycles, drops)``.
    """
    result = {}

    async def tb(ctx):
        cycle, idle, injecting, drops = 0, 0, inject is not None, 0
        while True:
            if injecting:
                injecting = inject(cycle)
            for p in ports:
                p.drive(ctx, cycle)
            moved = False
            for p in ports:
                moved |= p.sample(ctx, cycle)
            if drop_signal is not None and ctx.get(drop_signal):
                drops += bin(ctx.get(drop_signal)).count("1")
            busy = sb.in_flight() or any(p.pending() for p in ports)
            if not busy and not injecting:
                break
            idle = 0 if moved or not busy else idle + 1
            if idle >= WATCHDOG:
                raise NocTimeout(
                    f"no progress for {WATCHDOG} cycles at cycle {cycle}, "
                    f"{sb.in_flight()} copies in flight: "
                    f"{sorted(sb.expected)[:8]}"
                )
            if cycle >= limit:
                raise NocTimeout(f"cycle limit {limit} reached, {sb.in_flight()} in flight")
            await ctx.tick()
            cycle += 1
        result["cycles"], result["drops"] = cycle, drops

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return result["cycles"], result["drops"]


def rng_for(seed: int) -> random.Random:
    print(f"seed = {seed}")
    return random.Random(seed)


__all__ = [
    "Flit",
    "LinkPort",
    "NocTimeout",
    "Scoreboard",
    "StreamPort",
    "make_packet",
    "payload_word",
    "rng_for",
    "run_traffic",
]
