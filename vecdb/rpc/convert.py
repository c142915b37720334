"""Translation between Python values and vecdb.v1 protobuf messages.

This is the only module that touches protobuf types. Bulk data never goes through protobuf
scalars: arrays are little-endian bytes (decoded as zero-copy numpy views) and rows with
attributes are Arrow IPC streams. Malformed wire data raises ``InvalidArgument``; deciding whether
well-formed data is *valid* (dimension, finiteness, schema) is the engine's job, on both transports.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError

from vecdb.config import config_from_dict, config_to_dict
from vecdb.errors import InvalidArgument
from vecdb.types import SearchResult
from vecdb.v1 import vecdb_pb2 as pb

_METRIC_TO_PROTO = {"l2": pb.METRIC_L2, "ip": pb.METRIC_IP, "cosine": pb.METRIC_COSINE}
_METRIC_FROM_PROTO = {v: k for k, v in _METRIC_TO_PROTO.items()}
DEFAULT_METRIC = "cosine"

_ID_DTYPE = np.dtype("<i8")
_FLOAT_DTYPE = np.dtype("<f4")


# ---------------------------------------------------------------- scalars and JSON maps


def metric_to_proto(metric: str) -> int:
    """``"l2"|"ip"|"cosine"`` -> the ``Metric`` enum value (unknown names are InvalidArgument)."""
    try:
        return _METRIC_TO_PROTO[metric]
    except KeyError:
        raise InvalidArgument(f"unknown metric {metric!r}: expected one of l2, ip, cosine") from None


def metric_from_proto(value: int) -> str:
    """The ``Metric`` enum value -> its name; UNSPECIFIED means the default (cosine)."""
    if value == pb.METRIC_UNSPECIFIED:
        return DEFAULT_METRIC
    try:
        return _METRIC_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(f"unknown metric enum value {value}") from None


def _json_default(value: Any) -> Any:
    # Engine stats and search metadata hold numpy scalars and arrays; JSON needs plain values.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value) if hasattr(value, "kind") else dataclasses.asdict(value)
    return str(value)


def to_json(value: Mapping[str, Any] | None) -> str:
    """A JSON object for a free-form map; None becomes the empty string (absent)."""
    if value is None:
        return ""
    return json.dumps(value, default=_json_default, allow_nan=True, separators=(",", ":"))


def from_json(text: str, what: str) -> dict[str, Any] | None:
    """Inverse of ``to_json``; ``what`` names the field in the error message."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- arrays as bytes


def ids_to_bytes(ids: Any) -> bytes:
    """ids (n,) int64 -> little-endian bytes; non-integer input is InvalidArgument."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        return b""
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise InvalidArgument(f"ids must be a 1-d array of integers, got shape {arr.shape} {arr.dtype}")
    if np.issubdtype(arr.dtype, np.unsignedinteger) and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise InvalidArgument("ids must fit in int64")
    return arr.astype(_ID_DTYPE, copy=False).tobytes()


def ids_from_bytes(data: bytes) -> np.ndarray:
    """Little-endian int64 bytes -> (n,) int64 array (a read-only view)."""
    if len(data) % 8:
        raise InvalidArgument(f"ids bytes length {len(data)} is not a multiple of 8")
    return np.frombuffer(data, dtype=_ID_DTYPE).astype(np.int64, copy=False)


def matrix_to_bytes(matrix: np.ndarray) -> bytes:
    """(n, d) float32 -> little-endian row-major bytes."""
    return np.ascontiguousarray(matrix, dtype=_FLOAT_DTYPE).tobytes()


def matrix_from_bytes(data: bytes, rows: int, cols: int, what: str = "queries") -> np.ndarray:
    """Little-endian float32 bytes -> (rows, cols) float32 view; the byte count must match exactly."""
    if rows < 0 or cols < 0:
        raise InvalidArgument(f"{what}: negative shape ({rows}, {cols})")
    if len(data) != rows * cols * 4:
        raise InvalidArgument(f"{what}: {len(data)} bytes do not hold {rows} x {cols} float32 values")
    return np.frombuffer(data, dtype=_FLOAT_DTYPE).astype(np.float32, copy=False).reshape(rows, cols)


# ---------------------------------------------------------------- Arrow IPC


def table_to_ipc(table: pa.Table | pa.RecordBatch) -> bytes:
    """A table (or batch) -> Arrow IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue().to_pybytes()


