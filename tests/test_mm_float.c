/* test_mm_float.c - the float weight types' register tiles (src/arch/x86/mm_float_*.c):
 * F32, F16 and BF16 vec_dot_mn / vec_dot_n at every ISA level this machine runs, against the
 * generic vec_dot of each (row, token) pair, bit for bit: every tile shape from 1 x 1 up to
 * the level's prompt tile + 1 and decode group + 1 (capped at FQ_DOT_MX x FQ_DOT_NY), lengths
 * at the 8-lane minimum, with tails, and long, outputs strided with sentinels between them,
 * and inputs holding Inf, NaN (with payloads, in weights, activations or both) and 0 x Inf;
 * and the F32-input tiles (vec_dot_f32_mn) against the generic vec_dot_f32, and for F16 /
 * BF16 (act_dec) those and vec_dot_dec_mn on decoded activations against the generic vec_dot.
 * The data is checked to tell summation orders apart: three other orders (fused F16 products,
 * 16 lanes, one running sum) must each give different bits on some outputs, so a kernel that
 * summed in another order would fail here. */
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
/* a value with its exponent spread over 2^-6 .. 2^6, either sign: rounding depends on order */
static float rng_wide(void) {
    const double u = (double)(rng_u64() >> 11) / (double)(1ull << 53);
    const int e = (int)(rng_u64() % 13) - 6;
    return (float)((rng_u64() & 1 ? -1.0 : 1.0) * ldexp(0.5 + u, e));
}

static const uint32_t types[] = {FQ_TYPE_F32, FQ_TYPE_F16, FQ_TYPE_BF16};
static size_t esize(uint32_t t) { return t == FQ_TYPE_F32 ? 4 : 2; }

/* element i of a row in type t set to raw bits (F32: 32 bits; F16/BF16: the low 16) */
static void put_raw(uint32_t t, void *row, int64_t i, uint32_t bits) {
    if (t == FQ_TYPE_F32) {
        memcpy((char *)row + 4 * i, &bits, 4);
    } else {
        const uint16_t h = (uint16_t)bits;
        memcpy((char *)row + 2 * i, &h, 2);
    }
}

/* specials per type: +Inf, -Inf, a quiet NaN with a payload, a signalling NaN, a zero */
static uint32_t special(uint32_t t, int which) {
    static const uint32_t f32[5] = {0x7f800000u, 0xff800000u, 0x7fc12345u, 0xff812345u, 0};
    static const uint32_t f16[5] = {0x7c00u, 0xfc00u, 0x7e05u, 0xfd03u, 0};
    static const uint32_t bf16[5] = {0x7f80u, 0xff80u, 0x7fc5u, 0xff83u, 0};
    return t == FQ_TYPE_F32 ? f32[which] : t == FQ_TYPE_F16 ? f16[which] : bf16[which];
}

/* rows random (mode 0); mode 1: a few specials in the weights; mode 2: in the activations;
 * mode 3: Inf, -Inf and zeros in both, often at the same element (Inf x 0, Inf - Inf).
 * Two NaNs with different payloads never meet in one sum: which payload survives then
 * depends on the operand order the compiler gave each add (the generic kernel's too), so no
 * kernel can promise those bits (the single-row SIMD dots differ there already). */
static void make_rows(uint32_t t, char *x, int nx, char *y, int ny, int64_t n, int mode) {
    const fq_type_traits *tg = fq_type_get_generic(t);
    const size_t row = (size_t)n * esize(t);
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < nx + ny; r++) {
        for (int64_t i = 0; i < n; i++) f[i] = rng_wide();
        char *dst = r < nx ? x + (size_t)r * row : y + (size_t)(r - nx) * row;
        tg->from_float(f, dst, n);
        const int is_w = r < nx;
        if ((mode == 1 && is_w) || (mode == 2 && !is_w) || mode == 3) {
            if (r % 3 == 2) continue; /* some rows stay finite */
            if (mode == 3) { /* Inf, -Inf or 0 at elements 0, n/3, 2n/3 and one more */
                for (int c = 0; c < 3; c++) put_raw(t, dst, c * (n / 3), special(t, c == 2 ? 4 : (int)(rng_u64() % 2)));
                put_raw(t, dst, (int64_t)(rng_u64() % (uint64_t)n), special(t, (int)(rng_u64() % 2) * 4));
                continue;
            }
            /* one NaN at most (a sum meets the default NaN of Inf x 0 only where the other
             * side has a zero, which random rows do not) */
            put_raw(t, dst, (int64_t)(rng_u64() % (uint64_t)n), special(t, 2 + (int)(rng_u64() % 2)));
            const int k = (int)(rng_u64() % 3);
            for (int c = 0; c < k; c++) {
                const int w = (int)(rng_u64() % 3);
                put_raw(t, dst, (int64_t)(rng_u64() % (uint64_t)n), special(t, w == 2 ? 4 : w));
            }
        }
    }
    free(f);
}

