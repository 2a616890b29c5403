/* mm_q32_avx2.c - register tiles for the 32-element block types: Q8_0, Q4_0, Q5_0 weights
 * against Q8_0 activations, Q4_1, Q5_1 against Q8_1. One kernel per type serves prompt
 * processing (vec_dot_mn: up to FQ_DOT_MXL rows x FQ_DOT_NY tokens), decode (nry = 1, a few
 * rows sharing the activation) and the single dot. Compiled with -mavx2 -mfma -mf16c;
 * mm_q32_avx512.c includes it again with AVX-512 VNNI on (vpdpbusd replaces maddubs+madd).
 *
 * Same bits as the generic kernels (quants.c), by construction:
 *  - the integer sum of a block is exact in any order. Weights become unsigned levels
 *    u = level + bias (Q4_0: +8, Q5_0: +16, Q8_0: +128, the _1 types: 0), and
 *    isum = sum(u * y) - bias * sum(y), all in int32 (|sum| < 2^20 per block). u8 x s8 never
 *    saturates: maddubs pairs stay below 2 * 31 * 128. Q8_0 at the AVX2 level (no vpdpbusd:
 *    u up to 255 would saturate maddubs, and the usual sign trick gets -128 x -128 wrong)
 *    takes the sign trick, with sign-extended 16-bit products (madd) for a group of blocks
 *    whose activations hold -128;
 *  - the float step per block is the generic's expression, (dx * dy) * (float)isum
 *    (+ mx * sy for the _1 types), multiply then add, never fused (-std=c11 keeps GCC from
 *    contracting), eight blocks at a time with block b in lane b % 8, added to the lane that
 *    the generic's acc[b & 7] is, in block order; the eight lanes end in fq__hsum8.
 * Three shapes of work, all with that arithmetic per output:
 *  - prompt tiles of 4..8 rows: rows in lanes, the weights transposed once per block for
 *    all tokens, activations broadcast, no horizontal sums (q32_rows_*; Q8_0 at the AVX2
 *    level only for calls whose activations hold no -128);
 *  - other tiles: groups of eight blocks, the activation side (scales, sum(y)) prepared
 *    once per token for all rows, each weight block unpacked once per row for all tokens,
 *    the per-block int32 vectors of one output reduced together (transpose-adds);
 *  - one token (decode, mv_x rows): chunk by chunk, each row streamed in turn through a
 *    chunk (four rows interleaved group by group read memory slower). The nibble types take
 *    blocks in pairs there (q32_drow_*: no per-block unpack shuffle, three horizontal adds
 *    per eight blocks, lanes in a fixed permuted order); Q8_0 the generic tile's steps. */
#include "qtypes.h"
#include "arch/x86/x86_common.h"

#include <immintrin.h>

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_X86_CAT2(a, b) a##_##b
#define FQ_X86_CAT(a, b) FQ_X86_CAT2(a, b)
#define FN(name) FQ_X86_CAT(name, FQ_X86_SUFFIX)

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define Q32_VNNI 1
#else
#define Q32_VNNI 0
#endif

#define Q32_AI static inline __attribute__((always_inline))

/* unsigned bytes u times signed bytes y, sums of 4 per int32 lane (exact: |u| <= 255 with
 * VNNI; without it the callers keep u <= 31 so maddubs pairs cannot saturate) */
Q32_AI __m256i q32_dot_us(__m256i u, __m256i y) {
#if Q32_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
#endif
}

/* a + b with a's NaN when both are NaN (x86 keeps the first source's payload). GCC may swap
 * the operands of _mm256_add_ps; the generic kernels (as GCC compiles them) compute
 * t = m*s + (dx*dy)*isum and acc = t + acc with x's scales first, so the same operands
 * come first here and a NaN scale gives the generic's NaN bits too. */
Q32_AI __m256 q32_add(__m256 a, __m256 b) {
    __m256 r;
#if defined(__AVX512VL__)
    __asm__("vaddps %2, %1, %0" : "=v"(r) : "v"(a), "v"(b));
#else
    __asm__("vaddps %2, %1, %0" : "=x"(r) : "x"(a), "x"(b));
#endif
    return r;
}

Q32_AI __m256 q32_mul(__m256 a, __m256 b) { /* a * b with a's NaN when both are NaN */
    __m256 r;
#if defined(__AVX512VL__)
    __asm__("vmulps %2, %1, %0" : "=v"(r) : "v"(a), "v"(b));
#else
    __asm__("vmulps %2, %1, %0" : "=x"(r) : "x"(a), "x"(b));
#endif
    return r;
}

/* eight vectors of 8 int32 partial sums -> one vector of their totals (lane k: v[k]) */
Q32_AI __m256i q32_hsum_8x8(const __m256i v[8]) {
    const __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20),
                            _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* lane k <- the F16 at p + at[k] * stride as a float, for k < cnt; 0 beyond cnt (at: a
 * constant table, folded once inlined) */
Q32_AI __m256 q32_scales_at(const uint8_t *p, size_t stride, int cnt, const int at[8]) {
    uint16_t h[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        h[k] = 0;
        if (k < cnt) memcpy(&h[k], p + (size_t)at[k] * stride, 2);
    }
    const __m128i v = _mm_set_epi16((short)h[7], (short)h[6], (short)h[5], (short)h[4],
                                    (short)h[3], (short)h[2], (short)h[1], (short)h[0]);
    return _mm256_cvtph_ps(v);
}
static const int q32_in_order[8] = {0, 1, 2, 3, 4, 5, 6, 7};
/* the F16 at p, p + stride, ... of the first cnt blocks as floats, 0 beyond cnt */
Q32_AI __m256 q32_scales(const uint8_t *p, size_t stride, int cnt) {
    return q32_scales_at(p, stride, cnt, q32_in_order);
}

