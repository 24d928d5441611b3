"""The processing element: controller, semaphores, banked SRAM and the three units.

Block diagram (docs/pe.md has the full description)::

    host ──► imem (controller) / SRAM port 9
    controller ──cmd──► MacUnit ─┐
               ──cmd/cfg──► VectorUnit ─┤ SRAM ports 0..5 ─► BankedSram
               ──LW/SW─────────────────┤ port 6
               ──dma/sig──► DmaEngine ─┘ ports 7, 8 ◄──► NoC
               ──sem_inc/wait──► Semaphores ◄── DmaEngine.sem_inc

SRAM port priority (lowest index wins a bank): :data:`SRAM_PORTS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from amaranth import Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arch import ArchConfig
from hw.errors import ConfigError
from hw.isa import RD, SEM_ID
from hw.pe.controller import ERR_PC_BITS, Controller
from hw.pe.interfaces import Coords, HostPort, NocPort, word_addr_bits
from hw.pe.semaphores import Semaphores
from hw.pe.sram import BankedSram

__all__ = ["DBG_PC", "DBG_REGS", "DBG_SEMS", "SRAM_PORTS", "UNITS", "Pe"]

# SRAM requester ports in priority order (index 0 wins a bank).
# The DMA's descriptor fetch comes first: a DMA instruction waits for it, and with
# nowait commands a MAC or vector stream on the descriptor's bank would otherwise hold
# the controller for the whole command (the streams lose 3 cycles per descriptor).
SRAM_PORTS = (
    "dma_desc", "mac_a", "mac_b", "mac_c", "vec_a", "vec_b", "vec_d", "ctrl", "dma_wr",
    "dma_rd", "host",
)  # fmt: skip
# Debug selector: dbg_sel in [DBG_REGS, DBG_SEMS) register, [DBG_SEMS, DBG_PC) semaphore, DBG_PC.
DBG_REGS, DBG_SEMS, DBG_PC = 0, 16, 48
DBG_SEL_BITS = 6
# The units, by role: (module, class).  Imported when a Pe is elaborated.
UNITS = {
    "mac": ("hw.pe.mac_unit", "MacUnit"),
    "vec": ("hw.pe.vector_unit", "VectorUnit"),
    "dma": ("hw.pe.dma", "DmaEngine"),
}


def unit_class(role: str) -> Callable[[ArchConfig], wiring.Component]:
    """The class of a unit (``mac``, ``vec``, ``dma``); ConfigError if it is missing."""
    module_name, class_name = UNITS[role]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        msg = f"PE unit {role!r} needs {module_name}.{class_name}, which does not exist yet"
        raise ConfigError(msg) from None
    return getattr(module, class_name)


class Pe(wiring.Component):
    """One processing element.

    ``units`` maps a role (``mac``, ``vec``, ``dma``) to a constructor taking the
    ArchConfig; roles not given use the real units of :data:`UNITS`.  (Unit tests
    pass small protocol models here; hw/ never does.)
    """

    def __init__(self, arch: ArchConfig, units: Mapping[str, Callable] | None = None):
        if not isinstance(arch, ArchConfig):
            raise TypeError(f"arch must be an ArchConfig, not {arch!r}")
        units = dict(units or {})
        unknown = sorted(set(units) - set(UNITS))
        if unknown:
            raise ValueError(f"units must name roles in {sorted(UNITS)}, not {unknown[0]!r}")
        self.arch = arch
        self._units = units
        super().__init__(
            {
                "start": In(1),
                "running": Out(1),
                "halted": Out(1),
                "error": Out(3),
                "err_pc": Out(ERR_PC_BITS),
                "host": In(HostPort(arch)),
                "dbg_sel": In(DBG_SEL_BITS),
                "dbg_data": Out(32),
                "noc": Out(NocPort()),
                "coords": In(Coords()),
            }
        )

    def _unit(self, role: str) -> wiring.Component:
        make = self._units.get(role) or unit_class(role)
        return make(self.arch)

    def elaborate(self, platform) -> Elaboratable:
        m = Module()
        arch = self.arch
        m.submodules.ctrl = ctrl = Controller(arch)
        m.submodules.sems = sems = Semaphores(arch)
        m.submodules.sram = sram = BankedSram(arch, len(SRAM_PORTS))
        m.submodules.mac = mac = self._unit("mac")
        m.submodules.vec = vec = self._unit("vec")
        m.submodules.dma = dma = self._unit("dma")
        port = {name: sram.ports[i] for i, name in enumerate(SRAM_PORTS)}
        requesters = {
            "mac_a": mac.port_a, "mac_b": mac.port_b, "mac_c": mac.port_c,
            "vec_a": vec.port_a, "vec_b": vec.port_b, "vec_d": vec.port_d,
            "ctrl": ctrl.sram, "dma_wr": dma.port_wr, "dma_rd": dma.port_rd,
            "dma_desc": dma.port_desc,
        }  # fmt: skip
        for name, requester in requesters.items():
            wiring.connect(m, requester, port[name])

        wiring.connect(m, ctrl.mac, mac.cmd)
        wiring.connect(m, ctrl.vec, vec.cmd)
        wiring.connect(m, ctrl.vec_cfg, vec.cfg)
        wiring.connect(m, ctrl.dma, dma.cmd)
        wiring.connect(m, ctrl.sig, dma.sig)
        wiring.connect(m, ctrl.sem_inc, sems.local_inc)
        wiring.connect(m, ctrl.sem_wait, sems.wait)
        wiring.connect(m, dma.sem_inc, sems.net_inc)
        wiring.connect(m, dma.noc, wiring.flipped(self.noc))
        wiring.connect(m, wiring.flipped(self.coords), dma.coords)
        m.d.comb += [
            ctrl.start.eq(self.start),
            ctrl.mac_busy.eq(mac.busy),
            ctrl.mac_error.eq(mac.error),
            ctrl.vec_busy.eq(vec.busy),
            ctrl.vec_error.eq(vec.error),
            ctrl.dma_error.eq(dma.error),
            ctrl.sem_overflow.eq(sems.overflow),
            self.running.eq(ctrl.running),
            self.halted.eq(ctrl.halted & dma.idle),
            self.error.eq(ctrl.error),
            self.err_pc.eq(ctrl.err_pc),
        ]
        self._host(m, ctrl, port["host"])
        self._debug(m, ctrl, sems)
        return m

    def _host(self, m: Module, ctrl: Controller, sram_port) -> None:
        """Route host requests to instruction memory or to the SRAM host port."""
        host, imem = self.host, ctrl.imem
        lanes = self.arch.word_bytes
        m.d.comb += [
            imem.valid.eq(host.valid & host.imem),
            imem.we.eq(host.we),
            imem.addr.eq(host.addr),
            imem.wdata.eq(host.wdata),
            sram_port.valid.eq(host.valid & ~host.imem),
            sram_port.we.eq(host.we),
            sram_port.addr.eq(host.addr[: word_addr_bits(self.arch)]),
            sram_port.wdata.eq(host.wdata),
            sram_port.wmask.eq((1 << lanes) - 1),
            host.ready.eq(Mux(host.imem, imem.ready, sram_port.ready)),
            host.rvalid.eq(imem.rvalid | sram_port.rvalid),
            host.rdata.eq(Mux(imem.rvalid, imem.rdata, sram_port.rdata)),
        ]

    def _debug(self, m: Module, ctrl: Controller, sems: Semaphores) -> None:
        sel = self.dbg_sel
        sem_sel = Signal(SEM_ID.width)
        m.d.comb += [
            ctrl.dbg_reg_sel.eq(sel[: RD.width]),
            sem_sel.eq(sel - DBG_SEMS),
            sems.dbg_sel.eq(sem_sel),
        ]
        with m.If(sel < DBG_SEMS):
            m.d.comb += self.dbg_data.eq(ctrl.dbg_reg)
        with m.Elif((sel < DBG_PC) & (sem_sel < self.arch.semaphores)):
            m.d.comb += self.dbg_data.eq(sems.dbg_count)
        with m.Elif(sel == DBG_PC):
            m.d.comb += self.dbg_data.eq(ctrl.pc)