typedef struct {
    const char *name;
    fq__isa_kernels k;
} level;

/* vec_dot_mn and vec_dot_n of one level against the generic vec_dot; returns mismatches */
static int check_level(const level *lv, uint32_t t, int64_t n, int mode, int *cases) {
    enum { NX = FQ_DOT_MX, NY = FQ_DOT_NY, BS = NX + 3 };
    const fq_type_traits *tg = fq_type_get_generic(t);
    const fq__dotmn_fn mm = lv->k.vec_dot_mn[t] ? lv->k.vec_dot_mn[t] : tg->vec_dot_mn;
    const fq__dotn_fn dn = lv->k.vec_dot_n[t] ? lv->k.vec_dot_n[t] : tg->vec_dot_n;
    const int mx = lv->k.mn_x[t] ? lv->k.mn_x[t] : 1, my = lv->k.mn_y[t] ? lv->k.mn_y[t] : 1;
    const int mv = lv->k.mv_x[t] ? lv->k.mv_x[t] : 1;
    const int rmax = FQ_MIN(NX, FQ_MAX(mx, mv) + 1), tmax = FQ_MIN(NY, 2 * my + 1);
    const size_t row = (size_t)n * esize(t);
    char *x = malloc(row * NX), *y = malloc(row * NY);
    make_rows(t, x, NX, y, NY, n, mode);
    static float ref[NY][NX], out[NY * BS + NX];
    for (int j = 0; j < NY; j++)
        for (int i = 0; i < NX; i++) tg->vec_dot(n, &ref[j][i], x + (size_t)i * row, y + (size_t)j * row);
    const float sentinel = -777.25f;
    int bad = 0;
    for (int nrx = 1; nrx <= rmax; nrx++) {
        for (int nry = 1; nry <= tmax; nry++) {
            /* start at row/token 1 and 0 in turn, so tiles see unaligned rows too */
            const int r0 = (nrx + nry) % 2 && nrx < NX ? 1 : 0;
            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
            mm(n, out, BS, x + (size_t)r0 * row, row, nrx, y, row, nry);
            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
                const int jj = (int)(o / BS), ii = (int)(o % BS);
                const int written = ii < nrx && jj < nry;
                bad += written ? !t_same(out[o], ref[jj][ii + r0]) : t_bits(out[o]) != t_bits(sentinel);
            }
            (*cases)++;
        }
    }
    if (tg->act_dec) {
        /* act_dec: the F32-input dots on the activations decoded to F32 give vec_dot's bits
         * (the generic vec_dot_f32 and this level's vec_dot_f32_mn and vec_dot_dec_mn, as
         * the backend runs prompts of F16 / BF16 weights) */
        float *yd = malloc(sizeof(float) * (size_t)n * NY);
        for (int j = 0; j < NY; j++)
            fq_type_get_generic((uint32_t)tg->vec_dot_type)->to_float(y + (size_t)j * row, yd + (size_t)j * n, n);
        for (int j = 0; j < NY; j++) {
            for (int i = 0; i < NX; i++) {
                float o;
                tg->vec_dot_f32(n, &o, x + (size_t)i * row, yd + (size_t)j * n);
                bad += !t_same(o, ref[j][i]);
            }
        }
        for (int d = 0; d < 2; d++) { /* vec_dot_f32_mn, vec_dot_dec_mn */
            const fq__dotmn_f32_fn fm = d ? lv->k.vec_dot_dec_mn[t] : lv->k.vec_dot_f32_mn[t];
            for (int nrx = 1; fm && nrx <= NX; nrx += 3) {
                for (int nry = 1; nry <= NY; nry += 2) {
                    for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
                    fm(n, out, BS, x, row, nrx, yd, (size_t)n * sizeof(float), nry);
                    for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
                        const int jj = (int)(o / BS), ii = (int)(o % BS);
                        const int written = ii < nrx && jj < nry;
                        bad += written ? !t_same(out[o], ref[jj][ii]) : t_bits(out[o]) != t_bits(sentinel);
                    }
                    (*cases)++;
                }
            }
        }
        free(yd);
    }
    for (int nrc = 1; nrc <= FQ_DOT_N_MAX; nrc++) {
        for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
        dn(n, out + 2, BS, x + 2 * row, y, row, nrc);
        for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
            const int jj = (int)(o / BS), ii = (int)(o % BS);
            const int written = ii == 2 && jj < nrc;
            bad += written ? !t_same(out[o], ref[jj][2]) : t_bits(out[o]) != t_bits(sentinel);
        }
        (*cases)++;
    }
    free(y);
    free(x);
    return bad;
}

