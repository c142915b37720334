"""hnswlib baseline (optional extra): specs "M16" or "M16,efc200" (efc = ef_construction)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vecdb.bench.algorithms.base import Algorithm, pad_ids

_SPEC = re.compile(r"^(?:HNSW|M)(\d+)(?:[,_]efc(\d+))?$", re.IGNORECASE)
_SPACE = {"l2": "l2", "ip": "ip", "cosine": "cosine"}


def parse_hnswlib_spec(spec: str) -> dict[str, int]:
    """"M16" / "HNSW16" / "M16,efc200" -> {"m": 16, "ef_construction": 200 (default 200)}."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise ValueError(f"bad hnswlib spec {spec!r}: expected M<m>[,efc<ef_construction>], e.g. M16")
    return {"m": int(match[1]), "ef_construction": int(match[2] or 200)}


class HnswlibAlgorithm(Algorithm):
    """hnswlib's HNSW; ``ef`` is set per query batch, ``threads`` for the build and batch queries."""

    system = "hnswlib"
    query_params = frozenset({"ef"})

    def __init__(self, spec: str, metric: str, build_args: dict[str, Any] | None = None,
                 threads: int = 1) -> None:
        super().__init__(spec, metric, build_args, threads)
        parsed = parse_hnswlib_spec(spec)
        self.m = int(self.build_args.get("m", parsed["m"]))
        self.ef_construction = int(self.build_args.get("ef_construction", parsed["ef_construction"]))
        self.index: Any = None
        self._filter_fn: Any = None

    def fit(self, train: np.ndarray, attributes: dict[str, np.ndarray] | None = None) -> None:
        import hnswlib

        x = np.ascontiguousarray(train, dtype=np.float32)
        self.index = hnswlib.Index(space=_SPACE[self.metric], dim=x.shape[1])
        self.index.init_index(max_elements=len(x), M=self.m, ef_construction=self.ef_construction,
                              random_seed=100)
        self.index.set_num_threads(self.threads)
        self.index.add_items(x, np.arange(len(x)), num_threads=self.threads)

    def set_query_arguments(self, **args: Any) -> None:
        super().set_query_arguments(**args)
        if "ef" in args:
            self.index.set_ef(int(args["ef"]))

    def set_filter(self, expr: str | None, mask: np.ndarray | None) -> None:
        super().set_filter(expr, mask)
        # hnswlib calls back into Python per candidate label: slow, but it is hnswlib's own filter API.
        self._filter_fn = None if mask is None else (lambda label, m=mask: bool(m[label]))

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._search(np.asarray(q, dtype=np.float32)[None, :], k, 1)[0]

    def batch_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self._search(np.asarray(queries, dtype=np.float32), k, self.threads)

    def _search(self, queries: np.ndarray, k: int, threads: int) -> np.ndarray:
        k_eff = min(k, self.index.get_current_count())
        try:
            labels, _ = self.index.knn_query(queries, k=k_eff, num_threads=threads, filter=self._filter_fn)
        except RuntimeError:  # hnswlib raises when a filter leaves fewer than k results
            return np.full((len(queries), k), -1, dtype=np.int64)
        return pad_ids(labels.astype(np.int64), k)

    def build_params(self) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction}

    def memory_bytes(self) -> int | None:
        if self.index is None:
            return None
        # index_file_size() is what save_index writes: the level-0 block, links and labels.
        return int(self.index.index_file_size())

    def close(self) -> None:
        self.index = None
