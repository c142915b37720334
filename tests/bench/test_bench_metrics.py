"""Recall by the ann-benchmarks rule, latency percentiles, Pareto frontiers and the summary table."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.bench.metrics import latency_stats, pareto_frontier, qps_at_recall, recall_per_query
from vecdb.bench.summary import markdown, ratios, select_clock, system_table


def test_recall_counts_ties_within_epsilon() -> None:
    true = np.array([[1.0, 2.0, 3.0]])
    # 3.0009 is within 1e-3 of the 3rd true distance: a tie, counted; 3.002 is not.
    assert recall_per_query(true, np.array([[1.0, 2.0, 3.0009]]), 3)[0] == 1.0
    assert recall_per_query(true, np.array([[1.0, 2.0, 3.002]]), 3)[0] == pytest.approx(2 / 3)
    assert recall_per_query(true, np.array([[1.0, np.inf, np.inf]]), 3)[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="need k=4"):
        recall_per_query(true, true, 4)


def test_latency_percentiles_in_ms() -> None:
    stats = latency_stats(np.arange(1, 101) / 1000.0)
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5)


def test_pareto_frontier_drops_dominated_points() -> None:
    recall = [0.5, 0.9, 0.8, 0.99, 0.95]
    qps = [1000, 500, 400, 100, 600]
    front = pareto_frontier(recall, qps)
    assert front == [0, 4, 3]  # 0.9@500 and 0.8@400 are beaten by 0.95@600
    assert qps_at_recall(recall, qps, 0.9) == 600
    assert qps_at_recall(recall, qps, 0.999) is None


def _row(system: str, algo: str, recall: float, qps: float) -> dict:
    return {"system": system, "algorithm": algo, "recall": recall, "qps": qps, "mode": "single", "threads": 1,
            "dataset": "d", "n_train": 10, "dim": 2, "metric": "euclidean", "n_test": 5, "k": 10,
            "build_s": 1.0, "index_bytes": 2**20}


def test_summary_ratio_is_vecdb_over_best_baseline() -> None:
    rows = [_row("vecdb", "vecdb(HNSW16)", 0.96, 3000), _row("vecdb", "vecdb(HNSW16)", 0.995, 1000),
            _row("faiss", "faiss(HNSW16)", 0.97, 2000), _row("hnswlib", "hnswlib(M16)", 0.95, 2500),
            _row("faiss", "faiss(Flat)", 1.0, 100)]
    table = system_table(rows)[("single", 1)]
    assert table["hnswlib"][0.95] == 2500 and table["faiss"][0.99] == 100
    r = ratios(table)
    assert r[0.95] == pytest.approx(3000 / 2500)
    assert r[0.99] == pytest.approx(1000 / 100)
    text = markdown(rows)
    assert "**1.20x**" in text and "| faiss(Flat) |" in text


def test_select_clock_swaps_in_cpu_qps() -> None:
    rows = [{**_row("vecdb", "v", 0.99, 100), "qps_cpu": 400}, {**_row("vecdb-grpc", "g", 0.99, 50), "qps_cpu": None}]
    cpu = select_clock(rows, "cpu")
    assert [(r["algorithm"], r["qps"]) for r in cpu] == [("v", 400)]
    assert select_clock(rows, "wall") is rows
    assert "process CPU time" in markdown(cpu)
    with pytest.raises(ValueError, match="clock"):
        select_clock(rows, "tsc")
