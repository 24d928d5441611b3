// RUN: %myelin-opt %s | %myelin-opt - | filecheck %s
// Round trip of every graph op through its text form.

func.func @main(%x: tensor<2x3xf32>, %c: tensor<2x3xi1>, %img: tensor<1x3x8x8xf32>, %ids: tensor<2xi64>) -> tensor<2x3xf32> {
  %w = graph.weight {ref = "w0"} : tensor<3x4xf32>
  %k = graph.constant {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : tensor<3xf32>
  %add = graph.add %x, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %sub = graph.sub %add, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %mul = graph.mul %sub, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %div = graph.div %mul, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %pow = graph.pow %div, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %sel = graph.where %c, %pow, %x : (tensor<2x3xi1>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %e = graph.erf %sel : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %t = graph.tanh %e : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %s = graph.sigmoid %t : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %q = graph.sqrt %s : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %ex = graph.exp %q : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %r = graph.round %ex : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %g = graph.gelu %r {approximate = "tanh"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %ci = graph.cast %g : (tensor<2x3xf32>) -> tensor<2x3xi32>
  %sm = graph.softmax %g {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %mm = graph.matmul %sm, %w : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  %b4 = graph.constant {value = dense<0.5> : tensor<4xf32>} : tensor<4xf32>
  %fm = graph.fused_matmul %sm, %w, %b4 {act = "relu"} : (tensor<2x3xf32>, tensor<3x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %cw = graph.weight {ref = "cw"} : tensor<4x3x3x3xf32>
  %cb = graph.constant {value = dense<0.0> : tensor<4xf32>} : tensor<4xf32>
  %cv = graph.conv %img, %cw, %cb {pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>, act = "relu"} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
  %mp = graph.max_pool %cv {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
  %ap = graph.avg_pool %mp {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x4x4x4xf32>) -> tensor<1x4x2x2xf32>
  %rm = graph.reduce_mean %ap {axes = array<i64: 2, 3>, keepdims = 1 : i64} : (tensor<1x4x2x2xf32>) -> tensor<1x4x1x1xf32>
  %rs = graph.reduce_sum %x {axes = array<i64: 1>, keepdims = 0 : i64} : (tensor<2x3xf32>) -> tensor<2xf32>
  %rx = graph.reduce_max %x {axes = array<i64: 0>} : (tensor<2x3xf32>) -> tensor<1x3xf32>
  %ln = graph.layer_norm %x, %k, %k {axis = -1 : i64, epsilon = 1.0e-05 : f32} : (tensor<2x3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %rh = graph.reshape %ln : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %ep = graph.expand %k : (tensor<3xf32>) -> tensor<2x3xf32>
  %tp = graph.transpose %rh {perm = array<i64: 1, 0>} : (tensor<3x2xf32>) -> tensor<2x3xf32>
  %cc = graph.concat %tp, %ep {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
  %sl = graph.slice %cc {starts = array<i64: 1, 0>, ends = array<i64: 3, 3>, steps = array<i64: 1, 1>} : (tensor<4x3xf32>) -> tensor<2x3xf32>
  %pd = graph.pad %sl {low = array<i64: 0, 0>, high = array<i64: 2, 1>} : (tensor<2x3xf32>) -> tensor<4x4xf32>
  %ga = graph.gather %pd, %ids {axis = 0 : i64} : (tensor<4x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
  %rl = tosa.clamp %sl {min_val = 0.0 : f32, max_val = 3.4e+38 : f32} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %rl : tensor<2x3xf32>
}

// CHECK:      %w = graph.weight {ref = "w0"} : tensor<3x4xf32>
// CHECK-NEXT: %k = graph.constant {value = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>} : tensor<3xf32>
// CHECK-NEXT: %add = graph.add %x, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK:      %sel = graph.where %c, %pow, %x
// CHECK:      %g = graph.gelu %r {approximate = "tanh"}
// CHECK:      %ci = graph.cast %g : (tensor<2x3xf32>) -> tensor<2x3xi32>
// CHECK:      %fm = graph.fused_matmul %sm, %w, %b4 {act = "relu"}
// CHECK:      %cv = graph.conv %img, %cw, %cb {pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>, act = "relu"}
// CHECK:      %mp = graph.max_pool %cv {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x4x8x8xf32>) -> tensor<1x4x4x4xf32>
// CHECK:      %rs = graph.reduce_sum %x {axes = array<i64: 1>, keepdims = 0 : i64} : (tensor<2x3xf32>) -> tensor<2xf32>
// CHECK:      %ln = graph.layer_norm %x, %k, %k {axis = -1 : i64, epsilon = 1.000000e-05 : f32}
// CHECK:      %cc = graph.concat %tp, %ep {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
// CHECK:      %pd = graph.pad %sl {low = array<i64: 0, 0>, high = array<i64: 2, 1>}
// CHECK:      %ga = graph.gather %pd, %ids {axis = 0 : i64} : (tensor<4x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
// CHECK:      %rl = tosa.clamp %sl
// CHECK:      func.return %rl : tensor<2x3xf32>
