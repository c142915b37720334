/*
 * x86_avx512.c - AVX-512 (F, BW, VL) kernels, plus VPOPCNTDQ variants of the popcount kernels.
 *
 * Compiled with baseline flags; every function opts in with a target attribute, and dispatch.c
 * installs them only when the CPU reports AVX-512 F/BW/VL (and VPOPCNTDQ for the popcount ones).
 * The table is layered over the AVX2 one, so kernels without a 512-bit win (the load-bound
 * pq_adc, top-k, and the asymmetric bit-plane scan, whose masked-add form ran at 0.4-0.8x the
 * AVX2 table lookups on Zen 4 and at 0.9x on a Xeon) keep their AVX2 / serial versions.
 *
 * Masked loads handle every tail: a masked-off lane is never read, so no row is over-read.
 */
#include "vdb_internal.h"

#if VDB_X86
#include <immintrin.h>

#define T_512 __attribute__((target("avx2,fma,f16c,popcnt,avx512f,avx512bw,avx512vl")))
#define T_VPOP __attribute__((target("avx2,fma,f16c,popcnt,avx512f,avx512bw,avx512vl,avx512vpopcntdq")))
#define AI_512 static VDB_ALWAYS_INLINE T_512
#define AI_VPOP static VDB_ALWAYS_INLINE T_VPOP

enum { K_F32 = 0, K_F16 = 1, K_SQ8 = 2 };

/* Lanes 0..r-1 of 16 (r >= 16 gives all lanes). */
AI_512 __mmask16 lanes16(int64_t r) {
    return r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
}

/* Elements j.. of a row as float32 in the lanes of mask m, zero elsewhere (for sq8, sc/of are
 * zero outside m, so unused lanes decode to 0 * code + 0). */
AI_512 __m512 load16(const void *row, int64_t j, int kind, __mmask16 m, __m512 sc, __m512 of) {
    if (kind == K_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + j);
    if (kind == K_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + j));
    __m128i c = _mm_maskz_loadu_epi8(m, (const uint8_t *)row + j);
    return _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(c)), of);
}

AI_512 void step(int metric, __m512 qv, __m512 xv, __m512 *acc, __m512 *nrm) {
    if (metric == VDB_METRIC_L2) {
        __m512 diff = _mm512_sub_ps(xv, qv);
        *acc = _mm512_fmadd_ps(diff, diff, *acc);
    } else {
        *acc = _mm512_fmadd_ps(xv, qv, *acc);
        if (metric == VDB_METRIC_COSINE) *nrm = _mm512_fmadd_ps(xv, xv, *nrm);
    }
}

/* R rows (4 or 1) sharing each query load; two chains per row for l2/ip, as in the AVX2 file. */
AI_512 void block(const float *q, const void *const *rows, int R, int kind, int metric, const float *scale,
                  const float *offset, int64_t d, double qq, float *out) {
    __m512 a0[4], a1[4], n0[4];
    const __m512 zero = _mm512_setzero_ps();
    for (int r = 0; r < R; r++) a0[r] = a1[r] = n0[r] = zero;
    __m512 s0 = zero, s1 = zero, o0 = zero, o1 = zero;
    const __mmask16 all = (__mmask16)0xFFFF;
    int64_t j = 0;
    for (; j + 32 <= d; j += 32) {
        __m512 q0 = _mm512_loadu_ps(q + j), q1 = _mm512_loadu_ps(q + j + 16);
        if (kind == K_SQ8) {
            s0 = _mm512_loadu_ps(scale + j), s1 = _mm512_loadu_ps(scale + j + 16);
            o0 = _mm512_loadu_ps(offset + j), o1 = _mm512_loadu_ps(offset + j + 16);
        }
        for (int r = 0; r < R; r++) {
            __m512 x0 = load16(rows[r], j, kind, all, s0, o0), x1 = load16(rows[r], j + 16, kind, all, s1, o1);
            step(metric, q0, x0, &a0[r], &n0[r]);
            step(metric, q1, x1, metric == VDB_METRIC_COSINE ? &a0[r] : &a1[r], &n0[r]);
        }
    }
    for (; j < d; j += 16) { /* at most two more chunks, the last one masked */
        __mmask16 m = lanes16(d - j);
        __m512 q0 = _mm512_maskz_loadu_ps(m, q + j);
        if (kind == K_SQ8) s0 = _mm512_maskz_loadu_ps(m, scale + j), o0 = _mm512_maskz_loadu_ps(m, offset + j);
        for (int r = 0; r < R; r++) step(metric, q0, load16(rows[r], j, kind, m, s0, o0), &a1[r], &n0[r]);
    }
    for (int r = 0; r < R; r++) {
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0[r], a1[r]));
        if (metric == VDB_METRIC_L2)
            out[r] = s;
        else if (metric == VDB_METRIC_IP)
            out[r] = -s;
        else
            out[r] = vdb_cosine_finish(s, _mm512_reduce_add_ps(n0[r]), qq);
    }
}

