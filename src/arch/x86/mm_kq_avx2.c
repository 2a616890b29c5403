/* mm_kq_avx2.c - prompt kernels (weight rows in lanes for 4..8 rows, register tiles for
 * fewer) and row groups (decode) for Q2_K, Q3_K and Q5_K weights against Q8_K activations.
 * Compiled with -mavx2 -mfma -mf16c; mm_kq_avx512.c includes it again with AVX-512 VNNI on
 * (the madd + add of each 32-value step becomes one vpdpwssd, and twice the registers allow
 * two weight rows per tile).
 *
 * Same bits as the generic kernels (quants_k.c), by construction:
 *  - a super-block's integer sums (isum, summs) are exact in int32 whatever the order:
 *    maddubs pairs stay below 2 * 31 * 128 < 2^15 (levels are unsigned, at most 31), and
 *    |isum| <= 256 * 31 * 128 * 63;
 *  - Q3_K's levels are taken unsigned (stored + 4, 0..7) and 4 * sum_j sc_j * bsum_j is
 *    removed, exact in int32 (bsums are the sums of the activation's 16-value groups, as
 *    every Q8_K encoder writes them);
 *  - the float step per (row, token, super-block) is the generic's expression:
 *    Q2_K: (y.d * F16(x.d)) * isum - (y.d * F16(x.dmin)) * summs,
 *    Q3_K: (F16(x.d) * y.d) * isum, Q5_K: (F16(x.d) * y.d) * isum - (F16(x.dmin) * y.d) *
 *    summs (multiply, then subtract, never fused: -std=c11 keeps GCC from contracting; the
 *    products of two floats are the same in either order), added to each dot's sum in
 *    super-block order.
 *
 * One pass over a super-block is 8 groups of 32 values; group g meets activation bytes
 * 32g..32g+31 for every type (Q2_K/Q3_K: 2 bits at shift 2 (g % 4) of qs[32 (g / 4) + l],
 * two 16-value sub-blocks per group, one per 128-bit lane; Q5_K: the nibble g % 2 of
 * qs[32 (g / 2) + l] and bit g of qh[l], one 32-value sub-block). kq_group gives the
 * unsigned levels and the scale words of a group; the tiles only multiply and add. */
#include "qtypes.h"
#include "arch/x86/x86_common.h"

#include <immintrin.h>

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_X86_CAT2(a, b) a##_##b
#define FQ_X86_CAT(a, b) FQ_X86_CAT2(a, b)
#define FN(name) FQ_X86_CAT(name, FQ_X86_SUFFIX)
#define FQ_AI static inline __attribute__((always_inline))

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define FQ_VNNI 1
#else
#define FQ_VNNI 0
#endif

enum { KQ2 = 2, KQ3 = 3, KQ5 = 5 }; /* the type a kernel body is inlined for */

/* acc += dot(u, q8) * sc over one group: u unsigned levels, q8 signed bytes, sc words */
FQ_AI __m256i kq_sub_dot(__m256i acc, __m256i u, __m256i q8, __m256i sc) {
#if FQ_VNNI
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(u, q8), sc);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, q8), sc));
#endif
}

/* shuffle control: word lo of the low 128-bit lane in every word there, word hi of the
 * high lane in every word there */
FQ_AI __m256i kq_words(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(((2 * hi + 1) << 8) | (2 * hi))),
                            _mm_set1_epi16((short)(((2 * lo + 1) << 8) | (2 * lo))));
}
/* shuffle control: byte lo of the low lane zero-extended into every word, byte hi of the
 * high lane */
FQ_AI __m256i kq_bytes(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(0x8000 | hi)), _mm_set1_epi16((short)(0x8000 | lo)));
}

/* bytes x shifted left by s bits (right for s < 0), as 16-bit shifts (the caller masks) */
FQ_AI __m256i kq_shift(__m256i x, int s) {
    return s > 0 ? _mm256_slli_epi16(x, s) : s < 0 ? _mm256_srli_epi16(x, -s) : x;
}

/* Q4_K/Q5_K: 12 bytes -> bytes [sc0..sc7 | mn0..mn7] (ggml's get_scale_min_k4, 8 at once);
 * 12 bytes read, nothing past them */
