/* cmd_bench.c - `fqlm bench MODE ...`: benchmarks. `formats` measures how many elements per
 * second each number format rounds on one thread; `model` (bench_model.c, when built in)
 * measures a model's prompt and generation speed. A new mode is one row of BENCHES.
 *
 * bench formats: each format rounds a fresh copy of the same N-element tensor (rows of
 * 4096 standard normal values times a per-row scale) in place, statistics on, as the
 * fake-quantization hooks run it. Only the apply is timed. Each line ends with a hash of
 * the rounded tensor, so a speed-up that changes results shows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cpu.h"
#include "opts.h"
#include "formats.h"

int bench_model(int argc, char **argv);   /* bench_model.c */
int bench_kernels(int argc, char **argv); /* bench_kernels.c */
int bench_tokenizer(int argc, char **argv); /* cmd_tokenize.c */
int bench_sweep(int argc, char **argv);   /* bench_sweep.c */

static int bench_formats(int argc, char **argv);

typedef struct bench_mode {
    const char *name;
    int (*fn)(int argc, char **argv); /* argv[0] is the mode name */
    const char *help;
} bench_mode;

static bench_mode BENCHES[] = {
    {"formats", bench_formats, "elements per second of every number format, one thread"},
    {"model", bench_model, "prompt processing and generation speed of a model (-m MODEL)"},
    {"kernels", bench_kernels, "dot-product kernels: GB/s from L2 and from memory, per ISA"},
    {"tokenizer", bench_tokenizer, "tokens per second on a 1 MB text, per vocabulary (-m VOCAB...)"},
    {"sweep", bench_sweep, "combinations per hour and scoring tokens/s of a small fixed sweep (-m MODEL)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: fqlm bench MODE [options]\n\nmodes:\n");
    for (size_t i = 0; i < FQ_ARRAY_LEN(BENCHES); i++)
        if (BENCHES[i].fn) fprintf(f, "  %-8s %s\n", BENCHES[i].name, BENCHES[i].help);
    fprintf(f, "\n`fqlm bench MODE --help` shows a mode's options.\n");
}

