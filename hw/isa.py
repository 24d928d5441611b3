"""The PE instruction set and the NoC packet format: every encoding, defined once.

The RTL decoder (hw/pe/), the assembler and disassembler (hw/asm.py), the
reference simulator (sim/) and the compiler's code generator all import the
tables in this module; no other file writes a bit position.  docs/isa.md gives
the semantics and cycle costs of every instruction.

Instruction word (64 bits, little-endian in instruction memory)::

    [5:0]   opcode
    [9:6]   rd     destination register, or Q/D address register (MATMUL, V*)
    [13:10] rs1
    [17:14] rs2
    [21:18] rs3
    [31:22] sub    opcode-specific small fields (see each format)
    [63:32] imm    32-bit immediate, or packed opcode-specific fields

Every field not used by an opcode must be zero: a non-zero unused field, an
unknown opcode, or an out-of-range sub-field is an illegal instruction.  This
keeps the encoding open for later extension and lets the RTL and the reference
simulator flag the same words as illegal.

NoC flit: 128 payload bits plus ``first``/``last`` framing on the stream; the
head flit (first) carries the header below, the remaining flits carry data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hw.errors import EncodingError

INSTR_BITS = 64
WORD_BYTES = 16  # SRAM word, flit payload, DMA beat (ArchConfig.sram_port_bits // 8)


class Op(enum.IntEnum):
    """Opcodes (6 bits).  The groups below share an instruction format."""

    NOP = 0x00
    HALT = 0x01
    # scalar (format R: rd, rs1, rs2; format I: rd, rs1, imm)
    LI = 0x02  # rd = imm
    ADDI = 0x03  # rd = rs1 + imm
    ADD = 0x04  # rd = rs1 + rs2
    SUB = 0x05  # rd = rs1 - rs2
    MUL = 0x06  # rd = low32(rs1 * rs2)
    SHLI = 0x07  # rd = rs1 << imm[4:0]
    SHRI = 0x08  # rd = rs1 >> imm[4:0] (logical)
    LW = 0x09  # rd = mem32[rs1 + imm]
    SW = 0x0A  # mem32[rs1 + imm] = rs2
    # hardware loops
    LOOP = 0x10  # repeat the next sub.body instructions (rs1 + imm) times
    LSTRIDE = 0x11  # stride slot (sub.level, sub.slot): rd += imm at each iteration end
    # MAC array
    QLOAD = 0x18  # load the output-stage parameter block at rs1 + imm
    MATMUL = 0x19  # C[rs3] = outstage(A[rs1] x B[rs2]) with params from QLOAD
    # vector unit
    VCFG = 0x20  # vector config register sub.cfg = rs1 + imm
    VOP = 0x21  # D[rd] = fn(A[rs1], B[rs2] or scalar rs2)
    # DMA and semaphores
    DMA = 0x28  # enqueue the DMA descriptor at rs1 + imm
    WAIT = 0x29  # block until sem[sub.sem] >= imm.count, then subtract it
    SIGNAL = 0x2A  # sem[sub.sem] += imm.count at the target named by mode and rs1
    FENCE = 0x2B  # block until the units named in sub.units are idle


# --------------------------------------------------------------------------------------
# Bit fields
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A bit field ``[lo + width - 1 : lo]`` of a word."""

    name: str
    lo: int
    width: int
    signed: bool = False

    @property
    def hi(self) -> int:
        return self.lo + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lo

    def check(self, value: int, where: str = "") -> int:
        """The raw (unsigned) bits of ``value``; EncodingError if it does not fit."""
        if self.signed:
            lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        else:
            lo, hi = 0, (1 << self.width) - 1
        if not isinstance(value, int) or not lo <= value <= hi:
            at = f" in {where}" if where else ""
            raise EncodingError(
                f"field {self.name!r}{at} must be in {lo}..{hi} ({self.width} bits"
                f"{', signed' if self.signed else ''}), not {value!r}"
            )
        return value & ((1 << self.width) - 1)

    def put(self, value: int, where: str = "") -> int:
        return self.check(value, where) << self.lo

    def get(self, word: int) -> int:
        raw = (word >> self.lo) & ((1 << self.width) - 1)
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw


