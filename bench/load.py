"""Bounded load against a real `vecdb serve` on loopback: K clients mixing writes and reads while
optimize() runs, with correctness checks on every answer.

    python -m bench.load --clients 16 --seconds 300 --out bench/results/reliability-load.json

Each client thread has its own connection and owns a disjoint id range, so it knows exactly what
it wrote and deleted: after each upsert it reads the rows back (read-your-writes, byte for byte);
every search/get answer is checked for ids it has deleted (a resurrected delete is a violation).
One extra thread runs ``optimize()`` (seal + compaction + index build) every ``--optimize-every``
seconds. Errors other than RESOURCE_EXHAUSTED (an intentional limit) are counted as unexpected.
The server's RSS is sampled from /proc and compared with ``--rss-mb``. Every 10th search is
re-run exactly to sample recall@10. Bounded: ``--seconds`` and ``--max-ops`` per client.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

import vecdb
from tests.support.server import ServerProcess

DIM = 32
SPAN = 1_000_000  # ids of client c live in [c * SPAN, (c + 1) * SPAN)


class Stats:
    """Latencies per RPC, error counts and violations, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.violations: list[str] = []
        self.recall: list[float] = []

    def timed(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)``, record its latency under ``name``; None on an error."""
        start = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except vecdb.ResourceExhausted:
            with self.lock:
                self.errors["RESOURCE_EXHAUSTED (intentional)"] += 1
            return None
        except vecdb.VecdbError as exc:
            with self.lock:
                self.errors[f"{name}: {type(exc).__name__}: {str(exc)[:120]}"] += 1
            return None
        with self.lock:
            self.latency[name].append(time.perf_counter() - start)
        return out

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 50:
                self.violations.append(text)


def client(uri: str, cid: int, stop: float, max_ops: int, stats: Stats) -> None:
    """One client: upsert -> read back, delete, search, filtered search; checks every answer."""
    rng = np.random.default_rng(cid)
    live: dict[int, np.ndarray] = {}
    deleted: set[int] = set()
    next_id = cid * SPAN
    with vecdb.connect(uri, timeout=60.0, retries=0) as db:
        col = db.collection("load")
        ops = 0
        while time.monotonic() < stop and ops < max_ops:
            ops += 1
            roll = rng.random()
            if roll < 0.35 or len(live) < 20:
                n = int(rng.integers(1, 33))
                ids = np.arange(next_id, next_id + n, dtype=np.int64)
                next_id += n
                vecs = rng.standard_normal((n, DIM)).astype(np.float32)
                if stats.timed("Upsert", col.upsert, ids, vecs, {"g": ids % 10}) is None:
                    continue
                live.update({int(i): v for i, v in zip(ids, vecs, strict=True)})
                deleted.difference_update(ids.tolist())
                table = stats.timed("Get", col.get, ids, include=("vector",))
                if table is not None:
                    got = dict(zip(table.column("id").to_pylist(), table.column("vector").to_pylist(), strict=True))
                    if any(np.asarray(got.get(int(i), []), np.float32).tobytes() != live[int(i)].tobytes()
                           for i in ids):
                        stats.violation(f"client {cid}: read-your-writes failed for a batch at id {ids[0]}")
            elif roll < 0.5:
                doomed = rng.choice(np.array(sorted(live)), size=min(len(live), int(rng.integers(1, 6))), replace=False)
                if stats.timed("Delete", col.delete, doomed) is None:
                    continue
                for i in doomed.tolist():
                    live.pop(i, None)
                deleted.update(doomed.tolist())
            else:
                filtered = roll > 0.8
                target = live[int(rng.choice(np.array(sorted(live))))]
                query = target + 0.01 * rng.standard_normal(DIM).astype(np.float32)
                name = "Search(filter)" if filtered else "Search"
                kwargs: dict[str, Any] = {"filter": "g >= 0"} if filtered else {}
                res = stats.timed(name, col.search, query, k=10, **kwargs)
                if res is None:
                    continue
                found = set(res.ids[0][np.isfinite(res.distances[0])].tolist())
                if found & deleted:
                    stats.violation(f"client {cid}: search returned deleted ids {sorted(found & deleted)[:5]}")
                if ops % 10 == 0:
                    exact = stats.timed("Search(exact)", col.search, query, k=10, params={"exact": True})
                    if exact is not None:
                        truth = set(exact.ids[0][np.isfinite(exact.distances[0])].tolist())
                        with stats.lock:
                            stats.recall.append(len(found & truth) / max(1, len(truth)))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="per client")
    parser.add_argument("--preload", type=int, default=20_000)
    parser.add_argument("--optimize-every", type=float, default=20.0)
    parser.add_argument("--rss-mb", type=float, default=2048.0, help="server RSS budget")
    parser.add_argument("--out", type=Path, default=Path("bench/results/reliability-load.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vecdb-load-") as tmp:
        server = ServerProcess(Path(tmp) / "data", "--workers", "16")
        server.start()
        assert server.proc is not None
        try:
            summary = drive(server, args)
        finally:
            server.stop()
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


def drive(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Preload, run the clients and the optimizer, sample RSS; return the summary."""
    rng = np.random.default_rng(0)
    with vecdb.connect(server.uri, timeout=120.0) as db:
        col = db.create_collection("load", dim=DIM, metric="l2", index=vecdb.HNSW(m=12, ef_construction=64),
                                   schema={"g": "int64"})
        ids = np.arange(10**12, 10**12 + args.preload, dtype=np.int64)  # nobody's range: never deleted
        col.upsert(ids, rng.standard_normal((args.preload, DIM)).astype(np.float32), {"g": ids % 10})
        col.optimize()
    stats = Stats()
    start = time.monotonic()
    stop = start + args.seconds
    threads = [threading.Thread(target=client, args=(server.uri, c + 1, stop, args.max_ops, stats))
               for c in range(args.clients)]
    for t in threads:
        t.start()
    rss: list[float] = []
    optimizes = 0
    with vecdb.connect(server.uri, timeout=600.0, retries=0) as db:
        last = start
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            assert server.proc is not None
            rss.append(rss_mb(server.proc.pid))
            if time.monotonic() - last > args.optimize_every and time.monotonic() < stop:
                stats.timed("Optimize", db.collection("load").optimize)
                optimizes += 1
                last = time.monotonic()
    elapsed = time.monotonic() - start
    total = sum(len(v) for v in stats.latency.values())
    unexpected = {k: v for k, v in stats.errors.items() if "intentional" not in k}
    return {
        "clients": args.clients, "seconds": round(elapsed, 1), "ops": total, "ops_per_s": round(total / elapsed, 1),
        "per_rpc": {name: {"count": len(v), "p50_ms": percentile_ms(v, 50), "p95_ms": percentile_ms(v, 95),
                           "p99_ms": percentile_ms(v, 99)} for name, v in sorted(stats.latency.items())},
        "optimizes": optimizes, "errors": dict(stats.errors), "unexpected_errors": sum(unexpected.values()),
        "violations": stats.violations, "recall_at_10_sampled": round(float(np.mean(stats.recall)), 4)
        if stats.recall else None, "recall_samples": len(stats.recall),
        "rss_mb_max": round(max(rss), 1) if rss else None, "rss_budget_mb": args.rss_mb,
        "rss_ok": bool(rss) and max(rss) <= args.rss_mb, "preload": args.preload,
    }


if __name__ == "__main__":
    main()
