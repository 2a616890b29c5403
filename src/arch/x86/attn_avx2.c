/* attn_avx2.c - AVX2 attention kernels (attn.h): the same float operations in the same
 * order per output as the generic ones, so the same bits.
 *  - F32 scores: a key's 16 lanes are two ymm (lanes 0-7, 8-15), whose sum is the tree's
 *    first step (w = 8); eight keys are then reduced together by a transposed tree (each
 *    step adds lane l + w of every key, as the scalar tree) that leaves their 8 scores in
 *    one register. The eight K rows stay in L1 while every head of the group goes over
 *    them. attn_avx512.c compiles this part again: with 32 registers q stays in them, and
 *    on 256-bit datapaths (Zen 4) the ymm tree costs fewer shuffles than a zmm one.
 *    Heads of 64 dimensions (128 in the AVX-512 build) keep their query in registers over
 *    blocks of 64 keys, four keys per store: 3-7% less time than two keys per pass.
 *  - F16 scores: one sequential sum per score, so the lanes hold eight keys: a block of K
 *    is converted and transposed once and shared by the heads.
 *  - weighted sum of V: tiles of 2 heads x 32 dimensions in registers, keys in order;
 *    blocks of keys keep V in L1 across the head tiles.
 *  - softmax: max and scaling vectorized; exponentials and sums as in attn.c. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attn.h"
#include "arch/x86/x86_common.h"

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_ATTN_CAT2(a, b) a##_##b
#define FQ_ATTN_CAT(a, b) FQ_ATTN_CAT2(a, b)
#define FN(name) FQ_ATTN_CAT(name, FQ_X86_SUFFIX)

#define AI static inline __attribute__((always_inline))

#define SLAB 256 /* dimensions of a transposed K block (F16 scores) */
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) /* F16 rounding: to nearest even */

/* lanes [0, r) of 8 set, r clamped to 0..8 */
AI __m256i lanes8(int64_t r) {
    r = r < 0 ? 0 : r > 8 ? 8 : r;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---- F32 scores ---------------------------------------------------------------------- */

/* ggml_vec_dot_f32's order (attn.h): four accumulators over blocks of 32 dimensions, their
 * reduction, then the leftover dimensions one product and one add at a time. */
AI float dot_gg(const float *x, const float *y, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t d = 0;
    for (; d + 32 <= n; d += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + d + 8), _mm256_loadu_ps(y + d + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + d + 16), _mm256_loadu_ps(y + d + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + d + 24), _mm256_loadu_ps(y + d + 24), a3);
    }
    const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    __m128 t = _mm256_castps256_ps128(a);
    t = _mm_add_ps(t, _mm256_extractf128_ps(a, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_hadd_ps(t, t);
    float sum = _mm_cvtss_f32(t);
    for (; d < n; d++) sum += x[d] * y[d];
    return sum;
}

/* two keys at once (shared query loads), each reduced exactly as dot_gg does */
AI void dot2_gg(const float *x, const float *y0, const float *y1, int64_t n, float *r0, float *r1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int64_t d = 0;
    for (; d + 32 <= n; d += 32) {
        const __m256 x0 = _mm256_loadu_ps(x + d), x1 = _mm256_loadu_ps(x + d + 8);
        const __m256 x2 = _mm256_loadu_ps(x + d + 16), x3 = _mm256_loadu_ps(x + d + 24);
        a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(y0 + d), a0);
        a1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(y0 + d + 8), a1);
        a2 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(y0 + d + 16), a2);
        a3 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(y0 + d + 24), a3);
        b0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(y1 + d), b0);
        b1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(y1 + d + 8), b1);
        b2 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(y1 + d + 16), b2);
        b3 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(y1 + d + 24), b3);
    }
    const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    const __m256 b = _mm256_add_ps(_mm256_add_ps(b0, b2), _mm256_add_ps(b1, b3));
    const __m128 ta = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 tb = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
    /* hadd(ta, tb) = (ta0+ta1, ta2+ta3, tb0+tb1, tb2+tb3); again: the two sums */
    __m128 h = _mm_hadd_ps(ta, tb);
    h = _mm_hadd_ps(h, h);
    float sa = _mm_cvtss_f32(h), sb = _mm_cvtss_f32(_mm_shuffle_ps(h, h, 1));
    for (; d < n; d++) {
        sa += x[d] * y0[d];
        sb += x[d] * y1[d];
    }
    *r0 = sa;
    *r1 = sb;
}

