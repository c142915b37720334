/*
 * x86_avx2.c - AVX2 + FMA (+ F16C, POPCNT) kernels.
 *
 * The file is compiled with baseline flags; each function opts in with a target attribute, and
 * dispatch.c installs these only when the CPU reports all four features.
 */
#include "vdb_internal.h"

#if VDB_X86
#include <immintrin.h>

#define T_AVX2 __attribute__((target("avx2,fma,f16c,popcnt")))
#define AI_AVX2 static VDB_ALWAYS_INLINE T_AVX2

/* Row element types of the distance kernels. */
enum { K_F32 = 0, K_F16 = 1, K_SQ8 = 2 };

AI_AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Lanes 0..r-1 set: lets a tail of r < 8 elements use masked loads, which never touch (and so
 * never fault on) memory past the end of the row. */
AI_AVX2 __m256i tail_mask(int64_t r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Elements j..j+7 of a row as float32. sc/of are scale/offset j..j+7 (sq8 only). */
AI_AVX2 __m256 load8(const void *row, int64_t j, int kind, __m256 sc, __m256 of) {
    if (kind == K_F32) return _mm256_loadu_ps((const float *)row + j);
    if (kind == K_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + j)));
    __m128i c = _mm_loadl_epi64((const __m128i *)((const uint8_t *)row + j));
    return _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c)), of);
}

/* The last r (1..7) elements from j, zero in the unused lanes (for sq8, sc/of are masked loads,
 * so the unused lanes decode to 0 * code + 0). f16/u8 have no masked load: copy to a buffer
 * (only rows shorter than 8 elements come here; block() reads longer rows' tails in place). */
AI_AVX2 __m256 load_tail(const void *row, int64_t j, int64_t r, int kind, __m256i m, __m256 sc, __m256 of) {
    if (kind == K_F32) return _mm256_maskload_ps((const float *)row + j, m);
    if (kind == K_F16) {
        uint16_t buf[8] = {0};
        memcpy(buf, (const uint16_t *)row + j, (size_t)r * sizeof(uint16_t));
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)buf));
    }
    uint8_t buf[8] = {0};
    memcpy(buf, (const uint8_t *)row + j, (size_t)r);
    __m128i c = _mm_loadl_epi64((const __m128i *)buf);
    return _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c)), of);
}

/* Accumulate one 8-lane chunk: l2 sums squared differences (no cancellation, unlike the
 * expanded |q|^2+|x|^2-2qx form); ip and cosine sum products; cosine also sums x*x. */
AI_AVX2 void step(int metric, __m256 qv, __m256 xv, __m256 *acc, __m256 *nrm) {
    if (metric == VDB_METRIC_L2) {
        __m256 diff = _mm256_sub_ps(xv, qv);
        *acc = _mm256_fmadd_ps(diff, diff, *acc);
    } else {
        *acc = _mm256_fmadd_ps(xv, qv, *acc);
        if (metric == VDB_METRIC_COSINE) *nrm = _mm256_fmadd_ps(xv, xv, *nrm);
    }
}

/*
 * Distances of R rows (R = 4 or 1, a compile-time constant after inlining) sharing every query
 * load. Two accumulator chains per row for l2/ip (8 independent FMA chains at R = 4 hide the FMA
 * latency); cosine already has two quantities per row, so it keeps one chain of each.
 */
