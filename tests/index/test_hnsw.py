"""HNSW index: recall against exact search, persistence, masks, inserts, repair, concurrency, SQ8."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from vecdb.config import HNSW
from vecdb.index.hnsw import HNSWIndex
from vecdb.quant.base import Quantizer

N, D, NQ, K = 20_000, 64, 200, 10
CONFIG = HNSW(m=16, ef_construction=100)


def _clustered(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, centers.shape[0], n)
    return (centers[picks] + rng.normal(size=(n, centers.shape[1]))).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = rng.normal(scale=2.0, size=(64, D)).astype(np.float32)
    return _clustered(rng, N, centers), _clustered(rng, NQ, centers)


def exact(x: np.ndarray, q: np.ndarray, k: int, metric: str, allowed: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k offsets in float64 (disallowed rows excluded)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "l2":
        dist = (q64 * q64).sum(1)[:, None] + (x64 * x64).sum(1)[None, :] - 2 * q64 @ x64.T
    elif metric == "ip":
        dist = -(q64 @ x64.T)
    else:
        xn = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        qn = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        dist = 1.0 - qn @ xn.T
    if allowed is not None:
        dist[:, ~allowed] = np.inf
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.fixture(scope="module")
def l2_index(data: tuple[np.ndarray, np.ndarray]) -> HNSWIndex:
    return HNSWIndex.build(data[0], "l2", CONFIG)


def check_results(ids: np.ndarray, dists: np.ndarray, n: int) -> None:
    valid = ids >= 0
    assert np.all(ids[valid] < n)
    assert np.all(np.diff(np.where(valid, dists, np.inf), axis=1) >= 0)
    for row in ids:
        kept = row[row >= 0]
        assert len(set(kept.tolist())) == len(kept)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_recall_at_fixed_ef(data: tuple[np.ndarray, np.ndarray], l2_index: HNSWIndex, metric: str) -> None:
    x, q = data
    index = l2_index if metric == "l2" else HNSWIndex.build(x, metric, CONFIG)
    ids, dists = index.search(q, K, {"ef": 64})
    check_results(ids, dists, N)
    assert recall(ids, exact(x, q, K, metric)) >= 0.95
    # one query at a time takes the single-thread path and must agree with the batch path
    one = np.vstack([index.search(q[i : i + 1], K, {"ef": 64})[0] for i in range(20)])
    np.testing.assert_array_equal(one, ids[:20])


def test_distances_match_the_metric(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data[0][:3000], data[1][:20]
    for metric in ("l2", "ip", "cosine"):
        index = HNSWIndex.build(x, metric, CONFIG)
        ids, dists = index.search(q, K, {"ef": 128})
        if metric == "l2":
            want = ((q[:, None, :] - x[ids]) ** 2).sum(-1)
        elif metric == "ip":
            want = -(q[:, None, :] * x[ids]).sum(-1)
        else:
            xn = x[ids] / np.linalg.norm(x[ids], axis=-1, keepdims=True)
            want = 1.0 - (q[:, None, :] / np.linalg.norm(q, axis=1)[:, None, None] * xn).sum(-1)
        np.testing.assert_allclose(dists, want, rtol=1e-4, atol=1e-4)
        assert recall(ids, exact(x, q, K, metric)) >= 0.95


def test_roundtrip_gives_identical_results(data: tuple[np.ndarray, np.ndarray], l2_index: HNSWIndex) -> None:
    x, q = data
    meta, arrays = l2_index.to_arrays()
    frozen = {}
    for name, a in arrays.items():  # the engine hands back read-only memory maps
        b = np.array(a)
        b.flags.writeable = False
        frozen[name] = b
    loaded = HNSWIndex.from_arrays(meta, frozen, x)
    for params in ({"ef": 16}, {"ef": 64}):
        a_ids, a_d = l2_index.search(q, K, params)
        b_ids, b_d = loaded.search(q, K, params)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_d, b_d)
    assert loaded.nbytes == l2_index.nbytes


def test_masked_rows_are_never_returned(data: tuple[np.ndarray, np.ndarray], l2_index: HNSWIndex) -> None:
    x, q = data
    rng = np.random.default_rng(1)
    for frac in (0.5, 0.05):
        allowed = rng.random(N) < frac
        ids, dists = l2_index.search(q, K, {"ef": 64}, allowed=allowed)
        check_results(ids, dists, N)
        assert np.all(ids >= 0), "k results expected when enough rows are allowed"
        assert np.all(allowed[ids])
        assert recall(ids, exact(x, q, K, "l2", allowed)) >= 0.9
    # very selective: 15 allowed rows far apart; the search must still fill k from them
    allowed = np.zeros(N, dtype=bool)
    allowed[rng.choice(N, 15, replace=False)] = True
    ids, _ = l2_index.search(q[:10], K, {"ef": 16}, allowed=allowed)
    assert np.all(ids >= 0) and np.all(allowed[ids])
    # a mask shorter than the index: rows past its end are disallowed
    ids, _ = l2_index.search(q[:5], K, {}, allowed=np.ones(100, dtype=bool))
    assert np.all((ids >= 0) & (ids < 100))


def test_insert_then_search(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    index = HNSWIndex.build(x[:12_000], "l2", CONFIG)
    index.insert(x[12_000:16_000])
    index.insert(x[16_000:])
    assert len(index) == N
    ids, dists = index.search(q, K, {"ef": 64})
    check_results(ids, dists, N)
    assert recall(ids, exact(x, q, K, "l2")) >= 0.95
    self_ids, self_d = index.search(x[-50:], 1, {"ef": 32})
    np.testing.assert_array_equal(self_ids[:, 0], np.arange(N - 50, N))
    assert np.all(self_d[:, 0] < 1e-3)


def test_delete_and_repair_keep_recall(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    index = HNSWIndex.build(x, "l2", CONFIG)
    deleted = np.random.default_rng(3).random(N) < 0.3
    index.repair(deleted)
    g = index._g
    live_links = g.links0[~deleted]
    live_counts = g.counts0[~deleted]
    for row, c in zip(live_links, live_counts, strict=True):
        assert not deleted[row[:c]].any()
    assert np.all(g.counts0[deleted] == 0)
    assert not deleted[g.entry]
    ids, dists = index.search(q, K, {"ef": 64}, allowed=~deleted)
    check_results(ids, dists, N)
    assert not deleted[ids[ids >= 0]].any()
    assert recall(ids, exact(x, q, K, "l2", ~deleted)) >= 0.95
    # even without the mask nothing deleted is reachable any more
    ids, _ = index.search(q, K, {"ef": 64})
    assert not deleted[ids[ids >= 0]].any()


def test_concurrent_searches_during_insert(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    index = HNSWIndex.build(x[:5000], "l2", CONFIG)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(batch: int) -> None:
        try:
            while not stop.is_set():
                for i in range(0, NQ, batch):
                    ids, dists = index.search(q[i : i + batch], K, {"ef": 32})
                    check_results(ids, dists, N)
                    assert np.all(ids[:, 0] >= 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(b,)) for b in (1, 1, 16)]
    for t in threads:
        t.start()
    try:
        for start in range(5000, N, 3000):
            index.insert(x[start : start + 3000])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    ids, _ = index.search(q, K, {"ef": 64})
    assert recall(ids, exact(x, q, K, "l2")) >= 0.95


def _corruptions(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[tuple[dict, dict]]:
    out = []
    a = {k: v.copy() for k, v in arrays.items()}
    a["links0"][5, 0] = N + 3
    out.append((meta, a))
    a = {k: v.copy() for k, v in arrays.items()}
    a["counts0"][7] = 999
    out.append((meta, a))
    a = {k: v.copy() for k, v in arrays.items()}
    a["links0"] = a["links0"][:, :-1].copy()
    out.append((meta, a))
    a = {k: v.copy() for k, v in arrays.items()}
    a["up_off"][int(meta["entry"])] = 10**8
    out.append((meta, a))
    out.append(({**meta, "entry": N + 1}, arrays))
    out.append(({k: v for k, v in meta.items() if k != "max_level"}, arrays))
    out.append((meta, {k: v for k, v in arrays.items() if k != "counts0"}))
    return out


def test_corrupt_arrays_raise_value_error(data: tuple[np.ndarray, np.ndarray], l2_index: HNSWIndex) -> None:
    x, _ = data
    meta, arrays = l2_index.to_arrays()
    for bad_meta, bad_arrays in _corruptions(meta, arrays):
        with pytest.raises(ValueError):
            HNSWIndex.from_arrays(bad_meta, bad_arrays, x)
    with pytest.raises(ValueError):
        HNSWIndex.from_arrays(meta, arrays, x[:-1])


class StandInSQ(Quantizer):
    """8-bit per-dimension scalar quantizer, ``decoded = offset + scale * code``."""

    kind: ClassVar[str] = "sq"
    bits = 8

    def __init__(self, dim: int, metric: str) -> None:
        super().__init__(dim, metric)
        self.scale: np.ndarray | None = None
        self.offset: np.ndarray | None = None

    def train(self, sample: np.ndarray) -> None:
        lo, hi = sample.min(0), sample.max(0)
        self.offset = lo.astype(np.float32)
        self.scale = ((hi - lo) / 255.0).astype(np.float32)

    @property
    def is_trained(self) -> bool:
        return self.scale is not None

    @property
    def code_size(self) -> int:
        return self.dim

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        assert self.scale is not None and self.offset is not None
        safe = np.where(self.scale > 0, self.scale, 1.0)
        return np.clip(np.rint((vectors - self.offset) / safe), 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        assert self.scale is not None and self.offset is not None
        return self.offset + self.scale * codes.astype(np.float32)

    def prepare(self, query: np.ndarray) -> np.ndarray:
        return query

    def distances(self, prepared: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return ((self.decode(codes) - prepared) ** 2).sum(1)

    @property
    def nbytes(self) -> int:
        return 0

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Quantizer:
        raise NotImplementedError


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_quantized_traversal(data: tuple[np.ndarray, np.ndarray], metric: str) -> None:
    x, q = data
    sq = StandInSQ(D, metric)
    sq.train(x)
    index = HNSWIndex.build(x, metric, CONFIG, quantizer=sq)
    ids, dists = index.search(q, K, {"ef": 64, "rerank": 4})
    check_results(ids, dists, N)
    assert recall(ids, exact(x, q, K, metric)) >= 0.95
    want = ((q[:, None, :] - x[ids]) ** 2).sum(-1) if metric == "l2" else -(q[:, None, :] * x[ids]).sum(-1)
    np.testing.assert_allclose(dists, want, rtol=1e-4, atol=1e-3)  # re-ranked with exact vectors
    assert index.nbytes >= N * D  # the codes live in the index
    meta, arrays = index.to_arrays()
    loaded = HNSWIndex.from_arrays(meta, arrays, x, sq)
    np.testing.assert_array_equal(loaded.search(q, K, {"ef": 64})[0], index.search(q, K, {"ef": 64})[0])
    with pytest.raises(ValueError):
        HNSWIndex.from_arrays(meta, arrays, x, None)


def test_tiny_and_bad_inputs() -> None:
    one = np.ones((1, 3), dtype=np.float32)
    index = HNSWIndex.build(one, "l2", HNSW(m=4, ef_construction=8))
    ids, dists = index.search(one, 3, {})
    assert ids.tolist() == [[0, -1, -1]] and dists[0, 0] == 0.0 and np.isinf(dists[0, 1])
    empty = HNSWIndex.build(np.zeros((0, 3), np.float32), "l2", HNSW(m=4, ef_construction=8))
    assert empty.search(one, 2, {})[0].tolist() == [[-1, -1]]
    empty.insert(one)
    assert empty.search(one, 1, {})[0].tolist() == [[0]]
    with pytest.raises(ValueError):
        index.search(np.ones((1, 4), np.float32), 1, {})
    with pytest.raises(ValueError):
        index.search(one, 1, {"ef": 0})
    with pytest.raises(ValueError):
        HNSWIndex.build(one, "hamming", HNSW())
    with pytest.raises(ValueError):
        index.repair(np.zeros(2, dtype=bool))
