"""PE program builder of the whole-graph mapper (graph_map.py).

One :class:`PeProgram` per used PE collects instruction words (``hw.isa.encode``),
the SRAM segments loaded with the image (DMA descriptors, constant words) and a
per-op scratch allocator.  Memory plan of a PE: static data (descriptors, pad and
fence words) from the top of SRAM down, the running op's scratch buffers from 0 up,
reset at every op; the two must not meet (AllocError naming the PE and the op).

Register use: x1/x2/x3 = VOP and MATMUL operands A/B/D, x4..x7 temporaries,
x8..x13 loop pointers, x14/x15 loop scratch.  Every op starts from this convention;
nothing survives between ops except SRAM contents that the op itself placed.

The helpers are the PE operation sequences of the ``qnt`` ops (docs/compiler.md,
tests/compiler/test_pe_equivalence.py) plus data movement:

* ``dram_read`` / ``dram_write``: one DMA descriptor per contiguous range (local
  semaphore 0 counts completed reads); ``fence`` reads the last written word back,
  which by the in-order DMA queue / NoC path / DRAM model proves that the writes
  landed (and that the DMA engine is done with the SRAM they came from).
* ``gather``: dst byte i = src byte map[i] on the scalar unit, table driven: the
  table holds (source word address, 2**(8*(3 - byte offset))) per output byte; per
  byte LW, LW, MUL (a shift by a register), SHRI/SHLI 24 keep the byte, and
  SHRI 8 + ADD shift it into the word being built (an inner loop of 4 bytes, SW).
  The DMA and vector unit move only aligned 16-byte words, so every byte-granular
  layout move (transpose, pad, slice, im2col, broadcast, compaction) is one gather.
"""

from __future__ import annotations

import numpy as np

from compiler.backend.alloc import AllocError
from compiler.backend.gemm import words_rows
from hw.isa import DType, Op, SignalMode, VCfg, VFn, dram_node, encode, encode_desc, pack_node

__all__ = ["PeProgram", "DT", "HEADROOM", "ceil16"]

DT = {1: DType.I8, 2: DType.I16, 4: DType.I32}
FENCE_BYTES = 16
WRITES_RD = (Op.LI, Op.ADDI, Op.ADD, Op.SUB, Op.MUL, Op.SHLI, Op.SHRI, Op.LW)
HEADROOM = 4096  # scratch left free for descriptors placed later (static region)


