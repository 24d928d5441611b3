"""The mapping and pe_isa dialects: generated from hw.isa, text round trips, verifiers,
image emission."""

import random

import pytest
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from compiler.backend.compile import compile_kernel
from compiler.backend.opt import context
from compiler.dialects import pe_isa
from compiler.dialects.mapping import KernelOp
from hw.asm import assemble, disassemble
from hw.isa import Op, decode, fields_of


def test_one_op_per_opcode_with_the_isa_fields():
    for op in Op:
        cls = pe_isa.INSTR_CLASSES[op]
        assert cls.name == f"pe_isa.{op.name.lower()}"
        assert cls.field_names() == tuple(f.name for f in fields_of(op))


def test_random_instructions_encode_like_the_assembler():
    seed = 7
    print(f"seed={seed}")
    rng = random.Random(seed)
    for _ in range(300):
        op = rng.choice(list(Op))
        values = {}
        for f in fields_of(op):
            lo, hi = (
                (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1)
                if f.signed
                else (0, (1 << f.width) - 1)
            )
            values[f.name] = rng.randint(lo, hi)
        ins = pe_isa.instr(op, **values)
        try:
            ins.verify()
        except VerifyException:
            continue  # a sub-field rule (k16 = 0, fn not a function ...) rejected it
        word = ins.encode()
        assert assemble(disassemble([word])) == [word]
        assert dict(decode(word).args) == values


def test_verifier_rejects_out_of_range_fields():
    with pytest.raises(VerifyException, match="field 'imm'"):
        pe_isa.instr(Op.LI, rd=1, imm=1 << 40).verify()
    with pytest.raises(VerifyException, match="has no field 'rd'"):
        pe_isa.instr(Op.WAIT, rd=1, sem=0, count=1).verify()


def _roundtrip(op) -> str:
    text = str(op)
    parsed = Parser(context(), "builtin.module {\n" + text + "\n}").parse_module()
    parsed.verify()
    return str(next(iter(parsed.body.block.ops)))


def test_compiled_programs_roundtrip_through_text(archs):
    ck = compile_kernel("attention", archs["tiny"])
    for prog in ck.programs:
        again = _roundtrip(prog)
        assert again == str(prog)
    assert _roundtrip(ck.mapped.kernel) == str(ck.mapped.kernel)
    assert isinstance(ck.mapped.kernel, KernelOp)


def test_streaming_kernels_roundtrip_through_text(archs):
    arch = archs["small-32k"]
    for shape in (dict(m=256, k=512, n=64), dict(m=64, k=4096, n=64)):
        ck = compile_kernel("gemm", arch, **shape)
        assert _roundtrip(ck.mapped.kernel) == str(ck.mapped.kernel)
        for prog in ck.programs[:3]:
            assert _roundtrip(prog) == str(prog)


def test_emitted_images_hold_the_encoded_instructions(archs):
    ck = compile_kernel("gemm", archs["tiny"])
    for prog in ck.programs:
        image = ck.images[prog.coords]
        assert image.imem == [op.encode() for op in prog.instructions()]
        assert image.meta["pe"] == list(prog.coords)
        for seg in prog.segments():
            if seg.space.data == "sram":
                assert (seg.addr.value.data, ck.mapped.store[seg.ref.data]) in image.sram
