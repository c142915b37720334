"""Whitebox crash injection for the crash suite (tests/reliability/test_crash_points.py).

``VECDB_CRASH_AT=<name>`` makes the process die (``os._exit(137)``, no cleanup, no flush: as close to
SIGKILL as Python gets) the ``VECDB_CRASH_SKIP + 1``-th time execution reaches ``crash_point(name)``.
Unset, a crash point costs one dictionary lookup. Names in use: ``wal_append`` (before a WAL frame is
written), ``before_fsync`` (frame written, not yet fsynced), ``segment_rename`` (before a segment file
is written and renamed into place), ``manifest_write`` (segment durable, manifest not yet updated),
``compaction_commit`` (merged segment durable, manifest still names the victims) and ``index_swap``
(index file written, not yet attached).
"""

from __future__ import annotations

import os
import threading

_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill the process here if ``VECDB_CRASH_AT`` names this point and its skip count is used up."""
    if os.environ.get("VECDB_CRASH_AT") != name:
        return
    with _lock:
        seen = _hits.get(name, 0)
        _hits[name] = seen + 1
    if seen >= int(os.environ.get("VECDB_CRASH_SKIP", "0")):
        os._exit(137)