/* 16 packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high (16..31) */
Q32_AI __m256i q32_nibbles(const uint8_t *q) {
    const __m128i t = _mm_loadu_si128((const __m128i *)q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* the Q5 fifth bits (32 bits at p, bit k for element k) as 0x10 in byte k */
Q32_AI __m256i q32_bit4(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)v),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* One weight block made ready for every token: unsigned levels in w[0] (or, for Q8_0 at the
 * AVX2 level, the 32 signed values widened to 16 bits in w[0], w[1]). */
typedef struct { __m256i w[2]; } q32_wb;

Q32_AI q32_wb q32_unpack_q4_0(const fq_block_q4_0 *x) {
    return (q32_wb){{q32_nibbles(x->qs), _mm256_setzero_si256()}};
}
Q32_AI q32_wb q32_unpack_q4_1(const fq_block_q4_1 *x) {
    return (q32_wb){{q32_nibbles(x->qs), _mm256_setzero_si256()}};
}
Q32_AI q32_wb q32_unpack_q5_0(const fq_block_q5_0 *x) {
    return (q32_wb){{_mm256_or_si256(q32_nibbles(x->qs), q32_bit4(x->qh)), _mm256_setzero_si256()}};
}
Q32_AI q32_wb q32_unpack_q5_1(const fq_block_q5_1 *x) {
    return (q32_wb){{_mm256_or_si256(q32_nibbles(x->qs), q32_bit4(x->qh)), _mm256_setzero_si256()}};
}
Q32_AI q32_wb q32_unpack_q8_0(const fq_block_q8_0 *x) {
#if Q32_VNNI
    const __m256i v = _mm256_loadu_si256((const __m256i *)x->qs);
    return (q32_wb){{_mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256()}};
#else
    const __m256i v = _mm256_loadu_si256((const __m256i *)x->qs);
    return (q32_wb){{_mm256_sign_epi8(v, v), v}};
#endif
}

/* int32 partial sums of one (weight block, activation block): unsigned levels x y */
Q32_AI __m256i q32_ints_u(const q32_wb *w, const int8_t *yq) {
    return q32_dot_us(w->w[0], _mm256_loadu_si256((const __m256i *)yq));
}
#if Q32_VNNI
#define q32_ints_q8_0 q32_ints_u
#else
/* |x| (0..128 as unsigned) times y with x's sign: exact unless y holds -128 (whose negation
 * wraps); |x| = 128 pairs reach at most 2 * 128 * 127 or exactly -2^15, no saturation */
Q32_AI __m256i q32_ints_q8_0(const q32_wb *w, const int8_t *yq) {
    const __m256i y = _mm256_loadu_si256((const __m256i *)yq);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w->w[0], _mm256_sign_epi8(y, w->w[1])),
                             _mm256_set1_epi16(1));
}
/* the same sums for any bytes: 16-bit products, madd pairs below 2^15 * 2 */
Q32_AI __m256i q32_ints_q8_0_wide(const q32_wb *w, const int8_t *yq) {
    const __m256i x = w->w[1];
    const __m256i x0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
    const __m256i x1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1));
    const __m256i y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)yq));
    const __m256i y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(yq + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(x0, y0), _mm256_madd_epi16(x1, y1));
}
#endif

/* Per type: weight block type, activation block type, unpack, ints, log2 of the bias (-1:
 * none), whether the min term m * s is added, whether the ints need activations without
 * -128 (then a group whose activations hold one takes q32_ints_q8_0_wide). */
#define Q32_q4_0 fq_block_q4_0, fq_block_q8_0, q32_unpack_q4_0, q32_ints_u, 3, 0, 0
#define Q32_q5_0 fq_block_q5_0, fq_block_q8_0, q32_unpack_q5_0, q32_ints_u, 4, 0, 0
#define Q32_q4_1 fq_block_q4_1, fq_block_q8_1, q32_unpack_q4_1, q32_ints_u, -1, 1, 0
#define Q32_q5_1 fq_block_q5_1, fq_block_q8_1, q32_unpack_q5_1, q32_ints_u, -1, 1, 0
#if Q32_VNNI
#define Q32_q8_0 fq_block_q8_0, fq_block_q8_0, q32_unpack_q8_0, q32_ints_q8_0, 7, 0, 0
#else
#define Q32_q8_0 fq_block_q8_0, fq_block_q8_0, q32_unpack_q8_0, q32_ints_q8_0, -1, 0, 1
#endif

/* acc[j][i]: the eight lanes (block b in lane b % 8) of output (row i, token j) */
typedef float q32_acc[FQ_DOT_MX][8];
/* one token's side of a group: scales (and s), bias * sum(y) per block */
typedef struct { __m256 dy, sy; __m256i corr; int m128; } q32_yp; /* m128: a -128 quant */