AI_AVX2 void block(const float *q, const void *const *rows, int R, int kind, int metric, const float *scale,
                   const float *offset, int64_t d, double qq, float *out) {
    __m256 a0[4], a1[4], n0[4];
    const __m256 zero = _mm256_setzero_ps();
    for (int r = 0; r < R; r++) a0[r] = a1[r] = n0[r] = zero;
    __m256 s0 = zero, s1 = zero, o0 = zero, o1 = zero;
    int64_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m256 q0 = _mm256_loadu_ps(q + j), q1 = _mm256_loadu_ps(q + j + 8);
        if (kind == K_SQ8) {
            s0 = _mm256_loadu_ps(scale + j), s1 = _mm256_loadu_ps(scale + j + 8);
            o0 = _mm256_loadu_ps(offset + j), o1 = _mm256_loadu_ps(offset + j + 8);
        }
        for (int r = 0; r < R; r++) {
            __m256 x0 = load8(rows[r], j, kind, s0, o0), x1 = load8(rows[r], j + 8, kind, s1, o1);
            step(metric, q0, x0, &a0[r], &n0[r]);
            step(metric, q1, x1, metric == VDB_METRIC_COSINE ? &a0[r] : &a1[r], &n0[r]);
        }
    }
    if (j + 8 <= d) {
        __m256 q0 = _mm256_loadu_ps(q + j);
        if (kind == K_SQ8) s0 = _mm256_loadu_ps(scale + j), o0 = _mm256_loadu_ps(offset + j);
        for (int r = 0; r < R; r++) step(metric, q0, load8(rows[r], j, kind, s0, o0), &a0[r], &n0[r]);
        j += 8;
    }
    if (j < d && kind != K_F32 && d >= 8) {
        /* f16 / u8 rows have no masked load, and copying each row's tail to a buffer made these
         * scans 2-3.5x slower at d = 50. Instead read the 8 elements that end the row (the first
         * 8 - (d - j) of them already counted) and zero those lanes: q, scale and offset through
         * the mask, f16 rows with an AND (so even a NaN there counts as 0). */
        int64_t s = d - 8;
        __m256i m = _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                       _mm256_set1_epi32((int)(7 - (d - j))));
        __m256 q0 = _mm256_maskload_ps(q + s, m);
        if (kind == K_SQ8) s0 = _mm256_maskload_ps(scale + s, m), o0 = _mm256_maskload_ps(offset + s, m);
        for (int r = 0; r < R; r++) {
            __m256 x = load8(rows[r], s, kind, s0, o0);
            if (kind == K_F16) x = _mm256_and_ps(x, _mm256_castsi256_ps(m));
            step(metric, q0, x, &a1[r], &n0[r]);
        }
    } else if (j < d) {
        __m256i m = tail_mask(d - j);
        __m256 q0 = _mm256_maskload_ps(q + j, m);
        if (kind == K_SQ8) s0 = _mm256_maskload_ps(scale + j, m), o0 = _mm256_maskload_ps(offset + j, m);
        for (int r = 0; r < R; r++)
            step(metric, q0, load_tail(rows[r], j, d - j, kind, m, s0, o0), &a1[r], &n0[r]);
    }
    for (int r = 0; r < R; r++) {
        float s = hsum(_mm256_add_ps(a0[r], a1[r]));
        if (metric == VDB_METRIC_L2)
            out[r] = s;
        else if (metric == VDB_METRIC_IP)
            out[r] = -s;
        else
            out[r] = vdb_cosine_finish(s, hsum(n0[r]), qq);
    }
}

static T_AVX2 double query_sqnorm(const float *q, int64_t d) {
    __m256 a = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m256 v = _mm256_loadu_ps(q + j);
        a = _mm256_fmadd_ps(v, v, a);
    }
    if (j < d) {
        __m256 v = _mm256_maskload_ps(q + j, tail_mask(d - j));
        a = _mm256_fmadd_ps(v, v, a);
    }
    return hsum(a);
}

