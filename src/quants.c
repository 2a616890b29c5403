/* quants.c - portable C kernels for the float types and the 32-element block formats:
 * decode (bit-exact with ggml's dequantize_row_*), reference encoders (ggml's
 * quantize_row_*_ref), activation encoders (what llama.cpp's x86 CPU backend does before a
 * matmul) and dot products. The K-quants live in quants_k.c, SIMD variants in src/arch/.
 *
 * Float evaluation order follows ggml expression by expression where the result is stored
 * (decoders, encoders): the build uses -std=c11, so GCC contracts nothing into FMAs, like
 * ggml-base which is compiled without FMA flags. */
#include "qtypes.h"

#include <math.h>
#include <string.h>

/* ---- shared helpers --------------------------------------------------------------- */

void fq__dot8_acc(float acc[8], const float *x, const float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) acc[j] += x[i + j] * y[i + j];
    }
    for (; i < n; i++) acc[i & 7] += x[i] * y[i];
}

float fq__hsum8(const float acc[8]) {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* Decodes `n` elements of a weight row chunk by chunk into a stack buffer and feeds the
 * 8-lane F32 dot, so the result equals fq_vec_dot_f32_f32(decode(x), y) exactly. */
void fq__dot_decoded(int64_t n, float *s, const void *x, const float *y, size_t blck_bytes,
                     int64_t blck, void (*decode)(const void *, float *, int64_t)) {
    float buf[FQ__CHUNK];
    float acc[8] = {0};
    const int64_t per = FQ__CHUNK / blck; /* blocks per chunk */
    const uint8_t *xb = x;
    for (int64_t i = 0; i < n; i += FQ__CHUNK) {
        int64_t m = FQ_MIN(FQ__CHUNK, n - i);
        decode(xb, buf, m);
        fq__dot8_acc(acc, buf, y + i, m);
        xb += (size_t)per * blck_bytes;
    }
    *s = fq__hsum8(acc);
}

/* ---- F32 ------------------------------------------------------------------------------ */

void fq_decode_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
void fq_encode_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}
/* F32 weights, default mode: as llama.cpp's CPU backend multiplies F32 matrices
 * (llamafile's tinyBLAS on AVX2): 8 lanes, lane j accumulating x[i+j]*y[i+j] with a fused
 * multiply-add in i order, then the lanes summed as fq__hsum8 does. fmaf is exact, so this
 * equals the AVX2/AVX-512 variants bit for bit. */
void fq_vec_dot_f32_f32(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] = fmaf(x[i + j], y[i + j], acc[j]);
    for (; i < n; i++) acc[i & 7] = fmaf(x[i], y[i], acc[i & 7]);
    *s = fq__hsum8(acc);
}
/* exact mode: products rounded, then added (the order every decoded-type exact dot uses) */
void fq_vec_dot_f32_f32x(int64_t n, float *s, const void *x, const float *y) {
    float acc[8] = {0};
    fq__dot8_acc(acc, x, y, n);
    *s = fq__hsum8(acc);
}

/* ---- F16 / BF16 ----------------------------------------------------------------------- */

void fq_decode_f16(const void *src, float *dst, int64_t n) {
    const fq_half *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = fq__h2f(h[i]);
}
void fq_encode_f16(const float *src, void *dst, int64_t n) {
    fq_half *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = fq_f32_to_fp16(src[i]);
}
/* llama.cpp converts activations with F16C (round to nearest even), as fq_f32_to_fp16 */
void fq_encode_act_f16(const float *src, void *dst, int64_t n) {
    fq_encode_f16(src, dst, n);
}
void fq_vec_dot_f16_f16(int64_t n, float *s, const void *x, const void *y) {
    const fq_half *a = x, *b = y;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) acc[j] += fq__h2f(a[i + j]) * fq__h2f(b[i + j]);
    }
    for (; i < n; i++) acc[i & 7] += fq__h2f(a[i]) * fq__h2f(b[i]);
    *s = fq__hsum8(acc);
}
void fq_vec_dot_f16_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_half), 1, fq_decode_f16);
}

void fq_decode_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = fq__bf2f(h[i]);
}
void fq_encode_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = fq_f32_to_bf16(src[i]);
}
/* ggml_cpu_fp32_to_bf16 is the scalar round-to-nearest-even with quiet NaNs */
void fq_encode_act_bf16(const float *src, void *dst, int64_t n) {
    fq_encode_bf16(src, dst, n);
}
void fq_vec_dot_bf16_bf16(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) acc[j] += fq__bf2f(a[i + j]) * fq__bf2f(b[i + j]);
    }
    for (; i < n; i++) acc[i & 7] += fq__bf2f(a[i]) * fq__bf2f(b[i]);
    *s = fq__hsum8(acc);
}
void fq_vec_dot_bf16_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(uint16_t), 1, fq_decode_bf16);
}

