"""Calibration data for post-training quantization, and range collection.

Samples are attached to a module with :func:`set_samples` (programmatic use) or read
from an ``.npz`` file holding one array per model input whose first axis indexes the
samples (CLI use).  :func:`collect_ranges` runs the float interpreter on every sample
and records the min/max (or a percentile) of every float value.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from compiler.errors import QuantizeError
from compiler.interpreter import run
from compiler.ir import main_func

Sample = dict[str, np.ndarray]
_SAMPLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def set_samples(module: ModuleOp, samples: Sequence[Sample]) -> None:
    """Attach calibration samples (input name -> array) to ``module``."""
    if not samples:
        raise QuantizeError("calibration needs at least one sample")
    _SAMPLES[module] = list(samples)


def samples_of(module: ModuleOp) -> list[Sample] | None:
    return _SAMPLES.get(module)


def load_samples(path: str | Path) -> list[Sample]:
    """Samples from an .npz file: one array per input, first axis = sample index."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise QuantizeError(f"cannot read calibration file {str(path)!r}: {exc}") from None
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        raise QuantizeError(f"calibration file {str(path)!r}: inputs have different sample counts")
    n = counts.pop()
    return [{k: a[i] for k, a in arrays.items()} for i in range(n)]


def mse_range(
    values: np.ndarray, lo: float, hi: float, bits: int = 8, steps: int = 20
) -> tuple[float, float]:
    """The clipping range ``alpha * (lo, hi)`` (alpha in (0, 1]) with the least
    quantization mean squared error on ``values`` for an asymmetric ``bits`` grid."""
    best, best_err = (lo, hi), np.inf
    levels = (1 << bits) - 1
    for alpha in np.linspace(1.0, 0.3, steps):
        a, b = lo * alpha, hi * alpha
        scale = (b - a) / levels
        if scale <= 0:
            break
        zp = np.rint(-a / scale)
        q = np.clip(np.rint(values / scale) + zp, 0, levels)
        err = float(np.mean(((q - zp) * scale - values) ** 2))
        if err < best_err:
            best, best_err = (a, b), err
    return best


def collect_ranges(
    module: ModuleOp,
    samples: Sequence[Sample],
    percentile: float = 100.0,
    mse_bits: int = 0,
    channels: dict | None = None,
) -> dict[SSAValue, tuple[float, float]]:
    """(lo, hi) of every float value over all samples; lo <= 0 <= hi always.

    With ``mse_bits`` (8), each range is then narrowed to the MSE-optimal clipping
    range for that many bits, estimated on a fixed random subsample of the values.
    If ``channels`` is a dict it receives, per value, the (min, max) of each index of
    the last axis (for per-channel smoothing)."""
    fn = main_func(module)
    names = [a.name_hint for a in fn.body.block.args]
    stats: dict[SSAValue, list[tuple[float, float]]] = {}
    subsamples: dict[SSAValue, list[np.ndarray]] = {}
    rng = np.random.default_rng(0)

    def record(value: SSAValue, array: np.ndarray) -> None:
        if array.dtype.kind != "f" or array.size == 0:
            return
        if mse_bits:
            flat = array.reshape(-1).astype(np.float64)
            pick = rng.choice(flat.size, min(flat.size, 20000), replace=False)
            subsamples.setdefault(value, []).append(flat[pick])
        if percentile >= 100.0:
            lo, hi = float(array.min()), float(array.max())
        else:
            lo, hi = (float(v) for v in np.percentile(array, [100 - percentile, percentile]))
        stats.setdefault(value, []).append((lo, hi))
        if channels is not None and array.ndim >= 1:
            flat = array.reshape(-1, array.shape[-1])
            cmin, cmax = flat.min(axis=0), flat.max(axis=0)
            if value in channels:
                cmin = np.minimum(cmin, channels[value][0])
                cmax = np.maximum(cmax, channels[value][1])
            channels[value] = (cmin, cmax)

    def observe(op: Operation, out: np.ndarray) -> None:
        record(op.results[0], out)

    for sample in samples:
        missing = [n for n in names if n not in sample]
        if missing:
            raise QuantizeError(f"calibration sample lacks input(s) {missing}")
        for arg, name in zip(fn.body.block.args, names, strict=True):
            record(arg, np.asarray(sample[name]))
        with np.errstate(all="ignore"):
            run(module, sample, observer=observe)
    ranges = {
        v: (min(0.0, min(s[0] for s in ss)), max(0.0, max(s[1] for s in ss)))
        for v, ss in stats.items()
    }
    if mse_bits:
        ranges = {
            v: mse_range(np.concatenate(subsamples[v]), *r, bits=mse_bits)
            for v, r in ranges.items()
        }
    return ranges
