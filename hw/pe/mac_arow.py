"""Row-major A for MATMUL (``alda`` >= 1, docs/isa.md "Row-major A"): the MAC unit's
A read pattern and the transposer between the A reader and the K-step sequencer.

With ``alda`` = 0 the A operand is the transposed K x R tile, read as K*R/16 words in
address order; a word holds 16 / R K steps of R bytes.  With ``alda`` >= 1 it is R
rows of K int8, row r at ``a + 16*alda*r``.  The same K*R/16 words are read, in groups
of 16 K steps: for g = 0 .. K/16-1 the R words ``a/16 + g + alda*r`` (r = 0..R-1,
:class:`OperandAddress`).  :class:`RowTransposer` turns each group (R row words) into
the R words the transposed tile would hold for those 16 K steps, so the sequencer
does not know which layout it reads::

    group g, row r, byte k (K step 16g + k)  ->  byte k*R + r of the group's 16R bytes

It double-buffers groups (2 x R words of registers): one is read by the sequencer (R
words in 16 cycles) while the next is collected (R words, one per cycle), so the
sequencer keeps one K step per cycle for every R.  The last word of a group is also
offered in the cycle it arrives (fall-through, like the reader's FIFO).

Timing: a group can be offered only when all of its R words are read, so the first K
step comes R - 1 cycles later than with ``alda`` = 0 (the transposed tile offers its
first word alone); after that the rate is the same.  A MATMUL with ``alda`` >= 1
therefore takes R - 1 cycles more than the figures in hw/pe/mac_unit.py (none for
R = 1, where both layouts are the same bytes), back-to-back commands included.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import MM_ALDA

__all__ = ["OperandAddress", "RowTransposer", "a_end"]


def a_end(p, rows: int) -> Value:
    """One past the last A byte of the MATMUL ``p`` (a MacCmd view), without wrap:
    ``a + K*R`` (``alda`` = 0) or ``a + 16*alda*(R-1) + K`` (row-major)."""
    k = p.k16 * 16
    return p.a_addr + k + Mux(p.alda == 0, k * (rows - 1), p.alda * (16 * (rows - 1)))


class OperandAddress(wiring.Component):
    """Word addresses of an operand's reads, one per ``next``.

    Ports:
      start   In 1       restart at ``base`` with ``stride`` (both taken only now;
                         takes precedence over ``next``)
      base    In word address
      stride  In 10      0: ``base``, ``base + 1``, ...; s >= 1: groups of ``rows`` words
                         ``base + g + s*r`` (r = 0 .. rows-1, then g + 1)
      next    In 1       the current address was used; step to the next one
      addr    Out word address (wraps at the word address width)

    With ``rows`` = 1 both patterns are the same and ``stride`` is ignored.
    """

    def __init__(self, addr_bits: int, rows: int = 1):
        if rows not in (1, 2, 4, 8, 16):
            raise ValueError(f"rows must be one of 1, 2, 4, 8, 16, not {rows!r}")
        self.rows = rows
        super().__init__(
            {
                "start": In(1),
                "base": In(addr_bits),
                "stride": In(MM_ALDA.width),
                "next": In(1),
                "addr": Out(addr_bits),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        addr = Signal.like(self.addr, name="cur")
        m.d.comb += self.addr.eq(addr)
        if self.rows == 1:
            with m.If(self.start):
                m.d.sync += addr.eq(self.base)
            with m.Elif(self.next):
                m.d.sync += addr.eq(addr + 1)
            return m
        group = Signal.like(addr)  # base + g: the address of row 0 of the group
        row = Signal(range(self.rows))
        stride = Signal.like(self.stride)  # the next command may be offered meanwhile
        with m.If(self.start):
            m.d.sync += [addr.eq(self.base), group.eq(self.base), row.eq(0)]
            m.d.sync += stride.eq(self.stride)
        with m.Elif(self.next):
            with m.If(stride == 0):
                m.d.sync += addr.eq(addr + 1)
            with m.Elif(row == self.rows - 1):
                m.d.sync += [addr.eq(group + 1), group.eq(group + 1), row.eq(0)]
            with m.Else():
                m.d.sync += [addr.eq(addr + stride), row.eq(row + 1)]
        return m


class RowTransposer(wiring.Component):
    """Groups of R row words in, the same bytes as R transposed-tile words out.

    Ports:
      clear   In 1    forget any partial group (pulse before a command's first word)
      bypass  In 1    pass ``i`` to ``o`` unchanged (transposed A, QLOAD); hold it
                      constant while words are buffered
      i       In  stream of 128-bit row words: group 0 rows 0..R-1, group 1, ...
      o       Out stream of 128-bit transposed words; ``o.valid`` depends on
                  ``i.valid`` (the last row of a group falls through), never on
                  ``o.ready``; ``i.ready`` depends on ``o.ready`` only in bypass.
    """

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        words = stream.Signature(arch.sram_port_bits)
        super().__init__({"clear": In(1), "bypass": In(1), "i": In(words), "o": Out(words)})

    def elaborate(self, platform) -> Module:
        m = Module()
        rows, i, o = self.arch.mac_rows, self.i, self.o
        bypass = [o.valid.eq(i.valid), o.payload.eq(i.payload), i.ready.eq(o.ready)]
        if rows == 1:  # one row word is one transposed word
            m.d.comb += bypass
            return m
        transposed = self._transpose(m)
        with m.If(self.bypass):
            m.d.comb += bypass
        with m.Else():
            m.d.comb += transposed
        return m

    def _transpose(self, m: Module) -> list:
        """The double-buffered groups; returns the port assignments outside bypass."""
        rows, width, i, o = self.arch.mac_rows, self.arch.sram_port_bits, self.i, self.o
        buf = Array(
            Array(Signal(width, name=f"row_{b}_{r}") for r in range(rows)) for b in range(2)
        )
        full = Array(Signal(name=f"full_{b}") for b in range(2))
        wb, rb = Signal(), Signal()  # the bank being filled, the bank being read
        n = Signal(range(rows))  # rows stored in bank wb
        j = Signal(range(rows))  # transposed words of bank rb already read
        take, pop, through = Signal(), Signal(), Signal()
        # the last row of the group being read arrives now: offer it straight away
        m.d.comb += through.eq((wb == rb) & ~full[rb] & (n == rows - 1) & i.valid)
        cur = [Signal(width, name=f"cur_{r}") for r in range(rows)]
        m.d.comb += [cur[r].eq(Mux(rb, buf[1][r], buf[0][r])) for r in range(rows - 1)]
        last = Mux(rb, buf[1][rows - 1], buf[0][rows - 1])
        m.d.comb += cur[-1].eq(Mux(full[rb], last, i.payload))
        group = Cat(cur[r].word_select(k, 8) for k in range(width // 8) for r in range(rows))
        m.d.comb += [
            take.eq(i.valid & ~full[wb] & ~self.bypass),
            pop.eq((full[rb] | through) & o.ready & ~self.bypass),
        ]
        with m.If(take):
            m.d.sync += [buf[wb][n].eq(i.payload), n.eq(n + 1)]
            with m.If(n == rows - 1):
                m.d.sync += [n.eq(0), full[wb].eq(1), wb.eq(~wb)]
        # j = R-1 only when bank rb is full: this never clears the flag set above
        with m.If(pop):
            m.d.sync += j.eq(j + 1)
            with m.If(j == rows - 1):
                m.d.sync += [j.eq(0), full[rb].eq(0), rb.eq(~rb)]
        with m.If(self.clear):
            m.d.sync += [wb.eq(0), rb.eq(0), n.eq(0), j.eq(0), full[0].eq(0), full[1].eq(0)]
        return [
            i.ready.eq(~full[wb]),
            o.valid.eq(full[rb] | through),
            o.payload.eq(group.word_select(j, width)),
        ]
