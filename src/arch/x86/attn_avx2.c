/* attn_avx2.c - AVX2 attention kernels (attn.h): the same float operations in the same
 * order per output as the generic ones, so the same bits.
 *  - F32 scores: a key's 16 lanes are two ymm (lanes 0-7, 8-15), whose sum is the tree's
 *    first step (w = 8); eight keys are then reduced together by a transposed tree (each
 *    step adds lane l + w of every key, as the scalar tree) that leaves their 8 scores in
 *    one register. The eight K rows stay in L1 while every head of the group goes over
 *    them. attn_avx512.c compiles this part again: with 32 registers q stays in them, and
 *    on 256-bit datapaths (Zen 4) the ymm tree costs fewer shuffles than a zmm one.
 *  - F16 scores: one sequential sum per score, so the lanes hold eight keys: a block of K
 *    is converted and transposed once and shared by the heads.
 *  - weighted sum of V: tiles of 2 heads x 32 dimensions in registers, keys in order;
 *    blocks of keys keep V in L1 across the head tiles.
 *  - softmax: max and scaling vectorized; exponentials and sums as in attn.c. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "attn.h"

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_ATTN_CAT2(a, b) a##_##b
#define FQ_ATTN_CAT(a, b) FQ_ATTN_CAT2(a, b)
#define FN(name) FQ_ATTN_CAT(name, FQ_X86_SUFFIX)

#define AI static inline __attribute__((always_inline))

#define PB 64    /* keys per block in the weighted sum */
#define SLAB 256 /* dimensions of a transposed K block (F16 scores) */
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) /* F16 rounding: to nearest even */

/* lanes [0, r) of 8 set, r clamped to 0..8 */
AI __m256i lanes8(int64_t r) {
    r = r < 0 ? 0 : r > 8 ? 8 : r;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---- F32 scores ---------------------------------------------------------------------- */

/* A key's lanes 0-7 and 8-15 (lo, hi) summed by the tree's first step (w = 8). Lanes past
 * the tail add +0, which leaves them unchanged: a lane that starts at +0 is never -0. */
AI __m256 dot16(const float *q, const float *k, int64_t hd, __m256i mlo, __m256i mhi) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t d = 0;
#pragma GCC unroll 8
    for (; d + 16 <= hd; d += 16) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d)));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(k + d + 8)));
    }
    if (d < hd) {
        lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_maskload_ps(q + d, mlo), _mm256_maskload_ps(k + d, mlo)));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_maskload_ps(q + d + 8, mhi), _mm256_maskload_ps(k + d + 8, mhi)));
    }
    return _mm256_add_ps(lo, hi);
}

/* The rest of the tree (w = 4, 2, 1) for eight keys; lane 4j + m of the result is key 2m + j. */
AI __m256 tree8(const __m256 b[8]) {
    __m256 c[4], d[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        c[i] = _mm256_add_ps(_mm256_permute2f128_ps(b[2 * i], b[2 * i + 1], 0x20),
                             _mm256_permute2f128_ps(b[2 * i], b[2 * i + 1], 0x31));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        d[i] = _mm256_add_ps(_mm256_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44),
                             _mm256_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(d[0], d[1], 0x88), _mm256_shuffle_ps(d[0], d[1], 0xDD));
}

AI void scores_blk8(float *s, const float *q, const float *k, size_t ks, int nk, int64_t hd, __m256i mlo,
                    __m256i mhi, __m256 vscale, __m256i perm) {
    __m256 b[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) b[j] = dot16(q, k + (size_t)(j < nk ? j : nk - 1) * ks, hd, mlo, mhi);
    const __m256 r = _mm256_permutevar8x32_ps(_mm256_mul_ps(tree8(b), vscale), perm);
    if (nk == 8) _mm256_storeu_ps(s, r);
    else _mm256_maskstore_ps(s, lanes8(nk), r);
}

AI void scores_f32_body(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k, size_t ks,
                        int64_t n, int64_t hd, float scale) {
    const __m256i mlo = lanes8(hd & 15), mhi = lanes8((hd & 15) - 8);
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int64_t p = 0;
    for (; p + 8 <= n; p += 8)
        for (int h = 0; h < nh; h++)
            scores_blk8(s + (size_t)h * ss + p, q + (size_t)h * qs, k + (size_t)p * ks, ks, 8, hd, mlo, mhi, vscale,
                        perm);
    if (p < n)
        for (int h = 0; h < nh; h++)
            scores_blk8(s + (size_t)h * ss + p, q + (size_t)h * qs, k + (size_t)p * ks, ks, (int)(n - p), hd, mlo, mhi,
                        vscale, perm);
}

