/* bench_model.c - `fqlm bench -m MODEL`: llama-bench-style prompt processing (pp) and text
 * generation (tg) speed, set against the machine's measured memory read bandwidth.
 *
 * pp: one batch of p random tokens from an empty cache; tg: n random tokens one at a time
 * from an empty cache (as llama-bench). Every repetition evaluates the same tokens, so the
 * hash of the last logits is the same for every repetition and every thread count: a
 * speed-up that changes results changes the hash. Decode is memory-bound: each token reads
 * every weight once, so tg tok/s x weight bytes per token / bandwidth says how close the
 * decoder comes to the machine's limit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "cpu.h"
#include "forward.h"
#include "jsonw.h"
#include "model.h"
#include "opts.h"
#include "qtypes.h"
#include "quantize.h"
#include "threadpool.h"

/* Entry from cmd_bench.c (`fqlm bench`, `fqlm bench -m MODEL ...`, `fqlm bench model ...`):
 * argv[0] is "bench" or "model", options follow. Returns the exit status. */
int bench_model(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm bench [-m MODEL] [-p N] [-n N] [-t N] [-r N] [--json FILE]\n"
            "\n"
            "Measures prompt processing (pp: one batch of N random tokens) and text generation\n"
            "(tg: N tokens one at a time), both from an empty cache, as tokens per second (mean\n"
            "± sd over the repetitions), and the machine's memory read bandwidth; prints how\n"
            "much of that bandwidth decoding uses.\n"
            "\n"
            "  -m, --model FILE    GGUF model (default: models/stories260K.gguf)\n"
            "  -p, --n-prompt N    prompt tokens (default 512; 0: no pp test)\n"
            "  -n, --n-gen N       generated tokens (default 128; 0: no tg test)\n"
            "  -t, --threads N     threads (default: physical cores, %d here)\n"
            "  -r, --repetitions N (default 3)\n"
            "  --exact             F32 activations (default: llama.cpp's activation formats)\n"
            "  -ctk, --cache-type-k T, -ctv, --cache-type-v T\n"
            "                      K / V cache type: f32 (default) or f16 (llama-bench's default)\n"
            "  --no-warmup         skip the untimed warm-up run\n"
            "  --bw-mib N          buffer of the bandwidth test in MiB (default 512; 0: skip); its\n"
            "                      passes run beside the decode runs, the median is reported\n"
            "  --json FILE         write the results as JSON\n",
            fq_physical_cores());
}

typedef struct {
    const char *model;
    int n_prompt, n_gen, n_threads, reps, exact, warmup, bw_mib;
    uint32_t ctk, ctv; /* cache types, FQ_TYPE_F32 or FQ_TYPE_F16 */
    const char *json;
} bench_opts;

/* ---- machine facts ------------------------------------------------------------------- */

static void cpu_name(char *out, size_t n) {
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(out, n, "%s", c);
        break;
    }
    fclose(f);
}

/* Resident set now, in MiB (/proc/self/statm), or the high-water mark from getrusage when
 * /proc is not there. Sampled after every run with the bandwidth buffer freed, so the
 * figure is the engine's own (the kernel's high-water mark would count the buffer). */
