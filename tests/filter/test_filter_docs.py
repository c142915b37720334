"""The vecdb.filter examples in docs/filters.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "filters.md"


def test_filter_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert any("from vecdb.filter import" in b for b in blocks), "docs/filters.md lost its API example"
    assert any("vecdb.connect" in b for b in blocks), "docs/filters.md lost its collection example"
    for block in blocks:  # each block asserts its own results
        exec(compile(block, str(DOC), "exec"), {})
