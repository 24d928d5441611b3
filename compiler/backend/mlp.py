"""MLP block Y = requant(relu(requant(X @ W1)) @ W2) on a group of PEs.

Two mappings; :func:`map_mlp` builds those that fit and keeps the one with the lower
estimate (:func:`schedule_cost`), recorded as ``plan["split"]``:

* ``"weights"`` (mlp_split.py): the columns of W1 and W2 are split over the PEs,
  X and H travel instead (a 2-D tiling of both GEMMs with an all-gather of H);
* ``"tokens"`` (below): tokens (rows of X) are split over a rectangle of PEs
  (chain.RowChain); W1 and W2 are shared operands: resident (broadcast from PE
  (0, 0) by multicast) when they fit SRAM, otherwise streamed from DRAM tile by tile
  with double buffering (chain.py).  Each PE runs, in order:

1. GEMM1: H = relu(requant(X @ W1)) with the fused output stage; W1's columns are
   stored permuted inside each C-chunk (layout.chunk_perm).
2. mapping.transpose: H (tokens x hidden, row-major) -> the A-operand layout of
   GEMM2 ([M/R][hidden][R]).  The MAC array writes R x C row-major tiles but reads
   its A operand transposed, so chaining two GEMMs needs this step; it runs on
   the MAC array itself against 0/1 selection matrices with an identity output
   stage, which is exact (docs/backend.md).  The column permutation of step 1 is
   what makes each output row of the transpose a run of whole A-operand rows.
3. GEMM2: Y = requant(H @ W2).

Requires C % R == 0 (mac_cols a multiple of mac_rows).  SRAM is allocated with
liveness: X dies after GEMM1, H after the transpose.
"""

from __future__ import annotations

import numpy as np

from compiler.backend.alloc import AllocError
from compiler.backend.builder import Mapped
from compiler.backend.chain import RowChain, Shared, build_first_fit, check_rc, transpose_buffers
from compiler.backend.chain_ops import MatmulWinOp, TransposeBlockedOp
from compiler.backend.compile import traffic
from compiler.backend.gemm import GemmSpec, gemm_inputs
from compiler.backend.layout import ceil_to, chunk_perm, pack_b, param_blocks, ref_gemm
from compiler.backend.mlp_split import SC, SLOTS, ImemError, map_mlp_weights, split_layouts
from compiler.dialects import mapping as mp
from compiler.errors import ShapeError

__all__ = ["map_mlp", "mlp_inputs", "mlp_reference", "schedule_bound", "schedule_cost"]

# phases for live ranges
LOAD, GEMM1, TRANS, GEMM2, STORE = range(5)


def mlp_inputs(m: int, d: int, hidden: int, n: int, seed: int) -> dict[str, np.ndarray]:
    for name, v in (("m", m), ("d", d), ("hidden", hidden), ("n", n)):
        if not isinstance(v, int) or v < 1:
            raise ShapeError(f"mlp: {name} must be a positive integer, not {v!r}")
    t1 = gemm_inputs(GemmSpec(m, d, hidden), seed)
    t2 = gemm_inputs(GemmSpec(m, hidden, n), seed + 1)
    # relu keeps about half of H: halve the second shift's headroom accordingly
    return {
        "x": t1["a"],
        "w1": t1["b"],
        "b1": t1["bias"],
        "m1": t1["mult"],
        "s1": t1["shift"],
        "w2": t2["b"],
        "b2": t2["bias"],
        "m2": t2["mult"],
        "s2": t2["shift"] - 1,
    }


def mlp_reference(t: dict[str, np.ndarray]) -> np.ndarray:
    h = ref_gemm(t["x"], t["w1"], t["b1"], t["m1"], t["s1"], 0, 0, 127)
    return ref_gemm(h, t["w2"], t["b2"], t["m2"], t["s2"], 0, -128, 127)


def _pad(v: np.ndarray, n: int) -> np.ndarray:
    return np.pad(np.asarray(v, np.int64), (0, n - len(v)))


