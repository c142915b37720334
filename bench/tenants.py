"""Multi-tenant search: the Curator-style tenant index vs one shared HNSW + tenant filter vs one HNSW
per tenant, and vecdb's multi-tenant collection path, two ways: ``collection-filter`` (the tenant
as a filter on the hidden ``tenants`` column, then the planner: the engine before the tenant index)
and ``collection-tenant-index`` (``search(..., tenant=)`` as the engine runs it now: each segment's
tenant index for tenants with their own graph or up to 10% of the segment, the filtered path for
the rest). Memory of each layout, per-tenant query latency and recall@10.

The tenant index's knob is ``graph_ef``, the beam of a big tenant's own graph (tenants up to 1,024
rows are scanned exactly; the tree serves big tenants that did not fit the graph budget, at its
default ``ef`` 1,024 rows scored); the collection's is ``ef``, passed on as that beam.

Tenant assignments over the same rows:

* ``zipf``: 1,000 tenants with Zipf(s=1) sizes, rows assigned at random, 5% of rows shared with a
  second tenant (drawn from the same distribution);
* ``scope``: the npm scope of each package as its tenant (unscoped packages: tenant ``unscoped``).

Latency is per query (one query per call, one thread, process CPU time so that other load on a
shared machine counts less); systems run round-robin per query. Ground truth: exact top-10 over the
tenant's rows. Evaluated tenants: those with >= 10 rows, stratified by size (every tenant above 1,024
rows, a seeded sample below).

    python bench/tenants.py --dataset ../shared/datasets/npm-minilm-384-angular.hdf5 --limit 30000
    python bench/tenants.py ... --systems tenant-index,collection   # the engine paths only (no HNSW sweeps)

Writes bench/results/tenants-<dataset>-<time>.jsonl and .md.
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
import pyarrow as pa

from vecdb.config import HNSW
from vecdb.engine import planner, tenant_search
from vecdb.index.hnsw import HNSWIndex
from vecdb.index.tenant import TenantIndex

K = 10
METRIC = "ip"  # the npm vectors are unit length: ip ranks as cosine, and no index copies the vectors
BUCKETS = ((10, 1024), (1025, 4096), (4097, 10**9))
SYSTEMS = ("tenant-index", "shared-hnsw+filter", "shared-hnsw+planner", "per-tenant-hnsw", "collection")


def load(path: str, limit: int | None, nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(train (n, d) unit float32, queries (nq, d), scope code per row (n,), scope names)."""
    import h5py

    with h5py.File(path, "r") as f:
        train = np.asarray(f["train"], dtype=np.float32)
        test = np.asarray(f["test"][:nq], dtype=np.float32)
        scope = np.asarray(f["train_scope"], dtype=np.int64)
        names = json.loads(f.attrs["scopes"])
    if limit is not None and limit < train.shape[0]:
        keep = np.sort(np.random.default_rng(0).choice(train.shape[0], limit, replace=False))
        train, scope = train[keep], scope[keep]
    for a in (train, test):
        a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-30)
    return np.ascontiguousarray(train), np.ascontiguousarray(test), scope, names


def zipf_tenants(n: int, tenants: int, shared: float, seed: int) -> list[list[str]]:
    """Random rows to ``tenants`` tenants of Zipf(1) sizes; a ``shared`` fraction gets a second tenant."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, tenants + 1)
    p /= p.sum()
    owner = rng.choice(tenants, n, p=p)
    out = [[f"t{o:04d}"] for o in owner]
    for i in rng.choice(n, int(shared * n), replace=False):
        extra = int(rng.choice(tenants, p=p))
        if f"t{extra:04d}" not in out[i]:
            out[i].append(f"t{extra:04d}")
    return out


def scope_tenants(scope: np.ndarray, names: list[str]) -> list[list[str]]:
    return [[names[s] if s >= 0 else "unscoped"] for s in scope.tolist()]


def members(row_tenants: list[list[str]]) -> dict[str, np.ndarray]:
    """tenant -> sorted row offsets (int64)."""
    out: dict[str, list[int]] = {}
    for i, ts in enumerate(row_tenants):
        for t in ts:
            out.setdefault(t, []).append(i)
    return {t: np.array(rows, np.int64) for t, rows in out.items()}


def exact_topk(x: np.ndarray, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact top-K (ip) of ``q`` (d,) over x[rows], ties by the smaller row -> (<=K,) offsets."""
    d = -(x[rows].astype(np.float64) @ q.astype(np.float64))
    return rows[np.lexsort((rows, d))[:K]]