/* the ints for a group whose activations hold -128 (only Q8_0 at the AVX2 level differs) */
#define Q32_WIDE(f) f##_wide
#define q32_ints_u_wide q32_ints_u
#define Q32_STEPS(t, XT, YT, UNPACK, INTS, BIAS, HAS_M, NO_M128)                                       \
    /* the activation side of cnt (1..8) blocks at yb, 0 in lanes >= cnt */                   \
    Q32_AI void FN(q32_prep_##t)(const YT *yb, const int cnt, q32_yp *o) {                   \
        o->dy = q32_scales((const uint8_t *)&yb->d, sizeof(YT), cnt);                         \
        o->sy = HAS_M ? q32_scales((const uint8_t *)yb + 2, sizeof(YT), cnt) : _mm256_setzero_ps(); \
        o->corr = _mm256_setzero_si256();                                                     \
        o->m128 = 0;                                                                          \
        if (NO_M128) {                                                                        \
            __m256i e = _mm256_setzero_si256();                                               \
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)                               \
                if (k < cnt) e = _mm256_or_si256(e, _mm256_cmpeq_epi8(                        \
                    _mm256_loadu_si256((const __m256i *)yb[k].qs), _mm256_set1_epi8(-128)));  \
            o->m128 = !_mm256_testz_si256(e, e);                                              \
        }                                                                                     \
        if (BIAS >= 0) {                                                                      \
            __m256i p[8];                                                                     \
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)                               \
                p[k] = k < cnt ? q32_dot_us(_mm256_set1_epi8(1),                              \
                                            _mm256_loadu_si256((const __m256i *)yb[k].qs))    \
                               : _mm256_setzero_si256();                                      \
            o->corr = _mm256_slli_epi32(q32_hsum_8x8(p), BIAS >= 0 ? BIAS : 0);               \
        }                                                                                     \
    }                                                                                         \
    /* row i's blocks xb[0..cnt-1] (block index b) against tokens 0..nry-1, into acc[j][i] */ \
    Q32_AI void FN(q32_row_##t)(const XT *xb, const int cnt, int64_t b, const char *vy,      \
                                size_t by, int nry, const q32_yp *yp, size_t yps,             \
                                q32_acc *acc, int i) {                                        \
        q32_wb w[8];                                                                          \
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)                                   \
            w[k] = k < cnt ? UNPACK(&xb[k]) : (q32_wb){{_mm256_setzero_si256(), _mm256_setzero_si256()}}; \
        const __m256 dx = q32_scales((const uint8_t *)&xb->d, sizeof(XT), cnt);               \
        const __m256 mx = HAS_M ? q32_scales((const uint8_t *)xb + 2, sizeof(XT), cnt)        \
                                : _mm256_setzero_ps();                                        \
        const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(                           \
            _mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));              \
        for (int j = 0; j < nry; j++) {                                                       \
            const YT *yb = (const YT *)(vy + (size_t)j * by) + b;                             \
            const q32_yp *q = yp + (size_t)j * yps;                                           \
            __m256i p[8];                                                                     \
            if (NO_M128 && q->m128) {                                                         \
                _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)                           \
                    p[k] = k < cnt ? Q32_WIDE(INTS)(&w[k], yb[k].qs) : _mm256_setzero_si256(); \
            } else {                                                                          \
                _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)                           \
                    p[k] = k < cnt ? INTS(&w[k], yb[k].qs) : _mm256_setzero_si256();         \
            }                                                                                 \
            __m256i isum = q32_hsum_8x8(p);                                                   \
            if (BIAS >= 0) isum = _mm256_sub_epi32(isum, q->corr);                            \
            __m256 v = _mm256_mul_ps(q32_mul(dx, q->dy), _mm256_cvtepi32_ps(isum));          \
            if (HAS_M) v = q32_add(q32_mul(mx, q->sy), v);                                   \
            const __m256 a = _mm256_loadu_ps(acc[j][i]);                                      \
            __m256 r = q32_add(v, a);                                                         \
            if (cnt < 8) r = _mm256_blendv_ps(a, r, keep);                                    \
            _mm256_storeu_ps(acc[j][i], r);                                                   \
        }                                                                                     \
    }

/* ---- rows in lanes (prompt tiles of 4..8 rows) ------------------------------------------ *
 * Lane i of every vector is weight row i (missing rows repeat the last one and are never
 * stored). A block's levels are transposed once for all tokens (w[p] lane i = dword p of
 * row i's 32 levels), and each activation dword is broadcast against them, so one u8 x s8
 * step covers 8 rows x 4 values and the block sums come out with the rows in lanes: no
 * horizontal sums. Without VNNI the maddubs pairs of several dwords are added in 16 bits
 * first (4-bit levels: 8 dwords, |sum| <= 8 * 2 * 15 * 128 < 2^15; 5-bit: 4 dwords,
 * <= 4 * 2 * 31 * 128), then widened once. The float step per (block, token) is the
 * generic's, one row per lane, into acc[token][block % 8] (rows in lanes). The activation
 * side (scales, bias * sum(y)) is prepared eight blocks at a time per chunk of Q32_RCH
 * blocks, once for all rows. Q8_0 without VNNI takes the sign trick here, rows in lanes
 * (|x| once per block for all tokens, y's dword broadcast and given x's sign per row): a
 * maddubs and a madd per dword, exact unless an activation is -128, so such calls take the
 * tiles below (which widen that group to 16 bits). fqlm's Q8_0 activations hold -128 only
 * where an input is NaN or +-Inf (finite ones quantize to -127..127), so the old tiles are
 * for those and for foreign data. TinyLlama pp256, 2 threads, AVX2: 68-71 ->
 * 93.5 tok/s against the tiles below (nibble halves of level + 128 instead of the sign
 * trick had measured equal to them). */
/* rows (i, i+4) of 16 bytes each -> 4 vectors, vector q lane i = dword q of row i */
Q32_AI void q32_tr8x4(const uint8_t *const q[8], __m256i o[4]) {
    __m256i v[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        v[i] = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)q[i + 4]),
                                _mm_loadu_si128((const __m128i *)q[i]));
    const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    o[0] = _mm256_unpacklo_epi64(t0, t2);
    o[1] = _mm256_unpackhi_epi64(t0, t2);
    o[2] = _mm256_unpacklo_epi64(t1, t3);
    o[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* 16 nibble bytes of 8 rows -> w[p], levels 4p..4p+3 of each row */
Q32_AI void q32_rows_nib(const uint8_t *const q[8], __m256i w[8]) {
    __m256i o[4];
    q32_tr8x4(q, o);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        w[p] = _mm256_and_si256(o[p], m4);
        w[p + 4] = _mm256_and_si256(_mm256_srli_epi16(o[p], 4), m4);
    }
}

/* the fifth bits (qh words of 8 rows, lanes = rows) into w[p]: bit 4p+m -> 0x10 in byte m */
Q32_AI void q32_rows_bit4(__m256i h, __m256i w[8]) {
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) { /* byte p / 2 of each lane to its 4 bytes, bit 4p+m in byte m */
        const char o = (char)(p / 2);
        const __m256i idx = _mm256_setr_epi8(o, o, o, o, (char)(o + 4), (char)(o + 4), (char)(o + 4),
            (char)(o + 4), (char)(o + 8), (char)(o + 8), (char)(o + 8), (char)(o + 8), (char)(o + 12),
            (char)(o + 12), (char)(o + 12), (char)(o + 12), o, o, o, o, (char)(o + 4), (char)(o + 4),
            (char)(o + 4), (char)(o + 4), (char)(o + 8), (char)(o + 8), (char)(o + 8), (char)(o + 8),
            (char)(o + 12), (char)(o + 12), (char)(o + 12), (char)(o + 12));
        const __m256i bit = _mm256_set1_epi32(p % 2 ? (int)0x80402010 : 0x08040201);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(h, idx), bit), bit);
        w[p] = _mm256_or_si256(w[p], _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
}

