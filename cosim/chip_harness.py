"""Cosim top of the whole chip: ``ChipTop`` (Chip + DRAM endpoints) and its Verilog harness.

The harness (module ``cosim_top``) generates the clock in HDL, like the single-PE
harness of cosim/harness.py, and is driven by the same command protocol: set
``cmd``, ``arg_tile``, ``arg_base``, ``arg_count`` (``start_mask``/``max_cycles``
for RUN), toggle ``req``; the command is finished when ``ack == req``.

Commands (:class:`cosim.harness.Cmd`, the same codes):

* RESET: ``rst`` for 4 cycles (memories keep their contents).
* LOAD_IMEM / LOAD_SRAM: ``$readmemh("cosim_in.hex")``, then ``arg_count`` words from
  word ``arg_base`` into PE ``arg_tile`` through the chip's load bus, one per cycle.
* LOAD_DRAM / DUMP_DRAM: backdoor ``$readmemh``/``$writememh`` of DRAM port ``arg_tile``.
* DUMP_SRAM: ``arg_count`` words of PE ``arg_tile`` into ``cosim_out.hex``.
* RUN: pulse ``start`` for the PEs of ``start_mask``; end when every one of them is
  halted (status 1, after :func:`cosim.harness.settle_cycles` more cycles in which
  an error still turns it into status 2), when any PE has an error (status 2), or
  after ``max_cycles`` (status 3: the watchdog).  ``run_cycles``: start edge to the
  edge that saw the end.
* DUMP_DBG: ``dbg_sel`` 0..arg_count-1 of PE ``arg_tile`` into ``cosim_out.hex``.

Outputs besides the command ones: ``pe_halted[T-1:0]``, ``pe_errors[3T-1:0]`` (3 bits
per tile t = y * mesh_cols + x), ``pe_err_pcs[16T-1:0]``, ``pe_halt_cycles[32T-1:0]`` (cycles
from the RUN start edge to each tile's first halted cycle; 0 while it runs).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from cosim.harness import (
    CLOCK_PERIOD_NS,
    IN_FILE,
    OUT_FILE,
    Cmd,
    DramMemPort,
    _decl,
    _ports,
    command_fsm,
    dram_sim_words,
)
from hw.arch import ArchConfig
from hw.pe.controller import ERR_PC_BITS
from hw.pe.interfaces import HostPort
from hw.pe.pe import DBG_SEL_BITS

__all__ = [
    "MAX_TILES",
    "TILE_MODULE",
    "ChipTop",
    "build_chip",
    "chip_sources",
    "chip_verilog",
    "dut_verilog",
    "build_hier",
    "hier_config",
    "tile_verilog",
]

MAX_TILES = 64  # start_mask width of the harness
STRESS_PORTS = ("stress_en", "stress_seed")  # cosim/dram.py stress mode, cosim_top inputs


TILE_MODULE = "myelin_tile"  # the Verilog module of hw.tile.Tile (one for all positions)


class ChipTop(wiring.Component):
    """``hw.chip.Chip`` with a :class:`cosim.dram.DramEndpoint` on every DRAM port and
    an ``EdgeSink`` on the host port; the DRAM storage ports ``dram_<p>`` go out.

    ``tile`` is passed to ``Chip`` (``hw.tile.Tile``, or ``hw.tile.blackbox`` for
    Verilog with the tile module converted once); ``stress``: the DRAM endpoints'
    stress mode (cosim/dram.py) with ``stress_en``/``stress_seed`` inputs."""

    def __init__(self, arch: ArchConfig, tile=None, *, stress: bool = False):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        if arch.tiles > MAX_TILES:
            raise ValueError(
                f"arch must have at most {MAX_TILES} tiles for cosim, not {arch.tiles}"
            )
        self.arch = arch
        self._tile = tile
        self.stress = bool(stress)
        t = arch.tiles
        members = {
            "start": In(t), "running": Out(t), "halted": Out(t),
            "error": Out(data.ArrayLayout(3, t)),
            "err_pc": Out(data.ArrayLayout(ERR_PC_BITS, t)),
            "host": In(HostPort(arch)), "host_tile": In(range(t)),
            "dbg_tile": In(range(t)), "dbg_sel": In(DBG_SEL_BITS), "dbg_data": Out(32),
        }  # fmt: skip
        for p in range(arch.dram_ports):
            members[f"dram_{p}"] = Out(DramMemPort(arch))
        if self.stress:
            members.update(stress_en=In(1), stress_seed=In(32))
        super().__init__(members)

    def elaborate(self, platform):
        from cosim.dram import DramEndpoint
        from hw.chip import Chip, EdgeSink
        from hw.isa import host_node

        m = Module()
        arch = self.arch
        m.submodules.chip = chip = Chip(arch) if self._tile is None else Chip(arch, self._tile)
        for p in range(arch.dram_ports):
            m.submodules[f"dram_ep_{p}"] = ep = DramEndpoint(arch, p, stress=self.stress)
            wiring.connect(m, ep.noc, getattr(chip, f"dram_{p}"))
            wiring.connect(m, ep.mem, wiring.flipped(getattr(self, f"dram_{p}")))
            if self.stress:
                m.d.comb += [ep.stress_en.eq(self.stress_en), ep.stress_seed.eq(self.stress_seed)]
        m.submodules.host_sink = sink = EdgeSink(arch, host_node(arch))
        wiring.connect(m, sink.noc, chip.host_noc)
        wiring.connect(m, wiring.flipped(self.host), chip.host)
        m.d.comb += [
            chip.start.eq(self.start), self.running.eq(chip.running),
            self.halted.eq(chip.halted), self.error.eq(chip.error),
            self.err_pc.eq(chip.err_pc), chip.host_tile.eq(self.host_tile),
            chip.dbg_tile.eq(self.dbg_tile), chip.dbg_sel.eq(self.dbg_sel),
            self.dbg_data.eq(chip.dbg_data),
        ]  # fmt: skip
        return m


def chip_verilog(sig: wiring.Signature, arch: ArchConfig) -> str:
    """SystemVerilog text of ``cosim_top`` around a DUT with :class:`ChipTop`'s signature."""
    ports = _ports(sig)
    t = arch.tiles
    # the stress controls are inputs of cosim_top (set by the testbench), not harness regs
    decls = "\n".join(_decl(n, f, w) for n, (f, w) in ports.items() if n not in STRESS_PORTS)
    stress = "stress_en" in ports
    conns = ",\n".join(f"    .{n}({n})" for n in ports)
    storage, load_cases, dump_cases = [], [], []
    for p in range(arch.dram_ports):
        storage.append(_STORAGE.format(p=p, words=dram_sim_words(arch)))
        load_cases.append(
            f'            {p}: $readmemh("{IN_FILE}", dram_mem_{p}, arg_base, '
            f"arg_base + arg_count - 1);"
        )
        dump_cases.append(
            f'            {p}: $writememh("{OUT_FILE}", dram_mem_{p}, arg_base, '
            f"arg_base + arg_count - 1);"
        )
    names = {f"C_{c.name}": int(c) for c in Cmd}
    tbits = max(1, (t - 1).bit_length())
    dram_cases = _DRAM_CASES.format(
        load_cases="\n".join(load_cases), dump_cases="\n".join(dump_cases), **names
    )
    fsm = command_fsm(
        arch,
        start="mask",
        all_halted="(halted & mask) == mask",
        init=" pe_halt_cycles = 0;",
        select=f"\n        host_tile <= arg_tile[{tbits}-1:0]; dbg_tile <= arg_tile[{tbits}-1:0];",
        dram_cases=dram_cases,
    )
    return _HARNESS.format(
        decls=decls,
        conns=conns,
        storage="".join(storage),
        tiles=t,
        half=CLOCK_PERIOD_NS // 2,
        stress_ports=_STRESS_INPUTS if stress else "",
        fsm=fsm,
        **names,
    )


