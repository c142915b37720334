"""Write-ahead log: round trips, group commit, torn tails, corruption, disk full, fsync failure."""

from __future__ import annotations

import errno
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vecdb.errors import DataLoss, FailedPrecondition, InvalidArgument, ResourceExhausted
from vecdb.storage.io import FileIO
from vecdb.storage.io_faults import FaultyIO, PowerCutIO
from vecdb.storage.wal import HEADER_BYTES, WalRecord, WriteAheadLog, check_log


class CountingIO(FileIO):
    """Counts file fsyncs and makes each one slow enough that concurrent appenders pile up."""

    def __init__(self, delay: float = 0.0) -> None:
        self.file_fsyncs = 0
        self.delay = delay

    def _fsync_file(self, file) -> None:  # type: ignore[no-untyped-def]
        self.file_fsyncs += 1
        time.sleep(self.delay)
        super()._fsync_file(file)


# Parsing and repair tests need no real fsync (durability is what the seam tests simulate).
FAST = FaultyIO(real_fsync=False)


def _open(directory: Path, io: FileIO | None = None, after: int = 0, **kw: int) -> tuple[WriteAheadLog, list]:
    wal = WriteAheadLog(directory, io or FileIO(), **kw)
    return wal, list(wal.recover(after))


def _payload(i: int) -> bytes:
    return np.random.default_rng(i).bytes(10 + (i * 37) % 300)


def _fill(directory: Path, n: int, **kw: int) -> list[int]:
    wal, _ = _open(directory, FAST, **kw)
    lsns = [wal.append(i % 7, _payload(i)) for i in range(n)]
    wal.close()
    return lsns


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    wal, recs = _open(tmp_path)
    assert recs == [] and wal.last_lsn == 0
    vec = np.arange(384, dtype=np.float32)
    assert wal.append(1, b"one") == 1
    assert wal.append(2, memoryview(b"two")) == 2
    assert wal.append(3, vec) == 3  # any buffer; no copy needed by the caller
    assert wal.append(255, b"") == 4
    strided = np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2]
    assert wal.append(7, strided) == 5
    assert wal.durable_lsn == 5
    wal.close()
    wal, recs = _open(tmp_path)
    assert recs == [WalRecord(1, 1, b"one"), WalRecord(2, 2, b"two"), WalRecord(3, 3, vec.tobytes()),
                    WalRecord(4, 255, b""), WalRecord(5, 7, strided.tobytes())]
    assert wal.last_lsn == 5 and wal.nbytes == sum(HEADER_BYTES + len(r.payload) for r in recs)
    assert wal.append(0, b"six") == 6
    wal.close()
    wal, recs = _open(tmp_path, after=3)
    assert [r.lsn for r in recs] == [4, 5, 6]
    wal.close()


def test_protocol_errors(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, FileIO())
    with pytest.raises(FailedPrecondition, match="recover"):
        wal.append(1, b"x")
    list(wal.recover())
    with pytest.raises(FailedPrecondition, match="once"):
        list(wal.recover())
    with pytest.raises(InvalidArgument):
        wal.append(256, b"x")
    wal.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        wal.append(1, b"x")


def test_group_commit_from_eight_threads(tmp_path: Path) -> None:
    io = CountingIO(delay=0.002)
    wal, _ = _open(tmp_path, io)
    per_thread, lsns, lock = 40, [], threading.Lock()

    def worker(t: int) -> None:
        for i in range(per_thread):
            lsn = wal.append(1, f"{t}:{i}".encode())
            assert wal.durable_lsn >= lsn  # acknowledged means durable
            with lock:
                lsns.append(lsn)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    total = 8 * per_thread
    assert sorted(lsns) == list(range(1, total + 1))
    assert io.file_fsyncs < total / 2, f"{io.file_fsyncs} fsyncs for {total} appends: no grouping"
    wal.close()
    _, recs = _open(tmp_path)
    assert sorted(r.payload.decode() for r in recs) == sorted(
        f"{t}:{i}" for t in range(8) for i in range(per_thread)
    )


