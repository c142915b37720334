"""numba kernels for inverted files: posting-list scans, capacity-constrained assignment, replication.

Scans keep the best ``k`` of the probed rows in a bounded max-heap (``selection.heap_push``) and
probe lists in the order given (nearest centroid first): ``n_min`` lists always, then more while
a filter has left fewer than ``k_fill`` allowed rows, up to ``n_max`` lists or ``max_rows`` rows
read (the I/O budget; the first list is always read). Rows past the end of ``mask`` are disallowed.

Metric codes are ``kernels.distance``'s (0 = l2, 1 = ip, 2 = cosine). Nothing here validates its
arguments: the index modules do that once per call.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
from numba import njit

from vecdb.kernels.distance import COSINE, IP, L2, distance_f32, dot_f32, l2_f32
from vecdb.kernels.selection import heap_push, heap_sort_out


@njit(cache=True, nogil=True)
def push_unique(hd: np.ndarray, hk: np.ndarray, size: int, d: float, key: int) -> int:
    """``heap_push`` that ignores a key already held: a replicated row is scored once per list it
    sits in, with the same distance, so the key is checked only when the row would enter."""
    if size == hd.shape[0] and not (d < hd[0] or (d == hd[0] and key < hk[0])):
        return size
    for j in range(size):
        if hk[j] == key:
            return size
    return heap_push(hd, hk, size, d, key)


@njit(cache=True, nogil=True)
def _allowed(mask: np.ndarray, filtered: bool, row: int) -> bool:
    return not filtered or (row < mask.shape[0] and mask[row])


@njit(cache=True, nogil=True)
def scan_offsets(
    query: np.ndarray, vectors: np.ndarray, rows: np.ndarray, list_start: np.ndarray, order: np.ndarray,
    n_min: int, n_max: int, max_rows: int, metric: int, mask: np.ndarray, filtered: bool, k_fill: int,
    hd: np.ndarray, hk: np.ndarray,
) -> tuple[int, int, int, int]:
    """IVF scan: lists hold row offsets ``rows`` (CSR by ``list_start`` (L+1,) int64) into
    ``vectors`` (n, d) float32. -> (heap size, lists probed, rows read, rows scored)."""
    size = 0  # the heap holds distinct allowed rows: k_fill of them ends a filter's extra probes
    probed = 0
    read = 0
    scored = 0
    for li in range(n_max):
        if li >= n_min and (not filtered or size >= k_fill):
            break
        lst = order[li]
        lo = list_start[lst]
        hi = list_start[lst + 1]
        if li > 0 and read + (hi - lo) > max_rows:
            break
        probed += 1
        read += hi - lo
        for j in range(lo, hi):
            r = rows[j]
            if not _allowed(mask, filtered, r):
                continue
            d = distance_f32(query, vectors[r], metric)
            scored += 1
            size = heap_push(hd, hk, size, d, r)
    return size, probed, read, scored


@njit(cache=True, nogil=True)
def scan_records(
    query: np.ndarray, recs: np.ndarray, rec_ids: np.ndarray, list_start: np.ndarray, order: np.ndarray,
    n_min: int, n_max: int, max_rows: int, metric: int, mask: np.ndarray, filtered: bool, k_fill: int,
    hd: np.ndarray, hk: np.ndarray,
) -> tuple[int, int, int, int]:
    """SPANN scan: ``recs`` (N, d+1) float32 records, column 0 the row offset (read through the
    uint32 view ``rec_ids`` of the same buffer), columns 1.. the vector; a list is the contiguous
    block ``list_start[l]:list_start[l+1]``. metric: l2 or ip. Replicas are de-duplicated.
    -> (heap size, lists probed, rows read, rows scored)."""
    size = 0  # the heap holds distinct allowed rows: k_fill of them ends a filter's extra probes
    probed = 0
    read = 0
    scored = 0
    for li in range(n_max):
        if li >= n_min and (not filtered or size >= k_fill):
            break
        lst = order[li]
        lo = list_start[lst]
        hi = list_start[lst + 1]
        if li > 0 and read + (hi - lo) > max_rows:
            break
        probed += 1
        read += hi - lo
        for j in range(lo, hi):
            r = np.int64(rec_ids[j, 0])
            if not _allowed(mask, filtered, r):
                continue
            v = recs[j, 1:]
            d = l2_f32(query, v) if metric == L2 else -dot_f32(query, v)
            scored += 1
            size = push_unique(hd, hk, size, d, r)
    return size, probed, read, scored


@njit(cache=True, nogil=True)
def nearest_lists(dist: np.ndarray, out_l: np.ndarray, out_d: np.ndarray) -> int:
    """The len(out_l) smallest of the centroid distances ``dist`` (L,), ascending (ties by id), into
    out_l int64 / out_d float32 by one pass through a bounded heap. -> how many (min(len, L))."""
    size = 0
    cap = out_d.shape[0]
    for c in range(dist.shape[0]):
        # once full, only a distance below the worst kept can enter (equal ones lose on id)
        if size < cap or dist[c] < out_d[0]:
            size = heap_push(out_d, out_l, size, dist[c], c)
    heap_sort_out(out_d, out_l, size)
    return size


@njit(cache=True, nogil=True)
def ranked_count(order: np.ndarray) -> int:
    """How many lists a ranking holds: entries before the first -1 (padding sorts last)."""
    n = 0
    while n < order.shape[0] and order[n] >= 0:
        n += 1
    return n


@njit(cache=True, nogil=True)
def filtered_probes(n_min: int, selectivity: float, n_max: int, probe_factor: int) -> int:
    """Lists a filtered query probes before its stop-at-k rule applies: a filter keeping a fraction
    ``selectivity`` of the rows leaves that fraction of each list, so probe 1/selectivity times as
    many lists (at most ``probe_factor`` times, and ``n_max``) to see as many candidates."""
    if selectivity >= 1.0:
        return n_min
    return min(n_max, int(np.ceil(n_min / max(selectivity, 1.0 / probe_factor))))


@njit(cache=True, nogil=True)
def pruned_count(order: np.ndarray, order_d: np.ndarray, max_lists: int, eps: float, selectivity: float,
                 probe_factor: int) -> int:
    """Lists a query probes before a filter's stop-at-k rule: of the ranked lists ``order``
    (ascending centroid distances ``order_d``, padded -1), those within ``d1 + eps * |d1|`` of the
    nearest, at least 1 and at most ``max_lists``, then widened for a filter by ``filtered_probes``."""
    n_order = ranked_count(order)
    if n_order <= 0:
        return 0
    limit = np.inf if eps == np.inf else order_d[0] + eps * abs(order_d[0])
    n_min = 1
    for li in range(1, min(max_lists, n_order)):
        if order_d[li] <= limit:
            n_min += 1
    return filtered_probes(n_min, selectivity, n_order, probe_factor)


@njit(cache=True, nogil=True)
def spann_query(
    query: np.ndarray, order: np.ndarray, order_d: np.ndarray, max_lists: int, eps: float, selectivity: float,
    probe_factor: int, recs: np.ndarray, rec_ids: np.ndarray, list_start: np.ndarray, max_rows: int, metric: int,
    mask: np.ndarray, filtered: bool, scale: float, out_d: np.ndarray, out_i: np.ndarray,
) -> tuple[int, int, int]:
    """One full-precision SPANN query over its ranked lists ``order`` (centroid distances ``order_d``,
    padded -1 / +inf): query-aware pruning (``pruned_count``), then ``scan_records``. out_d/out_i (k,)
    come back sorted, padded +inf/-1, distances times ``scale``.
    -> (lists probed, rows read, rows scored)."""
    n_min = pruned_count(order, order_d, max_lists, eps, selectivity, probe_factor)
    n_order = ranked_count(order)
    k = out_d.shape[0]
    size, probed, read, scored = scan_records(query, recs, rec_ids, list_start, order, n_min, n_order, max_rows,
                                              metric, mask, filtered, k, out_d, out_i)
    heap_sort_out(out_d, out_i, size)
    for j in range(size):
        out_d[j] *= scale
    for j in range(size, k):
        out_d[j] = np.inf
        out_i[j] = -1
    return probed, read, scored


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_madvise = _LIBC.madvise
_madvise.argtypes = [ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]  # address passed as an integer
_madvise.restype = ctypes.c_int
MADV_WILLNEED = 3
_PAGE_MASK = ~np.uint64(4095)


# cache=False: a compiled call to a ctypes function embeds its address, which numba will not cache.
@njit(cache=False, nogil=True)
def prefetch_lists(base: np.uint64, list_start: np.ndarray, order: np.ndarray, count: int, rec_bytes: int) -> int:
    """Ask the kernel to read the first ``count`` lists of ``order`` now (madvise WILLNEED over
    each list's bytes of the mapping that starts at address ``base``): a cold query's list reads
    are then in flight together instead of one page fault at a time. -> calls that failed."""
    failed = 0
    for li in range(count):
        lst = order[li]
        start = base + np.uint64(list_start[lst] * rec_bytes)
        length = np.uint64((list_start[lst + 1] - list_start[lst]) * rec_bytes)
        if length == 0:
            continue
        aligned = start & _PAGE_MASK
        if _madvise(aligned, length + (start - aligned), MADV_WILLNEED) != 0:
            failed += 1
    return failed


@njit(cache=True, nogil=True)
def plan_probes(
    rows: np.ndarray, list_start: np.ndarray, order: np.ndarray, n_min: int, n_max: int, max_rows: int,
    mask: np.ndarray, filtered: bool, k_fill: int,
) -> tuple[int, int]:
    """How many lists of ``order`` a code scan probes (the rule of ``scan_offsets``) and how many
    rows that reads; ``rows`` (N,) holds each posting row's offset (replicas counted once).
    -> (lists, rows read)."""
    probed = 0
    read = 0
    seen = {np.int64(-1)}
    found = 0
    for li in range(n_max):
        if li >= n_min and (not filtered or found >= k_fill):
            break
        lst = order[li]
        lo = list_start[lst]
        hi = list_start[lst + 1]
        if li > 0 and read + (hi - lo) > max_rows:
            break
        probed += 1
        read += hi - lo
        if filtered:
            for j in range(lo, hi):
                r = np.int64(rows[j])
                if _allowed(mask, filtered, r) and r not in seen:
                    seen.add(r)
                    found += 1
    return probed, read


@njit(cache=True, nogil=True)
def balanced_assign(dist: np.ndarray, cap: int, n_pref: int) -> np.ndarray:
    """Assign each of m points to one of k clusters, no cluster over ``cap`` (needs m <= k * cap).

    dist: (m, k) float32 point-to-centroid distances. Points with the largest gap between their
    nearest and second-nearest centroid choose first (they lose most by moving); each takes its
    nearest non-full cluster among its ``n_pref`` nearest, else the nearest non-full one overall.
    -> labels (m,) int64.
    """
    m, k = dist.shape
    n_pref = min(n_pref, k)
    pref = np.empty((m, n_pref), dtype=np.int64)
    pref_d = np.empty(n_pref, dtype=np.float32)
    regret = np.zeros(m, dtype=np.float32)
    for i in range(m):
        # insertion into a sorted buffer of n_pref: O(k * n_pref) and no allocation per row
        size = 0
        for c in range(k):
            d = dist[i, c]
            if size == n_pref and not d < pref_d[size - 1]:
                continue
            pos = size if size < n_pref else n_pref - 1
            while pos > 0 and pref_d[pos - 1] > d:
                pref_d[pos] = pref_d[pos - 1]
                pref[i, pos] = pref[i, pos - 1]
                pos -= 1
            pref_d[pos] = d
            pref[i, pos] = c
            if size < n_pref:
                size += 1
        if n_pref > 1:
            regret[i] = pref_d[1] - pref_d[0]
    counts = np.zeros(k, dtype=np.int64)
    labels = np.full(m, -1, dtype=np.int64)
    for i in np.argsort(-regret):
        for t in range(n_pref):
            c = pref[i, t]
            if counts[c] < cap:
                labels[i] = c
                counts[c] += 1
                break
        if labels[i] < 0:
            o = np.argsort(dist[i])
            for t in range(k):
                c = o[t]
                if counts[c] < cap:
                    labels[i] = c
                    counts[c] += 1
                    break
    return labels


@njit(cache=True, nogil=True)
def rng_replicas(
    x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, cand: np.ndarray, cand_d: np.ndarray,
    replicas: int, eps: float, metric: int, rng_factor: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Extra lists for boundary vectors, pruned by the RNG rule.

    x: (n, d) float32, centroids (L, d), labels (n,) primary list, cand/cand_d (n, T) candidate
    lists by ascending distance (-1 = none). A candidate c qualifies when d(x, c) <= d1 + eps*|d1|
    (d1 the nearest candidate) and no list already chosen for x is closer to c than rng_factor
    times x is (then c would cover the same side of x; rng_factor 1 is the paper's rule, smaller
    values prune less, which high-dimensional data needs: there every other centroid is farther
    from a row than neighbouring centroids are from each other).
    -> (lists (n, replicas-1) int64 padded -1, ratio (n, replicas-1) float32 = d(x, c) / d1 when
    d1 > 0, used to give the most ambiguous rows room first).
    """
    n, t_max = cand.shape
    extra = max(replicas - 1, 0)
    out = np.full((n, extra), -1, dtype=np.int64)
    ratio = np.full((n, extra), np.inf, dtype=np.float32)
    chosen = np.empty(replicas, dtype=np.int64)
    for i in range(n):
        if extra == 0 or cand[i, 0] < 0:
            continue
        d1 = cand_d[i, 0]
        limit = d1 + eps * abs(d1)
        chosen[0] = labels[i]
        nc = 1
        for t in range(t_max):
            c = cand[i, t]
            if c < 0 or cand_d[i, t] > limit or nc >= replicas:
                break
            if c == labels[i]:
                continue
            dxc = cand_d[i, t]
            keep = True
            for s in range(nc):
                if distance_f32(centroids[chosen[s]], centroids[c], metric) < rng_factor * dxc:
                    keep = False
                    break
            if keep:
                out[i, nc - 1] = c
                ratio[i, nc - 1] = dxc / d1 if d1 > 0 else dxc - d1
                chosen[nc] = c
                nc += 1
    return out, ratio


@njit(cache=True, nogil=True)
def accept_within_capacity(lists: np.ndarray, order: np.ndarray, counts: np.ndarray, cap: int) -> np.ndarray:
    """Accept proposals ``lists`` (p,) int64 in ``order`` while their list holds fewer than ``cap``
    rows; ``counts`` (L,) int64 is updated in place. -> (p,) bool accepted."""
    ok = np.zeros(lists.shape[0], dtype=np.bool_)
    for i in order:
        c = lists[i]
        if counts[c] < cap:
            counts[c] += 1
            ok[i] = True
    return ok


@njit(cache=True, nogil=True)
def fill_records(x: np.ndarray, members: np.ndarray, recs: np.ndarray, rec_ids: np.ndarray) -> None:
    """recs (N, d+1) float32 <- [row offset bits, x[row]] for each row in ``members`` (N,) int64."""
    for j in range(members.shape[0]):
        r = members[j]
        rec_ids[j, 0] = np.uint32(r)
        recs[j, 1:] = x[r]


@njit(cache=True, nogil=True)
def check_records(rec_ids: np.ndarray, n: int) -> bool:
    """Every record's row offset is below ``n``."""
    for j in range(rec_ids.shape[0]):  # noqa: SIM110 (numba compiles no generator expressions)
        if rec_ids[j, 0] >= n:
            return False
    return True


__all__ = [
    "COSINE", "IP", "L2", "accept_within_capacity", "balanced_assign", "check_records", "fill_records",
    "plan_probes", "prefetch_lists", "push_unique", "rng_replicas", "scan_offsets", "scan_records",
]