/* the span's two bounds as branch-free min / max over 16-bit words */
static inline void span_step(uint16_t h, unsigned *hi, unsigned *lo) {
    const unsigned e = (h >> 7) & 0xffu;
    const unsigned live = (h & 0x7fffu) != 0 && e != 0xffu; /* finite and nonzero */
    const unsigned ehi = live ? e : 0u, elo = live ? (e ? e : 1u) : 255u;
    *hi = ehi > *hi ? ehi : *hi;
    *lo = elo < *lo ? elo : *lo;
}
void fq__bf16_span_of_generic(const uint16_t *h, int64_t n, fq__bf16_span *s) {
    unsigned hi = s->hi, lo = s->lo;
    for (int64_t i = 0; i < n; i++) span_step(h[i], &hi, &lo);
    s->hi = (uint8_t)hi;
    s->lo = (uint8_t)lo;
}

/* ---- Q4_0 ----------------------------------------------------------------------------- */

void fq_decode_q4_0(const void *src, float *dst, int64_t n) {
    const fq_block_q4_0 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float d = fq__h2f(x[i].d);
        for (int j = 0; j < FQ_QK / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            dst[i * FQ_QK + j] = x0 * d;
            dst[i * FQ_QK + j + FQ_QK / 2] = x1 * d;
        }
    }
}

void fq_encode_q4_0(const float *src, void *dst, int64_t n) {
    fq_block_q4_0 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float *x = src + i * FQ_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < FQ_QK; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        /* the largest magnitude maps to -8, the one level without a mirror */
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fq_f32_to_fp16(d);
        for (int j = 0; j < FQ_QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + FQ_QK / 2] * id;
            const int q0 = FQ_MIN(15, (int8_t)(x0 + 8.5f));
            const int q1 = FQ_MIN(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void fq_vec_dot_q4_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q4_0 *x = vx;
    const fq_block_q8_0 *y = vy;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / FQ_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            sumi += ((x[b].qs[j] & 0x0F) - 8) * y[b].qs[j];
            sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + FQ_QK / 2];
        }
        acc[b & 7] += (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi;
    }
    *s = fq__hsum8(acc);
}

void fq_vec_dot_q4_0_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q4_0), FQ_QK, fq_decode_q4_0);
}

/* ---- Q4_1 ----------------------------------------------------------------------------- */

void fq_decode_q4_1(const void *src, float *dst, int64_t n) {
    const fq_block_q4_1 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float d = fq__h2f(x[i].d), m = fq__h2f(x[i].m);
        for (int j = 0; j < FQ_QK / 2; j++) {
            const int x0 = x[i].qs[j] & 0x0F, x1 = x[i].qs[j] >> 4;
            dst[i * FQ_QK + j] = x0 * d + m;
            dst[i * FQ_QK + j + FQ_QK / 2] = x1 * d + m;
        }
    }
}

void fq_encode_q4_1(const float *src, void *dst, int64_t n) {
    fq_block_q4_1 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float *x = src + i * FQ_QK;
        float min = 3.402823466e+38f, max = -3.402823466e+38f;
        for (int j = 0; j < FQ_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fq_f32_to_fp16(d);
        y[i].m = fq_f32_to_fp16(min);
        for (int j = 0; j < FQ_QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + FQ_QK / 2] - min) * id;
            const int q0 = FQ_MIN(15, (int8_t)(x0 + 0.5f));
            const int q1 = FQ_MIN(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void fq_vec_dot_q4_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q4_1 *x = vx;
    const fq_block_q8_1 *y = vy;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / FQ_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            sumi += (x[b].qs[j] & 0x0F) * y[b].qs[j];
            sumi += (x[b].qs[j] >> 4) * y[b].qs[j + FQ_QK / 2];
        }
        /* the min term uses the activation block's stored sum s = d*sum(q) */
        acc[b & 7] += (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi +
                      fq__h2f(x[b].m) * fq__h2f(y[b].s);
    }
    *s = fq__hsum8(acc);
}

void fq_vec_dot_q4_1_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q4_1), FQ_QK, fq_decode_q4_1);
}

/* ---- Q5_0 ----------------------------------------------------------------------------- */

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

