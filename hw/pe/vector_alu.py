"""The vector unit's lane ALUs: ``vec_lanes`` int32 lanes in a three-stage pipeline.

Every lane computes the pipelined vector functions of ``sim.numerics`` bit for
bit: ADD, SUB, MUL, MIN, MAX, SHL, SRA, MOV, REQ, REQB, EXP, EXPB, ERF, ABS.  (RECIP and
SQRT are iterative, see ``hw.pe.vector_iter``; the vector unit feeds their results and
the operands of reductions through the lanes as MOV.)  The result is saturated to
``tout`` and carried in an int32 lane.

Pipeline (per lane, one register after each stage):

1. operand select and multiplier M1 (33 x 33 signed): ``a * b`` (MUL, REQB),
   ``a * MULT`` (REQ), ``-x * EXP_INV_MULT`` (EXP, EXPB) with ``x = min(a, 0)`` for EXP
   and ``x = min(sat32(a - b), 0)`` for EXPB (a 33-bit subtract and clip in front of
   M1); the simple functions in parallel;
2. REQ's and REQB's ``round_shift``/``sat32``/zero point/clamp (REQB is REQ with the
   multiplier taken from ``b``); EXP's ``z`` and ``t``; ERF's ``t``;
3. multiplier M2 (32 x 32 signed): ``t * t`` (EXP, ERF);
4. (combinational, on the output) EXP's ``(t*t + QC) >> z``, ERF's sign, saturation.

EXPB is EXP of ``sat32(a - b)`` (SUB then EXP in one pass): from stage 1's ``x`` on,
it is EXP, so it has EXP's latency and throughput.

Area: two multipliers per lane (M1 33 x 33, M2 32 x 32), so 2 * vec_lanes in all;
no sharing across lanes, which is what sustains one step per cycle for i8.

``round_shift`` evaluates ``(x + 2**(s-1) - (x < 0)) >> s`` with 67 bits, so it is
exact even for ``x = 2**62, s = 63`` (REQ with a = MULT = -2**31, SHIFT = 63 gives 1).

Stream protocol: ``inp`` carries one step (``a`` and ``b`` vectors); ``out`` carries
its results ``latency`` transfers later.  The pipeline advances as a whole when its
last stage is empty or ``out`` is ready (``inp.ready`` depends on ``out.ready``).
"""

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import DType, VCfg, VFn

__all__ = [
    "VectorAlu",
    "VectorLane",
    "cfg_layout",
    "check_arch",
    "lane_vector",
    "operand_layout",
    "sat_to",
]

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
FN_BITS = 6
TYPE_BITS = 2
SHIFT_BITS = 6  # every shift amount is taken modulo 64


def check_arch(component, arch) -> None:
    """Raise TypeError unless ``arch`` is an ArchConfig (without an unused-component warning)."""
    if not isinstance(arch, ArchConfig):
        component._MustUse__silence = True  # the half-built component is not a design error
        raise TypeError(f"arch must be an ArchConfig, not {arch!r}")


def cfg_layout() -> data.ArrayLayout:
    """The vector config registers (``hw.isa.VCfg``), each a signed int32."""
    return data.ArrayLayout(signed(32), len(VCfg))


def lane_vector(arch: ArchConfig) -> data.ArrayLayout:
    """One step: ``vec_lanes`` signed int32 elements."""
    return data.ArrayLayout(signed(32), arch.vec_lanes)


def operand_layout(arch: ArchConfig) -> data.StructLayout:
    return data.StructLayout({"a": lane_vector(arch), "b": lane_vector(arch)})


def _clip(v, lo, hi):
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def sat_to(v, tout):
    """``numerics.sat(v, tout)`` for a signed value ``v``; ``tout`` a DType code."""
    ranges = {t: (-(1 << (8 * t.bytes - 1)), (1 << (8 * t.bytes - 1)) - 1) for t in DType}
    return Mux(
        tout == DType.I8,
        _clip(v, *ranges[DType.I8]),
        Mux(tout == DType.I16, _clip(v, *ranges[DType.I16]), _clip(v, *ranges[DType.I32])),
    )


def round_shift(x, s):
    """``numerics.round_shift(x, s)`` exactly (no wrap); ``s`` 6 bits, ``x`` <= 64 bits."""
    half = (Const(1, 65) << s)[1:65]  # 2**(s-1), or 0 for s == 0
    return Mux(s == 0, x, (x + half - (x < 0)) >> s)


