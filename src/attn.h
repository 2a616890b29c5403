/* attn.h - the attention inner kernels: scaled scores of a group of query heads against a
 * run of cached keys, the row softmax, and the softmax-weighted sum of cached values.
 *
 * Every kernel fixes the float operations and their order for each output, so the generic
 * C, AVX2 and AVX-512 variants give the same bits (tests/test_attn.c compares them with a
 * plain reference). The SIMD variants do those same operations for several keys, heads and
 * dimensions at once, and let the group's heads share each K/V row from L1. ISO C mode
 * keeps the compiler from fusing a multiply and an add (the arch files use no fma).
 *
 * Shapes: nh query heads, row h of q at q + h*qs (hd floats); key/value row p at
 * k + p*ks (hd elements); score row h at s + h*ss (n floats); output row h at o + h*os. */
#ifndef FQ_ATTN_H
#define FQ_ATTN_H

#include <stddef.h>
#include <stdint.h>

/* Scores, for each h < nh and p < n, as llama.cpp's ggml_vec_dot_f32 (AVX2) computes
 * Q.K: four 8-lane accumulators A_j from +0, A_j[l] = fma(q[d+8j+l], k[d+8j+l], A_j[l])
 * for each whole block of 32 dimensions d in order; a[l] = (A0[l] + A2[l]) + (A1[l] + A3[l]);
 * t[i] = a[i] + a[i+4]; sum = (t0 + t1) + (t2 + t3); then sum += q[d] * k[d] (a product and
 * an add) for the leftover d in order; s[h][p] = sum * scale. */
typedef void (*fq_attn_scores_f32_fn)(float *s, size_t ss, const float *q, size_t qs, int nh,
                                      const float *k, size_t ks, int64_t n, int64_t hd, float scale);
/* F16 keys: one float sum from +0, acc += q[d] * (float)k[d] for d in order;
 * s[h][p] = acc * scale. */
typedef void (*fq_attn_scores_f16_fn)(float *s, size_t ss, const float *q, size_t qs, int nh,
                                      const uint16_t *k, size_t ks, int64_t n, int64_t hd, float scale);
/* Softmax of each of nh rows of n in place: mx = the largest (NaNs skipped, -inf when
 * none); e[p] = fq__attn_expf(s[p] - mx) (ggml's vectorised expf); sum = in double, the
 * float sums ((e0+e4)+(e2+e6)) + ((e1+e5)+(e3+e7)) of each block of 8 keys in order (a
 * short last block padded with +0); s[p] = e[p] * (float)(1.0 / sum). */
typedef void (*fq_attn_softmax_fn)(float *s, size_t ss, int nh, int64_t n);
/* Weighted sum of values, for each h < nh and d < hd, as llamafile's tinyBLAS (AVX2) runs
 * llama.cpp's V x softmax product: 8 lanes from +0, a[p & 7] = fma(w[h][p], v[p][d],
 * a[p & 7]) for p = 0 .. n-1 in order; o[h][d] = ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
 * F16 values: w rounded to F16 and back first when round16 is set (llama.cpp converts the
 * weights to the cache type). */
typedef void (*fq_attn_pv_f32_fn)(float *o, size_t os, const float *w, size_t ws, int nh,
                                  const float *v, size_t vs, int64_t n, int64_t hd);
typedef void (*fq_attn_pv_f16_fn)(float *o, size_t os, const float *w, size_t ws, int nh,
                                  const uint16_t *v, size_t vs, int64_t n, int64_t hd, int round16);

/* SiLU as ggml's ggml_vec_silu_f32 (AVX2) computes it, on elements [i0, i1) of a row whose
 * first nfull elements (its whole blocks of 8) take the vector path: there
 * g = g / (1 + fq__attn_expf(0 - g)), elsewhere g / (1 + expf(-g)) (libm); then, when u is
 * not NULL, g *= u (ggml_mul). */
typedef void (*fq_attn_silu_fn)(float *g, const float *u, int64_t i0, int64_t i1, int64_t nfull);

typedef struct {
    const char *name; /* "generic", "avx2", "avx512" */
    fq_attn_scores_f32_fn scores_f32;
    fq_attn_scores_f16_fn scores_f16;
    fq_attn_softmax_fn softmax;
    fq_attn_pv_f32_fn pv_f32;
    fq_attn_pv_f16_fn pv_f16;
    fq_attn_silu_fn silu;
} fq_attn_kernels;

/* The kernels for this CPU, chosen once from CPUID (thread-safe); FQLM_FORCE_GENERIC=1 in
 * the environment gives the generic ones. */
const fq_attn_kernels *fq_attn_get(void);

/* ---- internal (src/arch/, tests) ---------------------------------------------------- */
/* The kernels of one ISA level (0 generic, 1 AVX2, 2 AVX-512), or NULL when this CPU and OS
 * cannot run it; lets tests compare every variant. */
const fq_attn_kernels *fq__attn_level(int level);
void fq__attn_fill_avx2(fq_attn_kernels *k);
void fq__attn_fill_avx512(fq_attn_kernels *k);
/* The softmax's scalar middle for nh rows whose maxima mx[h] are known: the exponentials
 * in place and inv[h] = (float)(1.0 / their sum), as the softmax definition above says. */
void fq__attn_softmax_exp(float *s, size_t ss, int nh, int64_t n, const float *mx, float *inv);
/* ggml's vectorised expf (AVX2 ggml_v_expf), one value: the exponential the softmax uses */
float fq__attn_expf(float x);
/* ggml_vec_dot_f32's order for one (query head, key) pair, unscaled */
float fq__attn_dot_f32(const float *x, const float *y, int64_t n);

#endif