def pick_tenants(sets: dict[str, np.ndarray], per_bucket: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for lo, hi in BUCKETS:
        names = sorted(t for t, r in sets.items() if lo <= r.size <= hi)
        if len(names) > per_bucket and lo < 4097:
            names = sorted(rng.choice(names, per_bucket, replace=False).tolist())
        chosen += names
    return chosen


def bucket(size: int) -> str:
    for lo, hi in BUCKETS:
        if lo <= size <= hi:
            return f"{lo}-{hi}" if hi < 10**9 else f">{lo - 1}"
    return "<10"


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {"commit": commit, "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg": round(os.getloadavg()[0], 1)}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


class Systems:
    """Every layout over one assignment, and a search function per (system, knob)."""

    def __init__(self, x: np.ndarray, rt: list[list[str]], sets: dict[str, np.ndarray], shared: HNSWIndex | None,
                 args: argparse.Namespace, emit: Callable[[dict], None], collection: bool,
                 only: list[str] | None = None) -> None:
        self.x, self.rt, self.sets, self.shared, self.args = x, rt, sets, shared, args
        self.tenant, wall = timed(lambda: TenantIndex.build(x, METRIC, rt, None))
        per = self.tenant.memory_by_tenant()
        graphs = self.tenant.graphs.values()
        emit({"kind": "build", "system": "tenant-index", "build_wall_s": wall, "bytes": self.tenant.nbytes,
              "shared_tree_bytes": self.tenant.shared_nbytes, "graphs": len(graphs),
              "graph_nodes": sum(g.size for g in graphs), "graph_bytes": sum(g.nbytes for g in graphs),
              "max_tenant_bytes": max(per.values()),
              "median_tenant_bytes": float(np.median(list(per.values()))),
              "nodes": int(self.tenant.centroids.shape[0])})
        self.emit = emit
        self.column_bytes = column = pa.array(rt, type=pa.list_(pa.string())).nbytes
        if shared is not None:
            emit({"kind": "build", "system": "shared-hnsw+filter", "bytes": shared.nbytes + column,
                  "graph_bytes": shared.nbytes, "tenants_column_bytes": column})
        self.masks: dict[str, np.ndarray] = {}
        self.per: dict[str, HNSWIndex] = {}
        self.col = self._collection(args) if collection else None
        if "per-tenant-hnsw" in args.systems:
            self._per_tenant(x, sets, args, only)

    def _per_tenant(self, x: np.ndarray, sets: dict[str, np.ndarray], args: argparse.Namespace,
                    only: list[str] | None) -> None:
        n = x.shape[0]
        cfg = HNSW(m=args.m, ef_construction=args.ef_construction)

        def build_all() -> None:
            for t in only if only is not None else sets:
                self.per[t] = HNSWIndex.build(np.ascontiguousarray(x[sets[t]]), METRIC, cfg)

        _, wall = timed(build_all)
        held = sum(r.size for r in sets.values())
        graph = sum(i.nbytes for i in self.per.values())
        estimated = only is not None and len(self.per) < len(sets)
        if estimated:  # the tenants not built cost what the built ones cost per row
            built = sum(sets[t].size for t in self.per)
            graph = int(graph / built * held)
        dup = (held - n) * x.shape[1] * 4
        self.emit({"kind": "build", "system": "per-tenant-hnsw", "build_wall_s": wall, "bytes": graph + dup,
                   "graph_bytes": graph, "duplicated_vector_bytes": dup, "indexes": len(self.per),
                   "graph_bytes_estimated_from_built": estimated})

    def _collection(self, args: argparse.Namespace) -> Any:
        import vecdb

        db = vecdb.connect(":memory:")
        col = db.create_collection("mt", dim=self.x.shape[1], metric=METRIC, multi_tenant=True,
                                   index=vecdb.HNSW(m=args.m, ef_construction=args.ef_construction))
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, ts in enumerate(self.rt):
            groups.setdefault(tuple(sorted(ts)), []).append(i)

        def load() -> None:
            for ts, rows in groups.items():
                col.upsert(np.array(rows, np.int64), self.x[rows], tenants=list(ts))
            col.optimize()

        _, wall = timed(load)
        stats = col.stats()
        graph, tree = _index_bytes(col)
        self.emit({"kind": "build", "system": "collection-filter", "build_wall_s": wall,
                   "bytes": graph + self.column_bytes, "stats": stats})
        self.emit({"kind": "build", "system": "collection-tenant-index", "build_wall_s": wall,
                   "bytes": graph + tree + self.column_bytes, "graph_bytes": graph, "tenant_index_bytes": tree,
                   "tenants_column_bytes": self.column_bytes})
        return col

    def filtered(self, q: np.ndarray, t: str, ef: int) -> np.ndarray:
        """The collection with its tenant indexes switched off: the tenant is a filter (the old path)."""
        saved, tenant_search.routed = tenant_search.routed, lambda segment, tenant: False
        try:
            return self.col.search(q, k=K, tenant=t, params={"ef": ef}).ids
        finally:
            tenant_search.routed = saved

    def mask(self, t: str) -> np.ndarray:
        m = self.masks.get(t)
        if m is None:
            m = self.masks[t] = np.zeros(self.x.shape[0], bool)
            m[self.sets[t]] = True
        return m

    def runners(self, knobs: dict[str, list[int]]) -> dict[str, Callable[[np.ndarray, str], np.ndarray]]:
        """"system knob" -> search(q (1, d), tenant) -> offsets (1, K); knobs: system -> ef values."""
        out: dict[str, Callable[[np.ndarray, str], np.ndarray]] = {}
        n = self.x.shape[0]
        knobs = {name: (efs if _selected(name, self.args) else []) for name, efs in knobs.items()}
        for ef in knobs["tenant-index"]:
            out[f"tenant-index graph_ef={ef}"] = lambda q, t, ef=ef: self.tenant.search(q, K, t, {"graph_ef": ef})[0]
        for ef in knobs["shared-hnsw+filter"]:
            out[f"shared-hnsw+filter ef={ef}"] = lambda q, t, ef=ef: self.shared.search(
                q, K, {"ef": ef}, allowed=self.mask(t))[0]
        for ef in knobs["shared-hnsw+planner"]:
            def planned(q: np.ndarray, t: str, ef: int = ef) -> np.ndarray:
                plan = planner.choose(self.shared, n, int(self.sets[t].size), True, {"ef": ef})
                return planner.run(plan, self.shared, self.x, METRIC, q, K, {"ef": ef}, self.mask(t))[0]

            out[f"shared-hnsw+planner ef={ef}"] = planned
        for ef in knobs["per-tenant-hnsw"]:
            out[f"per-tenant-hnsw ef={ef}"] = lambda q, t, ef=ef: _mapped(
                self.per[t].search(q, K, {"ef": ef})[0], self.sets[t])
        if self.col is not None:
            for ef in knobs["collection"]:
                out[f"collection-filter ef={ef}"] = lambda q, t, ef=ef: self.filtered(q, t, ef)
            for ef in knobs["collection-tenant-index"]:
                out[f"collection-tenant-index ef={ef}"] = lambda q, t, ef=ef: self.col.search(
                    q, k=K, tenant=t, params={"ef": ef}).ids
        return out


def _selected(knob: str, args: argparse.Namespace) -> bool:
    return (knob.split("-tenant-index")[0] if knob.startswith("collection") else knob) in args.systems


def _index_bytes(col: Any) -> tuple[int, int]:
    """(vector index bytes, tenant index bytes) over the collection's segments."""
    segs = [v.segment for v in col.state().segments]
    return (sum(int(s.index.nbytes) for s in segs if s.index is not None),
            sum(int(s.tenant_index.nbytes) for s in segs if s.tenant_index is not None))


def _mapped(local: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.where(local >= 0, rows[np.maximum(local, 0)], -1)


def evaluate(sys_: Systems, tenants: list[str], queries: np.ndarray, per_tenant: int, knobs: dict[str, list[int]],
             seed: int) -> dict[str, dict[str, list[float]]]:
    """system -> {"lat": per-query seconds, "rec": per-query recall, "bucket": size bucket}."""
    rng = np.random.default_rng(seed)
    runners = sys_.runners(knobs)
    res: dict[str, dict[str, list[Any]]] = {name: {"lat": [], "rec": [], "bucket": []} for name in runners}
    for t in tenants:
        rows = sys_.sets[t]
        for qi in rng.choice(queries.shape[0], per_tenant, replace=False).tolist():
            q = queries[qi : qi + 1]
            truth = set(exact_topk(sys_.x, rows, q[0]).tolist())
            for name, fn in runners.items():
                c = time.process_time_ns()
                found = fn(q, t)
                lat = (time.process_time_ns() - c) / 1e9
                got = found[0][found[0] >= 0]
                if not np.isin(got, rows).all():
                    raise AssertionError(f"{name} returned rows outside tenant {t}")
                res[name]["lat"].append(lat)
                res[name]["rec"].append(len(truth & set(got.tolist())) / max(len(truth), 1))
                res[name]["bucket"].append(bucket(int(rows.size)))
    return res


def summarize(res: dict[str, dict[str, list[Any]]], assignment: str, emit: Callable[[dict], None]) -> list[dict]:
    rows = []
    for name, r in res.items():
        lat, rec, bk = np.array(r["lat"]), np.array(r["rec"]), np.array(r["bucket"])
        for b in ["all", *sorted(set(bk.tolist()))]:
            sel = np.ones(lat.size, bool) if b == "all" else bk == b
            rec_ = {"kind": "search", "assignment": assignment, "system": name.split(" ")[0],
                    "knob": name.split(" ", 1)[1], "bucket": b, "queries": int(sel.sum()),
                    "recall": float(rec[sel].mean()), "mean_ms": float(lat[sel].mean() * 1e3),
                    "p50_ms": float(np.percentile(lat[sel], 50) * 1e3),
                    "p99_ms": float(np.percentile(lat[sel], 99) * 1e3)}
            emit(rec_)
            rows.append(rec_)
    return rows


def markdown(records: list[dict], base: dict) -> str:
    lines = [f"# tenants: {base['dataset']} (n={base['n']}, d={base['d']}), commit {base['commit']}, "
             f"{base['cpu']}, {base['cores']} cores, load {base['load_avg']}", ""]
    for assignment in sorted({r["assignment"] for r in records if "assignment" in r}):
        lines += [f"## assignment: {assignment}", "", "| system | bytes | MiB | vs shared |", "|---|---|---|---|"]
        builds = [r for r in records if r["kind"] == "build" and r.get("assignment") == assignment]
        shared = next((r["bytes"] for r in builds if r["system"] in ("shared-hnsw+filter", "collection-filter")), 0)
        for r in builds:
            vs = f"{r['bytes'] / shared:.2f}x" if shared else "-"
            lines.append(f"| {r['system']} | {r['bytes']} | {r['bytes'] / 2**20:.2f} | {vs} |")
        lines += ["", "| system | knob | bucket (rows) | queries | recall@10 | mean ms | p50 ms | p99 ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in records:
            if r["kind"] == "search" and r["assignment"] == assignment:
                lines.append(f"| {r['system']} | {r['knob']} | {r['bucket']} | {r['queries']} | {r['recall']:.3f} | "
                             f"{r['mean_ms']:.3f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--limit", type=int, default=30000, help="subsample the rows (seeded); 0 = all")
    p.add_argument("--tenants", type=int, default=1000)
    p.add_argument("--shared", type=float, default=0.05)
    p.add_argument("--per-bucket", type=int, default=40, help="tenants sampled per size bucket below 4,097 rows")
    p.add_argument("--queries-per-tenant", type=int, default=5)
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    p.add_argument("--tenant-efs", type=ints, default=[32, 64, 128], help="tenant index: graph beam widths")
    p.add_argument("--hnsw-efs", type=ints, default=[32, 64, 128], help="per-tenant HNSW beam widths")
    p.add_argument("--shared-efs", type=ints, default=[64, 128, 256], help="shared HNSW (+filter/planner)")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=100)
    p.add_argument("--assignments", default="zipf,scope")
    p.add_argument("--systems", type=lambda s: s.split(","), default=list(SYSTEMS),
                   help=f"comma list of {','.join(SYSTEMS)} (collection = both engine paths)")
    p.add_argument("--collection-assignments", default="zipf",
                   help="assignments that also get the collection systems (each builds a collection)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--fast", action="store_true", help="per-tenant HNSW only for the evaluated tenants (memory "
                   "of the others estimated per row): for machines too loaded for 1,000s of builds")
    p.add_argument("--summarize", help="only rewrite the .md of this .jsonl (e.g. of a run cut short)")
    args = p.parse_args()
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}")
    if args.summarize:
        records = [json.loads(line) for line in Path(args.summarize).read_text().splitlines()]
        Path(args.summarize.replace(".jsonl", ".md")).write_text(markdown(records, records[0]) + "\n")
        return
    x, q, scope, names = load(args.dataset, args.limit or None, 1000)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = Path(args.dataset).stem + (f"-{args.limit}" if args.limit else "")
    out = Path(args.out) / f"tenants-{name}-{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    base = {"dataset": name, "n": int(x.shape[0]), "d": int(x.shape[1]), "metric": METRIC, **machine()}
    records: list[dict] = []
    assignment = ""

    def emit(rec: dict) -> None:
        rec = {**base, "assignment": assignment, **rec}
        records.append(rec)
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps({k: v for k, v in rec.items() if k not in base}), flush=True)

    warm = HNSWIndex.build(x[:500], METRIC, HNSW(m=args.m, ef_construction=args.ef_construction))
    warm.search(q[:1], K, {"ef": 16})
    TenantIndex.build(x[:500], METRIC, [["a"]] * 500, {"exact_threshold": 0, "graph_min_rows": 100,
                                                      "graph_budget_pct": 100}).search(q[:1], K, "a")
    shared, wall = None, 0.0
    if {"shared-hnsw+filter", "shared-hnsw+planner"} & set(args.systems):
        shared, wall = timed(lambda: HNSWIndex.build(x, METRIC, HNSW(m=args.m, ef_construction=args.ef_construction)))
    for assignment in args.assignments.split(","):
        rt = zipf_tenants(x.shape[0], args.tenants, args.shared, 1) if assignment == "zipf" else \
            scope_tenants(scope, names)
        sets = members(rt)
        emit({"kind": "assignment", "tenants": len(sets), "largest": int(max(r.size for r in sets.values())),
              "memberships": int(sum(r.size for r in sets.values())), "shared_hnsw_build_wall_s": wall})
        chosen = pick_tenants(sets, args.per_bucket, 2)
        collection = "collection" in args.systems and assignment in args.collection_assignments.split(",")
        systems = Systems(x, rt, sets, shared, args, emit, collection=collection,
                          only=chosen if args.fast else None)
        knobs = {"tenant-index": args.tenant_efs, "shared-hnsw+filter": args.shared_efs,
                 "shared-hnsw+planner": args.shared_efs, "per-tenant-hnsw": args.hnsw_efs,
                 "collection": args.shared_efs, "collection-tenant-index": args.hnsw_efs}
        res = evaluate(systems, chosen, q, args.queries_per_tenant, knobs, 3)
        summarize(res, assignment, emit)
    Path(str(out).replace(".jsonl", ".md")).write_text(markdown(records, base) + "\n")


if __name__ == "__main__":
    main()
