/* test_quants.c - the ggml tensor types: decode against llama.cpp's golden dequantized
 * tensors, F16/BF16 conversions against slow references, reference encoders against the
 * bytes llama-quantize wrote, activation encoders against a slow round-half-even model,
 * dot products of every type and ISA variant against float64 sums of the decoded rows.
 * Run from the repository root. */
#include "harness.h"
#include "qtypes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DATA "tests/data/"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float rng_uniform(void) { /* [-1, 1) */
    return (float)((double)(rng_u64() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}
static float f_from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static void *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* ---- a tiny GGUF v2/v3 walker (tensor infos only; the test data is trusted) ---------- */

typedef struct {
    char name[96];
    uint32_t type, n_dims;
    int64_t ne[4];
    uint64_t offset;
} g_tensor;

typedef struct {
    uint8_t *buf;
    size_t size, pos;
    uint64_t n_tensors, data_start;
    g_tensor *t;
} g_file;

static uint64_t g_u64(g_file *g) {
    uint64_t v = 0;
    if (g->pos + 8 <= g->size) memcpy(&v, g->buf + g->pos, 8);
    g->pos += 8;
    return v;
}
static uint32_t g_u32(g_file *g) {
    uint32_t v = 0;
    if (g->pos + 4 <= g->size) memcpy(&v, g->buf + g->pos, 4);
    g->pos += 4;
    return v;
}
static void g_skip_value(g_file *g, uint32_t type) {
    static const int sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
        g->pos += g_u64(g);
    } else if (type == 9) {
        uint32_t et = g_u32(g);
        uint64_t n = g_u64(g);
        for (uint64_t i = 0; i < n && g->pos < g->size; i++) g_skip_value(g, et);
    } else if (type < 13) {
        g->pos += (size_t)sz[type];
    } else {
        g->pos = g->size; /* unknown: stop */
    }
}

static int g_open(g_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    g->buf = read_all(path, &g->size);
    if (!g->buf || g->size < 24 || memcmp(g->buf, "GGUF", 4) != 0) return -1;
    g->pos = 4;
    g_u32(g); /* version */
    g->n_tensors = g_u64(g);
    uint64_t n_kv = g_u64(g), alignment = 32;
    for (uint64_t i = 0; i < n_kv && g->pos < g->size; i++) {
        uint64_t klen = g_u64(g);
        const char *key = (const char *)g->buf + g->pos;
        int is_align = klen == 17 && memcmp(key, "general.alignment", 17) == 0;
        g->pos += klen;
        uint32_t type = g_u32(g);
        if (is_align && type == 4) {
            alignment = g_u32(g);
        } else {
            g_skip_value(g, type);
        }
    }
    g->t = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->t);
    for (uint64_t i = 0; i < g->n_tensors && g->pos < g->size; i++) {
        uint64_t nlen = g_u64(g);
        size_t c = nlen < sizeof g->t[i].name ? nlen : sizeof g->t[i].name - 1;
        memcpy(g->t[i].name, g->buf + g->pos, c);
        g->pos += nlen;
        g->t[i].n_dims = g_u32(g);
        for (int d = 0; d < 4; d++) g->t[i].ne[d] = 1;
        for (uint32_t d = 0; d < g->t[i].n_dims && d < 4; d++) g->t[i].ne[d] = (int64_t)g_u64(g);
        g->t[i].type = g_u32(g);
        g->t[i].offset = g_u64(g);
    }
    g->data_start = (g->pos + alignment - 1) / alignment * alignment;
    return g->pos <= g->size ? 0 : -1;
}
static void g_close(g_file *g) {
    free(g->buf);
    free(g->t);
}
static const g_tensor *g_find(const g_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    }
    return NULL;
}
static const void *g_data(const g_file *g, const g_tensor *t) {
    return g->buf + g->data_start + t->offset;
}

/* ---- slow references ------------------------------------------------------------------- */

static double half_value(uint16_t h) { /* finite halves only */
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

static uint16_t slow_f32_to_f16(float f) {
    uint32_t b = bits_of(f);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    if (isnan(f)) return (uint16_t)(sign | 0x7e00 | ((b >> 13) & 0x3ff));
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00; /* halfway to 2^16 ties to the even infinity */
    int lo = 0, hi = 0x7bff;                 /* largest half <= a, by bisection */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (half_value((uint16_t)mid) <= a) lo = mid; else hi = mid - 1;
    }
    if (lo == 0x7bff) return sign | 0x7bff;
    double d0 = a - half_value((uint16_t)lo), d1 = half_value((uint16_t)(lo + 1)) - a;
    int r = d0 < d1 ? lo : d1 < d0 ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | r);
}

static uint16_t slow_f32_to_bf16(float f) {
    uint32_t b = bits_of(f);
    if (isnan(f)) return (uint16_t)((b >> 16) | 0x40);
    if (isinf(f)) return (uint16_t)(b >> 16);
    uint32_t t = b >> 16, mag = t & 0x7fff;
    double a = fabs((double)f);
    double lo = fabs((double)f_from_bits(mag << 16));
    double hi = mag + 1 == 0x7f80 ? ldexp(1.0, 128) : fabs((double)f_from_bits((mag + 1) << 16));
    double d0 = a - lo, d1 = hi - a;
    uint32_t r = d0 < d1 ? mag : d1 < d0 ? mag + 1 : (mag & 1 ? mag + 1 : mag);
    return (uint16_t)((t & 0x8000) | r);
}

/* llama.cpp's AVX2 quantize_row_q8_0/q8_1 in the plainest terms: d = amax/127 (F32),
 * stored as F16; q = round-half-even(x * (127/amax)) computed as a float product. */
static int slow_act_q8(const float *x, int8_t *q, float *d) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    *d = amax / 127.f;
    float id = amax != 0 ? 127.f / amax : 0.f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        float v = x[j] * id;
        double r = nearbyint((double)v); /* default rounding mode: half to even */
        q[j] = (int8_t)r;
        sum += q[j];
    }
    return sum;
}

/* ---- helpers on the trait table --------------------------------------------------------- */

