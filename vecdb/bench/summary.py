"""The summary table: QPS at recall >= 0.90 / 0.95 / 0.99 per system, and vecdb / best baseline."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vecdb.bench.metrics import qps_at_recall

THRESHOLDS = (0.90, 0.95, 0.99)
VECDB_SYSTEMS = ("vecdb", "vecdb-grpc")


def _fmt_qps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_mb(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def _group(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, int, str], list[dict[str, Any]]]:
    """Rows by (mode, threads, ``key``) in first-seen order: single and batch runs never mix."""
    out: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[(row.get("mode", "single"), int(row.get("threads", 1)), row[key])].append(row)
    return out


CLOCKS = ("wall", "cpu")


def select_clock(rows: list[dict[str, Any]], clock: str) -> list[dict[str, Any]]:
    """Rows whose ``qps`` is by the chosen clock: ``wall`` as measured, or ``cpu`` (process CPU time).

    The CPU clock keeps comparisons fair on a machine shared with other jobs; rows without a CPU
    figure (gRPC work happens in another process, or old files) are dropped for ``cpu``.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    if clock == "wall":
        return rows
    return [{**r, "qps": r["qps_cpu"], "clock": "cpu"} for r in rows if r.get("qps_cpu")]


def _provenance(row: dict[str, Any]) -> str:
    """Where and when: the line that makes a table checkable."""
    machine = row.get("machine") or {}
    simd = (machine.get("simd") or {}).get("simd_level", "?")
    commit = (machine.get("commit") or "?")[:12] + ("-dirty" if str(machine.get("commit")).endswith("dirty") else "")
    clock = "process CPU time" if row.get("clock") == "cpu" else "wall clock"
    return (f"measured {row.get('time', '?')} on {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
            f"SIMD {simd}), vecdb commit {commit}, best of {row.get('runs', 1)} run(s), QPS by {clock}")


def at_thresholds(rows: list[dict[str, Any]]) -> dict[float, float | None]:
    """Highest QPS at each recall threshold over ``rows``."""
    recall = [r["recall"] for r in rows]
    qps = [r["qps"] for r in rows]
    return {t: qps_at_recall(recall, qps, t) for t in THRESHOLDS}


def system_table(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, dict[float, float | None]]]:
    """{(mode, threads): {system: {threshold: best QPS over all that system's configurations}}}."""
    out: dict[tuple[str, int], dict[str, dict[float, float | None]]] = defaultdict(dict)
    for (mode, threads, system), group in _group(rows, "system").items():
        out[(mode, threads)][system] = at_thresholds(group)
    return out


def ratios(by_system: dict[str, dict[float, float | None]]) -> dict[float, float | None]:
    """vecdb's QPS / the best baseline's at each threshold (None when either never reaches it)."""
    vecdb = by_system.get("vecdb") or by_system.get("vecdb-grpc")
    out: dict[float, float | None] = {}
    for t in THRESHOLDS:
        base = [s[t] for name, s in by_system.items() if name not in VECDB_SYSTEMS and s[t] is not None]
        mine = vecdb[t] if vecdb else None
        out[t] = mine / max(base) if mine is not None and base else None
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """Two markdown tables per (mode, threads): per system with the ratio row, and per configuration."""
    if not rows:
        return "(no results)\n"
    first = rows[0]
    head = " | ".join(f"QPS@{t:.2f}" for t in THRESHOLDS)
    title = (f"dataset `{first['dataset']}` ({first['n_train']:,} x {first['dim']}, {first['metric']}), "
             f"{first['n_test']:,} queries, k={first['k']}")
    if first.get("filter"):
        title += f", filter `{first['filter']}` (selectivity {first['selectivity']:.4f})"
    lines = [title, "", _provenance(first), ""]
    per_config = _group(rows, "algorithm")
    for (mode, threads), by_system in system_table(rows).items():
        lines += [f"**{mode}-query, {threads} thread(s)**", "", f"| system | {head} |",
                  "|---|" + "---:|" * len(THRESHOLDS)]
        for system, qps in by_system.items():
            lines.append(f"| {system} | " + " | ".join(_fmt_qps(qps[t]) for t in THRESHOLDS) + " |")
        ratio = ratios(by_system)
        lines.append("| **vecdb / best baseline** | "
                     + " | ".join("-" if ratio[t] is None else f"**{ratio[t]:.2f}x**" for t in THRESHOLDS)
                     + " |")
        lines += ["", f"| configuration | {head} | max recall | build s | index MB |",
                  "|---|" + "---:|" * (len(THRESHOLDS) + 3)]
        for (m, th, label), group in per_config.items():
            if (m, th) != (mode, threads):
                continue
            qps = at_thresholds(group)
            lines.append(
                f"| {label} | " + " | ".join(_fmt_qps(qps[t]) for t in THRESHOLDS)
                + f" | {max(r['recall'] for r in group):.4f} | {group[0]['build_s']:.1f}"
                + f" | {_fmt_mb(group[0].get('index_bytes'))} |"
            )
        lines.append("")
    return "\n".join(lines)