FQ_AI __m128i kq_k4_scales(const uint8_t *q) {
    int32_t w[3];
    memcpy(w, q, 12);
    const __m128i v = _mm_setr_epi32(w[0], w[1], w[2], 0);
    const char z = (char)0x80;
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(z, z, z, z, 0, 1, 2, 3, z, z, z, z, 4, 5, 6, 7));
    const __m128i lo = _mm_and_si128(_mm_blend_epi32(a, _mm_srli_epi16(a, 4), 0x8),
                                     _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

/* Q3_K: 16 signed scales (bias 32 removed) as bytes, from 12 bytes: low nibbles of bytes
 * 0..7 then their high nibbles; the high 2 bits of scale j at bit 2 (j / 4) of byte 8 + j % 4 */
FQ_AI __m128i kq_q3_scales(const uint8_t *q) {
    int32_t w[3];
    memcpy(w, q, 12);
    const __m128i lo8 = _mm_setr_epi32(w[0], w[1], 0, 0);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(lo8, m4), _mm_and_si128(_mm_srli_epi16(lo8, 4), m4));
    const __m128i h = _mm_srlv_epi32(_mm_set1_epi32(w[2]), _mm_setr_epi32(0, 2, 4, 6));
    const __m128i hi = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi8(3)), 4);
    return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

/* What a row's super-block needs across its 8 groups and the closing step:
 * Q2_K: a = scale nibbles as bytes in both lanes, c = mins as 16 words;
 * Q3_K: a / b = the low / high 8 scale words in both lanes, c = the 16 scale words;
 * Q5_K: a = [sc0..7 | mn0..7] in both lanes, b = qh, c = the mins paired with bsums. */
typedef struct {
    __m256i a, b, c;
    const uint8_t *qs, *hm; /* Q3_K: hmask */
    fq_half d, dmin;
} kq_row;

FQ_AI void kq_prep(const int T, const void *blk, kq_row *r) {
    if (T == KQ2) {
        const fq_block_q2_K *x = blk;
        const __m128i sb = _mm_loadu_si128((const __m128i *)x->scales);
        const __m128i m4 = _mm_set1_epi8(0x0F);
        r->a = _mm256_broadcastsi128_si256(_mm_and_si128(sb, m4));
        r->c = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), m4));
        r->qs = x->qs;
        r->d = x->d;
        r->dmin = x->dmin;
    } else if (T == KQ3) {
        const fq_block_q3_K *x = blk;
        r->c = _mm256_cvtepi8_epi16(kq_q3_scales(x->scales));
        r->a = _mm256_permute2x128_si256(r->c, r->c, 0x00);
        r->b = _mm256_permute2x128_si256(r->c, r->c, 0x11);
        r->qs = x->qs;
        r->hm = x->hmask;
        r->d = x->d;
        r->dmin = 0;
    } else {
        const fq_block_q5_K *x = blk;
        const char z = (char)0x80;
        r->a = _mm256_broadcastsi128_si256(kq_k4_scales(x->scales));
        /* words m_j, m_j against the 16 bsums: low lane m0..m3, high lane m4..m7 */
        r->c = _mm256_shuffle_epi8(r->a, _mm256_setr_epi8(8, z, 8, z, 9, z, 9, z, 10, z, 10, z, 11, z, 11, z,
                                                          12, z, 12, z, 13, z, 13, z, 14, z, 14, z, 15, z, 15, z));
        r->b = _mm256_loadu_si256((const __m256i *)x->qh);
        r->qs = x->qs;
        r->d = x->d;
        r->dmin = x->dmin;
    }
}

/* unsigned levels (u) and scale words (sc) of group g */
FQ_AI void kq_group(const int T, const kq_row *r, const int g, __m256i *u, __m256i *sc) {
    if (T == KQ2) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(r->qs + 32 * (g / 4)));
        *u = _mm256_and_si256(kq_shift(q, -2 * (g % 4)), _mm256_set1_epi8(3));
        *sc = _mm256_shuffle_epi8(r->a, kq_bytes(2 * g, 2 * g + 1));
    } else if (T == KQ3) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(r->qs + 32 * (g / 4)));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)r->hm);
        /* 2 low bits, and bit g of hmask as +4 */
        *u = _mm256_or_si256(_mm256_and_si256(kq_shift(q, -2 * (g % 4)), _mm256_set1_epi8(3)),
                             _mm256_and_si256(kq_shift(hm, 2 - g), _mm256_set1_epi8(4)));
        *sc = _mm256_shuffle_epi8(g < 4 ? r->a : r->b, kq_words((2 * g) % 8, (2 * g + 1) % 8));
    } else {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(r->qs + 32 * (g / 2)));
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        const __m256i lo = g % 2 ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
        /* bit g of qh as +16 */
        *u = _mm256_or_si256(lo, _mm256_and_si256(kq_shift(r->b, 4 - g), _mm256_set1_epi8(0x10)));
        *sc = _mm256_shuffle_epi8(r->a, kq_bytes(g, g));
    }
}

