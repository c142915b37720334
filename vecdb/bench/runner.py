"""Build each configuration once, sweep its query arguments, measure, and write one JSON line per run."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.bench import filters
from vecdb.bench.algorithms import Algorithm, make_algorithm
from vecdb.bench.datasets import Dataset, load_dataset, true_distances
from vecdb.bench.environment import blas_threads, machine_info
from vecdb.bench.metrics import latency_stats, recall_per_query
from vecdb.bench.threads import pinned_threads

MODES = ("single", "batch")


@dataclass
class RunGroup:
    """One system + index spec, built once per ``build_args`` combination, queried per ``query_args``."""

    system: str
    spec: str
    build_args: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    query_args: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    url: str | None = None


@dataclass
class BenchConfig:
    """Everything one invocation measures (from CLI flags or a suite YAML)."""

    dataset: str
    groups: list[RunGroup]
    k: int = 10
    threads: int = 1
    build_threads: int | None = None  # None: the same as threads
    modes: tuple[str, ...] = ("single",)
    runs: int = 1
    metric: str | None = None
    limit_train: int | None = None
    limit_queries: int | None = None
    filter: str | None = None
    selectivity: float | None = None
    data_dir: str | None = None
    out: Path = Path("bench/results")
    name: str | None = None
    progress: bool = True


def expand(args: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """ann-benchmarks-style argument groups: {a: [1, 2], b: 3} -> [{a: 1, b: 3}, {a: 2, b: 3}]."""
    if not args:
        return [{}]
    if isinstance(args, list):
        return [combo for item in args for combo in expand(item)]
    keys = list(args)
    values = [v if isinstance(v, list) else [v] for v in args.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def prepare_dataset(cfg: BenchConfig) -> tuple[Dataset, str | None, np.ndarray | None]:
    """Load, cut and (for filtered runs) re-ground the dataset; returns (dataset, filter, mask)."""
    ds = load_dataset(cfg.dataset, metric=cfg.metric, data_dir=cfg.data_dir)
    ds = ds.subset(cfg.limit_train, cfg.limit_queries)
    if cfg.filter and cfg.selectivity is not None:
        raise ValueError("give --filter or --selectivity, not both")
    expr = cfg.filter
    if cfg.selectivity is not None:
        ds, expr = filters.add_selectivity_column(ds, cfg.selectivity)
    if expr is None:
        return ds, None, None
    mask = filters.filter_mask(expr, ds.attributes, len(ds.train))
    return filters.filtered_ground_truth(ds, mask), expr, mask


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _relevant(algo: Algorithm, query_args: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop arguments the adapter does not take, then duplicates (a Flat baseline runs once)."""
    seen: list[dict[str, Any]] = []
    for args in query_args:
        kept = {k: v for k, v in args.items() if k in algo.query_params}
        if kept not in seen:
            seen.append(kept)
    return seen


@dataclass
class _Timing:
    ids: np.ndarray  # (q, k) int64
    wall_s: float  # sum of per-call wall times
    cpu_s: float  # CPU time of this process over the same calls
    latencies: list[float]  # per call, wall seconds


def _time_queries(algo: Algorithm, queries: np.ndarray, k: int, mode: str, progress: bool) -> _Timing:
    """One call per query (single) or one batch call, timed by the wall clock and by process CPU time.

    CPU time is what a query costs when other jobs share the cores (it excludes time spent waiting for
    a core), so it stays comparable on a loaded machine; it misses work done in other processes.
    """
    if mode == "batch":
        cpu0, start = time.process_time(), time.perf_counter()
        ids = algo.batch_query(queries, k)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu0
        return _Timing(ids, total, cpu, [total])
    from tqdm import tqdm

    ids = np.empty((len(queries), k), dtype=np.int64)
    lat: list[float] = []
    cpu = 0.0
    bar = tqdm(range(len(queries)), desc=f"  {algo.label}", leave=False, mininterval=0.5,
               disable=None if progress else True)  # None: auto, off when not on a terminal
    for i in bar:
        cpu0, start = time.process_time(), time.perf_counter()
        found = algo.query(queries[i], k)
        lat.append(time.perf_counter() - start)
        cpu += time.process_time() - cpu0
        ids[i] = found[:k] if len(found) >= k else np.pad(found, (0, k - len(found)), constant_values=-1)
    return _Timing(ids, float(sum(lat)), cpu, lat)


