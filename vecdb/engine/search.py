"""Reads over a frozen collection state: top-k search across segments and memtable, and row lookup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from vecdb import kernels
from vecdb.engine import planner, tenant_search, validate
from vecdb.engine.segments import SealedSegment
from vecdb.engine.tenant_search import TenantScope
from vecdb.index.flat import exact_search
from vecdb.index.tenant import DEFAULT_GRAPH_EF
from vecdb.storage.memtable import MemSnapshot
from vecdb.types import SearchResult

# Filter masks kept per segment (keyed by the filter's canonical text): repeated filtered queries
# should not re-evaluate the predicate over every row.
FILTER_CACHE_SIZE = 16
# Search params that only tune an index: with nothing else asked, the sole-segment fast path applies
# ("plan", "exact" and "stats" change what runs or what is reported, so they take the general path).
_INDEX_KNOBS = frozenset({"ef", "nprobe", "rerank", "eps", "max_lists", "max_bytes", "prefetch"})
# ... and with a filter, the planner's own knobs too: the filtered fast path plans as the general path does.
_PLANNER_KNOBS = _INDEX_KNOBS | {"plan", "exact"}


class FilteredRows(NamedTuple):
    """A filter applied to one segment view: the allowed mask (live and matching), how many rows it
    allows and their offsets (ascending)."""

    allowed: np.ndarray
    count: int
    rows: np.ndarray


@dataclass(frozen=True)
class SegmentView:
    """A segment with the deletion mask that was current when the state was taken.

    ``allowed`` (None when nothing is deleted) and ``live`` are computed once per state, not per
    query: the per-call path must stay a few microseconds of Python.
    """

    segment: SealedSegment
    deleted: np.ndarray
    allowed: np.ndarray | None
    live: int
    # Filters evaluated against this view (keyed by canonical text): a repeated filter costs a
    # lookup, not a pass over every row for the mask, its count and its row list.
    filtered: dict[str, FilteredRows] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, segment: SealedSegment) -> SegmentView:
        deleted = segment.deleted
        if segment.deleted_count:
            return cls(segment, deleted, ~deleted, segment.num_rows - segment.deleted_count)
        return cls(segment, deleted, None, segment.num_rows)


@dataclass(frozen=True)
class CollectionState:
    """Everything a reader needs, frozen: segments, then memtables (being sealed ones first)."""

    segments: tuple[SegmentView, ...]
    mems: tuple[MemSnapshot, ...]
    dim: int
    metric: str
    total_rows: int = 0  # rows in segments and memtables, deleted ones included

    @property
    def sole(self) -> SegmentView | None:
        """The one segment holding every row, with nothing deleted and empty memtables (the shape
        of a collection after ``optimize()``), or None. Computed once per state."""
        sole = self.__dict__.get("_sole", False)
        if sole is False:
            views = [v for v in self.segments if v.segment.num_rows]
            only = len(views) == 1 and views[0].allowed is None and not any(m.num_rows for m in self.mems)
            sole = views[0] if only else None
            object.__setattr__(self, "_sole", sole)
        return sole


def _filter_mask(segment: SealedSegment, table: pa.Table, compiled: Any) -> np.ndarray:
    cache = segment.__dict__.setdefault("_filter_cache", {})
    key = compiled.canonical
    mask = cache.get(key)
    if mask is None:
        mask = np.asarray(compiled.mask(table, segment.attr_index), dtype=bool)
        if len(cache) >= FILTER_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = mask
    return mask


def _filtered(view: SegmentView, compiled: Any) -> FilteredRows:
    """``compiled`` applied to ``view`` (cached on the view: deletions are fixed for its lifetime)."""
    hit = view.filtered.get(compiled.canonical)
    if hit is None:
        seg = view.segment
        fmask = _filter_mask(seg, seg.table, compiled)
        allowed = fmask if view.allowed is None else (fmask & view.allowed)
        rows = np.flatnonzero(allowed)
        hit = FilteredRows(allowed, int(rows.shape[0]), rows)
        if len(view.filtered) >= FILTER_CACHE_SIZE:
            view.filtered.clear()  # readers share the view: clear() is one atomic step
        view.filtered[compiled.canonical] = hit
    return hit


def search_state(
    state: CollectionState,
    queries: np.ndarray,
    k: int,
    compiled: Any,
    params: Mapping[str, Any],
    include: Sequence[str],
    tenant: TenantScope | None = None,
) -> SearchResult:
    """Top-k over every segment and the memtable of ``state``; merged; attributes attached.

    ``compiled`` is the user's filter (None: none); ``tenant``, when the search is confined to one,
    supplies the visibility filter (the user's AND the tenant's) instead, and lets segments with a
    tenant index search the tenant directly."""
    if tenant is None and not include:
        fast = None
        if compiled is None and params.keys() <= _INDEX_KNOBS:
            fast = _search_sole_index(state, queries, k, params)
        elif compiled is not None and params.keys() <= _PLANNER_KNOBS:
            fast = _search_sole_filtered(state, queries, k, compiled, params)
        if fast is not None:
            return fast
    part_ids: list[np.ndarray] = []
    part_d: list[np.ndarray] = []
    plans: list[str] = []
    index_stats: list[dict[str, Any]] | None = [] if params.get("stats") else None
    matching = 0
    for view in state.segments:
        if view.segment.num_rows == 0:
            continue
        offsets, dists, used, count = _search_segment(view, state, queries, k, compiled, params, tenant,
                                                      index_stats)
        matching += count
        plans.append(used)
        part_ids.append(_to_ids(view.segment.ids, offsets))
        part_d.append(dists)
    for mem in state.mems:
        if not mem.num_rows:
            continue
        allowed = mem.live
        visible = tenant.visible if tenant is not None else compiled
        if visible is not None:
            allowed = allowed & np.asarray(visible.mask(mem.attributes), dtype=bool)
        matching += int(allowed.sum())
        offsets, dists = exact_search(queries, mem.vectors, state.metric, k, allowed)
        part_ids.append(_to_ids(mem.ids, offsets))
        part_d.append(dists)
        plans.append("memtable-exact")
    if not part_ids:
        ids = np.full((queries.shape[0], k), -1, np.int64)
        dists = np.full((queries.shape[0], k), np.inf, np.float32)
    elif len(part_ids) == 1:
        ids, dists = part_ids[0], part_d[0]
    else:
        ids, dists = kernels.merge_topk(part_ids, part_d, k)
    total = state.total_rows
    want = min(k, matching)
    stats = {
        "plans": plans,
        "matching_rows": matching,
        "estimated_selectivity": matching / total if total else 0.0,
        "complete": want == 0 or planner.all_filled(ids, want),
    }
    if index_stats is not None:
        stats["index"] = index_stats
    attributes = gather_rows(state, ids.reshape(-1), include, keep_missing=True) if include else None
    if attributes is not None:
        attributes = attributes.drop_columns(["id"])
    return SearchResult(ids=ids, distances=dists.astype(np.float32, copy=False), attributes=attributes, stats=stats)


def _search_sole_index(
    state: CollectionState, queries: np.ndarray, k: int, params: Mapping[str, Any]
) -> SearchResult | None:
    """An unfiltered search of a collection whose rows all sit in one indexed segment: the planner
    would pick the plain index search, so it runs directly, without planning each call. None when
    that shape does not hold or the index came back short (the general path then answers, with its
    exact fallback)."""
    view = state.sole
    index = view.segment.index if view is not None else None
    if index is None:
        return None
    offsets, dists = index.search(queries, k, params, None)
    live = view.live
    if not planner.all_filled(offsets, min(k, live)):
        return None
    stats = {"plans": [index.kind], "matching_rows": live, "estimated_selectivity": live / state.total_rows,
             "complete": True}
    return SearchResult(ids=_to_ids(view.segment.ids, offsets), distances=dists.astype(np.float32, copy=False),
                        attributes=None, stats=stats)


def search_sole_one(state: CollectionState, query: Any, k: Any, params: Any) -> SearchResult | None:
    """One query with no filter, tenant or ``include``, on a collection whose rows all sit in one
    indexed segment, answered by the index's single-call path (``VectorIndex.search_one``) before
    any validation or planning: that path takes only what validation would pass unchanged (a finite
    float32 query of the right shape, an int k in range) and params of at most an int ``ef``, and
    the plain index search is what the planner would choose. None for anything else, or when the
    index came back short: the general path then validates, plans and answers."""
    view = state.sole
    if view is None or not (params is None or (type(params) is dict and (not params or params.keys() == {"ef"}))):
        return None
    index = view.segment.index
    if index is None:
        return None
    found = index.search_one(query, k, params["ef"] if params else None, view.segment.ids)
    if found is None:
        return None
    ids, dists, filled = found
    live = view.live
    if filled < min(k, live):
        return None
    stats = {"plans": [index.kind], "matching_rows": live, "estimated_selectivity": live / state.total_rows,
             "complete": True}
    return SearchResult(ids=ids, distances=dists, attributes=None, stats=stats)


_DECLINED = object()


def _single_call_ef(params: Any, default: Any) -> Any:
    """The beam of params a single-call path takes: ``default`` for None or {}, the int of
    {"ef": int in range}; ``_DECLINED`` for anything else (validation would change or reject it,
    so the general path must see it)."""
    if not params:
        return default if params is None or type(params) is dict else _DECLINED
    ef = params.get("ef") if type(params) is dict and len(params) == 1 else None
    return ef if type(ef) is int and 1 <= ef <= validate.MAX_SEARCH_PARAM else _DECLINED


def search_sole_tenant_one(state: CollectionState, query: Any, k: Any, tenant: Any, params: Any
                           ) -> SearchResult | None:
    """One query confined to ``tenant`` (no filter or ``include``) on a collection whose rows all sit
    in one segment, answered by the segment's tenant index in a single C call: the walk of the
    tenant's own graph (``ef`` is its beam) or the exact scan of a small tenant. Only the tenant's
    rows are read, as on the general path. None for anything else (a tenant routed to the shared
    index, a big tenant without a graph, params beyond an int ``ef``, input the C call does not
    take) or a short answer: the general path then validates, plans and answers."""
    view = state.sole
    if view is None or type(tenant) is not str:
        return None
    seg = view.segment
    index = seg.tenant_index
    ef = _single_call_ef(params, DEFAULT_GRAPH_EF)
    if ef is _DECLINED or index is None or not tenant_search.routed(seg, tenant):
        return None
    found = index.search_one(query, k, tenant, ef, seg.ids)
    if found is None:
        return None
    ids, dists, filled, plan = found
    matching = index.count(tenant)
    if filled < min(k, matching):
        return None
    stats = {"plans": [plan], "matching_rows": matching, "estimated_selectivity": matching / state.total_rows,
             "complete": True}
    return SearchResult(ids=ids, distances=dists, attributes=None, stats=stats)


def search_sole_filtered_one(state: CollectionState, query: Any, k: Any, compiled: Any, params: Any
                             ) -> SearchResult | None:
    """One query with a compiled filter (no tenant or ``include``) on a collection whose rows all sit
    in one segment, in a single C call: the planner's exact scan of a minority of matching rows
    (``kernels.topk_at_one``) or its filtered walk of the index (``VectorIndex.search_one``), both
    taking only what validation would pass unchanged. A selective filter's scan costs a few
    microseconds, so the general path's layers would dominate. None for anything else, or when the
    walk came back short (the general path then validates, plans, falls back and answers)."""
    view = state.sole
    if view is None:
        return None
    ef = _single_call_ef(params, None)
    if ef is _DECLINED:
        return None
    seg = view.segment
    hit = _filtered(view, compiled)
    plan = planner.choose(seg.index, seg.num_rows, hit.count, True, {}, state.dim).strategy
    want = min(k, hit.count) if type(k) is int else 0
    if plan == "exact":
        # exact_search gathers only a minority of rows; for more it scans them all with the mask
        found = None if hit.count >= seg.num_rows // 2 else kernels.topk_at_one(query, seg.vectors, hit.rows, k,
                                                                                 state.metric, seg.ids)
    else:
        found = seg.index.search_one(query, k, ef, seg.ids, hit.allowed)
        if found is not None and found[2] < want:
            return None
    if found is None:
        return None
    ids, dists, filled = found
    stats = {"plans": [plan], "matching_rows": hit.count, "estimated_selectivity": hit.count / state.total_rows,
             "complete": want == 0 or filled >= want}
    return SearchResult(ids=ids, distances=dists, attributes=None, stats=stats)


def _search_sole_filtered(
    state: CollectionState, queries: np.ndarray, k: int, compiled: Any, params: Mapping[str, Any]
) -> SearchResult | None:
    """A filtered search of a collection whose rows all sit in one segment: the general path's plan
    for that one segment, without its per-segment lists and merge (a selective filter's exact plan
    costs only a few microseconds, so the loop around it would dominate). None when that shape does
    not hold."""
    view = state.sole
    if view is None:
        return None
    offsets, dists, used, count = _search_segment(view, state, queries, k, compiled, params, None, None)
    want = min(k, count)
    stats = {"plans": [used], "matching_rows": count, "estimated_selectivity": count / state.total_rows,
             "complete": want == 0 or planner.all_filled(offsets, want)}
    return SearchResult(ids=_to_ids(view.segment.ids, offsets), distances=dists.astype(np.float32, copy=False),
                        attributes=None, stats=stats)


def _search_segment(
    view: SegmentView,
    state: CollectionState,
    queries: np.ndarray,
    k: int,
    compiled: Any,
    params: Mapping[str, Any],
    tenant: TenantScope | None,
    index_stats: list[dict[str, Any]] | None,
) -> tuple[np.ndarray, np.ndarray, str, int]:
    """One sealed segment -> (offsets (q, k), distances (q, k), plan used, matching rows)."""
    seg = view.segment
    allowed = view.allowed
    if tenant is not None and tenant_search.routed(seg, tenant.name):
        if tenant.user_filter is not None:
            fmask = _filter_mask(seg, seg.table, tenant.user_filter)
            allowed = fmask if allowed is None else (fmask & allowed)
        return tenant_search.search(seg, tenant.name, queries, k, params, allowed, index_stats)
    if tenant is not None:
        compiled = tenant.visible
    rows = None
    if compiled is not None:
        allowed, count, rows = _filtered(view, compiled)
    else:
        count = view.live
    plan = planner.choose(seg.index, seg.num_rows, count, compiled is not None, params, state.dim)
    offsets, dists, used = planner.run(plan, seg.index, seg.vectors, state.metric, queries, k, params, allowed,
                                       index_stats, rows)
    return offsets, dists, used, count


def _to_ids(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row offsets (-1 = padding) -> the user's ids (-1 kept)."""
    out = ids.take(offsets, mode="clip")
    # Padding sorts last, so the last column says whether there is any (one read for one query).
    if offsets.size and (offsets.item(0, -1) < 0 if offsets.shape[0] == 1 else offsets[:, -1].min() < 0):
        out[offsets < 0] = -1
    return out


