// RUN: python -m compiler.backend.opt %s --split-input-file | filecheck %s

builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "flash", offset = 0 : i64, bytes = 16 : i64}
  }
}
// CHECK: error: 'mapping.buffer' space must be sram or dram, not 'flash'

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "sram", offset = 0 : i64, bytes = 16 : i64}
  }
}
// CHECK: error: 'mapping.buffer' in sram needs attribute 'pes'

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "dram", offset = 8 : i64, bytes = 16 : i64}
  }
}
// CHECK: error: 'mapping.buffer' offset must be 16-aligned and >= 0

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.wait {sem = 1 : i64}
    }
  }
}
// CHECK: error: 'mapping.wait' needs attribute 'count'

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.signal {sem = 1 : i64, count = 1 : i64, to = array<i64: 1, 1, 0, 0>}
    }
  }
}
// CHECK: error: 'mapping.signal' attribute 'to' must be a rectangle [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, not [1, 1, 0, 0]

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.transfer {local = @X, remote = @Y, count = array<i64: 1, 1, 1>, sem = 0 : i64, read = 1 : i64}
    }
  }
}
// CHECK: error: 'mapping.transfer' on PE (0, 0): attribute 'local' names unknown buffer @X

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "dram", offset = 0 : i64, bytes = 16 : i64}
    mapping.pe attributes {pe = array<i64: 1, 0>} {
      mapping.transfer {local = @A, remote = @A, count = array<i64: 1, 1, 1>, sem = 0 : i64, read = 1 : i64, to = array<i64: 0, 0, 0, 1>}
    }
  }
}
// CHECK: error: 'mapping.transfer' on PE (1, 0): multicast read of @A to [0, 0, 0, 1]: the reading PE must be a corner of the rectangle

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "dram", offset = 0 : i64, bytes = 16 : i64}
    mapping.buffer {sym_name = "S", tensor = "S", space = "sram", offset = 0 : i64, bytes = 16 : i64, pes = array<i64: 0, 0, 1, 1>}
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.transfer {local = @A, remote = @S, count = array<i64: 1, 1, 1>, sem = 0 : i64, read = 1 : i64, to = array<i64: 0, 0, 1, 1>}
    }
  }
}
// CHECK: error: 'mapping.transfer' on PE (0, 0): a multicast read must read DRAM, not the SRAM buffer @S

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.buffer {sym_name = "A", tensor = "A", space = "dram", offset = 0 : i64, bytes = 16 : i64}
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.stream_matmul {a = @A, b = @A, c = @A, params = @A, tiles = array<i64: 1, 1>, k = 48 : i64, ldc = 16 : i64, a_src = @A, b_src = @A, kc = 16 : i64, sems = array<i64: 0, 1>}
    }
  }
}
// CHECK: error: 'mapping.stream_matmul' kc must be a multiple of 16 and k a multiple of 2*kc, not k=48, kc=16

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.wait {sem = 0 : i64, count = 1 : i64}
    }
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.wait {sem = 0 : i64, count = 1 : i64}
    }
  }
}
// CHECK: error: 'mapping.kernel' has two task lists for PE (0, 0)

// -----
builtin.module {
  mapping.kernel @k attributes {arch = "tiny"} {
    mapping.pe attributes {pe = array<i64: 0, 0>} {
      mapping.softmax {src = @A, dst = @A, tmp = @A, rows = 4 : i64, cols = 40 : i64, consts = array<i64: 1, 2, 3, 30>}
    }
  }
}
// CHECK: error: 'mapping.softmax' cols must be a multiple of 16 and rows a multiple of 4
