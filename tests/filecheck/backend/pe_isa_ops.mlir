// RUN: python -m compiler.backend.opt %s | filecheck %s
// RUN: python -m compiler.backend.opt %s --emit-asm | filecheck %s --check-prefix=ASM

builtin.module {
  pe_isa.program @gemm_0_0 attributes {pe = array<i64: 0, 1>} {
    pe_isa.segment {space = "sram", addr = 4096 : i64, ref = "params"}
    pe_isa.segment {space = "dram", addr = 0 : i64, ref = "weights"}
    pe_isa.li rd = 1, imm = 4096
    pe_isa.lstride rd = 1, level = 0, slot = 0, imm = -64
    pe_isa.loop rs1 = 0, body = 1, imm = 8
    pe_isa.matmul rs1 = 1, rs2 = 2, rs3 = 3, k16 = 4, out32 = 0, acc = 1, noout = 0, ldc = 64
    pe_isa.vop rd = 3, rs1 = 1, rs2 = 11, n16 = 2, fn = 1, tin = 2, tout = 2, bscalar = 1
    pe_isa.dma rs1 = 0, imm = 32768
    pe_isa.wait sem = 2, count = 1
    pe_isa.signal rs1 = 1, sem = 3, mode = 2, count = 4
    pe_isa.halt
  }
}

// CHECK:      pe_isa.program @gemm_0_0 attributes {pe = array<i64: 0, 1>} {
// CHECK-NEXT:   pe_isa.segment {space = "sram", addr = 4096 : i64, ref = "params"}
// CHECK-NEXT:   pe_isa.segment {space = "dram", addr = 0 : i64, ref = "weights"}
// CHECK-NEXT:   pe_isa.li rd = 1, imm = 4096
// CHECK-NEXT:   pe_isa.lstride rd = 1, level = 0, slot = 0, imm = -64
// CHECK-NEXT:   pe_isa.loop rs1 = 0, body = 1, imm = 8
// CHECK-NEXT:   pe_isa.matmul rs1 = 1, rs2 = 2, rs3 = 3, k16 = 4, out32 = 0, acc = 1, noout = 0, ldc = 64
// CHECK-NEXT:   pe_isa.vop rd = 3, rs1 = 1, rs2 = 11, n16 = 2, fn = 1, tin = 2, tout = 2, bscalar = 1
// CHECK-NEXT:   pe_isa.dma rs1 = 0, imm = 32768
// CHECK-NEXT:   pe_isa.wait sem = 2, count = 1
// CHECK-NEXT:   pe_isa.signal rs1 = 1, sem = 3, mode = 2, count = 4
// CHECK-NEXT:   pe_isa.halt
// CHECK-NEXT: }

// ASM:      # gemm_0_0 at (0, 1)
// ASM-NEXT: li rd=x1, imm=4096
// ASM-NEXT: lstride rd=x1, level=0, slot=0, imm=-64
// ASM-NEXT: loop rs1=x0, body=1, imm=8
// ASM-NEXT: matmul rs1=x1, rs2=x2, rs3=x3, k16=4, acc=1, ldc=64
// ASM-NEXT: vop rd=x3, rs1=x1, rs2=x11, n16=2, fn=sub, tin=i32, tout=i32, bscalar=1
// ASM-NEXT: dma rs1=x0, imm=32768
// ASM-NEXT: wait sem=2, count=1
// ASM-NEXT: signal rs1=x1, sem=3, mode=rect, count=4
// ASM-NEXT: halt
