"""The API conformance suite: what every transport (embedded, gRPC) must do, identically."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vecdb
from vecdb.kernels import reference

DIM = 16


def brute_force(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, metric: str, k: int):
    """Exact answer: ids (q, k) and distances, ties by smaller id, padded -1/+inf."""
    d = reference.distances_many(queries, vectors, metric)
    out_ids = np.full((len(queries), k), -1, np.int64)
    out_d = np.full((len(queries), k), np.inf, np.float32)
    for r in range(len(queries)):
        order = np.lexsort((ids, d[r]))[:k]
        out_ids[r, : len(order)] = ids[order]
        out_d[r, : len(order)] = d[r, order]
    return out_ids, out_d


def make_rows(n: int, seed: int = 0, dim: int = DIM):
    rng = np.random.default_rng(seed)
    ids = rng.choice(10 * n + 10, size=n, replace=False).astype(np.int64)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    years = rng.integers(1990, 2025, size=n).astype(np.int32)
    langs = rng.choice(["en", "de", "fr"], size=n)
    return ids, vectors, {"year": years, "lang": langs.tolist()}


SCHEMA = {"year": "int32", "lang": "string"}


def assert_same_search(res, ids, dists):
    np.testing.assert_array_equal(res.ids, ids)
    np.testing.assert_allclose(res.distances, dists, rtol=1e-4, atol=1e-4)


class TestCollections:
    def test_create_list_get_drop(self, client):
        col = client.create_collection("docs", dim=DIM, metric="l2", schema=SCHEMA)
        assert col.name == "docs" and col.dim == DIM and col.metric == "l2"
        assert client.list_collections() == ["docs"]
        assert client.collection("docs").dim == DIM
        client.drop_collection("docs")
        assert client.list_collections() == []
        with pytest.raises(vecdb.NotFound):
            client.collection("docs")

    def test_already_exists_and_not_found(self, client):
        client.create_collection("a", dim=4)
        with pytest.raises(vecdb.AlreadyExists):
            client.create_collection("a", dim=4)
        with pytest.raises(vecdb.NotFound):
            client.drop_collection("nope")

    @pytest.mark.parametrize("name", ["", "../etc", "a/b", "x" * 65, "sp ace", "nul\0"])
    def test_bad_names(self, client, name):
        with pytest.raises(vecdb.InvalidArgument):
            client.create_collection(name, dim=4)
        assert client.list_collections() == []

    @pytest.mark.parametrize("kwargs", [{"dim": 0}, {"dim": -3}, {"dim": 4, "metric": "hamming"},
                                        {"dim": 4, "schema": {"id": "int32"}}, {"dim": 4, "schema": {"x": "blob"}}])
    def test_bad_configs(self, client, kwargs):
        with pytest.raises(vecdb.InvalidArgument):
            client.create_collection("c", **kwargs)


class TestWrites:
    def test_upsert_get_roundtrip_byte_for_byte(self, client):
        col = client.create_collection("c", dim=DIM, metric="l2", schema=SCHEMA)
        ids, vectors, attrs = make_rows(50)
        assert col.upsert(ids, vectors, attrs) == 50
        assert col.count() == 50
        got = col.get(ids[::-1][:10], include=("vector", "year", "lang"))
        assert got.column("id").to_pylist() == ids[::-1][:10].tolist()
        want = {int(i): r for r, i in enumerate(ids)}
        for row in got.to_pylist():
            r = want[row["id"]]
            assert np.array(row["vector"], np.float32).tobytes() == vectors[r].tobytes()
            assert row["year"] == attrs["year"][r] and row["lang"] == attrs["lang"][r]

    def test_get_missing_ids_absent(self, client):
        col = client.create_collection("c", dim=DIM)
        ids, vectors, _ = make_rows(5)
        col.upsert(ids, vectors)
        got = col.get([int(ids[0]), 10**12, int(ids[1])], include=())
        assert got.column("id").to_pylist() == [int(ids[0]), int(ids[1])]

    def test_upsert_replaces(self, client):
        col = client.create_collection("c", dim=DIM, metric="l2")
        ids, vectors, _ = make_rows(20)
        col.upsert(ids, vectors)
        col.upsert(ids[:5], vectors[:5] + 100)
        assert col.count() == 20
        got = col.get(ids[:5], include=("vector",))
        np.testing.assert_array_equal(np.stack(got.column("vector").to_numpy(zero_copy_only=False)), vectors[:5] + 100)

    def test_upsert_table_and_pandas(self, client):
        pd = pytest.importorskip("pandas")
        col = client.create_collection("c", dim=3, metric="l2", schema={"year": "int32"})
        table = pa.table(
            {"id": [1, 2], "vector": [[1.0, 0, 0], [0, 1.0, 0]], "year": pa.array([2001, 2002], pa.int32())}
        )
        assert col.upsert(table) == 2
        frame = pd.DataFrame({"id": [3], "vector": [[0.0, 0.0, 1.0]], "year": [2003]})
        assert col.upsert(frame) == 1
        assert sorted(col.get([1, 2, 3], include=("year",)).column("year").to_pylist()) == [2001, 2002, 2003]

    @pytest.mark.parametrize(
        "ids, vectors",
        [
            ([1, 1], np.zeros((2, DIM))),  # duplicate id in one batch
            ([1], np.zeros((1, DIM + 1))),  # wrong dimension
            ([1], np.full((1, DIM), np.nan)),  # NaN
            ([1], np.full((1, DIM), np.inf)),  # inf
            ([1.5], np.zeros((1, DIM))),  # float id
            ([1, 2], np.zeros((1, DIM))),  # count mismatch
            ([1], [["a"] * DIM]),  # strings
        ],
    )
    def test_bad_writes_rejected_and_nothing_stored(self, client, ids, vectors):
        col = client.create_collection("c", dim=DIM)
        col.upsert([7], np.ones((1, DIM)))
        with pytest.raises(vecdb.InvalidArgument):
            col.upsert(ids, vectors)
        assert col.count() == 1
        assert col.get([7], include=()).num_rows == 1

    def test_bad_attributes(self, client):
        col = client.create_collection("c", dim=DIM, schema=SCHEMA)
        with pytest.raises(vecdb.InvalidArgument):
            col.upsert([1], np.zeros((1, DIM)), {"nope": [1]})
        with pytest.raises(vecdb.InvalidArgument):
            col.upsert([1], np.zeros((1, DIM)), {"year": ["not a year"]})
        assert col.count() == 0

    def test_delete_by_ids_and_filter(self, client):
        col = client.create_collection("c", dim=DIM, metric="l2", schema=SCHEMA)
        ids, vectors, attrs = make_rows(100)
        col.upsert(ids, vectors, attrs)
        assert col.delete(ids[:10]) == 10
        assert col.delete(ids[:10]) == 0
        n_old = int((np.asarray(attrs["year"])[10:] < 2000).sum())
        assert col.delete(filter="year < 2000") == n_old
        assert col.count() == 90 - n_old
        res = col.search(vectors, k=100)
        returned = set(res.ids[res.ids >= 0].tolist())
        assert not returned & set(ids[:10].tolist())
        assert all(y >= 2000 for y in col.get(list(returned), include=("year",)).column("year").to_pylist())
        with pytest.raises(vecdb.InvalidArgument):
            col.delete()


class TestSearch:
    @pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
    def test_exact_equals_brute_force(self, client, metric):
        col = client.create_collection("c", dim=DIM, metric=metric)
        ids, vectors, _ = make_rows(300, seed=1)
        col.upsert(ids, vectors)
        queries = np.random.default_rng(2).standard_normal((7, DIM)).astype(np.float32)
        res = col.search(queries, k=10)
        assert_same_search(res, *brute_force(queries, ids, vectors, metric, 10))

    def test_filters_equal_brute_force(self, client):
        col = client.create_collection("c", dim=DIM, metric="l2", schema=SCHEMA)
        ids, vectors, attrs = make_rows(400, seed=3)
        col.upsert(ids, vectors, attrs)
        queries = np.random.default_rng(4).standard_normal((5, DIM)).astype(np.float32)
        years = np.asarray(attrs["year"])
        langs = np.asarray(attrs["lang"])
        keep = (langs == "en") & (years >= 2010)
        res = col.search(queries, k=8, filter="lang = 'en' AND year >= :y", filter_params={"y": 2010})
        assert_same_search(res, *brute_force(queries, ids[keep], vectors[keep], "l2", 8))

    def test_padding_when_fewer_rows_than_k(self, client):
        col = client.create_collection("c", dim=DIM)
        col.upsert([1, 2], np.eye(2, DIM))
        res = col.search(np.ones(DIM), k=5)
        assert res.ids.shape == (1, 5)
        assert res.ids[0, 2:].tolist() == [-1, -1, -1]
        assert np.isinf(res.distances[0, 2:]).all()

    def test_empty_collection(self, client):
        col = client.create_collection("c", dim=DIM)
        res = col.search(np.ones((2, DIM)), k=3)
        assert (res.ids == -1).all()

    def test_include_attributes_and_arrow(self, client):
        col = client.create_collection("c", dim=DIM, metric="l2", schema=SCHEMA)
        ids, vectors, attrs = make_rows(30, seed=5)
        col.upsert(ids, vectors, attrs)
        res = col.search(vectors[:3], k=2, include=("year",))
        table = res.to_arrow()
        assert table.column_names[:4] == ["query", "rank", "id", "distance"]
        assert table.num_rows == 6
        by_id = dict(zip(ids.tolist(), attrs["year"].tolist(), strict=True))
        for row in table.to_pylist():
            assert row["year"] == by_id[row["id"]]
        assert res.to_pandas().shape[0] == 6

    @pytest.mark.parametrize(
        "kwargs",
        [{"k": 0}, {"k": -1}, {"k": 10**9}, {"filter": "year >"}, {"filter": "nope = 1"},
         {"filter": "lang = 3"}, {"params": {"bogus": 1}}, {"include": ("nope",)}],
    )
    def test_bad_searches(self, client, kwargs):
        col = client.create_collection("c", dim=DIM, schema=SCHEMA)
        col.upsert([1], np.ones((1, DIM)), {"year": [2000], "lang": ["en"]})
        with pytest.raises(vecdb.InvalidArgument):
            col.search(np.ones(DIM), **{"k": 1, **kwargs})

    def test_bad_queries(self, client):
        col = client.create_collection("c", dim=DIM)
        for q in (np.ones(DIM + 1), np.full(DIM, np.nan), np.zeros((0, DIM))):
            with pytest.raises(vecdb.InvalidArgument):
                col.search(q, k=1)


class TestDurability:
    def test_results_identical_after_restart_and_optimize(self, connect):
        db = connect()
        col = db.create_collection("c", dim=DIM, metric="l2", schema=SCHEMA)
        ids, vectors, attrs = make_rows(500, seed=6)
        col.upsert(ids[:300], vectors[:300], {k: v[:300] for k, v in attrs.items()})
        col.optimize()  # some rows sealed...
        col.upsert(ids[300:], vectors[300:], {k: v[300:] for k, v in attrs.items()})  # ...some in the WAL
        col.delete(ids[:20])
        queries = np.random.default_rng(7).standard_normal((6, DIM)).astype(np.float32)
        before = col.search(queries, k=10, filter="year > 1995")
        db = connect()
        col = db.collection("c")
        assert col.count() == 480
        after = col.search(queries, k=10, filter="year > 1995")
        assert_same_search(after, before.ids, before.distances)
        col.optimize()
        assert_same_search(col.search(queries, k=10, filter="year > 1995"), before.ids, before.distances)
        stats = col.stats()
        assert stats["rows"] == 480 and stats["segments"] == 1 and stats["deleted_rows"] == 0
        db = connect()
        assert_same_search(db.collection("c").search(queries, k=10, filter="year > 1995"), before.ids, before.distances)

    def test_schema_and_config_survive_restart(self, connect):
        db = connect()
        db.create_collection("c", dim=DIM, metric="ip", schema=SCHEMA)
        db = connect()
        col = db.collection("c")
        assert (col.dim, col.metric, col.schema) == (DIM, "ip", SCHEMA)


def two_models(n: int, seed: int = 11, dim_new: int = 24):
    """(old (n, DIM), new (n, dim_new)): one set of items seen by two embedding models, the new one a
    random linear map plus a mild nonlinearity and noise of the old."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM)).astype(np.float32)
    old = (centres[rng.integers(0, 30, n)] + 0.3 * rng.standard_normal((n, DIM))).astype(np.float32)
    new = np.tanh(old @ rng.standard_normal((DIM, dim_new)).astype(np.float32) / 4.0)
    return old, (new + 0.01 * rng.standard_normal(new.shape)).astype(np.float32)


