/* test_formats.c - the number formats of fake quantization, bit for bit.
 *
 * Every minifloat is checked against a slow reference written here from the format's
 * definition: enumerate all representable values, then round by binary search with the
 * tie rule. MX and NVFP4 against plain implementations of the spec formulas, integers
 * against hand-computed matrices, ggml blocks against the engine's own encoder and
 * decoder. Each path runs with every kernel variant this CPU has (generic, AVX2,
 * AVX-512), and the variants must agree with each other and with the reference. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "harness.h"
#include "qtypes.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rnd_unit(void) { return (double)(rnd64() >> 11) * 0x1p-53; }
static float rnd_normal(void) {
    double u = rnd_unit() + 1e-300, v = rnd_unit();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Equal bits, or both NaN. */
static int same(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return f2u(a) == f2u(b);
}

static fq_format *parse(const char *spec) {
    fq_format *f = NULL;
    fq_err e;
    if (fq_format_parse(spec, &f, &e)) {
        fprintf(stderr, "parse '%s': %s\n", spec, e.msg);
        return NULL;
    }
    return f;
}

static const char *ISAS[] = {"generic", "avx2", "avx512"};

/* ================= reference minifloats ================= */

enum { SP_IEEE, SP_FN, SP_FINITE };
enum { R_RNE, R_RNA, R_RTZ };

typedef struct rfmt {
    int X, M, sp, sat, sub, mode;
    int emin, emax, bias;
    double *v;   /* non-negative finite values in code order (code i -> v[i]) */
    int n;
    double maxv, next; /* largest value, and the virtual code after it */
} rfmt;

static double decode_code(const rfmt *r, int code) {
    int f = code >> r->M, m = code & ((1 << r->M) - 1);
    if (f == 0) return ldexp((double)m, r->emin - r->M);
    return ldexp(1.0 + ldexp((double)m, -r->M), f - r->bias);
}

static void rfmt_init(rfmt *r, int X, int M, int sp, int sat, int sub, int mode) {
    memset(r, 0, sizeof *r);
    r->X = X; r->M = M; r->sp = sp; r->sat = sat; r->sub = sub; r->mode = mode;
    r->bias = (1 << (X - 1)) - 1;
    r->emin = 1 - r->bias;
    int ncodes = 1 << (X + M);
    r->v = malloc(sizeof(double) * (size_t)ncodes);
    for (int c = 0; c < ncodes; c++) {
        int f = c >> M, m = c & ((1 << M) - 1);
        if (sp == SP_IEEE && f == (1 << X) - 1) break;                       /* Inf, NaN */
        if (sp == SP_FN && f == (1 << X) - 1 && m == (1 << M) - 1) break;    /* NaN */
        r->v[r->n++] = decode_code(r, c);
    }
    r->maxv = r->v[r->n - 1];
    int lastf = (r->n - 1) >> M;
    r->emax = lastf - r->bias;
    r->next = r->maxv + ldexp(1.0, r->emax - M);
}

/* Rounds x (finite or not) as the format says. *clip: out of range. */
static double rround(const rfmt *r, double x, int *clip) {
    *clip = 0;
    if (isnan(x)) return x;
    double s = signbit(x) ? -1.0 : 1.0, a = fabs(x);
    double ovf = r->mode == R_RTZ ? r->maxv
               : r->sp == SP_IEEE ? (r->sat ? r->maxv : INFINITY)
               : r->sp == SP_FN ? (r->sat ? r->maxv : NAN) : r->maxv;
    if (isinf(a)) {
        if (r->sp == SP_IEEE) return x;
        *clip = 1;
        return r->sp == SP_FN && !r->sat ? NAN : s * r->maxv;
    }
    double minnorm = ldexp(1.0, r->emin);
    if (!r->sub && a < minnorm) return s * 0.0;
    if (a >= r->next) { *clip = 1; return s * ovf; }
    int lo = 0, hi = r->n - 1; /* largest i with v[i] <= a */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (r->v[mid] <= a) lo = mid; else hi = mid - 1;
    }
    int i = lo;
    if (r->v[i] == a) return s * a;
    double l = r->v[i], u = i + 1 < r->n ? r->v[i + 1] : r->next;
    int up;
    if (r->mode == R_RTZ) up = 0;
    else if (a - l < u - a) up = 0;
    else if (a - l > u - a) up = 1;
    else up = r->mode == R_RNA ? 1 : ((i + 1) % 2 == 0);
    if (!up) return s * l;
    if (i + 1 >= r->n) { *clip = 1; return s * ovf; }
    return s * u;
}

