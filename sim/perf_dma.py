"""The DMA engine of one PE in the performance model, and the timed network.

:class:`DmaTimer` turns a descriptor (``hw.isa.decode_desc``) issued at a cycle
into the cycles its effects happen: when the DMA instruction retires (queue
slot + descriptor fetch), when the engine has sent its last flit, and when the
completion semaphore increments land (per target).  Packetization follows
docs/dma.md: each row of ``count0`` words is cut into packets of at most
``max_packet_flits`` payload flits plus one head flit each; the engine injects
one flit per cycle.  RECT writes and multicast reads (a read with mode RECT: the
answers fork along the RECT tree from the answerer to every receiver) use packets
of at most ``rect_payload_flits``.

:class:`TimedNetwork` is a :class:`sim.network.ChipNetwork` whose data effects
happen at once (programs are race-free, like for ChipSim) but whose semaphore
increments are handed to the model's event queue at their arrival cycle.
"""

from __future__ import annotations

from collections import deque

from hw.isa import SignalMode
from sim.network import ChipNetwork, DmaRefused, Dram, StandInNetwork, mcast_rect

__all__ = ["DmaTimer", "TimedNetwork", "TimedStandIn", "SELF_DRAIN", "WRITE_DRAIN"]

SELF_DRAIN = 4  # SELF copy: last flit written and the semaphore incremented
WRITE_DRAIN = 3  # remote write: tail arrival to the inbound semaphore increment
WRITE_START = 3  # write packets: the packetizer's SRAM read before the head flit leaves
SIGNAL_DRAIN = 3  # SIGNAL packet: ejection to the semaphore increment (RTL chip, measured)
RESP_DRAIN = 2  # read response: tail arrival to the local semaphore increment
# A RECT packet forking to >= 2 tiles starts only when every branch has room
# for all of it (docs/noc_multicast.md): the credits of the previous packet come back
# FORK_CREDIT_LOOP cycles after its tail left (link register, buffer, credit register),
# so a packet of F flits holds the tree F + 3 cycles unless F <= depth - 3.
FORK_CREDIT_LOOP = 3


def fork_hold(arch, payloads: list[int]) -> int:
    """Cycles a forked RECT stream of packets with these payload flits holds its tree."""
    room = arch.router_buffer_flits - FORK_CREDIT_LOOP
    return sum(p + 1 + (FORK_CREDIT_LOOP if p + 1 > room else 0) for p in payloads)


