"""Thread pinning and the machine record every result row carries."""

from __future__ import annotations

import json
import os

import faiss
import numba
import pytest

from vecdb.bench.environment import machine_info
from vecdb.bench.threads import pinned_threads


def test_pinned_threads_sets_and_restores_every_pool() -> None:
    faiss_before, numba_before = faiss.omp_get_max_threads(), numba.get_num_threads()
    env_before = os.environ.get("OPENBLAS_NUM_THREADS")
    with pinned_threads(1) as applied:
        assert faiss.omp_get_max_threads() == 1 and numba.get_num_threads() == 1
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["VECDB_THREADS"] == "1"
        assert applied == {"threads": 1, "threadpoolctl": True, "faiss_omp": 1, "numba": 1}
    assert faiss.omp_get_max_threads() == faiss_before and numba.get_num_threads() == numba_before
    assert os.environ.get("OPENBLAS_NUM_THREADS") == env_before
    with pytest.raises(ValueError, match="threads"), pinned_threads(0):
        pass


def test_machine_info_is_json_and_names_versions() -> None:
    info = json.loads(json.dumps(machine_info()))
    assert info["cores"] >= 1 and info["arch"]
    assert {"numpy", "faiss-cpu", "vecdb"} <= set(info["versions"])
    assert info["commit"] is None or len(info["commit"].split("-")[0]) == 40
    assert "simd" in info
