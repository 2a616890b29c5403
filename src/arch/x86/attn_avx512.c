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

void fq__attn_fill_avx512(fq_attn_kernels *k) {
    fill_avx512(k); /* attn_avx2.c's, compiled here */
    k->name = "avx512";
    k->scores_f16 = scores_f16_zmm;
}