def ipc_to_table(data: bytes | memoryview, what: str = "arrow_ipc") -> pa.Table:
    """Arrow IPC stream bytes -> a table; anything unreadable is InvalidArgument."""
    if not data:
        raise InvalidArgument(f"{what} is empty")
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        raise InvalidArgument(f"{what} is not a readable Arrow IPC stream: {exc}") from None


def _attributes_table(attributes: Any) -> pa.Table | None:
    if attributes is None:
        return None
    if isinstance(attributes, pa.Table):
        return attributes
    if isinstance(attributes, pa.RecordBatch):
        return pa.Table.from_batches([attributes])
    if isinstance(attributes, Mapping):
        try:
            return pa.table({name: _column(values) for name, values in attributes.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"attributes could not be converted to columns: {exc}") from None
    if hasattr(attributes, "to_dict") and hasattr(attributes, "columns"):  # pandas, without importing it
        try:
            return pa.Table.from_pandas(attributes, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"attributes could not be converted to columns: {exc}") from None
    raise InvalidArgument(
        f"attributes must be a dict of columns, a pyarrow.Table or a pandas DataFrame, got {type(attributes)}"
    )


def _column(values: Any) -> Any:
    return values if isinstance(values, (pa.Array, pa.ChunkedArray, np.ndarray)) else list(values)


def upsert_table(ids: Any, vectors: Any = None, attributes: Any = None) -> pa.Table:
    """Build the wire table (id, vector, attributes...) from the arguments of ``upsert``.

    ``upsert(table)`` with id/vector columns is passed through as is. Only shape is checked
    here (it must become a table); values are validated by the engine on the server.
    """
    if vectors is None and attributes is None and isinstance(ids, (pa.Table, pa.RecordBatch)):
        return ids if isinstance(ids, pa.Table) else pa.Table.from_batches([ids])
    if vectors is None and attributes is None and hasattr(ids, "columns") and hasattr(ids, "to_dict"):
        return _attributes_table(ids)  # a pandas frame with id/vector columns
    id_arr = np.asarray(ids)
    if id_arr.ndim == 0:
        id_arr = id_arr.reshape(1)
    try:
        vec = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"vectors could not be read as a float32 matrix: {exc}") from None
    if vec.ndim == 1 and id_arr.shape[0] == 1:
        vec = vec.reshape(1, -1)
    if vec.ndim != 2:
        raise InvalidArgument(f"vectors must have shape (n, dim), got {vec.shape}")
    if not (np.issubdtype(id_arr.dtype, np.integer) or id_arr.size == 0):
        raise InvalidArgument(f"ids must be integers, got dtype {id_arr.dtype}")
    if id_arr.ndim != 1 or id_arr.shape[0] != vec.shape[0]:
        raise InvalidArgument(f"got {id_arr.shape[0]} ids for {vec.shape[0]} vectors")
    flat = pa.array(np.ascontiguousarray(vec).reshape(-1), type=pa.float32())
    columns: dict[str, Any] = {
        "id": pa.array(id_arr.astype(np.int64, copy=False), type=pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, vec.shape[1]),
    }
    attrs = _attributes_table(attributes)
    if attrs is not None:
        if attrs.num_rows != vec.shape[0]:
            raise InvalidArgument(f"attributes have {attrs.num_rows} rows for {vec.shape[0]} vectors")
        for name in attrs.column_names:
            if name in columns:
                raise InvalidArgument(f"attribute name {name!r} is reserved")
            columns[name] = attrs.column(name)
    return pa.table(columns)


