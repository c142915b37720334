"""Small seeded data sets shared by the quantizer tests (tests never read the benchmark files)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.quant.data import clustered


@pytest.fixture(scope="session", autouse=True)
def _single_thread() -> Iterator[None]:
    """One BLAS / OpenMP thread: on a shared machine, spinning thread pools make these tiny runs slow."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only the bench extra installs it
        yield
    else:
        with threadpool_limits(1):
            yield
    faiss.omp_set_num_threads(previous)


@pytest.fixture(scope="session")
def blobs() -> np.ndarray:
    """(3000, 32) float32 clustered points."""
    return clustered(3000, 32, 30, seed=1)
