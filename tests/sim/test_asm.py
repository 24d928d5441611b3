"""Assembler, disassembler and program image (hw/asm.py, hw/image.py)."""

from __future__ import annotations

import random

import pytest

from hw.arch import preset
from hw.asm import assemble, disassemble
from hw.errors import AssemblyError, EncodingError, ImageError
from hw.image import ProgramImage
from hw.isa import (
    BINARY,
    REDUCTIONS,
    Op,
    SignalMode,
    VCfg,
    VFn,
    decode,
    encode,
    fields_of,
    is_legal,
)

DOC_EXAMPLE = """
    li x1, 0x0000         # A tiles
    li x2, 0x2000         # B tiles
    li x3, 0x6000         # output
    qload x4, 0
    loop x0, body=1, imm=16
    matmul rs1=x1, rs2=x2, rs3=x3, k16=16, ldc=64
    halt
"""


def test_doc_example():
    assert assemble(DOC_EXAMPLE) == [
        encode(Op.LI, rd=1, imm=0),
        encode(Op.LI, rd=2, imm=0x2000),
        encode(Op.LI, rd=3, imm=0x6000),
        encode(Op.QLOAD, rs1=4, imm=0),
        encode(Op.LOOP, rs1=0, body=1, imm=16),
        encode(Op.MATMUL, rs1=1, rs2=2, rs3=3, k16=16, ldc=64),
        encode(Op.HALT),
    ]


@pytest.mark.parametrize(
    "text, op, fields",
    [
        ("addi x3, x4, -0x10", Op.ADDI, dict(rd=3, rs1=4, imm=-16)),
        ("addi imm=-5, rs1=x1, rd=x15", Op.ADDI, dict(rd=15, rs1=1, imm=-5)),
        ("sw x2, x7, 0b1100", Op.SW, dict(rs1=2, rs2=7, imm=12)),
        ("lw x2, -8(x9)", Op.LW, dict(rd=2, rs1=9, imm=-8)),
        ("shri x1, x2, 31", Op.SHRI, dict(rd=1, rs1=2, imm=31)),
        ("lstride x5, level=2, slot=3, imm=-48", Op.LSTRIDE, dict(rd=5, level=2, slot=3, imm=-48)),
        ("vcfg x0, cfg=exp_qln2, imm=77", Op.VCFG, dict(cfg=int(VCfg.EXP_QLN2), imm=77)),
        (
            "vop rd=x1, rs1=x2, rs2=x3, n16=2, fn=sra, tin=i16, tout=i8, bscalar=1",
            Op.VOP,
            dict(rd=1, rs1=2, rs2=3, n16=2, fn=int(VFn.SRA), tin=1, tout=0, bscalar=1),
        ),
        (
            "vop x1, x2, x3, 1, rsum, i32, i32",
            Op.VOP,
            dict(rd=1, rs1=2, rs2=3, n16=1, fn=int(VFn.RSUM), tin=2, tout=2),
        ),
        (
            "signal x4, sem=3, mode=rect, count=2",
            Op.SIGNAL,
            dict(rs1=4, sem=3, mode=int(SignalMode.RECT), count=2),
        ),
        ("wait sem=15, count=255", Op.WAIT, dict(sem=15, count=255)),
        ("loop x3, body=1, imm=0xffffffff", Op.LOOP, dict(rs1=3, body=1, imm=0xFFFFFFFF)),
        ("dma 48(x1)", Op.DMA, dict(rs1=1, imm=48)),
        (
            "MATMUL rs1 = x1, rs2 = x2, rs3 = x3, k16 = 1, out32 = 1, acc = 1, ldc = 64",
            Op.MATMUL,
            dict(rs1=1, rs2=2, rs3=3, k16=1, out32=1, acc=1, ldc=64),
        ),
    ],
)
def test_operand_forms(text, op, fields):
    assert assemble(text) == [encode(op, **fields)]


def test_labels_loops_comments_and_words():
    words = assemble("""
        # a comment line
        start: li x1, 3
        loop x1, imm=1, end=body_end   # body = 2
        addi x2, x2, 1
        body_end:
        nop
        .word 0x3f
        done: halt
    """)
    assert words == [
        encode(Op.LI, rd=1, imm=3),
        encode(Op.LOOP, rs1=1, body=2, imm=1),
        encode(Op.ADDI, rd=2, rs1=2, imm=1),
        encode(Op.NOP),
        0x3F,
        encode(Op.HALT),
    ]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("nop\nfoo x1", "line 2: 'foo x1': unknown mnemonic 'foo'"),
        ("addi x1, x2, 0x80000000", "field 'imm' in addi must be in"),
        ("shli x1, x2, 32", "field 'imm' in shli must be in 0..31"),
        ("li x16, 1", "'x16' is not a register"),
        ("li rd=x1, rs1=x2", "li has no operand 'rs1'"),
        (
            "loop x0, imm=1, end=nowhere\nnop",
            "line 1: 'loop x0, imm=1, end=nowhere': unknown label 'nowhere'",
        ),
        ("matmul rs1=x1, k16=0", "MATMUL k16 must be 1..4095, not 0"),
        ("vop fn=bogus", "fn=bogus is not one of"),
        ("vop n16=1, fn=rsum, tout=i8", "tout must be 2"),
        ("a:\na:\nhalt", "label 'a' defined twice"),
        ("halt x1", "too many operands for halt"),
        ("li x1, 1, 2", "too many operands"),
        ("li x1, 12abc", "'12abc' is not a number"),
        ("addi x1, imm=2, imm=3", "operand 'imm' given twice"),
        (".word 0x1ffffffffffffffff", ".word must be in"),
        ("x: loop x0, imm=1, end=x", "must name an instruction after the loop"),
    ],
)
def test_errors_name_line_text_and_problem(text, needle):
    with pytest.raises(AssemblyError) as exc:
        assemble(text)
    assert needle in str(exc.value)