def test_rolling_and_truncate_through(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, file_bytes=1000)
    for i in range(30):
        wal.append(1, _payload(i))
    files = wal.files
    assert len(files) > 3 and files[0].name == "00000000000000000001.wal"
    before = wal.nbytes
    wal.truncate_through(10)
    assert wal.files[0] not in files[:1] and wal.nbytes < before
    first = int(wal.files[0].name[:-4])
    assert first <= 11  # nothing above 10 was deleted
    wal.roll()
    wal.truncate_through(30)
    assert wal.files == [] and wal.nbytes == 0
    assert wal.append(1, b"after") == 31
    wal.close()
    wal, recs = _open(tmp_path, after=30)
    assert [(r.lsn, r.payload) for r in recs] == [(31, b"after")]
    wal.close()


def test_empty_log_continues_after_the_manifest_lsn(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, after=500)
    assert wal.last_lsn == 500
    assert wal.append(1, b"x") == 501
    wal.close()
    wal, recs = _open(tmp_path, after=500)
    assert [r.lsn for r in recs] == [501]
    wal.close()


def test_last_file_cut_to_nothing_is_reported_as_a_torn_tail(tmp_path: Path) -> None:
    """Files are created at their first append, so an empty last file is a tail cut at offset 0:
    recovery goes on from the previous file and says so (verify shows it as a torn tail)."""
    _fill(tmp_path, 30, file_bytes=1000)
    last = sorted(tmp_path.glob("*.wal"))[-1]
    first_lsn = int(last.name[:-4])
    assert check_log(tmp_path).torn_tail is None
    last.write_bytes(b"")
    assert check_log(tmp_path).torn_tail == (last, 0)
    wal, recs = _open(tmp_path)
    assert wal.torn_tail == (last, 0) and recs[-1].lsn == first_lsn - 1
    assert wal.append(1, b"next") == first_lsn  # the log continues where the damage cut it
    wal.close()


