"""``vecdb.connect``: one entry point, two transports with the same API.

A path (or ":memory:") opens the data directory in this process; a ``grpc://host:port`` URI returns
a client of a running ``vecdb serve`` whose collections behave identically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vecdb.errors import InvalidArgument


def connect(uri: str | Path = "./vecdb-data", *, api_key: str | None = None, tls: Any = None, **options: Any) -> Any:
    """Open a database.

    uri: a directory path (embedded, persistent), ":memory:" (embedded, deleted on close), or
    "grpc://host:port" / "grpcs://host:port" (remote; ``api_key`` and ``tls`` apply).
    Returns an object with create_collection / collection / list_collections / drop_collection /
    close, usable as a context manager.
    """
    text = str(uri)
    if text.startswith(("grpc://", "grpcs://")):
        from vecdb.rpc.client import connect_remote

        return connect_remote(text, api_key=api_key, tls=tls, **options)
    if "://" in text:
        raise InvalidArgument(f"unsupported URI scheme in {text!r}: use a path, ':memory:' or grpc://host:port")
    if api_key is not None or tls is not None:
        raise InvalidArgument("api_key and tls apply only to grpc:// connections")
    from vecdb.engine.database import Database

    return Database.open(text, **options)
