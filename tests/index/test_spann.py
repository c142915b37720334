"""SPANN index: balanced lists, replication without duplicate results, pruning, budget, persistence."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import vecdb
from vecdb.config import SPANN
from vecdb.errors import ResourceExhausted
from vecdb.index import spann as spann_module
from vecdb.index.balanced import balanced_clusters, centroids_of, replicate
from vecdb.index.flat import exact_search
from vecdb.index.spann import SPANNIndex
from vecdb.kernels.postings import prefetch_lists
from vecdb.quant.scalar import ScalarQuantizer
from vecdb.storage.arrayfile import read_array_file, write_array_file
from vecdb.storage.io import FileIO

N, D, NQ, K = 6000, 16, 60, 10
TARGET = 48
CONFIG = SPANN(target_list_size=TARGET, replicas=4, closure_eps=0.5)
EVERYTHING = {"max_lists": 100_000, "eps": float("inf")}


def clustered(seed: int, n: int, nq: int, d: int = D) -> tuple[np.ndarray, np.ndarray]:
    """n base rows and nq queries around 40 shared centres (seeded)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(40, d)).astype(np.float32)
    x = (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, d))).astype(np.float32)
    q = (centres[rng.integers(0, 40, nq)] + rng.normal(size=(nq, d))).astype(np.float32)
    return x, q


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(23, N, NQ)


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, np.ndarray]) -> dict[str, SPANNIndex]:
    x, _ = data
    return {m: SPANNIndex.build(x, m, CONFIG) for m in ("l2", "ip", "cosine")}


def test_balanced_clustering_bounds_list_lengths(data) -> None:
    x, _ = data
    labels = balanced_clusters(x, TARGET, seed=1)
    sizes = np.bincount(labels)
    assert labels.min() == 0 and (sizes > 0).all()
    assert sizes.max() <= TARGET
    assert sizes.mean() >= TARGET / 2  # even: no swarm of tiny lists
    assert np.percentile(sizes, 10) >= TARGET / 4


def test_replication_is_bounded_and_rng_pruned(data) -> None:
    x, _ = data
    labels = balanced_clusters(x, TARGET, seed=1)
    cents = centroids_of(x, labels, int(labels.max()) + 1)
    start, members = replicate(x, cents, labels, replicas=4, closure_eps=0.5, cap=2 * TARGET, metric="l2")
    lens = np.diff(start)
    assert lens.max() <= 2 * TARGET
    per_row = np.bincount(members, minlength=N)
    assert per_row.min() >= 1 and per_row.max() <= 4
    assert 1.05 < members.shape[0] / N < 4.0
    for lst in range(len(lens)):  # no row twice in one list; primaries kept
        block = members[start[lst] : start[lst + 1]]
        assert np.unique(block).shape[0] == block.shape[0]
    _none, members1 = replicate(x, cents, labels, replicas=1, closure_eps=0.5, cap=2 * TARGET, metric="l2")
    assert members1.shape[0] == N


def test_a_smaller_rng_factor_keeps_more_replicas_in_high_dimensions() -> None:
    """In 256-d every other centroid is farther from a row than neighbouring centroids are from
    each other, so the paper's rule (factor 1) prunes most replicas; 0.5 keeps boundary rows, and
    the lists stay well formed (bounded, no row twice in a list, every row in its primary list)."""
    rng = np.random.default_rng(4)
    centers = rng.standard_normal((30, 256))
    x = (centers[rng.integers(0, 30, 3000)] + rng.standard_normal((3000, 256))).astype(np.float32)
    labels = balanced_clusters(x, TARGET, seed=1)
    cents = centroids_of(x, labels, int(labels.max()) + 1)
    copies = {}
    for factor in (1.0, 0.5):
        start, members = replicate(x, cents, labels, replicas=4, closure_eps=1.0, cap=2 * TARGET, metric="l2",
                                   rng_factor=factor)
        copies[factor] = members.shape[0] / x.shape[0]
        assert np.diff(start).max() <= 2 * TARGET
        for lst in range(len(start) - 1):
            block = members[start[lst] : start[lst + 1]]
            assert np.unique(block).shape[0] == block.shape[0]
            assert np.isin(np.flatnonzero(labels == lst), block).all()
    assert copies[0.5] > copies[1.0] + 0.1, copies
    with pytest.raises(ValueError):
        SPANNIndex.build(x, "l2", SPANN(target_list_size=TARGET, rng_factor=0.0))


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_at_fixed_setting(data, built, metric: str) -> None:
    x, q = data
    truth, _ = exact_search(q, x, metric, K)
    found, _ = built[metric].search(q, K, {"max_lists": 16, "eps": 1.0})
    assert recall(found, truth) >= 0.9


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_no_pruning_is_exact(data, built, metric: str) -> None:
    x, q = data
    truth, truth_d = exact_search(q, x, metric, K)
    found, dists = built[metric].search(q, K, EVERYTHING)
    assert recall(found, truth) == 1.0
    np.testing.assert_allclose(dists, truth_d, rtol=1e-4, atol=1e-4)


