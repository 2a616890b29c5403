/* quants_dot_avx2.c - the hot dot products of decode and prompt processing: Q4_K, Q6_K and
 * Q8_0 weights against their activations, one activation row (vec_dot) or several
 * (vec_dot_n, vec_dot_mn). Compiled with -mavx2 -mfma -mf16c; quants_dot_avx512.c
 * includes it again with AVX-512 VNNI on (vpdpbusd / vpdpwssd replace maddubs / madd).
 *
 * Same bits as the generic kernels (quants_k.c, quants.c), by construction:
 *  - the integer sums of a super-block (isum, summs) are exact whatever the order;
 *  - the float step is the generic's expression per super-block, d = F16(x.d) * y.d,
 *    t = d * (float)isum - dmin * (float)summs (multiply, then subtract, never fused:
 *    -std=c11 keeps GCC from contracting), computed for several (row, token, super-block)
 *    at a time, one per lane, then added to each dot's sum in super-block order, as the
 *    generic's sumf.
 *
 * Q4_K/Q6_K integer part, per 32 values (one or two sub-blocks, one scale each):
 *   maddubs(levels, q8) (pairs below 2 * 63 * 128 < 2^15), madd with the scale words (with
 *   VNNI one vpdpwssd, madd and add); the decode path's Q4_K with VNNI packs the vpdpbusd
 *   sums of two sub-blocks into the words of one vpdpwssd (q4_K_mv_ints).
 * Super-block sums stay per super-block in a vector; the vectors of several super-blocks
 * are reduced together (transpose-adds). */
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
#define FQ_VNNI 1
#else
#define FQ_VNNI 0
#endif

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

/* ---- register tiles: RX weight rows x CY activation rows (prompt processing) ----------- *
 * Each weight sub-block is unpacked once per tile and each activation vector loaded once
 * per tile; acc[i][j] holds the 8 int32 partials of one (row, token) over one super-block.
 * The float step runs with the tokens as lanes: hsum8x8 of row i's CY accumulators gives
 * isum of each token, then t = d * isum - dmin * summs and sumf += t per lane: for each
 * (row, token) exactly the generic's float operations per super-block, in its order.
 * Lanes CY..7 hold zeros (and yd 0) and are never stored. */
#define FQ_AI static inline __attribute__((always_inline))
#define FQ_TILE_MAX_RX 4

/* transpose-add without phadd (2 cycles each on Zen 4): unpack + add, lane j = total of v[j] */
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
#define TILE_YD(j) (cy > (j) ? ((const fq_block_q8_K *)(vy + (size_t)(j) * by))[b].d : 0.f)
    /* built in registers: scalar stores then a vector load would stall on forwarding */
    return _mm256_setr_ps(TILE_YD(0), TILE_YD(1), TILE_YD(2), TILE_YD(3), TILE_YD(4), TILE_YD(5), TILE_YD(6),
                          TILE_YD(7));
#undef TILE_YD
}

/* ---- decode: a few weight rows x one activation row ------------------------------------ *
 * vec_dot_mn with nry = 1, and vec_dot. A step runs four streams, stream i being super-block
 * b + i % G of row i / G for R rows and G = 4 / R super-blocks per step: R = 4 shares each
 * activation load between four rows, R = 1 (vec_dot) keeps four super-blocks of its row in
 * flight. Each stream's integer sums end in 8-lane vectors; one transpose-add of the step's
 * vectors puts every stream's isum (and summs) in a lane, and one float step computes all
 * streams' t, lane for lane the generic's d = F16(x.d) * y.d, dmin = F16(x.dmin) * y.d,
 * t = d * isum - dmin * summs. Each row then adds its t in super-block order: rows in
 * lanes of one vector sum for R > 1, a scalar chain for R = 1. The only memory round trip
 * is Q4_K's scale words at the AVX-512 level: one vector store, read back as broadcast
 * operands (forwarded whole: no scalar stores under a vector load). Measured on Zen 4
 * (bench kernels, mv line): 4 rows beat 2 and 8 (two quads of streams) at both levels;
 * 512-bit bodies (two sub-blocks per zmm) were slower: the chip splits them in two. */

/* transpose-add of 4 vectors: lane i = total of v[i] */
FQ_AI __m128i hsum4x4_tile(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
    const __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1));
    const __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi32(v2, v3), _mm256_unpackhi_epi32(v2, v3));
    const __m256i c = _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    return _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
}

FQ_AI __m128i load32_si128(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128(v);
}

#if FQ_VNNI
/* Two Q4_K blocks' scales, one block per 128-bit lane of v, which holds each block's first
 * 16 bytes (d, dmin, scales[12]): per lane the bytes sc0..3 mn0..3 sc4..7 mn4..7 (as
 * ggml's get_scale_min_k4; the low parts of sc0..3 / mn0..3 are 6 bits of q0..3 / q4..7,
 * of sc4..7 / mn4..7 the nibbles of q8..11, their high parts the top 2 bits of q0..7) */
