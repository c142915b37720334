"""API keys: the key file, scopes, tenants, and the interceptor that enforces them.

The key file is TOML::

    [[keys]]
    name = "ingest"                    # a label for logs (optional)
    key = "s3cr3t..."                  # or key_sha256 = "<hex digest>" to keep the secret out of the file
    scope = "read-write"               # admin | read-write | read-only
    tenant = "acme"                    # optional: confine the key to one tenant's rows
    expires = 2027-01-01T00:00:00Z     # optional: TOML datetime or ISO-8601 string (UTC if no offset)

Clients send ``authorization: Bearer <key>``. Keys are compared as SHA-256 digests with
``hmac.compare_digest`` against every configured key, so timing reveals neither which key nor how
much of it matched.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import hmac
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from vecdb.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated, VecdbError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SERVICE_PREFIX = "/vecdb.v1.VecdbService/"
SCOPES = ("read-only", "read-write", "admin")
_RANK = {scope: i for i, scope in enumerate(SCOPES)}

# The least scope each method needs. Unknown methods of our service need admin (fail closed).
METHOD_SCOPES: dict[str, str] = {
    "GetCollection": "read-only",
    "ListCollections": "read-only",
    "CollectionStats": "read-only",
    "Count": "read-only",
    "Get": "read-only",
    "Search": "read-only",
    "ServerInfo": "read-only",
    "ListEmbeddingVersions": "read-only",
    "Upsert": "read-write",
    "UpsertStream": "read-write",
    "Delete": "read-write",
    "Optimize": "read-write",
    "CreateCollection": "admin",
    "DropCollection": "admin",
    "AddEmbeddingVersion": "admin",
    "DropEmbeddingVersion": "admin",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's label, its scope and the tenant it is confined to (if any)."""

    name: str
    scope: str
    tenant: str | None = None
    expires: dt.datetime | None = None


# The open server (no key file) acts for an unconfined admin.
OPEN_PRINCIPAL = Principal(name="anonymous", scope="admin")
CURRENT_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("vecdb_principal", default=OPEN_PRINCIPAL)


def _parse_expiry(value: Any, label: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"key {label!r}: expires {value!r} is not an ISO-8601 time") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise InvalidArgument(f"key {label!r}: expires must be a datetime, got {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class KeyRing:
    """The configured API keys, held as SHA-256 digests."""

    def __init__(self, entries: list[tuple[bytes, Principal]]) -> None:
        if not entries:
            raise InvalidArgument("the API key file defines no keys")
        self._entries = entries

    @classmethod
    def from_toml(cls, path: str | Path) -> KeyRing:
        """Load a key file (format in the module docstring); mistakes are InvalidArgument."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgument(f"cannot read API key file {path}: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRing:
        """Build from the parsed TOML (``{"keys": [{...}, ...]}``)."""
        entries: list[tuple[bytes, Principal]] = []
        for i, item in enumerate(data.get("keys", [])):
            label = str(item.get("name", f"key#{i}"))
            scope = item.get("scope")
            if scope not in _RANK:
                raise InvalidArgument(f"key {label!r}: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
            if "key" in item:
                secret = str(item["key"])
                if len(secret) < 16:
                    raise InvalidArgument(f"key {label!r}: keys must be at least 16 characters")
                digest = hashlib.sha256(secret.encode()).digest()
            elif "key_sha256" in item:
                try:
                    digest = bytes.fromhex(str(item["key_sha256"]))
                except ValueError:
                    raise InvalidArgument(f"key {label!r}: key_sha256 is not hex") from None
                if len(digest) != 32:
                    raise InvalidArgument(f"key {label!r}: key_sha256 must be 64 hex digits")
            else:
                raise InvalidArgument(f"key {label!r}: needs 'key' or 'key_sha256'")
            tenant = item.get("tenant")
            principal = Principal(
                name=label,
                scope=scope,
                tenant=str(tenant) if tenant else None,
                expires=_parse_expiry(item.get("expires"), label),
            )
            entries.append((digest, principal))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str | None, now: dt.datetime | None = None) -> Principal:
        """The principal of ``token``; raises Unauthenticated for a missing, unknown or expired key."""
        if not token:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        digest = hashlib.sha256(token.encode()).digest()
        found: Principal | None = None
        for candidate, principal in self._entries:  # no early exit: every key is compared
            if hmac.compare_digest(candidate, digest):
                found = principal
        if found is None:
            raise Unauthenticated("unknown API key")
        now = now or dt.datetime.now(dt.timezone.utc)
        if found.expires is not None and now >= found.expires:
            raise Unauthenticated(f"API key {found.name!r} expired at {found.expires.isoformat()}")
        return found


def authorize(principal: Principal, method: str) -> None:
    """Raise PermissionDenied unless ``principal``'s scope allows the bare method name."""
    needed = METHOD_SCOPES.get(method, "admin")
    if _RANK[principal.scope] < _RANK[needed]:
        raise PermissionDenied(f"{method} needs a {needed} key; key {principal.name!r} is {principal.scope}")


def effective_tenant(principal: Principal, requested: str | None) -> str | None:
    """The tenant a call acts for: the key's tenant when it is confined, else the request's.

    A confined key naming another tenant gets NotFound (as if those rows did not exist), so a key
    cannot learn which other tenants exist.
    """
    requested = requested or None
    if principal.tenant is None:
        return requested
    if requested is not None and requested != principal.tenant:
        raise NotFound(f"tenant {requested!r} not found")
    return principal.tenant


def bearer_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <key>`` metadata entry, if present."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip() or None
    return None


def wrap_handler(
    handler: grpc.RpcMethodHandler, wrapper: Callable[[Callable[..., Any], Any, Any], Any]
) -> grpc.RpcMethodHandler:
    """A copy of a unary-response ``handler`` whose behaviour runs as ``wrapper(behavior, request, ctx)``.

    Streaming-response handlers (health Watch, reflection) are returned unchanged.
    """
    if handler.unary_unary is not None:
        inner = handler.unary_unary
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: wrapper(inner, request, context),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        inner_stream = handler.stream_unary
        return grpc.stream_unary_rpc_method_handler(
            lambda requests, context: wrapper(inner_stream, requests, context),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def abort_with(context: grpc.ServicerContext, error: VecdbError) -> None:
    """End the call with the status code that ``error``'s class carries (raises)."""
    context.abort(getattr(grpc.StatusCode, error.grpc_code, grpc.StatusCode.UNKNOWN), str(error)[:4096])


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates VecdbService calls, checks the method's scope, and publishes the principal.

    Health and reflection stay open: orchestrators probe health without credentials, and
    reflection is off unless the operator turns it on.
    """

    def __init__(self, keys: KeyRing | None) -> None:
        self._keys = keys

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = continuation(handler_call_details)
        method_path: str = handler_call_details.method
        if handler is None or not method_path.startswith(SERVICE_PREFIX):
            return handler
        method = method_path[len(SERVICE_PREFIX) :]
        keys = self._keys

        def guarded(behavior: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
            if keys is None:
                principal = OPEN_PRINCIPAL
            else:
                try:
                    principal = keys.authenticate(bearer_token(context.invocation_metadata()))
                    authorize(principal, method)
                except VecdbError as exc:
                    abort_with(context, exc)
            token = CURRENT_PRINCIPAL.set(principal)
            try:
                return behavior(request, context)
            finally:
                CURRENT_PRINCIPAL.reset(token)

        return wrap_handler(handler, guarded)
