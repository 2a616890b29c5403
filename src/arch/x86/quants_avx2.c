/* quants_avx2.c - AVX2 (+FMA, F16C) variants of the dot products and activation encoders.
 * Compiled with -mavx2 -mfma -mf16c; only reached after fq_qtypes_init checked CPUID.
 * quants_avx512.c includes this file again with FQ_X86_SUFFIX=avx512 and AVX-512 VNNI on,
 * so one body serves both levels (VNNI replaces the maddubs/madd pair where it can).
 *
 * Every kernel returns the same bits as its generic twin in quants.c / quants_k.c:
 *  - decoders: the generic's float expression per value (multiply, then add or subtract);
 *  - F32/F16/BF16: one 8-lane accumulator, multiply then add (the build's -std=c11 keeps
 *    GCC from contracting them into FMAs), element i in lane i % 8, the same final tree;
 *  - 32-element blocks: 8 blocks at a time, their exact integer sums gathered one per lane,
 *    block b in lane b % 8 as the generic's acc[b & 7];
 *  - K-quants: exact integer sums per super-block, then the generic's scalar float line.
 * Integer sums never overflow: maddubs pairs stay below 2 * 63 * 127 = 16002. */
#include "qtypes.h"

#include <immintrin.h>

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_X86_CAT2(a, b) a##_##b
#define FQ_X86_CAT(a, b) FQ_X86_CAT2(a, b)
#define FN(name) FQ_X86_CAT(name, FQ_X86_SUFFIX)

/* ---- integer helpers ---------------------------------------------------------------- */

/* unsigned bytes ux (0..127, or 128 from abs(-128)) times signed bytes y, 4 per int32 lane */
static inline __m256i dot_u8s8(__m256i ux, __m256i y) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ux, y);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ux, y), _mm256_set1_epi16(1));
#endif
}
/* signed x times signed y: move x's sign onto y so the left operand is unsigned */
static inline __m256i dot_s8s8(__m256i x, __m256i y) {
    return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static inline int hsum_i32_8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* eight vectors of 8 int32 partial sums -> one vector holding each vector's total */
static inline __m256i hsum_8x8(const __m256i v[8]) {
    const __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20),
                            _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* 16 packed nibbles -> 32 bytes: low nibbles (elements 0..15) then high (16..31) */
static inline __m256i nibbles_32(const uint8_t *q) {
    const __m128i t = _mm_loadu_si128((const __m128i *)q);
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set */
static inline __m256i bits_32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

/* F16 scales of 8 consecutive blocks (stride in bytes) as 8 floats, exactly */
static inline __m256 scales_8(const uint8_t *first, size_t stride) {
    uint16_t h[8]; /* gathered in registers: 2-byte stores then a 16-byte load would stall */
    for (int i = 0; i < 8; i++) memcpy(&h[i], first + i * stride, 2);
    const __m128i v = _mm_set_epi16((short)h[7], (short)h[6], (short)h[5], (short)h[4],
                                    (short)h[3], (short)h[2], (short)h[1], (short)h[0]);
    return _mm256_cvtph_ps(v);
}

/* ---- F32 / F16 / BF16 ----------------------------------------------------------------- */

/* default mode: fused multiply-adds, as fq_vec_dot_f32_f32 (llama.cpp's tinyBLAS order) */
static void FN(dot_f32)(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc);
    float a[8];
    _mm256_storeu_ps(a, acc);
    for (; i < n; i++) a[i & 7] = fmaf(x[i], y[i], a[i & 7]);
    *s = fq__hsum8(a);
}

/* exact mode: products rounded, then added */
static void FN(dot_f32_mul_add)(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    for (; i < n; i++) a[i & 7] += x[i] * y[i];
    *s = fq__hsum8(a);
}

static void FN(dot_f16)(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_half *x = vx, *y = vy;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(a, b));
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    for (; i < n; i++) a[i & 7] += fq__h2f(x[i]) * fq__h2f(y[i]);
    *s = fq__hsum8(a);
}

