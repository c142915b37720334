"""Which kernel backends the tests can run here, and a context manager that selects one.

Backends are "numpy", "numba" and "c-<level>" for every SIMD level the C module supports on this
CPU at or below the level active at start (so ``VECDB_SIMD=scalar`` limits the sweep to scalar).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from vecdb.kernels import dispatch


def _c_levels() -> list[str]:
    try:
        native = dispatch._import_native()
    except ImportError:
        return []
    start = str(native.simd_level())
    levels = []
    try:
        for name in dispatch.SIMD_LEVELS[: dispatch.SIMD_LEVELS.index(start) + 1]:
            if native.set_simd_level(name) == name:
                levels.append(name)
    finally:
        native.set_simd_level(start)
    return levels


C_LEVELS = _c_levels()
BACKENDS = ["numpy", "numba", *(f"c-{level}" for level in C_LEVELS)]


@contextlib.contextmanager
def using(name: str) -> Iterator[str]:
    """Route every kernel through backend ``name`` (as in ``BACKENDS``) for the block."""
    kind = "c" if name.startswith("c-") else name
    dispatch.reload(kind)
    native = dispatch.state().native
    start = native.simd_level() if native is not None else None
    try:
        if kind == "c":
            assert dispatch.set_simd_level(name[2:]) == name[2:]
        yield kind
    finally:
        if native is not None:
            native.set_simd_level(start)
        dispatch.reload()
