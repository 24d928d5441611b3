"""Cosim top wrappers: the Amaranth DUT top and the Verilog harness around it.

The harness (module ``cosim_top``) generates the clock in HDL (``always #5``,
built with ``--timing``), so no Python runs per clock cycle.  The testbench
talks to it through a few command registers, one command at a time:

    set ``cmd``, ``arg_base``, ``arg_count`` (and ``max_cycles`` for RUN),
    toggle ``req``; the command is finished when ``ack == req``.

Commands (``Cmd``):

* RESET: hold ``rst`` for 4 cycles (clears the PE; memories keep their contents).
* LOAD_IMEM / LOAD_SRAM: ``$readmemh("cosim_in.hex")`` into the staging buffer,
  then write ``arg_count`` words from address ``arg_base`` through the host port,
  one word per cycle (the host port's valid/ready protocol).
* LOAD_DRAM / DUMP_DRAM: ``$readmemh``/``$writememh`` straight into the DRAM
  storage array, which lives in the harness (see :class:`DramMemPort`), in one cycle.
* DUMP_SRAM: read ``arg_count`` words through the host port into the buffer, then
  ``$writememh("cosim_out.hex")``.
* RUN: pulse ``start``; wait for ``halted``, ``error != 0`` or ``max_cycles``
  cycles; ``status`` is 1 (halted), 2 (error) or 3 (timeout) and ``run_cycles``
  the cycles from the start edge to the edge that saw the end.  After ``halted``
  the PE keeps running for :func:`settle_cycles` cycles (packets still in the
  network may fault it: then the status is 2); ``run_cycles`` is not changed.
* DUMP_DBG: for sel in 0..arg_count-1 drive ``dbg_sel`` and capture ``dbg_data``
  (2 cycles settle time, so a registered debug mux works too), then write it.

The files are read and written in the simulator's working directory.  The DUT
is any Amaranth component with :func:`dut_signature` (the DRAM storage port is
optional), converted to a Verilog module named ``dut``.
"""

from __future__ import annotations

import enum

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.pe.interfaces import HostPort

__all__ = [
    "CLOCK_PERIOD_NS",
    "Cmd",
    "DramMemPort",
    "Status",
    "command_fsm",
    "design_sources",
    "dram_sim_words",
    "dut_signature",
    "harness_verilog",
]

CLOCK_PERIOD_NS = 10
DRAM_SIM_CAP_BYTES = 2**24  # DRAM capacity modelled in simulation (arch.dram_bytes capped)
IN_FILE = "cosim_in.hex"
OUT_FILE = "cosim_out.hex"


class Cmd(enum.IntEnum):
    IDLE = 0
    RESET = 1
    LOAD_IMEM = 2
    LOAD_SRAM = 3
    LOAD_DRAM = 4
    DUMP_SRAM = 5
    DUMP_DRAM = 6
    RUN = 7
    DUMP_DBG = 8


class Status(enum.IntEnum):
    NONE = 0
    HALTED = 1
    ERROR = 2
    TIMEOUT = 3


def settle_cycles(arch: ArchConfig) -> int:
    """Cycles RUN keeps simulating after ``halted`` so that packets still in flight
    (a SIGNAL or write to the PE itself, a DRAM answer) land and can fault the PE."""
    return 2 * arch.dram_latency + 4 * arch.max_packet_flits + 32


def dram_sim_words(arch: ArchConfig) -> int:
    """16-byte words of DRAM modelled in simulation (0 without a DRAM port)."""
    if arch.dram_ports == 0:
        return 0
    return min(arch.dram_bytes, DRAM_SIM_CAP_BYTES) // arch.word_bytes


class DramMemPort(wiring.Signature):
    """The simulated DRAM's storage port (requester's view: the network stand-in).

    The storage lives in the harness (an uninitialised Verilog array, so a
    large capacity costs neither Yosys nor Verilator time, and the backdoor is
    a ``$readmemh``/``$writememh`` of the array).  Always ready; with ``en`` and
    not ``we`` the word at ``addr`` is on ``rdata`` in the next cycle.
    """

    def __init__(self, arch: ArchConfig):
        super().__init__(
            {
                "en": Out(1),
                "we": Out(1),
                "addr": Out(max(1, (dram_sim_words(arch) - 1).bit_length())),
                "wdata": Out(arch.sram_port_bits),
                "rdata": In(arch.sram_port_bits),
            }
        )