/* Touch every cache line of a row that the gather will read next. */
AI_AVX2 void prefetch_row(const char *p, size_t bytes) {
    for (size_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
    if (bytes) _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
}

/* Rows 0..n-1 (offsets == NULL) or rows offsets[0..n-1], four at a time. */
AI_AVX2 void scan(const float *q, const void *x, const int64_t *offsets, int64_t n, int64_t d, int kind,
                  int metric, const float *scale, const float *offset, float *out) {
    size_t rowbytes = (size_t)d * (kind == K_F32 ? 4 : kind == K_F16 ? 2 : 1);
    const char *base = (const char *)x;
    double qq = metric == VDB_METRIC_COSINE ? query_sqnorm(q, d) : 0.0;
    const void *rows[4];
    int64_t i = 0;
    /* Contiguous f32/f16 rows go one at a time: the scan is then a single sequential stream,
     * which the hardware prefetchers follow at full memory bandwidth; interleaving 2 or 4 rows
     * (to share query loads) measured 35-40% slower from DRAM on the AMD EPYC dev box and no
     * faster from L2. sq8 rows are decode-bound instead, so they go four at a time to share
     * the scale/offset/query loads (~15% faster). Gathered rows are random anyway: four at a
     * time, with the next four prefetched. */
    if (offsets || kind == K_SQ8)
        for (; i + 4 <= n; i += 4) {
            for (int r = 0; r < 4; r++) rows[r] = base + (size_t)(offsets ? offsets[i + r] : i + r) * rowbytes;
            if (offsets)
                for (int64_t r = i + 4; r < i + 8 && r < n; r++)
                    prefetch_row(base + (size_t)offsets[r] * rowbytes, rowbytes);
            block(q, rows, 4, kind, metric, scale, offset, d, qq, out + i);
        }
    for (; i < n; i++) {
        rows[0] = base + (size_t)(offsets ? offsets[i] : i) * rowbytes;
        block(q, rows, 1, kind, metric, scale, offset, d, qq, out + i);
    }
}

/* One specialised copy of scan() per metric, so no metric test runs inside the loops. */
#define SCAN_BY_METRIC(KIND, Q, X, OFFS, N, D, METRIC, SC, OF, OUT)                                \
    do {                                                                                           \
        if ((METRIC) == VDB_METRIC_L2)                                                             \
            scan(Q, X, OFFS, N, D, KIND, VDB_METRIC_L2, SC, OF, OUT);                              \
        else if ((METRIC) == VDB_METRIC_IP)                                                        \
            scan(Q, X, OFFS, N, D, KIND, VDB_METRIC_IP, SC, OF, OUT);                              \
        else                                                                                       \
            scan(Q, X, OFFS, N, D, KIND, VDB_METRIC_COSINE, SC, OF, OUT);                          \
    } while (0)

static T_AVX2 void distances_f32(const float *q, const float *x, int64_t n, int64_t d, int metric, float *out) {
    SCAN_BY_METRIC(K_F32, q, x, NULL, n, d, metric, NULL, NULL, out);
}

static T_AVX2 void distances_f32_at(const float *q, const float *x, const int64_t *offsets, int64_t m,
                                    int64_t d, int metric, float *out) {
    SCAN_BY_METRIC(K_F32, q, x, offsets, m, d, metric, NULL, NULL, out);
}

static T_AVX2 void distances_f16(const float *q, const uint16_t *x, int64_t n, int64_t d, int metric,
                                 float *out) {
    SCAN_BY_METRIC(K_F16, q, x, NULL, n, d, metric, NULL, NULL, out);
}

static T_AVX2 void distances_sq8(const float *q, const uint8_t *codes, const float *scale,
                                 const float *offset, int64_t n, int64_t d, int metric, float *out) {
    SCAN_BY_METRIC(K_SQ8, q, codes, NULL, n, d, metric, scale, offset, out);
}

/* ---- binary codes: XOR + POPCNT, four independent counters ---- */

AI_AVX2 int64_t popcount_xor(const uint64_t *a, const uint64_t *b, int64_t w) {
    int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0, j = 0;
    for (; j + 4 <= w; j += 4) {
        c0 += __builtin_popcountll(a[j] ^ b[j]);
        c1 += __builtin_popcountll(a[j + 1] ^ b[j + 1]);
        c2 += __builtin_popcountll(a[j + 2] ^ b[j + 2]);
        c3 += __builtin_popcountll(a[j + 3] ^ b[j + 3]);
    }
    for (; j < w; j++) c0 += __builtin_popcountll(a[j] ^ b[j]);
    return (c0 + c1) + (c2 + c3);
}

AI_AVX2 void hamming_w(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)popcount_xor(q, codes + i * w, w);
}

static T_AVX2 void hamming(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out) {
    /* The common code widths (64..1024 bits) get a fully unrolled copy with the query in registers. */
    switch (w) {
    case 1: hamming_w(q, codes, n, 1, out); break;
    case 2: hamming_w(q, codes, n, 2, out); break;
    case 4: hamming_w(q, codes, n, 4, out); break;
    case 6: hamming_w(q, codes, n, 6, out); break;
    case 8: hamming_w(q, codes, n, 8, out); break;
    case 12: hamming_w(q, codes, n, 12, out); break;
    case 16: hamming_w(q, codes, n, 16, out); break;
    default: hamming_w(q, codes, n, w, out); break;
    }
}

