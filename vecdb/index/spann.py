"""SPANN: a memory-disk hybrid index (centroids in memory, posting lists in the index file).

Build (see ``index.balanced``): balanced hierarchical clustering gives posting lists of at most
``target_list_size`` rows; boundary rows are replicated to up to ``replicas`` lists (RNG-pruned,
each list capped at ``(1 + REPLICA_ROOM) * target_list_size`` rows). The posting lists are ONE
contiguous array of fixed-size records, list after list, with a (lists+1,) offsets table:

* full precision: ``postings`` (N, d+1) float32, column 0 the row offset (uint32 bits), then the
  vector (unit length for cosine);
* with a quantizer: ``postings`` (N, 4 + code bytes rounded up to 4) uint8, the row offset then the
  code; the best ``k * rerank`` rows are re-scored with the segment's fp32 vectors.

The engine persists ``to_arrays`` in a checksummed file and reads it back as read-only memory
maps, so a posting list is one contiguous read of the file and only the centroids, the offsets
table and the navigation graph (an ``HNSWIndex`` over the centroids once there are more than
``NAV_EXACT_MAX``) are resident. The SPANN paper keeps the lists on SSD; here the page cache and the
file play that part (``resident_bytes`` counts what stays in memory; ``nbytes`` adds the postings
while they are still the build's anonymous memory).

Search: rank centroids, keep list i only if d(q, c_i) <= d1 + eps * |d1| (query-aware pruning;
d1 the nearest), at most ``max_lists`` lists and ``max_bytes`` bytes; with an ``allowed`` mask,
probe further lists (up to ``FILTER_PROBE_FACTOR * max_lists``) until k allowed rows are found.
Replicated rows are scored once per list but returned once.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.config import HNSW, SPANN
from vecdb.errors import ResourceExhausted
from vecdb.index.balanced import balanced_clusters, centroids_of, replicate
from vecdb.index.base import VectorIndex
from vecdb.index.hnsw import HNSWIndex
from vecdb.index.ivf import (
    DEFAULT_RERANK,
    FILTER_PROBE_FACTOR,
    as_rows,
    check_list_start,
    check_mask,
    code_scan,
    positive_int,
    unit_rows,
)
from vecdb.kernels import postings
from vecdb.types import check_metric

FORMAT_VERSION = 1
DEFAULT_MAX_LISTS = 32
DEFAULT_EPS = 1.0
# Above this many lists the centroids are routed through an HNSW graph instead of an exact scan.
NAV_EXACT_MAX = 2048
NAV_CONFIG = HNSW(m=16, ef_construction=128)
# The centroid graph's beam never narrower than this: the first lists must be the true nearest.
NAV_MIN_EF = 64
# Above this many lists the build finds replica candidates through a (temporary) graph.
BUILD_NAV_MIN = 256
# A list takes replicas until it holds (1 + REPLICA_ROOM) * target_list_size rows.
REPLICA_ROOM = 1.0
# Leaves are at most target_list_size rows; balanced splits fill them to about this fraction.
_FILL = 0.85
_NO_LIMIT = np.iinfo(np.int64).max


def _is_mapped(a: np.ndarray) -> bool:
    """Whether ``a`` views a memory-mapped file (pages the kernel may drop) rather than heap memory."""
    base: Any = a
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            return True
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


class SPANNIndex(VectorIndex):
    """Balanced posting lists with boundary replication. Query knobs: ``max_lists`` (``nprobe`` is
    its alias; default 32), ``eps`` (pruning ratio, default 1.0; inf = none), ``max_bytes`` (I/O
    budget per query), ``rerank`` (shortlist factor when quantized, default 4), ``prefetch``
    (madvise the chosen lists before scanning; default the ``prefetch`` attribute, False)."""

    kind: ClassVar[str] = "spann"
    # The engine reopens a freshly built index from its file, so only the routing stays on the heap.
    serve_from_file: ClassVar[bool] = True

    def __init__(self, metric: str, centroids: np.ndarray, list_start: np.ndarray, recs: np.ndarray, n: int,
                 vectors: np.ndarray, quantizer: Any = None, nav: HNSWIndex | None = None,
                 info: Mapping[str, Any] | None = None) -> None:
        self.metric = check_metric(metric)
        self.dim = int(centroids.shape[1])
        self.n = n
        self.centroids = centroids  # (L, d) float32, unit-length space for cosine
        self.list_start = list_start  # (L+1,) int64 record offsets
        self.recs = recs  # (N, d+1) float32 or (N, 4+code) uint8 records
        self.vectors = vectors  # (n, d) float32 segment rows: re-ranking of codes only
        self.quantizer = quantizer
        self.nav = nav
        self.info = dict(info or {})
        # Issue a query's list reads together before scanning (costs a system call per list even
        # when the pages are cached, so it pays only when the postings are mostly not in memory).
        self.prefetch = False
        self._space = "ip" if metric == "ip" else "l2"
        self._ids = recs.view(np.uint32)  # column 0 = row offset
        # address of the mapped records, for prefetching a query's lists (0: heap memory, no need)
        self._map_addr = np.uint64(recs.ctypes.data) if _is_mapped(recs) else np.uint64(0)
        self.rec_bytes = int(recs.shape[1] * recs.itemsize)

    @property
    def n_lists(self) -> int:
        return int(self.centroids.shape[0])

    @staticmethod
    def estimate(n: int, dim: int, config: SPANN, code_size: int | None = None) -> dict[str, int]:
        """What an index over n rows of dim floats will hold, known before building it.

        ram_bytes: resident after opening (centroids, offsets table, navigation graph);
        disk_bytes: an upper bound of the posting records (every list at its replica cap);
        build_bytes: extra memory while building (records plus the clustering's copy of the rows).
        """
        lists = max(1, math.ceil(n / (config.target_list_size * _FILL)))
        ram = lists * dim * 4 + (lists + 1) * 8
        if lists > NAV_EXACT_MAX:  # graph links: 2m on layer 0, ~m/(m-1) upper rows of m
            ram += lists * (2 * NAV_CONFIG.m * 4 + 13) + lists // (NAV_CONFIG.m - 1) * (NAV_CONFIG.m * 4 + 4)
        rec = 4 * (dim + 1) if code_size is None else 4 + 4 * math.ceil(code_size / 4)
        cap_rows = math.ceil((1 + REPLICA_ROOM) * config.target_list_size)
        records = min(n * max(config.replicas, 1), lists * cap_rows, n * 2)
        return {"ram_bytes": int(ram), "disk_bytes": int(records * rec),
                "build_bytes": int(records * rec + n * dim * 4)}

    # --- the contract ----------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, config: Any, *, quantizer: Any = None,
              progress: bool = False, seed: int = 0) -> SPANNIndex:
        """Build over ``vectors`` (n, d) float32; ResourceExhausted when ``config.memory_budget_mb``
        is set and the resident estimate exceeds it."""
        if not isinstance(config, SPANN):
            raise ValueError(f"SPANNIndex needs a vecdb.SPANN config, got {type(config).__name__}")
        check_metric(metric)
        if (config.target_list_size < 1 or config.replicas < 1 or not config.closure_eps >= 0
                or not 0 < config.rng_factor <= 1):
            raise ValueError(f"bad SPANN config {config}")
        x = as_rows(vectors, None)
        n, d = x.shape
        if n == 0:
            raise ValueError("cannot build a SPANN index over zero rows")
        if quantizer is not None and not quantizer.is_trained:
            raise ValueError("the quantizer must be trained before building a SPANN index on it")
        est = cls.estimate(n, d, config, None if quantizer is None else quantizer.code_size)
        if config.memory_budget_mb is not None and est["ram_bytes"] > config.memory_budget_mb * 2**20:
            raise ResourceExhausted(
                f"a SPANN index over {n} x {d} would hold {est['ram_bytes'] / 2**20:.1f} MiB in memory, over "
                f"its budget of {config.memory_budget_mb} MiB: raise memory_budget_mb or target_list_size")
        space = unit_rows(x) if metric == "cosine" else x
        bar = _progress(progress, n)
        try:
            labels = balanced_clusters(space, config.target_list_size, seed, bar)
        finally:
            if bar is not None:
                bar.close()
        n_lists = int(labels.max()) + 1
        centroids = centroids_of(space, labels, n_lists)
        nav_space = "ip" if metric == "ip" else "l2"
        nav = HNSWIndex.build(centroids, nav_space, NAV_CONFIG, seed=seed) if n_lists > NAV_EXACT_MAX else None
        cap = math.ceil((1 + REPLICA_ROOM) * config.target_list_size)
        # Replica candidates for every row: through a graph as soon as an exact scan of the
        # centroids per row costs more than building one (the index keeps it only above NAV_EXACT_MAX).
        build_nav = nav
        if build_nav is None and n_lists > BUILD_NAV_MIN and config.replicas > 1:
            build_nav = HNSWIndex.build(centroids, nav_space, NAV_CONFIG, seed=seed)
        list_start, members = replicate(space, centroids, labels, config.replicas, config.closure_eps, cap,
                                        nav_space, build_nav, config.rng_factor)
        recs = _records(space, x, members, quantizer)
        info = {"target_list_size": config.target_list_size, "replicas": config.replicas,
                "closure_eps": config.closure_eps, "rng_factor": config.rng_factor,
                "replication": members.shape[0] / n}
        return cls(metric, centroids, list_start, recs, n, vectors, quantizer, nav, info)

    def search(self, queries: np.ndarray, k: int, params: Mapping[str, Any],
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) float32 -> (offsets (q, k) int64 padded -1, distances (q, k) float32 padded inf)."""
        offsets, dists, _ = self.search_with_stats(queries, k, params, allowed)
        return offsets, dists

    def search_with_stats(self, queries: np.ndarray, k: int, params: Mapping[str, Any],
                          allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``search`` plus per-query statistics: lists_probed, bytes_read, candidates_scored (lists of q ints)."""
        qs = as_rows(queries, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        cap = params.get("max_lists", params.get("nprobe"))
        max_lists = min(positive_int({"max_lists": cap}, "max_lists", DEFAULT_MAX_LISTS), self.n_lists)
        eps = float(params.get("eps", DEFAULT_EPS))
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        max_bytes = params.get("max_bytes")
        max_rows = _NO_LIMIT if max_bytes is None else max(int(max_bytes) // self.rec_bytes, 0)
        rerank_factor = positive_int(params, "rerank", DEFAULT_RERANK)
        prefetch = bool(params.get("prefetch", self.prefetch))
        mask, filtered = check_mask(allowed)
        n_max = min(FILTER_PROBE_FACTOR * max_lists, self.n_lists) if filtered else max_lists
        selectivity = np.count_nonzero(mask[: self.n]) / max(self.n, 1) if filtered else 1.0
        route = unit_rows(qs) if self.metric == "cosine" else qs
        orders, order_d = self._rank_lists(route, n_max)
        nq = qs.shape[0]
        out_i = np.empty((nq, k), dtype=np.int64)
        out_d = np.empty((nq, k), dtype=np.float32)
        probed = np.zeros(nq, dtype=np.int64)
        read = np.zeros(nq, dtype=np.int64)
        scored = np.zeros(nq, dtype=np.int64)
        code = postings.IP if self._space == "ip" else postings.L2
        # |a - b|^2 = 2 - 2 cos(a, b) for unit vectors: halved, it is the cosine distance
        scale = 0.5 if self.metric == "cosine" else 1.0
        for t in range(nq):
            order, od = orders[t], order_d[t]
            if self.quantizer is None:
                if prefetch and self._map_addr:
                    n_min = postings.pruned_count(order, od, max_lists, eps, selectivity, FILTER_PROBE_FACTOR)
                    postings.prefetch_lists(self._map_addr, self.list_start, order, n_min, self.rec_bytes)
                probed[t], read[t], scored[t] = postings.spann_query(
                    route[t], order, od, max_lists, eps, selectivity, FILTER_PROBE_FACTOR, self.recs,
                    self._ids, self.list_start, max_rows, code, mask, filtered, scale, out_d[t], out_i[t])
            else:
                n_min = postings.pruned_count(order, od, max_lists, eps, selectivity, FILTER_PROBE_FACTOR)
                if prefetch and self._map_addr:
                    postings.prefetch_lists(self._map_addr, self.list_start, order, n_min, self.rec_bytes)
                ids = self._ids[:, 0]
                probed[t], read[t] = postings.plan_probes(ids, self.list_start, order, n_min,
                                                          postings.ranked_count(order),
                                                          max_rows, mask, filtered, k)
                codes = self.recs[:, 4 : 4 + self.quantizer.code_size]
                out_i[t], out_d[t], scored[t] = code_scan(
                    qs[t], self.quantizer, codes, ids, order[: probed[t]], self.list_start, mask, filtered,
                    self.vectors, self.metric, k, rerank_factor)
        stats = {"lists_probed": probed.tolist(), "bytes_read": (read * self.rec_bytes).tolist(),
                 "candidates_scored": scored.tolist()}
        return out_i, out_d, stats

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION, "metric": self.metric, "dim": self.dim, "n": self.n,
            "n_lists": self.n_lists, "quantized": self.quantizer is not None, "info": self.info, "nav": None,
        }
        arrays = {"centroids": self.centroids, "list_start": self.list_start, "postings": self.recs}
        if self.nav is not None:
            nav_meta, nav_arrays = self.nav.to_arrays()
            meta["nav"] = nav_meta
            arrays.update({f"nav.{name}": a for name, a in nav_arrays.items()})
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], vectors: np.ndarray,
                    quantizer: Any = None) -> SPANNIndex:
        """Rebuild from ``to_arrays`` output (memory maps stay maps); ValueError on anything inconsistent."""
        try:
            if int(meta["format"]) != FORMAT_VERSION:
                raise ValueError(f"SPANN format {meta['format']} is not {FORMAT_VERSION}")
            metric, dim, n, n_lists = str(meta["metric"]), int(meta["dim"]), int(meta["n"]), int(meta["n_lists"])
            quantized, nav_meta = bool(meta["quantized"]), meta["nav"]
            centroids, list_start, recs = arrays["centroids"], arrays["list_start"], arrays["postings"]
            nav_arrays = {name[4:]: a for name, a in arrays.items() if name.startswith("nav.")}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"SPANN metadata or arrays incomplete: {exc!r}") from None
        check_metric(metric)
        if vectors.ndim != 2 or vectors.shape != (n, dim):
            raise ValueError(f"SPANN index covers ({n}, {dim}) vectors, the segment has {vectors.shape}")
        if centroids.shape != (n_lists, dim) or centroids.dtype != np.float32 or not np.isfinite(centroids).all():
            raise ValueError("SPANN centroids have the wrong shape, dtype or non-finite values")
        if quantized and quantizer is None:
            raise ValueError("this SPANN index holds codes: pass its quantizer")
        width, dtype = (dim + 1, np.float32)
        if quantized:
            width, dtype = 4 + 4 * math.ceil(quantizer.code_size / 4), np.uint8
        if recs.ndim != 2 or recs.shape[1] != width or recs.dtype != dtype:
            raise ValueError(f"SPANN postings must be (N, {width}) {np.dtype(dtype)}, got {recs.shape} {recs.dtype}")
        check_list_start(list_start, n_lists, recs.shape[0])
        if not postings.check_records(recs.view(np.uint32), n):
            raise ValueError("a SPANN posting record names a row outside the segment")
        # Only the postings stay file-backed: the small routing arrays are copied into memory so a
        # query never waits on the disk for them (and dropping the file's pages keeps them).
        centroids, list_start = np.array(centroids), np.array(list_start)
        nav = None
        if nav_meta is not None:
            nav = HNSWIndex.from_arrays(nav_meta, {name: np.array(a) for name, a in nav_arrays.items()}, centroids)
        elif n_lists > NAV_EXACT_MAX:
            raise ValueError("SPANN navigation graph is missing")
        info = meta.get("info") or {}
        return cls(metric, centroids, list_start, recs, n, vectors, quantizer if quantized else None, nav, info)

    @property
    def resident_bytes(self) -> int:
        """What stays in memory once the postings are memory-mapped: centroids, offsets, navigation."""
        total = self.centroids.nbytes + self.list_start.nbytes
        if self.nav is not None:
            total += self.nav.nbytes
        if self.quantizer is not None:
            total += self.quantizer.nbytes
        return int(total)

    @property
    def disk_bytes(self) -> int:
        """Bytes of posting records (what the index file adds beyond ``resident_bytes``)."""
        return int(self.recs.nbytes)

    @property
    def nbytes(self) -> int:
        """``resident_bytes``, plus the postings while they are heap memory (not a file mapping)."""
        return self.resident_bytes + (0 if _is_mapped(self.recs) else self.disk_bytes)

    # --- internals -------------------------------------------------------------------------------

    def _rank_lists(self, route: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the ``count`` nearest lists and their centroid distances, ascending:
        (q, <= count) int64 / float32, padded -1 / +inf at the end (the graph may find fewer)."""
        nq = route.shape[0]
        if self.nav is not None:
            return self.nav.search(route, count, {"ef": max(count, NAV_MIN_EF)})
        count = min(count, self.n_lists)
        cd = kernels.distances_many(route, self.centroids, self._space)
        lists = np.empty((nq, count), dtype=np.int64)
        dists = np.empty((nq, count), dtype=np.float32)
        for t in range(nq):
            postings.nearest_lists(cd[t], lists[t], dists[t])
        return lists, dists


def _records(space: np.ndarray, x: np.ndarray, members: np.ndarray, quantizer: Any) -> np.ndarray:
    """Posting records in list order: [row offset, vector] float32 or [row offset, code, pad] uint8."""
    if quantizer is None:
        recs = np.empty((members.shape[0], space.shape[1] + 1), dtype=np.float32)
        postings.fill_records(space, members, recs, recs.view(np.uint32))
        return recs
    cs = int(quantizer.code_size)
    recs = np.zeros((members.shape[0], 4 + 4 * math.ceil(cs / 4)), dtype=np.uint8)
    recs.view(np.uint32)[:, 0] = members.astype(np.uint32)
    for s in range(0, members.shape[0], 65536):  # encode in blocks: bounded temporary copies
        part = members[s : s + 65536]
        recs[s : s + part.shape[0], 4 : 4 + cs] = quantizer.encode(np.ascontiguousarray(x[part]))
    return recs


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # delay: the bar appears only for builds that last more than a couple of seconds.
    return tqdm(total=total, desc="spann build", unit="vec", delay=2.0)