/* after the 8 groups: Q3_K takes the +4 of the levels off acc; Q2_K/Q5_K give the summs
 * partials (8 lanes) */
FQ_AI void kq_close(const int T, const kq_row *r, const fq_block_q8_K *y, __m256i *acc, __m256i *sm) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)y->bsums);
    if (T == KQ3) {
        *acc = _mm256_sub_epi32(*acc, _mm256_slli_epi32(_mm256_madd_epi16(r->c, bs), 2));
        *sm = _mm256_setzero_si256();
    } else {
        *sm = _mm256_madd_epi16(bs, r->c);
    }
}

/* the generic's t per lane: d = the products of the scales with y.d, as it writes them */
FQ_AI __m256 kq_t(const int T, __m256 xd, __m256 xm, __m256 yd, __m256i isum, __m256i summs) {
    if (T == KQ3) return _mm256_mul_ps(_mm256_mul_ps(xd, yd), _mm256_cvtepi32_ps(isum));
    const __m256 d = T == KQ2 ? _mm256_mul_ps(yd, xd) : _mm256_mul_ps(xd, yd);
    const __m256 dm = T == KQ2 ? _mm256_mul_ps(yd, xm) : _mm256_mul_ps(xm, yd);
    return _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)), _mm256_mul_ps(dm, _mm256_cvtepi32_ps(summs)));
}

FQ_AI size_t kq_bytes_of(const int T) {
    return T == KQ2 ? sizeof(fq_block_q2_K) : T == KQ3 ? sizeof(fq_block_q3_K) : sizeof(fq_block_q5_K);
}

/* transpose-add: lane j = total of v[j] */
FQ_AI __m256i kq_hsum8x8(const __m256i v[8]) {
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

/* ---- prompt processing: RX weight rows x CY (<= 8) tokens ------------------------------ *
 * Each weight group is unpacked once per tile and each activation vector loaded once per
 * tile; acc[i][j] holds the 8 int32 partials of (row i, token j) over a super-block. The
 * closing step puts the tokens in lanes (transpose-add) and runs the float step for all
 * tokens of a row at once; lanes CY..7 hold zeros and are never stored. */
#define KQ_MAX_RX 2

FQ_AI void kq_tile(const int T, int64_t nb, float *s, size_t bs, const char *vx, size_t bx, const int RX,
                   const char *vy, size_t by, const int CY) {
    const size_t xbytes = kq_bytes_of(T);
    __m256 sumf[KQ_MAX_RX];
#pragma GCC unroll 2
    for (int i = 0; i < RX; i++) sumf[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        kq_row r[KQ_MAX_RX];
        const fq_block_q8_K *yb[8];
        __m256i acc[KQ_MAX_RX][8];
#pragma GCC unroll 2
        for (int i = 0; i < RX; i++) kq_prep(T, vx + (size_t)i * bx + (size_t)b * xbytes, &r[i]);
#pragma GCC unroll 8
        for (int j = 0; j < CY; j++) yb[j] = (const fq_block_q8_K *)(vy + (size_t)j * by) + b;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i u[KQ_MAX_RX], sc[KQ_MAX_RX];
#pragma GCC unroll 2
            for (int i = 0; i < RX; i++) kq_group(T, &r[i], g, &u[i], &sc[i]);
#pragma GCC unroll 8
            for (int j = 0; j < CY; j++) {
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(yb[j]->qs + 32 * g));
#pragma GCC unroll 2
                for (int i = 0; i < RX; i++)
                    acc[i][j] = kq_sub_dot(g ? acc[i][j] : _mm256_setzero_si256(), u[i], yv, sc[i]);
            }
        }
        /* built in registers: scalar stores then a vector load would stall on forwarding */
        const __m256 yd = _mm256_setr_ps(yb[0]->d, CY > 1 ? yb[1]->d : 0.f, CY > 2 ? yb[2]->d : 0.f,
                                         CY > 3 ? yb[3]->d : 0.f, CY > 4 ? yb[4]->d : 0.f, CY > 5 ? yb[5]->d : 0.f,
                                         CY > 6 ? yb[6]->d : 0.f, CY > 7 ? yb[7]->d : 0.f);
#pragma GCC unroll 2
        for (int i = 0; i < RX; i++) {
            __m256i sm[8];
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                if (j < CY) {
                    kq_close(T, &r[i], yb[j], &acc[i][j], &sm[j]);
                } else {
                    acc[i][j] = sm[j] = _mm256_setzero_si256();
                }
            }
            const __m256i isum = kq_hsum8x8(acc[i]);
            const __m256i summs = T == KQ3 ? isum : kq_hsum8x8(sm);
            const __m256 xd = _mm256_set1_ps(fq__h2f(r[i].d));
            const __m256 xm = _mm256_set1_ps(T == KQ3 ? 0.f : fq__h2f(r[i].dmin));
            sumf[i] = _mm256_add_ps(sumf[i], kq_t(T, xd, xm, yd, isum, summs));
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < RX; i++) {
        float o[8];
        _mm256_storeu_ps(o, sumf[i]);
        for (int j = 0; j < CY; j++) s[(size_t)j * bs + i] = o[j];
    }
}

