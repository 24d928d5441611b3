"""Lowering ``mapping`` task lists to ``pe_isa`` programs (one per PE).

Each task op becomes a fixed instruction template; loops over tiles are hardware
loops (LOOP) whose address updates are stride slots (LSTRIDE), so a tile loop
costs no instructions per iteration.  Templates sit at the top level of the
program, so their outermost loop is stack level 0; slots a template does not use
but an earlier one set are cleared (``LSTRIDE x0``) before its first LOOP.

DMA descriptors are 48-byte SRAM segments in the PE's descriptor buffer
(``desc_<x>_<y>``); output-stage parameter blocks and selection matrices are SRAM
buffers with initial contents (``init``).  Register use is local to a template.
The streaming templates live in lower_stream.py, the instruction helpers in
codegen.py.
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64

from compiler.backend.builder import DESC_BYTES
from compiler.backend.chain_ops import ChainTemplates, MatmulWinOp, TransposeBlockedOp
from compiler.backend.codegen import I, drop_same_strides, loop, softmax_vcfg
from compiler.backend.lower_stream import StreamTemplates
from compiler.backend.tile_ops import MatmulAtOp
from compiler.backend.vec_ops import QSoftmaxOp, RequantRowsOp, VecTemplates
from compiler.dialects import mapping as mp
from compiler.dialects.mapping import int_of, ints_of, ref_of
from compiler.dialects.pe_isa import InstrOp, ProgramOp, SegmentOp, instr
from compiler.errors import CompileError
from hw.isa import DType, Op, SignalMode, VFn, dram_node, encode_desc, pack_node, pack_rect

__all__ = ["lower_kernel", "lower_pe", "softmax_vcfg"]


def _opt(op, name: str, default: int = 0) -> int:
    return int_of(op, name) if name in op.attributes else default


class _PeLowering(StreamTemplates, VecTemplates, ChainTemplates):
    def __init__(self, arch, kernel: mp.KernelOp, store: dict[str, bytes], pe: mp.PeOp):
        self.arch = arch
        self.store = store
        self.bufs = kernel.buffers()
        self.coords = pe.coords
        self.prefix = f"{kernel.sym_name.data}.pe{self.coords[0]}_{self.coords[1]}"
        self.code: list[InstrOp] = []
        self.segments: list[SegmentOp] = []
        self.dirty: set[tuple[int, int]] = set()
        self.overflow: dict[int, list[InstrOp]] = {}
        name = f"desc_{self.coords[0]}_{self.coords[1]}"
        self.desc_next = self.off(name) if name in self.bufs else -1
        self.n_desc = 0
        self.pe = pe

    # -- helpers --------------------------------------------------------------------
    def off(self, sym: str) -> int:
        return int_of(self.bufs[sym], "offset")

    def segment(self, addr: int, key: str, data: bytes) -> None:
        self.store[key] = data
        self.segments.append(
            SegmentOp.build(
                attributes={
                    "space": StringAttr("sram"),
                    "addr": IntegerAttr(addr, i64),
                    "ref": StringAttr(key),
                }
            )
        )

    def strides(self, table: dict[int, list[tuple[int, int]]]) -> None:
        """Set the stride slots of each level (the first ``loop_strides`` updates of a
        level; the rest become ADDIs that the template appends with :meth:`spill`);
        clear every other dirty slot."""
        want = set()
        self.overflow = {}
        for level, updates in table.items():
            slots, rest = updates[: self.arch.loop_strides], updates[self.arch.loop_strides :]
            for slot, (reg, imm) in enumerate(slots):
                self.code.append(I(Op.LSTRIDE, rd=reg, level=level, slot=slot, imm=imm))
                want.add((level, slot))
            self.overflow[level] = [I(Op.ADDI, rd=r, rs1=r, imm=v) for r, v in rest]
        for level, slot in sorted(self.dirty - want):
            self.code.append(I(Op.LSTRIDE, rd=0, level=level, slot=slot, imm=0))
        self.dirty = want

    def spill(self, level: int) -> list[InstrOp]:
        """The updates of ``level`` that did not get a stride slot (end of its body)."""
        return [instr(op.OPCODE, **op.values()) for op in self.overflow.get(level, [])]

    def tail(self, level: int) -> list[InstrOp]:
        """End of a body holding a nested loop: spilled updates, or a NOP (a loop body
        must end strictly inside its parent's)."""
        return self.spill(level) or [I(Op.NOP)]

    def descriptor(self, **fields: int) -> int:
        if self.desc_next < 0:
            raise CompileError(f"PE {self.coords}: no descriptor buffer was planned")
        addr = self.desc_next
        self.desc_next += DESC_BYTES
        self.segment(addr, f"{self.prefix}.desc{self.n_desc}", encode_desc(**fields))
        self.n_desc += 1
        return addr

    def remote(
        self, sym: str, offset: int, to: list[int] | None, read: bool = False
    ) -> dict[str, int]:
        buf = self.bufs[sym]
        if buf.attributes["space"].data == "dram":
            port_bytes = self.arch.dram_bytes // max(self.arch.dram_ports, 1)
            port, addr = divmod(self.off(sym) + offset, port_bytes)
            x, y = dram_node(self.arch, port)
            far, mode = (x, y), SignalMode.NODE
            if to is not None and to[:2] != to[2:]:
                far, mode = self.far_corner(sym, to, read), SignalMode.RECT
            return {"remote": addr, "mode": int(mode), "x0": x, "y0": y, "x1": far[0], "y1": far[1]}
        x0, y0, x1, y1 = to
        mode = SignalMode.NODE if (x0, y0) == (x1, y1) else SignalMode.RECT
        return {
            "remote": self.off(sym) + offset,
            "mode": int(mode),
            "x0": x0,
            "y0": y0,
            "x1": x1,
            "y1": y1,
        }

    def far_corner(self, sym: str, to: list[int], read: bool) -> tuple[int, int]:
        """The corner of ``to`` opposite this PE (a multicast read's answer rectangle;
        mapping.kernel's verifier made sure this PE is a corner)."""
        if not read:
            raise CompileError(f"PE {self.coords}: a DRAM write of {sym!r} cannot be multicast")
        x0, y0, x1, y1 = to
        return x0 + x1 - self.coords[0], y0 + y1 - self.coords[1]

    # -- templates ------------------------------------------------------------------
    def transfer(self, op: mp.TransferOp) -> None:
        a = op.attributes
        c0, c1, c2 = ints_of(op, "count")
        ls = ints_of(op, "local_strides") if "local_strides" in a else [0, 0]
        rs = ints_of(op, "remote_strides") if "remote_strides" in a else [0, 0]
        local = self.off(ref_of(op, "local")) + (
            int_of(op, "local_offset") if "local_offset" in a else 0
        )
        rem = self.remote(
            ref_of(op, "remote"),
            int_of(op, "remote_offset") if "remote_offset" in a else 0,
            ints_of(op, "to") if "to" in a else None,
            bool(int_of(op, "read")),
        )
        addr = self.descriptor(
            local=local,
            count0=c0,
            count1=c1,
            count2=c2,
            lstride1=ls[0],
            lstride2=ls[1],
            rstride1=rs[0],
            rstride2=rs[1],
            sem=int_of(op, "sem"),
            read=int_of(op, "read"),
            signal=int_of(op, "signal") if "signal" in a else 0,
            **rem,
        )
        self.code.append(I(Op.DMA, rs1=0, imm=addr))

    def wait(self, op: mp.WaitOp) -> None:
        self.code.append(I(Op.WAIT, sem=int_of(op, "sem"), count=int_of(op, "count")))

    def signal(self, op: mp.SignalOp) -> None:
        x0, y0, x1, y1 = ints_of(op, "to")
        if (x0, y0) == (x1, y1):
            mode, target = SignalMode.NODE, pack_node(x0, y0)
        else:
            mode, target = SignalMode.RECT, pack_rect(x0, y0, x1, y1)
        self.code += [
            I(Op.LI, rd=1, imm=target),
            I(Op.SIGNAL, rs1=1, sem=int_of(op, "sem"), mode=int(mode), count=int_of(op, "count")),
        ]

    def matmul(self, op: mp.MatmulOp) -> None:
        R, C = self.arch.mac_rows, self.arch.mac_cols
        mt, nt = ints_of(op, "tiles")
        k, ldc = int_of(op, "k"), int_of(op, "ldc")
        out32 = int_of(op, "out32") if "out32" in op.attributes else 0
        col = 4 * C if out32 else C
        pstride = int_of(op, "param_stride") if "param_stride" in op.attributes else 0
        at = {x: _opt(op, f"{x}_offset") for x in ("a", "b", "c", "p")}
        qload = _opt(op, "qload", 1) and not out32  # out32 skips the output stage
        alda = _opt(op, "alda")  # row-major A (MatmulAtOp only)
        a_tile = R * 16 * alda if alda else k * R  # bytes from one A tile to the next
        mm = I(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=k // 16, out32=out32, ldc=ldc, alda=alda)
        q = [I(Op.QLOAD, rs1=4, imm=0)] if qload else []
        regs = [(1, "a", "a"), (2, "b", "b"), (3, "c", "c"), (4, "params", "p")]
        self.code += [
            I(Op.LI, rd=r, imm=self.off(ref_of(op, name)) + at[x])
            for r, name, x in regs
            if r != 4 or qload
        ]
        window = isinstance(op, MatmulAtOp)
        if window and mt == nt == 1:  # one tile: no loop
            self.code += [*q, mm]
            return
        if window and nt == 1:  # one B tile: one parameter block, loaded once
            self.strides({0: [(1, a_tile), (3, _opt(op, "c_stride", R * ldc))]})
            self.code += [*q, *loop(mt, [mm, *self.spill(0)])]
            return
        self.strides(
            {
                0: [(1, -mt * a_tile), (2, k * C), (3, col - mt * R * ldc), (4, pstride)],
                1: [(1, a_tile), (3, R * ldc)],
            }
        )
        body = [*q, *loop(mt, [mm, *self.spill(1)]), *self.tail(0)]
        self.code += loop(nt, body)

    def transpose(self, op: mp.TransposeOp) -> None:
        R, C = self.arch.mac_rows, self.arch.mac_cols
        rows, cols, ldc = int_of(op, "rows"), int_of(op, "cols"), int_of(op, "ldc")
        per = 16 // C if C < 16 else 1  # chunks per 16-byte column group
        groups = cols // (C * per)
        sel_bytes = 16 * C
        self.code += [
            I(Op.LI, rd=1, imm=self.off(ref_of(op, "src"))),
            I(Op.LI, rd=2, imm=self.off(ref_of(op, "sel"))),
            I(Op.LI, rd=3, imm=self.off(ref_of(op, "dst"))),
            I(Op.QLOAD, rs1=0, imm=self.off(ref_of(op, "params"))),
        ]
        body: list[InstrOp] = []
        for _ in range(per):
            for rr in range(R):
                body += [
                    I(
                        Op.MATMUL,
                        rs1=1,
                        rs2=2,
                        rs3=3,
                        k16=1,
                        acc=int(rr > 0),
                        noout=int(rr < R - 1),
                        ldc=C,
                    ),
                    I(Op.ADDI, rd=1, rs1=1, imm=ldc),
                    I(Op.ADDI, rd=2, rs1=2, imm=sel_bytes),
                ]
            body += [I(Op.ADDI, rd=1, rs1=1, imm=-R * ldc), I(Op.ADDI, rd=3, rs1=3, imm=C * R)]
        self.strides(
            {
                0: [(1, R * ldc - groups * 16)],
                1: [(1, 16), (2, -per * R * sel_bytes)],
            }
        )
        self.code += loop(rows // R, [*loop(groups, body + self.spill(1)), *self.tail(0)])

    def softmax(self, op: mp.SoftmaxOp) -> None:
        """Pass 1 per row: [ADD mask], RMAX, SUB max, EXP, RSUM into word r of tmp;
        one RECIP over all row sums; pass 2 per row: MUL by 1/sum, REQ to int8."""
        rows, cols = int_of(op, "rows"), int_of(op, "cols")
        for reg, value in softmax_vcfg(ints_of(op, "consts")).items():
            self.code.append(I(Op.VCFG, rs1=0, cfg=int(reg), imm=value))
        tmp, src = self.off(ref_of(op, "tmp")), self.off(ref_of(op, "src"))
        sums = 16 * rows  # one RSUM word per row, then the RECIP results
        n16, i32 = cols // 16, int(DType.I32)

        def vop(fn, rd, rs1, rs2, n=n16, tout=i32, bscalar=0):
            return I(
                Op.VOP,
                rd=rd,
                rs1=rs1,
                rs2=rs2,
                n16=n,
                fn=int(fn),
                tin=i32,
                tout=tout,
                bscalar=bscalar,
            )

        self.code += [I(Op.LI, rd=1, imm=src), I(Op.LI, rd=3, imm=tmp)]
        pass1 = []
        if "mask" in op.attributes:
            self.code.append(I(Op.LI, rd=5, imm=self.off(ref_of(op, "mask"))))
            pass1.append(vop(VFn.ADD, 1, 1, 5))
        pass1 += [
            vop(VFn.RMAX, 3, 1, 1),
            I(Op.LW, rd=11, rs1=3, imm=0),
            vop(VFn.SUB, 1, 1, 11, bscalar=1),
            vop(VFn.EXP, 1, 1, 1),
            vop(VFn.RSUM, 3, 1, 1),
        ]
        self.strides({0: [(1, 4 * cols), (3, 16)]})
        self.code += loop(rows, pass1 + self.spill(0))
        self.code += [
            I(Op.LI, rd=3, imm=tmp),
            I(Op.LI, rd=4, imm=tmp + sums),
            vop(VFn.RECIP, 4, 3, 3, n=rows // 4),
            I(Op.LI, rd=1, imm=src),
            I(Op.LI, rd=2, imm=self.off(ref_of(op, "dst"))),
        ]
        pass2 = [
            I(Op.LW, rd=12, rs1=4, imm=0),
            vop(VFn.MUL, 1, 1, 12, bscalar=1),
            vop(VFn.REQ, 2, 1, 1, tout=int(DType.I8)),
        ]
        self.strides({0: [(1, 4 * cols), (2, cols), (4, 16)]})
        self.code += loop(rows, pass2 + self.spill(0))

    # -- driver ---------------------------------------------------------------------
    def lower(self) -> ProgramOp:
        for name, buf in self.bufs.items():
            if buf.attributes["space"].data != "sram" or "init" not in buf.attributes:
                continue
            x0, y0, x1, y1 = ints_of(buf, "pes")
            if x0 <= self.coords[0] <= x1 and y0 <= self.coords[1] <= y1:
                key = buf.attributes["init"].data
                self.segments.append(
                    SegmentOp.build(
                        attributes={
                            "space": StringAttr("sram"),
                            "addr": IntegerAttr(self.off(name), i64),
                            "ref": StringAttr(key),
                        }
                    )
                )
        table = {
            mp.TransferOp: self.transfer,
            mp.WaitOp: self.wait,
            mp.SignalOp: self.signal,
            mp.MatmulOp: self.matmul,
            MatmulAtOp: self.matmul,
            mp.StreamMatmulOp: self.stream_matmul,
            mp.StreamTilesOp: self.stream_tiles,
            mp.TransposeOp: self.transpose,
            mp.SoftmaxOp: self.softmax,
            MatmulWinOp: self.matmul_win,
            TransposeBlockedOp: self.transpose_blocked,
            QSoftmaxOp: self.qsoftmax,
            RequantRowsOp: self.requant_rows,
        }
        for op in self.pe.body.ops:
            table[type(op)](op)
        self.code = drop_same_strides(self.code)
        self.code.append(I(Op.HALT))
        if len(self.code) > self.arch.imem_words:
            raise CompileError(
                f"program of PE {self.coords} has {len(self.code)} instructions; instruction "
                f"memory holds {self.arch.imem_words}"
            )
        return ProgramOp(self.prefix.replace(".", "_"), self.coords, [*self.segments, *self.code])


def lower_pe(arch, kernel: mp.KernelOp, store: dict[str, bytes], pe: mp.PeOp) -> ProgramOp:
    return _PeLowering(arch, kernel, store, pe).lower()


def lower_kernel(arch, kernel: mp.KernelOp, store: dict[str, bytes]) -> list[ProgramOp]:
    """One verified ``pe_isa.program`` per task list of ``kernel``; descriptor images
    are added to ``store``."""
    programs = [lower_pe(arch, kernel, store, pe) for pe in kernel.pes()]
    for p in programs:
        p.verify()
    return programs