static void FN(scores_f32)(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k, size_t ks,
                           int64_t n, int64_t hd, float scale) {
    if (hd == 64) scores_f32_body(s, ss, q, qs, nh, k, ks, n, 64, scale);
    else if (hd == 128) scores_f32_body(s, ss, q, qs, nh, k, ks, n, 128, scale);
    else scores_f32_body(s, ss, q, qs, nh, k, ks, n, hd, scale);
}

/* ---- F16 scores ---------------------------------------------------------------------- */

/* eight F16 values from h as floats; only the first m (< 8) are read when m is smaller */
AI __m256 load8h(const uint16_t *h, int64_t m) {
    if (m >= 8) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    uint16_t b[8] = {0};
    memcpy(b, h, (size_t)m * sizeof *h);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));
}

/* r[i] (row i) becomes column i */
AI void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + c] lane b: column 4b + c of rows 4i .. 4i+3 */
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
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

static void FN(softmax)(float *s, size_t ss, int nh, int64_t n) {
    for (int h0 = 0; h0 < nh; h0 += 16) {
        const int m = nh - h0 < 16 ? nh - h0 : 16;
        float mx[16], inv[16];
        float *s0 = s + (size_t)h0 * ss;
        for (int h = 0; h < m; h++) {
            const float *r = s0 + (size_t)h * ss;
            /* max(x, m) keeps m when x is NaN, as the scalar x > m ? x : m does */
            __m256 vm = _mm256_set1_ps(-INFINITY);
            int64_t p = 0;
            for (; p + 8 <= n; p += 8) vm = _mm256_max_ps(_mm256_loadu_ps(r + p), vm);
            _Alignas(32) float l[8];
            _mm256_store_ps(l, vm);
            float x = -INFINITY;
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) x = l[i] > x ? l[i] : x;
            for (; p < n; p++) x = r[p] > x ? r[p] : x;
            mx[h] = x;
        }
        fq__attn_softmax_exp(s0, ss, m, n, mx, inv);
        for (int h = 0; h < m; h++) {
            float *r = s0 + (size_t)h * ss;
            const __m256 vi = _mm256_set1_ps(inv[h]);
            int64_t p = 0;
            for (; p + 8 <= n; p += 8) _mm256_storeu_ps(r + p, _mm256_mul_ps(_mm256_loadu_ps(r + p), vi));
            for (; p < n; p++) r[p] *= inv[h];
        }
    }
}

/* ---- weighted sum of V --------------------------------------------------------------- */

/* NH heads x NC chunks of 8 dimensions over keys [0, np) of a block: accumulators from o
 * (or +0 on the first block), weights w[hh * PB + p]. With TAIL the last chunk has only
 * lmn < 8 dimensions (lane mask lm). */
AI __m256 pv_load(const void *v, int f16, int tail, __m256i lm, int lmn) {
    if (f16) return load8h((const uint16_t *)v, tail ? lmn : 8);
    return tail ? _mm256_maskload_ps((const float *)v, lm) : _mm256_loadu_ps((const float *)v);
}

AI void pv_tile(float *o, size_t os, const float *w, int NH, const void *v, size_t vs, int f16, int np, int NC,
                int TAIL, __m256i lm, int lmn, int first) {
    __m256 acc[2][4];
#pragma GCC unroll 4
    for (int hh = 0; hh < NH; hh++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++)
            acc[hh][c] = first ? _mm256_setzero_ps()
                               : pv_load(o + (size_t)hh * os + c * 8, 0, TAIL && c == NC - 1, lm, lmn);
    for (int p = 0; p < np; p++) {
        __m256 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++)
            vv[c] = pv_load((const char *)v + ((size_t)p * vs + (size_t)c * 8) * (f16 ? 2 : 4), f16,
                            TAIL && c == NC - 1, lm, lmn);
#pragma GCC unroll 4
        for (int hh = 0; hh < NH; hh++) {
            const __m256 wv = _mm256_broadcast_ss(w + hh * PB + p);
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) acc[hh][c] = _mm256_add_ps(acc[hh][c], _mm256_mul_ps(wv, vv[c]));
        }
    }
