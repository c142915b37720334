"""Compressed collections end to end: Flat + SQ / PQ / BEBR codes, fast scans, re-ranking, reopen."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions

N, DIM, K = 3000, 32, 10
QUANTIZERS = {
    "sq8": vecdb.SQ(),
    "pq4": vecdb.PQ(m=16, bits=4),  # fast-scan layout
    "pq8": vecdb.PQ(m=8, bits=8),
    "bebr2": vecdb.BEBR(bits=2, learned=False),  # bit planes through the fast scan
}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((30, DIM)).astype(np.float32) * 3
    base = centres[rng.integers(0, 30, N)] + rng.standard_normal((N, DIM)).astype(np.float32)
    queries = centres[rng.integers(0, 30, 25)] + rng.standard_normal((25, DIM)).astype(np.float32)
    return base.astype(np.float32), queries.astype(np.float32)


def _recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(t)) / K for g, t in zip(got, truth, strict=True)]))


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_compressed_flat_collection_searches_reranks_and_reopens(tmp_path, name: str) -> None:
    base, queries = _data()
    options = StoreOptions(index_min_rows=256, background=False)
    db = Database.open(tmp_path / "data", options=options)
    col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.Flat(), quantization=QUANTIZERS[name])
    col.upsert(np.arange(N), base)
    col.optimize()
    assert col.stats()["indexed_segments"] == 1
    truth = col.search(queries, k=K, params={"exact": True}).ids
    # 8-16 byte codes of clustered 32-d data: a shortlist of 10 k recovers the exact top-k
    res = col.search(queries, k=K, params={"rerank": 10})
    assert res.stats["plans"] == ["qflat"]
    assert _recall(res.ids, truth) >= 0.95, name
    # re-ranked with the stored fp32 vectors: the reported distances are exact
    exact_d = ((base[res.ids[0]] - queries[0]) ** 2).sum(1)
    np.testing.assert_allclose(res.distances[0], exact_d, rtol=1e-4, atol=1e-3)
    # a shortlist of only k: the codes' own top-k, still far better than chance
    assert _recall(col.search(queries, k=K, params={"rerank": 1}).ids, truth) >= 0.2
    col.delete(res.ids[:, 0])
    after = col.search(queries, k=K, params={"rerank": 10})
    assert not np.isin(after.ids, res.ids[:, 0]).any()
    db.close()

    db = Database.open(tmp_path / "data", options=options)
    again = db.collection("c").search(queries, k=K, params={"rerank": 10})
    np.testing.assert_array_equal(again.ids, after.ids)
    db.close()
