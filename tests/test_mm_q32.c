/* test_mm_q32.c - the 32-element block kernels (Q8_0, Q4_0, Q5_0 x Q8_0; Q4_1, Q5_1 x
 * Q8_1) of every ISA level this CPU runs against the generic vec_dot, bit for bit: vec_dot,
 * vec_dot_n (nrc 1..FQ_DOT_N_MAX) and vec_dot_mn tiles of 1..FQ_DOT_MX + 1 rows and of
 * several groups of 8 rows up to FQ_DOT_MXL (whole, and with a short last group) x
 * 1..FQ_DOT_NY tokens (so rows and tokens one past each level's tile, and the decode path's
 * single token), at n = 32 (one block, all tail), 96 (a short tail) and 4096 + 32 (many full
 * groups of eight blocks and a tail). Data: real encodings, random bytes, the extremes that
 * break the usual int8 tricks (every quant -128, every quant 127: maddubs saturation and
 * the sign trick's -(-128)), a mix of extremes, and NaN / Inf / subnormal / zero F16
 * scales. Outputs are strided with sentinels that must stay untouched. */
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

typedef struct {
    const char *name;
    fq__isa_kernels k;
} variant;
static variant variants[3];
static int n_variants;

enum { PAT_REAL, PAT_RANDOM, PAT_MIN, PAT_MAX, PAT_MIX, PAT_SPECIAL, PAT_NO128, PAT_COUNT };
static const char *pat_name[PAT_COUNT] = {"real", "random bytes", "all -128 / lowest levels",
                                          "all 127 / highest levels", "mixed extremes",
                                          "NaN/Inf/subnormal scales",
                                          "mixed extremes and special scales, no -128 activation"};

/* F16 scale bit patterns: finite ones for random data, special ones for PAT_SPECIAL */
static uint16_t finite_scale(void) {
    return (uint16_t)((0x1c00 + rng_u64() % 0x2000) | (rng_u64() & 1 ? 0x8000 : 0));
}
static uint16_t special_scale(void) {
    static const uint16_t s[] = {0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe01, 0x0000, 0x8000,
                                 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x3c00};
    return s[rng_u64() % (sizeof s / sizeof s[0])];
}

/* Fill one row of nb blocks of type t (weight or activation) for pattern pat. The F16
 * fields (d at 0; m or s at 2 for the _1 types) stay F16 scales; the rest are quants. */
static void fill_row(uint32_t t, uint8_t *row, int64_t n, int pat, int act, float gain) {
    const fq_type_traits *tg = fq_type_get_generic(t);
    const int64_t nb = n / FQ_QK;
    const size_t ts = tg->type_size;
    const int has2 = t == FQ_TYPE_Q4_1 || t == FQ_TYPE_Q5_1 || t == FQ_TYPE_Q8_1;
    if (pat == PAT_REAL) {
        float *f = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) f[i] = rng_uniform() * gain;
        if (act) tg->from_float_act(f, row, n);
        else tg->from_float(f, row, n);
        free(f);
        return;
    }
    /* lowest / highest stored byte: Q8 quants are signed (-128 / 127), the others unsigned
     * nibbles and fifth bits (0x00 / 0xFF gives levels 0 / 15 or 31) */
    const int q8 = t == FQ_TYPE_Q8_0 || t == FQ_TYPE_Q8_1;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = row + (size_t)b * ts;
        const size_t q0 = has2 ? 4 : 2;
        for (size_t i = q0; i < ts; i++) {
            uint8_t v;
            switch (pat) {
            case PAT_MIN: v = q8 ? 0x80 : 0x00; break;
            case PAT_MAX: v = q8 ? 0x7f : 0xff; break;
            case PAT_MIX: {
                static const uint8_t e[] = {0x80, 0x7f, 0x00, 0xff, 0x81, 0x01};
                v = e[rng_u64() % 6];
                break;
            }
            case PAT_NO128: { /* Q8_0's sign-trick tiles (AVX2) take only such activations */
                static const uint8_t e[] = {0x80, 0x7f, 0x00, 0xff, 0x81, 0x01};
                v = e[rng_u64() % 6];
                if (act && q8 && v == 0x80) v = 0x81;
                break;
            }
            default: v = (uint8_t)rng_u64(); break;
            }
            blk[i] = v;
        }
        for (size_t f = 0; f < (has2 ? 2u : 1u); f++) {
            const uint16_t h = (pat == PAT_SPECIAL || pat == PAT_NO128) && rng_u64() % 3 == 0 ? special_scale()
                                                                                            : finite_scale();
            memcpy(blk + 2 * f, &h, 2);
        }
    }
}