#define Q32_ROWPTRS(XT, FIELD)                                                                \
    const uint8_t *q_[8];                                                                     \
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) q_[i] = xr[i][b].FIELD
Q32_AI __m256i q32_rows_qh(const uint8_t *const h[8]) {
    uint32_t v[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) memcpy(&v[i], h[i], 4);
    return _mm256_setr_epi32((int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5],
                             (int)v[6], (int)v[7]);
}
#define Q32_TUNPACK_q4(XT)                                                                    \
    Q32_AI void q32_tu_##XT(const XT *const xr[8], int64_t b, __m256i w[8]) {                 \
        Q32_ROWPTRS(XT, qs);                                                                  \
        q32_rows_nib(q_, w);                                                                  \
    }
#define Q32_TUNPACK_q5(XT)                                                                    \
    Q32_AI void q32_tu_##XT(const XT *const xr[8], int64_t b, __m256i w[8]) {                 \
        Q32_ROWPTRS(XT, qs);                                                                  \
        q32_rows_nib(q_, w);                                                                  \
        const uint8_t *h_[8];                                                                 \
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) h_[i] = xr[i][b].qh;              \
        q32_rows_bit4(q32_rows_qh(h_), w);                                                    \
    }
Q32_TUNPACK_q4(fq_block_q4_0) Q32_TUNPACK_q4(fq_block_q4_1)
Q32_TUNPACK_q5(fq_block_q5_0) Q32_TUNPACK_q5(fq_block_q5_1)
/* 32 signed bytes of 8 rows -> w[p] = dword p of each row; with VNNI plus 128 (bias 2^7),
 * without it signed (the sign trick) */
Q32_AI void q32_tu_fq_block_q8_0(const fq_block_q8_0 *const xr[8], int64_t b, __m256i w[8]) {
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) w[i] = _mm256_loadu_si256((const __m256i *)xr[i][b].qs);
    fq__tr8x8_epi32(w);
#if Q32_VNNI
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) w[p] = _mm256_xor_si256(w[p], _mm256_set1_epi8((char)0x80));
#endif
}

/* activations of a chunk of up to Q32_RCH blocks per token, prepared once for all rows */
#define Q32_RCH 32
#define Q32_RGRP (FQ_DOT_MXL / 8) /* groups of 8 rows per call, sharing the prepared chunk */
typedef struct {
    float dy[FQ_DOT_NY][Q32_RCH], sy[FQ_DOT_NY][Q32_RCH];
    int32_t corr[FQ_DOT_NY][Q32_RCH];
} q32_rprep;

/* 8 (or, at the end, cnt) blocks of one token: scales (and s), bias * sum(y) */
#define Q32_RPREP(YT, BIAS, HAS_M, cnt)                                                       \
    do {                                                                                      \
        _mm256_storeu_ps(&pr.dy[j][k], q32_scales((const uint8_t *)&yb[k].d, sizeof(YT), cnt)); \
        if (HAS_M)                                                                            \
            _mm256_storeu_ps(&pr.sy[j][k], q32_scales((const uint8_t *)&yb[k] + 2, sizeof(YT), cnt)); \
        if (BIAS >= 0) {                                                                      \
            __m256i p_[8];                                                                    \
            _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)                               \
                p_[q] = q < cnt ? q32_dot_us(_mm256_set1_epi8(1),                             \
                                             _mm256_loadu_si256((const __m256i *)yb[k + q].qs)) \
                                : _mm256_setzero_si256();                                     \
            _mm256_storeu_si256((__m256i *)&pr.corr[j][k],                                   \
                                _mm256_slli_epi32(q32_hsum_8x8(p_), BIAS >= 0 ? BIAS : 0));   \
        }                                                                                     \
    } while (0)

/* one group of 8 rows (xr; missing rows repeat the group's last) over the chunk's cn blocks
 * from c0 against nry tokens, into acc[token][block % 8][row % 8]. GRP: dwords whose maddubs
 * pairs may be added in 16 bits (8: 4-bit levels, 4: 5-bit; 0: Q8_0 without VNNI, signed
 * levels by the sign trick: |x| times y with x's sign, a maddubs and a madd per dword,
 * exact while no activation is -128) */
