"""numba kernels for HNSW graphs: beam search, neighbour selection, batch insertion, repair.

Graph layout (all arrays owned by ``vecdb.index.hnsw``):

* layer 0: ``links0`` (cap, 2m) int32 and ``counts0`` (cap,) int32, one row per node;
* upper layers: node ``i`` with ``levels[i] = L > 0`` owns rows ``up_off[i] + l - 1`` (l = 1..L) of
  ``links_up`` (rows, m) int32 / ``counts_up`` (rows,) int32; level-0 nodes own none.

Distance modes (``dmode``): 0 = squared l2, 1 = -dot, 2 = weighted squared l2 ``sum w (q - x)^2``
used for 8-bit scalar codes (``q`` already mapped into code space). Rows may be float32 or uint8.

Concurrency: searches only read the graph and bound every neighbour id by ``n_limit`` (the node
count of the caller's snapshot), so a search that runs while an insert rewrites rows in place sees
only valid ids. Each search owns its visited array (epoch-tagged uint16, reset on wrap-around).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# Reassociation lets LLVM vectorise the reductions; contract allows FMA. No nnan/ninf flags.
FAST = {"reassoc", "contract", "nsz", "arcp"}

# Distance modes: l2 / ip on float rows or uint8 codes, weighted l2 on codes, and ip on codes with the
# query quantized to int8 (IP8: exact integer sums, four times fewer SIMD operations than widening
# every code to float; only the traversal uses it, the re-rank is exact).
L2, IP, WL2, IP8 = 0, 1, 2, 3
# Traversal modes of the C traversal (VDB_GRAPH_* in native/include/vecdb_kernels.h).
C_L2_F32, C_IP_F32, C_WL2_U8, C_IP_U8, C_IP_I8 = 0, 1, 2, 3, 4
# IP8 queries use [-63, 63]: two products of a uint8 code and the query then sum below 2^15, so
# vpmaddubsw's saturating 16-bit pair sums are exact.
I8_LEVELS = 63
_EPOCH_MAX = 65535
_PREFETCH_LINES = 8  # cache lines prefetched per row: the hardware streams the rest of a long row


@intrinsic
def prefetch_row(typingctx, arr, i, nlines):  # type: ignore[no-untyped-def]
    """Hint the CPU to load ``nlines`` cache lines of row ``i`` of a 2-D C array (no-op semantics)."""
    sig = types.void(arr, i, nlines)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer2(
            context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout,
            inds=[row, context.get_constant(types.intp, 0)])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        base = builder.bitcast(ptr, i8p)
        count = context.cast(builder, args[2], signature.args[2], types.intp)
        with cgutils.for_range(builder, count) as loop:
            addr = builder.gep(base, [builder.mul(loop.index, context.get_constant(types.intp, 64))])
            # read access, high temporal locality, data cache
            builder.call(fn, [addr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def call_native(typingctx, fnptr, args):  # type: ignore[no-untyped-def]
    """Call the C function at address ``fnptr`` with ``args``, a tuple whose arrays are passed as
    their data pointers and whose integers and booleans as int64; returns the C int64 result.

    The address is a run-time value, so functions that use this stay cacheable (a ctypes
    binding would bake the address into the compiled code)."""
    for ty in args:
        if not isinstance(ty, (types.Array, types.Integer, types.Boolean)):
            raise TypeError(f"call_native passes arrays and integers only, got {ty}")
    sig = types.int64(fnptr, args)

    def codegen(context, builder, signature, llargs):  # type: ignore[no-untyped-def]
        address, packed = llargs
        tupty = signature.args[1]
        i8p, i64 = ir.IntType(8).as_pointer(), ir.IntType(64)
        values, ctypes_ = [], []
        for ty, value in zip(tupty, cgutils.unpack_tuple(builder, packed, len(tupty)), strict=True):
            if isinstance(ty, types.Array):
                values.append(builder.bitcast(context.make_array(ty)(context, builder, value).data, i8p))
                ctypes_.append(i8p)
            else:
                values.append(context.cast(builder, value, ty, types.int64))
                ctypes_.append(i64)
        fnty = ir.FunctionType(i64, ctypes_)
        target = builder.inttoptr(context.cast(builder, address, signature.args[0], types.int64), fnty.as_pointer())
        return builder.call(target, values)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _row_lines(data: np.ndarray) -> np.intp:
    return min((data.shape[1] * data.itemsize + 63) // 64, _PREFETCH_LINES)


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _l2(q: np.ndarray, row: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for j in range(q.shape[0]):
        t = q[j] - np.float32(row[j])
        acc += t * t
    return acc


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _dot(q: np.ndarray, row: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for j in range(q.shape[0]):
        acc += q[j] * np.float32(row[j])
    return acc


@njit(cache=True, nogil=True, inline="always")
def _idot(q: np.ndarray, row: np.ndarray) -> np.int64:
    """Exact integer dot product of an int8 query and a uint8 code row."""
    acc = np.int64(0)
    for j in range(q.shape[0]):
        acc += np.int64(q[j]) * np.int64(row[j])
    return acc


@njit(cache=True, nogil=True)
def quantize_query_i8(qt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An IP8 query: qt (d,) float32 -> (int8 values in [-I8_LEVELS, I8_LEVELS], (1,) float32 step)
    with qt ~= step * values; an all-zero query gets step 1."""
    top = np.float32(0.0)
    for j in range(qt.shape[0]):
        top = max(top, abs(qt[j]))
    step = top / np.float32(I8_LEVELS) if top > 0 else np.float32(1.0)
    qi = np.empty(qt.shape[0], np.int8)
    for j in range(qt.shape[0]):
        qi[j] = np.int8(np.rint(qt[j] / step))
    w = np.empty(1, np.float32)
    w[0] = step
    return qi, w


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _wl2(q: np.ndarray, w: np.ndarray, row: np.ndarray) -> np.float32:
    acc = np.float32(0.0)
    for j in range(q.shape[0]):
        t = q[j] - np.float32(row[j])
        acc += w[j] * t * t
    return acc


