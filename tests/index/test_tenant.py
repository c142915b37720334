"""The multi-tenant clustering-tree index: exactness, isolation, updates, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vecdb.index.tenant import EXACT_EF_FACTOR, TenantIndex
from vecdb.kernels import reference

# A deep tree on little data: small leaves, small branching (every code path of the descent runs).
SMALL = {"branching": 4, "leaf_size": 8, "split_factor": 2, "exact_threshold": 0}
TENANTS = ("acme", "globex", "initech", "umbrella")


def _data(n: int, d: int, seed: int) -> tuple[np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    owners = rng.integers(0, len(TENANTS), n)
    row_tenants = [[TENANTS[o]] for o in owners]
    for i in rng.choice(n, n // 10, replace=False):  # a tenth of the rows are shared
        row_tenants[i] = sorted({row_tenants[i][0], TENANTS[(owners[i] + 1) % len(TENANTS)]})
    return x, row_tenants


def _exact(x: np.ndarray, rows: np.ndarray, q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over ``rows`` of ``x``: (offsets (q, k) padded -1, distances (q, k))."""
    out_i = np.full((q.shape[0], k), -1, np.int64)
    out_d = np.full((q.shape[0], k), np.inf, np.float32)
    for t in range(q.shape[0]):
        d = reference.distances(q[t], x[rows], metric) if rows.size else np.zeros(0, np.float32)
        order = np.lexsort((rows, d))[:k]
        out_i[t, : order.size], out_d[t, : order.size] = rows[order], d[order]
    return out_i, out_d


def _owners(row_tenants: list[list[str]], tenant: str) -> np.ndarray:
    return np.array([i for i, ts in enumerate(row_tenants) if tenant in ts], dtype=np.int64)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_full_budget_descent_is_exact(metric: str) -> None:
    x, rt = _data(600, 7, seed=1)
    index = TenantIndex.build(x, metric, rt, SMALL)
    q = np.random.default_rng(2).standard_normal((6, 7)).astype(np.float32)
    for tenant in TENANTS:
        rows = _owners(rt, tenant)
        want_i, want_d = _exact(x, rows, q, 10, metric)
        got_i, got_d = index.search(q, 10, tenant, {"nprobe": 10_000, "ef": 10_000})
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-4)
        ex_i, _ = index.search(q, 10, tenant, {"exact": True})
        np.testing.assert_array_equal(ex_i, want_i)


def test_small_budget_keeps_recall_and_isolation() -> None:
    x, rt = _data(3000, 16, seed=3)
    index = TenantIndex.build(x, "l2", rt, {"branching": 8, "leaf_size": 32, "exact_threshold": 0})
    q = np.random.default_rng(4).standard_normal((20, 16)).astype(np.float32)
    rows = _owners(rt, "acme")
    want, _ = _exact(x, rows, q, 10, "l2")
    got, _, stats = index.search_with_stats(q, 10, "acme", {"nprobe": 8, "ef": 200})
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert recall >= 0.8
    assert np.isin(got, rows).all()
    assert stats["plan"] == "tenant-tree"
    # the budget bounds the work: far fewer rows scored than the tenant holds
    assert max(stats["candidates_scored"]) < rows.size // 2


def test_small_tenants_are_scanned_exactly() -> None:
    x, rt = _data(400, 5, seed=5)
    rt[0] = ["tiny"]
    rt[1] = ["tiny", "acme"]
    index = TenantIndex.build(x, "l2", rt, {"leaf_size": 8, "exact_threshold": 16})
    got, dist, stats = index.search_with_stats(x[:1], 5, "tiny", {})
    assert stats["plan"] == "tenant-exact"
    assert got[0].tolist() == [0, 1, -1, -1, -1]
    assert np.isinf(dist[0, 2:]).all()


