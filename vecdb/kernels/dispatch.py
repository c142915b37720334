"""One dispatch for every kernel: C (``vecdb._native``) -> numba -> numpy, chosen per operation.

Each public function here has the name and signature of its oracle in ``kernels.reference``.
It validates its inputs once (dtype, ndim, shape, contiguity: ``TypeError``/``ValueError``
naming the argument; a NaN or inf in a *query* is a ``ValueError``; stored rows and codes are
trusted), allocates the output, and calls the fastest backend that has the operation.

Knobs (read at first use, or again by ``reload()``):

* ``VECDB_KERNELS=auto|c|numba|numpy`` forces a backend (``auto``, the default, prefers C);
  an operation the forced backend lacks falls back down the same order.
* ``VECDB_SIMD=scalar|avx2|avx512`` caps the C module's SIMD level (read by the C module itself);
  ``set_simd_level`` changes it at run time.
"""

from __future__ import annotations

import importlib
import os
import types as pytypes
from typing import Any

import numpy as np

from vecdb.kernels import reference
from vecdb.kernels.validate import (
    check_int,
    query_matrix,
    query_vector,
    small_float,
    stored,
)
from vecdb.types import METRIC_CODES, check_metric

# Operation -> name of the function in vecdb._native that implements it.
NATIVE_NAMES: dict[str, str] = {
    "distances": "distances_f32",
    "distances_at": "distances_f32_at",
    "topk_at": "topk_f32_at",
    "distances_f16": "distances_f16",
    "distances_sq8": "distances_sq8",
    "hamming": "hamming",
    "bitplane_ip_sym": "bitplane_ip_sym",
    "bitplane_ip_asym": "bitplane_ip_asym",
    "pq_adc": "pq_adc",
    "pq4_fastscan": "pq4_fastscan",
    "pq4_fastscan_topk": "pq4_fastscan_topk",
    "topk": "topk",
    "topk_u16": "topk_u16",
}
# Ops only numba (or numpy) implements: merging top-k lists, binarizing residuals, fast-scan tables.
OPS: tuple[str, ...] = (*NATIVE_NAMES, "merge_topk", "binarize", "bitplane_fastscan_lut", "quantize_lut",
                        "fastscan_affine")
BACKENDS: tuple[str, ...] = ("auto", "c", "numba", "numpy")
SIMD_LEVELS: tuple[str, ...] = ("scalar", "avx2", "avx512")
# Below this many queries distances_many loops the one-query kernel: the GEMM path also streams
# every row's norm, so BLAS only wins once several queries share each pass (measured crossover
# at 3-4 queries, one thread, 300k x 384 rows, l2).
BLAS_MIN_QUERIES = 4
BLAS_BLOCK_ROWS = 16384  # rows per GEMM block: keeps the post-processing in cache


class State:
    """What was loaded and which backend serves each operation."""

    def __init__(self) -> None:
        self.native: Any = None
        self.native_error: str | None = None
        self.numba: pytypes.SimpleNamespace | None = None
        self.numba_error: str | None = None
        self.forced = "auto"
        self.backend: dict[str, str] = {}
        self.graph_search: int | None = None  # address of the active C HNSW traversal, once asked
        # numba decodes fp16 with the F16C instruction when the host has it, else by table
        self.f16c = bool(_host_cpu_features().get("f16c"))


_state: State | None = None


def _import_native() -> Any:
    """The C module, or raise ImportError (tests replace this to simulate either case)."""
    return importlib.import_module("vecdb._native")


def _import_numba() -> pytypes.SimpleNamespace:
    """The numba kernel modules (imported lazily: numba is slow to import)."""
    # By module path: the package attribute ``topk`` is the dispatching function, not a module.
    from vecdb.kernels import codes, distance, selection

    return pytypes.SimpleNamespace(distance=distance, codes=codes, selection=selection)


def reload(backend: str | None = None) -> None:
    """Re-resolve the backends, from ``backend`` or else ``VECDB_KERNELS``."""
    global _state
    forced = (backend if backend is not None else os.environ.get("VECDB_KERNELS", "auto")).strip().lower()
    if forced not in BACKENDS:
        raise ValueError(f"VECDB_KERNELS / backend must be one of {', '.join(BACKENDS)}, got {forced!r}")
    st = State()
    st.forced = forced
    if forced in ("auto", "c"):
        try:
            st.native = _import_native()
        except ImportError as exc:
            st.native_error = str(exc)
    if forced != "numpy":
        try:
            st.numba = _import_numba()
        except ImportError as exc:  # numba is a dependency, but a broken install still runs on numpy
            st.numba_error = str(exc)
    for op in OPS:
        if st.native is not None and op in NATIVE_NAMES and hasattr(st.native, NATIVE_NAMES[op]):
            st.backend[op] = "c"
        elif st.numba is not None:
            st.backend[op] = "numba"
        else:
            st.backend[op] = "numpy"
    _state = st


