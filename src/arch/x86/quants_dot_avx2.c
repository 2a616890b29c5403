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

/* ---- register tiles: RX weight rows x CY activation rows (prompt processing) ----------- *
 * Each weight sub-block is unpacked once per tile and each activation vector loaded once
 * per tile; acc[i][j] holds the 8 int32 partials of one (row, token) over one super-block.
 * The float step runs with the tokens as lanes: hsum8x8 of row i's CY accumulators gives
 * isum of each token, then t = d * isum - dmin * summs and sumf += t per lane: for each
 * (row, token) exactly the generic's float operations per super-block, in its order.
 * Lanes CY..7 hold zeros (and yd 0) and are never stored. */
#define FQ_AI static inline __attribute__((always_inline))
#define FQ_TILE_MAX_RX 4

/* hsum8x8 without phadd (2 cycles each on Zen 4): unpack + add, lane j = total of v[j] */
FQ_AI __m256i hsum8x8_tile(const __m256i v[8]) {
    __m256i a[4], c[2];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++)
        a[p] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * p], v[2 * p + 1]),
                                _mm256_unpackhi_epi32(v[2 * p], v[2 * p + 1]));
#pragma GCC unroll 2
    for (int p = 0; p < 2; p++)
        c[p] = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2 * p], a[2 * p + 1]),
                                _mm256_unpackhi_epi64(a[2 * p], a[2 * p + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(c[0], c[1], 0x20),
                            _mm256_permute2x128_si256(c[0], c[1], 0x31));
}

/* lanes 0..cy-1 of v to s[0], s[bs], ... */
FQ_AI void store_lanes(float *s, size_t bs, __m256 v, int cy) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int j = 0; j < cy; j++) s[(size_t)j * bs] = t[j];
}

/* y.d of super-block b of cy activation rows, one per lane (0 beyond cy) */
FQ_AI __m256 tile_yd(const char *vy, size_t by, int64_t b, int cy) {
    float t[8];
    for (int j = 0; j < 8; j++) t[j] = j < cy ? ((const fq_block_q8_K *)(vy + (size_t)j * by))[b].d : 0.f;
    return _mm256_loadu_ps(t);
}

FQ_AI void q4_K_tile(int64_t nb, float *s, size_t bs, const char *vx, size_t bx, const int RX,
                     const char *vy, size_t by, const int CY) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const char z = (char)0x80;
    const __m256i mn_shuf = _mm256_setr_epi8(8, z, 8, z, 9, z, 9, z, 10, z, 10, z, 11, z, 11, z,
                                             12, z, 12, z, 13, z, 13, z, 14, z, 14, z, 15, z, 15, z);
    __m256 sumf[FQ_TILE_MAX_RX];
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++) sumf[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const fq_block_q4_K *xb[FQ_TILE_MAX_RX];
        const fq_block_q8_K *yb[8];
        __m256i b2[FQ_TILE_MAX_RX], acc[FQ_TILE_MAX_RX][8];
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            xb[i] = (const fq_block_q4_K *)(vx + (size_t)i * bx) + b;
            b2[i] = _mm256_broadcastsi128_si256(k4_scales(xb[i]->scales));
        }
#pragma GCC unroll 8
        for (int j = 0; j < CY; j++) yb[j] = (const fq_block_q8_K *)(vy + (size_t)j * by) + b;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i lo[FQ_TILE_MAX_RX], hi[FQ_TILE_MAX_RX], sl[FQ_TILE_MAX_RX], sh[FQ_TILE_MAX_RX];
#pragma GCC unroll 4
            for (int i = 0; i < RX; i++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(xb[i]->qs + 32 * k));
                __asm__("" : "+x"(q));
                lo[i] = _mm256_and_si256(q, m4);
                hi[i] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                sl[i] = sub_scale(b2[i], 2 * k);
                sh[i] = sub_scale(b2[i], 2 * k + 1);
            }