/* ---- decode: R (1..4) weight rows x one token ------------------------------------------ *
 * The rows share each activation load; per super-block one transpose-add puts the rows'
 * isum (and summs) in lanes 0..3 and one float step computes the rows' t, added to the
 * rows' sums (lane i = row i) in super-block order. Rows past nrx repeat the last one and
 * are not stored. */
FQ_AI __m128i kq_hsum4x4(const __m256i v[4]) {
    const __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi32(v[0], v[1]), _mm256_unpackhi_epi32(v[0], v[1]));
    const __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2], v[3]), _mm256_unpackhi_epi32(v[2], v[3]));
    const __m256i c = _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

FQ_AI void kq_mv(const int T, int64_t nb, float *s, const char *vx, size_t bx, int nrx,
                 const fq_block_q8_K *y, const int R) {
    const size_t xbytes = kq_bytes_of(T);
    const char *xr[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) xr[i] = vx + (size_t)FQ_MIN(i, nrx - 1) * bx;
    /* the rows are read interleaved, which the hardware prefetchers do not follow: the rows
     * two groups ahead go to L2, R blocks' bytes a step (a step reads R blocks) */
    uintptr_t pf = (uintptr_t)vx + (uintptr_t)2 * R * bx; /* an address: may lie past the weights */
    __m128 sumv = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        kq_row r[4];
        __m256i acc[4], sm[4];
        if (R > 1) pf = fq__prefetch_l2(pf, R * xbytes);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) kq_prep(T, xr[i] + (size_t)b * xbytes, &r[i]);
        const fq_block_q8_K *yb = y + b;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const __m256i yv = _mm256_loadu_si256((const __m256i *)(yb->qs + 32 * g));
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                __m256i u, sc;
                kq_group(T, &r[i], g, &u, &sc);
                acc[i] = kq_sub_dot(g ? acc[i] : _mm256_setzero_si256(), u, yv, sc);
            }
        }
        /* the rows' F16 scales as words in registers (F16C: the same values as fq__h2f, NaN
         * payloads included once multiplied; scalar stores then a vector load stalled) */
        uint16_t hd[4], hm[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (i < R) {
                kq_close(T, &r[i], yb, &acc[i], &sm[i]);
                hd[i] = r[i].d;
                hm[i] = T == KQ3 ? 0 : r[i].dmin;
            } else {
                acc[i] = sm[i] = _mm256_setzero_si256();
                hd[i] = hm[i] = 0;
            }
        }
        const __m128 xd = _mm_cvtph_ps(_mm_setr_epi16((short)hd[0], (short)hd[1], (short)hd[2], (short)hd[3], 0, 0, 0, 0));
        const __m128 xm = _mm_cvtph_ps(_mm_setr_epi16((short)hm[0], (short)hm[1], (short)hm[2], (short)hm[3], 0, 0, 0, 0));
        const __m128i isum = kq_hsum4x4(acc);
        const __m128i summs = T == KQ3 ? isum : kq_hsum4x4(sm);
        const __m256 t = kq_t(T, _mm256_zextps128_ps256(xd), _mm256_zextps128_ps256(xm),
                              _mm256_set1_ps(yb->d), _mm256_zextsi128_si256(isum), _mm256_zextsi128_si256(summs));
        sumv = _mm_add_ps(sumv, _mm256_castps256_ps128(t));
    }
    float o[4];
    _mm_storeu_ps(o, sumv);
    for (int i = 0; i < nrx && i < R; i++) s[i] = o[i];
}

