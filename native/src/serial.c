/*
 * serial.c - the portable floor of the dispatch table: plain C99, compiled with baseline flags,
 * correct on any CPU. It is also the readable statement of what the SIMD files compute.
 */
#include "vdb_internal.h"

/* Element decoders: every row type is turned into float32 before any arithmetic, so all row
 * types share the same accumulation (and the same rounding story) as float32 rows. */
#define LOAD_F32(x, j) ((x)[j])
#define LOAD_F16(x, j) vdb_half_to_float((x)[j])
#define LOAD_SQ8(x, j) (offset[j] + scale[j] * (float)(x)[j])

/* One row's distance. Four partial sums per quantity shorten the dependency chain and make the
 * float32 error grow more slowly than one running sum would. */
#define SERIAL_ROW(NAME, T, LOAD)                                                                  \
    static float NAME(const float *q, const T *x, int64_t d, int metric, const float *scale,      \
                      const float *offset, double qq) {                                           \
        (void)scale;                                                                               \
        (void)offset;                                                                              \
        float a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};                                            \
        int64_t j = 0;                                                                             \
        if (metric == VDB_METRIC_L2) {                                                             \
            for (; j + 4 <= d; j += 4)                                                             \
                for (int t = 0; t < 4; t++) {                                                      \
                    float diff = LOAD(x, j + t) - q[j + t];                                        \
                    a[t] += diff * diff;                                                           \
                }                                                                                  \
            for (; j < d; j++) {                                                                   \
                float diff = LOAD(x, j) - q[j];                                                    \
                a[0] += diff * diff;                                                               \
            }                                                                                      \
            return (a[0] + a[1]) + (a[2] + a[3]);                                                  \
        }                                                                                          \
        if (metric == VDB_METRIC_IP) {                                                             \
            for (; j + 4 <= d; j += 4)                                                             \
                for (int t = 0; t < 4; t++) a[t] += LOAD(x, j + t) * q[j + t];                     \
            for (; j < d; j++) a[0] += LOAD(x, j) * q[j];                                          \
            return -((a[0] + a[1]) + (a[2] + a[3]));                                               \
        }                                                                                          \
        for (; j + 4 <= d; j += 4)                                                                 \
            for (int t = 0; t < 4; t++) {                                                          \
                float v = LOAD(x, j + t);                                                          \
                a[t] += v * q[j + t];                                                              \
                b[t] += v * v;                                                                     \
            }                                                                                      \
        for (; j < d; j++) {                                                                       \
            float v = LOAD(x, j);                                                                  \
            a[0] += v * q[j];                                                                      \
            b[0] += v * v;                                                                         \
        }                                                                                          \
        float dot = (a[0] + a[1]) + (a[2] + a[3]);                                                 \
        return vdb_cosine_finish(dot, (b[0] + b[1]) + (b[2] + b[3]), qq);                          \
    }

SERIAL_ROW(row_f32, float, LOAD_F32)
SERIAL_ROW(row_f16, uint16_t, LOAD_F16)
SERIAL_ROW(row_sq8, uint8_t, LOAD_SQ8)

static double query_sqnorm(const float *q, int64_t d) {
    float a[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= d; j += 4)
        for (int t = 0; t < 4; t++) a[t] += q[j + t] * q[j + t];
    for (; j < d; j++) a[0] += q[j] * q[j];
    return (double)((a[0] + a[1]) + (a[2] + a[3]));
}

static void distances_f32(const float *q, const float *x, int64_t n, int64_t d, int metric, float *out) {
    double qq = metric == VDB_METRIC_COSINE ? query_sqnorm(q, d) : 0.0;
    for (int64_t i = 0; i < n; i++) out[i] = row_f32(q, x + i * d, d, metric, NULL, NULL, qq);
}

static void distances_f32_at(const float *q, const float *x, const int64_t *offsets, int64_t m, int64_t d,
                             int metric, float *out) {
    double qq = metric == VDB_METRIC_COSINE ? query_sqnorm(q, d) : 0.0;
    for (int64_t i = 0; i < m; i++) out[i] = row_f32(q, x + offsets[i] * d, d, metric, NULL, NULL, qq);
}

