/* test_cpu.c - the one CPU feature probe (src/cpu.c) and the ISA levels it hands out.
 *
 *  - CPUID words of real CPU generations give the right level; in particular an AVX-512 CPU
 *    without VNNI/BF16 (Skylake-X, Cascade Lake) or an OS that does not save ZMM state must
 *    not get the avx512 kernels, which the compiler was allowed to build with VNNI and BF16.
 *  - The avx512 level requires exactly what its files were compiled for: dropping any one of
 *    those features lowers the level.
 *  - The probe agrees with the compiler's own (__builtin_cpu_supports) on this machine.
 *  - FQLM_ISA / FQLM_FORCE_GENERIC: each level this machine runs is forced in a fresh
 *    process (this program re-run with --child), where every kernel family must report that
 *    level and give the same bits as generic: logits of bundled models (with a fake-quant
 *    rule), format rounding, quant encoders/decoders/dot products, attention kernels. A
 *    level the CPU lacks or a name fqlm does not know falls back in the library, with a
 *    message, and the CLI refuses it (exit 2).
 *  - No source file but src/cpu.c reads CPUID or the ISA environment variables (before this
 *    probe formats.c, qtypes.c, attn.c and quantize.c each had their own test). */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attn.h"
#include "cpu.h"
#include "fqlm.h"
#include "formats.h"
#include "qtypes.h"

#define DATA "tests/data/"

/* ---- CPUID words of real CPUs -------------------------------------------------------- */

#define L1_BASE ((1u << 0) | (1u << 1) | (1u << 9) | (1u << 19) | (1u << 20) | (1u << 22) | \
                 (1u << 23) | (1u << 25) | (1u << 26) | (1u << 27) | (1u << 28))
#define L1_FMA (1u << 12)
#define L1_F16C (1u << 29)
#define L7B_AVX2 ((1u << 3) | (1u << 5) | (1u << 8))
#define L7B_512 ((1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31)) /* F DQ CD BW VL */
#define L7C_VNNI (1u << 11)
#define L7S1_BF16 (1u << 5)

typedef struct {
    const char *name;
    fq_cpuid_regs r;
    int want;
} cpu_case;