FQ_AI __m256i k4_scales2(__m256i v) {
    const __m256i a = _mm256_shuffle_epi32(v, _MM_SHUFFLE(3, 3, 2, 1)); /* q0..3 q4..7 q8..11 q8..11 */
    const __m256i lo = _mm256_and_si256(_mm256_blend_epi32(a, _mm256_srli_epi16(a, 4), 0x88),
                                        _mm256_setr_epi8(63, 63, 63, 63, 63, 63, 63, 63, 15, 15, 15, 15, 15, 15, 15, 15,
                                                         63, 63, 63, 63, 63, 63, 63, 63, 15, 15, 15, 15, 15, 15, 15, 15));
    const __m256i hi = _mm256_srli_epi16(_mm256_slli_si256(v, 4), 2); /* bytes 8..15: q0..7 >> 2 */
    const __m256i m = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
                                       0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30);
    return _mm256_ternarylogic_epi32(lo, hi, m, 0xF8); /* lo | (hi & m) */
}

/* bsums[2j] + bsums[2j+1], j = 0..7, as 8 words (|pair| <= 4064): of ya in the low 128-bit
 * lane, of yb in the high one */
FQ_AI __m256i q8_K_bsum_pairs2(const fq_block_q8_K *ya, const fq_block_q8_K *yb) {
    const __m256i one = _mm256_set1_epi16(1);
    const __m256i pa = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ya->bsums), one);
    const __m256i pb = ya == yb ? pa : _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)yb->bsums), one);
    /* lanes [a0..3 b0..3 | a4..7 b4..7] -> [a0..3 a4..7 | b0..3 b4..7] */
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(pa, pb), _MM_SHUFFLE(3, 1, 2, 0));
}

/* The integer sums of a step's four Q4_K streams (stream i: block xb[i], activations yb[i]),
 * as four vectors for q4_K_mv_tree, and the (d, dmin) of streams 0, 2, 1, 3. Streams (0, 1)
 * and (2, 3) decode their scales together, one block per 128-bit lane, and so meet their
 * summs terms and the correction of the levels' sums with one vpmaddwd per pair; the
 * transpose-add starts by adding the halves of each stream's isum vector into one half,
 * paired as the rest. */
FQ_AI void q4_K_mv_ints(const fq_block_q4_K *const xb[4], const fq_block_q8_K *const yb[4], const int G,
                        __m128i *dd, __m256i part[4]) {
    const __m256i h01 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)xb[0])),
                                                _mm_loadu_si128((const __m128i *)xb[1]), 1);
    const __m256i h23 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)xb[2])),
                                                _mm_loadu_si128((const __m128i *)xb[3]), 1);
    /* (d, dmin) of streams 0, 2, 1, 3: dword 0 of each lane */
    *dd = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_unpacklo_epi32(h01, h23), _MM_SHUFFLE(3, 1, 2, 0)));
    const __m256i k01 = k4_scales2(h01), k23 = k4_scales2(h23);
    const char z = (char)0x80;
    /* per lane the words sc0..7 (stored for the broadcasts below) and mn0..7 */
    const __m256i sidx = _mm256_setr_epi8(0, z, 1, z, 2, z, 3, z, 8, z, 9, z, 10, z, 11, z,
                                          0, z, 1, z, 2, z, 3, z, 8, z, 9, z, 10, z, 11, z);
    const __m256i midx = _mm256_setr_epi8(4, z, 5, z, 6, z, 7, z, 12, z, 13, z, 14, z, 15, z,
                                          4, z, 5, z, 6, z, 7, z, 12, z, 13, z, 14, z, 15, z);
    const __m256i s01 = _mm256_shuffle_epi8(k01, sidx), s23 = _mm256_shuffle_epi8(k23, sidx);
    int32_t sw[16];
    _mm256_storeu_si256((__m256i *)sw, s01);
    _mm256_storeu_si256((__m256i *)(sw + 8), s23);
    /* bsums pairs of each stream's activations, in the lane of its scales */
    const __m256i b01 = q8_K_bsum_pairs2(yb[0], yb[1]);
    const __m256i b23 = G == 1 ? b01 : q8_K_bsum_pairs2(yb[2], yb[3]);
    /* per lane: summs partials (4 dwords) and -32768 (sc0 + sc2 + sc4 + sc6) (4 dwords) */
    const __m256i sm01 = _mm256_madd_epi16(_mm256_shuffle_epi8(k01, midx), b01);
    const __m256i sm23 = _mm256_madd_epi16(_mm256_shuffle_epi8(k23, midx), b23);
    const __m256i cneg = _mm256_set1_epi32(0x8000); /* words (-32768, 0) */
    const __m256i c01 = _mm256_madd_epi16(s01, cneg), c23 = _mm256_madd_epi16(s23, cneg);
    /* Each stream's isum partials (8 lanes), the streams interleaved. Per 32 weight bytes q
     * (sub-block 2k: low nibbles, 2k+1: high nibbles) vpdpbusd gives per dword the 4-value
     * sums Dl (low levels against q8) and Dh (high levels, as q & 0xF0 = 16 x level, against
     * the next 32 q8), |Dl|, |Dh| <= 4 * 15 * 128 = 7680: from an accumulator of 2,
     * (16 Dh + 2) << 12 = (Dh << 16) + 8192, then + Dl, makes a dword of the words
     * (Dl + 8192, Dh), the low one in 512..15872 so that nothing borrows, and one vpdpwssd with
     * the words (sc_2k, sc_2k+1), broadcast from sw, adds Dl sc_2k + Dh sc_2k+1 + 8192 sc_2k
     * exactly. The 8 lanes' 8192 sc_2k, 65536 (sc0 + sc2 + sc4 + sc6), come off below. */
    __m256i is[4];
    {
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        __m256i acc[4][2];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(xb[i]->qs + 32 * k));
                __asm__("" : "+x"(q)); /* one load: GCC would fold it into both uses */
                const __m256i dh = _mm256_dpbusd_epi32(_mm256_set1_epi32(2), _mm256_andnot_si256(m4, q),
                                                       _mm256_loadu_si256((const __m256i *)(yb[i]->qs + 64 * k + 32)));
                const __m256i p = _mm256_dpbusd_epi32(_mm256_slli_epi32(dh, 12), _mm256_and_si256(q, m4),
                                                      _mm256_loadu_si256((const __m256i *)(yb[i]->qs + 64 * k)));
                /* the scale dword as a broadcast memory operand: no shuffle (GCC would make one) */
                __asm__("vpdpwssd %2%{1to8%}, %1, %0" : "+v"(acc[i][k & 1]) : "v"(p), "m"(sw[4 * i + k]));
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) is[i] = _mm256_add_epi32(acc[i][0], acc[i][1]);
    }
    /* per lane of a pair: its stream's isum partials (halves added) less 65536 (...) */
    __m256i i01 = _mm256_add_epi32(_mm256_permute2x128_si256(is[0], is[1], 0x20), _mm256_permute2x128_si256(is[0], is[1], 0x31));
    __m256i i23 = _mm256_add_epi32(_mm256_permute2x128_si256(is[2], is[3], 0x20), _mm256_permute2x128_si256(is[2], is[3], 0x31));
    part[0] = _mm256_add_epi32(i01, _mm256_add_epi32(c01, c01));
    part[1] = sm01;
    part[2] = _mm256_add_epi32(i23, _mm256_add_epi32(c23, c23));
    part[3] = sm23;
}

