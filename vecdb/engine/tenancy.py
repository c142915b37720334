"""Multi-tenant collections: which rows a tenant may see, and the hidden column that says so.

A multi-tenant collection stores, with every row, the list of tenants it belongs to (the hidden
``tenants`` column; a row may be shared). Every read path — search, get, count, filter-delete —
goes through ``visible_filter``, so no path can reach another tenant's rows; a tenant-scoped
upsert may only replace rows that already belong to that tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import InvalidArgument
from vecdb.filter.evaluate import CompiledFilter, compile_filter

TENANTS_COLUMN = "tenants"
TENANTS_TYPE = pa.list_(pa.string())
_TENANT_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_PARAM = "vecdb_internal_tenant"


def check_tenant(tenant: Any) -> str:
    """A tenant name: 1..128 of letters, digits and ``_ . : @ -``."""
    if not isinstance(tenant, str) or _TENANT_RE.fullmatch(tenant) is None:
        raise InvalidArgument(f"tenant must be 1..128 characters of letters, digits and _.:@-, got {tenant!r}")
    return tenant


def row_tenants(multi_tenant: bool, tenant: str | None, tenants: Sequence[str] | None) -> list[str] | None:
    """The tenant list every row of an upsert gets (None for a single-tenant collection)."""
    if not multi_tenant:
        if tenant is not None or tenants is not None:
            raise InvalidArgument("this collection is not multi-tenant: create it with multi_tenant=True")
        return None
    if (tenant is None) == (tenants is None):
        raise InvalidArgument("a multi-tenant collection needs tenant=... or tenants=[...] on upsert (one of them)")
    names = [tenant] if tenant is not None else list(tenants or [])
    if not names:
        raise InvalidArgument("tenants must name at least one tenant")
    return sorted({check_tenant(t) for t in names})


def scope(multi_tenant: bool, tenant: str | None) -> str | None:
    """Validate the tenant a read is confined to (None = the whole collection)."""
    if tenant is None:
        return None
    if not multi_tenant:
        raise InvalidArgument("this collection is not multi-tenant: tenant= does not apply")
    return check_tenant(tenant)


def check_filter_params(params: Mapping[str, Any] | None) -> None:
    """The user's filter parameters may not use the name the tenant clause binds."""
    if params and _PARAM in params:
        raise InvalidArgument(f"filter parameter name {_PARAM!r} is reserved")


def visible_filter(
    text: str | None, params: Mapping[str, Any] | None, schema: pa.Schema, tenant: str | None
) -> CompiledFilter | None:
    """The user's filter, AND-ed with "this row belongs to ``tenant``" when a tenant is given.

    The user's filter is compiled on its own first, so its error positions refer to what they wrote.
    """
    user = compile_filter(text, schema, params) if text else None
    if tenant is None:
        return user
    check_filter_params(params)
    clause = f"array_contains({TENANTS_COLUMN}, :{_PARAM})"
    combined = f"({text}) AND {clause}" if text else clause
    return compile_filter(combined, schema, {**(params or {}), _PARAM: tenant})


def tenant_csr(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The ``tenants`` column of n rows as CSR: (indptr (n+1,) int64, tenant ids (nnz,) int64,
    tenant names), straight from the Arrow list offsets and a dictionary encoding of the values
    (no per-row Python). Null lists count as empty."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar([], type=arr.type))
    offsets = arr.offsets.to_numpy().astype(np.int64)
    encoded = pc.list_flatten(arr).dictionary_encode()
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return offsets - offsets[0], ids, [str(name) for name in encoded.dictionary.to_pylist()]