# Common instruction fields
OPCODE = Field("opcode", 0, 6)
RD = Field("rd", 6, 4)
RS1 = Field("rs1", 10, 4)
RS2 = Field("rs2", 14, 4)
RS3 = Field("rs3", 18, 4)
SUB = Field("sub", 22, 10)
IMM = Field("imm", 32, 32, signed=True)
IMMU = Field("imm", 32, 32)

# LOOP: body length in sub; count = x[rs1] + imm (unsigned; 0 skips the body)
LOOP_BODY = Field("body", 22, 10)  # 1..1023 instructions
# LSTRIDE: absolute loop level (0 = outermost) and slot; rd += imm at iteration end
LSTRIDE_LEVEL = Field("level", 22, 2)
LSTRIDE_SLOT = Field("slot", 24, 2)
# MATMUL immediates (inside imm)
MM_K16 = Field("k16", 32, 12)  # K / 16, 1..4095
MM_OUT32 = Field("out32", 44, 1)  # write raw int32 accumulators instead of int8
MM_ACC = Field("acc", 45, 1)  # do not clear the accumulators first (K-split)
MM_NOOUT = Field("noout", 46, 1)  # skip the output stage (keep accumulating)
MM_NOWAIT = Field("nowait", 47, 1)  # retire on acceptance; the MAC unit runs on
MM_LDC = Field("ldc", 48, 16)  # output row stride in bytes
# A row stride / 16: 0 = A is the transposed K x R tile; >= 1 = A is R rows of K int8
# (row r at A + 16 * alda * r), docs/isa.md "Row-major A"
MM_ALDA = Field("alda", 22, 10)
# VCFG: which vector config register
VCFG_REG = Field("cfg", 22, 4)
# VOP immediates (inside imm)
V_N16 = Field("n16", 32, 16)  # element count / 16, 1..65535
V_FN = Field("fn", 48, 6)
V_TIN = Field("tin", 54, 2)
V_TOUT = Field("tout", 56, 2)
V_BSCALAR = Field("bscalar", 58, 1)  # operand B is x[rs2], broadcast
V_NOWAIT = Field("nowait", 59, 1)  # retire on acceptance; the vector unit runs on
V_RSVD = Field("v_rsvd", 60, 4)
# Segment length in steps of 16 elements (0: the whole vector is one segment):
# reductions write one result word per segment, binary functions with bscalar = 0
# read one B word per segment (docs/isa.md "Segments").
V_SEG = Field("seg", 22, 10)
# QLOAD: retire on acceptance (the MAC unit loads on)
QL_NOWAIT = Field("nowait", 22, 1)
# FENCE: a mask of Unit bits (1..3)
FENCE_UNITS = Field("units", 22, 2)
# WAIT / SIGNAL
SEM_ID = Field("sem", 22, 5)
SIG_MODE = Field("mode", 27, 2)  # SignalMode
SEM_COUNT = Field("count", 32, 8)  # 1..sem_max

_FIELDS_OF: dict[Op, tuple[Field, ...]] = {
    Op.NOP: (),
    Op.HALT: (),
    Op.LI: (RD, IMM),
    Op.ADDI: (RD, RS1, IMM),
    Op.ADD: (RD, RS1, RS2),
    Op.SUB: (RD, RS1, RS2),
    Op.MUL: (RD, RS1, RS2),
    Op.SHLI: (RD, RS1, Field("imm", 32, 5)),
    Op.SHRI: (RD, RS1, Field("imm", 32, 5)),
    Op.LW: (RD, RS1, IMM),
    Op.SW: (RS1, RS2, IMM),
    Op.LOOP: (RS1, LOOP_BODY, IMMU),
    Op.LSTRIDE: (RD, LSTRIDE_LEVEL, LSTRIDE_SLOT, IMM),
    Op.QLOAD: (RS1, IMM, QL_NOWAIT),
    Op.MATMUL: (RS1, RS2, RS3, MM_K16, MM_OUT32, MM_ACC, MM_NOOUT, MM_LDC, MM_NOWAIT, MM_ALDA),
    Op.VCFG: (RS1, VCFG_REG, IMM),
    Op.VOP: (RD, RS1, RS2, V_N16, V_FN, V_TIN, V_TOUT, V_BSCALAR, V_NOWAIT, V_SEG),
    Op.DMA: (RS1, IMM),
    Op.WAIT: (SEM_ID, SEM_COUNT),
    Op.SIGNAL: (RS1, SEM_ID, SIG_MODE, SEM_COUNT),
    Op.FENCE: (FENCE_UNITS,),
}


