// RUN: %python -c "import numpy as np; r = np.random.default_rng(11); x = r.standard_normal((4, 2, 4)).astype(np.float32); x[..., 1] *= 30; np.savez('%t.npz', x=x)"
// RUN: %myelin-opt %s -p 'quantize{calibration="%t.npz" smooth=true},dce' | filecheck %s
// RUN: %myelin-opt %s -p 'quantize{calibration="%t.npz"},dce' | filecheck %s --check-prefix=PLAIN
// With smooth=true the 16-bit layer-norm output reaches the int8 matmul through a
// per-channel qnt.rescale (its factors folded into the weights); by default it is a
// per-tensor qnt.requantize.

func.func @main(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
  %g = graph.constant {value = dense<[1.0, 8.0, 0.5, 1.0]> : tensor<4xf32>} : tensor<4xf32>
  %b = graph.constant {value = dense<0.0> : tensor<4xf32>} : tensor<4xf32>
  %ln = graph.layer_norm %x, %g, %b {axis = -1 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x4xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %w = graph.constant {value = dense<[[0.5, -1.0, 0.25], [1.0, 0.0, -0.5], [-2.0, 1.0, 0.75], [0.1, 0.2, 0.3]]> : tensor<4x3xf32>} : tensor<4x3xf32>
  %c = graph.constant {value = dense<[0.1, 0.2, 0.3]> : tensor<3xf32>} : tensor<3xf32>
  %m = graph.fused_matmul %ln, %w, %c {act = "none"} : (tensor<2x4xf32>, tensor<4x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %m : tensor<2x3xf32>
}
// CHECK:     qnt.layer_norm {{.*}} -> tensor<2x4xi16
// CHECK:     qnt.rescale {{.*}} : (tensor<2x4xi16, {{.*}}, tensor<4xi32>, tensor<4xi32>) -> tensor<2x4xi8
// CHECK:     qnt.matmul
// PLAIN:     qnt.layer_norm {{.*}} -> tensor<2x4xi16
// PLAIN-NOT: qnt.rescale
// PLAIN:     qnt.requantize {{.*}} -> tensor<2x4xi8
// PLAIN:     qnt.matmul
