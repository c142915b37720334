/*
 * dispatch.c - probe the CPU once and pick one kernel table, best first down to the serial floor.
 *
 * Tables are built by layering: start from the scalar table and let each supported ISA file
 * overwrite the entries it implements, so a level only has to provide what it speeds up.
 */
#include "vdb_internal.h"

static vdb_cpu_features cpu;
static vdb_kernel_table tables[3];
static int max_level = -1;
/* Written by vdb_set_level (under the GIL), read by every kernel call; a pointer store is atomic
 * on every platform we build for, and every table stays valid forever. */
static const vdb_kernel_table *volatile active = NULL;

static void probe_cpu(void) {
#if VDB_X86 && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init(); /* needed before __builtin_cpu_supports outside a constructor */
    cpu.avx2 = __builtin_cpu_supports("avx2") != 0;
    cpu.fma = __builtin_cpu_supports("fma") != 0;
    cpu.popcnt = __builtin_cpu_supports("popcnt") != 0;
    cpu.avx512f = __builtin_cpu_supports("avx512f") != 0;
    cpu.avx512bw = __builtin_cpu_supports("avx512bw") != 0;
    cpu.avx512vl = __builtin_cpu_supports("avx512vl") != 0;
    cpu.avx512vpopcntdq = __builtin_cpu_supports("avx512vpopcntdq") != 0;
#if defined(__clang__) || __GNUC__ >= 11
    cpu.f16c = __builtin_cpu_supports("f16c") != 0;
#else
    cpu.f16c = cpu.avx2; /* older GCC cannot name f16c; every AVX2 CPU shipped has it */
#endif
#endif
}

int vdb_init(void) {
    if (max_level >= 0) return active->level;
    probe_cpu();
    vdb_fill_scalar(&tables[VDB_LEVEL_SCALAR]);
    max_level = VDB_LEVEL_SCALAR;
#if VDB_X86
    /* The avx2 file's target string is "avx2,fma,f16c,popcnt": all four must be present. */
    if (cpu.avx2 && cpu.fma && cpu.f16c && cpu.popcnt) {
        tables[VDB_LEVEL_AVX2] = tables[VDB_LEVEL_SCALAR];
        vdb_fill_avx2(&tables[VDB_LEVEL_AVX2]);
        max_level = VDB_LEVEL_AVX2;
        if (cpu.avx512f && cpu.avx512bw && cpu.avx512vl) {
            tables[VDB_LEVEL_AVX512] = tables[VDB_LEVEL_AVX2];
            vdb_fill_avx512(&tables[VDB_LEVEL_AVX512], cpu.avx512vpopcntdq);
            max_level = VDB_LEVEL_AVX512;
        }
    }
#endif
    active = &tables[max_level];
    return max_level;
}

int vdb_max_level(void) {
    vdb_init();
    return max_level;
}

int vdb_set_level(int level) {
    vdb_init();
    if (level > max_level) level = max_level;
    if (level < VDB_LEVEL_SCALAR) level = VDB_LEVEL_SCALAR;
    active = &tables[level];
    return level;
}

const vdb_kernel_table *vdb_active_table(void) {
    vdb_init();
    return active;
}

const vdb_cpu_features *vdb_cpu(void) {
    vdb_init();
    return &cpu;
}

/* ---- the public C ABI: forward to the active table ---- */

void vdb_distances_f32(const float *q, const float *x, int64_t n, int64_t d, int metric, float *out) {
    vdb_active_table()->distances_f32(q, x, n, d, metric, out);
}

void vdb_distances_f32_at(const float *q, const float *x, const int64_t *offsets, int64_t m, int64_t d,
                          int metric, float *out) {
    vdb_active_table()->distances_f32_at(q, x, offsets, m, d, metric, out);
}

void vdb_distances_f16(const float *q, const uint16_t *x, int64_t n, int64_t d, int metric, float *out) {
    vdb_active_table()->distances_f16(q, x, n, d, metric, out);
}