/* the rest of the transpose-add: (isum, summs) of streams 0, 2, 1, 3 in the lanes */
FQ_AI __m256i q4_K_mv_tree(const __m256i part[4]) {
    const __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi32(part[0], part[1]), _mm256_unpackhi_epi32(part[0], part[1]));
    const __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi32(part[2], part[3]), _mm256_unpackhi_epi32(part[2], part[3]));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}
#endif

/* t of the four streams of a step added to the rows' sums in super-block order. ints: the
 * lanes (isum, summs) of streams 0, 2, 1, 3; c: their (d, dmin); so t = d * isum - dmin *
 * summs of stream i lands in lane (0, 4, 2, 6)[i]. R = 4: row i in that lane of sumv;
 * R = 2: rows in lanes 0 and 2 of sum4, super-blocks b (low half) then b + 1 (high half);
 * R = 1: lanes 0, 4, 2, 6 in this order onto sum4's lane 0. */
FQ_AI void q4_K_mv_float(__m256i ints, __m256 c, int m, const int R, __m256 *sumv, __m128 *sum4) {
    const __m256 p = _mm256_mul_ps(c, _mm256_cvtepi32_ps(ints));
    const __m256 t = _mm256_sub_ps(p, _mm256_movehdup_ps(p));
    const __m128 lo = _mm256_castps256_ps128(t), hi = _mm256_extractf128_ps(t, 1);
    if (R == 4) {
        *sumv = _mm256_add_ps(*sumv, t);
    } else if (R == 2) {
        *sum4 = _mm_add_ps(*sum4, lo);
        if (m > 1) *sum4 = _mm_add_ps(*sum4, hi);
    } else {
        *sum4 = _mm_add_ss(*sum4, lo);
        if (m > 1) *sum4 = _mm_add_ss(*sum4, hi);
        if (m > 2) *sum4 = _mm_add_ss(*sum4, _mm_movehl_ps(lo, lo));
        if (m > 3) *sum4 = _mm_add_ss(*sum4, _mm_movehl_ps(hi, hi));
    }
}

/* the four streams of the step at super-block b: stream i is super-block b + i % G of row
 * i / G (G = 4 / R), the last one of the step again past its m = min(G, nb - b) */
#define MV_STREAMS(xb, yb, xr, y, b, m, G)                                                   \
    do {                                                                                     \
        _Pragma("GCC unroll 4") for (int i_ = 0; i_ < 4; i_++) {                            \
            const int64_t bi_ = (b) + ((G) == 1 ? 0 : FQ_MIN(i_ % (G), (m) - 1));            \
            (xb)[i_] = (xr)[i_ / (G)] + bi_;                                                 \
            (yb)[i_] = (y) + bi_;                                                            \
        }                                                                                    \
    } while (0)

