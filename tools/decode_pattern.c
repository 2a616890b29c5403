/* decode_pattern.c - how the order in which decode reads F16 weight rows bounds its speed.
 *
 * fqlm's F16 decode tile (src/arch/x86/mm_float_avx2.c, one token, groups of 8 rows) keeps
 * the reference kernel's arithmetic: per row, 8 lanes, element i into lane i % 8, product
 * rounded then added. This program runs exactly that arithmetic over 1 GiB of F16 rows
 * (2048 values each, TinyLlama's n_embd) four ways, 1 and 2 threads, three rounds:
 *   in place     8 rows at a time, each read where it lies (8 streams 4 KiB apart);
 *   in place+pf  the same, and the next 8 rows prefetched into L2 (prefetcht1) in address
 *                order at the pace these are read: one sequential stream (fqlm's tile);
 *   interleaved  the same 8 rows stored 16 bytes of each in turn (one sequential stream);
 *   rowwise 4acc one row after the other with 4 accumulators (llama.cpp's order of work;
 *                other bits, shown only as the sequential reader's speed).
 * Build and run (x86-64 with AVX2, F16C, FMA):
 *   cc -O2 -mavx2 -mfma -mf16c -pthread tools/decode_pattern.c -o /tmp/decode_pattern && /tmp/decode_pattern
 * Beside each figure: output 5, the same bits every way (same arithmetic per row). */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 2048 /* values per row */

static uint16_t *g_w, *g_wi, *g_a; /* rows in place, rows interleaved by 8, the activation */
static int64_t g_rows;
static float *g_out;
static int g_mode;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float hsum(__m256 v) {
    float l[8];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

/* 8 rows: row i's 8 values at k at w + i*N + k (in place) or w + k*8 + i*8 (interleaved);
 * pf: the next 8 rows (w + 8N on) prefetched, 128 bytes of them per step */
static void group8(const uint16_t *w, int inter, int pf, float *out) {
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    const char *next = (const char *)(w + 8 * N);
    for (int k = 0; k < N; k += 8) {
        if (pf) {
            _mm_prefetch(next + (size_t)k * 16, _MM_HINT_T1);
            _mm_prefetch(next + (size_t)k * 16 + 64, _MM_HINT_T1);
        }
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(g_a + k)));
        for (int i = 0; i < 8; i++) {
            const uint16_t *p = inter ? w + (size_t)k * 8 + (size_t)i * 8 : w + (size_t)i * N + (size_t)k;
            const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
            acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(x, a));
        }
    }
    for (int i = 0; i < 8; i++) out[i] = hsum(acc[i]);
}

static void rowwise(const uint16_t *w, float *out) {
    for (int i = 0; i < 8; i++) {
        const uint16_t *r = w + (size_t)i * N;
        __m256 c[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int k = 0; k < N; k += 32)
            for (int q = 0; q < 4; q++)
                c[q] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(r + k + 8 * q))),
                                       _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(g_a + k + 8 * q))),
                                       c[q]);
        out[i] = hsum(_mm256_add_ps(_mm256_add_ps(c[0], c[1]), _mm256_add_ps(c[2], c[3])));
    }
}

static void *run(void *arg) { /* half of the groups: arg 0 the first, 1 the second */
    const int64_t half = (int64_t)(intptr_t)arg, ng = g_rows / 8;
    for (int64_t g = ng * half / 2; g < ng * (half + 1) / 2; g++) {
        if (g_mode == 3) rowwise(g_w + (size_t)g * 8 * N, g_out + g * 8);
        else group8((g_mode == 2 ? g_wi : g_w) + (size_t)g * 8 * N, g_mode == 2, g_mode == 1, g_out + g * 8);
    }
    return NULL;
}

int main(void) {
    g_rows = ((int64_t)1 << 30) / (N * 2);
    const size_t bytes = (size_t)g_rows * N * 2;
    g_w = aligned_alloc(4096, bytes);
    g_wi = aligned_alloc(4096, bytes);
    g_a = malloc(N * 2);
    g_out = malloc(sizeof(float) * (size_t)g_rows);
    if (!g_w || !g_wi || !g_a || !g_out) {
        fprintf(stderr, "decode_pattern: out of memory (needs 2 GiB)\n");
        return 1;
    }
    for (int64_t i = 0; i < g_rows * N; i++) g_w[i] = (uint16_t)(0x3000 + (i * 7919) % 0x800);
    for (int64_t g = 0; g < g_rows / 8; g++)
        for (int k = 0; k < N; k += 8)
            for (int i = 0; i < 8; i++)
                memcpy(g_wi + (size_t)g * 8 * N + (size_t)k * 8 + (size_t)i * 8, g_w + (size_t)(g * 8 + i) * N + k, 16);
    for (int i = 0; i < N; i++) g_a[i] = 0x3c00; /* 1.0 */
    static const char *names[4] = {"in place    ", "in place+pf ", "interleaved ", "rowwise 4acc"};
    for (int round = 0; round < 3; round++) {
        for (g_mode = 0; g_mode < 4; g_mode++) {
            for (int th = 1; th <= 2; th++) {
                pthread_t p[2];
                const double t0 = now();
                if (th == 1) { /* one thread does both halves */
                    pthread_create(&p[0], NULL, run, (void *)(intptr_t)0);
                    pthread_join(p[0], NULL);
                    pthread_create(&p[0], NULL, run, (void *)(intptr_t)1);
                    pthread_join(p[0], NULL);
                } else {
                    for (int t = 0; t < 2; t++) pthread_create(&p[t], NULL, run, (void *)(intptr_t)t);
                    for (int t = 0; t < 2; t++) pthread_join(p[t], NULL);
                }
                const double s = now() - t0;
                printf("%s %dt: %5.1f GB/s  (output 5: %g)\n", names[g_mode], th, (double)bytes / s * 1e-9, g_out[5]);
            }
        }
    }
    return 0;
}
