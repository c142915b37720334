"""vecdb inside the ann-benchmarks harness: the algorithm interface that harness calls.

The harness builds ``Vecdb(*base_args, *args)`` (``'@metric'`` becomes euclidean | angular), calls
``fit(X)``, then for each query-argument group ``set_query_arguments(*group)`` and ``query(v, n)`` per
query (or ``batch_query`` + ``get_batch_results``), reading ``get_memory_usage()`` (kB) around ``fit``.
See bench/README.md for the config.yml and the module.py to drop into ann_benchmarks/algorithms/vecdb/.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecdb.bench.algorithms.vecdb_adapter import VecdbAlgorithm

_METRICS = {"euclidean": "l2", "angular": "cosine", "ip": "ip"}


class Vecdb:
    """One vecdb collection under the harness: ``Vecdb("euclidean", "HNSW16", {"ef_construction": 200})``.

    index: a vecdb index string ("HNSW16", "HNSW32,SQ8", "IVF1024", "SPANN", "Flat").
    build_args: config fields by name (ef_construction, nlist, replicas...).
    """

    def __init__(self, metric: str, index: str = "HNSW16", build_args: dict[str, Any] | None = None) -> None:
        if metric not in _METRICS:
            raise ValueError(f"vecdb supports metrics {sorted(_METRICS)}, not {metric!r}")
        self._algo = VecdbAlgorithm(index, _METRICS[metric], build_args)
        self._index = index
        self._query: dict[str, Any] = {}
        self._results: list[np.ndarray] = []
        self.name = f"vecdb({index})"

    def fit(self, X: np.ndarray) -> None:
        """Build: upsert every row (ids = row numbers) and optimize."""
        self._algo.fit(np.asarray(X, dtype=np.float32))

    def set_query_arguments(self, *args: Any) -> None:
        """One positional value: ``ef`` for HNSW, ``nprobe`` for IVF/SPANN; or a dict of params."""
        if len(args) == 1 and isinstance(args[0], dict):
            params = dict(args[0])
        elif len(args) == 1:
            params = {self._knob(): args[0]}
        elif not args:
            params = {}
        else:
            raise ValueError(f"vecdb takes one query argument (or a dict), got {args!r}")
        self._algo.set_query_arguments(**params)
        self._query = params
        knobs = ",".join(f"{k}={v}" for k, v in params.items())
        self.name = f"vecdb({self._index}{',' + knobs if knobs else ''})"

    def _knob(self) -> str:
        kind = self._algo.index_config.kind
        if kind == "hnsw":
            return "ef"
        if kind in ("ivf", "spann"):
            return "nprobe"
        raise ValueError(f"a {kind} index takes no query argument")

    def query(self, v: np.ndarray, n: int) -> np.ndarray:
        """Row numbers of the ``n`` nearest training rows to ``v`` (d,)."""
        ids = self._algo.query(np.asarray(v, dtype=np.float32), n)
        return ids[ids >= 0]

    def batch_query(self, X: np.ndarray, n: int) -> None:
        """Answer every row of ``X`` in one call; fetch with ``get_batch_results``."""
        ids = self._algo.batch_query(np.asarray(X, dtype=np.float32), n)
        self._results = [row[row >= 0] for row in ids]

    def get_batch_results(self) -> list[np.ndarray]:
        return self._results

    def get_memory_usage(self) -> float:
        """Resident memory of this process in kB (the harness takes the difference around ``fit``)."""
        import psutil

        return psutil.Process().memory_info().rss / 1024

    def get_additional(self) -> dict[str, Any]:
        """Extra per-run fields the harness stores: vecdb's own index memory and disk use."""
        return {"index_bytes": self._algo.memory_bytes(), "disk_bytes": self._algo.disk_bytes()}

    def done(self) -> None:
        self._algo.close()

    def __str__(self) -> str:
        return self.name