def fields_of(op: Op) -> tuple[Field, ...]:
    """The fields an opcode uses, in assembly operand order."""
    return _FIELDS_OF[op]


def used_mask(op: Op) -> int:
    """Bits an opcode may set; any other set bit makes the word illegal."""
    mask = OPCODE.mask
    for f in _FIELDS_OF[op]:
        mask |= f.mask
    return mask


# --------------------------------------------------------------------------------------
# Enumerations used inside fields
# --------------------------------------------------------------------------------------


class DType(enum.IntEnum):
    """Vector element types (VOP tin/tout)."""

    I8 = 0
    I16 = 1
    I32 = 2

    @property
    def bytes(self) -> int:
        return 1 << int(self)


class VFn(enum.IntEnum):
    """Vector functions (VOP fn).  Semantics in sim/numerics.py and docs/isa.md."""

    ADD = 0  # sat(a + b)
    SUB = 1  # sat(a - b)
    MUL = 2  # sat(a * b)
    MIN = 3
    MAX = 4
    SHL = 5  # sat(a << (b & 31))
    SRA = 6  # sat(round_shift(a, b & 63)), rounding half away from zero
    MOV = 7  # sat(a): type conversion
    REQ = 8  # requantize with VCFG mult/shift/zp/lo/hi
    EXP = 9  # I-BERT integer exp with VCFG exp_*
    ERF = 10  # I-BERT integer erf with VCFG erf_*
    RECIP = 11  # floor(2**recip_k / a), a > 0
    SQRT = 12  # floor(sqrt(a)), a >= 0
    ABS = 13  # sat(|a|)
    REQB = 14  # requantize with multiplier b (VCFG shift/zp/lo/hi; VCFG mult unused)
    EXPB = 15  # EXP of sat32(a - b) (binary: SUB then EXP in one pass)
    RSUM = 16  # reduction: int32 sum of all n elements, written to D lane 0
    RMAX = 17  # reduction: int32 max of all n elements, written to D lane 0


ELEMENTWISE = frozenset(f for f in VFn if f < VFn.RSUM)
REDUCTIONS = frozenset({VFn.RSUM, VFn.RMAX})
BINARY = frozenset(
    {VFn.ADD, VFn.SUB, VFn.MUL, VFn.MIN, VFn.MAX, VFn.SHL, VFn.SRA, VFn.REQB, VFn.EXPB}
)


class VCfg(enum.IntEnum):
    """Vector config registers (VCFG cfg), 32-bit signed each, reset to 0."""

    MULT = 0  # REQ multiplier
    SHIFT = 1  # REQ right shift, 0..63
    ZP = 2  # REQ output zero point
    LO = 3  # REQ clamp low
    HI = 4  # REQ clamp high
    EXP_QLN2 = 5  # EXP: round(ln2 / S) > 0
    EXP_INV_MULT = 6  # EXP: z = (-a * inv_mult) >> inv_shift
    EXP_INV_SHIFT = 7
    EXP_QB = 8  # EXP: (p + qb)**2 + qc
    EXP_QC = 9
    ERF_QB = 10  # ERF: sgn(a) * ((min(|a|, -qb) + qb)**2 + qc), qb < 0
    ERF_QC = 11
    RECIP_K = 12  # RECIP numerator exponent, 0..62


class Unit(enum.IntFlag):
    """The compute units a FENCE waits for (FENCE units) and a nowait command runs on."""

    MAC = 1  # QLOAD, MATMUL
    VEC = 2  # VOP (VCFG waits for the vector unit by itself)


NOWAIT_OPS = {Op.QLOAD: Unit.MAC, Op.MATMUL: Unit.MAC, Op.VOP: Unit.VEC}


class SignalMode(enum.IntEnum):
    """Target of SIGNAL (and of DMA writes, in the descriptor)."""

    SELF = 0  # this PE, without a packet
    NODE = 1  # one node (x[rs1] = x | y << 8)
    RECT = 2  # rectangle multicast (x[rs1] = x0 | y0 << 8 | x1 << 16 | y1 << 24)


