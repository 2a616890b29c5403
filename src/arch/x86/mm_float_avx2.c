/* mm_float_avx2.c - register tiles of the float weight types in the default mode: F16 x F16,
 * BF16 x BF16 and F32 x F32 (fused), several weight rows x several tokens per call
 * (vec_dot_mn; the decode path is its one-token case). Compiled with -mavx2 -mfma -mf16c;
 * mm_float_avx512.c includes it again with AVX-512 on, where the same code has 32 ymm
 * registers and so takes larger tiles.
 *
 * Same bits as the generic dots (quants.c fq_vec_dot_{f16_f16,bf16_bf16,f32_f32}), by keeping
 * each output's arithmetic as it is there, whatever the tile:
 *  - 8 lanes per output; lane l accumulates the products of elements l, l + 8, l + 16, ...
 *    in that order, starting from +0;
 *  - F16/BF16: the product rounded to F32, then added (never fused; -std=c11 keeps GCC from
 *    contracting the scalar tail); F16 -> F32 (F16C) and BF16 -> F32 (a shift) are exact;
 *  - F32: one fused multiply-add per element (fmaf in the generic), operands in the order
 *    of the existing single-row kernel (x, y, acc);
 *  - the n % 8 tail elements go, after the full chunks, into lane i & 7 as the generic does;
 *  - the 8 lanes are summed by fq__hsum8 itself.
 * Tiling only decides which outputs share a load; no output's sum is split or reordered.
 * Where two NaNs with different payloads meet in one sum, the surviving payload depends on
 * the operand order the compiler gave that add, here and in the generic kernel alike (the
 * single-row SIMD dots differ from the generic there already); everything else, Inf and
 * NaN included, is the same bits. AVX-512-BF16's vdpbf16ps is not used: it sums the two products of a pair with one rounding
 * (and flushes denormals), which is not the generic's arithmetic. */
#include "qtypes.h"

#include <immintrin.h>

#ifndef FQ_X86_SUFFIX
#define FQ_X86_SUFFIX avx2
#endif
#define FQ_X86_CAT2(a, b) a##_##b
#define FQ_X86_CAT(a, b) FQ_X86_CAT2(a, b)
#define FN(name) FQ_X86_CAT(name, FQ_X86_SUFFIX)

#define FQ_AI static inline __attribute__((always_inline))

/* the kinds of dot: weights x activations. K_F16X / K_BF16X / K_F32X: the --exact mode's
 * F16 / BF16 / F32 weights against plain F32 activations, products rounded, then added
 * (fq__dot_decoded; only K_F32, the default mode's F32 dot, fuses) */
enum { K_F32, K_F16, K_BF16, K_F16X, K_BF16X, K_F32X, K_F16F, K_BF16F };
/* K_F16F: F16 weights against F16 values decoded to F32 (the default mode's prompts, act_dec):
 * the product of two F16 values is exact in F32 (11 x 11 significand bits, exponents well
 * inside F32's range), so rounding it and then adding equals one fused multiply-add, bit for
 * bit, and the fused form leaves the add ports to the conversions.
 * K_BF16F: the same for BF16 weights against decoded BF16 values, which the caller may use
 * only where every product is exact (fq__bf16_fused_ok; BF16 has F32's exponent range, so a
 * product can overflow or fall below the denormals); the tail elements take the generic's
 * unfused expression */
FQ_AI int w_kind(int kind) {
    return kind == K_F16X || kind == K_F16F ? K_F16
           : kind == K_BF16X || kind == K_BF16F ? K_BF16
           : kind == K_F32X ? K_F32
                            : kind;
}
FQ_AI int a_kind(int kind) { return kind >= K_F16X ? K_F32 : kind; }
FQ_AI size_t e_size(int k) { return k == K_F32 ? 4 : 2; } /* bytes of a w_kind / a_kind element */

