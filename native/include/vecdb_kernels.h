/*
 * vecdb_kernels.h - the C ABI of vecdb's numeric inner loops.
 *
 * Every function here computes exactly what vecdb/kernels/reference.py defines (that file is
 * the contract); names follow vdb_<op>_<dtype>. Argument order: the inputs in the order the
 * Python API takes them, then their sizes, then scalar parameters, then the caller-provided
 * outputs. No function allocates, keeps state between calls, or checks its arguments: the
 * Python layer (python/module.c) validates shapes, dtypes and offsets before calling, and a
 * caller going through the raw function pointers (vecdb._native.function_pointers()) must do
 * the same. All arrays are C-contiguous; no alignment is required.
 *
 * The vdb_* symbols below call through the active dispatch table (chosen once at import from
 * the CPU, capped by VECDB_SIMD or vdb_set_simd_level); vdb_active_table() gives the table
 * itself so a caller can skip that indirection.
 *
 * Numeric conventions ("smaller is closer" for every metric):
 *   metric 0 = l2      squared euclidean distance
 *   metric 1 = ip      minus the dot product
 *   metric 2 = cosine  1 - cos(q, x); a zero-norm query or row gives exactly 1
 */
#ifndef VECDB_KERNELS_H
#define VECDB_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VDB_METRIC_L2 0
#define VDB_METRIC_IP 1
#define VDB_METRIC_COSINE 2

/* Levels of the dispatch table, ordered: a cap of N allows every level <= N. */
#define VDB_LEVEL_SCALAR 0
#define VDB_LEVEL_AVX2 1
#define VDB_LEVEL_AVX512 2

/*
 * Floating-point distances: q (d,) float32 against rows (n, d) -> out (n,) float32.
 * Accumulators: float32, several independent partial sums per row (8 or 16 SIMD lanes x 2
 * chains), reduced pairwise, so the relative error grows like ~sqrt(d) * 2^-24 rather than
 * d * 2^-24. Cosine combines dot and the two squared norms in float64. Overflow: a partial sum
 * overflows float32 to +inf once a squared component or product passes ~3.4e38 (|values|
 * around 1.8e19); NaN inputs give NaN (cosine: a NaN norm gives 1, as the reference does).
 * l2 sums squared differences (no cancellation), so an infinite component gives +inf where the
 * reference's expanded |q|^2 + |x|^2 - 2<q,x> gives NaN; vecdb rejects non-finite vectors on write.
 */
void vdb_distances_f32(const float *q, const float *x, int64_t n, int64_t d, int metric, float *out);

/* Same, for rows x[offsets[i]] (x has at least max(offsets)+1 rows; offsets are NOT checked
 * here). Prefetches the next rows of the gather. out (m,). */
void vdb_distances_f32_at(const float *q, const float *x, const int64_t *offsets, int64_t m, int64_t d,
                          int metric, float *out);

/* Rows stored as IEEE binary16 (numpy float16, passed as raw uint16 bits); decoded to float32
 * exactly (F16C on AVX2), then as vdb_distances_f32. */
void vdb_distances_f16(const float *q, const uint16_t *x, int64_t n, int64_t d, int metric, float *out);

/* 8-bit scalar-quantized rows: decoded[j] = offset[j] + scale[j] * code[j] (one fused
 * multiply-add in float32), then as vdb_distances_f32. */
void vdb_distances_sq8(const float *q, const uint8_t *codes, const float *scale, const float *offset,
                       int64_t n, int64_t d, int metric, float *out);

/*
 * Hamming distance between packed binary codes (w uint64 words per code) -> out (n,) int32.
 * Accumulator: 64-bit popcount sums; int32 output overflows only past w = 2^25 words (2^31 bits).
 */
void vdb_hamming_u64(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out);

/*
 * Symmetric bit-plane inner product: qplanes (uq, w), codes (n, u, w) uint64, weights qw (uq,)
 * and cw (u,) float32 -> out (n,) float32 =
 *   -sum_i sum_j qw[i]*cw[j]*(dim - 2*popcount(qplanes[i] ^ codes[., j])).
 * Accumulator: each popcount in int64, the weighted sum in float64 (same order as the
 * reference), cast to float32 at the end; no overflow for any realistic size.
 */
void vdb_bitplane_ip_sym_u64(const uint64_t *qplanes, const uint64_t *codes, const float *qw, const float *cw,
                             int64_t uq, int64_t n, int64_t u, int64_t w, int64_t dim, float *out);

/*
 * Asymmetric bit-plane inner product through a byte lookup table: lut (w*8, 256) float32 (see
 * reference.bitplane_lut), codes (n, u, w) uint64, cw (u,) -> out (n,) float32 =
 *   -sum_j cw[j] * (2 * S_j - query_sum),  S_j = sum_B lut[B, byte B of plane j].
 * Accumulator: float32 partial sums of lut entries (eight chains, one per byte position; the
 * serial floor sums in float64), combined in float64.
 */
