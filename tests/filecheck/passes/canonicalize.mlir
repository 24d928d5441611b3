// RUN: %myelin-opt %s -p canonicalize,dce | filecheck %s
// Reshape/transpose chains and identities fold; real layout changes stay.

func.func @main(%x: tensor<2x3x4xf32>) -> (tensor<24xf32>, tensor<2x3x4xf32>, tensor<4x2x3xf32>, tensor<2x3x4xf32>) {
  %r1 = graph.reshape %x : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
  %r2 = graph.reshape %r1 : (tensor<6x4xf32>) -> tensor<2x12xf32>
  %r3 = graph.reshape %r2 : (tensor<2x12xf32>) -> tensor<24xf32>
  %t1 = graph.transpose %x {perm = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  %t2 = graph.transpose %t1 {perm = array<i64: 1, 2, 0>} : (tensor<4x2x3xf32>) -> tensor<2x3x4xf32>
  %t3 = graph.transpose %x {perm = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  %zero = graph.constant {value = dense<0.0> : tensor<4xf32>} : tensor<4xf32>
  %a = graph.add %x, %zero : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  %one = graph.constant {value = dense<2.0> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.mul %a, %one : (tensor<2x3x4xf32>, tensor<4xf32>) -> tensor<2x3x4xf32>
  func.return %r3, %t2, %t3, %m : tensor<24xf32>, tensor<2x3x4xf32>, tensor<4x2x3xf32>, tensor<2x3x4xf32>
}
// CHECK:      %r3 = graph.reshape %x : (tensor<2x3x4xf32>) -> tensor<24xf32>
// must not fire: a transpose that is not cancelled, a multiplication by 2
// CHECK:      %t3 = graph.transpose %x {perm = array<i64: 2, 0, 1>}
// CHECK:      %m = graph.mul %x, %one
// CHECK:      func.return %r3, %x, %t3, %m