static const uint32_t all_types[] = {
    FQ_TYPE_F32, FQ_TYPE_F16, FQ_TYPE_BF16, FQ_TYPE_Q4_0, FQ_TYPE_Q4_1, FQ_TYPE_Q5_0,
    FQ_TYPE_Q5_1, FQ_TYPE_Q8_0, FQ_TYPE_Q8_1, FQ_TYPE_Q2_K, FQ_TYPE_Q3_K, FQ_TYPE_Q4_K,
    FQ_TYPE_Q5_K, FQ_TYPE_Q6_K, FQ_TYPE_Q8_K,
};

static uint32_t type_by_name(const char *name) {
    for (uint32_t t = 0; t < FQ_TYPE_COUNT; t++) {
        const fq_type_traits *tt = fq_type_get(t);
        if (tt->name && strcmp(tt->name, name) == 0) return t;
    }
    return UINT32_MAX;
}

/* Kernel sets to check: generic, then every SIMD level this CPU and OS can run (whatever
 * FQLM_ISA / FQLM_FORCE_GENERIC say). NULL entries fall back to the generic kernel, as in the table. */
typedef struct {
    const char *name;
    fq__isa_kernels k;
} variant;
static variant variants[3];
static int n_variants;

static void setup_variants(void) {
    memset(variants, 0, sizeof variants);
    variants[n_variants++].name = "generic";
    int level = fq__cpu_isa_level();
    if (level >= 1) {
        variants[n_variants].name = "avx2";
        fq__isa_fill_avx2(&variants[n_variants++].k);
    }
    if (level >= 2) {
        variants[n_variants].name = "avx512";
        fq__isa_fill_avx512(&variants[n_variants++].k);
    }
}
static fq__dot_fn var_dot(const variant *v, uint32_t t) {
    return v->k.vec_dot[t] ? v->k.vec_dot[t] : fq_type_get_generic(t)->vec_dot;
}
static fq__act_fn var_act(const variant *v, uint32_t t) {
    return v->k.from_float_act[t] ? v->k.from_float_act[t] : fq_type_get_generic(t)->from_float_act;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_table(void) {
    for (size_t i = 0; i < FQ_ARRAY_LEN(all_types); i++) {
        uint32_t t = all_types[i];
        const fq_type_traits *tt = fq_type_get(t), *tg = fq_type_get_generic(t);
        CHECK(tt && tt->supported && tt->to_float && tt->from_float && tt->vec_dot &&
                  tt->vec_dot_f32 && tt->vec_dot_n && tt->vec_dot_mn && tg && tg->vec_dot_n &&
                  tg->vec_dot_mn, "%s: incomplete traits", fq_type_name(t));
        CHECK(tg && tg->blck == tt->blck && tg->type_size == tt->type_size,
              "%s: generic table differs", fq_type_name(t));
        const fq_type_traits *p = fq_type_get((uint32_t)tt->vec_dot_type);
        CHECK(p && p->from_float_act, "%s: partner %s has no activation encoder",
              fq_type_name(t), fq_type_name((uint32_t)tt->vec_dot_type));
        CHECK(fq_row_size(t, 4096) == (size_t)(4096 / tt->blck) * tt->type_size,
              "%s: row size", fq_type_name(t));
        CHECK(tt->blck == 1 || fq_row_size(t, tt->blck + 1) == 0, "%s: partial block",
              fq_type_name(t));
    }
    static const struct { uint32_t t, partner; } pairs[] = {
        {FQ_TYPE_F32, FQ_TYPE_F32}, {FQ_TYPE_F16, FQ_TYPE_F16}, {FQ_TYPE_BF16, FQ_TYPE_BF16},
        {FQ_TYPE_Q4_0, FQ_TYPE_Q8_0}, {FQ_TYPE_Q5_0, FQ_TYPE_Q8_0}, {FQ_TYPE_Q8_0, FQ_TYPE_Q8_0},
        {FQ_TYPE_Q4_1, FQ_TYPE_Q8_1}, {FQ_TYPE_Q5_1, FQ_TYPE_Q8_1}, {FQ_TYPE_Q2_K, FQ_TYPE_Q8_K},
        {FQ_TYPE_Q3_K, FQ_TYPE_Q8_K}, {FQ_TYPE_Q4_K, FQ_TYPE_Q8_K}, {FQ_TYPE_Q5_K, FQ_TYPE_Q8_K},
        {FQ_TYPE_Q6_K, FQ_TYPE_Q8_K},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(pairs); i++) {
        CHECK(fq_type_get(pairs[i].t)->vec_dot_type == (int)pairs[i].partner, "%s partner",
              fq_type_name(pairs[i].t));
    }
    CHECK(fq_type_get(FQ_TYPE_COUNT) == NULL && fq_type_get_generic(FQ_TYPE_COUNT) == NULL,
          "out of range id");
    CHECK(!fq_type_get(17)->supported && fq_row_size(17, 256) == 74, "IQ2_XS known, unsupported");
}

static void test_fp16(void) {
    int bad_rt = 0, bad_inline = 0, bad_value = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fq_fp16_to_f32((uint16_t)h);
        if (bits_of(f) != bits_of(fq__h2f((uint16_t)h))) bad_inline++;
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (!is_nan && (h & 0x7c00) != 0x7c00 && (double)f != half_value((uint16_t)h)) bad_value++;
        uint16_t back = fq_f32_to_fp16(f);
        /* NaNs come back quiet with their payload; everything else unchanged */
        uint16_t want = is_nan ? (uint16_t)(h | 0x200) : (uint16_t)h;
        if (back != want) bad_rt++;
    }
    CHECK(bad_rt == 0, "fp16 round trip: %d of 65536 patterns differ", bad_rt);
    CHECK(bad_inline == 0, "fq__h2f differs from fq_fp16_to_f32 on %d patterns", bad_inline);
    CHECK(bad_value == 0, "fp16 -> f32 wrong value on %d patterns", bad_value);

    int bad = 0, first = -1;
    for (int i = 0; i < 400000; i++) {
        float f;
        if (i % 4 == 0) {
            f = f_from_bits((uint32_t)rng_u64());
        } else if (i % 4 == 1) { /* exact ties between two neighbouring halves */
            uint16_t h = (uint16_t)(rng_u64() % 0x7bff);
            f = (float)((half_value(h) + half_value((uint16_t)(h + 1))) / 2);
            if (rng_u64() & 1) f = -f;
        } else if (i % 4 == 2) { /* a step either side of a tie */
            uint16_t h = (uint16_t)(rng_u64() % 0x7bff);
            f = (float)((half_value(h) + half_value((uint16_t)(h + 1))) / 2);
            f = nextafterf(f, (rng_u64() & 1) ? INFINITY : 0.f);
        } else { /* the interesting range */
            f = ldexpf(rng_uniform(), (int)(rng_u64() % 44) - 28);
        }
        if (fq_f32_to_fp16(f) != slow_f32_to_f16(f)) {
            if (first < 0) first = (int)bits_of(f);
            bad++;
        }
    }
    static const float edge[] = {65504.f, 65519.996f, 65520.f, 65536.f, 1e-8f, 2.9802322e-08f,
                                 5.9604645e-08f, 6.1035156e-05f, 6.097555e-05f, 0.f, -0.f};
    for (size_t i = 0; i < FQ_ARRAY_LEN(edge); i++) {
        if (fq_f32_to_fp16(edge[i]) != slow_f32_to_f16(edge[i])) bad++;
    }
    CHECK(bad == 0, "f32 -> fp16: %d mismatches vs slow reference (first 0x%08x)", bad, first);
}