static T_512 double query_sqnorm(const float *q, int64_t d) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t j = 0; j < d; j += 16) {
        __m512 v = _mm512_maskz_loadu_ps(lanes16(d - j), q + j);
        a = _mm512_fmadd_ps(v, v, a);
    }
    return _mm512_reduce_add_ps(a);
}

AI_512 void prefetch_row(const char *p, size_t bytes) {
    for (size_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
    if (bytes) _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
}

AI_512 void scan(const float *q, const void *x, const int64_t *offsets, int64_t n, int64_t d, int kind,
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

#define SCAN_BY_METRIC(KIND, Q, X, OFFS, N, D, METRIC, SC, OF, OUT)                                \
    do {                                                                                           \
        if ((METRIC) == VDB_METRIC_L2)                                                             \
            scan(Q, X, OFFS, N, D, KIND, VDB_METRIC_L2, SC, OF, OUT);                              \
        else if ((METRIC) == VDB_METRIC_IP)                                                        \
            scan(Q, X, OFFS, N, D, KIND, VDB_METRIC_IP, SC, OF, OUT);                              \
        else                                                                                       \
            scan(Q, X, OFFS, N, D, KIND, VDB_METRIC_COSINE, SC, OF, OUT);                          \
    } while (0)

static T_512 void distances_f32(const float *q, const float *x, int64_t n, int64_t d, int metric, float *out) {
    SCAN_BY_METRIC(K_F32, q, x, NULL, n, d, metric, NULL, NULL, out);
}

static T_512 void distances_f32_at(const float *q, const float *x, const int64_t *offsets, int64_t m, int64_t d,
                                   int metric, float *out) {
    SCAN_BY_METRIC(K_F32, q, x, offsets, m, d, metric, NULL, NULL, out);
}

static T_512 void distances_f16(const float *q, const uint16_t *x, int64_t n, int64_t d, int metric,
                                float *out) {
    SCAN_BY_METRIC(K_F16, q, x, NULL, n, d, metric, NULL, NULL, out);
}

static T_512 void distances_sq8(const float *q, const uint8_t *codes, const float *scale, const float *offset,
                                int64_t n, int64_t d, int metric, float *out) {
    SCAN_BY_METRIC(K_SQ8, q, codes, NULL, n, d, metric, scale, offset, out);
}

/* ---- 4-bit fast scan: four sub-quantizers per 512-bit register ---- */

/* 16 * rem bytes (rem = 1..3) from p, zero above: plain loads (masked byte loads are slow on Zen 4). */
AI_512 __m512i tail_chunk(const uint8_t *p, int64_t rem) {
    if (rem == 1) return _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)p));
    __m512i two = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p));
    return rem == 2 ? two : _mm512_inserti32x4(two, _mm_loadu_si128((const __m128i *)(p + 32)), 2);
}

/* Same scheme as the AVX2 kernel (see there): uint16 accumulation of byte pairs, even rows
 * recovered as acc - (odd << 8), all modulo 2^16. */
static T_512 void pq4_fastscan(const uint8_t *lut, const uint8_t *packed, int64_t n, int64_t m, uint16_t *out) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    int64_t nblocks = (n + 31) / 32;
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = packed + b * m * 16;
        __m512i lo0 = _mm512_setzero_si512(), lo1 = lo0, hi0 = lo0, hi1 = lo0;
        for (int64_t j = 0; j < m; j += 4) {
            __m512i c, l;
            if (j + 4 <= m) { /* plain loads: masked byte loads in every step cost Zen 4 10-30% */
                c = _mm512_loadu_si512(blk + j * 16);
                l = _mm512_loadu_si512(lut + j * 16);
            } else { /* the last 1..3 sub-quantizers, zero-extended: zero tables add nothing */
                c = tail_chunk(blk + j * 16, m - j);
                l = tail_chunk(lut + j * 16, m - j);
            }
            __m512i vlo = _mm512_shuffle_epi8(l, _mm512_and_si512(c, low4));
            __m512i vhi = _mm512_shuffle_epi8(l, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4));
            lo0 = _mm512_add_epi16(lo0, vlo);
            lo1 = _mm512_add_epi16(lo1, _mm512_srli_epi16(vlo, 8));
            hi0 = _mm512_add_epi16(hi0, vhi);
            hi1 = _mm512_add_epi16(hi1, _mm512_srli_epi16(vhi, 8));
        }
        __m512i acc[4] = {_mm512_sub_epi16(lo0, _mm512_slli_epi16(lo1, 8)), lo1,
                          _mm512_sub_epi16(hi0, _mm512_slli_epi16(hi1, 8)), hi1};
        __m128i fold[4];
        for (int t = 0; t < 4; t++) { /* add the four 128-bit lanes (one per sub-quantizer) */
            __m256i h = _mm256_add_epi16(_mm512_castsi512_si256(acc[t]), _mm512_extracti64x4_epi64(acc[t], 1));
            fold[t] = _mm_add_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        }
        uint16_t tmp[32];
        uint16_t *dst = n - b * 32 >= 32 ? out + b * 32 : tmp;
        _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(fold[0], fold[1]));        /* rows 0..7 */
        _mm_storeu_si128((__m128i *)(dst + 8), _mm_unpackhi_epi16(fold[0], fold[1]));  /* rows 8..15 */
        _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpacklo_epi16(fold[2], fold[3])); /* rows 16..23 */
        _mm_storeu_si128((__m128i *)(dst + 24), _mm_unpackhi_epi16(fold[2], fold[3])); /* rows 24..31 */
        if (dst == tmp) memcpy(out + b * 32, tmp, (size_t)(n - b * 32) * sizeof(uint16_t));
    }
}

