"""GEMM chains on a row-partitioned PE group: the part mlp.py and attention.py share.

A chain kernel splits the rows of its first operand (tokens, queries) over a
rectangle of PEs (groups.row_grid); every PE runs the same sequence of GEMMs on its
own row band, and the B operands of those GEMMs (weights, K^T, V) are *shared*: every
PE needs all of them.  A shared operand is either

* ``resident``: PE (0, 0) reads it from DRAM once and it reaches every PE through a
  tree of writes with signal (groups.broadcast_wait, semaphore ``sem``): whole, by
  the two-level multicast tree; in parts (``parts`` > 1, the chain templates), by a
  unicast comb, each GEMM part starting as soon as its part has arrived; or
* ``streamed``: its whole-K column tiles (K x C) come from DRAM through two slots
  (double buffering: tile i+1 is in flight while tile i is multiplied against the
  whole resident row band, mapping.stream_tiles).  PE (0, 0) reads each tile and
  multicasts it to the rectangle of columns 1.., PE (0, 1) to the rest of column 0
  (a multicast target is one rectangle without its sender), so every tile leaves
  DRAM at most twice; the followers return each slot by a credit SIGNAL (the GEMM
  planner's stream_b schedule with the leader/credit roles of gemm.py).  Without
  spare semaphores, or with more followers than a WAIT can count, every PE reads
  its own tiles.

:meth:`RowChain.build` tries the placements in order - all resident, then the
largest streamable operand streamed, and so on - and keeps the first that the SRAM
allocator accepts, so the plan adapts to ``sram_bytes`` without a hand-made model.

Semaphores: 0 = the PE's row band, then one per resident operand, then a pair of
slot-data semaphores per streamed operand (one pair for all of them when every PE
reads alone), then the two credit semaphores of the row leaders.  Data and credit
semaphores never coincide with a semaphore waited on later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.backend.alloc import AllocError
from compiler.backend.builder import KernelBuilder, Mapped
from compiler.backend.chain_ops import blocked_selection
from compiler.backend.gemm import can_cast, words_rows
from compiler.backend.groups import broadcast_load, broadcast_wait, pes_of, row_grid
from compiler.backend.layout import pack_a, param_blocks
from compiler.dialects import mapping as mp
from compiler.errors import UnsupportedError
from hw.isa import qparam_layout

__all__ = ["Shared", "RowChain", "check_rc", "transpose_buffers", "build_first_fit"]

LOAD = 0  # the first phase of every chain kernel
# Buffers that a PE multicasts from (shared operands, stream slots) stay live to the
# end: a write DMA reads its source while the PE runs on, and nothing reports its
# completion, so bytes reused by a later phase could leave the PE half-overwritten
# (the reference simulator moves data at issue and cannot show this; the RTL chip did,
# as a wrong attention output, when K^T's bytes became the probabilities)
END = 1 << 30


def check_rc(arch, what: str) -> None:
    if arch.mac_cols % arch.mac_rows:
        raise UnsupportedError(
            f"{what}: the on-chip transpose needs mac_cols to be a multiple of mac_rows, not "
            f"{arch.mac_rows} x {arch.mac_cols}"
        )


def transpose_buffers(
    kb: KernelBuilder, rect, live, blocked: bool = False, selection: bool = True
) -> tuple[str | None, str]:
    """Selection matrices and identity output-stage parameters for mapping.transpose
    (or, ``blocked``, for chain_ops' transpose_blocked); without ``selection`` only
    the parameters (the ``params`` of out32 GEMMs, which never load them): (None,
    params)."""
    C = kb.arch.mac_cols
    sel = None
    if selection:
        sel = _selection(kb, rect, live, blocked)
    ident = param_blocks(
        np.zeros(C, np.int64), np.full(C, 1 << 30), np.full(C, 30), 0, -128, 127, C
    )
    params = kb.sram_buffer("ident", "identity output stage", len(ident), rect, live, "high", ident)
    return sel, params


def _selection(kb: KernelBuilder, rect, live, blocked: bool) -> str:
    """The selection matrices of mapping.transpose / transpose_blocked."""
    R, C = kb.arch.mac_rows, kb.arch.mac_cols
    if blocked:
        mats = blocked_selection(R, C)
    else:
        per = 16 // C if C < 16 else 1
        parts = []
        for p in range(per):
            delta = p * C // R
            for rr in range(R):
                sel = np.zeros((16, C), np.int8)
                for c in range(C):
                    if c % R == rr:
                        sel[delta + c // R, c] = 1
                parts.append(sel.tobytes())
        mats = b"".join(parts)
    return kb.sram_buffer("sel", "transpose selection", len(mats), rect, live, "high", mats)


@dataclass
class Shared:
    """A B operand every PE of the group needs, packed ``[n/C][k][C]``."""

    name: str  # DRAM tensor; the SRAM buffer is ``<name>s`` (resident)
    tensor: str  # for messages
    packed: np.ndarray
    k: int  # padded K (rows)
    n: int  # padded columns
    last: int  # last phase that reads it
    streamable: bool = True
    streamed: bool = False
    sems: list[int] = field(default_factory=list)
    parts: int = 1  # resident: broadcast in this many runs of column tiles
    read_sem: int | None = None  # resident: PE (0, 0)'s DRAM reads signal this, not sems[0]
    mcast_read: bool = False  # resident: multicast reads deliver it to every PE on sems[0]

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes

    def part_tiles(self, c: int) -> list[tuple[int, int]]:
        """Column-tile ranges [j0, j1) of the parts."""
        nt = self.n // c
        cuts = [round(p * nt / self.parts) for p in range(self.parts + 1)]
        return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


class RowChain:
    """Builder of one chain kernel: row grid, row bands, shared operands, steps."""

    def __init__(self, arch, name: str, m: int, align: Callable[[int], bool]):
        self.arch = arch
        R = arch.mac_rows
        self.gc, self.gr, mtp = row_grid(arch, -(-m // R))
        while not align(mtp):
            mtp += 1
        self.mtp, self.mp = mtp, mtp * R
        self.pes = pes_of(self.gc, self.gr)
        self.rect = (0, 0, self.gc - 1, self.gr - 1)
        self.kb = KernelBuilder(arch, name)
        self.shared: dict[str, Shared] = {}
        self.credits: list[int] = []
        self.groups: list = []
        self.q = qparam_layout(arch.mac_cols)["total"][1]

    # -- declarations -----------------------------------------------------------------
    def per_pe(self, name: str, tensor: str, nbytes: int, live, side: str = "low") -> None:
        """Buffer ``<name><i>`` in the SRAM of every PE i."""
        for i, pe in enumerate(self.pes):
            self.kb.sram_buffer(f"{name}{i}", tensor, nbytes, pe, live, side)

    def group(self, name: str, tensor: str, nbytes: int, live, side: str, data=None) -> str:
        """One buffer at the same offset on every PE of the group."""
        return self.kb.sram_buffer(name, tensor, nbytes, self.rect, live, side, data)

    def band(self, name: str, tensor: str, a: np.ndarray, kp: int, last: int) -> int:
        """Row band ``<name><i>`` of PE i (packed A layout), read from DRAM ``name`` on
        semaphore 0; returns the band bytes."""
        R = self.arch.mac_rows
        packed = pack_a(a, len(self.pes) * self.mp, kp, R)
        self.kb.dram_tensor(name, packed.nbytes, packed.tobytes())
        nbytes = self.mtp * kp * R
        for i, pe in enumerate(self.pes):
            self.kb.sram_buffer(f"{name}{i}", tensor, nbytes, pe, (LOAD, last), "low")
            self.kb.add(
                pe,
                mp.TransferOp,
                local=f"@{name}{i}",
                remote=f"@{name}",
                remote_offset=i * nbytes,
                count=words_rows(nbytes),
                sem=0,
                read=1,
            )
        return nbytes

    def add_shared(self, op: Shared) -> Shared:
        self.kb.dram_tensor(op.name, op.nbytes, op.packed.tobytes())
        self.shared[op.name] = op
        return op

    def assign(self) -> None:
        """Semaphores and SRAM of the shared operands (after ``streamed`` is decided)."""
        arch, C = self.arch, self.arch.mac_cols
        nxt = 1
        for op in self.shared.values():
            if not op.streamed:
                op.sems = [nxt]
                nxt += 1
                self.group(f"{op.name}s", op.tensor, op.nbytes, (LOAD, END), "high")
        groups = self.stream_groups()
        followers = max((_area(rect) for _, rect in groups), default=0)
        tiled = [op for op in self.shared.values() if op.streamed]
        pairs = len(tiled)
        cast = bool(groups) and pairs > 0 and can_cast(arch, followers, nxt + 2 * pairs + 2)
        first = nxt
        for op in tiled:
            if op.streamed:
                # reading alone, a PE issues the next stream's reads after the last
                # one's data was consumed: the streams can share one pair
                op.sems = [nxt, nxt + 1] if cast else [first, first + 1]
                nxt = op.sems[1] + 1
                slot = 2 * op.k * C
                # the slots are written remotely from LOAD on: nothing may alias them
                if cast:  # one offset on every PE: leaders and followers
                    self.group(f"{op.name}_slots", f"{op.tensor} stream slots", slot,
                               (LOAD, END), "high")  # fmt: skip
                else:
                    self.per_pe(
                        f"{op.name}_slots",
                        f"{op.tensor} stream slots",
                        slot,
                        (LOAD, END),
                        "high",
                    )
        self.credits = [nxt, nxt + 1] if cast else []
        self.groups = groups if cast else []

    def stream_groups(self) -> list[tuple[tuple[int, int], list[int]]]:
        """(leader, follower rectangle) of the streamed tiles: PE (0, 0) feeds columns
        1.. of the grid, PE (0, 1) the rest of column 0 - every tile is read from DRAM
        at most twice, and a multicast target is always one rectangle."""
        gc, gr = self.gc, self.gr
        groups = []
        if gc > 1:
            groups.append(((0, 0), [1, 0, gc - 1, gr - 1]))
            if gr > 2:
                groups.append(((0, 1), [0, 2, 0, gr - 1]))
        elif gr > 1:
            groups.append(((0, 0), [0, 1, 0, gr - 1]))
        return groups

    def load_shared(self) -> None:
        """PE (0, 0) reads every resident operand, part by part (the multicasts follow
        at use)."""
        for op in self.shared.values():
            if not op.streamed:
                for j0, j1 in op.part_tiles(self.arch.mac_cols):
                    off, nbytes = self._part(op, j0, j1)
                    buf = f"{op.name}s"
                    broadcast_load(self.kb, self.gc, self.gr, buf, op.name, nbytes, op.sems[0], off)

    def _part(self, op: Shared, j0: int, j1: int) -> tuple[int, int]:
        tile = op.k * self.arch.mac_cols
        return j0 * tile, (j1 - j0) * tile

    def arrive(self, op: Shared, part: tuple[int, int] | None = None) -> None:
        """Every PE waits for resident ``op`` (or one part of it: column tiles
        [j0, j1)) and forwards it down the multicast tree."""
        if op.streamed:
            return
        off, nbytes = (0, op.nbytes) if part is None else self._part(op, *part)
        buf, tree = f"{op.name}s", "comb" if op.parts > 1 else "shallow"
        broadcast_wait(self.kb, self.gc, self.gr, buf, nbytes, op.sems[0], off, tree)

    # -- steps ------------------------------------------------------------------------
    def gemm(self, pe, i: int, a: str, op: Shared, c: str, params: str, ldc: int, **kw) -> None:
        """``c = a @ op`` on PE ``pe``: the tile loop over the resident operand, or the
        streamed-tile loop.  ``kw``: out32, param_stride (0 for shared parameters)."""
        C = self.arch.mac_cols
        common = dict(
            a=f"@{a}",
            c=f"@{c}",
            params=f"@{params}",
            tiles=[self.mtp, op.n // C],
            k=op.k,
            ldc=ldc,
            param_stride=kw.get("param_stride", self.q),
        )
        if not op.streamed:
            self.kb.add(pe, mp.MatmulOp, b=f"@{op.name}s", **common, out32=kw.get("out32", 0))
            return
        if kw.get("out32"):
            raise UnsupportedError(f"{op.tensor}: streamed tiles with int32 outputs")
        gx, gy = pe
        role: dict = {"sems": op.sems}
        slots = f"{op.name}_slots" if self.credits else f"{op.name}_slots{i}"
        for leader, (x0, y0, x1, y1) in self.groups:
            if pe == leader:
                role.update(lead_to=[x0, y0, x1, y1], credits=self.credits)
            elif x0 <= gx <= x1 and y0 <= gy <= y1:
                role.update(leader=list(leader), credits=self.credits)
        self.kb.add(
            pe, mp.StreamTilesOp, streamed="b", b=f"@{slots}", src=f"@{op.name}", **role, **common
        )

    def store(
        self,
        pe,
        i: int,
        buf: str,
        dram: str,
        nbytes: int,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int, int] | None = None,
    ) -> None:
        """PE i's ``nbytes`` of ``<buf><i>`` to its slot of ``dram`` (only the bytes
        ``rows`` = (offset, bytes) of it, if given; with ``cols`` = (c0, c1, row
        bytes) only the byte columns [c0, c1) of those rows, 16-byte words)."""
        off, n = rows if rows is not None else (0, nbytes)
        if cols is None:
            count, strides = words_rows(n), {}
        else:
            c0, c1, row = cols
            off += c0
            count = [(c1 - c0) // 16, n // row, 1]
            strides = {"local_strides": [row, 0], "remote_strides": [row, 0]}
        self.kb.add(
            pe,
            mp.TransferOp,
            local=f"@{buf}{i}",
            remote=f"@{dram}",
            remote_offset=i * nbytes + off,
            count=count,
            sem=0,
            read=0,
            **({"local_offset": off} if off else {}),
            **strides,
        )

    def rows_output(self, dram: str, rows: int, cols: int, width: int) -> None:
        """Output ``dram`` of ``[pes][mp][width]`` int8 rows -> the host's rows x cols."""
        n = len(self.pes) * self.mp

        def unpack(d: dict[str, bytes]) -> np.ndarray:
            raw = np.frombuffer(d[dram], np.int8)[: n * width]
            return raw.reshape(n, width)[:rows, :cols]

        self.kb.outputs[dram] = unpack

    def tiled_output(self, dram: str, rows: int, cols: int, width: int) -> None:
        """Output ``dram`` of ``[pes][mtp][width / C][R][C]`` int8 tiles (each PE's
        m tiles, each in n tiles of R rows x C bytes) -> the host's rows x cols."""
        R, C = self.arch.mac_rows, self.arch.mac_cols
        tiles = len(self.pes) * self.mtp

        def unpack(d: dict[str, bytes]) -> np.ndarray:
            raw = np.frombuffer(d[dram], np.int8)[: tiles * R * width]
            out = raw.reshape(tiles, width // C, R, C).transpose(0, 2, 1, 3)
            return out.reshape(tiles * R, width)[:rows, :cols]

        self.kb.outputs[dram] = unpack

    def plan(self, **extra) -> dict:
        streams = {
            op.name: (
                {
                    "mode": "streamed",
                    "block_bytes": op.k * self.arch.mac_cols,
                    "blocks": op.n // self.arch.mac_cols,
                    "multicast": bool(self.credits),
                }
                if op.streamed
                else {"mode": "resident", "bytes": op.nbytes}
            )
            for op in self.shared.values()
        }
        return {
            "R": self.arch.mac_rows,
            "C": self.arch.mac_cols,
            "grid": [self.gc, self.gr],
            "tiles_per_pe": self.mtp,
            "pes": len(self.pes),
            "mode": "streamed" if any(o.streamed for o in self.shared.values()) else "resident",
            "operands": streams,
            **extra,
        }


def _area(rect: list[int]) -> int:
    return (rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1)


def build_first_fit(build: Callable[[set[str]], Mapped], operands: list[tuple[str, int]]) -> Mapped:
    """``build(streamed)`` for streamed sets of growing size - none, then the largest
    streamable operand, then the two largest, ... - until SRAM placement succeeds;
    ``operands`` are (name, bytes).  The last AllocError is raised if none fits."""
    order = [n for n, _ in sorted(operands, key=lambda t: -t[1])]
    err: AllocError | None = None
    for count in range(len(order) + 1):
        try:
            return build(set(order[:count]))
        except AllocError as exc:
            err = exc
    assert err is not None
    raise err