class PeError(enum.IntEnum):
    """The PE's defined error states (``error`` output, sticky until reset)."""

    NONE = 0
    ILLEGAL = 1  # unknown opcode, non-zero unused field, bad sub-field, loop nesting
    ADDRESS = 2  # SRAM or instruction address out of range or misaligned
    SEM_OVERFLOW = 3  # a semaphore count past ArchConfig.sem_max
    DMA = 4  # malformed DMA descriptor, or an inbound packet outside SRAM


# --------------------------------------------------------------------------------------
# Instructions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instr:
    """One decoded instruction: the opcode and its named field values."""

    op: Op
    args: tuple[tuple[str, int], ...] = ()

    def __getitem__(self, name: str) -> int:
        for k, v in self.args:
            if k == name:
                return v
        return 0

    def encode(self) -> int:
        return encode(self.op, **dict(self.args))


def encode(op: Op, **values: int) -> int:
    """The 64-bit word of ``op`` with the given fields (missing fields are 0)."""
    op = Op(op)
    known = {f.name: f for f in _FIELDS_OF[op]}
    unknown = set(values) - set(known)
    if unknown:
        raise EncodingError(f"{op.name} has no field {sorted(unknown)[0]!r}")
    word = OPCODE.put(int(op))
    for name, f in known.items():
        word |= f.put(values.get(name, 0), op.name)
    return word


def decode(word: int) -> Instr:
    """Decode a 64-bit word; EncodingError for an illegal instruction."""
    if not 0 <= word < 1 << INSTR_BITS:
        raise EncodingError(f"instruction word must be 64 bits, not {word:#x}")
    code = OPCODE.get(word)
    try:
        op = Op(code)
    except ValueError:
        raise EncodingError(f"unknown opcode {code:#04x} in word {word:#018x}") from None
    extra = word & ~used_mask(op) & ((1 << INSTR_BITS) - 1)
    if extra:
        raise EncodingError(f"{op.name} word {word:#018x} sets unused bits {extra:#x}")
    args = tuple((f.name, f.get(word)) for f in _FIELDS_OF[op])
    instr = Instr(op, args)
    _check_subfields(instr, word)
    return instr


def _check_subfields(instr: Instr, word: int) -> None:
    op = instr.op
    bad = None
    if op == Op.LOOP and instr["body"] == 0:
        bad = "LOOP body must be 1..1023 instructions, not 0"
    elif op == Op.MATMUL and instr["k16"] == 0:
        bad = "MATMUL k16 must be 1..4095, not 0"
    elif op == Op.VCFG and instr["cfg"] >= len(VCfg):
        bad = f"VCFG register must be 0..{len(VCfg) - 1}, not {instr['cfg']}"
    elif op == Op.VOP:
        bad = _check_vop(instr)
    elif op == Op.FENCE and instr["units"] == 0:
        bad = "FENCE units must be 1..3 (1 MAC, 2 vector, 3 both), not 0"
    elif op in (Op.WAIT, Op.SIGNAL) and instr["count"] == 0:
        bad = f"{op.name} count must be >= 1, not 0"
    elif op == Op.SIGNAL and instr["mode"] > max(SignalMode):
        bad = f"SIGNAL mode must be 0..{max(SignalMode)}, not {instr['mode']}"
    if bad:
        raise EncodingError(f"{bad} (word {word:#018x})")


def _check_vop(instr: Instr) -> str | None:
    if instr["n16"] == 0:
        return "VOP n16 must be 1..65535, not 0"
    if instr["fn"] not in {int(f) for f in VFn}:
        return f"VOP fn {instr['fn']} is not a vector function"
    if instr["tin"] > DType.I32 or instr["tout"] > DType.I32:
        return "VOP tin and tout must be 0 (i8), 1 (i16) or 2 (i32)"
    if VFn(instr["fn"]) in REDUCTIONS and instr["tout"] != DType.I32:
        return f"VOP {VFn(instr['fn']).name} writes int32: tout must be 2 (i32)"
    if instr["bscalar"] and VFn(instr["fn"]) not in BINARY:
        return f"VOP bscalar is only allowed for binary functions, not {VFn(instr['fn']).name}"
    return None


def is_legal(word: int) -> bool:
    try:
        decode(word)
    except EncodingError:
        return False
    return True


# --------------------------------------------------------------------------------------
# Memory-resident structures: MATMUL parameter block, DMA descriptor
# --------------------------------------------------------------------------------------