#define Q32_RGROUP(t, XT, YT, BIAS, HAS_M, GRP)                                               \
    Q32_AI void FN(q32_rgroup_##t)(const XT *const xr[8], int64_t c0, int cn, const char *vy, \
                                   size_t by, int nry, const q32_rprep *restrict pr,           \
                                   float (*acc)[8][8]) {                                      \
        for (int k = 0; k < cn; k++) {                                                        \
            const int64_t b = c0 + k;                                                         \
            __m256i w[8];                                                                     \
            q32_tu_##XT(xr, b, w);                                                            \
            uint16_t hd[8], hm[8];                                                            \
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {                             \
                hd[i] = xr[i][b].d;                                                           \
                if (HAS_M) memcpy(&hm[i], (const uint8_t *)&xr[i][b] + 2, 2);                 \
            }                                                                                 \
            const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hd));          \
            const __m256 mx = HAS_M ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)hm))   \
                                    : _mm256_setzero_ps();                                    \
            __m256i sx[8]; /* GRP 0: |x| */                                                   \
            if (GRP == 0)                                                                     \
                _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++) sx[p] = _mm256_sign_epi8(w[p], w[p]); \
            for (int j = 0; j < nry; j++) {                                                   \
                const int8_t *yq = ((const YT *)(vy + (size_t)j * by) + b)->qs;               \
                __m256i isum;                                                                 \
                if (GRP == 0 && !Q32_VNNI) {                                                  \
                    __m256i m[8];                                                             \
                    _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++)                       \
                        m[p] = _mm256_madd_epi16(_mm256_maddubs_epi16(sx[p], _mm256_sign_epi8(fq__bcast_dw(yq + 4 * p), w[p])), \
                                                 _mm256_set1_epi16(1));                       \
                    isum = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(m[0], m[1]), _mm256_add_epi32(m[2], m[3])), \
                                            _mm256_add_epi32(_mm256_add_epi32(m[4], m[5]), _mm256_add_epi32(m[6], m[7]))); \
                } else if (Q32_VNNI) { /* four chains: dpbusd's latency */                    \
                    __m256i a4[4];                                                            \
                    _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++)                       \
                        a4[p] = Q32_DPBUSD(_mm256_setzero_si256(), w[p], fq__bcast_dw(yq + 4 * p)); \
                    _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++)                       \
                        a4[p] = Q32_DPBUSD(a4[p], w[p + 4], fq__bcast_dw(yq + 4 * p + 16));      \
                    isum = _mm256_add_epi32(_mm256_add_epi32(a4[0], a4[1]),                   \
                                            _mm256_add_epi32(a4[2], a4[3]));                  \
                } else { /* pairs of 16-bit sums (tree, not chain), widened per GRP */        \
                    __m256i m[8];                                                             \
                    _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++)                       \
                        m[p] = _mm256_maddubs_epi16(w[p], fq__bcast_dw(yq + 4 * p));             \
                    _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++)                       \
                        m[p] = _mm256_add_epi16(m[2 * p], m[2 * p + 1]);                      \
                    if (GRP == 8) {                                                           \
                        isum = _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), \
                                                                  _mm256_add_epi16(m[2], m[3])), \
                                                 _mm256_set1_epi16(1));                       \
                    } else {                                                                  \
                        isum = _mm256_add_epi32(                                              \
                            _mm256_madd_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_set1_epi16(1)), \
                            _mm256_madd_epi16(_mm256_add_epi16(m[2], m[3]), _mm256_set1_epi16(1))); \
                    }                                                                         \
                }                                                                             \
                if (BIAS >= 0) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(pr->corr[j][k])); \
                __m256 v = _mm256_mul_ps(q32_mul(dx, _mm256_set1_ps(pr->dy[j][k])),            \
                                         _mm256_cvtepi32_ps(isum));                           \
                if (HAS_M) v = q32_add(q32_mul(mx, _mm256_set1_ps(pr->sy[j][k])), v);          \
                float *a = acc[j][b & 7];                                                     \
                _mm256_storeu_ps(a, q32_add(v, _mm256_loadu_ps(a)));                          \
            }                                                                                 \
        }                                                                                     \
    }
/* nrx (1..FQ_DOT_MXL) rows in groups of 8 x nry tokens: each chunk's activation side is
 * prepared once for all groups. GRP 0 (the sign trick): a call whose activations hold -128
 * returns 1 and the caller takes the other tiles. Returns 0 when done. */
