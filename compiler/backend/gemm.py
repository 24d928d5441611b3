"""int8 GEMM C = requant(A @ B + bias) mapped output-stationary onto a PE grid.

Partitioning: the M x N output is cut into R x C MAC tiles; PE row ``gy`` of a
``gc x gr`` grid owns a band of ``mtp`` tile rows, PE column ``gx`` a band of ``ntp``
tile columns.  Operands start in DRAM in packed layout (layout.py).

Two schedules, chosen from the SRAM size:

* ``resident``: each PE holds its whole A band (``mtp*R x K``), B band and C block.
  One reader PE per PE row reads the row's A band from DRAM and multicasts it to
  the rest of the row; one per column does the same with B.  Multicast is used
  whenever a band is shared by more than one PE: it divides the DRAM traffic of
  that operand by the group size.  The bands load tile by tile, pipelined with the
  MAC work, with arriving tiles kept out of the banks being multiplied
  (``plan["pipelined"]``; order ``plan["order"]``: gemm_pair.py's paired first
  pass when it fits, else gemm_pipe.py's B-tile passes); C then leaves in column strips, DRAM
  layout ``[gr][gc][ntp][Mp][C]``.  When the unrolled first pass does not fit the
  instruction memory, the bands load whole first (one multicast each).
* ``stream_a`` / ``stream_b``: one band resident (loaded and multicast as above), the
  other operand's whole-K tiles streamed from DRAM through two slots (double
  buffering); each streamed tile is used for every tile of the resident band, so
  every PE still reads each operand byte once.  The variant with fewer DRAM bytes
  in total is chosen.
* ``stream``: when no band fits, each tile's A and B are streamed from DRAM in K
  chunks of ``kc`` through two slots each (chunk i+1 is in flight while chunk i is
  multiplied), accumulating in the MAC array.

C blocks go back to DRAM in the blocked layout ``[gr][gc][Mp][Np]`` (the host
reassembles row-major C).  Semaphores: 0 = A band arrived, 1 = B band arrived,
then 0/1 again (after the band waits) = streamed-tile slot 0/1 filled; in
``stream`` mode 0/1 = K-chunk slot 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.backend.alloc import AllocError, align
from compiler.backend.builder import DESC_BYTES, KernelBuilder, Mapped
from compiler.backend.gemm_pair import DESC_ROOM as _PAIR_DESC_ROOM
from compiler.backend.gemm_pair import pair_fits as _pair_fits
from compiler.backend.gemm_pair import pair_tasks as _pair_tasks
from compiler.backend.gemm_pipe import a_split as _a_split
from compiler.backend.gemm_pipe import b_split as _b_split
from compiler.backend.gemm_pipe import pipelined_tasks as _pipelined_tasks
from compiler.backend.layout import ceil_to, pack_a, pack_b, param_blocks, ref_gemm
from compiler.dialects import mapping as mp
from compiler.errors import CompileError, ShapeError
from hw.isa import MM_K16, MM_LDC, qparam_layout

__all__ = ["GemmSpec", "plan_gemm", "map_gemm", "words_rows", "gemm_inputs"]


def words_rows(nbytes: int) -> list[int]:
    """DMA counts [count0, count1, 1] moving ``nbytes`` (a multiple of 16)."""
    words = nbytes // 16
    for c0 in range(min(words, 65535), 0, -1):
        if words % c0 == 0 and words // c0 <= 65535:
            return [c0, words // c0, 1]
    raise CompileError(f"a transfer of {nbytes} bytes cannot be described by one descriptor")


@dataclass(frozen=True)
class GemmSpec:
    m: int
    k: int
    n: int
    zp: int = 0
    relu: bool = False

    def __post_init__(self) -> None:
        for name in ("m", "k", "n"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ShapeError(
                    f"gemm: dimension {name.upper()} must be a positive integer, not {v!r}"
                )


def can_cast(arch, followers: int, sems: int) -> bool:
    """Whether streamed data can be multicast with credits: the kernel needs ``sems``
    semaphores, and the leader waits for ``followers`` credits at once (a WAIT count
    and a semaphore value are at most sem_max)."""
    return arch.semaphores >= sems and followers <= arch.sem_max


def _grid(arch, mt: int, nt: int) -> tuple[int, int]:
    return min(arch.mesh_rows, mt), min(arch.mesh_cols, nt)


PAIR = True  # False: always gemm_pipe.py's order (B tile outer from the start)


def plan_gemm(arch, spec: GemmSpec, skip: frozenset = frozenset()) -> dict:
    """Tiling and schedule decisions (no IR): a dict recorded in the mapped kernel;
    modes in ``skip`` (their buffers did not fit after all) are not chosen."""
    R, C = arch.mac_rows, arch.mac_cols
    mt_all, nt_all = -(-spec.m // R), -(-spec.n // C)
    gr, gc = _grid(arch, mt_all, nt_all)
    mtp, ntp = -(-mt_all // gr), -(-nt_all // gc)
    while (mtp * R * ntp * C) % 16:
        mtp += 1
    mp_, np_ = mtp * R, ntp * C
    kp = ceil_to(spec.k, 16)
    if np_ > (1 << MM_LDC.width) - 1:  # ldc is a 16-bit byte stride
        raise ShapeError(
            f"gemm: a PE's output block is {np_} bytes wide; MATMUL ldc holds "
            f"at most {(1 << MM_LDC.width) - 1}"
        )
    plan = {
        "R": R,
        "C": C,
        "grid": [gc, gr],
        "tiles_per_pe": [mtp, ntp],
        "block": [mp_, np_],
        "k_pad": kp,
        "pes": gc * gr,
    }
    qbytes = qparam_layout(C)["total"][1]
    fixed = align(ntp * qbytes) + align(mp_ * np_) + 8 * DESC_BYTES
    resident = align(mtp * kp * R) + align(ntp * kp * C) + fixed
    if (
        "resident" not in skip
        and resident <= arch.sram_bytes
        and kp // 16 <= (1 << MM_K16.width) - 1
    ):
        plan.update(mode="resident", kc=kp, sram_bytes=resident)
        return plan
    kmax = 16 * ((1 << MM_K16.width) - 1)
    if kp <= kmax:
        # one band resident, the other operand's whole-K tiles streamed: minimal
        # traffic per PE; pick the variant that reads less DRAM in total
        a_all, b_all = gr * mtp * kp * R, gc * ntp * kp * C
        options = []
        need_a = 2 * kp * R + align(ntp * kp * C) + fixed
        if need_a <= arch.sram_bytes and "stream_a" not in skip:
            cast = can_cast(arch, gc - 1, 4)
            options.append(((1 if cast else gc) * a_all + b_all, "stream_a", need_a))
        need_b = 2 * kp * C + align(mtp * kp * R) + fixed
        if need_b <= arch.sram_bytes and "stream_b" not in skip:
            cast = can_cast(arch, gr - 1, 4)
            options.append((a_all + (1 if cast else gr) * b_all, "stream_b", need_b))
        if options:
            reads, mode, need = min(options)
            plan.update(mode=mode, kc=kp, sram_bytes=need, dram_read_bytes=reads)
            return plan
    for pairs in range(1, kp // 32 + 2):
        kc = ceil_to(-(-kp // (2 * pairs)), 16)
        need = 2 * kc * R + 2 * kc * C + fixed
        if kc <= kmax and need <= arch.sram_bytes:
            plan.update(mode="stream", kc=kc, k_pad=2 * pairs * kc, sram_bytes=need)
            return plan
    raise AllocError(
        f"gemm: tensor 'C' block of PE (0, 0) needs {align(mp_ * np_)} bytes plus "
        f"{fixed - align(mp_ * np_) + 32 * (R + C)} bytes of parameters, descriptors and "
        f"the smallest streaming slots, but SRAM holds {arch.sram_bytes} bytes"
    )


def gemm_inputs(spec: GemmSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Random int8 operands and plausible requantization parameters."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (spec.m, spec.k), dtype=np.int64).astype(np.int8)
    b = rng.integers(-128, 128, (spec.k, spec.n), dtype=np.int64).astype(np.int8)
    bias = rng.integers(-5000, 5000, spec.n).astype(np.int32)
    mult = rng.integers(1 << 30, (1 << 31) - 1, spec.n).astype(np.int32)
    acc_std = np.sqrt(spec.k) * 128 * 128 / 3  # of a sum of K products of uniform int8
    shift = np.full(spec.n, int(round(30.5 + np.log2(acc_std / 40))), np.int32)
    return {"a": a, "b": b, "bias": bias, "mult": mult, "shift": shift}


def clamp_of(spec: GemmSpec) -> tuple[int, int]:
    return (spec.zp if spec.relu else -128), 127


def reference(spec: GemmSpec, t: dict[str, np.ndarray]) -> np.ndarray:
    lo, hi = clamp_of(spec)
    return ref_gemm(t["a"], t["b"], t["bias"], t["mult"], t["shift"], spec.zp, lo, hi)


def map_gemm(arch, spec: GemmSpec, t: dict[str, np.ndarray], name: str = "gemm") -> Mapped:
    """The mapped kernel of C = requant(A @ B) for operands ``t`` (gemm_inputs keys).
    plan_gemm's SRAM estimate counts a few DMA descriptors; a pipelined schedule's
    reads and forwards may need more, so a mode whose buffers do not fit gives way to
    the next (resident, then streamed bands, then K-chunked streaming)."""
    skip: set[str] = set()
    first: AllocError | None = None
    while True:
        try:
            plan = plan_gemm(arch, spec, frozenset(skip))
        except AllocError:
            if first is None:
                raise
            raise first from None
        try:
            return _map_gemm(arch, spec, t, name, plan)
        except AllocError as exc:
            first = first or exc
            if plan["mode"] == "stream":
                raise first from None
            skip.add(plan["mode"])


def _map_gemm(arch, spec: GemmSpec, t: dict[str, np.ndarray], name: str, plan: dict) -> Mapped:
    R, C = arch.mac_rows, arch.mac_cols
    gc, gr = plan["grid"]
    mtp, ntp = plan["tiles_per_pe"]
    mp_, np_ = plan["block"]
    kp = plan["k_pad"]
    kb = KernelBuilder(arch, name)
    lo, hi = clamp_of(spec)
    qbytes = qparam_layout(C)["total"][1]
    pa = pack_a(t["a"], gr * mp_, kp, R)
    pb = pack_b(t["b"], kp, gc * np_, C)
    kb.dram_tensor("A", pa.nbytes, pa.tobytes())
    kb.dram_tensor("B", pb.nbytes, pb.tobytes())
    kb.dram_tensor("C", gr * gc * mp_ * np_)
    npad = gc * np_
    params = param_blocks(
        *(np.resize(np.pad(t[k], (0, npad - spec.n)), npad) for k in ("bias", "mult", "shift")),
        spec.zp,
        lo,
        hi,
        C,
    )
    for gx in range(gc):
        blk = params[gx * ntp * qbytes : (gx + 1) * ntp * qbytes]
        kb.sram_buffer(f"P{gx}", "params", len(blk), (gx, 0, gx, gr - 1), data=blk)
    a_band, b_band = mtp * kp * R, ntp * kp * C
    mode = plan["mode"]
    # resident bands load pipelined with the MAC work when the unrolled pass fits imem;
    # then even / odd B tiles (and A tiles) go to banks of their own when they fit
    pipelined = False
    if mode == "resident":
        # paired first pass (gemm_pair.py) when its bank layout fits, else gemm_pipe.py
        plan["order"] = "pair" if PAIR and _pair_fits(kb.arch, plan, a_band) else "pass"
        tasks = _pair_tasks if plan["order"] == "pair" else _pipelined_tasks
        plan["b_split"] = _b_split(kb.arch, plan, a_band, b_band)
        plan["a_split"] = plan["b_split"] and _a_split(kb.arch, plan, a_band)
        if plan["order"] == "pair":  # its own bank layout (gemm_pair.py)
            plan["a_split"] = plan["b_split"] = False
        longest = max(
            tasks(None, (x, y), plan, a_band, b_band, 0) for x in range(gc) for y in range(gr)
        )
        pipelined = longest <= kb.arch.imem_words - 32
    plan["pipelined"] = pipelined
    if not pipelined:
        for key in (
            "b_parts",
            "a_chunk_tiles",
            "a_ahead",
            "c_layout",
            "a_split",
            "b_split",
            "order",
        ):
            plan.pop(key, None)
    if plan.get("a_split"):
        # even and odd A tiles in the two bottom banks: a tile arriving (or being
        # multicast) never shares a bank with the one being multiplied
        for gy in range(gr):
            row = (0, gy, gc - 1, gy)
            kb.sram_buffer(f"A{gy}e", "A", kb.arch.region_bytes, row, side="low")
            kb.sram_buffer(f"A{gy}o", "A", (mtp // 2) * kp * R, row, side="low")
    elif plan.get("order") == "pair":  # A padded so that C ends bank 0, X starts bank 1
        for gy in range(gr):
            pad = kb.arch.region_bytes - mp_ * np_
            kb.sram_buffer(f"A{gy}", "A", pad, (0, gy, gc - 1, gy), side="low")
    elif mode in ("resident", "stream_b"):
        for gy in range(gr):
            kb.sram_buffer(f"A{gy}", "A", a_band, (0, gy, gc - 1, gy), side="low")
    if plan.get("order") == "pair":
        # B tiles 0 / 1 in the two top banks, tile 2 at the top of bank 1, later tiles
        # alternating over the top two (gemm_pair.b_place); A and C low in bank 0
        for gx in range(gc):
            col = (gx, 0, gx, gr - 1)
            kb.sram_buffer(f"B{gx}e", "B", kb.arch.region_bytes, col, side="high")
            kb.sram_buffer(f"B{gx}o", "B", kb.arch.region_bytes - _PAIR_DESC_ROOM, col, side="high")
            kb.sram_buffer(f"X{gx}", "B", kp * C, col, side="low")
    elif plan.get("b_split"):
        # even and odd B tiles in the two top banks: the tile being multiplied and the
        # next one arriving never share a bank (the MAC's reads win every bank cycle)
        for gx in range(gc):
            col = (gx, 0, gx, gr - 1)
            kb.sram_buffer(f"B{gx}e", "B", kb.arch.region_bytes, col, side="high")
            kb.sram_buffer(f"B{gx}o", "B", (ntp // 2) * kp * C, col, side="high")
    elif mode in ("resident", "stream_a"):
        for gx in range(gc):
            kb.sram_buffer(f"B{gx}", "B", b_band, (gx, 0, gx, gr - 1), side="high")
    for gy in range(gr):
        for gx in range(gc):
            pe = (gx, gy)
            kb.sram_buffer(f"C{gx}_{gy}", "C", mp_ * np_, pe, side="low")
            c_off = (gy * gc + gx) * mp_ * np_
            if pipelined:
                tasks(kb, pe, plan, a_band, b_band, c_off)
                continue
            if mode == "stream":
                _stream_tasks(kb, pe, plan, a_band, b_band)
            else:
                _band_tasks(kb, pe, plan, a_band, b_band)
            kb.add(
                pe,
                mp.TransferOp,
                local=f"@C{gx}_{gy}",
                remote="@C",
                remote_offset=c_off,
                count=words_rows(mp_ * np_),
                sem=0,
                read=0,
            )

    def unpack(dram: dict[str, bytes]) -> np.ndarray:
        raw = np.frombuffer(dram["C"], np.int8)[: gr * gc * mp_ * np_]
        if pipelined:  # per PE block: column strips [ntp][Mp][C]
            strips = raw.reshape(gr, gc, ntp, mp_, C).transpose(0, 3, 1, 2, 4)
            return strips.reshape(gr * mp_, gc * np_)[: spec.m, : spec.n]
        blocks = raw.reshape(gr, gc, mp_, np_).transpose(0, 2, 1, 3).reshape(gr * mp_, gc * np_)
        return blocks[: spec.m, : spec.n]

    kb.outputs["C"] = unpack
    plan["dram_bytes"] = pa.nbytes + pb.nbytes + gr * gc * mp_ * np_
    if mode != "stream":
        # multicast pays when a band is shared: DRAM reads drop by the group size
        cast_a = gc > 1 and (mode != "stream_a" or can_cast(arch, gc - 1, 4))
        cast_b = gr > 1 and (mode != "stream_b" or can_cast(arch, gr - 1, 4))
        plan["multicast"] = {"A": cast_a, "B": cast_b}
        plan["dram_read_saved"] = cast_a * (gc - 1) * pa.nbytes + cast_b * (gr - 1) * pb.nbytes
    return kb.finish(plan)


def _stream_tasks(kb: KernelBuilder, pe, plan: dict, a_band: int, b_band: int) -> None:
    """K-chunk streaming of every tile.  The PEs of a row need the same A chunks at the
    same step and those of a column the same B chunks: the first PE of the row
    (column) reads them and multicasts, the others return slots by credit SIGNALs
    (needs 6 semaphores; with fewer, every PE reads its own chunks)."""
    gx, gy = pe
    gc, gr = plan["grid"]
    kc, C, R = plan["kc"], plan["C"], plan["R"]
    cast_a = gc > 1 and can_cast(kb.arch, gc - 1, 6)
    cast_b = gr > 1 and can_cast(kb.arch, gr - 1, 6)
    roles: dict = {}
    if cast_a:
        a_slots = f"As_row{gy}"
        if gx == 0:
            kb.sram_buffer(a_slots, "A stream slots", 2 * kc * R, (0, gy, gc - 1, gy), side="low")
            roles["a_lead_to"] = [1, gy, gc - 1, gy]
        else:
            roles["a_leader"] = [0, gy]
    else:
        a_slots = f"As{gx}_{gy}"
        kb.sram_buffer(a_slots, "A stream slots", 2 * kc * R, pe, side="low")
    if cast_b:
        b_slots = f"Bs_col{gx}"
        if gy == 0:
            kb.sram_buffer(b_slots, "B stream slots", 2 * kc * C, (gx, 0, gx, gr - 1), side="high")
            roles["b_lead_to"] = [gx, 1, gx, gr - 1]
        else:
            roles["b_leader"] = [gx, 0]
    else:
        b_slots = f"Bs{gx}_{gy}"
        kb.sram_buffer(b_slots, "B stream slots", 2 * kc * C, pe, side="high")
    if roles:
        roles["credits"] = [2, 3, 4, 5]
    kb.add(
        pe,
        mp.StreamMatmulOp,
        a=f"@{a_slots}",
        b=f"@{b_slots}",
        c=f"@C{gx}_{gy}",
        params=f"@P{gx}",
        tiles=plan["tiles_per_pe"],
        k=plan["k_pad"],
        kc=kc,
        ldc=plan["block"][1],
        a_src="@A",
        b_src="@B",
        a_offset=gy * a_band,
        b_offset=gx * b_band,
        sems=[0, 1],
        param_stride=qparam_layout(C)["total"][1],
        **roles,
    )
    plan["multicast"] = {"A": cast_a, "B": cast_b}


def _band_load(
    kb: KernelBuilder,
    pe,
    which: str,
    band: int,
    nbytes: int,
    sem: int,
) -> None:
    """The leader's DRAM read of band ``band`` of operand ``which`` (completion: sem)."""
    kb.add(
        pe,
        mp.TransferOp,
        local=f"@{which}{band}",
        remote=f"@{which}",
        remote_offset=band * nbytes,
        count=words_rows(nbytes),
        sem=sem,
        read=1,
    )


