// RUN: %myelin-opt %s -p raise-composites,dce | filecheck %s
// x * 0.5 * (1 + erf(x / sqrt 2)) becomes graph.gelu; with 0.6 instead of 0.5 it must not.

func.func @main(%x: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %sq2 = graph.constant {value = dense<1.41421354> : tensor<f32>} : tensor<f32>
  %one = graph.constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
  %half = graph.constant {value = dense<0.5> : tensor<f32>} : tensor<f32>
  %bad = graph.constant {value = dense<0.6> : tensor<f32>} : tensor<f32>
  %d = graph.div %x, %sq2 : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %e = graph.erf %d : (tensor<4xf32>) -> tensor<4xf32>
  %a = graph.add %e, %one : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %m = graph.mul %x, %a : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %g = graph.mul %m, %half : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %d2 = graph.div %x, %sq2 : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %e2 = graph.erf %d2 : (tensor<4xf32>) -> tensor<4xf32>
  %a2 = graph.add %e2, %one : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %m2 = graph.mul %x, %a2 : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %g2 = graph.mul %m2, %bad : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  func.return %g, %g2 : tensor<4xf32>, tensor<4xf32>
}
// CHECK:      %[[G:.*]] = graph.gelu %x {approximate = "none"}
// CHECK:      %e2 = graph.erf %d2
// CHECK:      %g2 = graph.mul %m2, %bad
// CHECK:      func.return %[[G]], %g2