_DRAM_CASES = """
        {C_LOAD_DRAM}: begin
          case (arg_tile)
{load_cases}
            default: ;
          endcase
          finish = 1;
        end
        {C_DUMP_DRAM}: begin
          case (arg_tile)
{dump_cases}
            default: ;
          endcase
          finish = 1;
        end"""

_STRESS_INPUTS = """,
  input  wire        stress_en   /*verilator public_flat_rw*/,
  input  wire [31:0] stress_seed /*verilator public_flat_rw*/"""

_STORAGE = """
  reg [127:0] dram_mem_{p} [0:{words}-1];
  always @(posedge clk)
    if (dram_{p}__en) begin
      if (dram_{p}__we) dram_mem_{p}[dram_{p}__addr] <= dram_{p}__wdata;
      else dram_{p}__rdata <= dram_mem_{p}[dram_{p}__addr];
    end
"""

_HARNESS = """// Generated by cosim/chip_harness.py: the chip cosim top, clock generated in HDL.
`timescale 1ns/1ps
module cosim_top (
  input  wire [3:0]  cmd        /*verilator public_flat_rw*/,
  input  wire        req        /*verilator public_flat_rw*/,
  input  wire [7:0]  arg_tile   /*verilator public_flat_rw*/,
  input  wire [31:0] arg_base   /*verilator public_flat_rw*/,
  input  wire [31:0] arg_count  /*verilator public_flat_rw*/,
  input  wire [63:0] start_mask /*verilator public_flat_rw*/,
  input  wire [63:0] max_cycles /*verilator public_flat_rw*/,
  output reg         ack        /*verilator public_flat_rw*/,
  output reg  [1:0]  status     /*verilator public_flat_rw*/,
  output reg  [63:0] run_cycles /*verilator public_flat_rw*/,
  output reg  [63:0] cycle      /*verilator public_flat_rw*/,
  output wire [{tiles}-1:0] pe_halted /*verilator public_flat_rw*/,
  output wire [3*{tiles}-1:0] pe_errors /*verilator public_flat_rw*/,
  output wire [16*{tiles}-1:0] pe_err_pcs /*verilator public_flat_rw*/,
  output reg  [32*{tiles}-1:0] pe_halt_cycles /*verilator public_flat_rw*/{stress_ports}
);
  reg clk = 1'b0;
  always #{half} clk = ~clk;
  reg rst = 1'b1;
{decls}

  dut u_dut (
    .clk(clk),
    .rst(rst),
{conns}
  );
{storage}
  assign pe_halted = halted;
  assign pe_errors = error;
  assign pe_err_pcs = err_pc;
  wire [{tiles}-1:0] mask = start_mask[{tiles}-1:0];
{fsm}
  // per tile: cycles from the start edge to its first halted cycle (0 = not halted)
  always @(posedge clk)
    if (busy && cmd == {C_RUN}) begin
      if (i == 0) pe_halt_cycles <= 0;
      else if (i == 1)
        for (integer q = 0; q < {tiles}; q = q + 1)
          if (halted[q] && pe_halt_cycles[32*q +: 32] == 0)
            pe_halt_cycles[32*q +: 32] <= cycle - t0;
    end
endmodule
"""


