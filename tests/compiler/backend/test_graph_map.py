"""Whole-graph mapping: a quantized module compiled into one program set runs on the
chip reference simulator (ChipSim), and every chip tensor - not only the outputs -
equals the front end's interpreter bit for bit.  Test models of the front-end issue
(the CNN, the 2-layer BERT-like encoder) and one module per op kind."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from compiler import qmath
from compiler.backend.graph_map import compile_graph, run_whole_graph
from compiler.backend.run import ChipSimExecutor
from compiler.errors import UnsupportedError
from compiler.ir import parse_module
from sim.network import ChipSim

SEED = 1234
NP = {"i8": np.int8, "i16": np.int16, "i32": np.int32}


def run(archs, arch: str, module, inputs, max_pes: int | None = None) -> dict:
    r = run_whole_graph(module, inputs, archs[arch], ChipSimExecutor(ChipSim), max_pes)
    print(f"{arch}: cycles={r['cycles']} pes={r['pes']} imem={r['imem_words_max']}")
    assert r["bit_exact"], r["mismatched"]
    ck = r["run"].ck
    for c, image in ck.images.items():  # no op's scratch reaches the loaded static data
        assert ck.mapped.sram_peak[c] <= min(a for a, _ in image.sram), c
    return r


def q(typ: str, shape, scale: float, zp: int) -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{typ}, #qnt.q<{scale!r}, {zp}>>"


def const(name: str, v: np.ndarray, typ: str) -> str:
    t = f"tensor<{'x'.join(map(str, v.shape))}x{typ}>" if v.ndim else f"tensor<{typ}>"
    return f"  %{name} = graph.constant {{value = dense<{v.tolist()}> : {t}}} : {t}"


def module(args: list[tuple[str, str]], body: list[str], out: str) -> object:
    sig = ", ".join(f"%{n}: {t}" for n, t in args)
    text = f"func.func @main({sig}) -> {out} {{\n" + "\n".join(body)
    return parse_module(text + f"\n  func.return %y : {out}\n}}")


def rand(rng, typ: str, shape) -> np.ndarray:
    info = np.iinfo(NP[typ])
    return rng.integers(info.min, info.max + 1, shape).astype(NP[typ])


# ---- the front end's test models ------------------------------------------------------


def _cnn(batch: int, size: int):
    from compiler.driver import compile_model
    from compiler.models.cnn import build_cnn

    rng = np.random.default_rng(SEED)
    shape = (batch, 3, size, size)
    calib = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
    qm = compile_model(
        build_cnn(SEED, batch=batch, size=size), "small", "quantized", calibration=calib
    )
    return qm.module, [rng.standard_normal(shape).astype(np.float32)]


@pytest.mark.parametrize("arch", ["small", "tiny", "small-8x8mac"])
def test_cnn_whole_graph_is_bit_exact(archs, arch):
    print(f"seed={SEED}")
    mod, x = _cnn(2, 16)
    r = run(archs, arch, mod, x)
    ops = [o["op"] for o in r["run"].plan.ops]
    assert ops.count("qnt.conv") == 2 and "graph.max_pool" in ops and "qnt.mean" in ops
    assert r["run"].plan.host_ops.count("qnt.quantize") == 1
    assert r["outputs"]["logits"].shape == (2, 10)


def test_cnn_on_two_pes_with_32k_sram(archs):
    """Few PEs, small SRAM: chunks split to fit, and the descriptors that accumulate at
    the top of SRAM stay clear of every op's scratch."""
    print(f"seed={SEED}")
    mod, x = _cnn(2, 16)
    r = run(archs, "small-32k", mod, x, max_pes=2)
    assert r["pes"] == 2