static void test_bf16(void) {
    int bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fq_bf16_to_f32((uint16_t)h);
        int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        uint16_t want = is_nan ? (uint16_t)(h | 0x40) : (uint16_t)h;
        if (fq_f32_to_bf16(f) != want || bits_of(f) != bits_of(fq__bf2f((uint16_t)h))) bad_rt++;
    }
    CHECK(bad_rt == 0, "bf16 round trip: %d of 65536 patterns differ", bad_rt);
    int bad = 0;
    for (int i = 0; i < 400000; i++) {
        uint32_t b = (uint32_t)rng_u64();
        if (i % 2) b = (b & 0xffff0000u) | 0x8000u; /* exact ties */
        float f = f_from_bits(b);
        if (fq_f32_to_bf16(f) != slow_f32_to_bf16(f)) bad++;
    }
    CHECK(bad == 0, "f32 -> bf16: %d mismatches vs slow reference", bad);
}

/* Every golden dequantized tensor, bit for bit, and the exact-mode dot on its rows. */
static void test_golden_dequant(void) {
    char *index = read_all(DATA "golden/dequant/index.txt", NULL);
    CHECK(index != NULL, "cannot read golden/dequant/index.txt");
    if (!index) return;
    int files = 0;
    char *save = NULL;
    for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char file[256], tname[32];
        long long ne0, ne1;
        if (sscanf(line, "%255s %31s %lld %lld", file, tname, &ne0, &ne1) != 4) continue;
        files++;
        char model[512], path[512];
        const char *dot = strstr(file, ".blk.");
        snprintf(model, sizeof model, DATA "models/%.*s.gguf", (int)(dot - file), file);
        snprintf(path, sizeof path, DATA "golden/dequant/%s", file);
        g_file g;
        int ok = g_open(&g, model) == 0;
        CHECK(ok, "%s: cannot parse", model);
        const g_tensor *t = ok ? g_find(&g, "blk.0.ffn_down.weight") : NULL;
        uint32_t type = type_by_name(tname);
        CHECK(t && t->type == type && t->ne[0] == ne0 && t->ne[1] == ne1,
              "%s: tensor missing or not %s [%lld, %lld]", model, tname, ne0, ne1);
        size_t glen = 0;
        float *want = read_all(path, &glen);
        if (t && want && glen == (size_t)(ne0 * ne1) * 4) {
            const fq_type_traits *tt = fq_type_get(type);
            float *got = malloc((size_t)(ne0 * ne1) * 4);
            const uint8_t *src = g_data(&g, t);
            size_t rs = fq_row_size(type, ne0);
            for (long long r = 0; r < ne1; r++) tt->to_float(src + r * rs, got + r * ne0, ne0);
            size_t nbad = 0;
            for (long long i = 0; i < ne0 * ne1; i++) nbad += bits_of(got[i]) != bits_of(want[i]);
            CHECK(nbad == 0, "%s: %zu of %lld values differ from ggml", file, nbad, ne0 * ne1);
            /* the portable decoder too, whichever one the live table holds */
            fq_type_get_generic(type)->to_float(src, got, ne0 * ne1);
            nbad = 0;
            for (long long i = 0; i < ne0 * ne1; i++) nbad += bits_of(got[i]) != bits_of(want[i]);
            CHECK(nbad == 0, "%s: generic decoder: %zu values differ from ggml", file, nbad);
            /* the one-call decode of the whole tensor is the same as row by row */
            float *all = malloc((size_t)(ne0 * ne1) * 4);
            tt->to_float(src, all, ne0 * ne1);
            CHECK(memcmp(all, got, (size_t)(ne0 * ne1) * 4) == 0, "%s: whole-tensor decode", file);
            /* exact mode: vec_dot_f32 equals the F32 dot of the decoded row, bit for bit */
            float *y = malloc((size_t)ne0 * 4);
            for (long long i = 0; i < ne0; i++) y[i] = rng_uniform();
            int nbad_dot = 0;
            for (long long r = 0; r < ne1; r += 17) {
                float a, b;
                tt->vec_dot_f32(ne0, &a, src + r * rs, y);
                fq_vec_dot_f32_f32x(ne0, &b, got + r * ne0, y); /* the exact-mode F32 dot */
                nbad_dot += bits_of(a) != bits_of(b);
            }
            CHECK(nbad_dot == 0, "%s: vec_dot_f32 differs from decode+dot on %d rows", file, nbad_dot);
            free(y);
            free(all);
            free(got);
        } else {
            CHECK(0, "%s: golden file missing or wrong size", path);
        }
        free(want);
        if (ok) g_close(&g);
    }
    CHECK(files == 16, "expected 16 golden files, saw %d", files);
    free(index);
}

/* The reference encoders against llama-quantize (no imatrix): every tensor of a quantized
 * model whose F32 original exists in the matching -f32 model must re-encode to the same
 * bytes. Models made from an F16 intermediate are tried with the F16-rounded source. */
