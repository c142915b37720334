"""CRC-32C (Castagnoli) over any contiguous buffer, hardware-accelerated, without copies.

The ``google-crc32c`` extension only accepts ``bytes`` (its argument parser rejects memoryviews,
numpy arrays and memory maps), which would force a copy of every segment we verify. We therefore call
the ``crc32c_extend`` symbol of the libcrc32c it bundles through ctypes: zero copy, and ctypes
releases the GIL for the duration of the call. ``bytes`` inputs use the extension directly (it is
faster per call for small records).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import google_crc32c
import numpy as np

# Large buffers are checksummed in slices so one call never holds a huge region hostage and the
# ctypes size argument stays comfortably within size_t on every platform.
_CHUNK = 1 << 28
# Below this size a ``bytes`` object goes through the extension: cheaper per call than ctypes.
_SMALL = 1 << 16


def _load_native() -> ctypes.CDLL | None:
    """Locate the libcrc32c that google-crc32c ships (or the system one) and bind crc32c_extend."""
    pkg = Path(google_crc32c.__file__).resolve().parent
    candidates = sorted(pkg.parent.glob("google_crc32c.libs/libcrc32c*.so*"))
    candidates += [*sorted(pkg.glob("libcrc32c*.so*")), Path("libcrc32c.so.1")]
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(str(candidate))
            fn = lib.crc32c_extend
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]
        fn.restype = ctypes.c_uint32
        return lib
    return None


_LIB = _load_native()
_EXTEND = _LIB.crc32c_extend if _LIB is not None else None


def _as_bytes_view(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A flat uint8 view of ``data`` (copies only when the buffer is not contiguous)."""
    if isinstance(data, np.ndarray):
        arr = data if data.flags.c_contiguous else np.ascontiguousarray(data)
        return arr.reshape(-1).view(np.uint8)
    view = memoryview(data)
    if not view.c_contiguous:
        return np.frombuffer(view.tobytes(), dtype=np.uint8)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return np.frombuffer(view, dtype=np.uint8)


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, value: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``value`` (the CRC of what came before)."""
    if _EXTEND is None or (isinstance(data, bytes) and len(data) < _SMALL):
        if not isinstance(data, bytes):
            data = _as_bytes_view(data).tobytes()
        return int(google_crc32c.extend(value, data))
    flat = _as_bytes_view(data)
    n = flat.nbytes
    if n == 0:
        return value
    base = flat.ctypes.data
    crc = value
    for start in range(0, n, _CHUNK):
        crc = _EXTEND(crc, base + start, min(_CHUNK, n - start))
    return int(crc)
