"""The streaming templates of the lowering: K-chunked tiles and streamed whole-K tiles.

A mixin of :class:`compiler.backend.lower._PeLowering` (it uses the helpers ``off``,
``remote``, ``descriptor``, ``strides``, ``spill``, ``tail`` and ``code``).
"""

from __future__ import annotations

from compiler.backend.codegen import I, loop
from compiler.dialects import mapping as mp
from compiler.dialects.mapping import int_of, ints_of, ref_of
from hw.isa import Op, SignalMode, pack_node

__all__ = ["StreamTemplates"]


class StreamTemplates:
    def stream_matmul(self, op: mp.StreamMatmulOp) -> None:
        """Per tile, K chunks of A and B through two slots each (data semaphore of a
        slot: 2 arrivals, A and B).  An operand with ``<x>_lead_to`` is read by this PE
        and multicast to that rectangle after arrival; one with ``<x>_leader`` arrives
        from that PE, and this PE returns the slot with a SIGNAL on the credit
        semaphore (``credits`` = A slot 0, 1, B slot 0, 1) - one credit per slot up
        front, so the leader waits for credits before every refill, the first too."""
        R, C = self.arch.mac_rows, self.arch.mac_cols
        a = op.attributes
        mt, nt = ints_of(op, "tiles")
        k, kc, ldc = int_of(op, "k"), int_of(op, "kc"), int_of(op, "ldc")
        sems = ints_of(op, "sems")
        credits = ints_of(op, "credits") if "credits" in a else [0, 0, 0, 0]
        pstride = int_of(op, "param_stride") if "param_stride" in a else 0
        ops = {}  # operand -> (slot addresses, chunk bytes, addr reg, role...)
        for x, width, reg in (("a", R, 5), ("b", C, 6)):
            slot0 = self.off(ref_of(op, x))
            ops[x] = {
                "slot": [slot0, slot0 + kc * width],
                "chunk": kc * width,
                "reg": reg,
                "lead_to": ints_of(op, f"{x}_lead_to") if f"{x}_lead_to" in a else None,
                "leader": ints_of(op, f"{x}_leader") if f"{x}_leader" in a else None,
                "credit": credits[:2] if x == "a" else credits[2:],
            }
        for x, o in ops.items():
            if o["leader"] is None:
                o["read"] = [
                    self.descriptor(
                        local=o["slot"][s],
                        count0=o["chunk"] // 16,
                        sem=sems[s],
                        read=1,
                        **self.remote(ref_of(op, f"{x}_src"), 0, None),
                    )
                    for s in range(2)
                ]
                off = int_of(op, f"{x}_offset") if f"{x}_offset" in a else 0
                start = self.remote(ref_of(op, f"{x}_src"), off, None)["remote"]
                self.code.append(I(Op.LI, rd=o["reg"], imm=start))
            else:
                reg = 11 if x == "a" else 12
                o["sig"] = reg
                self.code.append(I(Op.LI, rd=reg, imm=pack_node(*o["leader"])))
                for s in range(2):  # both slots start free
                    self.code.append(
                        I(
                            Op.SIGNAL,
                            rs1=reg,
                            sem=o["credit"][s],
                            mode=int(SignalMode.NODE),
                            count=1,
                        )
                    )
            if o["lead_to"] is not None:
                x0, y0, x1, y1 = o["lead_to"]
                o["followers"] = (x1 - x0 + 1) * (y1 - y0 + 1)
                o["cast"] = [
                    self.descriptor(
                        local=o["slot"][s],
                        count0=o["chunk"] // 16,
                        sem=sems[s],
                        read=0,
                        signal=1,
                        **self.remote(ref_of(op, x), s * o["chunk"], o["lead_to"]),
                    )
                    for s in range(2)
                ]
        self.code += [
            I(Op.LI, rd=3, imm=self.off(ref_of(op, "c"))),
            I(Op.LI, rd=4, imm=self.off(ref_of(op, "params"))),
            I(Op.LI, rd=7, imm=ops["a"]["slot"][0]),
            I(Op.LI, rd=8, imm=ops["a"]["slot"][1]),
            I(Op.LI, rd=9, imm=ops["b"]["slot"][0]),
            I(Op.LI, rd=10, imm=ops["b"]["slot"][1]),
        ]

        def issue(s):
            out = []
            for o in ops.values():
                if o["leader"] is not None:
                    continue
                if o["lead_to"] is not None:
                    out.append(I(Op.WAIT, sem=o["credit"][s], count=o["followers"]))
                out += [
                    I(Op.SW, rs1=0, rs2=o["reg"], imm=o["read"][s] + 4),
                    I(Op.DMA, rs1=0, imm=o["read"][s]),
                    I(Op.ADDI, rd=o["reg"], rs1=o["reg"], imm=o["chunk"]),
                ]
            return out

        def compute(s, acc, out):
            code = [I(Op.WAIT, sem=sems[s], count=2)]
            code += [I(Op.DMA, rs1=0, imm=o["cast"][s]) for o in ops.values() if "cast" in o]
            code.append(
                I(
                    Op.MATMUL,
                    rs1=7 + s,
                    rs2=9 + s,
                    rs3=3,
                    k16=kc // 16,
                    acc=acc,
                    noout=0 if out else 1,
                    ldc=ldc,
                )
            )
            code += [
                I(Op.SIGNAL, rs1=o["sig"], sem=o["credit"][s], mode=int(SignalMode.NODE), count=1)
                for o in ops.values()
                if "sig" in o
            ]
            return code

        pairs = k // (2 * kc)
        if pairs == 1:
            tile = issue(0) + issue(1) + compute(0, 0, False) + compute(1, 1, True)
        else:
            middle = compute(0, 1, False) + issue(0) + compute(1, 1, False) + issue(1)
            tile = (
                issue(0)
                + issue(1)
                + compute(0, 0, False)
                + issue(0)
                + compute(1, 1, False)
                + issue(1)
                + loop(pairs - 2, middle)
                + compute(0, 1, False)
                + compute(1, 1, True)
            )
        # a follower's address register is unused: its strides are harmless
        self.strides(
            {
                0: [(5, -mt * k * R), (6, k * C), (3, C - mt * R * ldc), (4, pstride)],
                1: [(6, -k * C), (3, R * ldc)],
            }
        )
        body = [I(Op.QLOAD, rs1=4, imm=0), *loop(mt, tile + self.spill(1)), *self.tail(0)]
        self.code += loop(nt, body)
        # the followers' last credit of each slot (they return a slot after every use,
        # and it was free up front): consumed, so that every semaphore ends at 0 (the
        # deadlock check's balance rule) and the leader halts after their last read
        for o in ops.values():
            if o["lead_to"] is not None:
                n = o["followers"]
                self.code += [I(Op.WAIT, sem=o["credit"][s], count=n) for s in range(2)]

    def stream_tiles(self, op: mp.StreamTilesOp) -> None:
        """Resident band x streamed whole-K tiles, two slots; see mapping.StreamTilesOp.

        Alone: the PE reads its tiles from DRAM.  Leader (``lead_to``): it reads each
        tile, then multicasts the slot to the followers (data semaphore ``sems[s]``
        there); before refilling slot s it waits for ``credits[s]`` = one SIGNAL from
        every follower that has finished with the slot.  Follower (``leader``): waits
        for the data, computes, and returns the credit."""
        R, C = self.arch.mac_rows, self.arch.mac_cols
        a = op.attributes
        mt, nt = ints_of(op, "tiles")
        k, ldc = int_of(op, "k"), int_of(op, "ldc")
        q = int_of(op, "param_stride") if "param_stride" in a else 0
        sems = ints_of(op, "sems")
        credits = ints_of(op, "credits") if "credits" in a else []
        lead_to = ints_of(op, "lead_to") if "lead_to" in a else None
        leader = ints_of(op, "leader") if "leader" in a else None
        stream_a = a["streamed"].data == "a"
        tile = k * R if stream_a else k * C
        slots = self.off(ref_of(op, "a" if stream_a else "b"))
        slot = [slots, slots + tile]
        self.code += [
            I(Op.LI, rd=7, imm=slot[0]),
            I(Op.LI, rd=8, imm=slot[1]),
            I(Op.LI, rd=1, imm=self.off(ref_of(op, "a"))),
            I(Op.LI, rd=2, imm=self.off(ref_of(op, "b"))),
            I(Op.LI, rd=3, imm=self.off(ref_of(op, "c"))),
            I(Op.LI, rd=4, imm=self.off(ref_of(op, "params"))),
        ]
        if leader is None:
            src_off = int_of(op, "src_offset") if "src_offset" in a else 0
            rem = self.remote(ref_of(op, "src"), src_off, None)
            desc = [
                self.descriptor(local=slot[s], count0=tile // 16, sem=sems[s], read=1, **rem)
                for s in range(2)
            ]
            self.code.append(I(Op.LI, rd=5, imm=rem["remote"]))
        else:
            self.code.append(I(Op.LI, rd=6, imm=pack_node(*leader)))
        if lead_to is not None:
            cast = [
                self.descriptor(
                    local=slot[s],
                    count0=tile // 16,
                    sem=sems[s],
                    read=0,
                    signal=1,
                    **self.remote(ref_of(op, "a" if stream_a else "b"), s * tile, lead_to),
                )
                for s in range(2)
            ]
            x0, y0, x1, y1 = lead_to
            followers = (x1 - x0 + 1) * (y1 - y0 + 1)
        n_out, n_in = (mt, nt) if stream_a else (nt, mt)
        if stream_a:  # inner loop over the resident B tiles
            inner = [(2, k * C), (3, C), (4, q)]
            after = [(2, -n_in * k * C), (4, -n_in * q), (3, R * ldc - n_in * C)]
        else:  # inner loop over the resident A tiles
            inner = [(1, k * R), (3, R * ldc)]
            after = [(1, -n_in * k * R), (3, C - n_in * R * ldc), (4, q)]

        def issue(s, refill):
            if leader is not None:
                return []
            wait = [I(Op.WAIT, sem=credits[s], count=followers)] if lead_to and refill else []
            return [
                *wait,
                I(Op.SW, rs1=0, rs2=5, imm=desc[s] + 4),
                I(Op.DMA, rs1=0, imm=desc[s]),
                I(Op.ADDI, rd=5, rs1=5, imm=tile),
            ]

        def compute(s, level, more):
            if stream_a:
                body = [
                    I(Op.QLOAD, rs1=4, imm=0),
                    I(Op.MATMUL, rs1=7 + s, rs2=2, rs3=3, k16=k // 16, ldc=ldc),
                ]
                head = []
            else:
                body = [I(Op.MATMUL, rs1=1, rs2=7 + s, rs3=3, k16=k // 16, ldc=ldc)]
                head = [I(Op.QLOAD, rs1=4, imm=0)]
            if lead_to is not None:
                head = [I(Op.DMA, rs1=0, imm=cast[s]), *head]
            fix = [I(Op.ADDI, rd=r, rs1=r, imm=v) for r, v in after]
            if leader is not None and more:  # the leader refills this slot: give it back
                fix.append(I(Op.SIGNAL, rs1=6, sem=credits[s], mode=int(SignalMode.NODE), count=1))
            inner_loop = loop(n_in, body + self.spill(level))
            return [I(Op.WAIT, sem=sems[s], count=1), *head, *inner_loop, *fix]

        for s in range(min(2, n_out)):
            self.code += issue(s, False)
        steady = (n_out - 2) // 2 if n_out >= 2 else 0
        if steady:
            self.strides({1: inner})
            pair = compute(0, 1, True) + issue(0, True) + compute(1, 1, True) + issue(1, True)
            self.code += loop(steady, pair)
        self.strides({0: inner})
        for i in range(2 * steady, n_out):
            more = i + 2 < n_out
            self.code += compute(i % 2, 0, more) + (issue(i % 2, True) if more else [])
