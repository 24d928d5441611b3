"""KernelBuilder: collects the buffers, task lists and constants of one mapped kernel.

Planners (gemm.py, mlp.py, attention.py) declare DRAM tensors, SRAM buffers with
live ranges and per-PE task ops, then call :meth:`KernelBuilder.finish`, which
places the SRAM buffers (alloc.py) and returns the ``mapping.kernel`` op plus the
constant store.  Task ops name buffers by symbol; their offsets are only known after
placement, which is why ops are built from closures at ``finish``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.backend.alloc import DramAllocator, SramAllocator, SramBuffer, align
from compiler.dialects import mapping as mp
from compiler.errors import CompileError
from hw.isa import DESC_WORDS, WORD_BYTES

__all__ = ["KernelBuilder", "DramTensor", "Mapped", "rect_of"]

DESC_BYTES = DESC_WORDS * WORD_BYTES


def rect_of(pes: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in pes], [p[1] for p in pes]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass
class DramTensor:
    name: str
    offset: int
    nbytes: int
    data: bytes | None = None  # initial contents (inputs, weights), None for outputs


@dataclass
class Mapped:
    """A kernel after mapping: the IR, the constant store and the DRAM map."""

    kernel: mp.KernelOp
    store: dict[str, bytes]
    dram: dict[str, DramTensor]
    outputs: dict[str, Callable[[dict[str, bytes]], np.ndarray]]
    plan: dict
    sram_peak: dict[tuple[int, int], int] = field(default_factory=dict)
    # (programs, store) of lower_kernel when a planner already lowered ``kernel`` (to
    # check it fits), so that emit_programs does not lower it again
    lowered: tuple | None = field(default=None, repr=False)


class KernelBuilder:
    def __init__(self, arch, name: str):
        self.arch = arch
        self.name = name
        self.store: dict[str, bytes] = {}
        self.dram: dict[str, DramTensor] = {}
        self.dram_alloc = DramAllocator(arch)
        self.sram = SramAllocator(arch)
        self.sram_bufs: dict[str, SramBuffer] = {}
        self.tasks: dict[tuple[int, int], list[Callable[[], mp.TaskOp]]] = {}
        self.n_desc: dict[tuple[int, int], int] = {}
        self.outputs: dict[str, Callable] = {}

    # -- declarations ---------------------------------------------------------------
    def dram_tensor(self, name: str, nbytes: int, data: bytes | None = None) -> str:
        if name in self.sram_bufs or name in self.dram:
            raise ValueError(f"buffer name {name!r} is used twice")
        off = self.dram_alloc.alloc(name, nbytes)
        if data is not None:
            data = bytes(data) + bytes(align(len(data)) - len(data))
            self.store[f"dram.{name}"] = data
        self.dram[name] = DramTensor(name, off, align(nbytes), data)
        return name

    def sram_buffer(
        self,
        name: str,
        tensor: str,
        nbytes: int,
        pes,
        live=(0, 1 << 30),
        side: str = "low",
        data: bytes | None = None,
    ) -> str:
        if name in self.sram_bufs or name in self.dram:
            raise ValueError(f"buffer name {name!r} is used twice")
        if isinstance(pes, tuple) and len(pes) == 2:
            pes = (pes[0], pes[1], pes[0], pes[1])
        if data is not None:  # loaded with the image: live from the start
            live = (0, live[1])
        buf = self.sram.add(SramBuffer(name, tensor, nbytes, tuple(pes), tuple(live), side))
        if data is not None:
            buf.meta["data"] = f"sram.{name}"
            self.store[f"sram.{name}"] = bytes(data) + bytes(align(len(data)) - len(data))
        self.sram_bufs[name] = buf
        return name

    def pe(self, coords: tuple[int, int]) -> list:
        return self.tasks.setdefault(coords, [])

    def add(self, coords: tuple[int, int], cls, **attrs) -> None:
        """Append a task op to the list of PE ``coords`` (built at :meth:`finish`)."""
        if cls is mp.TransferOp:
            self.n_desc[coords] = self.n_desc.get(coords, 0) + 1
        elif cls is mp.StreamMatmulOp:  # two reads per own operand, two casts per lead
            n = sum(2 for x in "ab" if f"{x}_leader" not in attrs)
            n += sum(2 for x in "ab" if f"{x}_lead_to" in attrs)
            self.n_desc[coords] = self.n_desc.get(coords, 0) + n
        elif cls is mp.StreamTilesOp:  # two reads, and two multicasts for a leader
            n = (2 if "leader" not in attrs else 0) + (2 if "lead_to" in attrs else 0)
            self.n_desc[coords] = self.n_desc.get(coords, 0) + n
        self.pe(coords).append(lambda: mp.task(cls, **attrs))

    def step(self, coords: tuple[int, int]) -> int:
        """Index of the next task op on ``coords`` (for live ranges)."""
        return len(self.pe(coords))

    # -- finishing ------------------------------------------------------------------
    def finish(self, plan: dict) -> Mapped:
        for coords, n in self.n_desc.items():
            self.sram_buffer(
                f"desc_{coords[0]}_{coords[1]}",
                "dma descriptors",
                n * DESC_BYTES,
                coords,
                side="high",
            )
        self.sram.place()
        ops: list = []
        for name, t in self.dram.items():
            ops.append(
                mp.task(
                    mp.BufferOp,
                    sym_name=name,
                    tensor=name,
                    space="dram",
                    offset=t.offset,
                    bytes=t.nbytes,
                )
            )
        for name, b in self.sram_bufs.items():
            ops.append(
                mp.task(
                    mp.BufferOp,
                    sym_name=name,
                    tensor=b.tensor,
                    space="sram",
                    offset=b.offset,
                    bytes=b.nbytes,
                    pes=list(b.pes),
                    bank=b.offset // self.arch.bank_bytes,
                    live=list(b.live),
                    **({"init": b.meta["data"]} if "data" in b.meta else {}),
                )
            )
        for coords in sorted(self.tasks, key=lambda c: (c[1], c[0])):
            body = [make() for make in self.tasks[coords]]
            ops.append(mp.PeOp({"pe": mp._attr(list(coords))}, body))
        kernel = mp.KernelOp(
            {"sym_name": mp.StringAttr(self.name), "arch": mp.StringAttr(self.arch.name)}, ops
        )
        kernel.verify()
        self._check_semaphores(kernel)
        peaks = {c: self.sram.peak(c) for c in self.tasks}
        return Mapped(kernel, self.store, self.dram, self.outputs, plan, peaks)

    def _check_semaphores(self, kernel: mp.KernelOp) -> None:
        limit = self.arch.semaphores
        for pe in kernel.pes():
            for op in pe.body.ops:
                used = [mp.int_of(op, "sem")] if "sem" in op.attributes else []
                used += mp.ints_of(op, "sems") if "sems" in op.attributes else []
                used += mp.ints_of(op, "credits") if "credits" in op.attributes else []
                for s in used:
                    if s >= limit:
                        raise CompileError(
                            f"kernel {self.name!r}: '{op.name}' on PE {pe.coords} uses "
                            f"semaphore {s}, but the arch has {limit} semaphores per PE"
                        )

    def sram_data(self) -> dict[str, tuple[int, str]]:
        """buffer name -> (offset, store key) for buffers with initial contents."""
        return {
            n: (b.offset, b.meta["data"]) for n, b in self.sram_bufs.items() if "data" in b.meta
        }