/* Heads of 32 * NB dimensions (64; 128 in the AVX-512 build, whose 32 registers hold that
 * query): the head's query stays in registers over a block of 64 keys (in L1 for all the
 * unit's heads); each key's four accumulators and reduction are dot_gg's, four keys' last
 * two steps share their horizontal adds and one store. */
AI __m128 red_gg(const __m256 *qv, const float *kr, int nb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++) {
        a0 = _mm256_fmadd_ps(qv[4 * b], _mm256_loadu_ps(kr + 32 * b), a0);
        a1 = _mm256_fmadd_ps(qv[4 * b + 1], _mm256_loadu_ps(kr + 32 * b + 8), a1);
        a2 = _mm256_fmadd_ps(qv[4 * b + 2], _mm256_loadu_ps(kr + 32 * b + 16), a2);
        a3 = _mm256_fmadd_ps(qv[4 * b + 3], _mm256_loadu_ps(kr + 32 * b + 24), a3);
    }
    const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
}

AI void scores_f32_qreg(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k, size_t ks, int64_t n,
                        float scale, int nb) {
    const __m128 vs = _mm_set1_ps(scale);
    for (int64_t p0 = 0; p0 < n; p0 += 64) {
        const int64_t p1 = n - p0 < 64 ? n : p0 + 64;
        for (int h = 0; h < nh; h++) {
            __m256 qv[16];
#pragma GCC unroll 16
            for (int i = 0; i < 4 * nb; i++) qv[i] = _mm256_loadu_ps(q + (size_t)h * qs + 8 * i);
            float *sr = s + (size_t)h * ss;
            int64_t p = p0;
            for (; p + 4 <= p1; p += 4) {
                const float *kr = k + (size_t)p * ks;
                const __m128 t0 = red_gg(qv, kr, nb), t1 = red_gg(qv, kr + ks, nb);
                const __m128 t2 = red_gg(qv, kr + 2 * ks, nb), t3 = red_gg(qv, kr + 3 * ks, nb);
                /* lane i: ((t_i0 + t_i1) + (t_i2 + t_i3)), dot_gg's last two steps */
                const __m128 r = _mm_hadd_ps(_mm_hadd_ps(t0, t1), _mm_hadd_ps(t2, t3));
                _mm_storeu_ps(sr + p, _mm_mul_ps(r, vs));
            }
            for (; p < p1; p++) {
                __m128 t = red_gg(qv, k + (size_t)p * ks, nb);
                t = _mm_hadd_ps(t, t);
                t = _mm_hadd_ps(t, t);
                sr[p] = _mm_cvtss_f32(t) * scale;
            }
        }
    }
}

static void FN(scores_f32)(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k, size_t ks,
                           int64_t n, int64_t hd, float scale) {
    if (hd == 64) {
        scores_f32_qreg(s, ss, q, qs, nh, k, ks, n, scale, 2);
        return;
    }
#if defined(__AVX512F__)
    if (hd == 128) {
        scores_f32_qreg(s, ss, q, qs, nh, k, ks, n, scale, 4);
        return;
    }
#endif
    int64_t p = 0;
    for (; p + 2 <= n; p += 2) {
        const float *k0 = k + (size_t)p * ks, *k1 = k0 + ks;
        for (int h = 0; h < nh; h++) {
            float r0, r1;
            dot2_gg(q + (size_t)h * qs, k0, k1, hd, &r0, &r1);
            s[(size_t)h * ss + p] = r0 * scale;
            s[(size_t)h * ss + p + 1] = r1 * scale;
        }
    }
    for (; p < n; p++) {
        const float *kr = k + (size_t)p * ks;
        for (int h = 0; h < nh; h++) s[(size_t)h * ss + p] = dot_gg(q + (size_t)h * qs, kr, hd) * scale;
    }
}