def _band_tasks(kb: KernelBuilder, pe, plan: dict, a_band: int, b_band: int) -> None:
    """Resident bands arrive by DRAM read (first PE of a row / column) and multicast;
    then the tile loop (mapping.matmul) or the streamed-tile loop (stream_tiles)."""
    gx, gy = pe
    gc, gr = plan["grid"]
    mode = plan["mode"]
    res_a, res_b = mode in ("resident", "stream_b"), mode in ("resident", "stream_a")
    A, B = f"@A{gy}", f"@B{gx}"
    if res_a and gx == 0:
        _band_load(kb, pe, "A", gy, a_band, 0)
    if res_b and gy == 0:
        _band_load(kb, pe, "B", gx, b_band, 1)
    if res_a and gx == 0:
        kb.add(pe, mp.WaitOp, sem=0, count=1)
        if gc > 1:
            kb.add(
                pe,
                mp.TransferOp,
                local=A,
                remote=A,
                count=words_rows(a_band),
                sem=0,
                read=0,
                signal=1,
                to=[1, gy, gc - 1, gy],
            )
    if res_b and gy == 0:
        kb.add(pe, mp.WaitOp, sem=1, count=1)
        if gr > 1:
            kb.add(
                pe,
                mp.TransferOp,
                local=B,
                remote=B,
                count=words_rows(b_band),
                sem=1,
                read=0,
                signal=1,
                to=[gx, 1, gx, gr - 1],
            )
    if res_a and gx != 0:
        kb.add(pe, mp.WaitOp, sem=0, count=1)
    if res_b and gy != 0:
        kb.add(pe, mp.WaitOp, sem=1, count=1)
    common = dict(
        c=f"@C{gx}_{gy}",
        params=f"@P{gx}",
        tiles=plan["tiles_per_pe"],
        k=plan["k_pad"],
        ldc=plan["block"][1],
        param_stride=qparam_layout(kb.arch.mac_cols)["total"][1],
    )
    if mode == "resident":
        kb.add(pe, mp.MatmulOp, a=A, b=B, **common)
        return
    slots = f"S{gx}_{gy}"
    tiles_a, tiles_b = plan["tiles_per_pe"]
    slot_bytes = 2 * (a_band // tiles_a if mode == "stream_a" else b_band // tiles_b)
    side = "low" if mode == "stream_a" else "high"
    # multicast the streamed tiles along the group that shares them (credits need two
    # more semaphores); followers get them from the group's first PE
    if mode == "stream_a":
        group, me, size = (0, gy, gc - 1, gy), gx, gc
    else:
        group, me, size = (gx, 0, gx, gr - 1), gy, gr
    cast = size > 1 and can_cast(kb.arch, size - 1, 4)
    if cast:
        slots = f"S{group[0]}_{group[1]}"
        if me == 0:
            kb.sram_buffer(slots, "stream slots", slot_bytes, group, side=side)
            rest = (1, gy) if mode == "stream_a" else (gx, 1)
            role = {"lead_to": [*rest, group[2], group[3]]}
        else:
            role = {"leader": [group[0], group[1]]}
        role.update(sems=[2, 3], credits=[0, 1])
    else:
        kb.sram_buffer(slots, "stream slots", slot_bytes, pe, side=side)
        role = {"sems": [0, 1]}  # the band semaphores are consumed by now
    if mode == "stream_a":
        kb.add(
            pe,
            mp.StreamTilesOp,
            streamed="a",
            a=f"@{slots}",
            b=B,
            src="@A",
            src_offset=gy * a_band,
            **role,
            **common,
        )
    else:
        kb.add(
            pe,
            mp.StreamTilesOp,
            streamed="b",
            a=A,
            b=f"@{slots}",
            src="@B",
            src_offset=gx * b_band,
            **role,
            **common,
        )
