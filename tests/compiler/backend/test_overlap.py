"""The nowait/FENCE pass (compiler/backend/overlap.py): it only adds FENCEs and nowait
bits, its FENCEs order every dependence the reference simulator's hazard rule names
(checked at run time by sim/pe_sim.py), and a blocking arch keeps the old programs."""

import dataclasses

import numpy as np
import pytest

from compiler.backend.compile import compile_kernel
from compiler.backend.overlap import overlap_units
from compiler.backend.run import ChipSimExecutor, bit_exact
from compiler.dialects.pe_isa import ProgramOp, SegmentOp, emit_image, instr
from hw.isa import NOWAIT_OPS, Op, Unit
from sim.hazards import UnitHazard
from sim.network import ChipSim
from sim.pe_sim import PeSim

KERNELS = {
    "gemm": dict(m=128, k=128, n=128),
    "mlp": {},
    "attention": dict(seq=64, d=32),
    "conv2d": {},
}


def _stripped(program: ProgramOp) -> list[tuple[Op, dict]]:
    """The program without FENCEs and nowait bits, LOOP bodies shrunk to match."""
    code = [(op.OPCODE, op.values()) for op in program.instructions()]
    keep = [i for i, (op, _) in enumerate(code) if op != Op.FENCE]
    out = []
    for i in keep:
        op, v = code[i]
        v = dict(v)
        if op in NOWAIT_OPS:
            v["nowait"] = 0
        if op == Op.LOOP:
            inside = range(i + 1, i + 1 + v["body"])
            v["body"] -= sum(1 for j in inside if code[j][0] == Op.FENCE)
        out.append((op, v))
    return out


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_pass_only_adds_fences_and_nowait(archs, name):
    arch = archs["small"]
    blocking = dataclasses.replace(arch, async_units=False)
    fast = compile_kernel(name, arch, **KERNELS[name])
    slow = compile_kernel(name, blocking, **KERNELS[name])
    assert {k: slow.plan["overlap"][k] for k in ("nowait", "fences")} == {"nowait": 0, "fences": 0}
    assert fast.plan["overlap"]["nowait"] > 0
    for p in slow.programs:
        assert all(op.OPCODE != Op.FENCE for op in p.instructions())
        assert all(op.values().get("nowait", 0) == 0 for op in p.instructions())
    old = {p.coords: [(op.OPCODE, op.values()) for op in p.instructions()] for p in slow.programs}
    for p in fast.programs:
        assert _stripped(p) == old[p.coords], p.coords