def state() -> State:
    """The resolved backends (resolved on first use)."""
    if _state is None:
        reload()
    assert _state is not None
    return _state


def backend(op: str) -> str:
    """The backend ("c", "numba" or "numpy") that serves ``op`` now."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}: expected one of {', '.join(OPS)}")
    return state().backend[op]


def set_simd_level(name: str) -> str | None:
    """Cap the C kernels at ``name`` (scalar | avx2 | avx512); returns the level now active, or
    None when the C module is not loaded (nothing to cap)."""
    if name not in SIMD_LEVELS:
        raise ValueError(f"simd level must be one of {', '.join(SIMD_LEVELS)}, got {name!r}")
    native = state().native
    if native is None:
        return None
    native.set_simd_level(name)
    state().graph_search = None  # the pointer belongs to the previous level's table
    return str(native.simd_level())


def function_pointers() -> dict[str, int]:
    """Addresses of the active C kernels (see native/include/vecdb_kernels.h for their C
    signatures), for callers that bind them with ctypes or numba; {} without the C module."""
    native = state().native
    if native is None or not hasattr(native, "function_pointers"):
        return {}
    return {str(k): int(v) for k, v in native.function_pointers().items()}


def graph_search_pointer() -> int:
    """Address of the active level's C HNSW traversal (``vdb_hnsw_search_fn``), or 0 when the C
    module is not in use, which sends ``kernels.graph`` to its numba traversal."""
    st = state()
    if st.graph_search is None:
        st.graph_search = int(function_pointers().get("hnsw_search", 0)) if st.native is not None else 0
    return st.graph_search


def _host_cpu_features() -> dict[str, bool]:
    try:
        from llvmlite import binding

        feats = binding.get_host_cpu_features()
        return {k: bool(feats[k]) for k in ("avx2", "fma", "f16c", "popcnt", "avx512f", "avx512bw",
                                            "avx512vl", "avx512vpopcntdq") if k in feats}
    except Exception:  # feature probing is informational only: never fail info()
        return {}


def info() -> dict[str, Any]:
    """What is active: backend per op, SIMD level, CPU features, versions, C module status."""
    st = state()
    native = st.native
    numba_version = None
    if st.numba is not None:
        import numba

        numba_version = numba.__version__
    return {
        "backends": dict(st.backend),
        "forced": st.forced,
        "native_loaded": native is not None,
        "native_error": st.native_error,
        "simd_level": str(native.simd_level()) if native is not None else None,
        "simd_cap_env": os.environ.get("VECDB_SIMD"),
        "cpu_features": dict(native.cpu_features()) if native is not None else _host_cpu_features(),
        "numba_version": numba_version,
        "numba_error": st.numba_error,
        "numpy_version": np.__version__,
        "blas_min_queries": BLAS_MIN_QUERIES,
    }


# ---------------------------------------------------------------------------------------------
# float distances


def _metric(metric: str) -> int:
    if type(metric) is str and metric in METRIC_CODES:
        return METRIC_CODES[metric]
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a str, got {type(metric).__name__}")
    return METRIC_CODES[check_metric(metric)]


def distances(query: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """query: (d,) float32, rows: (n, d) float32 -> (n,) float32 distances."""
    code = _metric(metric)
    rows = stored(rows, "rows", np.float32, 2)
    q = query_vector(query, "query", rows.shape[1])
    return _distances_checked(q, rows, metric, code)


def _distances_checked(q: np.ndarray, rows: np.ndarray, metric: str, code: int) -> np.ndarray:
    st = state()
    out = np.empty(rows.shape[0], dtype=np.float32)
    if rows.shape[0] == 0:
        return out
    b = st.backend["distances"]
    if b == "c":
        st.native.distances_f32(q, rows, code, out)
    elif b == "numba":
        st.numba.distance.distances_f32_into(q, rows, code, out)
    else:
        out[:] = reference.distances(q, rows, metric)
    return out


def distances_many(queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """queries: (q, d), rows: (n, d) float32 -> (q, n) float32; BLAS (GEMM with norms, in float32,
    blocked over rows) from ``BLAS_MIN_QUERIES`` queries up, the one-query kernel below that."""
    code = _metric(metric)
    rows = stored(rows, "rows", np.float32, 2)
    qs = query_matrix(queries, "queries", rows.shape[1])
    nq, n = qs.shape[0], rows.shape[0]
    out = np.empty((nq, n), dtype=np.float32)
    if nq < BLAS_MIN_QUERIES:
        for i in range(nq):
            out[i] = _distances_checked(qs[i], rows, metric, code)
        return out
    qn2 = np.einsum("ij,ij->i", qs, qs)
    for start in range(0, n, BLAS_BLOCK_ROWS):
        block = rows[start : start + BLAS_BLOCK_ROWS]
        res = qs @ block.T  # (nq, b) float32 GEMM
        if metric == "ip":
            np.negative(res, out=res)
        elif metric == "l2":
            xn2 = np.einsum("ij,ij->i", block, block)
            res *= -2.0
            res += qn2[:, None]
            res += xn2[None, :]
            np.maximum(res, 0.0, out=res)  # cancellation can dip below zero
        else:
            denom = np.sqrt(qn2)[:, None] * np.sqrt(np.einsum("ij,ij->i", block, block))[None, :]
            ok = denom > 0
            np.divide(res, denom, out=res, where=ok)
            res[~ok] = 0.0
            np.subtract(1.0, res, out=res)
        out[:, start : start + block.shape[0]] = res
    return out


def distances_at(query: np.ndarray, rows: np.ndarray, offsets: np.ndarray, metric: str) -> np.ndarray:
    """Distances from query (d,) to rows[offsets] -> (len(offsets),) float32; offsets any integer
    dtype, each checked in range."""
    code = _metric(metric)
    rows = stored(rows, "rows", np.float32, 2)
    q = query_vector(query, "query", rows.shape[1])
    offs = _offsets(offsets)
    out = np.empty(offs.shape[0], dtype=np.float32)
    if offs.shape[0] == 0:
        return out
    st = state()
    b = st.backend["distances_at"]
    if b == "c":  # the C binding checks every offset itself (a min and max here cost more than the scan)
        try:
            st.native.distances_f32_at(q, rows, offs, code, out)
        except IndexError:
            _offsets_out_of_range(offs, rows.shape[0])
        return out
    _offsets_out_of_range(offs, rows.shape[0])
    if b == "numba":
        st.numba.distance.distances_f32_at_into(q, rows, offs, code, out)
    else:
        out[:] = reference.distances_at(q, rows, offs, metric)
    return out


def topk_at(query: np.ndarray, rows: np.ndarray, offsets: np.ndarray, k: int, metric: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of rows[offsets] nearest to query (d,) -> (row offsets (k,) int64, distances (k,)
    float32), ascending, ties by position in offsets, padded -1 / +inf: ``distances_at`` and
    ``topk`` in one call, for scoring a filter's few matching rows."""
    code = _metric(metric)
    rows = stored(rows, "rows", np.float32, 2)
    q = query_vector(query, "query", rows.shape[1])
    offs = _offsets(offsets)
    k = check_int(k, "k", 0)
    out_idx = np.empty(k, dtype=np.int64)
    out_d = np.empty(k, dtype=np.float32)
    st = state()
    b = st.backend["topk_at"]
    if b == "c":  # the C binding checks every offset itself
        try:
            st.native.topk_f32_at(q, rows, offs, code, k, out_idx, out_d)
        except IndexError:
            _offsets_out_of_range(offs, rows.shape[0])
        return out_idx, out_d
    _offsets_out_of_range(offs, rows.shape[0])
    if b == "numpy":
        return reference.topk_at(q, rows, offs, k, metric)
    dist = np.empty(offs.shape[0], dtype=np.float32)
    st.numba.distance.distances_f32_at_into(q, rows, offs, code, dist)
    filled = st.numba.selection.topk_into(dist, k, _NO_MASK, False, out_idx, out_d)
    out_idx[:filled] = offs[out_idx[:filled]]
    return out_idx, out_d


