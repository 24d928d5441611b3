"""The per-PE lower bound of a kernel from its essential MAC and vector cycles.

On a blocking PE (``ArchConfig.async_units = false``; docs/isa.md, "Execution
model") a MATMUL or VOP holds the controller until its unit is done, so the MAC
array and the vector unit of one PE never work at the same time; only DMA runs
concurrently.  A kernel whose algorithm needs both on the same data (attention:
Q K^T, the softmax, P V) can therefore not beat, on its busiest PE,

    pe_serial = useful MACs / (mac_rows * mac_cols)  +  vector-unit cycles,

however well loading and transfers are overlapped.  With decoupled units (nowait
commands, the default) the two units can run at once and the bound is the larger
of the two terms.  The vector-unit cycles are
the passes the algorithm needs over its elements at the unit's throughput - it
reads one ``sram_port_bits`` word of each operand per cycle and has ``vec_lanes``
lanes, so ``min(vec_lanes, port bytes / element bytes)`` elements per cycle (4 for
int32 on ``small``) - plus the iterative functions at their fewest cycles per
element (docs/isa.md: RECIP 2, it skips the quotient's leading zero bits, up to 32;
SQRT 17).  Instruction overheads, bank conflicts,
transposes and waits are not counted: this is a bound, not an estimate.

Kernels report their work in ``plan["pe_work"]`` (:func:`pe_work`); a kernel that
reports none (pure GEMMs, conv2d) has no vector work and its MACs spread evenly.
"""

from __future__ import annotations

__all__ = ["ITERATIVE_CYCLES", "pe_work", "vector_cycles", "pe_serial"]

ITERATIVE_CYCLES = {"RECIP": 2, "SQRT": 17}  # fewest per element (docs/isa.md)


def vector_cycles(arch, passes: list[tuple[str, int, int]], iterative: dict[str, int]) -> float:
    """Cycles of ``passes`` = [(name, elements, element bytes)] streamed through the
    vector unit, plus ``iterative`` = {function: elements}."""
    port = arch.sram_port_bits // 8
    total = 0.0
    for _, n, nbytes in passes:
        total += n / min(arch.vec_lanes, max(port // nbytes, 1))
    return total + sum(ITERATIVE_CYCLES[f] * n for f, n in iterative.items())


def pe_work(arch, macs: int, passes: list[tuple[str, int, int]], iterative: dict) -> dict:
    """``plan["pe_work"]`` of a kernel: the busiest PE's useful MACs and the vector
    passes its algorithm needs (name, elements, bytes per element)."""
    return {
        "macs": int(macs),
        "mac_cycles": macs / (arch.mac_rows * arch.mac_cols),
        "vector_passes": [list(p) for p in passes],
        "iterative": dict(iterative),
        "vector_cycles": vector_cycles(arch, passes, iterative),
    }


def pe_serial(ck) -> float:
    """The busiest PE's essential MAC cycles plus (blocking PE) or at least
    (decoupled units) its vector-unit cycles."""
    a = ck.arch
    work = ck.plan.get("pe_work") if isinstance(ck.plan, dict) else None
    if not work:
        return ck.macs / (a.mac_rows * a.mac_cols * max(len(ck.images), 1))
    if a.async_units:
        return max(work["mac_cycles"], work["vector_cycles"])
    return work["mac_cycles"] + work["vector_cycles"]
