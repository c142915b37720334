"""Multi-core scaling of HNSW build and batch search: vecdb vs hnswlib and faiss, 1..N threads.

For each thread count every system builds the same graph (same m / ef_construction) and answers the
same query batch at one ef; we report build seconds, batch QPS (fastest of repeats), recall@10 and the speed-up over one
thread. Times are wall seconds: a thread-scaling run needs an otherwise idle machine with at least
as many cores as the largest thread count (run it on the device machine, not on the 2-core VM).

    python bench/scaling.py --dataset ../shared/datasets/glove-50-euclidean.hdf5 --limit 100000 \
        --threads 1,2,4,8,16

Writes JSON lines (first line: machine) to --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
from hnsw import load, machine, recall

from vecdb.config import HNSW
from vecdb.index.hnsw import HNSWIndex

K = 10


def best_time(search) -> tuple[float, np.ndarray]:
    """Fastest of repeated runs of a batch search, repeated for at least 0.3 s in all."""
    best, spent, runs = float("inf"), 0.0, 0
    while spent < 0.3 or runs < 3:
        t = time.perf_counter()
        ids = search()
        took = time.perf_counter() - t
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best, ids


def vecdb_run(x: np.ndarray, q: np.ndarray, metric: str, args: argparse.Namespace, threads: int) -> tuple:
    numba.set_num_threads(threads)
    # Compile the numba build and search paths outside the timed region (the others are ahead-of-time C++).
    warm = HNSWIndex.build(x[:2000], metric, HNSW(m=args.m, ef_construction=args.ef_construction))
    warm.search(q[:threads], K, {"ef": args.ef})
    t = time.perf_counter()
    index = HNSWIndex.build(x, metric, HNSW(m=args.m, ef_construction=args.ef_construction))
    build = time.perf_counter() - t
    return (build, *best_time(lambda: index.search(q, K, {"ef": args.ef})[0]))


def hnswlib_run(x: np.ndarray, q: np.ndarray, metric: str, args: argparse.Namespace, threads: int) -> tuple:
    import hnswlib

    index = hnswlib.Index("ip" if metric == "ip" else "l2", x.shape[1])
    index.init_index(x.shape[0], args.m, args.ef_construction, 100)
    index.set_num_threads(threads)
    t = time.perf_counter()
    index.add_items(x)
    build = time.perf_counter() - t
    index.set_ef(args.ef)
    return (build, *best_time(lambda: index.knn_query(q, K)[0]))


def faiss_run(x: np.ndarray, q: np.ndarray, metric: str, args: argparse.Namespace, threads: int) -> tuple:
    import faiss

    faiss.omp_set_num_threads(threads)
    kind = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    index = faiss.IndexHNSWFlat(x.shape[1], args.m, kind)
    index.hnsw.efConstruction = args.ef_construction
    t = time.perf_counter()
    index.add(x)
    build = time.perf_counter() - t
    index.hnsw.efSearch = args.ef
    return (build, *best_time(lambda: index.search(q, K)[1]))


SYSTEMS = {"vecdb": vecdb_run, "hnswlib": hnswlib_run, "faiss": faiss_run}


def table(records: list[dict[str, Any]]) -> str:
    base = {(r["system"]): r for r in records if r["threads"] == 1}
    lines = ["| system | threads | build s | build speed-up | batch QPS | QPS speed-up | recall@10 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        b = base.get(r["system"])
        up_build = f"{b['build_s'] / r['build_s']:.2f}x" if b else "-"
        up_qps = f"{r['qps'] / b['qps']:.2f}x" if b else "-"
        lines.append(f"| {r['system']} | {r['threads']} | {r['build_s']:.2f} | {up_build} | {r['qps']:,.0f} | "
                     f"{up_qps} | {r['recall']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--metric", choices=["euclidean", "angular"])
    p.add_argument("--limit", type=int)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=int, default=64)
    p.add_argument("--threads", default="1,2,4,8,16")
    p.add_argument("--systems", default="vecdb,hnswlib,faiss")
    p.add_argument("--out", default=f"bench/results/scaling-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    args = p.parse_args()

    threads = [int(t) for t in args.threads.split(",")]
    if max(threads) > numba.config.NUMBA_NUM_THREADS:
        p.error(f"--threads {max(threads)} exceeds NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}")
    x, q, gt, metric = load(args.dataset, args.metric, args.limit, args.queries)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    with out.open("w") as f:
        head = {**machine(), "dataset": os.path.basename(args.dataset), "n": x.shape[0], "dim": x.shape[1],
                "metric": metric, "m": args.m, "ef_construction": args.ef_construction, "ef": args.ef,
                "cores": os.cpu_count()}
        f.write(json.dumps(head) + "\n")
        for t in threads:
            for name in args.systems.split(","):
                build, search, ids = SYSTEMS[name](x, q, metric, args, t)
                rec = {"kind": "scaling", "system": name, "threads": t, "build_s": round(build, 3),
                       "qps": round(q.shape[0] / search, 1), "recall": round(recall(ids, gt), 4)}
                records.append(rec)
                f.write(json.dumps(rec) + "\n")
                f.flush()
                print(json.dumps(rec), flush=True)
    print(table(records))


if __name__ == "__main__":
    main()