def chunk_table(table: pa.Table, max_bytes: int) -> Iterator[pa.Table]:
    """Slices of ``table`` whose in-memory size stays under ``max_bytes`` (at least one row each)."""
    if table.num_rows == 0:
        yield table
        return
    row_bytes = max(1, math.ceil(table.nbytes / table.num_rows))
    step = max(1, max_bytes // row_bytes)
    for start in range(0, table.num_rows, step):
        yield table.slice(start, step)


# ---------------------------------------------------------------- request framing


@dataclasses.dataclass(frozen=True)
class MalformedRequest:
    """What a deserializer returns for bytes that are not a valid message (answered INVALID_ARGUMENT).

    gRPC would answer INTERNAL for a deserializer that raises; bad input is the caller's fault.
    """

    error: str


def safe_deserializer(message_class: Any) -> Callable[[bytes], Any]:
    """``message_class.FromString`` that returns ``MalformedRequest`` instead of raising."""

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return MalformedRequest(f"malformed {message_class.__name__}: {exc}")

    return parse


@dataclasses.dataclass(frozen=True)
class UpsertFrame:
    """A decoded ``UpsertRequest`` whose Arrow payload is a view of the received bytes (no copy)."""

    collection: str
    arrow_ipc: memoryview
    tenant: str
    tenants: tuple[str, ...] = ()
    version: str = ""


_LEN = 2  # protobuf wire type of length-delimited fields
_UPSERT_IPC_TAG = bytes([2 << 3 | _LEN])  # UpsertRequest.arrow_ipc = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_upsert_request(
    table: pa.Table, collection: str = "", tenant: str = "", tenants: tuple[str, ...] = (), version: str = ""
) -> bytes:
    """Serialize an ``UpsertRequest`` carrying ``table`` with one copy of the payload.

    Byte-compatible with protobuf's own encoding (fields 1, 3, 4 and 5 first, then field 2); going through
    the message class would copy a multi-megabyte payload three more times.
    """
    header = pb.UpsertRequest(collection=collection, tenant=tenant, tenants=list(tenants),
                              version=version).SerializeToString()
    sizer = pa.MockOutputStream()
    with pa.ipc.new_stream(sizer, table.schema) as writer:
        writer.write(table)
    size = sizer.size()
    prefix = header + _UPSERT_IPC_TAG + _varint(size)
    buffer = pa.allocate_buffer(len(prefix) + size)
    sink = pa.FixedSizeBufferWriter(buffer)
    sink.write(prefix)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return buffer.to_pybytes()


def decode_upsert_request(data: bytes) -> UpsertFrame | MalformedRequest:
    """Parse ``UpsertRequest`` bytes without copying the Arrow payload; never raises."""
    view = memoryview(data)
    fields: dict[int, memoryview] = {}
    shared: list[str] = []  # field 4 is repeated: every occurrence counts
    pos = 0
    try:
        while pos < len(view):
            key, pos = _read_varint(view, pos)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                raise ValueError("field number 0")
            if wire_type == 0:
                _, pos = _read_varint(view, pos)
            elif wire_type == 1 or wire_type == 5:
                pos += 8 if wire_type == 1 else 4
            elif wire_type == _LEN:
                length, pos = _read_varint(view, pos)
                if pos + length > len(view):
                    raise ValueError("length-delimited field runs past the end")
                if number == 4:
                    shared.append(bytes(view[pos : pos + length]).decode("utf-8"))
                else:
                    fields[number] = view[pos : pos + length]  # the last occurrence wins, as in protobuf
                pos += length
            else:
                raise ValueError(f"unsupported wire type {wire_type}")
        if pos > len(view):
            raise ValueError("truncated fixed-width field")
        return UpsertFrame(
            collection=bytes(fields.get(1, b"")).decode("utf-8"),
            arrow_ipc=fields.get(2, memoryview(b"")),
            tenant=bytes(fields.get(3, b"")).decode("utf-8"),
            tenants=tuple(shared),
            version=bytes(fields.get(5, b"")).decode("utf-8"),
        )
    except (ValueError, UnicodeDecodeError) as exc:
        return MalformedRequest(f"malformed UpsertRequest: {exc}")


# ---------------------------------------------------------------- configs


_INDEX_KINDS = ("flat", "hnsw", "ivf", "spann")
_QUANT_KINDS = ("sq", "pq", "bebr")


def _config_to_message(config: Any, message: Any, kinds: tuple[str, ...]) -> None:
    data = config_to_dict(config)
    assert data is not None
    kind = data.pop("kind")
    extra: dict[str, Any] = {}
    if kind in kinds:
        sub = getattr(message, kind)
        sub.SetInParent()  # an empty FlatIndex must still select its oneof arm
        typed = {f.name for f in sub.DESCRIPTOR.fields}
        for name, value in data.items():
            if name in typed and value is not None:
                setattr(sub, name, value)
            elif name not in typed:
                extra[name] = value
    else:
        # A configuration newer than this proto: carry it whole, so old servers can still relay it.
        extra = {"kind": kind, **data}
    if extra:
        message.extra_json = to_json(extra)


