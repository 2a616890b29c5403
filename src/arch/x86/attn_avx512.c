/* attn_avx512.c - the AVX-512 level of the attention kernels (attn.h); same bits as every
 * other level. F32 scores are attn_avx2.c's, compiled again here (32 registers hold q;
 * their ymm tree is the cheaper one on 256-bit datapaths). With zmm registers:
 *  - F16 scores: one sequential sum per score, so the lanes hold sixteen keys: a block of
 *    K is converted and transposed once and shared by the heads.
 *  - weighted sum of V: tiles of 4 heads x 64 dimensions in registers, each V row loaded
 *    once per tile, keys in order; blocks of keys keep V in L1 across the head tiles.
 *  - softmax: max and scaling vectorized; exponentials and sums as in attn.c. */
#define FQ_X86_SUFFIX avx512
#define FQ_ATTN_AVX2_INCLUDED
#include "arch/x86/attn_avx2.c"
#undef PV_NC
#undef PV_NH
#undef PV_ANY

AI __mmask16 lanes(int64_t r) { return (__mmask16)((1u << r) - 1); } /* r in 0..16 */

/* ---- F16 scores ---------------------------------------------------------------------- */

/* Transposes the 16 x 16 block r: afterwards r[i] holds element i of every former row. */
AI void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* u[4i + c] block b holds column 4b + c of rows 4i .. 4i+3 */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44),
                     v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

static void scores_f16_zmm(float *s, size_t ss, const float *q, size_t qs, int nh, const uint16_t *k,
                           size_t ks, int64_t n, int64_t hd, float scale) {
    _Alignas(64) float kt[SLAB * 16]; /* kt[d][j]: dimension d0 + d of key j of the block */
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int64_t p = 0; p < n; p += 16) {
        const int nk = n - p < 16 ? (int)(n - p) : 16;
        const __mmask16 sm = lanes(nk);
        /* a head longer than a slab keeps its partial sums in its score row meanwhile */
        for (int64_t d0 = 0; d0 < hd; d0 += SLAB) {
            const int64_t dn = hd - d0 < SLAB ? hd - d0 : SLAB;
            const int last = d0 + dn == hd;
            for (int64_t c = 0; c < dn; c += 16) {
                const __mmask16 m = c + 16 <= dn ? 0xFFFF : lanes(dn - c);
                __m512 r[16];
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++) {
                    const uint16_t *kr = k + (size_t)(p + (j < nk ? j : nk - 1)) * ks + d0 + c;
                    r[j] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, kr));
                }
                transpose16(r);
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++) _mm512_store_ps(kt + (c + i) * 16, r[i]);
            }
            for (int h0 = 0; h0 < nh; h0 += 8) {
                const int m = nh - h0 < 8 ? nh - h0 : 8;
                const float *q0 = q + (size_t)h0 * qs + d0;
                float *s0 = s + (size_t)h0 * ss + p;
                if (m == 8) {
                    __m512 acc[8];
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        acc[i] = d0 ? _mm512_maskz_loadu_ps(sm, s0 + (size_t)i * ss) : _mm512_setzero_ps();
                    for (int64_t d = 0; d < dn; d++) {
                        const __m512 kv = _mm512_load_ps(kt + d * 16);
#pragma GCC unroll 8
                        for (int i = 0; i < 8; i++)
                            acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(_mm512_set1_ps(q0[(size_t)i * qs + d]), kv));
                    }
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++)
                        _mm512_mask_storeu_ps(s0 + (size_t)i * ss, sm, last ? _mm512_mul_ps(acc[i], vscale) : acc[i]);
                } else {
                    for (int i = 0; i < m; i++) {
                        __m512 acc = d0 ? _mm512_maskz_loadu_ps(sm, s0 + (size_t)i * ss) : _mm512_setzero_ps();
                        for (int64_t d = 0; d < dn; d++)
                            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(q0[(size_t)i * qs + d]),
                                                                   _mm512_load_ps(kt + d * 16)));
                        _mm512_mask_storeu_ps(s0 + (size_t)i * ss, sm, last ? _mm512_mul_ps(acc, vscale) : acc);
                    }
                }
            }
        }
    }
}

/* ---- softmax ------------------------------------------------------------------------- */

static void softmax_zmm(float *s, size_t ss, int nh, int64_t n) {
    for (int h0 = 0; h0 < nh; h0 += 16) {
        const int m = nh - h0 < 16 ? nh - h0 : 16;
        float mx[16], inv[16];
        float *s0 = s + (size_t)h0 * ss;
        for (int h = 0; h < m; h++) {
            const float *r = s0 + (size_t)h * ss;
            /* max(x, m) keeps m when x is NaN, as the scalar x > m ? x : m does */
            __m512 vm = _mm512_set1_ps(-INFINITY);
            int64_t p = 0;
            for (; p + 16 <= n; p += 16) vm = _mm512_max_ps(_mm512_loadu_ps(r + p), vm);
            if (p < n) vm = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes(n - p), r + p), vm);
            mx[h] = _mm512_reduce_max_ps(vm);
        }
        fq__attn_softmax_exp(s0, ss, m, n, mx, inv);
        for (int h = 0; h < m; h++) {
            float *r = s0 + (size_t)h * ss;
            const __m512 vi = _mm512_set1_ps(inv[h]);
            int64_t p = 0;
            for (; p + 16 <= n; p += 16) _mm512_storeu_ps(r + p, _mm512_mul_ps(_mm512_loadu_ps(r + p), vi));
            if (p < n) {
                const __mmask16 tm = lanes(n - p);
                _mm512_mask_storeu_ps(r + p, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, r + p), vi));
            }
        }
    }
}