static void distances_f16(const float *q, const uint16_t *x, int64_t n, int64_t d, int metric, float *out) {
    double qq = metric == VDB_METRIC_COSINE ? query_sqnorm(q, d) : 0.0;
    for (int64_t i = 0; i < n; i++) out[i] = row_f16(q, x + i * d, d, metric, NULL, NULL, qq);
}

static void distances_sq8(const float *q, const uint8_t *codes, const float *scale, const float *offset,
                          int64_t n, int64_t d, int metric, float *out) {
    double qq = metric == VDB_METRIC_COSINE ? query_sqnorm(q, d) : 0.0;
    for (int64_t i = 0; i < n; i++) out[i] = row_sq8(q, codes + i * d, d, metric, scale, offset, qq);
}

/* Portable popcount: __builtin_popcountll lowers to a bit-twiddling sequence (or a libgcc
 * call) under baseline flags; the AVX2 file gets the POPCNT instruction instead. */
static int64_t popcount_xor(const uint64_t *a, const uint64_t *b, int64_t w) {
    int64_t c = 0;
    for (int64_t j = 0; j < w; j++) c += __builtin_popcountll(a[j] ^ b[j]);
    return c;
}

static void hamming(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)popcount_xor(q, codes + i * w, w);
}

static void bitplane_ip_sym(const uint64_t *qplanes, const uint64_t *codes, const float *qw, const float *cw,
                            int64_t uq, int64_t n, int64_t u, int64_t w, int64_t dim, float *out) {
    for (int64_t r = 0; r < n; r++) {
        const uint64_t *row = codes + r * u * w;
        double total = 0.0;
        /* Same loop order and float64 expression as the reference, so results match exactly. */
        for (int64_t i = 0; i < uq; i++)
            for (int64_t j = 0; j < u; j++) {
                int64_t ham = popcount_xor(qplanes + i * w, row + j * w, w);
                total += ((double)qw[i] * (double)cw[j]) * ((double)dim - 2.0 * (double)ham);
            }
        out[r] = (float)(-total);
    }
}

static void bitplane_ip_asym(const float *lut, const uint64_t *codes, const float *cw, float query_sum,
                             int64_t n, int64_t u, int64_t w, float *out) {
    for (int64_t r = 0; r < n; r++) {
        double total = 0.0;
        for (int64_t j = 0; j < u; j++) {
            const uint64_t *plane = codes + (r * u + j) * w;
            double s = 0.0;
            for (int64_t word = 0; word < w; word++) {
                uint64_t bits = plane[word];
                /* byte b of the little-endian word is lut row 8*word + b */
                const float *base = lut + word * 8 * 256;
                for (int b = 0; b < 8; b++) s += base[b * 256 + ((bits >> (8 * b)) & 0xFF)];
            }
            total += (double)cw[j] * (2.0 * s - (double)query_sum);
        }
        out[r] = (float)(-total);
    }
}

static void pq_adc(const float *lut, const uint8_t *codes, int64_t n, int64_t m, int64_t ksub, float *out) {
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *c = codes + i * m;
        float a[4] = {0, 0, 0, 0};
        int64_t j = 0;
        for (; j + 4 <= m; j += 4)
            for (int t = 0; t < 4; t++) a[t] += lut[(j + t) * ksub + c[j + t]];
        for (; j < m; j++) a[0] += lut[j * ksub + c[j]];
        out[i] = (a[0] + a[1]) + (a[2] + a[3]);
    }
}

static void pq4_fastscan(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m, uint16_t *out) {
    int64_t nblocks = (n + 31) / 32;
    for (int64_t b = 0; b < nblocks; b++) {
        uint32_t sums[32] = {0};
        const uint8_t *blk = packed + b * m * 16;
        for (int64_t j = 0; j < m; j++) {
            const uint8_t *codes = blk + j * 16;
            const uint8_t *l = lut + j * 16;
            for (int t = 0; t < 16; t++) {
                sums[t] += l[codes[t] & 0x0F];
                sums[16 + t] += l[codes[t] >> 4];
            }
        }
        int64_t rows = n - b * 32 < 32 ? n - b * 32 : 32;
        for (int64_t t = 0; t < rows; t++) out[b * 32 + t] = (uint16_t)sums[t]; /* wraps mod 2^16 */
    }
}

