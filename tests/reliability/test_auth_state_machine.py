"""The auth state machine of a real `vecdb serve`: every key kind against every RPC.

Key kinds: none, unknown, expired, read-only, read-write, admin, and tenant-confined (read-write for
tenant ``acme``). The expected answer of each (key, call) pair comes from one table: UNAUTHENTICATED
for a missing/unknown/expired key, PERMISSION_DENIED for a scope that does not allow the call, else
success. Then a confined key reaches for another tenant on every read path (0 rows may leak), the
health service answers without a key, reflection is off by default, and TLS / mutual TLS handshakes
succeed with the right credentials and fail without them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import vecdb
from tests.rpc.conftest import TLSFiles, tls_files  # noqa: F401  (the session fixture, reused)
from tests.support.server import ServerProcess
from vecdb.errors import PermissionDenied, Unauthenticated

KEYS = {
    "admin": "admin-key-0123456789abcdef",
    "read-write": "rw-key-0123456789abcdef",
    "read-only": "ro-key-0123456789abcdef",
    "acme": "acme-key-0123456789abcdef",
    "expired": "expired-key-0123456789abcdef",
    "unknown": "unknown-key-0123456789abcdef",
}
KEY_FILE = f"""
[[keys]]
key = "{KEYS['admin']}"
scope = "admin"
[[keys]]
key = "{KEYS['read-write']}"
scope = "read-write"
[[keys]]
key = "{KEYS['read-only']}"
scope = "read-only"
[[keys]]
key = "{KEYS['acme']}"
scope = "read-write"
tenant = "acme"
[[keys]]
key = "{KEYS['expired']}"
scope = "admin"
expires = 2001-01-01T00:00:00Z
"""
DIM = 4
READS = ("list", "describe", "count", "get", "search", "filtered", "stats", "server_info")
WRITES = ("upsert", "delete", "optimize")
ADMIN = ("create", "drop")
_counter = itertools.count()


def call(db: Any, op: str) -> None:
    """Make one call of kind ``op`` through the client API."""
    rng = np.random.default_rng(0)
    col = db.collection("docs") if op not in ("list", "server_info", "create", "drop") else None
    fresh = f"tmp{next(_counter)}"
    actions: dict[str, Callable[[], Any]] = {
        "list": db.list_collections,
        "server_info": db.server_info,
        "describe": lambda: col.describe(),
        "count": lambda: col.count(),
        "get": lambda: col.get([1, 2]),
        "search": lambda: col.search(rng.standard_normal(DIM), k=3),
        "filtered": lambda: col.search(rng.standard_normal(DIM), k=3, filter="n >= 0"),
        "stats": lambda: col.stats(),
        "upsert": lambda: col.upsert([900], rng.standard_normal((1, DIM)), {"n": [900]}, tenant="acme"),
        "delete": lambda: col.delete([900]),
        "optimize": lambda: col.optimize(),
        "create": lambda: db.create_collection(fresh, dim=DIM, metric="l2"),
        "drop": lambda: db.drop_collection("doomed"),
    }
    actions[op]()


def expected(key: str | None, op: str) -> type[Exception] | None:
    """The error a key kind must get for ``op`` (None: success)."""
    if key in (None, "unknown", "expired"):
        return Unauthenticated
    allowed = {"read-only": READS, "read-write": READS + WRITES, "acme": READS + WRITES,
               "admin": READS + WRITES + ADMIN}[key]
    return None if op in allowed else PermissionDenied


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("authsm")
    (root / "keys.toml").write_text(KEY_FILE)
    proc = ServerProcess(root / "data", "--api-keys", str(root / "keys.toml"), "--workers", "4")
    proc.start()
    rng = np.random.default_rng(1)
    with vecdb.connect(proc.uri, api_key=KEYS["admin"]) as admin:
        col = admin.create_collection("docs", dim=DIM, metric="l2", multi_tenant=True, schema={"n": "int64"})
        col.upsert(np.arange(0, 30), rng.standard_normal((30, DIM)), {"n": np.arange(30)}, tenant="acme")
        col.upsert(np.arange(30, 60), rng.standard_normal((30, DIM)), {"n": np.arange(30, 60)}, tenant="globex")
    yield proc
    proc.stop()


@pytest.mark.parametrize("key", [None, "unknown", "expired", "read-only", "read-write", "acme", "admin"])
def test_every_key_against_every_call(server: ServerProcess, key: str | None) -> None:
    """Each (key, call) pair answers exactly what the scope table says, and no state leaks between."""
    wrong = []
    with vecdb.connect(server.uri, api_key=KEYS[key] if key else None, retries=0) as db:
        for op in READS + WRITES + ADMIN:
            if op == "drop" and key == "admin":
                with vecdb.connect(server.uri, api_key=KEYS["admin"]) as admin:
                    admin.create_collection("doomed", dim=DIM, metric="l2")
            want = expected(key, op)
            try:
                call(db, op)
                got: type[Exception] | None = None
            except vecdb.VecdbError as exc:
                got = type(exc)
            if got is not want:
                wrong.append(f"{op}: expected {want and want.__name__}, got {got and got.__name__}")
    assert not wrong, f"key {key!r}: " + "; ".join(wrong)


def test_confined_key_reaches_no_other_tenant(server: ServerProcess) -> None:
    """acme's key naming globex (or no tenant) on every read path sees only acme rows: 0 leaks."""
    rng = np.random.default_rng(2)
    acme_ids = set(range(30))
    leaks = 0
    with vecdb.connect(server.uri, api_key=KEYS["acme"]) as db:
        col = db.collection("docs")
        for tenant in (None, "acme"):
            res = col.search(rng.standard_normal((4, DIM)), k=100, tenant=tenant)
            leaks += len(set(res.ids[np.isfinite(res.distances)].tolist()) - acme_ids)
            res = col.search(rng.standard_normal((4, DIM)), k=100, filter="n >= 30", tenant=tenant)
            leaks += len(set(res.ids[np.isfinite(res.distances)].tolist()) - acme_ids)
            leaks += len(set(col.get(list(range(60)), include=(), tenant=tenant).column("id").to_pylist()) - acme_ids)
            assert col.count(tenant=tenant) <= len(acme_ids)
        for read in (lambda: col.search(rng.standard_normal(DIM), k=5, tenant="globex"),
                     lambda: col.get([30, 31], tenant="globex"), lambda: col.count(tenant="globex")):
            try:
                out = read()
            except vecdb.NotFound:
                continue
            rows = out if isinstance(out, int) else (out.num_rows if hasattr(out, "num_rows") else
                                                     int(np.isfinite(out.distances).sum()))
            leaks += rows
    assert leaks == 0