/* ---- weighted sum of V --------------------------------------------------------------- */

/* NH heads x NC chunks of 16 dimensions (the last one masked by lm) over keys [0, np) of a
 * block: accumulators from o (or +0 on the first block), weights w[hh * PB + p]. */
AI void pv_tile16(float *o, size_t os, const float *w, int NH, const void *v, size_t vs, int f16, int np, int NC,
                  __mmask16 lm, int first) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int hh = 0; hh < NH; hh++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const __mmask16 m = c == NC - 1 ? lm : 0xFFFF;
            acc[hh][c] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, o + (size_t)hh * os + c * 16);
        }
    for (int p = 0; p < np; p++) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const __mmask16 m = c == NC - 1 ? lm : 0xFFFF;
            const size_t at = (size_t)p * vs + (size_t)c * 16;
            if (f16) vv[c] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)v + at));
            else vv[c] = _mm512_maskz_loadu_ps(m, (const float *)v + at);
        }
#pragma GCC unroll 4
        for (int hh = 0; hh < NH; hh++) {
            const __m512 wv = _mm512_set1_ps(w[hh * PB + p]);
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) acc[hh][c] = _mm512_add_ps(acc[hh][c], _mm512_mul_ps(wv, vv[c]));
        }
    }
#pragma GCC unroll 4
    for (int hh = 0; hh < NH; hh++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const __mmask16 m = c == NC - 1 ? lm : 0xFFFF;
            _mm512_mask_storeu_ps(o + (size_t)hh * os + c * 16, m, acc[hh][c]);
        }
}

#define PV_NC(NH, NC, F16) pv_tile16(o, os, w, NH, v, vs, F16, np, NC, lm, first)
#define PV_NH(NH, F16)                   \
    switch (nc) {                        \
    case 1: PV_NC(NH, 1, F16); break;    \
    case 2: PV_NC(NH, 2, F16); break;    \
    case 3: PV_NC(NH, 3, F16); break;    \
    default: PV_NC(NH, 4, F16); break;   \
    }
#define PV_ANY(F16)                  \
    switch (nh) {                    \
    case 1: PV_NH(1, F16); break;    \
    case 2: PV_NH(2, F16); break;    \
    case 3: PV_NH(3, F16); break;    \
    default: PV_NH(4, F16); break;   \
    }

static void pv_tile16_f32(float *o, size_t os, const float *w, int nh, const void *v, size_t vs, int np, int nc,
                          __mmask16 lm, int first) {
    PV_ANY(0)
}

static void pv_tile16_f16(float *o, size_t os, const float *w, int nh, const void *v, size_t vs, int np, int nc,
                          __mmask16 lm, int first) {
    PV_ANY(1)
}

AI void pv_body16(float *o, size_t os, const float *w, size_t ws, int nh, const void *v, size_t vs, int64_t n,
                  int64_t hd, int f16, int round16) {
    _Alignas(64) float wb[4 * PB];
    const size_t esz = f16 ? 2 : 4;
    if (n == 0) {
        for (int h = 0; h < nh; h++)
            for (int64_t d = 0; d < hd; d++) o[(size_t)h * os + d] = 0.0f;
        return;
    }
    for (int64_t p0 = 0; p0 < n; p0 += PB) {
        const int np = n - p0 < PB ? (int)(n - p0) : PB;
        const char *vb = (const char *)v + (size_t)p0 * vs * esz;
        for (int h0 = 0; h0 < nh; h0 += 4) {
            const int m = nh - h0 < 4 ? nh - h0 : 4;
            /* this tile's weights, F16-rounded when asked (vcvtps2ph: to nearest even) */
            for (int hh = 0; hh < m; hh++) {
                const float *wr = w + (size_t)(h0 + hh) * ws + p0;
                for (int p = 0; p < np; p += 16) {
                    const __mmask16 pm = np - p < 16 ? lanes(np - p) : 0xFFFF;
                    __m512 x = _mm512_maskz_loadu_ps(pm, wr + p);
                    if (round16) x = _mm512_cvtph_ps(_mm512_cvtps_ph(x, RNE));
                    _mm512_store_ps(wb + hh * PB + p, x);
                }
            }
            for (int64_t d0 = 0; d0 < hd; d0 += 64) {
                const int64_t left = hd - d0;
                const int nc = left >= 64 ? 4 : (int)((left + 15) / 16);
                const __mmask16 lm = left >= 64 || (left & 15) == 0 ? 0xFFFF : lanes(left & 15);
                (f16 ? pv_tile16_f16 : pv_tile16_f32)(o + (size_t)h0 * os + d0, os, wb, m, vb + (size_t)d0 * esz, vs,
                                                      np, nc, lm, p0 == 0);
            }
        }
    }
}

static void pv_f32_zmm(float *o, size_t os, const float *w, size_t ws, int nh, const float *v, size_t vs,
                       int64_t n, int64_t hd) {
    pv_body16(o, os, w, ws, nh, v, vs, n, hd, 0, 0);
}

static void pv_f16_zmm(float *o, size_t os, const float *w, size_t ws, int nh, const uint16_t *v, size_t vs,
                       int64_t n, int64_t hd, int round16) {
    pv_body16(o, os, w, ws, nh, v, vs, n, hd, 1, round16);
}

void fq__attn_fill_avx512(fq_attn_kernels *k) {
    fill_avx512(k); /* attn_avx2.c's, compiled here */
    k->name = "avx512";
    k->scores_f16 = scores_f16_zmm;
    k->softmax = softmax_zmm;
    k->pv_f32 = pv_f32_zmm;
    k->pv_f16 = pv_f16_zmm;
}
