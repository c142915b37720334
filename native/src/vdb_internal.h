/*
 * vdb_internal.h - helpers shared by the per-ISA kernel files (not part of the C ABI).
 *
 * Everything here is static inline and written in plain C99, so each ISA file can inline it
 * into functions compiled under its own target attribute (GCC and clang inline a callee whose
 * ISA is a subset of the caller's).
 */
#ifndef VDB_INTERNAL_H
#define VDB_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vecdb_kernels.h"

/* x86 SIMD files compile to nothing elsewhere; -DVDB_PORTABLE_ONLY does the same on x86 (used to
 * check that the portable build compiles and passes on its own). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(VDB_PORTABLE_ONLY)
#define VDB_X86 1
#else
#define VDB_X86 0
#endif

#define VDB_ALWAYS_INLINE inline __attribute__((always_inline))

/* Each ISA file fills the entries it implements; dispatch.c layers them best-last. */
void vdb_fill_scalar(vdb_kernel_table *t);
#if VDB_X86
void vdb_fill_avx2(vdb_kernel_table *t);
void vdb_fill_avx512(vdb_kernel_table *t, int has_vpopcntdq);
#endif

/* 1 - cos from float32 partial results, in float64; zero (or NaN) norms give 1 like the
 * reference, which only divides where the norm product is > 0. */
static inline float vdb_cosine_finish(double dot, double xx, double qq) {
    double denom = sqrt(qq * xx);
    if (!(denom > 0.0)) return 1.0f;
    return (float)(1.0 - dot / denom);
}

/* IEEE binary16 bits -> float32, exact for every input (subnormals, inf, NaN payloads). */
static inline float vdb_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0x1Fu) {
        bits = sign | 0x7F800000u | (mant << 13); /* inf / NaN */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13); /* normal: rebias 15 -> 127 */
    } else if (mant == 0) {
        bits = sign; /* signed zero */
    } else {
        /* subnormal half: value = mant * 2^-24, always a normal float32 */
        float v = (float)mant * (1.0f / 16777216.0f);
        memcpy(&bits, &v, sizeof bits);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- top-k: out_dist/out_idx double as a bounded max-heap on (distance, index) ---- */

/* 1 when (da, ia) ranks after (db, ib): larger distance, or equal distance and larger index. */
static inline int vdb_worse(float da, int64_t ia, float db, int64_t ib) {
    return da > db || (da == db && ia > ib);
}

static inline void vdb_heap_sift_down(float *hd, int64_t *hi, int64_t size, int64_t pos) {
    float d = hd[pos];
    int64_t id = hi[pos];
    for (;;) {
        int64_t child = 2 * pos + 1;
        if (child >= size) break;
        if (child + 1 < size && vdb_worse(hd[child + 1], hi[child + 1], hd[child], hi[child])) child++;
        if (!vdb_worse(hd[child], hi[child], d, id)) break;
        hd[pos] = hd[child];
        hi[pos] = hi[child];
        pos = child;
    }
    hd[pos] = d;
    hi[pos] = id;
}

static inline void vdb_heap_push(float *hd, int64_t *hi, int64_t size, float d, int64_t id) {
    int64_t pos = size;
    while (pos > 0) {
        int64_t parent = (pos - 1) / 2;
        if (!vdb_worse(d, id, hd[parent], hi[parent])) break;
        hd[pos] = hd[parent];
        hi[pos] = hi[parent];
        pos = parent;
    }
    hd[pos] = d;
    hi[pos] = id;
}

/* Offer candidate (d, i) to a heap holding `size` of at most k entries; returns the new size.
 * Candidates arrive in increasing index order, so an equal distance never displaces the root. */
static inline int64_t vdb_heap_offer(float *hd, int64_t *hi, int64_t size, int64_t k, float d, int64_t i) {
    if (size < k) {
        vdb_heap_push(hd, hi, size, d, i);
        return size + 1;
    }
    if (d < hd[0]) {
        hd[0] = d;
        hi[0] = i;
        vdb_heap_sift_down(hd, hi, size, 0);
    }
    return size;
}

/* Heap-sort the `size` entries into ascending order in place and pad to k with -1 / +inf. */
static inline int64_t vdb_heap_finish(float *hd, int64_t *hi, int64_t size, int64_t k) {
    for (int64_t end = size - 1; end > 0; end--) {
        float td = hd[0];
        int64_t ti = hi[0];
        hd[0] = hd[end];
        hi[0] = hi[end];
        hd[end] = td;
        hi[end] = ti;
        vdb_heap_sift_down(hd, hi, end, 0);
    }
    for (int64_t j = size; j < k; j++) {
        hd[j] = INFINITY;
        hi[j] = -1;
    }
    return size;
}

#endif /* VDB_INTERNAL_H */
