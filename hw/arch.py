"""ArchConfig: every hardware number of a Myelin chip, and the named presets.

This is the only place in the code base where a hardware number is written.
The RTL (hw/), the simulators (sim/), the cosim harness (cosim/) and the
compiler (compiler/) all read their parameters from an :class:`ArchConfig`.

A configuration is frozen and validated on construction; an invalid value
raises :class:`hw.errors.ConfigError` naming the field, the value and the rule.
Users define their own architectures in a TOML or JSON file::

    base = "small"          # optional: start from a preset
    name = "small-8x8mac"
    mac_rows = 8
    mac_cols = 8

Unknown keys are rejected.  This module imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hw.errors import ConfigError

__all__ = ["ArchConfig", "PRESETS", "load_arch", "preset"]


def _pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


@dataclass(frozen=True)
class ArchConfig:
    """One Myelin chip (or board of chips).  All sizes in bytes unless named."""

    name: str = "small"
    # -- mesh -----------------------------------------------------------------
    mesh_cols: int = 4
    mesh_rows: int = 4
    # -- processing element ---------------------------------------------------
    sram_bytes: int = 131072
    sram_banks: int = 4
    sram_port_bits: int = 128
    imem_words: int = 1024  # 64-bit instruction words
    mac_rows: int = 4
    mac_cols: int = 16
    vec_lanes: int = 16  # int8 elements per cycle (int32 ALUs, one per lane)
    semaphores: int = 16
    sem_bits: int = 8  # counter width; a count past 2**sem_bits-1 is an error
    scalar_regs: int = 16
    loop_depth: int = 3  # nested hardware loops
    loop_strides: int = 4  # address-stride slots per loop level
    dma_queue: int = 4  # DMA descriptors queued before the DMA instruction stalls
    # Decoupled units: QLOAD/MATMUL/VOP with ``nowait`` retire when their unit accepts
    # them and FENCE waits for units (docs/isa.md); False: both are ILLEGAL, as on a
    # PE whose controller blocks on every unit command.
    async_units: bool = True
    # -- network on chip --------------------------------------------------------
    flit_bits: int = 128
    vcs: int = 2  # one virtual channel per message class (request, response)
    router_buffer_flits: int = 8  # input buffer depth per port and VC
    routing_table_entries: int = 64  # key/mask multicast table per router
    max_packet_flits: int = 16  # payload flits per packet
    # -- off-chip memory --------------------------------------------------------
    dram_ports: int = 1
    dram_latency: int = 100  # cycles from request to first response flit
    dram_bytes_per_cycle: int = 16  # per port
    # Read requests a DRAM port holds while they wait out the latency (its controller's
    # queue): with latency x bandwidth = 1,600 bytes in flight and multicast reads of
    # 4-8 words (64-128 bytes) per request, 16 entries capped a port at 10 bytes/cycle
    dram_queue: int = 32
    dram_bytes: int = 64 * 2**20  # per chip
    # -- system ---------------------------------------------------------------
    chips_cols: int = 1
    chips_rows: int = 1
    chip_link_latency: int = 20  # cycles per chip-to-chip hop
    chip_link_bytes_per_cycle: int = 4
    clock_mhz: int = 300  # for reporting time and energy only

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{f.name} must be an integer, not {value!r}")
            if f.type == "str" and not isinstance(value, str):
                raise ConfigError(f"{f.name} must be a string, not {value!r}")
            if f.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be true or false, not {value!r}")
        for rule, ok in self._rules():
            if not ok:
                raise ConfigError(f"ArchConfig {self.name!r}: {rule}")

    def _rules(self) -> list[tuple[str, bool]]:
        s = self
        per_bank = s.sram_bytes // max(s.sram_banks, 1)
        return [
            # 6-bit head-flit coordinates, with off-chip endpoints at mesh_cols / mesh_rows
            (f"mesh_cols must be in 1..63, not {s.mesh_cols!r}", 1 <= s.mesh_cols <= 63),
            (f"mesh_rows must be in 1..63, not {s.mesh_rows!r}", 1 <= s.mesh_rows <= 63),
            (f"sram_port_bits must be 128, not {s.sram_port_bits!r}", s.sram_port_bits == 128),
            (
                f"sram_banks must be a power of two in 1..16, not {s.sram_banks!r}",
                _pow2(s.sram_banks) and s.sram_banks <= 16,
            ),
            (
                f"sram_bytes must be a power of two in 4096..2**20, not {s.sram_bytes!r}",
                _pow2(s.sram_bytes) and 4096 <= s.sram_bytes <= 2**20,
            ),
            (
                f"imem_words must be a power of two in 64..65536, not {s.imem_words!r}",
                _pow2(s.imem_words) and 64 <= s.imem_words <= 65536,
            ),
            (
                f"mac_rows must be one of 1, 2, 4, 8, 16, not {s.mac_rows!r}",
                s.mac_rows in (1, 2, 4, 8, 16),
            ),
            (f"mac_cols must be one of 4, 8, 16, not {s.mac_cols!r}", s.mac_cols in (4, 8, 16)),
            (
                f"vec_lanes must equal sram_port_bits // 8 = {s.sram_port_bits // 8}, "
                f"not {s.vec_lanes!r}",
                s.vec_lanes == s.sram_port_bits // 8,
            ),
            (
                f"semaphores must be a power of two in 2..32, not {s.semaphores!r}",
                _pow2(s.semaphores) and 2 <= s.semaphores <= 32,
            ),
            (f"sem_bits must be in 4..8, not {s.sem_bits!r}", 4 <= s.sem_bits <= 8),
            (f"scalar_regs must be 16, not {s.scalar_regs!r}", s.scalar_regs == 16),
            (f"loop_depth must be in 3..4, not {s.loop_depth!r}", 3 <= s.loop_depth <= 4),
            (f"loop_strides must be in 1..4, not {s.loop_strides!r}", 1 <= s.loop_strides <= 4),
            (f"dma_queue must be in 1..16, not {s.dma_queue!r}", 1 <= s.dma_queue <= 16),
            (f"flit_bits must be 128, not {s.flit_bits!r}", s.flit_bits == 128),
            (f"vcs must be 2 (request and response classes), not {s.vcs!r}", s.vcs == 2),
            (
                f"router_buffer_flits must be in 2..64, not {s.router_buffer_flits!r}",
                2 <= s.router_buffer_flits <= 64,
            ),
            (
                f"routing_table_entries must be in 1..16384, not {s.routing_table_entries!r}",
                1 <= s.routing_table_entries <= 16384,
            ),
            (
                f"max_packet_flits must be a power of two in 1..255, not {s.max_packet_flits!r}",
                _pow2(s.max_packet_flits) and s.max_packet_flits <= 128,
            ),
            (f"dram_ports must be in 0..8, not {s.dram_ports!r}", 0 <= s.dram_ports <= 8),
            (
                f"dram_latency must be in 1..10000, not {s.dram_latency!r}",
                1 <= s.dram_latency <= 10000,
            ),
            (
                f"dram_queue must be a power of two in 2..256, not {s.dram_queue!r}",
                _pow2(s.dram_queue) and 2 <= s.dram_queue <= 256,
            ),
            (
                f"dram_bytes_per_cycle must be in 1..64, not {s.dram_bytes_per_cycle!r}",
                1 <= s.dram_bytes_per_cycle <= 64,
            ),
            (
                f"dram_bytes must be a multiple of 16 in 0..2**32, not {s.dram_bytes!r}",
                0 <= s.dram_bytes <= 2**32 and s.dram_bytes % 16 == 0,
            ),
            (f"chips_cols must be in 1..256, not {s.chips_cols!r}", 1 <= s.chips_cols <= 256),
            (f"chips_rows must be in 1..256, not {s.chips_rows!r}", 1 <= s.chips_rows <= 256),
            (
                f"chip_link_latency must be >= 1, not {s.chip_link_latency!r}",
                s.chip_link_latency >= 1,
            ),
            (
                f"chip_link_bytes_per_cycle must be >= 1, not {s.chip_link_bytes_per_cycle!r}",
                s.chip_link_bytes_per_cycle >= 1,
            ),
            (f"clock_mhz must be in 1..10000, not {s.clock_mhz!r}", 1 <= s.clock_mhz <= 10000),
            (f"sram_bytes // sram_banks must be >= 1024, not {per_bank}", per_bank >= 1024),
        ]

    # -- derived quantities (computed, never stored) ------------------------------
    @property
    def word_bytes(self) -> int:
        """Bytes per SRAM word, NoC flit payload and DMA beat."""
        return self.sram_port_bits // 8

    @property
    def sram_words(self) -> int:
        return self.sram_bytes // self.word_bytes

    @property
    def bank_bytes(self) -> int:
        return self.sram_bytes // self.sram_banks

    @property
    def regions(self) -> int:
        """SRAM regions of the GEMM/MLP layouts (compiler/backend/gemm*.py,
        mlp_split.py): up to four runs of whole banks, so that streams placed in
        different regions never share a bank."""
        return min(self.sram_banks, 4)

    @property
    def region_bytes(self) -> int:
        return self.sram_bytes // self.regions

    @property
    def macs_per_cycle(self) -> int:
        return self.mac_rows * self.mac_cols

    @property
    def tiles(self) -> int:
        return self.mesh_cols * self.mesh_rows

    @property
    def pes(self) -> int:
        return self.tiles * self.chips_cols * self.chips_rows

    @property
    def rect_payload_flits(self) -> int:
        """Payload flits of a RECT multicast packet (docs/noc_multicast.md): the whole
        packet must fit a router input buffer (deadlock freedom of forks), and with
        buffers of 6 flits or more three slots stay free so that the credits of one
        packet are back before the next needs them (a fork stream at 1 flit/cycle)."""
        depth = self.router_buffer_flits
        return min(self.max_packet_flits, depth - 4 if depth >= 6 else depth - 1)

    @property
    def sem_max(self) -> int:
        return (1 << self.sem_bits) - 1

    def replace(self, **changes: Any) -> ArchConfig:
        """A validated copy with some fields changed (unknown names rejected)."""
        _check_keys(changes, f"ArchConfig {self.name!r}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_keys(data: dict[str, Any], where: str) -> None:
    known = {f.name for f in fields(ArchConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known keys are: {', '.join(sorted(known))}"
        )


PRESETS: dict[str, ArchConfig] = {
    # 2 x 2 mesh, small memories: fast RTL tests.
    "tiny": ArchConfig(
        name="tiny",
        mesh_cols=2,
        mesh_rows=2,
        sram_bytes=32768,
        sram_banks=4,
        imem_words=512,
        routing_table_entries=8,
        router_buffer_flits=4,
        dram_bytes=2**20,
        dram_latency=40,
    ),
    # 4 x 4 mesh, SpiNNaker2's 128 KiB SRAM per PE: the default preset.
    # 8 SRAM banks: the attention head streams K^T and V in (DMA), the MAC's B operand,
    # the vector unit's scores and scratch rows, at once; with 4 banks some shared one
    # (RTL, seq 128: 3,482 -> 3,210 cycles).  Router buffers of 12 flits: multicast
    # packets of 8 payload flits (0.89 of a link) instead of 4 (0.8): 3,210 -> 3,160.
    "small": ArchConfig(name="small", sram_banks=8, router_buffer_flits=12),
    # SpiNNaker2 chip: 152 PEs (one per tile until concentration lands; 8 x 19),
    # 2 LPDDR4 channels (about 21 bytes/cycle at 300 MHz in all), 2 GiB.
    "s2chip": ArchConfig(
        name="s2chip",
        mesh_cols=8,
        mesh_rows=19,
        sram_bytes=131072,
        sram_banks=4,
        imem_words=4096,
        routing_table_entries=104,
        dram_ports=2,
        dram_latency=100,
        dram_bytes_per_cycle=10,
        dram_bytes=2**31,
        clock_mhz=300,
    ),
}


# 48 s2chips per board, joined by chip-to-chip links (8 x 6 chips).
PRESETS["s2board"] = dataclasses.replace(
    PRESETS["s2chip"], name="s2board", chips_cols=8, chips_rows=6
)


def preset(name: str) -> ArchConfig:
    """The named preset; an unknown name raises ConfigError listing the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown architecture preset {name!r}; presets are: {', '.join(PRESETS)}"
        ) from None


def from_dict(data: dict[str, Any], where: str = "config") -> ArchConfig:
    """Build a config from a mapping; ``base`` names a preset to start from."""
    data = dict(data)
    base = data.pop("base", None)
    _check_keys(data, where)
    start = preset(base) if base is not None else ArchConfig()
    try:
        return dataclasses.replace(start, **data)
    except TypeError as exc:  # pragma: no cover - _check_keys catches names first
        raise ConfigError(f"{where}: {exc}") from None


def load_arch(spec: str | Path) -> ArchConfig:
    """A preset name, or a path to a ``.toml`` or ``.json`` configuration file."""
    spec_str = str(spec)
    if spec_str in PRESETS:
        return PRESETS[spec_str]
    path = Path(spec_str)
    if path.suffix not in (".toml", ".json"):
        return preset(spec_str)
    if not path.is_file():
        raise ConfigError(f"architecture file {spec_str!r} does not exist")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"architecture file {spec_str!r} is malformed: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"architecture file {spec_str!r} must hold a table of keys")
    data.setdefault("name", path.stem)
    return from_dict(data, where=f"architecture file {spec_str!r}")
