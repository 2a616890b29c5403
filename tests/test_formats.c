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

/* Back to the variant fq_formats_init would choose, after a test forced one. */
static void best_isa(void) {
    fq_formats_set_isa(fq_cpu_isa_name(fq_cpu_isa()));
}

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
        if ((h & 0x7fff) < 0x7f7f) /* midpoint to the next bf16 magnitude */
            push(&n, (float)((b + (double)fq_bf16_to_f32((uint16_t)(h + 1))) / 2));
        if ((h & 0x7fff) < 0x7bff)
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

/* Counts exactly; sums to 1e-5 (SIMD variants sum in float where |x| is in [2^-40, 2^40]
 * and move the sums to double every few hundred elements); maxima to 1e-6. */
static int stats_match(const fq_qstats *a, const fq_qstats *b) {
    return a->n == b->n && a->n_clipped == b->n_clipped && a->n_flushed == b->n_flushed &&
           a->n_nan == b->n_nan && a->n_summed == b->n_summed &&
           close_rel(a->sum_x2, b->sum_x2, 1e-5) && close_rel(a->sum_err2, b->sum_err2, 1e-5) &&
           close_rel(a->max_err, b->max_err, 1e-6) && a->max_abs_x == b->max_abs_x;
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
    best_isa();
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
    /* e8m23 holds every F32: rounding changes nothing, in any mode */
    {
        static const char *ID[] = {"e8m23", "e8m23:round=rtz", "e8m23:round=stochastic"};
        for (int j = 0; j < 3; j++) {
            fq_format *f = parse(ID[j]);
            int n = 100000, bad = 0;
            for (int i = 0; i < n; i++) g_in[i] = u2f((uint32_t)rnd64());
            memcpy(g_out, g_in, sizeof(float) * (size_t)n);
            fq_format_apply(f, g_out, 1, n, 1, 2, 0, NULL);
            for (int i = 0; i < n; i++) bad += !same(g_out[i], g_in[i]);
            CHECK(!bad, "%s changed %d values", ID[j], bad);
            fq_format_free(f);
        }
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
    const uint64_t cpu = fq__cpu_features(); /* the library's one probe (cpu.h) */
    if ((cpu & FQ_CPUF(F16C)) && (cpu & FQ_CPUF(OS_YMM))) {
        hw_fp16(g_in, g_ref, n);
        bad = 0;
        for (int i = 0; i < n; i++) bad += !same(g_out[i], g_ref[i]);
        CHECK(!bad, "fp16 vs F16C: %d differ", bad);
    } else {
        printf("fp16: no F16C on this CPU, hardware comparison skipped\n");
    }
    const uint64_t bf16set = FQ_CPUF(AVX512F) | FQ_CPUF(AVX512BF16) | FQ_CPUF(AVX512VL) | FQ_CPUF(OS_ZMM);
    if ((cpu & bf16set) == bf16set) {
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

/* ================= MX ================= */

/* The grid of q / 2^f for q = 0..qmax (integer elements). */
static void rfmt_int(rfmt *r, int qmax, int f, int mode) {
    memset(r, 0, sizeof *r);
    r->sp = SP_FINITE; r->sat = 1; r->sub = 1; r->mode = mode;
    r->emin = -1000; /* no flush */
    r->v = malloc(sizeof(double) * (size_t)(qmax + 1));
    for (int q = 0; q <= qmax; q++) r->v[q] = ldexp((double)q, -f);
    r->n = qmax + 1;
    r->maxv = r->v[qmax];
    r->next = ldexp((double)qmax + 1, -f);
}

typedef struct mxcase {
    const char *spec;
    int X, M, sp, emax, isint;
} mxcase;

static const mxcase MXC[] = {
    {"mxfp8_e4m3", 4, 3, SP_FN, 8, 0},     {"mxfp8_e5m2", 5, 2, SP_IEEE, 15, 0},
    {"mxfp6_e2m3", 2, 3, SP_FINITE, 2, 0}, {"mxfp6_e3m2", 3, 2, SP_FINITE, 4, 0},
    {"mxfp4", 2, 1, SP_FINITE, 2, 0},      {"mxint8", 0, 6, SP_FINITE, 0, 1},
};

static void ref_mx(const rfmt *el, int emax, int rule, const float *x, float *y, int nrows,
                   int ncols, int *clip) {
    for (int r = 0; r < nrows; r++)
        for (int b0 = 0; b0 < ncols; b0 += 32) {
            int m = ncols - b0 < 32 ? ncols - b0 : 32;
            const float *p = x + r * ncols + b0;
            float *q = y + r * ncols + b0;
            int *c = clip + r * ncols + b0;
            double amax = 0;
            int special = 0;
            for (int i = 0; i < m; i++) {
                if (!isfinite(p[i])) special = 1;
                else amax = fmax(amax, fabs((double)p[i]));
            }
            for (int i = 0; i < m; i++) c[i] = 0;
            if (special) {
                for (int i = 0; i < m; i++) q[i] = isnan(p[i]) ? p[i] : copysignf(NAN, p[i]);
                continue;
            }
            int k = -127;
            if (amax > 0) {
                int e;
                double mm = frexp(amax, &e); /* amax = mm 2^e, mm in [0.5, 1) */
                int fl = e - 1;
                if (rule == 0) k = fl - emax;
                else if (rule == 1) k = (mm == 0.5 ? fl : fl + 1) - emax;
                else {
                    k = fl - emax - 2;
                    while (ldexp(el->maxv, k) < amax) k++;
                }
                k = k < -127 ? -127 : k > 127 ? 127 : k;
            }
            for (int i = 0; i < m; i++) {
                double v = rround(el, ldexp((double)p[i], -k), &c[i]);
                double out = ldexp(v, k);
                if (fabs(out) > 0x1.fffffep127) { /* the largest grid value F32 can hold */
                    int j = el->n - 1;
                    while (ldexp(el->v[j], k) > 0x1.fffffep127) j--;
                    out = copysign(ldexp(el->v[j], k), v);
                    c[i] = 1;
                }
                q[i] = (float)out;
            }
        }
}

/* Blocks that exercise the scale rules: zeros, a single huge element, subnormal amax,
 * NaN and Inf, exact powers of two, values near F32's largest, random magnitudes. */
static void fill_blocky(float *x, int n, int blk) {
    for (int b0 = 0; b0 < n; b0 += blk) {
        int m = n - b0 < blk ? n - b0 : blk, kind = (int)(rnd64() % 12);
        float *p = x + b0;
        double sc = ldexp(1.0, (int)(rnd64() % 60) - 30);
        for (int i = 0; i < m; i++) p[i] = (float)(rnd_normal() * sc);
        switch (kind) {
        case 0: for (int i = 0; i < m; i++) p[i] = (rnd64() & 1) ? -0.0f : 0.0f; break;
        case 1: for (int i = 0; i < m; i++) p[i] *= 1e-3f; p[rnd64() % m] = 1e30f; break;
        case 2: for (int i = 0; i < m; i++) p[i] = u2f((uint32_t)(rnd64() % 0x00800000u) | (uint32_t)(rnd64() & 0x80000000u)); break;
        case 3: p[rnd64() % m] = NAN; break;
        case 4: p[rnd64() % m] = (rnd64() & 1) ? INFINITY : -INFINITY; break;
        case 5: for (int i = 0; i < m; i++) p[i] = ldexpf(1.0f, (int)(rnd64() % 8)); break;
        case 6: for (int i = 0; i < m; i++) p[i] = (float)(0x1.fffffep127 * (rnd_unit() * 2 - 1)); p[0] = 0x1.fffffep127f; break;
        case 7: for (int i = 0; i < m; i++) p[i] = (float)(rnd_normal() * 1e-38); break;
        case 8: for (int i = 0; i < m; i++) p[i] = (float)((int)(rnd64() % 25) - 12) * 0.25f; break;
        default: break;
        }
    }
}

static void test_mx(void) {
    static const char *RULES[] = {"", "scale=ceil", "scale=rceil"};
    static const char *MODES[] = {"", "round=rna", "round=rtz"};
    static const int COLS[] = {32, 64, 70, 5, 1000};
    int checked = 0;
    for (size_t k = 0; k < sizeof MXC / sizeof MXC[0]; k++)
        for (int rule = 0; rule < 3; rule++)
            for (int mode = 0; mode < 3; mode++) {
                rfmt el;
                if (MXC[k].isint) rfmt_int(&el, 127, 6, mode);
                else rfmt_init(&el, MXC[k].X, MXC[k].M, MXC[k].sp, 1, 1, mode);
                char spec[80];
                snprintf(spec, sizeof spec, "%s%s%s%s%s", MXC[k].spec, rule || mode ? ":" : "",
                         RULES[rule], rule && mode ? "," : "", MODES[mode]);
                fq_format *f = parse(spec);
                CHECK(f != NULL, "parse %s", spec);
                for (size_t c = 0; f && c < sizeof COLS / sizeof COLS[0]; c++) {
                    int ncols = COLS[c], nrows = 3000 / ncols + 1, n = nrows * ncols;
                    fill_blocky(g_in, n, 32);
                    if (ncols % 32) /* blocks then restart at each row: refill per row */
                        for (int r = 0; r < nrows; r++) fill_blocky(g_in + r * ncols, ncols, 32);
                    ref_mx(&el, MXC[k].emax, rule, g_in, g_ref, nrows, ncols, g_clip);
                    fq_qstats sref;
                    stats_ref(g_in, g_ref, g_clip, n, &sref);
                    for (int isa = 0; isa < 3; isa++) {
                        if (fq_formats_set_isa(ISAS[isa])) continue;
                        memcpy(g_out, g_in, sizeof(float) * (size_t)n);
                        fq_qstats st = {0};
                        fq_format_apply(f, g_out, nrows, ncols, 0, 0, 0, &st);
                        int bad = 0;
                        for (int i = 0; i < n; i++) {
                            if (same(g_out[i], g_ref[i])) continue;
                            if (bad++ < 3)
                                fprintf(stderr, "  %s [%s] cols %d elem %d: x=%a got %a want %a\n",
                                        spec, ISAS[isa], ncols, i, g_in[i], g_out[i], g_ref[i]);
                        }
                        CHECK(!bad, "%s [%s] ncols %d: %d results differ from the spec formula",
                              spec, ISAS[isa], ncols, bad);
                        int ok = stats_match(&st, &sref);
                        CHECK(ok, "%s [%s] ncols %d: statistics differ", spec, ISAS[isa], ncols);
                        if (!ok) { print_stats("got", &st); print_stats("want", &sref); }
                        checked += n;
                    }
                }
                fq_format_free(f);
                free(el.v);
            }
    best_isa();
    /* hand-checked: mxfp4 block amax 5 -> X = 2^(2-2) = 1; 5 -> 4 (tie 4|6 to even), 7 of a
     * block with amax 7 -> 6 (saturates) */
    fq_format *f = parse("mxfp4");
    float v[32] = {5.0f, 0.25f, 0.75f, -2.5f};
    fq_qstats st = {0};
    fq_format_apply(f, v, 1, 32, 0, 0, 0, &st);
    CHECK(v[0] == 4.0f && v[1] == 0.0f && v[2] == 1.0f && v[3] == -2.0f,
          "mxfp4 block: %g %g %g %g", v[0], v[1], v[2], v[3]);
    float w[32] = {7.0f, 1.0f};
    fq_format_apply(f, w, 1, 32, 0, 0, 0, &st);
    CHECK(w[0] == 6.0f && w[1] == 1.0f && st.n_clipped == 1, "mxfp4 saturation: %g clipped %llu",
          w[0], (unsigned long long)st.n_clipped);
    fq_format_free(f);
    printf("mx: %d results compared with the spec formula\n", checked);
}

/* ================= NVFP4 ================= */

static void ref_nvfp4(int ts, int mode, const float *x, float *y, int nrows, int ncols,
                      int *clip) {
    rfmt e2m1, e4m3;
    rfmt_init(&e2m1, 2, 1, SP_FINITE, 1, 1, mode);
    rfmt_init(&e4m3, 4, 3, SP_FN, 1, 1, R_RNE);
    float amax_t = 0.0f;
    for (int i = 0; i < nrows * ncols; i++)
        if (isfinite(x[i])) amax_t = fmaxf(amax_t, fabsf(x[i]));
    float s_t = ts ? amax_t / (6.0f * 448.0f) : 1.0f;
    if (amax_t > 0 && s_t == 0) s_t = 0x1p-149f;
    for (int r = 0; r < nrows; r++)
        for (int b0 = 0; b0 < ncols; b0 += 16) {
            int m = ncols - b0 < 16 ? ncols - b0 : 16;
            const float *p = x + r * ncols + b0;
            float *q = y + r * ncols + b0;
            int *c = clip + r * ncols + b0, special = 0;
            float amax = 0.0f;
            for (int i = 0; i < m; i++) {
                c[i] = 0;
                if (!isfinite(p[i])) special = 1;
                else amax = fmaxf(amax, fabsf(p[i]));
            }
            if (special) {
                for (int i = 0; i < m; i++) q[i] = isnan(p[i]) ? p[i] : copysignf(NAN, p[i]);
                continue;
            }
            float v = amax / 6.0f / s_t;
            if (!(v >= 0x1p-6f)) v = 0x1p-6f;
            if (v > 448.0f) v = 448.0f;
            int dummy;
            float s_b = (float)rround(&e4m3, v, &dummy);
            float t = s_b * s_t;
            for (int i = 0; i < m; i++) {
                if (t == 0.0f) { q[i] = copysignf(0.0f, p[i]); continue; }
                float vv = p[i] / t;
                float qq = (float)rround(&e2m1, vv, &c[i]);
                float out = qq * t;
                if (isinf(out)) { out = copysignf(0x1.fffffep127f, out); c[i] = 1; }
                q[i] = out;
            }
        }
    free(e2m1.v);
    free(e4m3.v);
}

static void test_nvfp4(void) {
    static const char *SPECS[] = {"nvfp4", "nvfp4:round=rna", "nvfp4:round=rtz",
                                  "nvfp4:tensor_scale=off", "nvfp4:tensor_scale=off,round=rtz"};
    static const int COLS[] = {16, 48, 40, 7, 512};
    int checked = 0;
    for (size_t k = 0; k < sizeof SPECS / sizeof SPECS[0]; k++) {
        fq_format *f = parse(SPECS[k]);
        CHECK(f != NULL, "parse %s", SPECS[k]);
        if (!f) continue;
        int ts = !strstr(SPECS[k], "tensor_scale=off");
        int mode = strstr(SPECS[k], "rna") ? R_RNA : strstr(SPECS[k], "rtz") ? R_RTZ : R_RNE;
        CHECK(fq_format_row_local(f) == !ts, "%s row_local", SPECS[k]);
        for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++)
            for (int trial = 0; trial < 6; trial++) {
                int ncols = COLS[c], nrows = 2000 / ncols + 1, n = nrows * ncols;
                for (int r = 0; r < nrows; r++) fill_blocky(g_in + r * ncols, ncols, 16);
                if (trial == 1) for (int i = 0; i < n; i++) g_in[i] = (rnd64() & 1) ? 0.0f : -0.0f;
                if (trial == 2) for (int i = 0; i < n; i++) g_in[i] = (float)(rnd_normal() * 1e-42);
                if (trial == 3) for (int i = 0; i < n; i++) g_in[i] = (float)(rnd_normal() * 1e37);
                ref_nvfp4(ts, mode, g_in, g_ref, nrows, ncols, g_clip);
                fq_qstats sref;
                stats_ref(g_in, g_ref, g_clip, n, &sref);
                for (int isa = 0; isa < 3; isa++) {
                    if (fq_formats_set_isa(ISAS[isa])) continue;
                    memcpy(g_out, g_in, sizeof(float) * (size_t)n);
                    fq_qstats st = {0};
                    fq_format_apply(f, g_out, nrows, ncols, 0, 0, 0, &st);
                    int bad = 0;
                    for (int i = 0; i < n; i++) {
                        if (same(g_out[i], g_ref[i])) continue;
                        if (bad++ < 3)
                            fprintf(stderr, "  %s [%s] trial %d elem %d: x=%a got %a want %a\n",
                                    SPECS[k], ISAS[isa], trial, i, g_in[i], g_out[i], g_ref[i]);
                    }
                    CHECK(!bad, "%s [%s] ncols %d trial %d: %d results differ", SPECS[k],
                          ISAS[isa], ncols, trial, bad);
                    int ok = stats_match(&st, &sref);
                    CHECK(ok, "%s [%s]: statistics differ", SPECS[k], ISAS[isa]);
                    if (!ok) { print_stats("got", &st); print_stats("want", &sref); }
                    checked += n;
                }
            }
        fq_format_free(f);
    }
    best_isa();
    /* hand-checked, tensor_scale=off: amax 6 -> s_b = e4m3(1) = 1: elements round on
     * e2m1 directly; amax 60 -> s_b = 10 -> e4m3 10 -> 2.5 * 10 = 25 rounds to 20 or 30 */
    fq_format *f = parse("nvfp4:tensor_scale=off");
    float v[16] = {6.0f, 2.5f, -0.2f, 5.0f};
    fq_format_apply(f, v, 1, 16, 0, 0, 0, NULL);
    CHECK(v[0] == 6.0f && v[1] == 2.0f && v[2] == -0.0f && signbit(v[2]) && v[3] == 4.0f,
          "nvfp4 block: %g %g %g %g", v[0], v[1], v[2], v[3]);
    float w[16] = {60.0f, 25.0f, 35.0f};
    fq_format_apply(f, w, 1, 16, 0, 0, 0, NULL);
    CHECK(w[0] == 60.0f && w[1] == 20.0f && w[2] == 40.0f, "nvfp4 scaled block: %g %g %g", w[0],
          w[1], w[2]);
    fq_format_free(f);
    printf("nvfp4: %d results compared with the spec formula\n", checked);
}

/* ================= integers ================= */

static int apply_expect(const char *spec, const float *x, int nrows, int ncols, const float *want,
                        uint64_t want_clip) {
    fq_format *f = parse(spec);
    if (!f) return 0;
    int ok = 1;
    for (int isa = 0; isa < 3; isa++) {
        if (fq_formats_set_isa(ISAS[isa])) continue;
        float y[64];
        memcpy(y, x, sizeof(float) * (size_t)(nrows * ncols));
        fq_qstats st = {0};
        fq_format_apply(f, y, nrows, ncols, 0, 0, 0, &st);
        for (int i = 0; i < nrows * ncols; i++) {
            if (same(y[i], want[i])) continue;
            fprintf(stderr, "  %s [%s] elem %d: x=%g got %.9g want %.9g\n", spec, ISAS[isa], i,
                    x[i], y[i], want[i]);
            ok = 0;
        }
        if (st.n_clipped != want_clip) {
            fprintf(stderr, "  %s [%s]: clipped %llu want %llu\n", spec, ISAS[isa],
                    (unsigned long long)st.n_clipped, (unsigned long long)want_clip);
            ok = 0;
        }
    }
    best_isa();
    fq_format_free(f);
    return ok;
}

/* Matrices whose scales are powers of two or exact, so every product can be checked by
 * hand; ties (x.5) show the rounding rule. */
static void test_int_hand(void) {
    /* int4: qmax 7. Row 0 amax 7 (scale 1), row 1 amax 3.5 (scale 0.5). */
    const float x[8] = {7.0f, -2.5f, 0.5f, 3.5f, 3.5f, 1.25f, -0.75f, 0.1f};
    /* per_tensor: scale 1: round half to even */
    const float t[8] = {7, -2, 0, 4, 4, 1, -1, 0};
    CHECK(apply_expect("int4", x, 2, 4, t, 0), "int4 per_tensor");
    const float ta[8] = {7, -3, 1, 4, 4, 1, -1, 0};
    CHECK(apply_expect("int4:round=rna", x, 2, 4, ta, 0), "int4 rna");
    const float tz[8] = {7, -2, 0, 3, 3, 1, -0.0f, 0};
    CHECK(apply_expect("int4:round=rtz", x, 2, 4, tz, 0), "int4 rtz");
    /* per_row: row 1 in steps of 0.5: 1.25 -> 2.5 -> 2 -> 1.0; -0.75 -> -1.5 -> -2 -> -1.0 */
    const float r[8] = {7, -2, 0, 4, 3.5f, 1.0f, -1.0f, 0};
    CHECK(apply_expect("int4:per_row", x, 2, 4, r, 0), "int4 per_row");
    /* per_col: column amaxes 7, 2.5, 0.75, 3.5 -> scales 1, 2.5/7, 0.75/7, 0.5 */
    {
        float s1 = 2.5f / 7.0f, s2 = 0.75f / 7.0f;
        float c[8] = {7, -(7 * s1), rintf(0.5f / s2) * s2, 3.5f,
                      4.0f, rintf(1.25f / s1) * s1, -(7 * s2), 0};
        CHECK(apply_expect("int4:per_col", x, 2, 4, c, 0), "int4 per_col");
    }
    /* group=2: groups {7,-2.5} {0.5,3.5} {3.5,1.25} {-0.75,0.1}; second group scale 0.5 ->
     * 0.5/0.5 = 1 -> 0.5; last group scale 0.75/7 */
    {
        float s3 = 0.75f / 7.0f;
        float g[8] = {7, -2, 0.5f, 3.5f, 3.5f, 1.0f, -(7 * s3), rintf(0.1f / s3) * s3};
        CHECK(apply_expect("int4:group=2", x, 2, 4, g, 0), "int4 group=2");
    }
    /* group longer than the row tail: row of 5 in groups of 4 -> {4} then {1} */
    {
        const float y[5] = {1.0f, 2.0f, -7.0f, 0.5f, -0.3f};
        const float w[5] = {1, 2, -7, 0, -(7 * (0.3f / 7.0f))};
        CHECK(apply_expect("int4:group=4", y, 1, 5, w, 0), "int4 group tail");
    }
    /* int2: qmax 1: {-amax, 0, amax} */
    {
        const float y[4] = {2.0f, 0.9f, 1.0f, -1.1f};
        const float w[4] = {2, 0, 0, -2};
        CHECK(apply_expect("int2", y, 1, 4, w, 0), "int2");
    }
    /* asym int4 (0..15): lo -1, hi 6.5 -> scale 0.5, z = 2: steps of 0.5 in [-1, 6.5] */
    {
        const float y[4] = {-1.0f, 0.0f, 2.25f, 6.5f};
        const float w[4] = {-1.0f, 0.0f, 2.0f, 6.5f};
        CHECK(apply_expect("int4:asym", y, 1, 4, w, 0), "int4 asym");
    }
    /* asym with a rounded zero point: lo -0.75, hi 6.75 -> scale 0.5, z = rne(1.5) = 2:
     * range [-1, 6.5]; 6.75 -> 13.5 -> 14 clips to 13 (6.5); -0.75 -> -1.5 -> -2 (-1.0) */
    {
        const float y[4] = {-0.75f, 6.75f, 3.0f, 0.2f};
        const float w[4] = {-1.0f, 6.5f, 3.0f, 0.0f};
        CHECK(apply_expect("int4:asym", y, 1, 4, w, 1), "int4 asym clip at the zero point");
    }
    /* asym per_row, all-positive row: lo = 0 (zero kept exact), hi 15 -> scale 1 */
    {
        const float y[8] = {0.5f, 1.5f, 15.0f, 7.2f, -3.0f, -1.0f, 0.0f, 12.0f};
        /* row 1: lo -3, hi 12 -> scale 1, z = 3: -1 -> -1, 12 -> 12 */
        const float w[8] = {0.0f, 2.0f, 15.0f, 7.0f, -3.0f, -1.0f, 0.0f, 12.0f};
        CHECK(apply_expect("int4:asym,per_row", y, 2, 4, w, 0), "int4 asym per_row");
    }
    /* int8 per_tensor with Inf and NaN: amax over finite values, Inf saturates */
    {
        const float y[4] = {127.0f, INFINITY, NAN, -0.0f};
        const float w[4] = {127.0f, 127.0f, NAN, -0.0f};
        CHECK(apply_expect("int8", y, 1, 4, w, 1), "int8 specials");
    }
    /* all zeros: scale 0 gives signed zeros, no NaN */
    {
        const float y[3] = {0.0f, -0.0f, 0.0f};
        CHECK(apply_expect("int8:per_row", y, 1, 3, y, 0), "int8 zeros");
    }
}

/* A plain implementation of the integer rules for random matrices. */
static void ref_int(int bits, int asym, int gran, int group, int mode, const float *x, float *y,
                    int nrows, int ncols, int *clip) {
    int qmax = asym ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
    rfmt g;
    rfmt_int(&g, qmax, 0, mode);
    int ng = gran == 0 ? 1 : gran == 1 ? nrows : gran == 2 ? ncols : nrows * ((ncols + group - 1) / group);
    for (int gi = 0; gi < ng; gi++) {
        /* the members of group gi */
        int idx[4096], m = 0;
        for (int i = 0; i < nrows * ncols; i++) {
            int r = i / ncols, c = i % ncols, id;
            if (gran == 0) id = 0;
            else if (gran == 1) id = r;
            else if (gran == 2) id = c;
            else id = r * ((ncols + group - 1) / group) + c / group;
            if (id == gi) idx[m++] = i;
        }
        float amax = 0, lo = 0, hi = 0;
        for (int j = 0; j < m; j++) {
            float v = x[idx[j]];
            if (!isfinite(v)) continue;
            amax = fmaxf(amax, fabsf(v));
            lo = fminf(lo, v);
            hi = fmaxf(hi, v);
        }
        float s, z = 0;
        if (asym) {
            s = (float)(((double)hi - lo) / qmax);
            if (s != 0) {
                z = rintf(-lo / s);
                z = z < 0 ? 0 : z > qmax ? (float)qmax : z;
            }
        } else {
            s = amax / (float)qmax;
        }
        for (int j = 0; j < m; j++) {
            int i = idx[j];
            float v = x[i];
            clip[i] = 0;
            if (isnan(v)) { y[i] = v; continue; }
            float q;
            if (s == 0) {
                q = (float)rround(&g, v, &clip[i]);
                y[i] = copysignf(0.0f, v);
                continue;
            }
            q = (float)rround(&g, v / s, &clip[i]);
            if (asym) {
                float l = signbit(v) ? z : qmax - z;
                if (fabsf(q) > l) { q = copysignf(l, q); clip[i] = 1; }
            }
            float out = q * s;
            if (isinf(out)) { out = copysignf(0x1.fffffep127f, out); clip[i] = 1; }
            y[i] = copysignf(fabsf(out), v);
        }
    }
    free(g.v);
}

static void test_int_random(void) {
    static const int BITS[] = {2, 3, 4, 8, 16};
    static const char *GR[] = {"", "per_row", "per_col", "group=5"};
    static const char *MODES[] = {"", "round=rna", "round=rtz"};
    int checked = 0;
    for (size_t b = 0; b < sizeof BITS / sizeof BITS[0]; b++)
        for (int asym = 0; asym < 2; asym++)
            for (int gr = 0; gr < 4; gr++)
                for (int mode = 0; mode < 3; mode++) {
                    char spec[80], opts[60] = "";
                    if (gr) strcat(opts, GR[gr]);
                    if (asym) strcat(strcat(opts, *opts ? "," : ""), "asym");
                    if (mode) strcat(strcat(opts, *opts ? "," : ""), MODES[mode]);
                    snprintf(spec, sizeof spec, "int%d%s%s", BITS[b], *opts ? ":" : "", opts);
                    fq_format *f = parse(spec);
                    CHECK(f != NULL, "parse %s", spec);
                    if (!f) continue;
                    for (int trial = 0; trial < 4; trial++) {
                        int nrows = 1 + (int)(rnd64() % 7), ncols = 1 + (int)(rnd64() % 40);
                        int n = nrows * ncols;
                        double sc = ldexp(1.0, (int)(rnd64() % 40) - 20);
                        for (int i = 0; i < n; i++) g_in[i] = (float)(rnd_normal() * sc);
                        if (trial == 1) g_in[rnd64() % n] = INFINITY;
                        if (trial == 2) g_in[rnd64() % n] = NAN;
                        if (trial == 3) for (int i = 0; i < n; i++) g_in[i] = fabsf(g_in[i]) + 1;
                        ref_int(BITS[b], asym, gr, 5, mode, g_in, g_ref, nrows, ncols, g_clip);
                        fq_qstats sref;
                        stats_ref(g_in, g_ref, g_clip, n, &sref);
                        for (int isa = 0; isa < 3; isa++) {
                            if (fq_formats_set_isa(ISAS[isa])) continue;
                            memcpy(g_out, g_in, sizeof(float) * (size_t)n);
                            fq_qstats st = {0};
                            fq_format_apply(f, g_out, nrows, ncols, 0, 0, 0, &st);
                            int bad = 0;
                            for (int i = 0; i < n; i++) {
                                if (same(g_out[i], g_ref[i])) continue;
                                if (bad++ < 3)
                                    fprintf(stderr, "  %s [%s] %dx%d elem %d: x=%a got %a want %a\n",
                                            spec, ISAS[isa], nrows, ncols, i, g_in[i], g_out[i], g_ref[i]);
                            }
                            CHECK(!bad, "%s [%s]: %d results differ", spec, ISAS[isa], bad);
                            int ok = stats_match(&st, &sref);
                            CHECK(ok, "%s [%s]: statistics differ", spec, ISAS[isa]);
                            if (!ok) { print_stats("got", &st); print_stats("want", &sref); }
                            checked += n;
                        }
                    }
                    fq_format_free(f);
                }
    best_isa();
    printf("integers: %d results compared with the plain implementation\n", checked);
}

/* ================= stochastic rounding ================= */

typedef struct sr_job {
    const fq_format *f;
    float *x;
    int r0, r1, ncols;
    fq_qstats st;
} sr_job;

static void *sr_thread(void *arg) {
    sr_job *j = arg;
    fq_format_apply(j->f, j->x + (size_t)j->r0 * j->ncols, j->r1 - j->r0, j->ncols, 42, 7,
                    j->r0, &j->st);
    return NULL;
}

static void test_stochastic(void) {
    static const char *SPECS[] = {"fp8_e4m3:round=stochastic", "bf16:round=stochastic",
                                  "fp4_e2m1:round=stochastic", "e5m2:round=stochastic",
                                  "int4:per_row,round=stochastic", "int8:asym,group=16,round=stochastic",
                                  "mxfp4:round=stochastic", "mxint8:round=stochastic",
                                  "nvfp4:tensor_scale=off,round=stochastic"};
    int nrows = 64, ncols = 100, n = nrows * ncols;
    for (size_t k = 0; k < sizeof SPECS / sizeof SPECS[0]; k++) {
        fq_format *f = parse(SPECS[k]);
        CHECK(f != NULL, "parse %s", SPECS[k]);
        if (!f) continue;
        for (int i = 0; i < n; i++) g_in[i] = rnd_normal();
        /* reproducible: the same seed and stream give the same result */
        float *a = g_out, *b = g_ref;
        memcpy(a, g_in, sizeof(float) * (size_t)n);
        memcpy(b, g_in, sizeof(float) * (size_t)n);
        fq_format_apply(f, a, nrows, ncols, 42, 7, 0, NULL);
        fq_format_apply(f, b, nrows, ncols, 42, 7, 0, NULL);
        CHECK(!memcmp(a, b, sizeof(float) * (size_t)n), "%s: not reproducible", SPECS[k]);
        /* any split of rows across threads gives the same result (row-local formats) */
        if (fq_format_row_local(f)) {
            for (int nth = 2; nth <= 5; nth += 3) {
                memcpy(b, g_in, sizeof(float) * (size_t)n);
                pthread_t th[5];
                sr_job jobs[5];
                for (int t = 0; t < nth; t++) {
                    jobs[t] = (sr_job){f, b, nrows * t / nth, nrows * (t + 1) / nth, ncols, {0}};
                    pthread_create(&th[t], NULL, sr_thread, &jobs[t]);
                }
                fq_qstats tot = {0};
                for (int t = 0; t < nth; t++) {
                    pthread_join(th[t], NULL);
                    fq_qstats_merge(&tot, &jobs[t].st);
                }
                CHECK(!memcmp(a, b, sizeof(float) * (size_t)n), "%s: %d threads differ",
                      SPECS[k], nth);
                CHECK(tot.n == (uint64_t)n, "%s: threads counted %llu", SPECS[k],
                      (unsigned long long)tot.n);
            }
        }
        /* another seed, another stream: other draws */
        memcpy(b, g_in, sizeof(float) * (size_t)n);
        fq_format_apply(f, b, nrows, ncols, 43, 7, 0, NULL);
        int diff = 0;
        for (int i = 0; i < n; i++) diff += f2u(a[i]) != f2u(b[i]);
        memcpy(b, g_in, sizeof(float) * (size_t)n);
        fq_format_apply(f, b, nrows, ncols, 42, 8, 0, NULL);
        int diff2 = 0;
        for (int i = 0; i < n; i++) diff2 += f2u(a[i]) != f2u(b[i]);
        CHECK(diff > 0 && diff2 > 0, "%s: seed/stream change nothing (%d, %d)", SPECS[k], diff,
              diff2);
        /* every result is one of the two neighbours that round-to-nearest picks from */
        char dn[96], up[96];
        snprintf(dn, sizeof dn, "%s", SPECS[k]);
        char *p = strstr(dn, "round=stochastic");
        strcpy(p, "round=rtz");
        fq_format *fz = parse(dn);
        memcpy(b, g_in, sizeof(float) * (size_t)n);
        fq_format_apply(fz, b, nrows, ncols, 0, 0, 0, NULL);
        int outside = 0;
        for (int i = 0; i < n; i++) {
            /* away from zero: at least the truncation, and within one step of it */
            if (fabsf(a[i]) < fabsf(b[i])) outside++;
        }
        CHECK(!outside, "%s: %d results below the truncated value", SPECS[k], outside);
        (void)up;
        fq_format_free(fz);
        fq_format_free(f);
    }
    /* the draws are pinned: the same input, seed and stream give these bits in every run
     * and build (a change of the draw function shows here) */
    {
        static const struct { const char *spec; uint64_t hash; } G[] = {
            {"fp8_e4m3:round=stochastic", 0x9b72de7f41abb725ull},
            {"int4:group=8,round=stochastic", 0x50257e0b34933543ull},
        };
        for (size_t k = 0; k < sizeof G / sizeof G[0]; k++)
            for (int isa = 0; isa < 3; isa++) {
                if (fq_formats_set_isa(ISAS[isa])) continue;
                fq_format *f = parse(G[k].spec);
                float v[256];
                for (int i = 0; i < 256; i++) v[i] = (float)sin(i * 0.37) * 3.0f;
                fq_format_apply(f, v, 4, 64, 42, fq_stream_id("ffn_norm", 3), 5, NULL);
                uint64_t h = 0xcbf29ce484222325ull;
                for (int i = 0; i < 256; i++) h = (h ^ f2u(v[i])) * 0x100000001b3ull;
                CHECK(h == G[k].hash, "%s [%s]: draws changed (hash %016llx)", G[k].spec,
                      ISAS[isa], (unsigned long long)h);
                fq_format_free(f);
            }
        best_isa();
    }
    /* unbiased: the mean of many draws of one value is that value */
    struct { const char *spec; float x, anchor; int blk; } u[] = {
        {"fp8_e4m3:round=stochastic", 1.1f, 0, 0},
        {"fp8_e4m3:round=stochastic", 0.003f, 0, 0},    /* subnormal region */
        {"fp8_e4m3:round=stochastic", 0.0005f, 0, 0},   /* below the smallest subnormal */
        {"fp8_e4m3:round=stochastic", -300.0f, 0, 0},
        {"bf16:round=stochastic", 1.00123f, 0, 0},
        {"bf16:round=stochastic", 3e-40f, 0, 0},
        {"fp4_e2m1:round=stochastic", 5.3f, 0, 0},
        {"fp4_e2m1:round=stochastic", 0.1f, 0, 0},
        {"int4:round=stochastic", 0.3f, 7.0f, 0},
        {"int8:group=32,round=stochastic", -0.77f, 127.0f, 32},
        {"mxfp4:round=stochastic", 0.7f, 6.0f, 32},
        {"nvfp4:tensor_scale=off,round=stochastic", 2.2f, 6.0f, 16},
    };
    int N = 1 << 18;
    for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
        fq_format *f = parse(u[k].spec);
        if (!f) { CHECK(0, "parse %s", u[k].spec); continue; }
        int blk = u[k].blk ? u[k].blk : 1;
        for (int i = 0; i < N; i++) g_out[i] = u[k].x;
        if (u[k].anchor != 0) /* one element per block fixes the scale */
            for (int i = 0; i < N; i += u[k].blk ? blk : N) g_out[i] = u[k].anchor;
        fq_format_apply(f, g_out, 1, N, 1234, 99, 0, NULL);
        double sum = 0, lo = INFINITY, hi = -INFINITY;
        int cnt = 0;
        for (int i = 0; i < N; i++) {
            if (u[k].anchor != 0 && i % (u[k].blk ? blk : N) == 0) continue;
            sum += g_out[i];
            lo = fmin(lo, g_out[i]);
            hi = fmax(hi, g_out[i]);
            cnt++;
        }
        double mean = sum / cnt, step = hi - lo;
        /* a two-valued draw has sd <= step / 2 */
        double bound = 6.0 * (step / 2) / sqrt((double)cnt) + 1e-7 * fabs(u[k].x);
        CHECK(fabs(mean - u[k].x) <= bound && step > 0, "%s x=%g: mean %.9g (bound %.3g, step %g)",
              u[k].spec, u[k].x, mean, bound, step);
        fq_format_free(f);
    }
}

/* ================= ggml blocks ================= */

static void test_ggml(void) {
    static const struct { const char *spec; uint32_t type; double budget; } G[] = {
        {"q8_0", FQ_TYPE_Q8_0, 0.002}, {"q8_1", FQ_TYPE_Q8_1, 0.002}, {"q8_k", FQ_TYPE_Q8_K, 0.002},
        {"q4_0", FQ_TYPE_Q4_0, 0.002}, {"q4_1", FQ_TYPE_Q4_1, 0.002}, {"q5_0", FQ_TYPE_Q5_0, 0.002},
        {"q5_1", FQ_TYPE_Q5_1, 0.002}, {"q2_k", FQ_TYPE_Q2_K, 0.0075}, {"q3_k", FQ_TYPE_Q3_K, 0.004},
        {"q4_k", FQ_TYPE_Q4_K, 0.002}, {"q5_k", FQ_TYPE_Q5_K, 0.002}, {"q6_k", FQ_TYPE_Q6_K, 0.002},
        {"q8_0:enc=act", FQ_TYPE_Q8_0, 0.002}, {"q8_1:enc=act", FQ_TYPE_Q8_1, 0.002},
    };
    for (size_t k = 0; k < sizeof G / sizeof G[0]; k++) {
        const fq_type_traits *t = fq_type_get_generic(G[k].type);
        int act = strstr(G[k].spec, "act") != NULL;
        fq_format *f = NULL;
        fq_err e;
        if (!t || !t->from_float || fq_format_parse(G[k].spec, &f, &e)) {
            CHECK(0, "%s: not available (%s)", G[k].spec, f ? "" : e.msg);
            continue;
        }
        /* encode + decode equals the engine's own functions, block by block; a row tail
         * is zero-padded */
        int ncols_list[] = {512, 300, 7};
        for (int c = 0; c < 3; c++) {
            int ncols = ncols_list[c], nrows = 3, n = nrows * ncols, bk = (int)t->blck;
            for (int i = 0; i < n; i++) g_in[i] = rnd_normal() * (float)(1 + (i / 32) % 5);
            g_in[5] = -0.0f;
            if (c == 0) g_in[ncols + 3] = NAN; /* second row, first block: all NaN */
            memcpy(g_out, g_in, sizeof(float) * (size_t)n);
            fq_format_apply(f, g_out, nrows, ncols, 0, 0, 0, NULL);
            int bad = 0;
            uint8_t q[512];
            float in[256], dec[256];
            for (int r = 0; r < nrows; r++)
                for (int b0 = 0; b0 < ncols; b0 += bk) {
                    int m = ncols - b0 < bk ? ncols - b0 : bk, nanb = 0;
                    const float *p = g_in + r * ncols + b0;
                    for (int i = 0; i < bk; i++) in[i] = i < m ? p[i] : 0.0f;
                    for (int i = 0; i < m; i++) nanb |= !isfinite(p[i]);
                    if (nanb) { /* the encoders are undefined there: the block must be NaN */
                        for (int i = 0; i < m; i++) bad += !isnan(g_out[r * ncols + b0 + i]);
                        continue;
                    }
                    (act ? t->from_float_act : t->from_float)(in, q, bk);
                    if (t->to_float) {
                        t->to_float(q, dec, bk);
                    } else { /* no ggml decoder: d * q */
                        uint16_t h;
                        memcpy(&h, q, 2);
                        for (int i = 0; i < bk; i++) dec[i] = fq_fp16_to_f32(h) * (float)(int8_t)q[4 + i];
                    }
                    for (int i = 0; i < m; i++) {
                        float want = dec[i] == 0.0f ? copysignf(0.0f, p[i]) : dec[i];
                        bad += !same(g_out[r * ncols + b0 + i], want);
                    }
                }
            CHECK(!bad, "%s ncols %d: %d values differ from the engine's encode+decode", G[k].spec,
                  ncols, bad);
        }
        /* ggml's own budget (test-quantize-fns: 0.1 + 2 cos(i), 4096 values, sqrt(sum)/n) */
        int n = 32 * 128;
        for (int i = 0; i < n; i++) g_in[i] = 0.1f + 2 * cosf((float)i);
        memcpy(g_out, g_in, sizeof(float) * (size_t)n);
        fq_qstats st = {0};
        fq_format_apply(f, g_out, 1, n, 0, 0, 0, &st);
        double s = 0;
        for (int i = 0; i < n; i++) s += ((double)g_out[i] - g_in[i]) * ((double)g_out[i] - g_in[i]);
        double ggml_err = sqrt(s) / n;
        CHECK(ggml_err < G[k].budget, "%s: ggml error %.6f over budget %.4f", G[k].spec, ggml_err,
              G[k].budget);
        CHECK(close_rel(st.sum_err2, s, 1e-9), "%s: statistics %.9g vs %.9g", G[k].spec,
              st.sum_err2, s);
        fq_format_free(f);
    }
    /* q8_0 on unit-range data: true RMSE near step / sqrt(12) with step = amax / 127 */
    fq_format *f = parse("q8_0");
    int n = 1 << 16;
    for (int i = 0; i < n; i++) g_in[i] = (float)(rnd_unit() * 2 - 1);
    fq_qstats st = {0};
    fq_format_apply(f, g_in, 1, n, 0, 0, 0, &st);
    double rmse = fq_qstats_rmse(&st);
    CHECK(rmse < 1.0 / 127 / sqrt(12.0) * 1.05, "q8_0 unit-range rmse %.6f", rmse);
    printf("q8_0: rmse %.6f on uniform [-1, 1] (ggml metric on ggml's data passes 0.002)\n", rmse);
    fq_format_free(f);
}

/* ================= parsing ================= */

static void test_parse(void) {
    static const struct { const char *in, *canon; } ok[] = {
        {"fp8_e4m3:round=stochastic", "fp8_e4m3:round=stochastic"},
        {"int4:asym,group=32", "int4:group=32,asym"},
        {"int4:group=32,asym", "int4:group=32,asym"},
        {"E3M4:subnormal=off,fn", "e3m4:fn,subnormal=off"},
        {"mxfp4:scale=rceil", "mxfp4:scale=rceil"},
        {"fp8_e4m3:fn,sat=on,round=rne", "fp8_e4m3"},
        {"fp8_e4m3:ieee", "fp8_e4m3:ieee"},
        {"fp8_e4m3:ieee,sat=on", "fp8_e4m3:ieee,sat=on"},
        {"e4m3:ieee,subnormal=on", "e4m3"},
        {"bf16:sat=on", "bf16:sat=on"},
        {"int8:per_row", "int8:per_row"},
        {"int8:per_tensor,sym", "int8"},
        {"int16:per_col,round=rtz", "int16:per_col,round=rtz"},
        {"nvfp4:tensor_scale=off", "nvfp4:tensor_scale=off"},
        {"Q4_K", "q4_k"},
        {"q8_0:enc=act", "q8_0:enc=act"},
        {"q8_0:enc=ref", "q8_0"},
        {"f32", "f32"},
        {"e8m23", "e8m23"},
        {"e1m2:finite", "e1m2:finite"},
        {"mxint8:scale=ceil,round=rna", "mxint8:scale=ceil,round=rna"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        fq_format *f = parse(ok[i].in);
        CHECK(f && !strcmp(fq_format_str(f), ok[i].canon), "'%s' -> '%s', want '%s'", ok[i].in,
              f ? fq_format_str(f) : "(error)", ok[i].canon);
        if (!f) continue;
        fq_format *g = parse(fq_format_str(f)); /* the canonical string parses to itself */
        CHECK(g && !strcmp(fq_format_str(g), fq_format_str(f)), "'%s' does not round-trip",
              fq_format_str(f));
        fq_format_free(g);
        fq_format_free(f);
    }
    static const struct { const char *in, *must; } bad[] = {
        {"fp9", "mxfp4"}, {"fp9", "int2..int8"}, {"int4:foo", "group=G"},
        {"int4:group=0", "group"}, {"e9m2", "eXmY"}, {"e1m0", "no normal"},
        {"e8m7:fn", "F32"}, {"e2m1:finite,sat=off", "sat=off"}, {"int4:per_row,per_col", "conflicts"},
        {"f32:round=rna", "no options"}, {"q4_0:enc=act", "enc=ref|act"}, {"int1", "valid formats"},
        {"int17", "valid formats"}, {"e04m3", "valid formats"}, {"bf16:", "valid options"},
        {"mxfp4:scale=up", "floor|ceil|rceil"}, {"bf16:round=nearest", "stochastic"},
        {"", "valid formats"}, {"fp8_e4m3:sat", "valid options"}, {"bf16:round=rne,round=rtz", "conflicts"},
        {"e4m24", "valid formats"}, {"mxfp4:asym", "scale=floor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fq_format *f = NULL;
        fq_err e = {{0}};
        int rc = fq_format_parse(bad[i].in, &f, &e);
        CHECK(rc == -1 && !f && strstr(e.msg, bad[i].must), "'%s' should fail mentioning '%s': %s",
              bad[i].in, bad[i].must, rc ? e.msg : "(accepted)");
    }
    static const struct { const char *spec; int local; } rl[] = {
        {"bf16", 1}, {"mxfp4", 1}, {"nvfp4", 0}, {"nvfp4:tensor_scale=off", 1}, {"int8", 0},
        {"int8:per_row", 1}, {"int8:per_col", 0}, {"int8:group=64", 1}, {"q4_k", 1}, {"f32", 1},
    };
    for (size_t i = 0; i < sizeof rl / sizeof rl[0]; i++) {
        fq_format *f = parse(rl[i].spec);
        CHECK(f && fq_format_row_local(f) == rl[i].local, "%s: row_local", rl[i].spec);
        fq_format_free(f);
    }
    /* every listed format parses, describes itself, and keeps -0 and NaN */
    int listed = 0;
    for (int i = 0; fq_format_list(i); i++, listed++) {
        fq_format *f = parse(fq_format_list(i));
        CHECK(f != NULL, "listed format %s does not parse", fq_format_list(i));
        if (!f) continue;
        fq_format_desc d;
        fq_format_describe(f, &d);
        CHECK(d.family && d.bits > 0 && d.rounding, "%s: description", fq_format_list(i));
        float v[40] = {-0.0f, 0.0f, -1e-30f, 1.0f}, nan1 = NAN;
        for (int j = 4; j < 40; j++) v[j] = 0.5f;
        fq_format_apply(f, v, 1, 40, 0, 0, 0, NULL);
        fq_format_apply(f, &nan1, 1, 1, 0, 0, 0, NULL);
        CHECK(signbit(v[0]) && v[0] == 0 && !signbit(v[1]) && v[1] == 0 && signbit(v[2]) &&
              isnan(nan1), "%s: -0 %g, +0 %g, -1e-30 -> %g, NaN -> %g", fq_format_list(i), v[0],
              v[1], v[2], nan1);
        fq_format_free(f);
    }
    CHECK(listed >= 36, "only %d formats listed", listed);
    CHECK(fq_format_help() && strstr(fq_format_help(), "rceil"), "help text");
}

/* ================= statistics ================= */

static void test_stats(void) {
    fq_format *f = parse("fp8_e4m3");
    float x[6] = {1000.0f, 1e-5f, -0.0f, NAN, 1.0f, 0.3f};
    fq_qstats st = {0};
    fq_format_apply(f, x, 2, 3, 0, 0, 0, &st);
    double e0 = 448.0 - 1000.0, e1 = -1e-5f, e5 = (double)x[5] - 0.3f;
    CHECK(st.n == 6 && st.n_clipped == 1 && st.n_flushed == 1 && st.n_nan == 0 && st.n_summed == 5,
          "counts n %llu clip %llu flush %llu nan %llu summed %llu", (unsigned long long)st.n,
          (unsigned long long)st.n_clipped, (unsigned long long)st.n_flushed,
          (unsigned long long)st.n_nan, (unsigned long long)st.n_summed);
    CHECK(x[5] == 0.3125f, "0.3 -> %g", x[5]);
    double se2 = e0 * e0 + e1 * e1 + e5 * e5;
    CHECK(close_rel(st.sum_err2, se2, 1e-12) && st.max_err == 552.0 && st.max_abs_x == 1000.0,
          "sums e2 %.17g want %.17g, max err %g, max x %g", st.sum_err2, se2, st.max_err, st.max_abs_x);
    double sx2 = 1e6 + (double)1e-5f * 1e-5f + 1 + (double)0.3f * 0.3f;
    CHECK(close_rel(st.sum_x2, sx2, 1e-12), "sum x2 %.17g want %.17g", st.sum_x2, sx2);
    CHECK(close_rel(fq_qstats_rmse(&st), sqrt(se2 / 5), 1e-12), "rmse");
    CHECK(close_rel(fq_qstats_sqnr_db(&st), 10 * log10(sx2 / se2), 1e-12), "sqnr");
    CHECK(close_rel(fq_qstats_pct_clipped(&st), 100.0 / 6, 1e-12) &&
          close_rel(fq_qstats_pct_flushed(&st), 100.0 / 6, 1e-12), "percentages");
    fq_qstats tot = {0};
    fq_qstats_merge(&tot, &st);
    fq_qstats_merge(&tot, &st);
    CHECK(tot.n == 12 && tot.n_clipped == 2 && tot.max_err == 552.0 &&
          close_rel(tot.sum_err2, 2 * se2, 1e-12), "merge");
    fq_format_free(f);
    /* NaN produced: overflow without saturation; a block with Inf */
    f = parse("fp8_e4m3:sat=off");
    float y[3] = {1e4f, INFINITY, 2.0f};
    memset(&st, 0, sizeof st);
    fq_format_apply(f, y, 1, 3, 0, 0, 0, &st);
    CHECK(st.n_nan == 2 && st.n_clipped == 2 && st.n_summed == 1, "sat=off: nan %llu clip %llu",
          (unsigned long long)st.n_nan, (unsigned long long)st.n_clipped);
    fq_format_free(f);
    f = parse("mxfp8_e4m3");
    float z[40];
    for (int i = 0; i < 40; i++) z[i] = (float)i;
    z[3] = INFINITY;
    memset(&st, 0, sizeof st);
    fq_format_apply(f, z, 1, 40, 0, 0, 0, &st);
    CHECK(st.n_nan == 32 && isnan(z[0]) && isnan(z[31]) && z[32] == 32.0f && st.n_summed == 8,
          "mx NaN block: nan %llu", (unsigned long long)st.n_nan);
    fq_format_free(f);
    /* identity: counts, changes nothing */
    f = parse("f32");
    float w[4] = {1.5f, -2.0f, NAN, 1e-40f};
    memset(&st, 0, sizeof st);
    fq_format_apply(f, w, 1, 4, 0, 0, 0, &st);
    CHECK(w[0] == 1.5f && w[3] == 1e-40f && st.n == 4 && st.n_summed == 3 && st.sum_err2 == 0 &&
          isinf(fq_qstats_sqnr_db(&st)) && st.max_abs_x == 2.0, "f32 identity");
    fq_format_free(f);
    /* apply without statistics, and on empty tensors */
    f = parse("int8");
    float q[2] = {1.0f, 2.0f};
    fq_format_apply(f, q, 1, 2, 0, 0, 0, NULL);
    fq_format_apply(f, q, 0, 2, 0, 0, 0, &st);
    CHECK(q[1] == 2.0f, "NULL stats");
    fq_format_free(f);
    CHECK(fq_stream_id("ffn_norm", 3) == fq_stream_id("ffn_norm", 3) &&
          fq_stream_id("ffn_norm", 3) != fq_stream_id("ffn_norm", 4) &&
          fq_stream_id("ffn_norm", 3) != fq_stream_id("attn_norm", 3), "stream ids");
    /* the hashes every stochastic draw, synthetic weight and checksum depends on, pinned:
     * FNV-1a of "a", splitmix64's first output for seed 0, MurmurHash3's fmix64(1), and a
     * stream id as computed before the hashes moved to common.h */
    CHECK(fq_fnv1a("a", 1) == 0xaf63dc4c8601ec8cull && fq_fnv1a("", 0) == 0xcbf29ce484222325ull, "fnv1a");
    CHECK(fq_mix64(0x9e3779b97f4a7c15ull) == 0xe220a8397b1dcdafull, "mix64: %016llx",
          (unsigned long long)fq_mix64(0x9e3779b97f4a7c15ull));
    CHECK(fq_fmix64(1) == 0xb456bcfc34c2cb2cull, "fmix64: %016llx", (unsigned long long)fq_fmix64(1));
    CHECK(fq_stream_id("ffn_norm", 3) == 0x76e6f8b81c8323a8ull, "stream id: %016llx",
          (unsigned long long)fq_stream_id("ffn_norm", 3));
}

/* ================= SIMD variants against the scalar kernel ================= */

static void fill_mixed(float *x, int n) {
    for (int i = 0; i < n; i++) {
        uint64_t r = rnd64();
        switch (r % 16) {
        case 0: x[i] = 0.0f; break;
        case 1: x[i] = -0.0f; break;
        case 2: x[i] = u2f((uint32_t)(rnd64() >> 32)); break; /* anything */
        case 3: x[i] = (float)ldexp(rnd_normal(), (int)(rnd64() % 300) - 150); break;
        case 4: x[i] = (r >> 8) % 64 == 0 ? NAN : (r >> 8) % 64 == 1 ? -INFINITY : rnd_normal(); break;
        default: x[i] = rnd_normal() * (float)((r >> 8) % 4 + 1);
        }
    }
}

static void test_variants(void) {
    static const char *SPECS[] = {
        "bf16", "fp16", "tf32", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1",
        "e3m4:fn,subnormal=off", "e8m7:subnormal=off", "e5m2:fn,sat=off", "e1m3:finite", "e2m0",
        "fp8_e4m3:round=rna", "fp8_e4m3:round=rtz", "bf16:round=rtz", "fp16:round=rna",
        "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8",
        "mxfp4:scale=rceil,round=rtz", "mxint8:scale=ceil,round=rna", "nvfp4", "nvfp4:round=rtz",
        "nvfp4:tensor_scale=off,round=rna", "int8", "int4:per_row", "int4:group=32,asym",
        "int8:per_col", "int3:asym,per_row,round=rna", "int16:group=7,round=rtz", "int2:asym",
        "fp8_e4m3:round=stochastic", "fp16:round=stochastic", "bf16:round=stochastic",
        "e3m4:fn,subnormal=off,round=stochastic", "mxfp4:round=stochastic",
        "mxint8:round=stochastic", "nvfp4:round=stochastic", "int4:group=32,asym,round=stochastic",
        "int8:per_col,round=stochastic", "fp6_e3m2:round=stochastic",
    };
    static const int COLS[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 100, 257, 1023};
    int cmp = 0;
    for (size_t k = 0; k < sizeof SPECS / sizeof SPECS[0]; k++) {
        fq_format *f = parse(SPECS[k]);
        CHECK(f != NULL, "parse %s", SPECS[k]);
        if (!f) continue;
        for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++) {
            int ncols = COLS[c], nrows = 1 + (int)(rnd64() % 3), n = nrows * ncols;
            fill_mixed(g_in, n);
            fq_formats_set_isa("generic");
            memcpy(g_ref, g_in, sizeof(float) * (size_t)n);
            fq_qstats sref = {0};
            fq_format_apply(f, g_ref, nrows, ncols, 0, 0, 0, &sref);
            for (int isa = 1; isa < 3; isa++) {
                if (fq_formats_set_isa(ISAS[isa])) continue;
                memcpy(g_out, g_in, sizeof(float) * (size_t)n);
                fq_qstats st = {0};
                fq_format_apply(f, g_out, nrows, ncols, 0, 0, 0, &st);
                int bad = 0;
                for (int i = 0; i < n; i++) {
                    if (f2u(g_out[i]) == f2u(g_ref[i]) || (isnan(g_out[i]) && isnan(g_ref[i]))) continue;
                    if (bad++ < 3)
                        fprintf(stderr, "  %s [%s] %dx%d elem %d: x=%a got %a want %a\n", SPECS[k],
                                ISAS[isa], nrows, ncols, i, g_in[i], g_out[i], g_ref[i]);
                }
                CHECK(!bad, "%s [%s] %dx%d: %d differ from generic", SPECS[k], ISAS[isa], nrows,
                      ncols, bad);
                int ok = stats_match(&st, &sref);
                CHECK(ok, "%s [%s] %dx%d: statistics differ from generic", SPECS[k], ISAS[isa],
                      nrows, ncols);
                if (!ok) { print_stats("got", &st); print_stats("want", &sref); }
                cmp++;
            }
        }
        fq_format_free(f);
    }
    best_isa();
    printf("variants: %d SIMD runs compared with the scalar kernel\n", cmp);
}

int main(void) {
    g_cap = 1 << 22;
    g_in = malloc(sizeof(float) * (size_t)g_cap);
    g_out = malloc(sizeof(float) * (size_t)g_cap);
    g_ref = malloc(sizeof(float) * (size_t)g_cap);
    g_clip = malloc(sizeof(int) * (size_t)g_cap);
    printf("formats: kernels %s\n", fq_formats_init());
    test_parse();
    test_stats();
    test_known_values();
    test_int_hand();
    test_int_random();
    test_mx();
    test_nvfp4();
    test_minifloats();
    test_bf16_fp16_hw();
    test_variants();
    test_stochastic();
    test_ggml();
    free(g_in);
    free(g_out);
    free(g_ref);
    free(g_clip);
    return TEST_END();
}