@njit(cache=True, nogil=True, inline="always")
def _dist(q: np.ndarray, w: np.ndarray, data: np.ndarray, i: np.intp, dmode: int) -> np.float32:
    """Distance from prepared query q (d,) float32 to row i of data (n, d) float32 or uint8.

    One simple loop per mode (a shared loop with branches inside does not vectorise)."""
    if dmode == L2:
        return _l2(q, data[i])
    if dmode == IP:
        return -_dot(q, data[i])
    if dmode == IP8:  # as the C traversal computes it: -(step * float32(exact integer sum))
        return -(w[0] * np.float32(_idot(q, data[i])))
    return _wl2(q, w, data[i])


@njit(cache=True, nogil=True)
def next_tag(visited: np.ndarray, epoch: np.ndarray) -> np.uint16:
    """Advance the epoch of a visited array; clear it once every 65535 searches."""
    e = epoch[0] + 1
    if e >= _EPOCH_MAX:
        visited[:] = 0
        e = 1
    epoch[0] = e
    return np.uint16(e)


# --- binary heaps on parallel (distance, id) arrays -------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _max_push(hd: np.ndarray, hi: np.ndarray, size: int, d: np.float32, i: np.int32) -> int:
    j = size
    while j > 0:
        parent = (j - 1) >> 1
        if hd[parent] >= d:
            break
        hd[j] = hd[parent]
        hi[j] = hi[parent]
        j = parent
    hd[j] = d
    hi[j] = i
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _max_replace_top(hd: np.ndarray, hi: np.ndarray, size: int, d: np.float32, i: np.int32) -> None:
    j = 0
    while True:
        c = 2 * j + 1
        if c >= size:
            break
        if c + 1 < size and hd[c + 1] > hd[c]:
            c += 1
        if hd[c] <= d:
            break
        hd[j] = hd[c]
        hi[j] = hi[c]
        j = c
    hd[j] = d
    hi[j] = i