class TestEmbeddingVersions:
    def test_new_model_rows_and_queries_share_the_collection(self, connect):
        db = connect()
        col = db.create_collection("c", dim=DIM, metric="l2")
        old, new = two_models(2600)
        ids = np.arange(2600, dtype=np.int64)
        col.upsert(ids[:2000], old[:2000])
        described = col.add_embedding_version("v2", ids[:1500], new[:1500])
        assert described["dim"] == 24 and described["fit_rows"] == 1500 and described["normalize"] is False
        assert max(described["report"].values()) > 0.5
        # New-model queries of unseen items find most of the old model's neighbours among old rows...
        truth, _ = brute_force(old[2500:2600], ids[:2000], old[:2000], "l2", 10)
        got = col.search(new[2500:2600], k=10, version="v2").ids
        assert np.mean([len(np.intersect1d(g, t)) for g, t in zip(got, truth, strict=True)]) / 10 > 0.5
        col.upsert(ids[2000:2500], new[2000:2500], version="v2")  # rows of the new model, mapped
        # ...and a new-model query of a row stored through the map finds that row at distance ~0.
        found = col.search(new[2000:2020], k=1, version="v2")
        np.testing.assert_array_equal(found.ids[:, 0], ids[2000:2020])
        assert float(found.distances.max()) < 1e-3
        before = col.search(new[2500:2510], k=10, version="v2")
        db = connect()  # the map survives a restart (the catalog) and gives the same answers
        col = db.collection("c")
        assert col.embedding_versions()["v2"]["dim"] == 24
        assert_same_search(col.search(new[2500:2510], k=10, version="v2"), before.ids, before.distances)
        col.drop_embedding_version("v2")
        assert col.embedding_versions() == {}
        with pytest.raises(vecdb.NotFound):
            col.search(new[:1], k=1, version="v2")
        assert col.count() == 2500  # rows stored through the map stay

    def test_bad_versions_are_rejected(self, client):
        col = client.create_collection("c", dim=DIM, metric="cosine")
        old, new = two_models(1200)
        ids = np.arange(1200, dtype=np.int64)
        col.upsert(ids[:1000], old[:1000])
        with pytest.raises(vecdb.InvalidArgument, match="not in collection"):
            col.add_embedding_version("v2", ids[900:1100], new[900:1100])
        with pytest.raises(vecdb.InvalidArgument, match="names"):
            col.add_embedding_version("bad name", ids[:800], new[:800])
        with pytest.raises(vecdb.InvalidArgument, match="paired rows"):
            col.add_embedding_version("v2", ids[:20], new[:20])
        with pytest.raises(vecdb.InvalidArgument):
            col.add_embedding_version("v2", ids[:800], new[:700])
        assert col.embedding_versions() == {}
        assert col.add_embedding_version("v2", ids[:800], new[:800])["normalize"] is True  # cosine default
        with pytest.raises(vecdb.AlreadyExists):
            col.add_embedding_version("v2", ids[:800], new[:800])
        with pytest.raises(vecdb.NotFound):
            col.search(new[:1], k=3, version="v3")
        with pytest.raises(vecdb.NotFound):
            col.upsert(ids[1000:1010], new[1000:1010], version="v3")
        with pytest.raises(vecdb.InvalidArgument, match="dimension"):
            col.search(old[:1], k=3, version="v2")  # an old-model query under the new version
        with pytest.raises(vecdb.InvalidArgument, match="dimension"):
            col.upsert(ids[1000:1010], old[1000:1010], version="v2")
        with pytest.raises(vecdb.NotFound):
            col.drop_embedding_version("v3")
        assert col.count() == 1000
        client.drop_collection("c")  # versions go with their collection
        again = client.create_collection("c", dim=DIM, metric="cosine")
        assert again.embedding_versions() == {}