static inline __m256 bf16_8(const uint16_t *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static void FN(dot_bf16)(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx, *y = vy;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, _mm256_mul_ps(bf16_8(x + i), bf16_8(y + i)));
    float a[8];
    _mm256_storeu_ps(a, acc);
    for (; i < n; i++) a[i & 7] += fq__bf2f(x[i]) * fq__bf2f(y[i]);
    *s = fq__hsum8(a);
}

/* F16C rounds to nearest even exactly as fq_f32_to_fp16 (NaNs quieted the same way) */
static void FN(act_f16)(const float *x, void *vy, int64_t n) {
    fq_half *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(y + i), h);
    }
    for (; i < n; i++) y[i] = fq_f32_to_fp16(x[i]);
}

/* ---- 32-element blocks against Q8_0 / Q8_1 -------------------------------------------- */

/* The shared loop: `ints(b)` gives block b's 8 partial int32 sums; the float step per lane
 * is acc += (dx*dy) * sumi (+ mx*sy for the _1 types). Tail blocks go through `tail`. */
#define BLOCK_DOT_LOOP(X_T, Y_T, INTS, HAS_M, TAIL)                                        \
    const X_T *x = vx;                                                                      \
    const Y_T *y = vy;                                                                      \
    const int64_t nb = n / FQ_QK;                                                           \
    __m256 acc = _mm256_setzero_ps();                                                       \
    int64_t b = 0;                                                                          \
    for (; b + 8 <= nb; b += 8) {                                                           \
        __m256i part[8];                                                                    \
        for (int k = 0; k < 8; k++) part[k] = INTS(&x[b + k], &y[b + k]);                  \
        const __m256 sumi = _mm256_cvtepi32_ps(hsum_8x8(part));                             \
        const __m256 dxdy = _mm256_mul_ps(scales_8((const uint8_t *)&x[b].d, sizeof(X_T)),  \
                                          scales_8((const uint8_t *)&y[b].d, sizeof(Y_T))); \
        __m256 p = _mm256_mul_ps(dxdy, sumi);                                               \
        if (HAS_M) {                                                                        \
            p = _mm256_add_ps(p, _mm256_mul_ps(scales_8((const uint8_t *)&x[b] + 2,         \
                                                        sizeof(X_T)),                       \
                                               scales_8((const uint8_t *)&y[b] + 2,         \
                                                        sizeof(Y_T))));                     \
        }                                                                                   \
        acc = _mm256_add_ps(acc, p);                                                        \
    }                                                                                       \
    float a[8];                                                                             \
    _mm256_storeu_ps(a, acc);                                                               \
    for (; b < nb; b++) {                                                                   \
        const int sumi = hsum_i32_8(INTS(&x[b], &y[b]));                                    \
        float t = (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi;                        \
        TAIL;                                                                               \
        a[b & 7] += t;                                                                      \
    }                                                                                       \
    *s = fq__hsum8(a)

static inline __m256i ints_q8_0(const fq_block_q8_0 *x, const fq_block_q8_0 *y) {
    return dot_s8s8(_mm256_loadu_si256((const __m256i *)x->qs),
                    _mm256_loadu_si256((const __m256i *)y->qs));
}
static void FN(dot_q8_0)(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_DOT_LOOP(fq_block_q8_0, fq_block_q8_0, ints_q8_0, 0, (void)0);
}

static inline __m256i ints_q4_0(const fq_block_q4_0 *x, const fq_block_q8_0 *y) {
    const __m256i q = _mm256_sub_epi8(nibbles_32(x->qs), _mm256_set1_epi8(8));
    return dot_s8s8(q, _mm256_loadu_si256((const __m256i *)y->qs));
}
static void FN(dot_q4_0)(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_DOT_LOOP(fq_block_q4_0, fq_block_q8_0, ints_q4_0, 0, (void)0);
}

/* Q5_0 levels minus 16: a clear fifth bit turns the nibble into nibble - 16 (0xF0 | nib) */
static inline __m256i ints_q5_0(const fq_block_q5_0 *x, const fq_block_q8_0 *y) {
    const __m256i hi = _mm256_andnot_si256(bits_32(x->qh), _mm256_set1_epi8((char)0xF0));
    const __m256i q = _mm256_or_si256(nibbles_32(x->qs), hi);
    return dot_s8s8(q, _mm256_loadu_si256((const __m256i *)y->qs));
}
static void FN(dot_q5_0)(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_DOT_LOOP(fq_block_q5_0, fq_block_q8_0, ints_q5_0, 0, (void)0);
}

static inline __m256i ints_q4_1(const fq_block_q4_1 *x, const fq_block_q8_1 *y) {
    return dot_u8s8(nibbles_32(x->qs), _mm256_loadu_si256((const __m256i *)y->qs));
}
static void FN(dot_q4_1)(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_DOT_LOOP(fq_block_q4_1, fq_block_q8_1, ints_q4_1, 1,
                   t += fq__h2f(x[b].m) * fq__h2f(y[b].s));
}

static inline __m256i ints_q5_1(const fq_block_q5_1 *x, const fq_block_q8_1 *y) {
    const __m256i hi = _mm256_and_si256(bits_32(x->qh), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(nibbles_32(x->qs), hi);
    return dot_u8s8(q, _mm256_loadu_si256((const __m256i *)y->qs));
}
static void FN(dot_q5_1)(int64_t n, float *s, const void *vx, const void *vy) {
    BLOCK_DOT_LOOP(fq_block_q5_1, fq_block_q8_1, ints_q5_1, 1,
                   t += fq__h2f(x[b].m) * fq__h2f(y[b].s));
}

/* ---- activation encoders Q8_0 / Q8_1 ----------------------------------------------------- */

/* One block as llama.cpp's AVX2 quantize_row_q8_0: returns the int32 quants, d in F32. */
static inline void act_q8_block(const float *x, __m256i q[4], float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256 m = _mm256_andnot_ps(sign, v[0]);
    for (int k = 1; k < 4; k++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    *d = amax / 127.f;
    const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
    for (int k = 0; k < 4; k++) {
        const __m256 r = _mm256_round_ps(_mm256_mul_ps(v[k], mul),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[k] = _mm256_cvtps_epi32(r);
    }
}

/* int32 x 32 -> int8 with saturation, in element order */
static inline __m256i pack_q8(const __m256i q[4]) {
    const __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i c = _mm256_packs_epi16(a, b);
    return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void FN(act_q8_0)(const float *x, void *vy, int64_t n) {
    fq_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        __m256i q[4];
        float d;
        act_q8_block(x + i * FQ_QK, q, &d);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_q8(q));
    }
}

static void FN(act_q8_1)(const float *x, void *vy, int64_t n) {
    fq_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        __m256i q[4];
        float d;
        act_q8_block(x + i * FQ_QK, q, &d);
        const int sum = hsum_i32_8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
                                                    _mm256_add_epi32(q[2], q[3])));
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_q8(q));
    }
}

