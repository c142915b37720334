"""What one search call costs above the work it does: the per-call path of ``col.search``.

Builds a small HNSW collection (in memory, one segment after ``optimize()``) and times, one query per
call, interleaved in one process, the same query at the same ef through each layer:

* ``col.search``: the public API (validation, planning or the one-segment fast path, id mapping,
  result assembly);
* ``HNSWIndex.search``: the index's own entry (parameter checks, output arrays, visited set);
* ``col.search`` with a filter that keeps ``--filter-fraction`` of the rows, and the same
  filter's exact plan at 0.1%;
* hnswlib's and faiss's Python calls on their own graphs of the same rows, for scale.

With ``--ef 1`` the graph walk is a handful of distances, so what is left is the call path. The
figure per layer is the mean over queries of each query's fastest call across ``--rounds``
rounds (a noisy shared machine inflates single timings, rarely the minimum).

    python bench/micro/call_path.py                      # ~1 min
    python bench/micro/call_path.py --n 20000 --ef 64    # the same at a realistic ef
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import vecdb


def per_query_min(calls: dict[str, Callable[[np.ndarray], Any]], q: np.ndarray, rounds: int) -> dict[str, float]:
    """Mean over queries of the fastest of ``rounds`` calls, in microseconds, round-robin over calls."""
    best = {name: np.full(q.shape[0], np.inf) for name in calls}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, call in calls.items():
            times = best[name]
            for i in range(q.shape[0]):
                one = q[i : i + 1]
                start = clock()
                call(one)
                elapsed = clock() - start
                if elapsed < times[i]:
                    times[i] = elapsed
    return {name: float(times.mean() / 1e3) for name, times in best.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5000, help="rows")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--ef", type=int, default=1)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--filter-fraction", type=float, default=0.5)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    group = rng.random(args.n)
    db = vecdb.connect(":memory:")
    col = db.create_collection("calls", args.dim, metric="cosine", index=vecdb.HNSW(m=16, ef_construction=64),
                               schema={"g": "float64"})
    col.upsert(np.arange(args.n), x, attributes={"g": group})
    col.optimize()
    index = col.state().segments[0].segment.index
    params = {"ef": args.ef}
    keep = f"g < {args.filter_fraction}"
    rare = "g < 0.001"
    calls: dict[str, Callable[[np.ndarray], Any]] = {
        "col.search": lambda one: col.search(one, k=10, params=params),
        "HNSWIndex.search": lambda one: index.search(one, 10, params),
        f"col.search, filter {keep}": lambda one: col.search(one, k=10, filter=keep, params=params),
        f"col.search, filter {rare} (exact plan)": lambda one: col.search(one, k=10, filter=rare, params=params),
    }
    try:
        import hnswlib

        h = hnswlib.Index("ip", args.dim)
        h.init_index(args.n, 16, 64)
        h.add_items(x)
        h.set_ef(max(args.ef, 10))
        calls["hnswlib knn_query"] = lambda one: h.knn_query(one, 10)
    except ImportError:
        pass
    try:
        import faiss

        f = faiss.IndexHNSWFlat(args.dim, 16, faiss.METRIC_INNER_PRODUCT)
        f.hnsw.efConstruction = 64
        f.add(x)
        f.hnsw.efSearch = max(args.ef, 10)
        calls["faiss search"] = lambda one: f.search(one, 10)
    except ImportError:
        pass
    for call in calls.values():  # compile and warm every path outside the timing
        call(q[:1])
    result = per_query_min(calls, q, args.rounds)
    base = result["HNSWIndex.search"]
    print(json.dumps({"n": args.n, "dim": args.dim, "ef": args.ef, "queries": args.queries, "rounds": args.rounds}))
    for name, micros in result.items():
        print(f"{name:48s} {micros:8.1f} us   ({micros - base:+.1f} us vs HNSWIndex.search)")
    db.close()


if __name__ == "__main__":
    main()