def test_cnn_comparison_can_fail(archs):
    """Negative control: a corrupted input byte in DRAM changes the chip's tensors."""
    mod, x = _cnn(1, 8)
    gr = compile_graph(mod, x, archs["small"])
    first = min(gr.ck.images, key=lambda c: (c[1], c[0]))
    xin = next(t for t in gr.plan.tensors.values() if t.data is not None)
    segs = gr.ck.images[first].dram
    i = next(i for i, (off, _) in enumerate(segs) if off == xin.offset)
    segs[i] = (segs[i][0], bytes((b + 7) % 256 for b in segs[i][1]))
    res = ChipSimExecutor(ChipSim).run(gr.ck)
    assert not np.array_equal(res.outputs["logits"], gr.expected["logits"])


@functools.cache
def _bert(options: str = ""):
    from compiler.driver import compile_model
    from compiler.models.bert import BertConfig, build_bert, random_bert_weights

    cfg = BertConfig(hidden=64, heads=4, intermediate=128, layers=2, vocab=100, max_positions=32)
    b, seq = 2, 8
    rng = np.random.default_rng(SEED)

    def feeds():
        mask = np.ones((b, seq), np.int64)
        mask[1, seq - 3 :] = 0
        return {"input_ids": rng.integers(0, cfg.vocab, (b, seq)), "attention_mask": mask}

    model = build_bert(random_bert_weights(cfg, SEED), cfg, b, seq)
    calib = [feeds() for _ in range(4)]
    qm = compile_model(model, "small", "quantized", calibration=calib, quant_options=options)
    return qm.module, feeds()


@pytest.mark.parametrize("arch", ["small", "small-8x8mac", "small-32k"])
def test_bert_block_whole_graph_is_bit_exact(archs, arch):
    """The 2-layer encoder of the front end's tests; also with an 8 x 8 MAC array and
    with 32 KiB of SRAM per PE (the mapping adapts: tiles, channel blocks, chunks)."""
    print(f"seed={SEED}")
    mod, feeds = _bert()
    r = run(archs, arch, mod, feeds)
    ops = {o["op"] for o in r["run"].plan.ops}
    for kind in ("qnt.softmax", "qnt.layer_norm", "qnt.gelu", "graph.where", "qnt.mul"):
        assert kind in ops
    assert sorted(set(r["run"].plan.host_ops) - {"graph.constant", "graph.weight"}) == [
        "graph.cast",
        "graph.gather",
        "graph.reshape",
        "qnt.dequantize",
    ]
    assert r["pes"] == 16


@pytest.mark.extended
def test_minilm_whole_graph_is_bit_exact(archs):
    """all-MiniLM-L6-v2 (6 layers, real weights), batch 1, 16 tokens: 135 ops on 16
    PEs.  Its programs need about 9.5 K instruction words on the busiest PE, so the
    arch is `small` with a 16 K-word instruction memory (small has 1 K)."""
    from compiler.driver import compile_model
    from compiler.models.minilm import build_minilm, calibration_batch

    feeds = calibration_batch(1, 16)
    qm = compile_model(build_minilm(1, 16), "small", "quantized", calibration=[feeds])
    arch = archs["small"].replace(name="small-imem16k", imem_words=16384)
    r = run_whole_graph(qm.module, feeds, arch, ChipSimExecutor(ChipSim, 10**8))
    print(f"cycles={r['cycles']} imem={r['imem_words_max']} ops={r['ops']}")
    assert r["bit_exact"], r["mismatched"]
    assert r["ops"] > 120 and r["imem_words_max"] > archs["small"].imem_words


def test_bert_block_with_smoothing_is_bit_exact(archs):
    """SmoothQuant-style qnt.rescale (per-channel requantization on the last axis)."""
    print(f"seed={SEED}")
    mod, feeds = _bert("smooth=true")
    r = run(archs, "small", mod, feeds)
    assert "qnt.rescale" in {o["op"] for o in r["run"].plan.ops}


def test_bert_block_with_int16_mac_inputs_is_bit_exact(archs):
    """mac-input-bits=16: int16 activations times int8 weights (and int16 scores times
    int8 keys/values), each as two int8 MATMULs of the activation's halves."""
    print(f"seed={SEED}")
    mod, feeds = _bert("mac-input-bits=16")
    r = run(archs, "small", mod, feeds)
    assert r["ops"] < 40  # no requantize to int8 before the matmuls