static double rss_now_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (f) {
        int ok = fscanf(f, "%llu %llu", &size, &res) == 2;
        fclose(f);
        if (ok) return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* Memory read bandwidth: every thread sums its share of a buffer far larger than the
 * last-level cache, 16-byte loads, eight independent sums. The buffer holds a different
 * word at every position: pages of one repeated byte can be merged or compressed by the
 * host (seen here: a memset buffer once "read" at 63 GB/s, twice the machine's rate).
 * On a shared machine the rate moves with the neighbours' load, so passes are taken
 * between the timed decode runs and their median is the figure decode is set against. */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

typedef struct {
    const v2u64 *buf;
    int64_t n_chunks; /* of 8 vectors (128 bytes) */
    uint64_t sink[512];
} bw_job;

static void bw_read(void *arg, int ith, int nth) {
    bw_job *j = arg;
    int64_t c0, c1;
    fq_split(j->n_chunks, ith, nth, &c0, &c1);
    v2u64 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (const v2u64 *p = j->buf + 8 * c0, *end = j->buf + 8 * c1; p < end; p += 8) {
        a0 += p[0], a1 += p[1], a2 += p[2], a3 += p[3];
        a4 += p[4], a5 += p[5], a6 += p[6], a7 += p[7];
    }
    v2u64 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    if (ith < 512) j->sink[ith] = s[0] ^ s[1];
}

enum { BW_MAX_SAMPLES = 64 };
typedef struct {
    size_t mib;
    double gbs[BW_MAX_SAMPLES];
    int n;
} bw_probe;

/* `passes` timed passes over a freshly filled buffer of b->mib MiB, freed again before
 * returning; appends GB/s (1e9 bytes) samples. Returns -1 when the buffer cannot be had. */
static int bw_measure(bw_probe *b, fq_pool *pool, int passes) {
    const size_t bytes = b->mib << 20;
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) return -1;
    for (size_t i = 0; i < bytes / 8; i++) buf[i] = (i + 1) * 0x9E3779B97F4A7C15ull; /* faults pages in */
    bw_job *j = malloc(sizeof *j);
    if (!j) {
        free(buf);
        return -1;
    }
    j->buf = (const v2u64 *)buf;
    j->n_chunks = (int64_t)(bytes / 128);
    for (int t = 0; t < passes && b->n < BW_MAX_SAMPLES; t++) {
        int64_t t0 = fq_time_us();
        fq_pool_run(pool, bw_read, j);
        int64_t dt = fq_time_us() - t0;
        if (dt > 0) b->gbs[b->n++] = (double)j->n_chunks * 128 / (dt * 1e3);
    }
    volatile uint64_t keep = j->sink[0];
    (void)keep;
    free(j);
    free(buf);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median, smallest and largest of the passes (0 when there are none) */
static void bw_summary(const bw_probe *b, double *med, double *lo, double *hi) {
    double v[BW_MAX_SAMPLES];
    const int n = b->n;
    *med = *lo = *hi = 0;
    if (n <= 0) return;
    memcpy(v, b->gbs, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    *lo = v[0];
    *hi = v[n - 1];
}

/* ---- statistics and hashes ------------------------------------------------------------ */

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0;
}

/* Deterministic random token ids in [0, V). */
static void random_tokens(int32_t *t, int n, int V, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        s += 0x9e3779b97f4a7c15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        t[i] = (int32_t)(z % (uint64_t)V);
    }
}

/* ---- the benchmark --------------------------------------------------------------------- */

static int parse(bench_opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        long long v;
#define IS(s) (!strcmp(a, s))
#define INT_OPT(var, lo, hi)                                       \
    do {                                                           \
        if (!val) {                                                \
            cli_error("bench: option %s needs a value", a);        \
            return 2;                                              \
        }                                                          \
        if (cli_parse_int(a, val, lo, hi, &v)) return 2;           \
        var = (int)v;                                              \
        i++;                                                       \
    } while (0)
        if (IS("-h") || IS("--help")) {
            usage(stdout);
            return -1;
        } else if (IS("-m") || IS("--model")) {
            if (!val) {
                cli_error("bench: option %s needs a value", a);
                return 2;
            }
            o->model = val;
            i++;
        } else if (IS("-p") || IS("--n-prompt")) INT_OPT(o->n_prompt, 0, 1 << 16);
        else if (IS("-n") || IS("--n-gen")) INT_OPT(o->n_gen, 0, 1 << 16);
        else if (IS("-t") || IS("--threads")) INT_OPT(o->n_threads, 1, 512);
        else if (IS("-r") || IS("--repetitions")) INT_OPT(o->reps, 1, 1000);
        else if (IS("--bw-mib")) INT_OPT(o->bw_mib, 0, 1 << 20);
        else if (IS("--exact")) o->exact = 1;
        else if (IS("-ctk") || IS("--cache-type-k") || IS("-ctv") || IS("--cache-type-v")) {
            if (!val) {
                cli_error("bench: option %s needs a value", a);
                return 2;
            }
            uint32_t t;
            if (!strcmp(val, "f32")) t = FQ_TYPE_F32;
            else if (!strcmp(val, "f16")) t = FQ_TYPE_F16;
            else {
                cli_error("bench: %s: unknown cache type '%s' (known: f32, f16)", a, val);
                return 2;
            }
            *(IS("-ctk") || IS("--cache-type-k") ? &o->ctk : &o->ctv) = t;
            i++;
        }
        else if (IS("--no-warmup")) o->warmup = 0;
        else if (IS("--json")) {
            if (!val) {
                cli_error("bench: option %s needs a value", a);
                return 2;
            }
            o->json = val;
            i++;
        } else {
            cli_error("bench: unknown option '%s' (see fqlm bench --help)", a);
            return 2;
        }
#undef INT_OPT
#undef IS
    }
    if (!o->n_prompt && !o->n_gen) {
        cli_error("bench: nothing to measure (-p 0 and -n 0)");
        return 2;
    }
    return 0;
}

