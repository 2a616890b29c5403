/* attn.c - the portable attention kernels (attn.h) and the choice of ISA variant.
 * The loops visit each K/V row once for all the group's heads; per output they are the
 * plain definitions of attn.h, which the SIMD variants in src/arch/x86 reproduce. */
#include "attn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qtypes.h"

/* ggml's ggml_vec_dot_f32 (AVX2, FMA) for each (head, key): four 8-lane accumulators over
 * blocks of 32 dimensions, reduced as that code does, then the leftover dimensions one by
 * one into the float sum. */
float fq__attn_dot_f32(const float *x, const float *y, int64_t n) {
    float acc[4][8] = {{0}};
    int64_t d = 0;
    for (; d + 32 <= n; d += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++) acc[j][l] = fmaf(x[d + 8 * j + l], y[d + 8 * j + l], acc[j][l]);
    float a[8], t[4];
    for (int l = 0; l < 8; l++) a[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    for (int i = 0; i < 4; i++) t[i] = a[i] + a[i + 4];
    float sum = (t[0] + t[1]) + (t[2] + t[3]);
    for (; d < n; d++) sum += x[d] * y[d];
    return sum;
}

static void scores_f32_generic(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k,
                               size_t ks, int64_t n, int64_t hd, float scale) {
    for (int64_t p = 0; p < n; p++) {
        const float *kr = k + (size_t)p * ks;
        for (int h = 0; h < nh; h++) s[(size_t)h * ss + p] = fq__attn_dot_f32(q + (size_t)h * qs, kr, hd) * scale;
    }
}

static void scores_f16_generic(float *s, size_t ss, const float *q, size_t qs, int nh, const uint16_t *k,
                               size_t ks, int64_t n, int64_t hd, float scale) {
    float kf[1024]; /* hd <= 1024 (model.c) */
    for (int64_t p = 0; p < n; p++) {
        const uint16_t *kr = k + (size_t)p * ks;
        for (int64_t d = 0; d < hd; d++) kf[d] = fq_fp16_to_f32(kr[d]);
        int h = 0;
        for (; h + 4 <= nh; h += 4) { /* four heads' sums side by side: independent chains */
            const float *q0 = q + (size_t)h * qs, *q1 = q0 + qs, *q2 = q1 + qs, *q3 = q2 + qs;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            for (int64_t d = 0; d < hd; d++) {
                a0 += q0[d] * kf[d];
                a1 += q1[d] * kf[d];
                a2 += q2[d] * kf[d];
                a3 += q3[d] * kf[d];
            }
            s[(size_t)h * ss + p] = a0 * scale;
            s[(size_t)(h + 1) * ss + p] = a1 * scale;
            s[(size_t)(h + 2) * ss + p] = a2 * scale;
            s[(size_t)(h + 3) * ss + p] = a3 * scale;
        }
        for (; h < nh; h++) {
            const float *qh = q + (size_t)h * qs;
            float acc = 0.0f;
            for (int64_t d = 0; d < hd; d++) acc += qh[d] * kf[d];
            s[(size_t)h * ss + p] = acc * scale;
        }
    }
}

/* the libm exponentials and the double sum, shared by every variant's softmax; the sums of
 * four rows run side by side (independent chains, each in p order) */
/* ggml's vectorised expf (AVX2/FMA, from Arm's optimized routines) for one value: the
 * same operations, in the same order, one lane at a time. */
float fq__attn_expf(float x) {
    union { float f; uint32_t u; } zb, kb, s1b, s2b, one = {1.0f};
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    zb.f = z;
    const uint32_t e = zb.u << 23;
    kb.u = e + one.u;
    const float k = kb.f;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(k, j, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    s1b.u = g + 0x7f000000u;
    s2b.u = e - g;
    if (fabsf(n) > 192.0f) return s1b.f * s1b.f;
    return fmaf(s2b.f, j, s2b.f) * s1b.f;
}

/* the exponentials and the double sum, shared by every variant's softmax, as ggml's
 * ggml_vec_soft_max_f32 (AVX2) computes them: each block of 8 keys summed in float as
 * ((e0+e4)+(e2+e6)) + ((e1+e5)+(e3+e7)) (a short last block as if padded with the zeros
 * of masked keys), the block sums added in double in key order */
void fq__attn_softmax_exp(float *s, size_t ss, int nh, int64_t n, const float *mx, float *inv) {
    for (int h = 0; h < nh; h++) {
        float *r = s + (size_t)h * ss;
        const float m = mx[h];
        double sum = 0.0;
        for (int64_t p0 = 0; p0 < n; p0 += 8) {
            float e[8] = {0};
            const int64_t m8 = n - p0 < 8 ? n - p0 : 8;
            for (int64_t i = 0; i < m8; i++) r[p0 + i] = e[i] = fq__attn_expf(r[p0 + i] - m);
            sum += (double)(((e[0] + e[4]) + (e[2] + e[6])) + ((e[1] + e[5]) + (e[3] + e[7])));
        }
        inv[h] = (float)(1.0 / sum);
    }
}

static void softmax_generic(float *s, size_t ss, int nh, int64_t n) {
    for (int h0 = 0; h0 < nh; h0 += 16) {
        const int m = nh - h0 < 16 ? nh - h0 : 16;
        float mx[16], inv[16];
        float *s0 = s + (size_t)h0 * ss;
        for (int h = 0; h < m; h++) {
            const float *r = s0 + (size_t)h * ss;
            float x = -INFINITY;
            for (int64_t p = 0; p < n; p++) x = r[p] > x ? r[p] : x;
            mx[h] = x;
        }
        fq__attn_softmax_exp(s0, ss, m, n, mx, inv);
        for (int h = 0; h < m; h++) {
            float *r = s0 + (size_t)h * ss;
            for (int64_t p = 0; p < n; p++) r[p] *= inv[h];
        }
    }
}

/* llamafile's tinyBLAS order (AVX2), which multiplies V by the softmax in llama.cpp: for
 * each output, 8 lanes, lane p % 8 accumulating w[p] * v[p][d] with fused multiply-adds in
 * key order, then the lanes summed ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static void pv_f32_generic(float *o, size_t os, const float *w, size_t ws, int nh, const float *v, size_t vs,
                           int64_t n, int64_t hd) {
    for (int h = 0; h < nh; h++)
        for (int64_t d = 0; d < hd; d++) {
            float acc[8] = {0};
            for (int64_t p = 0; p < n; p++) acc[p & 7] = fmaf(w[(size_t)h * ws + p], v[(size_t)p * vs + d], acc[p & 7]);
            o[(size_t)h * os + d] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        }
}

static void pv_f16_generic(float *o, size_t os, const float *w, size_t ws, int nh, const uint16_t *v,
                           size_t vs, int64_t n, int64_t hd, int round16) {
    for (int h = 0; h < nh; h++)
        for (int64_t d = 0; d < hd; d++) {
            float acc[8] = {0};
            for (int64_t p = 0; p < n; p++) {
                float wp = w[(size_t)h * ws + p];
                if (round16) wp = fq_fp16_to_f32(fq_f32_to_fp16(wp));
                acc[p & 7] = fmaf(wp, fq_fp16_to_f32(v[(size_t)p * vs + d]), acc[p & 7]);
            }
            o[(size_t)h * os + d] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        }
}

static void silu_generic(float *g, const float *u, int64_t i0, int64_t i1, int64_t nfull) {
    for (int64_t i = i0; i < i1; i++) {
        const float x = g[i];
        const float s = i < nfull ? x / (1.0f + fq__attn_expf(0.0f - x)) : x / (1.0f + expf(-x));
        g[i] = u ? s * u[i] : s;
    }
}

/* ---- ISA selection ------------------------------------------------------------------ */

static const fq_attn_kernels k_generic = {"generic",      scores_f32_generic, scores_f16_generic, softmax_generic,
                                          pv_f32_generic, pv_f16_generic,     silu_generic};
static fq_attn_kernels k_avx2, k_avx512;
static const fq_attn_kernels *k_live = &k_generic;
static int k_level; /* what the CPU can run */
static pthread_once_t k_once = PTHREAD_ONCE_INIT;

static void init_once(void) {
    k_level = fq__cpu_isa_level();
#if defined(__x86_64__)
    k_avx2 = k_generic;
    k_avx512 = k_generic;
    if (k_level >= 1) fq__attn_fill_avx2(&k_avx2);
    if (k_level >= 2) fq__attn_fill_avx512(&k_avx512);
#else
    k_level = 0;
#endif
    const char *env = getenv("FQLM_FORCE_GENERIC");
    if (env && *env && strcmp(env, "0") != 0) return;
    k_live = k_level >= 2 ? &k_avx512 : k_level >= 1 ? &k_avx2 : &k_generic;
}

const fq_attn_kernels *fq_attn_get(void) {
    pthread_once(&k_once, init_once);
    return k_live;
}

const fq_attn_kernels *fq__attn_level(int level) {
    pthread_once(&k_once, init_once);
    if (level < 0 || level > k_level) return NULL;
    return level == 2 ? &k_avx512 : level == 1 ? &k_avx2 : &k_generic;
}