void vdb_bitplane_ip_asym_u64(const float *lut, const uint64_t *codes, const float *cw, float query_sum,
                              int64_t n, int64_t u, int64_t w, float *out);

/*
 * PQ asymmetric distance: lut (m, ksub) float32, codes (n, m) uint8 with every code < ksub
 * (NOT checked here; ksub <= 256) -> out (n,) float32 = sum_j lut[j, codes[i, j]].
 * Accumulator: four float32 partial sums, reduced pairwise (every level: table lookups are
 * load-bound, and gathers lost to plain loads where measured).
 */
void vdb_pq_adc_u8(const float *lut, const uint8_t *codes, int64_t n, int64_t m, int64_t ksub, float *out);

/*
 * 4-bit PQ fast scan: lut (m, 16) uint8, packed in the fast-scan layout (ceil(n/32), m, 16)
 * uint8 (see reference.pq4_pack) -> out (n,) uint16 = sum_j lut[j, code of row i in plane j].
 * Accumulator: uint16 lanes with wrap-around (modulo 2^16), exactly as the reference's cast;
 * sums stay exact while m * max(lut) <= 65535, which reference.quantize_lut guarantees.
 */
void vdb_pq4_fastscan_u8(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m, uint16_t *out);

/*
 * Top-k smallest of dist (n,) float32 among entries with mask[i] != 0 (mask may be NULL = all)
 * and dist[i] not NaN. Writes k entries to out_idx (k,) int64 / out_dist (k,) float32 in
 * ascending (distance, index) order, pads with -1 / +inf, and returns how many were filled.
 * Uses out_idx/out_dist as the bounded max-heap, so it needs no other memory.
 */
int64_t vdb_topk_f32(const float *dist, const uint8_t *mask, int64_t n, int64_t k, int64_t *out_idx,
                     float *out_dist);

/*
 * Top-k of uint16 distances (the fast scan's sums), as vdb_topk_f32 (no NaN to skip): out_dist
 * holds the selected sums as float32, exactly.
 */
int64_t vdb_topk_u16(const uint16_t *dist, const uint8_t *mask, int64_t n, int64_t k, int64_t *out_idx,
                     float *out_dist);

/*
 * The 4-bit fast scan fused with top-k: vdb_pq4_fastscan_u8's sums for n rows, of which the k
 * smallest (ties by index, rows with mask[i] == 0 skipped; mask may be NULL) go to out_idx /
 * out_dist as in vdb_topk_u16. Sums are made a chunk of rows at a time in a stack buffer that
 * stays in L1 and go through the SIMD threshold filter there, so the n uint16 sums never travel
 * to memory and back. Returns how many were filled.
 */
int64_t vdb_pq4_fastscan_topk_u8(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m,
                                 const uint8_t *mask, int64_t k, int64_t *out_idx, float *out_dist);

/*
 * One HNSW query's traversal: greedy descent from `entry` through layers max_level..1, then a
 * best-first beam on layer 0 that keeps the ef closest allowed nodes. Graph layout as in
 * vecdb/kernels/graph.py: layer 0 is links0 (n, width0) / counts0 (n,); node i's row for upper
 * layer l is up_off[i] + l - 1 of links_up (rows, width_up) / counts_up. Neighbour ids outside
 * [0, n_limit) are skipped. Rows are (n, d) float32 (modes L2_F32 / IP_F32: squared l2 / -dot)
 * or uint8 codes (WL2_U8: sum w[j] (q[j] - code[j])^2; IP_U8: -sum q[j] code[j]; IP_I8: q is
 * int8 in [-63, 63] (not float) and the distance -(w[0] * (float)sum q[j] code[j]), the integer sum
 * exact); w is read in WL2_U8 and IP_I8 only. allowed (n_allowed,) filters the results (n_allowed < 0: no filter; rows past
 * its end count as disallowed); filtered-out nodes are still expanded. visited (>= n_limit)
 * holds epoch tags: a node is visited when visited[i] == tag (the caller advances the tag).
 * Writes the result max-heap to res_d/res_i (ef) and returns its size; cand_d/cand_i (cand_cap)
 * and todo (max(width0, width_up)) are scratch. Returns -1 when the candidate heap would pass
 * cand_cap (cand_cap >= n_limit never does): the caller retries with a new tag and more room.
 * row_of (n_limit,), when not NULL, maps node i to its row of `rows` (a graph over a subset of a
 * shared matrix, f32 modes only); row_scale (n_limit,), when not NULL as well, multiplies node i's
 * distance (1/|x| turns IP on raw rows into cosine ranking). NULL, NULL: node i is row i.
 */