def _source_hash(arch: ArchConfig) -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(repr(sorted(arch.to_dict().items())).encode())
    files = [
        *(root / "hw").rglob("*.py"),
        *(root / "cosim" / n for n in ("harness.py", "netstub.py", "dram.py", "chip_harness.py")),
    ]
    for path in sorted(files):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def tile_verilog(arch: ArchConfig) -> str:
    """Verilog of ``hw.tile.Tile(arch)`` as module :data:`TILE_MODULE` (and its
    submodules, all named ``myelin_tile.*``)."""
    from hw.tile import Tile

    return verilog.convert(Tile(arch), name=TILE_MODULE, emit_src=False)


def hier_config(module: str) -> str:
    """A Verilator configuration file (``.vlt``) that makes ``module`` a hierarchical
    block (build with ``--hierarchical``, :data:`HIER_FLAGS`).

    Verilator 5 orders the logic of all instances together and emits specialised
    C++ per instance of a plain module (measured: 30 MB of tile C++ for the 2 x 2
    chip, 161 MB for the 4 x 4 one); a hierarchical block is Verilated and compiled
    once, into a library that every instance uses.
    """
    return f'`verilator_config\nhier_block -module "{module}"\n'


HIER_FLAGS = ("--hierarchical",)


def build_hier(spec):
    """``cosim.verilator.build`` of a spec whose sources mark a hierarchical block
    (:func:`hier_config`); the flags are :data:`HIER_FLAGS`."""
    from cosim import verilator as vl

    return vl.build(spec)