def dut_signature(arch: ArchConfig, *, dram: bool = True) -> wiring.Signature:
    """The ports the harness expects of its DUT (besides ``clk`` and ``rst``)."""
    members = {
        "start": In(1),
        "running": Out(1),
        "halted": Out(1),
        "error": Out(3),
        "err_pc": Out(16),
        "dbg_sel": In(6),
        "dbg_data": Out(32),
        "host": In(HostPort(arch)),
    }
    if dram:
        members["dram"] = Out(DramMemPort(arch))
    return wiring.Signature(members)


def design_sources(dut: wiring.Component, arch: ArchConfig) -> tuple[tuple[str, str], ...]:
    """(file name, Verilog text) of the DUT (module ``dut``) and of the harness."""
    text = verilog.convert(dut, name="dut", emit_src=False)
    return (("dut.v", text), ("cosim_top.sv", harness_verilog(dut.signature, arch)))


def _ports(sig: wiring.Signature) -> dict[str, tuple[str, int]]:
    """Amaranth port name (``a__b``) -> (flow seen by the DUT, width)."""
    ports = {}
    for path, member in sig.members.flatten():
        if member.is_port:
            width = Shape.cast(member.shape).width
            ports["__".join(path)] = ("in" if member.flow == In else "out", width)
    return ports


def _decl(name: str, flow: str, width: int) -> str:
    rng = f"[{width - 1}:0] " if width > 1 else ""
    return f"  wire {rng}{name};" if flow == "out" else f"  reg {rng}{name} = 0;"


def harness_verilog(sig: wiring.Signature, arch: ArchConfig) -> str:
    """The SystemVerilog text of ``cosim_top`` for a DUT with signature ``sig``."""
    ports = _ports(sig)
    has_dram = any(n.startswith("dram__") for n in ports)
    decls = "\n".join(_decl(n, f, w) for n, (f, w) in ports.items())
    conns = ",\n".join(f"    .{n}({n})" for n in ports)
    p = {k.replace("__", "_"): k for k in ports}  # dram_en -> dram__en, ...
    names = dict(in_file=IN_FILE, out_file=OUT_FILE, **{f"C_{c.name}": int(c) for c in Cmd}, **p)
    dram_cases = _DRAM_CASES.format(**names) if has_dram else ""
    storage = _DRAM_STORAGE.format(dram_words=dram_sim_words(arch), **names) if has_dram else ""
    fsm = command_fsm(arch, start="1", all_halted="halted", dram_cases=dram_cases)
    return _HARNESS.format(
        decls=decls,
        conns=conns,
        dram_storage=storage,
        half=CLOCK_PERIOD_NS // 2,
        fsm=fsm,
    )


_DRAM_STORAGE = """
  reg [127:0] dram_mem [0:{dram_words}-1];
  always @(posedge clk)
    if ({dram_en}) begin
      if ({dram_we}) dram_mem[{dram_addr}] <= {dram_wdata};
      else {dram_rdata} <= dram_mem[{dram_addr}];
    end
"""

_DRAM_CASES = """
        {C_LOAD_DRAM}: begin
          $readmemh("{in_file}", dram_mem, arg_base, arg_base + arg_count - 1); finish = 1;
        end
        {C_DUMP_DRAM}: begin
          $writememh("{out_file}", dram_mem, arg_base, arg_base + arg_count - 1); finish = 1;
        end"""

