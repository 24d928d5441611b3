"""Compiled program directories: what ``myelin backend emit`` writes, ``myelin run`` reads.

A directory holds everything an executor needs, without the compiler::

    program.json      format, kernel, arch (ArchConfig.to_dict()), seed, shape, macs,
                      compile_s, plan, traffic, the DRAM map (name, offset, nbytes,
                      input/output) and, per output, its dtype and shape
    expected.npz      the numpy reference of every output (bit-exact target)
    layout.npz        per output, the byte index of every element in the written DRAM
                      tensors (concatenated in DRAM-map order): the output is a gather
    pe_<x>_<y>/       one hw.image.ProgramImage per used PE (DRAM inputs ride in the
                      image of the first PE)
    mapping.mlir, pe_isa.mlir   the IR, for reading

Output layouts are recovered from the kernel's unpack functions by probing: the
written tensors are filled with the base-256 digits of each byte's index and the
function's output tells which byte every element came from; the result is checked
on the expected values and on one random fill, so a non-gather layout is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compiler.backend.builder import DramTensor, Mapped
from compiler.backend.compile import CompiledKernel
from compiler.errors import CompileError
from hw.arch import from_dict
from hw.errors import ImageError
from hw.image import ProgramImage

__all__ = ["FORMAT", "load_program", "save_program"]

FORMAT = "myelin-program-1"


def _written(ck: CompiledKernel) -> list[DramTensor]:
    return [t for t in ck.mapped.dram.values() if t.data is None]


def _split(ck: CompiledKernel, flat: np.ndarray) -> dict[str, bytes]:
    raw, at = {}, 0
    for t in _written(ck):
        raw[t.name] = flat[at : at + t.nbytes].tobytes()
        at += t.nbytes
    return raw


def output_layouts(ck: CompiledKernel) -> dict[str, np.ndarray]:
    """Per output, the index into the concatenated written tensors of each element."""
    total = sum(t.nbytes for t in _written(ck))
    idx = np.arange(total, dtype=np.int64)
    digits = max(1, -(-int(total - 1).bit_length() // 8)) if total > 1 else 1
    layouts = {}
    for name, fn in ck.mapped.outputs.items():
        want = ck.expected[name]
        if want.dtype.itemsize != 1:
            raise CompileError(
                f"output {name!r} of {ck.name!r} is {want.dtype}: only byte outputs can be saved"
            )
        acc = None
        for d in range(digits):
            probe = ((idx >> (8 * d)) & 0xFF).astype(np.uint8)
            got = np.asarray(fn(_split(ck, probe))).view(np.uint8).astype(np.int64)
            acc = got << (8 * d) if acc is None else acc | got << (8 * d)
        layouts[name] = acc
    rng = np.random.default_rng(0)
    fill = rng.integers(0, 256, total, dtype=np.uint8)
    for name, fn in ck.mapped.outputs.items():
        got = np.asarray(fn(_split(ck, fill)))
        if not np.array_equal(got.view(np.uint8), fill[layouts[name]]):
            raise CompileError(f"output {name!r} of {ck.name!r} is not a gather of DRAM bytes")
    return layouts


def _gather(order: list[str], index: np.ndarray, dtype: str):
    def unpack(raw: dict[str, bytes]) -> np.ndarray:
        flat = np.frombuffer(b"".join(raw[n] for n in order), np.uint8)
        return flat[index].view(dtype)

    return unpack


def save_program(ck: CompiledKernel, out: str | Path, *, shape: dict, seed: int) -> Path:
    """Write ``ck`` as a program directory (see the module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layouts = output_layouts(ck)
    meta = {
        "format": FORMAT,
        "kernel": ck.name,
        "arch": ck.arch.to_dict(),
        "seed": seed,
        "shape": shape,
        "macs": ck.macs,
        "compile_s": ck.compile_s,
        "plan": ck.plan,
        "traffic": {
            "dram_bytes": ck.traffic.get("dram_bytes", 0),
            "inject": [[*c, n] for c, n in ck.traffic.get("inject", {}).items()],
            "eject": [[*c, n] for c, n in ck.traffic.get("eject", {}).items()],
        },
        "dram": [
            {"name": t.name, "offset": t.offset, "nbytes": t.nbytes, "input": t.data is not None}
            for t in ck.mapped.dram.values()
        ],
        "outputs": {
            n: {"dtype": str(ck.expected[n].dtype), "shape": list(ck.expected[n].shape)}
            for n in ck.mapped.outputs
        },
        "pes": [list(c) for c in sorted(ck.images)],
    }
    (out / "program.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    np.savez(out / "expected.npz", **ck.expected)
    np.savez(out / "layout.npz", **layouts)
    for (x, y), image in ck.images.items():
        image.save(out / f"pe_{x}_{y}")
    return out


def load_program(directory: str | Path) -> CompiledKernel:
    """A :class:`CompiledKernel` from a program directory (IR objects not included:
    ``mapped.kernel`` is None and ``programs`` is empty)."""
    d = Path(directory)
    path = d / "program.json"
    if not path.is_file():
        hint = (
            " (it holds graph IR: compile it to PE programs first)"
            if (d / "model.mlir").exists()
            else ""
        )
        raise ImageError(
            f"{str(d)!r} is not a compiled program directory: no program.json{hint}; "
            "write one with `myelin backend emit NAME -o DIR`"
        )
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ImageError(
                f"{str(path)!r}: format must be {FORMAT!r}, not {meta.get('format')!r}"
            )
        arch = from_dict(meta["arch"], str(path))
        images = {tuple(c): ProgramImage.load(d / f"pe_{c[0]}_{c[1]}") for c in meta["pes"]}
        with np.load(d / "expected.npz") as f:
            expected = {k: f[k] for k in f.files}
        with np.load(d / "layout.npz") as f:
            layouts = {k: f[k] for k in f.files}
        inputs = {a: data for img in images.values() for a, data in img.dram}
        dram = {
            t["name"]: DramTensor(
                t["name"], int(t["offset"]), int(t["nbytes"]),
                inputs.get(int(t["offset"]), b"") if t["input"] else None,
            )
            for t in meta["dram"]
        }  # fmt: skip
        order = [t["name"] for t in meta["dram"] if not t["input"]]
        outputs = {n: _gather(order, layouts[n], o["dtype"]) for n, o in meta["outputs"].items()}
        traffic = {
            "dram_bytes": meta["traffic"]["dram_bytes"],
            "inject": {(x, y): n for x, y, n in meta["traffic"]["inject"]},
            "eject": {(x, y): n for x, y, n in meta["traffic"]["eject"]},
        }
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ImageError(f"program directory {str(d)!r} is malformed: {exc!r}") from None
    mapped = Mapped(None, {}, dram, outputs, meta.get("plan", {}))
    return CompiledKernel(
        meta["kernel"], arch, mapped, [], images, {}, expected,
        int(meta["macs"]), float(meta["compile_s"]), traffic,
    )  # fmt: skip
