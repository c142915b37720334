"""HNSW: a hierarchical navigable small-world graph over one sealed segment.

Build inserts nodes in parallel batches of a growing size (``kernels.graph.insert_batch``): each
batch member searches the graph as it stood before the batch, then the reverse links are applied
one target row per thread. Batches are at most ``batch_fraction`` of the graph built so far, which
keeps recall equal to one-at-a-time insertion (measured in docs/hnsw.md) while using every core.

Searches read an immutable snapshot (``_Graph``) of the arrays and the node count; an insert grows
arrays by copying and publishes a new snapshot, or rewrites rows in place within capacity, which
searches tolerate because they bound every neighbour id by their snapshot's node count. Each
thread owns its epoch-tagged visited array; nothing mutable is shared between searches.

With an 8-bit scalar quantizer the graph is traversed on uint8 codes held by the index and the best
``k * rerank`` candidates are re-scored with the full float32 vectors.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from vecdb.config import HNSW
from vecdb.index.base import VectorIndex
from vecdb.kernels import dispatch, graph
from vecdb.types import check_metric

FORMAT_VERSION = 1
ORDERS = ("random", "given", "norm")
_EMPTY_MASK = np.zeros(0, dtype=np.bool_)
_ONES_CACHE: dict[int, np.ndarray] = {}
# numba's default (workqueue) threading layer must not run two parallel regions at once.
_PARALLEL = threading.Lock()
_TLS = threading.local()
_F32 = np.dtype(np.float32)
_VALIDATION_ERRORS = {
    1: "array lengths disagree",
    2: "a neighbour count is outside 0..capacity",
    3: "a neighbour id is out of range",
    4: "node levels and upper-layer offsets disagree",
}


@dataclass(frozen=True)
class _Graph:
    """What a search reads: replaced as a whole, never mutated in its n/entry/max_level fields."""

    n: int
    entry: int
    max_level: int
    links0: np.ndarray  # (cap, 2m) int32
    counts0: np.ndarray  # (cap,) int32
    levels: np.ndarray  # (cap,) int8
    up_off: np.ndarray  # (cap,) int32, first upper-layer row of a node (-1 for level 0)
    links_up: np.ndarray  # (rows, m) int32
    counts_up: np.ndarray  # (rows,) int32
    up_rows: int  # rows of links_up in use
    vecs: np.ndarray  # (>= n, d) float32 exact vectors (unit length for cosine)
    trav: np.ndarray  # (>= n, d) float32 vectors or uint8 codes the traversal reads


def _thread_visited(n: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's epoch-tagged visited array (grown to n) and its epoch counter."""
    buf = getattr(_TLS, "visited", None)
    if buf is None or buf.shape[0] < n:
        buf = np.zeros(max(n, 1024), dtype=np.uint16)
        _TLS.visited = buf
        _TLS.epoch = np.zeros(1, dtype=np.int64)
    return buf, _TLS.epoch


def _ones(d: int) -> np.ndarray:
    w = _ONES_CACHE.get(d)
    if w is None:
        w = _ONES_CACHE.setdefault(d, np.ones(d, dtype=np.float32))
    return w


def _grown(a: np.ndarray, rows: int, fill: int = 0) -> np.ndarray:
    """A writable copy of ``a`` with at least ``rows`` rows (new rows set to ``fill``)."""
    out = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


