// RUN: %myelin-opt %s | %myelin-opt - | filecheck %s
// Round trip of every qnt op (and the #qnt.q encoding) through its text form.

func.func @main(%x: tensor<2x4xf32>, %img: tensor<1x2x4x4xi8, #qnt.q<0.05, 3>>) -> tensor<2x4xf32> {
  %q = qnt.quantize %x : (tensor<2x4xf32>) -> tensor<2x4xi8, #qnt.q<0.02, -5>>
  %w = graph.weight {ref = "w"} : tensor<4x4xi8>
  %b = graph.constant {value = dense<[1, 2, 3, 4]> : tensor<4xi32>} : tensor<4xi32>
  %m = graph.constant {value = dense<1073741824> : tensor<1xi32>} : tensor<1xi32>
  %s = graph.constant {value = dense<31> : tensor<1xi32>} : tensor<1xi32>
  %mm = qnt.matmul %q, %w, %b, %m, %s {act = "relu"} : (tensor<2x4xi8, #qnt.q<0.02, -5>>, tensor<4x4xi8>, tensor<4xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.1, -128>>
  %rq = qnt.requantize %mm {multiplier = 1073741824 : i64, shift = 30 : i64} : (tensor<2x4xi8, #qnt.q<0.1, -128>>) -> tensor<2x4xi16, #qnt.q<0.05, 0>>
  %ad = qnt.add %rq, %q {lhs_mult = 8192 : i64, rhs_mult = 3277 : i64, shift = 13 : i64} : (tensor<2x4xi16, #qnt.q<0.05, 0>>, tensor<2x4xi8, #qnt.q<0.02, -5>>) -> tensor<2x4xi16, #qnt.q<0.05, 0>>
  %mu = qnt.mul %q, %q {multiplier = 1073741824 : i64, shift = 40 : i64} : (tensor<2x4xi8, #qnt.q<0.02, -5>>, tensor<2x4xi8, #qnt.q<0.02, -5>>) -> tensor<2x4xi8, #qnt.q<0.01, 0>>
  %sm = qnt.softmax %ad {axis = -1 : i64, ln2 = 13 : i64, b = 27 : i64, c = 383 : i64} : (tensor<2x4xi16, #qnt.q<0.05, 0>>) -> tensor<2x4xi8, #qnt.q<0.00390625, -128>>
  %ge = qnt.gelu %q {b = 125 : i64, c = 17312 : i64, multiplier = 1234567890 : i64, shift = 40 : i64, in_shift = 0 : i64} : (tensor<2x4xi8, #qnt.q<0.02, -5>>) -> tensor<2x4xi8, #qnt.q<0.02, -10>>
  %g = graph.constant {value = dense<2047> : tensor<4xi16>} : tensor<4xi16>
  %be = graph.constant {value = dense<0> : tensor<4xi32>} : tensor<4xi32>
  %ln = qnt.layer_norm %ad, %g, %be {multiplier = 1073741824 : i64, shift = 45 : i64, eps = 0 : i64} : (tensor<2x4xi16, #qnt.q<0.05, 0>>, tensor<4xi16>, tensor<4xi32>) -> tensor<2x4xi8, #qnt.q<0.03, 0>>
  %t = graph.weight {ref = "table"} : tensor<256xi8>
  %lu = qnt.lut %q, %t : (tensor<2x4xi8, #qnt.q<0.02, -5>>, tensor<256xi8>) -> tensor<2x4xi8, #qnt.q<0.0078125, 0>>
  %me = qnt.mean %q {axes = array<i64: 1>, keepdims = 1 : i64, multiplier = 1073741824 : i64, shift = 33 : i64} : (tensor<2x4xi8, #qnt.q<0.02, -5>>) -> tensor<2x1xi8, #qnt.q<0.02, 0>>
  %cw = graph.weight {ref = "cw"} : tensor<3x2x3x3xi8>
  %cb = graph.constant {value = dense<0> : tensor<3xi32>} : tensor<3xi32>
  %cv = qnt.conv %img, %cw, %cb, %m, %s {pads = array<i64: 1, 1, 1, 1>} : (tensor<1x2x4x4xi8, #qnt.q<0.05, 3>>, tensor<3x2x3x3xi8>, tensor<3xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<1x3x4x4xi8, #qnt.q<0.1, 0>>
  %rm = graph.constant {value = dense<[1073741824, 1073741824, 2147483647, 1073741824]> : tensor<4xi32>} : tensor<4xi32>
  %rs = graph.constant {value = dense<[31, 32, 33, 31]> : tensor<4xi32>} : tensor<4xi32>
  %rc = qnt.rescale %ad, %rm, %rs : (tensor<2x4xi16, #qnt.q<0.05, 0>>, tensor<4xi32>, tensor<4xi32>) -> tensor<2x4xi8, #qnt.q<0.1, 3>>
  %dq = qnt.dequantize %ln : (tensor<2x4xi8, #qnt.q<0.03, 0>>) -> tensor<2x4xf32>
  func.return %dq : tensor<2x4xf32>
}

// CHECK: %q = qnt.quantize %x : (tensor<2x4xf32>) -> tensor<2x4xi8, #qnt.q<0.02, -5>>
// CHECK: %mm = qnt.matmul %q, %w, %b, %m, %s {act = "relu"} : (tensor<2x4xi8, #qnt.q<0.02, -5>>, tensor<4x4xi8>, tensor<4xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.1, -128>>
// CHECK: %rq = qnt.requantize %mm {multiplier = 1073741824 : i64, shift = 30 : i64}
// CHECK: %ad = qnt.add %rq, %q {lhs_mult = 8192 : i64, rhs_mult = 3277 : i64, shift = 13 : i64}
// CHECK: %mu = qnt.mul %q, %q
// CHECK: %sm = qnt.softmax %ad {axis = -1 : i64, ln2 = 13 : i64, b = 27 : i64, c = 383 : i64} : (tensor<2x4xi16, #qnt.q<0.05, 0>>) -> tensor<2x4xi8, #qnt.q<0.00390625, -128>>
// CHECK: %ge = qnt.gelu %q
// CHECK: %ln = qnt.layer_norm %ad, %g, %be
// CHECK: %lu = qnt.lut %q, %t
// CHECK: %me = qnt.mean %q {axes = array<i64: 1>
// CHECK: %cv = qnt.conv %img, %cw, %cb, %m, %s {pads = array<i64: 1, 1, 1, 1>}
// CHECK: %rc = qnt.rescale %ad, %rm, %rs : (tensor<2x4xi16, #qnt.q<0.05, 0>>, tensor<4xi32>, tensor<4xi32>) -> tensor<2x4xi8, #qnt.q<0.1, 3>>
// CHECK: %dq = qnt.dequantize %ln : (tensor<2x4xi8, #qnt.q<0.03, 0>>) -> tensor<2x4xf32>