def test_tenants_within_a_few_times_the_budget_are_scanned_exactly() -> None:
    # Scanning a tenant's rows beats a descent that scores ef of them once the tenant holds at most
    # EXACT_EF_FACTOR * ef rows; the configured threshold still applies below that.
    x, rt = _data(3000, 16, seed=3)
    index = TenantIndex.build(x, "l2", rt, {"branching": 8, "leaf_size": 32, "exact_threshold": 0})
    rows = _owners(rt, "acme").size
    q = x[:3]
    at_limit = -(-rows // EXACT_EF_FACTOR)  # the smallest ef that covers the tenant
    assert index.search_with_stats(q, 10, "acme", {"ef": at_limit})[2]["plan"] == "tenant-exact"
    assert index.search_with_stats(q, 10, "acme", {"ef": at_limit - 1})[2]["plan"] == "tenant-tree"


def test_unknown_tenant_gets_nothing() -> None:
    x, rt = _data(200, 4, seed=6)
    index = TenantIndex.build(x, "l2", rt, SMALL)
    got, dist = index.search(x[:3], 4, "nobody", {})
    assert (got == -1).all() and np.isinf(dist).all()


def test_csr_and_lists_build_the_same_index() -> None:
    x, rt = _data(500, 6, seed=7)
    names = list(TENANTS)
    indptr = np.zeros(len(rt) + 1, np.int64)
    indptr[1:] = np.cumsum([len(ts) for ts in rt])
    ids = np.array([names.index(t) for ts in rt for t in ts], np.int64)
    a = TenantIndex.build(x, "l2", rt, SMALL)
    b = TenantIndex.build(x, "l2", (indptr, ids, names), SMALL)
    for tenant in TENANTS:
        np.testing.assert_array_equal(a.rows_of(tenant), b.rows_of(tenant))
        np.testing.assert_array_equal(a.search(x[:4], 5, tenant, {})[0], b.search(x[:4], 5, tenant, {})[0])
    with pytest.raises(ValueError, match="indptr"):
        TenantIndex.build(x, "l2", (indptr[:-1], ids, names), SMALL)
    with pytest.raises(ValueError, match="out of range"):
        TenantIndex.build(x, "l2", (indptr, ids + 10, names), SMALL)
    with pytest.raises(ValueError, match="unknown"):
        TenantIndex.build(x, "l2", rt, {"fanout": 3})


def test_allowed_mask_is_respected() -> None:
    x, rt = _data(800, 6, seed=8)
    index = TenantIndex.build(x, "l2", rt, SMALL)
    allowed = np.zeros(800, bool)
    allowed[::3] = True
    rows = _owners(rt, "globex")
    want, _ = _exact(x, rows[allowed[rows]], x[:5], 8, "l2")
    got, _ = index.search(x[:5], 8, "globex", {"nprobe": 10_000, "ef": 10_000}, allowed=allowed)
    np.testing.assert_array_equal(got, want)


def test_count_of_a_tenant() -> None:
    x, rt = _data(300, 4, seed=12)
    index = TenantIndex.build(x, "l2", rt, SMALL)
    allowed = np.zeros(300, bool)
    allowed[::2] = True
    for tenant in TENANTS:
        rows = _owners(rt, tenant)
        assert index.count(tenant) == rows.size
        assert index.count(tenant, allowed) == int(allowed[rows].sum())
    assert index.count("nobody") == 0 and index.count("nobody", allowed) == 0


def test_grant_revoke_delete_insert() -> None:
    x, rt = _data(400, 6, seed=9)
    index = TenantIndex.build(x, "l2", rt, SMALL)
    acme = set(_owners(rt, "acme").tolist())
    other = sorted(set(range(400)) - acme)[:30]
    index.grant(np.array(other), "acme")
    assert set(index.rows_of("acme").tolist()) == acme | set(other)
    index.revoke(np.array(other[:10]), "acme")
    assert set(index.rows_of("acme").tolist()) == acme | set(other[10:])
    index.delete(np.array(other[10:20]))
    for tenant in TENANTS:
        assert not set(index.rows_of(tenant).tolist()) & set(other[10:20])
    with pytest.raises(ValueError, match="deleted"):
        index.grant(np.array(other[10:11]), "acme")
    with pytest.raises(ValueError, match="out of range"):
        index.revoke(np.array([400]), "acme")
    # enough rows into one place to overflow a leaf and split it
    rng = np.random.default_rng(10)
    new = (x[0] + 0.01 * rng.standard_normal((60, 6))).astype(np.float32)
    nodes_before = index.centroids.shape[0]
    offsets = index.insert(new, [["newco"]] * 30 + [["newco", "acme"]] * 30)
    assert offsets.tolist() == list(range(400, 460))
    assert index.centroids.shape[0] > nodes_before
    got, _ = index.search(new[:3], 10, "newco", {"nprobe": 10_000, "ef": 10_000})
    want, _ = _exact(np.concatenate([x, new]), offsets, new[:3], 10, "l2")
    np.testing.assert_array_equal(got, want)
    acme_now = index.rows_of("acme")
    assert set(offsets[30:].tolist()) <= set(acme_now.tolist())
    got, _ = index.search(new[:3], 50, "acme", {"nprobe": 10_000, "ef": 10_000})
    assert np.isin(got[got >= 0], acme_now).all()


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_single_call_exact_scan_matches_the_numba_scan(metric: str) -> None:
    """One query's exact scan runs as one C call over the tenant's rows (sorted, cached): the same
    ids and distances as the numba heap scan, ties (duplicate rows) broken by row in both, and its
    cached row list counted in the tenant's memory."""
    from vecdb.kernels import dispatch

    x, rt = _data(600, 9, seed=21)
    x[300:310] = x[5]  # duplicates: equal distances
    for i in range(300, 310):
        rt[i] = ["acme"]
    index = TenantIndex.build(x, metric, rt, {"leaf_size": 16, "exact_threshold": 1000})
    q = np.vstack([x[5:6], np.random.default_rng(3).standard_normal((6, 9)).astype(np.float32)])
    before = index.memory_by_tenant()["acme"]
    for t in range(q.shape[0]):
        got, dist, stats = index.search_with_stats(q[t : t + 1], 7, "acme", {})
        assert stats["plan"] == "tenant-exact"
        dispatch.reload("numba")
        try:
            want, want_d, _ = index.search_with_stats(q[t : t + 1], 7, "acme", {})
        finally:
            dispatch.reload()
        assert got.tolist() == want.tolist()
        np.testing.assert_allclose(dist, want_d, rtol=1e-5, atol=1e-5)
    rows = index.rows_of("acme")
    assert index.memory_by_tenant()["acme"] == before + 8 * rows.size  # the cached int64 rows
    assert index.nbytes == index.shared_nbytes + sum(index.memory_by_tenant().values())


def test_memory_accounting() -> None:
    x, rt = _data(500, 8, seed=11)
    index = TenantIndex.build(x, "l2", rt, SMALL)
    per = index.memory_by_tenant()
    assert set(per) == set(TENANTS)
    assert index.nbytes == index.shared_nbytes + sum(per.values())
    held = sum(len(ts) for ts in rt)
    assert sum(per.values()) >= 4 * held  # every membership costs at least its uint32 row offset
    before = per["acme"]
    index.revoke(index.rows_of("acme")[:50], "acme")
    assert index.memory_by_tenant()["acme"] < before


def test_round_trip_and_validation() -> None:
    x, rt = _data(500, 8, seed=12)
    index = TenantIndex.build(x, "cosine", rt, SMALL)
    index.revoke(index.rows_of("acme")[:5], "acme")
    index.delete(np.array([1, 2, 3]))
    meta, arrays = index.to_arrays()
    back = TenantIndex.from_arrays(meta, arrays, x)
    q = x[10:14]
    for tenant in TENANTS:
        np.testing.assert_array_equal(back.rows_of(tenant), index.rows_of(tenant))
        np.testing.assert_array_equal(back.search(q, 7, tenant, {})[0], index.search(q, 7, tenant, {})[0])
    assert back.nbytes == index.nbytes

    def broken(**changes: object) -> tuple[dict, dict]:
        m, a = dict(meta), dict(arrays)
        for key, value in changes.items():
            (m if key in m else a)[key] = value
        return m, a

    bad_rows = arrays["tenant_rows"].copy()
    bad_rows[0] = 10_000
    dup = arrays["tenant_rows"].copy()
    dup[1] = dup[0]
    bad_parent = arrays["parent"].copy()
    bad_parent[-1] = bad_parent.shape[0]
    leaf_inner = arrays["row_leaf"].copy()
    leaf_inner[0] = 0  # the root is no leaf
    for m, a in (broken(format=99), broken(tenant_rows=bad_rows), broken(tenant_rows=dup),
                 broken(parent=bad_parent), broken(row_leaf=leaf_inner),
                 broken(centroids=arrays["centroids"][:, :3]), broken(tenant_start=arrays["tenant_start"][:-1]),
                 broken(tenants=meta["tenants"][:-1]), broken(config={"bogus": 1})):
        with pytest.raises(ValueError):
            TenantIndex.from_arrays(m, a, x)
    with pytest.raises(ValueError):
        TenantIndex.from_arrays(meta, arrays, x[:-1])
    with pytest.raises(ValueError):
        TenantIndex.from_arrays(meta, {k: v for k, v in arrays.items() if k != "row_leaf"}, x)
    index.insert(x[:2], [["acme"], ["acme"]])
    with pytest.raises(ValueError, match="inserted"):
        index.to_arrays()


# Tenants of ~550 rows (2,000 rows, 4 tenants, a tenth shared) above graph_min_rows; a budget of one
# node per row fits three of their graphs, not four.
GRAPHS = {"branching": 4, "leaf_size": 16, "exact_threshold": 0, "graph_min_rows": 100, "graph_budget_pct": 100,
          "graph_m": 8, "graph_ef_construction": 64}
WIDE = {"graph_ef": 4_000}  # a beam wider than any graph: every reachable node is scored


def _graph_index(metric: str, seed: int = 4) -> tuple[TenantIndex, np.ndarray, list[list[str]]]:
    x, rt = _data(2_000, 12, seed=seed)
    return TenantIndex.build(x, metric, rt, GRAPHS), x, rt


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_big_tenants_get_graphs_within_the_budget_largest_first(metric: str) -> None:
    index, x, rt = _graph_index(metric)
    sizes = {t: _owners(rt, t).size for t in TENANTS}
    with_graph = [t for t in TENANTS if index.has_graph(t)]
    assert len(with_graph) == 3 and sum(sizes[t] for t in with_graph) <= 2_000
    (without,) = set(TENANTS) - set(with_graph)
    assert sizes[without] == min(sizes.values())  # the largest first, until the budget ran out
    q = np.random.default_rng(5).standard_normal((8, 12)).astype(np.float32)
    for tenant in with_graph:
        rows = _owners(rt, tenant)
        want_i, want_d = _exact(x, rows, q, 10, metric)
        got_i, got_d, stats = index.search_with_stats(q, 10, tenant, WIDE)
        assert stats["plan"] == "tenant-graph"
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-4)
        small_i, _ = index.search(q, 10, tenant, {"graph_ef": 10})  # a narrow beam: still only its rows
        assert np.isin(small_i, rows).all()
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(small_i, want_i, strict=True)]) >= 0.8
        exact_i, _, stats = index.search_with_stats(q, 10, tenant, {"exact": True})
        assert stats["plan"] == "tenant-exact"
        np.testing.assert_array_equal(exact_i, want_i)
    assert index.search_with_stats(q, 10, without, {"ef": 50})[2]["plan"] == "tenant-tree"  # 4 x 50 < its rows