/* ---- VPOPCNTDQ: 8 words XORed and counted per instruction ---- */

AI_VPOP int64_t popcount_xor(const uint64_t *a, const uint64_t *b, int64_t w) {
    __m512i acc = _mm512_setzero_si512();
    int64_t j = 0;
    for (; j + 8 <= w; j += 8) {
        __m512i x = _mm512_xor_si512(_mm512_loadu_si512(a + j), _mm512_loadu_si512(b + j));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    if (j < w) {
        __mmask8 m = (__mmask8)((1u << (w - j)) - 1u);
        __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m, a + j), _mm512_maskz_loadu_epi64(m, b + j));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    return _mm512_reduce_add_epi64(acc);
}

/* Codes shorter than 8 words stay on scalar POPCNT: a masked 512-bit count plus a horizontal
 * reduction per code costs more than a handful of POPCNTs. */
AI_VPOP int64_t popcount_xor_short(const uint64_t *a, const uint64_t *b, int64_t w) {
    int64_t c = 0;
    for (int64_t j = 0; j < w; j++) c += __builtin_popcountll(a[j] ^ b[j]);
    return c;
}

AI_VPOP int64_t popcount_xor_any(const uint64_t *a, const uint64_t *b, int64_t w) {
    return w < 8 ? popcount_xor_short(a, b, w) : popcount_xor(a, b, w);
}

AI_VPOP void hamming_vpopcnt_w(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)popcount_xor_any(q, codes + i * w, w);
}

/* The common code widths get a copy with w a constant (as in the AVX2 kernels): without it, short
 * codes ran at 0.35-0.6x the AVX2 level on Zen 4, which lost its own unrolled copies here. */
#define SWITCH_ON_WIDTH(call_w)                                                                           \
    switch (w) {                                                                                          \
    case 1: call_w(1); break;                                                                             \
    case 2: call_w(2); break;                                                                             \
    case 4: call_w(4); break;                                                                             \
    case 6: call_w(6); break;                                                                             \
    case 8: call_w(8); break;                                                                             \
    case 12: call_w(12); break;                                                                           \
    case 16: call_w(16); break;                                                                           \
    default: call_w(w); break;                                                                            \
    }

static T_VPOP void hamming_vpopcnt(const uint64_t *q, const uint64_t *codes, int64_t n, int64_t w, int32_t *out) {
#define HAMMING_W(width) hamming_vpopcnt_w(q, codes, n, width, out)
    SWITCH_ON_WIDTH(HAMMING_W)
#undef HAMMING_W
}

AI_VPOP void bitplane_ip_sym_vpopcnt_w(const uint64_t *qplanes, const uint64_t *codes, const float *qw,
                                       const float *cw, int64_t uq, int64_t n, int64_t u, int64_t w,
                                       int64_t dim, float *out) {
    for (int64_t r = 0; r < n; r++) {
        const uint64_t *row = codes + r * u * w;
        double total = 0.0;
        /* Same loop order and float64 expression as the reference, so results match exactly. */
        for (int64_t i = 0; i < uq; i++)
            for (int64_t j = 0; j < u; j++) {
                int64_t ham = popcount_xor_any(qplanes + i * w, row + j * w, w);
                total += ((double)qw[i] * (double)cw[j]) * ((double)dim - 2.0 * (double)ham);
            }
        out[r] = (float)(-total);
    }
}

static T_VPOP void bitplane_ip_sym_vpopcnt(const uint64_t *qplanes, const uint64_t *codes, const float *qw,
                                           const float *cw, int64_t uq, int64_t n, int64_t u, int64_t w,
                                           int64_t dim, float *out) {
#define SYM_W(width) bitplane_ip_sym_vpopcnt_w(qplanes, codes, qw, cw, uq, n, u, width, dim, out)
    SWITCH_ON_WIDTH(SYM_W)
#undef SYM_W
}

void vdb_fill_avx512(vdb_kernel_table *t, int has_vpopcntdq) {
    t->name = "avx512";
    t->level = VDB_LEVEL_AVX512;
    t->distances_f32 = distances_f32;
    t->distances_f32_at = distances_f32_at;
    t->distances_f16 = distances_f16;
    t->distances_sq8 = distances_sq8;
    t->pq4_fastscan = pq4_fastscan;
    if (has_vpopcntdq) {
        t->hamming = hamming_vpopcnt;
        t->bitplane_ip_sym = bitplane_ip_sym_vpopcnt;
    }
}

#endif /* VDB_X86 */