/* ---- prompt processing, weight rows in lanes (4..8 rows x up to 16 tokens) -------------- *
 * Lane i of every vector is weight row i (missing rows repeat the last one and are never
 * stored). A super-block's levels are transposed once per call (lev[g][p] lane i = dword p
 * of group g of row i), and each activation dword is broadcast against them: one maddubs is
 * 8 rows x 4 values of one token, and the sums come out with the rows in lanes, no
 * horizontal adds. Per group and token the maddubs of a sub-block are added in 16 bits
 * (Q2_K / Q3_K: 4 dwords of a 16-value sub-block, each word 8 products of a level <= 7 and
 * a quant >= -128: <= 7168; Q5_K: 4 of the 8 dwords of its 32-value sub-block, 8 products of
 * a level <= 31: <= 31744 < 2^15), then madd against the words (sc, sc) of each row's
 * scale gives sc * D in the row's int32 lane. The mins (Q2_K, Q5_K) and Q3_K's +4 are madds
 * of the rows' scale or min words against the bsums dwords, as in kq_close. All exact in
 * int32; the float step is kq_t, one row per lane. The group loop is outside the token
 * loop, so a group's 8 level vectors stay in registers for all tokens. */
FQ_AI void kq_rows(const int T, int64_t nb, float *s, size_t bs, const char *vx, size_t bx, int nrx,
                   const char *vy, size_t by, int ny) {
    const size_t xbytes = kq_bytes_of(T);
    const char *xr[8];
    for (int i = 0; i < 8; i++) xr[i] = vx + (size_t)FQ_MIN(i, nrx - 1) * bx;
    __m256 sumf[FQ_DOT_NY];
    for (int j = 0; j < ny; j++) sumf[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const void *xb[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) xb[i] = xr[i] + (size_t)b * xbytes;
        /* lev[g][p]: levels of group g; sc[k]: scale words (sc, sc) of sub-block k (Q5_K:
         * k = g); cw[q]: the words paired with bsums dword q (Q2_K: mins m_2q, m_2q+1;
         * Q3_K: scales sc_2q, sc_2q+1; Q5_K: (mn_q, mn_q)) */
        __m256i lev[8][8], sc[16], cw[8];
        uint16_t hd[8], hm[8];
        if (T == KQ2 || T == KQ3) {
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    r[i] = _mm256_loadu_si256((const __m256i *)((T == KQ2 ? ((const fq_block_q2_K *)xb[i])->qs
                                                                          : ((const fq_block_q3_K *)xb[i])->qs) + 32 * h));
                fq__tr8x8_epi32(r);
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++)
#pragma GCC unroll 8
                    for (int p = 0; p < 8; p++) lev[4 * h + t][p] = _mm256_and_si256(kq_shift(r[p], -2 * t), _mm256_set1_epi8(3));
            }
        } else {
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                __m256i r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256((const __m256i *)(((const fq_block_q5_K *)xb[i])->qs + 32 * h));
                fq__tr8x8_epi32(r);
#pragma GCC unroll 8
                for (int p = 0; p < 8; p++) {
                    lev[2 * h][p] = _mm256_and_si256(r[p], _mm256_set1_epi8(0x0F));
                    lev[2 * h + 1][p] = _mm256_and_si256(_mm256_srli_epi16(r[p], 4), _mm256_set1_epi8(0x0F));
                }
            }
        }
        if (T == KQ3 || T == KQ5) { /* the high bit of every level: bit g of hmask / qh byte l */
            __m256i hb[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                hb[i] = _mm256_loadu_si256((const __m256i *)(T == KQ3 ? ((const fq_block_q3_K *)xb[i])->hmask
                                                                      : ((const fq_block_q5_K *)xb[i])->qh));
            fq__tr8x8_epi32(hb);
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
#pragma GCC unroll 8
                for (int p = 0; p < 8; p++)
                    lev[g][p] = _mm256_or_si256(lev[g][p], T == KQ3 ? _mm256_and_si256(kq_shift(hb[p], 2 - g), _mm256_set1_epi8(4))
                                                                    : _mm256_and_si256(kq_shift(hb[p], 4 - g), _mm256_set1_epi8(0x10)));
        }
        {
            __m256i w[8], m[8]; /* 16 words per row: Q2_K scales / mins, Q3_K scales, Q5_K [sc | mn] */
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                if (T == KQ2) {
                    const fq_block_q2_K *x = xb[i];
                    const __m128i v = _mm_loadu_si128((const __m128i *)x->scales);
                    w[i] = _mm256_cvtepu8_epi16(_mm_and_si128(v, _mm_set1_epi8(0x0F)));
                    m[i] = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(0x0F)));
                    hd[i] = x->d;
                    hm[i] = x->dmin;
                } else if (T == KQ3) {
                    const fq_block_q3_K *x = xb[i];
                    w[i] = _mm256_cvtepi8_epi16(kq_q3_scales(x->scales));
                    hd[i] = x->d;
                    hm[i] = 0;
                } else {
                    const fq_block_q5_K *x = xb[i];
                    w[i] = _mm256_cvtepu8_epi16(kq_k4_scales(x->scales));
                    hd[i] = x->d;
                    hm[i] = x->dmin;
                }
            }
            fq__tr8x8_epi32(w); /* w[q] lane i = words 2q, 2q+1 of row i */
            if (T == KQ2) fq__tr8x8_epi32(m);
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) {
                if (T == KQ5) {
                    if (q < 4) {
                        sc[2 * q] = fq__dup_lo16(w[q]);
                        sc[2 * q + 1] = fq__dup_hi16(w[q]);
                    } else {
                        cw[2 * (q - 4)] = fq__dup_lo16(w[q]);
                        cw[2 * (q - 4) + 1] = fq__dup_hi16(w[q]);
                    }
                } else {
                    sc[2 * q] = fq__dup_lo16(w[q]);
                    sc[2 * q + 1] = fq__dup_hi16(w[q]);
                    cw[q] = T == KQ2 ? m[q] : w[q];
                }
            }
        }
        const __m256 xd = fq__f16x8(hd[0], hd[1], hd[2], hd[3], hd[4], hd[5], hd[6], hd[7]);
        const __m256 xm = fq__f16x8(hm[0], hm[1], hm[2], hm[3], hm[4], hm[5], hm[6], hm[7]);
        __m256i isum[FQ_DOT_NY];