void fq_decode_q5_0(const void *src, float *dst, int64_t n) {
    const fq_block_q5_0 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float d = fq__h2f(x[i].d);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < FQ_QK / 2; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            const int x0 = ((x[i].qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | h1) - 16;
            dst[i * FQ_QK + j] = x0 * d;
            dst[i * FQ_QK + j + FQ_QK / 2] = x1 * d;
        }
    }
}

void fq_encode_q5_0(const float *src, void *dst, int64_t n) {
    fq_block_q5_0 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float *x = src + i * FQ_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < FQ_QK; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fq_f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + FQ_QK / 2] * id;
            const uint32_t q0 = (uint32_t)FQ_MIN(31, (int8_t)(x0 + 16.5f));
            const uint32_t q1 = (uint32_t)FQ_MIN(31, (int8_t)(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + FQ_QK / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

void fq_vec_dot_q5_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q5_0 *x = vx;
    const fq_block_q8_0 *y = vy;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / FQ_QK; b++) {
        const uint32_t qh = load_u32(x[b].qh);
        int sumi = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            const int x0 = ((x[b].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = ((x[b].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            sumi += x0 * y[b].qs[j] + x1 * y[b].qs[j + FQ_QK / 2];
        }
        acc[b & 7] += (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi;
    }
    *s = fq__hsum8(acc);
}

void fq_vec_dot_q5_0_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q5_0), FQ_QK, fq_decode_q5_0);
}

/* ---- Q5_1 ----------------------------------------------------------------------------- */

void fq_decode_q5_1(const void *src, float *dst, int64_t n) {
    const fq_block_q5_1 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float d = fq__h2f(x[i].d), m = fq__h2f(x[i].m);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < FQ_QK / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
            const int x1 = (x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
            dst[i * FQ_QK + j] = x0 * d + m;
            dst[i * FQ_QK + j + FQ_QK / 2] = x1 * d + m;
        }
    }
}

void fq_encode_q5_1(const float *src, void *dst, int64_t n) {
    fq_block_q5_1 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float *x = src + i * FQ_QK;
        float min = 3.402823466e+38f, max = -3.402823466e+38f;
        for (int j = 0; j < FQ_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fq_f32_to_fp16(d);
        y[i].m = fq_f32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + FQ_QK / 2] - min) * id;
            const uint32_t q0 = (uint8_t)(x0 + 0.5f), q1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + FQ_QK / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

void fq_vec_dot_q5_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q5_1 *x = vx;
    const fq_block_q8_1 *y = vy;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / FQ_QK; b++) {
        const uint32_t qh = load_u32(x[b].qh);
        int sumi = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            const int x0 = (x[b].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
            const int x1 = (x[b].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
            sumi += x0 * y[b].qs[j] + x1 * y[b].qs[j + FQ_QK / 2];
        }
        acc[b & 7] += (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi +
                      fq__h2f(x[b].m) * fq__h2f(y[b].s);
    }
    *s = fq__hsum8(acc);
}

void fq_vec_dot_q5_1_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q5_1), FQ_QK, fq_decode_q5_1);
}

/* ---- Q8_0 ----------------------------------------------------------------------------- */

void fq_decode_q8_0(const void *src, float *dst, int64_t n) {
    const fq_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float d = fq__h2f(x[i].d);
        for (int j = 0; j < FQ_QK; j++) dst[i * FQ_QK + j] = x[i].qs[j] * d;
    }
}

/* quantize_row_q8_0_ref: multiplier 1/d, round half away from zero */
void fq_encode_q8_0(const float *src, void *dst, int64_t n) {
    fq_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float *x = src + i * FQ_QK;
        float amax = 0.0f;
        for (int j = 0; j < FQ_QK; j++) amax = FQ_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fq_f32_to_fp16(d);
        for (int j = 0; j < FQ_QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* One block of the SIMD quantize_row_q8_0/q8_1 of llama.cpp's x86 backend, in scalar C:
 * amax by max (order-free), d = amax/127 in F32 stored as F16, multiplier 127/amax (not
 * 1/d), round half to even, then the int32 -> int8 saturating packs. Returns the sum of the
 * quants (for Q8_1's s). */
static int act_block_q8(const float *x, int8_t *qs, float *d_out) {
    float amax = 0.0f;
    for (int j = 0; j < FQ_QK; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    *d_out = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    /* unsigned: NaN/Inf inputs convert to INT_MIN, and the sum wraps as the SIMD adds do */
    unsigned sum = 0;
    for (int j = 0; j < FQ_QK; j++) {
        const int q = fq__cvt_rne_i32(x[j] * id);
        sum += (unsigned)q;
        qs[j] = (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
    }
    return (int)sum;
}

void fq_encode_act_q8_0(const float *src, void *dst, int64_t n) {
    fq_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        float d;
        act_block_q8(src + i * FQ_QK, y[i].qs, &d);
        y[i].d = fq_f32_to_fp16(d);
    }
}

void fq_vec_dot_q8_0_q8_0(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q8_0 *x = vx, *y = vy;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / FQ_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < FQ_QK; j++) sumi += x[b].qs[j] * y[b].qs[j];
        acc[b & 7] += (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi;
    }
    *s = fq__hsum8(acc);
}

void fq_vec_dot_q8_0_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q8_0), FQ_QK, fq_decode_q8_0);
}