typedef struct {
    double pp_tps, pp_sd, tg_tps, tg_sd, pp_ms, tg_ms;
    double *pp_samples, *tg_samples;
    double bw_gbs, bw_min, bw_max, rss_mib, load_ms;
    bw_probe bw; /* the bandwidth passes */
    uint64_t hash, weight_bytes, file_bytes, n_params;
} bench_result;

static int write_json(const char *path, const bench_opts *o, const fq_model *m, const char *cpu,
                      const char *isa, const bench_result *r) {
    jsonw w;
    jsonw_init(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "model"); jsonw_str(&w, o->model);
    const char *ft = fq_qmix_ftype_name(m->hp.file_type);
    jsonw_key(&w, "file_type"); ft ? jsonw_str(&w, ft) : jsonw_null(&w);
    jsonw_key(&w, "n_params"); jsonw_int(&w, (long long)r->n_params);
    jsonw_key(&w, "model_bytes"); jsonw_int(&w, (long long)r->file_bytes);
    jsonw_key(&w, "cpu"); jsonw_str(&w, cpu);
    jsonw_key(&w, "isa"); jsonw_str(&w, isa);
    jsonw_key(&w, "n_threads"); jsonw_int(&w, o->n_threads);
    jsonw_key(&w, "exact"); jsonw_bool(&w, o->exact);
    jsonw_key(&w, "cache_type_k"); jsonw_str(&w, o->ctk == FQ_TYPE_F16 ? "f16" : "f32");
    jsonw_key(&w, "cache_type_v"); jsonw_str(&w, o->ctv == FQ_TYPE_F16 ? "f16" : "f32");
    jsonw_key(&w, "n_prompt"); jsonw_int(&w, o->n_prompt);
    jsonw_key(&w, "n_gen"); jsonw_int(&w, o->n_gen);
    jsonw_key(&w, "repetitions"); jsonw_int(&w, o->reps);
    jsonw_key(&w, "pp_tps"); jsonw_num(&w, r->pp_tps);
    jsonw_key(&w, "pp_tps_sd"); jsonw_num(&w, r->pp_sd);
    jsonw_key(&w, "pp_ms"); jsonw_num(&w, r->pp_ms);
    jsonw_key(&w, "pp_tps_samples");
    jsonw_arr_begin(&w);
    for (int i = 0; o->n_prompt && i < o->reps; i++) jsonw_num(&w, r->pp_samples[i]);
    jsonw_arr_end(&w);
    jsonw_key(&w, "tg_tps"); jsonw_num(&w, r->tg_tps);
    jsonw_key(&w, "tg_tps_sd"); jsonw_num(&w, r->tg_sd);
    jsonw_key(&w, "tg_ms_per_token"); jsonw_num(&w, r->tg_ms);
    jsonw_key(&w, "tg_tps_samples");
    jsonw_arr_begin(&w);
    for (int i = 0; o->n_gen && i < o->reps; i++) jsonw_num(&w, r->tg_samples[i]);
    jsonw_arr_end(&w);
    jsonw_key(&w, "bandwidth_gbs"); jsonw_num(&w, r->bw.n ? r->bw_gbs : NAN);
    jsonw_key(&w, "bandwidth_gbs_min"); jsonw_num(&w, r->bw.n ? r->bw_min : NAN);
    jsonw_key(&w, "bandwidth_gbs_max"); jsonw_num(&w, r->bw.n ? r->bw_max : NAN);
    jsonw_key(&w, "bandwidth_gbs_samples");
    jsonw_arr_begin(&w);
    for (int i = 0; i < r->bw.n; i++) jsonw_num(&w, r->bw.gbs[i]);
    jsonw_arr_end(&w);
    jsonw_key(&w, "weight_bytes_per_token"); jsonw_int(&w, (long long)r->weight_bytes);
    double dec_gbs = r->tg_tps * (double)r->weight_bytes / 1e9;
    jsonw_key(&w, "decode_gbs"); jsonw_num(&w, o->n_gen ? dec_gbs : NAN);
    jsonw_key(&w, "decode_efficiency");
    jsonw_num(&w, o->n_gen && r->bw_gbs > 0 ? dec_gbs / r->bw_gbs : NAN);
    jsonw_key(&w, "rss_mib"); jsonw_num(&w, r->rss_mib);
    jsonw_key(&w, "load_ms"); jsonw_num(&w, r->load_ms);
    char hx[24];
    snprintf(hx, sizeof hx, "%016llx", (unsigned long long)r->hash);
    jsonw_key(&w, "logits_hash"); jsonw_str(&w, hx);
    jsonw_obj_end(&w);
    fq_err e;
    int rc = jsonw_write_file(&w, path, &e);
    if (rc) cli_error("%s", e.msg);
    jsonw_free(&w);
    return rc;
}

