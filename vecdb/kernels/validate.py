"""Argument checks shared by the kernel dispatch: one place that turns bad input into clear errors.

Two policies. *Stored* arrays (rows, codes: possibly memory-mapped and huge) must already have
the exact dtype and be C-contiguous; they are never copied, and their values are trusted.
*Query-side* arrays (a query, its lookup tables, weights: small) are converted to the kernel's
dtype when that is lossless in kind (any real number to float32) and must be finite.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def stored(arr: object, name: str, dtype: type, ndim: int) -> np.ndarray:
    """Return ``arr`` unchanged if it is a C-contiguous ``ndim``-D array of ``dtype``."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if ndim >= 2 and arr.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {arr.shape}")
    return arr


def _real_float32(arr: object, name: str) -> np.ndarray:
    if type(arr) is np.ndarray and arr.dtype == np.float32 and arr.flags.c_contiguous:
        return arr  # the common case, without the cost of entering np.errstate on every query
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: caught next
        return np.ascontiguousarray(a, dtype=np.float32)


def all_finite(a: np.ndarray) -> bool:
    """Whether every element of a float array is finite. One dot product (an inf or NaN anywhere
    makes it non-finite) is several times cheaper than isfinite().all() on a query; the exact check
    runs only when the sum overflowed."""
    return math.isfinite(np.vdot(a, a)) or bool(np.isfinite(a).all())


def _finite(a: np.ndarray, name: str) -> np.ndarray:
    if not all_finite(a):
        raise ValueError(f"{name} contains NaN or inf (or values beyond the float32 range)")
    return a


def query_vector(query: object, name: str, dim: int) -> np.ndarray:
    """A (dim,) finite float32 contiguous copy (or the array itself when already so)."""
    q = _real_float32(query, name)
    if q.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {q.shape}")
    if q.shape[0] != dim:
        raise ValueError(f"{name} has dimension {q.shape[0]}, rows have {dim}")
    return _finite(q, name)


def query_matrix(queries: object, name: str, dim: int) -> np.ndarray:
    """A (q, dim) finite float32 contiguous array."""
    q = _real_float32(queries, name)
    if q.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {q.shape}")
    if q.shape[1] != dim:
        raise ValueError(f"{name} has dimension {q.shape[1]}, rows have {dim}")
    return _finite(q, name)


def float_array(arr: object, name: str, ndim: int) -> np.ndarray:
    """A finite float32 contiguous array with ``ndim`` dimensions, any shape (per-query inputs)."""
    a = _real_float32(arr, name)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return _finite(a, name)


def small_float(arr: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A finite float32 contiguous array of exactly ``shape`` (scales, weights, lookup tables)."""
    a = _real_float32(arr, name)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return _finite(a, name)


def code_vector(arr: object, name: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A query-side code array that must already have ``dtype`` (no lossy conversion of bits)."""
    a = np.asarray(arr)
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a)


def check_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    """An int (not bool) in ``[lo, hi]``."""
    if type(value) is int and value >= lo and (hi is None or value <= hi):
        return value  # the common case, without the (slow) abstract-base-class check
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {bound}, got {v}")
    return v


def check_float(value: object, name: str) -> float:
    """A finite real scalar."""
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v