/* R rows (1, 2 or 4) of Q4_K against one Q8_K row: s[i] for i < nrx (rows past nrx - 1
 * repeat it and are not stored), four streams a step (MV_STREAMS). A step's float part runs
 * after the next step's integer part (at the AVX-512 level its transpose-add too), whose
 * independent work then hides its latency. With R > 1 the rows are read interleaved, which
 * the hardware prefetchers do not follow: the blocks two groups of R rows ahead go to L2,
 * spread over the steps. */
FQ_AI void q4_K_mv(int64_t nb, float *s, const char *vx, size_t bx, int nrx, const fq_block_q8_K *y,
                   const int R) {
    const int G = 4 / R;
    static const int at[4] = {0, 4, 2, 6}; /* lane of t for stream i */
    const fq_block_q4_K *xr[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) xr[i] = (const fq_block_q4_K *)(vx + (size_t)FQ_MIN(i, nrx - 1) * bx);
    uintptr_t pf = (uintptr_t)vx + (uintptr_t)2 * R * bx; /* an address: may lie past the weights */
    __m256 sumv = _mm256_setzero_ps(); /* R = 4: row i in lane at[i] */
    __m128 sum4 = _mm_setzero_ps();    /* R < 4: see q4_K_mv_float */
    __m256i pint[4];                   /* the previous step's integer parts and (d, dmin) */
    __m256 pc = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) pint[i] = _mm256_setzero_si256();
    int pm = 0;
#if FQ_VNNI
#define MV_TREE(part) q4_K_mv_tree(part)
#else
#define MV_TREE(part) (part)[0] /* hsum8x8_tile's, done at once (16 registers) */
#endif
    for (int64_t b = 0; b < nb; b += G) {
        const int m = (int)FQ_MIN(G, nb - b);
        const fq_block_q4_K *xb[4];
        const fq_block_q8_K *yb[4];
        if (R > 1) pf = fq__prefetch_l2(pf, 4 * sizeof(fq_block_q4_K)); /* a step reads 4 blocks */
        MV_STREAMS(xb, yb, xr, y, b, m, G);
        __m256i part[4];
        __m128i dd;
#if FQ_VNNI
        q4_K_mv_ints(xb, yb, G, &dd, part);
#else
        __m256i v[8];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) q4_K_ints(xb[i], yb[i], &v[at[i]], &v[at[i] + 1]);
        dd = _mm_unpacklo_epi64(_mm_unpacklo_epi32(load32_si128(&xb[0]->d), load32_si128(&xb[2]->d)),
                                _mm_unpacklo_epi32(load32_si128(&xb[1]->d), load32_si128(&xb[3]->d)));
        part[0] = hsum8x8_tile(v);
        part[1] = part[2] = part[3] = _mm256_setzero_si256();
#endif
        if (pm) q4_K_mv_float(MV_TREE(pint), pc, pm, R, &sumv, &sum4);
        /* y.d of streams 0, 2, 1, 3, twice each */
        const __m256 yd = G == 1 ? _mm256_set1_ps(yb[0]->d)
                        : G == 2 ? _mm256_setr_ps(yb[0]->d, yb[0]->d, yb[0]->d, yb[0]->d, yb[1]->d, yb[1]->d, yb[1]->d, yb[1]->d)
                                 : _mm256_setr_ps(yb[0]->d, yb[0]->d, yb[2]->d, yb[2]->d, yb[1]->d, yb[1]->d, yb[3]->d, yb[3]->d);
        pc = _mm256_mul_ps(_mm256_cvtph_ps(dd), yd);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) pint[i] = part[i];
        pm = m;
    }
    if (pm) q4_K_mv_float(MV_TREE(pint), pc, pm, R, &sumv, &sum4);
#undef MV_TREE
    if (R == 4) {
        float o[8];
        _mm256_storeu_ps(o, sumv);
        for (int i = 0; i < nrx; i++) s[i] = o[at[i]];
    } else {
        float o[4];
        _mm_storeu_ps(o, sum4);
        for (int i = 0; i < nrx; i++) s[i] = o[2 * i];
    }
}

/* Q6_K: the levels (stored + 32, 0..63) of 128 values, four vectors of 32: ql l0, l1 (low
 * nibbles, then high nibbles) and qh hb (2 bits each, 4 groups) */
FQ_AI void q6_K_unpack(const uint8_t *ql, const uint8_t *qh, __m256i u[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
    __asm__("" : "+x"(l0), "+x"(l1), "+x"(hb)); /* one load each */
#if defined(__AVX512VL__)
    /* (m4 & l) | (h & m30): one vpternlogd each, into the register of m4 & l (0xF8: a | b & c) */
    u[0] = _mm256_ternarylogic_epi32(_mm256_and_si256(l0, m4), _mm256_slli_epi16(hb, 4), m30, 0xF8);
    u[1] = _mm256_ternarylogic_epi32(_mm256_and_si256(l1, m4), _mm256_slli_epi16(hb, 2), m30, 0xF8);
    u[2] = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), hb, m30, 0xF8);
    u[3] = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_srli_epi16(hb, 2), m30, 0xF8);
