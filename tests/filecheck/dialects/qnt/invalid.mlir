// RUN: not %myelin-opt --split-input-file %s 2>&1 | filecheck %s
// Verifier diagnostics of the qnt dialect, one per chunk.

func.func @main(%x: tensor<2x4xf32>) -> tensor<2x4xi8> {
  %q = qnt.quantize %x : (tensor<2x4xf32>) -> tensor<2x4xi8>
  func.return %q : tensor<2x4xi8>
}
// CHECK: 'qnt.quantize' result must be an i8/i16 tensor with a #qnt.q encoding

// -----
func.func @main(%x: tensor<2x4xi8, #qnt.q<-0.5, 0>>) -> tensor<2x4xi8, #qnt.q<-0.5, 0>> {
  func.return %x : tensor<2x4xi8, #qnt.q<-0.5, 0>>
}
// CHECK: #qnt.q scale must be positive

// -----
func.func @main(%x: tensor<2x4xi8, #qnt.q<0.5, 0>>) -> tensor<2x4xi8, #qnt.q<0.25, 0>> {
  %r = qnt.requantize %x {multiplier = 4294967296 : i64, shift = 1 : i64} : (tensor<2x4xi8, #qnt.q<0.5, 0>>) -> tensor<2x4xi8, #qnt.q<0.25, 0>>
  func.return %r : tensor<2x4xi8, #qnt.q<0.25, 0>>
}
// CHECK: 'qnt.requantize' multiplier must be in [0, 2**31) and shift in [0, 62]

// -----
func.func @main(%x: tensor<2x4xi8, #qnt.q<0.5, 0>>) -> tensor<2x4xi8, #qnt.q<0.5, 0>> {
  %s = qnt.softmax %x {axis = 1 : i64, ln2 = 1 : i64, b = 2 : i64, c = 1 : i64} : (tensor<2x4xi8, #qnt.q<0.5, 0>>) -> tensor<2x4xi8, #qnt.q<0.5, 0>>
  func.return %s : tensor<2x4xi8, #qnt.q<0.5, 0>>
}
// CHECK: 'qnt.softmax' result must be #qnt.q<0.00390625, -128> for i8

// -----
func.func @main(%a: tensor<2x600xi16, #qnt.q<0.5, 0>>, %b: tensor<600x4xi16, #qnt.q<0.5, 0>>, %bias: tensor<4xi32>, %m: tensor<1xi32>, %s: tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.5, 0>> {
  %y = qnt.matmul %a, %b, %bias, %m, %s : (tensor<2x600xi16, #qnt.q<0.5, 0>>, tensor<600x4xi16, #qnt.q<0.5, 0>>, tensor<4xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.5, 0>>
  func.return %y : tensor<2x4xi8, #qnt.q<0.5, 0>>
}
// CHECK: 'qnt.matmul' int32 accumulator can overflow: K = 600 with i16 x i16 operands

// -----
func.func @main(%a: tensor<2x3xi8, #qnt.q<0.5, 0>>, %w: tensor<3x4xi8>, %bias: tensor<4xi32>, %m: tensor<3xi32>, %s: tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.5, 0>> {
  %y = qnt.matmul %a, %w, %bias, %m, %s : (tensor<2x3xi8, #qnt.q<0.5, 0>>, tensor<3x4xi8>, tensor<4xi32>, tensor<3xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.5, 0>>
  func.return %y : tensor<2x4xi8, #qnt.q<0.5, 0>>
}
// CHECK: 'qnt.matmul' multiplier must have 1 or 4 elements, not [3]

// -----
func.func @main(%x: tensor<2x4xi8, #qnt.q<0.5, 0>>, %t: tensor<128xi8>) -> tensor<2x4xi8, #qnt.q<0.5, 0>> {
  %y = qnt.lut %x, %t : (tensor<2x4xi8, #qnt.q<0.5, 0>>, tensor<128xi8>) -> tensor<2x4xi8, #qnt.q<0.5, 0>>
  func.return %y : tensor<2x4xi8, #qnt.q<0.5, 0>>
}
// CHECK: 'qnt.lut' table must be tensor<256xi8>

// -----
func.func @main(%x: tensor<2x4xi16, #qnt.q<0.5, 0>>, %m: tensor<3xi32>, %s: tensor<4xi32>) -> tensor<2x4xi8, #qnt.q<0.5, 0>> {
  %y = qnt.rescale %x, %m, %s : (tensor<2x4xi16, #qnt.q<0.5, 0>>, tensor<3xi32>, tensor<4xi32>) -> tensor<2x4xi8, #qnt.q<0.5, 0>>
  func.return %y : tensor<2x4xi8, #qnt.q<0.5, 0>>
}
// CHECK: 'qnt.rescale' multiplier must have 4 elements