AI_AVX2 void bitplane_ip_sym_w(const uint64_t *qplanes, const uint64_t *codes, const float *qw, const float *cw,
                               int64_t uq, int64_t n, int64_t u, int64_t w, int64_t dim, float *out) {
    for (int64_t r = 0; r < n; r++) {
        const uint64_t *row = codes + r * u * w;
        double total = 0.0;
        /* Same loop order and float64 expression as the reference, so results match exactly;
         * the summation chain of one row overlaps with the next row's popcounts. */
        for (int64_t i = 0; i < uq; i++)
            for (int64_t j = 0; j < u; j++) {
                int64_t ham = popcount_xor(qplanes + i * w, row + j * w, w);
                total += ((double)qw[i] * (double)cw[j]) * ((double)dim - 2.0 * (double)ham);
            }
        out[r] = (float)(-total);
    }
}

static T_AVX2 void bitplane_ip_sym(const uint64_t *qplanes, const uint64_t *codes, const float *qw,
                                   const float *cw, int64_t uq, int64_t n, int64_t u, int64_t w, int64_t dim,
                                   float *out) {
    switch (w) { /* as in hamming(): unrolled copies for the common code widths */
    case 1: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 1, dim, out); break;
    case 2: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 2, dim, out); break;
    case 4: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 4, dim, out); break;
    case 6: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 6, dim, out); break;
    case 8: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 8, dim, out); break;
    case 12: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 12, dim, out); break;
    case 16: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, 16, dim, out); break;
    default: bitplane_ip_sym_w(qplanes, codes, qw, cw, uq, n, u, w, dim, out); break;
    }
}

/* ---- lookup-table scans ---- */

/* Sum of lut[B, byte B] over one plane: one byte load and one table load per code byte, eight
 * float32 chains (one per byte position) so the adds never wait on each other, combined in
 * float64. Plain loads beat an 8-lane gather here (~2x on the AMD EPYC dev box, where gathers
 * are microcoded), and byte loads were as fast as shifting bytes out of a 64-bit load. */
AI_AVX2 double lut_sum_plane(const float *lut, const uint64_t *plane, int64_t w) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    const uint8_t *bytes = (const uint8_t *)plane; /* byte B of the little-endian code = lut row B */
    for (int64_t word = 0; word < w; word++, bytes += 8) {
        const float *t = lut + word * 2048;
        s0 += t[bytes[0]];
        s1 += t[256 + bytes[1]];
        s2 += t[512 + bytes[2]];
        s3 += t[768 + bytes[3]];
        s4 += t[1024 + bytes[4]];
        s5 += t[1280 + bytes[5]];
        s6 += t[1536 + bytes[6]];
        s7 += t[1792 + bytes[7]];
    }
    return (((double)s0 + s1) + ((double)s2 + s3)) + (((double)s4 + s5) + ((double)s6 + s7));
}

static T_AVX2 void bitplane_ip_asym(const float *lut, const uint64_t *codes, const float *cw, float query_sum,
                                    int64_t n, int64_t u, int64_t w, float *out) {
    for (int64_t r = 0; r < n; r++) {
        double total = 0.0;
        for (int64_t j = 0; j < u; j++)
            total += (double)cw[j] * (2.0 * lut_sum_plane(lut, codes + (r * u + j) * w, w) - (double)query_sum);
        out[r] = (float)(-total);
    }
}

/* ---- 4-bit fast scan: in-register table lookups ---- */

/*
 * One block of 32 rows. A 256-bit register holds sub-quantizers j (low lane) and j+1 (high
 * lane): 16 code bytes each (low nibble = row t, high nibble = row 16+t) and their 16-entry
 * tables, so _mm256_shuffle_epi8 performs 64 table lookups at once. The looked-up bytes are
 * summed in uint16 lanes without unpacking: adding a byte pair as one uint16 gives
 * even + 256*odd, and a second accumulator of (pair >> 8) gives odd, so even = acc - (odd << 8)
 * (all modulo 2^16, which is exactly the reference's wrap-around).
 */
