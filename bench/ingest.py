"""Durable ingest throughput and reopen time (issue 3).

Measures, in one run on one data directory:
- upsert throughput, 384-d, batches of 1,000 and of 1 (each call durable: WAL fsync before return),
  with concurrent single-row writers too (group commit shares fsyncs);
- the baseline in the same run: the raw disk doing the same durable work (append the same bytes
  to a file and fsync per batch), so vecdb's figure is a ratio against what the disk allows;
- reopen time of a collection of --rows vectors (no full re-read: segments are memory-mapped).

    python bench/ingest.py --rows 1000000 --out bench/results/ingest.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import vecdb


def raw_fsync_rate(directory: Path, payload: bytes, batches: int) -> float:
    """Seconds per durable append of ``payload`` on this disk (write + fsync), median of the run."""
    path = directory / "raw.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(batches):
            t0 = time.perf_counter()
            os.write(fd, payload)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return float(np.median(times))


def ingest(col, rows: int, batch: int, dim: int, start_id: int, seed: int) -> float:
    """Upsert ``rows`` vectors in batches; returns vectors/s."""
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((min(rows, 100_000), dim)).astype(np.float32)
    t0 = time.perf_counter()
    with tqdm(total=rows, desc=f"upsert batch={batch}", unit="vec", leave=False) as bar:
        for lo in range(0, rows, batch):
            n = min(batch, rows - lo)
            ids = np.arange(start_id + lo, start_id + lo + n, dtype=np.int64)
            first = lo % block.shape[0]
            vectors = block[first : first + n] if first + n <= block.shape[0] else block[:n]
            col.upsert(ids, vectors)
            bar.update(n)
    return rows / (time.perf_counter() - t0)


def concurrent_single_rows(col, writers: int, per_writer: int, dim: int, start_id: int) -> float:
    """``writers`` threads each upserting single rows; returns rows/s (group commit at work)."""
    vec = np.ones((1, dim), np.float32)

    def work(w: int) -> None:
        base = start_id + w * per_writer
        for i in range(per_writer):
            col.upsert([base + i], vec)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writers * per_writer / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="vectors for the big ingest + reopen")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--single", type=int, default=300, help="batch-of-1 upserts to time")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="append a JSON line here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vecdb-ingest-", dir=args.dir))
    try:
        payload = np.ones((1000, args.dim), np.float32).tobytes()
        raw_1000 = raw_fsync_rate(root, payload, 50)
        raw_1 = raw_fsync_rate(root, payload[: args.dim * 4], 200)

        data = root / "data"
        db = vecdb.connect(data)
        col = db.create_collection("bench", dim=args.dim, metric="l2")
        rate_1000 = ingest(col, args.rows, 1000, args.dim, 0, seed=1)
        rate_1 = ingest(col, args.single, 1, args.dim, args.rows, seed=2)
        rate_conc = concurrent_single_rows(col, writers=8, per_writer=max(1, args.single // 8), dim=args.dim,
                                           start_id=args.rows + args.single)
        count = col.count()
        # Crash-like reopen: no close() checkpoint, so the WAL tail is replayed as after kill -9.
        db._executor.shutdown(wait=True)
        db.catalog.close()
        db._dir_lock.release()
        for c in db._collections.values():
            c._store.wal.close()
        t0 = time.perf_counter()
        db2 = vecdb.connect(data)
        reopen_crash = time.perf_counter() - t0
        assert db2.collection("bench").count() == count
        db2.close()
        t0 = time.perf_counter()
        db3 = vecdb.connect(data)
        reopen_clean = time.perf_counter() - t0
        db3.close()

        row = {
            "bench": "ingest",
            "machine": platform.node(),
            "cpu": platform.processor() or platform.machine(),
            "dim": args.dim,
            "rows": args.rows,
            "upsert_batch1000_vec_per_s": round(rate_1000),
            "raw_disk_batch1000_vec_per_s": round(1000 / raw_1000),
            "ratio_batch1000_vs_raw_disk": round(rate_1000 / (1000 / raw_1000), 3),
            "upsert_batch1_per_s": round(rate_1, 1),
            "raw_disk_fsync_per_s": round(1 / raw_1, 1),
            "upsert_batch1_8_writers_per_s": round(rate_conc, 1),
            "reopen_after_crash_s": round(reopen_crash, 3),
            "reopen_after_close_s": round(reopen_clean, 3),
            "rows_after_reopen": count,
        }
        print(json.dumps(row, indent=2))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
