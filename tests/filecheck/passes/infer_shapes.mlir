// RUN: %myelin-opt %s -p infer-shapes | filecheck %s
// Dynamic result dims are refined from the operands; static ones are left alone.

func.func @main(%x: tensor<2x3xf32>, %w: tensor<3x5xf32>) -> tensor<?x?xf32> {
  %a = graph.add %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<?x3xf32>
  %m = graph.matmul %a, %w : (tensor<?x3xf32>, tensor<3x5xf32>) -> tensor<?x?xf32>
  %t = graph.transpose %x {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  func.return %m : tensor<?x?xf32>
}
// CHECK:      func.func @main(%x: tensor<2x3xf32>, %w: tensor<3x5xf32>) -> tensor<2x5xf32>
// CHECK-NEXT:   %a = graph.add %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:   %m = graph.matmul %a, %w : (tensor<2x3xf32>, tensor<3x5xf32>) -> tensor<2x5xf32>
// must not fire on static types:
// CHECK-NEXT:   %t = graph.transpose %x {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
