// RUN: python -m compiler.backend.opt %s --split-input-file | filecheck %s

builtin.module {
  pe_isa.program @p attributes {pe = array<i64: 0, 0>} {
    pe_isa.matmul rs1 = 1, rs2 = 2, rs3 = 3, k16 = 0, ldc = 64
  }
}
// CHECK: error: 'pe_isa.matmul': MATMUL k16 must be 1..4095, not 0

// -----
builtin.module {
  pe_isa.program @p attributes {pe = array<i64: 0, 0>} {
    pe_isa.li rd = 16, imm = 0
  }
}
// CHECK: error: 'pe_isa.li': field 'rd' in LI must be in 0..15 (4 bits), not 16

// -----
builtin.module {
  pe_isa.program @p attributes {pe = array<i64: 0, 0>} {
    pe_isa.wait sem = 1, count = 1, imm = 3
  }
}
// CHECK: error: 'pe_isa.wait' expects one of the fields sem, count

// -----
builtin.module {
  pe_isa.program @p attributes {pe = array<i64: 0, 0>} {
    pe_isa.vop rd = 1, rs1 = 1, rs2 = 1, n16 = 1, fn = 16, tin = 0, tout = 0
  }
}
// CHECK: error: 'pe_isa.vop': VOP RSUM writes int32: tout must be 2 (i32)

// -----
builtin.module {
  pe_isa.program @p attributes {pe = array<i64: 0, 0>} {
    pe_isa.halt
    pe_isa.segment {space = "sram", addr = 0 : i64, ref = "x"}
  }
}
// CHECK: error: 'pe_isa.program' segments must precede the instructions

// -----
builtin.module {
  pe_isa.program @p attributes {pe = array<i64: 0, 0>} {
    pe_isa.segment {space = "sram", addr = 8 : i64, ref = "x"}
  }
}
// CHECK: error: 'pe_isa.segment' addr must be 16-aligned and >= 0, not 8
