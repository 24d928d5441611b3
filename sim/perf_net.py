"""Timing resources of the performance model: NoC links, DRAM ports, chip links.

Transaction level: a packet train ("burst") of F flits reserves each link of its
route for F consecutive cycles, first come first served in the order the model
issues transfers (which is simulated-time order).  A link carries 1 flit per
cycle.  Latency (docs/noc.md, measured): ``3 + 2 * hops`` cycles from a PE's
stream to another PE's stream for a head flit, i.e. 1 on the injection link,
``hop_latency`` (2) per router-to-router link and 2 on the ejection link; the
tail follows the head F - 1 cycles later.  RECT multicast reserves the links of
the XY tree (docs/noc.md, "Routing function"): from the source along its row to
the rectangle's columns, forking north/south in every column of the rectangle (a
multicast read's answers from a DRAM port start at the port's router).

DRAM port p sits beyond the east edge at ``hw.isa.dram_node(arch, p)``.  Its
service: a read of B bytes requested at t starts returning data at
``max(t + dram_latency, port_free)`` and holds the port for B /
dram_bytes_per_cycle cycles (pipelined requests); a write waits for every queued
read's answer and holds later requests until it is stored (the endpoint's order).
``serial_dram=True`` instead mimics the cosim network stub (cosim/netstub.py): one
request at a time, each paying the full latency.

Chip-to-chip links (boards): :meth:`BoardLinks.transfer` moves bytes between
chips along an XY path of chip links, each ``chip_link_latency`` cycles and
``chip_link_bytes_per_cycle`` wide, with the same FCFS reservation.
"""

from __future__ import annotations

from hw.isa import dram_node

__all__ = ["BoardLinks", "Fabric"]

INJECT_LATENCY = 1
EJECT_LATENCY = 2
STUB_OVERHEAD = 3  # cosim stub: cycles per request beyond latency and data
DRAM_PACKET_GAP = 0  # DRAM endpoint (cosim/dram.py): idle cycles per response packet (none:
# the next answer starts as the last data flit leaves)


