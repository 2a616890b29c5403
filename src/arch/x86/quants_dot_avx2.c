/* quants_dot_avx2.c - the hot dot products of decode and prompt processing: Q4_K, Q6_K and
 * Q8_0 weights against their activations, one activation row (vec_dot) or several
 * (vec_dot_n, vec_dot_mn). Compiled with -mavx2 -mfma -mf16c; quants_dot_avx512.c
 * includes it again with AVX-512 VNNI on (vpdpbusd / vpdpwssd replace maddubs / madd).
 *
 * Same bits as the generic kernels (quants_k.c, quants.c), by construction:
 *  - the integer sums of a super-block (isum, summs) are exact whatever the order;
 *  - the float step is the generic's expression per super-block, d = F16(x.d) * y.d,
 *    t = d * (float)isum - dmin * (float)summs (multiply, then subtract, never fused:
 *    -std=c11 keeps GCC from contracting), computed 8 super-blocks at a time, one per
 *    lane, then added to the row's sum in super-block order, as the generic's sumf.
 *
 * Q4_K/Q6_K integer part, per 32 values (one sub-block with one scale):
 *   VNNI: D = dpbusd(0, levels, q8) is 8 int32 lanes each below 2^15 in magnitude, so
 *         dpwssd(acc, D, (scale, 0) per dword) adds D * scale exactly: 2 multiplies;
 *   AVX2: maddubs(levels, q8) (pairs below 2 * 63 * 128 < 2^15), madd with the scale.
 * Super-block sums stay per super-block in a vector; 8 of them are reduced together. */
#include "qtypes.h"

#include <immintrin.h>

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_X86_CAT2(a, b) a##_##b
#define FQ_X86_CAT(a, b) FQ_X86_CAT2(a, b)
#define FN(name) FQ_X86_CAT(name, FQ_X86_SUFFIX)

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define FQ_VNNI 1
#else
#define FQ_VNNI 0
#endif

/* the low 16 bits of each of 8 dwords, as 8 words */
static inline __m128i _mm256_cvtepi32_epi16_compat(__m256i v) {
#if defined(__AVX512VL__)
    return _mm256_cvtepi32_epi16(v);
#else
    const __m256i w = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                                              0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(w, _MM_SHUFFLE(3, 1, 2, 0)));
#endif
}

/* eight vectors of 8 int32 partial sums -> one vector holding each vector's total */
static inline __m256i hsum8x8(const __m256i v[8]) {
    const __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20),
                            _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* acc += dot(u, q8) * scale over one 32-value sub-block. u: unsigned levels (0..63),
 * q8: signed bytes, sc: the scale in every 16-bit word. maddubs pairs stay below
 * 2 * 63 * 128 < 2^15, so nothing saturates; VNNI fuses the madd and the add. */
static inline __m256i sub_dot(__m256i acc, __m256i u, __m256i q8, __m256i sc) {
#if FQ_VNNI
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, q8), sc);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, q8), sc));
#endif
}

/* The scale of sub-block j in every word, from 16 scale bytes held in both 128-bit
 * lanes: one in-lane shuffle (no load: the loads bound these loops). */
static inline __m256i sub_scale(__m256i b2, int j) {
    return _mm256_shuffle_epi8(b2, _mm256_set1_epi16((short)(0x8000u | (unsigned)j)));
}

/* Q4_K/Q5_K: 12 bytes -> bytes [sc0..sc7 | mn0..mn7] (ggml's get_scale_min_k4, 8 at
 * once), in vector registers only (reads 16 bytes: the 4 past the scales are qs). */
static inline __m128i k4_scales(const uint8_t *q) {
    const __m128i v = _mm_loadu_si128((const __m128i *)q);
    const char z = (char)0x80;
    /* low parts: sc0..3 = q0..3 & 63, sc4..7 = q8..11 & 15, mn0..3 = q4..7 & 63,
     * mn4..7 = q8..11 >> 4; high parts of sc4..7 / mn4..7: the top 2 bits of q0..3 / q4..7 */
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(z, z, z, z, 0, 1, 2, 3, z, z, z, z, 4, 5, 6, 7));
    const __m128i lo = _mm_and_si128(_mm_blend_epi32(a, _mm_srli_epi16(a, 4), 0x8),
                                     _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

/* t[b] = d_b * isum_b - dmin_b * summs_b for 8 super-blocks, the generic's float step:
 * dd holds (d | dmin << 16) of each weight block, yd the activation blocks' d. */
static inline __m256 k_float_step(__m256i dd, __m256 yd, __m256i isum, __m256i summs) {
    const __m256 xd = _mm256_cvtph_ps(_mm256_cvtepi32_epi16_compat(dd));
    const __m256 xm = _mm256_cvtph_ps(_mm256_cvtepi32_epi16_compat(_mm256_srli_epi32(dd, 16)));
    const __m256 d = _mm256_mul_ps(xd, yd), dmin = _mm256_mul_ps(xm, yd);
    return _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)),
                         _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(summs)));
}