/* ---- F16 scores ---------------------------------------------------------------------- */

/* eight F16 values from h as floats; only the first m (< 8) are read when m is smaller */
AI __m256 load8h(const uint16_t *h, int64_t m) {
    if (m >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    uint16_t b[8] = {0};
    memcpy(b, h, (size_t)m * sizeof *h);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));
}

/* r[i] (row i) becomes column i: the dword transpose of x86_common.h, pure data movement */
AI void transpose8(__m256 r[8]) {
    __m256i v[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) v[i] = _mm256_castps_si256(r[i]);
    fq__tr8x8_epi32(v);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = _mm256_castsi256_ps(v[i]);
}

static void FN(scores_f16)(float *s, size_t ss, const float *q, size_t qs, int nh, const uint16_t *k, size_t ks,
                           int64_t n, int64_t hd, float scale) {
    _Alignas(32) float kt[SLAB * 8]; /* kt[d][j]: dimension d0 + d of key j of the block */
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t p = 0; p < n; p += 8) {
        const int nk = n - p < 8 ? (int)(n - p) : 8;
        const __m256i sm = lanes8(nk);
        /* a head longer than a slab keeps its partial sums in its score row meanwhile */
        for (int64_t d0 = 0; d0 < hd; d0 += SLAB) {
            const int64_t dn = hd - d0 < SLAB ? hd - d0 : SLAB;
            const int last = d0 + dn == hd;
            for (int64_t c = 0; c < dn; c += 8) {
                __m256 r[8];
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    r[j] = load8h(k + (size_t)(p + (j < nk ? j : nk - 1)) * ks + d0 + c, dn - c);
                transpose8(r);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) _mm256_store_ps(kt + (c + i) * 8, r[i]);
            }
            for (int h0 = 0; h0 < nh; h0 += 8) {
                const int m = nh - h0 < 8 ? nh - h0 : 8;
                const float *q0 = q + (size_t)h0 * qs + d0;
                float *s0 = s + (size_t)h0 * ss + p;
                if (m == 8) {
                    __m256 acc[8];
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        acc[i] = d0 ? _mm256_maskload_ps(s0 + (size_t)i * ss, sm) : _mm256_setzero_ps();
                    for (int64_t d = 0; d < dn; d++) {
                        const __m256 kv = _mm256_load_ps(kt + d * 8);
#pragma GCC unroll 8
                        for (int i = 0; i < 8; i++)
                            acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(_mm256_set1_ps(q0[(size_t)i * qs + d]), kv));
                    }
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        _mm256_maskstore_ps(s0 + (size_t)i * ss, sm, last ? _mm256_mul_ps(acc[i], vscale) : acc[i]);
                } else {
                    for (int i = 0; i < m; i++) {
                        __m256 acc = d0 ? _mm256_maskload_ps(s0 + (size_t)i * ss, sm) : _mm256_setzero_ps();
                        for (int64_t d = 0; d < dn; d++)
                            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(q0[(size_t)i * qs + d]),
                                                                   _mm256_load_ps(kt + d * 8)));
                        _mm256_maskstore_ps(s0 + (size_t)i * ss, sm, last ? _mm256_mul_ps(acc, vscale) : acc);
                    }
                }
            }
        }
    }
}

/* ---- softmax ------------------------------------------------------------------------- */

/* fq__attn_expf for eight values (ggml's AVX2 ggml_v_expf operations) */
AI __m256 v_expf8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 normal = _mm256_fmadd_ps(k, j, k);
    if (!_mm256_movemask_ps(c)) return normal;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 dd = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 big = _mm256_blendv_ps(normal, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1), c);
    return _mm256_blendv_ps(big, _mm256_mul_ps(s1, s1), dd);
}