def test_one_query_single_call_path_answers_as_the_general_path() -> None:
    """A graph tenant's walk and a small tenant's scan, each one C call, against the general path."""
    index, _, _ = _graph_index("cosine")
    tenant = next(t for t in TENANTS if index.has_graph(t))
    small = next(t for t in TENANTS if not index.has_graph(t))
    q = np.random.default_rng(8).standard_normal((5, 12)).astype(np.float32)
    for name, plan in ((tenant, "tenant-graph"), (small, "tenant-exact")):
        for i in range(5):
            fast = index.search_with_stats(q[i : i + 1], 10, name, {"graph_ef": 40})
            general = index.search_with_stats(q[i : i + 1], 10, name, {"graph_ef": 40, "nprobe": 8})  # not taken
            assert fast[2]["plan"] == general[2]["plan"] == plan
            np.testing.assert_array_equal(fast[0], general[0])
            np.testing.assert_array_equal(fast[1], general[1])
            np.testing.assert_array_equal(index.search(q[i : i + 1], np.int64(10), name)[0], fast[0])
    bad = q[:1].copy()
    bad[0, 3] = np.nan
    for query, k, params in ((q[0], 10, {}), (bad, 10, {}), (q[:1], 0, {}), (q[:1], 10, {"graph_ef": 0})):
        for name in (tenant, small):
            with pytest.raises(ValueError):
                index.search(query, k, name, params)