/* sumf + t[0] + t[1] + ... + t[m-1], in that order, without a trip through memory (a
 * vector store read back as scalars stalls on store forwarding) */
static inline float add_lanes_in_order(float sumf, __m256 t, int m) {
    __m128 h = _mm256_castps256_ps128(t);
    for (int b = 0; b < m; b++) {
        if (b == 4) h = _mm256_extractf128_ps(t, 1);
        const __m128 e = (b & 3) == 0 ? h : (b & 3) == 1 ? _mm_movehdup_ps(h)
                       : (b & 3) == 2 ? _mm_movehl_ps(h, h) : _mm_shuffle_ps(h, h, 3);
        sumf += _mm_cvtss_f32(e);
    }
    return sumf;
}

/* ---- Q4_K x Q8_K ------------------------------------------------------------------------ */

/* integer sums of one super-block: isum partials (8 lanes) and summs partials */
static inline void q4_K_ints(const fq_block_q4_K *x, const fq_block_q8_K *y, __m256i *isv, __m256i *smv) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b2 = _mm256_broadcastsi128_si256(k4_scales(x->scales)); /* [sc | mn] twice */
    /* words m_j, m_j in the 16 words of bsums: lane 0 pairs m0..m3, lane 1 m4..m7 */
    const char z = (char)0x80;
    const __m256i mnp = _mm256_shuffle_epi8(b2, _mm256_setr_epi8(8, z, 8, z, 9, z, 9, z, 10, z, 10, z, 11, z, 11, z,
                                                                 12, z, 12, z, 13, z, 13, z, 14, z, 14, z, 15, z, 15, z));
    *smv = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), mnp);
    __m256i acc[4]; /* independent chains: the accumulate latency would bound the loop */
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * k));
        __asm__("" : "+x"(q)); /* one load: GCC would fold it into both uses */
        const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        const __m256i a = k < 2 ? _mm256_setzero_si256() : acc[2 * (k & 1)];
        const __m256i b = k < 2 ? _mm256_setzero_si256() : acc[2 * (k & 1) + 1];
        acc[2 * (k & 1)] = sub_dot(a, lo, _mm256_loadu_si256((const __m256i *)(y->qs + 64 * k)), sub_scale(b2, 2 * k));
        acc[2 * (k & 1) + 1] = sub_dot(b, hi, _mm256_loadu_si256((const __m256i *)(y->qs + 64 * k + 32)),
                                       sub_scale(b2, 2 * k + 1));
    }
    *isv = _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
}

static void FN(dot_q4_K)(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q4_K *x = vx;
    const fq_block_q8_K *y = vy;
    const int64_t nb = n / FQ_QK_K;
    float sumf = 0;
    for (int64_t i0 = 0; i0 < nb; i0 += 8) {
        const int m = (int)FQ_MIN(8, nb - i0);
        __m256i isv[8], smv[8];
        uint32_t dd[8];
        float yd[8];
        for (int b = 0; b < m; b++) {
            q4_K_ints(&x[i0 + b], &y[i0 + b], &isv[b], &smv[b]);
            memcpy(&dd[b], &x[i0 + b].d, 4); /* d and dmin */
            yd[b] = y[i0 + b].d;
        }
        for (int b = m; b < 8; b++) {
            isv[b] = smv[b] = _mm256_setzero_si256();
            dd[b] = 0;
            yd[b] = 0;
        }
        const __m256 t = k_float_step(_mm256_loadu_si256((const __m256i *)dd), _mm256_loadu_ps(yd),
                                      hsum8x8(isv), hsum8x8(smv));
        sumf = add_lanes_in_order(sumf, t, m);
    }
    *s = sumf;
}

