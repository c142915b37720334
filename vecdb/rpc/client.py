"""The gRPC client SDK: the embedded Database/Collection API over the wire.

``connect_remote("grpc://host:port")`` returns a ``RemoteDatabase`` whose methods, return types
(``SearchResult``, ``pyarrow.Table``, ``int``, ``dict``) and exceptions (``vecdb.errors``) match the
embedded engine's. This module never imports the engine: every check happens on the server.
Retries: only UNAVAILABLE, only on idempotent calls (reads, and unary upserts, which replace by id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import numpy as np
import pyarrow as pa

from vecdb.errors import ERRORS_BY_CODE, InvalidArgument, VecdbError
from vecdb.rpc import convert
from vecdb.rpc.limits import MIB
from vecdb.types import SearchResult
from vecdb.v1 import vecdb_pb2 as pb
from vecdb.v1 import vecdb_pb2_grpc as pb_grpc

DEFAULT_PORT = 50051
DEFAULT_CHUNK_BYTES = 4 * MIB  # stream messages stay well under every server's message limit
DEFAULT_CHUNK_ROWS = 50_000  # and under the default --max-batch-rows for tiny vectors


@dataclass(frozen=True)
class TLSConfig:
    """TLS settings of a client: CA bundle (None = system roots), client cert/key for mutual TLS.

    Each of ca, cert, key is a path or the PEM bytes. server_name overrides the name checked
    against the server certificate (useful when connecting by IP).
    """

    ca: str | Path | bytes | None = None
    cert: str | Path | bytes | None = None
    key: str | Path | bytes | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials these settings describe."""
        if (self.cert is None) != (self.key is None):
            raise InvalidArgument("mutual TLS needs both a client cert and a client key")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca), private_key=_pem(self.key), certificate_chain=_pem(self.cert)
        )


