"""The project's own exception types.

Every error a user can cause (a bad preset, an instruction field that does not
fit, a program larger than instruction memory, a malformed ONNX model) is raised
as a subclass of :class:`MyelinError`, whose message names the field, value and
limit.  The CLI prints the message and exits non-zero without a traceback.

This module imports only the standard library so that every layer (hw/,
compiler/, cosim/, sim/) can use it.
"""


class MyelinError(Exception):
    """Base class of every error a user of Myelin can cause."""


class ConfigError(MyelinError):
    """An invalid architecture preset, configuration file or field."""


class EncodingError(MyelinError):
    """An instruction or packet field that does not fit its encoding."""


class AssemblyError(MyelinError):
    """A malformed line of PE assembly; the message names the line."""


class ImageError(MyelinError):
    """A program or data image that does not fit the PE it is loaded into."""


class SimulationError(MyelinError):
    """A simulation that hung, timed out or ended in a PE error state."""