/* ---- Q8_K activations (quantize_row_q8_K_ref, vectorized) ----------------------------- */

static void FN(act_q8_K)(const float *x, void *vy, int64_t n) {
    fq_block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / FQ_QK_K; i++, x += FQ_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (!amax) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* the reference keeps the sign of the first element reaching amax */
        const __m256 am = _mm256_set1_ps(amax);
        float max = amax;
        for (int k = 0; k < 32; k++) {
            const __m256 v = _mm256_loadu_ps(x + 8 * k);
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), am, _CMP_EQ_OQ));
            if (mask) {
                max = x[8 * k + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            for (int j = 0; j < 4; j++) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * k + 8 * j), mul);
                q[j] = _mm256_min_epi32(_mm256_cvtps_epi32(v), lim);
            }
            const __m256i p = pack_q8(q);
            _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * k), p);
            /* two 16-element sums: widen to int16, pairwise-add to int32, then reduce */
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(p));
            const __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(p, 1));
            y[i].bsums[2 * k] = (int16_t)hsum_i32_8(_mm256_madd_epi16(w0, _mm256_set1_epi16(1)));
            y[i].bsums[2 * k + 1] = (int16_t)hsum_i32_8(_mm256_madd_epi16(w1, _mm256_set1_epi16(1)));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---- K-quants against Q8_K ------------------------------------------------------------- */

