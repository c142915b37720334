"""A collection: the write path (validate -> WAL -> memtable), reads, and the public Collection API.

Writers log first and apply in LSN order: the WAL assigns LSNs and shares fsyncs between
concurrent writers (group commit); each writer then waits for its turn to apply, so the in-memory
state always equals a replay of the log. Readers take a frozen ``CollectionState`` and never block
writers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.config import config_from_dict
from vecdb.engine import tenancy, validate
from vecdb.engine.records import RecordKind, decode_delete, decode_upsert, encode_delete, encode_upsert
from vecdb.engine.search import (
    CollectionState,
    SegmentView,
    gather_rows,
    search_sole_filtered_one,
    search_sole_one,
    search_sole_tenant_one,
    search_state,
)
from vecdb.engine.segments import SealedSegment
from vecdb.engine.store import CollectionStore
from vecdb.engine.tenant_search import TenantScope
from vecdb.engine.versions import EmbeddingVersions
from vecdb.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted
from vecdb.filter.schema import coerce_attributes, parse_schema
from vecdb.storage.memtable import MemTable
from vecdb.types import SearchResult

# How long a writer waits for its predecessors to apply before declaring the log wedged.
APPLY_TIMEOUT_S = 120.0
# Compiled filters kept per collection.
COMPILED_FILTER_CACHE = 256


class Collection:
    """A named set of vectors with attributes, durable on disk. Thread-safe.

    Obtain one from ``Database.create_collection`` / ``Database.collection``.
    """

    def __init__(self, record: Mapping[str, Any], store: CollectionStore) -> None:
        self.name: str = record["name"]
        self.dim: int = int(record["dim"])
        self.metric: str = record["metric"]
        self.index = config_from_dict(record.get("index")) or config_from_dict({"kind": "flat"})
        self.quantization = config_from_dict(record.get("quantization"))
        self.schema: dict[str, str] = dict(record.get("schema") or {})
        self.multi_tenant: bool = bool(record.get("multi_tenant", False))
        self._user_schema = parse_schema(self.schema)
        self._arrow_schema = self._user_schema
        if self.multi_tenant:
            self._arrow_schema = self._user_schema.append(pa.field(tenancy.TENANTS_COLUMN, tenancy.TENANTS_TYPE))
        self._store = store
        self._versions = EmbeddingVersions(store.catalog, self.name, self.dim, self.metric)
        self._cond = threading.Condition(threading.RLock())
        self._mem = store.new_memtable(self.dim, self._arrow_schema)
        # Full memtables waiting for their segment to be written (oldest first), with the LSN they cover.
        self._frozen: list[tuple[MemTable, int]] = []
        self._segments: list[SealedSegment] = []
        self._state: CollectionState | None = None
        self._applied_lsn = 0
        self._closed = False
        self._compiled: dict[Any, Any] = {}
        self.replayed_records = 0
        self._store.attach(self)

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Open segments from the manifest and replay the WAL past it (called once by the Database)."""
        with self._cond:
            self._segments, manifest_lsn = self._store.load_segments()
            self._applied_lsn = manifest_lsn
            for record in self._store.wal.recover(after_lsn=manifest_lsn):
                self._apply_record(record.kind, record.payload, f"{self._store.wal_dir} lsn {record.lsn}")
                self._applied_lsn = record.lsn
                self.replayed_records += 1
            self._applied_lsn = max(self._applied_lsn, self._store.wal.last_lsn)
            self._invalidate()
        self._store.schedule_missing_indexes()

    def _apply_record(self, kind: int, payload: bytes, where: str) -> None:
        if kind == RecordKind.UPSERT:
            self._apply_upsert(decode_upsert(payload, where))
        elif kind == RecordKind.DELETE:
            self._apply_delete(decode_delete(payload, where))
        else:
            from vecdb.errors import DataLoss

            raise DataLoss(f"{where}: unknown record kind {kind}")

    # ------------------------------------------------------------------ write path

    def upsert(
        self,
        ids: Any,
        vectors: Any = None,
        attributes: Any = None,
        *,
        tenant: str | None = None,
        tenants: Sequence[str] | None = None,
        version: str | None = None,
    ) -> int:
        """Insert or replace rows; durable when it returns. Returns the number of rows written.

        ids: (n,) int64 and vectors: (n, dim); or a pyarrow.Table / pandas DataFrame with "id" and
        "vector" columns (plus attribute columns) as the only argument. attributes: dict of columns,
        pyarrow.Table or pandas DataFrame with the collection's schema fields.
        Multi-tenant collections: ``tenant="acme"`` (the rows belong to acme; it may only replace
        rows that are already acme's) or ``tenants=["a", "b"]`` (rows shared by several tenants).
        ``version``: the vectors come from that embedding version's model (``add_embedding_version``)
        and are mapped into the collection's space before they are stored.
        """
        names = tenancy.row_tenants(self.multi_tenant, tenant, tenants)
        table = self._prepare_upsert(ids, vectors, attributes, version)
        if table.num_rows == 0:
            return 0
        if names is not None:
            table = table.append_column(
                pa.field(tenancy.TENANTS_COLUMN, tenancy.TENANTS_TYPE),
                pa.array([names] * table.num_rows, type=tenancy.TENANTS_TYPE),
            )
            if tenant is not None:
                self._check_owned(table.column("id").to_numpy(), tenant)
        self._log_and_apply(RecordKind.UPSERT, encode_upsert(table), lambda: self._apply_upsert(table))
        return table.num_rows

    def delete(
        self,
        ids: Any = None,
        *,
        filter: str | None = None,
        filter_params: Mapping[str, Any] | None = None,
        tenant: str | None = None,
    ) -> int:
        """Delete rows by id or by filter (exactly one); durable when it returns. Returns how many.

        With ``tenant``, only that tenant's rows can be deleted (other ids are ignored).
        """
        if (ids is None) == (filter is None):
            raise InvalidArgument("delete takes either ids or filter, exactly one of them")
        tenant = tenancy.scope(self.multi_tenant, tenant)
        if ids is not None:
            id_arr = np.unique(validate.as_ids(ids, allow_duplicates=True))
            if tenant is not None:
                id_arr = self.get(id_arr, include=(), tenant=tenant).column("id").to_numpy()
        else:
            id_arr = self._matching_ids(self._compile(filter, filter_params, tenant))
        if id_arr.size == 0:
            return 0
        return self._log_and_apply(RecordKind.DELETE, encode_delete(id_arr), lambda: self._apply_delete(id_arr))

    def _prepare_upsert(self, ids: Any, vectors: Any, attributes: Any, version: str | None = None) -> pa.Table:
        if vectors is None and attributes is None and _is_table_like(ids):
            table = ids if isinstance(ids, pa.Table) else pa.Table.from_pandas(ids, preserve_index=False)
            missing = {"id", "vector"} - set(table.column_names)
            if missing:
                raise InvalidArgument(f"an upsert table needs 'id' and 'vector' columns; missing {sorted(missing)}")
            ids = table.column("id").to_numpy()
            vectors = _vectors_from_column(table.column("vector"))
            attributes = table.drop_columns(["id", "vector"]) if table.num_columns > 2 else None
        if vectors is None:
            raise InvalidArgument("upsert needs vectors (or one table with 'id' and 'vector' columns)")
        id_arr = validate.as_ids(ids)
        if id_arr.size and int(id_arr.min()) < 0:
            # -1 pads search results, so a negative id could never be told apart from "no result".
            raise InvalidArgument(f"ids must be >= 0, got {int(id_arr.min())}")
        if version is None:
            vec = validate.as_vectors(vectors, self.dim)
        else:
            vec = self._versions.map(version, validate.as_vectors(
                vectors, self._versions.dim_of(version), name=f"vectors of embedding version {version!r}"))
        if vec.shape[0] != id_arr.shape[0]:
            raise InvalidArgument(f"got {id_arr.shape[0]} ids but {vec.shape[0]} vectors")
        attrs = coerce_attributes(attributes, self._user_schema, id_arr.shape[0])
        table = pa.table(
            {
                "id": pa.array(id_arr),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), self.dim),
            }
        )
        for i, field in enumerate(attrs.schema):
            table = table.append_column(field, attrs.column(i))
        return table

    def _check_owned(self, ids: np.ndarray, tenant: str) -> None:
        """A tenant-scoped upsert may create rows or replace its own, never another tenant's."""
        existing = gather_rows(self.state(), ids, (tenancy.TENANTS_COLUMN,))
        for row_id, owners in zip(existing.column("id").to_pylist(),
                                  existing.column(tenancy.TENANTS_COLUMN).to_pylist(), strict=True):
            if tenant not in (owners or ()):
                raise AlreadyExists(f"id {row_id} is already used in collection {self.name!r} by another tenant")

    def _log_and_apply(self, kind: RecordKind, payload: Any, apply: Any) -> Any:
        if self._closed:
            raise FailedPrecondition(f"collection {self.name!r} is closed")
        wal = self._store.wal
        try:
            lsn = wal.append(int(kind), payload)  # durable on return; fsyncs shared
        except ResourceExhausted:
            # Disk full: nothing was acknowledged and the log cut back its partial frame. The log
            # refuses further appends until reopened; reopen it now so writes resume once space returns.
            self._reopen_wal(wal)
            raise
        with self._cond:
            # Apply in LSN order so memory always equals a replay of the log.
            if not self._cond.wait_for(lambda: self._applied_lsn >= lsn - 1, timeout=APPLY_TIMEOUT_S):
                raise FailedPrecondition(f"write-ahead log of {self.name!r} is wedged before lsn {lsn}")
            try:
                return apply()
            finally:
                self._applied_lsn = max(self._applied_lsn, lsn)
                self._cond.notify_all()
                self._store.maybe_seal()

    def _reopen_wal(self, failed: Any) -> None:
        with self._cond:
            if self._store.wal is not failed or self._closed:
                return  # another writer already reopened it
            # Let every append that did become durable apply first, so none is applied twice.
            self._cond.wait_for(lambda: self._applied_lsn >= failed.durable_lsn, timeout=APPLY_TIMEOUT_S)
            for record in self._store.reopen_wal(after_lsn=self._applied_lsn):
                self._apply_record(record.kind, record.payload, f"{self._store.wal_dir} lsn {record.lsn}")
                self._applied_lsn = record.lsn
            self._invalidate()

    def _apply_upsert(self, table: pa.Table) -> int:
        ids = table.column("id").to_numpy()
        for seg in self._segments:
            seg.mark_deleted(seg.rows_of(ids))
        for frozen, _ in self._frozen:
            frozen.delete(ids)
        vectors = _vectors_from_column(table.column("vector"))
        attrs = table.drop_columns(["id", "vector"])
        self._mem.append(ids, vectors, attrs)
        self._invalidate()
        return table.num_rows

    def _apply_delete(self, ids: np.ndarray) -> int:
        count = self._mem.delete(ids)
        for frozen, _ in self._frozen:
            count += frozen.delete(ids)
        for seg in self._segments:
            count += seg.mark_deleted(seg.rows_of(ids))
        self._invalidate()
        return count

    def _matching_ids(self, compiled: Any) -> np.ndarray:
        state = self.state()
        found = [np.zeros(0, np.int64)]
        for view in state.segments:
            mask = ~view.deleted
            if compiled is not None:
                mask &= compiled.mask(view.segment.table)
            found.append(view.segment.ids[mask])
        for mem in state.mems:
            if not mem.num_rows:
                continue
            mask = mem.live.copy()
            if compiled is not None:
                mask &= compiled.mask(mem.attributes)
            found.append(mem.ids[mask])
        return np.unique(np.concatenate(found))

    # ------------------------------------------------------------------ reads

    def state(self) -> CollectionState:
        """A frozen view for readers (cached until the next write)."""
        state = self._state
        if state is None:
            with self._cond:
                if self._state is None:
                    segments = tuple(SegmentView.of(s) for s in self._segments)
                    mems = (*(m.snapshot() for m, _ in self._frozen), self._mem.snapshot())
                    self._state = CollectionState(
                        segments=segments,
                        mems=mems,
                        dim=self.dim,
                        metric=self.metric,
                        total_rows=sum(v.segment.num_rows for v in segments) + sum(m.num_rows for m in mems),
                    )
                state = self._state
        return state

    def _invalidate(self) -> None:
        self._state = None

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        filter: str | None = None,
        filter_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        include: Sequence[str] = (),
        tenant: str | None = None,
        version: str | None = None,
    ) -> SearchResult:
        """Nearest neighbours of each query: ids (n, k) padded -1, distances (n, k) padded +inf.

        ``tenant`` confines the search to that tenant's rows (multi-tenant collections). ``version``:
        the queries come from that embedding version's model and are mapped into the collection's
        space first (distances are then in the collection's space).
        """
        if version is not None:
            queries = self._versions.map(version, validate.as_queries(
                queries, self._versions.dim_of(version), name=f"queries of embedding version {version!r}"))
        if tenant is None and not self.multi_tenant and (include is None or (type(include) is tuple and not include)):
            # One plain query in a single C call where the collection's shape allows (these return
            # None for anything validation would change, and the general path below answers).
            if filter is None:
                found = search_sole_one(self.state(), queries, k, params)
            else:
                compiled = self._cached_filter(filter, filter_params)
                found = None if compiled is None else search_sole_filtered_one(self.state(), queries, k, compiled,
                                                                               params)
            if found is not None:
                return found
        elif tenant is not None and filter is None and self.multi_tenant and (
                include is None or (type(include) is tuple and not include)):
            found = search_sole_tenant_one(self.state(), queries, k, tenant, params)
            if found is not None:
                return found
        q = validate.as_queries(queries, self.dim)
        k = validate.check_k(k)
        include = self._check_include(include)
        params = _check_params(params)
        tenant = tenancy.scope(self.multi_tenant, tenant)
        user = self._compile(filter, filter_params, None)
        if tenant is None:
            return search_state(self.state(), q, k, user, params, include)
        tenancy.check_filter_params(filter_params)
        # Segments with a tenant index need only the user's filter; the rest compile the tenant's.
        scope = TenantScope(tenant, user, lambda: self._compile(filter, filter_params, tenant))
        return search_state(self.state(), q, k, user, params, include, scope)

    def _cached_filter(self, text: Any, params: Any) -> Any:
        """The user's filter as an earlier call compiled it, or None: never compiles, so never raises
        (a new or bad filter is left to the general path, after the query is validated)."""
        if type(text) is not str or not (params is None or type(params) is dict):
            return None
        key = _filter_key(text, params, None)
        return None if key is None else self._compiled.get(key)

    def _compile(self, text: str | None, params: Mapping[str, Any] | None, tenant: str | None) -> Any:
        """The compiled filter (user's AND tenant's), cached by text, parameters and tenant: parsing a
        long IN list on every call would cost more than the search."""
        if not text and tenant is None:
            return None
        key = _filter_key(text, params, tenant)
        if key is None:  # unhashable parameter values: compile without caching
            return tenancy.visible_filter(text, params, self._arrow_schema, tenant)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = tenancy.visible_filter(text, params, self._arrow_schema, tenant)
            if len(self._compiled) >= COMPILED_FILTER_CACHE:
                self._compiled.clear()
            self._compiled[key] = compiled
        return compiled

    def get(self, ids: Any, include: Sequence[str] = ("vector",), tenant: str | None = None) -> pa.Table:
        """Rows by id: an "id" column plus the included ones; ids not present (or not the tenant's)
        are absent."""
        id_arr = validate.as_ids(ids, allow_duplicates=True)
        include = self._check_include(include)
        tenant = tenancy.scope(self.multi_tenant, tenant)
        if tenant is None:
            return gather_rows(self.state(), id_arr, include)
        column = tenancy.TENANTS_COLUMN
        table = gather_rows(self.state(), id_arr, (*include, column))
        owned = [tenant in (owners or ()) for owners in table.column(column).to_pylist()]
        table = table.filter(pa.array(owned, type=pa.bool_()))
        return table if column in include else table.drop_columns([column])

    def count(self, tenant: str | None = None) -> int:
        """Live rows (of ``tenant`` only, when given)."""
        tenant = tenancy.scope(self.multi_tenant, tenant)
        if tenant is not None:
            return int(self._matching_ids(self._compile(None, None, tenant)).size)
        state = self.state()
        in_segments = sum(v.live for v in state.segments)
        return int(in_segments + sum(int(m.live.sum()) for m in state.mems))

    def tenants(self) -> list[str]:
        """Every tenant that owns at least one live row (multi-tenant collections)."""
        if not self.multi_tenant:
            raise InvalidArgument(f"collection {self.name!r} is not multi-tenant")
        state = self.state()
        names: set[str] = set()
        column = tenancy.TENANTS_COLUMN
        for view in state.segments:
            lists = view.segment.table.column(column).filter(pa.array(~view.deleted))
            names.update(pc.list_flatten(lists).to_pylist())
        for mem in state.mems:
            lists = mem.attributes.column(column).filter(pa.array(mem.live))
            names.update(pc.list_flatten(lists).to_pylist())
        return sorted(names)

    def _check_include(self, include: Sequence[str] | str | None) -> tuple[str, ...]:
        if include is None or (type(include) is tuple and not include):  # the default: nothing to check
            return ()
        if isinstance(include, str):
            include = (include,)
        names = tuple(include)
        allowed = {"vector", *self.schema, *([tenancy.TENANTS_COLUMN] if self.multi_tenant else [])}
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise InvalidArgument(f"include names unknown field(s) {unknown}; known: {sorted(allowed)}")
        return names

    # ------------------------------------------------------------------ embedding versions

    def add_embedding_version(
        self, version: str, ids: Any, vectors: Any, *, normalize: bool | None = None
    ) -> dict[str, Any]:
        """Register another embedding model's space as ``version``: ``vectors`` (n, d) are that model's
        embeddings of the stored rows ``ids`` (a sample of a few thousand or more; n >= 2 d). A map into
        the collection's space is fitted on them and persisted; upserts and searches may then pass
        ``version=`` and use that model's vectors. ``normalize`` (default: the collection is cosine)
        unit-normalises that model's vectors first. Returns the version's description, with the
        held-out recall@10 of each fitting stage under "report".
        """
        self._check_open()
        id_arr = validate.as_ids(ids)
        shape = np.shape(vectors)
        if len(shape) != 2:
            raise InvalidArgument(f"vectors must have shape (n, d), got {shape}")
        vec = validate.as_vectors(vectors, int(shape[1]))
        if vec.shape[0] != id_arr.shape[0]:
            raise InvalidArgument(f"got {id_arr.shape[0]} ids but {vec.shape[0]} vectors")
        stored = gather_rows(self.state(), id_arr, ("vector",))
        if stored.num_rows != id_arr.shape[0]:
            missing = np.setdiff1d(id_arr, stored.column("id").to_numpy())
            raise InvalidArgument(f"add_embedding_version needs stored rows: {missing.size} ids are not in "
                                  f"collection {self.name!r} (first: {missing[:5].tolist()})")
        old = _vectors_from_column(stored.column("vector"))  # gather_rows keeps the order asked
        normalize = self.metric == "cosine" if normalize is None else bool(normalize)
        return self._versions.add(version, vec, old, normalize)

    def embedding_versions(self) -> dict[str, dict[str, Any]]:
        """Registered embedding versions: {name: {"dim", "normalize", "fit_rows", "report"}}."""
        return self._versions.describe()

    def drop_embedding_version(self, version: str) -> None:
        """Forget ``version``'s map (rows already stored through it stay, in the collection's space)."""
        self._check_open()
        self._versions.drop(version)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> None:
        """Seal the memtable, compact segments (dropping deleted rows), build indexes; blocks until done."""
        self._check_open()
        self._store.optimize()

    def stats(self) -> dict[str, Any]:
        """Rows, deleted rows, segments, bytes on disk and in memory."""
        state = self.state()
        deleted = int(sum(int(v.deleted.sum()) for v in state.segments))
        index_bytes = sum(int(v.segment.index.nbytes) for v in state.segments if v.segment.index is not None)
        index_bytes += sum(int(v.segment.tenant_index.nbytes) for v in state.segments
                           if v.segment.tenant_index is not None)
        return {
            "name": self.name,
            "rows": self.count(),
            "deleted_rows": deleted,
            "segments": len(state.segments),
            "memtable_rows": int(sum(int(m.live.sum()) for m in state.mems)),
            "indexed_segments": sum(1 for v in state.segments if v.segment.index is not None),
            "bytes_on_disk": self._store.bytes_on_disk(),
            "bytes_in_memory": int(self._mem.nbytes + sum(m.nbytes for m, _ in self._frozen) + index_bytes),
            "wal_bytes": int(self._store.wal.nbytes),
        }

    def describe(self) -> dict[str, Any]:
        """The collection's configuration as plain data."""
        from vecdb.config import config_to_dict

        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "index": config_to_dict(self.index),
            "quantization": config_to_dict(self.quantization),
            "schema": dict(self.schema),
            "multi_tenant": self.multi_tenant,
        }

    def close(self) -> None:
        """Checkpoint (seal what the WAL holds) and release files. Idempotent."""
        if self._closed:
            return
        self._store.close()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"collection {self.name!r} is closed")

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r}, index={self.index})"


