"""Random valid PE programs: the stimulus for reference-vs-RTL equivalence.

``random_program(arch, seed)`` builds a terminating, race-free program that
exercises every instruction: scalar arithmetic, LW/SW, nested hardware loops
with stride slots, QLOAD + MATMUL chains, VCFG + VOP over every function and
type, DMA (SELF copies in 1-3 D, NODE writes and reads to the PE's own node and
to DRAM port 0, RECT writes to the PE's own node) each followed by a WAIT that
drains its semaphore before the data is touched, SIGNAL + WAIT, and a tail of
unsignalled SELF copies into a sink area before HALT.  The final SRAM,
registers and semaphores of the reference simulator are what the RTL must
reproduce.  ``fault_program(arch, kind, seed)`` builds one ending in a fault of
``kind`` (a PeError) at a known pc.

Features added after programs were pinned by seed (REQB, EXPB, VOP segments, the
row-major A of MATMUL) come only with ``segments=True``: without it a seed gives the
program it always gave (the functions drawn are ``BASE_FNS``, the list before REQB).
With it, an extra random stream (its own seed, like ``nowait``'s) makes some MATMULs
read a row-major A (``alda``), some VOPs REQB or EXPB and gives VOPs
a ``seg`` field - segmented (1 <= seg < n16), one segment (seg >= n16) or 0 - and
longer vectors; their operands are sized by ``sim.footprint.vop_operand_bytes`` (so
the rest of the program differs too from the first VOP whose sizes change).
``fault_program(..., segments=True)`` adds the ADDRESS variants ``vop_seg_b``,
``vop_seg_d`` (a per-segment B / a reduction's per-segment D past the end of SRAM) and
``matmul_arow`` (the last row of a row-major A past it).

SRAM layout (fractions of ``arch.sram_bytes``): work area [0, 3/4) with random
initial bytes, read and written by the program; sink [3/4, 7/8) written only by
the final unsignalled DMAs; constants [7/8, 1) (QLOAD blocks, DMA descriptors),
never written.  Race freedom rests on three rules: no instruction touches a DMA's
ranges between the DMA and the WAIT that drains its semaphore; the ranges of DMAs
in flight together are disjoint; a DRAM write is always followed, in the same
batch, by a DRAM read that signals (point-to-point order).  Operands of one
MATMUL or VOP never overlap.  The program uses the PE at ``coords`` (default
(0, 0)) and DRAM port 0 only (addresses below 16 KiB), and needs
``arch.dram_ports >= 1`` for its DRAM traffic (skipped otherwise).
"""

from __future__ import annotations

import random

from hw.image import ProgramImage
from hw.isa import (
    BINARY,
    DESC_WORDS,
    REDUCTIONS,
    WORD_BYTES,
    DType,
    Op,
    PeError,
    SignalMode,
    Unit,
    VCfg,
    VFn,
    dram_node,
    encode,
    encode_desc,
    pack_node,
    pack_rect,
    qparam_layout,
)
from sim.footprint import matmul_a_end, vop_operand_bytes

__all__ = ["BASE_FNS", "fault_program", "random_program"]

M32 = 0xFFFFFFFF
DESC_BYTES = DESC_WORDS * WORD_BYTES
DRAM_SPAN = 16384  # DRAM bytes a program touches (cosim models 1 MiB at least)
ALU_OPS = (Op.ADD, Op.SUB, Op.MUL, Op.ADDI, Op.SHLI, Op.SHRI, Op.LI)
# the vector functions drawn by the main stream: hw.isa.VFn as it was before REQB, so
# that a seed's program does not change when functions are added (segments=True adds)
BASE_FNS = tuple(f for f in VFn if f not in (VFn.REQB, VFn.EXPB))


class _NoRoom(Exception):
    pass


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v >> 31 else v


def _span(s1: int, s2: int, c1: int, c2: int) -> tuple[int, int]:
    """(min, max) row offset of rows i1*s1 + i2*s2."""
    lo = min(0, (c1 - 1) * s1) + min(0, (c2 - 1) * s2)
    hi = max(0, (c1 - 1) * s1) + max(0, (c2 - 1) * s2)
    return lo, hi