def _pem(value: str | Path | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def _tls_config(tls: Any, scheme: str) -> TLSConfig | None:
    if tls is None:
        return TLSConfig() if scheme == "grpcs" else None
    if tls is False:
        return None
    if tls is True:
        return TLSConfig()
    if isinstance(tls, TLSConfig):
        return tls
    if isinstance(tls, (str, Path)):
        return TLSConfig(ca=tls)
    if isinstance(tls, dict):
        return TLSConfig(**tls)
    raise InvalidArgument(f"tls must be None, a bool, a CA path, a dict or a TLSConfig, got {type(tls)}")


def parse_target(uri: str) -> tuple[str, str]:
    """``grpc://host:port`` (or grpcs://, or bare host:port) -> (scheme, "host:port")."""
    if "://" not in uri:
        uri = "grpc://" + uri
    parts = urlsplit(uri)
    if parts.scheme not in ("grpc", "grpcs"):
        raise InvalidArgument(f"unsupported URI scheme {parts.scheme!r}: use grpc://host:port")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidArgument(f"bad port in {uri!r}") from None
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return parts.scheme, f"{host}:{port}"


def error_from_rpc(err: grpc.RpcError) -> VecdbError:
    """The ``vecdb.errors`` exception for a failed call (same class the engine would raise)."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    name = code.name if code is not None else "UNKNOWN"
    cls = ERRORS_BY_CODE.get(name, VecdbError)
    message = details or name
    return cls(message) if cls is not VecdbError else VecdbError(f"{name}: {message}")


class _Transport:
    """A channel, its stub, the credentials metadata and the retry policy."""

    def __init__(
        self, uri: str, api_key: str | None, tls: Any, timeout: float | None, retries: int, options: Sequence
    ) -> None:
        scheme, target = parse_target(uri)
        self.uri = uri
        tls_config = _tls_config(tls, scheme)
        channel_options = [
            ("grpc.max_receive_message_length", -1),  # responses are bounded by the server
            ("grpc.max_send_message_length", -1),  # the server's limit is the one that counts
            *options,
        ]
        if tls_config is None:
            self.channel = grpc.insecure_channel(target, options=channel_options)
        else:
            if tls_config.server_name:
                channel_options.append(("grpc.ssl_target_name_override", tls_config.server_name))
            self.channel = grpc.secure_channel(target, tls_config.credentials(), options=channel_options)
        self.stub = pb_grpc.VecdbServiceStub(self.channel)
        # Upserts go out pre-serialized (convert.encode_upsert_request): one copy of the payload.
        self.raw_methods: dict[str, Callable[..., Any]] = {
            "Upsert": self.channel.unary_unary(
                "/vecdb.v1.VecdbService/Upsert", response_deserializer=pb.UpsertResponse.FromString
            ),
            "UpsertStream": self.channel.stream_unary(
                "/vecdb.v1.VecdbService/UpsertStream", response_deserializer=pb.UpsertResponse.FromString
            ),
        }
        # Per-call metadata rather than call credentials: it also works over plaintext on localhost.
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self.timeout = timeout
        self.retries = retries

    def call(self, name: str, request: Any, *, idempotent: bool, timeout: float | None = None) -> Any:
        """Invoke unary method ``name``; map failures to vecdb errors; retry UNAVAILABLE if idempotent."""
        method: Callable[..., Any] = self.raw_methods.get(name) or getattr(self.stub, name)
        attempts = self.retries + 1 if idempotent else 1
        delay = 0.05
        for attempt in range(attempts):
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                    time.sleep(delay)
                    delay = min(delay * 4, 2.0)
                    continue
                raise error_from_rpc(err) from None
        raise AssertionError("unreachable")

    def stream(self, name: str, requests: Iterator[Any]) -> Any:
        """Invoke client-streaming method ``name`` (never retried: a prefix may have been applied)."""
        try:
            method = self.raw_methods.get(name) or getattr(self.stub, name)
            return method(requests, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as err:
            raise error_from_rpc(err) from None


class RemoteCollection:
    """A collection on a vecdb server, with the embedded Collection API."""

    def __init__(self, transport: _Transport, spec: convert.CollectionSpec) -> None:
        self._t = transport
        self._spec = spec
        self.chunk_bytes = DEFAULT_CHUNK_BYTES
        self.chunk_rows = DEFAULT_CHUNK_ROWS

    name = property(lambda self: self._spec.name, doc="The collection's name.")
    dim = property(lambda self: self._spec.dim, doc="Vector dimension.")
    metric = property(lambda self: self._spec.metric, doc="l2 | ip | cosine.")
    index = property(lambda self: self._spec.index, doc="The index configuration.")
    quantization = property(lambda self: self._spec.quantization, doc="The quantization configuration.")
    schema = property(lambda self: dict(self._spec.schema), doc="Attribute name -> type.")
    multi_tenant = property(lambda self: self._spec.multi_tenant, doc="Whether rows belong to tenants.")

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r}, dim={self.dim}, metric={self.metric!r}, uri={self._t.uri!r})"

    def describe(self) -> dict[str, Any]:
        """The collection's configuration as plain data (as the embedded ``describe()``)."""
        from vecdb.config import config_to_dict

        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "index": config_to_dict(self.index),
            "quantization": config_to_dict(self.quantization),
            "schema": self.schema,
            "multi_tenant": self.multi_tenant,
        }

    def upsert(
        self,
        ids: Any,
        vectors: Any = None,
        attributes: Any = None,
        *,
        tenant: str | None = None,
        tenants: list[str] | None = None,
        version: str | None = None,
        progress: bool = False,
    ) -> int:
        """Insert or replace rows; returns the number upserted. ``tenant``/``tenants``/``version`` as in
        embedded mode.

        A batch that fits one message is one atomic call; a bigger one streams in chunks of at most
        ``chunk_bytes`` (each chunk durable on its own), with a tqdm progress bar if ``progress``.
        """
        table = convert.upsert_table(ids, vectors, attributes)
        chunks = list(_chunks(table, self.chunk_bytes, self.chunk_rows))
        if len(chunks) == 1 and not progress:
            request = convert.encode_upsert_request(table, self.name, tenant or "", tuple(tenants or ()),
                                                    version or "")
            return int(self._t.call("Upsert", request, idempotent=True).upserted)
        stream = self._stream(chunks, tenant, tenants, version, progress)
        return int(self._t.stream("UpsertStream", stream).upserted)

    def _stream(
        self, chunks: list[pa.Table], tenant: str | None, tenants: list[str] | None, version: str | None,
        progress: bool,
    ) -> Iterator[bytes]:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(c.num_rows for c in chunks), unit="vec", desc=f"upsert {self.name}")
        try:
            for i, chunk in enumerate(chunks):
                if i == 0:
                    yield convert.encode_upsert_request(chunk, self.name, tenant or "", tuple(tenants or ()),
                                                        version or "")
                else:
                    yield convert.encode_upsert_request(chunk)
                if bar is not None:
                    bar.update(chunk.num_rows)
        finally:
            if bar is not None:
                bar.close()

    def delete(
        self,
        ids: Any = None,
        *,
        filter: str | None = None,
        filter_params: dict[str, Any] | None = None,
        tenant: str | None = None,
    ) -> int:
        """Delete by ids and/or filter; returns the number deleted."""
        request = pb.DeleteRequest(
            collection=self.name,
            ids=convert.ids_to_bytes(ids) if ids is not None else b"",
            has_ids=ids is not None,
            filter=filter or "",
            filter_params_json=convert.to_json(filter_params),
            tenant=tenant or "",
        )
        return int(self._t.call("Delete", request, idempotent=False).deleted)

    def get(self, ids: Any, include: Sequence[str] = ("vector",), *, tenant: str | None = None) -> pa.Table:
        """Rows by id: an "id" column plus the included ones; missing ids are absent."""
        if isinstance(include, str):
            include = (include,)
        request = pb.GetRequest(
            collection=self.name, ids=convert.ids_to_bytes(ids), include=list(include), tenant=tenant or ""
        )
        return convert.ipc_to_table(self._t.call("Get", request, idempotent=True).arrow_ipc)

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        filter: str | None = None,
        filter_params: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        include: Sequence[str] = (),
        tenant: str | None = None,
        version: str | None = None,
    ) -> SearchResult:
        """Nearest neighbours of each query: queries (n, dim) float32 -> SearchResult (n, k)."""
        matrix = _query_matrix(queries)
        if isinstance(include, str):
            include = (include,)
        request = pb.SearchRequest(
            collection=self.name,
            queries=convert.matrix_to_bytes(matrix),
            num_queries=matrix.shape[0],
            dim=matrix.shape[1],
            k=_int32(k, "k"),
            filter=filter or "",
            filter_params_json=convert.to_json(filter_params),
            params_json=convert.to_json(params),
            include=list(include),
            tenant=tenant or "",
            version=version or "",
        )
        return convert.search_result_from_proto(self._t.call("Search", request, idempotent=True))

    def add_embedding_version(
        self, version: str, ids: Any, vectors: Any, *, normalize: bool | None = None
    ) -> dict[str, Any]:
        """Fit and register ``version`` from that model's embeddings of stored rows (as embedded mode)."""
        id_bytes = convert.ids_to_bytes(ids)
        matrix = _query_matrix(vectors)
        request = pb.AddEmbeddingVersionRequest(
            collection=self.name, version=version, ids=id_bytes, vectors=convert.matrix_to_bytes(matrix),
            dim=matrix.shape[1], normalize=normalize)
        reply = self._t.call("AddEmbeddingVersion", request, idempotent=False)
        return convert.from_json(reply.version_json, "version_json") or {}

    def embedding_versions(self) -> dict[str, dict[str, Any]]:
        """Registered embedding versions: {name: {"dim", "normalize", "fit_rows", "report"}}."""
        request = pb.ListEmbeddingVersionsRequest(collection=self.name)
        reply = self._t.call("ListEmbeddingVersions", request, idempotent=True)
        return convert.from_json(reply.versions_json, "versions_json") or {}

    def drop_embedding_version(self, version: str) -> None:
        """Forget ``version``'s map (rows stored through it stay)."""
        request = pb.DropEmbeddingVersionRequest(collection=self.name, version=version)
        self._t.call("DropEmbeddingVersion", request, idempotent=False)

    def count(self, *, tenant: str | None = None) -> int:
        """Live rows in the collection."""
        request = pb.CountRequest(collection=self.name, tenant=tenant or "")
        return int(self._t.call("Count", request, idempotent=True).count)

    def optimize(self) -> None:
        """Seal, compact and (re)build indexes now; blocks until done."""
        self._t.call("Optimize", pb.OptimizeRequest(collection=self.name), idempotent=True)

    def stats(self) -> dict[str, Any]:
        """Rows, deleted rows, segments, bytes on disk and in memory."""
        request = pb.CollectionStatsRequest(collection=self.name)
        reply = self._t.call("CollectionStats", request, idempotent=True)
        return convert.from_json(reply.stats_json, "stats_json") or {}


