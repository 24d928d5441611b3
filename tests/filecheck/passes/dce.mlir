// RUN: %myelin-opt %s -p dce | filecheck %s
func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %dead = graph.exp %x : (tensor<3xf32>) -> tensor<3xf32>
  %dead2 = graph.tanh %dead : (tensor<3xf32>) -> tensor<3xf32>
  %live = graph.sqrt %x : (tensor<3xf32>) -> tensor<3xf32>
  func.return %live : tensor<3xf32>
}
// CHECK-NOT:  graph.exp
// CHECK-NOT:  graph.tanh
// CHECK:      %live = graph.sqrt %x