static int64_t topk(const float *dist, const uint8_t *mask, int64_t n, int64_t k, int64_t *out_idx,
                    float *out_dist) {
    int64_t size = 0;
    if (k > 0)
        for (int64_t i = 0; i < n; i++) {
            float v = dist[i];
            if ((mask && !mask[i]) || v != v) continue; /* masked out or NaN: never selected */
            size = vdb_heap_offer(out_dist, out_idx, size, k, v, i);
        }
    return vdb_heap_finish(out_dist, out_idx, size, k);
}

static int64_t topk_u16_offer(const uint16_t *dist, const uint8_t *mask, int64_t n, int64_t base, int64_t k,
                              int64_t size, int64_t *heap_idx, float *heap_dist) {
    if (k > 0)
        for (int64_t i = 0; i < n; i++)
            if (!mask || mask[i]) size = vdb_heap_offer(heap_dist, heap_idx, size, k, (float)dist[i], base + i);
    return size;
}

/* HNSW traversal (hnsw_search.h) on the portable row distances. */
static inline float gs_row_dist(const float *q, const float *w, const void *rows, int64_t i, int64_t d, int mode) {
    if (mode == VDB_GRAPH_L2_F32) return row_f32(q, (const float *)rows + i * d, d, VDB_METRIC_L2, NULL, NULL, 0.0);
    if (mode == VDB_GRAPH_IP_F32) return row_f32(q, (const float *)rows + i * d, d, VDB_METRIC_IP, NULL, NULL, 0.0);
    const uint8_t *x = (const uint8_t *)rows + i * d;
    if (mode == VDB_GRAPH_IP_I8) {
        const int8_t *qi = (const int8_t *)q;
        int32_t sum = 0;
        for (int64_t j = 0; j < d; j++) sum += (int32_t)qi[j] * (int32_t)x[j];
        return -(w[0] * (float)sum);
    }
    float a[4] = {0, 0, 0, 0};
    int64_t j = 0;
    if (mode == VDB_GRAPH_WL2_U8) {
        for (; j + 4 <= d; j += 4)
            for (int t = 0; t < 4; t++) {
                float diff = q[j + t] - (float)x[j + t];
                a[t] += w[j + t] * diff * diff;
            }
        for (; j < d; j++) {
            float diff = q[j] - (float)x[j];
            a[0] += w[j] * diff * diff;
        }
        return (a[0] + a[1]) + (a[2] + a[3]);
    }
    for (; j + 4 <= d; j += 4)
        for (int t = 0; t < 4; t++) a[t] += q[j + t] * (float)x[j + t];
    for (; j < d; j++) a[0] += q[j] * (float)x[j];
    return -((a[0] + a[1]) + (a[2] + a[3]));
}

static inline void gs_row_dist4(const float *q, const float *w, const void *rows, const int32_t *ids, int64_t d,
                                int mode, float *out) {
    for (int r = 0; r < 4; r++) out[r] = gs_row_dist(q, w, rows, ids[r], d, mode);
}

#define GS_ATTR
#include "hnsw_search.h"

void vdb_fill_scalar(vdb_kernel_table *t) {
    t->name = "scalar";
    t->level = VDB_LEVEL_SCALAR;
    t->distances_f32 = distances_f32;
    t->distances_f32_at = distances_f32_at;
    t->distances_f16 = distances_f16;
    t->distances_sq8 = distances_sq8;
    t->hamming = hamming;
    t->bitplane_ip_sym = bitplane_ip_sym;
    t->bitplane_ip_asym = bitplane_ip_asym;
    t->pq_adc = pq_adc;
    t->pq4_fastscan = pq4_fastscan;
    t->topk = topk;
    t->topk_u16_offer = topk_u16_offer;
    t->hnsw_search = hnsw_search;
}