static void FN(softmax)(float *s, size_t ss, int nh, int64_t n) {
    for (int h = 0; h < nh; h++) {
        float *r = s + (size_t)h * ss;
        /* max(x, m) keeps m when x is NaN, as the scalar x > m ? x : m does */
        __m256 vm = _mm256_set1_ps(-INFINITY);
        int64_t p = 0;
        for (; p + 8 <= n; p += 8) vm = _mm256_max_ps(_mm256_loadu_ps(r + p), vm);
        _Alignas(32) float l[8];
        _mm256_store_ps(l, vm);
        float mx = -INFINITY;
        for (int i = 0; i < 8; i++) mx = l[i] > mx ? l[i] : mx;
        for (; p < n; p++) mx = r[p] > mx ? r[p] : mx;
        /* exponentials and their sum as attn.h defines them */
        const __m256 vmx = _mm256_set1_ps(mx);
        double sum = 0.0;
        for (p = 0; p + 8 <= n; p += 8) {
            const __m256 ev = v_expf8(_mm256_sub_ps(_mm256_loadu_ps(r + p), vmx));
            _mm256_storeu_ps(r + p, ev);
            __m128 t = _mm_add_ps(_mm256_extractf128_ps(ev, 1), _mm256_castps256_ps128(ev));
            t = _mm_add_ps(t, _mm_movehl_ps(t, t));
            t = _mm_add_ss(t, _mm_movehdup_ps(t));
            sum += (double)_mm_cvtss_f32(t);
        }
        if (p < n) {
            float e8[8] = {0};
            for (int64_t i = 0; i < n - p; i++) r[p + i] = e8[i] = fq__attn_expf(r[p + i] - mx);
            sum += (double)(((e8[0] + e8[4]) + (e8[2] + e8[6])) + ((e8[1] + e8[5]) + (e8[3] + e8[7])));
        }
        const float inv = (float)(1.0 / sum);
        const __m256 vi = _mm256_set1_ps(inv);
        for (p = 0; p + 8 <= n; p += 8) _mm256_storeu_ps(r + p, _mm256_mul_ps(_mm256_loadu_ps(r + p), vi));
        for (; p < n; p++) r[p] *= inv;
    }
}

/* ---- weighted sum of V --------------------------------------------------------------- */

/* tinyBLAS's order (attn.h): per output, lane p % 8 accumulates with fused multiply-adds in
 * key order; here eight dimensions at a time, eight accumulators (one per lane). */
AI __m256 pv_w8(const float *w, int round16) {
    const __m256 x = _mm256_loadu_ps(w);
    return round16 ? _mm256_cvtph_ps(_mm256_cvtps_ph(x, RNE)) : x;
}

AI float pv_w1(float w, int round16) {
    return round16 ? _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(w), RNE))) : w;
}

AI __m256 pv_v8(const void *v, size_t at, int f16) {
    if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)v + at)));
    return _mm256_loadu_ps((const float *)v + at);
}

AI float pv_v1(const void *v, size_t at, int f16) {
    if (f16) return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(((const uint16_t *)v)[at])));
    return ((const float *)v)[at];
}