/* Spec string of a reference format (named where the library has a name). */
typedef struct mcase {
    const char *spec;
    int X, M, sp, sat, sub;
} mcase;

static const mcase MCASES[] = {
    {"bf16", 8, 7, SP_IEEE, 0, 1},
    {"fp16", 5, 10, SP_IEEE, 0, 1},
    {"tf32", 8, 10, SP_IEEE, 0, 1},
    {"fp8_e4m3", 4, 3, SP_FN, 1, 1},
    {"fp8_e4m3:sat=off", 4, 3, SP_FN, 0, 1},
    {"fp8_e5m2", 5, 2, SP_IEEE, 0, 1},
    {"fp8_e5m2:sat=on", 5, 2, SP_IEEE, 1, 1},
    {"fp6_e2m3", 2, 3, SP_FINITE, 1, 1},
    {"fp6_e3m2", 3, 2, SP_FINITE, 1, 1},
    {"fp4_e2m1", 2, 1, SP_FINITE, 1, 1},
    {"e3m4:fn,subnormal=off", 3, 4, SP_FN, 1, 0},
    {"e4m3", 4, 3, SP_IEEE, 0, 1},
    {"e5m10:fn", 5, 10, SP_FN, 1, 1},
    {"e2m0", 2, 0, SP_IEEE, 0, 1},
    {"e3m0:fn,sat=off", 3, 0, SP_FN, 0, 1},
    {"e1m2:finite", 1, 2, SP_FINITE, 1, 1},
    {"e1m3:fn,sat=off", 1, 3, SP_FN, 0, 1},
    {"e8m0", 8, 0, SP_IEEE, 0, 1},
    {"e8m7:subnormal=off,sat=on", 8, 7, SP_IEEE, 1, 0},
    {"e6m9:finite,subnormal=off", 6, 9, SP_FINITE, 1, 0},
    {"e7m12", 7, 12, SP_IEEE, 0, 1},
};

static float *g_in, *g_out, *g_ref;
static int g_cap;

static void push(int *n, float v) {
    if (*n < g_cap) g_in[(*n)++] = v;
}

/* The inputs every minifloat sees: all bf16 and fp16 patterns and their midpoints, the
 * format's own values, midpoints and their F32 neighbours, boundaries, specials, and
 * random F32 bit patterns (every binade, subnormals, NaN, Inf). */
static int build_inputs(const rfmt *r, int nrandom) {
    int n = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float b = fq_bf16_to_f32((uint16_t)h), f = fq_fp16_to_f32((uint16_t)h);
        push(&n, b);
        push(&n, f);
        if ((h & 0x7fff) < 0x7f80) /* midpoint to the next bf16 magnitude */
            push(&n, (float)((b + (double)fq_bf16_to_f32((uint16_t)(h + 1))) / 2));
        if ((h & 0x7fff) < 0x7c00)
            push(&n, (float)((f + (double)fq_fp16_to_f32((uint16_t)(h + 1))) / 2));
    }
    for (int i = 0; i <= r->n; i++) {
        double v = i < r->n ? r->v[i] : r->next, w = i + 1 < r->n ? r->v[i + 1] : r->next;
        for (int s = 0; s < 2; s++) {
            double sg = s ? -1 : 1;
            float fv = (float)(sg * v);
            push(&n, fv);
            push(&n, nextafterf(fv, INFINITY));
            push(&n, nextafterf(fv, -INFINITY));
            if (i + 1 <= r->n && i < r->n) {
                float mid = (float)(sg * (v + w) / 2);
                push(&n, mid);
                push(&n, nextafterf(mid, INFINITY));
                push(&n, nextafterf(mid, -INFINITY));
            }
        }
    }
    double b[] = {ldexp(1.0, r->emin), ldexp(1.0, r->emin - r->M), ldexp(1.0, r->emin - r->M - 1),
                  ldexp(1.0, r->emin - r->M - 2), r->maxv, r->next, (r->maxv + r->next) / 2,
                  1e-45, 1e-40, 1e-38, 3e38, 0x1.fffffep127};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        float f = (float)b[i];
        for (int s = 0; s < 2; s++, f = -f) {
            push(&n, f);
            push(&n, nextafterf(f, INFINITY));
            push(&n, nextafterf(f, -INFINITY));
        }
    }
    push(&n, 0.0f);
    push(&n, -0.0f);
    push(&n, INFINITY);
    push(&n, -INFINITY);
    push(&n, NAN);
    push(&n, -NAN);
    push(&n, u2f(0x7f800001u)); /* signalling NaN */
    for (int i = 0; i < nrandom; i++) push(&n, u2f((uint32_t)rnd64()));
    return n;
}