static void test_generations(void) {
    const uint32_t l1 = L1_BASE | L1_FMA | L1_F16C;
    const cpu_case cases[] = {
        {"none (all zero)", {0}, FQ_ISA_GENERIC},
        {"Sandy Bridge (AVX only)", {.l1_ecx = L1_BASE, .xcr0 = 7}, FQ_ISA_GENERIC},
        {"AVX2 without FMA", {.l1_ecx = L1_BASE | L1_F16C, .l7_ebx = L7B_AVX2, .xcr0 = 7}, FQ_ISA_GENERIC},
        {"AVX2+FMA without F16C", {.l1_ecx = L1_BASE | L1_FMA, .l7_ebx = L7B_AVX2, .xcr0 = 7}, FQ_ISA_GENERIC},
        {"Haswell", {.l1_ecx = l1, .l7_ebx = L7B_AVX2, .e1_ecx = 1u << 5, .xcr0 = 7}, FQ_ISA_AVX2},
        {"Zen 3", {.l1_ecx = l1, .l7_ebx = L7B_AVX2, .l7_ecx = (1u << 9) | (1u << 10),
                   .e1_ecx = 1u << 5, .xcr0 = 7}, FQ_ISA_AVX2},
        {"Haswell, OS without AVX state", {.l1_ecx = l1, .l7_ebx = L7B_AVX2, .xcr0 = 3}, FQ_ISA_GENERIC},
        {"Haswell, OSXSAVE off (XCR0 not readable)",
         {.l1_ecx = l1 & ~(1u << 27), .l7_ebx = L7B_AVX2, .xcr0 = 0xff}, FQ_ISA_GENERIC},
        /* the crash this probe exists to prevent: AVX-512 F/BW/VL/DQ but no VNNI/BF16 */
        {"Skylake-X", {.l1_ecx = l1, .l7_ebx = L7B_AVX2 | L7B_512, .xcr0 = 0xe7}, FQ_ISA_AVX2},
        {"Cascade Lake (VNNI, no BF16)",
         {.l1_ecx = l1, .l7_ebx = L7B_AVX2 | L7B_512, .l7_ecx = L7C_VNNI, .xcr0 = 0xe7}, FQ_ISA_AVX2},
        {"Cooper Lake", {.l1_ecx = l1, .l7_eax = 1, .l7_ebx = L7B_AVX2 | L7B_512, .l7_ecx = L7C_VNNI,
                         .l7s1_eax = L7S1_BF16, .xcr0 = 0xe7}, FQ_ISA_AVX512},
        {"Zen 4", {.l1_ecx = l1, .l7_eax = 1, .l7_ebx = L7B_AVX2 | L7B_512 | (1u << 21),
                   .l7_ecx = L7C_VNNI | 0x5f42, .l7s1_eax = L7S1_BF16 | (1u << 4),
                   .e1_ecx = 1u << 5, .xcr0 = 0x2e7}, FQ_ISA_AVX512},
        {"Zen 4, OS without ZMM state", {.l1_ecx = l1, .l7_eax = 1, .l7_ebx = L7B_AVX2 | L7B_512,
                                         .l7_ecx = L7C_VNNI, .l7s1_eax = L7S1_BF16, .xcr0 = 0x7},
         FQ_ISA_AVX2},
        {"BF16 bit in a subleaf the CPU does not have",
         {.l1_ecx = l1, .l7_eax = 0, .l7_ebx = L7B_AVX2 | L7B_512, .l7_ecx = L7C_VNNI,
          .l7s1_eax = L7S1_BF16, .xcr0 = 0xe7}, FQ_ISA_AVX2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint64_t f = fq__cpu_features_from(&cases[i].r);
        const int got = fq__cpu_level_from(f);
        CHECK(got == cases[i].want, "%s: level %s, want %s", cases[i].name, fq_cpu_isa_name(got),
              fq_cpu_isa_name(cases[i].want));
    }
    /* The test formats.c used before this probe (F, BW, VL, DQ and FMA, no VNNI/BF16, no
     * XCR0) passes Skylake-X: the case above is the one that crashed. */
    const uint64_t sk = fq__cpu_features_from(&cases[8].r);
    const uint64_t old = FQ_CPUF(AVX512F) | FQ_CPUF(AVX512BW) | FQ_CPUF(AVX512VL) |
                         FQ_CPUF(AVX512DQ) | FQ_CPUF(FMA);
    CHECK((sk & old) == old && !(sk & FQ_CPUF(AVX512BF16)), "Skylake-X words: the old test's case");
}

/* The avx512 level needs every feature its files were compiled for, and each one matters. */
static void test_built_sets(void) {
    const uint64_t need2 = FQ_CPUF(AVX2) | FQ_CPUF(FMA) | FQ_CPUF(F16C);
    const uint64_t need512 = FQ_CPUF(AVX512F) | FQ_CPUF(AVX512BW) | FQ_CPUF(AVX512VL) |
                             FQ_CPUF(AVX512DQ) | FQ_CPUF(AVX512VNNI) | FQ_CPUF(AVX512BF16);
    CHECK((fq__cpu_built_avx2 & need2) == need2, "avx2 files: built without AVX2/FMA/F16C? %#llx",
          (unsigned long long)fq__cpu_built_avx2);
    CHECK(!(fq__cpu_built_avx2 & FQ_CPUF(AVX512F)), "avx2 files built with AVX-512");
    CHECK((fq__cpu_built_avx512 & (need2 | need512)) == (need2 | need512),
          "avx512 files: the Makefile's set (F/BW/VL/DQ/VNNI/BF16) not seen: %#llx",
          (unsigned long long)fq__cpu_built_avx512);
    const uint64_t os = FQ_CPUF(OS_YMM) | FQ_CPUF(OS_ZMM);
    const uint64_t all = fq__cpu_built_avx512 | fq__cpu_built_avx2 | os;
    CHECK(fq__cpu_level_from(all) == FQ_ISA_AVX512, "exactly the built features: not avx512");
    int bad = 0;
    for (int b = 0; b < FQ_CPUF_COUNT; b++) {
        const uint64_t bit = (uint64_t)1 << b;
        if (!(all & bit)) continue;
        const int l = fq__cpu_level_from(all & ~bit);
        const int want = (fq__cpu_built_avx2 | FQ_CPUF(OS_YMM)) & bit ? FQ_ISA_GENERIC : FQ_ISA_AVX2;
        if (l != want) {
            bad++;
            fprintf(stderr, "  without %s: level %s, want %s\n", fq__cpu_feature_name(b),
                    fq_cpu_isa_name(l), fq_cpu_isa_name(want));
        }
    }
    CHECK(bad == 0, "%d built features do not gate their level", bad);
}

/* This machine: the probe's bits agree with libgcc's, and the level follows from them. */
static void test_this_cpu(void) {
    const uint64_t f = fq__cpu_features();
    const int level = fq__cpu_isa_level();
    printf("this CPU: %s (features %#llx)\n", fq_cpu_isa_name(level), (unsigned long long)f);
    CHECK(level == fq__cpu_level_from(f), "level %d does not follow from the features", level);
#if defined(__x86_64__)
    __builtin_cpu_init();
    struct { const char *gcc; int bit; } m[] = {
        {"avx2", FQ_CPUF_AVX2}, {"fma", FQ_CPUF_FMA}, {"avx512f", FQ_CPUF_AVX512F},
        {"avx512bw", FQ_CPUF_AVX512BW}, {"avx512vl", FQ_CPUF_AVX512VL},
        {"avx512dq", FQ_CPUF_AVX512DQ}, {"avx512vnni", FQ_CPUF_AVX512VNNI},
        {"avx512bf16", FQ_CPUF_AVX512BF16}, {"sse4.2", FQ_CPUF_SSE4_2}, {"popcnt", FQ_CPUF_POPCNT},
        {"bmi2", FQ_CPUF_BMI2}, {"avx512vbmi", FQ_CPUF_AVX512VBMI},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int gcc = 0;
        /* __builtin_cpu_supports needs a literal */
#define SUP(s) if (!strcmp(m[i].gcc, s)) gcc = __builtin_cpu_supports(s) != 0
        SUP("avx2"); SUP("fma"); SUP("avx512f"); SUP("avx512bw"); SUP("avx512vl");
        SUP("avx512dq"); SUP("avx512vnni"); SUP("avx512bf16"); SUP("sse4.2"); SUP("popcnt");
        SUP("bmi2"); SUP("avx512vbmi");
#undef SUP
        /* libgcc also demands the OS state for the vector sets */
        const int ours = (f >> m[i].bit & 1) &&
                         (m[i].bit < FQ_CPUF_AVX || (f & FQ_CPUF(OS_YMM))) &&
                         (m[i].bit < FQ_CPUF_AVX512F || m[i].bit > FQ_CPUF_AVX512FP16 ||
                          (f & FQ_CPUF(OS_ZMM)));
        CHECK(ours == gcc, "%s: probe says %d, __builtin_cpu_supports %d", m[i].gcc, ours, gcc);
    }
#endif
}

static void test_choose(void) {
    struct {
        const char *isa, *force;
        int detected, want;
        const char *msg; /* NULL: none; else a substring */
    } c[] = {
        {NULL, NULL, 2, 2, NULL},          {NULL, NULL, 1, 1, NULL},
        {"", NULL, 2, 2, NULL},            {"generic", NULL, 2, 0, NULL},
        {"avx2", NULL, 2, 1, NULL},        {"avx512", NULL, 2, 2, NULL},
        {"avx2", NULL, 1, 1, NULL},        {NULL, "1", 2, 0, NULL},
        {NULL, "0", 2, 2, NULL},           {NULL, "", 1, 1, NULL},
        {"avx2", "1", 2, 0, NULL},         {"avx512", NULL, 1, 1, "the best it runs is avx2"},
        {"avx2", NULL, 0, 0, "cannot run the avx2 kernels"},
        {"avx512", NULL, 0, 0, "FQLM_ISA=avx512"},
        {"AVX2", NULL, 2, 0, "not a level fqlm knows (generic, avx2, avx512)"},
        {"native", NULL, 2, 0, "FQLM_ISA='native'"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char msg[256];
        const int got = fq__cpu_choose(c[i].isa, c[i].force, c[i].detected, msg, sizeof msg);
        CHECK(got == c[i].want && (c[i].msg ? strstr(msg, c[i].msg) != NULL : msg[0] == 0),
              "FQLM_ISA=%s FQLM_FORCE_GENERIC=%s on %s: level %s \"%s\", want %s \"%s\"",
              c[i].isa ? c[i].isa : "(unset)", c[i].force ? c[i].force : "(unset)",
              fq_cpu_isa_name(c[i].detected), fq_cpu_isa_name(got), msg,
              fq_cpu_isa_name(c[i].want), c[i].msg ? c[i].msg : "");
    }
}

/* ---- one probe: nothing else reads CPUID or the environment's level ------------------ */

static int scan_file(const char *path) {
    static const char *const banned[] = {"__builtin_cpu_supports", "__builtin_cpu_init",
                                         "<cpuid.h>", "__get_cpuid", "\"xgetbv\"",
                                         "getenv(\"FQLM_FORCE_GENERIC\")", "getenv(\"FQLM_ISA\")"};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[4096];
    int bad = 0, ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
            if (strstr(line, banned[i])) {
                fprintf(stderr, "  %s:%d: %s outside src/cpu.c\n", path, ln, banned[i]);
                bad++;
            }
    }
    fclose(f);
    return bad;
}

static int scan_dir(const char *dir, int *files) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int bad = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        const size_t n = strlen(p);
        if (n > 2 && (!strcmp(p + n - 2, ".c") || !strcmp(p + n - 2, ".h"))) {
            if (strcmp(de->d_name, "cpu.c")) bad += scan_file(p); /* the probe, wherever it lives */
            ++*files;
        } else if (!strchr(de->d_name, '.')) {
            bad += scan_dir(p, files);
        }
    }
    closedir(d);
    return bad;
}