def test_a_graph_tenant_scans_a_selective_filter_and_walks_a_wide_one() -> None:
    index, x, rt = _graph_index("l2")
    tenant = next(t for t in TENANTS if index.has_graph(t))
    rows = _owners(rt, tenant)
    q = x[rows[:4]] + 0.01
    rng = np.random.default_rng(6)
    for share, plan in ((0.05, "tenant-exact"), (0.6, "tenant-graph")):
        allowed = rng.random(x.shape[0]) < share
        got, _, stats = index.search_with_stats(q, 10, tenant, WIDE, allowed=allowed)
        assert stats["plan"] == plan
        keep = rows[allowed[rows]]
        np.testing.assert_array_equal(got, _exact(x, keep, q, 10, "l2")[0])


def test_a_graph_follows_revokes_deletes_grants_and_inserts_then_is_rebuilt() -> None:
    index, x, rt = _graph_index("l2")
    tenant = next(t for t in TENANTS if index.has_graph(t))
    t = index.ids[tenant]
    tgraph = index.graphs[t]
    rows = _owners(rt, tenant)
    others = np.setdiff1d(np.arange(x.shape[0]), rows)

    def check(held: np.ndarray, xs: np.ndarray) -> None:
        q = np.concatenate([xs[held[:3]], xs[others[:3]]]) + 0.001
        got, _, stats = index.search_with_stats(q, 10, tenant, WIDE)
        assert stats["plan"] == "tenant-graph"
        np.testing.assert_array_equal(got, _exact(xs, held, q, 10, "l2")[0])

    index.revoke(rows[:30], tenant)
    index.delete(rows[30:40])
    index.grant(others[:20], tenant)
    new = index.insert(x[others[20:25]] + 0.5, [[tenant]] * 5)
    assert index.graphs[t] is tgraph  # small drift: masked and scanned, not rebuilt
    assert tgraph.alive is not None and tgraph.extra.size == 25
    held = np.sort(np.concatenate([rows[40:], others[:20], new]))
    xs = np.concatenate([x, x[others[20:25]] + 0.5])
    check(held, xs)
    index.revoke(rows[40:200], tenant)  # past a quarter of the graph: rebuilt over what it holds now
    assert index.graphs[t] is not tgraph and index.graphs[t].extra.size == 0 and index.graphs[t].alive is None
    check(np.sort(np.concatenate([rows[200:], others[:20], new])), xs)
    index.revoke(index.rows_of(tenant), tenant)  # too small for a graph now
    assert not index.has_graph(tenant)


