// RUN: %myelin-opt %s -p pad-to-mac{arch=small},fold-constants,dce | filecheck %s
// small: 4 x 16 MAC array.  3 x 20 output -> padded to 4 x 32 then sliced back;
// the 4 x 16 matmul is already aligned and must not change.

func.func @main(%x: tensor<3x8xf32>, %y: tensor<4x8xf32>) -> (tensor<3x20xf32>, tensor<4x16xf32>) {
  %w = graph.constant {value = dense<1.0> : tensor<8x20xf32>} : tensor<8x20xf32>
  %v = graph.constant {value = dense<1.0> : tensor<8x16xf32>} : tensor<8x16xf32>
  %a = graph.matmul %x, %w : (tensor<3x8xf32>, tensor<8x20xf32>) -> tensor<3x20xf32>
  %b = graph.matmul %y, %v : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  func.return %a, %b : tensor<3x20xf32>, tensor<4x16xf32>
}
// CHECK:      graph.pad %x {low = array<i64: 0, 0>, high = array<i64: 1, 0>} : (tensor<3x8xf32>) -> tensor<4x8xf32>
// CHECK:      graph.matmul {{.*}} : (tensor<4x8xf32>, tensor<8x32xf32>) -> tensor<4x32xf32>
// CHECK-NEXT: %a = graph.slice {{.*}} {starts = array<i64: 0, 0>, ends = array<i64: 3, 20>, steps = array<i64: 1, 1>}
// CHECK-NEXT: %b = graph.matmul %y, %v : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