def random_legal_word(rng: random.Random) -> int:
    """A legal word built from the field tables (not from the assembler)."""
    while True:
        op = rng.choice(list(Op))
        values = {}
        for f in fields_of(op):
            if f.signed:
                values[f.name] = rng.randint(-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1)
            else:
                values[f.name] = rng.randint(0, (1 << f.width) - 1)
        if op == Op.VOP:  # steer towards legal combinations
            fn = rng.choice(list(VFn))
            values.update(
                fn=int(fn),
                tin=rng.randint(0, 2),
                tout=2 if fn in REDUCTIONS else rng.randint(0, 2),
                bscalar=values["bscalar"] if fn in BINARY else 0,
            )
        if op == Op.VCFG:
            values["cfg"] = rng.randrange(len(VCfg))
        if op == Op.SIGNAL:
            values["mode"] = rng.randrange(len(SignalMode))
        word = encode(op, **values)
        if is_legal(word):
            return word


def test_roundtrip_random_legal_words():
    seed = 1234
    print(f"seed {seed}")
    rng = random.Random(seed)
    words = [random_legal_word(rng) for _ in range(5000)]
    assert {decode(w).op for w in words} == set(Op)
    text = disassemble(words)
    assert ".word" not in text
    assert assemble(text) == words
    assert assemble(disassemble(assemble(text))) == words


def test_roundtrip_illegal_words_as_dot_word():
    seed = 99
    print(f"seed {seed}")
    rng = random.Random(seed)
    words = [rng.getrandbits(64) for _ in range(2000)]
    words += [encode(Op.HALT) | 1 << 40, encode(Op.LOOP, body=1) & ~(1023 << 22)]
    illegal = [w for w in words if not is_legal(w)]
    assert len(illegal) > 1900
    text = disassemble(words)
    for w, line in zip(words, text.splitlines(), strict=True):
        assert line.startswith(".word") == (not is_legal(w))
    assert assemble(text) == words


def test_disassemble_form_and_reassembly():
    text = """
        li x1, -1
        lw x2, 8(x1)
        vop rd=x1, rs1=x2, n16=3, fn=exp, tin=i16, tout=i32
        signal x0, sem=2, mode=node, count=1
        loop x0, body=1, imm=100
        matmul x1, x2, x3, 4, 1, 0, 1, 16
        halt
    """
    words = assemble(text)
    out = disassemble(words)
    assert out.splitlines()[2] == "vop rd=x1, rs1=x2, rs2=x0, n16=3, fn=exp, tin=i16, tout=i32"
    assert "mode=node" in out and "out32=1" in out and "acc=" not in out
    assert assemble(out) == words
    with pytest.raises(EncodingError):
        disassemble([1 << 64])


# -- program image -----------------------------------------------------------------


def test_image_check_and_save_load(tmp_path):
    arch = preset("tiny")
    img = ProgramImage(
        [encode(Op.NOP), encode(Op.HALT)],
        [(0, b"\x01\x02"), (4096, bytes(32))],
        [(16, b"dram")],
        "t",
        {"k": [1, 2]},
    )
    img.check(arch)
    back = ProgramImage.load(img.save(tmp_path / "img"))
    assert back == img
    hexlines = (tmp_path / "img" / "imem.hex").read_text().split()
    assert [int(x, 16) for x in hexlines] == img.imem


@pytest.mark.parametrize(
    "make, needle",
    [
        (
            lambda a: ProgramImage([0] * (a.imem_words + 1)),
            "program of 513 instructions does not fit instruction memory of 512 words",
        ),
        (
            lambda a: ProgramImage([0], [(0, b""), (a.sram_bytes - 4, bytes(8))]),
            "SRAM segment 1 [0x7ffc, 0x8004) lies outside SRAM of 0x8000 bytes",
        ),
        (lambda a: ProgramImage([0], [(-16, b"x")]), "SRAM segment 0 [-0x10"),
        (
            lambda a: ProgramImage([0], dram=[(a.dram_bytes, b"x")]),
            "DRAM segment 0 [0x100000, 0x100001) lies outside DRAM",
        ),
        (lambda a: ProgramImage([1 << 64]), "must be a 64-bit word"),
    ],
)
def test_image_errors(make, needle):
    with pytest.raises(ImageError) as exc:
        make(preset("tiny")).check(preset("tiny"))
    assert needle in str(exc.value)


def test_image_load_errors(tmp_path):
    with pytest.raises(ImageError, match="has no manifest.json"):
        ProgramImage.load(tmp_path)
    d = ProgramImage([1, 2]).save(tmp_path / "x")
    (d / "imem.bin").write_bytes(b"123")
    with pytest.raises(ImageError, match="imem.bin holds 3 bytes"):
        ProgramImage.load(d)