_PLAIN_TYPES = frozenset({int, float, str, bool, bytes})


def _filter_key(text: Any, params: Mapping[str, Any] | None, tenant: str | None) -> tuple | None:
    """The compiled-filter cache's key, or None when a parameter value is unhashable."""
    try:
        key = (text, tenant, tuple(sorted((k, _hashable(v)) for k, v in (params or {}).items())))
        hash(key)
    except TypeError:
        return None
    return key


def _hashable(value: Any) -> Any:
    """Parameter values as a cache key: lists/sets become tuples (typed, so 1 and 1.0 and True differ)."""
    if type(value) in (list, tuple):
        kinds = set(map(type, value))
        if len(kinds) == 1 and kinds <= _PLAIN_TYPES:  # an IN list of one plain type: one key, not one per value
            return (type(value).__name__, next(iter(kinds)).__name__, tuple(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return (type(value).__name__, tuple(_hashable(v) for v in items))
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.tobytes())
    return (type(value).__name__, value)


def _is_table_like(value: Any) -> bool:
    if isinstance(value, pa.Table):
        return True
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns")


def _vectors_from_column(column: Any) -> np.ndarray:
    """A fixed_size_list / list column of floats -> (n, d) array without a Python loop."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        d = column.type.list_size
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, d)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            raise InvalidArgument("vector column has rows of different lengths")
        d = int(lengths[0]) if len(lengths) else 0
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, d)
    raise InvalidArgument(f"vector column must be a list of floats, got {column.type}")


_SEARCH_PARAMS = frozenset({"ef", "nprobe", "rerank", "eps", "max_lists", "max_bytes", "prefetch", "exact", "stats",
                            "plan", "tenant_ef"})
# Validated search params by (name, type, value) items: a caller passes the same few dicts on every query.
_CHECKED_PARAMS: dict[tuple, dict[str, Any]] = {}


def _check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if not params:
        if params is None or isinstance(params, Mapping):
            return {}
        raise InvalidArgument(f"params must be a mapping, got {type(params).__name__}")
    if type(params) is dict:
        try:
            key = tuple((k, type(v), v) for k, v in params.items())
            cached = _CHECKED_PARAMS.get(key)
        except TypeError:  # an unhashable value: validated (and rejected) below
            key, cached = None, None
        if cached is not None:
            return dict(cached)
        checked = _validate_params(params)
        if key is not None:
            if len(_CHECKED_PARAMS) >= 256:
                _CHECKED_PARAMS.clear()
            _CHECKED_PARAMS[key] = checked
        return dict(checked)
    return _validate_params(params)


def _validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise InvalidArgument(f"params must be a mapping, got {type(params).__name__}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in _SEARCH_PARAMS:
            raise InvalidArgument(f"unknown search param {key!r}")
        if key in ("exact", "stats", "prefetch"):
            out[key] = bool(value)
            continue
        if key == "plan":
            if value not in ("exact", "index"):
                raise InvalidArgument(f"search param 'plan' must be 'exact' or 'index', got {value!r}")
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidArgument(f"search param {key!r} must be a number, got {value!r}")
        limit = 1 << 40 if key == "max_bytes" else validate.MAX_SEARCH_PARAM
        if key != "eps" and (int(value) != value or not 1 <= int(value) <= limit):
            raise InvalidArgument(f"search param {key!r} must be an integer in 1..{limit}, got {value}")
        if key == "eps" and not (value >= 0):
            raise InvalidArgument(f"search param 'eps' must be >= 0, got {value}")
        out[key] = value
    return out
