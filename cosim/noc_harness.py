"""The NoC traffic harness: the mesh RTL with every endpoint driven from a C++ Verilator main.

Per-flit Python is far too slow for 50,000-packet runs on an 8x8 mesh, so the
traffic generators, the endpoints (with random back-pressure) and the
scoreboard run in C++ (:data:`cosim.tb_noc.MAIN_CPP`, the testbench), linked
with the Verilated mesh into one executable per design
(built once and cached by :mod:`cosim.verilator`).  A run is configured by a
small ``key value`` file and writes one JSON object (see
:mod:`cosim.noc_traffic`, which owns both formats).

Design: ``noc_top`` (generated Verilog) instantiates ``noc_mesh``
(:class:`hw.noc.mesh.Mesh`, converted by Amaranth with its routers as instances
of one separately converted module ``myelin_router``) and renames its ports to
plain names that C++ can reach (Verilator mangles ``__``): endpoint ``e``
(tiles first, index ``y * mesh_cols + x``, then the outer ports in
:func:`hw.noc.mesh.edge_ports` order), class ``c`` (0 request, 1 response):

* ``e<e>_s<c>_valid``, ``e<e>_s<c>_data[129:0]`` in, ``e<e>_s<c>_ready`` out:
  the endpoint's sending stream (``out_req``/``out_resp``);
* ``e<e>_r<c>_valid``, ``e<e>_r<c>_data[129:0]`` out, ``e<e>_r<c>_ready`` in:
  its receiving stream (``in_req``/``in_resp``);
* ``drop_any``: OR of ``Mesh.drop``.

``data`` is the ``Flit`` struct: bits 0..127 ``data``, 128 ``first``, 129 ``last``.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape

from cosim import verilator as vl
from cosim.tb_noc import MAIN_CPP
from hw.arch import ArchConfig
from hw.isa import HEAD_FIELDS, Kind, MsgClass, Route
from hw.noc.mesh import Mesh, edge_ports
from hw.pe.interfaces import NocPort

__all__ = [
    "ROUTER_MODULE",
    "build_noc",
    "design_name",
    "endpoint_names",
    "main_cpp",
    "mesh_verilog",
]

REPO = Path(__file__).resolve().parent.parent
STREAMS = (("s", "out"), ("r", "in"))  # our prefix, NocPort direction
CLASSES = (("req", MsgClass.REQUEST), ("resp", MsgClass.RESPONSE))


def endpoint_names(arch: ArchConfig) -> list[str]:
    """Mesh port name of every endpoint, in endpoint index order."""
    tiles = [f"tile_{x}_{y}" for y in range(arch.mesh_rows) for x in range(arch.mesh_cols)]
    return tiles + [name for name, *_ in edge_ports(arch)]


def design_name(arch: ArchConfig) -> str:
    return f"{arch.name}-{arch.mesh_cols}x{arch.mesh_rows}"


def _source_hash(arch: ArchConfig) -> str:
    """Hash of the arch and of the syntax trees of the sources the mesh's Verilog
    depends on (so that reformatting them does not force a conversion)."""
    h = hashlib.sha256(repr(sorted(arch.to_dict().items())).encode())
    paths = [
        *(REPO / "hw" / "noc").glob("*.py"),
        REPO / "hw" / "tile.py",
        REPO / "hw" / "pe" / "interfaces.py",
        REPO / "hw" / "isa.py",
        REPO / "hw" / "arch.py",
    ]
    for path in sorted(paths):
        h.update(path.name.encode())
        h.update(ast.dump(ast.parse(path.read_text())).encode())
    return h.hexdigest()[:16]


ROUTER_MODULE = "myelin_router"  # the Verilog module of hw.noc.router.Router


def mesh_verilog(arch: ArchConfig) -> str:
    """Verilog of ``Mesh(arch)`` as module ``noc_mesh``, its routers instances of
    the module :data:`ROUTER_MODULE` (converted once, included in the text); cached
    on disk under build/cosim/verilog/ (keyed by the hw/noc sources and the arch)."""
    from hw.noc.router import Router, router_signature
    from hw.tile import blackbox

    path = vl.BUILD_ROOT / "verilog" / f"noc-{design_name(arch)}-{_source_hash(arch)}.v"
    if path.exists():
        return path.read_text()
    router = verilog.convert(Router(arch), name=ROUTER_MODULE, emit_src=False)
    mesh = Mesh(arch, router=blackbox(ROUTER_MODULE, router_signature(arch)))
    text = router + verilog.convert(mesh, name="noc_mesh", emit_src=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return text


def wrapper_verilog(arch: ArchConfig) -> str:
    """``noc_top``: ``noc_mesh`` with plain port names (see the module docstring)."""
    # from the port signature, not from a Mesh instance (an unused Elaboratable
    # warns when it is garbage-collected)
    port = {
        "__".join(p): Shape.cast(m.shape).width for p, m in NocPort().members.flatten() if m.is_port
    }
    widths = {f"{e}__{k}": w for e in endpoint_names(arch) for k, w in port.items()}
    widths["drop"] = arch.tiles
    ports, decls, conns = (
        ["clk", "rst", "drop_any"],
        ["  input wire clk;", "  input wire rst;", "  output wire drop_any;"],
        [],
    )
    for e, name in enumerate(endpoint_names(arch)):
        for ours, theirs in STREAMS:
            for c, (cls_name, _) in enumerate(CLASSES):
                for sub in ("valid", "payload", "ready"):
                    mesh_port = f"{name}__{theirs}_{cls_name}__{sub}"
                    width = widths[mesh_port]
                    plain = f"e{e}_{ours}{c}_{'data' if sub == 'payload' else sub}"
                    # the endpoint drives out.valid/payload and in.ready
                    driven = (ours == "s") != (sub == "ready")
                    rng = f"[{width - 1}:0] " if width > 1 else ""
                    decls.append(f"  {'input' if driven else 'output'} wire {rng}{plain};")
                    ports.append(plain)
                    conns.append(f"    .{mesh_port}({plain})")
    body = "\n".join(decls)
    return (
        "// Generated by cosim/noc_harness.py\n"
        f"module noc_top({', '.join(ports)});\n{body}\n"
        f"  wire [{widths['drop'] - 1}:0] drop;\n  assign drop_any = |drop;\n"
        "  noc_mesh u_mesh (\n    .clk(clk),\n    .rst(rst),\n    .drop(drop),\n"
        + ",\n".join(conns)
        + "\n  );\nendmodule\n"
    )


def _bindings(arch: ArchConfig) -> str:
    lines = []
    for e in range(len(endpoint_names(arch))):
        for c in range(2):
            p = f"e{e}_s{c}_"
            r = f"e{e}_r{c}_"
            lines.append(
                f"  P[{e}][{c}] = Port{{&t->{p}valid, &t->{p}data, &t->{p}ready, "
                f"&t->{r}valid, &t->{r}data, &t->{r}ready}};"
            )
    return "\n".join(lines)


def main_cpp(arch: ArchConfig) -> str:
    """The C++ main with this mesh's sizes, head-flit layout and port bindings."""
    defs = {
        "COLS": arch.mesh_cols,
        "ROWS": arch.mesh_rows,
        "NEP": len(endpoint_names(arch)),
        "KIND_REQ": int(Kind.WRITE),
        "KIND_RESP": int(Kind.READ_RESP),
        "ROUTE_UNICAST": int(Route.UNICAST),
        "ROUTE_RECT": int(Route.RECT),
    }
    for f in HEAD_FIELDS:
        defs[f"H_{f.name.upper()}_LO"] = f.lo
        defs[f"H_{f.name.upper()}_W"] = f.width
    header = "\n".join(f"#define {k} {v}" for k, v in defs.items())
    return MAIN_CPP.replace("/*DEFINES*/", header).replace("/*BINDINGS*/", _bindings(arch))


def build_noc(arch: ArchConfig) -> vl.Build:
    """The traffic executable for ``arch``'s mesh (built once, cached)."""
    from cosim.chip_harness import HIER_FLAGS, build_hier, hier_config

    sources = (
        ("router.vlt", hier_config(ROUTER_MODULE)),
        ("noc_mesh.v", mesh_verilog(arch)),
        ("noc_top.v", wrapper_verilog(arch)),
    )
    spec = vl.BuildSpec(
        design="noc",
        preset=design_name(arch),
        top="noc_top",
        sources=sources,
        kind="exe",
        main_cpp=main_cpp(arch),
        timing=False,
        extra_flags=HIER_FLAGS,
    )
    return build_hier(spec)
