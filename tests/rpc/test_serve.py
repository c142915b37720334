"""A real `vecdb serve` process over the real engine: lifecycle, parity with embedded, limits."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import vecdb
import vecdb.errors as errors
from tests.support.server import ServerProcess
from vecdb.rpc.client import connect_remote

REPO = Path(__file__).resolve().parents[2]


def _data(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_graceful_shutdown_leaves_nothing_to_replay(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    db = connect_remote(server.uri)
    col = db.create_collection("c", 8, metric="l2", schema={"year": "int32"})
    x = _data(500, 8)
    col.upsert(np.arange(500), x, {"year": np.arange(500) % 7})
    col.delete(ids=[0, 1])
    db.close()
    assert server.stop(signal.SIGTERM) == 0  # drained, fsynced, closed, exit 0
    server.start()
    db = connect_remote(server.uri)
    assert db.info()["wal_records_replayed"] == 0
    col = db.collection("c")
    assert col.count() == 498
    assert np.array_equal(col.get([7]).column("vector").to_numpy(zero_copy_only=False)[0], x[7])
    col.upsert([1000], x[:1])
    db.close()
    # Control: a crash leaves the last write in the WAL only, and the next start replays it.
    server.stop(signal.SIGKILL)
    server.start()
    db = connect_remote(server.uri)
    assert db.info()["wal_records_replayed"] >= 1
    assert db.collection("c").count() == 499
    db.close()
    server.stop()


def test_grpc_matches_embedded(grpc_server, tmp_path) -> None:
    x, q = _data(2000, 32, seed=1), _data(20, 32, seed=2)
    years = np.arange(2000) % 30 + 1990
    remote = connect_remote(grpc_server)
    embedded = vecdb.connect(tmp_path / "embedded")
    results = []
    for db in (remote, embedded):
        col = db.create_collection("parity", 32, metric="cosine", schema={"year": "int32"})
        if db is remote:
            col.chunk_bytes = 32 * 1024  # many stream messages
            assert col.upsert(np.arange(2000), x, {"year": years}, progress=True) == 2000
        else:
            assert col.upsert(np.arange(2000), x, {"year": years}) == 2000
        assert col.delete(filter="year < :y", filter_params={"y": 1995}) == 5 * 2000 // 30 + 2
        res = col.search(q, k=10, filter="year >= 2000", include=("year",))
        results.append((res, col.count(), col.get([5, 500, 10**6], include=("vector", "year"))))
    (r1, c1, g1), (r2, c2, g2) = results
    np.testing.assert_array_equal(r1.ids, r2.ids)
    # Same engine code on both sides, but BLAS may sum in another order in another process
    # (thread count, blocking), so distances agree to float32 rounding, not bit for bit.
    np.testing.assert_allclose(r1.distances, r2.distances, rtol=1e-6, atol=1e-6)
    assert r1.attributes.equals(r2.attributes) and r1.stats == r2.stats
    assert c1 == c2 and g1.equals(g2)
    remote.drop_collection("parity")
    remote.close()
    embedded.close()


def test_oversized_message_and_deadline_keep_the_server_up(grpc_server) -> None:
    db = connect_remote(grpc_server)
    col = db.create_collection("big", 512)
    col.chunk_bytes = 1 << 30  # do not chunk: one message over the 64 MiB default limit
    with pytest.raises(errors.ResourceExhausted):
        col.upsert(np.arange(40_000), np.zeros((40_000, 512), np.float32))
    with pytest.raises(errors.ResourceExhausted):
        col.search(np.zeros((10_001, 512), np.float32), k=1)  # over --max-queries
    hasty = connect_remote(grpc_server, timeout=1e-4, retries=0)
    with pytest.raises(errors.DeadlineExceeded):
        # 20 MB of queries cannot cross even loopback in 100 µs (a small search on an empty
        # collection sometimes could, which made this depend on the machine's speed).
        hasty.collection("big").search(np.zeros((10_000, 512), np.float32), k=10)
    hasty.close()
    assert col.upsert(np.arange(10), np.ones((10, 512), np.float32)) == 10
    assert col.count() == 10
    db.drop_collection("big")
    db.close()


def _wait_serving(uri: str, deadline: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(uri.removeprefix("grpc://")) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise AssertionError("the entrypoint's server never became SERVING")


def test_docker_entrypoint_serves_and_stops_on_sigterm(tmp_path) -> None:
    """The script the image runs: env defaults, extra serve flags, exec (SIGTERM reaches vecdb)."""
    port_file = tmp_path / "port"
    env = {
        **os.environ,
        "VECDB_DATA_DIR": str(tmp_path / "data"),
        "VECDB_HOST": "127.0.0.1",
        "VECDB_METRICS_PORT": "",
    }
    proc = subprocess.Popen(
        ["sh", str(REPO / "docker" / "entrypoint.sh"), "--port", "0", "--port-file", str(port_file)], env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
            assert proc.poll() is None, "entrypoint exited early"
            time.sleep(0.05)
        uri = f"grpc://127.0.0.1:{port_file.read_text().strip()}"
        _wait_serving(uri, deadline)
        db = connect_remote(uri)
        db.create_collection("e", 2).upsert([1], [[1.0, 2.0]])
        db.close()
        assert (tmp_path / "data" / ".numba-cache").is_dir()
        proc.send_signal(signal.SIGTERM)  # sh exec'd vecdb: the signal goes straight to the server
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
