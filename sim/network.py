"""Functional network and DRAM models for the reference simulator.

The reference PE (:class:`sim.pe_sim.PeSim`) executes a DMA or SIGNAL as one
functional effect, at once, through a :class:`Network`.  Programs are race-free
(they WAIT on the completion semaphore before touching the data), so timing
does not change the result.  Point-to-point order holds: effects from one source
to one destination happen in issue order (a DRAM write followed by a read of the
same bytes returns the written data).

Endpoints (PEs and DRAM ports) sit at mesh coordinates; ``hw.isa.dram_node``
gives the DRAM ports' virtual coordinates.  An endpoint implements::

    net_write(addrs, rows, sem) -> bool   rows[i] (uint8) lands at addrs[i]; then
                                          sem += 1 if sem is not None
    net_read(addrs, row_bytes) -> array | None
    net_signal(sem, count) -> bool

``False``/``None`` means the endpoint refused (range outside its memory): the
requester's DMA faults.  A PE receiving a write outside its SRAM, or a signal
past ``sem_max``, faults itself (DMA / SEM_OVERFLOW) and returns True: the
sender is not affected.  The network raises :class:`DmaRefused` for an
unreachable node or a refused request; the PE turns it into a DMA fault.

A multicast read (docs/isa.md, "Multicast reads") is a read from one node and a
RECT write of its rows, with the completion semaphore, to every PE of the
rectangle :func:`mcast_rect` gives (:meth:`Network.read_multicast`): each
receiver checks its local range as for any inbound write.

* :class:`StandInNetwork`: one PE plus DRAM port 0; any other node is a fault.
* :class:`ChipNetwork`: every PE of the mesh plus every DRAM port;
  :class:`ChipSim` runs its PEs round-robin until all halt.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from hw.errors import SimulationError
from hw.isa import SignalMode, dram_node

__all__ = [
    "ChipNetwork",
    "ChipSim",
    "DmaRefused",
    "Dram",
    "Endpoint",
    "Network",
    "StandInNetwork",
    "mcast_rect",
]


class DmaRefused(Exception):
    """The network or an endpoint refused a DMA or SIGNAL (a DMA fault at the sender)."""


class Endpoint(Protocol):
    def net_write(self, addrs: np.ndarray, rows: np.ndarray, sem: int | None) -> bool: ...
    def net_read(self, addrs: np.ndarray, row_bytes: int) -> np.ndarray | None: ...
    def net_signal(self, sem: int, count: int) -> bool: ...


def gather_rows(mem: np.ndarray, addrs: np.ndarray, row_bytes: int) -> np.ndarray:
    """rows x row_bytes uint8 array of ``mem[addrs[i] : addrs[i] + row_bytes]``."""
    idx = np.asarray(addrs, dtype=np.int64)[:, None] + np.arange(row_bytes, dtype=np.int64)
    return mem[idx]


def scatter_rows(mem: np.ndarray, addrs: np.ndarray, rows: np.ndarray) -> None:
    """Write rows in order (a later row wins where rows overlap)."""
    addrs = np.asarray(addrs, dtype=np.int64)
    row_bytes = rows.shape[1]
    starts = np.sort(addrs)
    if len(addrs) > 1 and (np.any(np.diff(starts) < row_bytes)):
        for a, r in zip(addrs.tolist(), rows, strict=True):
            mem[a : a + row_bytes] = r
        return
    idx = addrs[:, None] + np.arange(row_bytes, dtype=np.int64)
    mem[idx] = rows


def mcast_rect(arch, requester: tuple[int, int], x1: int, y1: int) -> tuple[int, int, int, int]:
    """The receivers of a multicast read as a RECT target (x0, y0, x1, y1): the
    rectangle spanned by the requesting PE and the far corner (x1, y1), clipped to
    the mesh (docs/isa.md, "Multicast reads")."""
    rx, ry = requester
    return (
        min(rx, x1),
        min(ry, y1),
        min(max(rx, x1), arch.mesh_cols - 1),
        min(max(ry, y1), arch.mesh_rows - 1),
    )


def rows_in_range(addrs: np.ndarray, row_bytes: int, limit: int) -> bool:
    return bool(len(addrs) == 0 or (addrs.min() >= 0 and addrs.max() + row_bytes <= limit))


class Dram:
    """One DRAM port: a byte array with backdoor load/dump; it has no semaphores."""

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 0:
            raise SimulationError(f"DRAM size must be a non-negative integer, not {size!r}")
        self.mem = np.zeros(size, dtype=np.uint8)

    def load(self, addr: int, data: bytes) -> None:
        if addr < 0 or addr + len(data) > len(self.mem):
            raise SimulationError(
                f"DRAM load [{addr:#x}, {addr + len(data):#x}) lies outside "
                f"DRAM of {len(self.mem):#x} bytes"
            )
        self.mem[addr : addr + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def dump(self, addr: int, nbytes: int) -> bytes:
        if addr < 0 or addr + nbytes > len(self.mem):
            raise SimulationError(
                f"DRAM dump [{addr:#x}, {addr + nbytes:#x}) lies outside "
                f"DRAM of {len(self.mem):#x} bytes"
            )
        return self.mem[addr : addr + nbytes].tobytes()

    def net_write(self, addrs, rows, sem):  # the signal flag is ignored: no semaphores
        if not rows_in_range(addrs, rows.shape[1], len(self.mem)):
            return False
        scatter_rows(self.mem, addrs, rows)
        return True

    def net_read(self, addrs, row_bytes):
        if not rows_in_range(addrs, row_bytes, len(self.mem)):
            return None
        return gather_rows(self.mem, addrs, row_bytes)

    def net_signal(self, sem, count):
        return False


class Network:
    """Functional delivery between endpoints registered at (x, y) coordinates."""

    def __init__(self, arch):
        self.arch = arch
        self.endpoints: dict[tuple[int, int], Endpoint] = {}

    def attach(self, pe) -> None:
        """Register a PE at ``pe.coords`` (called by PeSim)."""
        self.endpoints[tuple(pe.coords)] = pe

    def targets(self, mode: int, target: tuple[int, int, int, int]) -> list[Endpoint]:
        """Endpoints named by a NODE or RECT target (x0, y0, x1, y1); DmaRefused if any
        node is unreachable or the rectangle is empty or inverted."""
        x0, y0, x1, y1 = target
        if mode == SignalMode.NODE:
            nodes = [(x0, y0)]
        elif mode == SignalMode.RECT:
            if x0 > x1 or y0 > y1:
                raise DmaRefused(f"rectangle ({x0}, {y0})..({x1}, {y1}) is inverted")
            nodes = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
        else:
            raise DmaRefused(f"target mode {mode} is not NODE or RECT")
        out = []
        for n in nodes:
            ep = self.endpoints.get(n)
            if ep is None or (mode == SignalMode.RECT and isinstance(ep, Dram)):
                raise DmaRefused(f"node {n} is not reachable from here")
            out.append(ep)
        return out

    def write(self, mode, target, addrs, rows, sem) -> None:
        for ep in self.targets(mode, target):
            if not ep.net_write(addrs, rows, sem):
                raise DmaRefused(f"write of {len(addrs)} rows refused by node {target[:2]}")

    def read(self, target, addrs, row_bytes) -> np.ndarray:
        (ep,) = self.targets(SignalMode.NODE, target)
        data = ep.net_read(addrs, row_bytes)
        if data is None:
            raise DmaRefused(f"read of {len(addrs)} rows refused by node {target[:2]}")
        return data

    def read_multicast(self, node, rect, src_addrs, dst_addrs, row_bytes, sem) -> None:
        """Read the rows at ``src_addrs`` of ``node`` once and write them, then
        increment ``sem``, at ``dst_addrs`` of every PE of the rectangle ``rect``
        (:func:`mcast_rect`).  DmaRefused (nothing written) if the read is refused or
        a receiver is unreachable; a receiver outside whose SRAM the rows fall faults
        itself."""
        rows = self.read((*node, *node), src_addrs, row_bytes)
        self.write(SignalMode.RECT, rect, dst_addrs, rows, sem)

    def signal(self, mode, target, sem, count) -> None:
        for ep in self.targets(mode, target):
            if not ep.net_signal(sem, count):
                raise DmaRefused(f"signal refused by node {target[:2]}")

    def dram(self, port: int = 0) -> Dram:
        ep = self.endpoints.get(dram_node(self.arch, port))
        if not isinstance(ep, Dram):
            raise SimulationError(f"this network has no DRAM port {port}")
        return ep

    def load_dram(self, segments) -> None:
        """Load image DRAM segments (global addresses, ports concatenated)."""
        size = self.arch.dram_bytes // max(self.arch.dram_ports, 1)
        for addr, data in segments:
            port, off = divmod(addr, size) if size else (0, addr)
            self.dram(port).load(off, data)


class StandInNetwork(Network):
    """One PE (attached by PeSim) plus DRAM port 0 at ``hw.isa.dram_node(arch, 0)``."""

    def __init__(self, arch, dram_bytes: int | None = None):
        super().__init__(arch)
        size = arch.dram_bytes if dram_bytes is None else dram_bytes
        if arch.dram_ports:
            self.endpoints[dram_node(arch, 0)] = Dram(size)

    def attach(self, pe) -> None:
        pes = [e for e in self.endpoints.values() if not isinstance(e, Dram)]
        if pes and pes[0] is not pe:
            raise SimulationError("a StandInNetwork holds one PE; use ChipNetwork for more")
        super().attach(pe)

    def load_dram(self, segments) -> None:
        for addr, data in segments:
            self.dram(0).load(addr, data)


class ChipNetwork(Network):
    """Every PE of a mesh (attached as they are created) plus every DRAM port."""

    def __init__(self, arch, dram_bytes: int | None = None):
        super().__init__(arch)
        size = arch.dram_bytes // max(arch.dram_ports, 1) if dram_bytes is None else dram_bytes
        for p in range(arch.dram_ports):
            self.endpoints[dram_node(arch, p)] = Dram(size)


class ChipSim:
    """All PEs of one chip on a :class:`ChipNetwork`, run round-robin."""

    def __init__(self, arch, dram_bytes: int | None = None, quantum: int = 256):
        from sim.pe_sim import PeSim  # sim.pe_sim imports this module

        if not isinstance(quantum, int) or quantum < 1:
            raise SimulationError(f"quantum must be a positive integer, not {quantum!r}")
        self.arch = arch
        self.quantum = quantum
        self.network = ChipNetwork(arch, dram_bytes)
        self.pes = {
            (x, y): PeSim(arch, (x, y), self.network)
            for y in range(arch.mesh_rows)
            for x in range(arch.mesh_cols)
        }
        self.active: set[tuple[int, int]] = set()

    def load(self, coords: tuple[int, int], image) -> None:
        """Load ``image`` into the PE at ``coords`` (its DRAM segments into DRAM)."""
        if coords not in self.pes:
            raise SimulationError(
                f"no PE at {coords}; the mesh is {self.arch.mesh_cols} x {self.arch.mesh_rows}"
            )
        self.pes[coords].load(image, load_dram=False)
        self.network.load_dram(image.dram)
        self.active.add(coords)

    def run(self, max_instructions: int = 10**8, check: bool = True) -> dict:
        """Step the loaded PEs until all halt; returns {coords: RunResult}.

        SimulationError on deadlock (every running PE blocked in WAIT), on
        ``max_instructions`` (summed over PEs), and, with ``check``, on a PE error.
        """
        results = {}
        total = 0
        running = sorted(self.active)
        while running:
            progress = False
            for c in list(running):
                r = self.pes[c].run(self.quantum)
                total += r.executed
                progress |= r.executed > 0
                if r.status in ("halted", "error"):
                    results[c] = r
                    running.remove(c)
                    if r.status == "error" and check:
                        raise SimulationError(
                            f"PE {c} stopped with error {r.error.name} at pc {r.error_pc}"
                        )
            if running and not progress:
                waits = ", ".join(f"{c} at pc {self.pes[c].pc}" for c in running)
                raise SimulationError(f"deadlock: every running PE is blocked in WAIT: {waits}")
            if total > max_instructions:
                raise SimulationError(f"no halt after {total} instructions")
        return results