_HARNESS = """// Generated by cosim/harness.py: the cosim top with the clock generated in HDL.
`timescale 1ns/1ps
module cosim_top (
  input  wire [3:0]  cmd        /*verilator public_flat_rw*/,
  input  wire        req        /*verilator public_flat_rw*/,
  input  wire [31:0] arg_base   /*verilator public_flat_rw*/,
  input  wire [31:0] arg_count  /*verilator public_flat_rw*/,
  input  wire [63:0] max_cycles /*verilator public_flat_rw*/,
  output reg         ack        /*verilator public_flat_rw*/,
  output reg  [1:0]  status     /*verilator public_flat_rw*/,
  output reg  [63:0] run_cycles /*verilator public_flat_rw*/,
  output reg  [63:0] cycle      /*verilator public_flat_rw*/,
  output wire [2:0]  pe_error   /*verilator public_flat_rw*/,
  output wire [15:0] pe_err_pc  /*verilator public_flat_rw*/
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
{dram_storage}
  assign pe_error = error;
  assign pe_err_pc = err_pc;
{fsm}endmodule
"""

# The command state machine shared by the PE and chip harnesses (cosim/chip_harness.py).
# Placeholders besides the command codes: {buf_words}, {init} (more initial
# assignments), {select} (more assignments when a command is taken), {dram_cases}
# (the LOAD_DRAM/DUMP_DRAM case items), {start} (the value pulsed on ``start``),
# {all_halted} (the run's end condition), {settle}, {in_file}, {out_file}.
FSM = """
  reg [127:0] buffer [0:{buf_words}-1];
  reg busy = 0;
  reg [31:0] i = 0;
  reg [31:0] j = 0;
  reg [1:0] k = 0;
  reg [63:0] t0 = 0;
  reg finish;
  initial begin ack = 0; status = 0; run_cycles = 0; cycle = 0;{init} end

  always @(posedge clk) begin
    cycle <= cycle + 1;
    start <= 0;
    finish = 0;
    if (!busy) begin
      if (req != ack) begin
        busy <= 1; i <= 0; j <= 0; k <= 0;{select}
        if (cmd == {C_LOAD_IMEM} || cmd == {C_LOAD_SRAM})
          if (arg_count != 0) $readmemh("{in_file}", buffer, 0, arg_count - 1);
      end
    end else begin
      case (cmd)
        {C_RESET}: begin
          rst <= 1; i <= i + 1;
          if (i == 4) begin rst <= 0; finish = 1; end
        end
        {C_LOAD_IMEM}, {C_LOAD_SRAM}: begin
          if (!host__valid || host__ready) begin
            if (i < arg_count) begin
              host__valid <= 1; host__we <= 1; host__imem <= (cmd == {C_LOAD_IMEM});
              host__addr <= arg_base + i; host__wdata <= buffer[i]; i <= i + 1;
            end else begin
              host__valid <= 0; host__we <= 0; host__imem <= 0; finish = 1;
            end
          end
        end
        {C_DUMP_SRAM}: begin
          if (!host__valid || host__ready) begin
            if (i < arg_count) begin
              host__valid <= 1; host__we <= 0; host__imem <= 0;
              host__addr <= arg_base + i; i <= i + 1;
            end else host__valid <= 0;
          end
          if (host__rvalid) begin buffer[j] <= host__rdata; j <= j + 1; end
          if (j == arg_count && !host__valid) begin
            $writememh("{out_file}", buffer, 0, arg_count - 1); finish = 1;
          end
        end{dram_cases}
        {C_RUN}: begin
          if (i == 0) begin
            start <= {start}; t0 <= cycle; i <= 1; status <= 0;
          end else if (error != 0) begin
            status <= 2; if (i == 1) run_cycles <= cycle - t0; finish = 1;
          end else if (i == 1 && cycle - t0 >= max_cycles) begin
            status <= 3; run_cycles <= cycle - t0; finish = 1;
          end else if (i == 1 && {all_halted}) begin
            run_cycles <= cycle - t0; i <= 2; j <= 0;
          end else if (i == 2) begin
            // halted: let packets still in the network land (they may fault the PE)
            j <= j + 1;
            if (j == {settle}) begin status <= 1; finish = 1; end
          end
        end
        {C_DUMP_DBG}: begin
          if (i < arg_count) begin
            dbg_sel <= i[5:0]; k <= k + 1;
            if (k == 2) begin buffer[i] <= {{96'b0, dbg_data}}; i <= i + 1; k <= 0; end
          end else begin
            $writememh("{out_file}", buffer, 0, arg_count - 1); finish = 1;
          end
        end
        default: finish = 1;
      endcase
      if (finish) begin busy <= 0; ack <= req; end
    end
  end
"""