_NO_MASK = np.zeros(1, dtype=np.uint8)


def _offsets(offsets: object) -> np.ndarray:
    """Row offsets -> (m,) int64 C-contiguous (range checked by the caller, against its rows)."""
    if type(offsets) is np.ndarray and offsets.dtype == np.int64 and offsets.ndim == 1 and offsets.flags.c_contiguous:
        return offsets  # the common case (a filter's row list), without a conversion
    offs = np.asarray(offsets)
    if offs.ndim != 1:
        raise ValueError(f"offsets must be 1-D, got shape {offs.shape}")
    if offs.size and offs.dtype.kind not in "iu":
        raise TypeError(f"offsets must be integers, got {offs.dtype}")
    return np.ascontiguousarray(offs, dtype=np.int64)


def _offsets_out_of_range(offs: np.ndarray, n: int) -> None:
    """Raise ValueError naming the range when an offset falls outside [0, n)."""
    if not offs.size:
        return
    lo, hi = int(offs.min()), int(offs.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"offsets out of range [0, {n}): min {lo}, max {hi}")


def distances_f16(query: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """query: (d,) float32, rows: (n, d) float16 -> (n,) float32."""
    code = _metric(metric)
    rows = stored(rows, "rows", np.float16, 2)
    q = query_vector(query, "query", rows.shape[1])
    out = np.empty(rows.shape[0], dtype=np.float32)
    if rows.shape[0] == 0:
        return out
    st = state()
    b = st.backend["distances_f16"]
    if b == "c":
        st.native.distances_f16(q, rows, code, out)
    elif b == "numba" and st.f16c:
        st.numba.distance.distances_f16_into(q, rows.view(np.uint16), code, out)
    elif b == "numba":
        dist = st.numba.distance
        dist.distances_f16_table_into(q, rows.view(np.uint16), dist.f16_table(), code, out)
    else:
        out[:] = reference.distances_f16(q, rows, metric)
    return out


def distances_sq8(
    query: np.ndarray, codes: np.ndarray, scale: np.ndarray, offset: np.ndarray, metric: str
) -> np.ndarray:
    """Asymmetric distance from an fp32 query (d,) to 8-bit scalar codes (n, d) uint8 with
    per-dimension scale/offset (d,) -> (n,) float32."""
    code = _metric(metric)
    codes = stored(codes, "codes", np.uint8, 2)
    d = codes.shape[1]
    q = query_vector(query, "query", d)
    sc = small_float(scale, "scale", (d,))
    off = small_float(offset, "offset", (d,))
    out = np.empty(codes.shape[0], dtype=np.float32)
    if codes.shape[0] == 0:
        return out
    st = state()
    b = st.backend["distances_sq8"]
    if b == "c":
        st.native.distances_sq8(q, codes, sc, off, code, out)
    elif b == "numba":
        st.numba.distance.distances_sq8_into(q, codes, sc, off, code, out)
    else:
        out[:] = reference.distances_sq8(q, codes, sc, off, metric)
    return out


# ---------------------------------------------------------------------------------------------
# top-k


def _mask_u8(mask: object, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype.kind not in "biu":
        raise TypeError(f"mask must be bool or integer, got dtype {m.dtype}")
    if m.shape != shape and m.shape != shape[-1:]:
        raise ValueError(f"mask must have shape {shape} or {shape[-1:]}, got {m.shape}")
    if m.dtype != np.bool_:
        m = m != 0
    return np.ascontiguousarray(m).view(np.uint8)


def topk(distances_: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """distances: (n,) or (q, n) float32, mask: (n,) or (q, n) bool of allowed entries (None = all)
    -> (indices int64, distances float32), each (k,) or (q, k); ascending, ties by index, NaN and
    masked entries skipped, padded -1 / +inf. uint16 distances (``pq4_fastscan``'s output) are
    selected as they are, without a float32 copy ("topk_u16" in ``info()``)."""
    dist = np.asarray(distances_)
    if dist.dtype.kind not in "fiu":
        raise TypeError(f"distances must hold real numbers, got dtype {dist.dtype}")
    if dist.ndim not in (1, 2):
        raise ValueError(f"distances must be 1-D or 2-D, got shape {dist.shape}")
    op = "topk_u16" if dist.dtype == np.uint16 else "topk"
    dist = np.ascontiguousarray(dist, dtype=np.uint16 if op == "topk_u16" else np.float32)
    k = check_int(k, "k", 0)
    m = None if mask is None else _mask_u8(mask, dist.shape)
    d2 = dist.reshape(1, -1) if dist.ndim == 1 else dist
    q = d2.shape[0]
    out_idx = np.empty((q, k), dtype=np.int64)
    out_d = np.empty((q, k), dtype=np.float32)
    st = state()
    b = st.backend[op]
    if b == "numpy":
        out_idx[:], out_d[:] = reference.topk(d2, k, None if m is None else m.view(np.bool_))
    elif b == "c":
        native_topk = st.native.topk_u16 if op == "topk_u16" else st.native.topk
        for r in range(q):
            row_mask = None if m is None else (m if m.ndim == 1 else m[r])
            native_topk(d2[r], k, row_mask, out_idx[r], out_d[r])
    else:
        mode = 0 if m is None else (1 if m.ndim == 1 else 2)
        rows_of_mask = m.shape[0] if m is not None and m.ndim == 2 else 1
        m2 = np.zeros((1, 1), dtype=np.uint8) if m is None else m.reshape(rows_of_mask, d2.shape[1])
        sel = st.numba.selection
        rows_into = sel.topk_u16_rows_into if op == "topk_u16" else sel.topk_rows_into
        rows_into(d2, k, m2, mode, out_idx, out_d)
    if dist.ndim == 1:
        return out_idx[0], out_d[0]
    return out_idx, out_d


def merge_topk(ids: list[np.ndarray], dists: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-part top-k lists: ids[i] int (q, k_i) (-1 = empty), dists[i] float32 (q, k_i)
    -> (q, k) each, ascending distance, ties by the smaller id, padded -1 / +inf."""
    k = check_int(k, "k", 0)
    if len(ids) != len(dists) or len(ids) == 0:
        raise ValueError(f"ids and dists must be non-empty lists of one length, got {len(ids)}, {len(dists)}")
    id_parts = [np.asarray(a) for a in ids]
    d_parts = [np.asarray(a) for a in dists]
    for i, (a, d) in enumerate(zip(id_parts, d_parts, strict=True)):
        if a.dtype.kind not in "iu":
            raise TypeError(f"ids[{i}] must be integers, got dtype {a.dtype}")
        if d.dtype.kind not in "fiu":
            raise TypeError(f"dists[{i}] must hold real numbers, got dtype {d.dtype}")
        if a.ndim != 2 or a.shape != d.shape or a.shape[0] != id_parts[0].shape[0]:
            raise ValueError(f"ids[{i}] and dists[{i}] must be (q, k_i) with one q, got {a.shape}, {d.shape}")
    all_ids = np.ascontiguousarray(np.concatenate(id_parts, axis=1), dtype=np.int64)
    all_d = np.ascontiguousarray(np.concatenate(d_parts, axis=1), dtype=np.float32)
    st = state()
    if st.backend["merge_topk"] == "numpy":
        return reference.merge_topk([all_ids], [all_d], k)
    q = all_ids.shape[0]
    out_ids = np.empty((q, k), dtype=np.int64)
    out_d = np.empty((q, k), dtype=np.float32)
    st.numba.selection.merge_into(all_ids, all_d, k, out_ids, out_d)
    return out_ids, out_d


def hnsw_searcher(rows: np.ndarray, links0: np.ndarray, counts0: np.ndarray, up_off: np.ndarray,
                  links_up: np.ndarray, counts_up: np.ndarray, entry: int, max_level: int, n: int,
                  metric: str, row_of: np.ndarray | None = None, row_scale: np.ndarray | None = None) -> Any | None:
    """The C one-query HNSW searcher over these graph arrays (``vecdb._native.HnswSearcher``: the
    query checks, traversal, top-k and result arrays in one call), or None without the C module,
    whose queries all take the numba path. ``row_of`` (n,) int32 makes node i row ``row_of[i]`` of
    ``rows`` (a graph over some rows of a shared matrix; results are rows), ``row_scale`` (n,)
    float32 multiplies node i's distance (1/|x| for cosine over raw rows)."""
    native = state().native
    if native is None or not hasattr(native, "HnswSearcher"):
        return None
    return native.HnswSearcher(rows, links0, counts0, up_off, links_up, counts_up, entry, max_level, n, metric,
                               row_of, row_scale)


def topk_at_one(query: Any, rows: np.ndarray, offsets: np.ndarray, k: Any, metric: str,
                ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int] | None:
    """``topk_at`` for one query in a single C call that also maps offsets through ``ids`` (None:
    offsets) and builds the (1, k) result arrays: (ids, distances, filled). None without the C
    module, or for a query or k the C call does not take (see ``vecdb._native.topk_at_one``):
    callers then validate and use ``topk_at``."""
    native = state().native
    if native is None or not hasattr(native, "topk_at_one"):
        return None
    return native.topk_at_one(query, rows, offsets, k, _metric(metric), ids)
