"""Every crash point of the storage write paths, swept with CrashingIO and a power cut after it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from vecdb.storage.io import FileIO
from vecdb.storage.io_faults import CrashingIO, SimulatedCrash
from vecdb.storage.segment import open_segment, write_segment
from vecdb.storage.wal import WriteAheadLog


def _sweep(tmp_path: Path, setup: Callable[[Path], None], action: Callable[[Path, CrashingIO], None],
           check: Callable[[Path], None]) -> int:
    """Run ``action`` once cleanly to count its operations, then crash it at each one in turn."""
    clean = tmp_path / "clean"
    setup(clean)
    io = CrashingIO(real_fsync=False)
    action(clean, io)
    total = io.ops
    for crash_at in range(total):
        d = tmp_path / f"crash{crash_at}"
        setup(d)
        io = CrashingIO(crash_at=crash_at, real_fsync=False)
        with contextlib.suppress(SimulatedCrash):
            action(d, io)
        assert io.crashed, crash_at
        io.power_cut()
        check(d)
    return total


def test_atomic_replace_is_old_or_new_at_every_crash_point(tmp_path: Path) -> None:
    table = pa.table({"id": np.arange(50), "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(np.ones(200, dtype=np.float32)), 4)})
    old = b"old contents"
    new = FileIO()

    def setup(d: Path) -> None:
        new.makedirs(d)
        (d / "f").write_bytes(old)

    def action(d: Path, io: CrashingIO) -> None:
        io.write_atomic(d / "f", [b"new ", b"contents"])
        write_segment(d / "s.arrow", table, io)

    def check(d: Path) -> None:
        assert (d / "f").read_bytes() in (old, b"new contents")
        if (d / "s.arrow").exists():  # absent, or complete and valid: never half a segment
            assert open_segment(d / "s.arrow", None).equals(table)
        FileIO().remove_temp_files(d)
        assert {p.name for p in d.iterdir()} <= {"f", "s.arrow"}

    assert _sweep(tmp_path, setup, action, check) > 10


def _payload(lsn: int) -> bytes:
    return bytes([lsn % 256]) * (30 + lsn * 7)


def test_wal_keeps_every_acknowledged_record_at_every_crash_point(tmp_path: Path) -> None:
    acked: dict[Path, list[int]] = {}

    def setup(d: Path) -> None:
        d.mkdir()
        acked[d] = []

    def action(d: Path, io: CrashingIO) -> None:
        wal = WriteAheadLog(d, io, file_bytes=200)
        list(wal.recover())
        for lsn in range(1, 9):
            assert wal.append(1, _payload(lsn)) == lsn
            acked[d].append(lsn)
            if lsn == 5:
                wal.truncate_through(2)
        wal.close()

    def check(d: Path) -> None:
        wal = WriteAheadLog(d, FileIO(), file_bytes=200)
        recs = list(wal.recover())  # never DataLoss after a crash
        lsns = [r.lsn for r in recs]
        assert lsns == list(range(lsns[0], lsns[0] + len(lsns))) if lsns else True, lsns  # contiguous
        assert all(r.payload == _payload(r.lsn) for r in recs)
        assert set(acked[d]) - {1, 2} <= set(lsns)  # 1 and 2 may be truncated away by then
        last = wal.last_lsn
        assert last >= max(acked[d], default=0)
        assert wal.append(1, b"after") == last + 1
        wal.close()

    assert _sweep(tmp_path, setup, action, check) > 20


def test_recovery_that_crashes_while_cutting_a_torn_tail(tmp_path: Path) -> None:
    def setup(d: Path) -> None:
        d.mkdir()
        wal = WriteAheadLog(d, FileIO())
        list(wal.recover())
        for lsn in range(1, 5):
            wal.append(1, _payload(lsn))
        wal.close()
        (log,) = d.iterdir()
        with log.open("ab") as f:
            f.write(b"\x07" * 11)  # a torn frame header

    def action(d: Path, io: CrashingIO) -> None:
        wal = WriteAheadLog(d, io)
        list(wal.recover())
        wal.append(2, b"x")
        wal.close()

    def check(d: Path) -> None:
        wal = WriteAheadLog(d, FileIO())
        recs = list(wal.recover())
        assert [r.lsn for r in recs][:4] == [1, 2, 3, 4]
        wal.close()

    _sweep(tmp_path, setup, action, check)


def test_concurrent_appenders_lose_nothing_acknowledged_at_random_crash_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    crashed = 0
    for trial in range(8):
        d = tmp_path / f"t{trial}"
        io = CrashingIO(crash_at=int(rng.integers(5, 120)), real_fsync=False)
        wal = WriteAheadLog(d, io, file_bytes=300)
        list(wal.recover())
        acked: dict[int, bytes] = {}
        attempted: set[bytes] = set()
        lock = threading.Lock()

        def worker(t: int, wal: WriteAheadLog = wal, acked: dict = acked, attempted: set = attempted,
                   lock: threading.Lock = lock) -> None:
            for i in range(10):
                payload = f"{t}-{i}".encode() * 5
                with lock:
                    attempted.add(payload)
                try:
                    lsn = wal.append(1, payload)
                except SimulatedCrash:
                    return
                with lock:
                    acked[lsn] = payload

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        crashed += io.crashed
        io.power_cut()
        check = WriteAheadLog(d, FileIO())
        recs = {r.lsn: r.payload for r in check.recover()}
        assert sorted(recs) == list(range(1, len(recs) + 1)), trial
        assert all(recs.get(lsn) == payload for lsn, payload in acked.items()), trial
        assert set(recs.values()) <= attempted
        check.close()
    assert crashed >= 4