static T_AVX2 void pq4_fastscan(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m,
                                uint16_t *out) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i half = _mm256_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0);
    int64_t nblocks = (n + 31) / 32;
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = packed + b * m * 16;
        __m256i lo0 = _mm256_setzero_si256(), lo1 = lo0, hi0 = lo0, hi1 = lo0;
        for (int64_t j = 0; j < m; j += 2) {
            __m256i c, l;
            if (j + 2 <= m) {
                c = _mm256_loadu_si256((const __m256i *)(blk + j * 16));
                l = _mm256_loadu_si256((const __m256i *)(lut + j * 16));
            } else { /* odd m: the last sub-quantizer alone, zero table in the high lane */
                c = _mm256_maskload_epi32((const int *)(blk + j * 16), half);
                l = _mm256_maskload_epi32((const int *)(lut + j * 16), half);
            }
            __m256i vlo = _mm256_shuffle_epi8(l, _mm256_and_si256(c, low4));
            __m256i vhi = _mm256_shuffle_epi8(l, _mm256_and_si256(_mm256_srli_epi16(c, 4), low4));
            lo0 = _mm256_add_epi16(lo0, vlo);
            lo1 = _mm256_add_epi16(lo1, _mm256_srli_epi16(vlo, 8));
            hi0 = _mm256_add_epi16(hi0, vhi);
            hi1 = _mm256_add_epi16(hi1, _mm256_srli_epi16(vhi, 8));
        }
        /* even rows = acc - (odd << 8); then fold the two sub-quantizer lanes together */
        __m256i lo_even = _mm256_sub_epi16(lo0, _mm256_slli_epi16(lo1, 8));
        __m256i hi_even = _mm256_sub_epi16(hi0, _mm256_slli_epi16(hi1, 8));
        __m128i le = _mm_add_epi16(_mm256_castsi256_si128(lo_even), _mm256_extracti128_si256(lo_even, 1));
        __m128i lodd = _mm_add_epi16(_mm256_castsi256_si128(lo1), _mm256_extracti128_si256(lo1, 1));
        __m128i he = _mm_add_epi16(_mm256_castsi256_si128(hi_even), _mm256_extracti128_si256(hi_even, 1));
        __m128i hodd = _mm_add_epi16(_mm256_castsi256_si128(hi1), _mm256_extracti128_si256(hi1, 1));
        uint16_t tmp[32];
        uint16_t *dst = n - b * 32 >= 32 ? out + b * 32 : tmp;
        _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(le, lodd));        /* rows 0..7 */
        _mm_storeu_si128((__m128i *)(dst + 8), _mm_unpackhi_epi16(le, lodd));  /* rows 8..15 */
        _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpacklo_epi16(he, hodd)); /* rows 16..23 */
        _mm_storeu_si128((__m128i *)(dst + 24), _mm_unpackhi_epi16(he, hodd)); /* rows 24..31 */
        if (dst == tmp) memcpy(out + b * 32, tmp, (size_t)(n - b * 32) * sizeof(uint16_t));
    }
}

/* ---- top-k: SIMD threshold filter in front of the scalar heap ---- */

static T_AVX2 int64_t topk(const float *dist, const uint8_t *mask, int64_t n, int64_t k, int64_t *out_idx,
                           float *out_dist) {
    int64_t size = 0, i = 0;
    if (k <= 0) return vdb_heap_finish(out_dist, out_idx, 0, k);
    /* Fill the heap first; after that only entries below the current worst can matter. */
    for (; i < n && size < k; i++) {
        float v = dist[i];
        if ((mask && !mask[i]) || v != v) continue;
        size = vdb_heap_offer(out_dist, out_idx, size, k, v, i);
    }
    const __m256i zero = _mm256_setzero_si256();
    for (; i + 8 <= n; i += 8) {
        /* ordered "<" is false for NaN, so NaN entries drop out here as well */
        __m256 lt = _mm256_cmp_ps(_mm256_loadu_ps(dist + i), _mm256_set1_ps(out_dist[0]), _CMP_LT_OQ);
        int bits = _mm256_movemask_ps(lt);
        if (mask && bits) {
            __m256i mv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mask + i)));
            bits &= ~_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(mv, zero)));
        }
        while (bits) {
            int t = __builtin_ctz((unsigned)bits);
            bits &= bits - 1;
            size = vdb_heap_offer(out_dist, out_idx, size, k, dist[i + t], i + t);
        }
    }
    for (; i < n; i++) {
        float v = dist[i];
        if ((mask && !mask[i]) || v != v) continue;
        size = vdb_heap_offer(out_dist, out_idx, size, k, v, i);
    }
    return vdb_heap_finish(out_dist, out_idx, size, k);
}