@njit(cache=True, nogil=True, inline="always")
def _min_push(hd: np.ndarray, hi: np.ndarray, size: int, d: np.float32, i: np.int32) -> int:
    j = size
    while j > 0:
        parent = (j - 1) >> 1
        if hd[parent] <= d:
            break
        hd[j] = hd[parent]
        hi[j] = hi[parent]
        j = parent
    hd[j] = d
    hi[j] = i
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _min_pop(hd: np.ndarray, hi: np.ndarray, size: int) -> int:
    """Remove the top of a min-heap of ``size`` items (read it before calling); returns the new size."""
    size -= 1
    d = hd[size]
    i = hi[size]
    j = 0
    while True:
        c = 2 * j + 1
        if c >= size:
            break
        if c + 1 < size and hd[c + 1] < hd[c]:
            c += 1
        if hd[c] >= d:
            break
        hd[j] = hd[c]
        hi[j] = hi[c]
        j = c
    if size > 0:
        hd[j] = d
        hi[j] = i
    return size


# --- traversal -----------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _row(node: np.intp, layer: np.intp, links0, counts0, up_off, links_up, counts_up):
    if layer == 0:
        return links0[node], counts0[node]
    r = up_off[node] + layer - 1
    return links_up[r], counts_up[r]


@njit(cache=True, nogil=True, fastmath=FAST)
def greedy(q, w, data, dmode, layer, links0, counts0, up_off, links_up, counts_up, cur, cur_d, n_limit):
    """Greedy descent on one upper layer: move to the closest neighbour until none is closer."""
    changed = True
    while changed:
        changed = False
        row, cnt = _row(cur, layer, links0, counts0, up_off, links_up, counts_up)
        cnt = min(cnt, row.shape[0])
        for j in range(cnt):
            nb = row[j]
            if nb < 0 or nb >= n_limit:
                continue
            d = _dist(q, w, data, nb, dmode)
            if d < cur_d:
                cur_d = d
                cur = nb
                changed = True
    return cur, cur_d


@njit(cache=True, nogil=True, fastmath=FAST)
def beam(q, w, data, dmode, layer, links0, counts0, up_off, links_up, counts_up,
         ep, ep_d, ef, n_limit, allowed, filtered, visited, tag):
    """Best-first search of one layer from ``ep`` keeping the ``ef`` closest allowed nodes.

    Disallowed nodes are traversed but never enter the result heap, so the search keeps expanding
    until it holds ``ef`` allowed nodes (or runs out of reachable ones): a selective mask widens
    the search by itself. Returns (dists, ids, size) as an unsorted max-heap.
    """
    res_d = np.empty(ef, np.float32)
    res_i = np.empty(ef, np.int32)
    cap = max(2 * ef, 64)
    cd = np.empty(cap, np.float32)
    ci = np.empty(cap, np.int32)
    todo = np.empty(max(links0.shape[1], links_up.shape[1]), np.int32)
    lines = _row_lines(data)
    visited[ep] = tag
    csz = _min_push(cd, ci, 0, ep_d, ep)
    rsz = 0
    if not filtered or (ep < allowed.shape[0] and allowed[ep]):
        rsz = _max_push(res_d, res_i, 0, ep_d, ep)
    while csz > 0:
        d = cd[0]
        c = ci[0]
        if rsz >= ef and d > res_d[0]:
            break
        csz = _min_pop(cd, ci, csz)
        row, cnt = _row(c, layer, links0, counts0, up_off, links_up, counts_up)
        cnt = min(cnt, row.shape[0])
        # Pass 1: claim unvisited neighbours and prefetch their rows, so the memory loads of the
        # whole neighbourhood overlap; pass 2 scores them.
        nt = 0
        for j in range(cnt):
            nb = row[j]
            if nb < 0 or nb >= n_limit or visited[nb] == tag:
                continue
            visited[nb] = tag
            todo[nt] = nb
            nt += 1
            prefetch_row(data, nb, lines)
        for t in range(nt):
            nb = todo[t]
            dn = _dist(q, w, data, nb, dmode)
            if rsz < ef or dn < res_d[0]:
                if csz == cd.shape[0]:  # grow: only selective masks get here
                    cd2 = np.empty(2 * csz, np.float32)
                    ci2 = np.empty(2 * csz, np.int32)
                    cd2[:csz] = cd
                    ci2[:csz] = ci
                    cd = cd2
                    ci = ci2
                csz = _min_push(cd, ci, csz, dn, nb)
                if not filtered or (nb < allowed.shape[0] and allowed[nb]):
                    if rsz < ef:
                        rsz = _max_push(res_d, res_i, rsz, dn, nb)
                    else:
                        _max_replace_top(res_d, res_i, rsz, dn, nb)
        if csz > 0 and layer == 0:
            prefetch_row(links0, ci[0], 1)
    return res_d, res_i, rsz