def measure(algo: Algorithm, ds: Dataset, k: int, mode: str, runs: int, progress: bool,
            mask: np.ndarray | None) -> dict[str, Any]:
    """Best-of-``runs`` timing (as ann-benchmarks) with recall of the fastest run's answers."""
    warm = ds.test[: min(10, len(ds.test))]
    for q in warm:  # first calls pay JIT compilation and cold caches
        algo.query(q, k)
    timings = [_time_queries(algo, ds.test, k, mode, progress) for _ in range(max(1, runs))]
    best = min(timings, key=lambda t: t.wall_s)
    ids, total, lat = best.ids, best.wall_s, best.latencies
    cpu = min(t.cpu_s for t in timings)
    found = true_distances(ds.train, ds.test, ids, ds.metric)
    recall = recall_per_query(ds.distances, found, k)
    n = len(ds.test)
    row: dict[str, Any] = {
        "recall": float(recall.mean()),
        "recall_min": float(recall.min()),
        "qps": n / total if total > 0 else float("inf"),
        "qps_cpu": n / cpu if cpu > 0 else None,  # None: below the CPU clock's resolution
        "query_seconds": total,
        "cpu_seconds": cpu,
        **latency_stats(lat if mode == "single" else [total / n]),
    }
    if mask is not None:
        returned = ids[ids >= 0]
        row["filter_violations"] = int((~mask[returned]).sum())
    return row


def _build(algo: Algorithm, ds: Dataset, filtered: bool) -> dict[str, Any]:
    algo.prepare()
    rss0 = _rss()
    start = time.perf_counter()
    # Attributes only for filtered runs: the baselines store none, so unfiltered builds compare alike.
    algo.fit(ds.train, ds.attributes if filtered else None)
    build_s = time.perf_counter() - start
    rss_delta = _rss() - rss0
    reported = algo.memory_bytes()
    return {
        "build_s": build_s,
        "index_bytes": reported if reported is not None else max(rss_delta, 0),
        "index_bytes_source": "adapter" if reported is not None else "rss",
        "rss_delta_bytes": rss_delta,
        "disk_bytes": algo.disk_bytes(),
        "build_params": algo.build_params(),
    }


def iter_runs(cfg: BenchConfig) -> Iterator[dict[str, Any]]:
    """Yield one result row per (configuration, build args, query args, mode)."""
    for mode in cfg.modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: expected single or batch")
    ds, expr, mask = prepare_dataset(cfg)
    base = {
        "dataset": ds.name, "metric": ds.metric, "n_train": len(ds.train), "n_test": len(ds.test),
        "dim": ds.dim, "k": cfg.k, "threads": cfg.threads, "filter": expr, "selectivity":
        None if mask is None else float(mask.mean()), "runs": cfg.runs,
    }
    machine = machine_info()
    for group in cfg.groups:
        for build_args in group.build_args:
            build_threads = cfg.build_threads or cfg.threads
            algo = make_algorithm(group.system, group.spec, ds.vecdb_metric, build_args, build_threads,
                                  url=group.url)
            try:
                with pinned_threads(build_threads):
                    build = {**_build(algo, ds, expr is not None), "build_threads": build_threads}
                algo.threads = cfg.threads
                with pinned_threads(cfg.threads) as pinned:
                    algo.set_filter(expr, mask)
                    for query_args in _relevant(algo, group.query_args):
                        algo.set_query_arguments(**query_args)
                        for mode in cfg.modes:
                            result = measure(algo, ds, cfg.k, mode, cfg.runs, cfg.progress, mask)
                            yield {
                                **base, "system": algo.system, "algorithm": algo.label, "index": group.spec,
                                "build_args": build_args, "query_args": query_args, "mode": mode,
                                **result, **build, "pinned": pinned, "blas": blas_threads(),
                                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "machine": machine,
                            }
            finally:
                algo.close()


def output_stem(cfg: BenchConfig, dataset_name: str) -> str:
    """``bench-<name or dataset>-<UTC timestamp>``: never overwrites an earlier result."""
    slug = (cfg.name or dataset_name).replace("/", "_").replace("[", "").replace("]", "").replace(":", "_")
    return f"bench-{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def run_bench(cfg: BenchConfig) -> tuple[Path, list[dict[str, Any]]]:
    """Run ``cfg``, appending each row to ``<out>/bench-*.jsonl`` as soon as it is measured."""
    from tqdm import tqdm

    cfg.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    path: Path | None = None
    with tqdm(desc="runs", unit="run", disable=None if cfg.progress else True) as bar:
        for row in iter_runs(cfg):
            if path is None:
                path = cfg.out / (output_stem(cfg, row["dataset"]) + ".jsonl")
            with path.open("a") as f:  # one line at a time, so an interrupted sweep keeps its rows
                f.write(json.dumps(row, default=_json_default) + "\n")
            rows.append(row)
            bar.set_postfix_str(f"{row['algorithm']} {row['query_args']} recall={row['recall']:.3f} "
                                f"qps={row['qps']:.0f}")
            bar.update()
    if path is None:
        raise ValueError("nothing to run: no configurations")
    return path, rows


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines result file."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]