/* uint16 sums: once the heap is full, a saturating threshold - d is nonzero exactly where d is
 * below the worst kept sum, so sixteen rows are ruled out per compare. */
static T_AVX2 int64_t topk_u16_offer(const uint16_t *dist, const uint8_t *mask, int64_t n, int64_t base, int64_t k,
                                     int64_t size, int64_t *heap_idx, float *heap_dist) {
    int64_t i = 0;
    if (k <= 0) return size;
    for (; i < n && size < k; i++)
        if (!mask || mask[i]) size = vdb_heap_offer(heap_dist, heap_idx, size, k, (float)dist[i], base + i);
    const __m256i zero = _mm256_setzero_si256();
    for (; i + 16 <= n; i += 16) {
        /* the heap holds uint16 values as float32, so the root converts back exactly */
        __m256i thr = _mm256_set1_epi16((short)(uint16_t)heap_dist[0]);
        __m256i gap = _mm256_subs_epu16(thr, _mm256_loadu_si256((const __m256i *)(dist + i)));
        /* one movemask bit per byte: keep the low byte's bit of each uint16 lane */
        uint32_t bits = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi16(gap, zero)) & 0x55555555u;
        while (bits) {
            int64_t t = __builtin_ctz(bits) >> 1;
            bits &= bits - 1;
            if (!mask || mask[i + t])
                size = vdb_heap_offer(heap_dist, heap_idx, size, k, (float)dist[i + t], base + i + t);
        }
    }
    for (; i < n; i++)
        if (!mask || mask[i]) size = vdb_heap_offer(heap_dist, heap_idx, size, k, (float)dist[i], base + i);
    return size;
}

/* Codes j..j+7 of a uint8 row as float32. */
AI_AVX2 __m256 widen8(const uint8_t *x, int64_t j) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x + j))));
}

/* One uint8 chunk of the traversal distance: w (q - x)^2 for WL2_U8, q x for IP_U8. */
AI_AVX2 __m256 u8_step(int mode, const float *q, const float *w, const uint8_t *x, int64_t j, __m256 acc) {
    __m256 xv = widen8(x, j), qv = _mm256_loadu_ps(q + j);
    if (mode == VDB_GRAPH_IP_U8) return _mm256_fmadd_ps(qv, xv, acc);
    __m256 diff = _mm256_sub_ps(qv, xv);
    return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(w + j), diff), diff, acc);
}

/* sum q[j] x[j] of an int8 query in [-63, 63] and uint8 codes, exact: vpmaddubsw's pair sums stay
 * within 2 * 255 * 63 < 32767, so they never saturate. */
AI_AVX2 __m256i i8_step(const int8_t *q, const uint8_t *x, int64_t j, __m256i acc) {
    __m256i pairs = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(x + j)),
                                         _mm256_loadu_si256((const __m256i *)(q + j)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

AI_AVX2 int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* One row's traversal distance for hnsw_search.h. f32 rows reuse block(); uint8 codes are
 * widened to float32 sixteen at a time into two accumulator chains that hide the FMA latency. */
AI_AVX2 float gs_row_dist(const float *q, const float *w, const void *rows, int64_t i, int64_t d, int mode) {
    if (mode == VDB_GRAPH_L2_F32 || mode == VDB_GRAPH_IP_F32) {
        float out;
        const void *row = (const float *)rows + i * d;
        block(q, &row, 1, K_F32, mode == VDB_GRAPH_L2_F32 ? VDB_METRIC_L2 : VDB_METRIC_IP, NULL, NULL, d, 0.0, &out);
        return out;
    }
    const uint8_t *x = (const uint8_t *)rows + i * d;
    if (mode == VDB_GRAPH_IP_I8) {
        const int8_t *qi = (const int8_t *)q;
        __m256i acc = _mm256_setzero_si256();
        int64_t j = 0;
        for (; j + 32 <= d; j += 32) acc = i8_step(qi, x, j, acc);
        int32_t sum = hsum_i32(acc);
        for (; j < d; j++) sum += (int32_t)qi[j] * (int32_t)x[j];
        return -(w[0] * (float)sum);
    }
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= d; j += 16) {
        a0 = u8_step(mode, q, w, x, j, a0);
        a1 = u8_step(mode, q, w, x, j + 8, a1);
    }
    if (j + 8 <= d) {
        a0 = u8_step(mode, q, w, x, j, a0);
        j += 8;
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; j < d; j++) {
        float diff = q[j] - (float)x[j];
        s += mode == VDB_GRAPH_IP_U8 ? q[j] * (float)x[j] : w[j] * diff * diff;
    }
    return mode == VDB_GRAPH_IP_U8 ? -s : s;
}

