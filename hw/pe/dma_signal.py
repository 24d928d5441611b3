"""SignalSender: turns SIGNAL commands into single-flit SIGNAL packets."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.isa import Kind, Route, SignalMode
from hw.pe.dma_layouts import HEAD, check_arch
from hw.pe.interfaces import Coords, SignalCmd, flit_stream

__all__ = ["SignalSender"]


class SignalSender(wiring.Component):
    """One outbound SIGNAL packet per command.

    ``sig`` (stream of SignalCmd) is ready while no flit is pending.  Mode NODE
    sends to (x, y) = target bytes 0, 1 (route UNICAST); RECT to the rectangle
    x0, y0, x1, y1 = target bytes 0..3 (route RECT).  The packet is one flit
    (``first`` and ``last``), kind SIGNAL, ``len`` 0, src = ``coords``, with the
    command's ``sem`` and ``count`` (and ``signal`` = 1).  Any other mode (SELF never
    leaves the PE) pulses ``error`` and is dropped.  ``busy``: a flit is pending.
    """

    def __init__(self, arch: ArchConfig):
        check_arch(self, arch)
        super().__init__(
            {
                "sig": In(stream.Signature(SignalCmd)),
                "flit": Out(flit_stream()),
                "coords": In(Coords()),
                "error": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cmd = self.sig.payload
        head = Signal(HEAD)
        is_rect = cmd.mode == SignalMode.RECT
        target = cmd.target
        m.d.comb += [
            head.kind.eq(int(Kind.SIGNAL)),
            head.route.eq(Mux(is_rect, int(Route.RECT), int(Route.UNICAST))),
            head.x0.eq(target[0:8]),
            head.y0.eq(target[8:16]),
            head.x1.eq(Mux(is_rect, target[16:24], 0)),
            head.y1.eq(Mux(is_rect, target[24:32], 0)),
            head.src_x.eq(self.coords.x),
            head.src_y.eq(self.coords.y),
            head.sem.eq(cmd.sem),
            head.signal.eq(1),
            head.count.eq(cmd.count),
        ]
        pending = Signal()
        data = Signal.like(self.flit.payload.data)
        m.d.comb += [
            self.sig.ready.eq(~pending),
            self.flit.valid.eq(pending),
            self.flit.payload.data.eq(data),
            self.flit.payload.first.eq(1),
            self.flit.payload.last.eq(1),
            self.busy.eq(pending),
        ]
        with m.If(self.flit.valid & self.flit.ready):
            m.d.sync += pending.eq(0)
        with m.If(self.sig.valid & self.sig.ready):
            legal = (cmd.mode == SignalMode.NODE) | is_rect
            m.d.sync += [pending.eq(legal), data.eq(head)]
            m.d.comb += self.error.eq(~legal)
        return m