@pytest.mark.parametrize("arch_name", ["small", "tiny"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_overlapped_kernels_are_exact_and_hazard_free(archs, arch_name, name):
    ck = compile_kernel(name, archs[arch_name], **(KERNELS[name] if arch_name == "small" else {}))
    assert ck.plan["overlap"]["nowait"] > 0
    assert bit_exact(ck, ChipSimExecutor(ChipSim).run(ck))


def test_a_removed_fence_is_reported_as_a_hazard(archs):
    ck = compile_kernel("gemm", archs["small"], m=256, k=256, n=256)
    prog = next(p for p in ck.programs if p.coords == (0, 0))
    fence = next(op for op in prog.instructions() if op.OPCODE == Op.FENCE)
    index = prog.instructions().index(fence)
    fence.detach()
    fence.erase()
    dram = ck.images[(0, 0)].dram
    ck.images[(0, 0)] = emit_image(prog, ck.mapped.store, ck.arch)
    ck.images[(0, 0)].dram = dram
    with pytest.raises(UnitHazard) as exc:
        ChipSimExecutor(ChipSim).run(ck)
    print(exc.value)
    assert f"pc {index}" in str(exc.value)


def _program(arch, code, sram=()):
    store, segs = {}, []
    for i, (addr, data) in enumerate(sram):
        store[f"d{i}"] = data
        segs.append(SegmentOp.build(attributes=_seg_attrs(addr, f"d{i}")))
    return ProgramOp("t", (0, 0), [*segs, *[instr(op, **v) for op, v in code]]), store


def _seg_attrs(addr, ref):
    from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64

    return {"space": StringAttr("sram"), "addr": IntegerAttr(addr, i64), "ref": StringAttr(ref)}


def _run(arch, prog, store):
    sim = PeSim(arch)
    sim.load(emit_image(prog, store, arch))
    res = sim.run(100_000)
    assert res.status == "halted", res
    return sim


def test_fence_inside_a_loop_body_orders_every_iteration(archs):
    """A MATMUL's C read back by LW in a loop: the FENCE lands inside the body."""
    arch = archs["small"]
    R, C = arch.mac_rows, arch.mac_cols
    rng = np.random.default_rng(7)
    print("seed=7")
    a = rng.integers(-128, 128, (16, R), dtype=np.int8)
    b = rng.integers(-128, 128, (16, C), dtype=np.int8)
    A, B, CO = 0, arch.bank_bytes, 2 * arch.bank_bytes
    code = [
        (Op.LI, dict(rd=1, imm=A)),
        (Op.LI, dict(rd=2, imm=B)),
        (Op.LI, dict(rd=3, imm=CO)),
        (Op.MATMUL, dict(rs1=1, rs2=2, rs3=3, k16=1, out32=1, ldc=4 * C)),
        (Op.LSTRIDE, dict(rd=3, level=0, slot=0, imm=4)),
        (Op.LOOP, dict(rs1=0, body=2, imm=4)),
        (Op.LW, dict(rd=5, rs1=3, imm=0)),
        (Op.ADD, dict(rd=6, rs1=6, rs2=5)),
        (Op.HALT, {}),
    ]
    prog, store = _program(arch, code, [(A, a.tobytes()), (B, b.tobytes())])
    (fenced,), figures = overlap_units(arch, [prog], store)
    assert figures["fences"] == 1
    ops = [(op.OPCODE, op.values()) for op in fenced.instructions()]
    loop = next(i for i, (op, _) in enumerate(ops) if op == Op.LOOP)
    assert ops[loop][1]["body"] == 3
    assert ops[loop + 1] == (Op.FENCE, {"units": int(Unit.MAC)})
    ref = a.astype(np.int64).T @ b.astype(np.int64)
    sim = _run(arch, fenced, store)
    assert sim.regs[6] == int(ref[0, :4].sum()) & 0xFFFFFFFF
    unfenced = ProgramOp("t", (0, 0), [seg.clone() for seg in fenced.segments()])
    for op, v in ops:
        if op == Op.FENCE:
            continue
        if op == Op.LOOP:
            v = dict(v, body=2)
        unfenced.body.block.add_op(instr(op, **v))
    with pytest.raises(UnitHazard):
        _run(arch, unfenced, store)


def test_an_address_loaded_from_memory_fences_everything(archs):
    """SW through an address register loaded by LW: the pass cannot know where it
    goes, so it orders the pending VOP first."""
    arch = archs["small"]
    src, dst, ptr = 0, arch.bank_bytes, 2 * arch.bank_bytes
    code = [
        (Op.LI, dict(rd=1, imm=src)),
        (Op.LI, dict(rd=2, imm=dst)),
        (Op.LI, dict(rd=4, imm=ptr)),
        (Op.VOP, dict(rd=2, rs1=1, n16=4, fn=7, tin=0, tout=2)),  # MOV i8 -> i32
        (Op.LW, dict(rd=7, rs1=4, imm=0)),
        (Op.LI, dict(rd=8, imm=99)),
        (Op.SW, dict(rs1=7, rs2=8, imm=0)),
        (Op.HALT, {}),
    ]
    far = (3 * arch.bank_bytes).to_bytes(4, "little")
    prog, store = _program(arch, code, [(ptr, far + bytes(12))])
    (fenced,), figures = overlap_units(arch, [prog], store)
    ops = [op.OPCODE for op in fenced.instructions()]
    assert ops.index(Op.FENCE) == ops.index(Op.SW) - 1
    sim = _run(arch, fenced, store)
    assert int.from_bytes(sim.read_sram(3 * arch.bank_bytes, 4), "little") == 99


# the `make cosim` shapes on small (cosim/kernel_set.py)
BENCH = {
    "gemm": dict(m=256, k=256, n=256),
    "mlp": dict(m=64, d=256, hidden=256, n=256),
    "attention": dict(seq=128, d=64),
    "conv2d": dict(cin=32, cout=64, h=16, w=16),
}


@pytest.mark.parametrize("name", sorted(BENCH))
def test_performance_model_overlap_is_within_the_roofline(archs, name):
    """On the performance model the decoupled units save cycles on the benchmark
    shapes but never beat the roofline (the reference simulator counts only issue
    cycles with nowait)."""
    from compiler.backend.run import PerfExecutor, execute
    from sim.perf import PerfSim

    arch = archs["small"]
    fast = execute(compile_kernel(name, arch, **BENCH[name]), PerfExecutor(PerfSim))
    blocking = dataclasses.replace(arch, async_units=False)
    slow = execute(compile_kernel(name, blocking, **BENCH[name]), PerfExecutor(PerfSim))
    print(
        name,
        "nowait",
        fast["cycles"],
        "blocking",
        slow["cycles"],
        "roofline",
        fast["roofline_cycles"],
    )
    assert fast["bit_exact"] and slow["bit_exact"]
    assert fast["roofline_cycles"] <= fast["cycles"] < slow["cycles"]
    assert 0 < fast["utilization"] <= 1


def test_same_strides_are_set_once():
    """drop_same_strides: an LSTRIDE that sets a slot to its value is dropped outside
    loop bodies; one inside a body is kept and makes the slot unknown; x0 clears."""
    from compiler.backend.codegen import drop_same_strides

    S = lambda rd, imm, level=0, slot=0: instr(Op.LSTRIDE, rd=rd, level=level, slot=slot, imm=imm)  # noqa: E731
    code = [
        S(0, 5),  # clears a cleared slot: dropped
        S(1, 4),
        S(1, 4),  # dropped
        S(1, 4, slot=1),  # another slot: kept
        instr(Op.LOOP, rs1=0, body=2, imm=3),
        S(1, 8),  # inside a body: kept, slot 0 unknown
        instr(Op.NOP),
        S(1, 8),  # kept (unknown before)
        S(1, 8),  # dropped
        S(0, 0),  # clears: kept
        S(0, 7),  # dropped
    ]
    out = drop_same_strides(code)
    assert [code.index(op) for op in out] == [1, 3, 4, 5, 6, 7, 9]
