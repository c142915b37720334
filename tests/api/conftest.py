"""The ``client`` fixture: every API conformance test runs embedded and over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import vecdb

TRANSPORTS = ["embedded", "grpc"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def connect(transport: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A function that (re)opens the same database through the transport under test."""
    opened: list[Any] = []
    if transport == "embedded":

        def open_db() -> Any:
            for db in opened:
                db.close()
            opened.clear()
            db = vecdb.connect(tmp_path / "data")
            opened.append(db)
            return db

        yield open_db
        for db in opened:
            db.close()
        return

    from tests.support.server import ServerProcess

    server = ServerProcess(tmp_path / "data")

    def open_remote() -> Any:
        for db in opened:
            db.close()
        opened.clear()
        server.restart()
        db = vecdb.connect(server.uri)
        opened.append(db)
        return db

    yield open_remote
    for db in opened:
        db.close()
    server.stop()


@pytest.fixture
def client(connect: Any) -> Any:
    return connect()
