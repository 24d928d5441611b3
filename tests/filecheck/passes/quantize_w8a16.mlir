// RUN: %python -c "import numpy as np; r = np.random.default_rng(5); np.savez('%t.npz', x=r.standard_normal((4, 2, 3)).astype(np.float32))"
// RUN: %myelin-opt %s -p 'quantize{calibration="%t.npz" mac-input-bits=16},dce' | filecheck %s
// With mac-input-bits=16 a matmul input stays 16-bit when K < 512 (the int32
// accumulator cannot overflow); the default keeps it int8 (quantize.mlir).

func.func @main(%x: tensor<2x3xf32>) -> tensor<2x4xf32> {
  %w = graph.constant {value = dense<[[0.5, -1.0, 0.25, 2.0], [1.0, 0.0, -0.5, 1.5], [-2.0, 1.0, 0.75, 0.0]]> : tensor<3x4xf32>} : tensor<3x4xf32>
  %b = graph.constant {value = dense<[0.1, 0.2, 0.3, 0.4]> : tensor<4xf32>} : tensor<4xf32>
  %m = graph.fused_matmul %x, %w, %b {act = "none"} : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  func.return %m : tensor<2x4xf32>
}
// CHECK: qnt.quantize %x : (tensor<2x3xf32>) -> tensor<2x3xi16, #qnt.q<
// CHECK: qnt.matmul {{.*}} : (tensor<2x3xi16, #qnt.q<{{.*}}>>, tensor<3x4xi8>