/* the --exact tile (vec_dot_f32_mn) of one level against the generic vec_dot_f32: F16 / BF16
 * / F32 rows against F32 tokens (wide random values; mode 1 puts a NaN with a payload and
 * Inf/0 into the weights, mode 3 Inf/-Inf/0 (make_rows), mode 2 and 3 Inf/0 into the tokens:
 * as in make_rows, two NaNs with different payloads never meet in one sum); returns
 * mismatches */
static int check_exact(fq__dotmn_f32_fn mx, uint32_t t, int64_t n, int mode, int *cases) {
    enum { NX = FQ_DOT_MX, NY = FQ_DOT_NY, BS = NX + 3 };
    const fq_type_traits *tg = fq_type_get_generic(t);
    const size_t row = (size_t)n * esize(t), yrow = (size_t)n * sizeof(float);
    char *x = malloc(row * NX);
    float *y = malloc(yrow * NY);
    make_rows(t, x, NX, (char *)y, 0, n, mode == 2 ? 0 : mode);
    make_rows(FQ_TYPE_F32, (char *)y, 0, (char *)y, NY, n, 0);
    if (mode >= 2)
        for (int j = 0; j < NY; j += 2) y[(size_t)j * n + (size_t)(rng_u64() % (uint64_t)n)] = j % 4 ? INFINITY : 0.0f;
    static float ref[NY][NX], out[NY * BS + NX];
    for (int j = 0; j < NY; j++)
        for (int i = 0; i < NX; i++) tg->vec_dot_f32(n, &ref[j][i], x + (size_t)i * row, y + (size_t)j * n);
    const float sentinel = -777.25f;
    int bad = 0;
    for (int nrx = 1; nrx <= NX; nrx++) {
        for (int nry = 1; nry <= NY; nry++) {
            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
            mx(n, out, BS, x, row, nrx, y, yrow, nry);
            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
                const int jj = (int)(o / BS), ii = (int)(o % BS);
                const int written = ii < nrx && jj < nry;
                bad += written ? !t_same(out[o], ref[jj][ii]) : t_bits(out[o]) != t_bits(sentinel);
            }
            (*cases)++;
        }
    }
    free(y);
    free(x);
    return bad;
}

/* the levels this machine runs, each table as the library assembles it (generic, AVX2,
 * AVX-512 over AVX2); returns how many */
static int make_levels(level levels[3]) {
    int nl = 0;
    memset(levels, 0, 3 * sizeof *levels);
    levels[nl++].name = "generic";
    const int cpu = fq__cpu_isa_level();
    if (cpu >= FQ_ISA_AVX2) {
        levels[nl].name = "avx2";
        fq__isa_fill_avx2(&levels[nl++].k);
    }
    if (cpu >= FQ_ISA_AVX512) {
        levels[nl].name = "avx512";
        fq__isa_fill_avx2(&levels[nl].k); /* the table's order: AVX2 first, then AVX-512 on top */
        fq__isa_kernels k5;
        memset(&k5, 0, sizeof k5);
        fq__isa_fill_avx512(&k5);
        for (int t = 0; t < FQ_TYPE_COUNT; t++) {
            if (k5.vec_dot_mn[t]) levels[nl].k.vec_dot_mn[t] = k5.vec_dot_mn[t];
            if (k5.vec_dot_n[t]) levels[nl].k.vec_dot_n[t] = k5.vec_dot_n[t];
            if (k5.mn_x[t]) levels[nl].k.mn_x[t] = k5.mn_x[t];
            if (k5.mn_y[t]) levels[nl].k.mn_y[t] = k5.mn_y[t];
            if (k5.mv_x[t]) levels[nl].k.mv_x[t] = k5.mv_x[t];
            if (k5.vec_dot_f32_mn[t]) levels[nl].k.vec_dot_f32_mn[t] = k5.vec_dot_f32_mn[t];
            if (k5.vec_dot_dec_mn[t]) levels[nl].k.vec_dot_dec_mn[t] = k5.vec_dot_dec_mn[t];
        }
        if (k5.bf16_span) levels[nl].k.bf16_span = k5.bf16_span;
        nl++;
    }
    return nl;
}

