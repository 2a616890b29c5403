/* tile_bounds.c - what bounds the prompt tiles at the AVX2 level on this machine: the
 * throughput of the instructions they are made of, and two of the tiles' inner loops run on
 * registers and L1 alone, measured in cycles.
 *
 * The clock is measured first (a chain of dependent scalar adds: one cycle each). Then each
 * line runs 16 independent AVX2 instructions per iteration on registers (no loads unless
 * named) and prints cycles per instruction, and which of them share execution pipes shows in
 * the mixed lines: if 8 A + 8 B take as long as 16 A, A and B compete for the same pipes.
 * Last, the loop fqlm's Q8_0 rows-in-lanes tile runs per (weight block of 8 rows, token)
 * without VNNI (src/arch/x86/mm_q32_avx2.c: per activation dword a broadcast, a sign, a
 * maddubs and a madd; the block's 8 row vectors and their |x| in registers, 16 tokens per
 * block), with and without the float step that follows it, as cycles per 256 products and
 * the GMAC/s one core would reach if a prompt did nothing else. And the F32 register tile
 * (src/arch/x86/mm_float_avx2.c: 4 weight rows x 3 tokens, 12 accumulators, each step 3 token
 * loads, 4 row loads, 12 fused multiply-adds) over 256 values held in L1, beside 12 chains of
 * FMAs on registers alone: how much of the FMA peak a tile whose operands come from memory
 * keeps.
 * Build and run (x86-64 with AVX2 and FMA):
 *   cc -O2 -mavx2 -mfma tools/tile_bounds.c -o /tmp/tile_bounds && /tmp/tile_bounds */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* cycles per second: 8 dependent adds per iteration, one cycle each */
static double clock_hz(void) {
    const long n = 100000000;
    uint64_t x = 0;
    const double t = now();
    for (long i = 0; i < n; i++)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                         : "+r"(x));
    return 8.0 * (double)n / (now() - t);
}

#define CLOB "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
             "xmm10", "xmm11", "xmm12", "xmm13"
/* destination i of 0..13 (sources ymm14, ymm15: nothing depends on a result) */
#define D(op, i) op " %%ymm15, %%ymm14, %%ymm" #i "\n\t"
#define X8(op) D(op, 0) D(op, 1) D(op, 2) D(op, 3) D(op, 4) D(op, 5) D(op, 6) D(op, 7)
#define Y8(op) D(op, 8) D(op, 9) D(op, 10) D(op, 11) D(op, 12) D(op, 13) D(op, 0) D(op, 1)
#define BC8 "vpbroadcastd (%0), %%ymm8\n\tvpbroadcastd 4(%0), %%ymm9\n\tvpbroadcastd 8(%0), %%ymm10\n\t" \
            "vpbroadcastd 12(%0), %%ymm11\n\tvpbroadcastd 16(%0), %%ymm12\n\tvpbroadcastd 20(%0), %%ymm13\n\t" \
            "vpbroadcastd 24(%0), %%ymm0\n\tvpbroadcastd 28(%0), %%ymm1\n\t"
#define TEST(name, body)                                                                      \
    static void name(long n, const void *m) {                                                 \
        for (long i = 0; i < n; i++) __asm__ volatile(body : : "r"(m) : CLOB, "memory");      \
    }