def dut_verilog(arch: ArchConfig, stress: bool = False) -> str:
    """Verilog of :class:`ChipTop` (module ``dut``) whose tiles are instances of
    :data:`TILE_MODULE` (port names from the Tile's signature, see
    ``hw.tile.instance_ports``)."""
    from hw.tile import blackbox, tile_signature

    top = ChipTop(arch, tile=blackbox(TILE_MODULE, tile_signature(arch)), stress=stress)
    return verilog.convert(top, name="dut", emit_src=False)


def chip_sources(arch: ArchConfig, stress: bool = False) -> tuple[tuple[str, str], ...]:
    """(file, text) of the Verilator configuration :func:`hier_config`, the tile
    module, :class:`ChipTop` (module ``dut``, the tile instantiated per position)
    and ``cosim_top``; cached on disk under build/cosim/verilog/.  ``stress``: the
    variant with the DRAM endpoints' stress mode (``stress_en``/``stress_seed`` inputs)."""
    from cosim.verilator import BUILD_ROOT

    key = repr(sorted(arch.to_dict().items())) + ("stress" if stress else "")
    if key in _MEMO:  # hw/ may change under a long-running process: keep one version
        return _MEMO[key]
    variant = "-stress" if stress else ""
    path = BUILD_ROOT / "verilog" / f"chip-{arch.name}{variant}-{_source_hash(arch)}.json"
    if path.exists():
        _MEMO[key] = tuple((n, t) for n, t in json.loads(path.read_text()))
        return _MEMO[key]
    sources = (
        ("tile.vlt", hier_config(TILE_MODULE)),
        ("tile.v", tile_verilog(arch)),
        ("dut.v", dut_verilog(arch, stress)),
        ("cosim_top.sv", chip_verilog(_chiptop_signature(arch, stress), arch)),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sources))
    tmp.replace(path)
    _MEMO[key] = sources
    return sources


_MEMO: dict[str, tuple[tuple[str, str], ...]] = {}


def _chiptop_signature(arch: ArchConfig, stress: bool = False) -> wiring.Signature:
    top = ChipTop(arch, stress=stress)
    top._MustUse__silence = True  # only its signature is wanted
    return top.signature


def build_chip(arch: ArchConfig, kind: str = "cocotb", main_cpp: str = "", stress: bool = False):
    """The Verilator model of the chip cosim top (built once, cached); ``stress``: the
    stress-mode variant (a build of its own, design name ``chip-stress``)."""
    from cosim import verilator as vl

    spec = vl.BuildSpec(
        design="chip-stress" if stress else "chip",
        preset=arch.name,
        top="cosim_top",
        kind=kind,
        main_cpp=main_cpp,
        sources=chip_sources(arch, stress),
        waves=vl.waves_enabled() and kind == "cocotb",
        extra_flags=HIER_FLAGS,
    )
    return build_hier(spec)
