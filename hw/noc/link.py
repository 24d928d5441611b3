"""Router port numbering and the credit-based link between two routers.

Ports are numbered ``LOCAL, NORTH, EAST, SOUTH, WEST`` (0..4).  ``x`` grows to
the east and ``y`` to the south, so the host (``hw.isa.host_node``, y ==
mesh_rows) sits beyond the south edge and DRAM (``hw.isa.dram_node``, x ==
mesh_cols) beyond the east edge.  Output 5 (``CONFIG``) is internal: the
router's configuration sink, reached only by CONFIG packets.
"""

from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.pe.interfaces import Flit

__all__ = [
    "LOCAL",
    "NORTH",
    "EAST",
    "SOUTH",
    "WEST",
    "CONFIG",
    "PORTS",
    "OUTPUTS",
    "PORT_NAMES",
    "OPPOSITE",
    "Link",
    "outer_ports",
    "faces_edge",
]

LOCAL, NORTH, EAST, SOUTH, WEST = range(5)
CONFIG = 5
PORTS = 5  # physical ports
OUTPUTS = 6  # physical ports + the configuration sink
PORT_NAMES = ("local", "north", "east", "south", "west")
OPPOSITE = {NORTH: SOUTH, SOUTH: NORTH, EAST: WEST, WEST: EAST}


class Link(wiring.Signature):
    """One direction of a router-to-router channel (sender's view).

    The sender drives ``valid``, ``vc`` and ``flit`` from a register; the
    receiver writes the flit into its input buffer of class ``vc`` in the same
    cycle, unconditionally: the sender may only send on a VC for which it
    holds a credit.  ``credit[v]`` pulses (one cycle, from a register of the
    receiver) each time the receiver frees a buffer slot of VC ``v``.  After
    reset the sender holds ``router_buffer_flits`` credits per VC.
    """

    def __init__(self, arch: ArchConfig):
        self.arch = arch
        super().__init__(
            {
                "valid": Out(1),
                "vc": Out(range(arch.vcs)),
                "flit": Out(Flit),
                "credit": In(arch.vcs),
            }
        )


def outer_ports(arch: ArchConfig, x: int, y: int) -> set[int]:
    """The ports of router (x, y) that face outside the mesh."""
    outer = set()
    if y == 0:
        outer.add(NORTH)
    if y == arch.mesh_rows - 1:
        outer.add(SOUTH)
    if x == 0:
        outer.add(WEST)
    if x == arch.mesh_cols - 1:
        outer.add(EAST)
    return outer


def faces_edge(arch: ArchConfig, side: int, x, y) -> Value:
    """1-bit value: side ``side`` of the router at (``x``, ``y``) faces outside the mesh.

    ``x`` and ``y`` may be integers or Amaranth values (a router's coordinate
    inputs); for integers this agrees with :func:`outer_ports`.
    """
    last = {NORTH: 0, SOUTH: arch.mesh_rows - 1, WEST: 0, EAST: arch.mesh_cols - 1}
    if side not in last:
        raise ValueError(f"side must be one of NORTH, EAST, SOUTH, WEST (1..4), not {side!r}")
    coord = y if side in (NORTH, SOUTH) else x
    return Value.cast(coord == last[side])