TEST(t_maddubs, X8("vpmaddubsw") Y8("vpmaddubsw"))
TEST(t_madd, X8("vpmaddwd") Y8("vpmaddwd"))
TEST(t_sign, X8("vpsignb") Y8("vpsignb"))
TEST(t_addw, X8("vpaddw") Y8("vpaddw"))
TEST(t_fma, X8("vfmadd231ps") Y8("vfmadd231ps"))
TEST(t_mulps, X8("vmulps") Y8("vmulps"))
TEST(t_addps, X8("vaddps") Y8("vaddps"))
TEST(t_bcast, BC8 BC8)
static void t_cvt(long n, const void *m) {
    for (long i = 0; i < n; i++)
        __asm__ volatile(
#define C1(i) "vcvtdq2ps %%ymm15, %%ymm" #i "\n\t"
            C1(0) C1(1) C1(2) C1(3) C1(4) C1(5) C1(6) C1(7) C1(8) C1(9) C1(10) C1(11) C1(12) C1(13) C1(0) C1(1)
            : : "r"(m) : CLOB, "memory");
}
static void t_maddubs_cvt(long n, const void *m) {
    for (long i = 0; i < n; i++)
        __asm__ volatile(X8("vpmaddubsw") C1(8) C1(9) C1(10) C1(11) C1(12) C1(13) C1(0) C1(1)
                         : : "r"(m) : CLOB, "memory");
}
TEST(t_maddubs_madd, X8("vpmaddubsw") Y8("vpmaddwd"))
TEST(t_maddubs_sign, X8("vpmaddubsw") Y8("vpsignb"))
TEST(t_maddubs_addw, X8("vpmaddubsw") Y8("vpaddw"))
TEST(t_maddubs_mulps, X8("vpmaddubsw") Y8("vmulps"))
TEST(t_maddubs_bcast, X8("vpmaddubsw") BC8)

/* the Q8_0 step: 8 rows in lanes, block values w (signed), 16 tokens; with the float step
 * (scale product, convert, multiply, add into the accumulator of block % 8) when fstep */
static float g_acc[16][8][8] __attribute__((aligned(32)));
static float g_dy[16];
static int8_t g_y[256 * 32];
__attribute__((noinline)) static void q8_step(long nblk, const __m256i *w, int fstep) {
    const __m256i one = _mm256_set1_epi16(1);
    const __m256 dx = _mm256_set1_ps(0.01f);
    for (long b = 0; b < nblk; b++) {
        __m256i x[8], ax[8];
        for (int p = 0; p < 8; p++) {
            x[p] = w[p];
            ax[p] = _mm256_sign_epi8(x[p], x[p]);
        }
        for (int j = 0; j < 16; j++) {
            const int8_t *q = g_y + ((b * 16 + j) & 255) * 32;
            __m256i m[8];
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) {
                int32_t v;
                memcpy(&v, q + 4 * p, 4);
                m[p] = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(ax[p], _mm256_sign_epi8(_mm256_set1_epi32(v), x[p])), one);
            }
            const __m256i s = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_add_epi32(m[0], m[1]), _mm256_add_epi32(m[2], m[3])),
                _mm256_add_epi32(_mm256_add_epi32(m[4], m[5]), _mm256_add_epi32(m[6], m[7])));
            float *a = g_acc[j][b & 7];
            if (fstep) {
                const __m256 v = _mm256_mul_ps(_mm256_mul_ps(dx, _mm256_set1_ps(g_dy[j])), _mm256_cvtepi32_ps(s));
                _mm256_store_ps(a, _mm256_add_ps(v, _mm256_load_ps(a)));
            } else {
                _mm256_store_ps(a, _mm256_castsi256_ps(_mm256_add_epi32(s, _mm256_castps_si256(_mm256_load_ps(a)))));
            }
        }
    }
}

/* F32 4 x 3 tile over k values from L1 (rows and tokens st floats apart), accumulators in
 * and out of acc; and 12 FMA chains on registers (the peak) */
__attribute__((noinline)) static void f32_tile(const float *x, const float *y, long st, long k, __m256 *acc) {
    __m256 c[4][3];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) c[i][j] = acc[i * 3 + j];
    for (long e = 0; e < k; e += 8) {
        __m256 a[3];
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++) a[j] = _mm256_loadu_ps(y + j * st + e);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m256 w = _mm256_loadu_ps(x + i * st + e);
#pragma GCC unroll 3
            for (int j = 0; j < 3; j++) c[i][j] = _mm256_fmadd_ps(w, a[j], c[i][j]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) acc[i * 3 + j] = c[i][j];
}
__attribute__((noinline)) static void fma_chains(long n, __m256 *acc) {
    __m256 c[12];
    const __m256 m = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) c[i] = acc[i];
    for (long e = 0; e < n; e++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) c[i] = _mm256_fmadd_ps(c[i], m, b);
    }
    for (int i = 0; i < 12; i++) acc[i] = c[i];
}

