// RUN: %myelin-opt %s -p fuse-ops,dce | filecheck %s
// matmul + constant bias + relu fuse; an add of two activations must not.

func.func @main(%x: tensor<2x3xf32>, %y: tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>) {
  %w = graph.constant {value = dense<1.0> : tensor<3x4xf32>} : tensor<3x4xf32>
  %b = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.matmul %x, %w : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %a = graph.add %m, %b : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %r = tosa.clamp %a {min_val = 0.0 : f32, max_val = 3.4e+38 : f32} : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %m2 = graph.matmul %x, %w : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %a2 = graph.add %m2, %y : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  func.return %r, %a2 : tensor<2x4xf32>, tensor<2x4xf32>
}
// CHECK:      %r = graph.fused_matmul %x, %w, %{{.*}} {act = "relu"} : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
// CHECK-NOT:  tosa.clamp
// CHECK:      %m2 = graph.matmul %x, %w
// CHECK-NEXT: %a2 = graph.add %m2, %y
