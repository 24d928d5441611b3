"""The pass pipeline runner: parse specs, run passes, verify after each, time them.

``run_pipeline(module, ["fold-constants", "canonicalize{max-iterations=5}"])`` runs
the passes in order, verifies the module after every pass (a failure is a
VerifyError naming the pass) and can print the IR after each pass.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError, VerifyException

from compiler.errors import PassError, VerifyError
from compiler.ir import make_context, module_text
from compiler.transforms import all_passes

GRAPH_PIPELINE = (
    "infer-shapes", "raise-composites", "decompose-composites", "fold-constants",
    "canonicalize", "cse", "dce", "fuse-ops",
)  # fmt: skip
QUANT_PIPELINE = ("quantize", "fuse-ops", "canonicalize", "cse", "dce")
LOWER_PIPELINE = (
    "convert-layout",
    "fold-constants",
    "canonicalize",
    "pad-to-mac",
    "fold-constants",
    "dce",
)


@dataclass
class PassTiming:
    name: str
    seconds: float


@dataclass
class PipelineResult:
    timings: list[PassTiming] = field(default_factory=list)

    def total(self, names: Sequence[str] | None = None) -> float:
        return sum(t.seconds for t in self.timings if names is None or t.name in names)


def parse_passes(spec: str | Sequence[str], arch: str | None = None) -> list[ModulePass]:
    """Pass objects from ``"a,b{opt=1}"`` or a list of such items; PassError if unknown."""
    text = spec if isinstance(spec, str) else ",".join(spec)
    if not text.strip():
        return []
    registry = all_passes()
    try:
        specs = list(parse_pipeline(text))
    except (Exception, ArgSpecParseError) as exc:  # xDSL's parse error is a BaseException
        raise PassError(
            f"cannot parse pass pipeline {text!r}: {str(exc).strip().splitlines()[-1]}"
        ) from None
    out = []
    for s in specs:
        if s.name not in registry:
            raise PassError(f"unknown pass {s.name!r}; passes are: {', '.join(sorted(registry))}")
        if arch is not None and "arch" not in s.parameters:
            s.parameters["arch"] = (arch,)
        try:
            out.append(registry[s.name].from_pass_spec(s))
        except Exception as exc:
            raise PassError(f"pass {s.name!r}: bad options: {exc}") from None
    return out


def run_pipeline(
    module: ModuleOp,
    passes: Sequence[ModulePass] | str,
    print_after_all: bool = False,
    out: TextIO | None = None,
    on_pass: Callable[[ModulePass, ModuleOp], None] | None = None,
) -> PipelineResult:
    """Run ``passes`` in order on ``module`` (in place), verifying after each pass."""
    if isinstance(passes, str):
        passes = parse_passes(passes)
    ctx = make_context()
    result = PipelineResult()
    stream = out or sys.stdout
    for p in passes:
        start = time.perf_counter()
        p.apply(ctx, module)
        result.timings.append(PassTiming(p.name, time.perf_counter() - start))
        try:
            module.verify()
        except VerifyException as exc:
            raise VerifyError(f"IR does not verify after pass '{p.name}': {exc}") from None
        if print_after_all:
            stream.write(f"// -----// IR Dump After {p.name} //----- //\n")
            stream.write(module_text(module))
        if on_pass is not None:
            on_pass(p, module)
    return result