#pragma GCC unroll 1
        for (int g = 0; g < 8; g++) {
            __m256i wv[8];
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) wv[p] = lev[g][p];
            const __m256i s0 = T == KQ5 ? sc[g] : sc[2 * g], s1 = T == KQ5 ? sc[g] : sc[2 * g + 1];
#pragma GCC unroll 1
            for (int j = 0; j < ny; j++) {
                const int8_t *y = ((const fq_block_q8_K *)(vy + (size_t)j * by) + b)->qs + 32 * g;
                __m256i mm[8];
#pragma GCC unroll 8
                for (int p = 0; p < 8; p++) mm[p] = _mm256_maddubs_epi16(wv[p], fq__bcast_dw(y + 4 * p));
                const __m256i lo = _mm256_add_epi16(_mm256_add_epi16(mm[0], mm[1]), _mm256_add_epi16(mm[2], mm[3]));
                const __m256i hi = _mm256_add_epi16(_mm256_add_epi16(mm[4], mm[5]), _mm256_add_epi16(mm[6], mm[7]));
                const __m256i d = _mm256_add_epi32(_mm256_madd_epi16(lo, s0), _mm256_madd_epi16(hi, s1));
                isum[j] = g ? _mm256_add_epi32(isum[j], d) : d;
            }
        }