/* ---- Q6_K x Q8_K ------------------------------------------------------------------------ */

/* isum of one super-block as 8 int32 partials. Levels are stored +32: taken unsigned,
 * then 32 * sum_j sc_j * bsum_j removed (exact in int32). Each 32-byte step covers two
 * sub-blocks of 16 (low lane, high lane) with their own scales. */
static inline __m256i q6_K_ints(const fq_block_q6_K *x, const fq_block_q8_K *y) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    const __m256i bias = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y->bsums));
    __m256i acc[4];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        const int8_t *q8 = y->qs + 128 * h;
        __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
        __asm__("" : "+x"(l0), "+x"(l1), "+x"(hb)); /* one load each */
        /* words sc[8h..8h+7] in both lanes; step g takes word 2g (low lane), 2g+1 (high) */
        const __m256i half = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
        __m256i u[4];
        u[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
        u[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
        u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
        u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m256i sc = _mm256_shuffle_epi8(half, _mm256_setr_epi8(
                (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1),
                (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1),
                (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g + 2), (char)(4 * g + 3),
                (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2),
                (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3),
                (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3)));
            const __m256i yv = _mm256_loadu_si256((const __m256i *)(q8 + 32 * g));
            acc[g] = sub_dot(h ? acc[g] : _mm256_setzero_si256(), u[g], yv, sc);
        }
    }
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
    return _mm256_sub_epi32(sum, _mm256_slli_epi32(bias, 5));
}

static void FN(dot_q6_K)(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q6_K *x = vx;
    const fq_block_q8_K *y = vy;
    const int64_t nb = n / FQ_QK_K;
    float sumf = 0;
    for (int64_t i0 = 0; i0 < nb; i0 += 8) {
        const int m = (int)FQ_MIN(8, nb - i0);
        __m256i isv[8];
        uint16_t xd[8];
        float yd[8];
        for (int b = 0; b < m; b++) {
            isv[b] = q6_K_ints(&x[i0 + b], &y[i0 + b]);
            xd[b] = x[i0 + b].d;
            yd[b] = y[i0 + b].d;
        }
        for (int b = m; b < 8; b++) {
            isv[b] = _mm256_setzero_si256();
            xd[b] = 0;
            yd[b] = 0;
        }
        /* the generic's (F16(x.d) * y.d) * (float)isum, one super-block per lane */
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)xd)), _mm256_loadu_ps(yd));
        sumf = add_lanes_in_order(sumf, _mm256_mul_ps(d, _mm256_cvtepi32_ps(hsum8x8(isv))), m);
    }
    *s = sumf;
}

/* ---- registration -------------------------------------------------------------------- */

/* multi-row entries as loops over the kernels above (the same bits by definition) */
#define MULTI_LOOP(t)                                                                      \
    static void FN(dotn_##t)(int64_t n, float *s, size_t bs, const void *x, const void *y,  \
                             size_t by, int nrc) {                                          \
        for (int k = 0; k < nrc; k++)                                                       \
            FN(dot_##t)(n, s + (size_t)k * bs, x, (const char *)y + (size_t)k * by);        \
    }                                                                                       \
    static void FN(dotmn_##t)(int64_t n, float *s, size_t bs, const void *x, size_t bx,     \
                              int nrx, const void *y, size_t by, int nry) {                 \
        for (int j = 0; j < nry; j++)                                                       \
            for (int i = 0; i < nrx; i++)                                                   \
                FN(dot_##t)(n, s + (size_t)j * bs + i, (const char *)x + (size_t)i * bx,    \
                            (const char *)y + (size_t)j * by);                              \
    }
MULTI_LOOP(q4_K) MULTI_LOOP(q6_K)
#undef MULTI_LOOP

void FN(fq__isa_fill_dot)(fq__isa_kernels *k) {
    k->vec_dot[FQ_TYPE_Q4_K] = FN(dot_q4_K);
    k->vec_dot_n[FQ_TYPE_Q4_K] = FN(dotn_q4_K);
    k->vec_dot_mn[FQ_TYPE_Q4_K] = FN(dotmn_q4_K);
    k->vec_dot[FQ_TYPE_Q6_K] = FN(dot_q6_K);
    k->vec_dot_n[FQ_TYPE_Q6_K] = FN(dotn_q6_K);
    k->vec_dot_mn[FQ_TYPE_Q6_K] = FN(dotmn_q6_K);
}
