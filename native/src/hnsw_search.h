/*
 * hnsw_search.h - one HNSW query's graph traversal, written once and compiled per ISA.
 *
 * An ISA file defines, before including this header:
 *   GS_ATTR       its function attributes (the target ISA, or nothing for the serial floor);
 *   gs_row_dist   static inline float gs_row_dist(const float *q, const float *w, const void *rows,
 *                                                 int64_t i, int64_t d, int mode)
 *                 the distance of row i in traversal mode `mode` (VDB_GRAPH_*);
 *   gs_row_dist4  static inline void gs_row_dist4(const float *q, const float *w, const void *rows,
 *                                                 const int32_t *ids, int64_t d, int mode, float *out)
 *                 the same for rows ids[0..3], each exactly as gs_row_dist computes it (several rows
 *                 in flight at once overlap their memory loads and share the query's).
 * and gets `static int64_t hnsw_search(...)` with the signature of vdb_hnsw_search_fn, one copy
 * per mode inlined behind a switch so no mode test runs in the inner loop.
 *
 * Row map: a graph over a subset of a shared matrix (a tenant's graph over its segment's rows)
 * passes row_of, node i's row in `rows`, and optionally row_scale, a factor applied to node i's
 * distance (1/|x| for cosine on raw rows: -dot / |x| ranks as cosine for a unit query). Without
 * one (NULL: node i is row i) the map compiles away; with one only the f32 modes are instantiated.
 *
 * Semantics are those of vecdb/kernels/graph.py (greedy descent on the upper layers, then a
 * best-first beam on layer 0 keeping the ef closest allowed nodes), which stays the reference
 * and the fallback when the C module is not built.
 */
#ifndef HNSW_SEARCH_H
#define HNSW_SEARCH_H

#include "graph_heap.h"

static VDB_ALWAYS_INLINE void gs_prefetch(const void *p, int64_t bytes) {
    /* A few lines: the hardware streams the rest of a long row once it sees the first. */
    const char *c = (const char *)p;
    for (int64_t b = 0; b < bytes && b < 8 * 64; b += 64) __builtin_prefetch(c + b, 0, 3);
}

static VDB_ALWAYS_INLINE GS_ATTR int64_t gs_search(
    const int mode, const float *q, const float *w, const void *rows, int64_t d, const int32_t *links0,
    const int32_t *counts0, int64_t width0, const int32_t *up_off, const int32_t *links_up, const int32_t *counts_up,
    int64_t width_up, int64_t entry, int64_t max_level, int64_t n_limit, int64_t ef, const uint8_t *allowed,
    int64_t n_allowed, uint16_t *visited, int64_t tag64, float *res_d, int32_t *res_i, float *cand_d,
    int32_t *cand_i, int64_t cand_cap, int32_t *todo, const int32_t *row_of, const float *row_scale) {
#define GS_ROW(i) (row_of ? (int64_t)row_of[i] : (int64_t)(i))
#define GS_DIST(i) (row_scale ? row_scale[i] * gs_row_dist(q, w, rows, GS_ROW(i), d, mode) \
                              : gs_row_dist(q, w, rows, GS_ROW(i), d, mode))
    const uint16_t tag = (uint16_t)tag64;
    const int64_t row_bytes = d * (mode >= VDB_GRAPH_WL2_U8 ? 1 : 4);
    const char *base = (const char *)rows;
    int32_t cur = (int32_t)entry;
    float cur_d = GS_DIST(cur);

    /* Upper layers: move to the closest neighbour until none is closer. */
    for (int64_t layer = max_level; layer > 0; layer--) {
        int changed = 1;
        while (changed) {
            changed = 0;
            int64_t r = (int64_t)up_off[cur] + layer - 1;
            const int32_t *row = links_up + r * width_up;
            int64_t cnt = counts_up[r] < width_up ? counts_up[r] : width_up;
            for (int64_t j = 0; j < cnt; j++) {
                int32_t nb = row[j];
                if (nb < 0 || nb >= n_limit) continue;
                float dn = GS_DIST(nb);
                if (dn < cur_d) {
                    cur_d = dn;
                    cur = nb;
                    changed = 1;
                }
            }
        }
    }

    /* Layer 0: best-first beam. Disallowed nodes are expanded but never kept as results. */