def test_replicas_never_duplicate_an_id(data, built) -> None:
    _, q = data
    index = built["l2"]
    assert index.info["replication"] > 1.05
    for params in (EVERYTHING, {"max_lists": 8}):
        found, _ = index.search(q, 50, params)
        for row in found:
            kept = row[row >= 0]
            assert np.unique(kept).shape[0] == kept.shape[0]


def test_pruning_probes_fewer_lists_and_stats_add_up(data, built) -> None:
    _, q = data
    index = built["l2"]
    _, _, wide = index.search_with_stats(q, K, {"max_lists": 24, "eps": float("inf")})
    _, _, narrow = index.search_with_stats(q, K, {"max_lists": 24, "eps": 0.1})
    assert wide["lists_probed"] == [24] * NQ
    assert sum(narrow["lists_probed"]) < sum(wide["lists_probed"])
    assert min(narrow["lists_probed"]) >= 1
    for stats in (wide, narrow):
        assert all(b % index.rec_bytes == 0 for b in stats["bytes_read"])
        assert all(c * index.rec_bytes <= b for c, b in zip(stats["candidates_scored"], stats["bytes_read"],
                                                               strict=True))
    _, _, budget = index.search_with_stats(q, K, {"max_lists": 24, "eps": float("inf"),
                                                  "max_bytes": 3 * TARGET * index.rec_bytes})
    assert max(budget["bytes_read"]) <= 3 * TARGET * index.rec_bytes or max(budget["lists_probed"]) == 1


def test_allowed_mask_returns_k_allowed_rows(data, built) -> None:
    x, q = data
    allowed = np.random.default_rng(5).random(N) < 0.03
    found, _ = built["l2"].search(q, K, {"max_lists": 8, "eps": 0.5}, allowed)
    assert (found >= 0).all()  # ~180 allowed rows; extra probes reach k of them
    assert allowed[found].all()
    truth, _ = exact_search(q, x, "l2", K, allowed)
    assert recall(found, truth) >= 0.8
    few = np.zeros(N, dtype=bool)
    few[[7, 70, 700]] = True
    found, dists = built["l2"].search(q[:4], K, EVERYTHING, few)
    assert sorted(found[0][:3].tolist()) == [7, 70, 700]
    assert (found[:, 3:] == -1).all() and np.isinf(dists[:, 3:]).all()


def test_memory_budget_and_estimate(data, built) -> None:
    x, _ = data
    est = SPANNIndex.estimate(N, D, CONFIG)
    assert set(est) >= {"ram_bytes", "disk_bytes"}
    index = built["l2"]
    assert index.resident_bytes <= 1.3 * est["ram_bytes"]
    assert index.disk_bytes <= est["disk_bytes"]
    with pytest.raises(ResourceExhausted, match="budget"):
        SPANNIndex.build(x, "l2", SPANN(target_list_size=TARGET, memory_budget_mb=0.01))
    with pytest.raises(vecdb.ResourceExhausted):
        db = vecdb.connect(":memory:")
        try:
            col = db.create_collection("tight", dim=D, metric="l2",
                                       index=vecdb.SPANN(target_list_size=TARGET, memory_budget_mb=0.01))
            col.upsert(np.arange(N), x)
            col.optimize()
        finally:
            db.close()


def test_persistence_through_a_memory_mapped_file(tmp_path, data, built) -> None:
    x, q = data
    index = built["cosine"]
    meta, arrays = index.to_arrays()
    path = tmp_path / "spann.idx"
    write_array_file(path, {"index": meta}, arrays, FileIO())
    meta2, arrays2 = read_array_file(path)
    again = SPANNIndex.from_arrays(meta2["index"], arrays2, x)
    assert spann_module._is_mapped(again.recs) and not spann_module._is_mapped(index.recs)
    assert again.nbytes == again.resident_bytes < index.nbytes
    for params in ({"max_lists": 8}, EVERYTHING):
        for a, b in zip(index.search(q, K, params), again.search(q, K, params), strict=True):
            np.testing.assert_array_equal(a, b)
    fd = os.open(path, os.O_RDONLY)  # dropping the pages only makes the next reads cold
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    np.testing.assert_array_equal(again.search(q, K, {"max_lists": 8})[0], index.search(q, K, {"max_lists": 8})[0])


@pytest.mark.parametrize("damage", ["row_id", "list_start", "width", "centroids", "meta", "nav", "vectors"])
def test_corrupt_arrays_raise_value_error(data, built, damage: str) -> None:
    x, _ = data
    meta, arrays = built["l2"].to_arrays()
    meta, arrays = dict(meta), {k: np.array(v) for k, v in arrays.items()}
    vectors = x
    if damage == "row_id":
        arrays["postings"].view(np.uint32)[3, 0] = N + 1
    elif damage == "list_start":
        arrays["list_start"][2] = arrays["list_start"][3] + 1
    elif damage == "width":
        arrays["postings"] = arrays["postings"][:, :-1]
    elif damage == "centroids":
        arrays["centroids"][0, 0] = np.nan
    elif damage == "meta":
        meta["format"] = 99
    elif damage == "nav":
        meta["n_lists"] = spann_module.NAV_EXACT_MAX + 1
    else:
        vectors = x[:, :-1]
    with pytest.raises(ValueError):
        SPANNIndex.from_arrays(meta, arrays, vectors)


