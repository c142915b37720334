"""The multi-tenant index (after Curator): one shared clustering tree, one small sub-tree per tenant.

The tree is a k-means tree over every row of a segment: each internal node splits its rows into at
most ``branching`` children by seeded k-means until a node holds at most ``leaf_size`` rows (a leaf).
Nodes are numbered so that the children of a node are contiguous and every child id is larger than its
parent's. Tenants are strings mapped to dense ids; a row may belong to several tenants (shared rows)
or to none.

Per tenant the index keeps only its sub-tree, the nodes with at least one of its rows under them:
``nodes`` (s,) int32 sorted node ids (a sparse, tenant-major membership bitmap), ``start`` (s+1,)
int32 and ``rows`` (r,) uint32, the tenant's row offsets grouped by leaf (``kernels.tenant`` explains
the layout). A search for tenant T descends only T's sub-tree, best-first by centroid distance, and
scores only T's rows in the leaves it opens, so it can never return a row T does not hold: isolation
is structural, not a filter applied afterwards. Tenants with at most ``exact_threshold`` rows are
scanned exactly (cheaper than any descent at that size). Tenants with more than ``graph_min_rows``
rows get their own HNSW graph over their rows of the shared matrix (``index.tenant_graph``: links and
a row map, no copy of the vectors), within a memory budget of ``graph_budget_pct`` graph nodes per
100 segment rows, largest tenants first: the tree is weakest there (their top-10 is spread over many
leaves), and a graph answers them as fast as a per-tenant index.

Memory: centroids (nodes * d * 4 bytes, about n / leaf_size * d * 4), four int32 per node, one int32
per row (its leaf), and per tenant 4 bytes per row it holds plus 8 bytes per node of its sub-tree
(at most its leaves times the tree depth).

Updates are per tenant: ``insert`` routes new rows down the tree (a leaf that outgrows
``split_factor * leaf_size`` rows is split by k-means into children), ``grant``/``revoke`` add or
remove rows of one tenant, ``delete`` removes rows from every tenant; each rewrites only the arrays of
the tenants it touches (O(rows of the tenant)), never the tree of the others. A tenant's graph masks
the rows it lost and scans the rows it gained exactly, until that drift passes a quarter of the
graph and the graph is rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.index.balanced import train_kmeans
from vecdb.index.ivf import as_rows, check_mask, positive_int, unit_rows
from vecdb.index.tenant_graph import GRAPH_ARRAYS, TenantGraph
from vecdb.kernels import tenant as tk
from vecdb.kernels.selection import finish_heap
from vecdb.quant.kmeans import assign
from vecdb.types import METRIC_CODES, check_metric

FORMAT_VERSION = 2
DEFAULTS: dict[str, Any] = {
    "branching": 16,  # children per split: 16 keeps the tree 3-4 levels deep at 10^5 rows
    "leaf_size": 128,  # rows per leaf at build time, at most: centroids cost d * 4 / leaf_size bytes a row
    "split_factor": 4,  # a leaf grown by inserts past split_factor * leaf_size rows is split
    "exact_threshold": 1024,  # tenants with at most this many rows are scanned exactly
    "graph_min_rows": 1024,  # tenants with more rows get their own graph (within the budget)
    # graph nodes of all tenants per 100 segment rows, at most: ~150 bytes a node at m 16, so 75
    # keeps the graphs under ~110 bytes a segment row (a shared HNSW graph costs ~140)
    "graph_budget_pct": 75,
    "graph_m": 16,
    "graph_ef_construction": 100,
    "seed": 0,
}
DEFAULT_NPROBE = 8  # leaves a search opens at least
DEFAULT_EF = 1024  # rows a search scores at least (raised to k): recall >= 0.99 up to 4k-row tenants on npm
DEFAULT_BEAM = 16  # internal nodes expanded per tree level (at least nprobe)
DEFAULT_GRAPH_EF = 64  # beam width of a tenant graph's walk (raised to k)
# Under a filter, a graph tenant's allowed rows are scanned exactly when they are at most
# ``exact_threshold`` or this share of its graph: a walk passes ~1/share nodes per allowed one kept.
GRAPH_WALK_MIN_SHARE = 0.1
_GRAPH_KNOBS = frozenset({"graph_ef"})
# A tenant with at most this many times ``ef`` rows is scanned exactly: the descent scores ef rows
# and then some, and pays for centroids and scattered leaves; on npm (384-d) an exact scan of 4,096
# rows took 0.17 ms where the descent at ef 1024 took 0.3-0.5 ms (p50) at recall 0.99.
EXACT_EF_FACTOR = 4
_EMPTY_I32 = np.zeros(0, dtype=np.int32)
_EMPTY_U32 = np.zeros(0, dtype=np.uint32)
_ZERO_START = np.zeros(1, dtype=np.int32)

RowTenants = Sequence[Sequence[str]] | tuple[np.ndarray, np.ndarray, Sequence[str]]


class _SubTree:
    """One tenant's sub-tree: sorted node ids, per-node row ranges, rows grouped by leaf."""

    __slots__ = ("leaves", "nodes", "rows", "scan", "start")

    def __init__(self, nodes: np.ndarray, start: np.ndarray, rows: np.ndarray, leaves: int) -> None:
        self.nodes = nodes  # (s,) int32
        self.start = start  # (s+1,) int32
        self.rows = rows  # (r,) uint32
        self.leaves = leaves  # nodes of the sub-tree that are leaves of the tree
        self.scan: np.ndarray | None = None  # rows as ascending int64, made by the first exact scan

    def sorted_rows(self) -> np.ndarray:
        """The tenant's rows as ascending int64 offsets, cached (a tree is replaced, never changed,
        on update): an exact scan's single C call reads them, and ascending order breaks distance
        ties by row, as the result heap does."""
        if self.scan is None:
            self.scan = np.sort(self.rows).astype(np.int64)
        return self.scan

    def beam(self, beam: int, nprobe: int, ef: int) -> int:
        """Internal nodes to expand per level so that the collected leaves can hold ``ef`` of the
        tenant's rows: a tenant with few rows per leaf needs many leaves, hence a wider beam."""
        if self.rows.shape[0] == 0:
            return beam
        leaves_needed = max(nprobe, -(-ef * self.leaves // self.rows.shape[0]))
        per_inner = max(1, self.leaves // max(1, self.nodes.shape[0] - self.leaves))
        return max(beam, -(-leaves_needed // per_inner))

    @property
    def nbytes(self) -> int:
        scan = 0 if self.scan is None else self.scan.nbytes
        return int(self.nodes.nbytes + self.start.nbytes + self.rows.nbytes + scan)


_EMPTY_TREE = _SubTree(_EMPTY_I32, _ZERO_START, _EMPTY_U32, 0)


def parse_config(config: Mapping[str, Any] | None) -> dict[str, int]:
    """The build knobs, defaults filled in; ValueError on unknown names or bad values."""
    cfg = dict(DEFAULTS)
    unknown = set(config or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown tenant index options: {sorted(unknown)}")
    cfg.update(config or {})
    out = {name: int(cfg[name]) for name in DEFAULTS}
    if (out["branching"] < 2 or out["leaf_size"] < 1 or out["split_factor"] < 1 or out["exact_threshold"] < 0
            or out["graph_min_rows"] < 0 or out["graph_budget_pct"] < 0 or out["graph_m"] < 2
            or out["graph_ef_construction"] < 1):
        raise ValueError(f"tenant index options out of range: {out}")
    return out


def tenant_lists(row_tenants: RowTenants, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Normalise list-of-lists or CSR (indptr (n+1,), tenant_ids, tenant_names) row tenants to CSR."""
    if isinstance(row_tenants, tuple) and len(row_tenants) == 3 and isinstance(row_tenants[0], np.ndarray):
        indptr = np.asarray(row_tenants[0], dtype=np.int64)
        ids = np.asarray(row_tenants[1], dtype=np.int64)
        names = [str(t) for t in row_tenants[2]]
        if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != ids.shape[0] or (np.diff(indptr) < 0).any():
            raise ValueError(f"row tenants CSR indptr must be (n+1,) = ({n + 1},) non-decreasing from 0 to len(ids)")
        if ids.size and (ids.min() < 0 or ids.max() >= len(names)):
            raise ValueError("row tenants CSR ids out of range of tenant_names")
        if len(set(names)) != len(names):
            raise ValueError("tenant_names must be distinct")
        return indptr, ids, names
    lists = list(row_tenants)
    if len(lists) != n:
        raise ValueError(f"row_tenants has {len(lists)} entries for {n} rows")
    names_ix: dict[str, int] = {}
    flat: list[int] = []
    indptr = np.zeros(n + 1, dtype=np.int64)
    for i, ts in enumerate(lists):
        if isinstance(ts, str):
            raise ValueError(f"row_tenants[{i}] must be a list of tenant names, got a str")
        for t in set(ts):
            flat.append(names_ix.setdefault(str(t), len(names_ix)))
        indptr[i + 1] = len(flat)
    return indptr, np.asarray(flat, dtype=np.int64), list(names_ix)


class TenantIndex:
    """A shared k-means tree over a segment's rows with one sub-tree per tenant.

    Query knobs (``params``): ``nprobe`` (leaves opened at least, default 8), ``ef`` (tenant rows
    scored at least, default 1024; both are the tree's recall knob), ``graph_ef`` (beam width of a
    tenant graph, default 64), ``exact`` (True: scan the tenant's rows).
    """

    kind: ClassVar[str] = "tenant"

    def __init__(self, metric: str, vectors: np.ndarray, cfg: dict[str, int], centroids: np.ndarray,
                 parent: np.ndarray, first_child: np.ndarray, n_children: np.ndarray,
                 row_leaf: np.ndarray) -> None:
        self.metric = check_metric(metric)
        self.dim = int(vectors.shape[1])
        self.cfg = cfg
        self._vectors = vectors  # (cap >= n, d) float32; rows past the segment's come from insert
        self.n = int(row_leaf.shape[0])
        self._segment_rows = self.n
        self.centroids = centroids  # (nodes, d) float32, in routing space (unit rows for cosine)
        self.parent = parent  # (nodes,) int32, -1 for the root
        self.first_child = first_child  # (nodes,) int32
        self.n_children = n_children  # (nodes,) int32, 0 for a leaf
        self.row_leaf = row_leaf  # (n,) int32 leaf of each row, -1 once deleted
        self.names: list[str] = []
        self.ids: dict[str, int] = {}
        self.trees: list[_SubTree] = []
        self.graphs: dict[int, TenantGraph] = {}  # tenant id -> its graph (big tenants only)
        self._code = METRIC_CODES[self.metric]
        self._route_code = METRIC_CODES["ip" if metric == "ip" else "l2"]

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, row_tenants: RowTenants,
              config: Mapping[str, Any] | None = None) -> TenantIndex:
        """Build over ``vectors`` (n, d) float32. row_tenants: per row a list of tenant names, or CSR
        (indptr (n+1,), tenant_ids (nnz,), tenant_names). config: ``DEFAULTS`` keys."""
        check_metric(metric)
        cfg = parse_config(config)
        x = as_rows(vectors, None)
        n = x.shape[0]
        indptr, tids, names = tenant_lists(row_tenants, n)
        space = unit_rows(x) if metric == "cosine" else x
        centroids, parent, first_child, n_children, row_leaf = _build_tree(space, cfg)
        index = cls(metric, x, cfg, centroids, parent, first_child, n_children, row_leaf)
        rows_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        order = np.argsort(tids, kind="stable")
        bounds = np.searchsorted(tids[order], np.arange(len(names) + 1))
        for t, name in enumerate(names):
            index._tenant_id(name)
            index._set_rows(t, rows_of[order[bounds[t]:bounds[t + 1]]])
        index._build_graphs()
        return index

    # --- searching ---------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, tenant: str, params: Mapping[str, Any] | None = None,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) float32 -> (offsets (q, k) int64 padded -1, distances (q, k) float32 padded
        +inf), only rows of ``tenant`` (and of ``allowed`` (n,) bool when given)."""
        offsets, dists, _ = self.search_with_stats(queries, k, tenant, params, allowed)
        return offsets, dists

    def search_with_stats(self, queries: np.ndarray, k: int, tenant: str, params: Mapping[str, Any] | None = None,
                          allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``search`` plus per-query statistics: plan, leaves opened and rows scored."""
        params = params or {}
        if allowed is None and params.keys() <= _GRAPH_KNOBS and type(queries) is np.ndarray and queries.ndim == 2:
            graph_ef = params.get("graph_ef", DEFAULT_GRAPH_EF)
            found = self.search_one(queries, k, tenant, graph_ef)
            if found is not None:
                stats = {"plan": found[3], "leaves": [0]}
                stats.update({"candidates_scored": [-1], "ef": graph_ef} if found[3] == "tenant-graph" else
                             {"candidates_scored": [self.trees[self.ids[tenant]].rows.shape[0]]})
                return found[0], found[1], stats
        qs = as_rows(queries, self.dim)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        nprobe = positive_int(params, "nprobe", DEFAULT_NPROBE)
        ef = max(positive_int(params, "ef", DEFAULT_EF), k)
        beam = positive_int(params, "beam", DEFAULT_BEAM)
        graph_ef = positive_int(params, "graph_ef", DEFAULT_GRAPH_EF)
        mask, filtered = check_mask(allowed)
        tid = self.ids.get(tenant, -1)
        tree = self.trees[tid] if tid >= 0 else _EMPTY_TREE
        rows = tree.rows.shape[0]
        exact_rows = max(self.cfg["exact_threshold"], EXACT_EF_FACTOR * ef)
        tgraph = self.graphs.get(tid)
        # a selective filter leaves few of a graph tenant's rows: scan those rather than walk past the rest
        selective = tgraph is not None and filtered and self.count(tenant, mask) <= max(
            self.cfg["exact_threshold"], GRAPH_WALK_MIN_SHARE * tgraph.size)
        if tgraph is not None and not selective and not params.get("exact"):
            found = self._graph_search(tgraph, qs, int(k), graph_ef, mask if filtered else None)
            if found is not None:
                return found
        exact = bool(params.get("exact")) or rows <= exact_rows or selective
        nq = qs.shape[0]
        out_i = np.full((nq, k), -1, dtype=np.int64)
        out_d = np.full((nq, k), np.inf, dtype=np.float32)
        leaves = np.zeros(nq, dtype=np.int64)
        scored = np.zeros(nq, dtype=np.int64)
        if exact and nq == 1 and not filtered:  # one query's scan in a single C call, when built
            found = kernels.topk_at_one(qs, self._vectors, tree.sorted_rows(), k, self.metric, None)
            if found is not None:
                return found[0], found[1], {"plan": "tenant-exact", "leaves": [0], "candidates_scored": [rows]}
        beam = tree.beam(beam, nprobe, ef)
        # only the descent routes by centroid: an exact scan skips the normalisation (~12 µs a call)
        route = unit_rows(qs) if self.metric == "cosine" and not exact else qs
        vecs = self._vectors
        for t in range(nq):
            hd, hk = out_d[t], out_i[t]
            if exact:
                size, scored[t] = tk.tenant_exact_into(qs[t], vecs, tree.rows, self._code, mask, filtered, hd, hk)
            else:
                size, leaves[t], scored[t] = tk.tenant_search_into(
                    qs[t], route[t], vecs, self.centroids, self.first_child, self.n_children, tree.nodes,
                    tree.start, tree.rows, self._code, self._route_code, mask, filtered, beam, nprobe, ef, hd, hk)
            finish_heap(hk, hd, size)
        stats = {"plan": "tenant-exact" if exact else "tenant-tree", "leaves": leaves.tolist(),
                 "candidates_scored": scored.tolist()}
        return out_i, out_d, stats

    def search_one(self, query: Any, k: Any, tenant: str, graph_ef: Any,
                   ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, str] | None:
        """One unfiltered query at the default tree budget in a single C call: the walk of the
        tenant's graph, or the exact scan of a tenant small enough for one -> (``ids[rows]``, or the
        rows when ``ids`` is None, (1, k) int64 padded -1; distances (1, k) float32 padded +inf; how
        many are filled; the plan). The C call checks the query ((d,) or (1, d) finite float32), k
        and the beam; None for anything it does not take, an unknown tenant, or a big tenant without
        a graph: ``search_with_stats`` then validates, explains and answers."""
        tid = self.ids.get(tenant, -1)
        tgraph = self.graphs.get(tid)
        if tgraph is not None:
            found = tgraph.search_one(self._vectors, query, k, graph_ef, None, ids)
            return None if found is None else (*found, "tenant-graph")
        if tid < 0 or type(graph_ef) is not int or graph_ef < 1:  # a bad beam is refused by name there
            return None
        tree = self.trees[tid]
        if tree.rows.shape[0] > max(self.cfg["exact_threshold"], EXACT_EF_FACTOR * DEFAULT_EF):
            return None
        found = kernels.topk_at_one(query, self._vectors, tree.sorted_rows(), k, self.metric, ids)
        return None if found is None else (*found, "tenant-exact")

    def has_graph(self, tenant: str) -> bool:
        """Whether ``tenant`` is searched through its own graph."""
        return self.ids.get(tenant, -1) in self.graphs

    def _graph_search(self, tgraph: TenantGraph, qs: np.ndarray, k: int, ef: int,
                      mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        """Each query on the tenant's graph, or None when the C walk is not available."""
        nq = qs.shape[0]
        parts = []
        for t in range(nq):
            found = tgraph.search_one(self._vectors, qs[t], k, ef, mask)
            if found is None:
                return None
            parts.append(found)
        out_i, out_d = np.vstack([f[0] for f in parts]), np.vstack([f[1] for f in parts])
        # the C walk does not count the rows it scores: the beam width is what bounds them
        return out_i, out_d, {"plan": "tenant-graph", "leaves": [0] * nq, "candidates_scored": [-1] * nq, "ef": ef}

    # --- tenants and updates -----------------------------------------------------------------

    def tenants(self) -> list[str]:
        """Tenant names known to the index (some may hold no rows any more)."""
        return list(self.names)

    def rows_of(self, tenant: str) -> np.ndarray:
        """Sorted row offsets of ``tenant`` -> (r,) int64 (empty for an unknown tenant)."""
        if tenant not in self.ids:
            return np.zeros(0, dtype=np.int64)
        return np.sort(self.trees[self.ids[tenant]].rows.astype(np.int64))

    def count(self, tenant: str, allowed: np.ndarray | None = None) -> int:
        """Rows ``tenant`` holds (those of ``allowed`` (n,) bool only, when given); 0 when unknown.
        O(1) without ``allowed``, O(rows of the tenant) with it."""
        if tenant not in self.ids:
            return 0
        rows = self.trees[self.ids[tenant]].rows
        if allowed is None:
            return int(rows.shape[0])
        mask, _ = check_mask(allowed)
        return int(np.count_nonzero(mask[rows[rows < mask.shape[0]]]))

    def insert(self, vectors: np.ndarray, row_tenants: RowTenants) -> np.ndarray:
        """Append rows ``vectors`` (m, d) float32 with their tenants; returns their offsets (m,) int64."""
        x = as_rows(vectors, self.dim)
        m = x.shape[0]
        indptr, tids, names = tenant_lists(row_tenants, m)
        start = self.n
        self._grow_vectors(start + m)
        self._vectors[start:start + m] = x
        route = unit_rows(x) if self.metric == "cosine" else x
        leaves = tk.descend(route, self.centroids, self.first_child, self.n_children, self._route_code)
        self.row_leaf = np.concatenate([self.row_leaf, leaves])
        self.n = start + m
        new_rows = np.arange(start, start + m, dtype=np.int64)
        touched: dict[int, list[np.ndarray]] = {}
        rows_of = np.repeat(new_rows, np.diff(indptr))
        for local, name in enumerate(names):
            touched.setdefault(self._tenant_id(name), []).append(rows_of[tids == local])
        for t, parts in touched.items():
            self._set_rows(t, np.concatenate([self.trees[t].rows.astype(np.int64), *parts]))
        live = self.row_leaf[self.row_leaf >= 0]
        fill = np.bincount(live, minlength=self.centroids.shape[0])
        for leaf in np.unique(leaves).tolist():
            if fill[leaf] > self.cfg["split_factor"] * self.cfg["leaf_size"]:
                self._split_leaf(int(leaf))
        return new_rows

    def grant(self, offsets: np.ndarray, tenant: str) -> None:
        """Share rows ``offsets`` (m,) with ``tenant`` (created when new)."""
        rows = self._live_offsets(offsets)
        t = self._tenant_id(tenant)
        self._set_rows(t, np.union1d(self.trees[t].rows.astype(np.int64), rows))

    def revoke(self, offsets: np.ndarray, tenant: str) -> None:
        """Take rows ``offsets`` (m,) away from ``tenant`` (rows it does not hold are ignored)."""
        if tenant not in self.ids:
            return
        rows = self._checked_offsets(offsets)
        t = self.ids[tenant]
        current = self.trees[t].rows.astype(np.int64)
        self._set_rows(t, current[~np.isin(current, rows)])

    def delete(self, offsets: np.ndarray) -> None:
        """Remove rows ``offsets`` (m,) from every tenant; they are never returned again.
        Costs one membership test per (tenant, row held) pair: O(rows held by all tenants)."""
        rows = self._checked_offsets(offsets)
        if rows.size == 0:
            return
        for t, tree in enumerate(self.trees):
            hit = np.isin(tree.rows, rows)
            if hit.any():
                current = tree.rows.astype(np.int64)
                self._set_rows(t, current[~hit])
        self.row_leaf[rows] = -1

    # --- memory ------------------------------------------------------------------------------

    def memory_by_tenant(self) -> dict[str, int]:
        """Bytes of each tenant's sub-tree arrays and graph (the shared tree is in ``nbytes`` only)."""
        return {name: self.trees[t].nbytes + (self.graphs[t].nbytes if t in self.graphs else 0)
                for t, name in enumerate(self.names)}

    @property
    def shared_nbytes(self) -> int:
        """Bytes of the shared tree: centroids, node links and the row -> leaf map."""
        return int(self.centroids.nbytes + self.parent.nbytes + self.first_child.nbytes
                   + self.n_children.nbytes + self.row_leaf.nbytes)

    @property
    def nbytes(self) -> int:
        """Everything beyond the segment's vectors: the shared tree, every sub-tree, inserted vectors."""
        inserted = (self.n - self._segment_rows) * self.dim * 4
        graphs = sum(g.nbytes for g in self.graphs.values())
        return self.shared_nbytes + sum(t.nbytes for t in self.trees) + graphs + int(inserted)

    # --- persistence -------------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(metadata, arrays): the tree, and each tenant's rows concatenated (CSR by tenant id).
        Rows added by ``insert`` are not part of the segment: persist after compaction only."""
        if self.n != self._segment_rows:
            raise ValueError("the index holds inserted rows that are not in the segment: rebuild after compaction")
        sizes = np.array([t.rows.shape[0] for t in self.trees], dtype=np.int64)
        tenant_start = np.zeros(len(self.trees) + 1, dtype=np.int64)
        np.cumsum(sizes, out=tenant_start[1:])
        rows = np.concatenate([t.rows for t in self.trees]) if self.trees else _EMPTY_U32
        meta = {"format": FORMAT_VERSION, "metric": self.metric, "dim": self.dim, "n": self.n,
                "config": dict(self.cfg), "tenants": list(self.names)}
        arrays = {"centroids": self.centroids, "parent": self.parent, "first_child": self.first_child,
                  "n_children": self.n_children, "row_leaf": self.row_leaf, "tenant_start": tenant_start,
                  "tenant_rows": rows, **self._graph_arrays()}
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    vectors: np.ndarray) -> TenantIndex:
        """Rebuild from ``to_arrays`` output and the segment's ``vectors`` (n, d); ValueError when
        anything is inconsistent (a corrupt index must be rebuilt, never trusted)."""
        try:
            if int(meta["format"]) != FORMAT_VERSION:
                raise ValueError(f"tenant index format {meta['format']} is not {FORMAT_VERSION}")
            metric, dim, n = str(meta["metric"]), int(meta["dim"]), int(meta["n"])
            cfg = parse_config(meta["config"])
            names = [str(t) for t in meta["tenants"]]
            a = {key: np.asarray(arrays[key]) for key in ("centroids", "parent", "first_child", "n_children",
                                                           "row_leaf", "tenant_start", "tenant_rows")}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"tenant index metadata or arrays incomplete: {exc!r}") from None
        check_metric(metric)
        if vectors.ndim != 2 or vectors.shape != (n, dim) or vectors.dtype != np.float32:
            raise ValueError(f"tenant index covers ({n}, {dim}) float32 vectors, got {vectors.shape} {vectors.dtype}")
        if len(set(names)) != len(names):
            raise ValueError("tenant names are not distinct")
        _check_tree(a, n, dim)
        _check_tenant_rows(a["tenant_start"], a["tenant_rows"], a["row_leaf"], len(names), n)
        index = cls(metric, vectors, cfg, *(np.array(a[key]) for key in ("centroids", "parent", "first_child",
                                                                           "n_children", "row_leaf")))
        start, rows = a["tenant_start"], a["tenant_rows"].astype(np.int64)
        for t, name in enumerate(names):
            index._tenant_id(name)
            index._set_rows(t, rows[start[t]:start[t + 1]])
        index._load_graphs(arrays, vectors)
        return index

    # --- internals ---------------------------------------------------------------------------

    def _tenant_id(self, name: str) -> int:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a tenant is a non-empty str, got {name!r}")
        t = self.ids.get(name)
        if t is None:
            t = self.ids[name] = len(self.names)
            self.names.append(name)
            self.trees.append(_EMPTY_TREE)
        return t

    def _set_rows(self, t: int, rows: np.ndarray) -> None:
        """Replace tenant ``t``'s rows by ``rows`` (int64, any order, duplicates dropped)."""
        rows = np.unique(rows)
        self.trees[t] = _sub_tree(rows, self.row_leaf, self.parent)
        tgraph = self.graphs.get(t)
        if tgraph is not None:
            tgraph.sync(rows)
            if tgraph.needs_rebuild():
                del self.graphs[t]
                if rows.shape[0] > self.cfg["graph_min_rows"]:
                    self.graphs[t] = self._new_graph(t, rows)

    # --- tenant graphs -----------------------------------------------------------------------

    def _new_graph(self, t: int, rows: np.ndarray) -> TenantGraph:
        cfg = self.cfg
        return TenantGraph.build(self._vectors, rows, self.metric, cfg["graph_m"], cfg["graph_ef_construction"],
                                 cfg["seed"] + t)

    def _build_graphs(self) -> None:
        """A graph for each tenant above ``graph_min_rows`` rows, largest first, while the nodes of
        all graphs stay within ``graph_budget_pct`` per 100 segment rows."""
        budget = self.cfg["graph_budget_pct"] * self.n // 100
        sizes = [(tree.rows.shape[0], t) for t, tree in enumerate(self.trees)
                 if tree.rows.shape[0] > self.cfg["graph_min_rows"]]
        for size, t in sorted(sizes, reverse=True):
            if size <= budget:
                self.graphs[t] = self._new_graph(t, self.rows_of(self.names[t]))
                budget -= size

    def _graph_arrays(self) -> dict[str, np.ndarray]:
        """Every graph's arrays concatenated, CSR by graph (``graph_tenants`` in that order)."""
        order = sorted(self.graphs)
        graphs = [self.graphs[t] for t in order]
        m = self.cfg["graph_m"]
        out: dict[str, np.ndarray] = {
            "graph_tenants": np.array(order, dtype=np.int64),
            "graph_entry": np.array([g.entry for g in graphs], dtype=np.int64),
            "graph_max_level": np.array([g.max_level for g in graphs], dtype=np.int64),
            "graph_nodes": np.concatenate([g.nodes for g in graphs]) if graphs else _EMPTY_I32,
            "graph_size": np.array([g.size for g in graphs], dtype=np.int64),
            "graph_up_rows": np.array([g.arrays["links_up"].shape[0] for g in graphs], dtype=np.int64),
        }
        empty = {"links0": np.zeros((0, 2 * m), np.int32), "counts0": _EMPTY_I32, "levels": np.zeros(0, np.int8),
                 "up_off": _EMPTY_I32, "links_up": np.zeros((0, m), np.int32), "counts_up": _EMPTY_I32}
        for name in GRAPH_ARRAYS:
            out[f"graph_{name}"] = np.concatenate([g.arrays[name] for g in graphs]) if graphs else empty[name]
        return out

    def _load_graphs(self, arrays: Mapping[str, np.ndarray], vectors: np.ndarray) -> None:
        """The graphs of ``to_arrays``, checked, then synced with the tenants' rows."""
        try:
            a = {key: np.asarray(arrays[key]) for key in ("graph_tenants", "graph_entry", "graph_max_level",
                                                           "graph_nodes", "graph_size", "graph_up_rows")}
            parts = {name: np.asarray(arrays[f"graph_{name}"]) for name in GRAPH_ARRAYS}
        except KeyError as exc:
            raise ValueError(f"tenant index graph arrays incomplete: {exc!r}") from None
        tenants = a["graph_tenants"]
        count = tenants.shape[0]
        if any(a[key].shape != (count,) for key in ("graph_entry", "graph_max_level", "graph_size", "graph_up_rows")):
            raise ValueError("tenant index graph tables disagree in length")
        if count and (tenants.min() < 0 or tenants.max() >= len(self.names) or np.unique(tenants).size != count):
            raise ValueError("tenant index graphs name unknown or repeated tenants")
        node_at = up_at = 0
        for g, t in enumerate(tenants.tolist()):
            size, up = int(a["graph_size"][g]), int(a["graph_up_rows"][g])
            nodes = a["graph_nodes"][node_at:node_at + size]
            if size < 1 or up < 0 or nodes.shape[0] != size:
                raise ValueError("tenant index graph sizes exceed their arrays")
            piece = {name: parts[name][node_at:node_at + size] for name in ("links0", "counts0", "levels", "up_off")}
            piece["links_up"] = parts["links_up"][up_at:up_at + up]
            piece["counts_up"] = parts["counts_up"][up_at:up_at + up]
            tgraph = TenantGraph.from_arrays(self.metric, np.ascontiguousarray(nodes), piece,
                                             int(a["graph_entry"][g]), int(a["graph_max_level"][g]), vectors)
            tgraph.sync(self.rows_of(self.names[t]))
            self.graphs[t] = tgraph
            node_at += size
            up_at += up
        if node_at != a["graph_nodes"].shape[0] or up_at != parts["links_up"].shape[0]:
            raise ValueError("tenant index graph arrays hold more than their graphs")

    def _checked_offsets(self, offsets: np.ndarray) -> np.ndarray:
        rows = np.unique(np.asarray(offsets, dtype=np.int64).reshape(-1))
        if rows.size and (rows[0] < 0 or rows[-1] >= self.n):
            raise ValueError(f"offsets out of range [0, {self.n})")
        return rows

    def _live_offsets(self, offsets: np.ndarray) -> np.ndarray:
        rows = self._checked_offsets(offsets)
        if rows.size and (self.row_leaf[rows] < 0).any():
            raise ValueError("cannot grant deleted rows")
        return rows

    def _grow_vectors(self, rows: int) -> None:
        if self._vectors.shape[0] >= rows:
            return
        grown = np.empty((max(rows, 2 * self._vectors.shape[0]), self.dim), dtype=np.float32)
        grown[: self.n] = self._vectors[: self.n]
        self._vectors = grown

    def _split_leaf(self, leaf: int) -> None:
        """Turn an overfull leaf into an internal node whose children are a k-means split of its rows."""
        members = np.flatnonzero(self.row_leaf == leaf)
        x = self._vectors[members]
        space = unit_rows(x) if self.metric == "cosine" else x
        labels, cents = _split(space, _fanout(members.shape[0], self.cfg), self.cfg["seed"] + leaf)
        if cents.shape[0] < 2:
            return  # identical rows: nothing to split
        first = self.centroids.shape[0]
        nc = cents.shape[0]
        self.centroids = np.concatenate([self.centroids, cents])
        self.parent = np.concatenate([self.parent, np.full(nc, leaf, dtype=np.int32)])
        self.first_child = np.concatenate([self.first_child, np.zeros(nc, dtype=np.int32)])
        self.n_children = np.concatenate([self.n_children, np.zeros(nc, dtype=np.int32)])
        self.first_child[leaf], self.n_children[leaf] = first, nc
        self.row_leaf[members] = first + labels
        for t, tree in enumerate(self.trees):
            pos = np.searchsorted(tree.nodes, leaf)
            if pos < tree.nodes.shape[0] and tree.nodes[pos] == leaf:
                self._set_rows(t, tree.rows.astype(np.int64))


def _sub_tree(rows: np.ndarray, row_leaf: np.ndarray, parent: np.ndarray) -> _SubTree:
    """The sub-tree arrays of a tenant holding ``rows`` (sorted unique int64)."""
    if rows.size == 0:
        return _EMPTY_TREE
    leaves = row_leaf[rows]
    order = np.lexsort((rows, leaves))
    grouped, leaves = rows[order].astype(np.uint32), leaves[order]
    nodes = np.unique(leaves)
    n_leaves = int(nodes.shape[0])
    level = nodes
    parts = [nodes]
    while level.size:  # walk up: every ancestor of a leaf the tenant uses is in its sub-tree
        level = np.unique(parent[level])
        level = level[level >= 0]
        parts.append(level)
    nodes = np.unique(np.concatenate(parts)).astype(np.int32)
    start = np.empty(nodes.shape[0] + 1, dtype=np.int32)
    # internal nodes never appear in ``leaves``, so their range is empty
    start[:-1] = np.searchsorted(leaves, nodes, side="left")
    start[-1] = grouped.shape[0]
    return _SubTree(nodes, start, grouped, n_leaves)


def _fanout(rows: int, cfg: dict[str, int]) -> int:
    """Children for a node of ``rows`` rows: enough for leaf-sized children, at most ``branching``
    (a node just over the leaf size splits in two, not into ``branching`` tiny leaves whose
    centroids would cost more memory than the rows they route to)."""
    return max(2, min(cfg["branching"], -(-rows // cfg["leaf_size"])))


def _split(space: np.ndarray, branching: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means split of ``space`` (m, d) -> (labels (m,) int32 over non-empty clusters, centroids)."""
    k = min(branching, space.shape[0])
    if k < 2 or (space == space[0]).all():
        return np.zeros(space.shape[0], dtype=np.int32), space[:1].copy()
    cents = train_kmeans(space, k, seed)
    labels = assign(space, cents)
    used, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int32), np.ascontiguousarray(cents[used])


def _build_tree(space: np.ndarray, cfg: dict[str, int]) -> tuple[np.ndarray, ...]:
    """Breadth-first k-means tree over ``space`` (n, d) -> (centroids, parent, first_child, n_children,
    row_leaf); breadth-first so that the children of a node get contiguous ids above their parent's."""
    n = space.shape[0]
    cents: list[np.ndarray] = [space.mean(axis=0, keepdims=True) if n else np.zeros((1, space.shape[1]), np.float32)]
    parent, first_child, n_children = [-1], [0], [0]
    row_leaf = np.zeros(n, dtype=np.int32)
    queue: list[tuple[int, np.ndarray]] = [(0, np.arange(n))]
    head = 0
    while head < len(queue):
        node, members = queue[head]
        head += 1
        if members.shape[0] <= cfg["leaf_size"]:
            row_leaf[members] = node
            continue
        labels, sub = _split(space[members], _fanout(members.shape[0], cfg), cfg["seed"] + node)
        if sub.shape[0] < 2:
            row_leaf[members] = node
            continue
        first = len(parent)
        first_child[node], n_children[node] = first, sub.shape[0]
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(sub.shape[0] + 1))
        for c in range(sub.shape[0]):
            cents.append(sub[c:c + 1])
            parent.append(node)
            first_child.append(0)
            n_children.append(0)
            queue.append((first + c, members[order[bounds[c]:bounds[c + 1]]]))
    return (np.ascontiguousarray(np.concatenate(cents), dtype=np.float32), np.array(parent, dtype=np.int32),
            np.array(first_child, dtype=np.int32), np.array(n_children, dtype=np.int32), row_leaf)


def _check_tree(a: Mapping[str, np.ndarray], n: int, dim: int) -> None:
    """The shared tree is a well-formed tree with contiguous children and leaves for every live row."""
    cents, parent, fc, nc, row_leaf = a["centroids"], a["parent"], a["first_child"], a["n_children"], a["row_leaf"]
    nodes = cents.shape[0] if cents.ndim == 2 else -1
    if nodes < 1 or cents.shape != (nodes, dim) or cents.dtype != np.float32 or not np.isfinite(cents).all():
        raise ValueError("tenant index centroids have the wrong shape, dtype or non-finite values")
    for name, arr, length in (("parent", parent, nodes), ("first_child", fc, nodes), ("n_children", nc, nodes),
                              ("row_leaf", row_leaf, n)):
        if arr.shape != (length,) or arr.dtype != np.int32:
            raise ValueError(f"tenant index {name} must be ({length},) int32, got {arr.shape} {arr.dtype}")
    if parent[0] != -1 or (nodes > 1 and ((parent[1:] < 0) | (parent[1:] >= np.arange(1, nodes))).any()):
        raise ValueError("tenant index parents are not a tree rooted at node 0 (children after parents)")
    if (nc < 0).any():
        raise ValueError("tenant index has negative child counts")
    inner = np.flatnonzero(nc > 0)
    expected_parent = np.full(nodes, -1, dtype=np.int64)
    for p in inner.tolist():
        lo, hi = int(fc[p]), int(fc[p]) + int(nc[p])
        if lo <= p or hi > nodes:
            raise ValueError(f"tenant index node {p} has children out of range")
        expected_parent[lo:hi] = p
    if int(nc.sum()) != nodes - 1 or not (expected_parent == parent).all():
        raise ValueError("tenant index child ranges and parents disagree")
    if row_leaf.size and (((row_leaf < -1) | (row_leaf >= nodes)).any()
                          or (nc[row_leaf[row_leaf >= 0]] != 0).any()):
        raise ValueError("tenant index row_leaf points outside the leaves")


def _check_tenant_rows(start: np.ndarray, rows: np.ndarray, row_leaf: np.ndarray, tenants: int, n: int) -> None:
    """Per-tenant rows: a CSR table of live row offsets, no row twice within a tenant."""
    if start.shape != (tenants + 1,) or start.dtype != np.int64 or rows.ndim != 1 or rows.dtype != np.uint32:
        raise ValueError("tenant_start must be (tenants+1,) int64 and tenant_rows 1-D uint32")
    if int(start[0]) != 0 or int(start[-1]) != rows.shape[0] or (np.diff(start) < 0).any():
        raise ValueError("tenant_start is not a non-decreasing 0..len(tenant_rows) table")
    if rows.size and (int(rows.max()) >= n or (row_leaf[rows.astype(np.int64)] < 0).any()):
        raise ValueError("tenant_rows hold offsets outside the segment or of deleted rows")
    for t in range(tenants):
        part = rows[start[t]:start[t + 1]]
        if np.unique(part).shape[0] != part.shape[0]:
            raise ValueError(f"tenant {t} lists a row twice")