#define Q32_ROWS(t, XT, YT, BIAS, HAS_M, GRP)                                                 \
    Q32_RGROUP(t, XT, YT, BIAS, HAS_M, GRP)                                                   \
    static int FN(q32_rows_##t)(int64_t nb, float *s, size_t bs, const char *vx, size_t bx,   \
                                int nrx, const char *vy, size_t by, int nry) {                \
        if (GRP == 0) {                                                                       \
            __m256i e = _mm256_setzero_si256();                                               \
            for (int j = 0; j < nry; j++)                                                     \
                for (int64_t b = 0; b < nb; b++)                                              \
                    e = _mm256_or_si256(e, _mm256_cmpeq_epi8(_mm256_loadu_si256(              \
                        (const __m256i *)((const YT *)(vy + (size_t)j * by) + b)->qs), _mm256_set1_epi8(-128))); \
            if (!_mm256_testz_si256(e, e)) return 1;                                          \
        }                                                                                     \
        const int ngr = (nrx + 7) / 8;                                                        \
        float acc[Q32_RGRP][FQ_DOT_NY][8][8]; /* [row group][token][block % 8][row % 8] */    \
        for (int g = 0; g < ngr; g++) memset(acc[g], 0, sizeof(float) * 64 * (size_t)nry);    \
        q32_rprep pr;                                                                         \
        for (int64_t c0 = 0; c0 < nb; c0 += Q32_RCH) {                                        \
            const int cn = (int)FQ_MIN(Q32_RCH, nb - c0);                                     \
            for (int j = 0; j < nry; j++) {                                                   \
                const YT *yb = (const YT *)(vy + (size_t)j * by) + c0;                        \
                for (int k = 0; k < cn; k += 8) {                                             \
                    if (cn - k >= 8) Q32_RPREP(YT, BIAS, HAS_M, 8);                           \
                    else Q32_RPREP(YT, BIAS, HAS_M, cn - k);                                  \
                }                                                                             \
            }                                                                                 \
            for (int g = 0; g < ngr; g++) {                                                   \
                const XT *xr[8];                                                              \
                for (int i = 0; i < 8; i++)                                                   \
                    xr[i] = (const XT *)(vx + (size_t)(8 * g + FQ_MIN(i, nrx - 8 * g - 1)) * bx); \
                FN(q32_rgroup_##t)(xr, c0, cn, vy, by, nry, &pr, acc[g]);                     \
            }                                                                                 \
        }                                                                                     \
        for (int g = 0; g < ngr; g++) {                                                       \
            __m256 r[FQ_DOT_NY];                                                              \
            for (int j = 0; j < nry; j++) { /* fq__hsum8's tree, operands in its order, per lane */ \
                const float(*a)[8] = acc[g][j];                                               \
                r[j] = q32_add(                                                               \
                    q32_add(q32_add(_mm256_loadu_ps(a[0]), _mm256_loadu_ps(a[4])),            \
                            q32_add(_mm256_loadu_ps(a[2]), _mm256_loadu_ps(a[6]))),           \
                    q32_add(q32_add(_mm256_loadu_ps(a[1]), _mm256_loadu_ps(a[5])),            \
                            q32_add(_mm256_loadu_ps(a[3]), _mm256_loadu_ps(a[7]))));          \
            }                                                                                 \
            fq__store_rows(s + 8 * (size_t)g, bs, r, nry, FQ_MIN(8, nrx - 8 * g));            \
        }                                                                                     \
        return 0;                                                                             \
    }
#if Q32_VNNI
#define Q32_DPBUSD(acc, w, y) _mm256_dpbusd_epi32(acc, w, y)
#else
#define Q32_DPBUSD(acc, w, y) (acc)
#endif
Q32_ROWS(q4_0, fq_block_q4_0, fq_block_q8_0, 3, 0, 8)
Q32_ROWS(q5_0, fq_block_q5_0, fq_block_q8_0, 4, 0, 4)
Q32_ROWS(q4_1, fq_block_q4_1, fq_block_q8_1, -1, 1, 8)
Q32_ROWS(q5_1, fq_block_q5_1, fq_block_q8_1, -1, 1, 4)
#if Q32_VNNI
Q32_ROWS(q8_0, fq_block_q8_0, fq_block_q8_0, 7, 0, 8)
#else
Q32_ROWS(q8_0, fq_block_q8_0, fq_block_q8_0, -1, 0, 0)
#endif
#define Q32_HAS_ROWS_q8_0 1
#define Q32_HAS_ROWS_q4_0 1
#define Q32_HAS_ROWS_q5_0 1
#define Q32_HAS_ROWS_q4_1 1
#define Q32_HAS_ROWS_q5_1 1

/* ---- decode of the nibble types (one token, full groups of eight blocks) ------------------ *
 * Blocks go in pairs: one vector holds the 16 packed bytes of block 2p (low 128 bits) and of
 * block 2p+1 (high), so the low nibbles are elements 0..15 of both blocks and the high
 * nibbles elements 16..31; the token's side is rearranged once per chunk to match (lo: y
 * 0..15 of both blocks, hi: y 16..31). The integer sums of a block are exact in any order.
 * Three horizontal adds reduce the four pair vectors to the eight block sums, which come out
 * in the lane order q32_dperm (lane L holds block q32_dperm[L]); scales and the token's side
 * are gathered in that order too, so each lane's float step is the generic's for its block
 * and blocks reach a lane in block order. The row's accumulator is put back in block order
 * before the tail group (if any) and the final fq__hsum8. */
static const int q32_dperm[8] = {0, 2, 4, 6, 1, 3, 5, 7};
typedef struct {
    __m256i y[8]; /* pair p: y[2p] the lo halves, y[2p+1] the hi halves */
    __m256 dy, sy;
    __m256i corr;
} q32_dyp;

/* the int32 sums of a pair (lanes 0..3 block 2p, 4..7 block 2p+1): levels lo, hi (unsigned,
 * <= 31, so two maddubs pairs add in 16 bits: 2 * 2 * 31 * 128 < 2^15) times yl, yh */
Q32_AI __m256i q32_pair_ints(__m256i lo, __m256i hi, __m256i yl, __m256i yh) {
#if Q32_VNNI
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, yl), hi, yh);
#else
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, yl), _mm256_maddubs_epi16(hi, yh)),
                             _mm256_set1_epi16(1));
#endif
}
/* four pair vectors -> the eight block sums, lane L = block q32_dperm[L] */
Q32_AI __m256i q32_pair_red(const __m256i p[4]) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
}
/* the F16 at p + q32_dperm[L] * stride into lane L */
Q32_AI __m256 q32_dscales(const uint8_t *p, size_t stride) { return q32_scales_at(p, stride, 8, q32_dperm); }
/* the 16 nibble bytes of blocks a and b: lo/hi levels as above */
Q32_AI void q32_pair_nib(const uint8_t *qa, const uint8_t *qb, __m256i *lo, __m256i *hi) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qa)),
                                              _mm_loadu_si128((const __m128i *)qb), 1);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
}
/* the fifth bits of blocks a and b (qh words ha, hb) as 0x10 into lo/hi */
Q32_AI void q32_pair_bit4(const uint8_t *ha, const uint8_t *hb, __m256i *lo, __m256i *hi) {
    uint32_t a, b;
    memcpy(&a, ha, 4);
    memcpy(&b, hb, 4);
    const __m256i h = _mm256_setr_epi32((int)a, (int)a, (int)a, (int)a, (int)b, (int)b, (int)b, (int)b);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i x10 = _mm256_set1_epi8(0x10);
    const __m256i il = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m256i ih = _mm256_add_epi8(il, _mm256_set1_epi8(2));
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(h, il), bit), bit), x10));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(h, ih), bit), bit), x10));
}
/* lanes in q32_dperm order -> block order */
Q32_AI void q32_dunperm(float a[8]) {
    float t[8];
    memcpy(t, a, sizeof t);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) a[q32_dperm[k]] = t[k];
}
/* Per nibble type: the token's side of a full group, and one row's full group added to acc
 * (lanes in q32_dperm order). Q5: the fifth bits too. */