class _Gen:
    def __init__(
        self,
        arch,
        seed: int,
        coords: tuple[int, int],
        nowait: bool = False,
        segments: bool = False,
    ):
        self.arch, self.seed, self.coords = arch, seed, coords
        self.rng = random.Random(seed)
        # nowait commands, each ordered by a FENCE right after it (its own stream, so
        # the rest of the program is the same with and without)
        self.nowait = random.Random(seed * 7919 + 1) if nowait and arch.async_units else None
        # REQB and VOP segments: their own stream, but the operand sizes change and
        # with them the main stream's draws from the first such VOP on
        self.segs = random.Random(seed * 7919 + 2) if segments else None
        self.code: list[int] = []
        self.blocks: list[str] = []
        size = arch.sram_bytes
        self.work = (0, size * 3 // 4)
        self.sink = (size * 3 // 4, size * 7 // 8)
        self.const_lo = size * 7 // 8
        self.const = bytearray(size - self.const_lo)
        self.const_used = 0
        self.sink_used = self.sink[0]
        self.level = [0] * arch.semaphores
        self.r, self.c = arch.mac_rows, arch.mac_cols
        self.has_dram = arch.dram_ports >= 1
        self.dram_span = min(DRAM_SPAN, arch.dram_bytes)

    # -- emission helpers ------------------------------------------------------------
    def emit(self, op: Op, **fields: int) -> int:
        self.code.append(encode(op, **fields))
        return len(self.code) - 1

    def unit(self, op: Op, **fields: int) -> None:
        """A unit command; with ``nowait`` programs, half of them nowait + FENCE."""
        n = self.nowait
        if n is None or n.random() < 0.5:
            self.emit(op, **fields)
            return
        self.emit(op, nowait=1, **fields)
        own = int(Unit.VEC if op == Op.VOP else Unit.MAC)
        self.emit(Op.FENCE, units=n.choice([own, own, 3]))

    def patch_loop(self, idx: int, **fields: int) -> None:
        self.code[idx] = encode(Op.LOOP, body=len(self.code) - idx - 1, **fields)

    def li(self, rd: int, value: int) -> None:
        self.emit(Op.LI, rd=rd, imm=_s32(value))

    def const_block(self, data: bytes) -> int:
        addr = self.const_used
        if addr + len(data) > len(self.const):
            raise _NoRoom
        self.const[addr : addr + len(data)] = data
        self.const_used += -(-len(data) // 16) * 16
        return self.const_lo + addr

    def buf(self, nbytes: int, taken: list, area=None, align: int = 16) -> int:
        lo, hi = area or self.work
        slots = (hi - lo - nbytes) // align
        for _ in range(200):
            if slots < 0:
                break
            a = lo + align * self.rng.randint(0, slots)
            if all(a + nbytes <= s or e <= a for s, e in taken):
                taken.append((a, a + nbytes))
                return a
        raise _NoRoom

    def regs(self, k: int) -> list[int]:
        return self.rng.sample(range(1, 16), k)

    def addr_to(self, reg: int, addr: int, imm_ok: bool = True) -> int:
        """Load reg so that reg + imm == addr; returns imm."""
        off = self.rng.choice([0, 0, 16, -16, 32]) if imm_ok else 0
        self.li(reg, addr - off)
        return off

    def sem_with_room(self, need: int) -> int:
        room = [s for s in range(self.arch.semaphores) if self.level[s] + need <= self.arch.sem_max]
        return self.rng.choice(room)

    # -- blocks ----------------------------------------------------------------------
    def scalar(self) -> None:
        rng = self.rng
        for _ in range(rng.randint(3, 10)):
            op = rng.choice(ALU_OPS)
            rd = rng.randint(0, 15) if rng.random() < 0.1 else rng.randint(1, 15)
            a, b = rng.randint(0, 15), rng.randint(0, 15)
            if op == Op.LI:
                self.emit(
                    op,
                    rd=rd,
                    imm=rng.choice([rng.randint(-(2**31), 2**31 - 1), rng.randint(-300, 300)]),
                )
            elif op == Op.ADDI:
                self.emit(op, rd=rd, rs1=a, imm=rng.randint(-(2**31), 2**31 - 1))
            elif op in (Op.SHLI, Op.SHRI):
                self.emit(op, rd=rd, rs1=a, imm=rng.randint(0, 31))
            else:
                self.emit(op, rd=rd, rs1=a, rs2=b)

    def memory(self) -> None:
        rng = self.rng
        base, other = self.regs(2)
        addr = self.buf(256, [])
        self.li(base, addr + 64)
        for _ in range(rng.randint(2, 6)):
            off = 4 * rng.randint(-16, 47)
            if rng.random() < 0.5:
                self.emit(Op.SW, rs1=base, rs2=rng.randint(0, 15), imm=off)
            else:
                self.emit(
                    Op.LW,
                    rd=rng.choice([other, 0, base if rng.random() < 0.1 else other]),
                    rs1=base,
                    imm=off,
                )
                if self.code and self.code[-1] == encode(Op.LW, rd=base, rs1=base, imm=off):
                    return  # base now holds data: stop using it

    def qload(self, reg: int) -> None:
        rng, c = self.rng, self.c
        lay = qparam_layout(c)
        block = bytearray(lay["total"][1])

        def put(off: int, values, width: int) -> None:
            for i, v in enumerate(values):
                block[off + i * width : off + (i + 1) * width] = (
                    v & ((1 << 8 * width) - 1)
                ).to_bytes(width, "little")

        put(lay["bias"][0], [rng.randint(-5000, 5000) for _ in range(c)], 4)
        put(
            lay["mult"][0],
            [
                rng.choice([rng.randint(1, 2**16), rng.randint(-(2**31), 2**31 - 1)])
                for _ in range(c)
            ],
            4,
        )
        put(
            lay["shift"][0],
            [rng.choice([rng.randint(0, 255), rng.randint(8, 24)]) for _ in range(c)],
            1,
        )
        lo = rng.randint(-128, 20)
        put(lay["clamp"][0], [rng.randint(-10, 10), lo, rng.choice([127, rng.randint(lo, 127)])], 1)
        addr = self.const_block(bytes(block))
        off = self.addr_to(reg, addr)
        self.unit(Op.QLOAD, rs1=reg, imm=off)

    def mm_shape(self, rng) -> dict:
        r, c = self.r, self.c
        out32 = rng.random() < 0.4
        row = 4 * c if out32 else c
        ldc = (row + 16 * rng.randint(0, 2)) if out32 else c * rng.randint(1, 3)
        k16 = rng.randint(1, 3)
        alda = 0
        if self.segs is not None and self.segs.random() < 0.3:  # row-major A
            alda = self.segs.choice([k16, k16 + self.segs.randint(1, 3)])
        return {
            "k16": k16,
            "out32": int(out32),
            "ldc": ldc,
            "out_bytes": (r - 1) * ldc + row,
            "alda": alda,
            "a_bytes": matmul_a_end(0, 16 * k16, r, alda),
        }

    def matmul(self) -> None:
        rng = self.rng
        ra, rb, rc, rq = self.regs(4)
        self.qload(rq)
        steps = rng.randint(1, 3)
        shape = self.mm_shape(rng)
        for i in range(steps):
            last = i == steps - 1
            taken: list = []
            k = 16 * shape["k16"]
            self.li(ra, self.buf(shape["a_bytes"], taken))
            self.li(rb, self.buf(k * self.c, taken))
            self.li(rc, self.buf(shape["out_bytes"], taken))
            acc = int(i > 0 or rng.random() < 0.2)
            noout = 0 if last else int(rng.random() < 0.8)
            self.unit(
                Op.MATMUL,
                rs1=ra,
                rs2=rb,
                rs3=rc,
                k16=shape["k16"],
                out32=shape["out32"],
                acc=acc,
                noout=noout,
                ldc=shape["ldc"],
                alda=shape["alda"],
            )

    def vcfg_value(self, cfg: VCfg) -> int:
        rng = self.rng
        table = {
            VCfg.MULT: rng.choice([rng.randint(1, 2**20), rng.randint(-(2**31), 2**31 - 1)]),
            VCfg.SHIFT: rng.randint(0, 63) if rng.random() < 0.3 else rng.randint(4, 30),
            VCfg.ZP: rng.randint(-50, 50),
            VCfg.LO: rng.randint(-(2**15), 0),
            VCfg.HI: rng.randint(0, 2**15),
            VCfg.EXP_QLN2: rng.randint(1, 20000),
            VCfg.EXP_INV_MULT: rng.randint(0, 2**16),
            VCfg.EXP_INV_SHIFT: rng.randint(0, 31),
            VCfg.EXP_QB: rng.randint(-40000, 40000),
            VCfg.EXP_QC: rng.randint(-(2**30), 2**30),
            VCfg.ERF_QB: rng.randint(-20000, 10),
            VCfg.ERF_QC: rng.randint(-(2**30), 2**30),
            VCfg.RECIP_K: rng.randint(0, 70),
        }
        return table[cfg]

    def vcfg(self) -> None:
        rng = self.rng
        for cfg in rng.sample(list(VCfg), rng.randint(2, 6)):
            v = self.vcfg_value(cfg)
            if rng.random() < 0.3:
                (reg,) = self.regs(1)
                base = rng.randint(-(2**31), 2**31 - 1)
                self.li(reg, base)
                self.emit(Op.VCFG, cfg=int(cfg), rs1=reg, imm=_s32(v - base))
            else:
                self.emit(Op.VCFG, cfg=int(cfg), imm=v)

    def vop_fields(self, rng, n16: int | None = None, longer: bool = False) -> dict:
        fn = rng.choice(BASE_FNS)
        tin = rng.choice(list(DType))
        tout = DType.I32 if fn in REDUCTIONS else rng.choice(list(DType))
        n16 = n16 or rng.randint(1, 4)
        bscalar = int(fn in BINARY and rng.random() < 0.3)
        v = {"fn": fn, "tin": tin, "tout": tout, "n16": n16, "bscalar": bscalar, "seg": 0}
        if self.segs is not None:
            self.segment_fields(v, longer)
        return v

    def segment_fields(self, v: dict, longer: bool) -> None:
        """REQB and the ``seg`` field, drawn from the segments stream only."""
        sr = self.segs
        if sr.random() < 0.15:
            fn = sr.choice([VFn.REQB, VFn.EXPB])
            v.update(fn=fn, bscalar=int(sr.random() < 0.3))
        if longer and sr.random() < 0.3:
            v["n16"] = sr.randint(5, 24)
        n16 = v["n16"]
        pick = sr.random()
        if pick < 0.6 and n16 > 1:  # segmented, sometimes one step per segment
            v["seg"] = sr.choice([1, sr.randint(1, n16 - 1)])
        elif pick < 0.75:  # one segment: as without segments
            v["seg"] = sr.choice([n16, sr.randint(n16, 1023)])

    @staticmethod
    def vop_bytes(v: dict) -> tuple[int, int, int]:
        """Bytes of A, B (0 with bscalar; checked even if fn does not read it) and D."""
        return vop_operand_bytes(
            v["fn"], v["tin"], v["tout"], v["n16"], v["bscalar"], v.get("seg", 0)
        )

    def emit_vop(self, v: dict, rd: int, ra: int, rb: int) -> None:
        self.unit(
            Op.VOP,
            rd=rd,
            rs1=ra,
            rs2=rb,
            n16=v["n16"],
            fn=int(v["fn"]),
            tin=int(v["tin"]),
            tout=int(v["tout"]),
            bscalar=v["bscalar"],
            seg=v.get("seg", 0),
        )

    def vector(self) -> None:
        rng = self.rng
        self.vcfg()
        for _ in range(rng.randint(1, 4)):
            v = self.vop_fields(rng, longer=True)
            rd, ra, rb = self.regs(3)
            na, nb, nd = self.vop_bytes(v)
            taken: list = []
            self.li(ra, self.buf(na, taken))
            self.li(rd, self.buf(nd, taken))
            if nb:
                self.li(rb, self.buf(nb, taken))
            elif v["bscalar"]:
                self.li(rb, rng.choice([rng.randint(-(2**31), 2**31 - 1), rng.randint(-40, 40)]))
            self.emit_vop(v, rd, ra, rb)

    # -- loops -----------------------------------------------------------------------
    def loops(self) -> None:
        """A nest of 1..loop_depth loops; address registers move only by stride slots."""
        rng, a = self.rng, self.arch
        depth = rng.randint(1, a.loop_depth)
        counts = [rng.randint(1, 4) for _ in range(depth)]
        if rng.random() < 0.1:
            counts[rng.randrange(depth)] = 0
        pool = self.regs(15)
        addr_regs, pool = pool[:3], pool[3:]
        count_regs = [pool.pop() if rng.random() < 0.5 else 0 for _ in range(depth)]
        free = pool  # counters: written by body instructions and strides only
        items = [self.loop_items(rng, addr_regs, free, k == depth - 1) for k in range(depth)]
        strides = self.loop_strides(rng, depth, addr_regs, free)
        spans = self.walk(depth, counts, items, strides)
        if spans is None:
            return
        taken: list = []
        bases = {
            reg: self.buf(hi - lo + 16, taken) - (lo - lo % 16) for reg, (lo, hi) in spans.items()
        }
        if any(it[0] == "matmul" for lvl in items for it in lvl["pre"] + lvl["post"]):
            self.qload(free[0])
        for reg, base in bases.items():
            self.li(reg, base)
        inner_in_body = rng.random() < 0.3
        for (level, slot), (reg, imm) in strides.items():
            if not (inner_in_body and level > 0):
                self.emit(Op.LSTRIDE, rd=reg, level=level, slot=slot, imm=imm)
        loop_imms = []
        for creg, n in zip(count_regs, counts, strict=True):
            if creg:
                v = rng.randint(-(2**31), 2**31 - 1)
                self.li(creg, v)
                loop_imms.append((n - v) & M32)
            else:
                loop_imms.append(n)
        nest = (depth, count_regs, loop_imms, items, strides, inner_in_body)
        self.emit_level(0, nest)
        for level, slot in strides:
            self.emit(Op.LSTRIDE, rd=0, level=level, slot=slot, imm=rng.randint(-99, 99))

    def emit_level(self, lvl: int, nest) -> None:
        depth, count_regs, loop_imms, items, strides, inner_in_body = nest
        idx = self.emit(Op.NOP)  # patched into the LOOP once the body is known
        for it in items[lvl]["pre"]:
            self.emit_item(it)
        if lvl + 1 < depth:
            if inner_in_body:
                for (level, slot), (reg, s) in strides.items():
                    if level == lvl + 1:
                        self.emit(Op.LSTRIDE, rd=reg, level=level, slot=slot, imm=s)
            self.emit_level(lvl + 1, nest)
        for it in items[lvl]["post"]:
            self.emit_item(it)
        self.patch_loop(idx, rs1=count_regs[lvl], imm=loop_imms[lvl])

    def emit_item(self, it) -> None:
        kind = it[0]
        if kind == "alu":
            _, op, rd, a, b = it
            if op == Op.ADDI:
                self.emit(op, rd=rd, rs1=a, imm=b - 7)
            elif op == Op.SHLI:
                self.emit(op, rd=rd, rs1=a, imm=b)
            else:
                self.emit(op, rd=rd, rs1=a, rs2=b)
        elif kind == "sw":
            self.emit(Op.SW, rs1=it[1], rs2=it[4], imm=it[2])
        elif kind == "lw":
            self.emit(Op.LW, rd=it[3], rs1=it[1], imm=it[2])
        elif kind == "vop":
            p, v, scalar = it[1], it[2], it[3]
            self.emit_vop(v, p[0], p[1], scalar if v["bscalar"] else p[2])
        elif kind == "matmul":
            p, shape, acc, noout = it[1:]
            self.unit(
                Op.MATMUL,
                rs1=p[0],
                rs2=p[1],
                rs3=p[2],
                k16=shape["k16"],
                out32=shape["out32"],
                acc=acc,
                noout=noout,
                ldc=shape["ldc"],
                alda=shape["alda"],
            )
        else:
            self.emit(Op.NOP)

    def loop_items(self, rng, addr_regs, free, innermost) -> dict:
        def item():
            kind = rng.choice(["alu", "sw", "lw", "vop", "vop", "matmul", "nop"])
            p = rng.sample(addr_regs, 3)
            if kind == "alu":
                op = rng.choice((Op.ADD, Op.ADDI, Op.MUL, Op.SUB, Op.SHLI))
                return ("alu", op, rng.choice(free), rng.randint(0, 15), rng.randint(0, 15))
            if kind in ("sw", "lw"):
                return (kind, p[0], 4 * rng.randint(-8, 8), rng.choice(free), rng.randint(0, 15))
            if kind == "vop":
                return ("vop", p, self.vop_fields(rng, rng.randint(1, 2)), rng.choice(free))
            if kind == "matmul":
                return ("matmul", p, self.mm_shape(rng), rng.randint(0, 1), rng.randint(0, 1))
            return ("nop",)

        pre = [item() for _ in range(rng.randint(1 if innermost else 0, 3))]
        post = [] if innermost else [item() for _ in range(rng.randint(1, 2))]
        return {"pre": pre, "post": post}

    def loop_strides(self, rng, depth, addr_regs, free) -> dict:
        strides = {}
        for level in range(depth):
            regs = addr_regs + [rng.choice(free)]
            rng.shuffle(regs)
            for slot, reg in enumerate(regs[: self.arch.loop_strides]):
                if rng.random() < 0.75:
                    s = 16 * rng.randint(-6, 6) if reg in addr_regs else rng.randint(-9, 9)
                    strides[(level, slot)] = (reg, s)
        return strides

    def accesses(self, it) -> list[tuple[int, int, int]]:
        """(register, offset, bytes) of the SRAM ranges one loop item touches."""
        if it[0] in ("sw", "lw"):
            return [(it[1], it[2], 4)]
        if it[0] == "vop":
            na, nb, nd = self.vop_bytes(it[2])
            p = it[1]
            return [(p[0], 0, nd), (p[1], 0, na)] + ([(p[2], 0, nb)] if nb else [])
        if it[0] == "matmul":
            k, p = 16 * it[2]["k16"], it[1]
            a_bytes = it[2]["a_bytes"]
            return [(p[0], 0, a_bytes), (p[1], 0, k * self.c), (p[2], 0, it[2]["out_bytes"])]
        return []

    def walk(self, depth, counts, items, strides) -> dict | None:
        """Offset span (lo, hi) of every address register over the whole nest, by
        executing the nest's register movement; None if a span is too large."""
        rel: dict[int, int] = {}
        spans: dict[int, tuple[int, int]] = {}

        def visit(it):
            for reg, off, nb in self.accesses(it):
                base = rel.get(reg, 0) + off
                lo, hi = spans.get(reg, (base, base + nb))
                spans[reg] = (min(lo, base), max(hi, base + nb))

        def level(lvl):
            for _ in range(counts[lvl]):
                for it in items[lvl]["pre"]:
                    visit(it)
                if lvl + 1 < depth:
                    level(lvl + 1)
                for it in items[lvl]["post"]:
                    visit(it)
                for (lv, _slot), (reg, s) in strides.items():
                    if lv == lvl:
                        rel[reg] = rel.get(reg, 0) + s

        level(0)
        limit = (self.work[1] - self.work[0]) // 6
        if any(hi - lo > limit for lo, hi in spans.values()):
            return None
        return spans

    # -- DMA and semaphores ----------------------------------------------------------
    def desc(self, **fields: int) -> int:
        return self.const_block(encode_desc(**fields))

    def dma_at(self, desc_addr: int) -> None:
        (reg,) = self.regs(1)
        if self.rng.random() < 0.3:
            self.emit(Op.DMA, rs1=0, imm=desc_addr)
        else:
            off = self.addr_to(reg, desc_addr)
            self.emit(Op.DMA, rs1=reg, imm=off)

    def strided(
        self, taken, row: int, c1: int, c2: int, dest: bool, area=None, space: int | None = None
    ) -> tuple[int, int, int]:
        """(base, stride1, stride2) of c1 x c2 rows of ``row`` bytes placed in ``area``
        (rows of a destination never overlap; a source's may)."""
        rng = self.rng
        if dest:
            s1 = (row + 16 * rng.randint(0, 2)) * rng.choice([1, -1])
            s2 = (c1 * abs(s1) + 16 * rng.randint(0, 2)) * rng.choice([1, -1])
        else:
            s1 = 16 * rng.randint(-2 * row // 16, 2 * row // 16)
            s2 = 16 * rng.randint(-3 * row // 16, 3 * row // 16)
        s1, s2 = (s1 if c1 > 1 else 0), (s2 if c2 > 1 else 0)
        lo, hi = _span(s1, s2, c1, c2)
        if space is not None:  # DRAM: no allocator, just a random place in [0, space)
            start = 16 * rng.randint(0, (space - (hi - lo + row)) // 16)
        else:
            start = self.buf(hi - lo + row, taken, area)
        return start - lo, s1, s2

    def dma_shape(self) -> tuple[int, int, int]:
        rng = self.rng
        dims = rng.randint(1, 3)
        return (
            rng.randint(1, 4),
            rng.randint(2, 3) if dims > 1 else 1,
            rng.randint(2, 3) if dims > 2 else 1,
        )

    def one_dma(self, kind: str, sem: int, taken: list) -> list[tuple[str, dict]]:
        """Descriptors (kind, fields) of one DMA variant; each signals ``sem`` or not."""
        x, y = self.coords
        c0, c1, c2 = self.dma_shape()
        row = 16 * c0
        read = int(kind in ("self_read", "node_read", "dram_read"))
        f = {"count0": c0, "count1": c1, "count2": c2, "sem": sem, "read": read}
        if kind.startswith("dram"):
            dx, dy = dram_node(self.arch, 0)
            local, ls1, ls2 = self.strided(taken, row, c1, c2, dest=bool(read))
            remote, rs1, rs2 = self.strided(None, row, c1, c2, dest=not read, space=self.dram_span)
            f.update(mode=int(SignalMode.NODE), x0=dx, y0=dy, x1=dx, y1=dy)
        else:
            local, ls1, ls2 = self.strided(taken, row, c1, c2, dest=bool(read))
            remote, rs1, rs2 = self.strided(taken, row, c1, c2, dest=not read)
            mode = {"self": SignalMode.SELF, "rect": SignalMode.RECT}.get(kind[:4], SignalMode.NODE)
            f.update(mode=int(mode), x0=x, y0=y, x1=x, y1=y)
        f.update(local=local, remote=remote, lstride1=ls1, lstride2=ls2, rstride1=rs1, rstride2=rs2)
        f["signal"] = int(not read and kind != "dram_write")
        out = [(kind, f)]
        if kind == "dram_write":  # read back (maybe other bytes): completes after the write
            out += self.one_dma("dram_read", sem, taken)
        return out

    def dma(self) -> None:
        rng = self.rng
        kinds = ["self_write", "self_read", "node_write", "node_read", "rect_write"]
        if self.has_dram:
            kinds += ["dram_write", "dram_read"]
        batch = [rng.choice(kinds) for _ in range(rng.randint(1, 3))]
        nsig = len(batch)
        sem = self.sem_with_room(nsig)
        taken: list = []
        descs = [d for kind in batch for d in self.one_dma(kind, sem, taken)]
        in_loop = len(descs) > 1 and rng.random() < 0.3
        addrs = [self.desc(**f) for _, f in descs]
        if in_loop:  # the descriptors are consecutive: one DMA in a loop with a stride
            (reg,) = self.regs(1)
            self.li(reg, addrs[0])
            self.emit(Op.LSTRIDE, rd=reg, level=0, slot=0, imm=DESC_BYTES)
            self.emit(Op.LOOP, rs1=0, body=1, imm=len(addrs))
            self.emit(Op.DMA, rs1=reg, imm=0)
            self.emit(Op.LSTRIDE, rd=0, level=0, slot=0, imm=0)
        else:
            for a in addrs:
                self.dma_at(a)
        for _ in range(rng.randint(0, 2)):  # independent work while the DMAs run
            self.emit(
                Op.ADDI, rd=rng.randint(1, 15), rs1=rng.randint(0, 15), imm=rng.randint(-100, 100)
            )
        self.drain(sem, nsig)
        self.blocks[-1] += f" {'+'.join(k for k, _ in descs)}"

    def drain(self, sem: int, pending: int) -> None:
        """WAIT until every signal to ``sem`` has arrived (maybe in pieces)."""
        total = self.level[sem] + pending
        while total:
            part = self.rng.randint(1, total) if self.rng.random() < 0.4 else total
            self.emit(Op.WAIT, sem=sem, count=part)
            total -= part
        self.level[sem] = 0

    def signals(self) -> None:
        rng = self.rng
        x, y = self.coords
        for _ in range(rng.randint(1, 3)):
            count = rng.randint(1, 3)
            sem = self.sem_with_room(count)
            mode = rng.choice(list(SignalMode))
            (reg,) = self.regs(1)
            if mode == SignalMode.NODE:
                self.li(reg, pack_node(x, y))
            elif mode == SignalMode.RECT:
                self.li(reg, pack_rect(x, y, x, y))
            else:
                reg = rng.randint(0, 15)  # rs1 is ignored by SELF
            self.emit(Op.SIGNAL, rs1=reg, sem=sem, mode=int(mode), count=count)
            self.level[sem] += count
            if rng.random() < 0.6:
                part = rng.randint(1, self.level[sem])
                self.emit(Op.WAIT, sem=sem, count=part)
                self.level[sem] -= part

    def tail(self) -> None:
        """Unsignalled SELF copies into the sink, then HALT (HALT drains the queue)."""
        for _ in range(self.rng.randint(0, 3)):
            c0, c1, c2 = self.dma_shape()
            row = 16 * c0
            try:
                dst, d1, d2 = self.strided(
                    [(0, self.sink_used)], row, c1, c2, True, area=(self.sink_used, self.sink[1])
                )
                src, s1, s2 = self.strided([], row, c1, c2, False)
                desc = self.desc(
                    local=src,
                    remote=dst,
                    count0=c0,
                    count1=c1,
                    count2=c2,
                    lstride1=s1,
                    lstride2=s2,
                    rstride1=d1,
                    rstride2=d2,
                    mode=int(SignalMode.SELF),
                )
            except _NoRoom:
                break
            lo, hi = _span(d1, d2, c1, c2)
            self.sink_used = max(self.sink_used, dst + hi + row)
            self.dma_at(desc)
        self.emit(Op.HALT)

    # -- program ---------------------------------------------------------------------
    BLOCKS = ("scalar", "memory", "loops", "matmul", "vector", "dma", "signals")

    def program(self) -> None:
        rng = self.rng
        order = list(self.BLOCKS)
        rng.shuffle(order)
        order += [rng.choice(self.BLOCKS) for _ in range(rng.randint(2, 10))]
        budget = min(self.arch.imem_words // 2, 400)
        for name in order:
            if len(self.code) > budget:
                break
            mark, level = len(self.code), list(self.level)
            self.blocks.append(f"{name}@{mark}")
            try:
                getattr(self, name)()
                if len(self.code) > self.arch.imem_words - 8:  # keep room for the tail
                    raise _NoRoom
            except _NoRoom:
                del self.code[mark:]
                self.level = level
                self.blocks[-1] += " (no room)"
        self.tail()

    def image(self, name: str) -> ProgramImage:
        rng = random.Random(self.seed * 7919 + 1)
        work = rng.randbytes(self.work[1] - self.work[0])
        sram = [(self.work[0], work), (self.const_lo, bytes(self.const))]
        dram = [(0, rng.randbytes(self.dram_span))] if self.has_dram else []
        return ProgramImage(
            self.code,
            sram,
            dram,
            name,
            {"seed": self.seed, "arch": self.arch.name, "blocks": self.blocks},
        )


def random_program(
    arch,
    seed: int,
    coords: tuple[int, int] = (0, 0),
    nowait: bool = False,
    segments: bool = False,
):
    """A random valid program for the PE at ``coords``: (ProgramImage, description).

    The description is a dict: seed, arch, blocks (name@first instruction index).
    ``nowait`` (with ``arch.async_units``): about half of the unit commands are nowait,
    each followed by a FENCE of its unit or of both.  ``segments``: VOPs also use
    REQB and the ``seg`` field (module docs); off, a seed gives the same program as
    before they existed.
    """
    gen = _Gen(arch, seed, coords, nowait, segments)
    gen.program()
    img = gen.image(f"random-{arch.name}-{seed}")
    return img, dict(img.meta)


# -- fault programs ------------------------------------------------------------------


def _fault_variants(arch, segments: bool = False) -> dict[PeError, list[str]]:
    illegal = [
        "bad_opcode",
        "unused_bits",
        "loop_too_deep",
        "loop_not_nested",
        "no_halt",
        "loop_past_end",
    ]
    if arch.loop_depth < 4:
        illegal.append("lstride_level")
    if arch.loop_strides < 4:
        illegal.append("lstride_slot")
    if arch.semaphores < 32:
        illegal.append("wait_sem")
    dma = [
        "zero_count",
        "misaligned",
        "local_range",
        "self_remote_range",
        "unreachable",
        "mcast_local_range",  # (was "rect_read", refused before multicast reads)
        "bad_mode",
    ]
    if arch.dram_ports:
        dma.append("dram_range")
    return {
        PeError.ILLEGAL: illegal,
        PeError.ADDRESS: [
            "lw_align",
            "lw_range",
            "sw_range",
            "qload_align",
            "matmul_a",
            "matmul_out",
            "vop_d",
            "vop_b",
            "dma_desc",
            *(["vop_seg_b", "vop_seg_d", "matmul_arow"] if segments else []),
        ],
        PeError.SEM_OVERFLOW: ["signal_self", "signal_node", "dma_signal"],
        PeError.DMA: dma,
    }


def fault_program(
    arch, kind: PeError, seed: int, coords: tuple[int, int] = (0, 0), segments: bool = False
):
    """A program ending in fault ``kind``: (ProgramImage, description).

    The description holds ``error`` (the PeError), ``pc`` (the faulting
    instruction index) and ``variant`` (which rule is broken).  ``segments`` adds the
    variants of VOP segments (module docs).
    """
    kind = PeError(kind)
    if kind == PeError.NONE:
        raise ValueError("fault_program needs a fault kind, not PeError.NONE")
    gen = _Gen(arch, seed, coords)
    variant = gen.rng.choice(_fault_variants(arch, segments)[kind])
    gen.scalar()  # a valid prefix
    pc = _emit_fault(gen, variant)
    gen.emit(Op.HALT)
    img = gen.image(f"fault-{kind.name.lower()}-{variant}-{seed}")
    if variant == "no_halt":
        img.imem = img.imem[:-1]
    img.meta.update(error=int(kind), pc=pc, variant=variant)
    return img, {"error": kind, "pc": pc, "variant": variant, "seed": seed}


def _emit_fault(gen: _Gen, variant: str) -> int:
    """Emit the faulting sequence; returns the pc of the faulting instruction."""
    a, rng = gen.arch, gen.rng
    size, r1, r2 = a.sram_bytes, *gen.regs(2)
    legal = {
        "bad_opcode": lambda: gen.code.append(0x3F | rng.randrange(1 << 26) << 6),
        "unused_bits": lambda: gen.code.append(encode(Op.HALT) | 1 << rng.randint(6, 63)),
        "lw_align": lambda: (
            gen.li(r1, 16 * rng.randint(0, 100) + rng.randint(1, 3)),
            gen.emit(Op.LW, rd=r2, rs1=r1, imm=0),
        ),
        "lw_range": lambda: (gen.li(r1, size - 4), gen.emit(Op.LW, rd=r2, rs1=r1, imm=4)),
        "sw_range": lambda: gen.emit(Op.SW, rs1=0, rs2=r1, imm=rng.choice([-4, size])),
        "qload_align": lambda: gen.emit(Op.QLOAD, rs1=0, imm=16 * rng.randint(0, 9) + 8),
        "matmul_a": lambda: (
            gen.li(r1, size - 16),
            gen.emit(Op.MATMUL, rs1=r1, rs2=0, rs3=0, k16=2, ldc=a.mac_cols),
        ),
        # row-major A (alda = 3, K = 32): the last row ends 16 bytes past the SRAM
        "matmul_arow": lambda: (
            gen.li(r1, size - matmul_a_end(0, 32, a.mac_rows, 3) + 16),
            gen.emit(Op.MATMUL, rs1=r1, rs2=0, rs3=0, k16=2, ldc=a.mac_cols, alda=3),
        ),
        "matmul_out": lambda: (
            gen.li(r1, size),
            gen.emit(Op.MATMUL, rs1=0, rs2=0, rs3=r1, k16=1, ldc=a.mac_cols),
        ),
        "vop_d": lambda: (
            gen.li(r1, size - 16),
            gen.emit(Op.VOP, rd=r1, n16=1, fn=int(VFn.MOV), tin=0, tout=int(DType.I16)),
        ),
        "vop_b": lambda: (gen.li(r1, 8), gen.emit(Op.VOP, rd=0, rs2=r1, n16=1, fn=int(VFn.ADD))),
        # B: 3 words (n16 = 5, seg = 2; checked for a unary function too) from 32
        # bytes before the end: its last word is past it
        "vop_seg_b": lambda: (
            gen.li(r1, size - 32),
            gen.emit(Op.VOP, rd=0, rs2=r1, n16=5, seg=2, fn=int(rng.choice([VFn.ABS, VFn.REQB]))),
        ),
        # D: 4 result words (n16 = 7, seg = 2) from 48 bytes before the end: the last
        # one is past it
        "vop_seg_d": lambda: (
            gen.li(r1, size - 48),
            gen.emit(Op.VOP, rd=r1, n16=7, seg=2, fn=int(VFn.RSUM), tout=int(DType.I32)),
        ),
        "dma_desc": lambda: gen.emit(Op.DMA, rs1=0, imm=size - 32),
        "wait_sem": lambda: gen.emit(Op.WAIT, sem=a.semaphores, count=1),
        "lstride_level": lambda: gen.emit(Op.LSTRIDE, rd=r1, level=a.loop_depth, imm=16),
        "lstride_slot": lambda: gen.emit(Op.LSTRIDE, rd=r1, slot=a.loop_strides, imm=16),
    }
    if variant in legal:
        legal[variant]()
        return len(gen.code) - 1
    if variant == "no_halt":
        return a.imem_words
    if variant == "loop_too_deep":
        for d in range(a.loop_depth + 1):
            gen.emit(Op.LOOP, body=2 * (a.loop_depth - d) + 1, imm=1)
        pc = len(gen.code) - 1
        gen.code += [encode(Op.NOP)] * (a.loop_depth + 1)
        return pc
    if variant == "loop_not_nested":
        gen.emit(Op.LOOP, body=3, imm=2)
        pc = gen.emit(Op.LOOP, body=rng.randint(2, 3), imm=1)
        gen.code += [encode(Op.NOP)] * 3
        return pc
    if variant == "loop_past_end":  # a zero-count LOOP skips to imem_words + 2
        gen.code += [encode(Op.NOP)] * (a.imem_words - 2 - len(gen.code))
        gen.emit(Op.LOOP, body=3, imm=0)
        return a.imem_words + 2
    if variant.startswith("signal") or variant == "dma_signal":
        return _sem_overflow(gen, variant)
    return _dma_fault(gen, variant)


def _sem_overflow(gen: _Gen, variant: str) -> int:
    a, rng = gen.arch, gen.rng
    sem = rng.randrange(a.semaphores)
    first = rng.randint(1, a.sem_max)
    gen.emit(Op.SIGNAL, sem=sem, mode=int(SignalMode.SELF), count=first)
    if variant == "dma_signal":
        gen.code += [encode(Op.SIGNAL, sem=sem, count=a.sem_max - first)] * (first < a.sem_max)
        d = gen.desc(local=0, remote=256, mode=int(SignalMode.SELF), signal=1, sem=sem)
        return gen.emit(Op.DMA, rs1=0, imm=d)
    (reg,) = gen.regs(1)
    gen.li(reg, pack_node(*gen.coords))
    mode = SignalMode.SELF if variant == "signal_self" else SignalMode.NODE
    return gen.emit(
        Op.SIGNAL, rs1=reg, sem=sem, mode=int(mode), count=rng.randint(a.sem_max - first + 1, 255)
    )


def _dma_fault(gen: _Gen, variant: str) -> int:
    a, rng = gen.arch, gen.rng
    x, y = gen.coords
    size = a.sram_bytes
    f = {
        "local": 0,
        "remote": 4096,
        "mode": int(SignalMode.NODE),
        "x0": x,
        "y0": y,
        "x1": x,
        "y1": y,
        "count0": rng.randint(1, 4),
    }
    if variant == "zero_count":
        f[rng.choice(["count0", "count1", "count2"])] = 0
    elif variant == "misaligned":
        f[rng.choice(["local", "remote", "lstride1", "rstride2"])] = 8
        f["count1"] = f["count2"] = 2
    elif variant == "local_range":
        f.update(local=size - 16, count0=2)
    elif variant == "self_remote_range":
        f.update(mode=int(SignalMode.SELF), remote=size - 16, count1=2, rstride1=16)
    elif variant == "unreachable":
        f.update(x0=a.mesh_cols + 1, y0=a.mesh_rows + 1, x1=a.mesh_cols + 1, y1=a.mesh_rows + 1)
    elif variant == "mcast_local_range":  # a multicast read is checked like any read
        f.update(mode=int(SignalMode.RECT), read=1, local=size - 16, count0=2)
    elif variant == "bad_mode":
        f.update(mode=3)
    elif variant == "dram_range":
        dx, dy = dram_node(a, 0)
        f.update(x0=dx, y0=dy, read=1, remote=a.dram_bytes - 16, count0=2)
    d = gen.desc(**f)
    return gen.emit(Op.DMA, rs1=0, imm=d)
