"""The I/O seam and its doubles: atomic writes, disk-full mapping, torn writes, power cuts."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from vecdb.errors import ResourceExhausted
from vecdb.storage.checksum import crc32c
from vecdb.storage.io import FileIO
from vecdb.storage.io_faults import FaultyIO, PowerCutIO


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_crc32c_known_value_and_buffer_kinds() -> None:
    data = b"123456789"
    assert crc32c(data) == 0xE3069283  # the CRC-32C check value
    assert crc32c(memoryview(data)) == crc32c(bytearray(data)) == 0xE3069283
    assert crc32c(np.frombuffer(data, dtype=np.uint8)) == 0xE3069283
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    arr = np.arange(40, dtype=np.float32).reshape(5, 8)
    assert crc32c(arr[:, ::2]) == crc32c(np.ascontiguousarray(arr[:, ::2]).tobytes())
    big = np.random.default_rng(0).bytes(1 << 17)  # above the small-bytes threshold
    assert crc32c(big) == crc32c(memoryview(big)) != 0


def test_write_atomic_accepts_buffers_and_iterables(tmp_path: Path) -> None:
    io = FileIO()
    target = tmp_path / "f.bin"
    crc = io.write_atomic(target, b"hello")
    assert target.read_bytes() == b"hello" and crc == crc32c(b"hello")
    arr = np.arange(6, dtype=np.int32)
    io.write_atomic(target, [b"ab", memoryview(b"cd"), arr])
    assert target.read_bytes() == b"abcd" + arr.tobytes()
    io.write_atomic(target, arr.reshape(2, 3))  # a buffer, not an iterable of rows
    assert target.read_bytes() == arr.tobytes()
    assert _leftovers(tmp_path) == []


def test_append_file_and_truncate(tmp_path: Path) -> None:
    io = FileIO()
    with io.open_append(tmp_path / "a") as f:
        f.write(b"abc")
        f.write(memoryview(b"defg"))
        f.fsync()
        assert f.size == 7
        f.truncate(2)
        f.write(b"Z")
    assert (tmp_path / "a").read_bytes() == b"abZ"
    io.truncate(tmp_path / "a", 1)
    assert (tmp_path / "a").read_bytes() == b"a"
    io.makedirs(tmp_path / "x" / "y")
    io.rename(tmp_path / "a", tmp_path / "x" / "y" / "b")
    io.fsync_dir(tmp_path / "x" / "y")
    io.remove(tmp_path / "x" / "y" / "b")
    io.remove(tmp_path / "x" / "y" / "b")  # removing a missing file is fine
    assert not (tmp_path / "x" / "y" / "b").exists()


def test_disk_full_tears_the_write_and_maps_to_resource_exhausted(tmp_path: Path) -> None:
    io = FaultyIO(fail_after_bytes=5)
    path = tmp_path / "a"
    f = io.open_append(path)
    f.write(b"abc")
    with pytest.raises(ResourceExhausted, match=f"disk full writing {path}"):
        f.write(b"defg")
    assert path.read_bytes() == b"abcde" and f.size == 5  # the torn prefix is there and counted
    io.heal()
    f.write(b"!")
    f.close()
    assert path.read_bytes() == b"abcde!"


def test_other_errors_propagate_unchanged(tmp_path: Path) -> None:
    io = FaultyIO(fail_after_bytes=0, error=errno.EIO)
    with io.open_append(tmp_path / "a") as f, pytest.raises(OSError) as info:
        f.write(b"x")
    assert info.value.errno == errno.EIO and not isinstance(info.value, ResourceExhausted)
    io = FaultyIO(fail_fsync=True)
    with io.open_append(tmp_path / "b") as f, pytest.raises(OSError) as info:
        f.fsync()
    assert info.value.errno == errno.EIO
    with pytest.raises(ResourceExhausted):
        FaultyIO(fail_fsync=errno.ENOSPC).fsync_dir(tmp_path)


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    FileIO().write_atomic(target, b"old")
    io = FaultyIO(fail_after_bytes=3)
    with pytest.raises(ResourceExhausted):
        io.write_atomic(target, [b"new", b"er"])
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []
    io = FaultyIO(fail_fsync=True)
    with pytest.raises(OSError):
        io.write_atomic(target, b"newer")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_remove_temp_files(tmp_path: Path) -> None:
    stale = tmp_path / ".seg.arrow.tmp-123-4"
    stale.write_bytes(b"x")
    (tmp_path / "keep").write_bytes(b"y")
    assert FileIO().remove_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_power_cut_drops_unsynced_bytes_and_files(tmp_path: Path) -> None:
    io = PowerCutIO()
    old = tmp_path / "old"
    old.write_bytes(b"pre-existing")  # files this IO never wrote count as durable
    f = io.open_append(tmp_path / "log")
    io.fsync_dir(tmp_path)
    f.write(b"durable")
    f.fsync()
    f.write(b"+lost")
    f.close()
    g = io.open_append(tmp_path / "never-synced")
    g.write(b"gone")
    g.fsync()  # data synced but the directory entry never was
    g.close()
    h = io.open_append(old)
    h.write(b" and more")
    h.close()
    io.power_cut()
    assert (tmp_path / "log").read_bytes() == b"durable"
    assert not (tmp_path / "never-synced").exists()
    assert old.read_bytes() == b"pre-existing"


def test_power_cut_undoes_renames_and_removes_not_dir_synced(tmp_path: Path) -> None:
    io = PowerCutIO()
    io.write_atomic(tmp_path / "a", b"v1")  # fully durable (fsync + rename + fsync dir)
    f = io.open_append(tmp_path / "b")
    f.write(b"b-data")
    f.fsync()
    f.close()
    io.write_atomic(tmp_path / "c", b"c1")  # its fsync_dir also makes "b" durable
    # A rename over "a" and a removal, neither made durable by fsync_dir:
    io.rename(tmp_path / "b", tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"b-data"
    io.remove(tmp_path / "c")
    io.power_cut()
    assert (tmp_path / "a").read_bytes() == b"v1"
    assert (tmp_path / "b").read_bytes() == b"b-data"
    assert (tmp_path / "c").read_bytes() == b"c1"
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]  # no backup links left behind


def test_power_cut_keeps_dir_synced_renames(tmp_path: Path) -> None:
    io = PowerCutIO()
    io.write_atomic(tmp_path / "a", b"v1")
    io.write_atomic(tmp_path / "a", b"v2")
    tmp = io.open_append(tmp_path / "t")
    tmp.write(b"v3")
    tmp.close()  # never fsynced: lost entirely, even though the rename is durable
    io.rename(tmp_path / "t", tmp_path / "z")
    g = io.open_append(tmp_path / "g")
    g.write(b"12345")
    g.fsync()
    g.write(b"678")  # only the first 5 bytes were made durable
    g.close()
    io.fsync_dir(tmp_path)
    io.power_cut()
    assert (tmp_path / "a").read_bytes() == b"v2"
    assert (tmp_path / "g").read_bytes() == b"12345"
    assert sorted(os.listdir(tmp_path)) == ["a", "g"]