#pragma GCC unroll 8
            for (int j = 0; j < CY; j++) {
                const __m256i yl = _mm256_loadu_si256((const __m256i *)(yb[j]->qs + 64 * k));
                const __m256i yh = _mm256_loadu_si256((const __m256i *)(yb[j]->qs + 64 * k + 32));
#pragma GCC unroll 4
                for (int i = 0; i < RX; i++) {
                    const __m256i a = k ? acc[i][j] : _mm256_setzero_si256();
                    acc[i][j] = sub_dot(sub_dot(a, lo[i], yl, sl[i]), hi[i], yh, sh[i]);
                }
            }
        }
        const __m256 yd = tile_yd(vy, by, b, CY);
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            const __m256i mnp = _mm256_shuffle_epi8(b2[i], mn_shuf);
            __m256i sm[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                sm[j] = j < CY ? _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)yb[j]->bsums), mnp)
                               : _mm256_setzero_si256();
                if (j >= CY) acc[i][j] = _mm256_setzero_si256();
            }
            const __m256 xd = _mm256_set1_ps(fq__h2f(xb[i]->d)), xm = _mm256_set1_ps(fq__h2f(xb[i]->dmin));
            const __m256 d = _mm256_mul_ps(xd, yd), dmin = _mm256_mul_ps(xm, yd);
            const __m256 t = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(hsum8x8_tile(acc[i]))),
                                           _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(hsum8x8_tile(sm))));
            sumf[i] = _mm256_add_ps(sumf[i], t);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++) store_lanes(s + i, bs, sumf[i], CY);
}

FQ_AI void q6_K_tile(int64_t nb, float *s, size_t bs, const char *vx, size_t bx, const int RX,
                     const char *vy, size_t by, const int CY) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 sumf[FQ_TILE_MAX_RX];
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++) sumf[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const fq_block_q6_K *xb[FQ_TILE_MAX_RX];
        const fq_block_q8_K *yb[8];
        __m256i sc16[FQ_TILE_MAX_RX], acc[FQ_TILE_MAX_RX][8];
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            xb[i] = (const fq_block_q6_K *)(vx + (size_t)i * bx) + b;
            sc16[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)xb[i]->scales));
        }
#pragma GCC unroll 8
        for (int j = 0; j < CY; j++) yb[j] = (const fq_block_q8_K *)(vy + (size_t)j * by) + b;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m256i u[FQ_TILE_MAX_RX], sc[FQ_TILE_MAX_RX];
#pragma GCC unroll 4
                for (int i = 0; i < RX; i++) {
                    const uint8_t *ql = xb[i]->ql + 64 * h, *qh = xb[i]->qh + 32 * h;
                    const __m256i l = _mm256_loadu_si256((const __m256i *)(ql + 32 * (g & 1)));
                    const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
                    const __m256i lv = g < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
                    const __m256i hv = g == 0 ? _mm256_slli_epi16(hb, 4) : g == 1 ? _mm256_slli_epi16(hb, 2)
                                     : g == 2 ? hb : _mm256_srli_epi16(hb, 2);
                    u[i] = _mm256_or_si256(lv, _mm256_and_si256(hv, m30));
                    const __m256i half = h ? _mm256_permute2x128_si256(sc16[i], sc16[i], 0x11)
                                           : _mm256_permute2x128_si256(sc16[i], sc16[i], 0x00);
                    sc[i] = _mm256_shuffle_epi8(half, _mm256_setr_epi8(
                        (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1),
                        (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1),
                        (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g + 2), (char)(4 * g + 3),
                        (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2),
                        (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3),
                        (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3)));
                }
