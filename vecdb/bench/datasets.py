"""Benchmark datasets in the ann-benchmarks HDF5 layout, plus .npy / .fvecs / Parquet loaders.

The layout: ``train`` (n, d) base vectors, ``test`` (q, d) queries, ``neighbors`` (q, K) int exact
neighbours nearest first, ``distances`` (q, K) float, attribute ``distance`` naming the metric
(``euclidean`` = true L2, ``angular`` = 1 - cosine). Extra ``train_*`` / ``test_*`` datasets are
per-row attributes. Ground truth missing from a file is computed here with faiss.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ann-benchmarks metric name -> vecdb metric name (DESIGN.md vocabulary).
ANN_TO_VECDB_METRIC = {"euclidean": "l2", "angular": "cosine", "ip": "ip", "dot": "ip"}
VECDB_TO_ANN_METRIC = {"l2": "euclidean", "cosine": "angular", "ip": "ip"}

# The ann-benchmarks synthetic float sets: name -> (n_samples, dim, centers, metric). 10% become queries.
RANDOM_SETS: dict[str, tuple[int, int, int, str]] = {
    "random-xs-20-euclidean": (10_000, 20, 100, "euclidean"),
    "random-s-100-euclidean": (100_000, 100, 1_000, "euclidean"),
    "random-xs-20-angular": (10_000, 20, 100, "angular"),
    "random-s-100-angular": (100_000, 100, 1_000, "angular"),
}
_RANDOM_NAME = re.compile(r"^random-(\d+)x(\d+)-(euclidean|angular|ip)$")  # e.g. random-2000x16-euclidean


@dataclass
class Dataset:
    """Base vectors, queries and exact neighbours in ann-benchmarks conventions.

    train: (n, d) float32; test: (q, d) float32; neighbors: (q, K) int64 or None;
    distances: (q, K) float32 in the ann-benchmarks metric (euclidean is not squared) or None.
    attributes / test_attributes: per-row columns (the ``train_*`` / ``test_*`` datasets, prefix dropped).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    metric: str
    neighbors: np.ndarray | None = None
    distances: np.ndarray | None = None
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    test_attributes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    @property
    def vecdb_metric(self) -> str:
        return ANN_TO_VECDB_METRIC[self.metric]

    def ensure_ground_truth(self, k: int = 100) -> Dataset:
        """Fill ``neighbors``/``distances`` with exact top-``k`` (faiss) when missing or too short."""
        if self.neighbors is None or self.distances is None or self.neighbors.shape[1] < k:
            k = min(k, len(self.train))
            self.neighbors, self.distances = ground_truth(self.train, self.test, self.metric, k)
        return self

    def subset(self, limit_train: int | None = None, limit_queries: int | None = None) -> Dataset:
        """The first ``limit_train`` rows and ``limit_queries`` queries; ground truth recomputed if cut."""
        train, attrs = self.train, self.attributes
        test, test_attrs = self.test, self.test_attributes
        neighbors, distances = self.neighbors, self.distances
        if limit_queries is not None and limit_queries < len(test):
            test = test[:limit_queries]
            test_attrs = {k: v[:limit_queries] for k, v in test_attrs.items()}
            if neighbors is not None and distances is not None:
                neighbors, distances = neighbors[:limit_queries], distances[:limit_queries]
        name = self.name
        if limit_train is not None and limit_train < len(train):
            train = train[:limit_train]
            attrs = {k: v[:limit_train] for k, v in attrs.items()}
            # Neighbours refer to rows that may be gone: recompute on the subset.
            neighbors = distances = None
            name = f"{self.name}[:{limit_train}]"
        out = dataclasses.replace(
            self, name=name, train=train, test=test, neighbors=neighbors, distances=distances,
            attributes=attrs, test_attributes=test_attrs,
        )
        return out.ensure_ground_truth()

    def with_metric(self, metric: str) -> Dataset:
        """The same vectors measured with another ann-benchmarks metric (ground truth recomputed)."""
        if metric not in ANN_TO_VECDB_METRIC:
            metric = VECDB_TO_ANN_METRIC.get(metric, metric)
        if metric not in ANN_TO_VECDB_METRIC:
            raise ValueError(f"unknown metric {metric!r}: expected euclidean, angular or ip")
        if metric == self.metric:
            return self
        out = dataclasses.replace(self, name=f"{self.name}@{metric}", metric=metric,
                                  neighbors=None, distances=None)
        return out.ensure_ground_truth()


def _as_float32(a: np.ndarray) -> np.ndarray:
    """float16/float64 -> contiguous float32 (float16 files are common for big embeddings)."""
    return np.ascontiguousarray(a, dtype=np.float32)


