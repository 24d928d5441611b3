// RUN: %myelin-opt %s -p raise-composites,dce | filecheck %s
// The ReduceMean form of layer norm becomes graph.layer_norm.

func.func @main(%x: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %two = graph.constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %eps = graph.constant {value = dense<1.0e-05> : tensor<f32>} : tensor<f32>
  %g = graph.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32>
  %b = graph.constant {value = dense<0.5> : tensor<4xf32>} : tensor<4xf32>
  %mean = graph.reduce_mean %x {axes = array<i64: -1>, keepdims = 1 : i64} : (tensor<2x4xf32>) -> tensor<2x1xf32>
  %c = graph.sub %x, %mean : (tensor<2x4xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
  %p = graph.pow %c, %two : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %v = graph.reduce_mean %p {axes = array<i64: -1>, keepdims = 1 : i64} : (tensor<2x4xf32>) -> tensor<2x1xf32>
  %ve = graph.add %v, %eps : (tensor<2x1xf32>, tensor<f32>) -> tensor<2x1xf32>
  %s = graph.sqrt %ve : (tensor<2x1xf32>) -> tensor<2x1xf32>
  %n = graph.div %c, %s : (tensor<2x4xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>
  %y = graph.mul %n, %g : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %z = graph.add %y, %b : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  func.return %z : tensor<2x4xf32>
}
// CHECK:     graph.layer_norm %x, %{{.*}}, %{{.*}} {axis = -1 : i64, epsilon = 1.000000e-05 : f32}
// CHECK-NOT: graph.reduce_mean
