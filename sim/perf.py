"""The performance model: cycle timing of whole chips and boards.

:class:`PerfSim` runs the same program images as :class:`sim.network.ChipSim`,
through the same reference PEs (:class:`sim.pe_sim.PeSim` executes every
instruction: the functional results are ChipSim's), and charges time:

* every instruction its RTL cost (sim/perf_costs.py, measured on the RTL PE);
* per PE a DMA engine with a queue of ``arch.dma_queue`` descriptors, descriptor
  fetch, one flit per cycle, one head flit per packet (sim/perf_dma.py);
* the NoC as links of one flit per cycle with a per-hop latency, FCFS link
  reservation along XY routes and RECT trees, DRAM ports with latency and
  bandwidth queueing (sim/perf_net.py);
* semaphores: a WAIT blocks until the increment's arrival cycle;
* the decoupled units (docs/isa.md, docs/perf.md "Decoupled units"): per PE the
  cycle the MAC and the vector unit are idle from.  A unit command is accepted when
  its unit is idle (the controller stalls until then) and occupies the unit for its
  full cost; a blocking one holds the controller until it is done, a ``nowait`` one
  ``NOWAIT_CYCLES`` (2: accept + retire).  FENCE, VCFG and HALT wait for their units.
  Bank streams are placed at the unit's start; the MAC wins a bank both units
  stream (a VOP loses the overlapping cycles, sim/perf_banks.py ``hold``).  Programs
  without nowait commands are timed exactly as before.

Scheduling: a PE runs its local instructions (scalar, MAC, vector) in one batch,
and stops before each instruction that interacts with other PEs (DMA, SIGNAL to
a node, WAIT, HALT); those run in global cycle order from an event queue, where
semaphore increments are events at their arrival cycle.  Data moves at once, at
issue (race-free programs, as for ChipSim); only the increments are deferred.

Boards (``chips_cols * chips_rows > 1``): images are loaded per chip; each chip
has its own mesh and DRAM.  The ISA cannot address another chip, so chips share
only the clock; :meth:`PerfSim.chip_transfer` prices chip-to-chip traffic
(``chip_link_latency``, ``chip_link_bytes_per_cycle``) for models built on top.

:func:`calibrate` compares model cycles with RTL cycles per kernel.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

from hw.errors import SimulationError
from hw.isa import DESC_WORDS, WORD_BYTES, PeError, SignalMode, Unit, decode_desc
from sim.footprint import matmul_a_end
from sim.pe_sim import PeSim, _Fault
from sim.perf_banks import Streams, desc_banks, hold, op_banks
from sim.perf_costs import (
    DMA_FETCH,
    HALT_EXTRA,
    NOWAIT_CYCLES,
    Kind,
    StaticCost,
    iterative_cost,
    matmul_cost,
    out_cycles,
    static_cost,
    vop_cost,
)
from sim.perf_dma import WRITE_START, DmaTimer, TimedNetwork, TimedStandIn
from sim.perf_net import BoardLinks, Fabric
from sim.perf_result import PerfResult, build_result

__all__ = ["PerfResult", "PerfSim", "calibrate"]

M32 = 0xFFFFFFFF
_SIG, _PE = 0, 1  # event priorities at equal cycles: increments land first
_HALT = -2


class _TimedPe(PeSim):
    """A PeSim whose own DMA completions (SELF copies, reads) increment later."""

    deferred: int | None = None
    deferred_data: tuple | None = None  # the landing data (see PerfSim.schedule)
    model: Any = None
    perf_key: tuple = ()

    def net_signal(self, sem, count) -> bool:
        if self.deferred is None:
            return super().net_signal(sem, count)
        self.model.schedule(self.deferred, self, sem, count, self.deferred_data)
        return True


@dataclass
class _Tile:
    pe: _TimedPe
    chip: tuple[int, int]
    timer: DmaTimer
    costs: list
    t: int = 0
    blocked: int | None = None
    blocked_since: int = 0
    done: int = -1
    busy: int = 0
    compute: int = 0
    macs: int = 0
    wait: int = 0
    instructions: int = 0
    streams: Streams = field(default_factory=Streams)
    bank_stall: int = 0  # cycles inbound data arrived late: SRAM bank contention (perf_banks)
    # decoupled units: the cycle each is idle from, the MAC command's stream intervals
    # ((start, end, bank mask)) and the bank mask of the vector unit's command
    mac_free: int = 0  # the MAC takes its next command (its output rows may still go out)
    mac_done: int = 0  # ... and has written them
    mac_c: tuple = (0, 0)  # the byte range those rows cover
    vec_free: int = 0
    mac_iv: tuple = ()
    vec_mask: int = 0


class PerfSim:
    """Timing model of ``arch``; ``standin=True`` models one PE on the cosim network
    stub (DRAM port 0 attached directly, one DRAM request at a time) for calibration."""

    def __init__(
        self, arch, *, hop_latency: int = 2, standin: bool = False, dram_bytes: int | None = None
    ):
        self.arch = arch
        self.standin = standin
        self.hop_latency = hop_latency
        self.dram_bytes = dram_bytes
        self.chips: dict[tuple[int, int], tuple[Any, Fabric]] = {}
        self.tiles: dict[tuple, _Tile] = {}
        self.board = BoardLinks(arch)
        self._events: list = []
        self._seq = 0
        self._remote: dict[tuple[int, int], tuple] = {}
        self._now = 0
        self._cost_cache: dict[int, StaticCost] = {}
        self._pad = StaticCost(Kind.LOCAL, 1)
        self._descs: dict[bytes, dict] = {}  # decoded descriptors by their bytes
        self._bank_masks: dict[tuple[bytes, str], int] = {}

    # -- loading -------------------------------------------------------------------
    def _chip(self, chip: tuple[int, int]):
        if chip not in self.chips:
            a = self.arch
            if not (0 <= chip[0] < a.chips_cols and 0 <= chip[1] < a.chips_rows):
                raise SimulationError(
                    f"chip must be inside the {a.chips_cols} x {a.chips_rows} board, not {chip!r}"
                )
            net = (
                TimedStandIn(a, self.dram_bytes)
                if self.standin
                else TimedNetwork(a, self.dram_bytes)
            )
            net.model = self
            fab = Fabric(a, self.hop_latency, serial_dram=self.standin)
            if self.standin:
                fab.direct = True
            self.chips[chip] = (net, fab)
        return self.chips[chip]

    def load(self, coords: tuple[int, int], image, chip: tuple[int, int] = (0, 0)) -> None:
        """Load ``image`` into the PE at ``coords`` of ``chip`` (DRAM segments into
        that chip's DRAM)."""
        a = self.arch
        x, y = coords
        if not (0 <= x < a.mesh_cols and 0 <= y < a.mesh_rows):
            raise SimulationError(f"no PE at {coords}; the mesh is {a.mesh_cols} x {a.mesh_rows}")
        if self.standin and tuple(coords) != (0, 0):
            raise SimulationError("a stand-in PerfSim holds one PE at (0, 0)")
        net, fab = self._chip(chip)
        pe = net.endpoints.get((x, y))
        if not isinstance(pe, _TimedPe):
            pe = self.blank_pe(net, (x, y))
        pe.perf_key = (*chip, x, y)
        pe.load(image, load_dram=False)
        net.load_dram(image.dram)
        cache = self._cost_cache
        costs = []
        for w in pe.imem:
            c = cache.get(w)
            if c is None:
                c = cache[w] = static_cost(a, w)
            costs.append(c)
        costs += [self._pad] * (len(pe._code) - len(costs))
        self.tiles[(*chip, x, y)] = _Tile(pe, chip, DmaTimer(a, (x, y), fab), costs)

    def blank_pe(self, net, coords: tuple[int, int]) -> _TimedPe:
        """A PE with no program at ``coords`` of ``net``'s chip (a DMA/SIGNAL target)."""
        pe = _TimedPe(self.arch, coords, net)
        pe.model = self
        return pe

    def chip_transfer(
        self, src: tuple[int, int], dst: tuple[int, int], nbytes: int, start: int
    ) -> int:
        """Arrival cycle of ``nbytes`` sent from chip ``src`` to chip ``dst`` at ``start``."""
        return self.board.transfer(src, dst, nbytes, start)

    # -- events ----------------------------------------------------------------------
    def schedule(self, at: int, pe, sem: int, count: int, data: tuple | None = None) -> None:
        """An increment of ``sem`` at ``pe`` at cycle ``at``.  ``data``: the transfer it
        signals, ``(banks, words, sender, sender_banks, read_start)``: written into the
        SRAM banks ``banks`` over the ``words`` cycles up to ``at``, read from the
        sender's banks from ``read_start`` on; either side's streaming units hold it
        off (sim/perf_banks.py)."""
        self._seq += 1
        heapq.heappush(self._events, (at, _SIG, self._seq, (pe, sem, count, data)))

    def remote_signal(self, endpoints, sem: int, count: int) -> None:
        """Called by the timed network for each increment of a write or SIGNAL."""
        for ep in endpoints:
            at, data = self._remote.get(tuple(ep.coords), (self._now + 1, None))
            self.schedule(at, ep, sem, count, data)

    def _push(self, tile: _Tile, key: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._events, (tile.t, _PE, self._seq, key))

    # -- running ---------------------------------------------------------------------
    def run(self, max_instructions: int = 10**9, check: bool = True) -> PerfResult:
        """Run every loaded PE until all halt; SimulationError on deadlock, on the
        instruction limit and (with ``check``) on a PE error."""
        t0, c0 = time.perf_counter(), time.process_time()
        for key, tile in self.tiles.items():
            self._push(tile, key)
        total = 0
        events = self._events
        while events:
            at, prio, _, item = heapq.heappop(events)
            self._now = at
            if prio == _SIG:
                self._deliver(*item)
                continue
            tile = self.tiles[item]
            total += self._step(tile, at)
            if total > max_instructions:
                raise SimulationError(f"no halt after {total} instructions")
            if tile.done < 0 and tile.blocked is None and not tile.pe.error:
                self._push(tile, item)
        res = self._finish(time.perf_counter() - t0, check)
        res.cpu_seconds = time.process_time() - c0
        return res

    def _deliver(self, pe, sem: int, count: int, data: tuple | None) -> None:
        if data is not None:
            now = self._now
            end = self._held_off(pe, data, now)
            if end > now:
                self.schedule(end, pe, sem, count)
                return
        PeSim.net_signal(pe, sem, count)
        tile = self.tiles.get(pe.perf_key)
        if tile is not None and tile.blocked == sem and tile.done < 0:
            ins = tile.costs[pe.pc].ins
            if pe.sems[sem] >= ins["count"]:
                tile.wait += self._now - tile.blocked_since
                tile.blocked = None
                tile.t = max(tile.t, self._now)
                self._push(tile, (*tile.chip, *pe.coords))

    def _step(self, tile: _Tile, now: int) -> int:
        """Run local instructions, then at most one interaction at ``now``."""
        pe = tile.pe
        if pe.error or tile.done >= 0:
            return 0
        n = self._local(tile)
        if pe.error or tile.t > now:
            return n
        kind = tile.costs[pe.pc].kind
        if kind == Kind.WAIT:
            return n + self._wait(tile)
        if kind == Kind.DMA:
            return n + self._dma(tile)
        if kind == Kind.SIGNAL:
            return n + self._signal(tile)
        return n + self._halt(tile)

    def _local(self, tile: _Tile) -> int:
        pe = tile.pe
        code, costs = pe._code, tile.costs
        pc, t, n = pe.pc, tile.t, 0
        try:
            while True:
                c = costs[pc]
                kind = c.kind
                if kind == Kind.LOCAL:
                    cyc = c.cycles
                elif kind > Kind.HALT:
                    cyc = self._unit(tile, c, t)  # before executing: it reads operands
                else:
                    break
                h = code[pc] or pe._compile(pc)
                nxt = h()
                if pc == pe._loop_end:
                    nxt = pe._iteration_end()
                pc = nxt
                t += cyc
                n += 1
        except _Fault as f:
            self._fault(pe, f, pc)
        pe.pc = pc
        tile.busy += t - tile.t
        tile.t = t
        tile.instructions += n
        return n

    def _unit(self, tile: _Tile, c: StaticCost, t: int) -> int:
        """The controller cycles of a unit command, FENCE or VCFG issued at ``t``;
        updates the units' busy times, stream intervals and compute figures."""
        kind = c.kind
        if kind == Kind.FENCE:
            u = c.unit
            return max(t, tile.mac_done if u & 1 else t, tile.vec_free if u & 2 else t) + 1 - t
        if kind == Kind.VCFG:
            return max(t, tile.vec_free) + 1 - t
        regs, arch = tile.pe.regs, self.arch
        if c.unit == Unit.MAC:
            start = max(t, tile.mac_free)
            if kind == Kind.MATMUL:
                if tile.mac_done > start and self._reads_c(tile, c, regs):
                    start = tile.mac_done  # it reads rows still being written
                end = start + matmul_cost(c, regs, arch.bank_bytes, arch)
                self._mac_streams(tile, c, start, end)
                tile.mac_free, tile.mac_done = end - out_cycles(c, arch), end
                tile.mac_c = self._c_range(c, regs)
            else:  # QLOAD: waits for the output rows (it replaces their parameters)
                start = max(start, tile.mac_done)
                end = start + c.cycles
                tile.mac_free = tile.mac_done = end
        else:
            start = max(t, tile.vec_free)
            if kind == Kind.VOP:
                cyc = vop_cost(c, regs, arch.bank_bytes)
            else:
                cyc = iterative_cost(c, regs, tile.pe.sram, tile.pe.vcfg)
            mask = op_banks(True, c.ins, regs, arch)
            end = start + cyc
            if tile.mac_free > start:  # the MAC, running too, wins shared banks
                end = hold(start, cyc, mask, tile.mac_iv)
            tile.streams.add(start, end, mask)
            tile.vec_free, tile.vec_mask = end, mask
        tile.compute += end - start
        tile.macs += c.macs
        return start + NOWAIT_CYCLES - t if c.nowait else end - t

    def _reads_c(self, tile: _Tile, c: StaticCost, regs: list[int]) -> bool:
        """The MATMUL ``c`` reads bytes of the previous one's rows still going out."""
        lo, hi = tile.mac_c
        k = 16 * c.ins["k16"]
        a, b = regs[c.ins["rs1"]], regs[c.ins["rs2"]]
        return (a < hi and lo < matmul_a_end(a, k, self.arch.mac_rows, c.ins["alda"])) or (
            b < hi and lo < b + k * self.arch.mac_cols
        )

    def _c_range(self, c: StaticCost, regs: list[int]) -> tuple[int, int]:
        ins, arch = c.ins, self.arch
        if ins["noout"]:
            return (0, 0)
        row = 4 * arch.mac_cols if ins["out32"] else arch.mac_cols
        lo = regs[ins["rs3"]]
        return lo, lo + ins["ldc"] * (arch.mac_rows - 1) + row

    def _mac_streams(self, tile: _Tile, c: StaticCost, start: int, end: int) -> None:
        """Record a MATMUL's bank streams: B is read one row per K step, raw int32
        rows then go to C; a vector op running meanwhile on those banks stalls."""
        arch, regs, streams = self.arch, tile.pe.regs, tile.streams
        k = start + 1 + 16 * c.ins["k16"]
        iv = [(start + 1, k, op_banks(False, c.ins, regs, arch))]
        if c.ins["out32"]:
            iv.append((k, end, 1 << (regs[c.ins["rs3"]] % arch.sram_bytes) // arch.bank_bytes))
        for s, e, m in iv:
            streams.add(s, e, m)
            if tile.vec_free > s and m & tile.vec_mask:
                old = tile.vec_free
                tile.vec_free = old + max(0, e - s)
                streams.add(old, tile.vec_free, tile.vec_mask)
                tile.compute += tile.vec_free - old
        tile.mac_iv = tuple(iv)

    @staticmethod
    def _fault(pe, f: _Fault, pc: int) -> None:
        if not pe.error:
            pe.error, pe.error_msg = f.code, f.msg
            pe.error_pc = pc if f.pc is None else f.pc

    def _exec(self, tile: _Tile, cycles: int) -> int:
        """Execute the instruction at pc functionally and charge ``cycles``."""
        pe = tile.pe
        pc = pe.pc
        try:
            h = pe._code[pc] or pe._compile(pc)
            nxt = h()
            if nxt == _HALT:
                pe.halted = True
                tile.busy += 1
                tile.instructions += 1
                return 1
            if pc == pe._loop_end:
                nxt = pe._iteration_end()
            pe.pc = nxt
        except _Fault as f:
            self._fault(pe, f, pc)
            return 0
        tile.t += cycles
        tile.busy += cycles
        tile.instructions += 1
        return 1

    def _wait(self, tile: _Tile) -> int:
        pe = tile.pe
        ins = tile.costs[pe.pc].ins
        s = ins["sem"]
        if s < len(pe.sems) and pe.sems[s] < ins["count"]:
            tile.blocked, tile.blocked_since = s, tile.t
            return 0
        return self._exec(tile, 1)

    def _dma(self, tile: _Tile) -> int:
        pe, a = tile.pe, self.arch
        ins = tile.costs[pe.pc].ins
        addr = (pe.regs[ins["rs1"]] + ins["imm"]) & M32
        nbytes = DESC_WORDS * WORD_BYTES
        accepted = tile.timer.accept(tile.t, DMA_FETCH)
        local, remote = -1, []
        if addr % 16 == 0 and addr + nbytes <= a.sram_bytes:
            # (the descriptor fetch has the PE's first SRAM priority: never held off)
            raw = pe.sram[addr : addr + nbytes].tobytes()
            d = self._descs.get(raw)
            if d is None:
                d = self._descs[raw] = decode_desc(raw)
            if self._timeable(tile, d):
                local, remote = tile.timer.run(d, accepted)
        pe.deferred = local if local >= 0 else tile.t + 1
        self._remote = {c: (t, None) for c, t in remote}
        if local >= 0 or remote:
            # the data lands in SRAM: locally for a read, at the targets for a write
            words = d["count0"] * d["count1"] * d["count2"]
            if d["read"]:  # a multicast read lands at every receiver (``remote``) alike
                pe.deferred_data = (self._banks(d, raw, "local"), words, None, 0, 0)
                self._remote = {c: (t, pe.deferred_data) for c, t in remote}
            elif d["mode"] != SignalMode.SELF:
                data = (
                    self._banks(d, raw, "remote"),
                    words,
                    pe.perf_key,
                    self._banks(d, raw, "local"),
                    tile.timer.starts[-1] + WRITE_START,
                )
                self._remote = {c: (t, data) for c, t in remote}
        try:
            return self._exec(tile, accepted - tile.t)
        finally:
            pe.deferred = None
            pe.deferred_data = None
            self._remote = {}

    def _held_off(self, pe, data: tuple, now: int) -> int:
        """The arrival cycle of a transfer due ``now`` once the sender's and the
        receiver's streaming units have held its reads and writes off."""
        banks, words, sender, sender_banks, read_start = data
        end = now
        src = self.tiles.get(sender) if sender_banks else None
        if src is not None:
            last = read_start + words - 1
            end += max(0, src.streams.delay(read_start, last, sender_banks) - last)
        dst = self.tiles.get(pe.perf_key)
        if banks and dst is not None:
            end = dst.streams.delay(end - words + 1, end, banks)
        if dst is not None:
            dst.bank_stall += end - now
        return end

    def _banks(self, d: dict, raw: bytes, side: str) -> int:
        key = (raw, side)
        m = self._bank_masks.get(key)
        if m is None:
            m = self._bank_masks[key] = desc_banks(d, side, self.arch)
        return m

    def _timeable(self, tile: _Tile, d: dict) -> bool:
        """Whether the descriptor's target exists (else the functional step faults)."""
        a, fab = self.arch, tile.timer.fabric
        if d["count0"] < 1 or d["count1"] < 1 or d["count2"] < 1 or d["mode"] > 2:
            return False
        if d["mode"] == SignalMode.SELF:
            return True
        node = (d["x0"], d["y0"])
        if d["mode"] == SignalMode.RECT and not d["read"]:
            return d["x1"] < a.mesh_cols and d["y1"] < a.mesh_rows
        inside = node[0] < a.mesh_cols and node[1] < a.mesh_rows
        return inside or node in fab.dram_nodes

    def _signal(self, tile: _Tile) -> int:
        pe, a = tile.pe, self.arch
        ins = tile.costs[pe.pc].ins
        r = pe.regs[ins["rs1"]]
        mode = ins["mode"]
        if mode == SignalMode.NODE:
            target = (r & 255, r >> 8 & 255) * 2
        else:
            target = (r & 255, r >> 8 & 255, r >> 16 & 255, r >> 24)
        arrivals = []
        if target[2] < a.mesh_cols and target[3] < a.mesh_rows:
            arrivals = tile.timer.signal(tile.t, mode, target)
        self._remote = {c: (t, None) for c, t in arrivals}
        try:
            return self._exec(tile, 1)
        finally:
            self._remote = {}

    def _halt(self, tile: _Tile) -> int:
        n = self._exec(tile, 1)
        if tile.pe.halted:  # after both units and the DMA engine are idle
            end = max(max(tile.t, tile.mac_done, tile.vec_free) + 1, tile.timer.drained)
            tile.done = end + HALT_EXTRA
        return n

    # -- results ---------------------------------------------------------------------
    def _finish(self, wall: float, check: bool) -> PerfResult:
        status, per_pe = {}, {}
        stuck = []
        for key, tile in self.tiles.items():
            pe = tile.pe
            if pe.error:
                status[key] = "error"
                if check:
                    raise SimulationError(
                        f"PE {key} stopped with error {PeError(pe.error).name} at pc "
                        f"{pe.error_pc}: {pe.error_msg}"
                    )
            elif tile.done >= 0:
                status[key] = "halted"
            else:
                status[key] = "blocked"
                stuck.append(f"{key} at pc {pe.pc}")
        if stuck:
            raise SimulationError(
                f"deadlock: every running PE is blocked in WAIT: {', '.join(stuck)}"
            )
        cycles = max((t.done if t.done >= 0 else t.t for t in self.tiles.values()), default=0)
        for key, tile in self.tiles.items():
            per_pe[key] = {
                "cycles": max(tile.done, tile.t),
                "busy": tile.busy,
                "compute": tile.compute,
                "wait": tile.wait,
                "macs": tile.macs,
                "instructions": tile.instructions,
                "dma_descriptors": tile.timer.descriptors,
                "flits_sent": tile.timer.flits,
                "bank_stall": tile.bank_stall,
            }
        return build_result(self.arch, self.chips, self.board, cycles, wall, per_pe, status)


def calibrate(records, arch, *, hop_latency: int = 2) -> dict[str, Any]:
    """Compare model and RTL cycles.  ``records``: (image, rtl_cycles) pairs (single-PE
    images, run on the cosim network stand-in).  Returns ``{"kernels": [{name,
    model_cycles, rtl_cycles, error}], "max_abs_error", "mean_abs_error"}`` where
    error = (model - rtl) / rtl."""
    rows = []
    for image, rtl in records:
        sim = PerfSim(arch, standin=True, hop_latency=hop_latency)
        sim.load((0, 0), image)
        res = sim.run()
        err = (res.cycles - rtl) / rtl if rtl else float("inf")
        rows.append(
            {
                "name": image.name,
                "model_cycles": res.cycles,
                "rtl_cycles": int(rtl),
                "error": round(err, 4),
            }
        )
    errs = [abs(r["error"]) for r in rows]
    return {
        "kernels": rows,
        "max_abs_error": max(errs, default=0.0),
        "mean_abs_error": round(sum(errs) / len(errs), 4) if errs else 0.0,
    }
