"""Errors of the compiler that a user can cause.

Every exception raised for a malformed model, an unsupported operator, attribute or
data type, or an invalid pass option is a subclass of :class:`CompileError` (itself a
:class:`hw.errors.MyelinError`), so the ``myelin`` command prints it on one line and
exits 2.  Messages name the ONNX node (or IR op), the operator and the reason.
"""

from __future__ import annotations

from hw.errors import MyelinError

__all__ = [
    "CompileError",
    "ModelFormatError",
    "UnsupportedError",
    "ShapeError",
    "VerifyError",
    "PassError",
    "QuantizeError",
]


class CompileError(MyelinError):
    """Base class of every user-caused compiler error."""


class ModelFormatError(CompileError):
    """The model file is unreadable or structurally invalid (cycle, dangling name...)."""


class UnsupportedError(CompileError):
    """An operator, attribute value, data type or opset that the compiler does not handle."""


class ShapeError(CompileError):
    """A shape that cannot be resolved statically or does not match its operator."""


class VerifyError(CompileError):
    """IR that fails verification (after parsing or after a pass)."""


class PassError(CompileError):
    """An unknown pass, a bad pass option or a pipeline that cannot run."""


class QuantizeError(CompileError):
    """Post-training quantization cannot proceed (missing calibration data, bad range)."""


def node_error(cls: type[CompileError], node: str, op: str, reason: str) -> CompileError:
    """An error of type ``cls`` with the standard ``node 'n' (Op): reason`` message."""
    return cls(f"node {node!r} ({op}): {reason}")