def true_distances(train: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Distances (ann-benchmarks metric, float64) from each query to the rows ``ids`` (q, k); -1 -> inf."""
    ids = np.asarray(ids, dtype=np.int64)
    # Blocks of queries keep the (block, k, d) float64 gather near 64 MB whatever the dimension.
    block = max(1, 8_000_000 // max(1, ids.shape[1] * train.shape[1]))
    if len(ids) > block:
        return np.concatenate([
            true_distances(train, queries[i:i + block], ids[i:i + block], metric)
            for i in range(0, len(ids), block)
        ])
    valid = ids >= 0
    rows = train[np.where(valid, ids, 0)].astype(np.float64)  # (q, k, d)
    q = queries.astype(np.float64)[:, None, :]
    if metric == "euclidean":
        d = np.sqrt(np.maximum(((rows - q) ** 2).sum(-1), 0.0))
    elif metric == "angular":
        num = (rows * q).sum(-1)
        den = np.linalg.norm(rows, axis=-1) * np.linalg.norm(q, axis=-1)
        d = 1.0 - num / np.maximum(den, 1e-30)
    elif metric == "ip":
        d = -(rows * q).sum(-1)
    else:
        raise ValueError(f"unsupported metric {metric!r}")
    return np.where(valid, d, np.inf)


def ground_truth(train: np.ndarray, test: np.ndarray, metric: str, k: int = 100,
                 shortlist: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` neighbours: a faiss float32 shortlist of ``shortlist * k``, rescored in float64.

    Returns (neighbors (q, k) int64, distances (q, k) float32), nearest first, ties by smaller id.
    """
    import faiss

    k = min(k, len(train))
    x = _as_float32(train)
    q = _as_float32(test)
    if metric == "angular":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    index = faiss.IndexFlatL2(x.shape[1]) if metric == "euclidean" else faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, cand = index.search(q, min(len(train), k * shortlist))
    dist = true_distances(train, test, cand, metric)
    # lexsort: last key is primary -> distance, then id, so ties go to the smaller id.
    order = np.lexsort((np.where(cand < 0, np.iinfo(np.int64).max, cand), dist), axis=1)[:, :k]
    neighbors = np.take_along_axis(cand, order, axis=1).astype(np.int64)
    return neighbors, np.take_along_axis(dist, order, axis=1).astype(np.float32)


def read_hdf5(path: str | Path) -> Dataset:
    """Load an ann-benchmarks HDF5 file (float16 converted to float32, train_*/test_* attributes kept)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        metric = f.attrs.get("distance", "euclidean")
        metric = metric.decode() if isinstance(metric, bytes) else str(metric)
        ds = Dataset(
            name=path.stem,
            train=_as_float32(f["train"][:]),
            test=_as_float32(f["test"][:]),
            metric=metric,
            neighbors=f["neighbors"][:].astype(np.int64) if "neighbors" in f else None,
            distances=f["distances"][:].astype(np.float32) if "distances" in f else None,
        )
        for key in f:
            for prefix, target in (("train_", ds.attributes), ("test_", ds.test_attributes)):
                if key.startswith(prefix):
                    target[key[len(prefix):]] = f[key][:]
    return ds


def write_hdf5(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` in the ann-benchmarks layout (ground truth computed first if missing)."""
    import h5py

    ds.ensure_ground_truth()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["type"] = "dense"
        f.attrs["distance"] = ds.metric
        f.attrs["dimension"] = ds.dim
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=ds.train)
        f.create_dataset("test", data=ds.test)
        f.create_dataset("neighbors", data=np.asarray(ds.neighbors, dtype=np.int32))
        f.create_dataset("distances", data=np.asarray(ds.distances, dtype=np.float32))
        for name, col in ds.attributes.items():
            f.create_dataset(f"train_{name}", data=col)
        for name, col in ds.test_attributes.items():
            f.create_dataset(f"test_{name}", data=col)
    return path


def make_random(n: int, dim: int, centers: int, metric: str, seed: int = 1,
                test_fraction: float = 0.1, name: str | None = None) -> Dataset:
    """Gaussian blobs split into train/test, as the ann-benchmarks ``random-*`` sets are made."""
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import train_test_split

    x, _ = make_blobs(n_samples=n, n_features=dim, centers=centers, random_state=seed)
    train, test = train_test_split(x, test_size=test_fraction, random_state=seed)
    ds = Dataset(name=name or f"random-{n}x{dim}-{metric}", train=_as_float32(train),
                 test=_as_float32(test), metric=metric)
    return ds.ensure_ground_truth()


