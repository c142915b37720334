"""Suite files (bench/suites/*.yml): recall/QPS sweeps in the ann-benchmarks run_groups form, or a script.

A sweep suite::

    name: hnsw
    dataset: glove-50-euclidean.hdf5        # or a list; a path, a file in data_dir, or random-*
    k: 10
    threads: 1
    modes: [single]
    algorithms:
      vecdb:                                # system: vecdb | vecdb-grpc | faiss | hnswlib
        run_groups:
          M16:
            index: HNSW16
            args: {ef_construction: [200]}  # build arguments, lists expand to every combination
            query_args: {ef: [16, 32, 64]}  # query arguments, likewise (or a list of such dicts)

A script suite names a program another benchmark owns: ``script: bench/ingest.py`` and ``args: [...]``.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

from vecdb.bench.runner import BenchConfig, RunGroup, expand

_TOP_KEYS = {"name", "description", "dataset", "k", "threads", "build_threads", "modes", "runs", "metric",
             "limit_train", "limit_queries", "filter", "selectivity", "algorithms", "script", "args",
             "data_dir"}


def load_suite(path: str | Path) -> dict[str, Any]:
    """Parse and check a suite file; unknown keys are errors (a typo must not silently drop a sweep)."""
    import yaml

    path = Path(path)
    suite = yaml.safe_load(path.read_text())
    if not isinstance(suite, dict):
        raise ValueError(f"{path}: a suite is a mapping")
    unknown = set(suite) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    if ("script" in suite) == ("algorithms" in suite):
        raise ValueError(f"{path}: a suite has either 'algorithms' (a sweep) or 'script', "
                         "not both or neither")
    suite.setdefault("name", path.stem)
    return suite


def run_groups(algorithms: dict[str, Any]) -> list[RunGroup]:
    """``algorithms: {system: {run_groups: {name: {index, args, query_args, url}}}}`` -> RunGroups."""
    groups: list[RunGroup] = []
    for system, body in algorithms.items():
        for name, group in (body or {}).get("run_groups", {}).items():
            extra = set(group) - {"index", "args", "query_args", "url"}
            if extra or "index" not in group:
                raise ValueError(f"run group {system}/{name}: needs 'index', may have args, query_args, url; "
                                 f"unknown {sorted(extra)}")
            groups.append(RunGroup(system=system, spec=str(group["index"]),
                                   build_args=expand(group.get("args")),
                                   query_args=expand(group.get("query_args")), url=group.get("url")))
    return groups


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def suite_configs(suite: dict[str, Any], **overrides: Any) -> list[BenchConfig]:
    """One BenchConfig per dataset (x selectivity) of a sweep suite; ``overrides`` (given flags) win."""
    groups = run_groups(suite["algorithms"])
    configs = []
    for ds, sel in itertools.product(_as_list(suite["dataset"]), _as_list(suite.get("selectivity"))):
        name = f"{suite['name']}-{Path(str(ds)).stem}" + (f"-sel{sel:g}" if sel is not None else "")
        fields: dict[str, Any] = {
            "dataset": str(ds), "groups": groups, "name": name, "selectivity": sel,
            **{k: suite[k] for k in ("k", "threads", "build_threads", "runs", "metric", "limit_train",
                                     "limit_queries", "filter", "data_dir") if k in suite},
        }
        if "modes" in suite:
            fields["modes"] = tuple(suite["modes"])
        fields.update({k: v for k, v in overrides.items() if v is not None})
        configs.append(BenchConfig(**fields))
    return configs


def run_script(suite: dict[str, Any], root: Path) -> int:
    """Run a script suite's program with its args; returns its exit code."""
    script = root / suite["script"]
    if not script.exists():
        raise FileNotFoundError(f"suite {suite['name']!r} runs {script}, which does not exist yet")
    cmd = [sys.executable, str(script), *[str(a) for a in suite.get("args") or []]]
    return subprocess.run(cmd, cwd=root, check=False).returncode