#pragma GCC unroll 1
        for (int j = 0; j < ny; j++) {
            const fq_block_q8_K *yb = (const fq_block_q8_K *)(vy + (size_t)j * by) + b;
            __m256i t8[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) t8[q] = _mm256_madd_epi16(cw[q], fq__bcast_dw(&yb->bsums[2 * q]));
            const __m256i c = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(t8[0], t8[1]), _mm256_add_epi32(t8[2], t8[3])),
                                               _mm256_add_epi32(_mm256_add_epi32(t8[4], t8[5]), _mm256_add_epi32(t8[6], t8[7])));
            __m256i is = isum[j], summs = c;
            if (T == KQ3) is = summs = _mm256_sub_epi32(is, _mm256_slli_epi32(c, 2));
            sumf[j] = _mm256_add_ps(sumf[j], kq_t(T, xd, xm, _mm256_set1_ps(yb->d), is, summs));
        }
    }
    fq__store_rows(s, bs, sumf, ny, nrx);
}

/* ---- instances and entry points -------------------------------------------------------- */

#ifndef KQ_TILE_RX /* rows per tile: 16 ymm registers at AVX2, 32 with AVX-512 */
#if FQ_VNNI
#define KQ_TILE_RX 2
#else
#define KQ_TILE_RX 1
#endif
#endif
#define KQ_TILE_CY 8
#ifndef KQ_ROWS /* prompts by kq_rows (4 or more rows per call) rather than the tiles */
#define KQ_ROWS 1
#endif

typedef void (*kq_tile_fn)(int64_t nb, float *s, size_t bs, const char *x, size_t bx, const char *y, size_t by);
typedef void (*kq_mv_fn)(int64_t nb, float *s, const char *x, size_t bx, int nrx, const fq_block_q8_K *y);

#define KQ_TILE_INST(t, T, RX, CY)                                                           \
    static void FN(kq_tile_##t##_##RX##x##CY)(int64_t nb, float *s, size_t bs, const char *x, \
                                              size_t bx, const char *y, size_t by) {        \
        kq_tile(T, nb, s, bs, x, bx, RX, y, by, CY);                                         \
    }
#define KQ_TILE_ROW(t, T, RX)                                                                \
    KQ_TILE_INST(t, T, RX, 1) KQ_TILE_INST(t, T, RX, 2) KQ_TILE_INST(t, T, RX, 3)            \
    KQ_TILE_INST(t, T, RX, 4) KQ_TILE_INST(t, T, RX, 5) KQ_TILE_INST(t, T, RX, 6)            \
    KQ_TILE_INST(t, T, RX, 7) KQ_TILE_INST(t, T, RX, 8)