@njit(cache=True, nogil=True)
def native_traverse(native, q, w, data, dmode, links0, counts0, up_off, links_up, counts_up, entry, max_level,
                    n_limit, ef, allowed, filtered, visited, epoch, tag):
    """Greedy descent + layer-0 beam in C (``vdb_hnsw_search``); returns what ``beam`` returns.

    The candidate heap starts at max(2 ef, 64) entries; the rare search that needs more (a
    selective mask) is rerun with room for every node."""
    float_rows = data.itemsize == 4
    if float_rows:
        cmode = C_L2_F32 if dmode == L2 else C_IP_F32
    else:
        cmode = C_WL2_U8 if dmode == WL2 else (C_IP_I8 if dmode == IP8 else C_IP_U8)
    res_d = np.empty(ef, np.float32)
    res_i = np.empty(ef, np.int32)
    todo = np.empty(max(links0.shape[1], links_up.shape[1]), np.int32)
    n_allowed = allowed.shape[0] if filtered else -1
    # A mask keeps disallowed nodes out of the results but not out of the candidates, so a filtered
    # walk queues several times more of them before ef allowed ones are found.
    cap = max(8 * ef, 256) if filtered else max(2 * ef, 64)
    while True:
        cd = np.empty(cap, np.float32)
        ci = np.empty(cap, np.int32)
        rsz = call_native(native, (q, w, data, q.shape[0], cmode, links0, counts0, links0.shape[1], up_off,
                                   links_up, counts_up, links_up.shape[1], entry, max_level, n_limit, ef,
                                   allowed, n_allowed, visited, tag, res_d, res_i, cd, ci, cap, todo, 0, 0))
        if rsz >= 0:
            return res_d, res_i, rsz
        tag = next_tag(visited, epoch)
        cap = min(4 * cap, n_limit + 1)


# --- queries -------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def prepare_query(q, tmode, scale, offset, normalize, qn, qt):
    """Fill qn (the exact-distance query, unit length when ``normalize``) and qt (traversal query).

    tmode: 0 l2 / 1 ip on float rows; 2 l2 / 3 ip on 8-bit codes ``offset + scale * code``.
    """
    d = q.shape[0]
    s = 0.0
    for j in range(d):
        s += np.float64(q[j]) * q[j]
    inv = 1.0 / np.sqrt(s) if normalize and s > 0.0 else 1.0
    for j in range(d):
        qn[j] = np.float32(q[j] * inv)
    for j in range(d):
        if tmode == 2:
            qt[j] = (qn[j] - offset[j]) / scale[j] if scale[j] > 0 else np.float32(0.0)
        elif tmode == 3:
            qt[j] = qn[j] * scale[j]
        else:
            qt[j] = qn[j]


