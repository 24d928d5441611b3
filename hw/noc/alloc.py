"""Output allocation and switch arbitration of the router (one cycle).

Wormhole switching with one virtual channel per message class: an output VC
belongs to one packet (one *branch* of a multicast packet) from the cycle it
is granted until that output has taken the packet's tail.  Each cycle:

1. *VC allocation*, per output and class: a round-robin arbiter over the
   inputs whose head flit asks for the output; the winner gets it if no packet
   holds it, and the pointer moves past the winner.  A head takes the outputs
   of its set **one by one in** ``ORDER`` (direction of travel in X, north,
   south, then the sinks) and keeps those it has while it waits for the next
   (no claim on outputs it does not hold): it asks for an output only when
   every earlier output of its set is *ready*, i.e. held and, for a multicast
   packet that fits in a buffer (``len + 1 <= router_buffer_flits``), with
   credits for the whole packet, on every output of its set (virtual
   cut-through; a unicast packet needs no room).  The head starts (is
   switched) when all its outputs are ready, so no branch of a multicast
   packet ever waits for credits, and none lags behind its siblings (a lagging
   branch would starve the subtrees of the others: the seed-43 deadlock).  A
   multicast packet longer than a buffer has no room condition and is not
   deadlock-free in a mesh (``docs/noc_multicast.md``: rule, deadlock-freedom
   argument, figures).
2. *Switch allocation*, per physical output: among the (at most one per
   class) packets holding it whose current flit has not yet taken this output
   and for which a credit is available, round-robin between the classes.
3. A flit leaves its input buffer (``pop``) in the cycle its last outstanding
   output takes it (outputs may take a multicast flit in different cycles).

A granted head can be switched in the same cycle.  A packet with an empty
output set is consumed (``drop`` pulses); so is a body flit that arrives at an
idle input (a framing error, also ``drop``).  Each output is released when
it has taken the packet's tail.
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.noc.link import CONFIG, EAST, LOCAL, NORTH, OUTPUTS, PORTS, SOUTH, WEST

__all__ = ["Allocator", "InputRequest", "OutputGrant"]


class InputRequest(wiring.Signature):
    """The head of one input buffer (buffer side's view)."""

    def __init__(self):
        super().__init__(
            {
                "valid": Out(1),
                "first": Out(1),
                "last": Out(1),
                "route": Out(OUTPUTS),
                "length": Out(8),  # payload flits (head flit ``len`` field)
                "pop": In(1),
            }
        )


class OutputGrant(wiring.Signature):
    """This cycle's crossbar setting of one output (allocator's view)."""

    def __init__(self, arch: ArchConfig):
        super().__init__({"valid": Out(1), "vc": Out(range(arch.vcs)), "input": Out(range(PORTS))})


# allocation order of the outputs of one packet (docs/noc_multicast.md): the
# direction of travel in X, then north, south, and the sinks last
ORDER = (EAST, WEST, NORTH, SOUTH, LOCAL, CONFIG)


def _grid(name, shape=1, vcs=1):
    return [[Signal(shape, name=f"{name}_{p}_{v}") for v in range(vcs)] for p in range(PORTS)]


class Allocator(wiring.Component):
    def __init__(self, arch: ArchConfig):
        self.arch = arch
        vcs = arch.vcs
        super().__init__(
            {
                "inputs": In(InputRequest()).array(PORTS, vcs),
                "credits": In(range(arch.router_buffer_flits + 1)).array(OUTPUTS, vcs),
                "grant": Out(OutputGrant(arch)).array(OUTPUTS),
                "drop": Out(1),
            }
        )
        # per input and VC: packet in progress (head gone), its output set (latched
        # from the head), the outputs it holds, the outputs that took the current flit
        self.active = _grid("active", 1, vcs)
        self.route = _grid("route", OUTPUTS, vcs)
        self.held = _grid("held", OUTPUTS, vcs)
        self.taken = _grid("taken", OUTPUTS, vcs)

    def elaborate(self, platform):
        m = Module()
        vcs = self.arch.vcs
        head = _grid("head", 1, vcs)  # a head flit at the front, packet not started
        routes = _grid("routes", OUTPUTS, vcs)  # output set of the front flit's packet
        for p in range(PORTS):
            for v in range(vcs):
                i = self.inputs[p][v]
                m.d.comb += [
                    head[p][v].eq(i.valid & i.first & ~self.active[p][v]),
                    routes[p][v].eq(Mux(self.active[p][v], self.route[p][v], i.route)),
                ]
        granted = _grid("granted", OUTPUTS, vcs)
        start = _grid("start", 1, vcs)
        for v in range(vcs):
            self._vc_allocation(m, v, head, granted, start)
        wants = _grid("want", OUTPUTS, vcs)
        for p in range(PORTS):
            for v in range(vcs):
                i, taken = self.inputs[p][v], self.taken[p][v]
                owns = self.held[p][v] | granted[p][v]
                go = ~head[p][v] | start[p][v] | taken.any()  # a head waits for its start
                m.d.comb += wants[p][v].eq(Mux(i.valid & go, owns & ~taken, 0))
        sent = self._switch_allocation(m, wants)
        self._advance(m, head, routes, granted, sent)
        return m

    def _vc_allocation(self, m, v, head, granted, start):
        """Outputs in ``ORDER``, each by a round-robin arbiter over the requesting inputs.

        A head asks for an output once every output of its set earlier in ``ORDER`` is
        ready: held (or granted now) and, for a multicast packet that fits in a
        buffer, with credits for the whole packet.  It starts when all its outputs
        are ready.
        """
        depth = self.arch.router_buffer_flits
        ready = _grid(f"va_ready_{v}", OUTPUTS)
        prefix = [C(1, 1)] * PORTS  # all earlier outputs of the set are ready
        for k, o in enumerate(ORDER):
            busy = C(0, 1)
            for p in range(PORTS):
                busy = busy | self.held[p][v][o]
            req = []
            for p in range(PORTS):
                i, held = self.inputs[p][v], self.held[p][v]
                r = Signal(name=f"va_req_{o}_{p}_{v}")
                fresh = i.route[o] & ~held[o] & ~self.taken[p][v][o]
                m.d.comb += r.eq(head[p][v] & fresh & prefix[p])
                req.append(r)
            pointer = Signal(range(PORTS), name=f"va_pointer_{o}_{v}")
            with m.Switch(pointer):
                for first in range(PORTS):
                    with m.Case(first):
                        found = C(0, 1)
                        for n in range(PORTS):
                            p = (first + n) % PORTS
                            m.d.comb += granted[p][v][o].eq(req[p] & ~found & ~busy)
                            found = found | req[p]
            for p in range(PORTS):  # the pointer moves past the input served
                with m.If(granted[p][v][o]):
                    m.d.sync += pointer.eq((p + 1) % PORTS)
            for p in range(PORTS):
                i = self.inputs[p][v]
                # virtual cut-through: room downstream for the whole packet (a sink's
                # "credits" are its ejection buffer; CONFIG always has room)
                room = (self.credits[o][v] > i.length) | (i.length >= depth)
                needs_room = self._needs_room(i.route, k)
                m.d.comb += ready[p][0][o].eq(
                    (self.held[p][v][o] | granted[p][v][o]) & (~needs_room | room)
                )
                prefix[p] = prefix[p] & (~i.route[o] | ready[p][0][o])
        for p in range(PORTS):
            m.d.comb += start[p][v].eq(prefix[p])

    def _needs_room(self, route, k):
        """Whether output ``ORDER[k]`` of a packet with output set ``route`` waits for room
        for the whole packet: every output of a multicast packet does (a test mutant
        overrides this with the previous, deadlock-prone rule)."""
        return (route & (route - 1)) != 0

    def _switch_allocation(self, m, wants):
        vcs = self.arch.vcs
        sent = _grid("sent", OUTPUTS, vcs)
        sent_bits = [[[] for v in range(vcs)] for p in range(PORTS)]
        for o in range(OUTPUTS):
            cand = [Signal(name=f"sa_cand_{o}_{v}") for v in range(vcs)]
            for v in range(vcs):
                any_want = 0
                for p in range(PORTS):
                    any_want = any_want | wants[p][v][o]
                m.d.comb += cand[v].eq(any_want & (self.credits[o][v] != 0))
            last = Signal(range(vcs), name=f"sa_last_{o}")
            # two classes: the other class than the last winner goes first
            vc = Signal(range(vcs), name=f"sa_vc_{o}")
            m.d.comb += vc.eq(Mux(cand[0] & cand[1], ~last, cand[1]))
            g = self.grant[o]
            m.d.comb += [g.valid.eq(cand[0] | cand[1]), g.vc.eq(vc)]
            with m.If(g.valid):
                m.d.sync += last.eq(vc)
            for p in range(PORTS):
                for v in range(vcs):
                    bit = cand[v] & (vc == v) & wants[p][v][o]
                    sent_bits[p][v].append(bit)
                    with m.If(wants[p][v][o] & (vc == v)):
                        m.d.comb += g.input.eq(p)
        for p in range(PORTS):
            for v in range(vcs):
                m.d.comb += sent[p][v].eq(Cat(sent_bits[p][v]))
        return sent

    def _advance(self, m, head, routes, granted, sent):
        drops = []
        for p in range(PORTS):
            for v in range(len(granted[p])):
                i = self.inputs[p][v]
                active, taken, held = self.active[p][v], self.taken[p][v], self.held[p][v]
                now_taken = taken | sent[p][v]
                done = i.valid & (head[p][v] | active) & ((routes[p][v] & ~now_taken) == 0)
                stray = i.valid & ~i.first & ~active
                m.d.comb += i.pop.eq(done | stray)
                drops.append(stray | (head[p][v] & (i.route == 0)))
                # an output is released when it has taken the tail
                m.d.sync += held.eq((held | granted[p][v]) & ~Mux(i.last, sent[p][v], 0))
                with m.If(head[p][v]):
                    m.d.sync += self.route[p][v].eq(i.route)
                with m.If(done):
                    m.d.sync += [taken.eq(0), active.eq(~i.last)]
                with m.Else():
                    m.d.sync += taken.eq(now_taken)
        m.d.comb += self.drop.eq(Cat(drops).any())
