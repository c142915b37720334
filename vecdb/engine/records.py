"""WAL record payloads: what one acknowledged write looks like on disk."""

from __future__ import annotations

import enum

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from vecdb.errors import DataLoss


class RecordKind(enum.IntEnum):
    """The ``kind`` byte of a WAL frame."""

    UPSERT = 1  # Arrow IPC stream: id, vector, attribute columns (and tenants when multi-tenant)
    DELETE = 2  # little-endian int64 ids


def encode_upsert(table: pa.Table) -> bytes:
    """One batch of rows as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode_upsert(payload: bytes, where: str) -> pa.Table:
    try:
        return ipc.open_stream(pa.py_buffer(payload)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataLoss(f"{where}: undecodable upsert record ({exc})") from None


def encode_delete(ids: np.ndarray) -> bytes:
    return np.ascontiguousarray(ids, dtype="<i8").tobytes()


def decode_delete(payload: bytes, where: str) -> np.ndarray:
    if len(payload) % 8:
        raise DataLoss(f"{where}: delete record of {len(payload)} bytes is not a list of int64 ids")
    return np.frombuffer(payload, dtype="<i8").astype(np.int64)
