"""A checksummed container of named numpy arrays: index files, deletion bitmaps, trained quantizers.

Layout (little-endian)::

    [8 magic "VDBARR\\0\\1"][u32 FORMAT_VERSION][u32 header_len][header: JSON, utf-8]
    zero padding to a 64-byte boundary = payload start
    payloads, each at payload start + entry["offset"] (64-byte aligned), zero padded
    [u64 trailer_offset][u32 crc32c of bytes 0..trailer_offset][4 magic "VDBE"]

header = {"meta": {...}, "arrays": [{"name", "dtype" (numpy dtype.str), "shape", "offset", "nbytes"}]}.
Offsets are relative to the payload start, so the header can be sized before it is written.
Readers get read-only arrays, memory-mapped by default, after the checksum has been verified.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.errors import DataLoss, InvalidArgument
from vecdb.storage.checksum import crc32c
from vecdb.storage.io import FileIO
from vecdb.storage.layout import FORMAT_VERSION

MAGIC = b"VDBARR\x00\x01"
_PREFIX = struct.Struct("<8sII")  # magic, version, header_len
_TRAILER = struct.Struct("<QI4s")  # trailer offset, crc32c, end magic
_END_MAGIC = b"VDBE"
ALIGN = 64
_KINDS = "biufc"  # plain numeric dtypes only: no objects, strings or structured records


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _check_array(name: object, arr: object) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"array names must be non-empty strings, got {name!r}")
    if not isinstance(arr, np.ndarray):
        raise InvalidArgument(f"array {name!r} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype.kind not in _KINDS or arr.dtype.fields is not None:
        raise InvalidArgument(f"array {name!r} has unsupported dtype {arr.dtype}: use a numeric dtype")
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray turns 0-d into 1-d)


def write_array_file(
    path: Path | str, meta: dict[str, Any], arrays: dict[str, np.ndarray], io: FileIO
) -> int:
    """Write ``meta`` (JSON-serialisable) and ``arrays`` to ``path`` atomically; returns the file CRC."""
    flat = {name: _check_array(name, arr) for name, arr in arrays.items()}
    entries, offset = [], 0
    for name, arr in flat.items():
        entries.append(
            {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset,
             "nbytes": arr.nbytes}
        )
        offset = _align(offset + arr.nbytes)
    try:
        header = json.dumps({"meta": meta, "arrays": entries}, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"array file meta for {path} is not JSON-serialisable: {exc}") from exc
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header))
    start = _align(len(prefix) + len(header))
    with io.atomic_writer(path) as out:
        out.write(prefix)
        out.write(header)
        out.write(bytes(start - len(prefix) - len(header)))
        for entry, arr in zip(entries, flat.values(), strict=True):
            if arr.nbytes:
                out.write(arr.reshape(-1).view(np.uint8))
            out.write(bytes(_align(entry["nbytes"]) - entry["nbytes"]))
        trailer_at = out.size
        crc = out.crc
        out.write(_TRAILER.pack(trailer_at, crc, _END_MAGIC))
    return crc


def _load(path: Path, use_mmap: bool) -> memoryview:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise DataLoss(f"{path}: empty array file")
            if use_mmap:
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
            return memoryview(f.read())
    except FileNotFoundError:
        raise DataLoss(f"{path}: array file is missing") from None


def read_array_file(path: Path | str, *, mmap: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read ``(meta, arrays)`` back; arrays are read-only (memory maps unless ``mmap=False``).

    Raises DataLoss naming the file (and the offset where it applies) on any inconsistency.
    """
    path = Path(path)
    buf = _load(path, mmap)
    size = buf.nbytes
    if size < _PREFIX.size + _TRAILER.size:
        raise DataLoss(f"{path}: truncated array file ({size} bytes)")
    magic, version, header_len = _PREFIX.unpack_from(buf, 0)
    if magic != MAGIC:
        raise DataLoss(f"{path}: not a vecdb array file (bad magic at offset 0)")
    trailer_at, crc, end_magic = _TRAILER.unpack_from(buf, size - _TRAILER.size)
    if end_magic != _END_MAGIC or trailer_at != size - _TRAILER.size:
        raise DataLoss(f"{path}: truncated or damaged array file (no valid trailer at offset {size - 16})")
    actual = crc32c(buf[:trailer_at])
    if actual != crc:
        raise DataLoss(f"{path}: checksum mismatch (file {actual:#010x}, recorded {crc:#010x})")
    if version != FORMAT_VERSION:
        raise DataLoss(f"{path}: unsupported array file format version {version} (this build reads 1)")
    return _parse(path, buf, header_len, trailer_at)


def _parse(path: Path, buf: memoryview, header_len: int, end: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Decode the header and build the array views; every bound is checked before use."""
    header_end = _PREFIX.size + header_len
    if header_end > end:
        raise DataLoss(f"{path}: offset 12: header length {header_len} runs past the payloads")
    try:
        header = json.loads(bytes(buf[_PREFIX.size : header_end]))
        meta, entries = header["meta"], header["arrays"]
        start = _align(header_end)
        arrays = {}
        for entry in entries:
            name, dtype = entry["name"], np.dtype(entry["dtype"])
            shape = tuple(int(s) for s in entry["shape"])
            offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if (
                dtype.kind not in _KINDS or dtype.fields is not None or min(shape, default=0) < 0
                or offset % ALIGN or offset < 0 or nbytes != count * dtype.itemsize
                or start + offset + nbytes > end or name in arrays
            ):
                raise ValueError(f"bad array entry {entry}")
            arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start + offset) if count else (
                np.empty(0, dtype=dtype)
            )
            arr = arr.reshape(shape)
            arr.flags.writeable = False
            arrays[name] = arr
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DataLoss(f"{path}: offset {_PREFIX.size}: invalid array file header ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataLoss(f"{path}: offset {_PREFIX.size}: header meta is not an object")
    return meta, arrays