static void test_one_probe(void) {
    int files = 0;
    const int bad = scan_dir("src", &files);
    CHECK(files > 20 && bad == 0, "%d CPU tests outside src/cpu.c (%d files scanned)", bad, files);
}

/* ---- the child: every kernel family at the level the environment gave --------------- */

static uint64_t h_mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
#define H0 0xcbf29ce484222325ull

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint32_t rng(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static float frand(void) { return (float)((int32_t)rng() >> 8) * 0x1p-21f; }

static void child_quants(void) {
    static const uint32_t types[] = {FQ_TYPE_F32, FQ_TYPE_F16, FQ_TYPE_BF16, FQ_TYPE_Q4_0,
                                     FQ_TYPE_Q4_1, FQ_TYPE_Q5_0, FQ_TYPE_Q5_1, FQ_TYPE_Q8_0,
                                     FQ_TYPE_Q8_1, FQ_TYPE_Q2_K, FQ_TYPE_Q3_K, FQ_TYPE_Q4_K,
                                     FQ_TYPE_Q5_K, FQ_TYPE_Q6_K, FQ_TYPE_Q8_K};
    enum { N = 512, NX = FQ_DOT_MX, NY = FQ_DOT_NY };
    static float w[NX][N], a[NY][N], dec[N], s[NY * NX];
    static unsigned char wq[NX][N * 4], aq[NY][N * 4 + 64];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const uint32_t t = types[k];
        const fq_type_traits *tt = fq_type_get(t), *pt = fq_type_get((uint32_t)tt->vec_dot_type);
        uint64_t h = H0;
        for (int i = 0; i < NX; i++)
            for (int j = 0; j < N; j++) w[i][j] = frand() * (i == 3 ? 1e-3f : 1.0f);
        for (int i = 0; i < NY; i++)
            for (int j = 0; j < N; j++) a[i][j] = frand() * 3.0f;
        const size_t wb = fq_row_size(t, N), ab = fq_row_size((uint32_t)tt->vec_dot_type, N);
        for (int i = 0; i < NX; i++) {
            tt->from_float(w[i], wq[i], N);
            tt->to_float(wq[i], dec, N);
            h = h_mix(h, dec, sizeof dec);
        }
        for (int i = 0; i < NY; i++) {
            pt->from_float_act(a[i], aq[i], N);
            h = h_mix(h, aq[i], ab);
        }
        for (int i = 0; i < NX; i++) {
            float v;
            tt->vec_dot(N, &v, wq[i], aq[0]);
            h = h_mix(h, &v, 4);
            tt->vec_dot_f32(N, &v, wq[i], a[1]);
            h = h_mix(h, &v, 4);
            memset(s, 0, sizeof s);
            tt->vec_dot_n(N, s, 1, wq[i], aq[0], sizeof aq[0], FQ_DOT_N_MAX);
            h = h_mix(h, s, sizeof(float) * FQ_DOT_N_MAX);
        }
        memset(s, 0, sizeof s);
        tt->vec_dot_mn(N, s, NX, wq[0], sizeof wq[0], NX, aq[0], sizeof aq[0], NY);
        h = h_mix(h, s, sizeof s);
        (void)wb;
        printf("hash quants:%s %016llx\n", tt->name, (unsigned long long)h);
    }
}

