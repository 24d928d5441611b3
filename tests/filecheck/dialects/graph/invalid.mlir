// RUN: not %myelin-opt --split-input-file %s 2>&1 | filecheck %s
// Verifier diagnostics of the graph dialect, one per chunk.

func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %t = graph.transpose %x {perm = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %t : tensor<2x3xf32>
}
// CHECK: 'graph.transpose' perm [0, 0] is not a permutation

// -----
func.func @main(%x: tensor<2x3xf32>, %w: tensor<4x5xf32>) -> tensor<2x5xf32> {
  %m = graph.matmul %x, %w : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  func.return %m : tensor<2x5xf32>
}
// CHECK: matmul contraction mismatch: [2, 3] x [4, 5]

// -----
func.func @main(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  %a = graph.add %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x4xf32>
  func.return %a : tensor<2x4xf32>
}
// CHECK: 'graph.add' result #0 has shape [2, 4], expected [2, 3]

// -----
func.func @main(%x: tensor<2x3xf32>) -> tensor<7xf32> {
  %r = graph.reshape %x : (tensor<2x3xf32>) -> tensor<7xf32>
  func.return %r : tensor<7xf32>
}
// CHECK: 'graph.reshape' cannot reshape [2, 3] to [7]

// -----
func.func @main() -> tensor<3xf32> {
  %w = graph.weight {ref = ""} : tensor<3xf32>
  func.return %w : tensor<3xf32>
}
// CHECK: 'graph.weight' needs a non-empty string attribute 'ref'

// -----
func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %s = graph.softmax %x {axis = 4 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %s : tensor<2x3xf32>
}
// CHECK: 'graph.softmax' axis 4 out of range for rank 2

// -----
func.func @main(%x: tensor<2x3xf32>, %c: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %s = graph.where %c, %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %s : tensor<2x3xf32>
}
// CHECK: 'graph.where' condition must be a tensor of i1

// -----
func.func @main(%x: tensor<1x3x8x8xf32>, %w: tensor<4x2x3x3xf32>, %b: tensor<4xf32>) -> tensor<1x4x6x6xf32> {
  %c = graph.conv %x, %w, %b : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>, tensor<4xf32>) -> tensor<1x4x6x6xf32>
  func.return %c : tensor<1x4x6x6xf32>
}
// CHECK: 'graph.conv' has 3 input channels, weights expect 2

// -----
func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %g = graph.gelu %x {approximate = "cubic"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %g : tensor<2x3xf32>
}
// CHECK: 'graph.gelu' approximate must be "none" or "tanh"