class DmaTimer:
    """Descriptor queue and executor timing of the PE at ``coords``."""

    def __init__(self, arch, coords, fabric):
        self.arch, self.coords, self.fabric = arch, tuple(coords), fabric
        self.starts: deque[int] = deque()  # start cycles of accepted descriptors
        self.engine_free = 0  # the executor can start the next descriptor
        self.drained = 0  # every effect of every descriptor has happened
        self.descriptors = 0
        self.flits = 0
        self._responders: dict[tuple[int, int], int] = {}

    def accept(self, t: int, fetch: int) -> int:
        """Cycle the DMA instruction issued at ``t`` retires (a queue slot is free
        and the descriptor fetched)."""
        q = self.starts
        while q and q[0] <= t:
            q.popleft()
        if len(q) >= self.arch.dma_queue:
            t = max(t, q[len(q) - self.arch.dma_queue])
        return t + fetch

    def run(self, d: dict, accepted: int) -> tuple[int, list[tuple[tuple, int]]]:
        """Time the descriptor ``d`` accepted at ``accepted``.  Returns (the cycle
        the local completion semaphore increments, or -1) and a list of (target
        coords, cycle) for remote increments / arrivals (a multicast read: every
        receiver's, this PE's included)."""
        a, fab = self.arch, self.fabric
        c0, rows = d["count0"], d["count1"] * d["count2"]
        mode = d["mode"]
        rect = mode == SignalMode.RECT  # RECT writes and multicast reads
        # RECT packets carry at most rect_payload_flits payload flits (docs/dma.md)
        payload = a.rect_payload_flits if rect else a.max_packet_flits
        row = [payload] * (c0 // payload) + ([c0 % payload] if c0 % payload else [])
        packets = rows * len(row)
        words = c0 * rows
        flits = words + packets
        s = max(accepted, self.engine_free)
        self.starts.append(s)
        self.descriptors += 1
        local_done, remote = -1, []
        if mode == SignalMode.SELF:
            end = s + flits
            self.engine_free = end
            local_done = end + SELF_DRAIN
            self.drained = max(self.drained, local_done)
            return local_done, remote
        self.flits += flits if not d["read"] else packets
        target = (d["x0"], d["y0"])
        if d["read"]:
            return self._read(d, s, packets, words, row)
        if mode == SignalMode.RECT:
            x0, y0, x1, y1 = d["x0"], d["y0"], d["x1"], d["y1"]
            if x0 > x1 or y0 > y1:
                return -1, remote
            route = fab.rect(self.coords, x0, y0, x1, y1)
        else:
            route = fab.unicast(self.coords, target)
        # a forked packet is allocated virtual cut-through: it waits until every branch
        # has credits for all of it, so it holds the tree longer than its flits
        if rect and (d["x1"] - d["x0"] + 1) * (d["y1"] - d["y0"] + 1) >= 2:
            hold = rows * fork_hold(a, row)
        else:
            hold = flits
        sent, tails = fab.send(route, max(hold, flits), s + WRITE_START)
        end = sent
        for (link, _, _), tail in zip(route, tails, strict=True):
            sink = fab.sink[link]
            if sink is None:
                continue
            if sink[0] == "tile":
                remote.append((sink[1], tail + WRITE_DRAIN))
            else:  # the DRAM port's bandwidth holds the sender back (backpressure)
                done = fab.dram_write(sink[1], 16 * words, tail - flits + 1)
                remote.append((target, done))
                end = max(end, done)
        self.engine_free = end
        self.drained = max(self.drained, end + WRITE_DRAIN)
        return local_done, remote

    def _read(self, d: dict, s: int, packets: int, words: int, row: list[int]) -> tuple:
        """A read started at ``s``: one single-flit READ_REQ per packet (payloads of
        one row: ``row``), the answerer's response train back, to this PE or (a
        multicast read) along the RECT tree to every PE of the rectangle."""
        a, fab = self.arch, self.fabric
        target = (d["x0"], d["y0"])
        route = fab.unicast(self.coords, target)
        sent, tails = fab.send(route, packets, s)
        self.engine_free = sent
        first = tails[-1] - packets + 1
        flits = words + packets
        train, mcast = flits, d["mode"] == SignalMode.RECT
        if mcast and not fab.direct:  # (the stand-in: one PE, DRAM attached to it)
            x0, y0, x1, y1 = mcast_rect(a, self.coords, d["x1"], d["y1"])
            back = fab.rect(target, x0, y0, x1, y1)
            if (x1 - x0 + 1) * (y1 - y0 + 1) >= 2:  # the answers fork: held as RECT writes
                train = max(flits, d["count1"] * d["count2"] * fork_hold(a, row))
        else:
            back = fab.unicast(target, self.coords)
        if target in fab.dram_nodes:
            ready = fab.dram_read(fab.dram_nodes[target], 16 * words, packets, first, train)
        else:
            ready = max(first + 1, self._responder(target, first))
            self._responders[target] = ready + train
        _, rtails = fab.send(back, train, ready)
        arrivals = [
            (fab.sink[link][1], tail + RESP_DRAIN)
            for (link, _, _), tail in zip(back, rtails, strict=True)
            if fab.sink[link] is not None and fab.sink[link][0] == "tile"
        ]
        local_done = max(t for c, t in arrivals if c == self.coords)
        self.drained = max(self.drained, local_done)
        return local_done, arrivals if mcast else []

    def _responder(self, target, t: int) -> int:
        return max(t, self._responders.get(target, 0))

    def signal(self, t: int, mode: int, target: tuple[int, int, int, int]) -> list:
        """A single-flit SIGNAL packet sent at ``t``: [(coords, arrival cycle)]."""
        fab = self.fabric
        x0, y0, x1, y1 = target
        if mode == SignalMode.RECT:
            if x0 > x1 or y0 > y1:
                return []
            route = fab.rect(self.coords, x0, y0, x1, y1)
        else:
            route = fab.unicast(self.coords, (x0, y0))
        s = max(t, self.engine_free)
        _, tails = fab.send(route, 1, s)
        self.flits += 1
        out = []
        for (link, _, _), tail in zip(route, tails, strict=True):
            sink = fab.sink[link]
            if sink is not None and sink[0] == "tile":
                out.append((sink[1], tail + SIGNAL_DRAIN))
        return out


class _Timed:
    """Mixin: the data of a write lands now, its semaphore increment later."""

    model = None  # the PerfSim, set by it

    def targets(self, mode, target):
        x0, y0, x1, y1 = target
        if mode == SignalMode.NODE:
            x1, y1 = x0, y0
        a = self.arch
        if mode in (SignalMode.NODE, SignalMode.RECT) and x1 < a.mesh_cols and y1 < a.mesh_rows:
            for y in range(y0, y1 + 1):  # ChipSim has every PE: create the unloaded ones
                for x in range(x0, x1 + 1):
                    if (x, y) not in self.endpoints:
                        self.model.blank_pe(self, (x, y))
        return super().targets(mode, target)

    def write(self, mode, target, addrs, rows, sem) -> None:
        super().write(mode, target, addrs, rows, None)
        if sem is not None:
            self.model.remote_signal(self.targets(mode, target), sem, 1)

    def signal(self, mode, target, sem, count) -> None:
        eps = self.targets(mode, target)
        if any(isinstance(ep, Dram) for ep in eps):
            raise DmaRefused(f"signal refused by node {target[:2]}")
        self.model.remote_signal(eps, sem, count)


class TimedNetwork(_Timed, ChipNetwork):
    """ChipNetwork with deferred semaphore increments."""


class TimedStandIn(_Timed, StandInNetwork):
    """StandInNetwork (one PE + DRAM port 0) with deferred semaphore increments."""