static void child_formats(void) {
    enum { R = 4, C = 320 };
    static float x[R * C], y[R * C];
    for (int i = 0; i < R * C; i++) {
        const float v = frand();
        x[i] = (i % 7 == 0) ? v * 1e-30f : (i % 11 == 0) ? v * 1e20f : v * (float)(1 + i % 5);
    }
    x[5] = NAN, x[17] = INFINITY, x[40] = -INFINITY, x[333] = 0x1p-149f, x[700] = -0.0f;
    x[900] = NAN; /* a NaN in another block and row */
    static const char *extra[] = {"bf16:round=stochastic", "fp8_e4m3:round=stochastic",
                                  "int4:per_row", "int4:per_col", "int4:asym,per_row",
                                  "int4:per_row,round=stochastic", "int8:round=rna",
                                  "nvfp4:tensor_scale=off", "fp6_e3m2:round=rtz", "e3m4"};
    int nfmt = 0;
    while (fq_format_list(nfmt)) nfmt++;
    const int nextra = (int)(sizeof extra / sizeof extra[0]);
    for (int i = 0; i < nfmt + nextra; i++) {
        const char *spec = i < nfmt ? fq_format_list(i) : extra[i - nfmt];
        fq_format *f;
        fq_err e;
        if (fq_format_parse(spec, &f, &e)) {
            printf("format %s: %s\n", spec, e.msg);
            continue;
        }
        memcpy(y, x, sizeof x);
        fq_qstats st = {0};
        fq_format_apply(f, y, R, C, 42, 7, 0, &st);
        /* outputs and counts are exact at every level; the sums only to 1e-5 (formats.h) */
        uint64_t h = h_mix(H0, y, sizeof y);
        const uint64_t cnt[] = {st.n, st.n_clipped, st.n_flushed, st.n_nan, st.n_summed};
        h = h_mix(h, cnt, sizeof cnt);
        h = h_mix(h, &st.max_abs_x, sizeof st.max_abs_x);
        printf("hash format:%s %016llx\n", spec, (unsigned long long)h);
        fq_format_free(f);
    }
}