/* Four rows at once, each computed exactly as gs_row_dist does: their loads interleave (and share
 * the query's), as in the gather scan. */
AI_AVX2 void gs_row_dist4(const float *q, const float *w, const void *rows, const int32_t *ids, int64_t d, int mode,
                          float *out) {
    if (mode == VDB_GRAPH_L2_F32 || mode == VDB_GRAPH_IP_F32) {
        const void *r4[4];
        for (int r = 0; r < 4; r++) r4[r] = (const float *)rows + (int64_t)ids[r] * d;
        block(q, r4, 4, K_F32, mode == VDB_GRAPH_L2_F32 ? VDB_METRIC_L2 : VDB_METRIC_IP, NULL, NULL, d, 0.0, out);
        return;
    }
    if (mode == VDB_GRAPH_IP_I8) { /* integer sums: exact in any order, four rows share each query load */
        const int8_t *qi = (const int8_t *)q;
        const uint8_t *x[4];
        __m256i acc[4];
        for (int r = 0; r < 4; r++) {
            x[r] = (const uint8_t *)rows + (int64_t)ids[r] * d;
            acc[r] = _mm256_setzero_si256();
        }
        int64_t j = 0;
        for (; j + 32 <= d; j += 32)
            for (int r = 0; r < 4; r++) acc[r] = i8_step(qi, x[r], j, acc[r]);
        for (int r = 0; r < 4; r++) {
            int32_t sum = hsum_i32(acc[r]);
            for (int64_t t = j; t < d; t++) sum += (int32_t)qi[t] * (int32_t)x[r][t];
            out[r] = -(w[0] * (float)sum);
        }
        return;
    }
    /* uint8 codes: the chunk order and the two chains of gs_row_dist, four rows side by side. */
    const uint8_t *x[4];
    __m256 a0[4], a1[4];
    for (int r = 0; r < 4; r++) {
        x[r] = (const uint8_t *)rows + (int64_t)ids[r] * d;
        a0[r] = a1[r] = _mm256_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 16 <= d; j += 16)
        for (int r = 0; r < 4; r++) {
            a0[r] = u8_step(mode, q, w, x[r], j, a0[r]);
            a1[r] = u8_step(mode, q, w, x[r], j + 8, a1[r]);
        }
    if (j + 8 <= d) {
        for (int r = 0; r < 4; r++) a0[r] = u8_step(mode, q, w, x[r], j, a0[r]);
        j += 8;
    }
    for (int r = 0; r < 4; r++) {
        float s = hsum(_mm256_add_ps(a0[r], a1[r]));
        for (int64_t t = j; t < d; t++) {
            float diff = q[t] - (float)x[r][t];
            s += mode == VDB_GRAPH_IP_U8 ? q[t] * (float)x[r][t] : w[t] * diff * diff;
        }
        out[r] = mode == VDB_GRAPH_IP_U8 ? -s : s;
    }
}

#define GS_ATTR T_AVX2
#include "hnsw_search.h"

void vdb_fill_avx2(vdb_kernel_table *t) {
    t->name = "avx2";
    t->level = VDB_LEVEL_AVX2;
    t->distances_f32 = distances_f32;
    t->distances_f32_at = distances_f32_at;
    t->distances_f16 = distances_f16;
    t->distances_sq8 = distances_sq8;
    t->hamming = hamming;
    t->bitplane_ip_sym = bitplane_ip_sym;
    t->bitplane_ip_asym = bitplane_ip_asym;
    /* pq_adc keeps the serial kernel: on the AMD EPYC dev box plain loads with four chains beat
     * both an 8-lane gather (~1.5x) and 8-codes-per-load shifting; nothing here would add to it. */
    t->pq4_fastscan = pq4_fastscan;
    t->topk = topk;
    t->topk_u16_offer = topk_u16_offer;
    t->hnsw_search = hnsw_search;
}

#endif /* VDB_X86 */