/* Word w of each 128-bit lane broadcast across that lane (w_lo low lane, w_hi high lane). */
static inline __m256i word_shuffle(int w_lo, int w_hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(((2 * w_hi + 1) << 8) | (2 * w_hi))),
                            _mm_set1_epi16((short)(((2 * w_lo + 1) << 8) | (2 * w_lo))));
}

/* 12 bytes of Q4_K/Q5_K scales -> 8 six-bit scales (u[0..1]) and 8 mins (u[2..3]), as
 * bytes; the packing is ggml's get_scale_min_k4 done four at a time. */
static inline void unpack_k4(const uint8_t *q, uint32_t u[4]) {
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    memcpy(u, q, 12);
    u[3] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
    const uint32_t mins_lo = u[1] & km1;
    u[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
    u[2] = mins_lo;
    u[0] &= km1;
}

/* sum over the 16 bsums of bsum[j] * min[j/2] (mins as 8 int16 in m8) */
static inline int bsums_dot_pairs(const int16_t *bsums, __m128i m8) {
    const __m256i mp = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
    return hsum_i32_8(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums), mp));
}

/* Q4_K and Q5_K share everything but the fifth bit: `qh` NULL for Q4_K. */
static inline float dot_k4_block(const uint8_t *scales12, const uint8_t *qs, const uint8_t *qh,
                                 fq_half d16, fq_half dmin16, const fq_block_q8_K *y) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    uint32_t u[4];
    unpack_k4(scales12, u);
    const __m128i bytes = _mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]);
    const __m128i sc8 = _mm_cvtepu8_epi16(bytes), mn8 = _mm_cvtepu8_epi16(_mm_srli_si128(bytes, 8));
    const int summs = bsums_dot_pairs(y->bsums, mn8);
    const __m256i scv = _mm256_broadcastsi128_si256(sc8);
    const __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (qh) { /* bit 2k of qh is the fifth bit of the low nibbles, 2k+1 of the high */
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * k), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * k + 1), one), 4));
        }
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * k));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * k + 32));
        const __m256i s0 = _mm256_shuffle_epi8(scv, word_shuffle(2 * k, 2 * k));
        const __m256i s1 = _mm256_shuffle_epi8(scv, word_shuffle(2 * k + 1, 2 * k + 1));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1));
    }
    const int isum = hsum_i32_8(acc);
    const float d = fq__h2f(d16) * y->d;
    const float dmin = fq__h2f(dmin16) * y->d;
    return d * (float)isum - dmin * (float)summs;
}

static void FN(dot_q5_K)(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q5_K *x = vx;
    const fq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        sumf += dot_k4_block(x[i].scales, x[i].qs, x[i].qh, x[i].d, x[i].dmin, &y[i]);
    }
    *s = sumf;
}

/* Q2_K, Q3_K, Q6_K: 16 scales of 16 values. `sc16` holds them as int16 (s0..s7 | s8..s15);
 * each 32-byte step k,g covers sub-blocks 8k+2g (low lane) and 8k+2g+1 (high lane). */
static inline __m256i scales_for(__m256i sc16, int k, int g) {
    const __m256i half = k ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                           : _mm256_permute2x128_si256(sc16, sc16, 0x00);
    return _mm256_shuffle_epi8(half, word_shuffle(2 * g, 2 * g + 1));
}

/* 16 signed Q3_K scales (bias 32 removed) as bytes; the packing of ggml's dequantizer */
static inline __m128i unpack_q3_scales(const uint8_t *q) {
    const uint32_t km1 = 0x03030303, km2 = 0x0f0f0f0f;
    uint32_t a[3];
    memcpy(a, q, 12);
    const uint32_t s0 = (a[0] & km2) | (((a[2] >> 0) & km1) << 4);
    const uint32_t s1 = (a[1] & km2) | (((a[2] >> 2) & km1) << 4);
    const uint32_t s2 = ((a[0] >> 4) & km2) | (((a[2] >> 4) & km1) << 4);
    const uint32_t s3 = ((a[1] >> 4) & km2) | (((a[2] >> 6) & km1) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0), _mm_set1_epi8(32));
}

