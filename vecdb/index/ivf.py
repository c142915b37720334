"""IVF: an in-memory inverted file over one sealed segment.

Seeded faiss k-means centroids (``balanced.train_kmeans``) in memory; posting lists as one CSR pair, ``list_start``
(nlist+1,) int64 and ``rows`` (n,) uint32 row offsets grouped by list, so a list is one slice.
Without a quantizer a probe gathers the rows' fp32 vectors from the segment (``kernels.postings.
scan_offsets``); with one, the posting lists also hold the rows' codes in list order, the probed
codes are scored approximately and the best ``k * rerank`` re-scored with the segment's vectors.

Cosine is clustered and routed on unit vectors (l2 between unit vectors orders like cosine).
The helpers ``list_order``, ``probe_budget`` and ``code_scan`` are shared with the SPANN index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.config import IVF
from vecdb.index.balanced import train_kmeans
from vecdb.index.base import VectorIndex
from vecdb.kernels import postings
from vecdb.kernels.selection import heap_sort_out
from vecdb.kernels.validate import all_finite
from vecdb.quant.kmeans import assign
from vecdb.quant.rerank import rerank
from vecdb.types import METRIC_CODES, check_metric

FORMAT_VERSION = 1
DEFAULT_NPROBE = 16
DEFAULT_RERANK = 4
# With a filter, a query may probe up to this many times its nprobe lists to find k allowed rows.
FILTER_PROBE_FACTOR = 4
_EMPTY_MASK = np.zeros(0, dtype=np.bool_)
_NO_LIMIT = np.iinfo(np.int64).max


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (n, d) scaled to unit length (zero rows stay zero) -> (n, d) float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def as_rows(x: Any, dim: int | None) -> np.ndarray:
    """A C-contiguous (n, d) float32 array; ValueError on a bad shape or non-finite values."""
    if (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous
            and x.shape[1] and (dim is None or x.shape[1] == dim)
            and all_finite(x)):  # the common case: checked without a copy
        return x
    a = np.asarray(x)
    if a.ndim != 2 or (dim is not None and a.shape[1] != dim) or a.shape[1] == 0:
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise ValueError(f"expected a {want} array, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError("vectors contain NaN or infinite values")
    return a


def check_mask(allowed: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """(mask, filtered) for the kernels: an empty mask and False when every row is allowed."""
    if allowed is None:
        return _EMPTY_MASK, False
    mask = np.asarray(allowed)
    if mask.dtype != np.bool_ or mask.ndim != 1:
        raise ValueError("allowed must be a 1-D bool array")
    return np.ascontiguousarray(mask), True


def positive_int(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    value = default if value is None else int(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def list_order(cd: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` smallest of ``cd`` (L,) float32, ascending -> (count,) int64."""
    count = min(count, cd.shape[0])
    part = np.argpartition(cd, count - 1)[:count] if count < cd.shape[0] else np.arange(cd.shape[0])
    return np.ascontiguousarray(part[np.argsort(cd[part], kind="stable")], dtype=np.int64)