def test_graphs_round_trip_and_a_corrupt_graph_is_refused() -> None:
    index, x, _ = _graph_index("cosine")
    tenant = next(t for t in TENANTS if index.has_graph(t))
    index.revoke(index.rows_of(tenant)[:7], tenant)
    meta, arrays = index.to_arrays()
    back = TenantIndex.from_arrays(meta, arrays, x)
    assert sorted(back.graphs) == sorted(index.graphs) and back.nbytes == index.nbytes
    q = x[:5] + 0.01
    for name in TENANTS:
        np.testing.assert_array_equal(back.search(q, 10, name, {})[0], index.search(q, 10, name, {})[0])
    assert back.graphs[index.ids[tenant]].alive is not None  # the revoked nodes stay masked
    links = arrays["graph_links0"].copy()
    links[0, 0] = 10**6
    tenants_out = arrays["graph_tenants"] + 100
    for key, value in (("graph_links0", links), ("graph_tenants", tenants_out),
                       ("graph_size", arrays["graph_size"] + 1), ("graph_nodes", arrays["graph_nodes"][::-1].copy())):
        with pytest.raises(ValueError):
            TenantIndex.from_arrays(meta, {**arrays, key: value}, x)
    with pytest.raises(ValueError, match="incomplete"):
        TenantIndex.from_arrays(meta, {k: v for k, v in arrays.items() if k != "graph_entry"}, x)


def test_graph_memory_is_counted_per_tenant() -> None:
    index, _, _ = _graph_index("l2")
    per = index.memory_by_tenant()
    assert index.nbytes == index.shared_nbytes + sum(per.values())
    for tenant in TENANTS:
        tree = index.trees[index.ids[tenant]].nbytes
        if index.has_graph(tenant):
            tgraph = index.graphs[index.ids[tenant]]
            assert per[tenant] == tree + tgraph.nbytes
            assert tgraph.nbytes >= tgraph.size * 4 * (2 * GRAPHS["graph_m"] + 2)  # links, count, row map
        else:
            assert per[tenant] == tree


