"""The same traffic on pymtl3-net's mesh, side by side with ours (``myelin bench noc-compare``).

pymtl3-net (PyPI ``pymtl3-net``, Cornell's PyMTL3 OCN library) has two meshes:

* ``MeshNetworkMflitRTL`` (multi-flit wormhole): does **not elaborate** with
  pymtl3 3.1.17 / pymtl3-net 0.9.0 on Python 3.11 (``MeshRouterMflitRTL``
  connects an old ``pymtl3.stdlib.ifcs`` en/rdy port to a new
  ``pymtl3.stdlib.stream`` val/rdy input unit: ``InvalidConnectionError:
  There is no "en" field``), see :func:`mflit_status`;
* ``MeshNetworkRTL`` (used here): single-flit packets (a packet is one
  message that crosses a link in one cycle), 5-port routers with a 2-entry
  input queue per port, round-robin switch, val/rdy.  Its routers default to
  YX (``DORYMeshRouteUnitRTL``); we build them with ``DORXMeshRouteUnitRTL``
  (XY) like ours.

Traffic: a Bernoulli source per terminal at the offered load (flits =
packets per node per cycle), uniform random destinations (the source
included), packets as wide as our flits (``arch.flit_bits``: header fields +
payload), always-ready sinks, statistics over ``[warmup, cycles)``.  So the
fair comparison is with our mesh at ``flits=1`` (head-only packets).  It runs
in PyMTL3's own Python simulator (the default pass group), so its speed is
PyMTL3's, not Verilator's: PyMTL3's Verilog translation + Verilator import
(``VerilogTranslationImportPass``) fails with the Verilator 5.048 of this
project: PyMTL3 names the top ``MeshNetworkRTL__<hash>`` and looks for
``VMeshNetworkRTL__<hash>_classes.mk``, but Verilator 5 escapes the double
underscores (``VMeshNetworkRTL___05F_05F<hash>_classes.mk``), so the import
stops with ``FileNotFoundError``.  Every packet is checked (arrives once, at its
destination, with its payload).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from hw.arch import ArchConfig
from hw.errors import SimulationError

__all__ = ["PymtlResult", "pymtl_version", "run_pymtl_uniform"]


@dataclass
class PymtlResult:
    mesh: tuple[int, int]
    rate: float
    flits: int
    cycles: int
    packets_delivered: int
    offered: float
    accepted: float
    latency_mean: float
    latency_p99: float
    cycles_per_second: float
    elaborate_seconds: float
    errors: int

    def figures(self) -> dict[str, Any]:
        return dict(self.__dict__, mesh=f"{self.mesh[0]}x{self.mesh[1]}")


def pymtl_version() -> str:
    try:
        return metadata.version("pymtl3-net")
    except metadata.PackageNotFoundError:
        raise SimulationError(
            "pymtl3-net is not installed: `.venv/bin/pip install pymtl3-net`"
        ) from None


def mflit_status(arch: ArchConfig) -> str:
    """ "ok" if pymtl3-net's multi-flit mesh elaborates, else the error's first line."""
    from pymtl3 import bitstruct, mk_bits
    from pymtl3_net.meshnet.MeshNetworkMflitRTL import MeshNetworkMflitRTL

    Header = bitstruct(
        type(
            "H",
            (),
            {
                "__annotations__": {
                    "opaque": mk_bits(8),
                    "src_x": mk_bits(4),
                    "src_y": mk_bits(4),
                    "dst_x": mk_bits(4),
                    "dst_y": mk_bits(4),
                    "plen": mk_bits(8),
                }
            },
        )
    )
    Pos = bitstruct(type("P", (), {"__annotations__": {"pos_x": mk_bits(4), "pos_y": mk_bits(4)}}))
    try:
        MeshNetworkMflitRTL(Header, Pos, arch.mesh_cols, arch.mesh_rows).elaborate()
    except Exception as exc:  # noqa: BLE001 - reported, not handled
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "ok"


def _xy_route_unit():
    """pymtl3-net's ``DORYMeshRouteUnitRTL`` with X resolved first.  (Its own
    ``DORXMeshRouteUnitRTL`` simulates but does not translate to Verilog: it uses
    Python's ``and``, which PyMTL3's translator rejects.)"""
    from pymtl3 import Bits1, Bits3, Component, InPort, Wire, clog2, mk_bits, update
    from pymtl3.stdlib.stream.ifcs import RecvIfcRTL, SendIfcRTL
    from pymtl3_net.meshnet.directions import EAST, NORTH, SELF, SOUTH, WEST

    class XYMeshRouteUnitRTL(Component):
        def construct(s, MsgType, PositionType, num_outports=5):
            s.recv = RecvIfcRTL(MsgType)
            s.send = [SendIfcRTL(MsgType) for _ in range(num_outports)]
            s.pos = InPort(PositionType)
            s.out_dir = Wire(mk_bits(clog2(num_outports)))
            s.send_rdy = Wire(mk_bits(num_outports))
            for i in range(num_outports):
                s.recv.msg //= s.send[i].msg
                s.send_rdy[i] //= s.send[i].rdy

            @update
            def up_ru_routing():
                s.out_dir @= Bits3(0)
                for i in range(num_outports):
                    s.send[i].val @= Bits1(0)
                if s.recv.val:
                    if (s.pos.pos_x == s.recv.msg.dst_x) & (s.pos.pos_y == s.recv.msg.dst_y):
                        s.out_dir @= SELF
                    elif s.recv.msg.dst_x < s.pos.pos_x:
                        s.out_dir @= WEST
                    elif s.recv.msg.dst_x > s.pos.pos_x:
                        s.out_dir @= EAST
                    elif s.recv.msg.dst_y < s.pos.pos_y:
                        s.out_dir @= SOUTH
                    else:
                        s.out_dir @= NORTH
                    s.send[s.out_dir].val @= Bits1(1)

            @update
            def up_ru_recv_rdy():
                s.recv.rdy @= s.send_rdy[s.out_dir]

    return XYMeshRouteUnitRTL


def _make_net(arch: ArchConfig):
    """pymtl3-net's single-flit mesh with XY routers, elaborated and reset."""
    import sys

    import pymtl3_net.meshnet  # noqa: F401 - the package shadows its module names
    from pymtl3 import DefaultPassGroup
    from pymtl3_net.meshnet.MeshRouterRTL import MeshRouterRTL
    from pymtl3_net.ocnlib.ifcs.packets import mk_mesh_pkt
    from pymtl3_net.ocnlib.ifcs.positions import mk_mesh_pos

    route_unit = _xy_route_unit()

    class MeshRouterXY(MeshRouterRTL):
        def construct(s, PacketType, PositionType):
            super().construct(PacketType, PositionType, RouteUnitType=route_unit)

    cb = max(1, (arch.mesh_cols - 1).bit_length())
    rb = max(1, (arch.mesh_rows - 1).bit_length())
    Pkt = mk_mesh_pkt(
        arch.mesh_cols,
        arch.mesh_rows,
        opaque_nbits=8,
        payload_nbits=arch.flit_bits - 2 * cb - 2 * rb - 8,
    )
    Pos = mk_mesh_pos(arch.mesh_cols, arch.mesh_rows)
    net_mod = sys.modules["pymtl3_net.meshnet.MeshNetworkRTL"]
    saved = net_mod.MeshRouterRTL
    net_mod.MeshRouterRTL = MeshRouterXY
    try:
        net = net_mod.MeshNetworkRTL(Pkt, Pos, arch.mesh_cols, arch.mesh_rows, 0)
        net.elaborate()
    finally:
        net_mod.MeshRouterRTL = saved
    net.apply(DefaultPassGroup())
    net.sim_reset()
    return net, Pkt


