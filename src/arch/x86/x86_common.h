/* x86_common.h - small AVX2 helpers shared by the x86 kernel files (each includes it under
 * its own target flags; everything here is static inline and takes AVX2 + F16C only). */
#ifndef FQ_X86_COMMON_H
#define FQ_X86_COMMON_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FQ_X86_AI static inline __attribute__((always_inline))

/* 8x8 transpose of dwords: r[p] lane i <- r[i] lane p */
FQ_X86_AI void fq__tr8x8_epi32(__m256i r[8]) {
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

/* the dword at p in every lane (a broadcast load) */
FQ_X86_AI __m256i fq__bcast_dw(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* eight F16 bit patterns as floats, built in registers (scalar stores and then a vector load
 * stall on store forwarding) */
FQ_X86_AI __m256 fq__f16x8(uint16_t h0, uint16_t h1, uint16_t h2, uint16_t h3, uint16_t h4, uint16_t h5,
                           uint16_t h6, uint16_t h7) {
    return _mm256_cvtph_ps(_mm_setr_epi16((short)h0, (short)h1, (short)h2, (short)h3, (short)h4, (short)h5,
                                          (short)h6, (short)h7));
}

/* words (w, w) in each dword lane, from dword lanes holding words (w0, w1): the low word
 * doubled (dup_lo) or the high one (dup_hi) */
FQ_X86_AI __m256i fq__dup_lo16(__m256i v) { return _mm256_blend_epi16(v, _mm256_slli_epi32(v, 16), 0xAA); }
FQ_X86_AI __m256i fq__dup_hi16(__m256i v) { return _mm256_blend_epi16(_mm256_srli_epi32(v, 16), v, 0xAA); }

/* rows-in-lanes results: lane i of sumf[j] is output (row i, token j), stored to s[j*bs + i]
 * for the first nrx rows only */
FQ_X86_AI void fq__store_rows(float *s, size_t bs, const __m256 *sumf, int ny, int nrx) {
    for (int j = 0; j < ny; j++) {
        if (nrx == 8) {
            _mm256_storeu_ps(s + (size_t)j * bs, sumf[j]);
        } else {
            float l[8];
            _mm256_storeu_ps(l, sumf[j]);
            memcpy(s + (size_t)j * bs, l, sizeof(float) * (size_t)nrx);
        }
    }
}

#endif
