"""``myelin asm``, ``myelin disasm`` and ``myelin run``: PE programs by hand.

``asm`` turns assembly text (docs/isa.md) into a program image directory,
``disasm`` prints the assembly of an image, and ``run`` executes an image (or an
assembly file) on the reference simulator (``--on isa``) or on the RTL through
cocotb + Verilator (``--on rtl``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hw.arch import load_arch
from hw.errors import ConfigError, ImageError, MyelinError


def register(sub, bench_sub) -> None:
    p = sub.add_parser("asm", help="assemble a PE program into an image directory")
    p.add_argument("source", help="assembly file (.s)")
    p.add_argument("-o", "--output", required=True, help="image directory to write")
    p.add_argument("--arch", default="tiny", help="preset name or config file")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="ADDR:FILE",
        help="add an SRAM segment from a binary file (repeatable)",
    )
    p.set_defaults(func=cmd_asm)

    p = sub.add_parser("disasm", help="print the assembly of an image or .bin file")
    p.add_argument("image", help="image directory or raw imem .bin file")
    p.set_defaults(func=cmd_disasm)

    p = sub.add_parser("run", help="run a PE program on the reference simulator or RTL")
    p.add_argument("program", help="image directory or assembly file (.s)")
    p.add_argument("--arch", default="tiny", help="preset name or config file")
    p.add_argument(
        "--on",
        choices=("isa", "perf", "rtl"),
        default="isa",
        help="executor: reference simulator, performance model (compiled directories), RTL",
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="ADDR:FILE",
        help="add an SRAM segment from a binary file (repeatable)",
    )
    p.add_argument(
        "--dump",
        action="append",
        default=[],
        metavar="ADDR:BYTES",
        help="print SRAM bytes after the run (repeatable)",
    )
    p.add_argument(
        "--max-cycles",
        type=int,
        default=10_000_000,
        help="give up (error) after this many cycles/instructions",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_run)


def _parse_pair(text: str, what: str) -> tuple[int, str]:
    addr, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ConfigError(f"{what} must look like ADDR:VALUE, not {text!r}")
    try:
        return int(addr, 0), rest
    except ValueError:
        raise ConfigError(f"{what} address must be an integer, not {addr!r}") from None


def _read(path: str | Path, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{what} {str(p)!r} does not exist")
    return p.read_bytes()


def load_program(path: str, data: list[str], arch) -> object:
    """An image directory or an assembly file, plus extra SRAM segments, checked."""
    from hw.asm import assemble
    from hw.image import ProgramImage

    p = Path(path)
    if p.is_dir():
        image = ProgramImage.load(p)
    else:
        text = _read(p, "assembly file").decode(errors="replace")
        image = ProgramImage(assemble(text), name=p.stem)
    for item in data:
        addr, file = _parse_pair(item, "--data")
        image.sram.append((addr, _read(file, "data file")))
    image.check(arch)
    return image


def cmd_asm(args: argparse.Namespace) -> int:
    arch = load_arch(args.arch)
    image = load_program(args.source, args.data, arch)
    out = image.save(args.output)
    print(f"{len(image.imem)} instructions -> {out}")
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    from hw.asm import disassemble
    from hw.image import ProgramImage

    p = Path(args.image)
    if p.is_dir():
        words = ProgramImage.load(p).imem
    else:
        raw = _read(p, "instruction file")
        if len(raw) % 8:
            raise ImageError(f"{str(p)!r} holds {len(raw)} bytes, not a multiple of 8")
        words = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
    print(disassemble(words))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    arch = load_arch(args.arch)
    image = load_program(args.program, args.data, arch)
    dumps = [_parse_pair(d, "--dump") for d in args.dump]
    if args.on == "perf":
        raise ConfigError(
            f"--on perf runs compiled program directories; time the PE program "
            f"{args.program!r} with `myelin perf {args.program} --arch {arch.name}`"
        )
    if args.on == "isa":
        result = _run_isa(arch, image, args.max_cycles, dumps)
    else:
        result = _run_rtl(arch, image, args.max_cycles, dumps)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_result(result)
    return 0 if result["status"] == "halted" else 1


def _dump_values(read, dumps) -> dict[str, str]:
    out = {}
    for addr, size in dumps:
        try:
            n = int(size, 0)
        except ValueError:
            raise ConfigError(f"--dump size must be an integer, not {size!r}") from None
        out[f"{addr:#x}"] = read(addr, n).hex()
    return out


def _run_isa(arch, image, limit: int, dumps) -> dict:
    from sim.pe_sim import PeSim

    sim = PeSim(arch)
    sim.load(image)
    res = sim.run(max_instructions=limit)
    return {
        "executor": "isa",
        "status": res.status,
        "error": res.error.name,
        "error_pc": res.error_pc,
        "message": res.error_msg,
        "instructions": res.instructions,
        "cycles_estimate": res.cycles,
        "regs": [r & 0xFFFFFFFF for r in sim.regs],
        "semaphores": list(sim.sems),
        "dump": _dump_values(sim.read_sram, dumps),
    }


def _run_rtl(arch, image, limit: int, dumps) -> dict:
    try:
        from cosim.pe_driver import run_image
    except ImportError as exc:  # pragma: no cover - cosim is part of the package
        raise MyelinError(f"the RTL executor is not available: {exc}") from None
    return run_image(arch, image, max_cycles=limit, dumps=dumps)


def _print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run on {result['executor']}")
    table.add_column("what")
    table.add_column("value")
    for key in (
        "status",
        "error",
        "error_pc",
        "message",
        "instructions",
        "cycles",
        "cycles_estimate",
    ):
        if key in result and result[key] not in (None, ""):
            table.add_row(key, str(result[key]))
    table.add_row("regs", " ".join(f"x{i}={v:#x}" for i, v in enumerate(result["regs"]) if v))
    table.add_row("semaphores", " ".join(str(s) for s in result["semaphores"]))
    for addr, data in result.get("dump", {}).items():
        table.add_row(f"sram[{addr}]", data)
    Console().print(table)
