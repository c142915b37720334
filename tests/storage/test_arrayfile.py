"""Array files: round trip of meta + arrays, memory-mapped read-only views, corruption -> DataLoss."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from vecdb.errors import DataLoss, InvalidArgument
from vecdb.storage.arrayfile import ALIGN, MAGIC, read_array_file, write_array_file
from vecdb.storage.checksum import crc32c
from vecdb.storage.io import FileIO
from vecdb.storage.layout import FORMAT_VERSION


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "vectors": rng.standard_normal((33, 17), dtype=np.float32),
        "graph": rng.integers(0, 33, size=(33, 8), dtype=np.uint32),
        "deleted": np.packbits(rng.random(100) < 0.1),
        "mask": rng.random(5) < 0.5,
        "empty": np.zeros((0, 4), dtype=np.int64),
        "scalar": np.array(2.5),
        "big_endian": np.arange(5, dtype=">i4"),
        "transposed": np.arange(12, dtype=np.int16).reshape(3, 4).T,
    }


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip(tmp_path: Path, mmap: bool) -> None:
    arrays = _arrays()
    meta = {"kind": "hnsw", "m": 16, "nested": {"a": [1, 2]}}
    write_array_file(tmp_path / "f.idx", meta, arrays, FileIO())
    meta_back, back = read_array_file(tmp_path / "f.idx", mmap=mmap)
    assert meta_back == meta and list(back) == list(arrays)
    for name, arr in arrays.items():
        assert back[name].dtype == arr.dtype and back[name].shape == arr.shape, name
        np.testing.assert_array_equal(back[name], arr)
        assert not back[name].flags.writeable
    base = np.frombuffer((tmp_path / "f.idx").read_bytes(), np.uint8)
    assert base.size % ALIGN == 16  # payloads aligned, then the 16-byte trailer


def test_payloads_are_64_byte_aligned(tmp_path: Path) -> None:
    write_array_file(tmp_path / "f", {}, _arrays(), FileIO())
    _, back = read_array_file(tmp_path / "f")
    for name, arr in back.items():
        if arr.size:
            assert arr.ctypes.data % ALIGN == 0, name


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="dtype"):
        write_array_file(tmp_path / "f", {}, {"o": np.array(["a"], dtype=object)}, FileIO())
    with pytest.raises(InvalidArgument, match="JSON"):
        write_array_file(tmp_path / "f", {"x": object()}, {}, FileIO())
    with pytest.raises(InvalidArgument, match="numpy"):
        write_array_file(tmp_path / "f", {}, {"l": [1, 2]}, FileIO())  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


def test_every_flipped_byte_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_array_file(path, {"k": 1}, {"a": np.arange(40, dtype=np.float32)}, FileIO())
    data = path.read_bytes()
    for off in range(len(data)):
        damaged = bytearray(data)
        damaged[off] ^= 0x08
        target = tmp_path / f"d{off}"
        target.write_bytes(bytes(damaged))
        with pytest.raises(DataLoss, match=str(target)):
            read_array_file(target)


@pytest.mark.parametrize("keep", [0, 1, 15, 16, 40, -17, -1])
def test_truncated(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "f"
    write_array_file(path, {}, {"a": np.arange(100, dtype=np.int64)}, FileIO())
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(DataLoss, match=str(path)):
        read_array_file(path)


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(DataLoss, match="missing"):
        read_array_file(tmp_path / "nope")


def _forge(path: Path, header: object, payload: bytes = bytes(64)) -> None:
    """A file with a correct checksum around an arbitrary header: only the parser stands guard."""
    raw = json.dumps(header).encode()
    body = struct.pack("<8sII", MAGIC, FORMAT_VERSION, len(raw)) + raw
    body += bytes(-len(body) % ALIGN) + payload
    path.write_bytes(body + struct.pack("<QI4s", len(body), crc32c(body), b"VDBE"))


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "a", "dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8},  # objects
        {"name": "a", "dtype": "<U2", "shape": [1], "offset": 0, "nbytes": 8},  # strings
        {"name": "a", "dtype": "nonsense", "shape": [1], "offset": 0, "nbytes": 8},
        {"name": "a", "dtype": "<f4", "shape": [-1], "offset": 0, "nbytes": 4},  # negative shape
        {"name": "a", "dtype": "<f4", "shape": [32], "offset": 0, "nbytes": 128},  # past the end
        {"name": "a", "dtype": "<f4", "shape": [2], "offset": 4, "nbytes": 8},  # misaligned
        {"name": "a", "dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 12},  # size mismatch
        {"name": "a", "dtype": "<f4", "shape": [2**40, 2**40], "offset": 0, "nbytes": 0},  # overflow
        {"name": "a", "dtype": "<f4", "shape": "x", "offset": 0, "nbytes": 8},
        {"dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 8},  # no name
    ],
)
def test_forged_headers_are_rejected(tmp_path: Path, entry: dict) -> None:
    _forge(tmp_path / "f", {"meta": {}, "arrays": [entry]})
    with pytest.raises(DataLoss, match=str(tmp_path / "f")):
        read_array_file(tmp_path / "f")


def test_forged_structure_is_rejected(tmp_path: Path) -> None:
    good = {"name": "a", "dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 8}
    for header in ([1, 2], {"meta": [], "arrays": []}, {"meta": {}}, {"meta": {}, "arrays": [good, good]}):
        _forge(tmp_path / "f", header)
        with pytest.raises(DataLoss):
            read_array_file(tmp_path / "f")
    _forge(tmp_path / "f", {"meta": {"ok": True}, "arrays": [good]})
    meta, arrays = read_array_file(tmp_path / "f")
    assert meta == {"ok": True} and arrays["a"].shape == (2,)
