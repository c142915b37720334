"""One tenant's HNSW graph over its rows of a shared segment matrix: the tenant index's path for
big tenants.

A tenant with many rows is where the shared clustering tree is weakest: its top-10 is spread over
many leaves, so the descent scores a large share of the tenant's rows to reach recall 0.95 (2.4x a
per-tenant HNSW on a tenant holding 14% of a segment). A per-tenant graph needs no copy of the
vectors: nodes are the tenant's rows, ``row_of`` maps node i to its row of the segment's matrix and
the C traversal reads the shared rows through that map (``row_scale`` = 1/|x| turns an inner
product over raw rows into cosine ranking, so cosine segments need no unit copy either). What it
costs is the graph's links, about 150 bytes a node at m = 16.

Updates keep the graph and describe how the tenant drifted from it: ``alive`` masks nodes the
tenant no longer holds (revoked or deleted rows), ``extra`` lists rows it gained since the build,
scanned exactly and merged. The owner rebuilds the graph once the drift passes ``needs_rebuild``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vecdb import kernels
from vecdb.config import HNSW
from vecdb.index.hnsw import HNSWIndex
from vecdb.kernels import dispatch, graph

GRAPH_ARRAYS = ("links0", "counts0", "levels", "up_off", "links_up", "counts_up")
# A graph whose tenant has drifted from it by more than this share of its nodes (rows gained plus
# rows lost) is rebuilt: the exact scan of the gained rows and the walk through lost ones grow.
MAX_DRIFT = 0.25


class TenantGraph:
    """An HNSW graph whose node i is row ``nodes[i]`` of a shared (n, d) float32 matrix."""

    __slots__ = ("_mask_for", "_searcher", "alive", "arrays", "entry", "extra", "max_level", "metric", "nodes",
                 "scale")

    def __init__(self, metric: str, nodes: np.ndarray, arrays: Mapping[str, np.ndarray], entry: int,
                 max_level: int, scale: np.ndarray | None) -> None:
        self.metric = metric
        self.nodes = nodes  # (t,) int32 sorted rows of the shared matrix
        self.arrays = dict(arrays)  # the HNSW arrays of vecdb/kernels/graph.py, trimmed to t nodes
        self.entry = entry
        self.max_level = max_level
        self.scale = scale  # (t,) float32 1/|x| for cosine, else None
        self.alive: np.ndarray | None = None  # (t,) bool: nodes the tenant still holds; None = all
        self.extra = np.zeros(0, dtype=np.int64)  # rows gained since the build, sorted
        self._searcher: Any = None
        self._mask_for: tuple[Any, Any, np.ndarray | None] = (None, None, None)  # (allowed, alive, node mask)

    @classmethod
    def build(cls, vectors: np.ndarray, rows: np.ndarray, metric: str, m: int, ef_construction: int,
              seed: int) -> TenantGraph:
        """Build over ``vectors[rows]`` (rows sorted unique int64). The rows are gathered for the
        build only; the graph keeps its links and the row map."""
        gathered = np.ascontiguousarray(vectors[rows])
        index = HNSWIndex.build(gathered, metric, HNSW(m=m, ef_construction=ef_construction), seed=seed)
        meta, arrays = index.to_arrays()
        nodes = rows.astype(np.int32)
        return cls(metric, nodes, arrays, int(meta["entry"]), int(meta["max_level"]),
                   _inverse_norms(gathered) if metric == "cosine" else None)

    @property
    def size(self) -> int:
        """Nodes in the graph."""
        return int(self.nodes.shape[0])

    def needs_rebuild(self) -> bool:
        """Whether the tenant drifted from the graph by more than ``MAX_DRIFT`` of its nodes."""
        lost = 0 if self.alive is None else self.size - int(np.count_nonzero(self.alive))
        return lost + self.extra.shape[0] > MAX_DRIFT * self.size

    def sync(self, rows: np.ndarray) -> None:
        """The tenant now holds ``rows`` (sorted unique int64): mark the nodes it lost, list the rows
        it gained."""
        pos = np.searchsorted(rows, self.nodes)
        alive = pos < rows.shape[0]
        alive[alive] = rows[pos[alive]] == self.nodes[alive]
        self.alive = None if alive.all() else alive
        held = np.searchsorted(self.nodes, rows)
        gained = held >= self.size
        gained[~gained] = self.nodes[held[~gained]] != rows[~gained]
        self.extra = rows[gained]

    def search_one(self, vectors: np.ndarray, query: Any, k: Any, ef: Any, allowed: np.ndarray | None,
                   ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int] | None:
        """One query, (d,) or (1, d) float32 -> (``ids[rows]``, or the rows when ``ids`` is None,
        (1, k) int64 padded -1; distances (1, k) float32 padded +inf; how many are filled) among the
        tenant's rows (and ``allowed`` (n,) bool rows when given), or None when the C module is
        missing or does not take the query, k or ef (not a finite float32 C-contiguous query, not
        ints in range: the caller then uses another path)."""
        searcher = self._searcher_for(vectors)
        if searcher is None:
            return None
        mask = self._node_mask(allowed)
        if not self.extra.shape[0]:
            return searcher(query, k, ef, ids, mask)  # the searcher raises ef to k
        found = searcher(query, k, ef, None, mask)
        if found is None:
            return None
        rows, dists = self._merge_extra(vectors, query.reshape(-1), k, allowed, found[0][0], found[1][0])
        filled = int(np.count_nonzero(rows >= 0))
        if ids is not None:
            rows[:filled] = ids[rows[:filled]]
        return rows[None, :], dists[None, :], filled

    @property
    def nbytes(self) -> int:
        """Links, row map, scales and the drift arrays."""
        total = self.nodes.nbytes + self.extra.nbytes + sum(a.nbytes for a in self.arrays.values())
        total += 0 if self.scale is None else self.scale.nbytes
        total += 0 if self.alive is None else self.alive.nbytes
        return int(total)

    @classmethod
    def from_arrays(cls, metric: str, nodes: np.ndarray, arrays: Mapping[str, np.ndarray], entry: int,
                    max_level: int, vectors: np.ndarray) -> TenantGraph:
        """A persisted graph, checked: ValueError when its arrays are not a well-formed graph over
        rows of ``vectors`` (a corrupt file must be rebuilt, never trusted)."""
        t = nodes.shape[0]
        if nodes.ndim != 1 or nodes.dtype != np.int32 or t < 1:
            raise ValueError("tenant graph nodes must be a non-empty 1-D int32 array")
        if nodes[0] < 0 or nodes[-1] >= vectors.shape[0] or (np.diff(nodes) <= 0).any():
            raise ValueError("tenant graph nodes must be sorted, distinct rows of the segment")
        a = {name: np.ascontiguousarray(arrays[name]) for name in GRAPH_ARRAYS}
        for name, dtype in (("links0", np.int32), ("counts0", np.int32), ("levels", np.int8), ("up_off", np.int32),
                            ("links_up", np.int32), ("counts_up", np.int32)):
            if a[name].dtype != dtype:
                raise ValueError(f"tenant graph {name} must be {np.dtype(dtype).name}, got {a[name].dtype}")
        if a["links0"].ndim != 2 or a["links_up"].ndim != 2 or a["counts0"].shape != (t,):
            raise ValueError("tenant graph link arrays have the wrong shape")
        code = graph.validate(a["links0"], a["counts0"], a["levels"], a["up_off"], a["links_up"], a["counts_up"], t)
        if code or not (0 <= entry < t and int(a["levels"][entry]) == max_level):
            raise ValueError(f"corrupt tenant graph (defect {code}, entry {entry}, max level {max_level})")
        scale = _inverse_norms(vectors[nodes]) if metric == "cosine" else None
        return cls(metric, nodes, a, entry, max_level, scale)

    # --- internals ---------------------------------------------------------------------------

    def _searcher_for(self, vectors: np.ndarray) -> Any:
        """The C searcher over ``vectors``, made once per matrix and kernel state (an insert that
        grows the index's matrix replaces it, and so the searcher)."""
        cached = self._searcher
        backends = dispatch.state()
        if cached is not None and cached[0] is vectors and cached[1] is backends:
            return cached[2]
        a = self.arrays
        searcher = dispatch.hnsw_searcher(vectors, a["links0"], a["counts0"], a["up_off"], a["links_up"],
                                          a["counts_up"], self.entry, self.max_level, self.size, self.metric,
                                          self.nodes, self.scale)
        self._searcher = (vectors, backends, searcher)
        return searcher

    def _node_mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """The walk's mask over the nodes: alive and, when given, allowed (rows past its end are not).
        Kept for the last ``allowed`` seen, so the queries of one call gather it once."""
        last_allowed, last_alive, last = self._mask_for
        if allowed is None:
            return self.alive
        if last_allowed is allowed and last_alive is self.alive:
            return last
        inside = self.nodes < allowed.shape[0]
        local = np.zeros(self.size, dtype=np.bool_)
        local[inside] = allowed[self.nodes[inside]]
        mask = local if self.alive is None else local & self.alive
        self._mask_for = (allowed, self.alive, mask)
        return mask

    def _merge_extra(self, vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None,
                     rows: np.ndarray, dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merge the walk's top k with an exact scan of the rows gained since the build."""
        extra = self.extra
        if allowed is not None:
            extra = extra[extra < allowed.shape[0]]
            extra = extra[allowed[extra]]
        scores = kernels.distances_at(query, vectors, extra, self.metric)
        all_rows = np.concatenate([rows[rows >= 0], extra])
        all_d = np.concatenate([dists[rows >= 0], scores])
        order = np.lexsort((all_rows, all_d))[:k]
        out_r = np.full(k, -1, dtype=np.int64)
        out_d = np.full(k, np.inf, dtype=np.float32)
        out_r[: order.shape[0]] = all_rows[order]
        out_d[: order.shape[0]] = all_d[order]
        return out_r, out_d


def _inverse_norms(x: np.ndarray) -> np.ndarray:
    """1/|x| per row (0 for a zero row, whose cosine distance is then 1, as the exact kernels score it)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    with np.errstate(divide="ignore"):
        inv = np.where(norms > 0, 1.0 / norms, 0.0)
    return inv.astype(np.float32)