static void test_encoders_vs_files(void) {
    static const char *families[][2] = {
        {"synth-l2-e256-f32", "synth-l2-e256-"},
        {"stories260K-ff192-f32", "stories260K-ff192-"},
    };
    static const char *suffixes[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_s",
                                     "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
                                     "f16", "bf16"};
    int seen_type[FQ_TYPE_COUNT] = {0}, ok_type[FQ_TYPE_COUNT] = {0};
    for (size_t f = 0; f < FQ_ARRAY_LEN(families); f++) {
        char path[512];
        snprintf(path, sizeof path, DATA "models/%s.gguf", families[f][0]);
        g_file src;
        if (g_open(&src, path) != 0) continue;
        for (size_t s = 0; s < FQ_ARRAY_LEN(suffixes); s++) {
            snprintf(path, sizeof path, DATA "models/%s%s.gguf", families[f][1], suffixes[s]);
            g_file q;
            FILE *probe = fopen(path, "rb");
            if (!probe) continue;
            fclose(probe);
            if (g_open(&q, path) != 0) {
                CHECK(0, "%s: cannot parse", path);
                continue;
            }
            for (uint64_t i = 0; i < q.n_tensors; i++) {
                const g_tensor *t = &q.t[i];
                const g_tensor *o = g_find(&src, t->name);
                const fq_type_traits *tt = fq_type_get(t->type);
                if (!o || o->type != FQ_TYPE_F32 || !tt || !tt->supported ||
                    t->type == FQ_TYPE_F32 || o->ne[0] != t->ne[0])
                    continue;
                int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
                size_t nbytes = fq_row_size(t->type, t->ne[0]) * (size_t)(n / t->ne[0]);
                uint8_t *enc = malloc(nbytes);
                const float *x = g_data(&src, o);
                tt->from_float(x, enc, n);
                int same = memcmp(enc, g_data(&q, t), nbytes) == 0;
                if (!same) { /* perhaps quantized from the F16 conversion */
                    float *x16 = malloc((size_t)n * 4);
                    for (int64_t k = 0; k < n; k++) x16[k] = fq_fp16_to_f32(fq_f32_to_fp16(x[k]));
                    tt->from_float(x16, enc, n);
                    same = memcmp(enc, g_data(&q, t), nbytes) == 0;
                    free(x16);
                }
                seen_type[t->type]++;
                ok_type[t->type] += same;
                if (!same) {
                    size_t first = 0;
                    while (first < nbytes && enc[first] == ((const uint8_t *)g_data(&q, t))[first]) first++;
                    fprintf(stderr, "  %s %s (%s): first differing byte %zu of %zu\n", path,
                            t->name, fq_type_name(t->type), first, nbytes);
                }
                free(enc);
            }
            g_close(&q);
        }
        g_close(&src);
    }
    for (uint32_t t = 0; t < FQ_TYPE_COUNT; t++) {
        if (!seen_type[t]) continue;
        CHECK(ok_type[t] == seen_type[t], "encoder %s: %d of %d tensors match llama-quantize",
              fq_type_name(t), ok_type[t], seen_type[t]);
        printf("encoder %-5s matches llama-quantize on %d tensors\n", fq_type_name(t), ok_type[t]);
    }
}

/* Round trips on ggml's test-quantize-fns data (0.1 + 2 cos(i + offset)) with its budgets,
 * where rmse is ggml's sqrt(sum d^2) / n; and a unit-range budget per bit width. */
static void test_roundtrip_budgets(void) {
    enum { N = 32 * 128 };
    float *x = malloc(N * 4), *back = malloc(N * 4), *u = malloc(N * 4);
    void *q = malloc(fq_row_size(FQ_TYPE_F32, N));
    for (int i = 0; i < N; i++) x[i] = 0.1f + 2 * cosf((float)i);
    for (int i = 0; i < N; i++) u[i] = rng_uniform();
    for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
        uint32_t t = all_types[k];
        const fq_type_traits *tt = fq_type_get(t);
        double budget = t == FQ_TYPE_Q2_K ? 0.0075 : t == FQ_TYPE_Q3_K ? 0.0040 : 0.002;
        /* unit-range rms error bound: about a third of a quantization step */
        double unit = t == FQ_TYPE_F32 ? 0 : t == FQ_TYPE_F16 ? 3e-4 : t == FQ_TYPE_BF16 ? 3e-3
                    : t == FQ_TYPE_Q8_0 || t == FQ_TYPE_Q8_1 || t == FQ_TYPE_Q8_K ? 0.004
                    : t == FQ_TYPE_Q6_K ? 0.012 : t == FQ_TYPE_Q5_0 || t == FQ_TYPE_Q5_1 ||
                      t == FQ_TYPE_Q5_K ? 0.025 : t == FQ_TYPE_Q4_0 || t == FQ_TYPE_Q4_1 ||
                      t == FQ_TYPE_Q4_K ? 0.05 : t == FQ_TYPE_Q3_K ? 0.1 : 0.2;
        for (int pass = 0; pass < 2; pass++) {
            const float *src = pass ? u : x;
            tt->from_float(src, q, N);
            tt->to_float(q, back, N);
            double se = 0;
            for (int i = 0; i < N; i++) se += ((double)src[i] - back[i]) * ((double)src[i] - back[i]);
            if (pass == 0) {
                double err = sqrt(se) / N;
                CHECK(err < budget, "%s: ggml round-trip error %.6f >= %.4f", tt->name, err, budget);
            } else {
                double rms = sqrt(se / N);
                CHECK(rms <= unit, "%s: unit-range rms %.6f > %.4f", tt->name, rms, unit);
            }
        }
    }
    /* all-zero and constant blocks must not produce NaNs */
    for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
        const fq_type_traits *tt = fq_type_get(all_types[k]);
        for (int v = 0; v < 2; v++) {
            for (int i = 0; i < 512; i++) u[i] = v ? 0.75f : 0.f;
            tt->from_float(u, q, 512);
            tt->to_float(q, back, 512);
            int bad = 0;
            for (int i = 0; i < 512; i++) bad += !(fabsf(back[i] - u[i]) <= 0.75f * 0.07f);
            CHECK(bad == 0, "%s: constant %g decodes badly (%d values)", tt->name, v ? 0.75 : 0.0, bad);
        }
    }
    free(q);
    free(u);
    free(back);
    free(x);
}

