"""IVF index: recall, exactness at nprobe = nlist, masks, codes, persistence, corruption, engine path."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.config import IVF
from vecdb.index.flat import exact_search
from vecdb.index.ivf import IVFIndex
from vecdb.quant.scalar import ScalarQuantizer

N, D, NQ, K = 6000, 16, 60, 10


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
    return clustered(11, N, NQ)


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, np.ndarray]) -> dict[str, IVFIndex]:
    x, _ = data
    return {m: IVFIndex.build(x, m, IVF(nlist=64)) for m in ("l2", "ip", "cosine")}


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_at_fixed_nprobe(data, built, metric: str) -> None:
    x, q = data
    truth, _ = exact_search(q, x, metric, K)
    found, _ = built[metric].search(q, K, {"nprobe": 8})
    assert recall(found, truth) >= 0.9


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_all_lists_is_exact(data, built, metric: str) -> None:
    x, q = data
    truth, truth_d = exact_search(q, x, metric, K)
    found, dists = built[metric].search(q, K, {"nprobe": 64})
    assert recall(found, truth) == 1.0
    np.testing.assert_allclose(dists, truth_d, rtol=1e-4, atol=1e-4)


def test_default_nlist_and_posting_lists_cover_every_row(data) -> None:
    x, _ = data
    index = IVFIndex.build(x[:2500], "l2", IVF())
    assert index.nlist == 200  # 4 * sqrt(2500)
    assert sorted(index.rows.tolist()) == list(range(2500))
    assert index.list_start[0] == 0 and index.list_start[-1] == 2500


def test_stats_count_lists_bytes_and_candidates(data, built) -> None:
    _, q = data
    index = built["l2"]
    _, _, stats = index.search_with_stats(q[:5], K, {"nprobe": 4})
    assert stats["lists_probed"] == [4] * 5
    lens = np.diff(index.list_start)
    assert all(s <= lens.max() * 4 for s in stats["candidates_scored"])
    assert all(b == c * (4 + 4 * D) for b, c in zip(stats["bytes_read"], stats["candidates_scored"], strict=True))


def test_allowed_mask_returns_k_allowed_rows(data, built) -> None:
    x, q = data
    rng = np.random.default_rng(3)
    allowed = rng.random(N) < 0.05
    found, _dists = built["l2"].search(q, K, {"nprobe": 4, "max_lists": 64}, allowed)
    assert (found >= 0).all()  # 300 allowed rows, 64 lists reachable: k always filled
    assert allowed[found].all()
    truth, _ = exact_search(q, x, "l2", K, allowed)
    assert recall(found, truth) >= 0.9


def test_fewer_allowed_rows_than_k_pads(data, built) -> None:
    _, q = data
    allowed = np.zeros(N, dtype=bool)
    allowed[[5, 500, 4000]] = True
    found, dists = built["l2"].search(q[:3], K, {"nprobe": 64}, allowed)
    assert sorted(found[0][:3].tolist()) == [5, 500, 4000]
    assert (found[:, 3:] == -1).all() and np.isinf(dists[:, 3:]).all()


def test_quantized_codes_rerank(data) -> None:
    x, q = data
    sq = ScalarQuantizer(D, "l2")
    sq.train(x)
    index = IVFIndex.build(x, "l2", IVF(nlist=64), quantizer=sq)
    truth, _truth_d = exact_search(q, x, "l2", K)
    found, _dists = index.search(q, K, {"nprobe": 8, "rerank": 4})
    assert recall(found, truth) >= 0.9
    meta, arrays = index.to_arrays()
    again = IVFIndex.from_arrays(meta, _read_only(arrays), x, sq)
    np.testing.assert_array_equal(again.search(q, K, {"nprobe": 8})[0], found)
    with pytest.raises(ValueError, match="quantizer"):
        IVFIndex.from_arrays(meta, arrays, x, None)


def _read_only(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, a in arrays.items():
        c = np.array(a)
        c.flags.writeable = False
        out[name] = c
    return out


def test_persistence_round_trip_identical(data, built) -> None:
    x, q = data
    index = built["cosine"]
    meta, arrays = index.to_arrays()
    again = IVFIndex.from_arrays(meta, _read_only(arrays), x)
    for a, b in zip(index.search(q, K, {"nprobe": 8}), again.search(q, K, {"nprobe": 8}), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["list_start", "rows_range", "rows_duplicate", "centroids", "meta", "vectors"])
def test_corrupt_arrays_raise_value_error(data, built, damage: str) -> None:
    x, _ = data
    meta, arrays = built["l2"].to_arrays()
    meta, arrays = dict(meta), {k: np.array(v) for k, v in arrays.items()}
    vectors = x
    if damage == "list_start":
        arrays["list_start"][5] = arrays["list_start"][6] + 1
    elif damage == "rows_range":
        arrays["rows"][0] = N + 7
    elif damage == "rows_duplicate":
        arrays["rows"][0] = arrays["rows"][1]
    elif damage == "centroids":
        arrays["centroids"] = arrays["centroids"][:-1]
    elif damage == "meta":
        del meta["nlist"]
    else:
        vectors = x[:-1]
    with pytest.raises(ValueError):
        IVFIndex.from_arrays(meta, arrays, vectors)


def test_engine_builds_and_searches_ivf(data) -> None:
    x, q = data
    db = vecdb.connect(":memory:")
    try:
        col = db.create_collection("ivf", dim=D, metric="l2", index=vecdb.IVF(nlist=32))
        col.upsert(np.arange(N, dtype=np.int64) + 1000, x)
        col.optimize()
        res = col.search(q[:10], k=K, params={"nprobe": 32, "stats": True})
        truth, _ = exact_search(q[:10], x, "l2", K)
        assert recall(res.ids - 1000, truth) == 1.0
    finally:
        db.close()