class HNSWIndex(VectorIndex):
    """Multi-layer proximity graph. Query knobs: ``ef`` (beam width, default max(k, 64)) and, when
    quantized, ``rerank`` (re-score ``k * rerank`` candidates exactly, default 4)."""

    kind: ClassVar[str] = "hnsw"

    def __init__(self, dim: int, metric: str, m: int, ef_construction: int, seed: int = 0) -> None:
        self.dim = dim
        self.metric = check_metric(metric)
        self.m = m
        self.ef_construction = ef_construction
        self.seed = seed
        self.order = "random"
        self.batch_fraction = 0.02
        self._quantized = False
        self._scale = np.ones(dim, dtype=np.float32)
        self._offset = np.zeros(dim, dtype=np.float32)
        self._w = _ones(dim)
        self._owns_vectors = metric == "cosine"
        self._write = threading.Lock()
        self._args_cache: tuple[_Graph, tuple] | None = None
        self._searcher_cache: tuple[_Graph, Any, Any] | None = None  # (snapshot, backends, searcher)
        self._g = self._empty_graph(np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32))

    # --- the contract ----------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        metric: str,
        config: Any,
        *,
        quantizer: Any = None,
        progress: bool = False,
        order: str = "random",
        seed: int = 0,
        batch_fraction: float = 0.02,
    ) -> HNSWIndex:
        """Build over vectors (n, d) float32. ``order``: insertion order, "random" (seeded, the
        default), "given" or "norm" (largest norm first); ``batch_fraction`` 0 inserts one at a time."""
        if not isinstance(config, HNSW):
            raise ValueError(f"HNSWIndex needs a vecdb.HNSW config, got {type(config).__name__}")
        if order not in ORDERS:
            raise ValueError(f"unknown insertion order {order!r}: expected one of {ORDERS}")
        if not 0.0 <= batch_fraction <= 0.5:
            raise ValueError(f"batch_fraction must be in [0, 0.5], got {batch_fraction}")
        x = _as_rows(vectors, None)
        index = cls(x.shape[1], metric, config.m, config.ef_construction, seed)
        index.order = order
        index.batch_fraction = batch_fraction
        index._set_quantizer(quantizer)
        vecs = index._exact_rows(x)
        trav = index._encode(vecs)
        index._g = index._empty_graph(vecs, trav)
        index._insert_rows(x.shape[0], vecs, trav, progress)
        return index

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: Mapping[str, Any],
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) float32 -> (offsets (q, k) int64 padded -1, distances (q, k) float32 padded inf).

        ``allowed`` (n,) bool: rows that may be returned; disallowed rows are still traversed, and
        rows past the end of the mask count as disallowed.
        """
        g = self._g
        qs = queries
        if not (type(qs) is np.ndarray and qs.dtype is _F32 and qs.ndim == 2  # the hot path
                and qs.shape[1] == self.dim and qs.flags.c_contiguous):
            qs = _as_rows(queries, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        ef = params.get("ef")
        ef = max(k, 64) if ef is None else int(ef)
        if ef < 1:
            raise ValueError(f"ef must be >= 1, got {ef}")
        ef = max(ef, k)
        rerank_n = 0
        if self._quantized:
            rerank = int(params.get("rerank", 4))
            if rerank < 1:
                raise ValueError(f"rerank must be >= 1, got {rerank}")
            rerank_n = k * rerank
            ef = max(ef, rerank_n)
        if allowed is None:
            mask, filtered = _EMPTY_MASK, False
        else:
            mask = np.asarray(allowed)
            if mask.dtype != np.bool_ or mask.ndim != 1:
                raise ValueError("allowed must be a 1-D bool array")
            filtered = True
        nq = qs.shape[0]
        if nq == 1 and not self._quantized and (not filtered or mask.flags.c_contiguous):
            found = self.search_one(qs, k, ef, None, mask if filtered else None)
            if found is not None:
                return found[0], found[1]
        out_i = np.empty((nq, k), dtype=np.int64)
        out_d = np.empty((nq, k), dtype=np.float32)
        static = self._static_args(g)
        native = dispatch.graph_search_pointer()
        if nq == 1 or not _PARALLEL.acquire(blocking=False):
            visited, epoch = _thread_visited(g.n)
            for t in range(nq):
                graph.search_one(qs[t], *static, native, rerank_n, ef, mask, filtered, visited, epoch,
                                 out_i[t], out_d[t])
        else:
            try:
                graph.search_many(qs, *static, native, rerank_n, ef, mask, filtered, _chunks(nq), out_i, out_d)
            finally:
                _PARALLEL.release()
        return out_i, out_d

    def search_one(self, query: Any, k: Any, ef: Any, ids: np.ndarray | None = None,
                   allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int] | None:
        """One query on a full-precision graph in a single C call (the query checks, traversal,
        top-k, id mapping and result arrays): (``ids[offsets]``, or the offsets when ``ids`` is
        None, (1, k) int64 padded -1; distances (1, k) float32 padded +inf; how many are filled).
        ``ef`` None means the default; ``allowed`` is ``search``'s mask (C-contiguous bool) or None.
        None when it does not apply (quantized graph, empty graph, no C module) or does not take
        the input (not a finite (d,) or (1, d) float32 C-contiguous array; k, ef not ints in
        range): the caller's general path then answers."""
        g = self._g
        backends = dispatch.state()  # replaced when the backends are re-resolved (VECDB_KERNELS)
        cached = self._searcher_cache
        if cached is not None and cached[0] is g and cached[1] is backends:
            searcher = cached[2]
        else:
            searcher = None
            if not self._quantized and g.n > 0:
                searcher = dispatch.hnsw_searcher(g.trav, g.links0, g.counts0, g.up_off, g.links_up, g.counts_up,
                                                  g.entry, g.max_level, g.n, self.metric)
            self._searcher_cache = (g, backends, searcher)
        if searcher is None:
            return None
        return searcher(query, k, 64 if ef is None else ef, ids, allowed)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Metadata and the graph arrays trimmed to n rows (codes too when quantized)."""
        g = self._g
        meta = {
            "format": FORMAT_VERSION,
            "metric": self.metric,
            "dim": self.dim,
            "m": self.m,
            "ef_construction": self.ef_construction,
            "seed": self.seed,
            "n": g.n,
            "entry": g.entry,
            "max_level": g.max_level,
            "quantized": self._quantized,
        }
        arrays = {
            "links0": g.links0[: g.n],
            "counts0": g.counts0[: g.n],
            "levels": g.levels[: g.n],
            "up_off": g.up_off[: g.n],
            "links_up": g.links_up[: g.up_rows],
            "counts_up": g.counts_up[: g.up_rows],
        }
        if self._quantized:
            arrays["codes"] = g.trav[: g.n]
        return meta, arrays

    @classmethod
    def from_arrays(
        cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], vectors: np.ndarray, quantizer: Any = None
    ) -> HNSWIndex:
        """Rebuild from ``to_arrays`` output; raises ValueError on anything inconsistent."""
        try:
            if int(meta["format"]) != FORMAT_VERSION:
                raise ValueError(f"HNSW format {meta['format']} is not {FORMAT_VERSION}")
            index = cls(int(meta["dim"]), str(meta["metric"]), int(meta["m"]), int(meta["ef_construction"]),
                        int(meta["seed"]))
            n, entry, max_level = int(meta["n"]), int(meta["entry"]), int(meta["max_level"])
            quantized = bool(meta["quantized"])
            a = {name: np.asarray(arrays[name]) for name in
                 ("links0", "counts0", "levels", "up_off", "links_up", "counts_up")}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"HNSW metadata or arrays incomplete: {exc!r}") from None
        x = _as_rows(vectors, index.dim)
        index._set_quantizer(quantizer if quantized else None)
        if index._quantized != quantized:
            raise ValueError("HNSW graph was traversed on SQ8 codes: pass its 8-bit scalar quantizer")
        _check_arrays(a, n, index.m, x.shape[0])
        if n > 0 and not (0 <= entry < n and int(a["levels"][entry]) == max_level):
            raise ValueError("HNSW entry point or max level is inconsistent")
        code = graph.validate(a["links0"], a["counts0"], a["levels"], a["up_off"], a["links_up"],
                              a["counts_up"], n)
        if code:
            raise ValueError(f"corrupt HNSW graph: {_VALIDATION_ERRORS[code]}")
        vecs = index._exact_rows(x)
        if quantized:
            trav = np.asarray(arrays.get("codes", np.zeros((0, 0), np.uint8)))
            if trav.shape != (n, index.dim) or trav.dtype != np.uint8:
                raise ValueError(f"HNSW codes must be ({n}, {index.dim}) uint8, got {trav.shape} {trav.dtype}")
            trav = np.ascontiguousarray(trav)
        else:
            trav = vecs
        index._g = _Graph(n, entry if n else -1, max_level, a["links0"], a["counts0"], a["levels"],
                          a["up_off"], a["links_up"], a["counts_up"], a["links_up"].shape[0], vecs, trav)
        return index

    @property
    def nbytes(self) -> int:
        """Graph arrays, codes, and vectors the index had to copy (cosine, inserts)."""
        g = self._g
        total = sum(a.nbytes for a in (g.links0, g.counts0, g.levels, g.up_off, g.links_up, g.counts_up))
        if self._quantized:
            total += g.trav.nbytes
        if self._owns_vectors:
            total += g.vecs.nbytes
        return int(total)

    # --- growth and maintenance ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._g.n

    def insert(self, vectors_new: np.ndarray, progress: bool = False) -> None:
        """Append rows (k, d) float32 as offsets n..n+k-1; concurrent searches keep working."""
        x = _as_rows(vectors_new, self.dim)
        if x.shape[0] == 0:
            return
        with self._write:
            g = self._g
            n_total = g.n + x.shape[0]
            cap = max(n_total, int(g.vecs.shape[0] * 1.5)) if g.n else n_total
            vecs = g.vecs if self._owns_vectors and g.vecs.shape[0] >= n_total else _grown(g.vecs[: g.n], cap)
            vecs[g.n : n_total] = self._exact_rows(x)
            self._owns_vectors = True
            if self._quantized:
                trav = g.trav if g.trav.shape[0] >= n_total else _grown(g.trav[: g.n], cap)
                trav[g.n : n_total] = self._encode(vecs[g.n : n_total])
            else:
                trav = vecs
            if vecs is not g.vecs or trav is not g.trav:  # searches keep the old snapshot's arrays
                self._g = g = replace(g, vecs=vecs, trav=trav)
            self._insert_rows(n_total, vecs, trav, progress)

    def repair(self, deleted: np.ndarray, fill: int | None = None) -> None:
        """Reconnect live nodes that link to ``deleted`` (n,) bool rows, then unlink those rows.

        A repaired row is re-selected with the heuristic and topped up to ``fill`` links (default
        3m/2) with the nearest remaining candidates: on GloVe 30k with 30% deleted and re-inserted,
        recall at ef=64 is 0.923 with no top-up, 0.932 with m and 0.947 with 3m/2 (fresh build 0.942).

        Deleted rows stay (offsets do not move) but are unreachable afterwards; callers still pass
        them as disallowed. Run on compaction so recall does not decay under churn.
        """
        with self._write:
            g = self._g
            dead = np.asarray(deleted)
            if dead.dtype != np.bool_ or dead.shape != (g.n,):
                raise ValueError(f"deleted must be ({g.n},) bool, got {dead.shape} {dead.dtype}")
            if g.n == 0 or not dead.any():
                return
            g = self._writable(g)
            data, dmode = self._build_data(g)
            with _PARALLEL:
                graph.repair(data, self._ones_w(), dmode, g.links0, g.counts0, g.levels, g.up_off,
                             g.links_up, g.counts_up, dead, g.max_level, self.m,
                             (3 * self.m) // 2 if fill is None else int(fill))
            entry, max_level = g.entry, g.max_level
            if dead[entry]:
                live = np.flatnonzero(~dead)
                if live.size == 0:
                    entry, max_level = -1, 0
                else:
                    entry = int(live[np.argmax(g.levels[live])])
                    max_level = int(g.levels[entry])
            self._g = replace(g, entry=entry, max_level=max_level)

    # --- internals -------------------------------------------------------------------------------

    def _set_quantizer(self, quantizer: Any) -> None:
        """Traverse on codes only for a trained 8-bit scalar quantizer; anything else stays fp32."""
        if quantizer is None or getattr(quantizer, "kind", None) != "sq" or getattr(quantizer, "bits", 8) != 8:
            return
        scale = getattr(quantizer, "scale", None)
        offset = getattr(quantizer, "offset", None)
        if scale is None or offset is None:
            raise ValueError("the SQ quantizer must be trained before building an HNSW index on it")
        self._quantizer = quantizer
        self._scale = np.ascontiguousarray(scale, dtype=np.float32)
        self._offset = np.ascontiguousarray(offset, dtype=np.float32)
        if self._scale.shape != (self.dim,) or self._offset.shape != (self.dim,):
            raise ValueError(f"SQ scale/offset must be ({self.dim},)")
        self._w = self._scale * self._scale
        self._quantized = True

    def _exact_rows(self, x: np.ndarray) -> np.ndarray:
        if self.metric != "cosine":
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)

    def _encode(self, vecs: np.ndarray) -> np.ndarray:
        if not self._quantized:
            return vecs
        return np.ascontiguousarray(self._quantizer.encode(vecs), dtype=np.uint8)

    def _ones_w(self) -> np.ndarray:
        return _ones(self.dim)

    def _build_data(self, g: _Graph) -> tuple[np.ndarray, int]:
        """Rows and distance mode used to build: always the exact vectors (codes only search)."""
        return g.vecs, graph.L2 if self.metric == "l2" else graph.IP

    def _static_args(self, g: _Graph) -> tuple:
        """Kernel arguments fixed for a snapshot, cached so a query does not rebuild them."""
        cached = self._args_cache
        if cached is not None and cached[0] is g:
            return cached[1]
        emode = graph.L2 if self.metric == "l2" else graph.IP
        if self._quantized:
            tmode = 2 if self.metric == "l2" else 3
            dmode = graph.WL2 if self.metric == "l2" else graph.IP8
        else:
            tmode, dmode = emode, emode
        cosine = self.metric == "cosine"
        args = (tmode, self._scale, self._offset, cosine, 1.0 if cosine else 0.0, self._w, g.trav, dmode,
                g.vecs, emode, g.links0, g.counts0, g.up_off, g.links_up, g.counts_up, g.entry, g.max_level, g.n)
        self._args_cache = (g, args)
        return args

    def _empty_graph(self, vecs: np.ndarray, trav: np.ndarray) -> _Graph:
        m = self.m
        return _Graph(0, -1, 0, np.zeros((0, 2 * m), np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8),
                      np.zeros(0, np.int32), np.zeros((0, m), np.int32), np.zeros(0, np.int32), 0, vecs, trav)

    def _writable(self, g: _Graph) -> _Graph:
        """The snapshot with writable graph arrays (copies read-only memory maps once)."""
        names = ("links0", "counts0", "levels", "up_off", "links_up", "counts_up")
        if all(getattr(g, a).flags.writeable for a in names):
            return g
        g = replace(g, **{a: np.array(getattr(g, a)) for a in names})
        self._g = g
        return g

    def _grow_graph(self, g: _Graph, n_total: int, levels_new: np.ndarray) -> _Graph:
        """Arrays with room for n_total nodes and the new nodes' upper rows (copies if needed)."""
        g = self._writable(g)
        cap = g.links0.shape[0]
        if cap < n_total:
            cap = max(n_total, int(cap * 1.5)) if g.n else n_total
            g = replace(g, links0=_grown(g.links0[: g.n], cap), counts0=_grown(g.counts0[: g.n], cap),
                        levels=_grown(g.levels[: g.n], cap), up_off=_grown(g.up_off[: g.n], cap, -1))
        g.counts0[g.n : n_total] = 0
        g.levels[g.n : n_total] = levels_new
        need = int(levels_new.sum(dtype=np.int64))
        offs = np.full(levels_new.shape[0], -1, dtype=np.int32)
        up = levels_new > 0
        offs[up] = g.up_rows + (np.cumsum(levels_new, dtype=np.int64) - levels_new)[up]
        g.up_off[g.n : n_total] = offs
        rows = g.up_rows + need
        if g.links_up.shape[0] < rows:
            new_rows = max(rows, int(g.links_up.shape[0] * 1.5) + 16)
            g = replace(g, links_up=_grown(g.links_up[: g.up_rows], new_rows),
                        counts_up=_grown(g.counts_up[: g.up_rows], new_rows))
        g.counts_up[g.up_rows : rows] = 0
        return replace(g, up_rows=rows)

    def _insertion_order(self, start: int, stop: int, vecs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ids = np.arange(start, stop, dtype=np.int64)
        if self.order == "random":
            return rng.permutation(ids)
        if self.order == "norm":
            norms = np.einsum("ij,ij->i", vecs[start:stop], vecs[start:stop])
            return ids[np.argsort(-norms, kind="stable")]
        return ids

    def _insert_rows(self, n_total: int, vecs: np.ndarray, trav: np.ndarray, progress: bool) -> None:
        """Link rows g.n..n_total-1 (already present in vecs/trav) and publish the new snapshot."""
        g = self._g
        start = g.n
        rng = np.random.default_rng([self.seed, start])
        ml = 1.0 / math.log(max(self.m, 2))
        u = rng.random(n_total - start)
        levels_new = np.minimum(np.floor(-np.log1p(-u) * ml), 30).astype(np.int8)
        order = self._insertion_order(start, n_total, vecs, rng)
        if n_total == start:
            return
        work = self._grow_graph(g, n_total, levels_new)
        work = replace(work, vecs=vecs, trav=trav)
        data, dmode = self._build_data(work)
        entry, max_level = work.entry, work.max_level
        if entry < 0:
            entry = int(order[0])
            max_level = int(work.levels[entry])
            order = order[1:]
        done = n_total - order.shape[0]
        pool = np.zeros((_chunks(1 << 30), n_total), dtype=np.uint16)
        epochs = np.zeros(pool.shape[0], dtype=np.int64)
        bar = _progress(progress, order.shape[0])
        native = dispatch.graph_search_pointer()
        pos = 0
        with _PARALLEL:
            while pos < order.shape[0]:
                size = max(1, int(self.batch_fraction * done))
                batch = order[pos : pos + size]
                graph.insert_batch(batch, data, self._ones_w(), dmode, work.links0, work.counts0, work.levels,
                                   work.up_off, work.links_up, work.counts_up, entry, max_level, self.m,
                                   self.ef_construction, n_total, native, pool, epochs)
                lv = work.levels[batch]
                top = int(np.argmax(lv))
                if lv[top] > max_level:
                    entry, max_level = int(batch[top]), int(lv[top])
                pos += batch.shape[0]
                done += batch.shape[0]
                if bar is not None:
                    bar.update(batch.shape[0])
        if bar is not None:
            bar.close()
        self._g = replace(work, n=n_total, entry=entry, max_level=max_level)


def _chunks(nq: int) -> int:
    """Work units for a parallel kernel: a few per thread for balance, never more than the work."""
    import numba

    return max(1, min(nq, 4 * numba.get_num_threads()))


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # delay: the bar appears only for builds that last more than a couple of seconds.
    return tqdm(total=total, desc="hnsw build", unit="vec", delay=2.0)


def _as_rows(x: np.ndarray, dim: int | None) -> np.ndarray:
    """A C-contiguous (n, d) float32 view or copy; ValueError on a bad shape or non-finite values."""
    a = np.asarray(x)
    if a.ndim != 2 or (dim is not None and a.shape[1] != dim) or a.shape[1] == 0:
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise ValueError(f"expected a {want} array, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _check_arrays(a: Mapping[str, np.ndarray], n: int, m: int, n_vectors: int) -> None:
    """Shapes and dtypes of persisted graph arrays (contents are checked by graph.validate)."""
    want = {"links0": ((n, 2 * m), np.int32), "counts0": ((n,), np.int32), "levels": ((n,), np.int8),
            "up_off": ((n,), np.int32)}
    for name, (shape, dtype) in want.items():
        if a[name].shape != shape or a[name].dtype != dtype:
            raise ValueError(f"HNSW array {name} must be {shape} {np.dtype(dtype)}, got "
                             f"{a[name].shape} {a[name].dtype}")
    rows = a["links_up"].shape[0]
    if (a["links_up"].ndim != 2 or a["links_up"].shape[1] != m or a["links_up"].dtype != np.int32
            or a["counts_up"].shape != (rows,) or a["counts_up"].dtype != np.int32):
        raise ValueError("HNSW upper-layer arrays have the wrong shape or dtype")
    if n_vectors != n:
        raise ValueError(f"HNSW graph has {n} nodes but the segment has {n_vectors} vectors")
