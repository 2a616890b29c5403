/* attn.c - the portable attention kernels (attn.h) and the choice of ISA variant.
 * The loops visit each K/V row once for all the group's heads; per output they are the
 * plain definitions of attn.h, which the SIMD variants in src/arch/x86 reproduce. */
#include "attn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "qtypes.h"

static void scores_f32_generic(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k,
                               size_t ks, int64_t n, int64_t hd, float scale) {
    for (int64_t p = 0; p < n; p++) {
        const float *kr = k + (size_t)p * ks;
        for (int h = 0; h < nh; h++) {
            const float *qh = q + (size_t)h * qs;
            float acc[16] = {0};
            int64_t d = 0;
            for (; d + 16 <= hd; d += 16)
                for (int l = 0; l < 16; l++) acc[l] += qh[d + l] * kr[d + l];
            for (; d < hd; d++) acc[d & 15] += qh[d] * kr[d];
            for (int w = 8; w >= 1; w /= 2)
                for (int l = 0; l < w; l++) acc[l] += acc[l + w];
            s[(size_t)h * ss + p] = acc[0] * scale;
        }
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
void fq__attn_softmax_exp(float *s, size_t ss, int nh, int64_t n, const float *mx, float *inv) {
    for (int h = 0; h < nh; h++) {
        float *r = s + (size_t)h * ss;
        const float m = mx[h];
        for (int64_t p = 0; p < n; p++) r[p] = expf(r[p] - m);
    }
    int h = 0;
    for (; h + 4 <= nh; h += 4) {
        const float *r0 = s + (size_t)h * ss, *r1 = r0 + ss, *r2 = r1 + ss, *r3 = r2 + ss;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (int64_t p = 0; p < n; p++) {
            s0 += (double)r0[p];
            s1 += (double)r1[p];
            s2 += (double)r2[p];
            s3 += (double)r3[p];
        }
        inv[h] = (float)(1.0 / s0);
        inv[h + 1] = (float)(1.0 / s1);
        inv[h + 2] = (float)(1.0 / s2);
        inv[h + 3] = (float)(1.0 / s3);
    }
    for (; h < nh; h++) {
        const float *r = s + (size_t)h * ss;
        double sum = 0.0;
        for (int64_t p = 0; p < n; p++) sum += (double)r[p];
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

static void pv_f32_generic(float *o, size_t os, const float *w, size_t ws, int nh, const float *v, size_t vs,
                           int64_t n, int64_t hd) {
    for (int h = 0; h < nh; h++)
        for (int64_t d = 0; d < hd; d++) o[(size_t)h * os + d] = 0.0f;
    for (int64_t p = 0; p < n; p++) {
        const float *vr = v + (size_t)p * vs;
        for (int h = 0; h < nh; h++) {
            const float wp = w[(size_t)h * ws + p];
            float *oh = o + (size_t)h * os;
            for (int64_t d = 0; d < hd; d++) oh[d] += wp * vr[d];
        }
    }
}

static void pv_f16_generic(float *o, size_t os, const float *w, size_t ws, int nh, const uint16_t *v,
                           size_t vs, int64_t n, int64_t hd, int round16) {
    float vf[1024];
    for (int h = 0; h < nh; h++)
        for (int64_t d = 0; d < hd; d++) o[(size_t)h * os + d] = 0.0f;
    for (int64_t p = 0; p < n; p++) {
        const uint16_t *vr = v + (size_t)p * vs;
        for (int64_t d = 0; d < hd; d++) vf[d] = fq_fp16_to_f32(vr[d]);
        for (int h = 0; h < nh; h++) {
            float wp = w[(size_t)h * ws + p];
            if (round16) wp = fq_fp16_to_f32(fq_f32_to_fp16(wp));
            float *oh = o + (size_t)h * os;
            for (int64_t d = 0; d < hd; d++) oh[d] += wp * vf[d];
        }
    }
}

/* ---- ISA selection ------------------------------------------------------------------ */

static const fq_attn_kernels k_generic = {"generic", scores_f32_generic, scores_f16_generic, softmax_generic,
                                          pv_f32_generic, pv_f16_generic};
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
    const int use = k_level < fq_cpu_isa() ? k_level : fq_cpu_isa(); /* the one level (cpu.h) */
    k_live = use >= 2 ? &k_avx512 : use >= 1 ? &k_avx2 : &k_generic;
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