static void stats_ref(const float *x, const float *y, const int *clip, int n, fq_qstats *s) {
    memset(s, 0, sizeof *s);
    s->n = (uint64_t)n;
    for (int i = 0; i < n; i++) {
        uint32_t ax = f2u(x[i]) & 0x7fffffff, ay = f2u(y[i]) & 0x7fffffff;
        s->n_clipped += clip[i] != 0;
        s->n_flushed += ax && !ay;
        s->n_nan += ay > 0x7f800000 && ax <= 0x7f800000;
        if (ax < 0x7f800000 && ay < 0x7f800000) {
            double e = (double)y[i] - x[i];
            s->n_summed++;
            s->sum_x2 += (double)x[i] * x[i];
            s->sum_err2 += e * e;
            if (fabs(e) > s->max_err) s->max_err = fabs(e);
            if (fabs((double)x[i]) > s->max_abs_x) s->max_abs_x = fabs((double)x[i]);
        }
    }
}

static int close_rel(double a, double b, double tol) {
    if (a == b) return 1;
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b));
}

static int stats_match(const fq_qstats *a, const fq_qstats *b) {
    return a->n == b->n && a->n_clipped == b->n_clipped && a->n_flushed == b->n_flushed &&
           a->n_nan == b->n_nan && a->n_summed == b->n_summed &&
           close_rel(a->sum_x2, b->sum_x2, 1e-12) && close_rel(a->sum_err2, b->sum_err2, 1e-9) &&
           a->max_err == b->max_err && a->max_abs_x == b->max_abs_x;
}

static void print_stats(const char *what, const fq_qstats *s) {
    fprintf(stderr, "  %s: n=%llu clip=%llu flush=%llu nan=%llu summed=%llu x2=%.17g e2=%.17g "
            "me=%.9g mx=%.9g\n", what, (unsigned long long)s->n,
            (unsigned long long)s->n_clipped, (unsigned long long)s->n_flushed,
            (unsigned long long)s->n_nan, (unsigned long long)s->n_summed, s->sum_x2,
            s->sum_err2, s->max_err, s->max_abs_x);
}

static int *g_clip;

