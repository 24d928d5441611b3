"""GEMM chains (mlp.py, attention.py on chain.py): weights, K^T and V resident when
they fit SRAM, otherwise streamed from DRAM by whole-K column tiles through two slots
(double buffering), multicast along PE rows with credit semaphores; bit-exact on the
chip reference simulator, and the plan records the decision."""

import pytest

from compiler.backend import mlp
from compiler.backend.chain_emit import compile_mapped
from compiler.backend.compile import compile_kernel
from compiler.dialects.mapping import int_of, ints_of


def _pe_ops(ck, pe):
    return list([p for p in ck.mapped.kernel.pes() if p.coords == pe][0].body.ops)


def test_mlp_streams_both_weights_on_tiny(archs, run_isa):
    shape = dict(m=64, d=128, hidden=256, n=128)
    print(f"seed=0 arch=tiny mlp {shape}")
    ck = compile_kernel("mlp", archs["tiny"], **shape)
    ops = ck.plan["operands"]
    assert ops["W1"] == {
        "mode": "streamed",
        "block_bytes": 128 * 16,
        "blocks": 16,
        "multicast": True,
    }
    assert ops["W2"]["mode"] == "streamed" and ops["W2"]["blocks"] == 8
    assert run_isa(ck)["bit_exact"]
    # PE (0, 0) reads every tile once and multicasts it to columns 1..; PE (0, 1), the
    # rest of column 0, reads its own: each weight byte is read from DRAM twice
    x, y = 64 * 128, 64 * 128
    assert ck.traffic["dram_bytes"] == x + 2 * (128 * 256 + 256 * 128) + y
    leader = [o for o in _pe_ops(ck, (0, 0)) if o.name == "mapping.stream_tiles"]
    follower = [o for o in _pe_ops(ck, (1, 1)) if o.name == "mapping.stream_tiles"]
    alone = [o for o in _pe_ops(ck, (0, 1)) if o.name == "mapping.stream_tiles"]
    assert [ints_of(o, "lead_to") for o in leader] == [[1, 0, 1, 1]] * 2
    assert [ints_of(o, "leader") for o in follower] == [[0, 0]] * 2
    assert all("leader" not in o.attributes and "lead_to" not in o.attributes for o in alone)
    # slot data semaphores differ between the two streams and from the band's
    sems = [ints_of(o, "sems") for o in follower]
    assert sems[0] != sems[1] and 0 not in sems[0] + sems[1]
    # remote writes can reach the slots from the start: nothing else shares their bytes
    bufs = ck.mapped.kernel.buffers()
    assert all(ints_of(b, "live")[0] == 0 for n, b in bufs.items() if "_slots" in n)


def _tokens(arch, seed: int = 0, **shape):
    """The MLP with the token split (mlp.py chooses the weight split where it is cheaper)."""
    t = mlp.mlp_inputs(seed=seed, **shape)
    macs = shape["m"] * shape["hidden"] * (shape["d"] + shape["n"])
    return compile_mapped(
        "mlp", arch, lambda: mlp.map_mlp(arch, t, split="tokens"), t,
        {"Y": mlp.mlp_reference(t)}, macs,
    )  # fmt: skip


@pytest.mark.parametrize("arch_name", ["small-32k", "small-8x8mac"])
def test_mlp_resident_or_streamed_by_sram(archs, run_isa, arch_name):
    shape = dict(m=64, d=256, hidden=256, n=64)
    print(f"seed=3 arch={arch_name} mlp {shape}")
    ck = _tokens(archs[arch_name], seed=3, **shape)
    modes = {k: v["mode"] for k, v in ck.plan["operands"].items()}
    want = "streamed" if arch_name == "small-32k" else "resident"
    assert modes["W1"] == want and modes["W2"] == "resident"
    assert run_isa(ck)["bit_exact"]


def test_streaming_without_spare_semaphores_reads_alone(archs, run_isa):
    # band 0, W2 resident 1, W1 slots 2 and 3: no room for the credits
    arch = archs["tiny"].replace(name="tiny-4sem", semaphores=4)
    ck = compile_kernel("mlp", arch, m=16, d=256, hidden=512, n=16)
    assert ck.plan["operands"]["W1"]["multicast"] is False
    assert all(
        "leader" not in o.attributes and "lead_to" not in o.attributes
        for pe in ck.mapped.kernel.pes()
        for o in pe.body.ops
        if o.name == "mapping.stream_tiles"
    )
    assert run_isa(ck)["bit_exact"]
    # both weights streamed by every PE alone: one pair of slot semaphores for both
    ck = compile_kernel("mlp", arch, m=64, d=128, hidden=256, n=128)
    assert {v["mode"] for v in ck.plan["operands"].values()} == {"streamed"}
    assert run_isa(ck)["bit_exact"]


def test_attention_streams_v(archs, run_isa):
    ck = compile_kernel("attention", archs["small-32k"], seq=96, d=160)
    ops = ck.plan["operands"]
    assert ops["KT"]["mode"] == "resident"
    assert ops["V"] == {"mode": "streamed", "block_bytes": 96 * 16, "blocks": 10, "multicast": True}
    assert run_isa(ck)["bit_exact"]


def test_resident_weights_arrive_just_before_their_gemm(archs):
    """W2's multicast tree is waited for after GEMM1 and the transpose, not before."""
    ck = _tokens(archs["small"], m=32, d=64, hidden=128, n=64)  # the kernel's default shape
    names = [o.name for o in _pe_ops(ck, (1, 1))]
    waits = [i for i, o in enumerate(_pe_ops(ck, (1, 1))) if o.name == "mapping.wait"]
    assert names.index("mapping.transpose") < waits[-1] < len(names) - 2
    w = _pe_ops(ck, (1, 1))[waits[-1]]
    assert int_of(w, "sem") == 2


@pytest.mark.parametrize(
    "arch_name,shape,blocked",
    [
        ("small", dict(m=32, d=64, hidden=128, n=64), True),
        ("small", dict(m=20, d=40, hidden=50, n=24), True),
        ("tiny", dict(m=40, d=48, hidden=80, n=40), True),
        ("small-8x8mac", dict(m=256, d=64, hidden=64, n=32), True),  # 2 tiles per window
        ("small-8x8mac", dict(m=32, d=64, hidden=128, n=64), False),  # 1 m tile per PE
        ("tiny-2x4mac", dict(m=64, d=32, hidden=48, n=16), True),  # 4 tiles per window
    ],
)
def test_mlp_chain_templates(archs, run_isa, arch_name, shape, blocked):
    """Weights broadcast in parts (each GEMM part starts when its part arrived) and the
    one-MATMUL transpose of blocked tiles (chain_ops.py), lowered by vec_ops."""
    from compiler.backend.codesign import compile_mlp_chain

    print(f"seed=8 arch={arch_name} mlp-chain {shape}")
    ck = compile_mlp_chain(archs[arch_name], 8, **shape)
    assert ck.plan["transpose"] == ("blocked" if blocked else "row-major")
    assert ck.plan["parts"]["W1"] == min(16, -(-shape["hidden"] // 16) * 16 // ck.plan["C"])
    ops = {o.name for pe in ck.mapped.kernel.pes() for o in pe.body.ops}
    assert "mapping.matmul_win" in ops and "mapping.matmul" not in ops
    assert run_isa(ck)["bit_exact"]
