"""The pass registry and the pipeline runner (verification after every pass)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdsl.dialects.builtin import TensorType, f32
from xdsl.passes import ModulePass

from compiler.errors import PassError, VerifyError
from compiler.ir import parse_module
from compiler.pipeline import parse_passes, run_pipeline
from compiler.transforms import all_passes

SRC = """
func.func @main(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %c = graph.constant {value = dense<0.0> : tensor<3xf32>} : tensor<3xf32>
  %a = graph.add %x, %c : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %a : tensor<2x3xf32>
}"""


def test_pass_file_class_and_name_agree() -> None:
    folder = Path(__file__).resolve().parents[2] / "compiler" / "transforms"
    for name, cls in all_passes().items():
        stem = name.replace("-", "_")
        assert (folder / f"{stem}.py").is_file(), name
        assert cls.__module__ == f"compiler.transforms.{stem}"
        camel = "".join(p.capitalize() for p in name.split("-")) + "Pass"
        assert cls.__name__ == camel
        assert hasattr(cls(), "arch")  # every pass takes the arch preset name


def test_print_after_all_and_arch_option() -> None:
    module = parse_module(SRC)
    out = io.StringIO()
    passes = parse_passes("canonicalize,dce", arch="tiny")
    assert all(p.arch == "tiny" for p in passes)  # type: ignore[attr-defined]
    result = run_pipeline(module, passes, print_after_all=True, out=out)
    text = out.getvalue()
    assert "IR Dump After canonicalize" in text and "IR Dump After dce" in text
    assert "graph.add" not in text.split("IR Dump After dce")[1]
    assert [t.name for t in result.timings] == ["canonicalize", "dce"]


def test_verification_after_every_pass_names_the_pass() -> None:
    @dataclass(frozen=True)
    class BreakTypesPass(ModulePass):
        name = "break-types"

        def apply(self, ctx, op) -> None:
            for node in op.walk():
                if node.name == "graph.add":
                    from compiler.transforms.common import set_type

                    set_type(node.results[0], TensorType(f32, [7, 7]))

    module = parse_module(SRC)
    with pytest.raises(VerifyError, match="after pass 'break-types'"):
        run_pipeline(module, [BreakTypesPass()])


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope", "unknown pass 'nope'"),
        ("dce{prune-store=maybe}", "bad options"),
        ("dce{", "cannot parse pass pipeline"),
    ],
)
def test_bad_pipeline_specs(spec: str, message: str) -> None:
    with pytest.raises(PassError, match=message):
        parse_passes(spec)


def test_pad_to_mac_rejects_unknown_arch() -> None:
    from hw.errors import ConfigError

    module = parse_module(SRC)
    with pytest.raises(ConfigError):
        run_pipeline(module, parse_passes('pad-to-mac{arch="nosuch"}'))
