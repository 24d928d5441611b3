// RUN: %myelin-opt %s -p fold-constants,dce | filecheck %s
// Ops with constant operands are evaluated; ops reading an argument are not.

func.func @main(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %a = graph.constant {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : tensor<3xf32>
  %b = graph.constant {value = dense<[10.0, 20.0, 30.0]> : tensor<3xf32>} : tensor<3xf32>
  %s = graph.add %a, %b : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %m = graph.mul %s, %a : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %y = graph.add %x, %a : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  func.return %m, %y : tensor<3xf32>, tensor<3xf32>
}
// CHECK:      %m = graph.constant {value = dense<[1.100000e+01, 4.400000e+01, 9.900000e+01]> : tensor<3xf32>}
// CHECK-NOT:  graph.mul
// CHECK:      %y = graph.add %x, %a
