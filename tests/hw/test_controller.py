# amaranth: UnusedElaboratable=no
"""Controller pieces: the RTL decoder agrees with hw.isa.is_legal word for word."""

from __future__ import annotations

import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hw.arch import preset
from hw.isa import OPCODE, Op, encode, fields_of, is_legal, used_mask
from hw.pe.controller import Controller, pc_bits
from hw.pe.decode import Decoder

SEED = 2024


def random_fields_word(rng: random.Random) -> int:
    """An opcode with random values in exactly its used bits (legal or not)."""
    op = rng.choice(list(Op))
    return (rng.getrandbits(64) & used_mask(op) & ~OPCODE.mask) | int(op)


def random_legal_word(rng: random.Random) -> int:
    while True:
        op = rng.choice(list(Op))
        values = {}
        for f in fields_of(op):
            lo = -(1 << (f.width - 1)) if f.signed else 0
            hi = (1 << (f.width - 1)) - 1 if f.signed else (1 << f.width) - 1
            values[f.name] = rng.choice([lo, hi, 0, 1, rng.randint(lo, hi)])
        word = encode(op, **values)
        if is_legal(word):
            return word


def word_corpus(seed: int, n: int) -> list[int]:
    print(f"seed={seed} words={n}")
    rng = random.Random(seed)
    words = [0, (1 << 64) - 1]
    for i in range(n):
        kind = i % 4
        if kind == 0:
            words.append(rng.getrandbits(64))
        elif kind == 1:
            words.append(random_fields_word(rng))
        elif kind == 2:
            words.append(random_legal_word(rng))
        else:
            words.append(random_legal_word(rng) ^ (1 << rng.randrange(64)))
    return words


def ref_legal(words: list[int]) -> list[bool]:
    return [is_legal(w) for w in words]


def rtl_legal(words: list[int]) -> list[bool]:
    dut = Decoder()
    out: list[bool] = []

    async def tb(ctx):
        for w in words:
            ctx.set(dut.word, w)
            out.append(bool(ctx.get(dut.legal)))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return out


def test_decoder_matches_isa_decode() -> None:
    words = word_corpus(SEED, 20000)
    ref, rtl = ref_legal(words), rtl_legal(words)
    assert 0.2 < sum(ref) / len(ref) < 0.8  # the corpus exercises both outcomes
    bad = [hex(w) for w, a, b in zip(words, ref, rtl, strict=True) if a != b]
    assert not bad, f"{len(bad)} words disagree, e.g. {bad[:5]}"


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_every_unused_bit_is_illegal(op: Op) -> None:
    """Each single bit outside used_mask(op) makes a legal word of op illegal."""
    rng = random.Random(SEED + int(op))
    base = None
    while base is None or OPCODE.get(base) != op:
        base = random_legal_word(rng)
    words = [base | (1 << b) for b in range(64) if not used_mask(op) >> b & 1]
    assert rtl_legal(words) == ref_legal(words) == [False] * len(words)


def test_pc_bits_hold_skip_targets() -> None:
    arch = preset("tiny")
    assert 1 << pc_bits(arch) > arch.imem_words + 1024


def test_controller_converts_to_verilog() -> None:
    assert "module" in verilog.convert(Controller(preset("tiny")))


def test_controller_rejects_non_arch() -> None:
    with pytest.raises(TypeError, match="arch must be an ArchConfig"):
        Controller("tiny")
