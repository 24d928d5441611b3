// RUN: %myelin-opt %s -p cse,dce | filecheck %s
func.func @main(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) {
  %a = graph.softmax %x {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %b = graph.softmax %x {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %c = graph.softmax %x {axis = 0 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %s = graph.add %a, %b : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %s, %c : tensor<2x3xf32>, tensor<2x3xf32>
}
// CHECK:      %a = graph.softmax %x {axis = 1 : i64}
// CHECK-NEXT: %c = graph.softmax %x {axis = 0 : i64}
// CHECK-NEXT: %s = graph.add %a, %a
