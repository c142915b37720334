"""The vecdb.filter examples in docs/filters.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "filters.md"


def test_filter_api_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    # The collection-level example needs the engine; the vecdb.filter ones must run standalone.
    own = [b for b in blocks if "from vecdb.filter import" in b]
    assert own, "docs/filters.md lost its vecdb.filter example"
    for block in own:
        exec(compile(block, str(DOC), "exec"), {})
