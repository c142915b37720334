"""The server's translation layer over a fake database: status codes, auth, TLS, limits, health."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import vecdb.errors as errors
from tests.rpc.fakes import FakeDatabase
from vecdb.rpc.client import TLSConfig, connect_remote
from vecdb.rpc.limits import Limits
from vecdb.rpc.server import ServerSettings, VecdbServer
from vecdb.v1 import vecdb_pb2 as pb
from vecdb.v1 import vecdb_pb2_grpc as pb_grpc

ERROR_CODES = sorted(errors.ERRORS_BY_CODE)


@pytest.mark.parametrize("code", ERROR_CODES)
def test_every_error_class_crosses_the_wire(fake_server, code: str) -> None:
    db = connect_remote(fake_server.uri, retries=0)
    col = db.collection(f"raise-{code}")
    with pytest.raises(errors.ERRORS_BY_CODE[code]) as info:
        col.search(np.zeros((1, 2), np.float32))
    assert str(info.value) == f"fake {code}"
    db.close()


def test_status_codes_on_the_raw_stub(fake_server) -> None:
    """Check the codes themselves, as grpcurl or a non-Python client sees them."""
    with grpc.insecure_channel(fake_server.uri.removeprefix("grpc://")) as channel:
        stub = pb_grpc.VecdbServiceStub(channel)
        for code in ERROR_CODES:
            with pytest.raises(grpc.RpcError) as info:
                stub.Count(pb.CountRequest(collection=f"raise-{code}"))
            assert info.value.code().name == code
        with pytest.raises(grpc.RpcError) as info:
            stub.Count(pb.CountRequest(collection="raise-builtin"))
        assert info.value.code() == grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.RpcError) as info:
            stub.Upsert(pb.UpsertRequest(collection="c", arrow_ipc=b"garbage"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        stub.CreateCollection(pb.CreateCollectionRequest(name="c", dim=2))
        for bad in (b"garbage", b""):
            with pytest.raises(grpc.RpcError) as info:
                stub.Upsert(pb.UpsertRequest(collection="c", arrow_ipc=bad))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:
            stub.Search(pb.SearchRequest(collection="c", queries=b"\0" * 7, num_queries=1, dim=2, k=1))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_malformed_request_bytes_are_invalid_argument(fake_server) -> None:
    """Bytes that are not a valid message: INVALID_ARGUMENT on every method, and the server stays up."""
    from vecdb.rpc.auth import METHOD_SCOPES

    garbage = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    with grpc.insecure_channel(fake_server.uri.removeprefix("grpc://")) as channel:
        for method in METHOD_SCOPES:
            path = f"/vecdb.v1.VecdbService/{method}"
            call = channel.stream_unary(path) if method == "UpsertStream" else channel.unary_unary(path)
            with pytest.raises(grpc.RpcError) as info:
                call(iter([garbage]) if method == "UpsertStream" else garbage, timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
    db = connect_remote(fake_server.uri)
    assert db.list_collections() == []
    db.close()


def test_round_trip_through_the_fake(fake_server) -> None:
    db = connect_remote(fake_server.uri)
    col = db.create_collection("docs", 3, metric="l2", schema={"year": "int32"})
    assert (col.name, col.dim, col.metric, col.schema) == ("docs", 3, "l2", {"year": "int32"})
    with pytest.raises(errors.AlreadyExists):
        db.create_collection("docs", 3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    assert col.upsert(np.arange(20), x) == 20
    res = col.search(x[:4], k=2)
    assert res.ids[:, 0].tolist() == [0, 1, 2, 3]
    assert res.stats == {"plan": "exact", "scored": 20}
    assert col.get([1, 99]).column("id").to_pylist() == [1]
    assert col.delete(ids=[1, 2, 99]) == 2 and col.count() == 18
    assert db.list_collections() == ["docs"] and col.stats()["rows"] == 18
    with pytest.raises(errors.InvalidArgument):
        col.upsert([1], np.zeros((1, 4)))  # the engine (here: the fake) validates, not the server
    with pytest.raises(errors.InvalidArgument):
        col.search(x[:1], k=0)
    db.drop_collection("docs")
    with pytest.raises(errors.NotFound):
        db.collection("docs")
    db.close()


def test_streaming_upsert_in_chunks(fake_server) -> None:
    db = connect_remote(fake_server.uri)
    col = db.create_collection("s", 16)
    col.chunk_bytes = 4096  # force many stream messages
    n = 3000
    assert col.upsert(np.arange(n), np.ones((n, 16), np.float32), progress=True) == n
    assert col.count() == n
    assert len(fake_server.db.cols["s"].calls) >= 10  # one engine upsert per message
    db.close()


def test_health_is_not_serving_until_the_database_opens() -> None:
    gate = threading.Event()
    db = FakeDatabase()

    def slow_open(_path: str) -> FakeDatabase:
        gate.wait(10)
        return db

    server = VecdbServer(ServerSettings(data_dir=":memory:", port=0), open_database=slow_open)
    thread = threading.Thread(target=server.start)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while server.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            client = connect_remote(f"grpc://127.0.0.1:{server.port}", retries=0)
            with pytest.raises(errors.Unavailable, match="starting"):
                client.list_collections()
            gate.set()
            thread.join(10)
            status = health.Check(health_pb2.HealthCheckRequest(service="vecdb.v1.VecdbService")).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            assert client.list_collections() == []
            client.close()
    finally:
        gate.set()
        thread.join(10)
        server.stop()
    assert db.closed


def _wait_for_search(col) -> None:
    """Block until the fake collection is inside a search (so stop() finds it in flight)."""
    deadline = time.monotonic() + 10
    while not any(op == "search" for op, _ in col.calls):
        assert time.monotonic() < deadline, "the search never reached the server"
        time.sleep(0.01)


def test_graceful_stop_drains_in_flight_calls(start_server) -> None:
    running = start_server()
    db = connect_remote(running.uri, retries=0)
    col = db.create_collection("slow", 2)
    col.upsert([1], [[0.0, 0.0]])
    running.db.cols["slow"].search_delay = 0.5
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(col.search([[0.0, 0.0]], k=1)))
    thread.start()
    _wait_for_search(running.db.cols["slow"])
    running.server.stop()  # must wait for the search, then close the database
    thread.join(5)
    assert results and results[0].ids[0, 0] == 1
    assert running.db.closed
    with pytest.raises(errors.Unavailable):
        db.list_collections()
    db.close()


def test_close_waits_for_calls_that_outlive_the_grace_period(start_server) -> None:
    running = start_server(grace_seconds=0.1)
    db = connect_remote(running.uri, retries=0)
    col = db.create_collection("slow", 2)
    col.upsert([1], [[0.0, 0.0]])
    running.db.cols["slow"].search_delay = 1.0
    outcome: list[object] = []

    def search() -> None:
        try:
            outcome.append(col.search([[0.0, 0.0]], k=1))
        except errors.VecdbError as exc:  # cancelled when the grace period ran out
            outcome.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    _wait_for_search(running.db.cols["slow"])
    running.server.stop()
    thread.join(5)
    assert outcome and running.db.closed
    assert running.db.cols["slow"].finished_at <= running.db.closed_at  # close() never raced the call
    db.close()


def test_deadlines(fake_server) -> None:
    db = connect_remote(fake_server.uri)
    col = db.create_collection("slow", 2)
    col.upsert([1], [[0.0, 0.0]])
    fake_server.db.cols["slow"].search_delay = 0.3
    hasty = connect_remote(fake_server.uri, timeout=0.05)
    with pytest.raises(errors.DeadlineExceeded):
        hasty.collection("slow").search([[0.0, 0.0]], k=1)
    hasty.close()
    assert col.count() == 1  # the server is still fine
    db.close()


def test_limits_answer_resource_exhausted_and_the_server_stays_up(start_server) -> None:
    limits = Limits(max_message_bytes=64 * 1024, max_batch_rows=100, max_queries=5, max_k=50)
    running = start_server(limits=limits)
    db = connect_remote(running.uri)
    col = db.create_collection("c", 4)
    with pytest.raises(errors.ResourceExhausted):
        col.upsert(np.arange(101), np.zeros((101, 4)))  # over max_batch_rows
    col.chunk_bytes = 10 * 1024 * 1024  # send one oversized message instead of chunking
    with pytest.raises(errors.ResourceExhausted):
        col.upsert(np.arange(90), np.zeros((90, 256)))  # 90 rows but ~92 KB > 64 KiB
    with pytest.raises(errors.ResourceExhausted, match="max-k"):
        col.search(np.zeros((1, 4)), k=51)
    with pytest.raises(errors.ResourceExhausted, match="max-queries"):
        col.search(np.zeros((6, 4)), k=1)
    assert col.upsert(np.arange(100), np.zeros((100, 4))) == 100
    assert col.count() == 100
    db.close()


def test_concurrent_rpc_limit(start_server) -> None:
    running = start_server(limits=Limits(max_concurrent_rpcs=2), workers=4)
    db = connect_remote(running.uri, retries=0)
    col = db.create_collection("slow", 2)
    col.upsert([1], [[0.0, 0.0]])
    running.db.cols["slow"].search_delay = 0.5
    outcomes: list[str] = []

    def one() -> None:
        try:
            col.search([[0.0, 0.0]], k=1)
            outcomes.append("ok")
        except errors.ResourceExhausted:
            outcomes.append("exhausted")

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes.count("ok") >= 1 and outcomes.count("exhausted") >= 1
    db.close()


KEYS = """
[[keys]]
name = "admin"
key = "admin-key-0123456789"
scope = "admin"
[[keys]]
name = "writer"
key = "writer-key-0123456789"
scope = "read-write"
tenant = "acme"
[[keys]]
name = "reader"
key = "reader-key-0123456789"
scope = "read-only"
[[keys]]
name = "old"
key = "old-key-0123456789012"
scope = "admin"
expires = 2001-01-01T00:00:00Z
"""


def test_api_keys_over_the_wire(start_server, tmp_path) -> None:
    (tmp_path / "keys.toml").write_text(KEYS)
    running = start_server(api_keys=str(tmp_path / "keys.toml"))
    uri = running.uri
    with pytest.raises(errors.Unauthenticated, match="missing"):
        connect_remote(uri).list_collections()
    with pytest.raises(errors.Unauthenticated, match="unknown"):
        connect_remote(uri, api_key="not-a-key").list_collections()
    with pytest.raises(errors.Unauthenticated, match="expired"):
        connect_remote(uri, api_key="old-key-0123456789012").list_collections()
    admin = connect_remote(uri, api_key="admin-key-0123456789")
    admin.create_collection("c", 2).upsert([1], [[1.0, 0.0]])
    reader = connect_remote(uri, api_key="reader-key-0123456789")
    col = reader.collection("c")
    assert col.count() == 1
    with pytest.raises(errors.PermissionDenied):
        col.upsert([2], [[0.0, 1.0]])
    with pytest.raises(errors.PermissionDenied):
        col.delete(ids=[1])
    with pytest.raises(errors.PermissionDenied):
        reader.drop_collection("c")
    writer = connect_remote(uri, api_key="writer-key-0123456789")
    wcol = writer.collection("c")
    wcol.upsert([2], [[0.0, 1.0]])
    wcol.count(tenant="acme")
    with pytest.raises(errors.NotFound):
        wcol.count(tenant="globex")  # a confined key cannot name another tenant
    with pytest.raises(errors.PermissionDenied):
        writer.create_collection("d", 2)
    # the tenant the engine saw came from the key, never from the (absent) request field
    seen = [kw.get("tenant") for op, kw in running.db.cols["c"].calls if op in ("upsert", "count")]
    assert seen == [None, None, "acme", "acme"]
    # health stays reachable without a key (orchestrators probe it)
    with grpc.insecure_channel(uri.removeprefix("grpc://")) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    for db in (admin, reader, writer):
        db.close()


def test_tls_and_mutual_tls(start_server, tls_files) -> None:
    tls = start_server(tls_cert=str(tls_files.server_cert), tls_key=str(tls_files.server_key))
    uri = f"grpc://localhost:{tls.server.port}"
    db = connect_remote(uri, tls=str(tls_files.ca))
    assert db.list_collections() == []
    db.close()
    with pytest.raises(errors.Unavailable):
        connect_remote(uri, retries=0).list_collections()  # plaintext against TLS
    mtls = start_server(
        tls_cert=str(tls_files.server_cert), tls_key=str(tls_files.server_key), tls_ca=str(tls_files.ca)
    )
    uri = f"grpc://localhost:{mtls.server.port}"
    with pytest.raises(errors.Unavailable):
        connect_remote(uri, tls=str(tls_files.ca), retries=0).list_collections()  # no client cert
    good = connect_remote(uri, tls=TLSConfig(ca=tls_files.ca, cert=tls_files.client_cert, key=tls_files.client_key))
    assert good.list_collections() == []
    good.close()


def test_reflection_is_off_by_default(start_server) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    request = reflection_pb2.ServerReflectionRequest(list_services="")
    plain = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{plain.server.port}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request])))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    on = start_server(reflection=True)
    with grpc.insecure_channel(f"127.0.0.1:{on.server.port}") as channel:
        replies = list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter([request])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert "vecdb.v1.VecdbService" in names


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_endpoint(start_server) -> None:
    port = _free_port()
    running = start_server(metrics_port=port)
    db = connect_remote(running.uri, retries=0)
    db.create_collection("m", 2).upsert([1, 2], [[0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(errors.NotFound):
        db.collection("nope")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'vecdb_rpc_requests_total{code="OK",method="Upsert"} 1.0' in body
    assert 'vecdb_rpc_requests_total{code="NOT_FOUND",method="GetCollection"} 1.0' in body
    assert 'vecdb_collection_vectors{collection="m"} 2.0' in body
    assert "vecdb_rpc_latency_seconds_bucket" in body and "vecdb_process_rss_bytes" in body
    assert "vecdb_wal_bytes 10.0" in body
    db.close()


def test_server_info(fake_server) -> None:
    db = connect_remote(fake_server.uri)
    info = db.server_info()
    assert info["limits"]["max_k"] == Limits().max_k
    assert "kernels" in info and info["database"] == db.info()
    db.close()


def test_open_server_on_a_public_address_warns(start_server, caplog) -> None:
    from vecdb.rpc.server import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("10.1.2.3")
    with caplog.at_level("WARNING", logger="vecdb.rpc.server"):
        start_server(host="0.0.0.0")
    assert "WITHOUT API keys" in caplog.text


def test_client_retries_only_idempotent_calls_on_unavailable() -> None:
    gate = threading.Event()
    db = FakeDatabase()
    server = VecdbServer(ServerSettings(data_dir=":memory:", port=0), open_database=lambda _p: gate.wait(10) and db)
    thread = threading.Thread(target=server.start)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while server.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        client = connect_remote(f"grpc://127.0.0.1:{server.port}", retries=6)
        with pytest.raises(errors.Unavailable):
            client.create_collection("c", 2)  # not idempotent: never retried
        threading.Timer(0.2, gate.set).start()
        assert client.list_collections() == []  # retried until the database opened
        client.close()
    finally:
        gate.set()
        thread.join(10)
        server.stop()