def gather_rows(
    state: CollectionState, ids: np.ndarray, include: Sequence[str], *, keep_missing: bool = False
) -> pa.Table:
    """Rows of ``ids`` as a table: "id" + ``include`` columns, in the order asked.

    Missing ids are dropped, or (``keep_missing``) kept as rows of nulls so the table aligns with
    ``ids`` (search results padded with -1).
    """
    n = ids.shape[0]
    source = np.full(n, -1, np.int64)
    rows = np.full(n, -1, np.int64)
    for s, view in enumerate(state.segments):
        todo = np.flatnonzero(source < 0)
        if todo.size == 0:
            break
        found = _segment_rows(view, ids[todo])
        hit = found >= 0
        source[todo[hit]] = s
        rows[todo[hit]] = found[hit]
    for m, mem in enumerate(state.mems):
        todo = np.flatnonzero(source < 0)
        if todo.size == 0 or not mem.num_rows:
            continue
        found = mem.lookup(ids[todo])
        hit = found >= 0
        source[todo[hit]] = len(state.segments) + m
        rows[todo[hit]] = found[hit]

    present = np.flatnonzero(source >= 0)
    pieces: dict[str, list[Any]] = {name: [] for name in include}
    order: list[np.ndarray] = []
    for s in np.unique(source[present]):
        pos = present[source[present] == s]
        take = pa.array(rows[pos])
        order.append(pos)
        for name in include:
            pieces[name].append(_column_piece(state, int(s), name, take, rows[pos]))
    positions = np.concatenate(order) if order else np.zeros(0, np.int64)
    columns: dict[str, Any] = {}
    if keep_missing:
        # Row i of the output is row inverse[i] of the concatenated pieces, or null when missing.
        inverse = np.zeros(n, np.int64)
        inverse[positions] = np.arange(positions.size)
        take = pa.array(inverse, mask=source < 0)
        columns["id"] = pa.array(ids, mask=source < 0)
    else:
        # Output in the order asked: sort found positions back.
        back = np.argsort(positions, kind="stable")
        take = pa.array(back)
        columns["id"] = pa.array(ids[np.sort(positions)])
    for name in include:
        column = pa.concat_arrays(pieces[name]) if pieces[name] else _empty_column(state, name)
        columns[name] = column.take(take)
    return pa.table(columns)


def _segment_rows(view: SegmentView, ids: np.ndarray) -> np.ndarray:
    seg = view.segment
    if seg.num_rows == 0 or ids.size == 0:
        return np.full(ids.shape[0], -1, np.int64)
    pos = np.minimum(np.searchsorted(seg.ids, ids), seg.num_rows - 1)
    found = (seg.ids[pos] == ids) & ~view.deleted[pos]
    return np.where(found, pos, -1).astype(np.int64)


def _column_piece(state: CollectionState, source: int, name: str, take: pa.Array, rows: np.ndarray) -> pa.Array:
    if source < len(state.segments):
        column = state.segments[source].segment.table.column(name)
        return column.take(take).combine_chunks()
    mem = state.mems[source - len(state.segments)]
    if name == "vector":
        vectors = np.ascontiguousarray(mem.vectors[rows])
        return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), state.dim)
    return mem.attributes.column(name).take(take).combine_chunks()


def _empty_column(state: CollectionState, name: str) -> pa.Array:
    if name == "vector":
        return pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(0, np.float32)), state.dim)
    return pa.array([], type=state.mems[-1].attributes.schema.field(name).type)