@njit(cache=True, nogil=True)
def traverse(q, w, trav, dmode, links0, counts0, up_off, links_up, counts_up, entry, max_level, n_limit,
             native, ef, allowed, filtered, visited, epoch, tag):
    """Greedy descent and the layer-0 beam for a prepared query, in C when ``native`` is its address,
    else here; returns the result heap (distances, ids, size)."""
    if native != 0:
        return native_traverse(native, q, w, trav, dmode, links0, counts0, up_off, links_up, counts_up, entry,
                               max_level, n_limit, ef, allowed, filtered, visited, epoch, tag)
    cur = entry
    cur_d = _dist(q, w, trav, cur, dmode)
    for layer in range(max_level, 0, -1):
        cur, cur_d = greedy(q, w, trav, dmode, layer, links0, counts0, up_off, links_up, counts_up,
                            cur, cur_d, n_limit)
    return beam(q, w, trav, dmode, 0, links0, counts0, up_off, links_up, counts_up,
                cur, cur_d, ef, n_limit, allowed, filtered, visited, tag)


@njit(cache=True, nogil=True, fastmath=FAST)
def query(qn, qt, shift, w, trav, dmode, vecs, emode, links0, counts0, up_off, links_up, counts_up,
          entry, max_level, n_limit, native, rerank_n, ef, allowed, filtered, visited, epoch, out_i, out_d):
    """One k-NN query; fills out_i (k,) int64 / out_d (k,) float32 (padded -1 / +inf).

    With rerank_n > 0 the traversal ran on codes: the best rerank_n candidates are re-scored with
    exact distances on ``vecs`` (mode ``emode``) before the top k are kept. ``shift`` is added to
    every returned distance (1 for cosine, scored as -dot of unit vectors). ``native``: the address
    of the C traversal (``dispatch.graph_search_pointer``), or 0 to traverse here in numba.
    """
    out_i[:] = -1
    out_d[:] = np.inf
    if entry < 0 or n_limit <= 0:
        return
    tag = next_tag(visited, epoch)
    if dmode == IP8:
        qi, wi = quantize_query_i8(qt)
        res_d, res_i, rsz = traverse(qi, wi, trav, dmode, links0, counts0, up_off, links_up, counts_up, entry,
                                     max_level, n_limit, native, ef, allowed, filtered, visited, epoch, tag)
    else:
        res_d, res_i, rsz = traverse(qt, w, trav, dmode, links0, counts0, up_off, links_up, counts_up, entry,
                                     max_level, n_limit, native, ef, allowed, filtered, visited, epoch, tag)
    order = np.argsort(res_d[:rsz])
    k = out_i.shape[0]
    if rerank_n > 0:
        nr = min(rsz, rerank_n)
        ex = np.empty(nr, np.float32)
        for t in range(nr):
            ex[t] = _dist(qn, w, vecs, res_i[order[t]], emode)
        order2 = np.argsort(ex)
        for t in range(min(k, nr)):
            out_i[t] = res_i[order[order2[t]]]
            out_d[t] = ex[order2[t]]
    else:
        for t in range(min(k, rsz)):
            out_i[t] = res_i[order[t]]
            out_d[t] = res_d[order[t]]
    if shift != 0.0:
        for t in range(k):
            if out_i[t] >= 0:
                out_d[t] += shift


@njit(cache=True, nogil=True)
def search_one(q, tmode, scale, offset, normalize, shift, w, trav, dmode, vecs, emode,
               links0, counts0, up_off, links_up, counts_up, entry, max_level, n_limit, native,
               rerank_n, ef, allowed, filtered, visited, epoch, out_i, out_d):
    """One query (d,) float32 -> out_i (k,) / out_d (k,), on the caller's visited array."""
    qn = np.empty(q.shape[0], np.float32)
    qt = np.empty(q.shape[0], np.float32)
    prepare_query(q, tmode, scale, offset, normalize, qn, qt)
    query(qn, qt, shift, w, trav, dmode, vecs, emode, links0, counts0, up_off, links_up, counts_up,
          entry, max_level, n_limit, native, rerank_n, ef, allowed, filtered, visited, epoch, out_i, out_d)