def command_fsm(arch: ArchConfig, **parts: str) -> str:
    """The command state machine text (:data:`FSM`) for ``arch``; ``parts`` fill
    ``start``, ``all_halted`` and optionally ``init``, ``select``, ``dram_cases``."""
    names = {
        "buf_words": max(arch.sram_words, arch.imem_words, 64),
        "settle": settle_cycles(arch),
        "in_file": IN_FILE,
        "out_file": OUT_FILE,
        "init": "",
        "select": "",
        "dram_cases": "",
        **{f"C_{c.name}": int(c) for c in Cmd},
        **parts,
    }
    return FSM.format(**names)


class PeTop(wiring.Component):
    """The DUT of a single-PE cosim: ``hw.pe.pe.Pe`` at ``coords`` plus the network
    stand-in (:class:`cosim.netstub.NetStub`) with its DRAM storage port."""

    def __init__(self, arch: ArchConfig, coords: tuple[int, int] = (0, 0)):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        x, y = coords
        if not (0 <= x < arch.mesh_cols and 0 <= y < arch.mesh_rows):
            raise ValueError(
                f"coords must be inside the {arch.mesh_cols} x {arch.mesh_rows} "
                f"mesh, not {coords!r}"
            )
        self.arch = arch
        self.coords = (x, y)
        super().__init__(dut_signature(arch))

    def elaborate(self, platform):
        from amaranth import Module

        from cosim.netstub import NetStub
        from hw.pe.pe import Pe

        m = Module()
        m.submodules.pe = pe = Pe(self.arch)
        m.submodules.net = net = NetStub(self.arch, self.coords)
        wiring.connect(m, pe.noc, net.noc)
        wiring.connect(m, wiring.flipped(self.host), pe.host)
        wiring.connect(m, net.dram, wiring.flipped(self.dram))
        m.d.comb += [
            pe.coords.x.eq(self.coords[0]),
            pe.coords.y.eq(self.coords[1]),
            pe.start.eq(self.start),
            pe.dbg_sel.eq(self.dbg_sel),
            self.running.eq(pe.running),
            self.halted.eq(pe.halted),
            self.error.eq(pe.error),
            self.err_pc.eq(pe.err_pc),
            self.dbg_data.eq(pe.dbg_data),
        ]
        return m


def _source_hash(arch: ArchConfig, coords: tuple[int, int], kind: str) -> str:
    """Hash of everything the PE's Verilog depends on: hw/ and cosim/ sources, arch."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(repr((sorted(arch.to_dict().items()), coords, kind)).encode())
    for path in sorted(
        [*(root / "hw").rglob("*.py"), root / "cosim" / "harness.py", root / "cosim" / "netstub.py"]
    ):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def pe_sources(arch: ArchConfig, coords: tuple[int, int] = (0, 0)) -> tuple[tuple[str, str], ...]:
    """:func:`design_sources` of :class:`PeTop`, cached on disk (conversion takes
    tens of seconds) under build/cosim/verilog/, keyed by the hw/ sources and arch."""
    import json

    from cosim.verilator import BUILD_ROOT

    path = BUILD_ROOT / "verilog" / f"pe-{arch.name}-{_source_hash(arch, coords, 'pe')}.json"
    if path.exists():
        return tuple((n, t) for n, t in json.loads(path.read_text()))
    sources = design_sources(PeTop(arch, coords), arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{__import__('os').getpid()}.tmp")
    tmp.write_text(json.dumps(sources))
    tmp.replace(path)
    return sources


def build_pe(arch: ArchConfig, coords: tuple[int, int] = (0, 0)):
    """The cocotb Verilator model of :class:`PeTop` (built once, cached)."""
    from cosim import verilator as vl

    spec = vl.BuildSpec(
        design="pe",
        preset=arch.name,
        top="cosim_top",
        sources=pe_sources(arch, coords),
        waves=vl.waves_enabled(),
    )
    return vl.build(spec)