static void known(char *buf, size_t n) {
    buf[0] = 0;
    for (size_t i = 0; i < FQ_ARRAY_LEN(BENCHES); i++) {
        if (!BENCHES[i].fn) continue;
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", l ? ", " : "", BENCHES[i].name);
    }
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2) return bench_model(argc, argv); /* plain `fqlm bench` */
    const char *mode = argv[1];
    if (!strcmp(mode, "--help") || !strcmp(mode, "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < FQ_ARRAY_LEN(BENCHES); i++)
        if (BENCHES[i].fn && !strcmp(mode, BENCHES[i].name)) return BENCHES[i].fn(argc - 1, argv + 1);
    /* `fqlm bench -m MODEL ...`: the model benchmark's own spelling, without a mode */
    if (mode[0] == '-') return bench_model(argc, argv);
    char k[128];
    known(k, sizeof k);
    cli_error("unknown benchmark '%s' (known: %s)", mode, k);
    return 2;
}

/* ---- bench formats ------------------------------------------------------------------ */

static const char *const DEFAULT_SPECS[] = {
    "f32", "bf16", "fp16", "tf32", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1",
    "e3m4:fn,subnormal=off", "fp8_e4m3:round=rtz", "fp8_e4m3:round=stochastic",
    "mxfp8_e4m3", "mxfp6_e3m2", "mxfp4", "mxint8", "mxfp4:scale=rceil", "nvfp4",
    "nvfp4:tensor_scale=off", "int8", "int8:per_row", "int4:group=32", "int4:group=32,asym",
    "int8:per_col", "int8:round=stochastic", "q8_0", "q8_0:enc=act", "q4_0", "q4_k", "q6_k",
};

static void usage_formats(FILE *f) {
    fprintf(f,
            "usage: fqlm bench formats [-n N] [--isa generic|avx2|avx512] [SPEC...]\n"
            "\n"
            "Rounds an N-element tensor (rows of 4096 values) with each format on one thread and\n"
            "prints elements per second, bytes per second (read + write), SQNR and a hash of the\n"
            "result. Default: a selection of formats.\n"
            "\n"
            "  -n N        elements (default 1048576, 4 MiB)\n"
            "  --isa NAME  force a kernel variant (default: the best this CPU runs)\n"
            "  --min-ms T  time each format for at least T milliseconds (default 300)\n");
}

static uint64_t hash_floats(const float *x, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)x;
    for (int64_t i = 0; i < n * 4; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int bench_formats(int argc, char **argv) {
    long n = 1 << 20, min_ms = 300;
    const char *isa = NULL;
    const char *specs[256];
    int nspecs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_formats(stdout);
            return 0;
        } else if (!strcmp(a, "-n")) {
            if (cli_parse_long(a, v, 4096, 1L << 28, &n)) return 2;
            i++;
        } else if (!strcmp(a, "--min-ms")) {
            if (cli_parse_long(a, v, 1, 600000, &min_ms)) return 2;
            i++;
        } else if (!strcmp(a, "--isa")) {
            if (!v) {
                cli_error("bench formats: --isa needs a value");
                return 2;
            }
            isa = v;
            i++;
        } else if (a[0] == '-' && a[1]) {
            cli_error("bench formats: unknown option '%s'", a);
            usage_formats(stderr);
            return 2;
        } else if (nspecs < (int)FQ_ARRAY_LEN(specs)) {
            specs[nspecs++] = a;
        }
    }
    if (!nspecs)
        for (size_t i = 0; i < FQ_ARRAY_LEN(DEFAULT_SPECS); i++) specs[nspecs++] = DEFAULT_SPECS[i];
    fq_format *fmts[256];
    for (int i = 0; i < nspecs; i++) {
        fq_err e;
        if (fq_format_parse(specs[i], &fmts[i], &e)) {
            cli_error("%s", e.msg);
            for (int j = 0; j < i; j++) fq_format_free(fmts[j]);
            return 2;
        }
    }
    fq_formats_init();
    char level_text[128];
    const char *level = fq_cpu_isa_describe(level_text, sizeof level_text);
    if (isa) {
        if (fq_formats_set_isa(isa)) {
            cli_error("bench formats: kernel variant '%s' is not available on this CPU", isa);
            for (int j = 0; j < nspecs; j++) fq_format_free(fmts[j]);
            return 2;
        }
        level = isa;
    }

    const int64_t ncols = 4096, nrows = (n + ncols - 1) / ncols, total = nrows * ncols;
    float *src = malloc(sizeof(float) * (size_t)total), *buf = malloc(sizeof(float) * (size_t)total);
    if (!src || !buf) {
        cli_error("bench formats: out of memory for %lld elements", (long long)total);
        free(src);
        free(buf);
        return 1;
    }
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t r = 0; r < nrows; r++) {
        double scale = exp2((double)(r % 7) - 3);
        for (int64_t c = 0; c < ncols; c++) { /* Box-Muller from a xorshift */
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            double u1 = ((s >> 11) + 1.0) * 0x1p-53;
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            double u2 = (s >> 11) * 0x1p-53;
            src[r * ncols + c] = (float)(scale * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
        }
    }
    printf("bench formats: %lld elements (%lld x %lld), 1 thread, kernels %s\n",
           (long long)total, (long long)nrows, (long long)ncols, level);
    printf("%-28s %10s %9s %9s %9s  %s\n", "format", "Gelem/s", "ns/elem", "GB/s", "SQNR dB",
           "hash");
    for (int i = 0; i < nspecs; i++) {
        fq_qstats st = {0};
        memcpy(buf, src, sizeof(float) * (size_t)total);
        fq_format_apply(fmts[i], buf, nrows, ncols, 1, 2, 0, &st); /* warm-up, and the hash */
        uint64_t h = hash_floats(buf, total);
        double sqnr = fq_qstats_sqnr_db(&st);
        int64_t spent = 0, reps = 0;
        while (spent < min_ms * 1000 || reps < 3) {
            memcpy(buf, src, sizeof(float) * (size_t)total);
            fq_qstats st2 = {0};
            int64_t t0 = fq_time_us();
            fq_format_apply(fmts[i], buf, nrows, ncols, 1, 2, 0, &st2);
            spent += fq_time_us() - t0;
            reps++;
        }
        double sec = (double)spent * 1e-6, eps = (double)total * (double)reps / (sec > 0 ? sec : 1e-9);
        printf("%-28s %10.3f %9.3f %9.2f %9.2f  %016llx\n", fq_format_str(fmts[i]), eps * 1e-9,
               1e9 / eps, eps * 8e-9, sqnr, (unsigned long long)h);
        fflush(stdout);
    }
    for (int i = 0; i < nspecs; i++) fq_format_free(fmts[i]);
    free(src);
    free(buf);
    return 0;
}
