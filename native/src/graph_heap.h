/*
 * graph_heap.h - the parallel-array binary heaps of (distance, node) the HNSW traversal keeps: a
 * min-heap of candidates to expand and a max-heap of the best ef results (its root is the worst
 * kept result). Shared by hnsw_search.h (compiled per ISA) and the single-call searcher
 * (native/python/searcher.c), which drains the result heap.
 */
#ifndef GRAPH_HEAP_H
#define GRAPH_HEAP_H

#include <stdint.h>

#include "vdb_internal.h"

static VDB_ALWAYS_INLINE int64_t gs_min_push(float *hd, int32_t *hi, int64_t size, float d, int32_t i) {
    int64_t j = size;
    while (j > 0) {
        int64_t parent = (j - 1) >> 1;
        if (hd[parent] <= d) break;
        hd[j] = hd[parent];
        hi[j] = hi[parent];
        j = parent;
    }
    hd[j] = d;
    hi[j] = i;
    return size + 1;
}

static VDB_ALWAYS_INLINE int64_t gs_min_pop(float *hd, int32_t *hi, int64_t size) {
    size--;
    float d = hd[size];
    int32_t i = hi[size];
    int64_t j = 0;
    for (;;) {
        int64_t c = 2 * j + 1;
        if (c >= size) break;
        if (c + 1 < size && hd[c + 1] < hd[c]) c++;
        if (hd[c] >= d) break;
        hd[j] = hd[c];
        hi[j] = hi[c];
        j = c;
    }
    if (size > 0) {
        hd[j] = d;
        hi[j] = i;
    }
    return size;
}

static VDB_ALWAYS_INLINE int64_t gs_max_push(float *hd, int32_t *hi, int64_t size, float d, int32_t i) {
    int64_t j = size;
    while (j > 0) {
        int64_t parent = (j - 1) >> 1;
        if (hd[parent] >= d) break;
        hd[j] = hd[parent];
        hi[j] = hi[parent];
        j = parent;
    }
    hd[j] = d;
    hi[j] = i;
    return size + 1;
}

static VDB_ALWAYS_INLINE void gs_max_replace_top(float *hd, int32_t *hi, int64_t size, float d, int32_t i) {
    int64_t j = 0;
    for (;;) {
        int64_t c = 2 * j + 1;
        if (c >= size) break;
        if (c + 1 < size && hd[c + 1] > hd[c]) c++;
        if (hd[c] <= d) break;
        hd[j] = hd[c];
        hi[j] = hi[c];
        j = c;
    }
    hd[j] = d;
    hi[j] = i;
}

/* Remove the root (worst) of the result max-heap; returns the new size. */
static VDB_ALWAYS_INLINE int64_t gs_max_pop(float *hd, int32_t *hi, int64_t size) {
    size--;
    if (size > 0) gs_max_replace_top(hd, hi, size, hd[size], hi[size]);
    return size;
}

#endif /* GRAPH_HEAP_H */
