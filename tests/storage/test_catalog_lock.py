"""Catalog (atomic commits, reopen, decode errors) and the data-directory lock (across processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from vecdb.errors import DataLoss, FailedPrecondition, InvalidArgument
from vecdb.storage.catalog import Catalog
from vecdb.storage.layout import DataDirLayout, validate_name
from vecdb.storage.lock import DirectoryLock


def test_collections_and_manifests_survive_reopen(tmp_path: Path) -> None:
    with Catalog(tmp_path / "cat") as cat:
        cat.put_collection("docs", {"dim": 384, "metric": "cosine"})
        cat.put_collection("img", {"dim": 3})
        cat.put_manifest("docs", {"segments": [{"id": 1, "checksum": 123}], "wal_lsn": 7})
    with Catalog(tmp_path / "cat") as cat:
        assert cat.list_collections() == ["docs", "img"]
        assert cat.get_collection("docs") == {"dim": 384, "metric": "cosine"}
        assert cat.get_manifest("docs") == {"segments": [{"id": 1, "checksum": 123}], "wal_lsn": 7}
        assert cat.get_manifest("img") is None and cat.get_collection("zzz") is None
        cat.drop_collection("docs")
        assert cat.list_collections() == ["img"] and cat.get_manifest("docs") is None


def test_commit_is_atomic(tmp_path: Path) -> None:
    with Catalog(tmp_path / "cat") as cat:
        cat.commit({"collection/a": {"v": 1}, "manifest/a": {"lsn": 1}, "other/x": {"y": 2}})
        with pytest.raises(InvalidArgument):
            # one bad value: nothing of the batch is applied
            cat.commit({"manifest/a": {"lsn": 2}, "collection/b": {"bad": float("nan")}})
        assert cat.get_manifest("a") == {"lsn": 1} and cat.get_collection("b") is None
        cat.commit({"manifest/a": {"lsn": 3}, "other/x": None})
        assert cat.get_manifest("a") == {"lsn": 3} and cat.get("other/x") is None
    with Catalog(tmp_path / "cat") as cat:
        assert cat.get_manifest("a") == {"lsn": 3} and cat.keys("other/") == []


def test_undecodable_value_names_the_key(tmp_path: Path) -> None:
    raw = Rdict(str(tmp_path / "cat"), options=Options(raw_mode=True))
    raw[b"manifest/a"] = b"{not json"
    raw[b"collection/a"] = b"[1, 2]"
    raw.close()
    with pytest.raises(DataLoss, match="'collection/a'"):
        Catalog(tmp_path / "cat")  # every value is verified at open
    raw = Rdict(str(tmp_path / "cat"), options=Options(raw_mode=True))
    raw[b"collection/a"] = b"{}"
    raw.close()
    with pytest.raises(DataLoss, match="'manifest/a'"):
        Catalog(tmp_path / "cat")


def _populated_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A catalog copied while open (records only in RocksDB's log) and one closed (records in an SST)."""
    live, closed = tmp_path / "live", tmp_path / "closed"
    cat = Catalog(closed)
    for i in range(20):
        cat.put_collection(f"c{i}", {"dim": i, "pad": "x" * 100})
    shutil.copytree(closed, live)
    (live / "LOCK").unlink()
    cat.close()
    return live, closed


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_catalog_is_data_loss_never_silent(tmp_path: Path) -> None:
    live, closed = _populated_copy(tmp_path)
    (log,) = [p.name for p in live.glob("*.log") if p.stat().st_size]
    torn, damaged = tmp_path / "torn", tmp_path / "damaged"
    shutil.copytree(live, torn)
    shutil.copytree(live, damaged)
    size = (live / log).stat().st_size
    os.truncate(torn / log, size - 40)  # a torn tail of RocksDB's own log: tolerated, prefix kept
    with Catalog(torn) as cat:
        assert cat.list_collections()[:5] == ["c0", "c1", "c10", "c11", "c12"]
    _flip(damaged / log, size // 3)  # damage in the middle of the log: refuse, don't drop records
    with pytest.raises(DataLoss, match="corrupt"):
        Catalog(damaged)
    (sst,) = closed.glob("*.sst")
    for offset in (10, sst.stat().st_size // 2):
        copy = tmp_path / f"sst{offset}"
        shutil.copytree(closed, copy)
        _flip(copy / sst.name, offset)
        with pytest.raises(DataLoss, match="corrupt"):
            Catalog(copy)


def test_closed_and_double_open(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    with pytest.raises(FailedPrecondition):
        Catalog(tmp_path / "cat")
    cat.close()
    cat.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        cat.get_collection("a")
    with pytest.raises(InvalidArgument):
        Catalog(tmp_path / "cat2").get_collection("../etc")


def test_layout_paths_and_names(tmp_path: Path) -> None:
    layout = DataDirLayout(tmp_path)
    assert layout.segment_path("docs", 12).name == "000000000012.arrow"
    assert layout.sidecar_path("docs", 12, "del").name == "000000000012.del"
    assert layout.wal_dir("docs") == tmp_path / "collections" / "docs" / "wal"
    assert layout.lock_file == tmp_path / "LOCK" and layout.catalog_dir == tmp_path / "catalog"
    for bad in ["", "a" * 65, "../x", "a/b", "a b", "é", "a\x00", "a\n", ".", "con", "NUL", "Com1", "lpt9"]:
        with pytest.raises(InvalidArgument):
            validate_name(bad)
    for bad_suffix in ["", "../x", "a/b", "arrow"]:
        with pytest.raises(InvalidArgument):
            layout.sidecar_path("docs", 1, bad_suffix)
    with pytest.raises(InvalidArgument):
        layout.segment_path("docs", -1)
    assert validate_name("A-z_09") == "A-z_09"
    assert validate_name("console") == "console" and validate_name("com10") == "com10"


def test_lock_in_the_same_process(tmp_path: Path) -> None:
    message = rf"{tmp_path} is in use by pid {os.getpid()}"
    with DirectoryLock(tmp_path), pytest.raises(FailedPrecondition, match=message):
        DirectoryLock(tmp_path / "LOCK").acquire()
    with DirectoryLock(tmp_path) as again:  # released: can be taken again
        assert again.held


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from vecdb.storage.lock import DirectoryLock
        lock = DirectoryLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        sys.stdin.readline()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "locked"
            with pytest.raises(FailedPrecondition, match=rf"in use by pid {child.pid}\b"):
                DirectoryLock(tmp_path).acquire()
        finally:
            child.kill()  # the kernel releases the lock of a killed process
            child.wait()
    with DirectoryLock(tmp_path) as lock:
        assert lock.held