#pragma GCC unroll 4
    for (int hh = 0; hh < NH; hh++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            float *oc = o + (size_t)hh * os + c * 8;
            if (TAIL && c == NC - 1) _mm256_maskstore_ps(oc, lm, acc[hh][c]);
            else _mm256_storeu_ps(oc, acc[hh][c]);
        }
}

#define PV_NC(NH, NC, F16)                                                          \
    do {                                                                            \
        if (lmn == 8) pv_tile(o, os, w, NH, v, vs, F16, np, NC, 0, lm, lmn, first); \
        else pv_tile(o, os, w, NH, v, vs, F16, np, NC, 1, lm, lmn, first);          \
    } while (0)
#define PV_NH(NH, F16)                   \
    switch (nc) {                        \
    case 1: PV_NC(NH, 1, F16); break;    \
    case 2: PV_NC(NH, 2, F16); break;    \
    case 3: PV_NC(NH, 3, F16); break;    \
    default: PV_NC(NH, 4, F16); break;   \
    }
#define PV_ANY(F16)                      \
    if (nh == 1) PV_NH(1, F16) else PV_NH(2, F16)

static void FN(pv_tile_f32)(float *o, size_t os, const float *w, int nh, const void *v, size_t vs, int np, int nc,
                            __m256i lm, int lmn, int first) {
    PV_ANY(0)
}

static void FN(pv_tile_f16)(float *o, size_t os, const float *w, int nh, const void *v, size_t vs, int np, int nc,
                            __m256i lm, int lmn, int first) {
    PV_ANY(1)
}

AI void pv_body(float *o, size_t os, const float *w, size_t ws, int nh, const void *v, size_t vs, int64_t n,
                int64_t hd, int f16, int round16) {
    _Alignas(32) float wb[2 * PB];
    const size_t esz = f16 ? 2 : 4;
    if (n == 0) {
        for (int h = 0; h < nh; h++)
            for (int64_t d = 0; d < hd; d++) o[(size_t)h * os + d] = 0.0f;
        return;
    }
    for (int64_t p0 = 0; p0 < n; p0 += PB) {
        const int np = n - p0 < PB ? (int)(n - p0) : PB;
        const char *vb = (const char *)v + (size_t)p0 * vs * esz;
        for (int h0 = 0; h0 < nh; h0 += 2) {
            const int m = nh - h0 < 2 ? nh - h0 : 2;
            for (int hh = 0; hh < m; hh++) {
                const float *wr = w + (size_t)(h0 + hh) * ws + p0;
                if (round16) {
                    int p = 0;
                    for (; p + 8 <= np; p += 8) {
                        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(wr + p), RNE);
                        _mm256_store_ps(wb + hh * PB + p, _mm256_cvtph_ps(h));
                    }
                    for (; p < np; p++)
                        wb[hh * PB + p] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(wr[p]), RNE)));
                } else {
                    memcpy(wb + hh * PB, wr, (size_t)np * sizeof(float));
                }
            }
            for (int64_t d0 = 0; d0 < hd; d0 += 32) {
                const int64_t left = hd - d0;
                const int nc = left >= 32 ? 4 : (int)((left + 7) / 8);
                const int lmn = left >= 32 || (left & 7) == 0 ? 8 : (int)(left & 7);
                const __m256i lm = lanes8(lmn);
                (f16 ? FN(pv_tile_f16) : FN(pv_tile_f32))(o + (size_t)h0 * os + d0, os, wb, m, vb + (size_t)d0 * esz,
                                                          vs, np, nc, lm, lmn, p0 == 0);
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

static void FN(fill)(fq_attn_kernels *k) {
    k->scores_f32 = FN(scores_f32);
    k->scores_f16 = FN(scores_f16);
    k->softmax = FN(softmax);
    k->pv_f32 = FN(pv_f32);
    k->pv_f16 = FN(pv_f16);
}

#ifndef FQ_ATTN_AVX2_INCLUDED
void fq__attn_fill_avx2(fq_attn_kernels *k) {
    k->name = "avx2";
    fill_avx2(k);
}
#endif