#else
    u[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
    u[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
#endif
}

/* Q6_K: one super-block's isum partials (8 lanes): levels taken unsigned, then 32 * sum_j
 * sc_j * bsum_j removed (exact in int32). */
FQ_AI __m256i q6_K_lev(const fq_block_q6_K *x, const fq_block_q8_K *y) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    const __m256i bias = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y->bsums));
    __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i u[4];
        q6_K_unpack(x->ql + 64 * h, x->qh + 32 * h, u);
        const int8_t *q8 = y->qs + 128 * h;
        const __m256i half = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m256i sc = _mm256_shuffle_epi8(half, _mm256_setr_epi8(
                (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1),
                (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1),
                (char)(4 * g), (char)(4 * g + 1), (char)(4 * g), (char)(4 * g + 1), (char)(4 * g + 2), (char)(4 * g + 3),
                (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2),
                (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3),
                (char)(4 * g + 2), (char)(4 * g + 3), (char)(4 * g + 2), (char)(4 * g + 3)));
            acc[g & 1] = sub_dot(acc[g & 1], u[g], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g)), sc);
        }
    }
    return _mm256_sub_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_slli_epi32(bias, 5));
}

/* t = d * isum of a step's streams onto the rows' sums in super-block order: R >= 4: row j in
 * lane j; R = 2: rows in lanes 0 and 2, super-blocks b, b + 1 in lanes +0, +1; R = 1: lanes
 * 0..m-1 in order onto lane 0 */
FQ_AI void q6_K_mv_float(__m128i is, __m128 d, int m, const int R, __m128 *sumv) {
    const __m128 t = _mm_mul_ps(d, _mm_cvtepi32_ps(is));
    if (R >= 4) {
        *sumv = _mm_add_ps(*sumv, t);
    } else if (R == 2) {
        *sumv = _mm_add_ps(*sumv, t);
        if (m > 1) *sumv = _mm_add_ps(*sumv, _mm_movehdup_ps(t));
    } else {
        *sumv = _mm_add_ss(*sumv, t);
        if (m > 1) *sumv = _mm_add_ss(*sumv, _mm_movehdup_ps(t));
        if (m > 2) *sumv = _mm_add_ss(*sumv, _mm_movehl_ps(t, t));
        if (m > 3) *sumv = _mm_add_ss(*sumv, _mm_shuffle_ps(t, t, 3));
    }
}

/* R rows (1, 2 or 4) of Q6_K against one Q8_K row, streams as for Q4_K: one isum vector per
 * stream, transposed-added to one lane each with the float step, a step late as there; the
 * float step is the generic's (F16(x.d) * y.d) * isum per stream. */
FQ_AI void q6_K_mv(int64_t nb, float *s, const char *vx, size_t bx, int nrx, const fq_block_q8_K *y,
                   const int R) {
    const int G = 4 / R;
    const fq_block_q6_K *xr[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) xr[i] = (const fq_block_q6_K *)(vx + (size_t)FQ_MIN(i, nrx - 1) * bx);
    uintptr_t pf = (uintptr_t)vx + (uintptr_t)2 * R * bx; /* as q4_K_mv: an address, may lie past the weights */
    __m128 sumv = _mm_setzero_ps();           /* see q6_K_mv_float */
    __m256i pv[4];                            /* the previous step's isum vectors and d */
    __m128 pd = _mm_setzero_ps();
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) pv[i] = _mm256_setzero_si256();
    int pm = 0;
    for (int64_t b = 0; b < nb; b += G) {
        const int m = (int)FQ_MIN(G, nb - b);
        const fq_block_q6_K *xb[4];
        const fq_block_q8_K *yb[4];
        if (R > 1) pf = fq__prefetch_l2(pf, 4 * sizeof(fq_block_q6_K));
        MV_STREAMS(xb, yb, xr, y, b, m, G);
        __m256i v[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) v[i] = q6_K_lev(xb[i], yb[i]);
        if (pm) q6_K_mv_float(hsum4x4_tile(pv[0], pv[1], pv[2], pv[3]), pd, pm, R, &sumv);
        const __m128i h = _mm_unpacklo_epi32(_mm_cvtsi32_si128((int)(xb[0]->d | (uint32_t)xb[1]->d << 16)),
                                             _mm_cvtsi32_si128((int)(xb[2]->d | (uint32_t)xb[3]->d << 16)));
        const __m128 yd = G == 1 ? _mm_set1_ps(yb[0]->d)
                        : G == 2 ? _mm_setr_ps(yb[0]->d, yb[1]->d, yb[0]->d, yb[1]->d)
                                 : _mm_setr_ps(yb[0]->d, yb[1]->d, yb[2]->d, yb[3]->d);
        pd = _mm_mul_ps(_mm_cvtph_ps(h), yd);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) pv[i] = v[i];
        pm = m;
    }
    if (pm) q6_K_mv_float(hsum4x4_tile(pv[0], pv[1], pv[2], pv[3]), pd, pm, R, &sumv);
    float o[4];
    _mm_storeu_ps(o, sumv);
    for (int i = 0; i < nrx; i++) s[i] = o[i * G];
}