class TenantIsolation(RuleBasedStateMachine):
    """Random builds, inserts, shares, revocations and deletes against a model of who holds what:
    every search returns only rows of its tenant, and with a full budget exactly the model's top-k."""

    @initialize(seed=st.integers(0, 2**16), n=st.integers(1, 120), metric=st.sampled_from(["l2", "cosine"]))
    def build(self, seed: int, n: int, metric: str) -> None:
        self.rng = np.random.default_rng(seed)
        self.x = self.rng.standard_normal((n, 4)).astype(np.float32)
        self.metric = metric
        rt = [list({TENANTS[j] for j in self.rng.integers(0, 4, self.rng.integers(0, 3))}) for _ in range(n)]
        self.model = {t: {i for i, ts in enumerate(rt) if t in ts} for t in TENANTS}
        self.deleted: set[int] = set()
        # graph_min_rows 8: tenants past 8 rows get graphs, which follow every update below
        self.index = TenantIndex.build(self.x, metric, rt, {"branching": 3, "leaf_size": 4, "split_factor": 2,
                                                            "exact_threshold": 3, "graph_min_rows": 8,
                                                            "graph_budget_pct": 300, "graph_m": 4})

    @rule(m=st.integers(1, 20), tenant=st.sampled_from(TENANTS), near=st.booleans())
    def insert(self, m: int, tenant: str, near: bool) -> None:
        base = self.x[0] if near else np.zeros(4, np.float32)
        new = (base + self.rng.standard_normal((m, 4)) * (0.01 if near else 1.0)).astype(np.float32)
        offsets = self.index.insert(new, [[tenant]] * m)
        self.x = np.concatenate([self.x, new])
        self.model[tenant] |= set(offsets.tolist())

    @rule(tenant=st.sampled_from(TENANTS), data=st.data())
    def grant(self, tenant: str, data: st.DataObject) -> None:
        live = sorted(set(range(self.x.shape[0])) - self.deleted)
        if live:
            rows = data.draw(st.lists(st.sampled_from(live), max_size=10))
            self.index.grant(np.array(rows, np.int64), tenant)
            self.model[tenant] |= set(rows)

    @rule(tenant=st.sampled_from(TENANTS), data=st.data())
    def revoke(self, tenant: str, data: st.DataObject) -> None:
        rows = data.draw(st.lists(st.integers(0, self.x.shape[0] - 1), max_size=10))
        self.index.revoke(np.array(rows, np.int64), tenant)
        self.model[tenant] -= set(rows)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        rows = data.draw(st.lists(st.integers(0, self.x.shape[0] - 1), max_size=8))
        self.index.delete(np.array(rows, np.int64))
        self.deleted |= set(rows)
        for held in self.model.values():
            held -= set(rows)

    @precondition(lambda self: not self.index.n - self.index._segment_rows)
    @rule()
    def reload(self) -> None:
        meta, arrays = self.index.to_arrays()
        self.index = TenantIndex.from_arrays(meta, arrays, self.x)

    @rule(tenant=st.sampled_from(TENANTS), k=st.integers(1, 12), nprobe=st.integers(1, 3))
    def search(self, tenant: str, k: int, nprobe: int) -> None:
        q = self.rng.standard_normal((2, 4)).astype(np.float32)
        held = np.array(sorted(self.model[tenant]), np.int64)
        got, _ = self.index.search(q, k, tenant, {"nprobe": nprobe, "ef": 1})
        found = got[got >= 0]
        assert np.isin(found, held).all(), f"leak: {set(found.tolist()) - set(held.tolist())} to {tenant}"
        assert all(len(set(r[r >= 0].tolist())) == int((r >= 0).sum()) for r in got)
        full, _ = self.index.search(q, k, tenant, {"nprobe": 10**6, "ef": 10**6, "graph_ef": 10**4})
        want, _ = _exact(self.x, held, q, k, self.metric)
        np.testing.assert_array_equal(full, want)

    @invariant()
    def rows_match_model(self) -> None:
        if hasattr(self, "index"):
            for tenant in TENANTS:
                assert set(self.index.rows_of(tenant).tolist()) == self.model[tenant]


TestTenantIsolation = TenantIsolation.TestCase
TestTenantIsolation.settings = settings(max_examples=40, stateful_step_count=25, deadline=None, derandomize=True,
                                        suppress_health_check=[HealthCheck.too_slow])