static void test_levels(void) {
    static level levels[3];
    const int nl = make_levels(levels);
    static const int64_t lens[] = {1, 5, 8, 13, 24, 264, 2048 + 8, 2048 + 13};
    for (int l = 0; l < nl; l++) {
        for (size_t ti = 0; ti < FQ_ARRAY_LEN(types); ti++) {
            const uint32_t t = types[ti];
            if (l > 0) { /* a SIMD level has real tiles for these types, not the 1 x 1 loop */
                const fq__isa_kernels *k = &levels[l].k;
                CHECK(k->vec_dot_mn[t] && k->vec_dot_n[t] && k->mn_x[t] * k->mn_y[t] > 1 && k->mv_x[t] > 1 &&
                          k->mn_x[t] <= FQ_DOT_MXL && k->mn_y[t] <= FQ_DOT_NY && k->mv_x[t] <= FQ_DOT_MX,
                      "%s %s: no tile registered or a bad shape (%d x %d, decode %d)", levels[l].name,
                      fq_type_name(t), k->mn_x[t], k->mn_y[t], k->mv_x[t]);
            }
            if (l > 0) { /* the --exact tile */
                const fq__dotmn_f32_fn mx = levels[l].k.vec_dot_f32_mn[t];
                CHECK(mx != NULL, "%s %s: no --exact tile registered", levels[l].name, fq_type_name(t));
                for (int mode = 0; mx && mode < 4; mode++) {
                    int bad = 0, cases = 0;
                    for (size_t li = 0; li < FQ_ARRAY_LEN(lens); li++) bad += check_exact(mx, t, lens[li], mode, &cases);
                    CHECK(bad == 0, "%s %s --exact tile (mode %d): %d outputs differ from the generic vec_dot_f32 "
                          "or stray writes (%d tiles)", levels[l].name, fq_type_name(t), mode, bad, cases);
                }
            }
            for (int mode = 0; mode < 4; mode++) {
                int bad = 0, cases = 0;
                for (size_t li = 0; li < FQ_ARRAY_LEN(lens); li++) bad += check_level(&levels[l], t, lens[li], mode, &cases);
                static const char *modes[] = {"finite", "Inf/NaN/0 in weights", "Inf/NaN/0 in activations",
                                              "Inf/0 in both"};
                CHECK(bad == 0, "%s %s (%s): %d outputs differ from the generic vec_dot or stray writes "
                      "(%d tiles)", levels[l].name, fq_type_name(t), modes[mode], bad, cases);
            }
        }
    }
    printf("levels checked:");
    for (int l = 0; l < nl; l++) printf(" %s", levels[l].name);
    printf("\n");
}

/* The data above tells orders apart: on the same kind of rows, other ways to sum each kind
 * of dot differ from the generic kernel somewhere, so a tile that summed like them would fail
 * test_levels. F16: 16 lanes folded to 8 at the end; one running sum. BF16: products added in
 * pairs before the lane sum (as vdpbf16ps does, there with one rounding). F32: products
 * rounded, then added, instead of fused. (F16 and BF16 products are exact in F32, so fusing
 * them changes nothing.) */
