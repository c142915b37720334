"""An in-memory stand-in for the engine's Database, to test the server's translation layer alone.

Collections named ``raise-<CODE>`` raise the vecdb error carrying that gRPC code from every call,
``raise-builtin`` raises a plain RuntimeError (a bug), and ``slow`` sleeps in search.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa

from vecdb.config import Flat
from vecdb.errors import ERRORS_BY_CODE, AlreadyExists, InvalidArgument, NotFound
from vecdb.types import SearchResult


class FakeCollection:
    """Exact search over rows kept in a dict; enough behaviour to check what crosses the wire."""

    def __init__(self, name: str, dim: int, metric: str, index: Any, quantization: Any, schema: Any, mt: bool):
        self.name, self.dim, self.metric = name, dim, metric
        self.index = index or Flat()
        self.quantization = quantization
        self.schema = dict(schema or {})
        self.multi_tenant = mt
        self.rows: dict[int, np.ndarray] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.search_delay = 0.0

    def upsert(self, table: Any, vectors: Any = None, attributes: Any = None, **kw: Any) -> int:
        self.calls.append(("upsert", kw))
        ids = table.column("id").to_numpy()
        vecs = table.column("vector").combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
        if vecs.shape[1] != self.dim:
            raise InvalidArgument(f"expected dim {self.dim}, got {vecs.shape[1]}")
        for i, v in zip(ids, vecs, strict=True):
            self.rows[int(i)] = v
        return len(ids)

    def delete(self, ids: Any = None, *, filter: Any = None, filter_params: Any = None, **kw: Any) -> int:
        self.calls.append(("delete", {"filter": filter, "filter_params": filter_params, **kw}))
        return sum(self.rows.pop(int(i), None) is not None for i in (ids if ids is not None else []))

    def get(self, ids: Any, include: Any = ("vector",), **kw: Any) -> pa.Table:
        self.calls.append(("get", {"include": include, **kw}))
        found = [int(i) for i in ids if int(i) in self.rows]
        return pa.table({"id": pa.array(found, pa.int64())})

    def search(self, queries: Any, k: int = 10, **kw: Any) -> SearchResult:
        self.calls.append(("search", kw))
        time.sleep(self.search_delay)
        self.finished_at = time.monotonic()
        if k < 1:
            raise InvalidArgument(f"k must be >= 1, got {k}")
        ids = np.array(sorted(self.rows), dtype=np.int64)
        mat = np.stack([self.rows[i] for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)
        d = ((queries[:, None, :] - mat[None, :, :]) ** 2).sum(-1).astype(np.float32)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        out_ids = np.full((len(queries), k), -1, np.int64)
        out_d = np.full((len(queries), k), np.inf, np.float32)
        out_ids[:, : order.shape[1]] = ids[order]
        out_d[:, : order.shape[1]] = np.take_along_axis(d, order, 1)
        return SearchResult(out_ids, out_d, stats={"plan": "exact", "scored": np.int64(len(ids))})

    def count(self, **kw: Any) -> int:
        self.calls.append(("count", kw))
        return len(self.rows)

    def optimize(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"rows": len(self.rows), "segments": 1, "wal_bytes": 10}


class Raising:
    """A collection whose every method raises ``error``."""

    def __init__(self, name: str, error: Exception):
        self.name, self.dim, self.metric, self.error = name, 2, "l2", error
        self.index, self.quantization, self.schema, self.multi_tenant = None, None, {}, False

    def __getattr__(self, attr: str) -> Any:
        def fail(*_a: Any, **_k: Any) -> Any:
            raise self.error

        return fail


class FakeDatabase:
    """The Database surface the server uses."""

    def __init__(self) -> None:
        self.cols: dict[str, FakeCollection] = {}
        self.closed = False
        self.lock = threading.Lock()

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        index: Any = None,
        quantization: Any = None,
        schema: Any = None,
        multi_tenant: bool = False,
    ) -> Any:
        with self.lock:
            if name in self.cols:
                raise AlreadyExists(f"collection {name!r} already exists")
            if dim < 1:
                raise InvalidArgument(f"dim must be >= 1, got {dim}")
            col = FakeCollection(name, dim, metric, index, quantization, schema, multi_tenant)
            self.cols[name] = col
            return col

    def collection(self, name: str) -> Any:
        if name.startswith("raise-"):
            code = name[len("raise-") :]
            error = RuntimeError("boom") if code == "builtin" else ERRORS_BY_CODE[code](f"fake {code}")
            return Raising(name, error)
        try:
            return self.cols[name]
        except KeyError:
            raise NotFound(f"collection {name!r} not found") from None

    def list_collections(self) -> list[str]:
        return sorted(self.cols)

    def drop_collection(self, name: str) -> None:
        if self.cols.pop(name, None) is None:
            raise NotFound(f"collection {name!r} not found")

    def info(self) -> dict[str, Any]:
        return {"collections": len(self.cols), "wal_records_replayed": 0}

    def close(self) -> None:
        self.closed = True
        self.closed_at = time.monotonic()
