/* test_mm_kq.c - the K-quant multi-row dots (Q2_K..Q6_K weights, Q8_K activations: the
 * prompt tiles and decode row groups of quants_dot_*.c and mm_kq_*.c) at every ISA level
 * this machine runs, against the generic vec_dot bit for bit: every tile shape nrx 1..
 * FQ_DOT_MX x nry 1..FQ_DOT_NY (rows and tokens not multiples of any kernel's tile), vec_dot_n
 * for nrc 1..FQ_DOT_N_MAX, K at its minimum (256), 512 and 4096 + 256, on real encodings,
 * random bytes and extreme blocks (every scale and level at its maximum or minimum, d and
 * dmin NaN, +-Inf, the largest and the smallest F16), activations including all -128.
 * Outputs are strided, with sentinels between them that must stay untouched. */
#include "cpu.h"
#include "harness.h"
#include "qtypes.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float rng_uniform(void) { return (float)((rng_u64() >> 40) * 0x1p-24) * 2.f - 1.f; }


typedef struct {
    const char *name;
    fq__isa_kernels k;
} variant;
static variant variants[3];
static int n_variants;

static void setup_variants(void) {
    const int level = fq__cpu_isa_level();
    if (level >= FQ_ISA_AVX2) {
        variants[n_variants].name = "avx2";
        fq__isa_fill_avx2(&variants[n_variants++].k);
    }
    if (level >= FQ_ISA_AVX512) {
        variants[n_variants].name = "avx512";
        fq__isa_fill_avx512(&variants[n_variants++].k);
    }
}

static const uint32_t kq_types[] = {FQ_TYPE_Q2_K, FQ_TYPE_Q3_K, FQ_TYPE_Q4_K, FQ_TYPE_Q5_K, FQ_TYPE_Q6_K};

/* F16 values for d / dmin of the extreme blocks */
static const fq_half extreme_d[] = {0x7bff, 0xfbff, 0x7e00, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x8000, 0x3c00};

/* d and dmin fields of a block of type t (dmin NULL where the type has none) */
static void d_fields(uint32_t t, uint8_t *blk, fq_half **d, fq_half **dmin) {
    *dmin = NULL;
    switch (t) {
    case FQ_TYPE_Q2_K: *d = &((fq_block_q2_K *)blk)->d; *dmin = &((fq_block_q2_K *)blk)->dmin; break;
    case FQ_TYPE_Q3_K: *d = &((fq_block_q3_K *)blk)->d; break;
    case FQ_TYPE_Q4_K: *d = &((fq_block_q4_K *)blk)->d; *dmin = &((fq_block_q4_K *)blk)->dmin; break;
    case FQ_TYPE_Q5_K: *d = &((fq_block_q5_K *)blk)->d; *dmin = &((fq_block_q5_K *)blk)->dmin; break;
    default: *d = &((fq_block_q6_K *)blk)->d; break;
    }
}

/* Weight row r of kind rep: 0 real encoding, 1 random bytes with modest d, 2 extreme */
static void make_weights(uint32_t t, int rep, int r, uint8_t *x, int64_t n, float *f) {
    const fq_type_traits *tg = fq_type_get_generic(t);
    const int64_t nb = n / FQ_QK_K;
    if (rep == 0) {
        for (int64_t i = 0; i < n; i++) f[i] = rng_uniform() * (float)(r + 1);
        tg->from_float(f, x, n);
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = x + (size_t)b * tg->type_size;
        fq_half *d, *dmin;
        if (rep == 1) {
            for (size_t i = 0; i < tg->type_size; i++) blk[i] = (uint8_t)rng_u64();
        } else {
            /* all bits set (every scale, min and level at its maximum; Q3_K/Q6_K: the
             * largest positive level), all clear (Q3_K: scales -32, levels -4; Q6_K: -32),
             * or 0x80 / 0x7f patterns (Q6_K scales -128 / 127) */
            static const uint8_t fill[] = {0xff, 0x00, 0x80, 0x7f};
            memset(blk, fill[(r + b) % 4], tg->type_size);
        }
        d_fields(t, blk, &d, &dmin);
        if (rep == 1) {
            *d = (fq_half)(0x2000 + rng_u64() % 0x1000);
            if (dmin) *dmin = (fq_half)(0x2000 + rng_u64() % 0x1000);
        } else {
            *d = extreme_d[(size_t)(r + 3 * b) % FQ_ARRAY_LEN(extreme_d)];
            if (dmin) *dmin = extreme_d[(size_t)(r + 5 * b + 1) % FQ_ARRAY_LEN(extreme_d)];
        }
    }
}

/* Activation row j: random values (scaled by row), every 5th row all the same negative value
 * (every q8 = -128), every 7th alternating +-large values */
static void make_acts(int j, uint8_t *y, int64_t n, float *f) {
    for (int64_t i = 0; i < n; i++) {
        if (j % 5 == 4) f[i] = -3.f;
        else if (j % 7 == 6) f[i] = i % 2 ? 1e30f : -1e30f;
        else f[i] = rng_uniform() * (float)(j + 1);
    }
    fq_type_get_generic(FQ_TYPE_Q8_K)->from_float_act(f, y, n);
}