# ---- one module per op kind -----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_elementwise_ops(archs, seed):
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    shp = [3, 5, 24]
    ta, tb = q("i16", shp, 0.01, int(rng.integers(-300, 300))), q("i8", [24], 0.05, -3)
    tc, th = q("i16", shp, 0.02, 7), q("i8", shp, 0.1, int(rng.integers(-20, 20)))
    tg, tm = q("i16", shp, 0.03, -9), q("i8", shp, 0.2, 4)
    tw = q("i16", shp, 0.03, -9)
    mult, shift = qmath.quantize_multiplier(0.37)
    g_shift, g = qmath.gelu_shift(0.02, 16, 7)
    gm, gs = qmath.quantize_multiplier(g["out_scale"] / 0.03)
    body = [
        const("b", rand(rng, "i8", (24,)), "i8").replace("tensor<24xi8>", tb),
        f"  %s = qnt.add %a, %b {{lhs_mult = 9000 : i64, rhs_mult = -7000 : i64, "
        f"shift = 14 : i64}} : ({ta}, {tb}) -> {tc}",
        f"  %h = qnt.requantize %s {{multiplier = {mult} : i64, shift = {shift + 3} : i64}} "
        f": ({tc}) -> {th}",
        f"  %g = qnt.gelu %s {{b = {g['b']} : i64, c = {g['c']} : i64, multiplier = {gm} : "
        f"i64, shift = {gs} : i64, in_shift = {g_shift} : i64}} : ({tc}) -> {tg}",
        f"  %m = qnt.mul %h, %h {{multiplier = {mult} : i64, shift = {shift + 6} : i64}} "
        f": ({th}, {th}) -> {tm}",
        f"  %w = graph.where %c, %g, %g2 : (tensor<5x24xi1>, {tg}, {tg}) -> {tw}",
        f"  %y = qnt.add %w, %m {{lhs_mult = 3000 : i64, rhs_mult = 5000 : i64, "
        f"shift = 13 : i64}} : ({tw}, {tm}) -> {tm}",
    ]
    body.insert(
        4,
        "  %g2 = qnt.requantize %g {multiplier = 1073741824 : i64, shift = 31 : i64}"
        f" : ({tg}) -> {tg}",
    )
    mod = module([("a", ta), ("c", "tensor<5x24xi1>")], body, tm)
    a = rand(rng, "i16", shp)
    c = rng.integers(0, 2, (5, 24)).astype(bool)
    run(archs, "small", mod, [a, c])