#pragma GCC unroll 8
                for (int j = 0; j < CY; j++) {
                    const __m256i yv = _mm256_loadu_si256((const __m256i *)(yb[j]->qs + 128 * h + 32 * g));
#pragma GCC unroll 4
                    for (int i = 0; i < RX; i++)
                        acc[i][j] = sub_dot(h || g ? acc[i][j] : _mm256_setzero_si256(), u[i], yv, sc[i]);
                }
            }
        }
        const __m256 yd = tile_yd(vy, by, b, CY);
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                if (j < CY) {
                    const __m256i bias = _mm256_madd_epi16(sc16[i], _mm256_loadu_si256((const __m256i *)yb[j]->bsums));
                    acc[i][j] = _mm256_sub_epi32(acc[i][j], _mm256_slli_epi32(bias, 5));
                } else {
                    acc[i][j] = _mm256_setzero_si256();
                }
            }
            const __m256 d = _mm256_mul_ps(_mm256_set1_ps(fq__h2f(xb[i]->d)), yd);
            sumf[i] = _mm256_add_ps(sumf[i], _mm256_mul_ps(d, _mm256_cvtepi32_ps(hsum8x8_tile(acc[i]))));
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++) store_lanes(s + i, bs, sumf[i], CY);
}

#if defined(__AVX512F__) && FQ_VNNI
/* ---- Q4_K at the AVX-512 level: weight rows in lanes ----------------------------------- *
 * Lane i of every vector is weight row i (up to 8 rows; missing rows repeat the last one
 * and are never stored). The weights of a super-block are transposed once per call (dword
 * p of 8 rows -> one vector) and each activation dword is a broadcast memory operand of
 * vpdpbusd, so a vector op is 8 rows x 4 values of one token, and the results come out with
 * the rows in lanes: no horizontal sums at all. Per token and sub-block s (32 values):
 * D = sum over its 8 dwords (|D| <= 32 * 15 * 128, exact in int32), isum += D * sc[s]
 * (vpmulld), summs = sum over q of (bsum[2q] + bsum[2q+1]) * mn[q] (vpdpwssd, words
 * (mn, mn) against the bsums dword). The float step is the generic's, one row per lane. */

/* 8x8 transpose of dwords: r[p] lane i <- r[i] lane p */
FQ_AI void tr8x8_epi32(__m256i r[8]) {
    __m256i t[8], u[8];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        t[2 * p] = _mm256_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm256_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        u[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h + 0], t[4 * h + 2]);
        u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h + 0], t[4 * h + 2]);
        u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        r[p] = _mm256_permute2x128_si256(u[p], u[p + 4], 0x20);
        r[p + 4] = _mm256_permute2x128_si256(u[p], u[p + 4], 0x31);
    }
}

/* *acc += dpbusd(w, the dword at p in every lane): the broadcast rides on the load */
FQ_AI void dpbusd_bcast(__m256i *acc, __m256i w, const void *p) {
    __asm__("vpdpbusd %2%{1to8%}, %1, %0" : "+v"(*acc) : "v"(w), "m"(*(const int32_t *)p));
}

/* *acc += dpwssd(w, the dword at p in every lane) */
FQ_AI void dpwssd_bcast(__m256i *acc, __m256i w, const void *p) {
    __asm__("vpdpwssd %2%{1to8%}, %1, %0" : "+v"(*acc) : "v"(w), "m"(*(const int32_t *)p));
}

FQ_AI void q4_K_rows(int64_t nb, float *s, size_t bs, const char *vx, size_t bx, int nrx,
                     const char *vy, size_t by, const int CY) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const fq_block_q4_K *xr[8];
    const fq_block_q8_K *yr[16];
    for (int i = 0; i < 8; i++) xr[i] = (const fq_block_q4_K *)(vx + (size_t)FQ_MIN(i, nrx - 1) * bx);
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) yr[j] = (const fq_block_q8_K *)(vy + (size_t)j * by);
    __m256 sumf[16];
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) sumf[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i w[8][8], sc[8], mn[8];
        /* levels, transposed: w[s][p] lane i = dword p of sub-block s of row i */
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].qs + 32 * k));
            tr8x8_epi32(r);
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) {
                w[2 * k][p] = _mm256_and_si256(r[p], m4);
                w[2 * k + 1][p] = _mm256_and_si256(_mm256_srli_epi16(r[p], 4), m4);
            }
        }
        uint16_t hd[8], hm[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const __m128i v = k4_scales(xr[i][b].scales);
            sc[i] = _mm256_cvtepu8_epi32(v);
            mn[i] = _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
            hd[i] = xr[i][b].d;
            hm[i] = xr[i][b].dmin;
        }
        tr8x8_epi32(sc);
        tr8x8_epi32(mn);
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) mn[q] = _mm256_or_si256(mn[q], _mm256_slli_epi32(mn[q], 16));
        const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hd));
        const __m256 xm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hm));
