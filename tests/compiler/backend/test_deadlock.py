"""The static deadlock check: program sets with a missing signal or a circular wait
are reported with the PE, the semaphore and the instruction; correct ones pass."""

import pytest

from compiler.backend.builder import KernelBuilder
from compiler.backend.compile import compile_kernel
from compiler.backend.deadlock import DeadlockError, check_deadlock
from compiler.backend.lower import lower_kernel
from compiler.dialects import mapping as mp
from compiler.dialects.pe_isa import InstrOp
from hw.isa import Op


def test_compiled_kernels_pass(archs):
    for name in ("gemm", "mlp", "attention"):
        ck = compile_kernel(name, archs["tiny"])
        summary = check_deadlock(ck.arch, ck.programs, ck.mapped.store)
        assert summary["pes"] == len(ck.programs)


def _multicast_dma(ck, coords):
    """Index of the DMA on ``coords`` whose descriptor writes with signal."""
    from hw.isa import decode_desc

    prog = next(p for p in ck.programs if p.coords == coords)
    segs = {int(s.addr.value.data): ck.mapped.store[s.ref.data] for s in prog.segments()}
    for i, op in enumerate(prog.instructions()):
        if op.OPCODE == Op.DMA:
            d = decode_desc(segs[op.values()["imm"]])
            if d["signal"] and not d["read"]:
                return prog, i, d
    raise AssertionError("no multicast")


def test_removed_write_with_signal_is_reported(archs):
    ck = compile_kernel("gemm", archs["small"], m=64, k=64, n=64)
    prog, index, desc = _multicast_dma(ck, (0, 0))
    victim = prog.instructions()[index]
    victim.detach()
    victim.erase()
    with pytest.raises(DeadlockError) as exc:
        check_deadlock(ck.arch, ck.programs, ck.mapped.store)
    msg = str(exc.value)
    rect = (desc["x0"], desc["y0"], desc["x1"], desc["y1"])
    print(msg)
    assert f"waits on semaphore {desc['sem']} for count 1 (has 0)" in msg
    assert "PE (1, 0)" in msg or "PE (0, 1)" in msg
    assert "(wait sem=" in msg and "no instruction left on any PE signals it" in msg
    assert rect in ((1, 0, 3, 0), (0, 1, 0, 3))


def test_removed_wait_is_reported(archs):
    """A WAIT removed by hand leaves its signals unconsumed: the check reports the PE
    and semaphore (stop 10: the pipelined attention tail lost its V WAITs to a
    shadowed name; only the sync stress on the RTL showed it, as wrong outputs)."""
    ck = compile_kernel("attention", archs["small"], seq=128, d=64)
    prog = next(p for p in ck.programs if p.coords == (1, 0))
    ops = prog.instructions()
    sems = [op.values()["sem"] for op in ops if op.OPCODE == Op.WAIT]
    victim = next(
        op for op in reversed(ops) if op.OPCODE == Op.WAIT and sems.count(op.values()["sem"]) == 4
    )
    sem = victim.values()["sem"]
    victim.detach()
    victim.erase()
    with pytest.raises(DeadlockError, match=rf"PE \(1, 0\) halts with semaphore {sem} at count 1"):
        check_deadlock(ck.arch, ck.programs, ck.mapped.store)


def _pair(arch, signal_first: bool, drop_signal: bool = False):
    """Two PEs exchanging semaphore 2 through mapping.signal / mapping.wait."""
    kb = KernelBuilder(arch, "pair")
    for me, other in (((0, 0), (1, 0)), ((1, 0), (0, 0))):
        to = [other[0], other[1], other[0], other[1]]
        ops = [(mp.SignalOp, dict(sem=2, count=1, to=to)), (mp.WaitOp, dict(sem=2, count=1))]
        if not signal_first:
            ops.reverse()
        for cls, attrs in ops:
            if drop_signal and cls is mp.SignalOp and me == (1, 0):
                continue
            kb.add(me, cls, **attrs)
    m = kb.finish({})
    store = dict(m.store)
    return m, lower_kernel(arch, m.kernel, store), store


def test_signal_then_wait_passes(archs):
    _, progs, store = _pair(archs["tiny"], signal_first=True)
    assert check_deadlock(archs["tiny"], progs, store)["pes"] == 2


def test_circular_wait_is_reported(archs):
    _, progs, store = _pair(archs["tiny"], signal_first=False)
    with pytest.raises(DeadlockError, match=r"circular wait between PEs .*semaphore 2"):
        check_deadlock(archs["tiny"], progs, store)


def test_signal_removed_from_mapping_is_reported(archs):
    _, progs, store = _pair(archs["tiny"], signal_first=True, drop_signal=True)
    with pytest.raises(DeadlockError) as exc:
        check_deadlock(archs["tiny"], progs, store)
    assert "PE (0, 0) waits on semaphore 2 for count 1 (has 0) at instruction 2" in str(exc.value)


def test_instruction_count_unchanged_by_check(archs):
    ck = compile_kernel("gemm", archs["tiny"])
    before = [len(p.instructions()) for p in ck.programs]
    check_deadlock(ck.arch, ck.programs, ck.mapped.store)
    assert before == [len(p.instructions()) for p in ck.programs]
    assert all(isinstance(op, InstrOp) for p in ck.programs for op in p.instructions())


def test_removed_credit_signal_is_reported(archs):
    """Streamed tiles are multicast; followers return each slot with a SIGNAL.  Remove
    one follower's first SIGNAL by hand: the leader waits forever for its credit."""
    arch = archs["small"].replace(name="small-32k", sram_bytes=32768)
    ck = compile_kernel("gemm", arch, m=256, k=512, n=64)
    assert ck.plan["mode"] == "stream_a"
    follower = next(p for p in ck.programs if p.coords == (2, 1))
    signal = next(op for op in follower.instructions() if op.OPCODE == Op.SIGNAL)
    signal.detach()
    signal.erase()
    with pytest.raises(DeadlockError) as exc:
        check_deadlock(ck.arch, ck.programs, ck.mapped.store)
    msg = str(exc.value)
    print(msg)
    assert "PE (0, 1) waits on semaphore 0 for count 3 (has 2)" in msg
    assert "(wait sem=0, count=3)" in msg
