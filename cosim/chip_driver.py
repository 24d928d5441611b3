"""Host driver for the chip under cosim, and the runner that launches it.

:class:`ChipDriver` runs inside the cocotb process: every operation is one command
of the chip harness (cosim/chip_harness.py), the data moving through
``cosim_in.hex``/``cosim_out.hex``, so Python runs once per command, never per
cycle.  Each command has a cycle budget (a cocotb ``Timer``); a harness that does
not answer raises :class:`hw.errors.SimulationError`.

:func:`run_chip_programs` runs outside: it writes the job, launches
``cosim.tb_chip`` once for a batch of chip runs and returns plain results.
:func:`describe_errors` turns a run's per-PE state into messages naming the PE,
the error, the pc and (for a refused packet) the offending address and node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosim.harness import IN_FILE, OUT_FILE, Cmd, Status, dram_sim_words
from cosim.pe_driver import (
    DBG_PC,
    DBG_SEMS,
    WORD,
    _padded,
    bytes_to_hex,
    harness_command,
    hex_to_bytes,
)
from hw.arch import ArchConfig
from hw.chip import DBG_NET_ADDR, DBG_NET_SRC
from hw.errors import SimulationError
from hw.isa import PeError

__all__ = ["ChipDriver", "ChipRun", "describe_errors", "run_chip_programs", "stress_state"]

DBG_COUNT = DBG_NET_SRC + 1


def stress_state(seed: int) -> int:
    """The non-zero 32-bit LFSR state the DRAM endpoints start from for ``seed``."""
    state = (int(seed) * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
    return state or 1


@dataclass
class ChipRun:
    status: Status
    cycles: int
    halted: list[int]  # per tile t = y * mesh_cols + x
    errors: list[int]
    err_pcs: list[int]
    halt_cycles: list[int]  # per tile: start edge to its first halted cycle (0: never)


class ChipDriver:
    """Drive the chip's ``cosim_top`` (cocotb handle ``dut``) for ``arch``."""

    def __init__(self, dut, arch: ArchConfig, *, workdir: Path | None = None):
        self.dut = dut
        self.arch = arch
        self.workdir = Path.cwd() if workdir is None else Path(workdir)

    def coords(self, tile: int) -> tuple[int, int]:
        return tile % self.arch.mesh_cols, tile // self.arch.mesh_cols

    async def command(
        self,
        cmd: Cmd,
        tile: int = 0,
        base: int = 0,
        count: int = 0,
        max_cycles: int = 0,
        mask: int = 0,
    ) -> None:
        await harness_command(
            self.dut,
            cmd,
            f"chip harness command {cmd.name} (tile {tile}, base {base}, count {count})",
            arg_tile=tile,
            arg_base=base,
            arg_count=count,
            max_cycles=max_cycles,
            start_mask=mask,
        )

    async def reset(self) -> None:
        await self.command(Cmd.RESET)

    async def _load(self, cmd: Cmd, tile: int, data: np.ndarray, base_word: int) -> None:
        if len(data) == 0:
            return
        (self.workdir / IN_FILE).write_text(bytes_to_hex(data))
        await self.command(cmd, tile, base_word, len(data) // WORD)

    async def load_imem(self, tile: int, words) -> None:
        w = np.asarray(words, dtype=np.uint64)
        if len(w) > self.arch.imem_words:
            raise SimulationError(
                f"PE {self.coords(tile)}: program of {len(w)} words does not "
                f"fit imem of {self.arch.imem_words}"
            )
        wide = np.zeros((len(w), 2), dtype=np.uint64)
        wide[:, 0] = w
        await self._load(Cmd.LOAD_IMEM, tile, wide.view(np.uint8).reshape(-1), 0)

    async def load_sram(self, tile: int, image, base_byte: int = 0) -> None:
        await self._load(Cmd.LOAD_SRAM, tile, _padded(image), base_byte // WORD)

    async def load_dram(self, port: int, image, base_byte: int = 0) -> None:
        await self._load(Cmd.LOAD_DRAM, port, _padded(image), base_byte // WORD)

    async def _dump(self, cmd: Cmd, tile: int, base_byte: int, nbytes: int) -> np.ndarray:
        out = self.workdir / OUT_FILE
        out.unlink(missing_ok=True)
        await self.command(cmd, tile, base_byte // WORD, -(-nbytes // WORD))
        return hex_to_bytes(out.read_text())[:nbytes]

    async def dump_sram(self, tile: int, base_byte: int = 0, nbytes: int | None = None):
        n = self.arch.sram_bytes - base_byte if nbytes is None else nbytes
        return await self._dump(Cmd.DUMP_SRAM, tile, base_byte, n)

    async def dump_dram(self, port: int, base_byte: int, nbytes: int) -> np.ndarray:
        return await self._dump(Cmd.DUMP_DRAM, port, base_byte, nbytes)

    async def dump_debug(self, tile: int) -> dict:
        """Registers, semaphores, pc and the first refused packet of PE ``tile``."""
        out = self.workdir / OUT_FILE
        out.unlink(missing_ok=True)
        await self.command(Cmd.DUMP_DBG, tile, 0, DBG_COUNT)
        vals = hex_to_bytes(out.read_text()).reshape(-1, WORD)[:, :4].copy().view("<u4")[:, 0]
        src = int(vals[DBG_NET_SRC])
        return {
            "regs": vals[:16].copy(),
            "sems": vals[DBG_SEMS : DBG_SEMS + self.arch.semaphores].copy(),
            "pc": int(vals[DBG_PC]),
            "net_error": bool(src >> 16 & 1),
            "net_addr": int(vals[DBG_NET_ADDR]),
            "net_node": (src & 0xFF, src >> 8 & 0xFF),
        }

    def set_stress(self, seed: int | None) -> None:
        """Randomized DRAM timing (cosim/dram.py) for the next runs: ``seed`` (any int;
        mapped to a non-zero 32-bit LFSR state) or None for the nominal timing.  A
        chip built before the stress inputs existed accepts only None."""
        dut = self.dut
        if seed is None:
            if hasattr(dut, "stress_en"):
                dut.stress_en.value = 0
            return
        if not hasattr(dut, "stress_en"):
            raise SimulationError("this chip build has no stress inputs (stress_en, stress_seed)")
        dut.stress_seed.value = stress_state(seed)
        dut.stress_en.value = 1

    async def run(self, tiles: list[int], max_cycles: int, stress: int | None = None) -> ChipRun:
        """Start the PEs ``tiles`` together; wait (in HDL) for all halted, an error, or
        ``max_cycles`` (the watchdog).  ``stress``: see :meth:`set_stress`."""
        self.set_stress(stress)
        mask = sum(1 << t for t in tiles)
        await self.command(Cmd.RUN, max_cycles=max_cycles, mask=mask)
        n = self.arch.tiles
        halted, errs, pcs, hcs = (
            int(getattr(self.dut, s).value)
            for s in ("pe_halted", "pe_errors", "pe_err_pcs", "pe_halt_cycles")
        )
        return ChipRun(
            status=Status(int(self.dut.status.value)),
            cycles=int(self.dut.run_cycles.value),
            halted=[halted >> t & 1 for t in range(n)],
            errors=[errs >> (3 * t) & 7 for t in range(n)],
            err_pcs=[pcs >> (16 * t) & 0xFFFF for t in range(n)],
            halt_cycles=[hcs >> (32 * t) & 0xFFFFFFFF for t in range(n)],
        )


def describe_errors(arch: ArchConfig, run: dict) -> list[str]:
    """One message per PE in error (or, for a hang, per PE still running): PE, error,
    pc, and the address and node of the first packet refused to it."""
    msgs = []
    for t, pe in enumerate(run["pes"]):
        x, y = t % arch.mesh_cols, t // arch.mesh_cols
        if pe["error"]:
            msg = f"PE ({x}, {y}): error {PeError(pe['error']).name} at pc {pe['err_pc']}"
        elif run["status"] == Status.TIMEOUT and pe["started"] and not pe["halted"]:
            msg = f"PE ({x}, {y}): no halt after {run['cycles']} cycles, pc {pe.get('pc')}"
        else:
            continue
        if pe.get("net_error"):
            nx, ny = pe["net_node"]
            msg += f"; node ({nx}, {ny}) refused address {pe['net_addr']:#x}"
        msgs.append(msg)
    return msgs


def _chunks(segments, gap: int = 256) -> list[tuple[int, int]]:
    """Word-aligned byte ranges covering ``segments``, merged across gaps < ``gap``."""
    spans = sorted(
        (a // WORD * WORD, -(-(a + len(d)) // WORD) * WORD) for a, d in segments if len(d)
    )
    out: list[list[int]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def run_chip_programs(
    arch: ArchConfig,
    runs: list[dict],
    *,
    name: str = "chip",
    sram_dump: int | None = None,
    dram_dump: int = 0,
    sram_fill: int | None = None,
    checked: bool = True,
    sparse: bool = False,
):
    """Run a batch of chip runs in one simulator launch (cosim.tb_chip).

    Each run is ``{"images": {(x, y): ProgramImage}, "max_cycles": n}`` (optional
    ``"stress": seed``: randomized DRAM timing, :meth:`ChipDriver.set_stress`; a batch
    with any seed runs on the chip's stress build); image DRAM
    segments (global addresses, ports concatenated) are loaded into DRAM, the rest
    of DRAM zero-filled up to ``dram_dump`` bytes per port.  Every PE's SRAM is
    loaded (zero-filled up to ``sram_fill`` bytes, default all; with ``sparse`` only
    the images' segments and programs: the small chip loads a compiled kernel in
    ~20x fewer cycles), PEs with an
    image are started together.  Returns one dict per run: ``status``, ``cycles``,
    ``pes`` (per tile: started, halted, halt_cycle, error, err_pc, pc, net_error, net_addr,
    net_node, and ``sram`` (first ``sram_dump`` bytes), ``regs``, ``sems``), ``dram``
    (per port, first ``dram_dump`` bytes) and ``errors`` (:func:`describe_errors`).
    With ``checked``, a run ending in a timeout raises SimulationError naming the PEs.
    """
    from cosim.chip_harness import build_chip
    from cosim.runner import _flatten, job_folder, run_testbench

    # randomized DRAM timing needs the stress variant of the chip (a build of its own)
    stressed = any(run.get("stress") is not None for run in runs)
    build = build_chip(arch, stress=True) if stressed else build_chip(arch)
    port_bytes = dram_sim_words(arch) * arch.word_bytes
    fill = arch.sram_bytes if sram_fill is None else sram_fill
    dump = arch.sram_bytes if sram_dump is None else sram_dump
    arrays, metas = {}, []
    # sparse: load only the images' segments (word-aligned, merged across small gaps)
    # and only the programs' imem words (SRAM cleared from the second run on)
    chunked = sparse
    for r, run in enumerate(runs):
        tiles = []
        chunks: dict[str, list[int]] = {}
        for (x, y), img in run["images"].items():
            img.check(arch)
            t = y * arch.mesh_cols + x
            tiles.append(t)
            arrays[f"imem_{r}_{t}"] = np.array(img.imem, dtype=np.uint64)
            if chunked:
                # the first run of a launch finds SRAM zero (Verilator's x-initial fast);
                # later runs clear it, or a race could read the previous run's data
                segs = img.sram if r == 0 else [(0, bytes(arch.sram_bytes)), *img.sram]
                flat = _flatten(segs, arch.sram_bytes)
                bases = []
                for i, (lo, hi) in enumerate(_chunks(segs)):
                    arrays[f"sram_{r}_{t}_{i}"] = flat[lo:hi]
                    bases.append(lo)
                chunks[str(t)] = bases
            else:
                arrays[f"sram_{r}_{t}"] = _flatten(img.sram, arch.sram_bytes)
        dram = [np.zeros(max(dram_dump, 0), np.uint8) for _ in range(arch.dram_ports)]
        for img in run["images"].values():
            for addr, data in img.dram:
                p, off = divmod(addr, arch.dram_bytes // arch.dram_ports)
                end = off + len(data)
                if end > port_bytes:
                    raise SimulationError(
                        f"DRAM segment [{addr:#x}, {addr + len(data):#x}) "
                        f"lies outside the {port_bytes} simulated bytes"
                    )
                if end > len(dram[p]):
                    dram[p] = np.concatenate([dram[p], np.zeros(end - len(dram[p]), np.uint8)])
                dram[p][off:end] = np.frombuffer(data, np.uint8)
        for p, d in enumerate(dram):
            arrays[f"dram_{r}_{p}"] = d
        meta_run = {"tiles": sorted(tiles), "max_cycles": int(run["max_cycles"])}
        if chunked:
            meta_run["sram_chunks"] = chunks
        if run.get("stress") is not None:
            meta_run["stress"] = int(run["stress"])
        metas.append(meta_run)
    meta = {
        "arch": arch.to_dict(),
        "runs": metas,
        "sram_fill": fill,
        "sram_dump": dump,
        "dram_dump": dram_dump,
    }
    res = run_testbench(build, "cosim.tb_chip", job_folder(name), meta, arrays)
    out = []
    for r, entry in enumerate(res.meta["runs"]):
        for t, pe in enumerate(entry["pes"]):
            for key in ("sram", "regs", "sems"):
                if f"{key}_{r}_{t}" in res.arrays:
                    pe[key] = res.arrays[f"{key}_{r}_{t}"]
        entry["dram"] = [
            res.arrays[f"dram_{r}_{p}"]
            for p in range(arch.dram_ports)
            if f"dram_{r}_{p}" in res.arrays
        ]
        entry["errors"] = describe_errors(arch, entry)
        if checked and entry["status"] == Status.TIMEOUT:
            raise SimulationError(
                f"chip run {r} hung (watchdog, {entry['cycles']} cycles): "
                + "; ".join(entry["errors"])
            )
        out.append(entry)
    return out, res
