"""The quantized interpreter is a composition of PE operations: for each integer-only
``qnt`` op, the interpreter's result on random data equals the result of the PE
instruction sequence documented in docs/compiler.md ("Integer semantics = PE
operations"), assembled with hw/asm.py and run on the reference ISA simulator."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import qmath
from compiler.interpreter import run
from compiler.ir import parse_module
from hw.arch import preset
from hw.asm import assemble
from hw.image import ProgramImage
from hw.isa import qparam_layout
from sim.pe_sim import PeSim

ARCH = preset("tiny")
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
NP = {"i8": np.int8, "i16": np.int16, "i32": np.int32}
SEEDS = [1, 2, 3]


class PeProgram:
    """A straight-line PE program over SRAM buffers (x1 = A, x2 = B, x3 = D)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.segments: list[tuple[int, bytes]] = []
        self.top = 0

    def alloc(self, nbytes: int) -> int:
        addr = self.top
        self.top += -(-max(nbytes, 16) // 16) * 16
        assert self.top <= ARCH.sram_bytes
        return addr

    def data(self, values, typ: str) -> int:
        raw = np.asarray(values).astype(NP[typ]).tobytes()
        addr = self.alloc(len(raw))
        self.segments.append((addr, raw))
        return addr

    def vcfg(self, name: str, value: int | None = None, reg_from: int | None = None) -> None:
        """VCFG from an immediate, or from the int32 word at SRAM ``reg_from`` (via LW)."""
        if reg_from is None:
            self.lines.append(f"vcfg cfg={name}, rs1=x0, imm={int(value)}")
        else:
            self.lines += [f"li x4, {reg_from}", "lw x5, 0(x4)", f"vcfg cfg={name}, rs1=x5, imm=0"]

    def vop(
        self,
        fn: str,
        a: int,
        n: int,
        tin: str = "i32",
        tout: str = "i32",
        b: int | None = None,
        scalar: int | None = None,
        scalar_at: int | None = None,
    ) -> int:
        """One VOP into a new buffer; B is a buffer, an immediate scalar or the int32 word
        at ``scalar_at`` (LW).  Returns D's address."""
        reduce = fn in ("rsum", "rmax")
        d = self.alloc(16 if reduce else n * np.dtype(NP[tout]).itemsize)
        bscalar = int(scalar is not None or scalar_at is not None)
        self.lines += [f"li x1, {a}", f"li x3, {d}"]
        if scalar is not None:
            self.lines.append(f"li x2, {int(scalar)}")
        elif scalar_at is not None:
            self.lines += [f"li x4, {scalar_at}", "lw x2, 0(x4)"]
        else:
            self.lines.append(f"li x2, {a if b is None else b}")
        self.lines.append(
            f"vop rd=x3, rs1=x1, rs2=x2, n16={-(-n // 16)}, fn={fn}, tin={tin}, "
            f"tout={tout}, bscalar={bscalar}"
        )
        return d

    def req(
        self, a: int, n: int, mult, shift, zp, lo, hi, tout: str = "i32", mult_at: int | None = None
    ) -> int:
        if mult_at is None:
            self.vcfg("mult", mult)
        else:
            self.vcfg("mult", reg_from=mult_at)
        for name, v in (("shift", shift), ("zp", zp), ("lo", lo), ("hi", hi)):
            self.vcfg(name, v)
        return self.vop("req", a, n, tout=tout)

    def run(self) -> PeSim:
        image = ProgramImage(assemble("\n".join([*self.lines, "halt"])), sram=self.segments)
        pe = PeSim(ARCH)
        pe.load(image)
        res = pe.run(100_000)
        assert res.halted, (res.status, res.error_msg)
        return pe

    @staticmethod
    def read(pe: PeSim, addr: int, n: int, typ: str) -> np.ndarray:
        raw = pe.read_sram(addr, n * np.dtype(NP[typ]).itemsize)
        return np.frombuffer(raw, NP[typ]).astype(np.int64)


def q(typ: str, shape: list[int], scale: float, zp: int) -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{typ}, #qnt.q<{scale!r}, {zp}>>"


def interp(body: str, ins: str, out: str, args: list[np.ndarray]) -> np.ndarray:
    text = f"func.func @main({ins}) -> {out} {{\n{body}\n  func.return %y : {out}\n}}"
    return run(parse_module(text), args)[0].astype(np.int64)


def rand(rng, typ: str, shape) -> np.ndarray:
    info = np.iinfo(NP[typ])
    return rng.integers(info.min, info.max + 1, shape).astype(NP[typ])


@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_is_sub_req(seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, zin, zout = 32, int(rng.integers(-300, 300)), int(rng.integers(-20, 20))
    mult, shift = qmath.quantize_multiplier(float(rng.uniform(0.001, 0.5)))
    x = rand(rng, "i16", (n,))
    ti, to = q("i16", [n], 0.01, zin), q("i8", [n], 0.2, zout)
    body = (
        f"  %y = qnt.requantize %x {{multiplier = {mult} : i64, shift = {shift} : i64}} "
        f": ({ti}) -> {to}"
    )
    want = interp(body, f"%x: {ti}", to, [x])
    p = PeProgram()
    t = p.vop("sub", p.data(x, "i16"), n, tin="i16", scalar=zin)
    y = p.req(t, n, mult, shift, zout, -128, 127, tout="i8")
    assert np.array_equal(p.read(p.run(), y, n, "i8"), want)


@pytest.mark.parametrize("seed", SEEDS)
def test_add_is_sub_mul_add_req(seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, za, zb, zo = 32, int(rng.integers(-100, 100)), int(rng.integers(-100, 100)), 7
    lm, rm, sh = int(rng.integers(-9000, 9000)), int(rng.integers(-9000, 9000)), 13
    a, b = rand(rng, "i16", (n,)), rand(rng, "i16", (n,))
    ta, tb, to = q("i16", [n], 0.1, za), q("i16", [n], 0.1, zb), q("i16", [n], 0.1, zo)
    body = (
        f"  %y = qnt.add %a, %b {{lhs_mult = {lm} : i64, rhs_mult = {rm} : i64, "
        f"shift = {sh} : i64}} : ({ta}, {tb}) -> {to}"
    )
    want = interp(body, f"%a: {ta}, %b: {tb}", to, [a, b])
    p = PeProgram()
    ta_ = p.vop("mul", p.vop("sub", p.data(a, "i16"), n, tin="i16", scalar=za), n, scalar=lm)
    tb_ = p.vop("mul", p.vop("sub", p.data(b, "i16"), n, tin="i16", scalar=zb), n, scalar=rm)
    y = p.req(p.vop("add", ta_, n, b=tb_), n, 1, sh, zo, -(2**15), 2**15 - 1, tout="i16")
    assert np.array_equal(p.read(p.run(), y, n, "i16"), want)


@pytest.mark.parametrize("seed", SEEDS)
def test_mul_is_sub_sub_mul_req(seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, za, zb, zo = 32, int(rng.integers(-50, 50)), int(rng.integers(-50, 50)), -3
    mult, shift = qmath.quantize_multiplier(float(rng.uniform(1e-4, 1e-2)))
    a, b = rand(rng, "i8", (n,)), rand(rng, "i8", (n,))
    ta, tb, to = q("i8", [n], 0.1, za), q("i8", [n], 0.1, zb), q("i8", [n], 0.5, zo)
    body = (
        f"  %y = qnt.mul %a, %b {{multiplier = {mult} : i64, shift = {shift} : i64}} "
        f": ({ta}, {tb}) -> {to}"
    )
    want = interp(body, f"%a: {ta}, %b: {tb}", to, [a, b])
    p = PeProgram()
    sa = p.vop("sub", p.data(a, "i8"), n, tin="i8", scalar=za)
    sb = p.vop("sub", p.data(b, "i8"), n, tin="i8", scalar=zb)
    y = p.req(p.vop("mul", sa, n, b=sb), n, mult, shift, zo, -128, 127, tout="i8")
    assert np.array_equal(p.read(p.run(), y, n, "i8"), want)


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_is_sub_rsum_req(seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, zin, zo = 64, int(rng.integers(-20, 20)), 2
    mult, shift = qmath.quantize_multiplier(1.0 / n)
    x = rand(rng, "i8", (1, n))
    ti, to = q("i8", [1, n], 0.1, zin), q("i8", [1, 1], 0.1, zo)
    body = (
        f"  %y = qnt.mean %x {{axes = array<i64: 1>, keepdims = 1 : i64, "
        f"multiplier = {mult} : i64, shift = {shift} : i64}} : ({ti}) -> {to}"
    )
    want = interp(body, f"%x: {ti}", to, [x])
    p = PeProgram()
    s = p.vop("rsum", p.vop("sub", p.data(x, "i8"), n, tin="i8", scalar=zin), n)
    y = p.req(s, 16, mult, shift, zo, -128, 127, tout="i8")
    assert np.array_equal(p.read(p.run(), y, 1, "i8"), want.reshape(-1))


@pytest.mark.parametrize(
    ("seed", "tin", "tout", "scale"),
    [(1, "i8", "i8", 0.05), (2, "i16", "i16", 0.002), (3, "i16", "i8", 0.001)],
)
def test_softmax_row(seed: int, tin: str, tout: str, scale: float) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, bits = 64, int(tout[1:])
    c = qmath.softmax_constants(scale, int(tin[1:]), bits)
    x = rand(rng, tin, (1, n))
    if tin == "i16":
        x = (x // 8).astype(np.int16)  # logits spread over a few octaves of ln 2
    ti, to = q(tin, [1, n], scale, 5), q(tout, [1, n], 2.0**-bits, -(2 ** (bits - 1)))
    attrs = ", ".join(f"{k} = {v} : i64" for k, v in {"axis": -1, **c}.items())
    want = interp(f"  %y = qnt.softmax %x {{{attrs}}} : ({ti}) -> {to}", f"%x: {ti}", to, [x])
    p = PeProgram()
    xa = p.data(x, tin)
    m = p.vop("rmax", xa, n, tin=tin)
    d = p.vop("sub", xa, n, tin=tin, scalar_at=m)
    for name, key in (
        ("exp_qln2", "ln2"),
        ("exp_inv_mult", "inv_mult"),
        ("exp_inv_shift", "inv_shift"),
        ("exp_qb", "b"),
        ("exp_qc", "c"),
        ("recip_k", "recip_k"),
    ):
        p.vcfg(name, c[key])
    e = p.vop("exp", d, n)
    r = p.vop("recip", p.vop("rsum", e, n), 16)
    half = 1 << (bits - 1)
    y = p.req(e, n, None, c["recip_k"] - bits, -half, -half, half - 1, tout=tout, mult_at=r)
    got = p.read(p.run(), y, n, tout)
    assert np.array_equal(got, want.reshape(-1))
    assert abs((got + half).sum() / 2**bits - 1) < 0.02  # still a distribution


@pytest.mark.parametrize(("seed", "tin", "scale"), [(1, "i8", 0.05), (2, "i16", 0.0005)])
def test_gelu_row(seed: int, tin: str, scale: float) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, zin, zo = 64, int(rng.integers(-40, 40)), -10
    in_shift, c = qmath.gelu_shift(scale, int(tin[1:]), zin)
    mult, shift = qmath.quantize_multiplier(c["out_scale"] / 0.02)
    x = rand(rng, tin, (n,))
    ti, to = q(tin, [n], scale, zin), q("i8", [n], 0.02, zo)
    body = (
        f"  %y = qnt.gelu %x {{b = {c['b']} : i64, c = {c['c']} : i64, multiplier = {mult} "
        f": i64, shift = {shift} : i64, in_shift = {in_shift} : i64}} : ({ti}) -> {to}"
    )
    want = interp(body, f"%x: {ti}", to, [x])
    p = PeProgram()
    xs = p.vop("sra", p.vop("sub", p.data(x, tin), n, tin=tin, scalar=zin), n, scalar=in_shift)
    p.vcfg("erf_qb", -c["b"])
    p.vcfg("erf_qc", -c["c"])
    h = p.vop("sub", p.vop("erf", xs, n), n, scalar=c["c"])
    y = p.req(p.vop("mul", xs, n, b=h), n, -mult, shift, zo, -128, 127, tout="i8")
    assert np.array_equal(p.read(p.run(), y, n, "i8"), want)


@pytest.mark.parametrize(("seed", "spread"), [(1, 30.0), (2, 3000.0), (3, 20000.0)])
def test_layer_norm_row(seed: int, spread: float) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n, zin, zo = 32, int(rng.integers(-100, 100)), 3
    x = np.clip(np.rint(rng.standard_normal((1, n)) * spread), -32768, 32767).astype(np.int16)
    gamma = rng.integers(-13000, 13000, n)
    beta = rng.integers(-(10**6), 10**6, n)
    k = qmath.layernorm_constants(n, 16, float(rng.uniform(0, 50)))
    mult, shift = qmath.quantize_multiplier(1 / 4096 / 13000 * 40)
    ti, to = q("i16", [1, n], 0.01, zin), q("i8", [1, n], 0.02, zo)
    g, b = (
        f"graph.constant {{value = dense<{v.tolist()}> : tensor<{n}x{t}>}} : tensor<{n}x{t}>"
        for v, t in ((gamma, "i16"), (beta, "i32"))
    )
    attrs = ", ".join(
        f"{key} = {v} : i64"
        for key, v in {"multiplier": mult, "shift": shift, "eps": 0, **k}.items()
    )
    body = (
        f"  %g = {g}\n  %b = {b}\n  %y = qnt.layer_norm %x, %g, %b {{{attrs}}} : "
        f"({ti}, tensor<{n}xi16>, tensor<{n}xi32>) -> {to}"
    )
    want = interp(body, f"%x: {ti}", to, [x])
    p = PeProgram()
    xc = p.vop("sub", p.data(x, "i16"), n, tin="i16", scalar=zin)
    mean = p.req(p.vop("rsum", xc, n), 16, k["mean_mult"], k["mean_shift"], 0, I32_MIN, I32_MAX)
    c = p.vop("sub", xc, n, scalar_at=mean)
    vf = p.vop("rsum", p.vop("mul", c, n, b=c), n)
    c2 = p.vop("sra", c, n, scalar=k["var_shift"])
    vc = p.vop("rsum", p.vop("mul", c2, n, b=c2), n)
    sf = p.vop("sqrt", p.req(vf, 16, k["var_mult"], k["var_rshift"], k["eps_fine"], 1, I32_MAX), 16)
    sc = p.vop(
        "sqrt", p.req(vc, 16, k["var_mult"], k["var_rshift"], k["eps_coarse"], 1, I32_MAX), 16
    )
    sc = p.vop("shl", sc, 16, scalar=k["var_shift"])
    flag = p.vop("max", p.vop("sub", vf, 16, scalar=I32_MAX - 1), 16, scalar=0)
    std = p.vop("add", sf, 16, b=p.vop("mul", p.vop("sub", sc, 16, b=sf), 16, b=flag))
    p.vcfg("recip_k", k["recip_k"])
    inv = p.vop("recip", std, 16)
    norm = p.req(c, n, None, k["norm_shift"], 0, I32_MIN, I32_MAX, mult_at=inv)
    h = p.vop("add", p.vop("mul", norm, n, b=p.data(gamma, "i32")), n, b=p.data(beta, "i32"))
    y = p.req(h, n, mult, shift, zo, -128, 127, tout="i8")
    assert np.array_equal(p.read(p.run(), y, n, "i8"), want.reshape(-1))


@pytest.mark.parametrize(("seed", "act"), [(1, "none"), (2, "relu")])
def test_matmul_is_mac_output_stage(seed: int, act: str) -> None:
    """qnt.matmul with int8 output = MATMUL + the MAC output stage (QLOAD), with the input
    zero point folded into the bias: bias' = bias - zp_x * colsum(w)."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    r, cols, k = ARCH.mac_rows, ARCH.mac_cols, 32
    zx, zo = int(rng.integers(-60, 60)), int(rng.integers(-10, 10))
    x, w = rand(rng, "i8", (r, k)), rng.integers(-127, 128, (k, cols)).astype(np.int8)
    bias = rng.integers(-5000, 5000, cols)
    pairs = [qmath.quantize_multiplier(float(v)) for v in rng.uniform(1e-4, 2e-3, cols)]
    mult, shift = np.array([m for m, _ in pairs]), np.array([s for _, s in pairs])
    tx, to = q("i8", [r, k], 0.1, zx), q("i8", [r, cols], 0.1, zo)
    consts = "\n".join(
        f"  %{nm} = graph.constant {{value = dense<{v.tolist()}> : tensor<{t}>}} : tensor<{t}>"
        for nm, v, t in (
            ("w", w, f"{k}x{cols}xi8"),
            ("b", bias, f"{cols}xi32"),
            ("m", mult, f"{cols}xi32"),
            ("s", shift, f"{cols}xi32"),
        )
    )
    ct = f"tensor<{k}x{cols}xi8>, tensor<{cols}xi32>, tensor<{cols}xi32>, tensor<{cols}xi32>"
    body = (
        f'{consts}\n  %y = qnt.matmul %x, %w, %b, %m, %s {{act = "{act}"}} : ({tx}, {ct}) -> {to}'
    )
    want = interp(body, f"%x: {tx}", to, [x])
    lay = qparam_layout(cols)
    block = np.zeros(lay["total"][1], np.uint8)
    folded = bias - zx * w.astype(np.int64).sum(axis=0)
    block[0 : 4 * cols] = np.frombuffer(folded.astype("<i4").tobytes(), np.uint8)
    block[4 * cols : 8 * cols] = np.frombuffer(mult.astype("<i4").tobytes(), np.uint8)
    block[8 * cols : 9 * cols] = shift.astype(np.uint8)
    lo = max(zo, -128) if act == "relu" else -128
    off = lay["clamp"][0]
    block[off : off + 3] = np.array([zo, lo, 127], np.int8).view(np.uint8)
    p = PeProgram()
    a_t, b_kc, qp = p.data(x.T.copy(), "i8"), p.data(w, "i8"), p.data(block.view(np.int8), "i8")
    out = p.alloc(r * cols)
    p.lines += [
        f"li x1, {a_t}",
        f"li x2, {b_kc}",
        f"li x3, {out}",
        f"li x4, {qp}",
        "qload x4, 0",
        f"matmul rs1=x1, rs2=x2, rs3=x3, k16={k // 16}, ldc={cols}",
    ]
    got = p.read(p.run(), out, r * cols, "i8").reshape(r, cols)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_rescale_is_req_per_channel(seed: int) -> None:
    """Per-channel REQ: channel-major data, one VCFG MULT/SHIFT per channel."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    rows, ch, zin, zo = 16, 3, int(rng.integers(-500, 500)), -4
    pairs = [qmath.quantize_multiplier(float(v)) for v in rng.uniform(1e-3, 0.05, ch)]
    mult, shift = [m for m, _ in pairs], [s for _, s in pairs]
    x = rand(rng, "i16", (rows, ch))
    ti, to = q("i16", [rows, ch], 0.01, zin), q("i8", [rows, ch], 0.3, zo)
    body = (
        f"  %m = graph.constant {{value = dense<{mult}> : tensor<{ch}xi32>}} : "
        f"tensor<{ch}xi32>\n  %s = graph.constant {{value = dense<{shift}> : "
        f"tensor<{ch}xi32>}} : tensor<{ch}xi32>\n  %y = qnt.rescale %x, %m, %s : "
        f"({ti}, tensor<{ch}xi32>, tensor<{ch}xi32>) -> {to}"
    )
    want = interp(body, f"%x: {ti}", to, [x])
    p = PeProgram()
    outs = []
    for k in range(ch):
        t = p.vop("sub", p.data(x[:, k], "i16"), rows, tin="i16", scalar=zin)
        outs.append(p.req(t, rows, mult[k], shift[k], zo, -128, 127, tout="i8"))
    pe = p.run()
    got = np.stack([p.read(pe, o, rows, "i8") for o in outs], axis=1)
    assert np.array_equal(got, want)


def lut_program(x_at: int, table_at: int, out_at: int, n: int) -> list[str]:
    """qnt.lut on the scalar unit: per byte, extract it (SHLI/SHRI), index = (u + 128)
    mod 256, LW the table word, pack the low bytes back into words, SW."""
    lines = [f"li x1, {x_at}", f"li x2, {table_at}", f"li x3, {out_at}"]
    for word in range(n // 4):
        lines += [f"lw x4, {4 * word}(x1)", "li x7, 0"]
        for j in range(4):
            lines += [
                f"shli x5, x4, {24 - 8 * j}",
                "shri x5, x5, 24",
                "addi x5, x5, 128",
                "shli x5, x5, 24",
                "shri x5, x5, 22",
                "add x5, x5, x2",
                "lw x6, 0(x5)",
                "shli x6, x6, 24",
                f"shri x6, x6, {24 - 8 * j}",
                "add x7, x7, x6",
            ]
        lines.append(f"sw x7, {4 * word}(x3)")
    return lines


@pytest.mark.parametrize("seed", SEEDS)
def test_lut_is_a_scalar_table_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    n = 16
    x, table = rand(rng, "i8", (n,)), rand(rng, "i8", (256,))
    ti, to = q("i8", [n], 0.05, 3), q("i8", [n], 0.01, -2)
    body = (
        f"  %t = graph.constant {{value = dense<{table.tolist()}> : tensor<256xi8>}} : "
        f"tensor<256xi8>\n  %y = qnt.lut %x, %t : ({ti}, tensor<256xi8>) -> {to}"
    )
    want = interp(body, f"%x: {ti}", to, [x])
    p = PeProgram()
    xa, ta, out = p.data(x, "i8"), p.data(table, "i32"), p.alloc(n)
    p.lines += lut_program(xa, ta, out, n)
    assert np.array_equal(p.read(p.run(), out, n, "i8"), want)


@pytest.mark.parametrize("seed", SEEDS)
def test_matmul_i16_result_is_out32_add_req(seed: int) -> None:
    """qnt.matmul with an i16 result: MATMUL out32 with the channels as MAC rows (A = W,
    B = X^T), then per channel ADD bias' (bscalar) and REQ with its MULT/SHIFT."""
    rng = np.random.default_rng(seed)
    print(f"seed={seed}")
    ch, tokens, k = ARCH.mac_rows, ARCH.mac_cols, 32
    zx, zo = int(rng.integers(-60, 60)), int(rng.integers(-100, 100))
    x, w = rand(rng, "i8", (tokens, k)), rng.integers(-127, 128, (k, ch)).astype(np.int8)
    bias = rng.integers(-5000, 5000, ch)
    pairs = [qmath.quantize_multiplier(float(v)) for v in rng.uniform(0.01, 0.3, ch)]
    mult, shift = [m for m, _ in pairs], [s for _, s in pairs]
    tx, to = q("i8", [tokens, k], 0.1, zx), q("i16", [tokens, ch], 0.01, zo)
    consts = "\n".join(
        f"  %{nm} = graph.constant {{value = dense<{v}> : tensor<{t}>}} : tensor<{t}>"
        for nm, v, t in (
            ("w", w.tolist(), f"{k}x{ch}xi8"),
            ("b", bias.tolist(), f"{ch}xi32"),
            ("m", mult, f"{ch}xi32"),
            ("s", shift, f"{ch}xi32"),
        )
    )
    ct = f"tensor<{k}x{ch}xi8>, tensor<{ch}xi32>, tensor<{ch}xi32>, tensor<{ch}xi32>"
    body = f'{consts}\n  %y = qnt.matmul %x, %w, %b, %m, %s {{act = "none"}} : ({tx}, {ct}) -> {to}'
    want = interp(body, f"%x: {tx}", to, [x])
    folded = bias - zx * w.astype(np.int64).sum(axis=0)
    p = PeProgram()
    a_kr, b_kc, acc = p.data(w, "i8"), p.data(x.T.copy(), "i8"), p.alloc(ch * tokens * 4)
    p.lines += [
        f"li x1, {a_kr}",
        f"li x2, {b_kc}",
        f"li x3, {acc}",
        f"matmul rs1=x1, rs2=x2, rs3=x3, k16={k // 16}, ldc={4 * tokens}, out32=1",
    ]
    outs = []
    for r in range(ch):
        t = p.vop("add", acc + 4 * tokens * r, tokens, scalar=int(folded[r]))
        outs.append(p.req(t, tokens, mult[r], shift[r], zo, -(2**15), 2**15 - 1, tout="i16"))
    pe = p.run()
    got = np.stack([p.read(pe, o, tokens, "i16") for o in outs], axis=1)
    assert np.array_equal(got, want)
