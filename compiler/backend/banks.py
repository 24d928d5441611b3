"""SRAM placement by bank, for kernels whose DMA traffic overlaps their compute.

The SRAM arbiter gives a bank to the compute units first (docs/pe.md, "SRAM port
priority"): a MATMUL reads its B operand's bank every cycle (C = 16) and a VOP on
int32 data its operands' banks every cycle, so a DMA write into that bank (a part of
K^T or V arriving) or read from it (forwarding one down the comb, a SELF copy) waits
until the unit is done - on the RTL chip this serialised the attention head's
broadcasts with its compute.  The allocator's two sides (``low``, ``high``) use only
the first and the last bank; :class:`BankedAllocator` adds sides ``bank:<k>``: first
fit inside bank ``k`` (``arch.bank_bytes`` each), else wherever the ``high`` side
would place it (a plan that fits with any placement still compiles; only the
overlap suffers).
"""

from __future__ import annotations

from compiler.backend.alloc import SramAllocator

__all__ = ["BankedAllocator", "bank_side", "use_banks"]


def bank_side(arch, k: int) -> str:
    """The side of bank ``k`` (modulo the bank count)."""
    return f"bank:{k % max(arch.sram_banks, 1)}"


class BankedAllocator(SramAllocator):
    """SramAllocator with the sides ``bank:<k>`` (see the module docstring)."""

    def _first_fit(self, spans, n, size, side):  # type: ignore[override]
        if not side.startswith("bank:"):
            return SramAllocator._first_fit(spans, n, size, side)
        bb = self.arch.bank_bytes
        lo = int(side.split(":")[1]) * bb
        hi = min(lo + bb, size)
        cand = [lo] + [e for _, e in spans if lo <= e < hi]
        for c in sorted(cand):
            if c + n <= hi and all(c + n <= s or c >= e for s, e in spans):
                return c
        return SramAllocator._first_fit(spans, n, size, "high")


def use_banks(kb) -> None:
    """Give KernelBuilder ``kb`` the banked allocator (before any SRAM buffer)."""
    if kb.sram.buffers:
        raise ValueError("use_banks: the builder already has SRAM buffers")
    kb.sram = BankedAllocator(kb.arch)