int main(void) {
    static int32_t mem[64];
    for (int i = 0; i < 64; i++) mem[i] = i * 0x01030507;
    for (int i = 0; i < (int)sizeof g_y; i++) g_y[i] = (int8_t)((i * 37 + 11) % 255 - 127);
    const double hz = clock_hz();
    printf("clock: %.2f GHz (dependent scalar adds)\n", hz / 1e9);
    const long n = 20000000;
    struct { const char *name; void (*f)(long, const void *); } t[] = {
        {"vpmaddubsw", t_maddubs}, {"vpmaddwd", t_madd}, {"vpsignb", t_sign}, {"vpaddw", t_addw},
        {"vfmadd231ps", t_fma}, {"vmulps", t_mulps}, {"vaddps", t_addps}, {"vcvtdq2ps", t_cvt}, {"vpbroadcastd m32", t_bcast},
        {"8 vpmaddubsw + 8 vpmaddwd", t_maddubs_madd}, {"8 vpmaddubsw + 8 vpsignb", t_maddubs_sign},
        {"8 vpmaddubsw + 8 vpaddw", t_maddubs_addw}, {"8 vpmaddubsw + 8 vmulps", t_maddubs_mulps},
        {"8 vpmaddubsw + 8 vcvtdq2ps", t_maddubs_cvt},
        {"8 vpmaddubsw + 8 vpbroadcastd m32", t_maddubs_bcast},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            const double t0 = now();
            t[k].f(n, mem);
            const double c = (now() - t0) * hz / (16.0 * (double)n);
            if (c < best) best = c;
        }
        printf("%-36s %.3f cycles per instruction (16 per iteration, best of 3)\n", t[k].name, best);
    }
    __m256i w[8];
    for (int p = 0; p < 8; p++) w[p] = _mm256_set1_epi32(0x7F81017F - p * 0x01020304);
    for (int f = 0; f < 2; f++) {
        const long nb = 4000000;
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            const double t0 = now();
            q8_step(nb, w, f);
            const double c = (now() - t0) * hz / (16.0 * (double)nb);
            if (c < best) best = c;
        }
        printf("Q8_0 sign-trick step, 8 rows x 32 values x 1 token%s: %.2f cycles = %.1f GMAC/s per core\n",
               f ? ", float step" : "", best, 256.0 / best * hz / 1e9);
    }
    static float fx[4 * 264] __attribute__((aligned(64))), fy[3 * 264] __attribute__((aligned(64)));
    for (int i = 0; i < 4 * 264; i++) fx[i] = 0.001f * (float)(i % 100);
    for (int i = 0; i < 3 * 264; i++) fy[i] = 0.002f * (float)(i % 77);
    static __m256 facc[12];
    double pk = 1e30, tl = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        fma_chains(20000000, facc);
        const double a = (now() - t0) / (12.0 * 8 * 20000000);
        t0 = now();
        for (long i = 0; i < 2000000; i++) f32_tile(fx, fy, 264, 256, facc);
        const double b = (now() - t0) / (12.0 * 256 * 2000000);
        if (a < pk) pk = a;
        if (b < tl) tl = b;
    }
    printf("F32 FMA chains on registers: %.1f GMAC/s per core\n", 1e-9 / pk);
    printf("F32 4 x 3 tile, 256 values from L1: %.1f GMAC/s per core (%.0f%% of the chains)\n", 1e-9 / tl,
           100.0 * pk / tl);
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(facc[0], facc[7]));
    printf("(checksums %g %g)\n", (double)g_acc[3][2][1], (double)l[2]);
    return 0;
}