def qparam_layout(mac_cols: int) -> dict[str, tuple[int, int]]:
    """Byte offset and size of each part of the QLOAD parameter block.

    bias int32[C] | mult int32[C] | shift uint8[C] (padded to a word) |
    zp int8, lo int8, hi int8 (one word).  The block is 16-byte aligned.
    """
    c = mac_cols
    shift_bytes = -(-c // WORD_BYTES) * WORD_BYTES
    return {
        "bias": (0, 4 * c),
        "mult": (4 * c, 4 * c),
        "shift": (8 * c, c),
        "clamp": (8 * c + shift_bytes, 3),
        "total": (0, 8 * c + shift_bytes + WORD_BYTES),
    }


# DMA descriptor: three 16-byte words at a 16-byte aligned address.
DESC_WORDS = 3
D_LOCAL = Field("local", 0, 32)  # local SRAM byte address, 16-aligned
D_REMOTE = Field("remote", 32, 32)  # remote byte address (SRAM or DRAM), 16-aligned
D_COUNT0 = Field("count0", 64, 16)  # words per row, >= 1
D_COUNT1 = Field("count1", 80, 16)  # rows per plane, >= 1
D_COUNT2 = Field("count2", 96, 16)  # planes, >= 1
D_RSVD0 = Field("rsvd0", 112, 16)
D_LSTRIDE1 = Field("lstride1", 128, 32, signed=True)  # bytes between rows, local side
D_LSTRIDE2 = Field("lstride2", 160, 32, signed=True)  # bytes between planes, local side
D_RSTRIDE1 = Field("rstride1", 192, 32, signed=True)
D_RSTRIDE2 = Field("rstride2", 224, 32, signed=True)
D_MODE = Field("mode", 256, 2)  # SignalMode.NODE or RECT (SELF: local copy)
# read = 1 with mode RECT (multicast read): remote node (x0, y0); the data goes to every
# PE of the rectangle from the requesting PE to the far corner (x1, y1).
D_X0 = Field("x0", 264, 8)
D_Y0 = Field("y0", 272, 8)
D_X1 = Field("x1", 280, 8)
D_Y1 = Field("y1", 288, 8)
D_SEM = Field("sem", 296, 5)
D_READ = Field("read", 304, 1)  # 1: remote -> local (signals the local sem)
D_SIGNAL = Field("signal", 305, 1)  # write: signal the remote sem on completion
DESC_FIELDS = (
    D_LOCAL,
    D_REMOTE,
    D_COUNT0,
    D_COUNT1,
    D_COUNT2,
    D_LSTRIDE1,
    D_LSTRIDE2,
    D_RSTRIDE1,
    D_RSTRIDE2,
    D_MODE,
    D_X0,
    D_Y0,
    D_X1,
    D_Y1,
    D_SEM,
    D_READ,
    D_SIGNAL,
)


def encode_desc(**values: int) -> bytes:
    """The 48-byte DMA descriptor image (counts default to 1)."""
    known = {f.name: f for f in DESC_FIELDS}
    unknown = set(values) - set(known)
    if unknown:
        raise EncodingError(f"DMA descriptor has no field {sorted(unknown)[0]!r}")
    defaults = {"count0": 1, "count1": 1, "count2": 1, "mode": int(SignalMode.NODE)}
    word = 0
    for name, f in known.items():
        word |= f.put(values.get(name, defaults.get(name, 0)), "DMA descriptor")
    return word.to_bytes(DESC_WORDS * WORD_BYTES, "little")


def decode_desc(image: bytes) -> dict[str, int]:
    word = int.from_bytes(image[: DESC_WORDS * WORD_BYTES], "little")
    return {f.name: f.get(word) for f in DESC_FIELDS}


# --------------------------------------------------------------------------------------
# NoC packets
# --------------------------------------------------------------------------------------


class Kind(enum.IntEnum):
    """Packet kinds (head flit ``kind``)."""

    WRITE = 0  # payload -> SRAM/DRAM at addr; optional signal on arrival
    READ_REQ = 1  # read len words at addr, answer to (src, ret_addr)
    READ_RESP = 2  # payload -> SRAM at addr; optional signal on arrival
    SIGNAL = 3  # sem += count, no payload
    CONFIG = 4  # router configuration (routing table), payload = entries
    ERROR = 5  # an endpoint refused a packet; addr = offending address


class MsgClass(enum.IntEnum):
    """Message classes, each on its own virtual channel."""

    REQUEST = 0  # WRITE, READ_REQ, SIGNAL, CONFIG
    RESPONSE = 1  # READ_RESP, ERROR


def msg_class(kind: Kind) -> MsgClass:
    return MsgClass.RESPONSE if kind in (Kind.READ_RESP, Kind.ERROR) else MsgClass.REQUEST


class Route(enum.IntEnum):
    UNICAST = 0  # to (x0, y0)
    RECT = 1  # to every tile of the rectangle (x0, y0)..(x1, y1), XY tree
    KEY = 2  # SpiNNaker-style key/mask table (key in ret_addr)


# Head flit fields (128 bits).  Coordinates are 6 bits: meshes up to 63 x 63 with
# off-chip endpoints just outside the mesh (DRAM ports at x == mesh_cols, the host
# at y == mesh_rows; see dram_node and host_node).
H_KIND = Field("kind", 0, 3)
H_ROUTE = Field("route", 3, 2)
H_X0 = Field("x0", 5, 6)
H_Y0 = Field("y0", 11, 6)
H_X1 = Field("x1", 17, 6)
H_Y1 = Field("y1", 23, 6)
H_SRC_X = Field("src_x", 29, 6)
H_SRC_Y = Field("src_y", 35, 6)
H_LEN = Field("len", 41, 8)  # payload flits (READ_REQ: words requested)
H_SEM = Field("sem", 49, 5)
H_SIGNAL = Field("signal", 54, 1)  # signal sem by count after the payload is written
H_COUNT = Field("count", 55, 8)
# READ_REQ only: 1 = multicast read.  The answer is a RECT READ_RESP to the rectangle
# from the requester (src_x, src_y) to the far corner (x1, y1) of this head (the
# request itself is UNICAST to (x0, y0)); docs/isa.md "Multicast reads".
H_MCAST = Field("mcast", 63, 1)
H_ADDR = Field("addr", 64, 32)  # destination byte address (READ_REQ: source address)
H_RET = Field("ret_addr", 96, 32)  # READ_REQ: return address; KEY: the key
HEAD_FIELDS = (
    H_KIND,
    H_ROUTE,
    H_X0,
    H_Y0,
    H_X1,
    H_Y1,
    H_SRC_X,
    H_SRC_Y,
    H_LEN,
    H_SEM,
    H_SIGNAL,
    H_COUNT,
    H_MCAST,
    H_ADDR,
    H_RET,
)
COORD_BITS = 6


def encode_head(**values: int) -> int:
    """The 128-bit head flit with the given fields (missing fields are 0)."""
    known = {f.name: f for f in HEAD_FIELDS}
    unknown = set(values) - set(known)
    if unknown:
        raise EncodingError(f"head flit has no field {sorted(unknown)[0]!r}")
    word = 0
    for name, f in known.items():
        word |= f.put(values.get(name, 0), "head flit")
    return word


def decode_head(flit: int) -> dict[str, int]:
    return {f.name: f.get(flit) for f in HEAD_FIELDS}


# Off-chip endpoints sit at virtual coordinates just outside the mesh, so that XY
# routing reaches them through the edge routers' outer ports without special cases:
# DRAM port p on the east edge, the host port on the south edge.


def dram_node(arch, port: int = 0) -> tuple[int, int]:
    """(x, y) of DRAM port ``port`` (east of column mesh_cols - 1)."""
    if not 0 <= port < arch.dram_ports:
        raise EncodingError(f"DRAM port must be in 0..{arch.dram_ports - 1}, not {port!r}")
    return arch.mesh_cols, port * arch.mesh_rows // arch.dram_ports


def host_node(arch) -> tuple[int, int]:
    """(x, y) of the host port (south of row mesh_rows - 1, column 0)."""
    return 0, arch.mesh_rows


def pack_node(x: int, y: int) -> int:
    """The SIGNAL target register value of one node."""
    return x | y << 8


def pack_rect(x0: int, y0: int, x1: int, y1: int) -> int:
    """The SIGNAL target register value of a rectangle of nodes."""
    return x0 | y0 << 8 | x1 << 16 | y1 << 24