static void test_kq_multi(void) {
    enum { NX = FQ_DOT_MX + 1, NY = FQ_DOT_NY + 1, BS = FQ_DOT_MX + 3 };
    static const int64_t sizes[] = {256, 512, 4096 + 256};
    const float sentinel = -12345.f;
    for (size_t k = 0; k < FQ_ARRAY_LEN(kq_types); k++) {
        const uint32_t t = kq_types[k];
        const fq_type_traits *tg = fq_type_get_generic(t);
        int bad[3][3] = {{0}}, nan_cases = 0;
        for (size_t si = 0; si < FQ_ARRAY_LEN(sizes); si++) {
            const int64_t n = sizes[si];
            const size_t bx = fq_row_size(t, n), by = fq_row_size(FQ_TYPE_Q8_K, n);
            uint8_t *x = malloc(bx * NX), *y = malloc(by * NY);
            float *f = malloc(sizeof(float) * (size_t)n);
            float *ref = malloc(sizeof(float) * NX * NY), *out = malloc(sizeof(float) * (NY * BS + NX));
            for (int rep = 0; rep < 3; rep++) {
                for (int r = 0; r < NX; r++) make_weights(t, rep, r, x + r * bx, n, f);
                for (int j = 0; j < NY; j++) make_acts(j, y + j * by, n, f);
                for (int j = 0; j < NY; j++)
                    for (int i = 0; i < NX; i++) {
                        tg->vec_dot(n, &ref[j * NX + i], x + i * bx, y + j * by);
                        nan_cases += isnan(ref[j * NX + i]);
                    }
                for (int v = 0; v < n_variants; v++) {
                    const fq__dotn_fn dotn = variants[v].k.vec_dot_n[t];
                    const fq__dotmn_fn dotmn = variants[v].k.vec_dot_mn[t];
                    if (!dotn || !dotmn) {
                        bad[v][0]++;
                        continue;
                    }
                    /* vec_dot_n: row i (the last rows included) against nrc tokens from j0 */
                    for (int nrc = 1; nrc <= FQ_DOT_N_MAX; nrc++) {
                        const int i = (nrc * 5) % NX, j0 = NY - nrc;
                        for (size_t o = 0; o < (size_t)(NY * BS + NX); o++) out[o] = sentinel;
                        dotn(n, out + i, BS, x + i * bx, y + j0 * by, by, nrc);
                        for (size_t o = 0; o < (size_t)(NY * BS + NX); o++) {
                            const int jj = (int)(o / BS), ii = (int)(o % BS);
                            const int written = ii == i && jj < nrc;
                            bad[v][1] += written ? !t_same(out[o], ref[(j0 + jj) * NX + i])
                                                 : t_bits(out[o]) != t_bits(sentinel);
                        }
                    }
                    /* vec_dot_mn: every tile shape, starting at row i0 / token j0 so that the
                     * last row and token are reached */
                    for (int nrx = 1; nrx <= FQ_DOT_MX; nrx++) {
                        for (int nry = 1; nry <= FQ_DOT_NY; nry++) {
                            const int i0 = NX - nrx, j0 = (nry + nrx) % 2 ? NY - nry : 0;
                            for (size_t o = 0; o < (size_t)(NY * BS + NX); o++) out[o] = sentinel;
                            dotmn(n, out, BS, x + i0 * bx, bx, nrx, y + j0 * by, by, nry);
                            for (size_t o = 0; o < (size_t)(NY * BS + NX); o++) {
                                const int jj = (int)(o / BS), ii = (int)(o % BS);
                                const int written = ii < nrx && jj < nry;
                                bad[v][2] += written ? !t_same(out[o], ref[(j0 + jj) * NX + i0 + ii])
                                                     : t_bits(out[o]) != t_bits(sentinel);
                            }
                        }
                    }
                }
            }
            free(out);
            free(ref);
            free(f);
            free(y);
            free(x);
        }
        CHECK(nan_cases > 0, "%s: the extreme blocks gave no NaN dot (the NaN cases are not tested)", tg->name);
        for (int v = 0; v < n_variants; v++) {
            CHECK(bad[v][0] == 0, "%s (%s): no vec_dot_n / vec_dot_mn at this level", tg->name, variants[v].name);
            CHECK(bad[v][1] == 0, "%s (%s): vec_dot_n: %d outputs not bit-identical to the generic "
                  "vec_dot or stray writes", tg->name, variants[v].name, bad[v][1]);
            CHECK(bad[v][2] == 0, "%s (%s): vec_dot_mn: %d outputs not bit-identical to the generic "
                  "vec_dot or stray writes", tg->name, variants[v].name, bad[v][2]);
        }
    }
}

/* the live table uses this level's tiles with sane tile sizes for the K-quants */
static void test_kq_table(void) {
    fq_qtypes_init();
    const int level = fq_cpu_isa();
    int bad = 0;
    for (size_t k = 0; k < FQ_ARRAY_LEN(kq_types); k++) {
        const uint32_t t = kq_types[k];
        const fq_type_traits *tt = fq_type_get(t);
        for (int v = 0; v < n_variants; v++)
            if ((v == 0 && level == FQ_ISA_AVX2) || (v == 1 && level == FQ_ISA_AVX512))
                bad += tt->vec_dot_mn != variants[v].k.vec_dot_mn[t] || tt->vec_dot_n != variants[v].k.vec_dot_n[t];
        bad += tt->mn_x < 1 || tt->mn_x > FQ_DOT_MXL || tt->mn_y < 1 || tt->mn_y > FQ_DOT_NY;
        bad += tt->mv_x < 1 || tt->mv_x > FQ_DOT_MX;
        /* every SIMD level has more than the one-pair loop for prompts and decode */
        bad += level > FQ_ISA_GENERIC && (tt->mn_x * tt->mn_y < 8 || tt->mv_x < 2);
    }
    CHECK(bad == 0, "live table: K-quant multi-row dots or tile sizes wrong (%d)", bad);
}

int main(void) {
    setup_variants();
    if (n_variants == 0) printf("test_mm_kq: no SIMD level on this machine, nothing to compare\n");
    test_kq_multi();
    test_kq_table();
    return TEST_END();
}
