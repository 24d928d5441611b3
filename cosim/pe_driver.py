"""Host driver for the PE under cosim (runs inside the cocotb process).

Every operation is one harness command (see cosim/harness.py): the data moves
through ``cosim_in.hex`` / ``cosim_out.hex`` in the working directory and the
harness streams it through the host port (or the DRAM backdoor) at one word
per cycle, so Python runs once per command, never per cycle.

Each command has a cycle budget; a harness that does not answer in time
raises :class:`hw.errors.SimulationError`.  :meth:`PeDriver.run` reports a
hang (no ``halted``/``error`` within ``max_cycles``) as a status, and
:meth:`PeDriver.run_checked` raises SimulationError naming the PE, pc and
cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cocotb.triggers import First, Timer

from cosim.harness import CLOCK_PERIOD_NS, IN_FILE, OUT_FILE, Cmd, Status
from hw.arch import ArchConfig
from hw.errors import SimulationError

__all__ = [
    "DBG_PC",
    "DBG_SEMS",
    "PeDriver",
    "RunResult",
    "bytes_to_hex",
    "harness_command",
    "hex_to_bytes",
]

DBG_REGS = 0  # dbg_sel 0..15: x0..x15
DBG_SEMS = 16  # dbg_sel 16..47: semaphore counts
DBG_PC = 48
DBG_COUNT = 49
WORD = 16
SLACK_CYCLES = 1000


async def harness_command(dut, cmd: Cmd, what: str, **args: int) -> None:
    """Issue harness command ``cmd`` with the argument registers ``args`` (their
    names in ``cosim_top``) and wait for its ``ack``; ``what`` names it in the
    SimulationError raised when it does not finish within its cycle budget."""
    dut.cmd.value = int(cmd)
    for name, value in args.items():
        getattr(dut, name).value = value
    want = 1 - int(dut.req.value)
    dut.req.value = want
    budget = 4 * args.get("arg_count", 0) + args.get("max_cycles", 0) + SLACK_CYCLES
    budget *= CLOCK_PERIOD_NS
    await First(dut.ack.value_change, Timer(budget, "ns"))
    if int(dut.ack.value) != want:
        raise SimulationError(
            f"{what} did not finish within {budget // CLOCK_PERIOD_NS} cycles "
            f"(cycle {int(dut.cycle.value)})"
        )


def bytes_to_hex(data: np.ndarray) -> str:
    """16-byte little-endian words, one hex line each (most significant digit first)."""
    words = np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1, WORD)[:, ::-1])
    flat = words.tobytes().hex()
    return "\n".join(flat[i : i + 2 * WORD] for i in range(0, len(flat), 2 * WORD)) + "\n"


def hex_to_bytes(text: str) -> np.ndarray:
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("//") and not ln.startswith("@")]
    raw = bytes.fromhex("".join(ln.rjust(2 * WORD, "0") for ln in lines))
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, WORD)[:, ::-1].reshape(-1).copy()


@dataclass
class RunResult:
    status: Status
    cycles: int
    error: int
    err_pc: int


class PeDriver:
    """Drive ``cosim_top`` (the cocotb handle ``dut``) for one PE of ``arch``."""

    def __init__(
        self,
        dut,
        arch: ArchConfig,
        *,
        workdir: Path | None = None,
        coords: tuple[int, int] = (0, 0),
    ):
        self.dut = dut
        self.arch = arch
        self.coords = coords
        self.workdir = Path.cwd() if workdir is None else Path(workdir)

    async def command(self, cmd: Cmd, base: int = 0, count: int = 0, max_cycles: int = 0) -> None:
        await harness_command(
            self.dut,
            cmd,
            f"PE {self.coords}: harness command {cmd.name} (base {base}, count {count})",
            arg_base=base,
            arg_count=count,
            max_cycles=max_cycles,
        )

    async def reset(self) -> None:
        await self.command(Cmd.RESET)

    async def _load(self, cmd: Cmd, data: np.ndarray, base_word: int) -> None:
        if len(data) == 0:
            return
        (self.workdir / IN_FILE).write_text(bytes_to_hex(data))
        await self.command(cmd, base_word, len(data) // WORD)

    async def load_imem(self, words: np.ndarray | list[int], base: int = 0) -> None:
        """Instruction words (64-bit) at instruction index ``base``."""
        w = np.asarray(words, dtype=np.uint64)
        if base + len(w) > self.arch.imem_words:
            raise SimulationError(f"program of {len(w)} words does not fit imem at {base}")
        wide = np.zeros((len(w), 2), dtype=np.uint64)
        wide[:, 0] = w
        await self._load(Cmd.LOAD_IMEM, wide.view(np.uint8).reshape(-1), base)

    async def load_sram(self, image: np.ndarray | bytes, base_byte: int = 0) -> None:
        await self._load(Cmd.LOAD_SRAM, _padded(image), base_byte // WORD)

    async def load_dram(self, image: np.ndarray | bytes, base_byte: int = 0) -> None:
        await self._load(Cmd.LOAD_DRAM, _padded(image), base_byte // WORD)

    async def _dump(self, cmd: Cmd, base_byte: int, nbytes: int) -> np.ndarray:
        out = self.workdir / OUT_FILE
        out.unlink(missing_ok=True)
        await self.command(cmd, base_byte // WORD, -(-nbytes // WORD))
        return hex_to_bytes(out.read_text())[:nbytes]

    async def dump_sram(self, base_byte: int = 0, nbytes: int | None = None) -> np.ndarray:
        n = self.arch.sram_bytes - base_byte if nbytes is None else nbytes
        return await self._dump(Cmd.DUMP_SRAM, base_byte, n)

    async def dump_dram(self, base_byte: int = 0, nbytes: int = 0) -> np.ndarray:
        return await self._dump(Cmd.DUMP_DRAM, base_byte, nbytes)

    async def dump_debug(self) -> dict[str, np.ndarray | int]:
        """x0..x15, the semaphore counts and the pc, through dbg_sel/dbg_data."""
        out = self.workdir / OUT_FILE
        out.unlink(missing_ok=True)
        await self.command(Cmd.DUMP_DBG, 0, DBG_COUNT)
        vals = hex_to_bytes(out.read_text()).reshape(-1, WORD)[:, :4].copy().view("<u4")[:, 0]
        sems = vals[DBG_SEMS : DBG_SEMS + self.arch.semaphores]
        return {"regs": vals[:16].copy(), "sems": sems.copy(), "pc": int(vals[DBG_PC])}

    async def run(self, max_cycles: int) -> RunResult:
        """Pulse start and wait (in HDL) for halted, error or ``max_cycles`` cycles."""
        await self.command(Cmd.RUN, max_cycles=max_cycles)
        return RunResult(
            status=Status(int(self.dut.status.value)),
            cycles=int(self.dut.run_cycles.value),
            error=int(self.dut.pe_error.value),
            err_pc=int(self.dut.pe_err_pc.value),
        )

    async def run_checked(self, max_cycles: int) -> RunResult:
        """:meth:`run`; a hang raises SimulationError naming the PE, pc and cycle."""
        result = await self.run(max_cycles)
        if result.status == Status.TIMEOUT:
            state = await self.dump_debug()
            raise SimulationError(
                f"PE {self.coords} hung: no halt or error after {result.cycles} cycles "
                f"(limit {max_cycles}), pc {state['pc']}, cycle {int(self.dut.cycle.value)}"
            )
        return result


def _padded(image: np.ndarray | bytes) -> np.ndarray:
    data = (
        np.frombuffer(bytes(image), dtype=np.uint8)
        if isinstance(image, bytes | bytearray)
        else np.asarray(image, dtype=np.uint8).reshape(-1)
    )
    pad = -len(data) % WORD
    return np.concatenate([data, np.zeros(pad, np.uint8)]) if pad else data