@pytest.mark.parametrize(("seed", "n", "tin"), [(1, 8, "i16"), (2, 40, "i8"), (3, 64, "i16")])
def test_row_ops(archs, seed, n, tin):
    """softmax, layer_norm and mean over rows whose length is not a multiple of 16
    (padded lanes masked) and is."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    rows = [2, 3]
    ti = q(tin, [*rows, n], 0.002 if tin == "i16" else 0.05, 5)
    bits = 8
    sc = qmath.softmax_constants(0.002 if tin == "i16" else 0.05, int(tin[1:]), bits)
    tp = q("i8", [*rows, n], 2.0**-bits, -(2 ** (bits - 1)))
    attrs = ", ".join(f"{k} = {v} : i64" for k, v in {"axis": -1, **sc}.items())
    k = qmath.layernorm_constants(n, int(tin[1:]), 3.0)
    lm, ls = qmath.quantize_multiplier(1 / 4096 / 13000 * 40)
    ln_attrs = ", ".join(
        f"{key} = {v} : i64" for key, v in {"multiplier": lm, "shift": ls, "eps": 0, **k}.items()
    )
    tl = q("i8", [*rows, n], 0.02, 3)
    mm, ms = qmath.quantize_multiplier(1.0 / n)
    tmean = q("i16", [*rows, 1], 0.01, -2)
    body = [
        const("gm", rng.integers(-13000, 13000, n), "i16"),
        const("bt", rng.integers(-(10**6), 10**6, n), "i32"),
        f"  %p = qnt.softmax %x {{{attrs}}} : ({ti}) -> {tp}",
        f"  %l = qnt.layer_norm %x, %gm, %bt {{{ln_attrs}}} : ({ti}, tensor<{n}xi16>, "
        f"tensor<{n}xi32>) -> {tl}",
        f"  %s = qnt.add %p, %l {{lhs_mult = 3000 : i64, rhs_mult = 5000 : i64, "
        f"shift = 13 : i64}} : ({tp}, {tl}) -> {tl}",
        f"  %y = qnt.mean %s {{axes = array<i64: 2>, keepdims = 1 : i64, multiplier = {mm} "
        f": i64, shift = {ms} : i64}} : ({tl}) -> {tmean}",
    ]
    mod = module([("x", ti)], body, tmean)
    x = rand(rng, tin, (*rows, n))
    if tin == "i16":
        x = (x // 8).astype(np.int16)
    run(archs, "small", mod, [x])


@pytest.mark.parametrize(
    ("seed", "arch", "bits"),
    [(1, "small", 8), (2, "tiny", 8), (3, "small-8x8mac", 8), (4, "small", 16), (5, "tiny", 16)],
)
def test_matmul_ops(archs, seed, arch, bits):
    """Constant-weight matmul (i8 ReLU and i16 results, per-channel and per-tensor
    requantization), then a batched product of two chip tensors with zero points;
    ``bits`` = 16: int16 activations (lhs) as two int8 halves."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    k, n = 40, 24
    tx, th = q(f"i{bits}", [2, 5, k], 0.05, 3 * bits), q("i8", [2, 5, n], 0.1, -20)
    tt, tq = q("i16", [2, 5, n], 0.01, 40), q(f"i{bits}", [2, 5, n], 0.05, 9 * bits)
    tht, ty = q("i8", [2, n, 5], 0.1, -20), q("i16", [2, 5, 5], 0.3, 11)
    vec = f"tensor<{n}xi32>"
    pairs = [qmath.quantize_multiplier(float(v)) for v in rng.uniform(2e-4, 2e-3, n)]
    body = [
        const("w1", rng.integers(-100, 100, (k, n)), "i8"),
        const("b1", rng.integers(-3000, 3000, n), "i32"),
        const("m1", np.array([p[0] for p in pairs]), "i32"),
        const("s1", np.array([p[1] for p in pairs]), "i32"),
        const("w2", rng.integers(-100, 100, (k, n)), "i8"),
        const("m2", np.array([1500000000]), "i32"),
        const("s2", np.array([33]), "i32"),
        const("b3", rng.integers(-300, 300, 5), "i32"),
        const("m3", np.array([1200000000]), "i32"),
        const("s3", np.array([36]), "i32"),
        f'  %h = qnt.matmul %x, %w1, %b1, %m1, %s1 {{act = "relu"}} : '
        f"({tx}, tensor<{k}x{n}xi8>, {vec}, {vec}, {vec}) -> {th}",
        f'  %t = qnt.matmul %x, %w2, %b1, %m2, %s2 {{act = "none"}} : '
        f"({tx}, tensor<{k}x{n}xi8>, {vec}, tensor<1xi32>, tensor<1xi32>) -> {tt}",
        f"  %tq = qnt.requantize %t {{multiplier = 1500000000 : i64, shift = 36 : i64}} : "
        f"({tt}) -> {tq}",
        f"  %ht = graph.transpose %h {{perm = array<i64: 0, 2, 1>}} : ({th}) -> {tht}",
        f'  %y = qnt.matmul %tq, %ht, %b3, %m3, %s3 {{act = "none"}} : '
        f"({tq}, {tht}, tensor<5xi32>, tensor<1xi32>, tensor<1xi32>) -> {ty}",
    ]
    mod = module([("x", tx)], body, ty)
    run(archs, arch, mod, [rand(rng, f"i{bits}", (2, 5, k))])


