"""The README's quickstart runs as written (against a real `vecdb serve`, and embedded)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.server import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"
URI = "grpc://127.0.0.1:50051"


def quickstart() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python quickstart"
    assert URI in blocks[0]
    return blocks[0]


def test_quickstart_against_a_server(tmp_path, capsys):
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        exec(compile(quickstart().replace(URI, server.uri), "README.md", "exec"), {})
    finally:
        server.stop()
    assert "distance" in capsys.readouterr().out


def test_quickstart_embedded(tmp_path, capsys):
    code = quickstart().replace(f'vecdb.connect("{URI}")', f'vecdb.connect({str(tmp_path / "data")!r})')
    exec(compile(code, "README.md", "exec"), {})
    assert "distance" in capsys.readouterr().out