def _chunks(table: pa.Table, max_bytes: int, max_rows: int) -> Iterator[pa.Table]:
    for piece in convert.chunk_table(table, max_bytes):
        for start in range(0, max(piece.num_rows, 1), max_rows):
            yield piece.slice(start, max_rows)


def _query_matrix(queries: Any) -> np.ndarray:
    try:
        matrix = np.asarray(queries, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"queries could not be read as a float32 matrix: {exc}") from None
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise InvalidArgument(f"queries must have shape (n, dim), got {matrix.shape}")
    return matrix


def _int32(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    if not -(2**31) <= int(value) < 2**31:
        raise InvalidArgument(f"{what}={value} is out of range")
    return int(value)


class RemoteDatabase:
    """A vecdb server, with the embedded Database API (also a context manager)."""

    def __init__(self, transport: _Transport) -> None:
        self._t = transport

    def __repr__(self) -> str:
        return f"RemoteDatabase({self._t.uri!r})"

    def __enter__(self) -> RemoteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        index: Any = None,
        quantization: Any = None,
        schema: dict[str, str] | None = None,
        multi_tenant: bool = False,
    ) -> RemoteCollection:
        """Create a collection (AlreadyExists if the name is taken)."""
        request = pb.CreateCollectionRequest(
            name=name,
            dim=_int32(dim, "dim"),
            metric=convert.metric_to_proto(metric),
            schema={str(k): str(v) for k, v in (schema or {}).items()},
            multi_tenant=bool(multi_tenant),
        )
        if index is not None:
            convert.index_to_proto(index, request.index)
        if quantization is not None:
            convert.quantization_to_proto(quantization, request.quantization)
        reply = self._t.call("CreateCollection", request, idempotent=False)
        return RemoteCollection(self._t, convert.collection_from_proto(reply.collection))

    def collection(self, name: str) -> RemoteCollection:
        """An existing collection (NotFound otherwise)."""
        reply = self._t.call("GetCollection", pb.GetCollectionRequest(name=name), idempotent=True)
        return RemoteCollection(self._t, convert.collection_from_proto(reply.collection))

    def list_collections(self) -> list[str]:
        """Names of all collections."""
        return list(self._t.call("ListCollections", pb.ListCollectionsRequest(), idempotent=True).names)

    def drop_collection(self, name: str) -> None:
        """Delete a collection and its data (NotFound if absent)."""
        self._t.call("DropCollection", pb.DropCollectionRequest(name=name), idempotent=False)

    def server_info(self) -> dict[str, Any]:
        """Everything the server reports: version, limits, kernels, and the database's info()."""
        reply = self._t.call("ServerInfo", pb.ServerInfoRequest(), idempotent=True)
        return convert.from_json(reply.info_json, "info_json") or {"version": reply.version}

    def info(self) -> dict[str, Any]:
        """The database's info(), as the embedded ``Database.info()`` returns it."""
        return dict(self.server_info().get("database", {}))

    def close(self) -> None:
        """Close the channel (the server and its data are unaffected)."""
        self._t.channel.close()


def connect_remote(
    uri: str,
    api_key: str | None = None,
    tls: Any = None,
    *,
    timeout: float | None = None,
    retries: int = 3,
    options: Sequence[tuple[str, Any]] = (),
) -> RemoteDatabase:
    """Connect to ``grpc://host:port`` (``grpcs://`` implies TLS with system roots).

    api_key: sent as ``authorization: Bearer <key>``. tls: None/False (plaintext), True (system
    roots), a CA path, a dict of TLSConfig fields, or a TLSConfig. timeout: deadline in seconds for
    each call (None = no deadline). retries: extra attempts on UNAVAILABLE for idempotent calls.
    """
    return RemoteDatabase(_Transport(uri, api_key, tls, timeout, retries, options))
