"""Recall/QPS Pareto plot: logit recall on x, log QPS on y, one frontier line per system."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.bench.metrics import pareto_frontier

# Recall 1.0 has no place on a logit axis: draw it just inside the right edge.
_RECALL_CAP = 0.9995
_COLORS = {"vecdb": "tab:red", "vecdb-grpc": "tab:purple", "faiss": "tab:blue", "hnswlib": "tab:green"}
_MARKERS = "osD^vP*Xh<>"
_TICKS = [0.01, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]


def _clip(recall: np.ndarray) -> np.ndarray:
    return np.clip(recall, 1e-3, _RECALL_CAP)


def pareto_plot(rows: list[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Write a PNG with each configuration's points and each system's frontier (per mode/threads)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    path = Path(path)
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    by_system: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        suffix = "" if row.get("mode", "single") == "single" else f" [{row['mode']} x{row.get('threads', 1)}]"
        by_system[row["system"] + suffix].append(row)
    marker_of: dict[str, str] = {}
    for s_idx, (system, group) in enumerate(by_system.items()):
        color = _COLORS.get(system.split(" ")[0], f"C{s_idx}")
        recall = np.array([r["recall"] for r in group])
        qps = np.array([r["qps"] for r in group])
        front = pareto_frontier(recall, qps)
        ax.plot(_clip(recall[front]), qps[front], "-", color=color, lw=2, alpha=0.9,
                label=f"{system} (frontier)", zorder=2)
        for label in dict.fromkeys(r["algorithm"] for r in group):
            marker = marker_of.setdefault(label, _MARKERS[len(marker_of) % len(_MARKERS)])
            pts = [r for r in group if r["algorithm"] == label]
            ax.scatter(_clip(np.array([r["recall"] for r in pts])), [r["qps"] for r in pts], s=28,
                       marker=marker, color=color, alpha=0.75, label=label, zorder=3)
    ax.set_xscale("logit")
    ax.set_yscale("log")
    all_recall = _clip(np.array([r["recall"] for r in rows]))
    left = max(1e-3, min(all_recall.min() * 0.9, 0.5))
    ax.set_xlim(left, _RECALL_CAP + 0.0003)
    # Plain recall values read better than matplotlib's "1 - 10^-2" logit labels.
    ticks = [t for t in _TICKS if t >= left]
    ax.set_xticks([*ticks, _RECALL_CAP], [f"{t:g}" for t in ticks] + ["1.0"])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"recall@{rows[0]['k']} (logit scale; 1.0 drawn at {_RECALL_CAP})")
    clock = " by process CPU time" if rows[0].get("clock") == "cpu" else ""
    ax.set_ylabel(f"queries per second{clock} (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    first = rows[0]
    ax.set_title(title or f"{first['dataset']} ({first['n_train']:,} x {first['dim']}, {first['metric']}), "
                 f"k={first['k']}, {first.get('threads', 1)} thread(s)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
