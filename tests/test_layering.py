"""The direction of imports (docs/STYLE): hw/ never imports compiler/, cosim/ or sim/;
compiler/ imports only hw.arch, hw.isa and hw.errors of the hardware side; hw/arch.py,
hw/isa.py and hw/errors.py import only the standard library (and each other)."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from sim import numerics" imports sim.numerics; "from hw.arch import X"
            # yields hw.arch.X, which the checks below match by prefix.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def test_hw_never_imports_upper_layers():
    for path in files("hw"):
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in {"compiler", "cosim", "sim", "myelin"}, f"{path}: imports {name}"


def test_contract_modules_import_only_stdlib():
    for rel in ("hw/arch.py", "hw/isa.py", "hw/errors.py", "hw/asm.py", "hw/image.py"):
        path = ROOT / rel
        if not path.exists():
            continue
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top in STDLIB or within(name, {"hw.arch", "hw.isa", "hw.errors"}), (
                f"{rel}: imports {name}"
            )


def test_compiler_uses_only_hw_contracts():
    allowed = {"hw.arch", "hw.isa", "hw.errors", "hw.image", "hw.asm"}
    for path in files("compiler"):
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in {"cosim", "myelin"}, f"{path}: imports {name}"
            if top == "hw":
                assert within(name, allowed), f"{path}: imports {name}"
            if top == "sim":
                # the ISA's arithmetic and its byte footprints (the hazard rule)
                assert within(name, {"sim.numerics", "sim.footprint"}), f"{path}: imports {name}"


def test_sim_never_imports_cosim_or_compiler():
    for path in files("sim"):
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in {"compiler", "cosim", "myelin"}, f"{path}: imports {name}"
            if top == "hw":
                assert not within(name, {"hw.pe", "hw.noc", "hw.chip"}), f"{path}: imports {name}"
