"""Immutable segments: Arrow IPC files written atomically, checksummed, read back memory-mapped.

A segment is written once (temp file -> fsync -> rename -> fsync dir), its CRC-32C goes into the
manifest, and every open verifies it before Arrow parses a single byte, so a truncated or garbled
file is a DataLoss error instead of a crash inside the reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from vecdb.errors import DataLoss, InvalidArgument
from vecdb.storage.checksum import crc32c
from vecdb.storage.io import FileIO

_MAGIC = b"ARROW1"
# An Arrow IPC file is at least: magic+padding (8), a schema message, footer, footer length (4), magic (6).
_MIN_FILE_BYTES = 8 + 4 + 6


class SegmentFile(NamedTuple):
    path: Path
    num_rows: int
    nbytes: int
    checksum: int  # CRC-32C of the whole file, recorded in the manifest


def write_segment(path: Path | str, table: pa.Table, io: FileIO, *, single_batch: bool = True) -> SegmentFile:
    """Stream ``table`` as an Arrow IPC file to ``path`` atomically; returns its size and checksum.

    single_batch: columns split into several chunks are combined first (one copy, at write time) so
    the file holds one record batch and every reader gets zero-copy views (``vectors_view`` must
    otherwise copy on every open). False writes the batches as they are.
    Buffers go straight from Arrow to the file (no serialised copy); the CRC is computed on the way.
    """
    path = Path(path)
    if single_batch and any(col.num_chunks > 1 for col in table.columns):
        table = table.combine_chunks()
    with io.atomic_writer(path) as out:
        sink = pa.PythonFile(out, mode="w")
        with ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    return SegmentFile(path, table.num_rows, out.size, out.crc)


def _map(path: Path) -> pa.Buffer:
    try:
        with pa.memory_map(str(path), "r") as source:
            return source.read_buffer()  # a zero-copy view that keeps the mapping alive
    except FileNotFoundError:
        raise DataLoss(f"{path}: segment file is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise DataLoss(f"{path}: cannot map segment file ({exc})") from exc


def open_segment(path: Path | str, checksum: int | None, *, verify: bool = True) -> pa.Table:
    """Open a segment memory-mapped (zero copy) after checking it.

    checksum: the CRC-32C from the manifest; with ``verify`` the whole file is checked against it
    (hardware CRC, several GB/s). With ``checksum=None`` and ``verify`` the table is validated
    structurally instead (every offset and length). ``verify=False`` trusts the file: only for files
    verified earlier in this process.
    Raises DataLoss("<path>: not an Arrow file" / "truncated" / "checksum mismatch" / ...).
    """
    path = Path(path)
    buf = _map(path)
    size = buf.size
    if size < len(_MAGIC) or buf[: len(_MAGIC)].to_pybytes() != _MAGIC:
        raise DataLoss(f"{path}: not an Arrow file ({size} bytes, no Arrow magic at offset 0)")
    if size < _MIN_FILE_BYTES or buf[size - len(_MAGIC) :].to_pybytes() != _MAGIC:
        raise DataLoss(f"{path}: truncated ({size} bytes, no Arrow footer magic at the end)")
    if verify and checksum is not None:
        actual = crc32c(memoryview(buf))
        if actual != checksum:
            raise DataLoss(
                f"{path}: checksum mismatch (file {actual:#010x}, manifest {checksum:#010x}, {size} bytes)"
            )
    try:
        table = ipc.open_file(buf).read_all()
        table.validate(full=verify and checksum is None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataLoss(f"{path}: not a valid Arrow IPC file ({exc})") from exc
    return table


def vectors_view(table: pa.Table, column: str = "vector") -> np.ndarray:
    """The ``(n, d) float32`` array behind a fixed_size_list<float32> column, read-only.

    Zero copy for a single record batch; several batches are combined (one copy) first.
    """
    if column not in table.column_names:
        raise InvalidArgument(f"table has no column {column!r} (columns: {', '.join(table.column_names)})")
    col = table.column(column)
    typ = col.type
    if not pa.types.is_fixed_size_list(typ) or typ.value_type != pa.float32():
        raise InvalidArgument(f"column {column!r} is {typ}, expected fixed_size_list<float32>")
    d = typ.list_size
    if col.num_chunks == 0:
        return np.empty((0, d), dtype=np.float32)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if arr.null_count:
        raise InvalidArgument(f"column {column!r} has {arr.null_count} null vectors")
    # .values ignores the parent's offset, so slice the child to this array's rows.
    flat = arr.values.slice(arr.offset * d, len(arr) * d)
    if flat.null_count:
        raise InvalidArgument(f"column {column!r} has null vector components")
    out = flat.to_numpy(zero_copy_only=True).reshape(len(arr), d)
    if out.flags.writeable:
        out = out.view()
        out.flags.writeable = False  # segments are immutable; a write would corrupt shared pages
    return out
