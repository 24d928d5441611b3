"""Output allocation and switch arbitration of the router (one cycle).

Wormhole switching with one virtual channel per message class: an output VC
belongs to one packet from its head to its tail.  Each cycle:

1. *VC allocation*, per class: the head flits waiting at the inputs are
   visited in round-robin order; a head gets **all** outputs of its set at
   once, and only if none is held by a packet or claimed this cycle by a head
   visited before it (a waiting head claims its outputs even when it loses, so
   a multicast head cannot be starved by unicast heads).  The round-robin
   pointer stays on a blocked head until it is served.  A packet with more
   than one output that fits in a buffer (``len + 1 <= router_buffer_flits``)
   is allocated *virtual cut-through*: only when every output has credits for
   the whole packet, so that its branches never wait for each other (this is
   what keeps tree multicast deadlock-free, ``hw.noc.cdg``).
2. *Switch allocation*, per physical output: among the (at most one per
   class) packets holding it whose current flit has not yet taken this output
   and for which a credit is available, round-robin between the classes.
3. A flit leaves its input buffer (``pop``) in the cycle its last outstanding
   output takes it (outputs may take a multicast flit in different cycles);
   the packet releases its outputs when its tail leaves.

A granted head can be switched in the same cycle.  A packet with an empty
output set is consumed (``drop`` pulses); so is a body flit that arrives at an
idle input (a framing error, also ``drop``).
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.noc.link import OUTPUTS, PORTS

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
        # per input and VC: packet in progress, its outputs, outputs that took the flit
        self.active = [[Signal(name=f"active_{p}_{v}") for v in range(vcs)] for p in range(PORTS)]
        self.held = [
            [Signal(OUTPUTS, name=f"held_{p}_{v}") for v in range(vcs)] for p in range(PORTS)
        ]
        self.taken = [
            [Signal(OUTPUTS, name=f"taken_{p}_{v}") for v in range(vcs)] for p in range(PORTS)
        ]

    def elaborate(self, platform):
        m = Module()
        vcs = self.arch.vcs
        head_req = [[Signal(name=f"head_req_{p}_{v}") for v in range(vcs)] for p in range(PORTS)]
        granted = [[Signal(name=f"granted_{p}_{v}") for v in range(vcs)] for p in range(PORTS)]
        for p in range(PORTS):
            for v in range(vcs):
                i = self.inputs[p][v]
                m.d.comb += head_req[p][v].eq(i.valid & i.first & ~self.active[p][v])
        for v in range(vcs):
            self._vc_allocation(m, v, head_req, granted)
        routes = [
            [Signal(OUTPUTS, name=f"route_{p}_{v}") for v in range(vcs)] for p in range(PORTS)
        ]
        wants = [[Signal(OUTPUTS, name=f"want_{p}_{v}") for v in range(vcs)] for p in range(PORTS)]
        for p in range(PORTS):
            for v in range(vcs):
                i = self.inputs[p][v]
                owns = self.active[p][v] | granted[p][v]
                m.d.comb += [
                    routes[p][v].eq(Mux(self.active[p][v], self.held[p][v], i.route)),
                    wants[p][v].eq(Mux(owns & i.valid, routes[p][v] & ~self.taken[p][v], 0)),
                ]
        sent = self._switch_allocation(m, wants)
        self._advance(m, granted, routes, sent)
        return m

    def _vc_allocation(self, m, v, head_req, granted):
        pointer = Signal(range(PORTS), name=f"va_pointer_{v}")
        held = C(0, OUTPUTS)
        for p in range(PORTS):
            held = held | Mux(self.active[p][v], self.held[p][v], 0)
        fits = [self._fits(m, p, v) for p in range(PORTS)]
        top_served = Signal(name=f"va_top_served_{v}")
        with m.Switch(pointer):
            for start in range(PORTS):
                with m.Case(start):
                    claimed = held
                    for k in range(PORTS):
                        p = (start + k) % PORTS
                        route = self.inputs[p][v].route
                        free = ((route & claimed) == 0) & fits[p]
                        m.d.comb += granted[p][v].eq(head_req[p][v] & free)
                        claimed = claimed | Mux(head_req[p][v], route, 0)
                        if k == 0:
                            m.d.comb += top_served.eq(~head_req[p][v] | free)
        with m.If(top_served):
            m.d.sync += pointer.eq(Mux(pointer == PORTS - 1, 0, pointer + 1))

    def _fits(self, m, p, v):
        """The head at input p, class v, may be allocated as far as credits go."""
        depth = self.arch.router_buffer_flits
        i = self.inputs[p][v]
        multicast = Signal(name=f"multicast_{p}_{v}")
        m.d.comb += multicast.eq((i.route & (i.route - 1)) != 0)
        room = 1
        for o in range(OUTPUTS):
            room = room & (~i.route[o] | (self.credits[o][v] > i.length))
        fits = Signal(name=f"fits_{p}_{v}")
        m.d.comb += fits.eq(~multicast | (i.length >= depth) | room)
        return fits

    def _switch_allocation(self, m, wants):
        vcs = self.arch.vcs
        sent = [[Signal(OUTPUTS, name=f"sent_{p}_{v}") for v in range(vcs)] for p in range(PORTS)]
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

    def _advance(self, m, granted, routes, sent):
        drops = []
        for p in range(PORTS):
            for v in range(len(granted[p])):
                i = self.inputs[p][v]
                active, taken = self.active[p][v], self.taken[p][v]
                owns = active | granted[p][v]
                now_taken = taken | sent[p][v]
                done = owns & i.valid & ((routes[p][v] & ~now_taken) == 0)
                stray = i.valid & ~i.first & ~active
                m.d.comb += i.pop.eq(done | stray)
                drops.append(stray | (granted[p][v] & (i.route == 0)))
                with m.If(done):
                    m.d.sync += [taken.eq(0), active.eq(~i.last)]
                with m.Else():
                    m.d.sync += [taken.eq(now_taken), active.eq(owns)]
                with m.If(granted[p][v]):
                    m.d.sync += self.held[p][v].eq(i.route)
        m.d.comb += self.drop.eq(Cat(drops).any())