def _abs(v):
    return Mux(v < 0, -v, v)


class VectorLane(wiring.Component):
    """One int32 lane: ``result`` is the function of the operands ``en`` advances ago.

    Ports: ``en`` advances the three pipeline registers; ``a``/``b`` operands;
    ``fn``/``tout``/``cfg`` must be stable while the lane holds data of one command;
    ``result`` (combinational from the last register) is saturated to ``tout``.
    """

    def __init__(self):
        super().__init__(
            {
                "en": In(1),
                "a": In(signed(32)),
                "b": In(signed(32)),
                "fn": In(FN_BITS),
                "tout": In(TYPE_BITS),
                "cfg": In(cfg_layout()),
                "result": Out(signed(32)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        s1 = self._stage1(m)
        s2 = self._stage2(m, s1)
        self._stage3_and_output(m, s2)
        return m

    def _stage1(self, m):
        a, b, fn, cfg = self.a, self.b, self.fn, self.cfg
        # EXP's argument: a, or a - b (EXPB, exact in 33 bits); x = min(sat32(arg), 0)
        # needs only the lower clip, which is a no-op for EXP.
        arg = Mux(fn == VFn.EXPB, a - b, a)
        x = Signal(signed(32))
        m.d.comb += x.eq(Mux(arg < 0, Mux(arg < I32_MIN, I32_MIN, arg), 0))
        op1 = Signal(signed(33))
        op2 = Signal(signed(33))
        with m.Switch(fn):
            with m.Case(VFn.MUL, VFn.REQB):
                m.d.comb += [op1.eq(a), op2.eq(b)]
            with m.Case(VFn.REQ):
                m.d.comb += [op1.eq(a), op2.eq(cfg[VCfg.MULT])]
            with m.Case(VFn.EXP, VFn.EXPB):
                m.d.comb += [op1.eq(-x), op2.eq(cfg[VCfg.EXP_INV_MULT])]
        simple = Signal(signed(64))
        with m.Switch(fn):
            with m.Case(VFn.ADD):
                m.d.comb += simple.eq(a + b)
            with m.Case(VFn.SUB):
                m.d.comb += simple.eq(a - b)
            with m.Case(VFn.MIN):
                m.d.comb += simple.eq(Mux(a < b, a, b))
            with m.Case(VFn.MAX):
                m.d.comb += simple.eq(Mux(a > b, a, b))
            with m.Case(VFn.SHL):
                m.d.comb += simple.eq(a << b[0:5])
            with m.Case(VFn.SRA):
                m.d.comb += simple.eq(round_shift(a, b[0:SHIFT_BITS]))
            with m.Case(VFn.ABS):
                m.d.comb += simple.eq(_abs(a))
            with m.Default():
                m.d.comb += simple.eq(a)
        s1 = {
            "prod": Signal(signed(64)),
            "simple": Signal(signed(64)),
            "x": Signal(signed(32)),
            "a": Signal(signed(32)),
        }
        with m.If(self.en):
            m.d.sync += [
                s1["prod"].eq((op1 * op2)[0:64]),
                s1["simple"].eq(simple),
                s1["x"].eq(x),
                s1["a"].eq(a),
            ]
        return s1

    def _stage2(self, m, s1):
        cfg, fn = self.cfg, self.fn
        prod = s1["prod"]
        # REQ: clamp(sat32(round_shift(a * MULT, SHIFT)) + ZP, LO, HI), hi wins (REQB: b).
        req = _clip(round_shift(prod, cfg[VCfg.SHIFT][0:SHIFT_BITS]), I32_MIN, I32_MAX)
        req = req + cfg[VCfg.ZP]
        req = Mux(req < cfg[VCfg.LO], cfg[VCfg.LO], req)
        req = Mux(req > cfg[VCfg.HI], cfg[VCfg.HI], req)
        # EXP: z = clip((-x * INV_MULT) >> INV_SHIFT, 0, 63); t = sat32(x + z*QLN2 + QB).
        zraw = prod >> cfg[VCfg.EXP_INV_SHIFT][0:SHIFT_BITS]
        z = Signal(unsigned(SHIFT_BITS))
        m.d.comb += z.eq(Mux(zraw < 0, 0, Mux(zraw > 63, 63, zraw[0:SHIFT_BITS])))
        t_exp = _clip(s1["x"] + z * cfg[VCfg.EXP_QLN2] + cfg[VCfg.EXP_QB], I32_MIN, I32_MAX)
        # ERF: t = sat32(min(|a|, -QB) + QB).
        qb = cfg[VCfg.ERF_QB]
        absa = _abs(s1["a"])
        t_erf = _clip(Mux(absa < -qb, absa, -qb) + qb, I32_MIN, I32_MAX)

        s2 = {
            "r": Signal(signed(64)),
            "t": Signal(signed(32)),
            "z": Signal(SHIFT_BITS),
            "neg": Signal(),
            "zero": Signal(),
        }
        with m.If(self.en):
            m.d.sync += [
                s2["z"].eq(z),
                s2["neg"].eq(s1["a"] < 0),
                s2["zero"].eq(s1["a"] == 0),
                s2["t"].eq(Mux(fn.matches(int(VFn.EXP), int(VFn.EXPB)), t_exp, t_erf)),
            ]
            with m.Switch(fn):
                with m.Case(VFn.MUL):
                    m.d.sync += s2["r"].eq(prod)
                with m.Case(VFn.REQ, VFn.REQB):
                    m.d.sync += s2["r"].eq(req)
                with m.Default():
                    m.d.sync += s2["r"].eq(s1["simple"])
        return s2

    def _stage3_and_output(self, m, s2):
        cfg, fn = self.cfg, self.fn
        sq = Signal(signed(64))
        r = Signal(signed(64))
        z = Signal(SHIFT_BITS)
        neg = Signal()
        zero = Signal()
        with m.If(self.en):
            m.d.sync += [
                sq.eq(s2["t"] * s2["t"]),
                r.eq(s2["r"]),
                z.eq(s2["z"]),
                neg.eq(s2["neg"]),
                zero.eq(s2["zero"]),
            ]
        poly = sq + cfg[VCfg.EXP_QC]
        erf = sq + cfg[VCfg.ERF_QC]
        final = Signal(signed(66))
        with m.Switch(fn):
            with m.Case(VFn.EXP, VFn.EXPB):
                m.d.comb += final.eq(poly >> z)
            with m.Case(VFn.ERF):
                m.d.comb += final.eq(Mux(zero, 0, Mux(neg, -erf, erf)))
            with m.Default():
                m.d.comb += final.eq(r)
        m.d.comb += self.result.eq(sat_to(final, self.tout))


class VectorAlu(wiring.Component):
    """``vec_lanes`` lanes with the pipeline's valid bits (``latency`` = 3 stages).

    Ports: ``inp`` In(stream of ``operand_layout``), ``out`` Out(stream of
    ``lane_vector``), ``fn``/``tout``/``cfg`` (stable during a command).
    """

    latency = 3

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        self.arch = arch
        super().__init__(
            {
                "inp": In(stream.Signature(operand_layout(arch))),
                "out": Out(stream.Signature(lane_vector(arch))),
                "fn": In(FN_BITS),
                "tout": In(TYPE_BITS),
                "cfg": In(cfg_layout()),
            }
        )

    def elaborate(self, platform):
        m = Module()
        valid = [Signal(name=f"valid{i + 1}") for i in range(self.latency)]
        advance = Signal()
        m.d.comb += [
            advance.eq(~valid[-1] | self.out.ready),
            self.inp.ready.eq(advance),
            self.out.valid.eq(valid[-1]),
        ]
        with m.If(advance):
            m.d.sync += valid[0].eq(self.inp.valid)
            m.d.sync += [valid[i + 1].eq(valid[i]) for i in range(self.latency - 1)]
        for i in range(self.arch.vec_lanes):
            lane = m.submodules[f"lane{i}"] = VectorLane()
            m.d.comb += [
                lane.en.eq(advance),
                lane.a.eq(self.inp.payload.a[i]),
                lane.b.eq(self.inp.payload.b[i]),
                lane.fn.eq(self.fn),
                lane.tout.eq(self.tout),
                lane.cfg.eq(self.cfg),
                self.out.payload[i].eq(lane.result),
            ]
        return m
