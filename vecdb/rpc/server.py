"""The gRPC server: a thin translation from vecdb.v1 to the engine's Database.

The server only decodes; the engine validates (one validation layer for both transports), and
every ``vecdb.errors`` exception leaves as the status code its class carries. Lifecycle: bind and
report NOT_SERVING -> open (recover) the database -> SERVING -> on SIGTERM/SIGINT: NOT_SERVING ->
drain in-flight calls -> ``db.close()`` (which fsyncs) -> exit, so the next start replays nothing.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import vecdb.errors as errors
from vecdb.engine import validate
from vecdb.rpc import convert
from vecdb.rpc.auth import CURRENT_PRINCIPAL, AuthInterceptor, KeyRing, abort_with, effective_tenant
from vecdb.rpc.limits import MIB, Limits
from vecdb.v1 import vecdb_pb2 as pb
from vecdb.v1 import vecdb_pb2_grpc as pb_grpc

log = logging.getLogger("vecdb.rpc.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["VecdbService"].full_name
# Responses (a big get, a search with attributes) may legitimately exceed the request limit.
MAX_SEND_BYTES = 1024 * MIB

STREAM_WINDOW_BYTES = 8 * MIB  # two client stream messages in flight

R = TypeVar("R")


@dataclass
class ServerSettings:
    """Everything ``vecdb serve`` can be told (flags > VECDB_* env > TOML > these defaults)."""

    data_dir: str = "./vecdb-data"
    host: str = "127.0.0.1"
    port: int = 50051
    port_file: str | None = None
    metrics_port: int | None = None
    api_keys: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    reflection: bool = False
    workers: int = 16
    grace_seconds: float = 30.0
    limits: Limits = field(default_factory=Limits)


class DatabaseHolder:
    """The database as the servicer sees it: absent while starting, refused while stopping."""

    def __init__(self) -> None:
        self.db: Any = None
        self.stopping = False

    def get(self) -> Any:
        """The open database, or Unavailable while the server starts or stops."""
        if self.stopping:
            raise errors.Unavailable("the server is shutting down")
        if self.db is None:
            raise errors.Unavailable("the server is starting: the database is still opening/recovering")
        return self.db


def _rpc(method: Callable[..., R]) -> Callable[..., R]:
    """Run a servicer method with deadline checks and the error -> status mapping."""

    @functools.wraps(method)
    def wrapper(self: VecdbServicer, request: Any, context: grpc.ServicerContext) -> R:
        try:
            if isinstance(request, convert.MalformedRequest):
                raise errors.InvalidArgument(request.error)
            _check_deadline(context)
            return method(self, request, context)
        except errors.VecdbError as exc:
            abort_with(context, exc)
        except (ValueError, TypeError) as exc:
            # An engine check that raised a builtin error still means "bad argument" to the caller.
            abort_with(context, errors.InvalidArgument(str(exc)))
        except Exception as exc:
            if context.code() is not None:
                raise  # context.abort() already ran inside the method: the status is set
            log.exception("internal error in %s", method.__name__)
            abort_with(context, errors.Internal(f"{type(exc).__name__}: {exc}"))
        raise AssertionError("unreachable: abort_with raises")

    return wrapper


def _check_deadline(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise errors.DeadlineExceeded("the call's deadline passed before the server started it")


def _tenant(request_tenant: str) -> dict[str, str]:
    # Only pass tenant= when there is one, so engines without multi-tenancy keep working.
    tenant = effective_tenant(CURRENT_PRINCIPAL.get(), request_tenant or None)
    return {"tenant": tenant} if tenant else {}


def _upsert_tenants(request: convert.UpsertFrame) -> dict[str, Any]:
    """tenant= (one owner) or tenants= (shared rows); a tenant-confined key can only write its own."""
    if request.tenants:
        if CURRENT_PRINCIPAL.get().tenant is not None or request.tenant:
            raise errors.PermissionDenied("sharing rows between tenants needs a key not confined to a tenant")
        return {"tenants": list(request.tenants)}
    return _tenant(request.tenant)


def _params(text: str, what: str) -> dict[str, Any] | None:
    return convert.from_json(text, what)


class VecdbServicer(pb_grpc.VecdbServiceServicer):
    """VecdbService over an engine Database (see the proto for each call's contract)."""

    def __init__(self, holder: DatabaseHolder, limits: Limits, server_info: Callable[[], dict[str, Any]]):
        self._holder = holder
        self._limits = limits
        self._server_info = server_info

    def _collection(self, name: str) -> Any:
        return self._holder.get().collection(name)

    @_rpc
    def CreateCollection(self, request: pb.CreateCollectionRequest, context: Any) -> pb.CreateCollectionResponse:
        col = self._holder.get().create_collection(
            request.name,
            request.dim,
            metric=convert.metric_from_proto(request.metric),
            index=convert.index_from_proto(request.index) if request.HasField("index") else None,
            quantization=(
                convert.quantization_from_proto(request.quantization) if request.HasField("quantization") else None
            ),
            schema=dict(request.schema) or None,
            multi_tenant=request.multi_tenant,
        )
        response = pb.CreateCollectionResponse()
        convert.collection_to_proto(col, response.collection)
        return response

    @_rpc
    def GetCollection(self, request: pb.GetCollectionRequest, context: Any) -> pb.GetCollectionResponse:
        response = pb.GetCollectionResponse()
        convert.collection_to_proto(self._collection(request.name), response.collection)
        return response

    @_rpc
    def ListCollections(self, request: pb.ListCollectionsRequest, context: Any) -> pb.ListCollectionsResponse:
        return pb.ListCollectionsResponse(names=list(self._holder.get().list_collections()))

    @_rpc
    def DropCollection(self, request: pb.DropCollectionRequest, context: Any) -> pb.DropCollectionResponse:
        self._holder.get().drop_collection(request.name)
        return pb.DropCollectionResponse()

    @_rpc
    def CollectionStats(self, request: pb.CollectionStatsRequest, context: Any) -> pb.CollectionStatsResponse:
        return pb.CollectionStatsResponse(stats_json=convert.to_json(self._collection(request.collection).stats()))

    @_rpc
    def Count(self, request: pb.CountRequest, context: Any) -> pb.CountResponse:
        return pb.CountResponse(count=int(self._collection(request.collection).count(**_tenant(request.tenant))))

    @_rpc
    def Optimize(self, request: pb.OptimizeRequest, context: Any) -> pb.OptimizeResponse:
        self._collection(request.collection).optimize()
        return pb.OptimizeResponse()

    def _upsert_message(self, col: Any, request: convert.UpsertFrame, tenant: dict[str, Any]) -> int:
        table = convert.ipc_to_table(request.arrow_ipc)
        self._limits.check_rows(table.num_rows, validate.MAX_BATCH_ROWS)
        # The engine reads id/vector/attribute columns and validates them exactly as in embedded mode.
        return int(col.upsert(table, **tenant, version=request.version or None))

    @_rpc
    def Upsert(self, request: convert.UpsertFrame, context: Any) -> pb.UpsertResponse:
        col = self._collection(request.collection)
        return pb.UpsertResponse(upserted=self._upsert_message(col, request, _upsert_tenants(request)))

    @_rpc
    def UpsertStream(self, request_iterator: Iterator[convert.UpsertFrame], context: Any) -> pb.UpsertResponse:
        col = None
        name = ""
        tenant: dict[str, Any] = {}
        total = 0
        for request in request_iterator:
            if isinstance(request, convert.MalformedRequest):
                raise errors.InvalidArgument(request.error)
            if col is None:
                if not request.collection:
                    raise errors.InvalidArgument("the first message of an upsert stream must name the collection")
                name = request.collection
                col = self._collection(name)
                tenant = _upsert_tenants(request)
            elif request.collection and request.collection != name:
                raise errors.InvalidArgument(
                    f"an upsert stream writes one collection: got {request.collection!r} after {name!r}"
                )
            _check_deadline(context)  # stop taking batches once the caller has given up
            total += self._upsert_message(col, request, tenant)
        return pb.UpsertResponse(upserted=total)

    @_rpc
    def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.DeleteResponse:
        col = self._collection(request.collection)
        ids = convert.ids_from_bytes(request.ids) if request.has_ids or request.ids else None
        deleted = col.delete(
            ids=ids,
            filter=request.filter or None,
            filter_params=_params(request.filter_params_json, "filter_params_json"),
            **_tenant(request.tenant),
        )
        return pb.DeleteResponse(deleted=int(deleted))

    @_rpc
    def Get(self, request: pb.GetRequest, context: Any) -> pb.GetResponse:
        col = self._collection(request.collection)
        ids = convert.ids_from_bytes(request.ids)
        table = col.get(ids, include=tuple(request.include), **_tenant(request.tenant))
        return pb.GetResponse(arrow_ipc=convert.table_to_ipc(table))

    @_rpc
    def Search(self, request: pb.SearchRequest, context: Any) -> pb.SearchResponse:
        col = self._collection(request.collection)
        self._limits.check_search(request.num_queries, request.k, validate.MAX_K)
        queries = convert.matrix_from_bytes(request.queries, request.num_queries, request.dim)
        result = col.search(
            queries,
            k=request.k,
            filter=request.filter or None,
            filter_params=_params(request.filter_params_json, "filter_params_json"),
            params=_params(request.params_json, "params_json"),
            include=tuple(request.include),
            **_tenant(request.tenant),
            version=request.version or None,
        )
        return convert.search_result_to_proto(result)

    @_rpc
    def AddEmbeddingVersion(
        self, request: pb.AddEmbeddingVersionRequest, context: Any
    ) -> pb.AddEmbeddingVersionResponse:
        col = self._collection(request.collection)
        ids = convert.ids_from_bytes(request.ids)
        self._limits.check_rows(len(ids), validate.MAX_BATCH_ROWS)
        vectors = convert.matrix_from_bytes(request.vectors, len(ids), request.dim, "vectors")
        normalize = request.normalize if request.HasField("normalize") else None
        described = col.add_embedding_version(request.version, ids, vectors, normalize=normalize)
        return pb.AddEmbeddingVersionResponse(version_json=convert.to_json(described))

    @_rpc
    def ListEmbeddingVersions(
        self, request: pb.ListEmbeddingVersionsRequest, context: Any
    ) -> pb.ListEmbeddingVersionsResponse:
        versions = self._collection(request.collection).embedding_versions()
        return pb.ListEmbeddingVersionsResponse(versions_json=convert.to_json(versions))

    @_rpc
    def DropEmbeddingVersion(
        self, request: pb.DropEmbeddingVersionRequest, context: Any
    ) -> pb.DropEmbeddingVersionResponse:
        self._collection(request.collection).drop_embedding_version(request.version)
        return pb.DropEmbeddingVersionResponse()

    @_rpc
    def ServerInfo(self, request: pb.ServerInfoRequest, context: Any) -> pb.ServerInfoResponse:
        info = self._server_info()
        return pb.ServerInfoResponse(version=str(info.get("version", "")), info_json=convert.to_json(info))


def add_servicer(servicer: VecdbServicer, server: grpc.Server) -> None:
    """Register VecdbService like the generated helper, with two differences in request decoding.

    Malformed request bytes become ``MalformedRequest`` (answered INVALID_ARGUMENT) instead of a
    deserializer exception (which gRPC answers INTERNAL), and upserts are decoded without copying
    their Arrow payload.
    """
    service = pb.DESCRIPTOR.services_by_name["VecdbService"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        if request_class is pb.UpsertRequest:
            deserializer: Callable[[bytes], Any] = convert.decode_upsert_request
        else:
            deserializer = convert.safe_deserializer(request_class)
        make = grpc.stream_unary_rpc_method_handler if method.client_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=deserializer,
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if not (settings.tls_cert or settings.tls_key):
        if settings.tls_ca:
            raise errors.InvalidArgument("--tls-ca (mutual TLS) needs --tls-cert and --tls-key")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise errors.InvalidArgument("TLS needs both --tls-cert and --tls-key")
    ca = _read(settings.tls_ca)
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key), _read(settings.tls_cert))],
        root_certificates=ca,
        require_client_auth=ca is not None,  # a CA means mutual TLS: clients must present a cert
    )


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def package_version() -> str:
    """The installed vecdb version (\"unknown\" when running from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vecdb")
    except PackageNotFoundError:
        return "unknown"


def runtime_info(db: Any, limits: Limits) -> dict[str, Any]:
    """Version, database info, kernels and limits, for ServerInfo and ``vecdb info``."""
    info: dict[str, Any] = {"version": package_version(), "limits": limits.to_dict()}
    try:
        from vecdb import kernels

        if hasattr(kernels, "info"):
            info["kernels"] = kernels.info()
    except Exception as exc:  # kernel probing must never take the server down
        info["kernels"] = {"error": str(exc)}
    if db is not None:
        info["database"] = db.info()
    return info


class VecdbServer:
    """A configured server: ``start()`` binds and opens, ``stop()`` drains and closes."""

    def __init__(self, settings: ServerSettings, open_database: Callable[[str], Any] | None = None) -> None:
        self.settings = settings
        self._open_database = open_database or _engine_open
        self.holder = DatabaseHolder()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.port = 0
        self._grpc: grpc.Server | None = None
        self._workers: futures.ThreadPoolExecutor | None = None
        self._metrics_http: Any = None
        self._stopped = threading.Event()

    def _build(self) -> grpc.Server:
        settings = self.settings
        keys = KeyRing.from_toml(settings.api_keys) if settings.api_keys else None
        if keys is None and not _is_loopback(settings.host):
            log.warning(
                "serving on %s WITHOUT API keys: anyone who can reach this port can read and write "
                "everything. Pass --api-keys keys.toml, or bind to 127.0.0.1.",
                settings.host,
            )
        interceptors: list[grpc.ServerInterceptor] = []
        if settings.metrics_port is not None:
            from vecdb.rpc.metrics import MetricsInterceptor, start_metrics

            rpc_metrics, self._metrics_http = start_metrics(
                settings.metrics_port, settings.host, lambda: self.holder.db
            )
            interceptors.append(MetricsInterceptor(rpc_metrics))
        interceptors.append(AuthInterceptor(keys))  # after metrics, so refused calls are counted too
        limits = settings.limits
        self._workers = futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="vecdb-rpc")
        server = grpc.server(
            self._workers,
            interceptors=interceptors,
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limits.max_message_bytes),
                ("grpc.max_send_message_length", MAX_SEND_BYTES),
                ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
                # Let a streaming client send the next upsert message while the engine fsyncs the
                # current one (the default window starts at 64 KiB and grows only slowly).
                ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
            ],
        )
        servicer = VecdbServicer(self.holder, limits, lambda: runtime_info(self.holder.db, limits))
        add_servicer(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if settings.reflection:
            from grpc_reflection.v1alpha import reflection

            reflection.enable_server_reflection(
                (
                    SERVICE_NAME,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                server,
            )
        return server

    def start(self) -> int:
        """Bind, serve health as NOT_SERVING, open the database, then serve. Returns the bound port."""
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._grpc = self._build()
        address = _format_address(self.settings.host, self.settings.port)
        credentials = _server_credentials(self.settings)
        try:
            if credentials is None:
                self.port = self._grpc.add_insecure_port(address)
            else:
                self.port = self._grpc.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise errors.Unavailable(f"cannot bind {address}: {exc}") from None
        self._grpc.start()
        if self.settings.port_file:
            _write_atomically(Path(self.settings.port_file), f"{self.port}\n")
        log.info("listening on %s (port %d); opening %s", address, self.port, self.settings.data_dir)
        self.holder.db = self._open_database(self.settings.data_dir)
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving %s", self.settings.data_dir)
        return self.port

    def stop(self) -> None:
        """NOT_SERVING -> refuse new calls and drain in-flight ones -> close the database."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        if self._grpc is not None:
            # stop() rejects new RPCs at once and waits up to grace for the running ones.
            self._grpc.stop(self.settings.grace_seconds).wait()
        if self._workers is not None:
            # Calls still running past the grace period were cancelled, but their threads are still
            # inside the engine: wait for them, so close() never races a write.
            self._workers.shutdown(wait=True)
        self.holder.stopping = True
        db, self.holder.db = self.holder.db, None
        if db is not None:
            db.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        log.info("stopped cleanly")


def _write_atomically(path: Path, text: str) -> None:
    # Readers poll for this file: they must never see it half written.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _engine_open(path: str) -> Any:
    from vecdb.engine.database import Database

    if path != ":memory:":
        Path(path).mkdir(parents=True, exist_ok=True)
    return Database.open(path)


def run(settings: ServerSettings) -> None:
    """Run a server in the foreground until SIGTERM or SIGINT, then shut it down gracefully."""
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = VecdbServer(settings)
    try:
        server.start()
        print(f"vecdb serving on {_format_address(settings.host, server.port)}", flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():  # embedders (and tests) get their handlers back
            signal.signal(sig, handler)
