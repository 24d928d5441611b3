"""Tensors and the lowering context of the whole-graph mapper (graph_map.py).

A :class:`Tensor` is a chip tensor in DRAM: flat row-major, padded to 16 elements.
:class:`Ctx` is what a lowering sees: the arch, the interpreter's values (constants
and the host entry tensors), the tensors of SSA values, the DRAM allocation of
host-written blocks (weights, gather tables), and the data-movement helpers:
``load`` (DMA a range), ``gather`` (any element permutation/padding/broadcast on the
scalar unit, graph_prog.PeProgram.gather, its table streamed from DRAM in pieces)
and ``store``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from compiler.backend.alloc import align
from compiler.backend.builder import DramTensor
from compiler.backend.graph_prog import HEADROOM, PeProgram, ceil16
from compiler.errors import CompileError

__all__ = ["Tensor", "GraphPlan", "Ctx"]


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int = -1
    data: bytes | None = None  # host-written (inputs, constants)
    producer: int | None = None  # index of the chip op
    dram_name: str = ""  # the DRAM tensor holding the bytes (an alias names its source)
    base: Tensor | None = None  # a folded layout op: element i = base element vmap[i]
    vmap: np.ndarray | None = None

    @property
    def es(self) -> int:
        return self.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return ceil16(self.size) * self.es


@dataclass
class GraphPlan:
    """What was placed where (the report and the worked example print it)."""

    ops: list[dict] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    host_ops: list[str] = field(default_factory=list)
    semaphores: dict = field(default_factory=dict)
    folded: list = field(default_factory=list)  # layout ops folded into their consumers
    code_words: dict = field(default_factory=dict)  # op index -> words of its largest chunk
    outputs: list = field(default_factory=list)


class Ctx:
    """What a lowering sees: the arch, tensors of SSA values, DRAM constants."""

    def __init__(self, arch, values: dict):
        self.arch = arch
        self.values = values  # SSA value -> numpy value (interpreter)
        self.tensors: dict = {}  # SSA value -> Tensor
        self.dram: dict[str, DramTensor] = {}
        self.dram_top = 0
        self.n_const = 0
        self.cache: dict = {}
        self.consts: set = set()  # SSA values that are constants (not model inputs)

    def place(self, t: Tensor) -> None:
        t.dram_name = t.name
        port = self.arch.dram_bytes // max(self.arch.dram_ports, 1)
        if self.dram_top // port != (self.dram_top + t.nbytes - 1) // port:
            self.dram_top = -(-self.dram_top // port) * port  # never straddle two ports
        t.offset = self.dram_top
        self.dram_top += align(t.nbytes)
        if self.dram_top > self.arch.dram_bytes:
            raise CompileError(
                f"tensor {t.name}: DRAM full: {t.nbytes} bytes needed, "
                f"{self.arch.dram_bytes - t.offset} of {self.arch.dram_bytes} free"
            )
        self.dram[t.name] = DramTensor(t.name, t.offset, t.nbytes, t.data)

    def const(self, name: str, data: bytes, key=None) -> int:
        """A host-written DRAM block (weights, tables); returns its offset.  Blocks
        with the same ``key`` are stored once."""
        if key is not None and key in self.cache:
            return self.cache[key]
        self.n_const += 1
        t = Tensor(f"{name}.{self.n_const}", (len(data),), np.dtype(np.uint8), data=bytes(data))
        t.data = bytes(data) + bytes(t.nbytes - len(data))
        self.place(t)
        if key is not None:
            self.cache[key] = t.offset
        return t.offset

    def tensor(self, v) -> Tensor:
        return self.tensors[v]

    def tensor_is_const(self, v) -> bool:
        return self.tensors[v].data is not None and v in self.consts

    # -- data movement helpers used by the lowerings ----------------------------------
    def load(self, prog: PeProgram, t: Tensor, e0: int, e1: int) -> int:
        """DMA elements [e0, e1) of ``t`` (e0 a multiple of 16) into new scratch (a
        gather if ``t`` is a folded layout op)."""
        if t.base is not None:
            m = np.arange(e0, e1)
            return self.gather(prog, np.where(m < t.size, m, -1), t.es, 0, src=t)
        n = (e1 - e0) * t.es
        addr = prog.alloc(n)
        prog.wait(0, prog.dram_read(addr, t.offset + e0 * t.es, n))
        return addr

    def load_bytes(self, prog: PeProgram, offset: int, data_len: int) -> int:
        addr = prog.alloc(data_len)
        prog.wait(0, prog.dram_read(addr, offset, data_len))
        return addr

    def load_const(self, prog: PeProgram, name: str, data: bytes) -> int:
        return self.load_bytes(prog, self.const(name, data), len(data))

    def pad_word(self, prog: PeProgram, value: int, es: int) -> int:
        raw = np.array([value], dtype=f"<i{es}").tobytes() * (4 // es if es < 4 else 1)
        return prog.static(raw)

    def gather(
        self,
        prog: PeProgram,
        elem_map: np.ndarray,
        es: int,
        pad: int,
        src_addr: int | None = None,
        src: Tensor | None = None,
        reserve: int | None = None,
    ) -> int:
        """New scratch of ``len(elem_map)`` elements: element i = source element
        elem_map[i] (or ``pad`` where negative); the source is in SRAM at ``src_addr``
        or is DRAM tensor ``src`` (the needed range is read first).  The length is
        rounded up to 16 elements (pad).  ``reserve`` bytes of scratch stay free for
        the caller's later buffers (default a quarter of SRAM)."""
        m = np.asarray(elem_map, np.int64).reshape(-1)
        while src is not None and src.base is not None:  # compose folded layout maps
            m = np.where(m >= 0, src.vmap[np.maximum(m, 0)], -1)
            src = src.base
        n = ceil16(len(m))
        m = np.concatenate([m, np.full(n - len(m), -1, np.int64)])
        valid = m[m >= 0]
        ident = len(valid) == n and np.array_equal(m, np.arange(m[0], m[0] + n))
        if src is None and ident and m[0] * es % 16 == 0:
            return src_addr + int(m[0]) * es
        if src is not None:
            lo = (int(valid.min()) * es // 16) * 16 if len(valid) else 0
            hi = ceil16((int(valid.max()) + 1) * es) if len(valid) else 16
            if ident and m[0] * es % 16 == 0:
                return self.load(prog, src, int(m[0]), int(m[0]) + n)
            src_addr = self.load_bytes(prog, src.offset + lo, hi - lo) - lo
        assert src_addr is not None
        pad_at = self.pad_word(prog, pad, es)
        unit = es if es in (2, 4) else 1  # elements move whole (their bytes stay aligned)
        um = m if unit == es else (m[:, None] * es + np.arange(es)[None, :]).reshape(-1)
        if unit != es:
            um = np.where(np.repeat(m < 0, es), -1, um)
        dst = prog.alloc(n * es)
        # the table (8 bytes per unit, 4 for words) streams through one SRAM buffer
        # (as large as the free scratch allows, keeping a quarter of SRAM for the
        # lowering's later buffers; the table buffer is freed afterwards)
        per = 4 if unit == 4 else 8
        reserve = self.arch.sram_bytes // 4 if reserve is None else reserve
        free = prog.room - reserve - min(HEADROOM, self.arch.sram_bytes // 16)
        piece = min(len(um), max(16, free // per // 16 * 16))
        t_addr = prog.alloc(per * piece)
        for off in range(0, len(um), piece):
            saved, prog.code = prog.code, []
            prog.forget()
            table = prog.gather(dst + off * unit, src_addr, um[off : off + piece], pad_at, unit)
            body, prog.code = prog.code, saved
            prog.wait(0, prog.dram_read(t_addr, self.const("gather", table), len(table)))
            prog.li(8, t_addr)
            prog.code += body
            prog.forget()
        prog.top = t_addr
        return dst

    def store(self, prog: PeProgram, t: Tensor, e0: int, e1: int, addr: int) -> None:
        prog.dram_write(addr, t.offset + e0 * t.es, (e1 - e0) * t.es)
