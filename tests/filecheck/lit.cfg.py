"""lit configuration of the compiler's filecheck tests (run by tests/compiler/test_filecheck.py
or ``lit tests/filecheck``)."""

import os
import sys

import lit.formats

config.name = "myelin-compiler"  # noqa: F821
config.test_format = lit.formats.ShTest(False)  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
_root = os.path.dirname(os.path.dirname(config.test_source_root))  # noqa: F821
_bin = os.path.dirname(sys.executable)
config.test_exec_root = os.path.join(_root, "build", "filecheck")  # noqa: F821
config.environment["PYTHONPATH"] = _root  # noqa: F821
config.environment["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")  # noqa: F821
config.environment["OPENBLAS_NUM_THREADS"] = "1"  # noqa: F821
config.substitutions.append(("%python", sys.executable))  # noqa: F821
config.substitutions.append(("%myelin-opt", f"{sys.executable} -m myelin.cli opt"))  # noqa: F821