@njit(cache=True, nogil=True, parallel=True)
def search_many(qs, tmode, scale, offset, normalize, shift, w, trav, dmode, vecs, emode,
                links0, counts0, up_off, links_up, counts_up, entry, max_level, n_limit, native,
                rerank_n, ef, allowed, filtered, nchunks, out_i, out_d):
    """A batch of queries (nq, d) split over threads, each chunk with its own visited array."""
    nq = qs.shape[0]
    for c in prange(nchunks):
        visited = np.zeros(max(n_limit, 1), np.uint16)
        epoch = np.zeros(1, np.int64)
        qn = np.empty(qs.shape[1], np.float32)
        qt = np.empty(qs.shape[1], np.float32)
        for t in range(c, nq, nchunks):
            prepare_query(qs[t], tmode, scale, offset, normalize, qn, qt)
            query(qn, qt, shift, w, trav, dmode, vecs, emode, links0, counts0, up_off, links_up,
                  counts_up, entry, max_level, n_limit, native, rerank_n, ef, allowed, filtered, visited,
                  epoch, out_i[t], out_d[t])


# --- construction --------------------------------------------------------------------------------


@njit(cache=True, nogil=True, fastmath=FAST)
def select_neighbors(data, w, dmode, cand_i, cand_d, ncand, max_keep, out):
    """HNSW heuristic: scan candidates nearest first and keep one only if it is closer to the base
    than to every neighbour kept so far (spreads links over directions). Returns the count kept."""
    kept = 0
    for a in range(ncand):
        e = cand_i[a]
        de = cand_d[a]
        good = True
        for b in range(kept):
            if _dist(data[e], w, data, out[b], dmode) < de:
                good = False
                break
        if good:
            out[kept] = e
            kept += 1
            if kept >= max_keep:
                break
    return kept


# A new node keeps up to OWN_LINKS0 * m links of its own on layer 0 (the row's capacity, 2m), as
# faiss does, where hnswlib keeps m: on npm 100k this lifts recall@10 at ef 40 from 0.948 to 0.956
# (faiss: 0.957) for ~10% more time per query at equal ef, a net ~1.3x QPS at recall 0.95. It was
# too slow to build with the numba beam (80 s vs 49 s); with the C beam the build takes 41 s
# against hnswlib's 49-55 s (docs/hnsw.md).
OWN_LINKS0 = 2


@njit(cache=True, nogil=True, fastmath=FAST)
def _link_node(p, data, w, dmode, links0, counts0, levels, up_off, links_up, counts_up,
               entry, max_level, m, efc, n_limit, native, visited, epoch):
    """Search the graph for node p and write its own rows (it is not yet linked from anywhere).
    ``native``: the C traversal's address (0: numba), used for the layer-0 beam, most of the work."""
    q = data[p]
    empty = np.zeros(0, np.bool_)
    cur = np.int32(entry)
    cur_d = _dist(q, w, data, cur, dmode)
    lp = np.intp(levels[p])
    for layer in range(max_level, lp, -1):
        cur, cur_d = greedy(q, w, data, dmode, layer, links0, counts0, up_off, links_up, counts_up,
                            cur, cur_d, n_limit)
    sel = np.empty(OWN_LINKS0 * m, np.int32)  # room for layer 0 (upper layers keep m)
    for layer in range(min(lp, max_level), -1, -1):
        tag = next_tag(visited, epoch)
        if layer == 0 and native != 0:  # the C beam from ``cur`` (no upper layers to descend)
            rd, ri, rsz = native_traverse(native, q, w, data, dmode, links0, counts0, up_off, links_up, counts_up,
                                          cur, 0, n_limit, efc, empty, False, visited, epoch, tag)
        else:
            rd, ri, rsz = beam(q, w, data, dmode, layer, links0, counts0, up_off, links_up, counts_up,
                               cur, cur_d, efc, n_limit, empty, False, visited, tag)
        order = np.argsort(rd[:rsz])
        sd = rd[order]
        si = ri[order]
        ns = select_neighbors(data, w, dmode, si, sd, rsz, OWN_LINKS0 * m if layer == 0 else m, sel)
        row, _ = _row(p, layer, links0, counts0, up_off, links_up, counts_up)
        row[:ns] = sel[:ns]
        if layer == 0:
            counts0[p] = ns
        else:
            counts_up[up_off[p] + layer - 1] = ns
        cur = si[0]
        cur_d = sd[0]


