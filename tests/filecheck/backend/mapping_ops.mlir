// RUN: python -m compiler.backend.opt %s | filecheck %s
// RUN: python -m compiler.backend.opt %s --lower | filecheck %s --check-prefix=LOWER

builtin.module {
  mapping.kernel @gemm attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "dram", offset = 0 : i64, bytes = 512 : i64}
    mapping.buffer {sym_name = "As", tensor = "A", space = "sram", offset = 0 : i64, bytes = 512 : i64, pes = array<i64: 0, 0, 1, 0>, live = array<i64: 0, 2>}
    mapping.buffer {sym_name = "Bs", tensor = "B", space = "sram", offset = 16384 : i64, bytes = 1024 : i64, pes = array<i64: 0, 0, 1, 0>}
    mapping.buffer {sym_name = "Cs", tensor = "C", space = "sram", offset = 4096 : i64, bytes = 256 : i64, pes = array<i64: 0, 0, 0, 0>}
    mapping.buffer {sym_name = "P", tensor = "params", space = "sram", offset = 8192 : i64, bytes = 160 : i64, pes = array<i64: 0, 0, 1, 0>}
    mapping.buffer {sym_name = "desc_0_0", tensor = "dma descriptors", space = "sram", offset = 30000 : i64, bytes = 96 : i64, pes = array<i64: 0, 0, 0, 0>}
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.transfer {local = @As, remote = @A, count = array<i64: 32, 1, 1>, sem = 0 : i64, read = 1 : i64}
      mapping.wait {sem = 0 : i64, count = 1 : i64}
      mapping.transfer {local = @As, remote = @As, count = array<i64: 32, 1, 1>, sem = 0 : i64, read = 0 : i64, signal = 1 : i64, to = array<i64: 1, 0, 1, 0>}
      mapping.matmul {a = @As, b = @Bs, c = @Cs, params = @P, tiles = array<i64: 2, 1>, k = 64 : i64, ldc = 16 : i64}
      mapping.signal {sem = 3 : i64, count = 1 : i64, to = array<i64: 1, 0, 1, 0>}
    }
  }
}

// CHECK:      mapping.kernel @gemm attributes {arch = "tiny"} {
// CHECK:        mapping.buffer {sym_name = "As", tensor = "A", space = "sram", offset = 0 : i64, bytes = 512 : i64, pes = array<i64: 0, 0, 1, 0>, live = array<i64: 0, 2>}
// CHECK:        mapping.pe attributes {pe = array<i64: 0, 0>} {
// CHECK-NEXT:     mapping.transfer {local = @As, remote = @A, count = array<i64: 32, 1, 1>, sem = 0 : i64, read = 1 : i64}
// CHECK-NEXT:     mapping.wait {sem = 0 : i64, count = 1 : i64}
// CHECK-NEXT:     mapping.transfer {{.*}}signal = 1 : i64, to = array<i64: 1, 0, 1, 0>}
// CHECK-NEXT:     mapping.matmul {a = @As, b = @Bs, c = @Cs, params = @P, tiles = array<i64: 2, 1>, k = 64 : i64, ldc = 16 : i64}
// CHECK-NEXT:     mapping.signal {sem = 3 : i64, count = 1 : i64, to = array<i64: 1, 0, 1, 0>}

// LOWER:      pe_isa.program @gemm_pe0_0 attributes {pe = array<i64: 0, 0>} {
// LOWER-NEXT:   pe_isa.segment {space = "sram", addr = 30000 : i64, ref = "gemm.pe0_0.desc0"}
// LOWER-NEXT:   pe_isa.segment {space = "sram", addr = 30048 : i64, ref = "gemm.pe0_0.desc1"}
// LOWER-NEXT:   pe_isa.dma rs1 = 0, imm = 30000
// LOWER-NEXT:   pe_isa.wait sem = 0, count = 1
// LOWER-NEXT:   pe_isa.dma rs1 = 0, imm = 30048
// LOWER-NEXT:   pe_isa.li rd = 1, imm = 0
// LOWER-NEXT:   pe_isa.li rd = 2, imm = 16384
// LOWER-NEXT:   pe_isa.li rd = 3, imm = 4096
// LOWER-NEXT:   pe_isa.li rd = 4, imm = 8192
// the tile loops: strides move A by K*R per m tile, C by R*ldc; the n loop resets them
// LOWER-NEXT:   pe_isa.lstride rd = 1, level = 0, slot = 0, imm = -512
// LOWER-NEXT:   pe_isa.lstride rd = 2, level = 0, slot = 1, imm = 1024
// LOWER-NEXT:   pe_isa.lstride rd = 3, level = 0, slot = 2, imm = -112
// LOWER-NEXT:   pe_isa.lstride rd = 4, level = 0, slot = 3, imm = 0
// LOWER-NEXT:   pe_isa.lstride rd = 1, level = 1, slot = 0, imm = 256
// LOWER-NEXT:   pe_isa.lstride rd = 3, level = 1, slot = 1, imm = 64
// LOWER-NEXT:   pe_isa.loop rs1 = 0, body = 4, imm = 1
// LOWER-NEXT:   pe_isa.qload rs1 = 4, imm = 0
// LOWER-NEXT:   pe_isa.loop rs1 = 0, body = 1, imm = 2
// LOWER-NEXT:   pe_isa.matmul rs1 = 1, rs2 = 2, rs3 = 3, k16 = 4, out32 = 0, acc = 0, noout = 0, ldc = 16
// LOWER-NEXT:   pe_isa.nop
// LOWER-NEXT:   pe_isa.li rd = 1, imm = 1
// LOWER-NEXT:   pe_isa.signal rs1 = 1, sem = 3, mode = 1, count = 1
// LOWER-NEXT:   pe_isa.halt
// LOWER-NEXT: }