/* Fills n activations: random scales per block, with some exact .5 ties after scaling. */
static void make_activations(float *y, int64_t n, int ties) {
    for (int64_t b = 0; b < n; b += 32) {
        float scale = ldexpf(1.f, (int)(rng_u64() % 12) - 6);
        for (int j = 0; j < 32 && b + j < n; j++) y[b + j] = rng_uniform() * scale;
        if (ties && b + 32 <= n && (b / 32) % 3 == 0) {
            /* amax 127 makes the multiplier exactly 1: k + 0.5 must round to even */
            y[b] = 127.f;
            for (int j = 1; j < 32; j++) y[b + j] = (float)((int)(rng_u64() % 253) - 126) + 0.5f;
            y[b + 1] = -127.f;
        }
    }
}

static void test_act_encoders(void) {
    enum { N = 4096 };
    float *y = malloc(N * 4);
    make_activations(y, N, 1);
    fq_block_q8_0 *a0 = malloc(N / 32 * sizeof *a0);
    fq_block_q8_1 *a1 = malloc(N / 32 * sizeof *a1);
    fq_block_q8_K *ak = malloc(N / 256 * sizeof *ak);
    for (int v = 0; v < n_variants; v++) {
        const char *isa = variants[v].name;
        /* Q8_0 and Q8_1 vs the slow model */
        var_act(&variants[v], FQ_TYPE_Q8_0)(y, a0, N);
        var_act(&variants[v], FQ_TYPE_Q8_1)(y, a1, N);
        int bad0 = 0, bad1 = 0;
        for (int b = 0; b < N / 32; b++) {
            int8_t q[32];
            float d;
            int sum = slow_act_q8(y + 32 * b, q, &d);
            bad0 += memcmp(q, a0[b].qs, 32) != 0 || a0[b].d != slow_f32_to_f16(d);
            bad1 += memcmp(q, a1[b].qs, 32) != 0 || a1[b].d != slow_f32_to_f16(d) ||
                    a1[b].s != slow_f32_to_f16(d * (float)sum);
        }
        CHECK(bad0 == 0, "act q8_0 (%s): %d blocks differ from the slow model", isa, bad0);
        CHECK(bad1 == 0, "act q8_1 (%s): %d blocks differ from the slow model", isa, bad1);
        /* the tie blocks really are ties: at least one .5 went down (not roundf) */
        fq_block_q8_0 r;
        fq_encode_q8_0(y, &r, 32);
        CHECK(memcmp(r.qs, a0[0].qs, 32) != 0, "tie block does not distinguish RNE from roundf");

        /* Q8_K vs a slow model of quantize_row_q8_K_ref */
        var_act(&variants[v], FQ_TYPE_Q8_K)(y, ak, N);
        int badk = 0;
        for (int b = 0; b < N / 256; b++) {
            const float *x = y + 256 * b;
            float max = 0, amax = 0;
            for (int j = 0; j < 256; j++) if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
            float iscale = -127.f / max;
            for (int j = 0; j < 256; j++) {
                double q = nearbyint((double)(iscale * x[j]));
                badk += ak[b].qs[j] != (int8_t)(q > 127 ? 127 : q);
            }
            for (int j = 0; j < 16; j++) {
                int sum = 0;
                for (int l = 0; l < 16; l++) sum += ak[b].qs[16 * j + l];
                badk += ak[b].bsums[j] != sum;
            }
            badk += bits_of(ak[b].d) != bits_of(1 / iscale);
        }
        CHECK(badk == 0, "act q8_K (%s): %d mismatches vs the slow model", isa, badk);
    }

    /* every ISA's activation encoder equals the generic one, byte for byte, edge values too */
    static const uint32_t acts[] = {FQ_TYPE_F32, FQ_TYPE_F16, FQ_TYPE_BF16, FQ_TYPE_Q8_0,
                                    FQ_TYPE_Q8_1, FQ_TYPE_Q8_K};
    uint8_t *ba = malloc(N * 4), *bb = malloc(N * 4);
    for (int v = 1; v < n_variants; v++) {
        for (size_t i = 0; i < FQ_ARRAY_LEN(acts); i++) {
            static const int sizes[] = {4096, 256, 512, 768, 768};
            int bad = 0;
            for (size_t k = 0; k < FQ_ARRAY_LEN(sizes); k++) {
                float *z = malloc((size_t)sizes[k] * 4);
                make_activations(z, sizes[k], 0);
                if (k == 3) {
                    z[5] = 0x1p-140f; z[6] = 1e30f; z[7] = -0.f; z[300] = 65519.f; z[301] = 65520.f;
                    z[302] = 6e-8f; z[303] = 3e-8f;
                    for (int j = 512; j < 768; j++) z[j] = 0; /* an all-zero super-block */
                    z[600] = -1e-3f;                          /* and a tie of extremes */
                    z[601] = 1e-3f;
                }
                if (k == 4 && acts[i] <= FQ_TYPE_F16) { /* non-finite values: F16 only */
                    z[1] = INFINITY; z[2] = -INFINITY; z[3] = NAN; z[4] = f_from_bits(0x7f800001u);
                }
                size_t nb = fq_row_size(acts[i], sizes[k]);
                memset(ba, 0xAA, nb);
                memset(bb, 0x55, nb);
                var_act(&variants[v], acts[i])(z, ba, sizes[k]);
                var_act(&variants[0], acts[i])(z, bb, sizes[k]);
                bad += memcmp(ba, bb, nb) != 0;
                free(z);
            }
            CHECK(bad == 0, "act %s (%s): differs from generic", fq_type_name(acts[i]),
                  variants[v].name);
        }
    }
    free(bb);
    free(ba);
    free(ak);
    free(a1);
    free(a0);
    free(y);
}

static fq__dec_fn var_dec(const variant *v, uint32_t t) {
    return v->k.to_float[t] ? v->k.to_float[t] : fq_type_get_generic(t)->to_float;
}
static fq__dotf_fn var_dotf(const variant *v, uint32_t t) {
    return v->k.vec_dot_f32[t] ? v->k.vec_dot_f32[t] : fq_type_get_generic(t)->vec_dot_f32;
}