static void child_attn(const fq_attn_kernels *k) {
    enum { NH = 4, NP = 37, HD = 64 };
    static float q[NH * HD], kf[NP * HD], vf[NP * HD], s[NH * NP], o[NH * HD];
    static uint16_t kh[NP * HD], vh[NP * HD];
    for (int i = 0; i < NH * HD; i++) q[i] = frand();
    for (int i = 0; i < NP * HD; i++) {
        kf[i] = frand(), vf[i] = frand();
        kh[i] = fq_f32_to_fp16(kf[i]), vh[i] = fq_f32_to_fp16(vf[i]);
    }
    uint64_t h = H0;
    k->scores_f32(s, NP, q, HD, NH, kf, HD, NP, HD, 0.125f);
    h = h_mix(h, s, sizeof s);
    k->softmax(s, NP, NH, NP);
    h = h_mix(h, s, sizeof s);
    k->pv_f32(o, HD, s, NP, NH, vf, HD, NP, HD);
    h = h_mix(h, o, sizeof o);
    k->scores_f16(s, NP, q, HD, NH, kh, HD, NP, HD, 0.125f);
    k->softmax(s, NP, NH, NP);
    h = h_mix(h, s, sizeof s);
    for (int r16 = 0; r16 < 2; r16++) {
        k->pv_f16(o, HD, s, NP, NH, vh, HD, NP, HD, r16);
        h = h_mix(h, o, sizeof o);
    }
    printf("hash attention %016llx\n", (unsigned long long)h);
}