/* vec_dot: one row, four of its super-blocks a step (as fast as or faster than one) */
static void FN(dot_q4_K)(int64_t n, float *s, const void *vx, const void *vy) {
    q4_K_mv(n / FQ_QK_K, s, (const char *)vx, 0, 1, (const fq_block_q8_K *)vy, 1);
}
static void FN(dot_q6_K)(int64_t n, float *s, const void *vx, const void *vy) {
    q6_K_mv(n / FQ_QK_K, s, (const char *)vx, 0, 1, (const fq_block_q8_K *)vy, 1);
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

/* ---- rows in lanes: a super-block of 8 weight rows, transposed (both levels' kernels) --- */
/* the kernels' start: 8 row pointers (missing rows repeat the last), CY token pointers, sums 0 */
FQ_AI void rows_begin(const char *vx, size_t bx, int nrx, const char *vy, size_t by, const int CY,
                      const char *xr[8], const fq_block_q8_K *yr[16], __m256 sumf[16]) {
    for (int i = 0; i < 8; i++) xr[i] = vx + (size_t)FQ_MIN(i, nrx - 1) * bx;
#pragma GCC unroll 16
    for (int j = 0; j < CY; j++) {
        yr[j] = (const fq_block_q8_K *)(const void *)(vy + (size_t)j * by);
        sumf[j] = _mm256_setzero_ps();
    }
}
/* Q4_K: lev[s][p] lane i = dword p of sub-block s of row i (levels 0..15); sc[q] / mn[q]
 * lane i = row i's scale / min of sub-block q (int32); xd / xm the rows' d / dmin */
FQ_AI void q4_K_rows_prep(const char *const xc[8], int64_t b, __m256i lev[8][8], __m256i sc[8],
                          __m256i mn[8], __m256 *xd, __m256 *xm) {
    const fq_block_q4_K *xr[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) xr[i] = (const fq_block_q4_K *)(const void *)xc[i];
    const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m256i r[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].qs + 32 * k));
        fq__tr8x8_epi32(r);
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            lev[2 * k][p] = _mm256_and_si256(r[p], m4);
            lev[2 * k + 1][p] = _mm256_and_si256(_mm256_srli_epi16(r[p], 4), m4);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        const __m128i v = k4_scales(xr[i][b].scales);
        sc[i] = _mm256_cvtepu8_epi32(v);
        mn[i] = _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
    }
    fq__tr8x8_epi32(sc);
    fq__tr8x8_epi32(mn);
    *xd = fq__f16x8(xr[0][b].d, xr[1][b].d, xr[2][b].d, xr[3][b].d, xr[4][b].d, xr[5][b].d, xr[6][b].d, xr[7][b].d);
    *xm = fq__f16x8(xr[0][b].dmin, xr[1][b].dmin, xr[2][b].dmin, xr[3][b].dmin, xr[4][b].dmin, xr[5][b].dmin,
                    xr[6][b].dmin, xr[7][b].dmin);
}

/* Q6_K: w[v][p] lane i = dword p of values 32v.. of row i (levels stored +32, 0..63; the
 * unpacking is bytewise, so it is done after the transpose); sc[k] lane i = row i's signed
 * scale of 16-value sub-block k (int32); scw[q] lane i = its scales 2q, 2q+1 as words */