@njit(cache=True, nogil=True, fastmath=FAST)
def _add_reverse(q, layer, srcs, data, w, dmode, links0, counts0, up_off, links_up, counts_up, m):
    """Append new in-links ``srcs`` to q's row on ``layer``; re-select with the heuristic on overflow."""
    cap = 2 * m if layer == 0 else m
    row, cnt = _row(q, layer, links0, counts0, up_off, links_up, counts_up)
    ns = srcs.shape[0]
    if cnt + ns <= cap:
        row[cnt:cnt + ns] = srcs
        new_cnt = cnt + ns
    else:
        tot = cnt + ns
        ci = np.empty(tot, np.int32)
        ci[:cnt] = row[:cnt]
        ci[cnt:] = srcs
        cd = np.empty(tot, np.float32)
        base = data[q]
        for t in range(tot):
            cd[t] = _dist(base, w, data, ci[t], dmode)
        order = np.argsort(cd)
        out = np.empty(cap, np.int32)
        new_cnt = select_neighbors(data, w, dmode, ci[order], cd[order], tot, cap, out)
        row[:new_cnt] = out[:new_cnt]
    if layer == 0:
        counts0[q] = new_cnt
    else:
        counts_up[up_off[q] + layer - 1] = new_cnt


@njit(cache=True, nogil=True, parallel=True)
def insert_batch(batch, data, w, dmode, links0, counts0, levels, up_off, links_up, counts_up,
                 entry, max_level, m, efc, n_limit, native, visited_pool, epochs):
    """Insert the nodes ``batch`` (int64 ids) into the graph in parallel, without locks.

    Phase 1 (parallel over batch members): each member searches the graph as it was before the
    batch and writes only its own rows. Phase 2: the reverse links are grouped by target row, and
    each target row is updated by exactly one thread. The result is deterministic.
    """
    nb = batch.shape[0]
    nchunks = min(nb, visited_pool.shape[0])
    for c in prange(nchunks):
        for t in range(c, nb, nchunks):
            _link_node(batch[t], data, w, dmode, links0, counts0, levels, up_off, links_up, counts_up,
                       entry, max_level, m, efc, n_limit, native, visited_pool[c], epochs[c:c + 1])
    # Reverse edges keyed by (layer, target) so one group is one row.
    n_edges = 0
    for t in range(nb):
        p = batch[t]
        for layer in range(min(np.intp(levels[p]), max_level) + 1):
            _, cnt = _row(p, layer, links0, counts0, up_off, links_up, counts_up)
            n_edges += cnt
    keys = np.empty(n_edges, np.int64)
    srcs = np.empty(n_edges, np.int32)
    e = 0
    for t in range(nb):
        p = batch[t]
        for layer in range(min(np.intp(levels[p]), max_level) + 1):
            row, cnt = _row(p, layer, links0, counts0, up_off, links_up, counts_up)
            for j in range(cnt):
                keys[e] = np.int64(layer) * n_limit + row[j]
                srcs[e] = p
                e += 1
    order = np.argsort(keys, kind="mergesort")
    keys = keys[order]
    srcs = srcs[order]
    n_groups = 0
    for t in range(n_edges):
        if t == 0 or keys[t] != keys[t - 1]:
            n_groups += 1
    starts = np.empty(n_groups + 1, np.int64)
    g = 0
    for t in range(n_edges):
        if t == 0 or keys[t] != keys[t - 1]:
            starts[g] = t
            g += 1
    starts[n_groups] = n_edges
    for g in prange(n_groups):
        s = starts[g]
        layer = keys[s] // n_limit
        q = keys[s] - layer * n_limit
        _add_reverse(q, layer, srcs[s:starts[g + 1]], data, w, dmode, links0, counts0, up_off,
                     links_up, counts_up, m)


# --- repair and validation -----------------------------------------------------------------------