@pytest.mark.parametrize(("seed", "stride", "pads"), [(1, 1, [1, 1, 1, 1]), (2, 2, [0, 1, 2, 0])])
def test_conv_and_layout_ops(archs, seed, stride, pads):
    """transpose (NCHW -> NHWC), pad, conv (im2col gather), max_pool, slice."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    ci, co, h = 5, 12, 9
    tx = q("i8", [2, ci, h, h], 0.05, -7)
    tn = q("i8", [2, h, h, ci], 0.05, -7)
    oh = (h + pads[0] + pads[2] - 3) // stride + 1
    ow = (h + pads[1] + pads[3] - 3) // stride + 1
    tc = q("i8", [2, oh, ow, co], 0.1, -128)
    ph, pw = (oh - 2) // 2 + 1, (ow - 2) // 2 + 1
    pairs = [qmath.quantize_multiplier(float(v)) for v in rng.uniform(5e-4, 3e-3, co)]
    body = [
        const("w", rng.integers(-100, 100, (3, 3, ci, co)), "i8"),
        const("b", rng.integers(-3000, 3000, co), "i32"),
        const("m", np.array([p[0] for p in pairs]), "i32"),
        const("s", np.array([p[1] for p in pairs]), "i32"),
        f"  %n = graph.transpose %x {{perm = array<i64: 0, 2, 3, 1>}} : ({tx}) -> {tn}",
        f"  %c = qnt.conv %n, %w, %b, %m, %s {{strides = array<i64: {stride}, {stride}>, pads = "
        f"array<i64: {', '.join(map(str, pads))}>, dilations = array<i64: 1, 1>, group = 1 : i64,"
        f' act = "relu", layout = "nhwc"}} : ({tn}, tensor<3x3x{ci}x{co}xi8>, tensor<{co}xi32>, '
        f"tensor<{co}xi32>, tensor<{co}xi32>) -> {tc}",
        f"  %ct = graph.transpose %c {{perm = array<i64: 0, 3, 1, 2>}} : ({tc}) -> "
        f"{q('i8', [2, co, oh, ow], 0.1, -128)}",
        f"  %p = graph.max_pool %ct {{kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, "
        f"pads = array<i64: 0, 0, 0, 0>, ceil_mode = 0 : i64}} : "
        f"({q('i8', [2, co, oh, ow], 0.1, -128)}) -> {q('i8', [2, co, ph, pw], 0.1, -128)}",
        f"  %pp = graph.pad %p {{low = array<i64: 0, 1, 0, 0>, high = array<i64: 1, 0, 0, 2>}} : "
        f"({q('i8', [2, co, ph, pw], 0.1, -128)}) -> {q('i8', [3, co + 1, ph, pw + 2], 0.1, -128)}",
        f"  %y = graph.slice %pp {{starts = array<i64: 1, 0, 0, 1>, ends = array<i64: 3, 7, 1, 4>, "
        f"steps = array<i64: 1, 2, 1, 1>}} : ({q('i8', [3, co + 1, ph, pw + 2], 0.1, -128)}) -> "
        f"{q('i8', [2, 4, 1, 3], 0.1, -128)}",
    ]
    mod = module([("x", tx)], body, q("i8", [2, 4, 1, 3], 0.1, -128))
    run(archs, "small", mod, [rand(rng, "i8", (2, ci, h, h))])


@pytest.mark.parametrize("seed", [1, 2])
def test_lut_and_clamp(archs, seed):
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    t, tl = q("i8", [3, 20], 0.05, 3), q("i8", [3, 20], 0.01, -2)
    body = [
        const("t", rand(rng, "i8", (256,)), "i8"),
        f"  %l = qnt.lut %x, %t : ({t}, tensor<256xi8>) -> {tl}",
        f"  %y = tosa.clamp %l {{min_val = -20 : i8, max_val = 90 : i8}} : ({tl}) -> {tl}",
    ]
    run(archs, "small", module([("x", t)], body, tl), [rand(rng, "i8", (3, 20))])


def test_unsupported_op_is_named(archs):
    t, t2 = q("i8", [4, 16], 0.05, 3), q("i8", [8, 16], 0.05, 3)
    body = [f"  %y = graph.concat %x, %x {{axis = 0 : i64}} : ({t}, {t}) -> {t2}"]
    mod = module([("x", t)], body, t2)
    with pytest.raises(UnsupportedError, match=r"op #0 \(graph.concat\)"):
        compile_graph(mod, [np.zeros((4, 16), np.int8)], archs["small"])
    ti = q("i8", [4, 16], 0.05, 3)
    sm = qmath.softmax_constants(0.05, 8, 8)
    attrs = ", ".join(f"{k} = {v} : i64" for k, v in {"axis": 0, **sm}.items())
    mod = module(
        [("x", ti)],
        [f"  %y = qnt.softmax %x {{{attrs}}} : ({ti}) -> {q('i8', [4, 16], 2.0**-8, -128)}"],
        q("i8", [4, 16], 2.0**-8, -128),
    )
    with pytest.raises(UnsupportedError, match=r"qnt.softmax\): softmax over axis 0"):
        compile_graph(mod, [np.zeros((4, 16), np.int8)], archs["small"])


def test_static_check_passes_and_finds_a_removed_signal(archs):
    """The back end's deadlock check runs on the whole-graph program set (pe_isa IR);
    with one SIGNAL replaced by a NOP it names the PE and semaphore left waiting."""
    from compiler.backend.deadlock import DeadlockError
    from compiler.backend.graph_isa import check_graph
    from hw.isa import Op, decode, encode

    mod, x = _cnn(1, 8)
    gr = compile_graph(mod, x, archs["small"])
    assert check_graph(gr.ck)["pes"] == len(gr.ck.images)
    im = gr.ck.images[(1, 0)]
    i = max(k for k, w in enumerate(im.imem) if decode(w).op == Op.SIGNAL)
    im.imem[i] = encode(Op.NOP)
    with pytest.raises(DeadlockError, match=r"waits on semaphore \d+ for count 1"):
        check_graph(gr.ck)


def test_cli_compile_programs_and_run(tmp_path, monkeypatch, capsys):
    """`myelin compile --programs` writes a program directory that `myelin run --on isa`
    runs bit-exact; without --calibration it is a one-line error."""
    import json

    import onnx

    import myelin.cli as cli
    from compiler.models.cnn import build_cnn

    rng = np.random.default_rng(SEED)
    onnx.save(build_cnn(SEED, batch=1, size=8), tmp_path / "cnn.onnx")
    np.savez(tmp_path / "c.npz", x=rng.standard_normal((4, 1, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    args = ["compile", str(tmp_path / "cnn.onnx"), "--programs", "-o", str(out)]
    assert cli.main([*args, "--calibration", str(tmp_path / "c.npz")]) == 0
    assert (out / "program.json").is_file() and (out / "schedule.txt").is_file()
    assert "qnt.conv" in (out / "schedule.txt").read_text()
    capsys.readouterr()
    assert cli.main(["run", str(out), "--on", "isa", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["bit_exact"] is True and row["pes"] >= 4
    assert cli.main(args) == 2
    assert "--programs needs --calibration" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["small", "tiny"])
def test_cnn_on_the_timed_performance_model(archs, arch):
    """The same program set on sim.perf.PerfSim (DMA latency, NoC and DRAM timing, so
    PEs interleave differently than in ChipSim): still bit-exact - the semaphores, not
    the simulator's schedule, order producers and consumers."""
    from sim.perf import PerfSim

    mod, x = _cnn(2, 16)
    ck = compile_graph(mod, x, archs[arch]).ck
    ps = PerfSim(archs[arch], dram_bytes=max(t.offset + t.nbytes for t in ck.mapped.dram.values()))
    for c, image in ck.images.items():
        ps.load(c, image)
    res = ps.run(10**8)
    dram = ps.chips[(0, 0)][0].dram(0)
    raw = {n: dram.dump(t.offset, t.nbytes) for n, t in ck.mapped.dram.items() if t.data is None}
    print(f"{arch}: perf-model cycles={res.cycles}")
    for name, fn in ck.mapped.outputs.items():
        assert np.array_equal(fn(raw), ck.expected[name]), name
    assert res.cycles > 0


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"imem_words": 64}, "ImageError", r"image 'graph_pe_\d_\d': program of \d+ instructions"),
        ({"dram_bytes": 4096}, "CompileError", r"tensor \S+: DRAM full: \d+ bytes needed"),
    ],
)
def test_model_too_big_is_an_error_naming_the_limit(archs, changes, error, match):
    from hw.errors import MyelinError

    mod, x = _cnn(1, 8)
    arch = archs["small"].replace(name="small-limited", **changes)
    with pytest.raises(MyelinError, match=match) as info:
        compile_graph(mod, x, arch)
    assert type(info.value).__name__ == error