/* 1 when byte `off` of a block is the high byte of an F16 scale, 2 for Q8_K's F32 exponent
 * byte: random blocks keep those small so that no variant meets NaN arithmetic. */
static int scale_high_byte(uint32_t t, size_t off) {
    switch (t) {
    case FQ_TYPE_Q4_0: case FQ_TYPE_Q5_0: case FQ_TYPE_Q8_0: return off == 1;
    case FQ_TYPE_Q4_1: case FQ_TYPE_Q5_1: case FQ_TYPE_Q8_1: return off == 1 || off == 3;
    case FQ_TYPE_Q4_K: case FQ_TYPE_Q5_K: return off == 1 || off == 3;
    case FQ_TYPE_Q2_K: return off == 81 || off == 83;
    case FQ_TYPE_Q3_K: return off == 109;
    case FQ_TYPE_Q6_K: return off == 209;
    case FQ_TYPE_Q8_K: return off == 3 ? 2 : 0;
    default: return 0;
    }
}

/* Decoders and exact-mode dots of every variant against the generic ones, bit for bit:
 * random rows of each type (odd lengths for the float types, 1..9 blocks and 4096 values),
 * random bytes too (any bit pattern must decode the same), and the golden tensors. */
static void test_decode_variants(void) {
    static const int64_t sizes[] = {1, 3, 7, 9, 17, 300, 4096};
    for (int v = 1; v < n_variants; v++) {
        for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
            uint32_t t = all_types[k];
            const fq_type_traits *tg = fq_type_get_generic(t);
            int bad_dec = 0, bad_dot = 0;
            for (size_t si = 0; si < FQ_ARRAY_LEN(sizes); si++) {
                int64_t n = tg->blck == 1 ? sizes[si] : tg->blck * (sizes[si] % 10 ? sizes[si] % 10 : 16);
                for (int rep = 0; rep < 2; rep++) {
                    size_t nb = fq_row_size(t, n);
                    uint8_t *x = malloc(nb);
                    float *xs = malloc((size_t)n * 4), *ys = malloc((size_t)n * 4);
                    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
                    for (int64_t i = 0; i < n; i++) { xs[i] = rng_uniform(); ys[i] = rng_uniform(); }
                    if (rep == 0) {
                        tg->from_float(xs, x, n);
                    } else { /* random bytes, with finite F16 scales so no NaN arithmetic */
                        for (size_t i = 0; i < nb; i++) x[i] = (uint8_t)rng_u64();
                        if (t == FQ_TYPE_F16 || t == FQ_TYPE_BF16) {
                            for (int64_t i = 0; i < n; i++) x[2 * i + 1] &= 0x3f;
                        } else if (t != FQ_TYPE_F32) {
                            for (size_t i = 0; i < nb; i++) {
                                int hb = scale_high_byte(t, i % tg->type_size);
                                if (hb == 2) x[i] = 0x3c;      /* Q8_K's F32 d: ~2^-7 */
                                else if (hb) x[i] &= 0x3f;     /* F16 scale: |d| < 2 */
                            }
                        } else {
                            memcpy(x, xs, nb);
                        }
                    }
                    var_dec(&variants[v], t)(x, a, n);
                    tg->to_float(x, b, n);
                    bad_dec += memcmp(a, b, (size_t)n * 4) != 0;
                    float da, db;
                    var_dotf(&variants[v], t)(n, &da, x, ys);
                    tg->vec_dot_f32(n, &db, x, ys);
                    bad_dot += bits_of(da) != bits_of(db);
                    free(b);
                    free(a);
                    free(ys);
                    free(xs);
                    free(x);
                }
            }
            CHECK(bad_dec == 0, "decode %s (%s): differs from generic in %d rows", tg->name,
                  variants[v].name, bad_dec);
            CHECK(bad_dot == 0, "vec_dot_f32 %s (%s): not bit-identical to generic in %d rows",
                  tg->name, variants[v].name, bad_dot);
        }
    }
}

/* Dot of x (weight type) with y (partner) against float64 on the decoded rows. Returns the
 * tolerance base: sum over i of |y_i| times the largest |x| in x_i's block, which also
 * bounds the rounding inside the decoder and in d*isum - dmin*summs. */
static double ref_dot(uint32_t t, int64_t n, const void *x, const void *y, double *ref) {
    const fq_type_traits *tt = fq_type_get(t), *tp = fq_type_get((uint32_t)tt->vec_dot_type);
    float *dx = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4);
    tt->to_float(x, dx, n);
    tp->to_float(y, dy, n);
    double sum = 0, base = 0;
    for (int64_t b = 0; b < n; b += tt->blck) {
        double bmax = 0;
        for (int64_t i = b; i < b + tt->blck; i++) bmax = fmax(bmax, fabs(dx[i]));
        for (int64_t i = b; i < b + tt->blck; i++) {
            sum += (double)dx[i] * dy[i];
            base += bmax * fabs(dy[i]);
        }
    }
    if (t == FQ_TYPE_Q4_1 || t == FQ_TYPE_Q5_1) {
        /* the kernel uses the activation's stored s = F16(d*sum q) for the min term */
        const fq_block_q8_1 *yb = y;
        for (int64_t b = 0; b < n / 32; b++) {
            const fq_half m = t == FQ_TYPE_Q4_1 ? ((const fq_block_q4_1 *)x)[b].m
                                                : ((const fq_block_q5_1 *)x)[b].m;
            int qs = 0;
            for (int j = 0; j < 32; j++) qs += yb[b].qs[j];
            sum += (double)fq__h2f(m) * ((double)fq__h2f(yb[b].s) - (double)fq__h2f(yb[b].d) * qs);
            base += fabs((double)fq__h2f(m) * fq__h2f(yb[b].s));
        }
    }
    free(dy);
    free(dx);
    *ref = sum;
    return base;
}