static void test_order_matters(void) {
    const int64_t n = 2048 + 8;
    const int R = 16;
    int d16 = 0, d1 = 0, dpair = 0, dfuse = 0;
    for (size_t ti = 0; ti < FQ_ARRAY_LEN(types); ti++) {
        const uint32_t t = types[ti];
        const size_t row = (size_t)n * esize(t);
        char *x = malloc(row * R), *y = malloc(row * R);
        make_rows(t, x, R, y, R, n, 0);
        for (int r = 0; r < R; r++) {
            const char *a = x + (size_t)r * row, *b = y + (size_t)r * row;
            float g;
            fq_type_get_generic(t)->vec_dot(n, &g, a, b);
            float l16[16] = {0}, one = 0, pr[8] = {0}, um[8] = {0};
            for (int64_t i = 0; i < n; i++) {
                float u, v;
                if (t == FQ_TYPE_F32) {
                    memcpy(&u, a + 4 * i, 4);
                    memcpy(&v, b + 4 * i, 4);
                } else {
                    uint16_t hu, hv;
                    memcpy(&hu, a + 2 * i, 2);
                    memcpy(&hv, b + 2 * i, 2);
                    u = t == FQ_TYPE_F16 ? fq__h2f(hu) : fq__bf2f(hu);
                    v = t == FQ_TYPE_F16 ? fq__h2f(hv) : fq__bf2f(hv);
                }
                const float p = u * v;
                l16[i & 15] += p;
                one += p;
                um[i & 7] += p;
                if (i % 2 == 0 && i + 1 < n) {
                    float u1, v1;
                    uint16_t hu, hv;
                    memcpy(&hu, a + 2 * (i + 1), 2);
                    memcpy(&hv, b + 2 * (i + 1), 2);
                    u1 = fq__bf2f(hu);
                    v1 = fq__bf2f(hv);
                    pr[(i / 2) & 7] += p + u1 * v1;
                }
            }
            float f8[8];
            for (int j = 0; j < 8; j++) f8[j] = l16[j] + l16[j + 8];
            if (t == FQ_TYPE_F16) {
                d16 += t_bits(fq__hsum8(f8)) != t_bits(g);
                d1 += t_bits(one) != t_bits(g);
            } else if (t == FQ_TYPE_BF16) {
                dpair += t_bits(fq__hsum8(pr)) != t_bits(g);
            } else {
                dfuse += t_bits(fq__hsum8(um)) != t_bits(g);
            }
        }
        free(y);
        free(x);
    }
    CHECK(d16 > 0 && d1 > 0 && dpair > 0 && dfuse > 0,
          "test data does not tell summation orders apart (of %d dots: F16 16 lanes %d, one sum %d; "
          "BF16 pairs %d; F32 unfused %d)", R, d16, d1, dpair, dfuse);
}

/* fq__bf16_span_of (generic, and the SIMD levels' kernels) against exponents read with
 * frexpf, and fq__bf16_fused_ok: every pair of BF16 values it accepts has a product exact
 * in F32 (checked in double, where the product of two BF16 values is exact), and it
 * accepts pairs at both of its bounds. */