static void child_logits(const char *model, const char *rule) {
    char path[256];
    snprintf(path, sizeof path, DATA "models/%s", model);
    fqlm_model *m = fqlm_model_load(path);
    if (!m) {
        printf("logits %s: %s\n", model, fqlm_last_error());
        return;
    }
    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 64, p.n_threads = 2;
    fqlm_context *c = fqlm_context_new(m, &p);
    int32_t ids[40];
    const int nv = fqlm_model_n_vocab(m);
    int n = fqlm_tokenize(m, "Once upon a time, there was a little dog named Tim.", ids, 40, 1);
    float *lg = n > 0 ? malloc(sizeof(float) * (size_t)(n + 1) * (size_t)nv) : NULL;
    if (!c || !lg || (rule && fqlm_context_add_rule(c, rule)) ||
        fqlm_eval_all(c, ids, n, 0, lg) || fqlm_eval(c, ids + 3, 1, n, lg + (size_t)n * nv)) {
        printf("logits %s: %s\n", model, fqlm_last_error());
    } else {
        /* the prompt batch, then one decode step */
        printf("hash logits:%s%s%s %016llx\n", model, rule ? "+" : "", rule ? rule : "",
               (unsigned long long)h_mix(H0, lg, sizeof(float) * (size_t)(n + 1) * (size_t)nv));
    }
    free(lg);
    fqlm_context_free(c);
    fqlm_model_free(m);
}

static int child(void) {
    const char *err = fq_cpu_isa_error();
    printf("level %s\n", fq_cpu_isa_name(fq_cpu_isa()));
    printf("family qtypes %s\n", fq_qtypes_init());
    printf("family formats %s\n", fq_formats_init());
    printf("family attention %s\n", fq_attn_get()->name);
    printf("error %s\n", err ? err : "-");
    child_quants();
    child_formats();
    child_attn(fq_attn_get());
    child_logits("stories260K-f16.gguf", NULL);
    child_logits("stories260K-ff192-q4_0.gguf", "ffn_out@*=bf16");
    child_logits("synth-l2-e256-q4_k_m.gguf", NULL);
    child_logits("synth-l2-e256-q8_0.gguf", "attn_norm@1=int4:per_row");
    child_logits("synth-l2-e256-bf16.gguf", NULL);
    return 0;
}

/* ---- the parent: run the child under each environment -------------------------------- */

static char g_self[1024];

/* Runs prog argv with FQLM_ISA / FQLM_FORCE_GENERIC set as given (NULL: unset); returns its
 * stdout (with stderr when g_merge is set; malloc'd) and exit status. */
