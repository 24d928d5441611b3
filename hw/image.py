"""Program images: what the host loads into one PE (and the DRAM) before a run.

A :class:`ProgramImage` holds the instruction memory words, SRAM data segments
(byte address, bytes), optional DRAM segments (byte address in the chip's DRAM,
ports concatenated: port p owns ``[p * dram_bytes // dram_ports, ...)``), a name
and free-form JSON-serialisable metadata.  ``check(arch)`` raises
:class:`hw.errors.ImageError` if the image does not fit the PE.

On disk an image is a directory::

    manifest.json   name, metadata, segment table
    imem.bin        instruction words, 8 bytes each, little-endian
    imem.hex        the same, one 16-digit hex word per line ($readmemh)
    sram_<i>.bin    SRAM segment i
    dram_<i>.bin    DRAM segment i

This module imports only the standard library and hw.errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.errors import ImageError

__all__ = ["ProgramImage"]

FORMAT = "myelin-image-1"
_INSTR_BYTES = 8


@dataclass
class ProgramImage:
    """Instruction words and initial memory contents of one PE."""

    imem: list[int]
    sram: list[tuple[int, bytes]] = field(default_factory=list)
    dram: list[tuple[int, bytes]] = field(default_factory=list)
    name: str = "program"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.imem = [int(w) for w in self.imem]
        self.sram = [(int(a), bytes(d)) for a, d in self.sram]
        self.dram = [(int(a), bytes(d)) for a, d in self.dram]

    def check(self, arch) -> None:
        """ImageError if the program or a segment does not fit ``arch``."""
        if len(self.imem) > arch.imem_words:
            raise ImageError(
                f"image {self.name!r}: program of {len(self.imem)} instructions does not fit "
                f"instruction memory of {arch.imem_words} words"
            )
        for i, w in enumerate(self.imem):
            if not 0 <= w < 1 << 64:
                raise ImageError(
                    f"image {self.name!r}: instruction {i} must be a 64-bit word, not {w:#x}"
                )
        self._check_segments("SRAM", self.sram, arch.sram_bytes)
        self._check_segments("DRAM", self.dram, arch.dram_bytes)

    def _check_segments(self, what: str, segs: list[tuple[int, bytes]], limit: int) -> None:
        for i, (addr, data) in enumerate(segs):
            end = addr + len(data)
            if addr < 0 or end > limit:
                raise ImageError(
                    f"image {self.name!r}: {what} segment {i} [{addr:#x}, {end:#x}) "
                    f"lies outside {what} of {limit:#x} bytes"
                )

    def imem_bytes(self) -> bytes:
        return b"".join(w.to_bytes(_INSTR_BYTES, "little") for w in self.imem)

    def save(self, directory: str | Path) -> Path:
        """Write the image to ``directory`` (created if needed); returns its path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "imem.bin").write_bytes(self.imem_bytes())
        (d / "imem.hex").write_text("".join(f"{w:016x}\n" for w in self.imem))
        segments = {}
        for kind, segs in (("sram", self.sram), ("dram", self.dram)):
            entries = []
            for i, (addr, data) in enumerate(segs):
                fname = f"{kind}_{i}.bin"
                (d / fname).write_bytes(data)
                entries.append({"addr": addr, "bytes": len(data), "file": fname})
            segments[kind] = entries
        manifest = {
            "format": FORMAT,
            "name": self.name,
            "imem": {"words": len(self.imem), "file": "imem.bin", "hex": "imem.hex"},
            **segments,
            "meta": self.meta,
        }
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> ProgramImage:
        """Read an image written by :meth:`save`; ImageError if it is malformed."""
        d = Path(directory)
        mpath = d / "manifest.json"
        if not mpath.is_file():
            raise ImageError(f"image directory {str(d)!r} has no manifest.json")
        try:
            manifest = json.loads(mpath.read_text())
            if manifest.get("format") != FORMAT:
                raise ImageError(
                    f"{str(mpath)!r}: format must be {FORMAT!r}, not {manifest.get('format')!r}"
                )
            raw = (d / manifest["imem"]["file"]).read_bytes()
            if len(raw) != _INSTR_BYTES * manifest["imem"]["words"]:
                raise ImageError(
                    f"{str(d)!r}: imem.bin holds {len(raw)} bytes, "
                    f"not {_INSTR_BYTES * manifest['imem']['words']}"
                )
            imem = [
                int.from_bytes(raw[i : i + _INSTR_BYTES], "little")
                for i in range(0, len(raw), _INSTR_BYTES)
            ]
            segs = {
                kind: [cls._load_segment(d, e) for e in manifest.get(kind, [])]
                for kind in ("sram", "dram")
            }
            return cls(imem, segs["sram"], segs["dram"], manifest["name"], manifest.get("meta", {}))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ImageError(f"image directory {str(d)!r} is malformed: {exc!r}") from None

    @staticmethod
    def _load_segment(d: Path, entry: dict[str, Any]) -> tuple[int, bytes]:
        data = (d / entry["file"]).read_bytes()
        if len(data) != entry["bytes"]:
            raise ImageError(
                f"{str(d / entry['file'])!r} holds {len(data)} bytes, not {entry['bytes']}"
            )
        return int(entry["addr"]), data
