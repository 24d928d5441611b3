// RUN: %myelin-opt %s -p fuse-ops,dce | filecheck %s
// qnt.matmul followed by a clamp at its zero point becomes act = "relu".

func.func @main(%x: tensor<2x3xi8, #qnt.q<0.1, 0>>) -> tensor<2x4xi8, #qnt.q<0.2, -128>> {
  %w = graph.constant {value = dense<1> : tensor<3x4xi8>} : tensor<3x4xi8>
  %b = graph.constant {value = dense<0> : tensor<4xi32>} : tensor<4xi32>
  %m = graph.constant {value = dense<1073741824> : tensor<1xi32>} : tensor<1xi32>
  %s = graph.constant {value = dense<31> : tensor<1xi32>} : tensor<1xi32>
  %y = qnt.matmul %x, %w, %b, %m, %s {act = "none"} : (tensor<2x3xi8, #qnt.q<0.1, 0>>, tensor<3x4xi8>, tensor<4xi32>, tensor<1xi32>, tensor<1xi32>) -> tensor<2x4xi8, #qnt.q<0.2, -128>>
  %r = tosa.clamp %y {min_val = -128 : i8, max_val = 127 : i8} : (tensor<2x4xi8, #qnt.q<0.2, -128>>) -> tensor<2x4xi8, #qnt.q<0.2, -128>>
  func.return %r : tensor<2x4xi8, #qnt.q<0.2, -128>>
}
// CHECK:     %r = qnt.matmul %x, %w, %b, %m, %s {act = "relu"}
// CHECK-NOT: tosa.clamp
