"""The channel dependency graph of the router's routing function, per message class."""

import pytest

from hw.arch import PRESETS
from hw.isa import MsgClass
from hw.noc.cdg import channel_dependency_graph, find_cycle, xy_or_yx_route
from hw.noc.link import EAST, NORTH, SOUTH, WEST

MESHES = [(2, 2), (4, 4), (8, 8), (8, 19)]


def arch_of(cols, rows):
    return PRESETS["tiny"].replace(mesh_cols=cols, mesh_rows=rows)


@pytest.mark.parametrize("cls", list(MsgClass), ids=lambda c: c.name)
@pytest.mark.parametrize("mesh", MESHES, ids=lambda m: f"{m[0]}x{m[1]}")
def test_xy_routing_is_acyclic(mesh, cls):
    g = channel_dependency_graph(arch_of(*mesh), cls)
    # every link input buffer and every injection point is a channel
    assert g.number_of_nodes() > 4 * mesh[0] * mesh[1]
    assert find_cycle(g) is None


@pytest.mark.parametrize("mesh", [(2, 2), (4, 4)], ids=lambda m: f"{m[0]}x{m[1]}")
def test_xy_or_yx_routing_is_detected_as_cyclic(mesh):
    g = channel_dependency_graph(arch_of(*mesh), MsgClass.REQUEST, route_fn=xy_or_yx_route)
    cycle = find_cycle(g)
    assert cycle is not None
    print("cycle:", cycle)


def test_long_tree_multicast_is_cyclic_with_branch_coupling():
    """Why long multicast packets are unsafe (and short ones go cut-through)."""
    g = channel_dependency_graph(arch_of(3, 3), MsgClass.REQUEST, branch_coupling=True)
    assert find_cycle(g) is not None


def test_key_tables_are_checked():
    arch = arch_of(2, 2)
    # key 7 goes round the 2 x 2 ring: a routing loop
    ring = {(0, 0): EAST, (1, 0): SOUTH, (1, 1): WEST, (0, 1): NORTH}
    loop = {xy: [(7, 0xFF, 1 << port, True)] for xy, port in ring.items()}
    assert find_cycle(channel_dependency_graph(arch, MsgClass.REQUEST, tables=loop))
    tree = {(0, 0): [(7, 0xFF, 1 << EAST | 1 << SOUTH, True)]}
    assert find_cycle(channel_dependency_graph(arch, MsgClass.REQUEST, tables=tree)) is None