/* ---- Q8_1 ----------------------------------------------------------------------------- */

void fq_decode_q8_1(const void *src, float *dst, int64_t n) {
    const fq_block_q8_1 *x = src;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float d = fq__h2f(x[i].d);
        for (int j = 0; j < FQ_QK; j++) dst[i * FQ_QK + j] = x[i].qs[j] * d;
    }
}

void fq_encode_q8_1(const float *src, void *dst, int64_t n) {
    fq_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        const float *x = src + i * FQ_QK;
        float amax = 0.0f;
        for (int j = 0; j < FQ_QK; j++) amax = FQ_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fq_f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < FQ_QK / 2; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            y[i].qs[j + FQ_QK / 2] = (int8_t)roundf(x[j + FQ_QK / 2] * id);
            sum += y[i].qs[j] + y[i].qs[j + FQ_QK / 2];
        }
        y[i].s = fq_f32_to_fp16(sum * d);
    }
}

/* s = F16(d * sum) with d the F32 scale before its own rounding to F16, as the AVX2 code */
void fq_encode_act_q8_1(const float *src, void *dst, int64_t n) {
    fq_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / FQ_QK; i++) {
        float d;
        const int sum = act_block_q8(src + i * FQ_QK, y[i].qs, &d);
        y[i].d = fq_f32_to_fp16(d);
        y[i].s = fq_f32_to_fp16(d * (float)sum);
    }
}

void fq_vec_dot_q8_1_q8_1(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q8_1 *x = vx, *y = vy;
    float acc[8] = {0};
    for (int64_t b = 0; b < n / FQ_QK; b++) {
        int sumi = 0;
        for (int j = 0; j < FQ_QK; j++) sumi += x[b].qs[j] * y[b].qs[j];
        acc[b & 7] += (fq__h2f(x[b].d) * fq__h2f(y[b].d)) * (float)sumi;
    }
    *s = fq__hsum8(acc);
}

void fq_vec_dot_q8_1_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q8_1), FQ_QK, fq_decode_q8_1);
}

/* ---- multi-row dots (generic): one vec_dot per pair, the definition of the result --- */

#define FQ__MULTI(w, a)                                                                    \
    void fq_vec_dot_n_##w##_##a(int64_t n, float *s, size_t bs, const void *x,             \
                                const void *y, size_t by, int nrc) {                       \
        for (int k = 0; k < nrc; k++)                                                      \
            fq_vec_dot_##w##_##a(n, s + (size_t)k * bs, x, (const char *)y + (size_t)k * by); \
    }                                                                                      \
    void fq_vec_dot_mn_##w##_##a(int64_t n, float *s, size_t bs, const void *x, size_t bx, \
                                 int nrx, const void *y, size_t by, int nry) {             \
        for (int j = 0; j < nry; j++)                                                      \
            for (int i = 0; i < nrx; i++)                                                  \
                fq_vec_dot_##w##_##a(n, s + (size_t)j * bs + i, (const char *)x + (size_t)i * bx, \
                                     (const char *)y + (size_t)j * by);                    \
    }
FQ__MULTI(f32, f32) FQ__MULTI(f16, f16) FQ__MULTI(bf16, bf16)
FQ__MULTI(q4_0, q8_0) FQ__MULTI(q5_0, q8_0) FQ__MULTI(q8_0, q8_0)
FQ__MULTI(q4_1, q8_1) FQ__MULTI(q5_1, q8_1) FQ__MULTI(q8_1, q8_1)
FQ__MULTI(q2_K, q8_K) FQ__MULTI(q3_K, q8_K) FQ__MULTI(q4_K, q8_K) FQ__MULTI(q5_K, q8_K)
FQ__MULTI(q6_K, q8_K) FQ__MULTI(q8_K, q8_K)
#undef FQ__MULTI