@njit(cache=True, nogil=True, fastmath=FAST)
def _repair_row(p, layer, data, w, dmode, links0, counts0, up_off, links_up, counts_up, deleted, m, fill):
    row, cnt = _row(p, layer, links0, counts0, up_off, links_up, counts_up)
    cnt = min(cnt, row.shape[0])
    hit = False
    for j in range(cnt):
        if deleted[row[j]]:
            hit = True
            break
    if not hit:
        return
    # Candidates: surviving neighbours plus the surviving neighbours of deleted neighbours.
    cand = np.empty(cnt + cnt * row.shape[0], np.int32)
    nc = 0
    for j in range(cnt):
        x = row[j]
        if not deleted[x]:
            cand[nc] = x
            nc += 1
            continue
        xrow, xcnt = _row(x, layer, links0, counts0, up_off, links_up, counts_up)
        for t in range(min(xcnt, xrow.shape[0])):
            y = xrow[t]
            if y != p and not deleted[y]:
                cand[nc] = y
                nc += 1
    cand = np.unique(cand[:nc])
    nc = cand.shape[0]
    cd = np.empty(nc, np.float32)
    base = data[p]
    for t in range(nc):
        cd[t] = _dist(base, w, data, cand[t], dmode)
    order = np.argsort(cd)
    cap = 2 * m if layer == 0 else m
    out = np.empty(cap, np.int32)
    sc = cand[order]
    k = select_neighbors(data, w, dmode, sc, cd[order], nc, cap, out)
    # A repaired node lost links the heuristic would have kept; refill its row with the nearest
    # pruned candidates so the neighbourhood stays as well connected as before the deletions.
    for t in range(nc):
        if k >= min(cap, fill):
            break
        taken = False
        for b in range(k):
            if out[b] == sc[t]:
                taken = True
                break
        if not taken:
            out[k] = sc[t]
            k += 1
    row[:k] = out[:k]
    if layer == 0:
        counts0[p] = k
    else:
        counts_up[up_off[p] + layer - 1] = k


@njit(cache=True, nogil=True, parallel=True)
def repair(data, w, dmode, links0, counts0, levels, up_off, links_up, counts_up, deleted, max_level, m, fill):
    """Reconnect every live node that links to a deleted one, then empty the deleted nodes' rows.

    Within a layer each thread rewrites only its own node's row and reads only deleted nodes' rows
    (which are not rewritten until the end), so the pass needs no locks.
    """
    n = deleted.shape[0]
    for layer in range(max_level + 1):
        for p in prange(n):
            if not deleted[p] and levels[p] >= layer:
                _repair_row(p, layer, data, w, dmode, links0, counts0, up_off, links_up, counts_up,
                            deleted, m, fill)
    for p in range(n):
        if deleted[p]:
            counts0[p] = 0
            for layer in range(1, np.intp(levels[p]) + 1):
                counts_up[up_off[p] + layer - 1] = 0


@njit(cache=True, nogil=True)
def validate(links0, counts0, levels, up_off, links_up, counts_up, n):
    """0 if the first n nodes form a well-formed graph, else a code naming the first defect."""
    if links0.shape[0] < n or counts0.shape[0] < n or levels.shape[0] < n or up_off.shape[0] < n:
        return 1
    rows = links_up.shape[0]
    if counts_up.shape[0] != rows:
        return 1
    for i in range(n):
        c = counts0[i]
        if c < 0 or c > links0.shape[1]:
            return 2
        for j in range(c):
            if links0[i, j] < 0 or links0[i, j] >= n:
                return 3
        lv = np.intp(levels[i])
        if lv < 0:
            return 4
        if lv > 0:
            o = up_off[i]
            if o < 0 or o + lv > rows:
                return 4
            for layer in range(1, lv + 1):
                r = o + layer - 1
                c = counts_up[r]
                if c < 0 or c > links_up.shape[1]:
                    return 2
                for j in range(c):
                    x = links_up[r, j]
                    if x < 0 or x >= n or levels[x] < layer:
                        return 3
    return 0