static void test_bf16_span(void) {
    static level levels[3];
    const int nl = make_levels(levels);
    void (*fns[3])(const uint16_t *, int64_t, fq__bf16_span *) = {fq__bf16_span_of_generic, NULL, NULL};
    for (int l = 1; l < nl; l++) {
        fns[l] = levels[l].k.bf16_span;
        CHECK(fns[l] != NULL, "%s: no bf16_span kernel", levels[l].name);
    }
    uint16_t h[80];
    int bad = 0, runs = 0;
    for (int it = 0; it < 4000; it++) {
        const int n = (int)(rng_u64() % 80), kind = it % 4;
        for (int i = 0; i < n; i++) {
            uint16_t v = (uint16_t)rng_u64();
            if (kind == 1) v &= 0x807f;                   /* zeros and denormals */
            if (kind == 2 && rng_u64() % 3 == 0) v |= 0x7f80; /* Inf and NaN among them */
            if (kind == 3) v = (uint16_t)((v & 0x807f) | (((40 + rng_u64() % 180) & 0xff) << 7));
            h[i] = v;
        }
        int hi = 0, lo = 255; /* the reference: frexpf's exponent; a denormal's field is 0, 1 for lo */
        for (int i = 0; i < n; i++) {
            const float f = fq_bf16_to_f32(h[i]);
            if (f == 0.0f || !isfinite(f)) continue;
            int ex;
            frexpf(f, &ex);
            const int e = fabsf(f) < 0x1p-126f ? 0 : ex + 126;
            hi = e > hi ? e : hi;
            lo = (e ? e : 1) < lo ? (e ? e : 1) : lo;
        }
        const fq__bf16_span init = it % 7 ? FQ_BF16_SPAN_EMPTY : (fq__bf16_span){100, 120};
        if (!(it % 7)) hi = hi > 100 ? hi : 100, lo = lo < 120 ? lo : 120;
        for (int f = 0; f < 3; f++) {
            if (!fns[f]) continue;
            fq__bf16_span sp = init;
            fns[f](h, n, &sp);
            runs++;
            if (sp.hi != hi || sp.lo != lo) {
                if (bad++ < 5)
                    fprintf(stderr, "  %s: span of %d values %d..%d, want %d..%d\n", levels[f].name, n, sp.lo, sp.hi, lo, hi);
            }
        }
    }
    CHECK(bad == 0, "bf16 span: %d of %d runs differ from frexpf", bad, runs);
    int unsound = 0, accepted = 0, at_hi = 0, at_lo = 0;
    for (int it = 0; it < 400000; it++) {
        const uint16_t a = (uint16_t)(rng_u64() & 0xff7fu) | (uint16_t)(it & 1 ? 0 : 0x4000u);
        const uint16_t b = (uint16_t)rng_u64();
        const float fa = fq_bf16_to_f32(a), fb = fq_bf16_to_f32(b);
        if (!isfinite(fa) || !isfinite(fb)) continue;
        fq__bf16_span sa = FQ_BF16_SPAN_EMPTY, sb = FQ_BF16_SPAN_EMPTY;
        fq__bf16_span_of_generic(&a, 1, &sa);
        fq__bf16_span_of_generic(&b, 1, &sb);
        if (!fq__bf16_fused_ok(sa, sb)) continue;
        accepted++;
        at_hi += sa.hi + sb.hi == 380;
        at_lo += sa.lo + sb.lo == 119;
        const double p = (double)fa * (double)fb;
        unsound += !(fabs(p) < 0x1p128) || (double)(float)p != p;
    }
    CHECK(unsound == 0, "fq__bf16_fused_ok accepts %d pairs whose product F32 cannot hold", unsound);
    CHECK(accepted > 1000 && at_hi > 0 && at_lo > 0, "fused_ok: %d accepted, %d at the top bound, %d at the bottom",
          accepted, at_hi, at_lo);
    /* just past each bound a product is inexact: 2^-75 * 2^-75 and 2^127.x * 2^1 */
    fq__bf16_span s1 = FQ_BF16_SPAN_EMPTY, s2 = FQ_BF16_SPAN_EMPTY;
    const uint16_t tiny = fq_f32_to_bf16(0x1.02p-75f), big = fq_f32_to_bf16(0x1.fep127f), two = fq_f32_to_bf16(2.0f);
    fq__bf16_span_of_generic(&tiny, 1, &s1);
    CHECK(!fq__bf16_fused_ok(s1, s1), "2^-75 x 2^-75 (inexact) accepted");
    fq__bf16_span_of_generic(&big, 1, &s1);
    fq__bf16_span_of_generic(&two, 1, &s2);
    CHECK(!fq__bf16_fused_ok(s1, s2), "2^127 x 2 (overflows) accepted");
}

/* the FMA ceiling kernel of `fqlm bench kernels` does every FMA it claims: its result is
 * the scalar recurrence a = fmaf(a, m, c) of each of its 12 chains, summed, times 8 lanes */
static void test_fma_peak(void) {
    float (*pk)(int64_t) = fq__fma_peak_fn();
    if (!pk) {
        printf("no fma_peak at this level\n");
        return;
    }
    for (int64_t iters = 0; iters <= 1000; iters += 333) {
        float sum = 0.0f;
        for (int i = 0; i < 12; i++) {
            float a = (float)i;
            for (int64_t k = 0; k < iters; k++) a = fmaf(a, 0.999999f, 1e-7f);
            sum = i ? sum + a : a;
        }
        const float got = pk(iters), want = 8.0f * sum;
        CHECK(t_same(got, want), "fma_peak(%lld) = %.9g, want %.9g", (long long)iters, got, want);
    }
}

int main(void) {
    fq_qtypes_init();
    test_fma_peak();
    test_levels();
    test_order_matters();
    test_bf16_span();
    return TEST_END();
}