#define GS_ALLOWED(i) (n_allowed < 0 || ((i) < n_allowed && allowed[i]))
    visited[cur] = tag;
    int64_t csz = gs_min_push(cand_d, cand_i, 0, cur_d, cur);
    int64_t rsz = GS_ALLOWED(cur) ? gs_max_push(res_d, res_i, 0, cur_d, cur) : 0;
    while (csz > 0) {
        float dc = cand_d[0];
        int32_t c = cand_i[0];
        if (rsz >= ef && dc > res_d[0]) break;
        csz = gs_min_pop(cand_d, cand_i, csz);
        const int32_t *row = links0 + (int64_t)c * width0;
        int64_t cnt = counts0[c] < width0 ? counts0[c] : width0;
        /* Claim the unvisited neighbours and prefetch their rows first, so the memory loads of
         * the whole neighbourhood overlap; then score them. */
        int64_t nt = 0;
        for (int64_t j = 0; j < cnt; j++) {
            int32_t nb = row[j];
            if (nb < 0 || nb >= n_limit || visited[nb] == tag) continue;
            visited[nb] = tag;
            todo[nt++] = nb;
            gs_prefetch(base + GS_ROW(nb) * row_bytes, row_bytes);
        }
        float dist4[4];
        int32_t rows4[4];
        for (int64_t t = 0; t < nt; t++) {
            int32_t nb = todo[t];
            if ((t & 3) == 0 && t + 4 <= nt) {
                if (row_of) {
                    for (int r = 0; r < 4; r++) rows4[r] = row_of[todo[t + r]];
                    gs_row_dist4(q, w, rows, rows4, d, mode, dist4);
                    if (row_scale)
                        for (int r = 0; r < 4; r++) dist4[r] *= row_scale[todo[t + r]];
                } else {
                    gs_row_dist4(q, w, rows, todo + t, d, mode, dist4);
                }
            }
            float dn = t < (nt & ~(int64_t)3) ? dist4[t & 3] : GS_DIST(nb);
            if (rsz < ef || dn < res_d[0]) {
                if (csz == cand_cap) return -1; /* the caller retries with room for every node */
                csz = gs_min_push(cand_d, cand_i, csz, dn, nb);
                if (GS_ALLOWED(nb)) {
                    if (rsz < ef)
                        rsz = gs_max_push(res_d, res_i, rsz, dn, nb);
                    else
                        gs_max_replace_top(res_d, res_i, rsz, dn, nb);
                }
            }
        }
        if (csz > 0) __builtin_prefetch(links0 + (int64_t)cand_i[0] * width0, 0, 3);
    }
#undef GS_ALLOWED
#undef GS_DIST
#undef GS_ROW
    return rsz;
}

static GS_ATTR int64_t hnsw_search(const float *q, const float *w, const void *rows, int64_t d, int64_t mode,
                                   const int32_t *links0, const int32_t *counts0, int64_t width0,
                                   const int32_t *up_off, const int32_t *links_up, const int32_t *counts_up,
                                   int64_t width_up, int64_t entry, int64_t max_level, int64_t n_limit, int64_t ef,
                                   const uint8_t *allowed, int64_t n_allowed, uint16_t *visited, int64_t tag,
                                   float *res_d, int32_t *res_i, float *cand_d, int32_t *cand_i, int64_t cand_cap,
                                   int32_t *todo, const int32_t *row_of, const float *row_scale) {
#define GS_CALL(MODE, ROW_OF, ROW_SCALE)                                                                           \
    gs_search(MODE, q, w, rows, d, links0, counts0, width0, up_off, links_up, counts_up, width_up, entry, max_level, \
              n_limit, ef, allowed, n_allowed, visited, tag, res_d, res_i, cand_d, cand_i, cand_cap, todo, ROW_OF,  \
              ROW_SCALE)
    if (row_of != NULL)
        return mode == VDB_GRAPH_L2_F32 ? GS_CALL(VDB_GRAPH_L2_F32, row_of, row_scale)
                                        : GS_CALL(VDB_GRAPH_IP_F32, row_of, row_scale);
    switch (mode) {
        case VDB_GRAPH_L2_F32: return GS_CALL(VDB_GRAPH_L2_F32, NULL, NULL);
        case VDB_GRAPH_IP_F32: return GS_CALL(VDB_GRAPH_IP_F32, NULL, NULL);
        case VDB_GRAPH_WL2_U8: return GS_CALL(VDB_GRAPH_WL2_U8, NULL, NULL);
        case VDB_GRAPH_IP_I8: return GS_CALL(VDB_GRAPH_IP_I8, NULL, NULL);
        default: return GS_CALL(VDB_GRAPH_IP_U8, NULL, NULL);
    }
#undef GS_CALL
}

#endif /* HNSW_SEARCH_H */
