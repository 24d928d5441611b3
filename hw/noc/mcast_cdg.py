"""Dependency graph of the router's multicast allocation rule (``hw.noc.alloc``).

``hw.noc.cdg`` builds the channel dependency graph (CDG) of the routing
function.  The allocator adds dependencies of its own, because a multicast
head takes its outputs one after the other in ``hw.noc.alloc.ORDER`` and holds
the ones it has while it waits for the next (``docs/noc_multicast.md``):

* *reservation*: at a router where some multicast packet's output set contains
  ``o1`` before ``o2`` (in ``ORDER``), every input channel that may ask for ``o1``
  may wait for the channel behind ``o2`` (the packet holding ``o1`` waits for it);
* *lagging last branch*: only the last output of a multicast packet may start
  without room for the whole packet, so the channels behind its other outputs
  may wait for the channel behind the last one.

Every other branch of a multicast packet that fits in a buffer starts with room
for the whole packet and never waits, so it adds nothing.  The allocation is
deadlock-free when this graph is acyclic; ``tests/hw/test_router_mcast.py``
checks it for several meshes, and that other orders are cyclic.
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


def allocation_dependency_graph(
    arch: ArchConfig, msg_class: MsgClass, order: Sequence[int], route_fn=ref_route
) -> nx.DiGraph:
    """The routing CDG plus the allocator's edges for output order ``order``."""
    rank = {o: k for k, o in enumerate(order)}
    g = nx.DiGraph(msg_class=msg_class)
    wanted_by = defaultdict(set)  # (x, y, output) -> input channels that may ask for it
    fork_sets = defaultdict(set)  # (x, y) -> output sets with more than one output
    for head in heads_for(arch, msg_class):
        seen: set[tuple[int, int, int]] = set()
        todo = [
            (x, y, p)
            for y in range(arch.mesh_rows)
            for x in range(arch.mesh_cols)
            for p in _injection_ports(arch, x, y)
        ]
        while todo:
            state = todo.pop()
            if state in seen:
                continue
            seen.add(state)
            x, y, port = state
            src = ("in", x, y, port)
            outs = route_fn(arch, x, y, port, head, ())
            g.add_node(src)
            for o in outs:
                target = _channel(arch, x, y, o)
                g.add_edge(src, target)
                wanted_by[(x, y, o)].add(src)
                if target[0] == "in":
                    todo.append(target[1:])
            if len(outs) > 1:
                fork_sets[(x, y)].add(tuple(sorted(outs, key=rank.__getitem__)))
    for (x, y), sets in fork_sets.items():
        for outs in sets:
            for k, o1 in enumerate(outs):
                for o2 in outs[k + 1 :]:
                    behind = _channel(arch, x, y, o2)
                    g.add_edges_from((c, behind) for c in wanted_by[(x, y, o1)])
            last = _channel(arch, x, y, outs[-1])
            for o in outs[:-1]:
                if (c := _channel(arch, x, y, o))[0] == "in":
                    g.add_edge(c, last)
    return g