def code_scan(
    query: np.ndarray, quantizer: Any, codes: np.ndarray, rows: np.ndarray, lists: np.ndarray,
    list_start: np.ndarray, mask: np.ndarray, filtered: bool, vectors: np.ndarray, metric: str, k: int,
    rerank_factor: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Score the codes of ``lists`` approximately, re-rank the best ``k * rerank_factor`` rows
    exactly with ``vectors`` (n, d). codes: (N, code_size) uint8 (any row stride), rows: (N,) row
    offsets, both in posting order. -> (offsets (k,), distances (k,), rows scored)."""
    idx = np.concatenate([np.arange(list_start[c], list_start[c + 1]) for c in lists.tolist()])
    cand_rows = np.asarray(rows[idx], dtype=np.int64).reshape(-1)
    if filtered:
        keep = cand_rows < mask.shape[0]
        keep[keep] = mask[cand_rows[keep]]
        idx, cand_rows = idx[keep], cand_rows[keep]
    if idx.shape[0] == 0:
        return np.full(k, -1, np.int64), np.full(k, np.inf, np.float32), 0
    approx = quantizer.distances(quantizer.prepare(query), np.ascontiguousarray(codes[idx]))
    pos, _ = kernels.topk(np.asarray(approx, dtype=np.float32), k * max(rerank_factor, 1))
    short = cand_rows[pos[pos >= 0]]
    found, dists = rerank(query, short, vectors, metric, k)
    return found, dists, int(idx.shape[0])


class IVFIndex(VectorIndex):
    """k-means inverted file. Query knobs: ``nprobe`` (lists probed, default 16), ``rerank``
    (shortlist factor when quantized, default 4), ``max_lists`` (with a filter: probe further
    lists, up to this many, until k allowed rows are found; default 4 * nprobe)."""

    kind: ClassVar[str] = "ivf"

    def __init__(self, metric: str, centroids: np.ndarray, list_start: np.ndarray, rows: np.ndarray,
                 vectors: np.ndarray, quantizer: Any = None, codes: np.ndarray | None = None) -> None:
        self.metric = check_metric(metric)
        self.dim = int(centroids.shape[1])
        self.centroids = centroids  # (nlist, d) float32 (unit-length space for cosine)
        self.list_start = list_start  # (nlist+1,) int64
        self.rows = rows  # (n,) uint32 row offsets grouped by list
        self.vectors = vectors  # (n, d) float32, the segment's rows
        self.quantizer = quantizer
        self.codes = codes  # (n, code_size) uint8 in posting order, or None
        self._route_metric = "ip" if metric == "ip" else "l2"

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    # --- the contract ----------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, config: Any, *, quantizer: Any = None,
              progress: bool = False, seed: int = 0) -> IVFIndex:
        """Cluster ``vectors`` (n, d) float32 into nlist lists (None: about 4 * sqrt(n))."""
        if not isinstance(config, IVF):
            raise ValueError(f"IVFIndex needs a vecdb.IVF config, got {type(config).__name__}")
        check_metric(metric)
        x = as_rows(vectors, None)
        n = x.shape[0]
        if n == 0:
            raise ValueError("cannot build an IVF index over zero rows")
        nlist = config.nlist if config.nlist is not None else round(4 * math.sqrt(n))
        nlist = max(1, min(int(nlist), n))
        space = unit_rows(x) if metric == "cosine" else x
        centroids = train_kmeans(space, nlist, seed)
        labels = assign(space, centroids)
        order = np.argsort(labels, kind="stable")
        list_start = np.zeros(nlist + 1, dtype=np.int64)
        np.cumsum(np.bincount(labels, minlength=nlist), out=list_start[1:])
        codes = None
        if quantizer is not None:
            if not quantizer.is_trained:
                raise ValueError("the quantizer must be trained before building an IVF index on it")
            codes = np.ascontiguousarray(quantizer.encode(x[order]), dtype=np.uint8)
        return cls(metric, centroids, list_start, order.astype(np.uint32), vectors, quantizer, codes)

    def search(self, queries: np.ndarray, k: int, params: Mapping[str, Any],
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) float32 -> (offsets (q, k) int64 padded -1, distances (q, k) float32 padded inf)."""
        offsets, dists, _ = self.search_with_stats(queries, k, params, allowed)
        return offsets, dists

    def search_with_stats(self, queries: np.ndarray, k: int, params: Mapping[str, Any],
                          allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``search`` plus per-query statistics: lists probed, bytes read, candidates scored."""
        qs = as_rows(queries, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        nprobe = min(positive_int(params, "nprobe", DEFAULT_NPROBE), self.nlist)
        rerank_factor = positive_int(params, "rerank", DEFAULT_RERANK)
        mask, filtered = check_mask(allowed)
        n_max = min(positive_int(params, "max_lists", FILTER_PROBE_FACTOR * nprobe), self.nlist) if filtered \
            else nprobe
        n_max = max(n_max, nprobe)
        n_rows = self.rows.shape[0]
        selectivity = np.count_nonzero(mask[:n_rows]) / max(n_rows, 1) if filtered else 1.0
        n_min = postings.filtered_probes(nprobe, selectivity, n_max, FILTER_PROBE_FACTOR)
        route = unit_rows(qs) if self.metric == "cosine" else qs
        cd = kernels.distances_many(route, self.centroids, self._route_metric)
        nq = qs.shape[0]
        out_i = np.full((nq, k), -1, dtype=np.int64)
        out_d = np.full((nq, k), np.inf, dtype=np.float32)
        probed = np.zeros(nq, dtype=np.int64)
        read = np.zeros(nq, dtype=np.int64)
        scored = np.zeros(nq, dtype=np.int64)
        code = METRIC_CODES[self.metric]
        row_bytes = 4 + (self.codes.shape[1] if self.codes is not None else 4 * self.dim)
        for t in range(nq):
            order = list_order(cd[t], n_max)
            if self.codes is None:
                hd, hk = out_d[t], out_i[t]
                size, probed[t], read[t], scored[t] = postings.scan_offsets(
                    qs[t], self.vectors, self.rows, self.list_start, order, n_min, order.shape[0], _NO_LIMIT,
                    code, mask, filtered, k, hd, hk)
                heap_sort_out(hd, hk, size)
                hd[size:], hk[size:] = np.inf, -1
            else:
                probed[t], read[t] = postings.plan_probes(self.rows, self.list_start, order, n_min,
                                                          order.shape[0], _NO_LIMIT, mask, filtered, k)
                out_i[t], out_d[t], scored[t] = code_scan(
                    qs[t], self.quantizer, self.codes, self.rows, order[: probed[t]], self.list_start, mask,
                    filtered, self.vectors, self.metric, k, rerank_factor)
        stats = {"lists_probed": probed.tolist(), "bytes_read": (read * row_bytes).tolist(),
                 "candidates_scored": scored.tolist()}
        return out_i, out_d, stats

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"format": FORMAT_VERSION, "metric": self.metric, "dim": self.dim, "nlist": self.nlist,
                "n": int(self.rows.shape[0]), "quantized": self.codes is not None}
        arrays = {"centroids": self.centroids, "list_start": self.list_start, "rows": self.rows}
        if self.codes is not None:
            arrays["codes"] = self.codes
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], vectors: np.ndarray,
                    quantizer: Any = None) -> IVFIndex:
        """Rebuild from ``to_arrays`` output; ValueError on anything inconsistent."""
        try:
            if int(meta["format"]) != FORMAT_VERSION:
                raise ValueError(f"IVF format {meta['format']} is not {FORMAT_VERSION}")
            metric, dim, nlist, n = str(meta["metric"]), int(meta["dim"]), int(meta["nlist"]), int(meta["n"])
            quantized = bool(meta["quantized"])
            centroids, list_start, rows = arrays["centroids"], arrays["list_start"], arrays["rows"]
            codes = arrays["codes"] if quantized else None
        except (KeyError, TypeError) as exc:
            raise ValueError(f"IVF metadata or arrays incomplete: {exc!r}") from None
        check_metric(metric)
        if vectors.ndim != 2 or vectors.shape != (n, dim):
            raise ValueError(f"IVF index covers ({n}, {dim}) vectors, the segment has {vectors.shape}")
        if centroids.shape != (nlist, dim) or centroids.dtype != np.float32 or not np.isfinite(centroids).all():
            raise ValueError("IVF centroids have the wrong shape, dtype or non-finite values")
        check_list_start(list_start, nlist, n)
        if rows.shape != (n,) or rows.dtype != np.uint32:
            raise ValueError(f"IVF rows must be ({n},) uint32, got {rows.shape} {rows.dtype}")
        if n and (int(rows.max()) >= n or not (np.bincount(rows, minlength=n) == 1).all()):
            raise ValueError("IVF rows are not a permutation of the segment's rows")
        if quantized:
            if quantizer is None:
                raise ValueError("this IVF index holds codes: pass its quantizer")
            if codes is None or codes.shape != (n, quantizer.code_size) or codes.dtype != np.uint8:
                raise ValueError(f"IVF codes must be ({n}, {quantizer.code_size}) uint8")
        return cls(metric, centroids, list_start, rows, vectors, quantizer if quantized else None, codes)

    @property
    def nbytes(self) -> int:
        """Centroids, list offsets, row offsets and codes (the vectors stay the segment's)."""
        total = self.centroids.nbytes + self.list_start.nbytes + self.rows.nbytes
        if self.codes is not None:
            total += self.codes.nbytes + self.quantizer.nbytes
        return int(total)


def check_list_start(list_start: np.ndarray, n_lists: int, n_rows: int) -> None:
    """``list_start`` must be (n_lists+1,) int64, from 0 to n_rows, never decreasing."""
    if list_start.shape != (n_lists + 1,) or list_start.dtype != np.int64:
        raise ValueError(f"list_start must be ({n_lists + 1},) int64, got {list_start.shape} {list_start.dtype}")
    if int(list_start[0]) != 0 or int(list_start[-1]) != n_rows or (np.diff(list_start) < 0).any():
        raise ValueError("list_start is not a non-decreasing 0..N offsets table")