def test_folded_layout_chain_feeding_the_output(archs):
    """transpose -> reshape -> (output): the folded transpose is materialized by the
    reshape (a gather), not aliased; transpose -> requantize uses the composed map."""
    rng = np.random.default_rng(5)
    t, tt = q("i8", [2, 3, 16], 0.05, 3), q("i8", [2, 16, 3], 0.05, 3)
    body = [
        f"  %a = graph.transpose %x {{perm = array<i64: 0, 2, 1>}} : ({t}) -> {tt}",
        f"  %b = qnt.requantize %a {{multiplier = 1500000000 : i64, shift = 31 : i64}} : "
        f"({tt}) -> {tt}",
        f"  %c = graph.transpose %b {{perm = array<i64: 0, 2, 1>}} : ({tt}) -> {t}",
        f"  %y = graph.reshape %c : ({t}) -> {q('i8', [2, 48], 0.05, 3)}",
    ]
    mod = module([("x", t)], body, q("i8", [2, 48], 0.05, 3))
    r = run(archs, "small", mod, [rand(rng, "i8", (2, 3, 16))])
    plan = r["run"].plan
    assert plan.folded == [0, 2] and [o["op"] for o in plan.ops if not o.get("alias")] == [
        "qnt.requantize",
        "graph.reshape",
    ]


