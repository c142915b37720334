"""`vecdb bench` flags and suites, through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vecdb.bench.cli import bench, build_config, default_sweep
from vecdb.bench.suites import load_suite, suite_configs

SUITES = Path(__file__).resolve().parents[2] / "bench" / "suites"


def test_cli_run_writes_json_table_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = CliRunner().invoke(bench, [
        "--dataset", "random-1500x8-euclidean", "--index", "Flat", "--baseline", "faiss:HNSW8,Flat",
        "--sweep", "ef=8,48", "--k", "5", "--limit-queries", "40", "--out", str(out), "--quiet",
        "--name", "cli", "--clock", "both",
    ])
    assert result.exit_code == 0, result.output
    jsonl = next(out.glob("bench-cli-*.jsonl"))
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["algorithm"] for r in rows] == ["vecdb(Flat)", "faiss(HNSW8)", "faiss(HNSW8)", "faiss(Flat)"]
    assert all(r["k"] == 5 and r["n_test"] == 40 for r in rows)
    assert jsonl.with_suffix(".png").exists() and "QPS@0.95" in jsonl.with_suffix(".md").read_text()
    assert "QPS by process CPU time" in (out / (jsonl.stem + "-cpu.md")).read_text()
    assert (out / (jsonl.stem + "-cpu.png")).exists()
    again = CliRunner().invoke(bench, ["--report-only", str(jsonl)])
    assert again.exit_code == 0 and "vecdb / best baseline" in again.output


def test_cli_usage_errors() -> None:
    runner = CliRunner()
    assert "--dataset" in runner.invoke(bench, ["--index", "Flat"]).output
    bad = runner.invoke(bench, ["--dataset", "random-xs-20-euclidean", "--index", "HNSWx"])
    assert bad.exit_code != 0 and "bad vecdb index" in bad.output
    none = runner.invoke(bench, ["--dataset", "random-xs-20-euclidean"])
    assert none.exit_code != 0 and "nothing to run" in none.output


def test_flags_to_config() -> None:
    cfg = build_config("d.hdf5", ("HNSW16",), ("faiss:HNSW16,Flat", "hnswlib:M16"), (), (), None,
                       threads=2, modes=("batch",))
    assert [(g.system, g.spec) for g in cfg.groups] == [
        ("vecdb", "HNSW16"), ("faiss", "HNSW16"), ("faiss", "Flat"), ("hnswlib", "M16")]
    assert cfg.groups[0].query_args[0] == {"ef": 10} and cfg.threads == 2
    assert default_sweep(["IVF1024"]) == {"nprobe": [1, 2, 4, 8, 16, 32, 64, 128]}
    grpc = build_config("d", ("Flat",), (), ("ef=8",), ("ef_construction=40,80",), "grpc://h:1")
    assert [g.system for g in grpc.groups] == ["vecdb", "vecdb-grpc"]
    assert grpc.groups[1].url == "grpc://h:1" and grpc.groups[0].build_args == [{}]  # Flat has no efC
    hnsw = build_config("d", ("HNSW8",), (), (), ("ef_construction=40,80",), None)
    assert hnsw.groups[0].build_args == [{"ef_construction": 40}, {"ef_construction": 80}]


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.yml")), ids=lambda p: p.stem)
def test_committed_suites_are_valid(path: Path) -> None:
    suite = load_suite(path)
    if "script" in suite:
        assert suite["script"].startswith("bench/") and suite["script"].endswith(".py")
        assert (SUITES.parents[1] / suite["script"]).exists(), f"{path.name} names a missing script"
        return
    configs = suite_configs(suite, out=Path("x"))
    assert configs and all(c.groups for c in configs)
    for cfg in configs:
        for group in cfg.groups:
            if group.system.startswith("vecdb"):
                from vecdb.bench.specs import parse_vecdb_spec

                for args in group.build_args:
                    parse_vecdb_spec(group.spec, args)


def test_suite_errors_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("dataset: random-xs-20-euclidean\nalgoritms: {}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_suite(path)
    path.write_text("dataset: [a, b]\nselectivity: [0.1, 0.01]\nk: 5\nalgorithms:\n"
                    "  faiss: {run_groups: {x: {index: Flat}}}\n")
    configs = suite_configs(load_suite(path), k=20)
    assert [(c.dataset, c.selectivity, c.k) for c in configs] == [
        ("a", 0.1, 20), ("a", 0.01, 20), ("b", 0.1, 20), ("b", 0.01, 20)]