FQ_AI void q6_K_rows_prep(const char *const xc[8], int64_t b, __m256i w[8][8], __m256i sc[16],
                          __m256i scw[8], __m256 *xd) {
    const fq_block_q6_K *xr[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) xr[i] = (const fq_block_q6_K *)(const void *)xc[i];
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i l0[8], l1[8], hb[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            l0[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].ql + 64 * h));
            l1[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].ql + 64 * h + 32));
            hb[i] = _mm256_loadu_si256((const __m256i *)(xr[i][b].qh + 32 * h));
        }
        fq__tr8x8_epi32(l0);
        fq__tr8x8_epi32(l1);
        fq__tr8x8_epi32(hb);
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            w[4 * h + 0][p] = _mm256_or_si256(_mm256_and_si256(l0[p], m4), _mm256_and_si256(_mm256_slli_epi16(hb[p], 4), m30));
            w[4 * h + 1][p] = _mm256_or_si256(_mm256_and_si256(l1[p], m4), _mm256_and_si256(_mm256_slli_epi16(hb[p], 2), m30));
            w[4 * h + 2][p] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0[p], 4), m4), _mm256_and_si256(hb[p], m30));
            w[4 * h + 3][p] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1[p], 4), m4),
                                              _mm256_and_si256(_mm256_srli_epi16(hb[p], 2), m30));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        const __m128i v = _mm_loadu_si128((const __m128i *)xr[i][b].scales);
        sc[i] = _mm256_cvtepi8_epi32(v);
        sc[8 + i] = _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8));
        scw[i] = _mm256_cvtepi8_epi16(v);
    }
    fq__tr8x8_epi32(sc);
    fq__tr8x8_epi32(sc + 8);
    fq__tr8x8_epi32(scw);
    *xd = fq__f16x8(xr[0][b].d, xr[1][b].d, xr[2][b].d, xr[3][b].d, xr[4][b].d, xr[5][b].d, xr[6][b].d, xr[7][b].d);
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
    const char *xr[8];
    const fq_block_q8_K *yr[16];
    __m256 sumf[16];
    rows_begin(vx, bx, nrx, vy, by, CY, xr, yr, sumf);
    for (int64_t b = 0; b < nb; b++) {
        __m256i w[8][8], sc[8], mn[8];
        __m256 xd, xm;
        q4_K_rows_prep(xr, b, w, sc, mn, &xd, &xm);
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) mn[q] = fq__dup_lo16(mn[q]);
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
    const char *xr[8];
    const fq_block_q8_K *yr[16];
    __m256 sumf[16];
    rows_begin(vx, bx, nrx, vy, by, CY, xr, yr, sumf);
    for (int64_t b = 0; b < nb; b++) {
        __m256i w[8][8], sc[16], scw[8];
        __m256 xd;
        q6_K_rows_prep(xr, b, w, sc, scw, &xd);
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

#endif

#if !FQ_VNNI
/* ---- Q4_K at the AVX2 level: weight rows in lanes --------------------------------------- *
 * As the AVX-512 kernel above (lane i = weight row i, a super-block's levels transposed once
 * per call for all tokens, activation dwords broadcast), with maddubs for vpdpbusd. Per
 * token and sub-block s: the 8 dwords' maddubs pairs added in 16 bits (each word sums 16
 * products of a level <= 15 and a quant >= -128: |sum| <= 16 * 15 * 128 < 2^15), then one
 * madd against the words (sc, sc) gives sc * D in each row's int32 lane; isum adds the
 * eight sub-blocks, summs = sum over q of mn[q] * (bsum[2q] + bsum[2q+1]) by madd against
 * the bsums dword. All exact in int32, so any order; the float step is the generic's, one
 * row per lane. The sub-block loop is outside the token loop, so its 8 level vectors stay
 * in registers for all tokens and each token's isum waits in memory. */
FQ_AI void q4_K_rows(int64_t nb, float *s, size_t bs, const char *vx, size_t bx, int nrx,
                     const char *vy, size_t by, const int CY) {
    const char *xr[8];
    const fq_block_q8_K *yr[16];
    __m256 sumf[16];
    rows_begin(vx, bx, nrx, vy, by, CY, xr, yr, sumf);
    for (int64_t b = 0; b < nb; b++) {
        __m256i lev[8][8], sc[8], mn[8];
        __m256 xd, xm;
        q4_K_rows_prep(xr, b, lev, sc, mn, &xd, &xm);
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) { /* words (v, v) in each lane */
            sc[q] = fq__dup_lo16(sc[q]);
            mn[q] = fq__dup_lo16(mn[q]);
        }
        __m256i isum[16];
#pragma GCC unroll 1
        for (int sb = 0; sb < 8; sb++) {
            __m256i w[8];
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) w[p] = lev[sb][p];
            const __m256i scs = sc[sb];
#pragma GCC unroll 1
            for (int j = 0; j < CY; j++) {
                const int8_t *y = yr[j][b].qs + 32 * sb;
                __m256i m[8];
#pragma GCC unroll 8
                for (int p = 0; p < 8; p++) m[p] = _mm256_maddubs_epi16(w[p], fq__bcast_dw(y + 4 * p));
                const __m256i s16 = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(m[0], m[1]), _mm256_add_epi16(m[2], m[3])),
                                                     _mm256_add_epi16(_mm256_add_epi16(m[4], m[5]), _mm256_add_epi16(m[6], m[7])));
                const __m256i d = _mm256_madd_epi16(s16, scs);
                isum[j] = sb ? _mm256_add_epi32(isum[j], d) : d;
            }
        }
#pragma GCC unroll 1
        for (int j = 0; j < CY; j++) {
            __m256i t8[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) t8[q] = _mm256_madd_epi16(mn[q], fq__bcast_dw(&yr[j][b].bsums[2 * q]));
            const __m256i sm = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(t8[0], t8[1]), _mm256_add_epi32(t8[2], t8[3])),
                                                _mm256_add_epi32(_mm256_add_epi32(t8[4], t8[5]), _mm256_add_epi32(t8[6], t8[7])));
            const __m256 yd = _mm256_set1_ps(yr[j][b].d);
            const __m256 d = _mm256_mul_ps(xd, yd), dmin = _mm256_mul_ps(xm, yd);
            const __m256 t = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(isum[j])),
                                           _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(sm)));
            sumf[j] = _mm256_add_ps(sumf[j], t);
        }
    }
    fq__store_rows(s, bs, sumf, CY, nrx);
}

/* Q6_K at the AVX2 level, rows in lanes: levels (stored +32, 0..63) transposed as in the
 * AVX-512 kernel; a 32-value group is two sub-blocks of 4 dwords. Two maddubs add in 16
 * bits (each word then sums 4 products: |sum| <= 4 * 63 * 128 < 2^15), so a sub-block
 * takes two madds against the words (sc, sc) (sc signed); isum = sum sc * D - 32 * sum sc *
 * bsum (madd of the scale words against the bsums dwords), exact in int32. */
