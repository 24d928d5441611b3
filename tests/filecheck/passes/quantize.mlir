// RUN: %python -c "import numpy as np; r = np.random.default_rng(5); np.savez('%t.npz', x=r.standard_normal((4, 2, 3)).astype(np.float32), i=np.zeros((4, 2), np.int64))"
// RUN: %myelin-opt %s -p 'quantize{calibration="%t.npz"},dce' | filecheck %s
// The float matmul + relu becomes integer-only with an int8 input (the default
// mac-input-bits=8); the integer index arithmetic must not
// be touched.

func.func @main(%x: tensor<2x3xf32>, %i: tensor<2xi64>) -> (tensor<2x4xf32>, tensor<2xi64>) {
  %w = graph.constant {value = dense<[[0.5, -1.0, 0.25, 2.0], [1.0, 0.0, -0.5, 1.5], [-2.0, 1.0, 0.75, 0.0]]> : tensor<3x4xf32>} : tensor<3x4xf32>
  %b = graph.constant {value = dense<[0.1, 0.2, 0.3, 0.4]> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.fused_matmul %x, %w, %b {act = "relu"} : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %one = graph.constant {value = dense<1> : tensor<2xi64>} : tensor<2xi64>
  %j = graph.add %i, %one : (tensor<2xi64>, tensor<2xi64>) -> tensor<2xi64>
  func.return %m, %j : tensor<2x4xf32>, tensor<2xi64>
}
// CHECK: builtin.module attributes {myelin.float_ops = []}
// CHECK: qnt.quantize %x : (tensor<2x3xf32>) -> tensor<2x3xi8, #qnt.q<
// CHECK: qnt.matmul {{.*}} {act = "relu"} : (tensor<2x3xi8, #qnt.q<{{.*}}>>, tensor<3x4xi8>, tensor<4xi32>, tensor<4xi32>, tensor<4xi32>) -> tensor<2x4xi8, #qnt.q<
// CHECK: qnt.dequantize
// CHECK: %j = graph.add %i, %one : (tensor<2xi64>, tensor<2xi64>) -> tensor<2xi64>
