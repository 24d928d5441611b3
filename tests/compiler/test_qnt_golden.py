"""Hand-computed integer results of qnt ops: the interpreter is the bit-exact reference,
so its rounding (half away from zero, as the PE's sim.numerics.round_shift) and
saturation are pinned down here.  Expected values are recomputed with exact fractions
(``ref_round``), independently of the code under test."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from compiler.interpreter import run
from compiler.ir import parse_module


def ref_round(num: int, den: int) -> int:
    """num / den rounded half away from zero, with exact fractions."""
    q = Fraction(num, den)
    r = int(abs(q) + Fraction(1, 2))  # floor(|q| + 1/2)
    return r if q >= 0 else -r


def ref_clamp(v: int, lo: int = -128, hi: int = 127) -> int:
    return min(max(v, lo), hi)


X = "tensor<1x2xi8, #qnt.q<0.5, 2>>"
Y = "tensor<1x2xi8, #qnt.q<0.25, -1>>"
ARGS = "tensor<2x2xi8>, tensor<2xi32>, tensor<1xi32>, tensor<1xi32>"
MATMUL = (
    """
func.func @main(%x: X) -> (Y, Y) {
  %w = graph.constant {value = dense<[[1, 2], [3, -1]]> : tensor<2x2xi8>} : tensor<2x2xi8>
  %b = graph.constant {value = dense<[5, -5]> : tensor<2xi32>} : tensor<2xi32>
  %m = graph.constant {value = dense<1073741824> : tensor<1xi32>} : tensor<1xi32>
  %s = graph.constant {value = dense<31> : tensor<1xi32>} : tensor<1xi32>
  %y = qnt.matmul %x, %w, %b, %m, %s {act = "none"} : (X, ARGS) -> Y
  %r = qnt.matmul %x, %w, %b, %m, %s {act = "relu"} : (X, ARGS) -> Y
  func.return %y, %r : Y, Y
}""".replace("ARGS", ARGS)
    .replace("X", X)
    .replace("Y", Y)
)


def test_matmul_golden() -> None:
    # x - zp = [8, -5]; acc = [8*1 - 5*3, 8*2 + 5] + bias = [-2, 16];
    # * 2**30 >> 31 (exact halves, no tie) = [-1, 8]; + zp -1 = [-2, 7]; relu clamps at zp: [-1, 7]
    y, r = run(parse_module(MATMUL), [np.array([[10, -3]], np.int8)])
    assert y.tolist() == [[-2, 7]]
    assert r.tolist() == [[-1, 7]]


ADD = """
func.func @main(%a: A, %b: B) -> C {
  %y = qnt.add %a, %b {lhs_mult = 3 : i64, rhs_mult = 5 : i64, shift = 2 : i64} : (A, B) -> C
  func.return %y : C
}"""
ADD = ADD.replace("A", "tensor<3xi8, #qnt.q<1.0, 0>>").replace("B", "tensor<3xi8, #qnt.q<1.0, 2>>")
ADD = ADD.replace("C", "tensor<3xi8, #qnt.q<1.0, 1>>")


def test_add_golden_rounding_and_saturation() -> None:
    # [4*3 + (-8)*5, 1*3 + (-1)*5, 127*3 + 125*5] = [-28, -2, 1006]
    # / 4 = [-7, -0.5 (rounds away: -1), 251.5 (252)]; + 1; saturate at 127
    acc = [4 * 3 + (-8) * 5, 1 * 3 + (-1) * 5, 127 * 3 + 125 * 5]
    want = [ref_clamp(ref_round(v, 4) + 1) for v in acc]
    assert want == [-6, 0, 127]
    y = run(parse_module(ADD), [np.array([4, 1, 127], np.int8), np.array([-6, 1, 127], np.int8)])
    assert y[0].tolist() == want


REQUANT = """
func.func @main(%x: IN) -> OUT {
  %y = qnt.requantize %x {multiplier = 1073741824 : i64, shift = 32 : i64} : (IN) -> OUT
  func.return %y : OUT
}"""
REQUANT = REQUANT.replace("IN", "tensor<4xi16, #qnt.q<0.01, 100>>")
REQUANT = REQUANT.replace("OUT", "tensor<4xi8, #qnt.q<0.04, -3>>")


def test_requantize_golden() -> None:
    # (x - 100) * 2**30 >> 32 = (x - 100) / 4 rounded half away; + (-3); saturate to int8
    x = np.array([106, 94, 1000, -2000], np.int16)
    want = [ref_clamp(ref_round((int(v) - 100) * 2**30, 2**32) - 3) for v in x]
    assert want == [-1, -5, 127, -128]  # 1.5->2, -1.5->-2, 225->127, -525->-128
    y = run(parse_module(REQUANT), [x])[0]
    assert y.tolist() == want


RESCALE = """
func.func @main(%x: IN) -> OUT {
  %m = graph.constant {value = dense<[1073741824, 1073741824]> : tensor<2xi32>} : tensor<2xi32>
  %s = graph.constant {value = dense<[31, 33]> : tensor<2xi32>} : tensor<2xi32>
  %y = qnt.rescale %x, %m, %s : (IN, tensor<2xi32>, tensor<2xi32>) -> OUT
  func.return %y : OUT
}"""
RESCALE = RESCALE.replace("IN", "tensor<2x2xi16, #qnt.q<0.01, 0>>")
RESCALE = RESCALE.replace("OUT", "tensor<2x2xi8, #qnt.q<0.02, 1>>")


def test_rescale_per_channel_golden() -> None:
    # channel 0: x / 2, channel 1: x / 8 (half away from zero), then + 1
    x = np.array([[5, 12], [-5, -12]], np.int16)
    shifts = (31, 33)
    want = [
        [ref_clamp(ref_round(int(v) * 2**30, 2**s) + 1) for v, s in zip(row, shifts, strict=True)]
        for row in x
    ]
    assert want == [[4, 3], [-2, -1]]  # 2.5->3, 1.5->2, -2.5->-3, -1.5->-2
    y = run(parse_module(RESCALE), [x])[0]
    assert y.tolist() == want
