"""The PE's MAC unit: QLOAD and MATMUL (docs/isa.md), on an R x C int8 MAC array.

Structure::

    port_a -> OperandReader(A) -> RowTransposer --\\
                                                   +-> K-step sequencer -> MacArray
    port_b -> OperandReader(B) -------------------/                            |
                     +-------------------------------------------- row mux <--+
                     +-> OutputStage (int8 rows) --+
                     +-> int32 word mux -----------+--> port_c (writes)

Operand streaming: each ``OperandReader`` issues word reads on its SRAM port (in
address order; a row-major A, ``alda`` >= 1, in groups of R row words that the
``RowTransposer`` turns into transposed-tile words: hw/pe/mac_arow.py) into a small
fall-through FIFO.  A read is issued only while the FIFO has room for its data
(stored words + the read in flight < ``FIFO_DEPTH``), because read data arrives
exactly one cycle after acceptance and cannot be stalled; bank conflicts (``ready``
low) therefore only delay steps.  A word of A
holds 16 / R K-steps (R bytes each), a word of B 16 / C K-steps (C bytes each):
the sequencer performs one K step per cycle whenever both heads are valid and
pops a word after its last K step.  With A and B in different banks a MATMUL
with K = 16 * k16 takes (from the acceptance cycle to the first cycle with
``busy`` low):

    int8 output:  K + R + 6      (K = 256 on 4 x 16: 266)
    out32:        K + R * C / 4 + 4
    noout:        K + 4
    QLOAD:        words(qparam_layout total) + 2

plus R - 1 with ``alda`` >= 1 (its first K step needs R words; same rate after).
(sim/pe_sim.py estimates every MATMUL at K + R + 6: exact for int8 output.)  The
output stage has C 32 x 32 multipliers and takes one row per cycle (see
hw/pe/output_stage.py), so the drain after the last K step is R + 6 cycles.
Output rows are written in order 0..R-1 (a later row wins where rows overlap,
e.g. ``ldc = 0``); an int8 row is one byte-masked word (C divides 16 and the row
is C-aligned), an int32 row is 4C/16 full words.  The accumulators and the
parameters keep their values across commands and faults (reset: zero).

Output overlap: when a MATMUL's last K step has reached the accumulators (the
cycle ``noout`` would end), the command side hands its rows to the output side - a
copy of the accumulators (R x C int32 registers), its ``c_addr``/``ldc``/``out32``
- and takes the next command while they are written: back-to-back MATMULs cost
K + 4 cycles each instead of K + R + 6 (int8) or K + R*C/4 + 4 (out32).  A MATMUL
whose A (row-major: rows 0 to R-1 and the gaps) or B range overlaps the rows still
being written, and every QLOAD (it replaces the output stage's parameters), waits
until they are written; a finished MATMUL whose predecessor's rows are still going
out waits in HANDOFF.

Protocol (hw.pe.interfaces): ``cmd`` is ready only when the command side is idle
(and, for QLOAD or a MATMUL reading the pending rows, the output side too);
``busy`` is high from the cycle after acceptance until the last SRAM write (or,
for QLOAD and noout, the last read/accumulate) is done, the output side included;
``error`` pulses for one cycle (with ``busy``) for an address fault, checked in
full at acceptance, after which the unit goes idle without any SRAM access.
Address faults (docs/isa.md, computed exactly, without 32-bit wrap):

* QLOAD: ``a_addr`` 16-aligned and ``a_addr + total <= sram_bytes``.
* MATMUL: ``a_addr``, ``b_addr`` 16-aligned, ``a_addr + K*R <= sram_bytes`` (with
  ``alda`` >= 1: ``a_addr + 16*alda*(R-1) + K <= sram_bytes``), ``b_addr + K*C <=
  sram_bytes``; unless ``noout``: ``c_addr`` and ``ldc`` 16-aligned (out32) or
  multiples of C (int8), and
  ``c_addr + (R-1)*ldc + row_bytes <= sram_bytes`` (row_bytes = 4C or C).
  ``k16 = 0`` (unreachable: the decoder rejects it) is reported as a fault too.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import MM_ALDA, qparam_layout
from hw.pe.interfaces import MacCmd, SramPort, word_addr_bits
from hw.pe.mac_arow import OperandAddress, RowTransposer, a_end
from hw.pe.mac_array import MacArray
from hw.pe.output_stage import OutputStage

__all__ = ["MacUnit", "OperandReader"]

FIFO_DEPTH = 4  # words per operand FIFO (2 would sustain full rate without conflicts)
COUNT_BITS = 17  # words or K steps of one command: k16 * 16 <= 65520


class OperandReader(wiring.Component):
    """SRAM word reader feeding a fall-through FIFO.

    Ports:
      port   Out SramPort   reads only (``we`` = 0)
      start  In  1          pulse while idle: read ``count`` words from word ``base`` on
      base   In  word address
      stride In  10         0: sequential words; s >= 1: groups of ``rows`` words
                            ``base + g + s*r`` (hw.pe.mac_arow.OperandAddress)
      count  In  words to read
      data   Out stream of 128-bit words, in address order; a word arriving on
                 ``rdata`` while the FIFO is empty is offered in the same cycle.
    """

    def __init__(self, arch: ArchConfig, depth: int = FIFO_DEPTH, rows: int = 1):
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 2, not {depth!r}")
        self.arch = arch
        self.depth = depth
        self.rows = rows
        super().__init__(
            {
                "port": Out(SramPort(arch)),
                "start": In(1),
                "base": In(word_addr_bits(arch)),
                "stride": In(MM_ALDA.width),
                "count": In(COUNT_BITS),
                "data": Out(stream.Signature(arch.sram_port_bits)),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        depth, port = self.depth, self.port
        m.submodules.address = gen = OperandAddress(len(self.base), self.rows)
        remaining = Signal(COUNT_BITS)
        inflight = Signal()  # a read was accepted last cycle: its data arrives now
        occ = Signal(range(depth + 1))
        rp = Signal(range(depth))
        wp = Signal(range(depth))
        mem = Array(Signal(self.arch.sram_port_bits, name=f"fifo_{i}") for i in range(depth))

        issue = Signal()
        m.d.comb += [
            port.valid.eq((remaining != 0) & (occ + inflight < depth)),
            port.addr.eq(gen.addr),
            port.we.eq(0),
            issue.eq(port.valid & port.ready),
            gen.next.eq(issue),
            *(getattr(gen, name).eq(getattr(self, name)) for name in ("start", "base", "stride")),
        ]
        m.d.sync += inflight.eq(issue)
        with m.If(self.start):
            m.d.sync += remaining.eq(self.count)
        with m.Elif(issue):
            m.d.sync += remaining.eq(remaining - 1)

        arrive = port.rvalid
        stored = occ != 0
        pop = Signal()
        store = Signal()
        m.d.comb += [
            self.data.valid.eq(stored | arrive),
            self.data.payload.eq(Mux(stored, mem[rp], port.rdata)),
            pop.eq(self.data.valid & self.data.ready),
            store.eq(arrive & ~(pop & ~stored)),
        ]
        with m.If(store):
            m.d.sync += [mem[wp].eq(port.rdata), wp.eq(wp + 1)]
        with m.If(pop & stored):
            m.d.sync += rp.eq(rp + 1)
        m.d.sync += occ.eq(occ + store - (pop & stored))
        return m


class MacUnit(wiring.Component):
    """QLOAD / MATMUL executor (see the module docstring for timing and faults).

    Ports:
      cmd     In  stream of MacCmd (ready when the command side is idle, see above)
      busy    Out 1
      error   Out 1 (one-cycle pulse: address fault)
      port_a  Out SramPort  A operand and QLOAD parameter block reads
      port_b  Out SramPort  B operand reads
      port_c  Out SramPort  output writes (byte-masked int8 rows or int32 words)
    """

    def __init__(self, arch: ArchConfig):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        self.arch = arch
        self._lsb = (arch.word_bytes - 1).bit_length()  # byte-in-word address bits
        super().__init__(
            {
                "cmd": In(stream.Signature(MacCmd)),
                "busy": Out(1),
                "error": Out(1),
                "port_a": Out(SramPort(arch)),
                "port_b": Out(SramPort(arch)),
                "port_c": Out(SramPort(arch)),
            }
        )

    # -- address checks -----------------------------------------------------------------
    def _fault(self, m: Module) -> Signal:
        """Combinational: the command on ``cmd.payload`` faults (docs/isa.md)."""
        arch, p = self.arch, self.cmd.payload
        rows, cols, size = arch.mac_rows, arch.mac_cols, arch.sram_bytes
        k = p.k16 * 16
        qtotal = qparam_layout(cols)["total"][1]
        last_row = p.c_addr + p.ldc * (rows - 1)
        lsb = self._lsb
        c32_bad = (p.c_addr[:lsb] != 0) | (p.ldc[:lsb] != 0) | (last_row + 4 * cols > size)
        lowc = (cols - 1).bit_length()
        c8_bad = (p.c_addr[:lowc] != 0) | (p.ldc[:lowc] != 0) | (last_row + cols > size)
        ab_bad = (
            (p.a_addr[:lsb] != 0)
            | (p.b_addr[:lsb] != 0)
            | (a_end(p, rows) > size)
            | (p.b_addr + k * cols > size)
            | (p.k16 == 0)
        )
        fault = Signal()
        with m.If(p.qload):
            m.d.comb += fault.eq((p.a_addr[:lsb] != 0) | (p.a_addr + qtotal > size))
        with m.Else():
            m.d.comb += fault.eq(ab_bad | (~p.noout & Mux(p.out32, c32_bad, c8_bad)))
        return fault

    # -- elaboration ----------------------------------------------------------------------
    def elaborate(self, platform) -> Module:
        m = Module()
        arch = self.arch
        m.submodules.reader_a = ra = OperandReader(arch, rows=arch.mac_rows)
        m.submodules.reader_b = rb = OperandReader(arch)
        m.submodules.transpose_a = ta = RowTransposer(arch)
        wiring.connect(m, producer=ra.data, consumer=ta.i)
        m.submodules.array = array = MacArray(arch)
        m.submodules.outstage = ostage = OutputStage(arch)
        wiring.connect(m, wiring.flipped(self.port_a), ra.port)
        wiring.connect(m, wiring.flipped(self.port_b), rb.port)

        p = self.cmd.payload
        cmd = Signal(MacCmd)  # the accepted command
        fault = self._fault(m)
        accept = Signal()
        m.d.comb += accept.eq(self.cmd.valid & self.cmd.ready)
        with m.If(accept):
            m.d.sync += cmd.eq(p)
        qwords = qparam_layout(arch.mac_cols)["total"][1] // arch.word_bytes
        m.d.comb += [
            ra.start.eq(accept & ~fault),
            ra.base.eq(p.a_addr[self._lsb :]),
            ra.stride.eq(Mux(p.qload, 0, p.alda)),
            ta.clear.eq(ra.start),
            ta.bypass.eq(cmd.qload | (cmd.alda == 0)),  # set by the first word
            ra.count.eq(Mux(p.qload, qwords, p.k16 * arch.mac_rows)),
            rb.start.eq(accept & ~fault & ~p.qload),
            rb.base.eq(p.b_addr[self._lsb :]),
            rb.count.eq(p.k16 * arch.mac_cols),
        ]

        regs = SimpleNamespace(
            cmd=cmd,
            fault=fault,
            qwords=qwords,
            block=Signal(qparam_layout(arch.mac_cols)["total"][1] * 8),  # QLOAD parameters
            qidx=Signal(range(qwords)),
            steps_left=Signal(COUNT_BITS),
            first=Signal(),
            acc_row=Signal(range(arch.mac_rows + 1)),  # rows fed to the output stage
            wr_row=Signal(range(arch.mac_rows)),  # rows written
            wr_word=Signal(range(max(2, 4 * arch.mac_cols // arch.word_bytes))),  # of a row
            row_addr=Signal(arch.sram_bytes.bit_length() + 1),  # byte address of the row
            step=Signal(),
            # the output side: the command whose rows are being written and a copy of
            # its accumulators, so that the next command may run meanwhile
            ocmd=Signal(MacCmd),
            oacc=Signal(len(array.acc.as_value())),
            c_lo=Signal(arch.sram_bytes.bit_length() + 1),  # its output bytes [c_lo, c_hi)
            c_hi=Signal(arch.sram_bytes.bit_length() + 2),
            out_busy=Signal(),
        )
        self._connect_params(m, regs.block, ostage)
        self._sequencer(m, ta.o, rb.data, array, regs)
        self._control(m, regs, ta.o, rb.data, array, ostage)
        return m

    def _control(self, m: Module, s, a, b, array, ostage) -> None:
        """Two FSMs. Command: IDLE -> FAULT | QLOAD | RUN -> DRAIN [-> HANDOFF] -> IDLE.
        Output: OIDLE -> OUT8 | OUT32 -> OIDLE, on a copy of the accumulators taken when
        the command side hands a finished MATMUL over, so the next command runs while
        the rows are written (docs/pe.md, "MAC unit")."""
        p = self.cmd.payload
        self._output(m, s, array, ostage)
        with m.FSM(name="mac_fsm") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(~(s.out_busy & (p.qload | self._reads_c(s))))
                m.d.sync += [
                    s.steps_left.eq(p.k16 * 16),
                    s.first.eq(1),
                    s.qidx.eq(0),
                ]
                with m.If(self.cmd.valid & self.cmd.ready):
                    with m.If(s.fault):
                        m.next = "FAULT"
                    with m.Elif(p.qload):
                        m.next = "QLOAD"
                    with m.Else():
                        m.next = "RUN"
            with m.State("FAULT"):
                m.d.comb += self.error.eq(1)
                m.next = "IDLE"
            with m.State("QLOAD"):
                m.d.comb += a.ready.eq(1)
                with m.If(a.valid):
                    m.d.sync += [
                        s.block.word_select(s.qidx, self.arch.sram_port_bits).eq(a.payload),
                        s.qidx.eq(s.qidx + 1),
                    ]
                    with m.If(s.qidx == s.qwords - 1):
                        m.next = "IDLE"
            with m.State("RUN"):
                m.d.comb += s.step.eq(a.valid & b.valid)
                with m.If(s.step & (s.steps_left == 1)):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(array.done):
                    with m.If(s.cmd.noout):
                        m.next = "IDLE"
                    with m.Elif(s.out_busy):
                        m.next = "HANDOFF"
                    with m.Else():
                        self._hand_over(m, s, array, ostage)
                        m.next = "IDLE"
            with m.State("HANDOFF"):  # the previous command's rows are still going out
                with m.If(~s.out_busy):
                    self._hand_over(m, s, array, ostage)
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | s.out_busy)

    def _reads_c(self, s) -> Value:
        """The offered MATMUL reads bytes of the rows still being written (it waits)."""
        p, arch = self.cmd.payload, self.arch
        k = p.k16 * 16
        a_hit = (p.a_addr < s.c_hi) & (s.c_lo < a_end(p, arch.mac_rows))  # hull of the rows
        b_hit = (p.b_addr < s.c_hi) & (s.c_lo < p.b_addr + k * arch.mac_cols)
        return a_hit | b_hit

    def _hand_over(self, m: Module, s, array, ostage) -> None:
        """Start writing the finished command's rows: copy its accumulators and fields;
        an int8 row 0 enters the output stage in this very cycle, from the array."""
        cmd, cols, rows = s.cmd, self.arch.mac_cols, self.arch.mac_rows
        row = Mux(cmd.out32, 4 * cols, cols)
        m.d.sync += [
            s.ocmd.eq(cmd),
            s.oacc.eq(array.acc.as_value()),
            s.out_busy.eq(1),
            s.acc_row.eq(0),
            s.wr_row.eq(0),
            s.wr_word.eq(0),
            s.row_addr.eq(cmd.c_addr),
            s.c_lo.eq(cmd.c_addr),
            s.c_hi.eq(cmd.c_addr + cmd.ldc * (rows - 1) + row),
        ]
        with m.If(~cmd.out32):
            width = cols * 32
            m.d.comb += [
                ostage.i.valid.eq(1),
                ostage.i.payload.as_value().eq(array.acc.as_value()[:width]),
            ]
            with m.If(ostage.i.ready):
                m.d.sync += s.acc_row.eq(1)

    def _output(self, m: Module, s, array, ostage) -> None:
        """The output FSM: rows of ``oacc`` through the output stage (int8) or raw
        (int32) to ``port_c``; ``out_busy`` drops with the last write."""
        with m.If(s.out_busy):
            with m.If(s.ocmd.out32):
                self._write_int32(m, s.oacc, s.ocmd, s.wr_row, s.wr_word, s.row_addr, s)
            with m.Else():
                with m.If(s.acc_row != self.arch.mac_rows):
                    self._feed_row(m, s.oacc, ostage, s.acc_row)
                self._write_int8(m, ostage, s.ocmd, s.wr_row, s.row_addr, s)

    def _connect_params(self, m: Module, block: Signal, ostage: OutputStage) -> None:
        layout = qparam_layout(self.arch.mac_cols)

        def field(name: str) -> Signal:
            off, size = layout[name]
            return block[off * 8 : (off + size) * 8]

        shifts = field("shift")
        clamp = field("clamp")
        m.d.comb += [
            ostage.bias.as_value().eq(field("bias")),
            ostage.mult.as_value().eq(field("mult")),
            ostage.shift.as_value().eq(
                Cat(shifts[c * 8 : c * 8 + 6] for c in range(self.arch.mac_cols))
            ),
            ostage.zp.eq(clamp[0:8]),
            ostage.lo.eq(clamp[8:16]),
            ostage.hi.eq(clamp[16:24]),
        ]

    def _sequencer(self, m: Module, a, b, array: MacArray, s) -> None:
        """One K step per cycle while ``step``; pops a word after its last K step."""
        rows, cols = self.arch.mac_rows, self.arch.mac_cols
        step, first, steps_left = s.step, s.first, s.steps_left
        a_vec, a_pop = self._sub_select(m, a.payload, rows * 8, step, "a_sub")
        b_vec, b_pop = self._sub_select(m, b.payload, cols * 8, step, "b_sub")
        m.d.comb += [
            array.a.as_value().eq(a_vec),
            array.b.as_value().eq(b_vec),
            array.valid.eq(step),
            array.clear.eq(first & ~s.cmd.acc),
            array.last.eq(steps_left == 1),
            a.ready.eq(step & a_pop),
            b.ready.eq(step & b_pop),
        ]
        with m.If(step):
            m.d.sync += [steps_left.eq(steps_left - 1), first.eq(0)]

    @staticmethod
    def _sub_select(m: Module, word, width: int, step: Signal, name: str):
        """The current ``width``-bit K-step slice of ``word`` and whether it is the last."""
        per_word = len(word) // width
        if per_word == 1:
            return word, Const(1)
        sub = Signal(range(per_word), name=name)
        with m.If(step):
            m.d.sync += sub.eq(sub + 1)  # wraps: per_word is a power of two
        return word.word_select(sub, width), sub == per_word - 1

    def _feed_row(self, m: Module, acc: Value, ostage: OutputStage, acc_row) -> None:
        width = self.arch.mac_cols * 32
        m.d.comb += [
            ostage.i.valid.eq(1),
            ostage.i.payload.as_value().eq(acc.word_select(acc_row, width)),
        ]
        with m.If(ostage.i.ready):
            m.d.sync += acc_row.eq(acc_row + 1)

    def _write_int8(self, m: Module, ostage: OutputStage, cmd, wr_row, row_addr, s) -> None:
        cols, port = self.arch.mac_cols, self.port_c
        offset = row_addr[: self._lsb]
        m.d.comb += [
            port.valid.eq(ostage.o.valid),
            port.we.eq(1),
            port.addr.eq(row_addr[self._lsb :]),
            port.wdata.eq(Cat([ostage.o.payload.as_value()] * (self.arch.word_bytes // cols))),
            port.wmask.eq(Const((1 << cols) - 1, self.arch.word_bytes) << offset),
            ostage.o.ready.eq(port.ready),
        ]
        with m.If(port.valid & port.ready):
            m.d.sync += [wr_row.eq(wr_row + 1), row_addr.eq(row_addr + cmd.ldc)]
            with m.If(wr_row == self.arch.mac_rows - 1):
                m.d.sync += s.out_busy.eq(0)

    def _write_int32(self, m: Module, flat: Value, cmd, wr_row, wr_word, row_addr, s) -> None:
        rows, cols, port = self.arch.mac_rows, self.arch.mac_cols, self.port_c
        words = 4 * cols // self.arch.word_bytes  # SRAM words per row of C int32
        m.d.comb += [
            port.valid.eq(1),
            port.we.eq(1),
            port.addr.eq(row_addr[self._lsb :] + wr_word),
            port.wdata.eq(flat.word_select(wr_row * words + wr_word, self.arch.sram_port_bits)),
            port.wmask.eq((1 << self.arch.word_bytes) - 1),
        ]
        with m.If(port.ready):
            with m.If(wr_word == words - 1):
                m.d.sync += [wr_word.eq(0), wr_row.eq(wr_row + 1), row_addr.eq(row_addr + cmd.ldc)]
                with m.If(wr_row == rows - 1):
                    m.d.sync += s.out_busy.eq(0)
            with m.Else():
                m.d.sync += wr_word.eq(wr_word + 1)
