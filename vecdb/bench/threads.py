"""Pin the thread count of every library a benchmark touches, so runs compare like with like."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[dict[str, Any]]:
    """Limit BLAS/OpenMP (threadpoolctl), faiss and numba to ``n`` threads inside the block.

    Yields what was set; the previous settings come back on exit. hnswlib and vecdb adapters also
    receive ``n`` directly (their pools are per index).
    """
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    applied: dict[str, Any] = {"threads": n}
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
            applied["threadpoolctl"] = True
        except ImportError:
            applied["threadpoolctl"] = False
        try:
            import faiss

            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(n)
            stack.callback(faiss.omp_set_num_threads, before)
            applied["faiss_omp"] = n
        except ImportError:
            pass
        try:
            import numba

            before_numba = numba.get_num_threads()
            # numba cannot grow past the pool it started with (NUMBA_NUM_THREADS).
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            stack.callback(numba.set_num_threads, before_numba)
            applied["numba"] = numba.get_num_threads()
        except ImportError:
            pass
        # A BLAS/OpenMP library loaded later inside the block (scipy's OpenBLAS, pulled in lazily)
        # reads these at load time, which threadpoolctl cannot reach. VECDB_THREADS is for vecdb's pools.
        for name in _ENV_VARS:
            stack.callback(_restore_env, name, os.environ.get(name))
            os.environ[name] = str(n)
        yield applied


_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECDB_THREADS")


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
