"""The numpy-backed constant store.

Weights never live inside the IR as Python lists or large dense attributes: a
``graph.weight {ref = "name"}`` op names an entry of a :class:`ConstantStore`, which
holds the numpy arrays.  A store is attached to a module with :func:`attach` and found
again with :func:`store_of`; it is saved next to the IR text as an ``.npz`` file.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from compiler.errors import CompileError

__all__ = ["ConstantStore", "attach", "store_of"]

_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")


class ConstantStore:
    """A name -> numpy array mapping with unique-name allocation.

    Arrays are stored read-only so that a pass cannot change a weight shared by two
    ops behind the IR's back; a pass that transforms a weight adds a new entry.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return len(self._arrays)

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def get(self, name: str) -> np.ndarray:
        """The array called ``name``; CompileError if there is none."""
        try:
            return self._arrays[name]
        except KeyError:
            raise CompileError(f"constant store has no entry {name!r}") from None

    def add(self, hint: str, array: np.ndarray) -> str:
        """Store ``array`` under a fresh name derived from ``hint``; return the name."""
        base = _NAME_OK.sub("_", hint) or "c"
        name, i = base, 0
        while name in self._arrays:
            i += 1
            name = f"{base}_{i}"
        arr = np.array(array, copy=True)
        arr.setflags(write=False)
        self._arrays[name] = arr
        return name

    def copy(self) -> ConstantStore:
        """A new store sharing the (read-only) arrays."""
        out = ConstantStore()
        out._arrays = dict(self._arrays)
        return out

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def prune(self, keep: set[str]) -> None:
        """Drop every entry not named in ``keep`` (after dead-code elimination)."""
        for name in [n for n in self._arrays if n not in keep]:
            del self._arrays[name]

    def save(self, path: str | Path) -> None:
        np.savez(path, **self._arrays)

    @classmethod
    def load(cls, path: str | Path) -> ConstantStore:
        """Read an ``.npz`` store; CompileError if the file is missing or unreadable."""
        store = cls()
        try:
            with np.load(path, allow_pickle=False) as data:
                for name in data.files:
                    arr = np.array(data[name])
                    arr.setflags(write=False)
                    store._arrays[name] = arr
        except (OSError, ValueError) as exc:
            raise CompileError(f"cannot read constant store {str(path)!r}: {exc}") from None
        return store


_STORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BY_ID: dict[int, ConstantStore] = {}


def attach(module: object, store: ConstantStore) -> None:
    """Associate ``store`` with ``module`` (a ModuleOp)."""
    try:
        _STORES[module] = store
    except TypeError:  # unhashable op: fall back to identity
        _BY_ID[id(module)] = store


def store_of(module: object) -> ConstantStore:
    """The store attached to ``module``; an empty one is attached if there is none."""
    try:
        found = _STORES.get(module)
    except TypeError:
        found = _BY_ID.get(id(module))
    if found is None:
        found = ConstantStore()
        attach(module, found)
    return found
