"""Dependency graph of the router's multicast allocation rule (``hw.noc.alloc``).

``hw.noc.cdg`` builds the channel dependency graph (CDG) of the routing
function.  The allocator adds dependencies of its own, because a multicast
head takes its outputs one after the other in ``hw.noc.alloc.ORDER`` and holds
the ones it has while it waits for the next (``docs/noc_multicast.md``):

* *reservation*: at a router where some multicast packet's output set contains
  ``o1`` before ``o2`` (in ``ORDER``), every input channel that may ask for ``o1``
  may wait for the channel behind ``o2`` (the packet holding ``o1`` waits for it).

A multicast packet that fits in a buffer starts only with room for the whole
packet on **every** output (virtual cut-through), so once started none of its
branches waits and every flit it holds an output for arrives: it adds nothing
else.  The allocation is deadlock-free when this graph is acyclic;
``tests/hw/test_router_mcast.py`` checks it for several meshes, and that other
orders are cyclic.

``lagging_last=True`` models the previous rule, under which the last output of
a multicast packet (in ``ORDER``) could start without room and lag: the packet's
flits then reach the routers behind its other branches only as fast as the last
branch moves, so every output the packet holds in those subtrees, and every
input channel that may ask for such an output, waits for the channel behind the
last branch (*starved subtree*).  That graph is cyclic (from 2 x 2 up; the
channel-level graph over-approximates) and holds the wait-for cycle of the
seed-43 deadlock on 3 x 3.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import networkx as nx

from hw.arch import ArchConfig
from hw.isa import MsgClass
from hw.noc.cdg import _channel, _injection_ports, heads_for
from hw.noc.model import ref_route

__all__ = ["allocation_dependency_graph"]

State = tuple[int, int, int]  # router x, y, input port


def allocation_dependency_graph(
    arch: ArchConfig,
    msg_class: MsgClass,
    order: Sequence[int],
    route_fn=ref_route,
    lagging_last: bool = False,
) -> nx.DiGraph:
    """The routing CDG plus the allocator's edges for output order ``order``
    (``lagging_last``: the previous rule's edges too, see the module doc)."""
    rank = {o: k for k, o in enumerate(order)}
    g = nx.DiGraph(msg_class=msg_class)
    wanted_by = defaultdict(set)  # (x, y, output) -> input channels that may ask for it
    fork_sets = defaultdict(set)  # (x, y) -> output sets with more than one output
    starved = set()  # ((x, y, output) held in a starved subtree, channel it waits for)
    for head in heads_for(arch, msg_class):
        outs_of: dict[State, list[int]] = {}
        todo = [
            (x, y, p)
            for y in range(arch.mesh_rows)
            for x in range(arch.mesh_cols)
            for p in _injection_ports(arch, x, y)
        ]
        while todo:
            state = todo.pop()
            if state in outs_of:
                continue
            x, y, port = state
            src = ("in", x, y, port)
            outs = sorted(route_fn(arch, x, y, port, head, ()), key=rank.__getitem__)
            outs_of[state] = outs
            g.add_node(src)
            for o in outs:
                target = _channel(arch, x, y, o)
                g.add_edge(src, target)
                wanted_by[(x, y, o)].add(src)
                if target[0] == "in":
                    todo.append(target[1:])
            if len(outs) > 1:
                fork_sets[(x, y)].add(tuple(outs))
        if lagging_last:
            starved |= _starved_subtrees(arch, outs_of)
    for (x, y), sets in fork_sets.items():
        for outs in sets:
            for k, o1 in enumerate(outs):
                for o2 in outs[k + 1 :]:
                    behind = _channel(arch, x, y, o2)
                    g.add_edges_from((c, behind) for c in wanted_by[(x, y, o1)])
    for held, behind in starved:
        g.add_edges_from((c, behind) for c in wanted_by[held])
    return g


def _starved_subtrees(arch: ArchConfig, outs_of: dict[State, list[int]]) -> set:
    """Under the previous rule, for one head: every (router, output) held by the packet
    behind a non-last branch of a fork, with the channel behind that fork's last branch."""
    below: dict[State, frozenset] = {}

    def subtree(state: State) -> frozenset:  # (x, y, output) the packet takes from here
        if state not in below:
            x, y, _ = state
            found = set()
            for o in outs_of[state]:
                found.add((x, y, o))
                if (c := _channel(arch, x, y, o))[0] == "in":
                    found |= subtree(c[1:])
            below[state] = frozenset(found)
        return below[state]

    edges = set()
    for (x, y, _), outs in outs_of.items():
        if len(outs) < 2:
            continue
        last = _channel(arch, x, y, outs[-1])
        for o in outs[:-1]:
            if (c := _channel(arch, x, y, o))[0] == "in":
                edges |= {(held, last) for held in subtree(c[1:])}
    return edges