int bench_model(int argc, char **argv) {
    bench_opts o = {.n_prompt = 512, .n_gen = 128, .n_threads = fq_physical_cores(), .reps = 3, .warmup = 1,
                    .bw_mib = 512, .ctk = FQ_TYPE_F32, .ctv = FQ_TYPE_F32};
    int prc = parse(&o, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!o.model) o.model = cli_default_model();
    const char *isa = fq_qtypes_init();
    char isa_text[128]; /* the level, and what lowered it if the environment did */
    fq_cpu_isa_describe(isa_text, sizeof isa_text);
    char cpu[256];
    cpu_name(cpu, sizeof cpu);

    fq_err e;
    bench_result r;
    memset(&r, 0, sizeof r);
    int64_t t_load = fq_time_us();
    fq_model *m = fq_model_load(o.model, &e);
    if (!m) {
        cli_error("%s", e.msg);
        return 1;
    }
    r.load_ms = (fq_time_us() - t_load) / 1e3;
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++) {
        const fq_gguf_tensor *t = &m->gguf.tensors[i];
        r.file_bytes += t->nbytes;
        r.n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    r.weight_bytes = fq_model_weight_bytes(m);
    const int V = m->hp.n_vocab;
    int n_ctx = FQ_MAX(FQ_MAX(o.n_prompt, o.n_gen), 1);
    fq_ctx_params cp = {.n_ctx = n_ctx, .n_threads = o.n_threads, .exact = o.exact,
                        .cache_type = FQ_TYPE_F32, .kv_split = 1, .cache_type_k = o.ctk,
                        .cache_type_v = o.ctv, .n_batch = FQ_MAX(o.n_prompt, 1)};
    int rc = 1;
    fq_ctx *c = NULL;
    float *logits = NULL;
    int32_t *ptoks = NULL, *gtoks = NULL;
    r.pp_samples = calloc((size_t)o.reps, sizeof(double));
    r.tg_samples = calloc((size_t)o.reps, sizeof(double));
    logits = fq_malloc((size_t)V * sizeof(float), &e);
    ptoks = fq_malloc((size_t)FQ_MAX(o.n_prompt, 1) * sizeof(int32_t), &e);
    gtoks = fq_malloc((size_t)FQ_MAX(o.n_gen, 1) * sizeof(int32_t), &e);
    if (!r.pp_samples || !r.tg_samples || !logits || !ptoks || !gtoks) {
        cli_error("bench: out of memory");
        goto done;
    }
    if (!(c = fq_ctx_new(m, &cp, &e))) {
        cli_error("%s", e.msg);
        goto done;
    }
    random_tokens(ptoks, o.n_prompt, V, 1234);
    random_tokens(gtoks, o.n_gen, V, 5678);
    const char *ft = fq_qmix_ftype_name(m->hp.file_type);
    fprintf(stderr, "fqlm bench: %s: %d layers, n_embd %d, n_vocab %d, %s; %d threads, %s, %s "
                    "arithmetic, K/V cache %s/%s\n",
            o.model, m->hp.n_layer, m->hp.n_embd, V, ft ? ft : "?", o.n_threads, isa_text,
            o.exact ? "exact" : "default", o.ctk == FQ_TYPE_F16 ? "f16" : "f32", o.ctv == FQ_TYPE_F16 ? "f16" : "f32");

    if (o.warmup) {
        if (o.n_prompt && fq_ctx_eval(c, ptoks, o.n_prompt, 0, logits, 0, &e)) goto eval_fail;
        if (o.n_gen && fq_ctx_eval(c, gtoks, 1, 0, logits, 0, &e)) goto eval_fail;
    }
    r.bw.mib = (size_t)o.bw_mib;
    int bw_fail = 0;
    r.rss_mib = rss_now_mib();
    for (int rep = 0; o.n_prompt && rep < o.reps; rep++) {
        int64_t t0 = fq_time_us();
        if (fq_ctx_eval(c, ptoks, o.n_prompt, 0, logits, 0, &e)) goto eval_fail;
        double s = (fq_time_us() - t0) / 1e6;
        r.pp_samples[rep] = s > 0 ? o.n_prompt / s : 0;
        r.hash = fq_fnv1a(logits, (size_t)V * sizeof(float));
        r.rss_mib = FQ_MAX(r.rss_mib, rss_now_mib());
    }
    for (int rep = 0; o.n_gen && rep < o.reps; rep++) {
        /* bandwidth passes beside every decode run, under the same neighbours' load */
        if (o.bw_mib && !bw_fail) bw_fail = bw_measure(&r.bw, fq_ctx_pool(c), 2);
        int64_t t0 = fq_time_us();
        for (int i = 0; i < o.n_gen; i++)
            if (fq_ctx_eval(c, &gtoks[i], 1, i, logits, 0, &e)) goto eval_fail;
        double s = (fq_time_us() - t0) / 1e6;
        r.tg_samples[rep] = s > 0 ? o.n_gen / s : 0;
        r.hash = fq_fnv1a(logits, (size_t)V * sizeof(float));
        r.rss_mib = FQ_MAX(r.rss_mib, rss_now_mib());
    }
    if (o.bw_mib && !bw_fail) bw_fail = bw_measure(&r.bw, fq_ctx_pool(c), o.n_gen ? 2 : 5);
    if (bw_fail) fprintf(stderr, "fqlm bench: no %d MiB buffer for the bandwidth test; skipped\n", o.bw_mib);
    bw_summary(&r.bw, &r.bw_gbs, &r.bw_min, &r.bw_max);
    mean_sd(r.pp_samples, o.n_prompt ? o.reps : 0, &r.pp_tps, &r.pp_sd);
    mean_sd(r.tg_samples, o.n_gen ? o.reps : 0, &r.tg_tps, &r.tg_sd);
    r.pp_ms = r.pp_tps > 0 ? 1e3 * o.n_prompt / r.pp_tps : 0;
    r.tg_ms = r.tg_tps > 0 ? 1e3 / r.tg_tps : 0;

    /* the table, as llama-bench prints it */
    char label[96];
    fq_str gname = {NULL, 0};
    if (fq_gguf_get_str(&m->gguf, "general.name", &gname, NULL) != 0) gname.ptr = NULL;
    char shown[48]; /* the name is file content: escaped, at most 47 bytes */
    snprintf(label, sizeof label, "%s %s", gname.ptr ? fq_show(shown, sizeof shown, gname.ptr, gname.len) : "llama",
             ft ? ft : "");
    printf("| %-32s | %10s | %8s | %7s | %7s | %18s |\n", "model", "size", "params", "threads",
           "test", "t/s");
    printf("| %.32s | %.9s: | %.7s: | %.6s: | %.6s: | %.17s: |\n",
           "--------------------------------", "----------", "--------", "-------", "-------",
           "------------------");
    char size[32], params[32], test[32], tps[48];
    snprintf(size, sizeof size, "%.2f MiB", r.file_bytes / 1048576.0);
    snprintf(params, sizeof params, r.n_params >= 1000000000ull ? "%.2f B" : "%.2f M",
             r.n_params >= 1000000000ull ? r.n_params / 1e9 : r.n_params / 1e6);
    if (o.n_prompt) {
        snprintf(test, sizeof test, "pp%d", o.n_prompt);
        snprintf(tps, sizeof tps, "%.2f ± %.2f", r.pp_tps, r.pp_sd);
        printf("| %-32s | %10s | %8s | %7d | %7s | %18s |\n", label, size, params, o.n_threads,
               test, tps);
    }
    if (o.n_gen) {
        snprintf(test, sizeof test, "tg%d", o.n_gen);
        snprintf(tps, sizeof tps, "%.2f ± %.2f", r.tg_tps, r.tg_sd);
        printf("| %-32s | %10s | %8s | %7d | %7s | %18s |\n", label, size, params, o.n_threads,
               test, tps);
    }
    printf("\ncpu: %s, %d threads, kernels: %s\n", cpu, o.n_threads, isa_text);
    if (r.bw.n)
        printf("memory read bandwidth: %.2f GB/s (%d threads, %d MiB buffer, median of %d passes "
               "%s, range %.2f-%.2f)\n",
               r.bw_gbs, o.n_threads, o.bw_mib, r.bw.n, o.n_gen ? "beside the decode runs" : "",
               r.bw_min, r.bw_max);
    printf("weights read per token: %.2f MiB\n", r.weight_bytes / 1048576.0);
    double dec_gbs = r.tg_tps * (double)r.weight_bytes / 1e9;
    if (o.n_gen) {
        if (r.bw_gbs > 0)
            printf("decode: %.2f ms/token, %.2f GB/s of weights = %.1f%% of the measured bandwidth\n",
                   r.tg_ms, dec_gbs, 100.0 * dec_gbs / r.bw_gbs);
        else
            printf("decode: %.2f ms/token, %.2f GB/s of weights\n", r.tg_ms, dec_gbs);
    }
    printf("peak RSS: %.1f MiB (sampled after every run); load: %.1f ms; logits hash: %016llx\n", r.rss_mib, r.load_ms,
           (unsigned long long)r.hash);
    if (o.json && write_json(o.json, &o, m, cpu, isa, &r)) goto done;
    rc = 0;
    goto done;
eval_fail:
    cli_error("bench: %s", e.msg);
done:
    fq_ctx_free(c);
    fq_model_free(m);
    free(logits);
    free(ptoks);
    free(gtoks);
    free(r.pp_samples);
    free(r.tg_samples);
    return rc;
}
