"""vecdb measured through its public API, as a user calls it: embedded or over gRPC.

``vecdb`` runs embedded in a temporary directory (so disk use is real); ``vecdb-grpc`` talks to a
server at ``url`` (``grpc://host:port``) or, when none is given, to a ``vecdb serve`` child process
started on a free local port for the run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.bench.algorithms.base import Algorithm, pad_ids
from vecdb.bench.specs import parse_vecdb_spec

# Rows per upsert call: large enough to amortise the WAL fsync, small enough to bound a gRPC message.
UPSERT_BATCH = 20_000
# Query arguments each index kind takes (DESIGN.md vocabulary); "rerank" is added when quantized.
_KNOBS = {"flat": (), "hnsw": ("ef",), "ivf": ("nprobe",), "spann": ("nprobe", "eps", "max_lists")}


def arrow_schema_of(attributes: dict[str, np.ndarray]) -> dict[str, str]:
    """vecdb schema strings for numpy attribute columns (ints -> int64, floats -> float64, text -> string)."""
    schema: dict[str, str] = {}
    for name, col in attributes.items():
        kind = np.asarray(col).dtype.kind
        if kind in "iu":
            schema[name] = "int64"
        elif kind == "f":
            schema[name] = "float64"
        elif kind == "b":
            schema[name] = "bool"
        elif kind in "USO":
            schema[name] = "string"
        else:
            raise ValueError(f"attribute {name!r} has unsupported dtype {np.asarray(col).dtype}")
    return schema


def _columns(attributes: dict[str, np.ndarray], schema: dict[str, str], lo: int, hi: int) -> dict[str, Any]:
    casts = {"int64": np.int64, "float64": np.float64, "bool": np.bool_}
    out: dict[str, Any] = {}
    for name, col in attributes.items():
        part = np.asarray(col)[lo:hi]
        out[name] = part.astype(casts[schema[name]]) if schema[name] in casts else part.astype(str).tolist()
    return out


class VecdbAlgorithm(Algorithm):
    """vecdb embedded: create_collection(index=..., quantization=...), upsert, optimize, search."""

    system = "vecdb"

    def __init__(self, spec: str, metric: str, build_args: dict[str, Any] | None = None,
                 threads: int = 1, url: str | None = None) -> None:
        super().__init__(spec, metric, build_args, threads)
        self.index_config, self.quant_config = parse_vecdb_spec(spec, build_args)
        knobs = set(_KNOBS[self.index_config.kind])
        if self.quant_config is not None:
            knobs.add("rerank")
        self.query_params = frozenset(knobs)
        self.url = url
        self.db: Any = None
        self.col: Any = None
        self._tmp: Path | None = None
        self._params: dict[str, Any] = {}
        # A fresh name per run: a shared server may hold other collections, even other bench runs.
        self.collection_name = f"bench-{uuid.uuid4().hex[:12]}"

    def _connect(self) -> Any:
        import vecdb

        self._tmp = Path(tempfile.mkdtemp(prefix="vecdb-bench-"))
        return vecdb.connect(str(self._tmp / "db"))

    def prepare(self) -> None:
        """Open the database (and for gRPC start the server) outside the timed build."""
        if self.db is None:
            self.db = self._connect()

    def fit(self, train: np.ndarray, attributes: dict[str, np.ndarray] | None = None) -> None:
        from tqdm import tqdm

        attributes = attributes or {}
        schema = arrow_schema_of(attributes)
        self.prepare()
        self.col = self.db.create_collection(
            self.collection_name, dim=int(train.shape[1]), metric=self.metric, index=self.index_config,
            quantization=self.quant_config, schema=schema or None,
        )
        x = np.ascontiguousarray(train, dtype=np.float32)
        with tqdm(total=len(x), desc=f"upsert {self.label}", unit="vec", leave=False,
                  disable=None) as bar:  # None: no bar when stderr is not a terminal
            for lo in range(0, len(x), UPSERT_BATCH):
                hi = min(lo + UPSERT_BATCH, len(x))
                attrs = _columns(attributes, schema, lo, hi) if attributes else None
                self.col.upsert(np.arange(lo, hi, dtype=np.int64), x[lo:hi], attributes=attrs)
                bar.update(hi - lo)
        self.col.optimize()  # seals and builds the index: part of the build time, as for the baselines

    def set_query_arguments(self, **args: Any) -> None:
        super().set_query_arguments(**args)
        self._params = dict(args)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.batch_query(np.asarray(q, dtype=np.float32)[None, :], k)[0]

    def batch_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        res = self.col.search(queries, k=k, filter=self.filter_expr, params=self._params or None)
        return pad_ids(res.ids, k)

    def build_params(self) -> dict[str, Any]:
        from vecdb.config import config_to_dict

        return {"index": config_to_dict(self.index_config), "quantization": config_to_dict(self.quant_config)}

    def _stats(self) -> dict[str, Any]:
        stats = self.col.stats() if self.col is not None else {}
        return stats if isinstance(stats, dict) else dict(vars(stats))

    def memory_bytes(self) -> int | None:
        value = self._stats().get("bytes_in_memory")
        return int(value) if value is not None else None

    def disk_bytes(self) -> int | None:
        value = self._stats().get("bytes_on_disk")
        if value is None and self._tmp is not None:
            value = sum(p.stat().st_size for p in self._tmp.rglob("*") if p.is_file())
        return int(value) if value is not None else None

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        self.db = self.col = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _serving(target: str) -> bool:
    """True when the standard gRPC health service at ``target`` answers SERVING (recovery done)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


class VecdbGrpcAlgorithm(VecdbAlgorithm):
    """The same calls through ``vecdb.connect("grpc://...")``: measures the RPC path too."""

    system = "vecdb-grpc"

    def __init__(self, spec: str, metric: str, build_args: dict[str, Any] | None = None,
                 threads: int = 1, url: str | None = None) -> None:
        super().__init__(spec, metric, build_args, threads, url=url)
        self._server: subprocess.Popen[bytes] | None = None

    def _connect(self) -> Any:
        import vecdb

        if self.url is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="vecdb-bench-grpc-"))
            self.url = self._start_server(self._tmp / "db")
        return vecdb.connect(self.url)

    def _start_server(self, data: Path) -> str:
        """``vecdb serve`` on a free port; returns its URL once health says SERVING (or raises)."""
        port_file = data.parent / "port"
        log_path = data.parent / "server.log"
        cmd = [sys.executable, "-m", "vecdb.cli", "serve", "--data-dir", str(data), "--host", "127.0.0.1",
               "--port", "0", "--port-file", str(port_file)]
        with log_path.open("wb") as log:
            self._server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"vecdb serve exited: {log_path.read_text()[-2000:]}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text and _serving(f"127.0.0.1:{int(text)}"):
                return f"grpc://127.0.0.1:{int(text)}"
            time.sleep(0.1)
        raise RuntimeError(f"vecdb serve was not SERVING within 60 s: {log_path.read_text()[-2000:]}")

    def disk_bytes(self) -> int | None:
        value = self._stats().get("bytes_on_disk")
        return int(value) if value is not None else None

    def close(self) -> None:
        if self.db is not None:
            try:
                if self.col is not None:
                    self.db.drop_collection(self.collection_name)
            finally:
                self.db.close()
                self.db = self.col = None
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=30)
            self._server = None
            self.url = None
        super().close()