FQ_AI float elem(const char *p, int64_t i, int k) { /* element i as F32, exactly */
    if (k == K_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return k == K_F16 ? fq__h2f(h) : fq__bf2f(h);
}

/* one output's scalar step for tail element i: the generic's expression */
FQ_AI float tail_step(float acc, const char *x, const char *y, int64_t i, int kind) {
    const float a = elem(x, i, w_kind(kind)), b = elem(y, i, a_kind(kind));
    if (kind == K_F32) return fmaf(a, b, acc);
    return acc + a * b;
}

/* lanes l[0..7] of one output, plus its tail elements k..n-1, summed to s (out of line:
 * once per output, and the tiles stay small) */
static __attribute__((noinline)) void finish8(float *s, float l[8], const char *x, const char *y,
                                              int64_t k, int64_t n, int kind) {
    switch (kind) {
#define FIN(K) case K: for (int64_t i = k; i < n; i++) l[i & 7] = tail_step(l[i & 7], x, y, i, K); break;
        FIN(K_F32) FIN(K_F16) FIN(K_BF16) FIN(K_F16X) FIN(K_BF16X) FIN(K_F32X) FIN(K_F16F) FIN(K_BF16F)
#undef FIN
    }
    *s = fq__hsum8(l);
}

/* fq__hsum8 of the 8 lanes, the same adds in the same order:
 * ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) */
FQ_AI float hsum8v(__m256 v) {
    const __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* l_i + l_i+4 */
    const __m128 b = _mm_add_ps(a, _mm_movehl_ps(a, a));                                   /* a0 + a2, a1 + a3 */
    return _mm_cvtss_f32(_mm_add_ss(b, _mm_movehdup_ps(b)));                               /* b0 + b1 */
}

/* ---- one output per ymm --------------------------------------------------------------- */

#define TMAX 6
FQ_AI __m256 ld8(const char *p, int kind) {
    if (kind == K_F32) return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (kind == K_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
FQ_AI __m256 step(__m256 acc, __m256 w, __m256 a, int kind) {
    if (kind == K_F32 || kind == K_F16F || kind == K_BF16F) return _mm256_fmadd_ps(w, a, acc);
    return _mm256_add_ps(acc, _mm256_mul_ps(w, a));
}

/* RX rows (1..8) x TY tokens (1..TMAX): the tokens' 8 elements converted once per step,
 * each row's once, then RX * TY products */
FQ_AI void tile(int64_t n, float *s, size_t bs, const char *x, size_t bx, const char *y, size_t by,
                const int RX, const int TY, const int kind) {
    const size_t ew = e_size(w_kind(kind)), ea = e_size(a_kind(kind));
    __m256 acc[8][TMAX];
#pragma GCC unroll 8
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 6
        for (int j = 0; j < TY; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    if (kind >= K_F16X && RX <= 4) {
        /* F32 tokens: the rows converted first, then each token loaded once into a register
         * for all RX rows (2 x 6 at AVX2: 12 accumulators + 2 rows + a token + a product) */
        for (; k + 8 <= n; k += 8) {
            __m256 w[4];
#pragma GCC unroll 4
            for (int i = 0; i < RX; i++) w[i] = ld8(x + (size_t)i * bx + (size_t)k * ew, w_kind(kind));
#pragma GCC unroll 6
            for (int j = 0; j < TY; j++) {
                const __m256 a = _mm256_loadu_ps((const float *)(const void *)(y + (size_t)j * by) + k);
#pragma GCC unroll 4
                for (int i = 0; i < RX; i++) acc[i][j] = step(acc[i][j], w[i], a, kind);
            }
        }
    }
    /* decode (one token, RX > 4): the next RX rows (the caller's next group: rows lie bx apart)
     * are prefetched into L2 at the pace this group is read, in address order, so memory sees
     * one sequential stream instead of RX streams a row apart (tools/decode_pattern.c) */
    uintptr_t pf = (uintptr_t)x + (uintptr_t)RX * bx; /* an address only: may lie past the weights */
    for (; k + 8 <= n; k += 8) {
        __m256 a[TMAX];
        if (TY == 1 && RX > 4) pf = fq__prefetch_l2(pf, (size_t)RX * 8 * ew);
#pragma GCC unroll 6
        for (int j = 0; j < TY; j++) a[j] = ld8(y + (size_t)j * by + (size_t)k * ea, a_kind(kind));
#pragma GCC unroll 8
        for (int i = 0; i < RX; i++) {
            const __m256 w = ld8(x + (size_t)i * bx + (size_t)k * ew, w_kind(kind));
#pragma GCC unroll 6
            for (int j = 0; j < TY; j++) acc[i][j] = step(acc[i][j], w, a[j], kind);
        }
    }
    if (k == n) { /* no tail: the lanes summed in registers */
#pragma GCC unroll 8
        for (int i = 0; i < RX; i++)
#pragma GCC unroll 6
            for (int j = 0; j < TY; j++) s[(size_t)j * bs + i] = hsum8v(acc[i][j]);
        return;
    }
#pragma GCC unroll 8
    for (int i = 0; i < RX; i++) {
#pragma GCC unroll 6
        for (int j = 0; j < TY; j++) {
            float l[8];
            _mm256_storeu_ps(l, acc[i][j]);
            finish8(s + (size_t)j * bs + i, l, x + (size_t)i * bx, y + (size_t)j * by, k, n, kind);
        }
    }
}

#if !defined(__AVX512F__)
/* ---- AVX2 prompt tiles on converted activations (F16, BF16) ---------------------------
 * The tokens of a call are converted to F32 once, KC elements at a time, into a stack panel,
 * and every row of the call runs against the panel: the conversion of a token's elements is
 * shared by all nrx rows (up to 8) instead of the few of one register tile, and the tiles
 * read activations as plain loads. Each output keeps its 8 lanes in acc[][] between panels
 * (stored and reloaded exactly), so its sum runs through the elements in order as before.
 * With 16 registers this beats the register tiles alone (Zen 4: F16 +7%, BF16 +20%); at the
 * AVX-512 level the 32 registers hold 4 x 4 tiles, which ran as fast without the panel. */

#define KC 256 /* elements per panel: 16 tokens x 256 x 4 bytes = 16 KiB */

/* RX rows x TY tokens over kc elements of the panel (TY rows of KC floats) */
FQ_AI void ptile(const char *x, size_t bx, const float *panel, __m256 *acc, int64_t kc, const int RX,
                 const int TY, const int kind) {
    __m256 c[4][8];
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 8
        for (int j = 0; j < TY; j++) c[i][j] = acc[i * FQ_DOT_NY + j];
    for (int64_t k = 0; k < kc; k += 8) {
        __m256 a[8];
#pragma GCC unroll 8
        for (int j = 0; j < TY; j++) a[j] = _mm256_load_ps(panel + (size_t)j * KC + k);
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            const __m256 w = ld8(x + (size_t)i * bx + (size_t)k * 2, kind);
#pragma GCC unroll 8
            for (int j = 0; j < TY; j++) c[i][j] = step(c[i][j], w, a[j], kind);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 8
        for (int j = 0; j < TY; j++) acc[i * FQ_DOT_NY + j] = c[i][j];
}

typedef void (*ptile_fn)(const char *x, size_t bx, const float *panel, __m256 *acc, int64_t kc);

/* the whole call: panels of KC elements, tiles of BR rows x BT tokens on each */
FQ_AI void mm_panel(int64_t n, float *s, size_t bs, const char *x, size_t bx, int nrx, const char *y,
                    size_t by, int nry, const int kind, const int BR, const int BT,
                    const ptile_fn *tiles /* [BR][BT] */) {
    _Alignas(32) float panel[FQ_DOT_NY * KC];
    __m256 acc[FQ_DOT_MX * FQ_DOT_NY];
    for (int i = 0; i < nrx; i++)
        for (int j = 0; j < nry; j++) acc[i * FQ_DOT_NY + j] = _mm256_setzero_ps();
    const int64_t nfull = n & ~(int64_t)7;
    for (int64_t k0 = 0; k0 < nfull; k0 += KC) {
        const int64_t kc = FQ_MIN(KC, nfull - k0);
        for (int j = 0; j < nry; j++) {
            const char *yj = y + (size_t)j * by + (size_t)k0 * 2;
            for (int64_t k = 0; k < kc; k += 8) _mm256_store_ps(panel + (size_t)j * KC + k, ld8(yj + 2 * k, kind));
        }
        for (int i0 = 0; i0 < nrx; i0 += BR)
            for (int j0 = 0; j0 < nry; j0 += BT)
                tiles[(FQ_MIN(BR, nrx - i0) - 1) * BT + FQ_MIN(BT, nry - j0) - 1](
                    x + (size_t)i0 * bx + (size_t)k0 * 2, bx, panel + (size_t)j0 * KC, &acc[i0 * FQ_DOT_NY + j0], kc);
    }
    for (int i = 0; i < nrx; i++) {
        for (int j = 0; j < nry; j++) {
            float l[8];
            _mm256_storeu_ps(l, acc[i * FQ_DOT_NY + j]);
            finish8(s + (size_t)j * bs + i, l, x + (size_t)i * bx, y + (size_t)j * by, nfull, n, kind);
        }
    }
}
#endif

/* per kind: prompt tiles PP_RX x PP_TY, decode groups of MV_RX rows. AVX2 (16 registers):
 * 4 x 3 is 12 accumulators + 3 tokens + a row + one product, one accumulator spilled; F16
 * runs best at 4 x 2, where the conversions weigh more. AVX-512 (the same code on 32 ymm
 * registers): 4 x 4, BF16 4 x 5. Measured on Zen 4 (notes/kf.md); two rows per zmm (Zen 4
 * splits zmm into two halves) ran slower than these. */
#if defined(__AVX512F__)
#define SHAPE_f32 4, 4, 8
#define SHAPE_f16 4, 4, 8
#define SHAPE_bf16 4, 5, 8
#else
#define SHAPE_f32 4, 3, 8
#define SHAPE_f16 4, 2, 8
#define SHAPE_bf16 4, 3, 8
#endif

/* ---- instances and the vec_dot_mn entries ------------------------------------------- */

typedef void (*tile_fn)(int64_t n, float *s, size_t bs, const char *x, size_t bx, const char *y,
                        size_t by);

#define T_INST(kn, K, R, T)                                                                   \
    static void FN(t_##kn##_##R##_##T)(int64_t n, float *s, size_t bs, const char *x, size_t bx, \
                                       const char *y, size_t by) {                            \
        tile(n, s, bs, x, bx, y, by, R, T, K);                                                \
    }
/* rows 1..4 take 1..TMAX tokens (prompt tiles), rows 5..8 one token (decode groups) */
#define T_ROW(kn, K, R) T_INST(kn, K, R, 1) T_INST(kn, K, R, 2) T_INST(kn, K, R, 3) T_INST(kn, K, R, 4) \
    T_INST(kn, K, R, 5) T_INST(kn, K, R, 6)
#define T_PTRS(kn, R) {FN(t_##kn##_##R##_1), FN(t_##kn##_##R##_2), FN(t_##kn##_##R##_3), \
                       FN(t_##kn##_##R##_4), FN(t_##kn##_##R##_5), FN(t_##kn##_##R##_6)}
#define T_PTRS1(kn, R) {FN(t_##kn##_##R##_1), NULL, NULL, NULL, NULL, NULL}

/* blocks of PP_RX rows x PP_TY tokens (MV_RX rows for one token), the edges by the kernel of
 * their size */
#define MM_KIND(kn, K) MM_KIND_(kn, K, SHAPE_##kn)
#define MM_KIND_(kn, K, ...) MM_KIND__(kn, K, __VA_ARGS__)
#define MM_KIND__(kn, K, PP_RX, PP_TY, MV_RX)                                                 \
    _Static_assert(PP_TY <= TMAX && PP_RX <= 4 && MV_RX <= 8, "tile shape");                  \
    T_ROW(kn, K, 1) T_ROW(kn, K, 2) T_ROW(kn, K, 3) T_ROW(kn, K, 4)                           \
    T_INST(kn, K, 5, 1) T_INST(kn, K, 6, 1) T_INST(kn, K, 7, 1) T_INST(kn, K, 8, 1)           \
    static const tile_fn FN(tiles_##kn)[8][TMAX] = {T_PTRS(kn, 1), T_PTRS(kn, 2), T_PTRS(kn, 3),  \
                                                 T_PTRS(kn, 4), T_PTRS1(kn, 5), T_PTRS1(kn, 6),  \
                                                 T_PTRS1(kn, 7), T_PTRS1(kn, 8)};                \
    static void FN(mm_##kn)(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx, \
                            const void *y, size_t by, int nry) {                              \
        const int rb = nry == 1 ? MV_RX : PP_RX;                                              \
        for (int i0 = 0; i0 < nrx; i0 += rb) {                                                \
            const int rx = FQ_MIN(rb, nrx - i0);                                              \
            for (int j0 = 0; j0 < nry; j0 += PP_TY)                                           \
                FN(tiles_##kn)[rx - 1][FQ_MIN(PP_TY, nry - j0) - 1](                          \
                    n, s + (size_t)j0 * bs + i0, bs, (const char *)x + (size_t)i0 * bx, bx,    \
                    (const char *)y + (size_t)j0 * by, by);                                   \
        }                                                                                     \
    }                                                                                         \
    static void FN(dotn_##kn)(int64_t n, float *s, size_t bs, const void *x, const void *y,    \
                              size_t by, int nrc) {                                           \
        FN(mm_##kn)(n, s, bs, x, 0, 1, y, by, nrc);                                           \
    }                                                                                         \
    static void FN(fill_##kn)(fq__isa_kernels *k, int t) {                                    \
        k->vec_dot_mn[t] = FN(mm_##kn);                                                       \
        k->vec_dot_n[t] = FN(dotn_##kn);                                                      \
        k->mn_x[t] = PP_RX;                                                                   \
        k->mn_y[t] = PP_TY;                                                                   \
        k->mv_x[t] = MV_RX;                                                                   \
    }

MM_KIND(f32, K_F32)
MM_KIND(f16, K_F16)
MM_KIND(bf16, K_BF16)

/* vec_dot_f32_mn: F16 / BF16 / F32 rows against F32 tokens (--exact mode, and the default
 * mode's BF16 prompts on their decoded activations, act_dec; F16's take vec_dot_dec_mn, the
 * fused K_F16F below), tiles of XR x XT
 * (AVX2: 2 x 6 = 12 accumulators + 2 rows + a token + a product, 16 registers; AVX-512:
 * 4 x 5, BF16's call shape). The tokens need no conversion, so no panel. The backend calls
 * it with the default mode's mn_x x mn_y. Zen 4, 1 thread, F16 / BF16 (loaded machine):
 * AVX2 (8 x 16 calls) 2 x 6 38.5 / 35.3 GMAC/s, 2 x 4 37.1 / 33.7, 3 x 4 38.1 / 34.0,
 * 1 x 6 24.5 / 24.5; AVX-512 (4 x 4, 4 x 5 calls) 4 x 5 39.2 / 34.9, 4 x 4 39.1 / 29.3. */
#ifndef XSHAPE
#if defined(__AVX512F__)
#define XSHAPE 4, 5
#else
#define XSHAPE 2, 6
#endif
#endif
/* F32 weights (--exact only) come in the default F32 tile's calls, 4 x 3 at AVX2: 4 x 3
 * tiles (12 accumulators + 3 tokens + a row + a product, one spilled) ran 30.7 GMAC/s there
 * against 23.0 for the 2 x 3 that 2 x 6 gives */
#if defined(__AVX512F__)
#define XSHAPE_f32x XSHAPE
#else
#define XSHAPE_f32x 4, 3
#endif
#define XSHAPE_f16x XSHAPE
#define XSHAPE_bf16x XSHAPE
/* K_F16F, fused: AVX2 3 x 4 (12 accumulators + 3 rows + a token) 50.5 GMAC/s against 43.6 at
 * 2 x 6 and 19.8 at 4 x 3 (spills); AVX-512 4 x 4 56.1 */
#if defined(__AVX512F__)
#define XSHAPE_f16f XSHAPE
#else
#define XSHAPE_f16f 3, 4
#endif
/* K_BF16F: the same shapes (AVX2, TinyLlama BF16 pp512, 2 threads: 3 x 4 67.4 / 73.1 tok/s
 * against 52.0 / 55.8 at 2 x 6) */
#ifndef XSHAPE_bf16f
#define XSHAPE_bf16f XSHAPE_f16f
#endif
#define MMX_KIND(kn, K) MMX_KIND_(kn, K, XSHAPE_##kn)
#define MMX_KIND_(kn, K, ...) MMX_KIND__(kn, K, __VA_ARGS__)
#define MMX_KIND__(kn, K, XR, XT)                                                             \
    T_ROW(kn, K, 1) T_ROW(kn, K, 2) T_ROW(kn, K, 3) T_ROW(kn, K, 4)                           \
    static const tile_fn FN(tiles_##kn)[4][TMAX] = {T_PTRS(kn, 1), T_PTRS(kn, 2), T_PTRS(kn, 3),  \
                                                 T_PTRS(kn, 4)};                              \
    static void FN(mmx_##kn)(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx, \
                             const float *y, size_t by, int nry) {                            \
        for (int i0 = 0; i0 < nrx; i0 += XR) {                                                \
            const int rx = FQ_MIN(XR, nrx - i0);                                              \
            for (int j0 = 0; j0 < nry; j0 += XT)                                              \
                FN(tiles_##kn)[rx - 1][FQ_MIN(XT, nry - j0) - 1](                             \
                    n, s + (size_t)j0 * bs + i0, bs, (const char *)x + (size_t)i0 * bx, bx,    \
                    (const char *)y + (size_t)j0 * by, by);                                   \
        }                                                                                     \
    }
MMX_KIND(f16x, K_F16X)
MMX_KIND(bf16x, K_BF16X)
MMX_KIND(f32x, K_F32X)
MMX_KIND(f16f, K_F16F)
MMX_KIND(bf16f, K_BF16F)

#if !defined(__AVX512F__)
/* F16 / BF16: the panel kernel for prompts (BR x BT tiles, calls of MNX rows x MNY tokens),
 * the register tiles above for decode */
#define P_INST(kn, K, R, T)                                                                   \
    static void FN(p_##kn##_##R##_##T)(const char *x, size_t bx, const float *panel, __m256 *acc, \
                                       int64_t kc) {                                          \
        ptile(x, bx, panel, acc, kc, R, T, K);                                                \
    }
#define P_ROW(kn, K, R) P_INST(kn, K, R, 1) P_INST(kn, K, R, 2) P_INST(kn, K, R, 3) P_INST(kn, K, R, 4) \
    P_INST(kn, K, R, 5) P_INST(kn, K, R, 6) P_INST(kn, K, R, 7) P_INST(kn, K, R, 8)
#define P_PTRS(kn, R) FN(p_##kn##_##R##_1), FN(p_##kn##_##R##_2), FN(p_##kn##_##R##_3), \
    FN(p_##kn##_##R##_4), FN(p_##kn##_##R##_5), FN(p_##kn##_##R##_6), FN(p_##kn##_##R##_7), FN(p_##kn##_##R##_8)
#define MMP_KIND(kn, K) MMP_KIND_(kn, K, PSHAPE_##kn)
#define MMP_KIND_(kn, K, ...) MMP_KIND__(kn, K, __VA_ARGS__)
#define MMP_KIND__(kn, K, BR, BT, MNX, MNY)                                                   \
    _Static_assert(BR <= 4 && BT <= 8 && MNX <= FQ_DOT_MX && MNY <= FQ_DOT_NY, "panel shape");  \
    P_ROW(kn, K, 1) P_ROW(kn, K, 2) P_ROW(kn, K, 3) P_ROW(kn, K, 4)                           \
    static const ptile_fn FN(ptiles_##kn)[4 * 8] = {P_PTRS(kn, 1), P_PTRS(kn, 2), P_PTRS(kn, 3), \
                                                    P_PTRS(kn, 4)};                           \
    static void FN(mmp_##kn)(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx, \
                             const void *y, size_t by, int nry) {                             \
        if (nry == 1) {                                                                       \
            FN(mm_##kn)(n, s, bs, x, bx, nrx, y, by, 1);                                      \
            return;                                                                           \
        }                                                                                     \
        /* the table is [4][8]; BR x BT tiles index it as [BR][BT] through a copy */          \
        ptile_fn tab[BR * BT];                                                                \
        for (int r = 0; r < BR; r++)                                                          \
            for (int t = 0; t < BT; t++) tab[r * BT + t] = FN(ptiles_##kn)[r * 8 + t];        \
        mm_panel(n, s, bs, x, bx, nrx, y, by, nry, K, BR, BT, tab);                           \
    }                                                                                         \
    static void FN(fillp_##kn)(fq__isa_kernels *k, int t) {                                   \
        k->vec_dot_mn[t] = FN(mmp_##kn);                                                      \
        k->mn_x[t] = MNX;                                                                     \
        k->mn_y[t] = MNY;                                                                     \
    }

/* one row x 8 tokens per tile (the tokens come from L1; one conversion per row step), calls
 * of 8 rows x 16 tokens (the panel of all 16 is 16 KiB) */
#ifndef PSHAPE_f16
#define PSHAPE_f16 1, 8, 8, 16
#endif
#ifndef PSHAPE_bf16
#define PSHAPE_bf16 1, 8, 8, 16
#endif
MMP_KIND(f16, K_F16)
MMP_KIND(bf16, K_BF16)
#endif

/* ---- fq__bf16_span_of: 16 values per step ---------------------------------------------
 * the exponent field kept in place (bits 7..14); a zero, Inf or NaN gives 0 to the maximum
 * and 255 << 7 to the minimum, a denormal 1 << 7 to the minimum, as the generic does */
static void FN(bf16_span)(const uint16_t *h, int64_t n, fq__bf16_span *s) {
    const __m256i mexp = _mm256_set1_epi16(0x7f80), mabs = _mm256_set1_epi16(0x7fff);
    const __m256i one = _mm256_set1_epi16(0x80), zero = _mm256_setzero_si256();
    __m256i hi = _mm256_set1_epi16((short)(s->hi << 7)), lo = _mm256_set1_epi16((short)(s->lo << 7));
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(h + i));
        const __m256i e = _mm256_and_si256(v, mexp);
        const __m256i dead =
            _mm256_or_si256(_mm256_cmpeq_epi16(_mm256_and_si256(v, mabs), zero), _mm256_cmpeq_epi16(e, mexp));
        hi = _mm256_max_epu16(hi, _mm256_andnot_si256(dead, e));
        lo = _mm256_min_epu16(lo, _mm256_or_si256(_mm256_max_epu16(e, one), _mm256_and_si256(dead, mexp)));
    }
    uint16_t h16[16], l16[16];
    _mm256_storeu_si256((__m256i *)(void *)h16, hi);
    _mm256_storeu_si256((__m256i *)(void *)l16, lo);
    fq__bf16_span r = *s;
    for (int l = 0; l < 16; l++) fq__bf16_span_merge(&r, (fq__bf16_span){(uint8_t)(h16[l] >> 7), (uint8_t)(l16[l] >> 7)});
    fq__bf16_span_of_generic(h + i, n - i, &r);
    *s = r;
}

/* ---- the FMA ceiling: 12 independent chains of 8-lane fused multiply-adds, as many as
 * the F32 tiles keep in flight; 2 per cycle is the most a Zen 3/4 core issues (at AVX-512
 * the same ymm code: Zen 4 splits a zmm FMA in two, so wider vectors add nothing there) */
static float FN(fma_peak)(int64_t iters) {
    __m256 a[12];
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t k = 0; k < iters; k++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
        __asm__ volatile("" : "+x"(m)); /* keep the loop from being folded */
    }
    __m256 s = a[0];
#pragma GCC unroll 11
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    return hsum8v(s);
}

/* ---- registration (called at the end of this level's fq__isa_fill) ------------------- */

void FN(fq__isa_fill_mmfloat)(fq__isa_kernels *k) {
    FN(fill_f32)(k, FQ_TYPE_F32);
    FN(fill_f16)(k, FQ_TYPE_F16);
    FN(fill_bf16)(k, FQ_TYPE_BF16);
    k->vec_dot_f32_mn[FQ_TYPE_F16] = FN(mmx_f16x);
    k->vec_dot_f32_mn[FQ_TYPE_BF16] = FN(mmx_bf16x);
    k->vec_dot_f32_mn[FQ_TYPE_F32] = FN(mmx_f32x);
    k->vec_dot_dec_mn[FQ_TYPE_F16] = FN(mmx_f16f);
    k->vec_dot_dec_mn[FQ_TYPE_BF16] = FN(mmx_bf16f);
    k->bf16_span = FN(bf16_span);
    k->fma_peak = FN(fma_peak);
#if !defined(__AVX512F__)
    FN(fillp_f16)(k, FQ_TYPE_F16);
    FN(fillp_bf16)(k, FQ_TYPE_BF16);
#endif
}
