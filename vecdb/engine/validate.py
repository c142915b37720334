"""Input validation shared by the embedded API and the gRPC server: the one place bad input stops.

Every function either returns a clean, contiguous array of the right dtype or raises
``InvalidArgument`` with a message that names the argument and what was wrong with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecdb.errors import InvalidArgument
from vecdb.kernels.validate import all_finite

MAX_K = 10_000
MAX_SEARCH_PARAM = 100_000  # ef, nprobe, rerank, max_lists
MAX_DIM = 65_536
MAX_BATCH_ROWS = 1_000_000


def check_dim(dim: Any) -> int:
    """A vector dimension: an int in 1..MAX_DIM."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise InvalidArgument(f"dim must be an integer, got {type(dim).__name__}")
    if not 1 <= int(dim) <= MAX_DIM:
        raise InvalidArgument(f"dim must be in 1..{MAX_DIM}, got {dim}")
    return int(dim)


def check_k(k: Any) -> int:
    """The number of neighbours asked for: an int in 1..MAX_K."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidArgument(f"k must be an integer, got {type(k).__name__}")
    if not 1 <= int(k) <= MAX_K:
        raise InvalidArgument(f"k must be in 1..{MAX_K}, got {k}")
    return int(k)


def as_ids(ids: Any, *, allow_duplicates: bool = False, name: str = "ids") -> np.ndarray:
    """ids -> (n,) int64. Rejects floats, bools, non-1-d input and (unless allowed) duplicates."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidArgument(f"{name} must be a 1-d array of int64, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"{name} must be integers (int64), got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidArgument(f"{name} must fit in int64")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if not allow_duplicates and out.size > 1:
        sorted_ids = np.sort(out)
        dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if dup.size:
            raise InvalidArgument(f"duplicate id {int(dup[0])} in one batch of {name}")
    return out


def as_vectors(vectors: Any, dim: int, *, name: str = "vectors") -> np.ndarray:
    """vectors -> (n, dim) float32 C-contiguous, every value finite."""
    arr = _as_float_matrix(vectors, name)
    if arr.ndim == 1 and arr.size == dim:
        arr = arr.reshape(1, dim)
    if arr.ndim != 2:
        raise InvalidArgument(f"{name} must have shape (n, {dim}), got {arr.shape}")
    if arr.shape[1] != dim:
        raise InvalidArgument(f"{name} have dimension {arr.shape[1]}, expected {dim}")
    if arr.shape[0] > MAX_BATCH_ROWS:
        raise InvalidArgument(f"{name}: a batch holds at most {MAX_BATCH_ROWS} rows, got {arr.shape[0]}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise InvalidArgument(
            f"{name} must be finite: row {int(bad[0])}, dimension {int(bad[1])} is {out[bad[0], bad[1]]}"
        )
    return out


def as_queries(queries: Any, dim: int, *, name: str = "queries") -> np.ndarray:
    """queries: (d,) or (q, d) -> (q, d) float32, finite, at least one query."""
    if (
        type(queries) is np.ndarray
        and queries.dtype == np.float32
        and queries.shape[-1] == dim
        and 0 < queries.ndim <= 2
        and queries.size
        and queries.flags.c_contiguous
        and all_finite(queries)
    ):  # the common case, checked in a few microseconds: a user's float32 query batch
        return queries if queries.ndim == 2 else queries.reshape(1, dim)
    out = as_vectors(queries, dim, name=name)
    if out.shape[0] == 0:
        raise InvalidArgument(f"{name} is empty: pass at least one query vector")
    return out


def _as_float_matrix(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise InvalidArgument(f"{name} must be floating point numbers, got dtype {arr.dtype}")
    return arr
