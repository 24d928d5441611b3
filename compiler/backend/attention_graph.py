"""Attention heads of a quantized module on the chip, against the front end's interpreter.

``run_attention_on_chip(module, inputs, arch, executor)`` interprets the module
(compiler.interpreter, the bit-exact graph reference), finds every chain
``qnt.matmul(Q, K^T) -> qnt.softmax [-> qnt.requantize] -> qnt.matmul(P, V)``, takes
the kernel parameters from the ops (types, attributes) and the operand values the
interpreter saw (``attention_params``), compiles the chain as one attention head
(qattention.py), runs it on the executor and compares with the interpreter's value
of the P V matmul, bit for bit.
"""

from __future__ import annotations

import numpy as np

from compiler import qmath
from compiler.backend.qattention import compile_qattention
from compiler.dialects.base import int_attr, norm_axis, shape_of, str_attr
from compiler.dialects.qnt import int_range, qparams
from compiler.errors import UnsupportedError

__all__ = ["attention_params", "find_chains", "run_attention_on_chip"]


def zp_of(value) -> int:
    q = qparams(value)
    return q.zp if q is not None else 0


def out_params(op) -> tuple[int, int, int, int]:
    """(zp, lo, hi, bits) of a result as the interpreter applies them (ReLU: lo = zp)."""
    out = op.results[0]
    lo, hi = int_range(out)
    zp = zp_of(out)
    if str_attr(op, "act", "none") == "relu":
        lo = max(lo, zp)
    return zp, lo, hi, out.type.element_type.width.data


def _scalar(op, what: str, arr: np.ndarray) -> int:
    vals = np.unique(np.asarray(arr).reshape(-1))
    if vals.size != 1:
        raise UnsupportedError(
            f"{op.name}: per-channel {what} ({vals.size} values) on a product of two "
            f"activations; VOP REQ takes one multiplier"
        )
    return int(vals[0])


def _check_i8(op, *values) -> None:
    for v in values:
        if v.type.element_type.width.data != 8:
            raise UnsupportedError(
                f"{op.name}: the MAC array takes int8 operands and this chain gives int8 "
                f"results; {v.name_hint or 'a value'} is {v.type.element_type}"
            )


def attention_params(mm1, sm, mm2, values: dict, rq=None) -> dict:
    """The kernel parameters of the chain ``mm1 -> sm [-> rq] -> mm2`` from the ops
    (types, attributes) and the operand values the interpreter saw; ``rq`` is the
    qnt.requantize of 16-bit probabilities to int8."""
    _check_i8(mm1, mm1.operands[0], mm1.operands[1])
    _check_i8(mm2, mm2.operands[0], mm2.operands[1], mm2.results[0])
    rank = len(shape_of(sm.input))
    if norm_axis(int_attr(sm, "axis"), rank, sm.name) != rank - 1:
        raise UnsupportedError("qnt.softmax: only a softmax over the last axis")
    bits = sm.results[0].type.element_type.width.data
    if (bits == 16) != (rq is not None) or bits not in (8, 16):
        raise UnsupportedError(
            f"qnt.softmax: {bits}-bit probabilities must reach the P V matmul as int8 "
            f"(directly, or through one qnt.requantize of 16-bit ones)"
        )
    q, kt, b1, m1, s1 = (values[v] for v in mm1.operands)
    _, v, b2, m2, s2 = (values[x] for x in mm2.operands)
    if q.ndim != 2 or kt.ndim != 2 or v.ndim != 2:
        raise UnsupportedError(f"{mm1.name}: attention operands must be 2-D (one head)")
    zp1, lo1, hi1, bits1 = out_params(mm1)
    zp2, lo2, hi2, _ = out_params(mm2)
    inv = qmath.exp_inv(int_attr(sm, "ln2"), bits1)
    opt = lambda k, d: int_attr(sm, k) if k in sm.attributes else d  # noqa: E731
    recip_k = opt("recip_k", None)
    if recip_k is None:
        recip_k = qmath.softmax_recip_k(
            int_attr(sm, "ln2"), int_attr(sm, "b"), int_attr(sm, "c"), bits
        )
    return {
        "q": q.astype(np.int8),
        "kt": kt.astype(np.int8),
        "v": v.astype(np.int8),
        "zq": zp_of(mm1.operands[0]),
        "zk": zp_of(mm1.operands[1]),
        "zv": zp_of(mm2.operands[1]),
        "s_bias": np.asarray(b1, np.int64),
        "s_mult": _scalar(mm1, "multiplier", m1),
        "s_shift": _scalar(mm1, "shift", s1),
        "s_out": (zp1, lo1, hi1),
        "s_bits": bits1,
        "consts": [
            int_attr(sm, "ln2"),
            int_attr(sm, "b"),
            int_attr(sm, "c"),
            opt("inv_mult", inv[0]),
            opt("inv_shift", inv[1]),
            recip_k,
            bits,
        ],
        "zp": zp_of(mm2.operands[0]),
        "preq": None
        if rq is None
        else [int_attr(rq, "multiplier"), int_attr(rq, "shift"), *out_params(rq)[:3]],
        "o_bias": np.asarray(b2, np.int64),
        "o_mult": _scalar(mm2, "multiplier", m2),
        "o_shift": _scalar(mm2, "shift", s2),
        "o_out": (zp2, lo2, hi2),
    }


def _only_user(value):
    users = [u.operation for u in value.uses]
    return users[0] if len(users) == 1 else None


def find_chains(ops) -> list[tuple]:
    """(Q K^T matmul, softmax, P V matmul, requantize or None) of a list of ops."""
    out = []
    for sm in ops:
        if sm.name != "qnt.softmax":
            continue
        mm1 = sm.operands[0].owner
        if getattr(mm1, "name", None) != "qnt.matmul":
            continue
        p, rq = sm.results[0], None
        nxt = _only_user(p)
        if nxt is not None and nxt.name == "qnt.requantize":
            rq, p = nxt, nxt.results[0]
            nxt = _only_user(p)
        if nxt is not None and nxt.name == "qnt.matmul" and nxt.operands[0] is p:
            out.append((mm1, sm, nxt, rq))
    return out


def run_attention_on_chip(module, inputs, arch, executor) -> list[dict]:
    """Interpret ``module``; compile every Q K^T -> softmax -> P V chain as one attention
    head, run it on ``executor`` with the operands the interpreter saw, and compare
    with the interpreter's value of the P V matmul bit for bit."""
    from compiler.interpreter import run

    values: dict = {}
    order: list = []

    def observe(op, out):
        values[op.results[0]] = out
        order.append(op)

    run(module, inputs, observer=observe)
    for arg, x in zip(_args(module), inputs, strict=False):
        values[arg] = x
    results = []
    for index, (mm1, sm, mm2, rq) in enumerate(find_chains(order)):
        t = attention_params(mm1, sm, mm2, values, rq)
        ck = compile_qattention(arch, t, f"attention{index}")
        res = executor.run(ck)
        want = values[mm2.results[0]]
        got = res.outputs["O"]
        results.append(
            {
                "chain": index,
                "shape": [*t["q"].shape, t["v"].shape[0], t["v"].shape[1]],
                "bit_exact": bool(np.array_equal(got, want)),
                "reference_matches": bool(np.array_equal(ck.expected["O"], want)),
                "cycles": res.cycles,
                "plan": ck.plan,
                "compiled": ck,
            }
        )
    return results


def _args(module) -> list:
    from compiler.ir import main_func

    return list(main_func(module).body.block.args)
