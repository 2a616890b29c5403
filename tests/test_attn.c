/* test_attn.c - the attention kernels (attn.h) of every ISA level this CPU runs against a
 * plain reference written from their definitions (llama.cpp's orders: ggml_vec_dot_f32
 * for the scores, ggml_v_expf and block sums in the softmax, tinyBLAS lanes for V), bit for bit: head sizes 64/128 and odd ones, 1..600 keys, several heads,
 * strided rows, sentinels around every output that must stay untouched. */
#include "attn.h"
#include "harness.h"
#include "qtypes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float rng_uniform(void) { /* [-1, 1) */
    return (float)((double)(rng_u64() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}
/* mostly uniform, with a few signed zeros and larger values */
static float rng_value(void) {
    const unsigned r = (unsigned)(rng_u64() % 64);
    if (r == 0) return 0.0f;
    if (r == 1) return -0.0f;
    if (r == 2) return rng_uniform() * 1e3f;
    return rng_uniform();
}

#define SENTINEL (-12345.678f)

/* ---- the reference: one output at a time, as the definitions in attn.h read ---------- */

static void ref_scores_f32(float *s, size_t ss, const float *q, size_t qs, int nh, const float *k, size_t ks,
                           int64_t n, int64_t hd, float scale) {
    for (int h = 0; h < nh; h++)
        for (int64_t p = 0; p < n; p++) {
            const float *qh = q + (size_t)h * qs, *kr = k + (size_t)p * ks;
            float A[4][8] = {{0}};
            int64_t d = 0;
            for (; d + 32 <= hd; d += 32)
                for (int j = 0; j < 4; j++)
                    for (int l = 0; l < 8; l++) A[j][l] = fmaf(qh[d + 8 * j + l], kr[d + 8 * j + l], A[j][l]);
            float a[8], t[4];
            for (int l = 0; l < 8; l++) a[l] = (A[0][l] + A[2][l]) + (A[1][l] + A[3][l]);
            for (int i = 0; i < 4; i++) t[i] = a[i] + a[i + 4];
            float sum = (t[0] + t[1]) + (t[2] + t[3]);
            for (; d < hd; d++) sum += qh[d] * kr[d];
            s[(size_t)h * ss + p] = sum * scale;
        }
}

static void ref_scores_f16(float *s, size_t ss, const float *q, size_t qs, int nh, const uint16_t *k, size_t ks,
                           int64_t n, int64_t hd, float scale) {
    for (int h = 0; h < nh; h++)
        for (int64_t p = 0; p < n; p++) {
            float acc = 0.0f;
            for (int64_t d = 0; d < hd; d++) acc += q[(size_t)h * qs + d] * fq_fp16_to_f32(k[(size_t)p * ks + d]);
            s[(size_t)h * ss + p] = acc * scale;
        }
}

/* ggml's AVX2 ggml_v_expf, written out per value (as its definition reads) */
static float ref_expf(float x) {
    union { float f; uint32_t u; } zb, kb, s1, s2;
    const float z = fmaf(x, 0x1.715476p+0f, 0x1.8p23f);
    const float nn = z - 0x1.8p23f;
    const float b = fmaf(-nn, 0x1.7f7d1cp-20f, fmaf(-nn, 0x1.62e4p-1f, x));
    zb.f = z;
    const uint32_t e = zb.u << 23;
    kb.u = e + 0x3f800000u;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (fabsf(nn) <= 126.0f || isnan(nn)) return fmaf(kb.f, j, kb.f);
    const uint32_t g = nn <= 0.0f ? 0x82000000u : 0u;
    s1.u = g + 0x7f000000u;
    s2.u = e - g;
    return fabsf(nn) > 192.0f ? s1.f * s1.f : fmaf(s2.f, j, s2.f) * s1.f;
}

static void ref_softmax(float *s, size_t ss, int nh, int64_t n) {
    for (int h = 0; h < nh; h++) {
        float *r = s + (size_t)h * ss;
        float mx = -INFINITY;
        for (int64_t p = 0; p < n; p++) mx = r[p] > mx ? r[p] : mx;
        double sum = 0.0;
        for (int64_t p0 = 0; p0 < n; p0 += 8) {
            float e[8] = {0};
            for (int64_t i = 0; i < 8 && p0 + i < n; i++) r[p0 + i] = e[i] = ref_expf(r[p0 + i] - mx);
            sum += (double)(((e[0] + e[4]) + (e[2] + e[6])) + ((e[1] + e[5]) + (e[3] + e[7])));
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t p = 0; p < n; p++) r[p] *= inv;
    }
}

static void ref_pv(float *o, size_t os, const float *w, size_t ws, int nh, const void *v, size_t vs, int f16,
                   int64_t n, int64_t hd, int round16) {
    for (int h = 0; h < nh; h++)
        for (int64_t d = 0; d < hd; d++) {
            float a[8] = {0};
            for (int64_t p = 0; p < n; p++) {
                float wp = w[(size_t)h * ws + p];
                if (round16) wp = fq_fp16_to_f32(fq_f32_to_fp16(wp));
                const float vd = f16 ? fq_fp16_to_f32(((const uint16_t *)v)[(size_t)p * vs + d])
                                     : ((const float *)v)[(size_t)p * vs + d];
                a[p & 7] = fmaf(wp, vd, a[p & 7]);
            }
            o[(size_t)h * os + d] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
        }
}

/* ---- comparison ----------------------------------------------------------------------- */

typedef struct {
    int bad, untouched_bad;
    char first[200];
} tally;

/* rows of len at stride (stride - len sentinels after each) */
static void compare_rows(tally *t, const char *what, const float *got, const float *want, int nh, int64_t len,
                         size_t stride, int64_t hd, int64_t n) {
    for (int h = 0; h < nh; h++) {
        for (int64_t i = 0; i < (int64_t)stride; i++) {
            const float g = got[(size_t)h * stride + i];
            if (i < len) {
                if (!t_same(g, want[(size_t)h * stride + i])) {
                    if (!t->bad++)
                        snprintf(t->first, sizeof t->first, "%s hd %lld n %lld nh %d: row %d [%lld] %a, want %a", what,
                                 (long long)hd, (long long)n, nh, h, (long long)i, g, want[(size_t)h * stride + i]);
                }
            } else if (t_bits(g) != t_bits(SENTINEL)) {
                if (!t->untouched_bad++ && !t->bad)
                    snprintf(t->first, sizeof t->first, "%s hd %lld n %lld nh %d: row %d wrote past its end [%lld]",
                             what, (long long)hd, (long long)n, nh, h, (long long)i);
            }
        }
    }
}

static void fill_sentinel(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = SENTINEL;
}

/* One case: every kernel of level k on the same inputs as the reference. */
static void run_case(const fq_attn_kernels *K, tally t[6], int64_t hd, int64_t n, int nh) {
    const size_t qs = (size_t)hd + 3, ks = (size_t)hd * 3 + 5, ss = (size_t)n + 7, os = (size_t)hd + 5;
    const float scale = 1.0f / sqrtf((float)hd);
    /* inputs end where their last row ends, so that a read past it trips the sanitizer */
    const size_t nq = qs * (size_t)(nh - 1) + (size_t)hd, nkv = ks * (size_t)(n - 1) + (size_t)hd;
    float *q = malloc(sizeof(float) * nq);
    float *k = malloc(sizeof(float) * nkv);
    float *v = malloc(sizeof(float) * nkv);
    uint16_t *k16 = malloc(sizeof(uint16_t) * nkv);
    uint16_t *v16 = malloc(sizeof(uint16_t) * nkv);
    float *s_ref = malloc(sizeof(float) * ss * (size_t)nh), *s_got = malloc(sizeof(float) * ss * (size_t)nh);
    float *w = malloc(sizeof(float) * ss * (size_t)nh);
    float *o_ref = malloc(sizeof(float) * os * (size_t)nh), *o_got = malloc(sizeof(float) * os * (size_t)nh);
    for (size_t i = 0; i < nq; i++) q[i] = rng_value();
    for (size_t i = 0; i < nkv; i++) {
        k[i] = rng_value();
        v[i] = rng_value();
    }
    /* scores of exact zeros, whose sign the definitions fix: a query head of -0s, a key of
     * +0s and one of -0s, a value row of -0s */
    if (nh > 1)
        for (int64_t d = 0; d < hd; d++) q[qs + d] = -0.0f;
    for (int64_t p = 0; p < n && p < 3; p++)
        for (int64_t d = 0; d < hd; d++) {
            if (p == 0) k[d] = 0.0f;
            if (p == 1) k[ks + d] = -0.0f;
            if (p == 2) v[2 * ks + d] = -0.0f;
        }
    for (size_t i = 0; i < nkv; i++) {
        k16[i] = fq_f32_to_fp16(k[i]);
        v16[i] = fq_f32_to_fp16(v[i]);
    }

    /* scores, F32 and F16 keys */
    for (int f16 = 0; f16 < 2; f16++) {
        fill_sentinel(s_ref, ss * (size_t)nh);
        fill_sentinel(s_got, ss * (size_t)nh);
        if (f16) {
            ref_scores_f16(s_ref, ss, q, qs, nh, k16, ks, n, hd, scale);
            K->scores_f16(s_got, ss, q, qs, nh, k16, ks, n, hd, scale);
        } else {
            ref_scores_f32(s_ref, ss, q, qs, nh, k, ks, n, hd, scale);
            K->scores_f32(s_got, ss, q, qs, nh, k, ks, n, hd, scale);
        }
        compare_rows(&t[f16], f16 ? "scores_f16" : "scores_f32", s_got, s_ref, nh, n, ss, hd, n);
    }

    /* softmax of those scores, some entries masked to -inf, one row all -inf when there are several */
    for (int h = 0; h < nh; h++)
        for (int64_t p = 0; p < n; p++) {
            float x = s_ref[(size_t)h * ss + p] * 8.0f;
            if (rng_u64() % 16 == 0) x = -INFINITY;
            if (nh > 2 && h == 2) x = -INFINITY;
            s_ref[(size_t)h * ss + p] = s_got[(size_t)h * ss + p] = x;
        }
    ref_softmax(s_ref, ss, nh, n);
    K->softmax(s_got, ss, nh, n);
    compare_rows(&t[2], "softmax", s_got, s_ref, nh, n, ss, hd, n);

    /* weighted sums: softmax weights (as attention gives them) and arbitrary ones */
    for (int h = 0; h < nh; h++)
        for (int64_t p = 0; p < n; p++) {
            const float x = s_ref[(size_t)h * ss + p];
            w[(size_t)h * ss + p] = (h & 1) || isnan(x) ? rng_value() : x;
        }
    for (int var = 0; var < 3; var++) { /* F32, F16, F16 with rounded weights */
        fill_sentinel(o_ref, os * (size_t)nh);
        fill_sentinel(o_got, os * (size_t)nh);
        const int f16 = var > 0, round16 = var == 2;
        ref_pv(o_ref, os, w, ss, nh, f16 ? (const void *)v16 : (const void *)v, ks, f16, n, hd, round16);
        if (f16) K->pv_f16(o_got, os, w, ss, nh, v16, ks, n, hd, round16);
        else K->pv_f32(o_got, os, w, ss, nh, v, ks, n, hd);
        compare_rows(&t[3 + var], var == 0 ? "pv_f32" : var == 1 ? "pv_f16" : "pv_f16 round16", o_got, o_ref, nh, hd,
                     os, hd, n);
    }
    free(q), free(k), free(v), free(k16), free(v16), free(s_ref), free(s_got), free(w), free(o_ref), free(o_got);
}

static void test_level(int level) {
    const fq_attn_kernels *K = fq__attn_level(level);
    if (!K) {
        printf("attn: level %d not available on this CPU, skipped\n", level);
        return;
    }
    static const int64_t hds[] = {64, 128, 48, 80, 1, 8, 17, 40, 72, 100};
    static const int nhs[] = {1, 3, 8};
    int64_t ns[64];
    int nn = 0;
    for (int64_t n = 1; n <= 40; n++) ns[nn++] = n;
    static const int64_t big[] = {63, 64, 65, 100, 127, 128, 129, 255, 257, 600};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) ns[nn++] = big[i];
    tally t[6];
    memset(t, 0, sizeof t);
    int cases = 0;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (int b = 0; b < nn; b++)
            for (size_t c = 0; c < sizeof nhs / sizeof nhs[0]; c++) {
                /* the long rows on a few head sizes only, to keep the test quick */
                if (ns[b] > 129 && a > 3) continue;
                run_case(K, t, hds[a], ns[b], nhs[c]);
                cases++;
            }
    run_case(K, t, 64, 300, 16); /* a whole large group */
    run_case(K, t, 128, 77, 5);
    /* heads longer than the SIMD F16 kernels' K slab (256) */
    static const int64_t long_hd[] = {256, 264, 520, 1024};
    for (size_t a = 0; a < sizeof long_hd / sizeof long_hd[0]; a++) {
        run_case(K, t, long_hd[a], 17, 3);
        run_case(K, t, long_hd[a], 40, 8);
    }
    static const char *names[6] = {"scores_f32", "scores_f16", "softmax", "pv_f32", "pv_f16", "pv_f16 round16"};
    for (int i = 0; i < 6; i++)
        CHECK(t[i].bad == 0 && t[i].untouched_bad == 0, "%s %s: %d values differ from the reference, %d writes out "
              "of bounds, in %d cases (first: %s)", K->name, names[i], t[i].bad, t[i].untouched_bad, cases, t[i].first);
    printf("attn %-7s %d cases: %s\n", K->name, cases + 10,
           t[0].bad + t[1].bad + t[2].bad + t[3].bad + t[4].bad + t[5].bad ? "MISMATCH" : "bit-identical");
}

int main(void) {
    for (int level = 0; level <= 2; level++) test_level(level);
    /* the live kernels are the level cpu.c chose (FQLM_ISA / FQLM_FORCE_GENERIC lower it) */
    const int want = fq_cpu_isa();
    CHECK(fq_attn_get() == fq__attn_level(want), "live attention kernels are %s, want level %d", fq_attn_get()->name,
          want);
    return TEST_END();
}