AI void pv_body(float *o, size_t os, const float *w, size_t ws, int nh, const void *v, size_t vs, int64_t n,
                int64_t hd, int f16, int round16) {
    /* the eight lane accumulators of each output live in lacc (up to 512 outputs per pass) */
    _Alignas(32) float lacc[8 * 512];
    const int64_t hd8 = hd & ~(int64_t)7;
    const int hpp = hd8 > 0 ? (int)(512 / hd8 > 0 ? 512 / hd8 : 1) : 1; /* heads per pass */
    for (int h0 = 0; h0 < nh; h0 += hpp) {
        const int m = nh - h0 < hpp ? nh - h0 : hpp;
        const int big = hd8 > 512; /* a head wider than the buffer: one chunk range at a time */
        for (int64_t c0 = 0; c0 < hd8; c0 += big ? 512 : hd8) {
            const int64_t cn = big ? (hd8 - c0 < 512 ? hd8 - c0 : 512) : hd8;
            for (int64_t i = 0; i < 8 * (int64_t)m * cn; i++) lacc[i] = 0.0f;
            /* eight keys at a time (one per lane), each V row read along its dimensions */
            int64_t p = 0;
            for (; p + 8 <= n; p += 8)
                for (int hh = 0; hh < m; hh++) {
                    _Alignas(32) float wb[8];
                    _mm256_store_ps(wb, pv_w8(w + (size_t)(h0 + hh) * ws + p, round16));
                    __m256 wv[8];
#pragma GCC unroll 8
                    for (int l = 0; l < 8; l++) wv[l] = _mm256_set1_ps(wb[l]);
                    for (int64_t d0 = 0; d0 < cn; d0 += 8) {
                        float *la = lacc + ((size_t)hh * cn + (size_t)d0) * 8;
#pragma GCC unroll 8
                        for (int l = 0; l < 8; l++)
                            _mm256_store_ps(la + 8 * l,
                                            _mm256_fmadd_ps(wv[l], pv_v8(v, (size_t)(p + l) * vs + (size_t)(c0 + d0), f16),
                                                            _mm256_load_ps(la + 8 * l)));
                    }
                }
            for (; p < n; p++)
                for (int hh = 0; hh < m; hh++) {
                    const __m256 wv = _mm256_set1_ps(pv_w1(w[(size_t)(h0 + hh) * ws + p], round16));
                    for (int64_t d0 = 0; d0 < cn; d0 += 8) {
                        float *la = lacc + ((size_t)hh * cn + (size_t)d0) * 8 + 8 * (p & 7);
                        _mm256_store_ps(la, _mm256_fmadd_ps(wv, pv_v8(v, (size_t)p * vs + (size_t)(c0 + d0), f16),
                                                            _mm256_load_ps(la)));
                    }
                }
            for (int hh = 0; hh < m; hh++)
                for (int64_t d0 = 0; d0 < cn; d0 += 8) {
                    const float *la = lacc + ((size_t)hh * cn + (size_t)d0) * 8;
                    __m256 a[8];
#pragma GCC unroll 8
                    for (int l = 0; l < 8; l++) a[l] = _mm256_load_ps(la + 8 * l);
                    const __m256 r = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6])),
                                                   _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7])));
                    _mm256_storeu_ps(o + (size_t)(h0 + hh) * os + c0 + d0, r);
                }
        }
        /* dimensions past the last whole chunk of 8 */
        for (int hh = 0; hh < m; hh++) {
            const float *wh = w + (size_t)(h0 + hh) * ws;
            for (int64_t d = hd8; d < hd; d++) {
                float a[8] = {0};
                for (int64_t p = 0; p < n; p++)
                    a[p & 7] = fmaf(pv_w1(wh[p], round16), pv_v1(v, (size_t)p * vs + (size_t)d, f16), a[p & 7]);
                o[(size_t)(h0 + hh) * os + d] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            }
        }
    }
}

static void FN(pv_f32)(float *o, size_t os, const float *w, size_t ws, int nh, const float *v, size_t vs,
                       int64_t n, int64_t hd) {
    pv_body(o, os, w, ws, nh, v, vs, n, hd, 0, 0);
}

static void FN(pv_f16)(float *o, size_t os, const float *w, size_t ws, int nh, const uint16_t *v, size_t vs,
                       int64_t n, int64_t hd, int round16) {
    pv_body(o, os, w, ws, nh, v, vs, n, hd, 1, round16);
}

/* ---- SiLU ----------------------------------------------------------------------------- */

static void FN(silu)(float *g, const float *u, int64_t i0, int64_t i1, int64_t nfull) {
    int64_t i = i0;
    const int64_t vend = i1 < nfull ? i1 : nfull;
    for (; i + 8 <= vend; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = v_expf8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(g + i, s);
    }
    for (; i < i1; i++) {
        const float x = g[i];
        const float s = i < nfull ? x / (1.0f + fq__attn_expf(0.0f - x)) : x / (1.0f + expf(-x));
        g[i] = u ? s * u[i] : s;
    }
}

static void FN(fill)(fq_attn_kernels *k) {
    k->scores_f32 = FN(scores_f32);
    k->scores_f16 = FN(scores_f16);
    k->softmax = FN(softmax);
    k->pv_f32 = FN(pv_f32);
    k->pv_f16 = FN(pv_f16);
    k->silu = FN(silu);
}

#ifndef FQ_ATTN_AVX2_INCLUDED
void fq__attn_fill_avx2(fq_attn_kernels *k) {
    k->name = "avx2";
    fill_avx2(k);
}
#endif