static void test_minifloats(void) {
    static const char *RN[] = {"", "round=rna", "round=rtz"};
    int total_checked = 0;
    for (size_t k = 0; k < sizeof MCASES / sizeof MCASES[0]; k++) {
        const mcase *mc = &MCASES[k];
        for (int mode = 0; mode < 3; mode++) {
            rfmt r;
            rfmt_init(&r, mc->X, mc->M, mc->sp, mc->sat, mc->sub, mode);
            char spec[96];
            if (!mode) snprintf(spec, sizeof spec, "%s", mc->spec);
            else snprintf(spec, sizeof spec, "%s%s%s", mc->spec, strchr(mc->spec, ':') ? "," : ":", RN[mode]);
            fq_format *f = parse(spec);
            CHECK(f != NULL, "parse %s", spec);
            if (!f) { free(r.v); continue; }
            /* 10^6 random inputs for the main formats under RNE, fewer elsewhere */
            int nrandom = mode == 0 && k < 10 ? 1000000 : 100000;
            int n = build_inputs(&r, nrandom);
            for (int i = 0; i < n; i++) {
                double y = rround(&r, g_in[i], &g_clip[i]);
                g_ref[i] = (float)y;
            }
            fq_qstats sref;
            stats_ref(g_in, g_ref, g_clip, n, &sref);
            for (int isa = 0; isa < 3; isa++) {
                if (fq_formats_set_isa(ISAS[isa])) continue;
                memcpy(g_out, g_in, sizeof(float) * (size_t)n);
                fq_qstats st = {0};
                fq_format_apply(f, g_out, 1, n, 0, 0, 0, &st);
                int bad = 0;
                for (int i = 0; i < n && bad < 5; i++) {
                    if (same(g_out[i], g_ref[i])) continue;
                    bad++;
                    fprintf(stderr, "  %s [%s] x=%a (0x%08x) got %a want %a\n", spec, ISAS[isa],
                            g_in[i], f2u(g_in[i]), g_out[i], g_ref[i]);
                }
                CHECK(!bad, "%s [%s]: results differ from the reference", spec, ISAS[isa]);
                int ok = stats_match(&st, &sref);
                CHECK(ok, "%s [%s]: statistics differ from the reference", spec, ISAS[isa]);
                if (!ok) { print_stats("got", &st); print_stats("want", &sref); }
                total_checked += n;
            }
            /* every representable value is kept as it is, both signs */
            int kept = 1;
            for (int i = 0; i < r.n; i++) {
                float v[2] = {(float)r.v[i], -(float)r.v[i]};
                fq_format_apply(f, v, 1, 2, 0, 0, 0, NULL);
                if (!(mc->sub || r.v[i] == 0 || r.v[i] >= ldexp(1.0, r.emin))) continue;
                kept &= f2u(v[0]) == f2u((float)r.v[i]) && f2u(v[1]) == f2u(-(float)r.v[i]);
            }
            CHECK(kept, "%s: a representable value changed", spec);
            fq_format_free(f);
            free(r.v);
        }
    }
    fq_formats_set_isa("generic");
    fq_formats_init();
    printf("minifloats: %d results compared with the reference\n", total_checked);
}

/* Known values of the named formats (independent of the reference's decoder). */
static void test_known_values(void) {
    rfmt r;
    rfmt_init(&r, 2, 1, SP_FINITE, 1, 1, 0);
    static const double fp4[] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    CHECK(r.n == 8, "fp4 has %d values", r.n);
    for (int i = 0; i < 8 && i < r.n; i++) CHECK(r.v[i] == fp4[i], "fp4 value %d = %g", i, r.v[i]);
    free(r.v);
    struct { const char *spec; double max, minnorm, minsub, bits; } k[] = {
        {"fp8_e4m3", 448, 0x1p-6, 0x1p-9, 8}, {"fp8_e5m2", 57344, 0x1p-14, 0x1p-16, 8},
        {"fp6_e2m3", 7.5, 1, 0.125, 6}, {"fp6_e3m2", 28, 0.25, 0.0625, 6},
        {"fp4_e2m1", 6, 1, 0.5, 4}, {"bf16", 0x1.fep127, 0x1p-126, 0x1p-133, 16},
        {"fp16", 65504, 0x1p-14, 0x1p-24, 16}, {"tf32", 0x1.ffcp127, 0x1p-126, 0x1p-136, 19},
        {"mxfp8_e4m3", 448, 0x1p-6, 0x1p-9, 8.25}, {"mxfp4", 6, 1, 0.5, 4.25},
        {"mxfp6_e3m2", 28, 0.25, 0.0625, 6.25}, {"nvfp4", 6, 1, 0.5, 4.5},
        {"mxint8", 127.0 / 64, NAN, 1.0 / 64, 8.25},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        fq_format *f = parse(k[i].spec);
        if (!f) { CHECK(0, "parse %s", k[i].spec); continue; }
        fq_format_desc d;
        fq_format_describe(f, &d);
        CHECK(d.max_finite == k[i].max && d.min_subnormal == k[i].minsub && d.bits == k[i].bits &&
              (isnan(k[i].minnorm) ? isnan(d.min_normal) : d.min_normal == k[i].minnorm),
              "%s: max %g min normal %g min subnormal %g bits %g", k[i].spec, d.max_finite,
              d.min_normal, d.min_subnormal, d.bits);
        fq_format_free(f);
    }
    /* the OCP E4M3 overflow boundary: 464 is the tie between 448 and the NaN code */
    fq_format *f = parse("fp8_e4m3:sat=off");
    float v[4] = {464.0f, nextafterf(464.0f, 1000), 480.0f, -1e6f};
    fq_format_apply(f, v, 1, 4, 0, 0, 0, NULL);
    CHECK(v[0] == 448.0f && isnan(v[1]) && isnan(v[2]) && isnan(v[3]),
          "e4m3 sat=off boundary: %g %g %g %g", v[0], v[1], v[2], v[3]);
    fq_format_free(f);
    f = parse("fp8_e5m2");
    float w[3] = {61440.0f, nextafterf(61440.0f, 0), -INFINITY}; /* tie 57344|Inf -> Inf */
    fq_format_apply(f, w, 1, 3, 0, 0, 0, NULL);
    CHECK(isinf(w[0]) && w[1] == 57344.0f && w[2] == -INFINITY, "e5m2 overflow: %g %g %g", w[0],
          w[1], w[2]);
    fq_format_free(f);
}

