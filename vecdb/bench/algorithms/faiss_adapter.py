"""faiss baselines built from ``faiss.index_factory`` strings: "Flat", "HNSW16", "IVF1024,Flat",
"IVF1024,PQ16", "RaBitQ", "IVF256,RaBitQ"...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecdb.bench.algorithms.base import Algorithm, pad_ids

DEFAULT_EF_CONSTRUCTION = 200
# Our query vocabulary -> faiss ParameterSpace names.
_FAISS_PARAM = {"ef": "efSearch", "nprobe": "nprobe", "qb": "qb", "quantizer_ef": "quantizer_efSearch"}


class FaissAlgorithm(Algorithm):
    """A faiss index; cosine is inner product over normalised vectors, as faiss users do it.

    build_args: ``ef_construction`` (HNSW), ``train_size`` (rows used to train IVF/PQ, default all).
    """

    system = "faiss"
    query_params = frozenset(_FAISS_PARAM)

    def __init__(self, spec: str, metric: str, build_args: dict[str, Any] | None = None,
                 threads: int = 1) -> None:
        super().__init__(spec, metric, build_args, threads)
        self.index: Any = None
        self._n = 0

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if self.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return x

    def fit(self, train: np.ndarray, attributes: dict[str, np.ndarray] | None = None) -> None:
        import faiss

        x = self._prepare(train)
        faiss_metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.index = faiss.index_factory(x.shape[1], self.spec, faiss_metric)
        hnsw = _hnsw_of(self.index)
        if hnsw is not None:
            # faiss defaults to 40; vecdb.HNSW and hnswlib default to 200: build all three alike.
            hnsw.efConstruction = int(self.build_args.get("ef_construction", DEFAULT_EF_CONSTRUCTION))
        if not self.index.is_trained:
            n_train = int(self.build_args.get("train_size", len(x)))
            sample = x if n_train >= len(x) else x[np.random.default_rng(0).choice(len(x), n_train, False)]
            self.index.train(sample)
        self.index.add(x)
        self._n = len(x)
        self.query_params = self._knobs()

    def _knobs(self) -> frozenset[str]:
        """Which of our query arguments this particular index takes (a Flat takes none)."""
        import faiss

        knobs = set()
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            knobs.add("nprobe")
            if _hnsw_of(ivf.quantizer) is not None:
                knobs.add("quantizer_ef")
        if _hnsw_of(self.index) is not None:
            knobs.add("ef")
        if hasattr(self.index, "qb"):
            knobs.add("qb")
        return frozenset(knobs)

    def set_query_arguments(self, **args: Any) -> None:
        import faiss

        super().set_query_arguments(**args)
        space = faiss.ParameterSpace()
        for name, value in args.items():
            if name == "qb" and hasattr(self.index, "qb"):
                self.index.qb = int(value)
            else:
                space.set_index_parameter(self.index, _FAISS_PARAM[name], value)

    def _search_params(self) -> Any:
        """A SearchParameters carrying the filter (faiss needs the subclass matching the index)."""
        import faiss

        if self.filter_mask is None:
            return None
        bitmap = np.packbits(self.filter_mask.astype(bool), bitorder="little")
        self._bitmap = bitmap  # keep the buffer alive while faiss holds a pointer into it
        sel = faiss.IDSelectorBitmap(len(self.filter_mask), faiss.swig_ptr(bitmap))
        self._sel = sel
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            return faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nprobe)
        hnsw = _hnsw_of(self.index)
        if hnsw is not None:
            return faiss.SearchParametersHNSW(sel=sel, efSearch=hnsw.efSearch)
        return faiss.SearchParameters(sel=sel)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.batch_query(q, k)[0]

    def batch_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        params = self._search_params()
        _, ids = self.index.search(self._prepare(queries), k, params=params)
        return pad_ids(ids, k)

    def build_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"factory": self.spec, **self.build_args}
        hnsw = _hnsw_of(self.index) if self.index is not None else None
        if hnsw is not None:
            params["ef_construction"] = int(hnsw.efConstruction)
        return params

    def memory_bytes(self) -> int | None:
        import faiss

        # The serialised index is the index's own data structures, without allocator slack.
        return int(faiss.serialize_index(self.index).nbytes) if self.index is not None else None

    def close(self) -> None:
        self.index = None


def _hnsw_of(index: Any) -> Any:
    """The HNSW graph inside an IndexHNSW* (None for other index types)."""
    return getattr(index, "hnsw", None)