static void test_vec_dot(void) {
    static const int64_t sizes[] = {32, 96, 224, 256, 512, 768, 1792, 4096, 8, 3, 17};
    for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
        uint32_t t = all_types[k];
        const fq_type_traits *tt = fq_type_get(t);
        const fq_type_traits *tp = fq_type_get((uint32_t)tt->vec_dot_type);
        int bad_ref[3] = {0}, bad_simd[3] = {0}, bad_bits[3] = {0}, tried = 0;
        double worst[3] = {0};
        for (size_t si = 0; si < FQ_ARRAY_LEN(sizes); si++) {
            int64_t n = sizes[si];
            if (n % tt->blck) {
                n = tt->blck * (n % 8 ? n % 8 : 1); /* odd counts: 1, 3, 7 blocks ... */
                if (sizes[si] == 17) n = 7 * tt->blck;
            }
            for (int rep = 0; rep < 3; rep++) {
                float *xs = malloc((size_t)n * 4), *ys = malloc((size_t)n * 4);
                for (int64_t i = 0; i < n; i++) xs[i] = rng_uniform() * (rep == 2 ? 100.f : 1.f);
                make_activations(ys, n, 0);
                void *x = malloc(fq_row_size(t, n)), *y = malloc(fq_row_size(tt->vec_dot_type, n));
                tt->from_float(xs, x, n);
                tp->from_float_act(ys, y, n);
                double ref;
                double base = ref_dot(t, n, x, y, &ref);
                double tol = 1e-5 * base + 1e-30;
                float g;
                var_dot(&variants[0], t)(n, &g, x, y);
                for (int v = 0; v < n_variants; v++) {
                    float a;
                    var_dot(&variants[v], t)(n, &a, x, y);
                    double err = fabs((double)a - ref) / (base + 1e-30);
                    if (err > worst[v]) worst[v] = err;
                    bad_ref[v] += !(fabs((double)a - ref) <= tol);
                    bad_simd[v] += !(fabs((double)a - (double)g) <= tol);
                    bad_bits[v] += bits_of(a) != bits_of(g);
                }
                tried++;
                free(y);
                free(x);
                free(ys);
                free(xs);
            }
        }
        for (int v = 0; v < n_variants; v++) {
            const char *isa = variants[v].name;
            CHECK(bad_ref[v] == 0, "vec_dot %s (%s): %d of %d cases off the float64 reference "
                  "(worst %.2e of the magnitude)", tt->name, isa, bad_ref[v], tried, worst[v]);
            if (v == 0) continue;
            CHECK(bad_simd[v] == 0, "vec_dot %s: %s and generic differ beyond rounding in %d cases",
                  tt->name, isa, bad_simd[v]);
            /* by construction every variant finishes with the generic's float operations */
            CHECK(bad_bits[v] == 0, "vec_dot %s: %s not bit-identical to generic in %d cases",
                  tt->name, isa, bad_bits[v]);
        }
    }
    /* the live table holds the kernels of the level in use */
    const variant *best = &variants[fq_cpu_isa()]; /* the level cpu.c chose */
    int mism = 0;
    for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
        uint32_t t = all_types[k];
        mism += fq_type_get(t)->vec_dot != var_dot(best, t);
        if (fq_type_get(t)->from_float_act) mism += fq_type_get(t)->from_float_act != var_act(best, t);
    }
    CHECK(mism == 0, "live table does not hold the %s kernels (%d entries)", best->name, mism);
}

static fq__dotn_fn var_dotn(const variant *v, uint32_t t) {
    return v->k.vec_dot_n[t] ? v->k.vec_dot_n[t] : fq_type_get_generic(t)->vec_dot_n;
}
static fq__dotmn_fn var_dotmn(const variant *v, uint32_t t) {
    return v->k.vec_dot_mn[t] ? v->k.vec_dot_mn[t] : fq_type_get_generic(t)->vec_dot_mn;
}

/* vec_dot_n and vec_dot_mn of every type and variant against that variant's vec_dot (and
 * so the generic's), bit for bit: FQ_DOT_MX weight rows x max(FQ_DOT_N_MAX, FQ_DOT_NY)
 * activation rows at odd lengths, every nrc 1..FQ_DOT_N_MAX and every tile nrx 1..FQ_DOT_MX
 * x nry 1..FQ_DOT_NY, outputs strided with sentinels between them that must stay untouched.
 * Weight rows are real encodings (rep 0) or random bytes (rep 1). */
