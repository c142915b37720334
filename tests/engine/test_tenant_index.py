"""The engine's use of the per-segment tenant index: sidecar, plan, recall, isolation, rebuild."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions

N, DIM, K = 16000, 16, 10
# "mid" holds 1,300 rows (8% of the segment), "big" 3,000 (19%): both above graph_min_rows, so each
# gets its own graph; s0..s46 about 250 rows each (scanned exactly). Without graphs (the
# ``tree_collection``), "mid" is descended at TREE's budget and "big" keeps the shared index + mask.
OPTIONS = StoreOptions(index_min_rows=256, background=False)
TREE = {"tenant_ef": 300}  # a budget small enough that "mid" is descended (4 x 300 < 1,300 rows), not scanned


def _owners() -> np.ndarray:
    rows = np.arange(N)
    small = np.array([f"s{i % 47}" for i in range(N)])
    return np.where(rows < 3000, "big", np.where(rows < 4300, "mid", small))


def _data() -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    tenants = [[str(t)] for t in _owners()]
    for i in rng.choice(N, N // 20, replace=False):  # 5% of the rows shared with a small tenant
        tenants[i] = sorted({tenants[i][0], f"s{i % 47}"})
    return x, (np.arange(N) % 10).astype(np.int32), tenants


def _load(col, x: np.ndarray, a: np.ndarray, tenants: list[list[str]]) -> None:
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, ts in enumerate(tenants):
        groups.setdefault(tuple(ts), []).append(i)
    for ts, ids in groups.items():
        col.upsert(np.array(ids), x[ids], {"a": a[ids]}, tenants=list(ts))
    col.optimize()


@pytest.fixture(scope="module")
def data():
    return _data()


def _open(directory, data):
    x, a, tenants = data
    db = Database.open(directory, options=OPTIONS)
    col = db.create_collection("c", dim=DIM, metric="l2", multi_tenant=True,
                               index=vecdb.HNSW(m=8, ef_construction=32), schema={"a": "int32"})
    _load(col, x, a, tenants)
    return db, col


@pytest.fixture()
def collection(tmp_path, data):
    db, col = _open(tmp_path / "data", data)
    yield db, col
    db.close()


@pytest.fixture()
def tree_collection(tmp_path, data, monkeypatch):
    """The same collection with tenant graphs switched off: tenants are served by the tree."""
    from vecdb.engine import indexing

    monkeypatch.setitem(indexing.TENANT_INDEX_CONFIG, "graph_budget_pct", 0)
    db, col = _open(tmp_path / "tree", data)
    yield db, col
    db.close()


def _sidecar(tmp_path) -> list:
    return sorted((tmp_path / "data" / "collections" / "c" / "segments").glob("*.tenants.idx"))


def _exact(x: np.ndarray, candidates: np.ndarray, q: np.ndarray) -> list[set[int]]:
    out = []
    for row in q:
        d = ((x[candidates] - row) ** 2).sum(axis=1)
        out.append(set(candidates[np.argsort(d, kind="stable")[:K]].tolist()))
    return out


def test_sealed_segment_gets_a_tenant_index_and_the_plan_uses_it(tmp_path, collection, data):
    _db, col = collection
    x, _, tenants = data
    assert len(_sidecar(tmp_path)) == 1
    index = col.state().segments[0].segment.tenant_index
    assert index is not None and index.has_graph("mid") and index.has_graph("big") and not index.has_graph("s3")
    q = x[:4]
    res = col.search(q, k=K, tenant="mid", params={"stats": True})
    assert res.stats["plans"] == ["tenant-graph"]
    assert res.stats["index"][0]["plan"] == "tenant-graph"
    assert res.stats["matching_rows"] == sum("mid" in ts for ts in tenants)
    assert col.search(q, k=K, tenant="s3").stats["plans"] == ["tenant-exact"]
    assert col.search(q, k=K, tenant="mid", params={"exact": True}).stats["plans"] == ["tenant-exact"]
    # 19% of the segment, above the shared-index cut, but its own graph serves it
    assert col.search(q, k=K, tenant="big").stats["plans"] == ["tenant-graph"]
    assert (col.search(q, k=K, tenant="nobody").ids == -1).all()


def test_without_graphs_the_tree_and_the_shared_index_serve_big_tenants(tree_collection, data):
    _db, col = tree_collection
    x, _, _ = data
    q = x[:4]
    assert not col.state().segments[0].segment.tenant_index.graphs
    res = col.search(q, k=K, tenant="mid", params={"stats": True, **TREE})
    assert res.stats["plans"] == ["tenant-index"]
    assert res.stats["index"][0]["plan"] == "tenant-tree"
    assert col.search(q, k=K, tenant="mid").stats["plans"] == ["tenant-exact"]  # 1,300 <= 4 x the default 1,024
    assert not col.search(q, k=K, tenant="big").stats["plans"][0].startswith("tenant")  # > 10% of the rows


@pytest.mark.parametrize("graphs", [True, False])
def test_results_match_the_exact_answer_after_deletes_upserts_and_with_a_filter(request, graphs, data):
    _db, col = request.getfixturevalue("collection" if graphs else "tree_collection")
    x, a, tenants = data
    x = x.copy()
    rng = np.random.default_rng(1)
    # with graphs "big" keeps more than graph_min_rows live rows (its graph answers); without, "mid"
    # is the tenant the tree serves
    subject, other = ("big", "mid") if graphs else ("mid", "big")
    held = np.array([i for i, ts in enumerate(tenants) if subject in ts])
    deleted = rng.choice(held, 300, replace=False)
    assert col.delete(deleted, tenant=subject) == 300
    # A tenant-scoped upsert replaces rows: the sealed copy is deleted, the new one is in the memtable.
    replaced = rng.choice(np.setdiff1d(held, deleted), 50, replace=False)
    x[replaced] = rng.standard_normal((50, DIM)).astype(np.float32)
    col.upsert(replaced, x[replaced], {"a": a[replaced]}, tenant=subject)
    live = np.setdiff1d(held, deleted)
    queries = np.concatenate([x[replaced[:10]], rng.standard_normal((20, DIM)).astype(np.float32)])
    # With graphs, big's graph walks under the live mask (and under "a < 6", 60% of its rows), while
    # "a < 3" leaves few enough rows to scan exactly; without, the default budget scans mid's rows
    # and TREE descends the tree scoring under a quarter of them, which on these 16-d Gaussian rows
    # keeps recall above 0.9.
    cases = ((({}, None, "tenant-graph", 0.95), ({}, "a < 6", "tenant-graph", 0.95),
              ({}, "a < 3", "tenant-exact", 1.0), ({"exact": True}, None, "tenant-exact", 1.0)) if graphs else
             (({}, None, "tenant-exact", 1.0), ({}, "a < 3", "tenant-exact", 1.0),
              (TREE, None, "tenant-index", 0.9), (TREE, "a < 6", "tenant-index", 0.9)))
    for params, filt, plan, min_recall in cases:
        keep = live if filt is None else live[a[live] < int(filt[-1])]
        res = col.search(queries, k=K, tenant=subject, filter=filt, params=params)
        assert res.stats["plans"] == [plan, "memtable-exact"], res.stats
        got = res.ids[res.ids >= 0]
        assert np.isin(got, keep).all(), "a row of another tenant, a deleted row or a filtered-out row"
        truth = _exact(x, keep, queries)
        recall = np.mean([len(set(r.tolist()) & t) / K for r, t in zip(res.ids, truth, strict=True)])
        assert recall >= min_recall, (filt, plan, recall)
    # Another tenant never sees the subject's rows, nor the subject another's, whatever the filter.
    for tenant in ("s5", other):
        res = col.search(queries, k=50, tenant=tenant, filter="a >= 0")
        owned = [i for i, ts in enumerate(tenants) if tenant in ts]
        assert np.isin(res.ids[res.ids >= 0], owned).all()


def test_sidecar_survives_reopen_and_is_rebuilt_when_missing_or_corrupt(tmp_path, collection, data):
    db, col = collection
    x, _, _ = data
    q = x[100:110]
    before = col.search(q, k=K, tenant="mid").ids
    db.close()
    (path,) = _sidecar(tmp_path)
    stamp = path.stat().st_mtime_ns
    with Database.open(tmp_path / "data", options=OPTIONS) as db2:
        col = db2.collection("c")
        assert path.stat().st_mtime_ns == stamp  # loaded, not rebuilt
        res = col.search(q, k=K, tenant="mid")
        assert res.stats["plans"] == ["tenant-graph"]  # the graph was saved and loaded with the tree
        np.testing.assert_array_equal(res.ids, before)
    for damage in ("delete", "corrupt"):
        if damage == "delete":
            path.unlink()
        else:
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            path.write_bytes(bytes(raw))
        with Database.open(tmp_path / "data", options=OPTIONS) as db2:
            col = db2.collection("c")
            col._store.wait_pending()
            assert path.exists()
            res = col.search(q, k=K, tenant="mid")
            assert res.stats["plans"] == ["tenant-graph"], damage
            np.testing.assert_array_equal(res.ids, before)  # the rebuild is seeded: the same graph


def test_single_tenant_and_flat_collections_get_no_tenant_index(tmp_path, data):
    x, a, tenants = data
    with Database.open(tmp_path / "data", options=OPTIONS) as db:
        flat = db.create_collection("c", dim=DIM, metric="l2", multi_tenant=True, schema={"a": "int32"})
        _load(flat, x[:2000], a[:2000], tenants[:2000])
        assert flat.state().segments[0].segment.tenant_index is None
        assert flat.search(x[:2], k=K, tenant="big").stats["plans"] == ["exact"]
        assert not _sidecar(tmp_path)


def test_tenant_ef_is_the_tree_budget_and_ef_the_graph_beam(collection, tree_collection, data):
    x, _, _ = data
    _db, col = tree_collection
    res = col.search(x[:3], k=K, tenant="mid", params={"tenant_ef": 64, "stats": True})
    assert max(res.stats["index"][0]["candidates_scored"]) < 1024
    res = col.search(x[:3], k=K, tenant="mid", params={"ef": 16, "stats": True})  # the tree has no beam
    assert min(res.stats["index"][0]["candidates_scored"]) >= 1024
    with pytest.raises(vecdb.InvalidArgument):
        col.search(x[:1], k=K, tenant="mid", params={"tenant_ef": 0})
    _db, col = collection
    res = col.search(x[:3], k=K, tenant="mid", params={"ef": 16, "stats": True})
    assert res.stats["index"][0]["ef"] == 16
    with pytest.raises(vecdb.InvalidArgument):
        col.search(x[:1], k=K, tenant="mid", params={"ef": 0})


def test_the_tenant_clause_is_compiled_only_where_a_segment_needs_it(tree_collection, data, monkeypatch):
    from vecdb.engine import tenancy

    _db, col = tree_collection
    x, _, _ = data
    calls = []
    real = tenancy.visible_filter
    monkeypatch.setattr(tenancy, "visible_filter", lambda *a: (a[3] and calls.append(a[3])) or real(*a))
    col._compiled.clear()
    col.search(x[:2], k=K, tenant="mid", filter="a < 5")
    assert calls == []  # every segment answered through its tenant index, the memtable is empty
    col.search(x[:2], k=K, tenant="big")  # too big for the tenant index: the filtered path
    assert calls == ["big"]
    with pytest.raises(vecdb.InvalidArgument, match="reserved"):
        col.search(x[:1], k=K, tenant="mid", filter="a < :vecdb_internal_tenant",
                   filter_params={"vecdb_internal_tenant": 3})


def test_one_tenant_query_single_call_answers_as_the_general_path(collection, tree_collection, data):
    """tenant= on a one-segment collection: the single C call (graph walk or small tenant's scan)
    gives the general path's ids, distances and stats, and declines what it does not take."""
    _, _, tenants = data
    q = np.random.default_rng(9).standard_normal((6, DIM)).astype(np.float32)
    for (_db, col), tenant, plan in (((collection), "big", "tenant-graph"), ((collection), "s3", "tenant-exact"),
                                     ((tree_collection), "s3", "tenant-exact")):
        for i in range(6):
            for params in (None, {"ef": 40}):
                fast = col.search(q[i : i + 1], k=K, tenant=tenant, params=params)
                general = col.search(q[i : i + 1], k=K, tenant=tenant, params=params, include=[])  # not taken
                assert fast.stats == general.stats and fast.stats["plans"] == [plan]
                np.testing.assert_array_equal(fast.ids, general.ids)
                np.testing.assert_array_equal(fast.distances, general.distances)
                owned = [j for j, ts in enumerate(tenants) if tenant in ts]
                assert np.isin(fast.ids[fast.ids >= 0], owned).all()
    _db, col = collection
    assert (col.search(q[:1], k=K, tenant="nobody").ids == -1).all()
    for bad in ({"tenant": ""}, {"tenant": "big", "params": {"ef": 0}}, {"tenant": "big", "k": 0}):
        with pytest.raises(vecdb.InvalidArgument):
            col.search(q[:1], **{"k": K, **bad})
    with pytest.raises(vecdb.InvalidArgument):
        col.search(q[:1] * np.nan, k=K, tenant="big")