def _config_from_message(message: Any, kinds: tuple[str, ...]) -> Any:
    arm = message.WhichOneof("kind")
    extra = from_json(message.extra_json, "extra_json") or {}
    if arm is None:
        if "kind" not in extra:
            return None
        data = extra
    else:
        sub = getattr(message, arm)
        data = {"kind": arm, **extra}
        for field in sub.DESCRIPTOR.fields:
            if sub.HasField(field.name):
                data[field.name] = getattr(sub, field.name)
    try:
        return config_from_dict(data)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def index_to_proto(config: Any, message: pb.IndexConfig) -> None:
    """Fill ``message`` from an index config dataclass (None leaves it unset)."""
    if config is not None:
        _config_to_message(config, message, _INDEX_KINDS)


def index_from_proto(message: pb.IndexConfig) -> Any:
    """An ``IndexConfig`` message -> the config dataclass, or None when unset."""
    return _config_from_message(message, _INDEX_KINDS)


def quantization_to_proto(config: Any, message: pb.QuantizationConfig) -> None:
    """Fill ``message`` from a quantization config dataclass (None leaves it unset)."""
    if config is not None:
        _config_to_message(config, message, _QUANT_KINDS)


def quantization_from_proto(message: pb.QuantizationConfig) -> Any:
    """A ``QuantizationConfig`` message -> the config dataclass, or None when unset."""
    return _config_from_message(message, _QUANT_KINDS)


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
    """What a collection is, as the wire describes it (the client's view of a collection)."""

    name: str
    dim: int
    metric: str
    index: Any = None
    quantization: Any = None
    schema: dict[str, str] = dataclasses.field(default_factory=dict)
    multi_tenant: bool = False


def collection_to_proto(collection: Any, message: pb.CollectionInfo) -> None:
    """Fill a ``CollectionInfo`` from anything with the Collection attributes (engine or spec)."""
    message.name = collection.name
    message.dim = int(collection.dim)
    message.metric = metric_to_proto(collection.metric)
    if collection.index is not None:
        index_to_proto(collection.index, message.index)
    if collection.quantization is not None:
        quantization_to_proto(collection.quantization, message.quantization)
    for name, type_name in (collection.schema or {}).items():
        message.schema[name] = str(type_name)
    message.multi_tenant = bool(getattr(collection, "multi_tenant", False))


def collection_from_proto(message: pb.CollectionInfo) -> CollectionSpec:
    """A ``CollectionInfo`` -> ``CollectionSpec``."""
    return CollectionSpec(
        name=message.name,
        dim=message.dim,
        metric=metric_from_proto(message.metric),
        index=index_from_proto(message.index) if message.HasField("index") else None,
        quantization=(quantization_from_proto(message.quantization) if message.HasField("quantization") else None),
        schema=dict(message.schema),
        multi_tenant=message.multi_tenant,
    )


# ---------------------------------------------------------------- search results


def search_result_to_proto(result: SearchResult) -> pb.SearchResponse:
    """A ``SearchResult`` -> ``SearchResponse`` (ids/distances as bytes, attributes as IPC)."""
    ids = np.asarray(result.ids)
    n, k = ids.shape if ids.ndim == 2 else (0, 0)
    response = pb.SearchResponse(
        num_queries=n,
        k=k,
        ids=ids_to_bytes(ids.reshape(-1)) if ids.size else b"",
        distances=matrix_to_bytes(np.asarray(result.distances).reshape(n, k)) if ids.size else b"",
        stats_json=to_json(result.stats) if result.stats else "",
    )
    if result.attributes is not None:
        response.attributes_arrow_ipc = table_to_ipc(result.attributes)
    return response


def search_result_from_proto(message: pb.SearchResponse) -> SearchResult:
    """Inverse of ``search_result_to_proto``."""
    n, k = message.num_queries, message.k
    if n * k:
        ids = ids_from_bytes(message.ids)
        if ids.size != n * k:
            raise InvalidArgument(f"search response holds {ids.size} ids for {n} x {k}")
        ids = ids.reshape(n, k)
        distances = matrix_from_bytes(message.distances, n, k, "distances")
    else:
        ids = np.empty((n, k), dtype=np.int64)
        distances = np.empty((n, k), dtype=np.float32)
    attributes = ipc_to_table(message.attributes_arrow_ipc) if message.attributes_arrow_ipc else None
    stats = from_json(message.stats_json, "stats_json") or {}
    # Copies: frombuffer views are read-only, and callers of the embedded API may write into results.
    return SearchResult(ids=ids.copy(), distances=distances.copy(), attributes=attributes, stats=stats)
