// RUN: %myelin-opt %s -p convert-layout,fold-constants,canonicalize,dce | filecheck %s
// Two NCHW convolutions run NHWC; the transposes between them cancel.  An NHWC conv
// is left alone.

func.func @main(%x: tensor<1x2x4x4xf32>, %z: tensor<1x4x4x2xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x4x4x2xf32>) {
  %w = graph.constant {value = dense<0.5> : tensor<2x2x3x3xf32>} : tensor<2x2x3x3xf32>
  %hw = graph.constant {value = dense<0.5> : tensor<3x3x2x2xf32>} : tensor<3x3x2x2xf32>
  %b = graph.constant {value = dense<0.0> : tensor<2xf32>} : tensor<2xf32>
  %c1 = graph.conv %x, %w, %b {pads = array<i64: 1, 1, 1, 1>} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %c2 = graph.conv %c1, %w, %b {pads = array<i64: 1, 1, 1, 1>} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %c3 = graph.conv %z, %hw, %b {pads = array<i64: 1, 1, 1, 1>, layout = "nhwc"} : (tensor<1x4x4x2xf32>, tensor<3x3x2x2xf32>, tensor<2xf32>) -> tensor<1x4x4x2xf32>
  func.return %c2, %c3 : tensor<1x2x4x4xf32>, tensor<1x4x4x2xf32>
}
// CHECK:      graph.transpose %x {perm = array<i64: 0, 2, 3, 1>}
// CHECK:      graph.conv {{.*}} layout = "nhwc"{{.*}} -> tensor<1x4x4x2xf32>
// CHECK-NOT:  graph.transpose
// CHECK:      graph.conv {{.*}} layout = "nhwc"{{.*}} -> tensor<1x4x4x2xf32>
// CHECK-NEXT: %c2 = graph.transpose %{{.*}} {perm = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT: %c3 = graph.conv %z, %hw, %b