def run_pymtl_uniform(
    arch: ArchConfig, rate: float, *, cycles: int = 1500, warmup: int = 300, seed: int = 1
) -> PymtlResult:
    """Uniform random single-flit packets at ``rate`` flit/node/cycle for ``cycles``
    cycles (statistics over ``[warmup, cycles)``), then drain (up to ``cycles`` more)."""
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1] flit/node/cycle, not {rate!r}")
    pymtl_version()
    t0 = time.monotonic()
    net, Pkt = _make_net(arch)
    elab = time.monotonic() - t0
    n, cols = arch.tiles, arch.mesh_cols
    rng = random.Random(seed)
    queues = [deque() for _ in range(n)]
    sent_at, dst_of = {}, {}
    lat, errors, accepted, offered, pid, cycle = [], 0, 0, 0, 0, 0
    t1 = time.monotonic()
    while cycle < 2 * cycles:
        if cycle < cycles:
            for s in range(n):
                if rng.random() < rate:
                    d = rng.randrange(n)
                    queues[s].append(Pkt(s % cols, s // cols, d % cols, d // cols, pid & 0xFF, pid))
                    sent_at[pid], dst_of[pid] = cycle, d
                    offered += cycle >= warmup
                    pid += 1
        elif not sent_at:
            break
        for s in range(n):
            net.recv[s].val @= int(bool(queues[s]))
            if queues[s]:
                net.recv[s].msg @= queues[s][0]
            net.send[s].rdy @= 1
        net.sim_eval_combinational()
        for s in range(n):
            if queues[s] and net.recv[s].rdy:
                queues[s].popleft()
            if net.send[s].val:
                msg = net.send[s].msg
                p = int(msg.payload)
                if (
                    p not in sent_at
                    or dst_of[p] != s
                    or (int(msg.dst_x), int(msg.dst_y)) != (s % cols, s // cols)
                ):
                    errors += 1
                    continue
                accepted += warmup <= cycle < cycles
                if sent_at[p] >= warmup:
                    lat.append(cycle - sent_at[p])
                del sent_at[p]
        net.sim_tick()
        cycle += 1
    wall = time.monotonic() - t1
    errors += len(sent_at)
    lat.sort()
    window = n * (cycles - warmup)
    return PymtlResult(
        mesh=(arch.mesh_cols, arch.mesh_rows),
        rate=rate,
        flits=1,
        cycles=cycle,
        packets_delivered=pid - len(sent_at),
        offered=offered / window,
        accepted=accepted / window,
        latency_mean=sum(lat) / len(lat) if lat else 0.0,
        latency_p99=lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0,
        cycles_per_second=cycle / wall,
        elaborate_seconds=elab,
        errors=errors,
    )
