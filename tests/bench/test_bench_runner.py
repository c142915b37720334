"""CI smoke run: a tiny dataset through fit, sweep, JSON lines, plot and summary, in seconds.

Recall floors only; a speed is never asserted (CI machines are shared and noisy).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vecdb.bench.datasets import Dataset, write_hdf5
from vecdb.bench.plot import pareto_plot
from vecdb.bench.runner import BenchConfig, RunGroup, expand, read_rows, run_bench
from vecdb.bench.summary import markdown, system_table

SWEEP = expand({"ef": [8, 64]})
# hnswlib is an optional extra (vecdb[bench]); CI installs only vecdb[test].
HAS_HNSWLIB = importlib.util.find_spec("hnswlib") is not None


@pytest.fixture()
def tiny_file(tmp_path: Path, tiny: Dataset) -> str:
    return str(write_hdf5(tiny, tmp_path / "tiny.hdf5"))


def test_smoke_pipeline(tmp_path: Path, tiny_file: str) -> None:
    groups = [
        RunGroup("vecdb", "Flat"),
        RunGroup("faiss", "HNSW8", build_args=[{"ef_construction": 40}], query_args=SWEEP),
        RunGroup("faiss", "Flat", query_args=SWEEP),  # ef does not apply: must run once
    ] + ([RunGroup("hnswlib", "M8", query_args=SWEEP)] if HAS_HNSWLIB else [])
    cfg = BenchConfig(dataset=tiny_file, groups=groups, k=10, modes=("single", "batch"),
                      limit_queries=100, out=tmp_path / "out", progress=False)
    path, rows = run_bench(cfg)
    assert path.name.startswith("bench-tiny-") and path.suffix == ".jsonl"
    assert read_rows(path) == json.loads(json.dumps(rows))
    assert len(rows) == 2 * (1 + 2 + 1 + (2 if HAS_HNSWLIB else 0))
    by = {(r["algorithm"], json.dumps(r["query_args"]), r["mode"]): r for r in rows}
    for mode in ("single", "batch"):
        assert by[("vecdb(Flat)", "{}", mode)]["recall"] == 1.0  # exact search is exact
        assert by[("faiss(Flat)", "{}", mode)]["recall"] == 1.0
        assert by[("faiss(HNSW8,ef_construction=40)", '{"ef": 64}', mode)]["recall"] >= 0.9
        if HAS_HNSWLIB:
            assert by[("hnswlib(M8)", '{"ef": 64}', mode)]["recall"] >= 0.9
    row = rows[0]
    for key in ("qps", "qps_cpu", "cpu_seconds", "p50_ms", "p95_ms", "p99_ms", "build_s", "index_bytes",
                "n_train", "machine"):
        assert key in row
    assert row["machine"]["versions"]["numpy"] and row["pinned"]["threads"] == 1
    assert row["n_test"] == 100 and row["dim"] == 16
    png = pareto_plot(rows, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = system_table(rows)
    assert set(table[("single", 1)]) == {"vecdb", "faiss"} | ({"hnswlib"} if HAS_HNSWLIB else set())
    assert table[("single", 1)]["vecdb"][0.99] is not None
    assert "vecdb / best baseline" in markdown(rows)


def test_filtered_run_respects_the_filter(tmp_path: Path, tiny_file: str) -> None:
    groups = [RunGroup("vecdb", "Flat"), RunGroup("faiss", "Flat"), RunGroup("faiss", "HNSW8", query_args=SWEEP)]
    if HAS_HNSWLIB:
        groups.append(RunGroup("hnswlib", "M8", query_args=SWEEP))
    cfg = BenchConfig(dataset=tiny_file, groups=groups, selectivity=0.2, limit_queries=50,
                      out=tmp_path, progress=False)
    _, rows = run_bench(cfg)
    assert all(r["filter"] == "bench_bucket < 200000" for r in rows)
    assert 0.15 < rows[0]["selectivity"] < 0.25
    assert all(r["filter_violations"] == 0 for r in rows)
    exact = [r for r in rows if r["algorithm"] in ("vecdb(Flat)", "faiss(Flat)")]
    assert [r["recall"] for r in exact] == [1.0, 1.0]


def test_unknown_query_argument_is_an_error(tiny: Dataset, tmp_path: Path) -> None:
    from vecdb.bench.algorithms import make_algorithm

    algo = make_algorithm("faiss", "HNSW8", "l2")
    algo.fit(tiny.train[:200])
    with pytest.raises(ValueError, match="nprobe"):
        algo.set_query_arguments(nprobe=4)
    with pytest.raises(ValueError, match="unknown system"):
        make_algorithm("annoy", "x", "l2")


def test_vecdb_over_grpc_matches_embedded(tiny: Dataset) -> None:
    from vecdb.bench.algorithms import make_algorithm

    ds = tiny.subset(limit_train=400, limit_queries=20)
    answers = []
    for system in ("vecdb", "vecdb-grpc"):
        algo = make_algorithm(system, "Flat", "l2")
        try:
            algo.prepare()
            algo.fit(ds.train)
            answers.append(algo.batch_query(ds.test, 10))
            assert algo.query(ds.test[0], 10).tolist() == answers[-1][0].tolist()
            assert algo.disk_bytes() > 0
        finally:
            algo.close()
    assert answers[0].tolist() == answers[1].tolist()
    assert answers[0].tolist() == ds.neighbors[:, :10].tolist()
