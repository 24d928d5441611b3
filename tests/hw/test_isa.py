"""hw/isa.py: encodings round-trip, illegal words are rejected, fields are checked."""

import random

import pytest

from hw import isa
from hw.errors import EncodingError
from hw.isa import Op

SEED = 20261127


def random_legal(op: Op, rng: random.Random) -> dict[str, int]:
    values = {}
    for f in isa.fields_of(op):
        half = 1 << (f.width - 1)
        lo, hi = (-half, half - 1) if f.signed else (0, (1 << f.width) - 1)
        values[f.name] = rng.randint(lo, hi)
    if op == Op.LOOP:
        values["body"] = max(1, values["body"])
    if op == Op.MATMUL:
        values["k16"] = max(1, values["k16"])
    if op == Op.VCFG:
        values["cfg"] %= len(isa.VCfg)
    if op == Op.VOP:
        values["n16"] = max(1, values["n16"])
        values["fn"] = int(rng.choice(list(isa.VFn)))
        values["tin"] %= 3
        values["tout"] = 2 if values["fn"] in isa.REDUCTIONS else values["tout"] % 3
        values["bscalar"] &= int(values["fn"] in isa.BINARY)
    if op in (Op.WAIT, Op.SIGNAL):
        values["count"] = max(1, values["count"])
    if op == Op.SIGNAL:
        values["mode"] %= 3
    if op == Op.FENCE:
        values["units"] = max(1, values["units"])
    return values


def test_every_opcode_round_trips():
    rng = random.Random(SEED)
    print(f"seed={SEED}")
    for op in Op:
        for _ in range(200):
            values = random_legal(op, rng)
            word = isa.encode(op, **values)
            instr = isa.decode(word)
            assert instr.op == op
            assert dict(instr.args) == {f.name: values[f.name] for f in isa.fields_of(op)}
            assert instr.encode() == word


def test_fields_do_not_overlap():
    for op in Op:
        seen = isa.OPCODE.mask
        for f in isa.fields_of(op):
            assert seen & f.mask == 0, (op, f)
            seen |= f.mask
            assert f.hi < 64


def test_unused_bits_make_a_word_illegal():
    rng = random.Random(SEED + 1)
    for op in Op:
        free = ~isa.used_mask(op) & (2**64 - 1)
        if not free:
            continue
        bits = [b for b in range(64) if free >> b & 1]
        word = isa.encode(op, **random_legal(op, rng)) | 1 << rng.choice(bits)
        assert not isa.is_legal(word)
        with pytest.raises(EncodingError, match="unused bits"):
            isa.decode(word)


def test_unknown_opcode():
    with pytest.raises(EncodingError, match="unknown opcode 0x3f"):
        isa.decode(0x3F)


@pytest.mark.parametrize(
    ("op", "values", "message"),
    [
        (Op.LI, {"rd": 16}, "field 'rd' in LI must be in 0..15"),
        (Op.ADDI, {"imm": 2**31}, "field 'imm' in ADDI must be in -2147483648..2147483647"),
        (Op.MATMUL, {"k16": 4096}, "field 'k16' in MATMUL must be in 0..4095"),
        (Op.LOOP, {"body": 1024}, "field 'body' in LOOP must be in 0..1023"),
        (Op.WAIT, {"sem": 32}, "field 'sem' in WAIT must be in 0..31"),
        (Op.HALT, {"rd": 1}, "HALT has no field 'rd'"),
    ],
)
def test_field_overflow_is_named(op, values, message):
    with pytest.raises(EncodingError, match=message):
        isa.encode(op, **values)


@pytest.mark.parametrize(
    ("op", "values", "message"),
    [
        (Op.LOOP, {"body": 0}, "LOOP body must be 1..1023"),
        (Op.MATMUL, {"k16": 0}, "MATMUL k16 must be 1..4095"),
        (Op.VCFG, {"cfg": 15}, "VCFG register must be"),
        (Op.VOP, {"n16": 1, "fn": 18}, "not a vector function"),
        (Op.VOP, {"n16": 1, "fn": 0, "tin": 3}, "tin and tout"),
        (Op.VOP, {"n16": 1, "fn": int(isa.VFn.RSUM), "tout": 0}, "writes int32"),
        (Op.VOP, {"n16": 1, "fn": int(isa.VFn.EXP), "bscalar": 1}, "only allowed for binary"),
        (Op.WAIT, {"count": 0}, "WAIT count must be >= 1"),
        (Op.SIGNAL, {"count": 1, "mode": 3}, "SIGNAL mode must be"),
    ],
)
def test_bad_subfields_are_illegal(op, values, message):
    word = isa.encode(op, **values)
    assert not isa.is_legal(word)
    with pytest.raises(EncodingError, match=message):
        isa.decode(word)


def test_descriptor_round_trip_and_defaults():
    image = isa.encode_desc(local=0x100, remote=0x2000, count0=4, lstride1=-16, sem=3, read=1)
    assert len(image) == isa.DESC_WORDS * isa.WORD_BYTES
    desc = isa.decode_desc(image)
    assert desc["local"] == 0x100 and desc["remote"] == 0x2000
    assert desc["count0"] == 4 and desc["count1"] == 1 and desc["count2"] == 1
    assert desc["lstride1"] == -16 and desc["sem"] == 3 and desc["read"] == 1
    with pytest.raises(EncodingError, match="field 'count0' in DMA descriptor"):
        isa.encode_desc(count0=1 << 16)


def test_head_flit_round_trip():
    rng = random.Random(SEED + 2)
    for _ in range(500):
        values = {f.name: rng.randrange(1 << f.width) for f in isa.HEAD_FIELDS}
        assert isa.decode_head(isa.encode_head(**values)) == values


def test_message_classes():
    assert isa.msg_class(isa.Kind.READ_RESP) == isa.MsgClass.RESPONSE
    assert isa.msg_class(isa.Kind.ERROR) == isa.MsgClass.RESPONSE
    for kind in (isa.Kind.WRITE, isa.Kind.READ_REQ, isa.Kind.SIGNAL, isa.Kind.CONFIG):
        assert isa.msg_class(kind) == isa.MsgClass.REQUEST


def test_qparam_layout_is_word_aligned():
    for cols in (4, 8, 16):
        layout = isa.qparam_layout(cols)
        assert layout["clamp"][0] % 16 == 0
        assert layout["total"][1] % 16 == 0
