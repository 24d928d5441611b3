// RUN: %myelin-opt %s -p decompose-composites | filecheck %s
// Division by a constant becomes a multiplication; division by a value must not.

func.func @main(%x: tensor<4xf32>, %y: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %c = graph.constant {value = dense<4.0> : tensor<f32>} : tensor<f32>
  %a = graph.div %x, %c : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %b = graph.div %x, %y : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %two = graph.constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
  %p = graph.pow %x, %two : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  func.return %a, %b, %p : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}
// CHECK:      graph.constant {value = dense<2.500000e-01> : tensor<f32>}
// CHECK-NEXT: %[[A:.*]] = graph.mul %x, %{{.*}} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
// CHECK:      %b = graph.div %x, %y
// CHECK:      %[[P:.*]] = graph.mul %x, %x
// CHECK:      func.return %[[A]], %b, %[[P]]
