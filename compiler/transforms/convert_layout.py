"""convert-layout: run convolutions channels-last (NHWC activations, HWIO weights).

The MAC array streams the input channels of one pixel as a contiguous vector, so
NHWC is the natural layout.  Each NCHW ``graph.conv``/``qnt.conv`` becomes
``transpose -> conv{layout = "nhwc"} -> transpose`` with the weights transposed once
(folded by fold-constants); canonicalize then cancels the transpose pairs between
consecutive convolutions.  Other ops keep NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from compiler.dialects import graph, qnt
from compiler.dialects.base import i64_array, shape_of, str_attr
from compiler.errors import PassError
from compiler.transforms.common import replace

TO_NHWC, TO_NCHW, TO_HWIO = [0, 2, 3, 1], [0, 3, 1, 2], [2, 3, 1, 0]


def transposed(v: SSAValue, perm: list[int]) -> Operation:
    t = v.type
    assert isinstance(t, TensorType)
    shape = [shape_of(v)[p] for p in perm]
    return graph.TransposeOp.create(
        operands=[v],
        result_types=[TensorType(t.element_type, shape, t.encoding)],
        attributes={"perm": i64_array(perm)},
    )


@dataclass(frozen=True)
class ConvertLayoutPass(ModulePass):
    """NCHW -> NHWC for convolutions."""

    name = "convert-layout"
    arch: str = "small"
    layout: str = "nhwc"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.layout not in ("nhwc", "nchw"):
            raise PassError(f"convert-layout: layout must be nhwc or nchw, not {self.layout!r}")
        if self.layout == "nchw":
            return
        for node in list(op.walk()):
            if (
                isinstance(node, (graph.ConvOp, qnt.ConvOp))
                and str_attr(node, "layout", "nchw") == "nchw"
            ):
                self._convert(node)

    def _convert(self, conv: Operation) -> None:
        x_t = transposed(conv.operands[0], TO_NHWC)
        w_t = transposed(conv.operands[1], TO_HWIO)
        out = conv.results[0]
        out_t = out.type
        assert isinstance(out_t, TensorType)
        nhwc_t = TensorType(out_t.element_type, [shape_of(out)[p] for p in TO_NHWC], out_t.encoding)
        attrs = dict(conv.attributes)
        attrs["layout"] = StringAttr("nhwc")
        operands = [x_t.results[0], w_t.results[0], *conv.operands[2:]]
        new = type(conv).create(operands=operands, result_types=[nhwc_t], attributes=attrs)
        back = transposed(new.results[0], TO_NCHW)
        back.results[0].name_hint = out.name_hint
        replace(conv, [x_t, w_t, new, back], back.results[0])