#define Q32_DEC(t, XT, YT, BIAS, HAS_M, Q5)                                                   \
    Q32_AI void FN(q32_dprep_##t)(const YT *yb, q32_dyp *o) {                                \
        o->dy = q32_dscales((const uint8_t *)&yb->d, sizeof(YT));                             \
        o->sy = HAS_M ? q32_dscales((const uint8_t *)yb + 2, sizeof(YT)) : _mm256_setzero_ps(); \
        __m256i p[4];                                                                         \
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {                                 \
            const __m256i a = _mm256_loadu_si256((const __m256i *)yb[2 * q].qs);              \
            const __m256i b = _mm256_loadu_si256((const __m256i *)yb[2 * q + 1].qs);          \
            o->y[2 * q] = _mm256_permute2x128_si256(a, b, 0x20);                              \
            o->y[2 * q + 1] = _mm256_permute2x128_si256(a, b, 0x31);                          \
            p[q] = q32_pair_ints(_mm256_set1_epi8(1), _mm256_set1_epi8(1), o->y[2 * q], o->y[2 * q + 1]); \
        }                                                                                     \
        o->corr = BIAS >= 0 ? _mm256_slli_epi32(q32_pair_red(p), BIAS >= 0 ? BIAS : 0)        \
                            : _mm256_setzero_si256();                                         \
    }                                                                                         \
    Q32_AI __m256 FN(q32_drow_##t)(const XT *xb, const q32_dyp *o, __m256 acc) {             \
        __m256i p[4];                                                                         \
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) {                                 \
            __m256i lo, hi;                                                                   \
            q32_pair_nib(xb[2 * q].qs, xb[2 * q + 1].qs, &lo, &hi);                           \
            if (Q5) q32_pair_bit4((const uint8_t *)&xb[2 * q] + sizeof(XT) - 20,              \
                                  (const uint8_t *)&xb[2 * q + 1] + sizeof(XT) - 20, &lo, &hi); \
            p[q] = q32_pair_ints(lo, hi, o->y[2 * q], o->y[2 * q + 1]);                       \
        }                                                                                     \
        __m256i isum = q32_pair_red(p);                                                       \
        if (BIAS >= 0) isum = _mm256_sub_epi32(isum, o->corr);                                \
        const __m256 dx = q32_dscales((const uint8_t *)&xb->d, sizeof(XT));                   \
        __m256 v = _mm256_mul_ps(q32_mul(dx, o->dy), _mm256_cvtepi32_ps(isum));               \
        if (HAS_M) v = q32_add(q32_mul(q32_dscales((const uint8_t *)xb + 2, sizeof(XT)), o->sy), v); \
        return q32_add(v, acc);                                                               \
    }
Q32_DEC(q4_0, fq_block_q4_0, fq_block_q8_0, 3, 0, 0)
Q32_DEC(q5_0, fq_block_q5_0, fq_block_q8_0, 4, 0, 1)
Q32_DEC(q4_1, fq_block_q4_1, fq_block_q8_1, -1, 1, 0)
Q32_DEC(q5_1, fq_block_q5_1, fq_block_q8_1, -1, 1, 1)
#define Q32_HAS_DEC_q4_0 1
#define Q32_HAS_DEC_q5_0 1
#define Q32_HAS_DEC_q4_1 1
#define Q32_HAS_DEC_q5_1 1
#define Q32_HAS_DEC_q8_0 0
/* Q8_0 keeps the chunked decode below; these only let its kernel compile (never called) */
Q32_AI void FN(q32_dprep_q8_0)(const fq_block_q8_0 *yb, q32_dyp *o) {
    (void)yb;
    (void)o;
}
Q32_AI __m256 FN(q32_drow_q8_0)(const fq_block_q8_0 *xb, const q32_dyp *o, __m256 acc) {
    (void)xb;
    (void)o;
    return acc;
}

/* Decode prefetches the rows of the caller's next call (they follow this call's: rows lie
 * bx apart) into L2 (fq__prefetch_l2), the bytes of a group of eight blocks per group read,
 * in address order: memory then sees one sequential stream wherever the chunks make this
 * call's reads jump. */
/* groups of eight blocks per chunk on the decode path (4096 values): the token's side is
 * prepared once per chunk, then each row streams through the chunk in turn */
#define Q32_CHUNK 16

/* The tile: nrx (1..FQ_DOT_MXL) rows x nry (1..FQ_DOT_NY) tokens, s[j*bs + i]. Several
 * tokens: group by group (eight blocks), the tokens' side prepared once for all rows and
 * each weight block unpacked once for all tokens. One token: chunk by chunk, row by row. */
