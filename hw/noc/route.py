"""Route computation: the output set of a head flit at router (x, y).

The router's coordinates are inputs (``x``, ``y``, ``hw.isa.COORD_BITS`` wide), so
one RouteCompute (and one router) serves every position of the mesh; which
sides face the mesh edge follows from them (``hw.noc.link.faces_edge``).

Computed when the flit enters an input buffer (look-ahead into the buffer), so
the allocator sees a ready-made output set.  The rules (``docs/noc.md``):

* UNICAST (x0, y0): dimension order, X first.  A target beyond the mesh is
  clipped to the nearest tile on its XY path, then leaves through that edge
  router's outer port (east if ``x0 >= mesh_cols``, else south): this is how
  DRAM (``x == mesh_cols``), the host (``y == mesh_rows``) and any
  non-existent tile are reached; the endpoint terminating that port answers.
* RECT (x0, y0)..(x1, y1): the XY tree.  Corners may be given in any order;
  the rectangle is clipped to the mesh, an empty one is dropped at the source.
  A packet in its X phase (entered from local, an outer port, or travelling
  east/west) continues east/west towards the far column and, in every column of
  the rectangle, forks north and/or south towards its rows; a packet in its Y
  phase (travelling north/south) only continues straight.  Every tile of the
  rectangle gets one copy on its local port.
* KEY (key in ``ret_addr``): the table's port set of the lowest matching
  entry; no match: straight on in the direction of travel (a packet from an
  outer port crosses to the opposite side); a locally injected packet without
  a match is dropped.
* CONFIG packets: the local output is replaced by the configuration sink.
* The port a packet arrived on is never in its output set (no U-turns),
  except local to local.  An empty output set drops the packet.
"""

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import COORD_BITS, H_KIND, H_RET, H_ROUTE, H_X0, H_X1, H_Y0, H_Y1, Kind, Route
from hw.noc.link import (
    CONFIG,
    EAST,
    LOCAL,
    NORTH,
    OPPOSITE,
    OUTPUTS,
    PORTS,
    SOUTH,
    WEST,
    faces_edge,
)
from hw.noc.table import KEY_BITS

__all__ = ["RouteCompute"]


def _field(word, f):
    return word[f.lo : f.lo + f.width]


class RouteCompute(wiring.Component):
    """Combinational: ``route`` (bit o = output o) of ``head`` arriving on ``port``
    of the router at (``x``, ``y``) (inputs, which must hold a tile of the mesh).

    ``key``/``key_hit``/``key_ports`` connect to a ``KeyTable`` lookup port.
    """

    def __init__(self, arch: ArchConfig, port: int):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if port not in range(PORTS):
            raise ValueError(f"port must be in 0..{PORTS - 1}, not {port!r}")
        self.arch, self.port = arch, port
        super().__init__(
            {
                "x": In(COORD_BITS),
                "y": In(COORD_BITS),
                "head": In(arch.flit_bits),
                "key": Out(KEY_BITS),
                "key_hit": In(1),
                "key_ports": In(PORTS),
                "route": Out(OUTPUTS),
            }
        )

    def elaborate(self, platform):
        m = Module()
        head = self.head
        unicast, rect, key = Signal(PORTS), Signal(PORTS), Signal(PORTS)
        self._unicast(m, unicast)
        self._rect(m, rect)
        self._key(m, key)
        ports = Signal(PORTS)
        with m.Switch(_field(head, H_ROUTE)):
            with m.Case(Route.UNICAST):
                m.d.comb += ports.eq(unicast)
            with m.Case(Route.RECT):
                m.d.comb += ports.eq(rect)
            with m.Case(Route.KEY):
                m.d.comb += ports.eq(key)
        if self.port != LOCAL:
            ports = ports & ~C(1 << self.port, PORTS)
        is_config = _field(head, H_KIND) == Kind.CONFIG
        local = ports[LOCAL]
        m.d.comb += self.route.eq(Cat(local & ~is_config, ports[1:], local & is_config))
        assert CONFIG == PORTS
        return m

    def _unicast(self, m, out):
        a, x, y = self.arch, self.x, self.y
        x0, y0 = _field(self.head, H_X0), _field(self.head, H_Y0)
        go_e = (x0 > x) & ~faces_edge(a, EAST, x, y)
        go_w = x0 < x
        at_col = ~go_e & ~go_w
        go_s = at_col & (y0 > y) & ~faces_edge(a, SOUTH, x, y)
        go_n = at_col & (y0 < y)
        here = at_col & ~go_s & ~go_n
        off_e, off_s = x0 >= a.mesh_cols, y0 >= a.mesh_rows
        bits = {
            LOCAL: here & ~off_e & ~off_s,
            NORTH: go_n,
            EAST: go_e | (here & off_e),
            SOUTH: go_s | (here & ~off_e & off_s),
            WEST: go_w,
        }
        m.d.comb += out.eq(Cat(bits[p] for p in range(PORTS)))

    def _rect(self, m, out):
        a, x, y, port = self.arch, self.x, self.y, self.port
        h = self.head
        ax, bx = _field(h, H_X0), _field(h, H_X1)
        ay, by = _field(h, H_Y0), _field(h, H_Y1)
        xlo, xhi_raw = Mux(ax < bx, ax, bx), Mux(ax < bx, bx, ax)
        ylo, yhi_raw = Mux(ay < by, ay, by), Mux(ay < by, by, ay)
        xhi = Mux(xhi_raw < a.mesh_cols, xhi_raw, a.mesh_cols - 1)
        yhi = Mux(yhi_raw < a.mesh_rows, yhi_raw, a.mesh_rows - 1)
        nonempty = (xlo <= xhi) & (ylo <= yhi)
        # entering the mesh here: from the PE, or from an outer port's endpoint
        inject = C(1) if port == LOCAL else faces_edge(a, port, x, y)
        eastbound = inject | C(port == WEST)
        westbound = inject | C(port == EAST)
        southbound = ~inject & C(port == NORTH)
        northbound = ~inject & C(port == SOUTH)
        x_phase = inject | C(port in (EAST, WEST))
        in_x = (xlo <= x) & (x <= xhi)
        in_y = (ylo <= y) & (y <= yhi)
        fork = in_x & x_phase
        bits = {
            LOCAL: in_x & in_y,
            EAST: eastbound & (x < xhi),
            WEST: westbound & (x > xlo),
            SOUTH: (fork | southbound) & (y < yhi),
            NORTH: (fork | northbound) & (y > ylo),
        }
        m.d.comb += out.eq(Cat(bits[p] & nonempty for p in range(PORTS)))

    def _key(self, m, out):
        m.d.comb += self.key.eq(_field(self.head, H_RET))
        # straight on; a locally injected packet has no direction: dropped
        default = 0 if self.port == LOCAL else 1 << OPPOSITE[self.port]
        m.d.comb += out.eq(Mux(self.key_hit, self.key_ports, default))