def ceil16(n: int) -> int:
    return -(-n // 16) * 16


class PeProgram:
    def __init__(self, arch, coords: tuple[int, int], limit: int | None = None):
        self.arch = arch
        self.coords = coords
        self.limit = arch.sram_bytes if limit is None else limit
        self.code: list[int] = []
        self.notes: dict[int, str] = {}  # instruction index -> comment (disassembly)
        self.sram: list[tuple[int, bytes]] = []
        self.static_bottom = arch.sram_bytes
        self.static_at: dict[bytes, int] = {}
        self.regs: dict[int, int] = {}  # register -> value known in straight-line code
        self.cfgs: dict[str, int] = {}  # vector config -> value known
        self.top = 0
        self.peak = 0
        self.op_name = ""
        self.fence_at = self.static(bytes(FENCE_BYTES))
        self.dram_in = 0  # bytes this PE reads from DRAM (NoC ejection)
        self.dram_out = 0  # bytes it writes to DRAM (NoC injection)

    # -- memory ---------------------------------------------------------------------
    def static(self, data: bytes) -> int:
        """Read-only data loaded with the image (identical blocks are stored once)."""
        key = bytes(data)
        if key in self.static_at:
            return self.static_at[key]
        n = ceil16(max(len(data), 16))
        self.static_bottom -= n
        if self.static_bottom < self.top:  # (the whole-program check is in graph_map)
            self._full(n)
        self.sram.append((self.static_bottom, bytes(data) + bytes(n - len(data))))
        self.static_at[key] = self.static_bottom
        return self.static_bottom

    @property
    def end(self) -> int:
        """End of the scratch area: the static data of the whole program is loaded
        with the image, so no op's scratch may reach it (``limit`` is set by the
        mapper from a first pass when the static region grew into earlier scratch)."""
        return min(self.static_bottom, self.limit)

    @property
    def room(self) -> int:
        return self.end - self.top

    def begin_op(self, name: str) -> None:
        self.op_name = name
        self.top = 0
        self.note(f"--- {name}")

    def alloc(self, nbytes: int) -> int:
        addr = self.top
        self.top += ceil16(max(nbytes, 16))
        if self.top > self.end:
            self._full(nbytes)
        self.peak = max(self.peak, self.top)
        return addr

    def _full(self, nbytes: int) -> None:
        raise AllocError(
            f"PE {self.coords}, op {self.op_name}: SRAM full: {nbytes} more bytes needed, "
            f"{self.top} bytes of scratch and {self.arch.sram_bytes - self.static_bottom} "
            f"bytes of descriptors/constants used of {self.arch.sram_bytes}"
        )

    # -- instructions ---------------------------------------------------------------
    def note(self, text: str) -> None:
        i = len(self.code)
        self.notes[i] = f"{self.notes[i]}; {text}" if i in self.notes else text

    def emit(self, op: Op, **fields: int) -> None:
        self.code.append(encode(op, **fields))
        if op in WRITES_RD:
            self.regs.pop(fields["rd"], None)

    def forget(self) -> None:
        """Drop the known register and vector-config values (code was spliced)."""
        self.regs.clear()
        self.cfgs.clear()

    def li(self, rd: int, value: int) -> None:
        """LI, skipped when straight-line code already put ``value`` in ``rd``."""
        if self.regs.get(rd) == int(value):
            return
        self.emit(Op.LI, rd=rd, imm=int(value))
        self.regs[rd] = int(value)

    def emit_lw(self, rd: int, rs1: int, imm: int = 0) -> None:
        self.emit(Op.LW, rd=rd, rs1=rs1, imm=imm)

    def addi(self, rd: int, rs1: int, imm: int) -> None:
        if imm:
            self.emit(Op.ADDI, rd=rd, rs1=rs1, imm=int(imm))

    def vcfg(self, name: str, value: int = 0, reg: int = 0) -> None:
        if reg == 0 and self.cfgs.get(name) == int(value):
            return
        self.emit(Op.VCFG, rs1=reg, cfg=int(VCfg[name.upper()]), imm=int(value))
        if reg:
            self.cfgs.pop(name, None)
        else:
            self.cfgs[name] = int(value)

    def vop(
        self,
        fn: str,
        d: int | str | None,
        a: int | str | None,
        n: int,
        tin: int = 4,
        tout: int = 4,
        b: int | str | None = None,
        scalar: int | None = None,
        breg: int | None = None,
    ) -> None:
        """VOP over ``n`` elements (rounded up to 16).  ``d``/``a``/``b`` are SRAM
        addresses loaded into x3/x1/x2, or ``"xN"`` to copy register N (None: the
        register already holds it); ``scalar``
        is an immediate, ``breg`` a register holding the scalar (bscalar form)."""
        self._ptr(1, a)
        self._ptr(3, d)
        bscalar = int(scalar is not None or breg is not None)
        rs2 = 2
        if scalar is not None:
            self.li(2, scalar)
        elif breg is not None:
            rs2 = breg
        elif b is not None:
            self._ptr(2, b)
        else:
            rs2 = 1  # unary: B is checked even when unused, point it at A
        self.emit(
            Op.VOP,
            rd=3,
            rs1=1,
            rs2=rs2,
            n16=-(-n // 16),
            fn=int(VFn[fn.upper()]),
            tin=int(DT[tin]),
            tout=int(DT[tout]),
            bscalar=bscalar,
        )

    def _ptr(self, rd: int, where: int | str | None) -> None:
        """Load an operand pointer: an SRAM address, or ``"xN"`` (copy register N)."""
        if isinstance(where, str):
            self.emit(Op.ADDI, rd=rd, rs1=int(where[1:]), imm=0)
        elif where is not None:
            self.li(rd, where)

    def req_cfg(self, mult: int | None, shift: int, zp: int, lo: int, hi: int) -> None:
        if mult is not None:
            self.vcfg("mult", mult)
        self.vcfg("shift", shift)
        self.vcfg("zp", zp)
        self.vcfg("lo", lo)
        self.vcfg("hi", hi)

    def loop(self, count: int, body: list[int]) -> None:
        """``count`` iterations of the encoded words ``body`` (ends with a NOP so an
        inner loop never ends on the same instruction)."""
        if count <= 0:
            self.forget()  # the body (already tracked) does not run
            return
        if count == 1:
            self.code += body
            return
        self.emit(Op.LOOP, rs1=0, body=len(body) + 1, imm=count)
        self.code += body
        self.emit(Op.NOP)

    def capture(self) -> tuple[list[int], int]:
        """Start collecting a loop body: returns (saved code, start index)."""
        saved, self.code = self.code, []
        self.forget()  # a body's second iteration starts from its end state
        return saved, len(saved)

    def release(self, saved: list[int]) -> list[int]:
        body, self.code = self.code, saved
        return body

    # -- DMA and sync ---------------------------------------------------------------
    def _dram(self, offset: int) -> dict[str, int]:
        port_bytes = self.arch.dram_bytes // max(self.arch.dram_ports, 1)
        port, addr = divmod(offset, port_bytes)
        x, y = dram_node(self.arch, port)
        return {"remote": addr, "x0": x, "y0": y, "x1": x, "y1": y}

    def _dma(
        self, local: int, dram: int, nbytes: int, read: int, rows: int = 0, rstride: int = 0
    ) -> None:
        if read:
            self.dram_in += nbytes * max(rows, 1)
        else:
            self.dram_out += nbytes * max(rows, 1)
        if rows:  # rows of nbytes, rstride apart in DRAM, packed locally
            c0, c1, ls, rs = nbytes // 16, rows, nbytes, rstride
        else:
            c0, c1, _ = words_rows(nbytes)
            ls = rs = 16 * c0
        desc = encode_desc(
            local=local,
            count0=c0,
            count1=c1,
            lstride1=ls,
            rstride1=rs,
            sem=0,
            read=read,
            mode=int(SignalMode.NODE),
            **self._dram(dram),
        )
        self.emit(Op.DMA, rs1=0, imm=self.static(desc))

    def dram_read(self, local: int, dram: int, nbytes: int) -> int:
        """Queue a read; returns 1 (the completions the caller must WAIT for)."""
        self._dma(local, dram, ceil16(nbytes), 1)
        return 1

    def dram_write(self, local: int, dram: int, nbytes: int) -> None:
        self._dma(local, dram, ceil16(nbytes), 0)
        self.last_write = dram + ceil16(nbytes) - 16

    def dram_write_rows(self, local: int, dram: int, row: int, rows: int, rstride: int) -> None:
        """``rows`` rows of ``row`` bytes (a multiple of 16) from packed local SRAM to
        DRAM rows ``rstride`` apart (one 2-D descriptor)."""
        self._dma(local, dram, row, 0, rows, rstride)
        self.last_write = dram + (rows - 1) * rstride + row - 16

    def wait(self, sem: int, count: int) -> None:
        while count > 0:
            step = min(count, self.arch.sem_max)
            self.emit(Op.WAIT, sem=sem, count=step)
            count -= step

    def fence(self) -> None:
        """Read back the last written DRAM word: all writes of this PE have landed."""
        self._dma(self.fence_at, self.last_write, 16, 1)
        self.wait(0, 1)

    def signal(self, pe: tuple[int, int], sem: int) -> None:
        self.li(4, pack_node(*pe))
        self.emit(Op.SIGNAL, rs1=4, sem=sem, mode=int(SignalMode.NODE), count=1)

    # -- byte gather ----------------------------------------------------------------
    def gather(
        self, dst: int, src_base: int, unit_map: np.ndarray, pad_word: int, unit: int = 1
    ) -> bytes:
        """Code that writes ``len(unit_map)`` units of ``unit`` bytes (1, 2 or 4; a
        multiple of 4 bytes in all) at ``dst`` (16-aligned): unit i = the unit at SRAM
        ``src_base + unit * unit_map[i]``, or the unit at the static word ``pad_word``
        where negative.  Returns the table that must sit at the address held in x8
        when the code runs (the caller DMAs it): per unit the source word address and,
        for units below a word, ``2**(8*(4 - unit - offset))``."""
        m = np.asarray(unit_map, np.int64)
        src = np.where(m >= 0, src_base + unit * m, pad_word)
        words = (src // 4) * 4
        self.li(9, dst)
        outer, _ = self.capture()
        if unit == 4:  # whole words: LW the address, LW the word, SW
            table = words.astype("<u4")
            self.emit(Op.LW, rd=5, rs1=8, imm=0)
            self.emit(Op.LW, rd=7, rs1=5, imm=0)
            self.addi(8, 8, 4)
        else:
            mults = np.left_shift(1, 8 * (4 - unit - (src % 4))).astype(np.int64)
            table = np.stack([words, mults], axis=1).astype("<u4")
            keep = 32 - 8 * unit
            inner, _ = self.capture()
            self.emit(Op.LW, rd=5, rs1=8, imm=0)
            self.emit(Op.LW, rd=5, rs1=5, imm=0)
            self.emit(Op.LW, rd=6, rs1=8, imm=4)
            self.emit(Op.MUL, rd=5, rs1=5, rs2=6)  # the unit to the top bits
            self.emit(Op.SHRI, rd=5, rs1=5, imm=keep)
            self.emit(Op.SHLI, rd=5, rs1=5, imm=keep)
            self.emit(Op.SHRI, rd=7, rs1=7, imm=8 * unit)  # earlier units move down
            self.emit(Op.ADD, rd=7, rs1=7, rs2=5)
            self.addi(8, 8, 8)
            self.loop(4 // unit, self.release(inner))
        self.emit(Op.SW, rs1=9, rs2=7, imm=0)
        self.addi(9, 9, 4)
        self.loop(len(m) * unit // 4, self.release(outer))
        return table.tobytes()