def test_truncation_at_every_byte_of_the_last_record(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _fill(src, 6)
    (log_file,) = src.iterdir()
    data = log_file.read_bytes()
    last_start = len(data) - (HEADER_BYTES + len(_payload(5)))
    for cut in range(last_start, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / log_file.name).write_bytes(data[:cut])
        wal, recs = _open(d, FAST)
        assert [r.payload for r in recs] == [_payload(i) for i in range(5)], cut
        assert (d / log_file.name).stat().st_size == last_start  # the torn tail was cut off
        assert wal.append(1, b"next") == 6
        wal.close()
        shutil.rmtree(d)


def test_zero_filled_tail_is_truncated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _fill(tmp_path, 4)
    (log_file,) = tmp_path.iterdir()
    size = log_file.stat().st_size
    with log_file.open("ab") as f:
        f.write(b"\0" * 4096)  # a page allocated but never written before the crash
    wal, recs = _open(tmp_path)
    assert len(recs) == 4 and log_file.stat().st_size == size
    assert f"offset {size}" in caplog.text and log_file.name in caplog.text
    wal.close()


def _frame_offsets(n: int) -> list[int]:
    offs, off = [], 0
    for i in range(n):
        offs.append(off)
        off += HEADER_BYTES + len(_payload(i))
    return offs


@pytest.mark.parametrize("where", [0, 3, 5, 9, 12, 16, 17, 40])  # length, crc, lsn, kind, payload
def test_flipped_byte_in_the_middle_raises_data_loss(tmp_path: Path, where: int) -> None:
    _fill(tmp_path, 6)
    (log_file,) = tmp_path.iterdir()
    data = bytearray(log_file.read_bytes())
    start = _frame_offsets(6)[2]
    data[start + where] ^= 0x40
    log_file.write_bytes(bytes(data))
    with pytest.raises(DataLoss, match=rf"{log_file.name}: offset {start}\b"):
        _open(tmp_path)
    assert log_file.read_bytes() == bytes(data)  # nothing was "repaired" away


def test_flipped_byte_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    _fill(tmp_path, 6)
    (log_file,) = tmp_path.iterdir()
    data = bytearray(log_file.read_bytes())
    data[-3] ^= 0xFF
    log_file.write_bytes(bytes(data))
    _, recs = _open(tmp_path)
    assert len(recs) == 5


def test_corruption_in_an_older_file_or_a_missing_file_raises(tmp_path: Path) -> None:
    _fill(tmp_path, 20, file_bytes=600)
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 3
    files[1].unlink()
    with pytest.raises(DataLoss, match=rf"{files[2].name}: offset 0: .*missing"):
        _open(tmp_path)
    other = tmp_path / "other"
    _fill(other, 20, file_bytes=600)
    first = sorted(other.iterdir())[0]
    first.write_bytes(first.read_bytes()[:-2])  # torn, but later files exist
    with pytest.raises(DataLoss, match=first.name):
        _open(other)


def test_log_that_no_longer_reaches_the_manifest_raises(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, file_bytes=600)
    for i in range(20):
        wal.append(1, _payload(i))
    wal.truncate_through(12)
    first = int(wal.files[0].name[:-4])
    wal.close()
    assert first > 3
    with pytest.raises(DataLoss, match="missing"):
        _open(tmp_path, after=2)


def test_disk_full_is_not_acknowledged_and_leaves_no_partial_frame(tmp_path: Path) -> None:
    io = FaultyIO()
    wal, _ = _open(tmp_path, io)
    wal.append(1, b"a" * 100)
    wal.append(1, b"b" * 100)
    io.fail_after_bytes = io.bytes_written + HEADER_BYTES + 50  # the next frame tears mid-payload
    with pytest.raises(ResourceExhausted, match="disk full"):
        wal.append(1, b"c" * 100)
    size = 2 * (HEADER_BYTES + 100)
    assert wal.files[0].stat().st_size == size  # the torn frame was cut back
    io.heal()
    with pytest.raises(ResourceExhausted, match="reopened"):
        wal.append(1, b"d")  # poisoned: no retry-and-continue, even with space back
    wal.close()
    wal, recs = _open(tmp_path, io)
    assert [r.payload for r in recs] == [b"a" * 100, b"b" * 100]
    assert wal.append(1, b"e") == 3
    wal.close()


def test_big_payload_disk_full_in_the_header(tmp_path: Path) -> None:
    io = FaultyIO()
    wal, _ = _open(tmp_path, io)
    io.fail_after_bytes = 5
    with pytest.raises(ResourceExhausted):
        wal.append(1, np.zeros(100_000, dtype=np.float32))
    wal.close()
    io.heal()
    wal, recs = _open(tmp_path, io)
    assert recs == [] and wal.files[0].stat().st_size == 0
    assert wal.append(1, b"x") == 1
    wal.close()


def test_fsync_failure_poisons_the_log(tmp_path: Path) -> None:
    io = FaultyIO()
    wal, _ = _open(tmp_path, io)
    wal.append(1, b"ok")
    io.fail_fsync = True
    with pytest.raises(FailedPrecondition, match="reopened"):
        wal.append(1, b"unacknowledged")
    io.heal()
    with pytest.raises(FailedPrecondition, match="reopened"):
        wal.append(1, b"never")
    wal.close()
    wal, recs = _open(tmp_path, io)
    assert recs[0].payload == b"ok" and b"never" not in [r.payload for r in recs]
    wal.close()


def test_power_cut_loses_only_unacknowledged_records(tmp_path: Path) -> None:
    io = PowerCutIO()
    wal, _ = _open(tmp_path, io, file_bytes=400)
    acked = [wal.append(1, _payload(i)) for i in range(10)]
    io.fail_fsync = errno.EIO
    with pytest.raises(FailedPrecondition):
        wal.append(1, b"lost in the page cache")
    wal.close()
    io.power_cut()
    io.heal()
    wal, recs = _open(tmp_path, io)
    assert [r.lsn for r in recs] == acked
    assert [r.payload for r in recs] == [_payload(i) for i in range(10)]
    assert wal.append(1, b"x") == 11
    wal.close()


def test_manifest_ahead_of_a_non_empty_log(tmp_path: Path) -> None:
    _fill(tmp_path, 5)
    wal, recs = _open(tmp_path, after=9)  # everything in the log is covered by the manifest
    assert recs == [] and wal.last_lsn == 9
    assert wal.append(1, b"ten") == 10
    wal.close()
    wal, recs = _open(tmp_path, after=9)
    assert [(r.lsn, r.payload) for r in recs] == [(10, b"ten")]
    wal.close()


def test_check_log_is_read_only(tmp_path: Path) -> None:
    _fill(tmp_path, 6, file_bytes=500)
    clean = check_log(tmp_path)
    assert clean.records == 6 and clean.first_lsn == 1 and clean.last_lsn == 6 and clean.torn_tail is None
    last = sorted(tmp_path.iterdir())[-1]
    data = last.read_bytes()
    last.write_bytes(data[:-3])
    report = check_log(tmp_path)
    assert report.records == 5 and report.torn_tail is not None and report.torn_tail[0] == last
    assert last.read_bytes() == data[:-3]  # reported, not repaired
    wal = WriteAheadLog(tmp_path, FileIO())
    assert len(list(wal.recover(repair=False))) == 5
    with pytest.raises(FailedPrecondition, match="read-only"):
        wal.append(1, b"x")
    assert check_log(tmp_path / "missing").records == 0


def test_random_damage_gives_a_prefix_or_data_loss(tmp_path: Path) -> None:
    """Flips, zeroed ranges and truncations anywhere: recovery returns a prefix of what was written
    (only when the damage is at the tail) or raises DataLoss; it never returns altered records."""
    src = tmp_path / "src"
    _fill(src, 12, file_bytes=1500)
    originals = [_payload(i) for i in range(12)]
    files = sorted(src.iterdir())
    rng = np.random.default_rng(11)
    outcomes = {"prefix": 0, "dataloss": 0}
    for trial in range(90):
        d = tmp_path / f"t{trial}"
        shutil.copytree(src, d)
        victim = d / files[int(rng.integers(len(files)))].name
        data = bytearray(victim.read_bytes())
        off = int(rng.integers(len(data)))
        mode = trial % 3
        if mode == 0:
            data[off] ^= 1 << int(rng.integers(8))
        elif mode == 1:
            end = min(len(data), off + int(rng.integers(1, 64)))
            data[off:end] = bytes(end - off)  # a zeroed range, length unchanged
        else:
            del data[off:]
        victim.write_bytes(bytes(data))
        try:
            wal, recs = _open(d, FAST)
        except DataLoss as exc:
            assert victim.name in str(exc) or "missing" in str(exc)
            outcomes["dataloss"] += 1
        else:
            assert [r.payload for r in recs] == originals[: len(recs)], trial
            assert [r.lsn for r in recs] == list(range(1, len(recs) + 1))
            wal.close()
            outcomes["prefix"] += 1
        shutil.rmtree(d)
    assert outcomes["prefix"] and outcomes["dataloss"]


def test_fsync_failure_while_rolling(tmp_path: Path) -> None:
    io = FaultyIO()
    wal, _ = _open(tmp_path, io, file_bytes=100)
    wal.append(1, b"a" * 120)  # the file is now over file_bytes: the next append rolls
    io.fail_fsync = True
    with pytest.raises(FailedPrecondition, match="fsync"):
        wal.append(1, b"b")
    io.heal()
    with pytest.raises(FailedPrecondition):
        wal.append(1, b"c")
    wal.close()
    _, recs = _open(tmp_path, io)
    assert [r.payload for r in recs] == [b"a" * 120]


def test_disk_full_under_concurrent_appends(tmp_path: Path) -> None:
    io = FaultyIO()
    wal, _ = _open(tmp_path, io)
    io.fail_after_bytes = 30 * (HEADER_BYTES + 100) + 40
    acked: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(10):
            try:
                lsn = wal.append(1, bytes([t]) * 50 + i.to_bytes(2, "little") * 25)
            except (ResourceExhausted, FailedPrecondition) as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                acked.append(lsn)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors and all(isinstance(e, ResourceExhausted) for e in errors)
    assert len(acked) <= 30
    wal.close()
    io.heal()
    wal, recs = _open(tmp_path, io)
    assert set(acked) <= {r.lsn for r in recs}  # every acknowledged append survived
    assert all(len(r.payload) == 100 for r in recs)  # and nothing partial
    wal.close()


def test_empty_log_file_beyond_the_manifest_raises(tmp_path: Path) -> None:
    (tmp_path / f"{20:020d}.wal").write_bytes(b"")  # says LSNs up to 19 existed
    with pytest.raises(DataLoss, match=r"11\.\.19 are missing"):
        _open(tmp_path, after=10)
    wal, recs = _open(tmp_path, after=19)  # covered by the manifest: fine, appends continue
    assert recs == [] and wal.append(1, b"x") == 20
    wal.close()