def _read_vecs(path: Path) -> np.ndarray:
    """.fvecs/.ivecs/.bvecs (TEXMEX): each row is an int32 dimension followed by the components."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise ValueError(f"{path}: empty file")
    dim = int(raw[:4].view(np.int32)[0])
    item, dtype = {".fvecs": (4, np.float32), ".ivecs": (4, np.int32), ".bvecs": (1, np.uint8)}[path.suffix]
    row = 4 + dim * item
    if raw.size % row:
        raise ValueError(f"{path}: size {raw.size} is not a multiple of the row size {row} (dim {dim})")
    rows = raw.reshape(-1, row)
    if not np.all(rows[:, :4].copy().view(np.int32) == dim):
        raise ValueError(f"{path}: rows disagree on the dimension")
    return rows[:, 4:].copy().view(dtype).reshape(len(rows), dim)


def write_fvecs(x: np.ndarray, path: str | Path) -> None:
    """Write float32 rows in the TEXMEX .fvecs format."""
    x = _as_float32(x)
    dims = np.full((len(x), 1), x.shape[1], dtype=np.int32).view(np.float32)
    np.hstack([dims, x]).tofile(path)


def _read_parquet(path: Path, column: str | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A list / fixed_size_list vector column (``vector``/``embedding`` by default) + scalar attributes."""
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    table = pq.read_table(path)
    names = table.column_names
    column = column or next((c for c in ("vector", "embedding", "emb") if c in names), None)
    if column is None:
        raise ValueError(f"{path}: no vector column (tried vector, embedding, emb); name one")
    vectors = np.stack(table.column(column).to_numpy(zero_copy_only=False)).astype(np.float32)
    attrs = {
        c: table.column(c).to_numpy(zero_copy_only=False)
        for c in names
        if c != column and not pat.is_nested(table.schema.field(c).type)
    }
    return vectors, attrs


def holdout(vectors: np.ndarray, metric: str, n_queries: int = 1000, seed: int = 0,
            name: str = "data", attributes: dict[str, np.ndarray] | None = None) -> Dataset:
    """Split base vectors into train and a seeded, disjoint set of ``n_queries`` queries."""
    n_queries = min(n_queries, max(1, len(vectors) // 10))
    rng = np.random.default_rng(seed)
    is_query = np.zeros(len(vectors), dtype=bool)
    is_query[rng.choice(len(vectors), n_queries, replace=False)] = True
    attrs = {k: np.asarray(v)[~is_query] for k, v in (attributes or {}).items()}
    ds = Dataset(name=name, train=_as_float32(vectors[~is_query]), test=_as_float32(vectors[is_query]),
                 metric=metric, attributes=attrs)
    return ds.ensure_ground_truth()


def load_dataset(spec: str, metric: str | None = None, n_queries: int = 1000, seed: int = 0,
                 data_dir: str | Path | None = None, column: str | None = None) -> Dataset:
    """Open ``spec``: an ann-benchmarks .hdf5 file, a ``random-*`` name, or .npy/.fvecs/.parquet base vectors.

    Files without queries get a seeded holdout of ``n_queries``; ``metric`` (euclidean | angular | ip,
    or l2 | cosine) overrides the file's and recomputes the ground truth. A bare file name is also
    looked up in ``data_dir``.
    """
    path = Path(spec)
    if not path.exists() and data_dir is not None and (Path(data_dir) / spec).exists():
        path = Path(data_dir) / spec
    if spec in RANDOM_SETS:
        n, dim, centers, m = RANDOM_SETS[spec]
        ds = make_random(n, dim, centers, m, name=spec)
    elif (match := _RANDOM_NAME.match(spec)) is not None:
        n, dim, m = int(match[1]), int(match[2]), match[3]
        ds = make_random(n, dim, max(2, n // 100), m, name=spec)
    elif not path.exists():
        raise FileNotFoundError(f"dataset {spec!r}: no such file, and not one of {sorted(RANDOM_SETS)}")
    elif path.suffix in (".hdf5", ".h5"):
        ds = read_hdf5(path).ensure_ground_truth()
    elif path.suffix == ".npy":
        ds = holdout(np.load(path), metric or "euclidean", n_queries, seed, name=path.stem)
    elif path.suffix in (".fvecs", ".bvecs"):
        ds = holdout(_read_vecs(path).astype(np.float32), metric or "euclidean", n_queries, seed,
                     name=path.stem)
    elif path.suffix == ".parquet":
        vectors, attrs = _read_parquet(path, column)
        ds = holdout(vectors, metric or "euclidean", n_queries, seed, name=path.stem, attributes=attrs)
    else:
        raise ValueError(f"{path}: unsupported format (expected .hdf5, .npy, .fvecs, .bvecs or .parquet)")
    return ds.with_metric(metric) if metric else ds