static void FN(dot_q3_K)(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q3_K *x = vx;
    const fq_block_q8_K *y = vy;
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(unpack_q3_scales(x[i].scales));
        /* value = (2 low bits | high bit << 2) - 4: unsigned levels, minus 4 * sum(q8) */
        const int bias = hsum_i32_8(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y[i].bsums)));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i acc = _mm256_setzero_si256();
        for (int k = 0; k < 2; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
            for (int g = 0; g < 4; g++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), m2);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * k + g), one);
                const __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * k + 32 * g));
                const __m256i p = _mm256_maddubs_epi16(u, yv);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scales_for(sc16, k, g)));
            }
        }
        const int isum = hsum_i32_8(acc) - 4 * bias;
        sumf += (fq__h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sumf;
}

static void FN(dot_q2_K)(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q2_K *x = vx;
    const fq_block_q8_K *y = vy;
    const __m256i m2 = _mm256_set1_epi8(3);
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const __m128i sb = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sb, _mm_set1_epi8(0x0F)));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sb, 4), _mm_set1_epi8(0x0F)));
        const int summs = hsum_i32_8(_mm256_madd_epi16(mn16, bs));
        __m256i acc = _mm256_setzero_si256();
        for (int k = 0; k < 2; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
            for (int g = 0; g < 4; g++) {
                const __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), m2);
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * k + 32 * g));
                const __m256i p = _mm256_maddubs_epi16(u, yv);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, scales_for(sc16, k, g)));
            }
        }
        const int isum = hsum_i32_8(acc);
        const float dall = y[i].d * fq__h2f(x[i].d);
        const float dmin = y[i].d * fq__h2f(x[i].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

/* ---- decoders and the exact-mode dot ----------------------------------------------------
 * Each value is the generic decoder's float expression (multiply, then add or subtract;
 * never fused), so the outputs are the same bits. */

static inline __m256 i8_to_ps(__m128i b8) { /* low 8 bytes, signed */
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8));
}
/* 16 int8 levels: dst = q * d (- m when m is given) */
static inline void dec16(float *dst, __m128i q, __m256 d, const __m256 *m, int sub) {
    __m256 a = _mm256_mul_ps(i8_to_ps(q), d), b = _mm256_mul_ps(i8_to_ps(_mm_srli_si128(q, 8)), d);
    if (m) {
        a = sub ? _mm256_sub_ps(a, *m) : _mm256_add_ps(a, *m);
        b = sub ? _mm256_sub_ps(b, *m) : _mm256_add_ps(b, *m);
    }
    _mm256_storeu_ps(dst, a);
    _mm256_storeu_ps(dst + 8, b);
}
static inline void dec32(float *dst, __m256i q, __m256 d, const __m256 *m, int sub) {
    dec16(dst, _mm256_castsi256_si128(q), d, m, sub);
    dec16(dst + 16, _mm256_extracti128_si256(q, 1), d, m, sub);
}

