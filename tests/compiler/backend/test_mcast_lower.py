"""Multicast reads in the back end (docs/isa.md): a DRAM read whose ``to`` is a
rectangle lowers to a RECT read descriptor (remote = the DRAM node, (x1, y1) = the
corner opposite the reading PE); the deadlock check credits every PE of the
rectangle with the read's signal; the verifier refuses a multicast read of SRAM
and one whose reading PE is not a corner."""

import pytest
from xdsl.utils.exceptions import VerifyException

from compiler.backend.builder import KernelBuilder
from compiler.backend.deadlock import DeadlockError, check_deadlock
from compiler.backend.lower import lower_kernel
from compiler.dialects import mapping as mp
from hw.isa import Op, SignalMode, decode_desc, dram_node


def _kernel(arch, reader, to, waiters, remote_space="dram"):
    """``reader`` reads 64 bytes of DRAM tensor X into buffer B (same address on
    every PE) as a multicast to ``to``; every PE of ``waiters`` WAITs once."""
    kb = KernelBuilder(arch, "mcast")
    pes = (0, 0, arch.mesh_cols - 1, arch.mesh_rows - 1)
    kb.sram_buffer("B", "B", 64, pes, (0, 1), "low")
    if remote_space == "dram":
        kb.dram_tensor("X", 64, bytes(range(64)))
        remote = "@X"
    else:
        kb.sram_buffer("Y", "Y", 64, pes, (0, 1), "low")
        remote = "@Y"
    kb.add(reader, mp.TransferOp, local="@B", remote=remote, count=[4, 1, 1], sem=3, read=1,
           to=to)  # fmt: skip
    for pe in waiters:
        kb.add(pe, mp.WaitOp, sem=3, count=1)
    m = kb.finish({})
    store = dict(m.store)
    return lower_kernel(arch, m.kernel, store), store


def _desc(progs, store, coords):
    prog = next(p for p in progs if p.coords == coords)
    segs = {int(s.addr.value.data): store[s.ref.data] for s in prog.segments()}
    dma = next(op for op in prog.instructions() if op.OPCODE == Op.DMA)
    return decode_desc(segs[dma.values()["imm"]])


@pytest.mark.parametrize(
    "reader,to,far",
    [
        ((0, 0), [0, 0, 1, 1], (1, 1)),
        ((1, 1), [0, 0, 1, 1], (0, 0)),
        ((1, 0), [0, 0, 1, 0], (0, 0)),
    ],
)
def test_rect_dram_read_lowers_to_a_multicast_descriptor(archs, reader, to, far):
    arch = archs["tiny"]
    x0, y0, x1, y1 = to
    waiters = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    progs, store = _kernel(arch, reader, to, waiters)
    d = _desc(progs, store, reader)
    assert d["read"] == 1 and d["mode"] == SignalMode.RECT
    assert (d["x0"], d["y0"]) == dram_node(arch, 0) and (d["x1"], d["y1"]) == far
    # every PE of the rectangle is signalled once: all WAITs pass, every sem ends at 0
    assert check_deadlock(arch, progs, store)["pes"] == len({reader, *waiters})


def test_pe_outside_the_rectangle_is_not_signalled(archs):
    arch = archs["tiny"]
    progs, store = _kernel(arch, (0, 0), [0, 0, 1, 0], [(0, 0), (1, 0), (0, 1)])
    with pytest.raises(DeadlockError, match=r"PE \(0, 1\) waits on semaphore 3"):
        check_deadlock(arch, progs, store)


def test_reader_must_be_a_corner(archs):
    with pytest.raises(VerifyException, match=r"the reading PE must be a corner"):
        _kernel(archs["small"], (1, 1), [0, 0, 3, 3], [])


def test_multicast_read_from_sram_is_refused(archs):
    with pytest.raises(VerifyException, match=r"must read DRAM, not the SRAM buffer @Y"):
        _kernel(archs["tiny"], (0, 0), [0, 0, 1, 1], [], remote_space="sram")
