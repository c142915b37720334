"""The ``client`` fixture: every API conformance test runs embedded and over gRPC.

Over gRPC, one ``vecdb serve`` process serves the whole session (each test drops what it created);
tests that restart the database get a server of their own through the ``connect`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import vecdb
from tests.support.server import ServerProcess

TRANSPORTS = ["embedded", "grpc"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("grpc-shared") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(transport: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh, empty database through the transport under test."""
    if transport == "embedded":
        db = vecdb.connect(tmp_path / "data")
        yield db
        db.close()
        return
    server = request.getfixturevalue("shared_server")
    db = vecdb.connect(server.uri)
    for name in db.list_collections():
        db.drop_collection(name)
    yield db
    for name in db.list_collections():
        db.drop_collection(name)
    db.close()


@pytest.fixture
def connect(transport: str, tmp_path) -> Iterator[Callable[[], Any]]:
    """A function that (re)opens the same database; over gRPC it restarts the server gracefully."""
    opened: list[Any] = []
    server = ServerProcess(tmp_path / "data") if transport == "grpc" else None

    def reopen() -> Any:
        for db in opened:
            db.close()
        opened.clear()
        if server is None:
            db = vecdb.connect(tmp_path / "data")
        else:
            server.restart()
            db = vecdb.connect(server.uri)
        opened.append(db)
        return db

    yield reopen
    for db in opened:
        db.close()
    if server is not None:
        server.stop()
