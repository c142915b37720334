"""A short run of bench/load.py: a few loopback clients for a few seconds, every check at zero.

The report's run is ``python -m bench.load --clients 16 --seconds 300`` (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.load import drive
from tests.support.server import ServerProcess


def test_short_load_has_no_violations(tmp_path: Path) -> None:
    """3 clients x 4 s with an optimize in the middle: no violations, no unexpected errors."""
    args = argparse.Namespace(clients=int(os.environ.get("VECDB_LOAD_CLIENTS", "3")),
                              seconds=float(os.environ.get("VECDB_LOAD_SECONDS", "4")), max_ops=400,
                              preload=500, optimize_every=1.5, rss_mb=2048.0)
    server = ServerProcess(tmp_path / "data", "--workers", "8")
    server.start()
    try:
        summary = drive(server, args)
    finally:
        server.stop()
    assert summary["violations"] == []
    assert summary["unexpected_errors"] == 0, summary["errors"]
    assert summary["ops"] > 0 and summary["optimizes"] >= 1
    assert summary["rss_ok"], summary["rss_mb_max"]
    assert summary["recall_at_10_sampled"] is None or summary["recall_at_10_sampled"] >= 0.8
