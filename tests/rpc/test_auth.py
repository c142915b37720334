"""API keys, scopes and tenants (unit level; the wire-level checks are in test_server.py)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from vecdb.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from vecdb.rpc.auth import METHOD_SCOPES, KeyRing, Principal, authorize, bearer_token, effective_tenant

KEYS = """
[[keys]]
name = "admin"
key = "admin-key-0123456789"
scope = "admin"

[[keys]]
name = "reader"
key_sha256 = "{digest}"
scope = "read-only"
tenant = "acme"

[[keys]]
name = "old"
key = "expired-key-0123456789"
scope = "read-write"
expires = 2020-01-01T00:00:00Z
"""


@pytest.fixture
def ring(tmp_path) -> KeyRing:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS.format(digest=hashlib.sha256(b"reader-key-0123456789").hexdigest()))
    return KeyRing.from_toml(path)


def test_authenticate(ring: KeyRing) -> None:
    assert ring.authenticate("admin-key-0123456789").scope == "admin"
    reader = ring.authenticate("reader-key-0123456789")
    assert (reader.scope, reader.tenant) == ("read-only", "acme")
    for token in (None, "", "admin-key-012345678", "nope"):
        with pytest.raises(Unauthenticated):
            ring.authenticate(token)
    with pytest.raises(Unauthenticated, match="expired"):
        ring.authenticate("expired-key-0123456789")
    # the same key before its expiry works
    early = dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc)
    assert ring.authenticate("expired-key-0123456789", now=early).name == "old"


@pytest.mark.parametrize(
    "data",
    [
        {"keys": []},
        {"keys": [{"key": "k" * 20, "scope": "root"}]},
        {"keys": [{"key": "short", "scope": "admin"}]},
        {"keys": [{"scope": "admin"}]},
        {"keys": [{"key_sha256": "zz", "scope": "admin"}]},
        {"keys": [{"key": "k" * 20, "scope": "admin", "expires": "soon"}]},
    ],
)
def test_bad_key_files(data) -> None:
    with pytest.raises(InvalidArgument):
        KeyRing.from_dict(data)


def test_unreadable_key_file(tmp_path) -> None:
    (tmp_path / "bad.toml").write_text("[[keys]\n")
    with pytest.raises(InvalidArgument):
        KeyRing.from_toml(tmp_path / "bad.toml")


def test_scopes() -> None:
    ro, rw, admin = (Principal(s, s) for s in ("read-only", "read-write", "admin"))
    for method, needed in METHOD_SCOPES.items():
        authorize(admin, method)
        if needed == "read-only":
            authorize(ro, method)
            authorize(rw, method)
        elif needed == "read-write":
            authorize(rw, method)
            with pytest.raises(PermissionDenied):
                authorize(ro, method)
        else:
            for p in (ro, rw):
                with pytest.raises(PermissionDenied):
                    authorize(p, method)
    with pytest.raises(PermissionDenied):
        authorize(rw, "SomeFutureMethod")  # unknown methods need admin


def test_tenant_comes_from_the_key() -> None:
    confined = Principal("t", "read-write", tenant="acme")
    assert effective_tenant(confined, None) == "acme"
    assert effective_tenant(confined, "acme") == "acme"
    with pytest.raises(NotFound):
        effective_tenant(confined, "globex")
    free = Principal("f", "admin")
    assert effective_tenant(free, "globex") == "globex"
    assert effective_tenant(free, "") is None


def test_bearer_token() -> None:
    assert bearer_token([("authorization", "Bearer abc ")]) == "abc"
    assert bearer_token([("Authorization", "bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([]) is None