static int g_merge;
static char *run_with(const char *const *argv, const char *isa, const char *force, int *status) {
    int pfd[2];
    *status = -1;
    if (pipe(pfd)) return NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return NULL;
    if (pid == 0) {
        unsetenv("FQLM_ISA");
        unsetenv("FQLM_FORCE_GENERIC");
        if (isa) setenv("FQLM_ISA", isa, 1);
        if (force) setenv("FQLM_FORCE_GENERIC", force, 1);
        dup2(pfd[1], 1);
        if (g_merge) dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t r = read(pfd[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(pfd[0]);
    waitpid(pid, status, 0);
    return buf;
}

static const char *line_value(const char *out, const char *key, char *val, size_t cap) {
    const size_t kl = strlen(key);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) || p[kl] != ' ') continue;
        const char *e = strchr(p + kl + 1, '\n');
        size_t n = e ? (size_t)(e - p - kl - 1) : strlen(p + kl + 1);
        if (n >= cap) n = cap - 1;
        memcpy(val, p + kl + 1, n);
        val[n] = 0;
        return val;
    }
    return NULL;
}

static int count_lines(const char *out, const char *prefix) {
    int n = 0;
    const size_t l = strlen(prefix);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += !strncmp(p, prefix, l);
    return n;
}

/* Every family in out runs `level`; every hash line of ref is in out with the same value. */
static void expect_level(const char *what, const char *out, int status, int level, const char *ref) {
    CHECK(out && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child failed (%d)", what, status);
    if (!out) return;
    static const char *fam[] = {"level", "family qtypes", "family formats", "family attention"};
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        char v[64];
        const char *got = line_value(out, fam[i], v, sizeof v);
        CHECK(got && !strcmp(got, fq_cpu_isa_name(level)), "%s: %s runs %s, want %s", what, fam[i],
              got ? got : "(nothing)", fq_cpu_isa_name(level));
    }
    const int nh = count_lines(out, "hash ");
    CHECK(nh > 60 && count_lines(out, "hash logits:") == 5 && count_lines(out, "logits ") == 0 &&
              count_lines(out, "format ") == 0,
          "%s: %d hashes, or a failure:\n%s", what, nh, out);
    if (!ref) return;
    int diff = 0, checked = 0;
    for (const char *p = ref; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, "hash ", 5)) continue;
        const char *sp = strchr(p + 5, ' ');
        char key[256], want[64], got[64];
        size_t kl = (size_t)(sp - p);
        if (!sp || kl >= sizeof key) continue;
        memcpy(key, p, kl);
        key[kl] = 0;
        line_value(ref, key, want, sizeof want);
        checked++;
        if (!line_value(out, key, got, sizeof got) || strcmp(got, want)) {
            diff++;
            fprintf(stderr, "  %s: %s differs from generic\n", what, key + 5);
        }
    }
    CHECK(diff == 0 && checked == nh, "%s: %d of %d results differ from generic", what, diff, checked);
}

