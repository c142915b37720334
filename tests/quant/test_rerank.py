"""rerank: exact top-k among candidates, memory-mapped rows, padding and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vecdb.kernels import reference
from vecdb.quant.rerank import rerank


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_rerank_is_exact_top_k_of_candidates(blobs: np.ndarray, metric: str) -> None:
    rng = np.random.default_rng(0)
    cand = rng.choice(len(blobs), 200, replace=False)
    q = blobs[11] + 0.05
    offs, dist = rerank(q, cand, blobs, metric, 10)
    full = reference.distances(q, blobs, metric)
    want = cand[np.lexsort((cand, full[cand]))][:10]
    np.testing.assert_array_equal(offs, want)
    np.testing.assert_allclose(dist, full[want], rtol=1e-5, atol=1e-5)


def test_rerank_memmap_padding_and_duplicates(blobs: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "rows.f32"
    blobs.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=blobs.shape)
    offs, dist = rerank(blobs[3], np.array([3, 3, 9, -1]), mm, "l2", 4)
    assert offs.tolist()[:2] == [3, 9] and offs.tolist()[2:] == [-1, -1]
    assert dist[0] == 0 and np.isinf(dist[2:]).all()
    empty_offs, _ = rerank(blobs[3], np.array([], dtype=np.int64), mm, "l2", 2)
    assert empty_offs.tolist() == [-1, -1]


def test_rerank_rejects_bad_input(blobs: np.ndarray) -> None:
    with pytest.raises(ValueError, match="out of range"):
        rerank(blobs[0], np.array([len(blobs)]), blobs, "l2", 1)
    with pytest.raises(ValueError, match="dimension"):
        rerank(blobs[0, :5], np.array([0]), blobs, "l2", 1)
    with pytest.raises(ValueError, match="k >= 1"):
        rerank(blobs[0], np.array([0]), blobs, "l2", 0)
