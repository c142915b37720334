"""Filtered search: vecdb's planner (through the public API) vs faiss HNSW with an IDSelector, hnswlib
with a filter function, and a pre-filtered exact scan, at selectivities ~50%, 10%, 1% and 0.1% with
equality, range, IN and conjunctions over real attributes.

* npm-minilm-384-angular: ``downloads`` (int64, monthly downloads) and ``scope`` (int32 npm scope
  code, -1 = unscoped); cosine (rows normalised; faiss and hnswlib use inner product on them).
* glove-50-euclidean: ``freq_rank`` (int32, word-frequency rank); l2.

Every system is one query per call on one thread (process CPU time, best of --rounds passes), HNSW
m=16, ef_construction=100 everywhere. Ground truth: exact top-10 over the matching rows (float64).
Recall@10 = |found & truth| / min(10, matching). The baselines get their masks precomputed (not
timed); vecdb evaluates the filter text itself (its per-segment mask cache makes repeats cheap, as in
production). The exact scan gathers the matching rows and scores them with one matrix product per
query.

    python bench/filtered.py --dataset ../shared/datasets/npm-minilm-384-angular.hdf5 --limit 50000
    python bench/filtered.py --dataset ../shared/datasets/glove-50-euclidean.hdf5 --limit 100000

Writes bench/results/filtered-<dataset>-<time>.jsonl and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

K = 10
M, EFC = 16, 100
Filter = tuple[str, str, str, dict[str, Any] | None, np.ndarray]  # (label, kind, text, params, mask)


def load(path: str, limit: int | None, nq: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], str]:
    """(train (n, d) float32, queries (nq, d), attributes, metric "cosine" | "l2")."""
    import h5py

    with h5py.File(path, "r") as f:
        train = np.asarray(f["train"], dtype=np.float32)
        test = np.asarray(f["test"][:nq], dtype=np.float32)
        attrs = {key[len("train_"):]: np.asarray(f[key]) for key in f
                 if key.startswith("train_") and key != "train_row"}
        metric = "cosine" if f.attrs["distance"] == "angular" else "l2"
    if limit is not None and limit < train.shape[0]:
        keep = np.sort(np.random.default_rng(0).choice(train.shape[0], limit, replace=False))
        train = train[keep]
        attrs = {k: v[keep] for k, v in attrs.items()}
    if metric == "cosine":
        for a in (train, test):
            a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-30)
    return np.ascontiguousarray(train), np.ascontiguousarray(test), attrs, metric


def _threshold(values: np.ndarray, frac: float) -> int:
    """Smallest v with mean(values >= v) <= frac (so ``>= v`` keeps about ``frac``)."""
    return int(np.quantile(values, 1.0 - frac, method="higher"))


def npm_filters(a: dict[str, np.ndarray]) -> list[Filter]:
    dl, sc = a["downloads"], a["scope"]
    n = dl.shape[0]
    counts = np.bincount(sc[sc >= 0])
    by_size = np.argsort(-counts, kind="stable")
    out: list[Filter] = []
    for frac in (0.5, 0.1, 0.01, 0.001):
        v = _threshold(dl, frac)
        out.append((f"{frac:.1%}", "range", f"downloads >= {v}", None, dl >= v))
    out.append(("~50%", "equality", "scope = -1", None, sc == -1))
    top = by_size[: int(np.searchsorted(np.cumsum(counts[by_size]), 0.1 * n)) + 1]
    out.append(("~10%", "IN", "scope IN :scopes", {"scopes": top.tolist()}, np.isin(sc, top)))
    for frac in (0.01, 0.001):
        code = int(by_size[np.argmin(np.abs(counts[by_size] - frac * n))])
        out.append((f"~{frac:.1%}", "equality", f"scope = {code}", None, sc == code))
    unscoped = sc == -1
    for frac in (0.1, 0.01, 0.001):
        v = _threshold(dl[unscoped], frac / unscoped.mean())
        out.append((f"~{frac:.1%}", "conjunction", f"scope = -1 AND downloads >= {v}", None, unscoped & (dl >= v)))
    return out


def glove_filters(a: dict[str, np.ndarray], seed: int = 0) -> list[Filter]:
    rank = a["freq_rank"].astype(np.int64)
    out: list[Filter] = []
    for frac in (0.5, 0.1, 0.01, 0.001):
        v = int(np.quantile(rank, frac))
        out.append((f"{frac:.1%}", "range", f"freq_rank < {v}", None, rank < v))
    rng = np.random.default_rng(seed)
    for frac in (0.01, 0.001):
        chosen = np.sort(rng.choice(rank, int(frac * rank.shape[0]), replace=False))
        out.append((f"{frac:.1%}", "IN", "freq_rank IN :ranks", {"ranks": chosen.tolist()}, np.isin(rank, chosen)))
    for frac in (0.5, 0.1, 0.01, 0.001):  # a window that does not start at the most frequent words
        lo = int(np.quantile(rank, 0.3))
        hi = int(np.quantile(rank, min(0.3 + frac, 1.0)))
        out.append((f"~{frac:.1%}", "conjunction", f"freq_rank >= {lo} AND freq_rank < {hi}", None,
                    (rank >= lo) & (rank < hi)))
    return out


def truth(x: np.ndarray, q: np.ndarray, rows: np.ndarray, metric: str) -> list[set[int]]:
    """Exact top-K over x[rows] for every query, float64, ties by the smaller row."""
    xs = x[rows].astype(np.float64)
    out = []
    for qi in q.astype(np.float64):
        d = -(xs @ qi) if metric == "cosine" else ((xs - qi) ** 2).sum(1)
        out.append(set(rows[np.lexsort((rows, d))[:K]].tolist()))
    return out


class Vecdb:
    name = "vecdb"

    def __init__(self, x: np.ndarray, attrs: dict[str, np.ndarray], metric: str) -> None:
        import vecdb

        self.db = vecdb.connect(":memory:")
        schema = {k: "int64" if v.dtype == np.int64 else "int32" for k, v in attrs.items()}
        self.col = self.db.create_collection("f", dim=x.shape[1], metric=metric, schema=schema,
                                             index=vecdb.HNSW(m=M, ef_construction=EFC))
        for s in range(0, x.shape[0], 10000):
            ids = np.arange(s, min(s + 10000, x.shape[0]), dtype=np.int64)
            self.col.upsert(ids, x[ids], {k: v[ids] for k, v in attrs.items()})
        self.col.optimize()
        self.plans: dict[str, int] = {}

    def search(self, q: np.ndarray, f: Filter | None, ef: int) -> np.ndarray:
        if f is None:
            return self.col.search(q, k=K, params={"ef": ef}).ids[0]
        res = self.col.search(q, k=K, filter=f[2], filter_params=f[3], params={"ef": ef})
        plan = ",".join(res.stats["plans"])
        self.plans[plan] = self.plans.get(plan, 0) + 1
        return res.ids[0]


class Faiss:
    name = "faiss-hnsw+idselector"

    def __init__(self, x: np.ndarray, metric: str) -> None:
        import faiss

        faiss.omp_set_num_threads(2)
        kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        self.index = faiss.IndexHNSWFlat(x.shape[1], M, kind)
        self.index.hnsw.efConstruction = EFC
        self.index.add(x)
        faiss.omp_set_num_threads(1)
        self.sel: dict[int, Any] = {}

    def search(self, q: np.ndarray, f: Filter | None, ef: int) -> np.ndarray:
        import faiss

        if f is None:
            params = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            key = id(f[4])
            if key not in self.sel:  # keep the bits alive as long as the selector
                bits = np.packbits(f[4], bitorder="little")
                self.sel[key] = (bits, faiss.IDSelectorBitmap(f[4].shape[0], faiss.swig_ptr(bits)))
            params = faiss.SearchParametersHNSW(sel=self.sel[key][1], efSearch=ef)
        return self.index.search(q, K, params=params)[1][0]


class Hnswlib:
    name = "hnswlib+filter"

    def __init__(self, x: np.ndarray, metric: str) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip" if metric == "cosine" else "l2", dim=x.shape[1])
        self.index.init_index(max_elements=x.shape[0], M=M, ef_construction=EFC, random_seed=0)
        self.index.set_num_threads(2)
        self.index.add_items(x, np.arange(x.shape[0]))
        self.index.set_num_threads(1)

    def search(self, q: np.ndarray, f: Filter | None, ef: int) -> np.ndarray:
        self.index.set_ef(max(ef, K))
        mask = None if f is None else f[4]
        try:
            labels, _ = self.index.knn_query(q, k=K, filter=None if mask is None else (lambda i: bool(mask[i])))
        except RuntimeError:  # fewer than k found: hnswlib refuses to return a partial row
            return np.full(K, -1, np.int64)
        return labels[0].astype(np.int64)


class Exact:
    name = "prefiltered-exact"

    def __init__(self, x: np.ndarray, metric: str) -> None:
        self.x, self.metric = x, metric
        self.rows: dict[int, np.ndarray] = {}

    def search(self, q: np.ndarray, f: Filter | None, ef: int) -> np.ndarray:
        rows = np.arange(self.x.shape[0]) if f is None else self.rows.setdefault(id(f[4]), np.flatnonzero(f[4]))
        xs = self.x[rows]
        d = -(xs @ q[0]) if self.metric == "cosine" else (xs * xs).sum(1) - 2.0 * (xs @ q[0])
        top = np.argpartition(d, K)[:K] if d.shape[0] > K else np.arange(d.shape[0])
        return rows[top[np.argsort(d[top])]]


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {"commit": commit, "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg": round(os.getloadavg()[0], 1)}


def run_filter(systems: list[Any], x: np.ndarray, q: np.ndarray, metric: str, f: Filter | None,
               efs: list[int], rounds: int, emit: Callable[[dict], None]) -> None:
    mask = np.ones(x.shape[0], bool) if f is None else f[4]
    rows = np.flatnonzero(mask)
    gt = truth(x, q, rows, metric)
    want = max(1, min(K, rows.size))
    for ef in efs:
        # Best of ``rounds`` passes, round-robin, so a burst of load from a neighbour hits every
        # system alike and no single pass decides a system's figure.
        best: dict[str, tuple[float, list[np.ndarray], dict[str, int] | None]] = {}
        for _ in range(rounds):
            for s in systems:
                # The exact scan ignores ef but is timed at every ef all the same, so every system
                # keeps its best of the same number of passes.
                if isinstance(s, Vecdb):
                    s.plans = {}
                c = time.process_time()
                found = [s.search(q[i : i + 1], f, ef) for i in range(q.shape[0])]
                cpu = time.process_time() - c
                if s.name not in best or cpu < best[s.name][0]:
                    best[s.name] = (cpu, found, dict(s.plans) if isinstance(s, Vecdb) else None)
        for s in systems:
            if s.name not in best:
                continue
            cpu, found, plans = best[s.name]
            rec = float(np.mean([len(g & set(r[r >= 0].tolist())) / want for g, r in zip(gt, found, strict=True)]))
            leak = int(sum((~mask[r[r >= 0]]).sum() for r in found))
            emit({"kind": "search", "filter": "none" if f is None else f[2], "type": "none" if f is None else f[1],
                  "target": "100%" if f is None else f[0], "selectivity": float(mask.mean()),
                  "matching": int(rows.size),
                  "system": s.name, "ef": ef if not isinstance(s, Exact) else None, "recall": rec,
                  "qps": q.shape[0] / cpu, "rounds": rounds, "returned_non_matching": leak,
                  **({"plans": plans} if plans is not None else {})})


def best_at(records: list[dict], system: str, flt: tuple[str, int], min_recall: float) -> dict | None:
    """The fastest record of ``system`` on filter ``flt`` (text, matching rows) with recall >= min_recall."""
    ok = [r for r in records if r["system"] == system and (r["filter"], r["matching"]) == flt
          and r["recall"] >= min_recall]
    return max(ok, key=lambda r: r["qps"]) if ok else None


def markdown(records: list[dict], base: dict, limit: str) -> str:
    lines = [f"# filtered: {base['dataset']} (n={base['n']}{limit}, d={base['d']}, {base['metric']}), commit "
             f"{base['commit']}, {base['cpu']}, {base['cores']} cores, load {base['load_avg']}", "",
             "| filter | type | selectivity | system | ef | recall@10 | QPS | plans (vecdb) |",
             "|---|---|---|---|---|---|---|---|"]
    search = [r for r in records if r["kind"] == "search"]
    for r in search:
        plans = ", ".join(f"{k} x{v}" for k, v in r.get("plans", {}).items())
        lines.append(f"| `{r['filter']}` | {r['type']} | {r['selectivity']:.4f} | {r['system']} | {r['ef']} | "
                     f"{r['recall']:.3f} | {r['qps']:.0f} | {plans} |")
    unf = best_at(search, "vecdb", ("none", base["n"]), 0.95)
    lines += ["", "Best QPS at recall@10 >= 0.95 (- = never reached):", "",
              "| filter | selectivity | vecdb | vs unfiltered | faiss | hnswlib | exact |",
              "|---|---|---|---|---|---|---|"]
    for flt in dict.fromkeys((r["filter"], r["matching"]) for r in search):
        cells = []
        for system in ("vecdb", "faiss-hnsw+idselector", "hnswlib+filter", "prefiltered-exact"):
            b = best_at(search, system, flt, 0.95)
            cells.append(f"{b['qps']:.0f} (ef {b['ef']})" if b else "-")
        v = best_at(search, "vecdb", flt, 0.95)
        ratio = f"{v['qps'] / unf['qps']:.2f}" if v and unf else "-"
        sel = next(r["selectivity"] for r in search if (r["filter"], r["matching"]) == flt)
        lines.append(f"| `{flt[0]}` | {sel:.4f} | {cells[0]} | {ratio} | {cells[1]} | {cells[2]} | {cells[3]} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--limit", type=int, default=None, help="subsample the rows (seeded)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--efs", type=lambda s: [int(v) for v in s.split(",")], default=[16, 24, 32, 64, 128, 256])
    p.add_argument("--rounds", type=int, default=3, help="timed passes per (filter, ef); each system keeps its best")
    p.add_argument("--systems", default="vecdb,faiss,hnswlib,exact")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--summarize", help="only rewrite the .md of this .jsonl (e.g. of a run cut short)")
    args = p.parse_args()
    if args.summarize:
        records = [json.loads(line) for line in Path(args.summarize).read_text().splitlines()]
        limit = f", subsampled from the file with seed 0 to {args.limit}" if args.limit else ""
        Path(args.summarize.replace(".jsonl", ".md")).write_text(markdown(records, records[0], limit) + "\n")
        return
    x, q, attrs, metric = load(args.dataset, args.limit, args.queries)
    name = Path(args.dataset).stem + (f"-{args.limit}" if args.limit else "")
    filters = npm_filters(attrs) if "downloads" in attrs else glove_filters(attrs)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out) / f"filtered-{name}-{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    base = {"dataset": name, "n": int(x.shape[0]), "d": int(x.shape[1]), "metric": metric, "m": M,
            "ef_construction": EFC, "queries": int(q.shape[0]), **machine()}
    records: list[dict] = []

    def emit(rec: dict) -> None:
        rec = {**base, **rec}
        records.append(rec)
        with open(out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps({k: v for k, v in rec.items() if k not in base}), flush=True)

    makers = {"vecdb": lambda: Vecdb(x, attrs, metric), "faiss": lambda: Faiss(x, metric),
              "hnswlib": lambda: Hnswlib(x, metric), "exact": lambda: Exact(x, metric)}
    systems = []
    for key in args.systems.split(","):
        t = time.perf_counter()
        systems.append(makers[key]())
        emit({"kind": "build", "system": systems[-1].name, "build_wall_s": time.perf_counter() - t})
    for s in systems:  # warm-up: compile kernels, fill caches, outside the timings
        s.search(q[:1], None, 16)
    run_filter(systems, x, q, metric, None, args.efs, args.rounds, emit)
    for f in filters:
        for s in systems:
            s.search(q[:1], f, 16)
        run_filter(systems, x, q, metric, f, args.efs, args.rounds, emit)
    limit = f", subsampled from the file with seed 0 to {args.limit}" if args.limit else ""
    Path(str(out).replace(".jsonl", ".md")).write_text(markdown(records, base, limit) + "\n")


if __name__ == "__main__":
    main()