static void test_levels(void) {
    const ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (n <= 0) {
        CHECK(0, "readlink /proc/self/exe");
        return;
    }
    g_self[n] = 0;
    const char *argv[] = {g_self, "--child", NULL};
    const int best = fq__cpu_isa_level();
    int st;
    char *gen = run_with(argv, "generic", NULL, &st);
    expect_level("FQLM_ISA=generic", gen, st, FQ_ISA_GENERIC, NULL);
    char v[256];
    CHECK(gen && line_value(gen, "error", v, sizeof v) && !strcmp(v, "-"), "generic: error line");
    for (int l = FQ_ISA_AVX2; l <= best; l++) {
        char what[64];
        snprintf(what, sizeof what, "FQLM_ISA=%s", fq_cpu_isa_name(l));
        char *out = run_with(argv, fq_cpu_isa_name(l), NULL, &st);
        expect_level(what, out, st, l, gen);
        free(out);
    }
    printf("levels checked against generic: generic..%s\n", fq_cpu_isa_name(best));
    char *out = run_with(argv, NULL, NULL, &st);
    expect_level("no FQLM_ISA", out, st, best, gen);
    free(out);
    out = run_with(argv, NULL, "1", &st);
    expect_level("FQLM_FORCE_GENERIC=1", out, st, FQ_ISA_GENERIC, gen);
    free(out);
    out = run_with(argv, fq_cpu_isa_name(best), "1", &st);
    expect_level("FQLM_ISA=best, FQLM_FORCE_GENERIC=1", out, st, FQ_ISA_GENERIC, gen);
    free(out);
    /* a level this CPU lacks: the library runs the best it has and says why; the API refuses */
    if (best < FQ_ISA_AVX512) {
        const char *want = fq_cpu_isa_name(FQ_ISA_AVX512);
        out = run_with(argv, want, NULL, &st);
        CHECK(out && line_value(out, "level", v, sizeof v) && !strcmp(v, fq_cpu_isa_name(best)),
              "FQLM_ISA=avx512 on a %s CPU: level %s", fq_cpu_isa_name(best), out ? v : "?");
        CHECK(out && line_value(out, "error", v, sizeof v) && strstr(v, "FQLM_ISA=avx512") &&
                  strstr(v, "missing"), "FQLM_ISA=avx512 unsupported: error line '%s'", out ? v : "");
        CHECK(out && count_lines(out, "logits ") == 5, "unsupported level: fqlm_model_load must refuse");
        free(out);
    } else {
        printf("this CPU runs every level: the refusal of a missing one is checked on CPUID words "
               "only (test_choose)\n");
    }
    /* a name fqlm does not know: generic, a message, and fqlm_model_load refuses */
    out = run_with(argv, "avx1024", NULL, &st);
    CHECK(out && line_value(out, "level", v, sizeof v) && !strcmp(v, "generic"), "FQLM_ISA=avx1024: level");
    CHECK(out && line_value(out, "error", v, sizeof v) && strstr(v, "FQLM_ISA='avx1024'"),
          "FQLM_ISA=avx1024: error line");
    CHECK(out && count_lines(out, "logits ") == 5 && strstr(out, "is not a level fqlm knows"),
          "FQLM_ISA=avx1024: fqlm_model_load must refuse with the message");
    free(out);
    free(gen);

    /* the CLI refuses to start with a level it cannot grant */
    const char *bin = getenv("FQLM_BIN");
    if (!bin) bin = "build/fqlm";
    if (access(bin, X_OK)) {
        CHECK(0, "%s not found (set FQLM_BIN)", bin);
        return;
    }
    const char *cli[] = {bin, "inspect", DATA "models/stories260K-f16.gguf", NULL};
    g_merge = 1;
    out = run_with(cli, "avx1024", NULL, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && out &&
              !strcmp(out, "fqlm: error: FQLM_ISA='avx1024' is not a level fqlm knows (generic, "
                           "avx2, avx512)\n"),
          "fqlm with FQLM_ISA=avx1024: exit %d, want 2 and only the message; got \"%s\"",
          WEXITSTATUS(st), out ? out : "");
    free(out);
    out = run_with(cli, "avx2", NULL, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == (best >= FQ_ISA_AVX2 ? 0 : 2),
          "fqlm with FQLM_ISA=avx2 on a %s CPU: exit %d", fq_cpu_isa_name(best), WEXITSTATUS(st));
    free(out);
    if (best < FQ_ISA_AVX512) {
        out = run_with(cli, "avx512", NULL, &st);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && out && strstr(out, "missing: "),
              "fqlm with FQLM_ISA=avx512 on a %s CPU: exit %d, %s", fq_cpu_isa_name(best),
              WEXITSTATUS(st), out ? out : "");
        free(out);
    }
    g_merge = 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--child")) return child();
    test_generations();
    test_built_sets();
    test_this_cpu();
    test_choose();
    test_one_probe();
    test_levels();
    return TEST_END();
}