/* bf16 and fp16 against the engine's scalar converters and the CPU's own instructions. */
#if defined(__x86_64__)
__attribute__((target("f16c"))) static void hw_fp16(const float *x, float *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128i h = _mm_cvtps_ph(_mm_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_ps(y + i, _mm_cvtph_ps(h));
    }
    for (; i < n; i++) y[i] = x[i];
}
__attribute__((target("avx512f,avx512bf16,avx512vl"))) static void hw_bf16(const float *x,
                                                                          float *y, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh b = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        __m512i w = _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)b), 16);
        _mm512_storeu_si512((void *)(y + i), w);
    }
    for (; i < n; i++) y[i] = x[i];
}
#endif

static void test_bf16_fp16_hw(void) {
    int n = 1 << 20;
    for (int i = 0; i < n; i++) g_in[i] = u2f((uint32_t)rnd64());
    for (uint32_t h = 0; h < 65536; h++) g_in[h] = fq_bf16_to_f32((uint16_t)h) * 1.00390625f;
    fq_format *bf = parse("bf16"), *hf = parse("fp16");
    memcpy(g_out, g_in, sizeof(float) * (size_t)n);
    fq_format_apply(bf, g_out, 1, n, 0, 0, 0, NULL);
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += !same(g_out[i], fq_bf16_to_f32(fq_f32_to_bf16(g_in[i])));
    CHECK(!bad, "bf16 vs fq_f32_to_bf16: %d differ", bad);
    memcpy(g_out, g_in, sizeof(float) * (size_t)n);
    fq_format_apply(hf, g_out, 1, n, 0, 0, 0, NULL);
    bad = 0;
    for (int i = 0; i < n; i++)
        bad += !same(g_out[i], fq_fp16_to_f32(fq_f32_to_fp16(g_in[i])));
    CHECK(!bad, "fp16 vs fq_f32_to_fp16: %d differ", bad);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("f16c")) {
        hw_fp16(g_in, g_ref, n);
        bad = 0;
        for (int i = 0; i < n; i++) bad += !same(g_out[i], g_ref[i]);
        CHECK(!bad, "fp16 vs F16C: %d differ", bad);
    } else {
        printf("fp16: no F16C on this CPU, hardware comparison skipped\n");
    }
    if (__builtin_cpu_supports("avx512bf16")) {
        memcpy(g_out, g_in, sizeof(float) * (size_t)n);
        fq_format_apply(bf, g_out, 1, n, 0, 0, 0, NULL);
        hw_bf16(g_in, g_ref, n);
        bad = 0;
        int skipped = 0;
        for (int i = 0; i < n; i++) {
            /* VCVTNEPS2BF16 treats F32 subnormals as zero: compare normal inputs only */
            if ((f2u(g_in[i]) & 0x7f800000) == 0 && (f2u(g_in[i]) & 0x7fffff)) { skipped++; continue; }
            bad += !same(g_out[i], g_ref[i]);
        }
        CHECK(!bad, "bf16 vs AVX512-BF16: %d differ", bad);
    } else {
        printf("bf16: no AVX512-BF16 on this CPU, hardware comparison skipped\n");
    }
#endif
    fq_format_free(bf);
    fq_format_free(hf);
}
