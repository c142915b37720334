"""Datasets: ann-benchmarks HDF5 round trip, ground truth, random sets and the other loaders."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vecdb.bench.datasets import (
    RANDOM_SETS,
    Dataset,
    ground_truth,
    load_dataset,
    read_hdf5,
    write_fvecs,
    write_hdf5,
)


def brute_force(train: np.ndarray, test: np.ndarray, metric: str, k: int) -> np.ndarray:
    """Sorted distances (ann-benchmarks metric) of the exact top-k, by numpy in float64."""
    x, q = train.astype(np.float64), test.astype(np.float64)
    if metric == "euclidean":
        d = np.sqrt(np.maximum(((q[:, None, :] - x[None]) ** 2).sum(-1), 0))
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    return np.sort(d, axis=1)[:, :k]


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
def test_ground_truth_matches_brute_force(metric: str) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 7)).astype(np.float32)
    test = rng.normal(size=(30, 7)).astype(np.float32)
    ids, dist = ground_truth(train, test, metric, k=20)
    np.testing.assert_allclose(dist, brute_force(train, test, metric, 20), rtol=1e-5, atol=1e-5)
    assert ids.shape == (30, 20) and ids.dtype == np.int64
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_ground_truth_breaks_ties_by_smaller_id() -> None:
    train = np.zeros((10, 3), dtype=np.float32)  # every row at the same distance
    ids, _ = ground_truth(train, np.ones((2, 3), dtype=np.float32), "euclidean", k=5)
    assert ids.tolist() == [[0, 1, 2, 3, 4]] * 2


def test_hdf5_round_trip_keeps_attributes_and_converts_float16(tmp_path, tiny: Dataset) -> None:
    path = tmp_path / "t.hdf5"
    ds = Dataset("t", tiny.train.astype(np.float16), tiny.test.astype(np.float16), "euclidean",
                 attributes={"year": np.arange(len(tiny.train)) % 30},
                 test_attributes={"lang": np.array([b"en"] * len(tiny.test))})
    write_hdf5(ds, path)
    with h5py.File(path, "r") as f:
        assert f.attrs["distance"] == "euclidean"
        assert f["neighbors"].dtype == np.int32 and f["neighbors"].shape == (len(tiny.test), 100)
        assert f["train"].dtype == np.float16  # written as given
    back = read_hdf5(path)
    assert back.train.dtype == np.float32 and back.test.dtype == np.float32
    np.testing.assert_array_equal(back.train, tiny.train.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(back.attributes["year"], np.arange(len(tiny.train)) % 30)
    assert list(back.test_attributes) == ["lang"]
    np.testing.assert_array_equal(back.neighbors, ds.neighbors)


def test_missing_ground_truth_is_computed(tmp_path, tiny: Dataset) -> None:
    path = tmp_path / "bare.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "angular"
        f["train"], f["test"] = tiny.train, tiny.test[:20]
    ds = load_dataset(str(path))
    assert ds.metric == "angular" and ds.neighbors is not None
    np.testing.assert_allclose(ds.distances[:, :10], brute_force(tiny.train, tiny.test[:20], "angular", 10),
                               atol=1e-5)


def test_random_sets_follow_the_ann_benchmarks_shapes() -> None:
    ds = load_dataset("random-xs-20-euclidean")
    n, dim, _, metric = RANDOM_SETS["random-xs-20-euclidean"]
    assert ds.train.shape == (n * 9 // 10, dim) and ds.test.shape == (n // 10, dim)
    assert ds.metric == metric and ds.neighbors.shape == (n // 10, 100)
    again = load_dataset("random-xs-20-euclidean")
    np.testing.assert_array_equal(ds.train, again.train)  # seeded, so every machine gets the same set


def test_subset_recomputes_ground_truth(tiny: Dataset) -> None:
    cut = tiny.subset(limit_train=500, limit_queries=50)
    assert cut.train.shape[0] == 500 and cut.test.shape[0] == 50
    assert cut.neighbors.max() < 500
    np.testing.assert_allclose(cut.distances[:, :10], brute_force(cut.train, cut.test, "euclidean", 10),
                               atol=1e-4)


def test_with_metric_switches_ground_truth(tiny: Dataset) -> None:
    ang = tiny.with_metric("cosine")
    assert ang.metric == "angular" and ang.vecdb_metric == "cosine"
    np.testing.assert_allclose(ang.distances[:, :5], brute_force(tiny.train, tiny.test, "angular", 5),
                               atol=1e-5)


def test_npy_fvecs_and_parquet_loaders_hold_out_disjoint_queries(tmp_path) -> None:
    x = np.random.default_rng(1).normal(size=(400, 6)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    write_fvecs(x, tmp_path / "v.fvecs")
    pq.write_table(pa.table({"vector": list(x), "year": np.arange(400)}), tmp_path / "v.parquet")
    loaded = [load_dataset(str(tmp_path / f"v.{ext}"), n_queries=40) for ext in ("npy", "fvecs", "parquet")]
    for ds in loaded:
        assert ds.train.shape == (360, 6) and ds.test.shape == (40, 6)
        rows = {r.tobytes() for r in ds.train}
        assert not any(q.tobytes() in rows for q in ds.test)
        np.testing.assert_array_equal(ds.train, loaded[0].train)
    assert loaded[2].attributes["year"].shape == (360,)


def test_bad_inputs_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="random-xs-20-euclidean"):
        load_dataset("nope.hdf5")
    (tmp_path / "bad.fvecs").write_bytes(b"\x03\x00\x00\x00" + b"\x00" * 5)
    with pytest.raises(ValueError, match="multiple of the row size"):
        load_dataset(str(tmp_path / "bad.fvecs"))
    with pytest.raises(ValueError, match="unknown metric"):
        load_dataset("random-500x4-euclidean").with_metric("hamming")