def test_health_open_and_reflection_off(server: ServerProcess) -> None:
    """Probes need no key; reflection is not served unless --reflection."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        probe = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        with pytest.raises(grpc.RpcError) as info:
            list(probe(iter([b"\x3a\x00"]), timeout=10))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


class TLSServer(ServerProcess):
    """A ServerProcess whose readiness probe speaks TLS (with a client certificate for mTLS)."""

    def __init__(self, data_dir: Path, files: TLSFiles, *, mutual: bool) -> None:
        extra = ["--tls-ca", str(files.ca)] if mutual else []
        super().__init__(data_dir, "--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key), *extra)
        self.files, self.mutual = files, mutual

    def _wait_serving(self, deadline: float) -> None:
        import time

        f = self.files
        creds = grpc.ssl_channel_credentials(
            f.ca.read_bytes(), f.client_key.read_bytes() if self.mutual else None,
            f.client_cert.read_bytes() if self.mutual else None)
        with grpc.secure_channel(f"127.0.0.1:{self.port}", creds,
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise RuntimeError("the TLS server did not become SERVING in time")


def test_tls_and_mutual_tls(tmp_path: Path, tls_files: TLSFiles) -> None:  # noqa: F811
    """TLS: plaintext refused, CA-verified client works. mTLS: no client cert refused, cert works."""
    from vecdb.rpc.client import TLSConfig

    tls = TLSServer(tmp_path / "tls", tls_files, mutual=False)
    tls.start()
    try:
        with vecdb.connect(tls.uri, tls=str(tls_files.ca), retries=0) as db:
            assert db.list_collections() == []
        with vecdb.connect(tls.uri, retries=0, timeout=5) as db, pytest.raises(vecdb.errors.Unavailable):
            db.list_collections()
    finally:
        tls.stop()
    mtls = TLSServer(tmp_path / "mtls", tls_files, mutual=True)
    mtls.start()
    try:
        good = TLSConfig(ca=str(tls_files.ca), cert=str(tls_files.client_cert), key=str(tls_files.client_key))
        with vecdb.connect(mtls.uri, tls=good, retries=0) as db:
            assert db.list_collections() == []
        with vecdb.connect(mtls.uri, tls=str(tls_files.ca), retries=0, timeout=5) as db, \
                pytest.raises(vecdb.errors.Unavailable):
            db.list_collections()
    finally:
        mtls.stop()
