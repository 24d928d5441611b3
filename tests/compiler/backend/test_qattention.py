"""An attention head from the front end (Q K^T -> qnt.softmax -> P V) compiled as one
back-end kernel and run on the chip reference simulator: bit-exact with the front
end's integer interpreter (softmax constants, requantization and zero points taken
from the ops)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler.backend.attention_graph import run_attention_on_chip
from compiler.backend.qattention import compile_qattention
from compiler.backend.run import ChipSimExecutor
from compiler.driver import compile_model
from compiler.ir import parse_module
from sim.network import ChipSim


def attention_onnx(m: int, n: int, d: int, dv: int) -> onnx.ModelProto:
    """Float graph: O = softmax(Q @ K^T) @ V (one head, K given as [n, d])."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[1, 0]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"]),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [
            helper.make_tensor_value_info("q", f, [m, d]),
            helper.make_tensor_value_info("k", f, [n, d]),
            helper.make_tensor_value_info("v", f, [n, dv]),
        ],
        [helper.make_tensor_value_info("o", f, [m, dv])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def head_inputs(rng, m, n, d, dv) -> dict[str, np.ndarray]:
    # shifted ranges: asymmetric activations, non-zero zero points everywhere
    return {
        "q": (rng.standard_normal((m, d)) * 0.8 + 0.3).astype(np.float32),
        "k": (rng.standard_normal((n, d)) * 0.7 - 0.2).astype(np.float32),
        "v": (rng.standard_normal((n, dv)) + 0.5).astype(np.float32),
    }


@pytest.mark.parametrize(
    "arch_name,seed,shape",
    [
        ("small", 11, (32, 32, 32, 32)),
        ("tiny", 12, (20, 24, 16, 24)),
        ("small-8x8mac", 13, (24, 40, 24, 16)),
        ("small-32k", 14, (16, 20, 40, 8)),
    ],
)
def test_front_end_attention_head_is_bit_exact(archs, arch_name, seed, shape):
    print(f"seed={seed} arch={arch_name} shape={shape}")
    rng = np.random.default_rng(seed)
    calib = [head_inputs(rng, *shape) for _ in range(4)]
    module = compile_model(attention_onnx(*shape), until="quantized", calibration=calib).module
    names = [op.name for op in module.walk()]
    assert "qnt.softmax" in names and names.count("qnt.matmul") == 2
    x = head_inputs(rng, *shape)
    results = run_attention_on_chip(
        module, [x["q"], x["k"], x["v"]], archs[arch_name], ChipSimExecutor(ChipSim)
    )
    assert len(results) == 1
    r = results[0]
    assert r["reference_matches"] and r["bit_exact"], r["plan"]
    zps = r["plan"]["zero_points"]
    assert sum(1 for z in zps.values() if z) >= 2  # the zero-point terms are exercised
    ck = r["compiled"]
    assert np.unique(ck.expected["O"]).size > 20  # not a saturated, constant output
    assert ck.plan["pes"] == len(ck.images) > 1


def _qnt_head(m, n, d, dv, zq, zk, zv, s_bits, consts) -> str:
    sh = (1 << (s_bits - 1)) - 1
    qt = f"tensor<{m}x{d}xi8, #qnt.q<0.03, {zq}>>"
    ktt = f"tensor<{d}x{n}xi8, #qnt.q<0.03, {zk}>>"
    vt = f"tensor<{n}x{dv}xi8, #qnt.q<0.05, {zv}>>"
    st = f"tensor<{m}x{n}xi{s_bits}, #qnt.q<0.02, {min(9, sh)}>>"
    pt = f"tensor<{m}x{n}xi8, #qnt.q<0.00390625, -128>>"
    ot = f"tensor<{m}x{dv}xi8, #qnt.q<0.04, -6>>"
    vec = lambda c: f"tensor<{c}xi32>"  # noqa: E731
    dense = lambda v, c: f"graph.constant {{value = dense<{v}> : {vec(c)}}} : {vec(c)}"  # noqa: E731
    attrs = ", ".join(f"{k} = {v} : i64" for k, v in consts.items())
    lines = [
        f"%bs = {dense(0, n)}",
        f"%ms = {dense(1518500250, 1)}",
        f"%ss = {dense(41 if s_bits == 8 else 34, 1)}",
        f"%bo = {dense(-700, dv)}",
        f"%mo = {dense(1288490189, 1)}",
        f"%so = {dense(38, 1)}",
        f"%s = qnt.matmul %q, %kt, %bs, %ms, %ss : "
        f"({qt}, {ktt}, {vec(n)}, {vec(1)}, {vec(1)}) -> {st}",
        f"%p = qnt.softmax %s {{axis = 1 : i64, {attrs}}} : ({st}) -> {pt}",
        f"%o = qnt.matmul %p, %v, %bo, %mo, %so : "
        f"({pt}, {vt}, {vec(dv)}, {vec(1)}, {vec(1)}) -> {ot}",
        f"func.return %o : {ot}",
    ]
    return (
        f"func.func @main(%q: {qt}, %kt: {ktt}, %v: {vt}) -> {ot} {{\n  "
        + "\n  ".join(lines)
        + "\n}"
    )


@pytest.mark.parametrize(
    "zps,s_bits",
    [((0, 0, 0), 16), ((-128, 127, -128), 16), ((17, -40, 3), 8)],
)
def test_qnt_ops_head_with_extreme_zero_points(archs, zps, s_bits):
    from compiler import qmath

    m, n, d, dv = 12, 20, 24, 16
    consts = qmath.softmax_constants(0.02, s_bits, 8)
    module = parse_module(_qnt_head(m, n, d, dv, *zps, s_bits, consts))
    rng = np.random.default_rng(21)
    print(f"seed=21 zps={zps} s_bits={s_bits}")
    args = [rng.integers(-128, 128, s).astype(np.int8) for s in ((m, d), (d, n), (n, dv))]
    (r,) = run_attention_on_chip(module, args, archs["tiny"], ChipSimExecutor(ChipSim))
    assert r["reference_matches"] and r["bit_exact"], r["plan"]


def test_per_channel_multiplier_is_rejected(archs):
    from compiler import qmath
    from compiler.errors import UnsupportedError

    text = _qnt_head(4, 16, 16, 16, 1, 2, 3, 16, qmath.softmax_constants(0.02, 16, 8))
    per_channel = ", ".join(str(1288490189 + c) for c in range(16))
    text = text.replace(
        "%mo = graph.constant {value = dense<1288490189> : tensor<1xi32>} : tensor<1xi32>",
        f"%mo = graph.constant {{value = dense<[{per_channel}]> : tensor<16xi32>}} "
        ": tensor<16xi32>",
    ).replace(
        "tensor<16xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<4x16xi8, #qnt.q<0.04",
        "tensor<16xi32>, tensor<16xi32>, tensor<1xi32>) -> tensor<4x16xi8, #qnt.q<0.04",
    )
    module = parse_module(text)
    args = [np.zeros(s, np.int8) for s in ((4, 16), (16, 16), (16, 16))]
    with pytest.raises(UnsupportedError, match="per-channel multiplier"):
        run_attention_on_chip(module, args, archs["tiny"], ChipSimExecutor(ChipSim))


def test_head_of_128_queries_on_16_pes(archs):
    from compiler import qmath

    rng = np.random.default_rng(5)
    k = qmath.softmax_constants(0.02, 16, 8)
    t = {
        "q": rng.integers(-128, 128, (128, 64)).astype(np.int8),
        "kt": rng.integers(-128, 128, (64, 128)).astype(np.int8),
        "v": rng.integers(-128, 128, (128, 64)).astype(np.int8),
        "zq": 3, "zk": -4, "zv": 5, "zp": -128, "preq": None,
        "s_bias": np.zeros(128), "s_mult": 1518500250, "s_shift": 37,
        "s_out": (0, -32768, 32767), "s_bits": 16,
        "consts": [k[x] for x in ("ln2", "b", "c", "inv_mult", "inv_shift", "recip_k")] + [8],
        "o_bias": np.zeros(64), "o_mult": 1288490189, "o_shift": 40, "o_out": (0, -128, 127),
    }  # fmt: skip
    ck = compile_qattention(archs["small"], t)
    print(f"compile_s={ck.compile_s:.2f}")  # target 5 s (issue 5); generous bound here
    assert ck.compile_s < 20 and ck.plan["grid"] == [4, 4]


def test_random_heads(archs, run_isa):
    """Random shapes, zero points and 8-/16-bit probabilities on every test arch."""
    from compiler.backend.qattention import qattention_inputs

    seed = 99
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    names = sorted(a for a in archs if archs[a].mac_cols % archs[a].mac_rows == 0)
    for it in range(8):
        name = names[it % len(names)]
        m, n, d, dv = (int(x) for x in rng.integers(1, 70, 4))
        t = qattention_inputs(m, n, d, dv, it)
        t["zq"], t["zk"], t["zv"] = (int(x) for x in rng.integers(-128, 128, 3))
        if it % 2:  # 16-bit softmax and its requantization to int8, fused
            t["consts"][6] = 16
            t["preq"] = [1518500250, 46, int(rng.integers(-128, 128)), -128, 127]
            t["zp"] = t["preq"][2]
        print(name, (m, n, d, dv), t["zq"], t["zk"], t["zv"], t["zp"])
        ck = compile_qattention(archs[name], t)
        assert run_isa(ck)["bit_exact"], (name, m, n, d, dv)