static void FN(dec_f16)(const void *src, float *dst, int64_t n) {
    const fq_half *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) dst[i] = fq__h2f(x[i]);
}
static void FN(dec_bf16)(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, bf16_8(x + i));
    for (; i < n; i++) dst[i] = fq__bf2f(x[i]);
}
static void FN(dec_q8_0)(const void *src, float *dst, int64_t n) {
    const fq_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        dec32(dst + i * FQ_QK, _mm256_loadu_si256((const __m256i *)x[i].qs),
              _mm256_set1_ps(fq__h2f(x[i].d)), NULL, 0);
    }
}
static void FN(dec_q4_0)(const void *src, float *dst, int64_t n) {
    const fq_block_q4_0 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const __m256i q = _mm256_sub_epi8(nibbles_32(x[i].qs), _mm256_set1_epi8(8));
        dec32(dst + i * FQ_QK, q, _mm256_set1_ps(fq__h2f(x[i].d)), NULL, 0);
    }
}
static void FN(dec_q4_1)(const void *src, float *dst, int64_t n) {
    const fq_block_q4_1 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const __m256 m = _mm256_set1_ps(fq__h2f(x[i].m));
        dec32(dst + i * FQ_QK, nibbles_32(x[i].qs), _mm256_set1_ps(fq__h2f(x[i].d)), &m, 0);
    }
}
static void FN(dec_q5_0)(const void *src, float *dst, int64_t n) {
    const fq_block_q5_0 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const __m256i hi = _mm256_andnot_si256(bits_32(x[i].qh), _mm256_set1_epi8((char)0xF0));
        const __m256i q = _mm256_or_si256(nibbles_32(x[i].qs), hi);
        dec32(dst + i * FQ_QK, q, _mm256_set1_ps(fq__h2f(x[i].d)), NULL, 0);
    }
}
static void FN(dec_q5_1)(const void *src, float *dst, int64_t n) {
    const fq_block_q5_1 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const __m256i hi = _mm256_and_si256(bits_32(x[i].qh), _mm256_set1_epi8(0x10));
        const __m256 m = _mm256_set1_ps(fq__h2f(x[i].m));
        dec32(dst + i * FQ_QK, _mm256_or_si256(nibbles_32(x[i].qs), hi),
              _mm256_set1_ps(fq__h2f(x[i].d)), &m, 0);
    }
}
static void FN(dec_k4)(const uint8_t *scales12, const uint8_t *qs, const uint8_t *qh, fq_half d16,
                       fq_half dmin16, float *y) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    uint32_t u[4];
    unpack_k4(scales12, u);
    const uint8_t *sc = (const uint8_t *)u, *mn = sc + 8;
    const float d = fq__h2f(d16), min = fq__h2f(dmin16);
    const __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (qh) {
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * k), one), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * k + 1), one), 4));
        }
        const __m256 m1 = _mm256_set1_ps(min * mn[2 * k]), m2 = _mm256_set1_ps(min * mn[2 * k + 1]);
        dec32(y + 64 * k, lo, _mm256_set1_ps(d * sc[2 * k]), &m1, 1);
        dec32(y + 64 * k + 32, hi, _mm256_set1_ps(d * sc[2 * k + 1]), &m2, 1);
    }
}
static void FN(dec_q4_K)(const void *src, float *dst, int64_t n) {
    const fq_block_q4_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        FN(dec_k4)(x[i].scales, x[i].qs, NULL, x[i].d, x[i].dmin, dst + i * FQ_QK_K);
    }
}
static void FN(dec_q5_K)(const void *src, float *dst, int64_t n) {
    const fq_block_q5_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        FN(dec_k4)(x[i].scales, x[i].qs, x[i].qh, x[i].d, x[i].dmin, dst + i * FQ_QK_K);
    }
}
static void FN(dec_q6_K)(const void *src, float *dst, int64_t n) {
    const fq_block_q6_K *x = src;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const float d = fq__h2f(x[i].d);
        float *y = dst + i * FQ_QK_K;
        for (int k = 0; k < 2; k++) {
            const uint8_t *ql = x[i].ql + 64 * k, *qh = x[i].qh + 32 * k;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i u[4];
            u[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
            u[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
            u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
            u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
            for (int g = 0; g < 4; g++) {
                const __m256i a = _mm256_sub_epi8(u[g], off);
                const int j = 8 * k + 2 * g;
                dec16(y + 128 * k + 32 * g, _mm256_castsi256_si128(a),
                      _mm256_set1_ps(d * x[i].scales[j]), NULL, 0);
                dec16(y + 128 * k + 32 * g + 16, _mm256_extracti128_si256(a, 1),
                      _mm256_set1_ps(d * x[i].scales[j + 1]), NULL, 0);
            }
        }
    }
}
static void FN(dec_q3_K)(const void *src, float *dst, int64_t n) {
    const fq_block_q3_K *x = src;
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        int8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, unpack_q3_scales(x[i].scales));
        const float d = fq__h2f(x[i].d);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        float *y = dst + i * FQ_QK_K;
        for (int k = 0; k < 2; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
            for (int g = 0; g < 4; g++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), m2);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * k + g), one);
                const __m256i a = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hb, 2)), four);
                const int j = 8 * k + 2 * g;
                dec16(y + 128 * k + 32 * g, _mm256_castsi256_si128(a), _mm256_set1_ps(d * sc[j]), NULL, 0);
                dec16(y + 128 * k + 32 * g + 16, _mm256_extracti128_si256(a, 1),
                      _mm256_set1_ps(d * sc[j + 1]), NULL, 0);
            }
        }
    }
}
static void FN(dec_q2_K)(const void *src, float *dst, int64_t n) {
    const fq_block_q2_K *x = src;
    const __m256i m2 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const float d = fq__h2f(x[i].d), min = fq__h2f(x[i].dmin);
        const uint8_t *sc = x[i].scales;
        float *y = dst + i * FQ_QK_K;
        for (int k = 0; k < 2; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * k));
            for (int g = 0; g < 4; g++) {
                const __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), m2);
                const int j = 8 * k + 2 * g;
                const __m256 ma = _mm256_set1_ps(min * (sc[j] >> 4)), mb = _mm256_set1_ps(min * (sc[j + 1] >> 4));
                dec16(y + 128 * k + 32 * g, _mm256_castsi256_si128(u), _mm256_set1_ps(d * (sc[j] & 0xF)), &ma, 1);
                dec16(y + 128 * k + 32 * g + 16, _mm256_extracti128_si256(u, 1),
                      _mm256_set1_ps(d * (sc[j + 1] & 0xF)), &mb, 1);
            }
        }
    }
}