void vdb_distances_sq8(const float *q, const uint8_t *codes, const float *scale, const float *offset,
                       int64_t n, int64_t d, int metric, float *out) {
    vdb_active_table()->distances_sq8(q, codes, scale, offset, n, d, metric, out);
}

void vdb_hamming_u64(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out) {
    vdb_active_table()->hamming(q, codes, n, w, out);
}

void vdb_bitplane_ip_sym_u64(const uint64_t *qplanes, const uint64_t *codes, const float *qw, const float *cw,
                             int64_t uq, int64_t n, int64_t u, int64_t w, int64_t dim, float *out) {
    vdb_active_table()->bitplane_ip_sym(qplanes, codes, qw, cw, uq, n, u, w, dim, out);
}

void vdb_bitplane_ip_asym_u64(const float *lut, const uint64_t *codes, const float *cw, float query_sum,
                              int64_t n, int64_t u, int64_t w, float *out) {
    vdb_active_table()->bitplane_ip_asym(lut, codes, cw, query_sum, n, u, w, out);
}

void vdb_pq_adc_u8(const float *lut, const uint8_t *codes, int64_t n, int64_t m, int64_t ksub, float *out) {
    vdb_active_table()->pq_adc(lut, codes, n, m, ksub, out);
}

void vdb_pq4_fastscan_u8(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m, uint16_t *out) {
    vdb_active_table()->pq4_fastscan(lut, packed, n, m, out);
}

int64_t vdb_topk_f32(const float *dist, const uint8_t *mask, int64_t n, int64_t k, int64_t *out_idx,
                     float *out_dist) {
    return vdb_active_table()->topk(dist, mask, n, k, out_idx, out_dist);
}

int64_t vdb_topk_u16(const uint16_t *dist, const uint8_t *mask, int64_t n, int64_t k, int64_t *out_idx,
                     float *out_dist) {
    int64_t size = vdb_active_table()->topk_u16_offer(dist, mask, n, 0, k, 0, out_idx, out_dist);
    return vdb_heap_finish(out_dist, out_idx, size, k);
}

int64_t vdb_hnsw_search(const float *q, const float *w, const void *rows, int64_t d, int64_t mode,
                        const int32_t *links0, const int32_t *counts0, int64_t width0, const int32_t *up_off,
                        const int32_t *links_up, const int32_t *counts_up, int64_t width_up, int64_t entry,
                        int64_t max_level, int64_t n_limit, int64_t ef, const uint8_t *allowed, int64_t n_allowed,
                        uint16_t *visited, int64_t tag, float *res_d, int32_t *res_i, float *cand_d,
                        int32_t *cand_i, int64_t cand_cap, int32_t *todo, const int32_t *row_of,
                        const float *row_scale) {
    return vdb_active_table()->hnsw_search(q, w, rows, d, mode, links0, counts0, width0, up_off, links_up, counts_up,
                                           width_up, entry, max_level, n_limit, ef, allowed, n_allowed, visited, tag,
                                           res_d, res_i, cand_d, cand_i, cand_cap, todo, row_of, row_scale);
}

/* Rows per fast-scan call in the fused scan: a multiple of the 32-row block whose 4 KB of sums
 * stay in L1 between the scan writing them and the filter reading them. */
#define VDB_FASTSCAN_CHUNK 2048

int64_t vdb_pq4_fastscan_topk_u8(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m,
                                 const uint8_t *mask, int64_t k, int64_t *out_idx, float *out_dist) {
    const vdb_kernel_table *t = vdb_active_table();
    uint16_t sums[VDB_FASTSCAN_CHUNK];
    int64_t size = 0;
    for (int64_t start = 0; start < n && k > 0; start += VDB_FASTSCAN_CHUNK) {
        int64_t rows = n - start < VDB_FASTSCAN_CHUNK ? n - start : VDB_FASTSCAN_CHUNK;
        t->pq4_fastscan(lut, packed + (start / 32) * m * 16, rows, m, sums);
        size = t->topk_u16_offer(sums, mask ? mask + start : NULL, rows, start, k, size, out_idx, out_dist);
    }
    return vdb_heap_finish(out_dist, out_idx, size, k);
}
