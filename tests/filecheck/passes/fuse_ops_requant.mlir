// RUN: %myelin-opt %s -p fuse-ops,dce | filecheck %s
// qnt.matmul followed by qnt.requantize folds into one requantization (multiplier
// 0.5 * 0.5 = 0.25: M = 2**30, shift 32); a requantize after a ReLU matmul must not.

func.func @main(%x: tensor<2x3xi8, #qnt.q<0.1, 0>>) -> (tensor<2x4xi8, #qnt.q<0.4, 0>>, tensor<2x4xi8, #qnt.q<0.4, 0>>) {
  %w = graph.constant {value = dense<1> : tensor<3x4xi8>} : tensor<3x4xi8>
  %b = graph.constant {value = dense<0> : tensor<4xi32>} : tensor<4xi32>
  %m = graph.constant {value = dense<1073741824> : tensor<1xi32>} : tensor<1xi32>
  %s = graph.constant {value = dense<31> : tensor<1xi32>} : tensor<1xi32>
  %y = qnt.matmul %x, %w, %b, %m, %s {act = "none"} : (tensor<2x3xi8, #qnt.q<0.1, 0>>, tensor<3x4xi8>, tensor<4xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.2, 0>>
  %r = qnt.requantize %y {multiplier = 1073741824 : i64, shift = 31 : i64} : (tensor<2x4xi8, #qnt.q<0.2, 0>>) -> tensor<2x4xi8, #qnt.q<0.4, 0>>
  %y2 = qnt.matmul %x, %w, %b, %m, %s {act = "relu"} : (tensor<2x3xi8, #qnt.q<0.1, 0>>, tensor<3x4xi8>, tensor<4xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.2, 0>>
  %r2 = qnt.requantize %y2 {multiplier = 1073741824 : i64, shift = 31 : i64} : (tensor<2x4xi8, #qnt.q<0.2, 0>>) -> tensor<2x4xi8, #qnt.q<0.4, 0>>
  func.return %r, %r2 : tensor<2x4xi8, #qnt.q<0.4, 0>>, tensor<2x4xi8, #qnt.q<0.4, 0>>
}
// CHECK:      %[[S:.*]] = graph.constant {value = dense<32> : tensor<1xi32>}
// CHECK-NEXT: %r = qnt.matmul %x, %w, %b, %{{.*}}, %[[S]] {act = "none"} {{.*}} -> tensor<2x4xi8, #qnt.q<0.4, 0>>
// CHECK:      %y2 = qnt.matmul %x, %w, %b, %m, %s {act = "relu"}
// CHECK-NEXT: %r2 = qnt.requantize %y2