/* Exact mode: decode FQ__CHUNK values at a time into a stack buffer and run the 8-lane F32
 * dot over it, carrying the lanes across chunks like the generic fq__dot_decoded. */
static inline void dot_decoded(int64_t n, float *s, const void *x, const float *y, size_t bbytes,
                               int64_t blck, fq__dec_fn dec) {
    float buf[FQ__CHUNK];
    __m256 acc = _mm256_setzero_ps();
    const uint8_t *xb = x;
    float a[8];
    for (int64_t i = 0; i < n; i += FQ__CHUNK) {
        const int64_t m = FQ_MIN(FQ__CHUNK, n - i);
        dec(xb, buf, m);
        int64_t j = 0;
        for (; j + 8 <= m; j += 8) {
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(buf + j), _mm256_loadu_ps(y + i + j)));
        }
        if (j < m) { /* only in the last chunk */
            _mm256_storeu_ps(a, acc);
            for (; j < m; j++) a[j & 7] += buf[j] * y[i + j];
            acc = _mm256_loadu_ps(a);
        }
        xb += (size_t)(FQ__CHUNK / blck) * bbytes;
    }
    _mm256_storeu_ps(a, acc);
    *s = fq__hsum8(a);
}

#define DOT_F32(t, BT, BLCK)                                                              \
    static void FN(dotf_##t)(int64_t n, float *s, const void *x, const float *y) {      \
        dot_decoded(n, s, x, y, sizeof(BT), BLCK, FN(dec_##t));                           \
    }
DOT_F32(f16, fq_half, 1)
DOT_F32(bf16, uint16_t, 1)
DOT_F32(q4_0, fq_block_q4_0, FQ_QK)
DOT_F32(q4_1, fq_block_q4_1, FQ_QK)
DOT_F32(q5_0, fq_block_q5_0, FQ_QK)
DOT_F32(q5_1, fq_block_q5_1, FQ_QK)
DOT_F32(q8_0, fq_block_q8_0, FQ_QK)
DOT_F32(q2_K, fq_block_q2_K, FQ_QK_K)
DOT_F32(q3_K, fq_block_q3_K, FQ_QK_K)
DOT_F32(q4_K, fq_block_q4_K, FQ_QK_K)
DOT_F32(q5_K, fq_block_q5_K, FQ_QK_K)
DOT_F32(q6_K, fq_block_q6_K, FQ_QK_K)
#undef DOT_F32

static void FN(dotf_f32)(int64_t n, float *s, const void *x, const float *y) {
    FN(dot_f32_mul_add)(n, s, x, y);
}

/* ---- multi-row dots: loops over this level's vec_dot where no tiled kernel exists ------ */

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
MULTI_LOOP(f32) MULTI_LOOP(f16) MULTI_LOOP(bf16) MULTI_LOOP(q4_0) MULTI_LOOP(q4_1)
MULTI_LOOP(q5_0) MULTI_LOOP(q5_1) MULTI_LOOP(q8_0) MULTI_LOOP(q2_K) MULTI_LOOP(q3_K)
MULTI_LOOP(q5_K)
#undef MULTI_LOOP

/* ---- registration -------------------------------------------------------------------- */

void FN(fq__isa_fill)(fq__isa_kernels *k) {
    k->vec_dot[FQ_TYPE_F32] = FN(dot_f32);
    k->vec_dot[FQ_TYPE_F16] = FN(dot_f16);
    k->vec_dot[FQ_TYPE_BF16] = FN(dot_bf16);
    k->vec_dot[FQ_TYPE_Q4_0] = FN(dot_q4_0);
    k->vec_dot[FQ_TYPE_Q4_1] = FN(dot_q4_1);
    k->vec_dot[FQ_TYPE_Q5_0] = FN(dot_q5_0);
    k->vec_dot[FQ_TYPE_Q5_1] = FN(dot_q5_1);
    k->vec_dot[FQ_TYPE_Q8_0] = FN(dot_q8_0);
    k->vec_dot[FQ_TYPE_Q2_K] = FN(dot_q2_K);
    k->vec_dot[FQ_TYPE_Q3_K] = FN(dot_q3_K);
    k->vec_dot[FQ_TYPE_Q5_K] = FN(dot_q5_K);
    k->from_float_act[FQ_TYPE_F16] = FN(act_f16);
    k->from_float_act[FQ_TYPE_Q8_0] = FN(act_q8_0);
    k->from_float_act[FQ_TYPE_Q8_1] = FN(act_q8_1);
    k->from_float_act[FQ_TYPE_Q8_K] = FN(act_q8_K);
    k->vec_dot_f32[FQ_TYPE_F32] = FN(dotf_f32);
#define MREG(T, t) k->vec_dot_n[FQ_TYPE_##T] = FN(dotn_##t); k->vec_dot_mn[FQ_TYPE_##T] = FN(dotmn_##t);
    MREG(F32, f32) MREG(F16, f16) MREG(BF16, bf16) MREG(Q4_0, q4_0) MREG(Q4_1, q4_1)
    MREG(Q5_0, q5_0) MREG(Q5_1, q5_1) MREG(Q8_0, q8_0) MREG(Q2_K, q2_K) MREG(Q3_K, q3_K)
    MREG(Q5_K, q5_K)
#undef MREG
#define REG(T, t) k->to_float[FQ_TYPE_##T] = FN(dec_##t); k->vec_dot_f32[FQ_TYPE_##T] = FN(dotf_##t);
    REG(F16, f16) REG(BF16, bf16) REG(Q4_0, q4_0) REG(Q4_1, q4_1) REG(Q5_0, q5_0)
    REG(Q5_1, q5_1) REG(Q8_0, q8_0) REG(Q2_K, q2_K) REG(Q3_K, q3_K) REG(Q4_K, q4_K)
    REG(Q5_K, q5_K) REG(Q6_K, q6_K)
#undef REG
    FN(fq__isa_fill_dot)(k); /* Q4_K, Q6_K: quants_dot_avx2.c */
    FN(fq__isa_fill_mmkq)(k); /* Q2_K, Q3_K, Q5_K tiles: mm_kq_avx2.c */
    FN(fq__isa_fill_mmq32)(k); /* Q8_0, Q4_0, Q5_0, Q4_1, Q5_1: mm_q32_avx2.c */
    FN(fq__isa_fill_mmfloat)(k); /* F32, F16, BF16 tiles: mm_float_avx2.c */
}