#pragma GCC unroll 2
        for (int g = 0; g < (CY + 7) / 8; g++) { /* tokens 8g.. share the transposed weights */
            const int cg = FQ_MIN(8, CY - 8 * g);
            __m256i isum[8];
    #pragma GCC unroll 1
            for (int sb = 0; sb < 8; sb++) {
                __m256i d[8];
    #pragma GCC unroll 8
                for (int p = 0; p < 8; p++) {
                    const __m256i wv = w[sb][p];
    #pragma GCC unroll 8
                    for (int j = 0; j < cg; j++) {
                        if (!p) d[j] = _mm256_setzero_si256();
                        dpbusd_bcast(&d[j], wv, yr[8 * g + j][b].qs + 32 * sb + 4 * p);
                    }
                }
    #pragma GCC unroll 8
                for (int j = 0; j < cg; j++) {
                    const __m256i a = _mm256_mullo_epi32(d[j], sc[sb]);
                    isum[j] = sb ? _mm256_add_epi32(isum[j], a) : a;
                }
            }
    #pragma GCC unroll 8
            for (int j = 0; j < cg; j++) {
                __m256i sm = _mm256_setzero_si256();
    #pragma GCC unroll 8
                for (int q = 0; q < 8; q++) dpwssd_bcast(&sm, mn[q], &yr[8 * g + j][b].bsums[2 * q]);
                const __m256 yd = _mm256_set1_ps(yr[8 * g + j][b].d);
                const __m256 d = _mm256_mul_ps(xd, yd), dmin = _mm256_mul_ps(xm, yd);
                const __m256 t = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum[j])),
                                               _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(sm)));
                sumf[8 * g + j] = _mm256_add_ps(sumf[8 * g + j], t);
            }
        }
    }
    const __mmask8 keep = (__mmask8)((1u << nrx) - 1);
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) _mm256_mask_storeu_ps(s + (size_t)j * bs, keep, sumf[j]);
}

/* Q6_K, rows in lanes: levels (stored +32, 0..63) transposed as for Q4_K (the unpacking is
 * bytewise, so it is done after the transpose); sub-blocks of 16 values, 4 dwords each
 * (|D| <= 16 * 63 * 128); isum = sum sc * D - 32 * sum sc * bsum, exact in int32. */
FQ_AI void q6_K_rows(int64_t nb, float *s, size_t bs, const char *vx, size_t bx, int nrx,
                     const char *vy, size_t by, const int CY) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const fq_block_q6_K *xr[8];
    const fq_block_q8_K *yr[16];
    for (int i = 0; i < 8; i++) xr[i] = (const fq_block_q6_K *)(vx + (size_t)FQ_MIN(i, nrx - 1) * bx);
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) yr[j] = (const fq_block_q8_K *)(vy + (size_t)j * by);
    __m256 sumf[16];
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) sumf[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i w[8][8], sc[16], scw[8];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i l0[8], l1[8], hb[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                l0[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].ql + 64 * h));
                l1[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].ql + 64 * h + 32));
                hb[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].qh + 32 * h));
            }
            tr8x8_epi32(l0);
            tr8x8_epi32(l1);
            tr8x8_epi32(hb);
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) {
                w[4 * h + 0][p] = _mm256_or_si256(_mm256_and_si256(l0[p], m4), _mm256_and_si256(_mm256_slli_epi16(hb[p], 4), m30));
                w[4 * h + 1][p] = _mm256_or_si256(_mm256_and_si256(l1[p], m4), _mm256_and_si256(_mm256_slli_epi16(hb[p], 2), m30));
                w[4 * h + 2][p] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0[p], 4), m4), _mm256_and_si256(hb[p], m30));
                w[4 * h + 3][p] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1[p], 4), m4),
                                                  _mm256_and_si256(_mm256_srli_epi16(hb[p], 2), m30));
            }
        }
        uint16_t hd[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const __m128i v = _mm_loadu_si128((const __m128i *)xr[i][b].scales);
            sc[i] = _mm256_cvtepi8_epi32(v);
            sc[8 + i] = _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8));
            scw[i] = _mm256_cvtepi8_epi16(v);
            hd[i] = xr[i][b].d;
        }
        tr8x8_epi32(sc);
        tr8x8_epi32(sc + 8);
        tr8x8_epi32(scw);
        const __m256 xd = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hd));