def map_mlp(
    arch,
    t: dict[str, np.ndarray],
    name: str = "mlp",
    fast: bool = False,
    parts: int = 8,
    split: str | None = None,
) -> Mapped:
    """The mapped MLP block.  ``split``: ``"tokens"``, ``"weights"`` or None (the
    weight layout with the lowest :func:`schedule_cost` of those that fit SRAM, else
    the token split; the token split when ``fast``).  ``fast`` uses the chain
    templates for the token split (chain_ops.py: blocked GEMM1 output, one-MATMUL
    transpose, weights broadcast in parts that each GEMM starts on as they arrive);
    it needs a lowering with those templates (chain_emit.emit_programs).  If no
    mapping fits, the AllocError names the tensor and the bytes."""
    check_rc(arch, "mlp")
    m, d = t["x"].shape
    hidden, n = t["w1"].shape[1], t["w2"].shape[1]
    if t["w2"].shape[0] != hidden or t["w1"].shape[0] != d:
        raise ShapeError(
            f"mlp: W1 {t['w1'].shape} and W2 {t['w2'].shape} do not chain with X {t['x'].shape}"
        )
    if split not in (None, "tokens", "weights"):
        raise ShapeError(f"mlp: split must be 'tokens' or 'weights', not {split!r}")
    split = split or ("tokens" if fast else None)
    macs = m * d * hidden + m * hidden * n
    found: list[tuple[float, int, Mapped]] = []
    err: AllocError | ImemError | None = None
    if split in (None, "weights"):
        for ws in split_layouts(arch, m, d, hidden, n):
            # weight tiles resident, else streamed through slots (mlp_split.SLOTS)
            for stream in (False, True) if arch.semaphores >= SC + SLOTS else (False,):
                try:
                    mapped = map_mlp_weights(arch, t, name, ws, stream=stream)
                except (AllocError, ImemError) as exc:
                    err = err or exc
                    continue
                found.append((schedule_cost(arch, mapped, macs), len(found), mapped))
                break
    # the token split only where no weight split fits (or when asked for): its shared
    # weights travel the unicast comb, and the performance model put it 1.7-3.4x
    # behind the weight split on every shape where both fit (small: 64/256/512 tokens,
    # hidden 128-1024; docs/backend.md "MLP block"), although its cost estimate
    # (schedule_cost) was as low or lower
    if split == "tokens" or (split is None and not found):
        sizes = [("W1", ceil_to(d, 16) * ceil_to(hidden, 16)), ("W2", ceil_to(hidden, 16) * n)]
        build = lambda streamed: _build(arch, t, name, streamed, parts if fast else 0)  # noqa: E731
        try:
            mapped = build_first_fit(build, sizes)
            found.append((schedule_cost(arch, mapped, macs), len(found), mapped))
        except AllocError as exc:
            err = exc  # the token split streams: its error is the one to report
    if not found:
        if err is None:
            raise ShapeError(
                f"mlp: no weight split of {m} x {d} x {hidden} x {n} gives every PE of "
                f"{arch.name} a tile of both GEMMs"
            )
        raise err
    best = min(found, key=lambda f: f[:2])
    best[2].plan["cost_cycles"] = round(best[0], 1)
    return best[2]


def schedule_cost(arch, mapped: Mapped, macs: int) -> float:
    """The planner's estimate: :func:`schedule_bound` plus the time the DRAM needs for
    the bytes that must arrive before the last PE can start its first MATMUL
    (``plan["fill_bytes"]``)."""
    bw = arch.dram_bytes_per_cycle * max(arch.dram_ports, 1)
    return schedule_bound(arch, mapped, macs) + mapped.plan["fill_bytes"] / bw


