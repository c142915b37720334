"""The per-query fast paths (query check, params cache, padding checks) agree with the slow paths."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.engine import planner, validate
from vecdb.engine.collection import Collection, _check_params
from vecdb.engine.database import Database
from vecdb.engine.search import _to_ids, search_sole_filtered_one, search_sole_one
from vecdb.errors import InvalidArgument


def _optimized(x: np.ndarray, ids: object, metric: str, ef_construction: int,
               groups: np.ndarray | None = None) -> tuple[Database, Collection]:
    """An in-memory collection of ``x`` under ``ids`` (int64 attribute ``g`` = ``groups`` when given),
    optimized: every row in one HNSW segment."""
    db = vecdb.connect(":memory:")
    schema = None if groups is None else {"g": "int64"}
    col = db.create_collection("c", x.shape[1], metric=metric, schema=schema,
                               index=vecdb.HNSW(m=8, ef_construction=ef_construction))
    col.upsert(ids, x, attributes=None if groups is None else {"g": groups})
    col.optimize()
    return db, col


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_queries_with_a_non_finite_value_are_rejected(bad: float) -> None:
    q = np.ones((2, 8), np.float32)
    q[1, 5] = bad
    with pytest.raises(InvalidArgument, match="finite"):
        validate.as_queries(q, 8)


def test_huge_but_finite_queries_are_accepted() -> None:
    """The dot-product check overflows to inf here; the exact check must then say finite."""
    q = np.full((1, 8), 3e38, np.float32)
    assert validate.as_queries(q, 8) is q


def test_params_cache_keeps_types_apart_and_returns_copies() -> None:
    assert _check_params({"ef": 1}) == {"ef": 1}
    with pytest.raises(InvalidArgument, match="must be a number"):
        _check_params({"ef": True})  # equal to 1 and hashes like it: must not hit the cached entry
    first = _check_params({"ef": 32, "rerank": 2})
    first["ef"] = 5  # a caller mutating its copy must not change what the next call gets
    assert _check_params({"ef": 32, "rerank": 2}) == {"ef": 32, "rerank": 2}
    with pytest.raises(InvalidArgument, match="must be a number, got"):
        _check_params({"ef": [1]})  # unhashable: validated without the cache
    with pytest.raises(InvalidArgument, match="params must be a mapping"):
        _check_params([("ef", 1)])
    assert _check_params(None) == {} and _check_params({}) == {}


def test_padding_checks_read_the_last_column() -> None:
    ids = np.array([10, 11, 12, 13], np.int64)
    one = np.array([[2, 0, -1]], np.int64)
    many = np.array([[1, 2, 3], [3, -1, -1]], np.int64)
    assert _to_ids(ids, one).tolist() == [[12, 10, -1]]
    assert _to_ids(ids, many).tolist() == [[11, 12, 13], [13, -1, -1]]
    assert planner.all_filled(one, 2) and not planner.all_filled(one, 3)
    assert planner.all_filled(many, 1) and not planner.all_filled(many, 2)


def test_search_results_through_the_fast_paths() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    db, col = _optimized(x, np.arange(300) + 1000, "l2", 32)
    params = {"ef": 64}
    for i in range(3):  # the second and third calls hit the params cache
        res = col.search(x[i], k=5, params=params)
        assert res.ids[0, 0] == 1000 + i
    assert col.search(x[0], k=400).ids[0, -1] == -1  # more asked than stored: padded
    db.close()


def test_sole_segment_fast_path_answers_like_the_planner() -> None:
    """After optimize() every row sits in one indexed segment: the fast path must give the general
    path's ids, distances and stats ("stats": False in params forces the general path)."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    db, col = _optimized(x, np.arange(2000) * 3, "cosine", 40)
    state = col.state()
    assert state.sole is not None and state.sole.segment.index is not None
    q = rng.normal(size=(4, 16)).astype(np.float32)
    fast = col.search(q, k=7, params={"ef": 40})
    slow = col.search(q, k=7, params={"ef": 40, "stats": False})
    np.testing.assert_array_equal(fast.ids, slow.ids)
    np.testing.assert_array_equal(fast.distances, slow.distances)
    assert fast.stats == {k: v for k, v in slow.stats.items() if k != "index"}
    assert fast.stats["plans"] == ["hnsw"] and fast.stats["matching_rows"] == 2000

    col.delete([0])  # a deletion (and a fresh memtable row below) leaves the one-segment shape
    assert col.state().sole is None
    assert 0 not in col.search(x[0], k=5, params={"ef": 40}).ids
    col.upsert([1], x[:1])
    assert col.search(x[0], k=1, params={"ef": 40}).ids[0, 0] == 1
    db.close()