#pragma GCC unroll 2
        for (int g = 0; g < (CY + 7) / 8; g++) { /* tokens 8g.. share the transposed weights */
            const int cg = FQ_MIN(8, CY - 8 * g);
            __m256i isum[8];
    #pragma GCC unroll 1
            for (int v = 0; v < 8; v++) {
    #pragma GCC unroll 2
                for (int half = 0; half < 2; half++) {
                    __m256i d[8];
    #pragma GCC unroll 4
                    for (int p = 4 * half; p < 4 * half + 4; p++) {
                        const __m256i wv = w[v][p];
    #pragma GCC unroll 8
                        for (int j = 0; j < cg; j++) {
                            if (p == 4 * half) d[j] = _mm256_setzero_si256();
                            dpbusd_bcast(&d[j], wv, yr[8 * g + j][b].qs + 32 * v + 4 * p);
                        }
                    }
    #pragma GCC unroll 8
                    for (int j = 0; j < cg; j++) {
                        const __m256i a = _mm256_mullo_epi32(d[j], sc[2 * v + half]);
                        isum[j] = v || half ? _mm256_add_epi32(isum[j], a) : a;
                    }
                }
            }
    #pragma GCC unroll 8
            for (int j = 0; j < cg; j++) {
                __m256i bias = _mm256_setzero_si256();
    #pragma GCC unroll 8
                for (int q = 0; q < 8; q++) dpwssd_bcast(&bias, scw[q], &yr[8 * g + j][b].bsums[2 * q]);
                const __m256i is = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(bias, 5));
                const __m256 d = _mm256_mul_ps(xd, _mm256_set1_ps(yr[8 * g + j][b].d));
                sumf[8 * g + j] = _mm256_add_ps(sumf[8 * g + j], _mm256_mul_ps(d, _mm256_cvtepi32_ps(is)));
            }
        }
    }
    const __mmask8 keep = (__mmask8)((1u << nrx) - 1);
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) _mm256_mask_storeu_ps(s + (size_t)j * bs, keep, sumf[j]);
}

typedef void (*rows_fn)(int64_t nb, float *s, size_t bs, const char *x, size_t bx, int nrx,
                        const char *y, size_t by);
#define ROWS_INST(t, CY)                                                                     \
    static void FN(rows_##t##_##CY)(int64_t nb, float *s, size_t bs, const char *x, size_t bx, \
                                    int nrx, const char *y, size_t by) {                    \
        t##_rows(nb, s, bs, x, bx, nrx, y, by, CY);                                          \
    }