def schedule_bound(arch, mapped: Mapped, macs: int) -> float:
    """Cycles the schedule cannot beat: MAC work on the PEs it uses, its DRAM bytes at
    the DRAM bandwidth, and the busiest PE's NoC injection or ejection at one flit a
    cycle (a multicast injected once) - the planner's cost estimate."""
    tr = traffic(arch, mapped.kernel)
    pes = len(list(mapped.kernel.pes()))
    compute = macs / (arch.mac_rows * arch.mac_cols * max(pes, 1))
    dram = tr["dram_bytes"] / (arch.dram_bytes_per_cycle * max(arch.dram_ports, 1))
    noc = max([*tr["inject"].values(), *tr["eject"].values(), 0]) / (arch.flit_bits // 8)
    return max(compute, dram, noc)


def _build(arch, t: dict[str, np.ndarray], name: str, streamed: set[str], parts: int) -> Mapped:
    fast = parts > 0
    R, C = arch.mac_rows, arch.mac_cols
    m, d = t["x"].shape
    hidden, n = t["w1"].shape[1], t["w2"].shape[1]
    dp, hp, op = ceil_to(d, 16), ceil_to(hidden, 16), ceil_to(n, C)
    ch = RowChain(arch, name, m, lambda mtp: (mtp * R * op) % 16 == 0)
    # transpose_blocked reads windows of 16/C m tiles: only where they come out whole
    blocked = fast and "W1" not in streamed and C <= 16 and 16 % C == 0 and ch.mtp % (16 // C) == 0
    kb, mp_ = ch.kb, ch.mp
    perm = chunk_perm(hp, R, C)
    w1 = np.zeros((dp, hp), np.int8)
    w1[:d, :hidden] = t["w1"]
    x_band = ch.band("X", "X", t["x"], dp, GEMM1)
    w1s = ch.add_shared(Shared("W1", "W1", pack_b(w1[:, perm], dp, hp, C), dp, hp, GEMM1))
    w2s = ch.add_shared(Shared("W2", "W2", pack_b(t["w2"], hp, op, C), hp, op, GEMM2))
    for op_ in (w1s, w2s):
        op_.streamed = op_.name in streamed
        if fast and not op_.streamed:
            op_.parts = min(parts, op_.n // C)
    ch.assign()
    kb.dram_tensor("Y", len(ch.pes) * mp_ * op)
    p1 = param_blocks(*(_pad(t[k], hp)[perm] for k in ("b1", "m1", "s1")), 0, 0, 127, C)
    p2 = param_blocks(*(_pad(t[k], op) for k in ("b2", "m2", "s2")), 0, -128, 127, C)
    ch.group("P1", "params1", len(p1), (LOAD, GEMM1), "high", p1)
    ch.group("P2", "params2", len(p2), (LOAD, GEMM2), "high", p2)
    sel, ident = transpose_buffers(kb, ch.rect, (TRANS, TRANS), blocked=blocked)
    # the row-major transpose reads up to 16 rows of R bytes past a row start: pad H
    ch.per_pe("H", "H", mp_ * hp + (0 if blocked else 16 * R), (GEMM1, TRANS))
    ch.per_pe("HT", "H transposed", ch.mtp * hp * R, (TRANS, GEMM2))
    ch.per_pe("Y", "Y", mp_ * op, (GEMM2, STORE))
    ch.load_shared()
    if fast and not w1s.streamed:
        tile = ch.mtp * R * C  # bytes of one column of blocked tiles
        geo = (C, tile, tile) if blocked else (hp, C, C)  # ldc, column step, c per tile
        _parted(ch, w1s, "X", "H", "P1", geo, first=True)
    else:
        ch.arrive(w1s)
        for i, pe in enumerate(ch.pes):
            kb.add(pe, mp.WaitOp, sem=0, count=1)
            ch.gemm(pe, i, f"X{i}", w1s, f"H{i}", "P1", hp)
    for i, pe in enumerate(ch.pes):
        if blocked:
            kb.add(
                pe, TransposeBlockedOp, src=f"@H{i}", dst=f"@HT{i}", sel=f"@{sel}",
                params=f"@{ident}", tiles=[ch.mtp, hp // C],
            )  # fmt: skip
        else:
            kb.add(
                pe,
                mp.TransposeOp,
                src=f"@H{i}",
                dst=f"@HT{i}",
                sel=f"@{sel}",
                params=f"@{ident}",
                rows=mp_,
                cols=hp,
                ldc=hp,
            )
    if fast and not w2s.streamed:
        _parted(ch, w2s, "HT", "Y", "P2", (op, C, C), first=False)
    else:
        ch.arrive(w2s)
        for i, pe in enumerate(ch.pes):
            ch.gemm(pe, i, f"HT{i}", w2s, f"Y{i}", "P2", op)
    for i, pe in enumerate(ch.pes):
        ch.store(pe, i, "Y", "Y", mp_ * op)
    ch.rows_output("Y", m, n, op)
    plan = ch.plan(padded=[dp, hp, op], x_band_bytes=x_band, split="tokens")
    plan["transpose"] = "blocked" if blocked else "row-major"
    plan["parts"] = {o.name: o.parts for o in (w1s, w2s) if fast and not o.streamed}
    # before its first MATMUL a PE needs its row band and W1: one streamed tile, the
    # first part, or all of it
    first = C * w1s.k if w1s.streamed else w1s.nbytes // max(w1s.parts, 1)
    plan["fill_bytes"] = len(ch.pes) * x_band + first
    return kb.finish(plan)


def _parted(ch: RowChain, w: Shared, a: str, c: str, params: str, geo, first: bool) -> None:
    """``c = a @ w`` part by part as the parts of resident ``w`` arrive; ``geo`` =
    (ldc, column-tile step, c bytes per column tile): blocked tiles for
    transpose_blocked, or row-major rows."""
    kb, C = ch.kb, ch.arch.mac_cols
    ldc, step, per_tile = geo
    for p, (j0, j1) in enumerate(w.part_tiles(C)):
        ch.arrive(w, (j0, j1))
        for i, pe in enumerate(ch.pes):
            if first and p == 0:
                kb.add(pe, mp.WaitOp, sem=0, count=1)
            kb.add(
                pe, MatmulWinOp, a=f"@{a}{i}", b=f"@{w.name}s", c=f"@{c}{i}",
                params=f"@{params}", tiles=[ch.mtp, j1 - j0], k=w.k, ldc=ldc, col_step=step,
                param_stride=ch.q, b_offset=j0 * w.k * C, c_offset=j0 * per_tile,
                p_offset=j0 * ch.q,
            )  # fmt: skip