def _assert_same_answer(fast: vecdb.SearchResult, slow: vecdb.SearchResult) -> None:
    """A single-call answer equals the general path's (``"stats": False`` forces that path; its
    extra per-index stats aside)."""
    np.testing.assert_array_equal(fast.ids, slow.ids)
    np.testing.assert_allclose(fast.distances, slow.distances, rtol=1e-6, atol=1e-6)
    assert fast.stats == {k: v for k, v in slow.stats.items() if k != "index"}


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_one_query_single_call_path_answers_like_the_general_path(metric: str) -> None:
    """One plain query on an optimized HNSW collection is answered in one C call (before any
    validation); ids, distances and stats must be the general path's."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(1500, 12)).astype(np.float32)
    db, col = _optimized(x, np.arange(1500) * 5 + 7, metric, 40)
    q = rng.normal(size=(20, 12)).astype(np.float32)
    for i in range(q.shape[0]):
        for one, params in ((q[i], {"ef": 30}), (q[i : i + 1], None), (q[i : i + 1], {})):
            assert search_sole_one(col.state(), one, 10, params) is not None  # the path is taken
            fast = col.search(one, k=10, params=params)
            slow = col.search(one, k=10, params={**(params or {}), "stats": False})
            _assert_same_answer(fast, slow)
    db.close()


def test_single_call_path_leaves_bad_input_to_validation() -> None:
    """What the single-call path declines reaches the general path's checks, with their messages."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(1200, 8)).astype(np.float32)
    db, col = _optimized(x, np.arange(1200), "l2", 32)
    nan = x[:1].copy()
    nan[0, 3] = np.nan
    cases = [
        (dict(queries=nan), "finite"),
        (dict(queries=x[:1, :7]), "dim"),
        (dict(queries=x[:1], k=0), "k must be in"),
        (dict(queries=x[:1], k=True), "k must be an integer"),
        (dict(queries=x[:1], params={"ef": 0}), "'ef' must be an integer"),
        (dict(queries=x[:1], params={"ef": True}), "must be a number"),
        (dict(queries=x[:1], params=[]), "params must be a mapping"),
        (dict(queries=x[:1], params={"ef": 8, "bogus": 1}), "unknown search param"),
        (dict(queries=x[:1], include=""), "include names unknown"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            col.search(**kwargs)
    # Declined but valid: numpy ints, float64 queries and lists take the general path and agree.
    want = col.search(x[5], k=3, params={"ef": 20}).ids
    np.testing.assert_array_equal(col.search(x[5], k=np.int64(3), params={"ef": np.int64(20)}).ids, want)
    np.testing.assert_array_equal(col.search(x[5].astype(np.float64), k=3, params={"ef": 20}).ids, want)
    np.testing.assert_array_equal(col.search(x[5].tolist(), k=3, params={"ef": 20}).ids, want)
    db.close()


def test_filtered_single_call_path_answers_like_the_general_path() -> None:
    """A repeated selective filter on a one-segment collection is answered in one C call (exact scan
    of the cached matching rows); results and stats must be the general path's, and bad input still
    meets validation."""
    rng = np.random.default_rng(15)
    x = rng.normal(size=(3000, 10)).astype(np.float32)
    db, col = _optimized(x, np.arange(3000) + 50, "cosine", 32, groups=np.arange(3000) % 100)
    q = rng.normal(size=(10, 10)).astype(np.float32)
    flt, fparams = "g = :v", {"v": 4}  # 30 matching rows
    col.search(q[0], k=5, filter=flt, filter_params=fparams)  # compiles and caches the filter
    compiled = col._cached_filter(flt, fparams)
    assert compiled is not None
    for i in range(q.shape[0]):
        assert search_sole_filtered_one(col.state(), q[i], 5, compiled, {"ef": 20}) is not None  # taken
        fast = col.search(q[i], k=5, filter=flt, filter_params=fparams, params={"ef": 20})
        slow = col.search(q[i], k=5, filter=flt, filter_params=fparams, params={"ef": 20, "stats": False})
        _assert_same_answer(fast, slow)
        assert set(((fast.ids[0] - 50) % 100).tolist()) == {4}
    few = col.search(q[0], k=40, filter=flt, filter_params=fparams)  # k above the 30 matches: padded
    assert (few.ids[0] >= 0).sum() == 30 and few.stats["complete"]
    nan = q[:1].copy()
    nan[0, 0] = np.nan
    with pytest.raises(InvalidArgument, match="finite"):
        col.search(nan, k=5, filter=flt, filter_params=fparams)
    with pytest.raises(InvalidArgument, match="'ef' must be an integer"):
        col.search(q[0], k=5, filter=flt, filter_params=fparams, params={"ef": 0})
    with pytest.raises(InvalidArgument, match="k must be in"):
        col.search(q[0], k=0, filter=flt, filter_params=fparams)
    # Half the rows or more match and the exact plan would scan them all: the general path answers.
    assert search_sole_filtered_one(col.state(), q[0], 5, col._compile("g >= 10", None, None), None) is None
    col.delete([54])  # a row of g = 4: the collection leaves the one-segment shape
    assert 54 not in col.search(q[0], k=30, filter=flt, filter_params=fparams).ids
    db.close()


@pytest.mark.parametrize(("flt", "plan"), [("g < 50", "hnsw-filtered"), ("g >= 5", "hnsw"), ("g = 3", "exact")])
def test_filtered_single_call_walk_answers_like_the_general_path(monkeypatch: pytest.MonkeyPatch, flt: str,
                                                                  plan: str) -> None:
    """With the exact plan's size limit lowered, 50% and 95% filters walk the graph (filtered, and
    post-filtered) in one C call; ids, distances and stats must be the general path's."""
    monkeypatch.setattr(planner, "EXACT_MAX_FLOATS", 100)
    rng = np.random.default_rng(16)
    x = rng.normal(size=(2500, 12)).astype(np.float32)
    db, col = _optimized(x, np.arange(2500), "l2", 40, groups=np.arange(2500) % 100)
    q = rng.normal(size=(15, 12)).astype(np.float32)
    col.search(q[0], k=10, filter=flt)  # compiles and caches the filter
    for i in range(q.shape[0]):
        assert search_sole_filtered_one(col.state(), q[i], 10, col._cached_filter(flt, None), {"ef": 40}) is not None
        fast = col.search(q[i], k=10, filter=flt, params={"ef": 40})
        slow = col.search(q[i], k=10, filter=flt, params={"ef": 40, "stats": False})
        _assert_same_answer(fast, slow)
        assert fast.stats["plans"] == [plan]
    db.close()


def test_sole_segment_fast_path_never_under_fills() -> None:
    """k larger than the rows: the fast path hands over to the planner, which pads honestly."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(1100, 8)).astype(np.float32)
    db, col = _optimized(x, np.arange(1100), "l2", 32)
    assert col.state().sole is not None
    res = col.search(x[3], k=1200, params={"ef": 16})
    assert (res.ids[0] >= 0).sum() == 1100 and res.stats["complete"]
    db.close()


def test_filtered_rows_are_cached_per_state_and_never_stale() -> None:
    """A repeated filter reuses its mask, count and row list; a delete makes a new state, so the
    cached rows of the old one can never return a deleted row."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    db, col = _optimized(x, np.arange(3000), "l2", 32, groups=np.arange(3000) % 100)
    first = col.search(x[7], k=5, filter="g = 7")  # 30 matching rows: the exact plan
    assert first.stats["plans"] == ["exact"] and first.stats["matching_rows"] == 30
    view = col.state().segments[0]
    hit = next(iter(view.filtered.values()))
    assert hit.count == 30 and hit.rows.tolist() == np.flatnonzero(np.arange(3000) % 100 == 7).tolist()
    again = col.search(x[7], k=5, filter="g = 7")
    np.testing.assert_array_equal(again.ids, first.ids)
    assert next(iter(col.state().segments[0].filtered.values())) is hit  # served from the cache
    col.delete([7])
    after = col.search(x[7], k=5, filter="g = 7")
    assert 7 not in after.ids and after.stats["matching_rows"] == 29
    db.close()


@pytest.mark.parametrize(("flt", "keep", "plan", "used"), [
    ("g = 7", lambda g: g == 7, None, "exact"),
    ("g < 60", lambda g: g < 60, "index", "hnsw-filtered"),
    ("g >= 0", lambda g: g >= 0, "exact", "exact")])
def test_sole_segment_filtered_fast_path_answers_like_the_planner(flt: str, keep, plan: str | None,
                                                                   used: str) -> None:
    """A filtered search of a one-segment collection skips the per-segment loop and merge: it must
    give the general path's ids, distances and stats at every plan ("stats" forces the general path)."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    db, col = _optimized(x, np.arange(3000) + 5, "l2", 32, groups=np.arange(3000) % 100)
    assert col.state().sole is not None
    q = rng.normal(size=(3, 8)).astype(np.float32)
    params = {"ef": 48} if plan is None else {"ef": 48, "plan": plan}
    fast = col.search(q, k=12, filter=flt, params=params)
    slow = col.search(q, k=12, filter=flt, params={**params, "stats": False})
    np.testing.assert_array_equal(fast.ids, slow.ids)
    np.testing.assert_array_equal(fast.distances, slow.distances)
    assert fast.stats == {k: v for k, v in slow.stats.items() if k != "index"}
    allowed = set((np.flatnonzero(keep(np.arange(3000) % 100)) + 5).tolist())
    assert set(fast.ids.ravel().tolist()) <= allowed and fast.stats["complete"]
    assert fast.stats["plans"] == slow.stats["plans"] == [used]
    db.close()


def test_in_list_params_are_cached_by_value_and_type() -> None:
    """An IN list is one cache key: the same values hit it, and 1 / 1.0 / True stay apart."""
    db = vecdb.connect(":memory:")
    col = db.create_collection("c", 4, metric="l2", schema={"g": "int64", "f": "float64"})
    col.upsert(np.arange(4), np.eye(4, dtype=np.float32), attributes={"g": [1, 2, 3, 4], "f": [1.0, 1.5, 2.0, 2.5]})
    ids = col.search(np.zeros(4, np.float32), k=4, filter="g IN :v", filter_params={"v": [1, 3]}).ids
    assert sorted(ids[ids >= 0].tolist()) == [0, 2]
    assert len(col._compiled) == 1
    col.search(np.zeros(4, np.float32), k=4, filter="g IN :v", filter_params={"v": [1, 3]})
    assert len(col._compiled) == 1  # the same list: a hit
    ids = col.search(np.zeros(4, np.float32), k=4, filter="f IN :v", filter_params={"v": [1.5, 2.5]}).ids
    assert sorted(ids[ids >= 0].tolist()) == [1, 3]
    col.search(np.zeros(4, np.float32), k=4, filter="g IN :v", filter_params={"v": [1.0, 3.0]})
    assert len(col._compiled) == 3  # floats are another key than the equal ints
    db.close()