#define Q32_KERNEL(t, XT, YT, UNPACK, INTS, BIAS, HAS_M, NO_M128)                                      \
    Q32_STEPS(t, XT, YT, UNPACK, INTS, BIAS, HAS_M, NO_M128)                                           \
    static void FN(q32_mn_##t)(int64_t n, float *s, size_t bs, const void *x, size_t bx,     \
                               int nrx, const void *y, size_t by, int nry) {                  \
        const int64_t nb = n / FQ_QK;                                                         \
        const char *vx = x, *vy = y;                                                          \
        if (Q32_HAS_ROWS_##t && nrx >= 4 && nry > 1 &&                                        \
            !FN(q32_rows_##t)(nb, s, bs, vx, bx, nrx, vy, by, nry))                           \
            return;                                                                           \
        if (nrx > FQ_DOT_MX) { /* groups of FQ_DOT_MX rows */                                  \
            for (int i0 = 0; i0 < nrx; i0 += FQ_DOT_MX)                                       \
                FN(q32_mn_##t)(n, s + i0, bs, vx + (size_t)i0 * bx, bx, FQ_MIN(FQ_DOT_MX, nrx - i0), \
                               y, by, nry);                                                   \
            return;                                                                           \
        }                                                                                     \
        q32_acc acc[FQ_DOT_NY];                                                               \
        for (int j = 0; j < nry; j++) memset(acc[j], 0, sizeof(float) * 8 * (size_t)nrx);   \
        if (nry == 1 && Q32_HAS_DEC_##t) {                                                    \
            const int64_t nbf = nb / 8 * 8; /* blocks in full groups */                        \
            q32_dyp dp[Q32_CHUNK];                                                            \
            uintptr_t pf = (uintptr_t)vx + (uintptr_t)nrx * bx; /* the next call's rows */      \
            for (int64_t c0 = 0; c0 < nbf; c0 += 8 * Q32_CHUNK) {                             \
                const int ng = (int)FQ_MIN(Q32_CHUNK, (nbf - c0) / 8);                        \
                for (int g = 0; g < ng; g++) FN(q32_dprep_##t)((const YT *)vy + c0 + 8 * g, &dp[g]); \
                for (int i = 0; i < nrx; i++) {                                               \
                    const XT *xr = (const XT *)(vx + (size_t)i * bx) + c0;                    \
                    __m256 a = _mm256_loadu_ps(acc[0][i]);                                    \
                    for (int g = 0; g < ng; g++) {                                            \
                        pf = fq__prefetch_l2(pf, 8 * sizeof(XT));                             \
                        a = FN(q32_drow_##t)(xr + 8 * g, &dp[g], a);                          \
                    }                                                                         \
                    _mm256_storeu_ps(acc[0][i], a);                                           \
                }                                                                             \
            }                                                                                 \
            for (int i = 0; i < nrx; i++) q32_dunperm(acc[0][i]);                             \
            if (nb > nbf) {                                                                   \
                q32_yp yp;                                                                    \
                FN(q32_prep_##t)((const YT *)vy + nbf, (int)(nb - nbf), &yp);                 \
                for (int i = 0; i < nrx; i++)                                                 \
                    FN(q32_row_##t)((const XT *)(vx + (size_t)i * bx) + nbf, (int)(nb - nbf), nbf, \
                                    vy, by, 1, &yp, 1, acc, i);                               \
            }                                                                                 \
        } else if (nry == 1) {                                                                \
            q32_yp yp[Q32_CHUNK];                                                             \
            uintptr_t pf = (uintptr_t)vx + (uintptr_t)nrx * bx;                               \
            for (int64_t c0 = 0; c0 < nb; c0 += 8 * Q32_CHUNK) {                              \
                const int ng = (int)FQ_MIN(Q32_CHUNK, (nb - c0 + 7) / 8);                     \
                for (int g = 0; g < ng; g++) {                                                \
                    const int64_t b = c0 + 8 * g;                                             \
                    const YT *yb = (const YT *)vy + b;                                        \
                    if (nb - b >= 8) FN(q32_prep_##t)(yb, 8, &yp[g]);                         \
                    else FN(q32_prep_##t)(yb, (int)(nb - b), &yp[g]);                         \
                }                                                                             \
                for (int i = 0; i < nrx; i++) {                                               \
                    const XT *xr = (const XT *)(vx + (size_t)i * bx);                         \
                    for (int g = 0; g < ng; g++) {                                            \
                        const int64_t b = c0 + 8 * g;                                         \
                        pf = fq__prefetch_l2(pf, 8 * sizeof(XT));                             \
                        if (nb - b >= 8) FN(q32_row_##t)(xr + b, 8, b, vy, by, 1, &yp[g], 1, acc, i); \
                        else FN(q32_row_##t)(xr + b, (int)(nb - b), b, vy, by, 1, &yp[g], 1, acc, i); \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        } else {                                                                              \
            q32_yp yp[FQ_DOT_NY];                                                             \
            for (int64_t b = 0; b < nb; b += 8) {                                             \
                const int cnt = (int)FQ_MIN(8, nb - b);                                       \
                for (int j = 0; j < nry; j++) {                                               \
                    const YT *yb = (const YT *)(vy + (size_t)j * by) + b;                     \
                    if (cnt == 8) FN(q32_prep_##t)(yb, 8, &yp[j]);                            \
                    else FN(q32_prep_##t)(yb, cnt, &yp[j]);                                   \
                }                                                                             \
                for (int i = 0; i < nrx; i++) {                                               \
                    const XT *xb = (const XT *)(vx + (size_t)i * bx) + b;                     \
                    if (cnt == 8) FN(q32_row_##t)(xb, 8, b, vy, by, nry, yp, 1, acc, i);      \
                    else FN(q32_row_##t)(xb, cnt, b, vy, by, nry, yp, 1, acc, i);             \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        for (int j = 0; j < nry; j++)                                                         \
            for (int i = 0; i < nrx; i++) s[(size_t)j * bs + (size_t)i] = fq__hsum8(acc[j][i]); \
    }                                                                                         \
    static void FN(q32_n_##t)(int64_t n, float *s, size_t bs, const void *x, const void *y,  \
                              size_t by, int nrc) {                                           \
        FN(q32_mn_##t)(n, s, bs, x, 0, 1, y, by, nrc);                                        \
    }                                                                                         \
    static void FN(q32_dot_##t)(int64_t n, float *s, const void *x, const void *y) {         \
        FN(q32_mn_##t)(n, s, 1, x, 0, 1, y, 0, 1);                                            \
    }
#define Q32_EXPAND(m, ...) m(__VA_ARGS__)
#define Q32_TYPE(t) Q32_EXPAND(Q32_KERNEL, t, Q32_##t)
Q32_TYPE(q8_0) Q32_TYPE(q4_0) Q32_TYPE(q5_0) Q32_TYPE(q4_1) Q32_TYPE(q5_1)

/* ---- registration -------------------------------------------------------------------- */

void FN(fq__isa_fill_mmq32)(fq__isa_kernels *k) {
#define Q32_REG(T, t)                                                                         \
    k->vec_dot[FQ_TYPE_##T] = FN(q32_dot_##t);                                                \
    k->vec_dot_n[FQ_TYPE_##T] = FN(q32_n_##t);                                                \
    k->vec_dot_mn[FQ_TYPE_##T] = FN(q32_mn_##t);                                              \
    k->mn_x[FQ_TYPE_##T] = Q32_HAS_ROWS_##t ? FQ_DOT_MXL : 8;                                 \
    k->mn_y[FQ_TYPE_##T] = 16;                                                                \
    k->mv_x[FQ_TYPE_##T] = Q32_HAS_DEC_##t ? 8 : 4;
    Q32_REG(Q8_0, q8_0) Q32_REG(Q4_0, q4_0) Q32_REG(Q5_0, q5_0) Q32_REG(Q4_1, q4_1)
    Q32_REG(Q5_1, q5_1)
#undef Q32_REG
}