@pytest.mark.extended
def test_cnn_whole_graph_on_rtl(archs):
    """The CNN program set on the RTL chip (cocotb + Verilator, tiny: 4 PEs), through
    the RTL executor of compiler/backend/run.py: bit-exact, cycles measured."""
    from myelin.cmd_backend import executor_for

    mod, x = _cnn(1, 8)
    gr = compile_graph(mod, x, archs["tiny"])
    res = executor_for("rtl", job="test-graph-cnn").run(gr.ck)
    print(f"rtl cycles={res.cycles}")
    for name in gr.plan.outputs:
        assert np.array_equal(res.outputs[name], gr.expected[name]), name
    assert res.cycles > 0


@pytest.mark.extended
def test_bert_block_whole_graph_on_small_rtl(archs):
    """The 2-layer BERT-like encoder's program set on the 16-PE small RTL chip: the
    logits bit-exact with the interpreter, and the measured cycles within 10 % of the
    performance model's (about 570,000 cycles, a few minutes of Verilator)."""
    from myelin.cmd_backend import executor_for
    from sim.perf import PerfSim

    print(f"seed={SEED}")
    mod, feeds = _bert()
    gr = compile_graph(mod, feeds, archs["small"])
    res = executor_for("rtl", job="test-graph-bert").run(gr.ck)
    for name in gr.plan.outputs:
        assert np.array_equal(res.outputs[name], gr.expected[name]), name
    ck = gr.ck
    sim = PerfSim(
        archs["small"], dram_bytes=max(t.offset + t.nbytes for t in ck.mapped.dram.values())
    )
    for c, image in ck.images.items():
        sim.load(c, image)
    model = sim.run(10**8).cycles
    print(f"rtl cycles={res.cycles} perf-model cycles={model}")
    assert abs(res.cycles - model) <= 0.1 * res.cycles
