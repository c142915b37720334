"""``vecdb bench``: recall/QPS sweeps of vecdb beside faiss and hnswlib.

Also runnable as ``python -m vecdb.bench.cli``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from vecdb.bench.runner import MODES, BenchConfig, RunGroup, expand, read_rows, run_bench
from vecdb.bench.specs import parse_sweep, split_baseline, vecdb_fields

# Used when no --sweep is given: the knob each index family has, over its useful range.
DEFAULT_SWEEPS: dict[str, dict[str, list[Any]]] = {
    "HNSW": {"ef": [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]},
    "M": {"ef": [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]},
    "IVF": {"nprobe": [1, 2, 4, 8, 16, 32, 64, 128]},
    "SPANN": {"nprobe": [1, 2, 4, 8, 16, 32, 64, 128]},
}


def default_sweep(specs: list[str]) -> dict[str, list[Any]]:
    """The union of the default sweeps of the index families in ``specs``."""
    sweep: dict[str, list[Any]] = {}
    for spec in specs:
        for family, knobs in DEFAULT_SWEEPS.items():
            if spec.upper().startswith(family):
                sweep.update(knobs)
    return sweep


def build_config(dataset: str, indexes: tuple[str, ...], baselines: tuple[str, ...], sweep: tuple[str, ...],
                 build_arg: tuple[str, ...], grpc: str | None, **fields: Any) -> BenchConfig:
    """Flags -> BenchConfig: vecdb groups from --index (and --grpc), baselines from --baseline."""
    systems: list[tuple[str, str]] = [("vecdb", spec) for spec in indexes]
    if grpc is not None:
        systems += [("vecdb-grpc", spec) for spec in indexes]
    for text in baselines:
        system, specs = split_baseline(text)
        systems += [(system, s) for s in specs]
    if not systems:
        raise click.UsageError("nothing to run: give --index and/or --baseline")
    query = parse_sweep(sweep) if sweep else default_sweep([s for _, s in systems])
    build = expand(parse_sweep(build_arg)) if build_arg else [{}]
    groups = []
    for system, spec in systems:
        builds = build
        if system.startswith("vecdb"):
            # Checks the spec now (not after the dataset loaded) and keeps the args it takes, so one
            # --build-arg ef_construction=... serves "HNSW16" and "Flat" alike.
            accepted = vecdb_fields(spec)
            builds = [dict(t) for t in dict.fromkeys(
                tuple(sorted((k, v) for k, v in b.items() if k in accepted)) for b in build)]
        # Build args written for vecdb (ef_construction...) go to every HNSW-like index; faiss ignores
        # what it does not know, so one flag serves all systems.
        groups.append(RunGroup(system=system, spec=spec, build_args=builds, query_args=expand(query),
                               url=grpc if system == "vecdb-grpc" and grpc != "auto" else None))
    return BenchConfig(dataset=dataset, groups=groups, **fields)


def report(path: Path, rows: list[dict[str, Any]], clock: str = "wall") -> tuple[Path, Path]:
    """Write ``<stem>.md`` (summary tables) and ``<stem>.png`` (Pareto plot) beside the JSON lines.

    With ``clock="cpu"`` they are ``<stem>-cpu.md`` / ``.png``, QPS by process CPU time.
    """
    from vecdb.bench.plot import pareto_plot
    from vecdb.bench.summary import markdown, select_clock

    rows = select_clock(rows, clock)
    if not rows:
        raise click.ClickException(f"{path}: no rows with a {clock} QPS")
    stem = path.with_suffix("") if clock == "wall" else path.with_name(path.stem + "-cpu")
    table = markdown(rows)
    md = stem.with_suffix(".md")
    md.write_text(table)
    png = pareto_plot(rows, stem.with_suffix(".png"))
    click.echo(table)
    click.echo(f"results: {path}\ntable:   {md}\nplot:    {png}")
    return md, png


@click.command("bench")
@click.option("--dataset",
              help="ann-benchmarks .hdf5, .npy/.fvecs/.parquet base vectors, or random-xs-20-euclidean")
@click.option("--index", "indexes", multiple=True,
              help='vecdb index, e.g. "HNSW32", "HNSW32,SQ8", "IVF1024", "Flat"')
@click.option("--sweep", multiple=True, help="query arguments swept, e.g. ef=16,32,64 (repeatable)")
@click.option("--build-arg", multiple=True, help="build arguments, e.g. ef_construction=100,200 (repeatable)")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1),
              help="query threads (all libraries)")
@click.option("--build-threads", type=click.IntRange(1), help="threads while building (default: --threads)")
@click.option("--batch", is_flag=True,
              help="batch queries (one call, --threads threads) instead of one at a time")
@click.option("--mode", type=click.Choice([*MODES, "both"]), help="single, batch or both (overrides --batch)")
@click.option("--runs", default=1, show_default=True, type=click.IntRange(1), help="best of N timings")
@click.option("--baseline", "baselines", multiple=True, help="faiss:HNSW32,Flat | hnswlib:M32 (repeatable)")
@click.option("--grpc",
              help='also run vecdb over gRPC: a grpc://host:port URL, or "auto" to start a server')
@click.option("--filter", "filter_", help="filter on the dataset's attribute columns (train_* datasets)")
@click.option("--selectivity", type=float, help="filter a synthetic random column keeping this fraction")
@click.option("--metric",
              help="override the dataset metric: euclidean | angular | ip (ground truth recomputed)")
@click.option("--limit-train", type=click.IntRange(1), help="use the first N base vectors")
@click.option("--limit-queries", type=click.IntRange(1), help="use the first N queries")
@click.option("--data-dir", default=lambda: os.environ.get("VECDB_BENCH_DATA"),
              help="where bare file names are looked up (default $VECDB_BENCH_DATA)")
@click.option("--out", default="bench-results", show_default=True, type=click.Path(path_type=Path))
@click.option("--name", help="result file name part (default: the dataset)")
@click.option("--suite", type=click.Path(exists=True, path_type=Path), help="run bench/suites/NAME.yml")
@click.option("--report-only", "report_only", type=click.Path(exists=True, path_type=Path),
              help="re-draw the table and plot of an existing .jsonl")
@click.option("--clock", type=click.Choice(["wall", "cpu", "both"]), default="wall", show_default=True,
              help="QPS in the table/plot by wall clock, by process CPU time (fair on a loaded machine), or both")
@click.option("--quiet", is_flag=True, help="no progress bars")
def bench(dataset: str | None, indexes: tuple[str, ...], sweep: tuple[str, ...], build_arg: tuple[str, ...],
          k: int, threads: int, build_threads: int | None, batch: bool, mode: str | None, runs: int,
          baselines: tuple[str, ...], grpc: str | None, filter_: str | None, selectivity: float | None,
          metric: str | None, limit_train: int | None, limit_queries: int | None, data_dir: str | None,
          out: Path, name: str | None, suite: Path | None, report_only: Path | None, clock: str,
          quiet: bool) -> None:
    """Measure recall@k and QPS of vecdb and baselines; write JSON lines, a table and a Pareto plot."""
    clocks = ("wall", "cpu") if clock == "both" else (clock,)
    if report_only is not None:
        for c in clocks:
            report(report_only, read_rows(report_only), c)
        return
    modes = ("single", "batch") if mode == "both" else (mode,) if mode else ("batch" if batch else "single",)
    common: dict[str, Any] = {
        "k": k, "threads": threads, "build_threads": build_threads, "modes": modes, "runs": runs,
        "metric": metric, "limit_train": limit_train, "limit_queries": limit_queries, "filter": filter_,
        "selectivity": selectivity, "data_dir": data_dir, "out": out, "name": name, "progress": not quiet,
    }
    if suite is not None:
        _run_suite(suite, dataset, common, clocks)
        return
    if not dataset:
        raise click.UsageError("give --dataset (or --suite)")
    try:
        cfg = build_config(dataset, indexes, baselines, sweep, build_arg, grpc, **common)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    path, rows = run_bench(cfg)
    for c in clocks:
        report(path, rows, c)


def _run_suite(path: Path, dataset: str | None, common: dict[str, Any], clocks: tuple[str, ...]) -> None:
    from vecdb.bench.suites import load_suite, run_script, suite_configs

    suite = load_suite(path)
    if "script" in suite:
        code = run_script(suite, Path.cwd())
        if code:
            raise click.ClickException(f"{suite['script']} exited with {code}")
        return
    # Only flags the user changed from their defaults override the suite.
    defaults = {"k": 10, "threads": 1, "modes": ("single",), "runs": 1, "progress": True}
    overrides = {k: v for k, v in common.items() if k not in defaults or v != defaults[k]}
    if dataset:
        suite = {**suite, "dataset": dataset}
    for cfg in suite_configs(suite, **overrides):
        result_path, rows = run_bench(cfg)
        for c in clocks:
            report(result_path, rows, c)


if __name__ == "__main__":
    bench()