FQ_AI void q6_K_rows(int64_t nb, float *s, size_t bs, const char *vx, size_t bx, int nrx,
                     const char *vy, size_t by, const int CY) {
    const char *xr[8];
    const fq_block_q8_K *yr[16];
    __m256 sumf[16];
    rows_begin(vx, bx, nrx, vy, by, CY, xr, yr, sumf);
    for (int64_t b = 0; b < nb; b++) {
        __m256i w[8][8], sc[16], scw[8];
        __m256 xd;
        q6_K_rows_prep(xr, b, w, sc, scw, &xd);
#pragma GCC unroll 16
        for (int q = 0; q < 16; q++) sc[q] = fq__dup_lo16(sc[q]); /* words (sc, sc), sc signed */
        __m256i isum[16];
#pragma GCC unroll 1
        for (int v = 0; v < 8; v++) {
            __m256i wv[8];
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) wv[p] = w[v][p];
            const __m256i s0 = sc[2 * v], s1 = sc[2 * v + 1];
#pragma GCC unroll 1
            for (int j = 0; j < CY; j++) {
                const int8_t *y = yr[j][b].qs + 32 * v;
                __m256i m[8];
#pragma GCC unroll 8
                for (int p = 0; p < 8; p++) m[p] = _mm256_maddubs_epi16(wv[p], fq__bcast_dw(y + 4 * p));
                const __m256i d = _mm256_add_epi32(
                    _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(m[0], m[1]), s0),
                                     _mm256_madd_epi16(_mm256_add_epi16(m[2], m[3]), s0)),
                    _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(m[4], m[5]), s1),
                                     _mm256_madd_epi16(_mm256_add_epi16(m[6], m[7]), s1)));
                isum[j] = v ? _mm256_add_epi32(isum[j], d) : d;
            }
        }
#pragma GCC unroll 1
        for (int j = 0; j < CY; j++) {
            __m256i t8[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) t8[q] = _mm256_madd_epi16(scw[q], fq__bcast_dw(&yr[j][b].bsums[2 * q]));
            const __m256i bias = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(t8[0], t8[1]), _mm256_add_epi32(t8[2], t8[3])),
                                                  _mm256_add_epi32(_mm256_add_epi32(t8[4], t8[5]), _mm256_add_epi32(t8[6], t8[7])));
            const __m256i is = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(bias, 5));
            const __m256 d = _mm256_mul_ps(xd, _mm256_set1_ps(yr[j][b].d));
            sumf[j] = _mm256_add_ps(sumf[j], _mm256_mul_ps(d, _mm256_cvtepi32_ps(is)));
        }
    }
    fq__store_rows(s, bs, sumf, CY, nrx);
}
#endif

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

/* the decode path (vec_dot_mn with nry = 1): groups of 4 rows, the last by the kernel of
 * its size (mv_x: 4 measured faster than 2 at both levels, and than 8 by two quads) */
#define MV_INST(t, R)                                                                       \
    static void FN(mv_##t##_##R)(int64_t nb, float *s, const char *x, size_t bx, int nrx,  \
                                 const void *y) {                                           \
        t##_mv(nb, s, x, bx, nrx, y, R);                                                    \
    }
#define MV_TYPE(t)                                                                          \
    MV_INST(t, 1) MV_INST(t, 2) MV_INST(t, 4)                                               \
    static void FN(mv_##t)(int64_t nb, float *s, const char *x, size_t bx, int nrx,         \
                           const void *y) {                                                 \
        for (int i0 = 0; i0 < nrx; i0 += 4) {                                               \
            const int rx = FQ_MIN(4, nrx - i0); /* 3 rows: the 4-row kernel, one row again */  \
            (rx >= 3 ? FN(mv_##t##_4) : rx == 2 ? FN(mv_##t##_2) : FN(mv_##t##_1))(          \
                nb, s + i0, x + (size_t)i0 * bx, bx, rx, y);                                \
        }                                                                                   \
    }

/* vec_dot_mn over tiles; vec_dot_n is the one-row case (s[k*bs] for token k) */
#define TILE_ENTRY(t)                                                                       \
    TILE_TYPE(t)                                                                            \
    MV_TYPE(t)                                                                              \
    static void FN(dotmn_##t)(int64_t n, float *s, size_t bs, const void *x, size_t bx,     \
                              int nrx, const void *y, size_t by, int nry) {                 \
        const int64_t nb = n / FQ_QK_K;                                                     \
        if (nrx == 1 && nry == 1) {                                                         \
            FN(dot_##t)(n, s, x, y);                                                        \
            return;                                                                         \
        }                                                                                   \
        if (nry == 1) {                                                                     \
            FN(mv_##t)(nb, s, (const char *)x, bx, nrx, y);                                 \
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
/* the rows-in-lanes kernels, for tiles of 4 rows or more */
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
    k->mv_x[FQ_TYPE_Q4_K] = k->mv_x[FQ_TYPE_Q6_K] = 4; /* rows per decode call: MV_TYPE */
    k->mn_x[FQ_TYPE_Q4_K] = k->mn_x[FQ_TYPE_Q6_K] = 8; /* one row per lane */
    k->mn_y[FQ_TYPE_Q4_K] = k->mn_y[FQ_TYPE_Q6_K] = 16; /* the transposed weights serve 16 tokens */
}