#define ROWS_TYPE(t)                                                                         \
    ROWS_INST(t, 1) ROWS_INST(t, 2) ROWS_INST(t, 3) ROWS_INST(t, 4) ROWS_INST(t, 5)          \
    ROWS_INST(t, 6) ROWS_INST(t, 7) ROWS_INST(t, 8) ROWS_INST(t, 9) ROWS_INST(t, 10)         \
    ROWS_INST(t, 11) ROWS_INST(t, 12) ROWS_INST(t, 13) ROWS_INST(t, 14) ROWS_INST(t, 15)     \
    ROWS_INST(t, 16)                                                                         \
    static const rows_fn FN(rows_##t)[16] = {                                                \
        FN(rows_##t##_1), FN(rows_##t##_2), FN(rows_##t##_3), FN(rows_##t##_4),              \
        FN(rows_##t##_5), FN(rows_##t##_6), FN(rows_##t##_7), FN(rows_##t##_8),              \
        FN(rows_##t##_9), FN(rows_##t##_10), FN(rows_##t##_11), FN(rows_##t##_12),           \
        FN(rows_##t##_13), FN(rows_##t##_14), FN(rows_##t##_15), FN(rows_##t##_16)};
ROWS_TYPE(q4_K) ROWS_TYPE(q6_K)
#define FQ_ROWS_KERNELS 1
#endif

typedef void (*tile_fn)(int64_t nb, float *s, size_t bs, const char *x, size_t bx, const char *y, size_t by);

/* instances: RX rows x CY tokens for RX in 1..TILE_RX, CY in 1..8 */
#define TILE_INST(t, RX, CY)                                                                \
    static void FN(tile_##t##_##RX##x##CY)(int64_t nb, float *s, size_t bs, const char *x,  \
                                            size_t bx, const char *y, size_t by) {          \
        t##_tile(nb, s, bs, x, bx, RX, y, by, CY);                                           \
    }
#define TILE_ROW(t, RX)                                                                     \
    TILE_INST(t, RX, 1) TILE_INST(t, RX, 2) TILE_INST(t, RX, 3) TILE_INST(t, RX, 4)         \
    TILE_INST(t, RX, 5) TILE_INST(t, RX, 6) TILE_INST(t, RX, 7) TILE_INST(t, RX, 8)
#define TILE_ROW_PTRS(t, RX)                                                                \
    {FN(tile_##t##_##RX##x1), FN(tile_##t##_##RX##x2), FN(tile_##t##_##RX##x3),             \
     FN(tile_##t##_##RX##x4), FN(tile_##t##_##RX##x5), FN(tile_##t##_##RX##x6),             \
     FN(tile_##t##_##RX##x7), FN(tile_##t##_##RX##x8)}

#ifndef FQ_TILE_RX /* rows per tile at this level: 16 ymm registers at AVX2, 32 with AVX-512 */
#if FQ_VNNI
#define FQ_TILE_RX 2
#else
#define FQ_TILE_RX 1
#endif
#endif

#if FQ_TILE_RX == 1
#define TILE_TYPE(t) TILE_ROW(t, 1)                                                         \
    static const tile_fn FN(tiles_##t)[1][8] = {TILE_ROW_PTRS(t, 1)};
#elif FQ_TILE_RX == 2
#define TILE_TYPE(t) TILE_ROW(t, 1) TILE_ROW(t, 2)                                          \
    static const tile_fn FN(tiles_##t)[2][8] = {TILE_ROW_PTRS(t, 1), TILE_ROW_PTRS(t, 2)};
#elif FQ_TILE_RX == 3
#define TILE_TYPE(t) TILE_ROW(t, 1) TILE_ROW(t, 2) TILE_ROW(t, 3)                           \
    static const tile_fn FN(tiles_##t)[3][8] = {TILE_ROW_PTRS(t, 1), TILE_ROW_PTRS(t, 2),  \
                                                TILE_ROW_PTRS(t, 3)};
#else
#define TILE_TYPE(t) TILE_ROW(t, 1) TILE_ROW(t, 2) TILE_ROW(t, 3) TILE_ROW(t, 4)            \
    static const tile_fn FN(tiles_##t)[4][8] = {TILE_ROW_PTRS(t, 1), TILE_ROW_PTRS(t, 2),  \
                                                TILE_ROW_PTRS(t, 3), TILE_ROW_PTRS(t, 4)};
#endif

/* vec_dot_mn over tiles; vec_dot_n is the one-row case (s[k*bs] for token k) */
#define TILE_ENTRY(t)                                                                       \
    TILE_TYPE(t)                                                                            \
    static void FN(dotmn_##t)(int64_t n, float *s, size_t bs, const void *x, size_t bx,     \
                              int nrx, const void *y, size_t by, int nry) {                 \
        const int64_t nb = n / FQ_QK_K;                                                     \
        if (nrx == 1 && nry == 1) {                                                         \
            FN(dot_##t)(n, s, x, y);                                                        \
            return;                                                                         \
        }                                                                                   \
        if (TILE_ROWS_##t(n, s, bs, x, bx, nrx, y, by, nry)) return;                        \
        for (int i0 = 0; i0 < nrx; i0 += FQ_TILE_RX) {                                      \
            const int rx = FQ_MIN(FQ_TILE_RX, nrx - i0);                                    \
            for (int j0 = 0; j0 < nry; j0 += 8)                                             \
                FN(tiles_##t)[rx - 1][FQ_MIN(8, nry - j0) - 1](                             \
                    nb, s + (size_t)j0 * bs + i0, bs, (const char *)x + (size_t)i0 * bx, bx, \
                    (const char *)y + (size_t)j0 * by, by);                                 \
        }                                                                                   \
    }                                                                                       \
    static void FN(dotn_##t)(int64_t n, float *s, size_t bs, const void *x, const void *y,  \
                             size_t by, int nrc) {                                          \
        if (nrc == 1) FN(dot_##t)(n, s, x, y); /* the 1x1 tile is slower than vec_dot */    \
        else FN(dotmn_##t)(n, s, bs, x, 0, 1, y, by, nrc);                                  \
    }
/* rows-in-lanes kernels where this level has them, for tiles of 4 rows or more */
#ifdef FQ_ROWS_KERNELS
#define TILE_ROWS(t)                                                                          \
    FQ_AI int TILE_ROWS_##t(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx, \
                            const void *y, size_t by, int nry) {                              \
        if (nrx < 4) return 0;                                                                \
        for (int j0 = 0; j0 < nry; j0 += 16)                                                  \
            FN(rows_##t)[FQ_MIN(16, nry - j0) - 1](n / FQ_QK_K, s + (size_t)j0 * bs, bs,       \
                                                  (const char *)x, bx, nrx,                   \
                                                  (const char *)y + (size_t)j0 * by, by);     \
        return 1;                                                                             \
    }
TILE_ROWS(q4_K) TILE_ROWS(q6_K)
#undef TILE_ROWS
#else
#define TILE_ROWS_q4_K(...) 0
#define TILE_ROWS_q6_K(...) 0
#endif
TILE_ENTRY(q4_K) TILE_ENTRY(q6_K)
#undef TILE_ENTRY

/* ---- registration -------------------------------------------------------------------- */

void FN(fq__isa_fill_dot)(fq__isa_kernels *k) {
    k->vec_dot[FQ_TYPE_Q4_K] = FN(dot_q4_K);
    k->vec_dot_n[FQ_TYPE_Q4_K] = FN(dotn_q4_K);
    k->vec_dot_mn[FQ_TYPE_Q4_K] = FN(dotmn_q4_K);
    k->vec_dot[FQ_TYPE_Q6_K] = FN(dot_q6_K);
    k->vec_dot_n[FQ_TYPE_Q6_K] = FN(dotn_q6_K);
    k->vec_dot_mn[FQ_TYPE_Q6_K] = FN(dotmn_q6_K);
#ifdef FQ_ROWS_KERNELS
    k->mn_x[FQ_TYPE_Q4_K] = k->mn_x[FQ_TYPE_Q6_K] = 8; /* one row per lane */
    k->mn_y[FQ_TYPE_Q4_K] = k->mn_y[FQ_TYPE_Q6_K] = 16; /* the transposed weights serve 16 tokens */
#else
    k->mn_x[FQ_TYPE_Q4_K] = k->mn_x[FQ_TYPE_Q6_K] = 4; /* tiles of FQ_TILE_RX rows in turn: the activations stay in L1 */
    k->mn_y[FQ_TYPE_Q4_K] = k->mn_y[FQ_TYPE_Q6_K] = 8;
#endif
}