#define KQ_TILE_PTRS(t, RX)                                                                  \
    {FN(kq_tile_##t##_##RX##x1), FN(kq_tile_##t##_##RX##x2), FN(kq_tile_##t##_##RX##x3),     \
     FN(kq_tile_##t##_##RX##x4), FN(kq_tile_##t##_##RX##x5), FN(kq_tile_##t##_##RX##x6),     \
     FN(kq_tile_##t##_##RX##x7), FN(kq_tile_##t##_##RX##x8)}
#if KQ_TILE_RX == 1
#define KQ_TILES(t, T) KQ_TILE_ROW(t, T, 1)                                                  \
    static const kq_tile_fn FN(kq_tiles_##t)[1][8] = {KQ_TILE_PTRS(t, 1)};
#else
#define KQ_TILES(t, T) KQ_TILE_ROW(t, T, 1) KQ_TILE_ROW(t, T, 2)                             \
    static const kq_tile_fn FN(kq_tiles_##t)[2][8] = {KQ_TILE_PTRS(t, 1), KQ_TILE_PTRS(t, 2)};
#endif

#define KQ_MV_INST(t, T, R)                                                                  \
    static void FN(kq_mv_##t##_##R)(int64_t nb, float *s, const char *x, size_t bx, int nrx, \
                                    const fq_block_q8_K *y) {                               \
        kq_mv(T, nb, s, x, bx, nrx, y, R);                                                   \
    }

/* vec_dot_mn: nry = 1 in groups of 4 rows (the last by the kernel of its size); 4 or more
 * rows by kq_rows (16 tokens a call), fewer by tiles of KQ_TILE_RX rows x 8 tokens;
 * vec_dot_n: one row against nrc tokens (the tiles) */
#define KQ_ENTRY(t, T)                                                                       \
    KQ_TILES(t, T)                                                                           \
    static void FN(kq_rows_##t)(int64_t nb, float *s, size_t bs, const char *x, size_t bx,   \
                                int nrx, const char *y, size_t by, int ny) {                 \
        kq_rows(T, nb, s, bs, x, bx, nrx, y, by, ny);                                        \
    }                                                                                        \
    KQ_MV_INST(t, T, 1) KQ_MV_INST(t, T, 2) KQ_MV_INST(t, T, 3) KQ_MV_INST(t, T, 4)          \
    static const kq_mv_fn FN(kq_mvs_##t)[4] = {FN(kq_mv_##t##_1), FN(kq_mv_##t##_2),         \
                                               FN(kq_mv_##t##_3), FN(kq_mv_##t##_4)};        \
    static void FN(kq_dotmn_##t)(int64_t n, float *s, size_t bs, const void *x, size_t bx,  \
                                 int nrx, const void *y, size_t by, int nry) {              \
        const int64_t nb = n / FQ_QK_K;                                                      \
        if (nry == 1) {                                                                      \
            for (int i0 = 0; i0 < nrx; i0 += 4)                                              \
                FN(kq_mvs_##t)[FQ_MIN(4, nrx - i0) - 1](nb, s + i0, (const char *)x + (size_t)i0 * bx, \
                                                        bx, FQ_MIN(4, nrx - i0), y);         \
            return;                                                                          \
        }                                                                                    \
        if (KQ_ROWS && nrx >= 4) {                                                           \
            for (int j0 = 0; j0 < nry; j0 += FQ_DOT_NY)                                      \
                FN(kq_rows_##t)(nb, s + (size_t)j0 * bs, bs, (const char *)x, bx, nrx,       \
                                (const char *)y + (size_t)j0 * by, by, FQ_MIN(FQ_DOT_NY, nry - j0)); \
            return;                                                                          \
        }                                                                                    \
        for (int i0 = 0; i0 < nrx; i0 += KQ_TILE_RX) {                                       \
            const int rx = FQ_MIN(KQ_TILE_RX, nrx - i0);                                     \
            for (int j0 = 0; j0 < nry; j0 += KQ_TILE_CY)                                     \
                FN(kq_tiles_##t)[rx - 1][FQ_MIN(KQ_TILE_CY, nry - j0) - 1](                  \
                    nb, s + (size_t)j0 * bs + i0, bs, (const char *)x + (size_t)i0 * bx, bx, \
                    (const char *)y + (size_t)j0 * by, by);                                  \
        }                                                                                    \
    }                                                                                        \
    static void FN(kq_dotn_##t)(int64_t n, float *s, size_t bs, const void *x, const void *y, \
                                size_t by, int nrc) {                                        \
        FN(kq_dotmn_##t)(n, s, bs, x, 0, 1, y, by, nrc);                                     \
    }

KQ_ENTRY(q2_K, KQ2) KQ_ENTRY(q3_K, KQ3) KQ_ENTRY(q5_K, KQ5)
#undef KQ_ENTRY

/* ---- registration (called last by fq__isa_fill_<level>) -------------------------------- */

void FN(fq__isa_fill_mmkq)(fq__isa_kernels *k) {
#define KQ_REG(T, t)                                                                         \
    k->vec_dot_n[FQ_TYPE_##T] = FN(kq_dotn_##t);                                             \
    k->vec_dot_mn[FQ_TYPE_##T] = FN(kq_dotmn_##t);                                           \
    k->mn_x[FQ_TYPE_##T] = KQ_ROWS ? 8 : 4; /* rows in lanes; tiles: activations stay in L1 */ \
    k->mn_y[FQ_TYPE_##T] = KQ_ROWS ? FQ_DOT_NY : KQ_TILE_CY;                                 \
    k->mv_x[FQ_TYPE_##T] = 4;
    KQ_REG(Q2_K, q2_K) KQ_REG(Q3_K, q3_K) KQ_REG(Q5_K, q5_K)
#undef KQ_REG
}
