"""Resource faults through the I/O seam and damaged files, at the level of the whole engine."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import vecdb
from vecdb.engine.database import Database
from vecdb.storage.io_faults import FaultyIO

DIM = 8


def rows(start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.arange(start, start + n)
    return ids, np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)


def test_disk_full_rejects_writes_keeps_reads_and_recovers(tmp_path):
    io = FaultyIO()
    db = Database.open(tmp_path / "data", io=io)
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.upsert(*rows(0, 50))
    io.fail_after_bytes = io.bytes_written + 100  # the next batch tears mid-frame
    with pytest.raises(vecdb.ResourceExhausted):
        col.upsert(*rows(50, 50))
    with pytest.raises(vecdb.ResourceExhausted):  # still full
        col.upsert(*rows(100, 5))
    assert col.count() == 50  # nothing unacknowledged became visible
    ids, vectors = rows(0, 50)
    assert (col.search(vectors[:3], k=1).ids[:, 0] == ids[:3]).all()  # reads keep working
    io.heal()
    col.upsert(*rows(200, 10))  # space is back: writes resume without a restart
    assert col.count() == 60
    db.close()
    with Database.open(tmp_path / "data") as reopened:
        col = reopened.collection("c")
        assert col.count() == 60
        assert col.get(np.arange(50, 105), include=()).num_rows == 0  # the failed batches are absent


def test_fsync_failure_refuses_writes_until_reopened(tmp_path):
    io = FaultyIO()
    db = Database.open(tmp_path / "data", io=io)
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.upsert(*rows(0, 10))
    io.fail_fsync = errno.EIO
    with pytest.raises(vecdb.VecdbError):
        col.upsert(*rows(10, 10))
    io.heal()
    with pytest.raises(vecdb.VecdbError):  # never retry-and-carry-on after a failed fsync
        col.upsert(*rows(20, 10))
    db.close(checkpoint=False)
    with Database.open(tmp_path / "data") as reopened:  # recovery replays what is on disk
        col = reopened.collection("c")
        assert col.get(np.arange(10), include=()).num_rows == 10
        col.upsert(*rows(30, 5))
        assert col.get(np.arange(30, 35), include=()).num_rows == 5


def test_corrupt_segment_refuses_to_open_naming_the_file(tmp_path):
    with vecdb.connect(tmp_path / "data") as db:
        col = db.create_collection("c", dim=DIM, metric="l2")
        col.upsert(*rows(0, 100))
        col.optimize()
    segment = next((tmp_path / "data" / "collections" / "c" / "segments").glob("*.arrow"))
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    segment.write_bytes(bytes(raw))
    with pytest.raises(vecdb.DataLoss, match=segment.name):
        vecdb.connect(tmp_path / "data")


def test_corrupt_index_file_is_rebuilt_not_trusted(tmp_path):
    from vecdb.engine.store import StoreOptions

    options = StoreOptions(index_min_rows=64, background=False)
    with Database.open(tmp_path / "data", options=options) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.HNSW(m=8, ef_construction=32))
        col.upsert(*rows(0, 500))
        col.optimize()
        before = col.search(rows(0, 20)[1], k=5, params={"ef": 64})
    index_file = next((tmp_path / "data" / "collections" / "c" / "segments").glob("*.idx"))
    raw = bytearray(index_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    index_file.write_bytes(bytes(raw))
    with Database.open(tmp_path / "data", options=options) as db:
        col = db.collection("c")
        db.collection("c")._store.wait_pending()
        assert col.stats()["indexed_segments"] == 1
        after = col.search(rows(0, 20)[1], k=5, params={"ef": 64})
        np.testing.assert_array_equal(after.ids, before.ids)