class Fabric:
    """The links of one chip's mesh and its DRAM ports, with reservations."""

    def __init__(self, arch, hop_latency: int = 2, serial_dram: bool = False):
        if not isinstance(hop_latency, int) or hop_latency < 1:
            raise ValueError(f"hop_latency must be a positive integer, not {hop_latency!r}")
        self.arch = arch
        self.hop = hop_latency
        self.serial_dram = serial_dram
        self.direct = False  # DRAM attached straight to the PE (the cosim stand-in)
        cols, rows = arch.mesh_cols, arch.mesh_rows
        self.names: list[str] = []
        self.sink: list[tuple | None] = []
        self.mesh_links: list[int] = []
        self._ids: dict[tuple, int] = {}
        for y in range(rows):
            for x in range(cols):
                self._add(("inj", x, y))
                self._add(("ej", x, y))
                for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    if 0 <= x + dx < cols and 0 <= y + dy < rows:
                        self.mesh_links.append(self._add(("mesh", x, y, x + dx, y + dy)))
        self.dram_nodes = {dram_node(arch, p): p for p in range(arch.dram_ports)}
        for p in range(arch.dram_ports):
            self._add(("dram_in", p))
            self._add(("dram_out", p))
        n = len(self.names)
        self.free = [0] * n
        self.busy = [0] * n
        self.dram_free = [0] * arch.dram_ports
        self.dram_bytes = [0] * arch.dram_ports
        self.dram_busy = [0] * arch.dram_ports
        self.dram_reads_end = [0] * arch.dram_ports  # the last read's answer has left
        self.dram_gate = [0] * arch.dram_ports  # requests wait here behind a write
        self._routes: dict[tuple, list[tuple[int, int, int]]] = {}

    def _add(self, key: tuple) -> int:
        self._ids[key] = len(self.names)
        self.names.append(":".join(map(str, key)))
        # where a link delivers: ("tile", (x, y)), ("dram", port) or None (inside the mesh)
        self.sink.append(
            ("tile", key[1:])
            if key[0] == "ej"
            else ("dram", key[1])
            if key[0] == "dram_in"
            else None
        )
        return self._ids[key]

    # -- routes: lists of (link, parent index or -1, latency) in tree order ----------
    def _xy(self, sx: int, sy: int, dx: int, dy: int) -> list[tuple[int, int]]:
        """Routers visited from (sx, sy) to (dx, dy) (clipped to the mesh), XY."""
        cols, rows = self.arch.mesh_cols, self.arch.mesh_rows
        dx, dy = min(dx, cols - 1), min(dy, rows - 1)
        path = [(sx, sy)]
        x, y = sx, sy
        while x != dx:
            x += 1 if dx > x else -1
            path.append((x, y))
        while y != dy:
            y += 1 if dy > y else -1
            path.append((x, y))
        return path

    def _chain(self, routers: list[tuple[int, int]], parent: int, out: list) -> int:
        """Append the mesh links along ``routers``; returns the index of the last."""
        last = parent
        for (ax, ay), (bx, by) in zip(routers, routers[1:], strict=False):
            out.append((self._ids[("mesh", ax, ay, bx, by)], last, self.hop))
            last = len(out) - 1
        return last

    def unicast(self, src: tuple[int, int], dst: tuple[int, int]) -> list:
        """Links from the endpoint ``src`` to the endpoint ``dst`` (tiles or DRAM)."""
        key = ("u", src, dst)
        route = self._routes.get(key)
        if route is not None:
            return route
        route = []
        if src in self.dram_nodes:
            route.append((self._ids[("dram_out", self.dram_nodes[src])], -1, INJECT_LATENCY))
            start = (self.arch.mesh_cols - 1, src[1])
        else:
            route.append((self._ids[("inj", *src)], -1, INJECT_LATENCY))
            start = src
        last = 0 if self.direct else self._chain(self._xy(*start, *dst), 0, route)
        if dst in self.dram_nodes:
            route.append((self._ids[("dram_in", self.dram_nodes[dst])], last, EJECT_LATENCY))
        else:
            route.append((self._ids[("ej", *dst)], last, EJECT_LATENCY))
        self._routes[key] = route
        return route

    def rect(self, src: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> list:
        """The XY multicast tree from the endpoint ``src`` (a tile, or a DRAM port:
        a multicast read's answers enter at its router) to every tile of the
        rectangle (clipped to the mesh); the ejection links are the leaves."""
        key = ("r", src, x0, y0, x1, y1)
        route = self._routes.get(key)
        if route is not None:
            return route
        cols, rows = self.arch.mesh_cols, self.arch.mesh_rows
        x1, y1 = min(x1, cols - 1), min(y1, rows - 1)
        if src in self.dram_nodes:
            route = [(self._ids[("dram_out", self.dram_nodes[src])], -1, INJECT_LATENCY)]
            sx, sy = cols - 1, src[1]
        else:
            sx, sy = src
            route = [(self._ids[("inj", sx, sy)], -1, INJECT_LATENCY)]
        at_col = {sx: 0}
        for direction in (1, -1):  # the X phase: along the source row, both ways
            last, x = 0, sx
            while (direction > 0 and x < x1) or (direction < 0 and x > x0):
                nx = x + direction
                route.append((self._ids[("mesh", x, sy, nx, sy)], last, self.hop))
                last = len(route) - 1
                x = nx
                at_col[x] = last
        for x in range(x0, x1 + 1):  # the Y phase: fork in every column of the rectangle
            base = at_col[x]
            for hi, step in ((y1, 1), (y0, -1)):
                last, y = base, sy
                while (step > 0 and y < hi) or (step < 0 and y > hi):
                    route.append((self._ids[("mesh", x, y, x, y + step)], last, self.hop))
                    last = len(route) - 1
                    y += step
                    if y0 <= y <= y1:
                        route.append((self._ids[("ej", x, y)], last, EJECT_LATENCY))
            if y0 <= sy <= y1:
                route.append((self._ids[("ej", x, sy)], base, EJECT_LATENCY))
        self._routes[key] = route
        return route

    # -- reservations ----------------------------------------------------------------
    def send(self, route: list, flits: int, start: int) -> tuple[int, list[int]]:
        """Reserve ``route`` for a burst of ``flits`` injected from ``start``.
        Returns (the cycle the tail leaves the source, the tail arrival cycle at
        the end of each link of the route)."""
        free, busy = self.free, self.busy
        head = [0] * len(route)
        tails = [0] * len(route)
        for i, (link, parent, lat) in enumerate(route):
            ready = start if parent < 0 else head[parent]
            s = max(ready, free[link])
            free[link] = s + flits
            busy[link] += flits
            head[i] = s + lat
            tails[i] = s + lat + flits - 1
        return free[route[0][0]], tails

    def dram_read(
        self, port: int, nbytes: int, requests: int, arrive: int, train: int | None = None
    ) -> int:
        """Cycle the response train of a read of ``nbytes`` (``requests`` packets,
        ``nbytes / 16 + requests`` flits) starts leaving DRAM port ``port`` when the
        first request arrives at ``arrive``: the train ends when the port has
        delivered the data.  ``train``: the cycles the train takes to leave when
        the network accepts it slower than one flit per cycle (a forked multicast
        read answer, ``sim.perf_dma.fork_hold``); the port is held as long."""
        a = self.arch
        data = -(-nbytes // a.dram_bytes_per_cycle)
        flits = nbytes // 16 + requests if train is None else train
        self.dram_bytes[port] += nbytes
        self.dram_busy[port] += data
        if self.serial_dram:
            per = a.dram_latency + -(-nbytes // (requests * a.dram_bytes_per_cycle))
            s = max(arrive, self.dram_free[port])
            end = s + requests * (per + STUB_OVERHEAD)
            self.dram_free[port] = end
            return max(s + a.dram_latency, end - flits)
        arrive = max(arrive, self.dram_gate[port])
        s = max(arrive + a.dram_latency, self.dram_free[port])
        busy = max(data, flits + requests * DRAM_PACKET_GAP)  # bandwidth or packet rate
        self.dram_free[port] = s + busy
        self.dram_reads_end[port] = s + busy
        return max(s, s + busy - flits)

    def dram_write(self, port: int, nbytes: int, arrive: int) -> int:
        """Account a write arriving at ``arrive``; the cycle the port is done.  The
        endpoint (cosim/dram.py) keeps reads and writes in arrival order: a write
        waits until every queued read has been answered, and requests behind it wait
        in the network until it is stored (``dram_gate``)."""
        data = -(-nbytes // self.arch.dram_bytes_per_cycle)
        s = max(arrive, self.dram_free[port], self.dram_reads_end[port], self.dram_gate[port])
        self.dram_free[port] = s + data
        self.dram_gate[port] = s + data
        self.dram_bytes[port] += nbytes
        self.dram_busy[port] += data
        return s + data

    def link_stats(self, cycles: int) -> dict[str, float]:
        """Utilization (busy flit-cycles / cycles) of the mesh links."""
        if not self.mesh_links or cycles <= 0:
            return {"link_util_max": 0.0, "link_util_mean": 0.0, "busiest_link": ""}
        utils = [self.busy[i] / cycles for i in self.mesh_links]
        top = max(range(len(utils)), key=utils.__getitem__)
        return {
            "link_util_max": round(min(max(utils), 1.0), 4),
            "link_util_mean": round(sum(utils) / len(utils), 4),
            "busiest_link": self.names[self.mesh_links[top]] if utils[top] else "",
        }


class BoardLinks:
    """Chip-to-chip links of a board (chips_cols x chips_rows chips, XY between chips)."""

    def __init__(self, arch):
        self.arch = arch
        self.free: dict[tuple, int] = {}
        self.busy: dict[tuple, int] = {}

    def path(self, src: tuple[int, int], dst: tuple[int, int]) -> list[tuple]:
        cols, rows = self.arch.chips_cols, self.arch.chips_rows
        for c in (src, dst):
            if not (0 <= c[0] < cols and 0 <= c[1] < rows):
                raise ValueError(f"chip must be inside the {cols} x {rows} board, not {c!r}")
        x, y = src
        links = []
        while x != dst[0]:
            nx = x + (1 if dst[0] > x else -1)
            links.append((x, y, nx, y))
            x = nx
        while y != dst[1]:
            ny = y + (1 if dst[1] > y else -1)
            links.append((x, y, x, ny))
            y = ny
        return links

    def transfer(self, src: tuple[int, int], dst: tuple[int, int], nbytes: int, start: int) -> int:
        """Cycle the last byte of ``nbytes`` sent at ``start`` arrives at chip ``dst``."""
        a = self.arch
        dur = -(-nbytes // a.chip_link_bytes_per_cycle)
        t = start
        for link in self.path(src, dst):
            s = max(t, self.free.get(link, 0))
            self.free[link] = s + dur
            self.busy[link] = self.busy.get(link, 0) + dur
            t = s + a.chip_link_latency
        return t + dur if src != dst else start

    def stats(self, cycles: int) -> dict[str, float]:
        if not self.busy or cycles <= 0:
            return {"chip_link_util_max": 0.0, "chip_link_util_mean": 0.0}
        utils = [b / cycles for b in self.busy.values()]
        return {
            "chip_link_util_max": round(min(max(utils), 1.0), 4),
            "chip_link_util_mean": round(sum(utils) / len(utils), 4),
        }