/* every kernel of one type and level against the generic vec_dot over one data set */
static int check_type(const variant *v, uint32_t t, int64_t n, int pat, int *cases) {
    enum { NX = FQ_DOT_MXL, NY = FQ_DOT_NY > FQ_DOT_N_MAX ? FQ_DOT_NY : FQ_DOT_N_MAX, BS = NX + 3 };
    /* row counts of vec_dot_mn calls: every one to FQ_DOT_MX + 1, then groups of 8 */
    static const int nrxs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32};
    _Static_assert(FQ_DOT_MX + 1 == 9 && FQ_DOT_MXL == 32, "nrxs covers 1..FQ_DOT_MX + 1 and up to FQ_DOT_MXL");
    const fq_type_traits *tg = fq_type_get_generic(t);
    const uint32_t pt = (uint32_t)tg->vec_dot_type;
    const fq__dot_fn dot = v->k.vec_dot[t] ? v->k.vec_dot[t] : tg->vec_dot;
    const fq__dotn_fn dotn = v->k.vec_dot_n[t] ? v->k.vec_dot_n[t] : tg->vec_dot_n;
    const fq__dotmn_fn dotmn = v->k.vec_dot_mn[t] ? v->k.vec_dot_mn[t] : tg->vec_dot_mn;
    const size_t bx = fq_row_size(t, n), by = fq_row_size(pt, n);
    uint8_t *x = malloc(bx * NX), *y = malloc(by * NY);
    for (int i = 0; i < NX; i++) fill_row(t, x + i * bx, n, pat, 0, (float)(i + 1));
    for (int j = 0; j < NY; j++) fill_row(pt, y + j * by, n, pat, 1, 1.0f + (float)j / 4);
    float ref[NY][NX], out[NY * BS + NX];
    const float sentinel = -12345.f;
    int bad = 0;
    for (int j = 0; j < NY; j++)
        for (int i = 0; i < NX; i++) tg->vec_dot(n, &ref[j][i], x + i * bx, y + j * by);
    for (int j = 0; j < NY; j++) {
        for (int i = 0; i < NX; i++) {
            float g;
            dot(n, &g, x + i * bx, y + j * by);
            bad += !t_same(g, ref[j][i]);
            (*cases)++;
        }
    }
    for (int nrc = 1; nrc <= FQ_DOT_N_MAX; nrc++) {
        for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
        dotn(n, out + 1, BS, x + bx, y, by, nrc);
        for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
            const int64_t jj = (int64_t)o / BS, ii = (int64_t)o % BS;
            bad += ii == 1 && jj < nrc ? !t_same(out[o], ref[jj][1])
                                       : t_bits(out[o]) != t_bits(sentinel);
        }
        (*cases)++;
    }
    for (size_t xi = 0; xi < FQ_ARRAY_LEN(nrxs); xi++) {
        const int nrx = nrxs[xi];
        if (nrx > FQ_DOT_MX && nrx > (v->k.mn_x[t] ? v->k.mn_x[t] : 1)) continue; /* not this kernel's */
        for (int nry = 1; nry <= FQ_DOT_NY; nry++) {
            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
            dotmn(n, out, BS, x, bx, nrx, y, by, nry);
            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
                const int64_t jj = (int64_t)o / BS, ii = (int64_t)o % BS;
                bad += ii < nrx && jj < nry ? !t_same(out[o], ref[jj][ii])
                                            : t_bits(out[o]) != t_bits(sentinel);
            }
            (*cases)++;
        }
    }
    free(x);
    free(y);
    return bad;
}

static void test_kernels(void) {
    static const uint32_t types[] = {FQ_TYPE_Q8_0, FQ_TYPE_Q4_0, FQ_TYPE_Q5_0, FQ_TYPE_Q4_1,
                                     FQ_TYPE_Q5_1};
    static const int64_t sizes[] = {32, 96, 256, 4096 + 32, 32 * (128 + 16 + 5)};
    for (int v = 0; v < n_variants; v++) {
        for (size_t ti = 0; ti < FQ_ARRAY_LEN(types); ti++) {
            for (int pat = 0; pat < PAT_COUNT; pat++) {
                int bad = 0, cases = 0;
                for (size_t si = 0; si < FQ_ARRAY_LEN(sizes); si++)
                    bad += check_type(&variants[v], types[ti], sizes[si], pat, &cases);
                CHECK(bad == 0, "%s %s, %s: %d outputs differ from the generic vec_dot or "
                      "stray writes (%d calls)", fq_type_name(types[ti]), variants[v].name,
                      pat_name[pat], bad, cases);
            }
        }
    }
}

/* The extreme patterns must really reach the cases they are for: with every weight quant
 * -128 against every activation quant -128, a block's sum is 32 * 16384 = 2^19, which the
 * sign trick (abs(x) times sign(y, x), -(-128) wrapping to -128) would get as -2^19. */
static void test_extremes_reach(void) {
    fq_block_q8_0 x = {0}, y = {0};
    x.d = y.d = 0x3c00; /* 1.0 */
    memset(x.qs, 0x80, sizeof x.qs);
    memset(y.qs, 0x80, sizeof y.qs);
    float s = 0;
    fq_type_get_generic(FQ_TYPE_Q8_0)->vec_dot(FQ_QK, &s, &x, &y);
    CHECK(s == 524288.0f, "generic Q8_0 x Q8_0 of all -128: %g, want 2^19", (double)s);
    memset(x.qs, 0x7f, sizeof x.qs);
    memset(y.qs, 0x7f, sizeof y.qs);
    fq_type_get_generic(FQ_TYPE_Q8_0)->vec_dot(FQ_QK, &s, &x, &y);
    CHECK(s == 32.0f * 127 * 127, "generic Q8_0 x Q8_0 of all 127: %g", (double)s);
}

int main(void) {
    variants[n_variants++].name = "generic";
    const int level = fq__cpu_isa_level();
    if (level >= FQ_ISA_AVX2) {
        variants[n_variants].name = "avx2";
        fq__isa_fill_avx2(&variants[n_variants++].k);
    }
    if (level >= FQ_ISA_AVX512) {
        variants[n_variants].name = "avx512";
        fq__isa_fill_avx512(&variants[n_variants++].k);
    }
    printf("levels checked:");
    for (int v = 0; v < n_variants; v++) printf(" %s", variants[v].name);
    printf("\n");
    test_extremes_reach();
    test_kernels();
    return TEST_END();
}
