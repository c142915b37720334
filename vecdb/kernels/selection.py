"""numba top-k selection over distance arrays, and merging of per-part top-k lists.

Order is ascending ``(distance, key)`` where the key is the row index (``topk``) or the id
(``merge``); NaN distances are never selected by ``topk`` (as ``reference.topk``) and sort after
every number in ``merge`` (as numpy's lexsort in ``reference.merge_topk``). Unfilled slots are
padded with -1 / +inf. A bounded max-heap keeps the k best, so one pass costs O(n log k) at worst
and O(n) when most rows lose against the current k-th (the common case).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _worse(d1: float, k1: int, d2: float, k2: int) -> bool:
    """True when (d1, k1) ranks after (d2, k2); NaN ranks after every number."""
    if d1 != d1:
        return d2 == d2 or k1 > k2
    if d2 != d2:
        return False
    return d1 > d2 or (d1 == d2 and k1 > k2)


@njit(cache=True, nogil=True)
def _sift_down(hd: np.ndarray, hk: np.ndarray, size: int, pos: int) -> None:
    # Max-heap on (distance, key): the root is the worst entry kept so far.
    d = hd[pos]
    key = hk[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(hd[right], hk[right], hd[child], hk[child]):
            child = right
        if not _worse(hd[child], hk[child], d, key):
            break
        hd[pos] = hd[child]
        hk[pos] = hk[child]
        pos = child
    hd[pos] = d
    hk[pos] = key


@njit(cache=True, nogil=True)
def heap_push(hd: np.ndarray, hk: np.ndarray, size: int, d: float, key: int) -> int:
    """Offer (d, key) to a bounded max-heap of capacity ``len(hd)`` holding ``size`` entries;
    returns the new size. Callable from other njit code (graph search keeps its results this way)."""
    cap = hd.shape[0]
    if size < cap:
        pos = size
        # sift up
        while pos > 0:
            parent = (pos - 1) // 2
            if not _worse(d, key, hd[parent], hk[parent]):
                break
            hd[pos] = hd[parent]
            hk[pos] = hk[parent]
            pos = parent
        hd[pos] = d
        hk[pos] = key
        return size + 1
    if cap == 0 or not _worse(hd[0], hk[0], d, key):
        return size
    hd[0] = d
    hk[0] = key
    _sift_down(hd, hk, size, 0)
    return size


@njit(cache=True, nogil=True)
def heap_sort_out(hd: np.ndarray, hk: np.ndarray, size: int) -> None:
    """Sort a max-heap of ``size`` entries in place into ascending (distance, key) order."""
    end = size
    while end > 1:
        end -= 1
        d = hd[end]
        key = hk[end]
        hd[end] = hd[0]
        hk[end] = hk[0]
        hd[0] = d
        hk[0] = key
        _sift_down(hd, hk, end, 0)


# Rows are screened a chunk at a time once the heap is full: one vectorized min over the chunk
# decides whether any row in it can enter, so most of a long scan never reaches the heap code.
CHUNK = 256


@njit(cache=True, nogil=True)
def _offer_range(
    dist: np.ndarray,
    lo: int,
    hi: int,
    k: int,
    mask: np.ndarray,
    use_mask: bool,
    out_idx: np.ndarray,
    out_dist: np.ndarray,
    size: int,
    thresh: float,
) -> tuple[int, float]:
    """Offer rows lo..hi to the heap; ``thresh`` is the k-th best so far (+inf until full), kept
    in a register because out_dist may alias dist as far as the compiler knows."""
    for i in range(lo, hi):
        d = np.float32(dist[i])
        # Rejects NaN too (the comparison is False). A row equal to the k-th best loses as
        # well: every kept index is smaller than i.
        if not d < thresh and size == k:
            continue
        if d != d or (use_mask and not mask[i]):
            continue
        size = heap_push(out_dist, out_idx, size, d, i)
        if size == k:
            thresh = out_dist[0]
    return size, thresh


@njit(cache=True, nogil=True)
def finish_heap(out_idx: np.ndarray, out_dist: np.ndarray, size: int) -> int:
    """Sort a result max-heap of ``size`` entries ascending by (distance, index) and pad the rest
    with -1 / +inf; returns ``size``."""
    heap_sort_out(out_dist, out_idx, size)
    for j in range(size, out_idx.shape[0]):
        out_idx[j] = -1
        out_dist[j] = np.inf
    return size


@njit(cache=True, nogil=True)
def _ordered_key(bits: np.int32) -> np.int32:
    # float32 bits -> int32 with the same order as the floats (negative floats have their
    # magnitude bits flipped). -0.0 sorts below 0.0 and a negative NaN below everything: both
    # only make the chunk screen keep a chunk, never drop a row that could enter.
    return bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF))


@njit(cache=True, nogil=True)
def topk_into(
    dist: np.ndarray, k: int, mask: np.ndarray, use_mask: bool, out_idx: np.ndarray, out_dist: np.ndarray
) -> int:
    """dist (n,) C-contiguous float32, mask (n,) uint8/bool read only when ``use_mask``
    -> out_idx (k,) int64, out_dist (k,) float32 ascending, padded; returns how many were filled."""
    if k == 0:
        return 0
    bits = dist.view(np.int32)
    one = np.empty(1, dtype=np.float32)
    n = dist.shape[0]
    size = 0
    thresh = np.float32(np.inf)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        if size == k:
            one[0] = thresh
            tkey = _ordered_key(one.view(np.int32)[0])
            low = np.int32(0x7FFFFFFF)
            for i in range(lo, hi):
                low = min(low, _ordered_key(bits[i]))
            if low >= tkey:
                continue
        size, thresh = _offer_range(dist, lo, hi, k, mask, use_mask, out_idx, out_dist, size, thresh)
    return finish_heap(out_idx, out_dist, size)


@njit(cache=True, nogil=True)
def topk_u16_into(
    dist: np.ndarray, k: int, mask: np.ndarray, use_mask: bool, out_idx: np.ndarray, out_dist: np.ndarray
) -> int:
    """``topk_into`` for uint16 distances (the 4-bit fast scan's output), without a float copy."""
    if k == 0:
        return 0
    n = dist.shape[0]
    size = 0
    thresh = np.float32(np.inf)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        if size == k:
            low = np.uint16(0xFFFF)
            for i in range(lo, hi):
                low = min(low, dist[i])
            if np.float32(low) >= thresh:
                continue
        size, thresh = _offer_range(dist, lo, hi, k, mask, use_mask, out_idx, out_dist, size, thresh)
    return finish_heap(out_idx, out_dist, size)


@njit(cache=True, nogil=True)
def topk_rows_into(
    dist: np.ndarray, k: int, mask: np.ndarray, mask_mode: int, out_idx: np.ndarray, out_dist: np.ndarray
) -> None:
    """dist (q, n) float32 -> out (q, k); mask_mode 0 = none, 1 = one (n,) mask for all rows,
    2 = (q, n)."""
    for r in range(dist.shape[0]):
        m = mask[r] if mask_mode == 2 else mask[0]
        topk_into(dist[r], k, m, mask_mode != 0, out_idx[r], out_dist[r])


@njit(cache=True, nogil=True)
def topk_u16_rows_into(
    dist: np.ndarray, k: int, mask: np.ndarray, mask_mode: int, out_idx: np.ndarray, out_dist: np.ndarray
) -> None:
    """``topk_rows_into`` for uint16 distances."""
    for r in range(dist.shape[0]):
        m = mask[r] if mask_mode == 2 else mask[0]
        topk_u16_into(dist[r], k, m, mask_mode != 0, out_idx[r], out_dist[r])


@njit(cache=True, nogil=True)
def merge_into(ids: np.ndarray, dists: np.ndarray, k: int, out_ids: np.ndarray, out_d: np.ndarray) -> None:
    """ids (q, t) int64 (-1 = empty), dists (q, t) float32 -> out (q, k), by (distance, id)."""
    for r in range(ids.shape[0]):
        size = 0
        for c in range(ids.shape[1]):
            key = ids[r, c]
            if key >= 0:
                size = heap_push(out_d[r], out_ids[r], size, dists[r, c], key)
        heap_sort_out(out_d[r], out_ids[r], size)
        for j in range(size, k):
            out_ids[r, j] = -1
            out_d[r, j] = np.inf
