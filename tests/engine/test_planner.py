"""The planner never under-fills: k results whenever at least k rows match, on every strategy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecdb
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions

N, DIM = 3000, 8


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    db = Database.open(tmp_path_factory.mktemp("planner") / "data",
                       options=StoreOptions(index_min_rows=256, background=False))
    col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.HNSW(m=8, ef_construction=64),
                               schema={"a": "int32", "tag": "string"})
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    a = rng.integers(0, 1000, N).astype(np.int32)
    tags = rng.choice(["x", "y", "z"], N, p=[0.9, 0.09, 0.01]).tolist()
    col.upsert(np.arange(N), vectors, {"a": a, "tag": tags})
    col.optimize()
    assert col.stats()["indexed_segments"] == 1
    yield col, vectors, a, np.asarray(tags)
    db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lo=st.integers(0, 1000), width=st.integers(0, 1000), k=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_k_results_whenever_k_rows_match(collection, lo, width, k, seed):
    col, _vectors, a, _ = collection
    q = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    res = col.search(q, k=k, filter="a >= :lo AND a < :hi", filter_params={"lo": lo, "hi": lo + width})
    matching = int(((a >= lo) & (a < lo + width)).sum())
    got = res.ids[0][res.ids[0] >= 0]
    assert got.size == min(k, matching), res.stats
    assert ((a[got] >= lo) & (a[got] < lo + width)).all()
    assert res.stats["complete"]


@pytest.mark.parametrize("tag", ["x", "y", "z"])
def test_every_selectivity_keeps_recall(collection, tag):
    col, _vectors, _, _tags = collection
    queries = np.random.default_rng(1).standard_normal((30, DIM)).astype(np.float32)
    res = col.search(queries, k=10, filter=f"tag = '{tag}'", params={"ef": 64})
    exact = col.search(queries, k=10, filter=f"tag = '{tag}'", params={"exact": True})
    recall = np.mean([len(set(r) & set(e)) / 10 for r, e in zip(res.ids, exact.ids, strict=True)])
    assert recall >= 0.9, (tag, recall, res.stats["plans"])


def test_equivalent_filters_give_identical_results(collection):
    col, *_ = collection
    queries = np.random.default_rng(2).standard_normal((10, DIM)).astype(np.float32)
    forms = ["tag IN ('y', 'z')", "tag = 'y' OR tag = 'z'", "NOT (tag = 'x')", "tag != 'x'"]
    results = [col.search(queries, k=10, filter=f) for f in forms]
    for other in results[1:]:
        np.testing.assert_array_equal(other.ids, results[0].ids)


def test_stats_report_plan_and_selectivity(collection):
    col, *_ = collection
    res = col.search(np.zeros(DIM), k=5, filter="tag = 'z'")
    assert res.stats["plans"] == ["exact"]
    assert 0 < res.stats["estimated_selectivity"] < 0.05
    res = col.search(np.zeros(DIM), k=5)
    assert res.stats["plans"] == ["hnsw"]
