"""Drive the ann-benchmarks wrapper the way the harness does, from the config.yml in bench/README.md."""

from __future__ import annotations

import importlib
import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from vecdb.bench.datasets import Dataset, true_distances
from vecdb.bench.metrics import recall_per_query

README = Path(__file__).resolve().parents[2] / "bench" / "README.md"


def harness_config() -> list[dict[str, Any]]:
    """The algorithm definitions of the config.yml block in bench/README.md."""
    text = README.read_text()
    block = re.search(r"<!-- ann-benchmarks:config.yml -->\s*```yaml\n(.*?)```", text, re.S)
    assert block is not None, "bench/README.md lost its ann-benchmarks config.yml block"
    return yaml.safe_load(block[1])["float"]["any"]


def _product(groups: list[Any]) -> list[tuple[Any, ...]]:
    """The harness's expansion: each position is a list of alternatives (or one value)."""
    return list(itertools.product(*[g if isinstance(g, list) else [g] for g in groups]))


def _instances(definition: dict[str, Any], metric: str) -> list[tuple[Any, list[tuple[Any, ...]]]]:
    # The harness imports ann_benchmarks.algorithms.<name>, whose module.py re-exports our class.
    module = importlib.import_module("vecdb.bench.ann_benchmarks_module")
    constructor = getattr(module, definition["constructor"])
    base = [metric if a == "@metric" else a for a in definition["base_args"]]
    out = []
    for group in definition["run_groups"].values():
        for args in _product(group["args"]):
            out.append((constructor(*base, *args), _product(group.get("query_args", []))))
    return out


def test_config_block_parses_and_builds_every_run_group() -> None:
    definitions = harness_config()
    assert {d["name"] for d in definitions} == {"vecdb-hnsw", "vecdb-ivf"}
    for definition in definitions:
        assert definition["module"] == "ann_benchmarks.algorithms.vecdb"
        for algo, query_groups in _instances(definition, "euclidean"):
            assert query_groups and str(algo).startswith("vecdb(")


def test_harness_drive_reaches_recall(tiny: Dataset) -> None:
    ds = tiny.subset(limit_train=600, limit_queries=40)
    definition = next(d for d in harness_config() if d["name"] == "vecdb-hnsw")
    algo, query_groups = _instances(definition, "euclidean")[0]  # run group M-16: HNSW16
    before = algo.get_memory_usage()
    algo.fit(ds.train)
    assert algo.get_memory_usage() > 0 and before > 0
    try:
        for query_args in (query_groups[0], query_groups[-1]):
            algo.set_query_arguments(*query_args)
            assert str(query_args[0]) in str(algo)
            single = [algo.query(q, 10) for q in ds.test]
            algo.batch_query(ds.test, 10)
            batch = algo.get_batch_results()
            assert [list(a) for a in single] == [list(b) for b in batch]
            found = true_distances(ds.train, ds.test, np.array(single), ds.metric)
            recall = recall_per_query(ds.distances, found, 10).mean()
        assert recall >= 0.95  # at the largest ef of the config
        extra = algo.get_additional()
        assert extra["disk_bytes"] is None or extra["disk_bytes"] > 0
    finally:
        algo.done()


def test_flat_and_bad_arguments(tiny: Dataset) -> None:
    from vecdb.bench.ann_benchmarks_module import Vecdb

    with pytest.raises(ValueError, match="metrics"):
        Vecdb("hamming", "Flat")
    algo = Vecdb("angular", "Flat")
    ds = tiny.subset(limit_train=300, limit_queries=10).with_metric("angular")
    algo.fit(ds.train)
    try:
        with pytest.raises(ValueError, match="no query argument"):
            algo.set_query_arguments(32)
        ids = np.array([algo.query(q, 10) for q in ds.test])
        found = true_distances(ds.train, ds.test, ids, "angular")
        assert recall_per_query(ds.distances, found, 10).mean() == 1.0
    finally:
        algo.done()