#define VDB_GRAPH_L2_F32 0
#define VDB_GRAPH_IP_F32 1
#define VDB_GRAPH_WL2_U8 2
#define VDB_GRAPH_IP_U8 3
#define VDB_GRAPH_IP_I8 4
int64_t vdb_hnsw_search(const float *q, const float *w, const void *rows, int64_t d, int64_t mode,
                        const int32_t *links0, const int32_t *counts0, int64_t width0, const int32_t *up_off,
                        const int32_t *links_up, const int32_t *counts_up, int64_t width_up, int64_t entry,
                        int64_t max_level, int64_t n_limit, int64_t ef, const uint8_t *allowed, int64_t n_allowed,
                        uint16_t *visited, int64_t tag, float *res_d, int32_t *res_i, float *cand_d,
                        int32_t *cand_i, int64_t cand_cap, int32_t *todo, const int32_t *row_of,
                        const float *row_scale);

/* Function-pointer types of the kernels above (for ctypes / numba callers). */
typedef void (*vdb_distances_f32_fn)(const float *, const float *, int64_t, int64_t, int, float *);
typedef void (*vdb_distances_f32_at_fn)(const float *, const float *, const int64_t *, int64_t, int64_t, int,
                                        float *);
typedef void (*vdb_distances_f16_fn)(const float *, const uint16_t *, int64_t, int64_t, int, float *);
typedef void (*vdb_distances_sq8_fn)(const float *, const uint8_t *, const float *, const float *, int64_t,
                                     int64_t, int, float *);
typedef void (*vdb_hamming_u64_fn)(const uint64_t *, const uint64_t *, int64_t, int64_t, int32_t *);
typedef void (*vdb_bitplane_ip_sym_u64_fn)(const uint64_t *, const uint64_t *, const float *, const float *,
                                           int64_t, int64_t, int64_t, int64_t, int64_t, float *);
typedef void (*vdb_bitplane_ip_asym_u64_fn)(const float *, const uint64_t *, const float *, float, int64_t,
                                            int64_t, int64_t, float *);
typedef void (*vdb_pq_adc_u8_fn)(const float *, const uint8_t *, int64_t, int64_t, int64_t, float *);
typedef void (*vdb_pq4_fastscan_u8_fn)(const uint8_t *, const uint8_t *, int64_t, int64_t, uint16_t *);
typedef int64_t (*vdb_topk_f32_fn)(const float *, const uint8_t *, int64_t, int64_t, int64_t *, float *);
/* Offer dist[0..n) (row indices base + i; mask, when not NULL, indexed like dist) to a bounded
 * max-heap of k entries in heap_idx / heap_dist that holds `size` now; returns the new size. */
typedef int64_t (*vdb_topk_u16_offer_fn)(const uint16_t *, const uint8_t *, int64_t, int64_t, int64_t, int64_t,
                                         int64_t *, float *);

typedef int64_t (*vdb_hnsw_search_fn)(const float *, const float *, const void *, int64_t, int64_t, const int32_t *,
                                     const int32_t *, int64_t, const int32_t *, const int32_t *, const int32_t *,
                                     int64_t, int64_t, int64_t, int64_t, int64_t, const uint8_t *, int64_t,
                                     uint16_t *, int64_t, float *, int32_t *, float *, int32_t *, int64_t,
                                     int32_t *, const int32_t *, const float *);

/* One implementation of every kernel for one SIMD level. */
typedef struct vdb_kernel_table {
    const char *name; /* "scalar" | "avx2" | "avx512" */
    int level;        /* VDB_LEVEL_* */
    vdb_distances_f32_fn distances_f32;
    vdb_distances_f32_at_fn distances_f32_at;
    vdb_distances_f16_fn distances_f16;
    vdb_distances_sq8_fn distances_sq8;
    vdb_hamming_u64_fn hamming;
    vdb_bitplane_ip_sym_u64_fn bitplane_ip_sym;
    vdb_bitplane_ip_asym_u64_fn bitplane_ip_asym;
    vdb_pq_adc_u8_fn pq_adc;
    vdb_pq4_fastscan_u8_fn pq4_fastscan;
    vdb_topk_f32_fn topk;
    vdb_topk_u16_offer_fn topk_u16_offer;
    vdb_hnsw_search_fn hnsw_search;
} vdb_kernel_table;

/* CPU features, probed once (vdb_init) with __builtin_cpu_supports. */
typedef struct vdb_cpu_features {
    int avx2, fma, f16c, popcnt, avx512f, avx512bw, avx512vl, avx512vpopcntdq;
} vdb_cpu_features;

/* Probe the CPU and select the best level (idempotent). Returns the active level. */
int vdb_init(void);
/* The best level this CPU supports. */
int vdb_max_level(void);
/* Activate min(level, vdb_max_level()); returns the level now active. */
int vdb_set_level(int level);
const vdb_kernel_table *vdb_active_table(void);
const vdb_cpu_features *vdb_cpu(void);

#ifdef __cplusplus
}
#endif

#endif /* VECDB_KERNELS_H */
