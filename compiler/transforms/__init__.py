"""Passes over the graph and qnt dialects; one pass per file (file, class, name agree).

``PASSES`` maps each pass name (as used by ``myelin opt -p``) to its class.
"""

from __future__ import annotations

from xdsl.passes import ModulePass


def all_passes() -> dict[str, type[ModulePass]]:
    """name -> pass class, for every pass of the compiler."""
    from compiler.transforms.canonicalize import CanonicalizePass
    from compiler.transforms.convert_layout import ConvertLayoutPass
    from compiler.transforms.cse import CsePass
    from compiler.transforms.dce import DcePass
    from compiler.transforms.decompose_composites import DecomposeCompositesPass
    from compiler.transforms.fold_constants import FoldConstantsPass
    from compiler.transforms.fuse_ops import FuseOpsPass
    from compiler.transforms.infer_shapes import InferShapesPass
    from compiler.transforms.pad_to_mac import PadToMacPass
    from compiler.transforms.quantize import QuantizePass
    from compiler.transforms.raise_composites import RaiseCompositesPass

    classes = [
        InferShapesPass, FoldConstantsPass, CanonicalizePass, DcePass, CsePass,
        RaiseCompositesPass, DecomposeCompositesPass, FuseOpsPass, ConvertLayoutPass,
        PadToMacPass, QuantizePass,
    ]  # fmt: skip
    return {cls.name: cls for cls in classes}