static void test_vec_dot_multi(void) {
    enum { NX = FQ_DOT_MX, NY = FQ_DOT_N_MAX > FQ_DOT_NY ? FQ_DOT_N_MAX : FQ_DOT_NY, BS = NX + 3 };
    static const int64_t sizes[] = {1, 3, 7, 9, 17, 300};
    const float sentinel = -12345.f;
    for (int v = 0; v < n_variants; v++) {
        for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
            const uint32_t t = all_types[k];
            const fq_type_traits *tg = fq_type_get_generic(t);
            const uint32_t pt = (uint32_t)tg->vec_dot_type;
            const fq__dot_fn dot = var_dot(&variants[v], t);
            const fq__dotn_fn dotn = var_dotn(&variants[v], t);
            const fq__dotmn_fn dotmn = var_dotmn(&variants[v], t);
            int bad_n = 0, bad_mn = 0, bad_ref = 0, cases = 0;
            for (size_t si = 0; si < FQ_ARRAY_LEN(sizes); si++) {
                const int64_t n = tg->blck == 1 ? sizes[si] : tg->blck * (sizes[si] % 10 ? sizes[si] % 10 : 16);
                const size_t bx = fq_row_size(t, n), by = fq_row_size(pt, n);
                for (int rep = 0; rep < 2; rep++) {
                    uint8_t *x = malloc(bx * NX), *y = malloc(by * NY);
                    float *f = malloc(sizeof(float) * (size_t)n);
                    for (int r = 0; r < NX; r++) {
                        for (int64_t i = 0; i < n; i++) f[i] = rng_uniform() * (r + 1);
                        tg->from_float(f, x + r * bx, n);
                        if (rep == 1 && t != FQ_TYPE_F32 && t != FQ_TYPE_F16 && t != FQ_TYPE_BF16) {
                            for (size_t i = 0; i < bx; i++) {
                                int hb = scale_high_byte(t, i % tg->type_size);
                                uint8_t *p = x + r * bx + i;
                                if (hb == 2) *p = 0x3c;
                                else if (hb) *p &= 0x3f;
                                else *p = (uint8_t)rng_u64();
                            }
                        }
                    }
                    for (int r = 0; r < NY; r++) {
                        make_activations(f, n, 0);
                        fq_type_get(pt)->from_float_act(f, y + r * by, n);
                    }
                    float ref[NY][NX], out[NY * BS + NX];
                    for (int j = 0; j < NY; j++) {
                        for (int i = 0; i < NX; i++) {
                            float g;
                            dot(n, &ref[j][i], x + i * bx, y + j * by);
                            tg->vec_dot(n, &g, x + i * bx, y + j * by);
                            bad_ref += bits_of(g) != bits_of(ref[j][i]);
                        }
                    }
                    for (int nrc = 1; nrc <= FQ_DOT_N_MAX; nrc++) {
                        for (int i = 0; i < NX; i++) {
                            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
                            dotn(n, out + i, BS, x + i * bx, y, by, nrc);
                            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
                                const int64_t jj = (int64_t)o / BS, ii = (int64_t)o % BS;
                                const int written = ii == i && jj < nrc;
                                bad_n += written ? bits_of(out[o]) != bits_of(ref[jj][i])
                                                 : bits_of(out[o]) != bits_of(sentinel);
                            }
                        }
                    }
                    for (int nrx = 1; nrx <= NX; nrx++) {
                        for (int nry = 1; nry <= FQ_DOT_NY; nry++) {
                            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) out[o] = sentinel;
                            dotmn(n, out, BS, x, bx, nrx, y, by, nry);
                            for (size_t o = 0; o < FQ_ARRAY_LEN(out); o++) {
                                const int64_t jj = (int64_t)o / BS, ii = (int64_t)o % BS;
                                const int written = ii < nrx && jj < nry;
                                bad_mn += written ? bits_of(out[o]) != bits_of(ref[jj][ii])
                                                  : bits_of(out[o]) != bits_of(sentinel);
                            }
                        }
                    }
                    cases++;
                    free(f);
                    free(y);
                    free(x);
                }
            }
            CHECK(bad_ref == 0, "vec_dot %s (%s): %d dots not bit-identical to generic", tg->name,
                  variants[v].name, bad_ref);
            CHECK(bad_n == 0, "vec_dot_n %s (%s): %d outputs differ from vec_dot or stray writes "
                  "(%d cases, nrc 1..%d)", tg->name, variants[v].name, bad_n, cases, FQ_DOT_N_MAX);
            CHECK(bad_mn == 0, "vec_dot_mn %s (%s): %d outputs differ from vec_dot or stray "
                  "writes (%d cases, tiles up to %dx%d)", tg->name, variants[v].name, bad_mn, cases, NX,
                  FQ_DOT_NY);
        }
    }
    /* the live table: multi-row entries from the same level as vec_dot, tile sizes sane */
    const variant *best = &variants[fq_cpu_isa()]; /* the level cpu.c chose */
    int mism = 0;
    for (size_t k = 0; k < FQ_ARRAY_LEN(all_types); k++) {
        const uint32_t t = all_types[k];
        const fq_type_traits *tt = fq_type_get(t);
        mism += tt->vec_dot_n != var_dotn(best, t) || tt->vec_dot_mn != var_dotmn(best, t);
        mism += tt->mn_x < 1 || tt->mn_x > FQ_DOT_MXL || tt->mn_y < 1 || tt->mn_y > FQ_DOT_NY;
        mism += tt->mv_x < 1 || tt->mv_x > FQ_DOT_MX;
    }
    CHECK(mism == 0, "live table: multi-row dots not the %s ones or bad tile (%d types)", best->name, mism);
}

/* The golden tensors as weights against realistic activations, per ISA variant. */
static void test_vec_dot_real(void) {
    static const char *models[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_s",
                                   "q4_k_m", "q5_k_m", "q6_k", "f16", "bf16", "f32"};
    for (size_t m = 0; m < FQ_ARRAY_LEN(models); m++) {
        char path[256];
        snprintf(path, sizeof path, DATA "models/synth-l2-e256-%s.gguf", models[m]);
        g_file g;
        if (g_open(&g, path) != 0) { CHECK(0, "%s: cannot parse", path); continue; }
        int bad = 0, rows = 0;
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const g_tensor *t = &g.t[i];
            const fq_type_traits *tt = fq_type_get(t->type);
            if (t->n_dims != 2 || !tt || !tt->supported) continue;
            int64_t n = t->ne[0];
            float *ys = malloc((size_t)n * 4);
            make_activations(ys, n, 0);
            void *y = malloc(fq_row_size(tt->vec_dot_type, n));
            fq_type_get((uint32_t)tt->vec_dot_type)->from_float_act(ys, y, n);
            size_t rs = fq_row_size(t->type, n);
            for (int64_t r = 0; r < t->ne[1]; r += 37) {
                const uint8_t *x = (const uint8_t *)g_data(&g, t) + r * rs;
                double ref;
                double base = ref_dot(t->type, n, x, y, &ref);
                for (int v = 0; v < n_variants; v++) {
                    float a;
                    var_dot(&variants[v], t->type)(n, &a, x, y);
                    bad += !(fabs(a - ref) <= 1e-5 * base);
                }
                rows++;
            }
            free(y);
            free(ys);
        }
        CHECK(bad == 0 && rows > 0, "%s: %d of %d weight rows x %d variants off the reference",
              path, bad, rows, n_variants);
        g_close(&g);
    }
}

int main(void) {
    const char *isa = fq_qtypes_init();
    printf("ISA: %s\n", isa);
    CHECK(strcmp(fq_qtypes_init(), isa) == 0, "fq_qtypes_init not idempotent");
    test_table();
    test_fp16();
    test_bf16();
    test_golden_dequant();
    test_encoders_vs_files();
    test_roundtrip_budgets();
    setup_variants();
    printf("variants checked:");
    for (int v = 0; v < n_variants; v++) printf(" %s", variants[v].name);
    printf("\n");
    test_act_encoders();
    test_decode_variants();
    test_vec_dot();
    test_vec_dot_multi();
    test_vec_dot_real();
    return TEST_END();
}