def test_hnsw_navigation_over_many_centroids(data, monkeypatch) -> None:
    x, q = data
    monkeypatch.setattr(spann_module, "NAV_EXACT_MAX", 16)
    index = SPANNIndex.build(x, "l2", CONFIG)
    assert index.nav is not None
    truth, _ = exact_search(q, x, "l2", K)
    found, _ = index.search(q, K, {"max_lists": 16})
    assert recall(found, truth) >= 0.9
    meta, arrays = index.to_arrays()
    assert any(name.startswith("nav.") for name in arrays)
    again = SPANNIndex.from_arrays(meta, arrays, x)
    np.testing.assert_array_equal(again.search(q, K, {"max_lists": 16})[0], found)


def test_quantized_postings_rerank(data) -> None:
    x, q = data
    sq = ScalarQuantizer(D, "l2")
    sq.train(x)
    index = SPANNIndex.build(x, "l2", CONFIG, quantizer=sq)
    assert index.recs.dtype == np.uint8 and index.recs.shape[1] == 4 + D
    truth, _truth_d = exact_search(q, x, "l2", K)
    found, _dists = index.search(q, K, {"max_lists": 16, "rerank": 4})
    assert recall(found, truth) >= 0.9
    found_all, _dists_all = index.search(q, K, {**EVERYTHING, "rerank": 8})
    assert recall(found_all, truth) >= 0.99
    meta, arrays = index.to_arrays()
    again = SPANNIndex.from_arrays(meta, arrays, x, sq)
    np.testing.assert_array_equal(again.search(q, K, {"max_lists": 16})[0], found)


def test_engine_path_with_params_and_stats(data) -> None:
    x, q = data
    db = vecdb.connect(":memory:")
    try:
        col = db.create_collection("disk", dim=D, metric="l2", index=vecdb.SPANN(target_list_size=TARGET))
        col.upsert(np.arange(N, dtype=np.int64) + 10, x)
        col.optimize()
        res = col.search(q, k=K, params={"nprobe": 16, "eps": 1.0, "max_lists": 16, "stats": True})
        truth, _ = exact_search(q, x, "l2", K)
        assert recall(res.ids - 10, truth) >= 0.9
        assert "spann" in str(res.stats)
        per_query = res.stats["index"][0]
        assert len(per_query["lists_probed"]) == NQ and max(per_query["lists_probed"]) <= 16
        raw = N * D * 4
        assert col.stats()["bytes_in_memory"] < 0.2 * raw  # postings served from the mapped file
    finally:
        db.close()


def test_corrupt_index_file_is_detected_and_rebuilt(tmp_path, data, caplog) -> None:
    x, q = data
    with vecdb.connect(tmp_path / "db") as db:
        col = db.create_collection("disk", dim=D, metric="l2", index=vecdb.SPANN(target_list_size=TARGET))
        col.upsert(np.arange(N, dtype=np.int64), x)
        col.optimize()
        before = col.search(q, k=K, params={"max_lists": 16}).ids
    files = list((tmp_path / "db").rglob("*.spann.idx"))
    assert len(files) == 1
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the posting records: the checksum must catch it
    files[0].write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="vecdb.engine"), vecdb.connect(tmp_path / "db") as db:
        col = db.collection("disk")
        truth, _ = exact_search(q, x, "l2", K)
        assert recall(col.search(q, k=K).ids, truth) >= 0.9  # answered meanwhile (exact or rebuilt index)
        col.optimize()
        np.testing.assert_array_equal(col.search(q, k=K, params={"max_lists": 16}).ids, before)
    assert "checksum mismatch" in caplog.text and "rebuilding" in caplog.text
    meta, _ = read_array_file(files[0])  # rewritten whole
    assert meta["index"]["n"] == N


def test_prefetch_of_mapped_lists_keeps_results(tmp_path, data, built) -> None:
    x, q = data
    meta, arrays = built["l2"].to_arrays()
    write_array_file(tmp_path / "p.idx", {"index": meta}, arrays, FileIO())
    meta2, arrays2 = read_array_file(tmp_path / "p.idx")
    index = SPANNIndex.from_arrays(meta2["index"], arrays2, x)
    assert index._map_addr != 0 and built["l2"]._map_addr == 0
    plain = index.search(q, K, {"max_lists": 16})
    fetched = index.search(q, K, {"max_lists": 16, "prefetch": True})
    for a, b in zip(plain, fetched, strict=True):
        np.testing.assert_array_equal(a, b)
    order = np.arange(index.n_lists, dtype=np.int64)
    assert prefetch_lists(index._map_addr, index.list_start, order, index.n_lists, index.rec_bytes) == 0
