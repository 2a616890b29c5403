/* bench_kernels.c - `fqlm bench kernels`: weight-consumption speed of the dot-product
 * kernels, the numbers that bound decode (one activation row: GB/s of weight bytes) and
 * prompt processing (many activation rows: GMAC/s).
 *
 * For each weight type, rows of N values (default 2048, TinyLlama's n_embd):
 *   read      a plain read of the DRAM-sized buffer, 1..T threads: the ceiling;
 *   fma       8-lane F32 fused multiply-adds on registers, 1..T threads: the compute
 *             ceiling of the float types' prompt tiles;
 *   L2        vec_dot over a matrix that fits the per-core L2 (512 KiB), 1 thread;
 *   DRAM      vec_dot over a matrix far bigger than L3 (--mb MiB), 1..T threads, rows
 *             split as forward.c splits them (fq_split, fq_pool);
 *   mv        the decode path: vec_dot_mn with one activation row over groups of mv_x
 *             weight rows, on the same L2 and DRAM matrices (same bits as vec_dot: the
 *             hashes of the two lines agree);
 *   dot_n     vec_dot_n with nrc activation rows over the L2 matrix, 1 thread: GMAC/s
 *             and the speed-up over nrc separate vec_dot calls;
 *   mn        vec_dot_mn tiles (mn_x weight rows x mn_y activation rows) over a
 *             5632-row matrix and --pp activation rows, 1..T threads: the prompt path.
 * Each line ends with a hash of the outputs: a change that alters results shows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "cpu.h"
#include "opts.h"
#include "qtypes.h"
#include "threadpool.h"

int bench_kernels(int argc, char **argv);

static void usage_kernels(FILE *f) {
    fprintf(f,
            "usage: fqlm bench kernels [options] [TYPE...]\n"
            "\n"
            "Speed of the dot-product kernels per weight type (default: Q4_K Q6_K Q8_0 Q4_0\n"
            "F16 F32): GB/s of weight bytes from L2 and from DRAM, GMAC/s of the multi-row\n"
            "kernels; first the machine's ceilings: plain read GB/s and F32 FMA GMAC/s.\n"
            "\n"
            "  -n N        values per weight row (default 2048)\n"
            "  -t T        up to T threads for the DRAM and tile runs (default 2)\n"
            "  --mb M      size of the DRAM matrix in MiB (default 512)\n"
            "  --pp P      activation rows of the tile run (default 256; 0 skips it)\n"
            "  --isa NAME  generic|avx2|avx512 (default: the level in use, see FQLM_ISA)\n"
            "  --min-ms T  time each measurement for at least T ms (default 300)\n"
            "  --quick     L2 and DRAM vec_dot and decode (mv) lines only\n");
}

/* ---- kernels of one ISA level ----------------------------------------------------------- */

typedef struct {
    fq__dot_fn dot;
    fq__dotn_fn dotn;
    fq__dotmn_fn dotmn;
    int mn_x, mn_y, mv_x;
} kern;

static int get_kern(const char *isa, uint32_t t, kern *k) {
    const fq_type_traits *tt = fq_type_get(t);
    if (!isa) {
        *k = (kern){tt->vec_dot, tt->vec_dot_n, tt->vec_dot_mn, tt->mn_x, tt->mn_y, tt->mv_x};
        return 0;
    }
    const fq_type_traits *tg = fq_type_get_generic(t);
    *k = (kern){tg->vec_dot, tg->vec_dot_n, tg->vec_dot_mn, tg->mn_x, tg->mn_y, tg->mv_x};
    if (!strcmp(isa, "generic")) return 0;
    const int level = fq__cpu_isa_level();
    fq__isa_kernels ks;
    memset(&ks, 0, sizeof ks);
    if (!strcmp(isa, "avx2") && level >= 1) fq__isa_fill_avx2(&ks);
    else if (!strcmp(isa, "avx512") && level >= 2) fq__isa_fill_avx512(&ks);
    else return -1;
    if (ks.vec_dot[t]) k->dot = ks.vec_dot[t];
    if (ks.vec_dot_n[t]) k->dotn = ks.vec_dot_n[t];
    if (ks.vec_dot_mn[t]) k->dotmn = ks.vec_dot_mn[t];
    if (ks.mn_x[t]) k->mn_x = ks.mn_x[t];
    if (ks.mn_y[t]) k->mn_y = ks.mn_y[t];
    if (ks.mv_x[t]) k->mv_x = ks.mv_x[t];
    return 0;
}

/* ---- data ----------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double gauss(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    const double u1 = ((rng >> 11) + 1.0) * 0x1p-53;
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    const double u2 = (rng >> 11) * 0x1p-53;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint64_t hash_floats(const float *x, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)x;
    for (int64_t i = 0; i < n * 4; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* rows x n weights: 64 distinct encoded rows repeated (encoding K-quants is slow) */
static uint8_t *make_weights(uint32_t t, int64_t n, int64_t rows, size_t *row_bytes) {
    const fq_type_traits *tt = fq_type_get(t);
    const size_t rb = fq_row_size(t, n);
    uint8_t *w = malloc(rb * (size_t)rows);
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!w || !f) {
        free(w);
        free(f);
        return NULL;
    }
    const int64_t distinct = FQ_MIN(rows, 64);
    for (int64_t r = 0; r < distinct; r++) {
        for (int64_t i = 0; i < n; i++) f[i] = (float)(0.02 * gauss());
        tt->from_float(f, w + (size_t)r * rb, n);
    }
    for (int64_t r = distinct; r < rows; r++) memcpy(w + (size_t)r * rb, w + (size_t)(r % distinct) * rb, rb);
    free(f);
    *row_bytes = rb;
    return w;
}

/* nrows activation rows in the weight type's partner format */
static uint8_t *make_acts(uint32_t t, int64_t n, int64_t nrows, size_t *row_bytes) {
    const fq_type_traits *tt = fq_type_get(t);
    const uint32_t pt = (uint32_t)tt->vec_dot_type;
    const size_t rb = fq_row_size(pt, n);
    uint8_t *a = malloc(rb * (size_t)nrows);
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!a || !f) {
        free(a);
        free(f);
        return NULL;
    }
    for (int64_t r = 0; r < nrows; r++) {
        for (int64_t i = 0; i < n; i++) f[i] = (float)gauss();
        fq_type_get(pt)->from_float_act(f, a + (size_t)r * rb, n);
    }
    free(f);
    *row_bytes = rb;
    return a;
}

/* ---- pool jobs ---------------------------------------------------------------------------- */

typedef struct {
    const kern *k;
    int64_t n, rows;
    const uint8_t *w, *a;
    size_t wrb, arb;
    float *out;
    int64_t T;       /* activation rows (tile job) */
    int passes;      /* over the rows, so that a timed run is long enough to measure */
    int64_t r_off;   /* first row (DRAM windows) */
    const uint8_t *buf; /* read job */
    size_t buf_len;
    uint64_t sink[64];
    float (*peak)(int64_t iters); /* fma peak job */
} job;

/* passes x 12 FMA chains per thread, in registers */
static void job_peak(void *arg, int ith, int nth) {
    job *j = arg;
    (void)nth;
    j->sink[ith & 63] += (uint64_t)(j->peak(j->passes) != 0.0f);
}

static void job_dot(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t r0, r1;
    fq_split(j->rows, ith, nth, &r0, &r1);
    for (int p = 0; p < FQ_MAX(1, j->passes); p++)
        for (int64_t r = r0 + j->r_off; r < r1 + j->r_off; r++)
            j->k->dot(j->n, &j->out[r], j->w + (size_t)r * j->wrb, j->a);
}

/* the decode path: groups of mv_x weight rows against one activation row, as forward.c
 * calls it (the last group of a thread's rows may be smaller) */
static void job_mv(void *arg, int ith, int nth) {
    job *j = arg;
    const int mx = j->k->mv_x;
    int64_t r0, r1;
    fq_split(j->rows, ith, nth, &r0, &r1);
    for (int p = 0; p < FQ_MAX(1, j->passes); p++)
        for (int64_t r = r0 + j->r_off; r < r1 + j->r_off; r += mx)
            j->k->dotmn(j->n, &j->out[r], 1, j->w + (size_t)r * j->wrb, j->wrb,
                        (int)FQ_MIN(mx, r1 + j->r_off - r), j->a, j->arb, 1);
}

/* the prompt path: tiles of mn_x weight rows x mn_y activation rows, output [T][rows] */
static void job_mn(void *arg, int ith, int nth) {
    job *j = arg;
    const int mx = j->k->mn_x, my = j->k->mn_y;
    int64_t r0, r1;
    fq_split(j->rows, ith, nth, &r0, &r1);
    for (int64_t rb = r0; rb < r1; rb += 64) { /* a 64-row panel stays in L2 for all T */
        const int64_t re = FQ_MIN(r1, rb + 64);
        for (int64_t t = 0; t < j->T; t += my) {
            const int ny = (int)FQ_MIN(my, j->T - t);
            for (int64_t r = rb; r < re; r += mx) {
                const int nx = (int)FQ_MIN(mx, re - r);
                j->k->dotmn(j->n, &j->out[t * j->rows + r], (size_t)j->rows, j->w + (size_t)r * j->wrb,
                            j->wrb, nx, j->a + (size_t)t * j->arb, j->arb, ny);
            }
        }
    }
}

static void job_read(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t c0, c1;
    const int64_t chunks = (int64_t)(j->buf_len / 64);
    fq_split(chunks, ith, nth, &c0, &c1);
    const uint64_t *p = (const uint64_t *)(j->buf + j->r_off);
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t c = c0; c < c1; c++) {
        const uint64_t *q = p + c * 8;
        s0 += q[0] ^ q[4];
        s1 += q[1] ^ q[5];
        s2 += q[2] ^ q[6];
        s3 += q[3] ^ q[7];
    }
    j->sink[ith & 63] += s0 + s1 + s2 + s3;
}

/* DRAM speed on a shared machine: the big buffer is visited in windows of `win` rows (or
 * bytes for the read job), each long out of L3 when its turn comes, every window timed on
 * its own; the fastest window counts (a window that other processes interrupted is slow,
 * not representative). Returns seconds per row (per byte). */
static double time_windows(fq_pool *p, fq_pool_fn fn, job *j, int64_t total, int64_t win, long min_ms) {
    int64_t spent = 0, best = INT64_MAX, reps = 0;
    const int64_t nw = FQ_MAX(1, total / win);
    while (spent < min_ms * 1000 || reps < nw) {
        j->r_off = (reps % nw) * win;
        const int64_t t0 = fq_time_us();
        fq_pool_run(p, fn, j);
        const int64_t dt = fq_time_us() - t0;
        spent += dt;
        best = FQ_MIN(best, dt);
        reps++;
    }
    j->r_off = 0;
    return (double)FQ_MAX(best, 1) * 1e-6 / (double)win;
}

/* runs fn on the pool until min_ms passed (at least 3 times); seconds of the fastest run
 * (the machine may be shared: the minimum is what the kernel can do) */
static double time_runs(fq_pool *p, fq_pool_fn fn, job *j, long min_ms) {
    fq_pool_run(p, fn, j); /* warm-up */
    int64_t spent = 0, reps = 0, best = INT64_MAX;
    while (spent < min_ms * 1000 || reps < 3) {
        const int64_t t0 = fq_time_us();
        fq_pool_run(p, fn, j);
        const int64_t dt = fq_time_us() - t0;
        spent += dt;
        best = FQ_MIN(best, dt);
        reps++;
    }
    return (double)FQ_MAX(best, 1) * 1e-6;
}

/* One line for a one-activation-row job: GB/s of weight bytes and ns/row over the L2-sized
 * matrix (1 thread), GB/s over the DRAM matrix for 1..max_t threads, the L2 result hash. */
static void row_line(const char *type, const char *name, fq_pool_fn fn, job *j, fq_pool *const *pools,
                     long max_t, int64_t l2_rows, int64_t big_rows, size_t rb, long min_ms) {
    j->rows = l2_rows;
    j->passes = 16;
    double s = time_runs(pools[1], fn, j, min_ms) / j->passes;
    j->passes = 1;
    const uint64_t h = hash_floats(j->out, l2_rows);
    printf("%-5s %-8s L2 %4lld KiB 1t %6.2f GB/s %6.1f ns/row", type, name,
           (long long)(l2_rows * (int64_t)rb >> 10), (double)l2_rows * (double)rb / s * 1e-9,
           s * 1e9 / (double)l2_rows);
    j->rows = FQ_MIN(big_rows, FQ_MAX(1, (int64_t)((8u << 20) / rb))); /* windows of ~8 MiB */
    printf("  DRAM");
    for (long th = 1; th <= max_t; th++) {
        s = time_windows(pools[th], fn, j, big_rows, j->rows, min_ms);
        printf(" %ldt %6.2f", th, (double)rb / s * 1e-9);
    }
    printf(" GB/s  %016llx\n", (unsigned long long)h);
    fflush(stdout);
}

static uint32_t type_named(const char *s) {
    for (uint32_t t = 0; t < FQ_TYPE_COUNT; t++) {
        const fq_type_traits *tt = fq_type_get(t);
        if (tt->name && tt->supported && !strcasecmp(tt->name, s)) return t;
    }
    return UINT32_MAX;
}

int bench_kernels(int argc, char **argv) {
    long n = 2048, max_t = 2, mb = 512, pp = 256, min_ms = 300;
    int quick = 0;
    const char *isa = NULL;
    uint32_t types[FQ_TYPE_COUNT];
    int ntypes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage_kernels(stdout);
            return 0;
        } else if (!strcmp(a, "-n")) {
            if (cli_parse_long(a, v, 256, 1L << 20, &n)) return 2;
            i++;
        } else if (!strcmp(a, "-t")) {
            if (cli_parse_long(a, v, 1, 64, &max_t)) return 2;
            i++;
        } else if (!strcmp(a, "--mb")) {
            if (cli_parse_long(a, v, 1, 1L << 16, &mb)) return 2;
            i++;
        } else if (!strcmp(a, "--pp")) {
            if (cli_parse_long(a, v, 0, 1L << 16, &pp)) return 2;
            i++;
        } else if (!strcmp(a, "--min-ms")) {
            if (cli_parse_long(a, v, 1, 600000, &min_ms)) return 2;
            i++;
        } else if (!strcmp(a, "--isa")) {
            if (!v) {
                cli_error("bench kernels: --isa needs a value");
                return 2;
            }
            isa = v;
            i++;
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else if (a[0] == '-' && a[1]) {
            cli_error("bench kernels: unknown option '%s'", a);
            usage_kernels(stderr);
            return 2;
        } else {
            const uint32_t t = type_named(a);
            if (t == UINT32_MAX) {
                cli_error("bench kernels: unknown or unsupported type '%s'", a);
                return 2;
            }
            if (ntypes < FQ_TYPE_COUNT) types[ntypes++] = t;
        }
    }
    if (!ntypes) {
        static const uint32_t def[] = {FQ_TYPE_Q4_K, FQ_TYPE_Q6_K, FQ_TYPE_Q8_0, FQ_TYPE_Q4_0,
                                       FQ_TYPE_F16, FQ_TYPE_F32};
        for (size_t i = 0; i < FQ_ARRAY_LEN(def); i++) types[ntypes++] = def[i];
    }
    fq_qtypes_init();
    char level[128];
    fq_cpu_isa_describe(level, sizeof level);
    {
        kern probe;
        if (isa && get_kern(isa, FQ_TYPE_Q4_K, &probe)) {
            cli_error("bench kernels: kernel variant '%s' is not available on this CPU", isa);
            return 2;
        }
    }
    fq_err e;
    fq_pool *pools[65] = {0};
    for (long t = 1; t <= max_t; t++) {
        pools[t] = fq_pool_new((int)t, &e);
        if (!pools[t]) {
            cli_error("bench kernels: %s", e.msg);
            for (long u = 1; u < t; u++) fq_pool_free(pools[u]);
            return 1;
        }
    }
    const size_t big = (size_t)mb << 20;
    printf("bench kernels: kernels %s, rows of %ld, DRAM matrix %ld MiB, up to %ld threads\n",
           isa ? isa : level, n, mb, max_t);

    int rc = 0;
    job j;
    memset(&j, 0, sizeof j);
    {
        uint8_t *buf = malloc(big);
        if (!buf) {
            cli_error("bench kernels: out of memory for %ld MiB", mb);
            rc = 1;
            goto done;
        }
        /* a different word at every position: pages of one repeated byte can be merged or
         * compressed by the host and then read faster than memory (seen here) */
        for (size_t i = 0; i + 8 <= big; i += 8) {
            const uint64_t v = (i / 8 + 1) * 0x9E3779B97F4A7C15ull;
            memcpy(buf + i, &v, 8);
        }
        j.buf = buf;
        j.buf_len = FQ_MIN(big, (size_t)8 << 20); /* windows of 8 MiB */
        printf("%-5s %-8s", "read", "plain");
        for (long t = 1; t <= max_t; t++) {
            const double s = time_windows(pools[t], job_read, &j, (int64_t)big, (int64_t)j.buf_len, min_ms);
            printf("  %ldt %6.2f GB/s", t, 1e-9 / s);
        }
        printf("   (%ld MiB in 8 MiB windows, fastest window)\n", mb);
        free(buf);
    }
    if (fq__fma_peak_fn()) {
        /* the compute ceiling of the float tiles: GMAC/s of 8-lane F32 FMAs on registers */
        printf("%-5s %-8s", "fma", "peak");
        j.peak = fq__fma_peak_fn();
        j.passes = 1 << 22;
        for (long t = 1; t <= max_t; t++) {
            const double s = time_runs(pools[t], job_peak, &j, min_ms);
            printf("  %ldt %6.2f GMAC/s", t, (double)t * 96.0 * (double)j.passes / s * 1e-9);
        }
        printf("   (12 chains of 8-lane F32 FMAs per thread)\n");
        j.passes = 0;
    }
    for (int ti = 0; ti < ntypes; ti++) {
        const uint32_t t = types[ti];
        const fq_type_traits *tt = fq_type_get(t);
        kern k;
        get_kern(isa, t, &k);
        if (n % tt->blck) {
            printf("%-5s skipped: %ld is not a multiple of %lld\n", tt->name, n, (long long)tt->blck);
            continue;
        }
        size_t wrb, arb;
        const size_t rb = fq_row_size(t, n);
        const int64_t l2_rows = FQ_MAX(1, (int64_t)((512u << 10) / rb));
        const int64_t big_rows = FQ_MAX(1, (int64_t)(big / rb));
        const int64_t nact = FQ_MAX(8, pp);
        uint8_t *w = make_weights(t, n, big_rows, &wrb);
        uint8_t *a = make_acts(t, n, nact, &arb);
        float *out = malloc(sizeof(float) * (size_t)FQ_MAX(big_rows, 5632 * nact));
        if (!w || !a || !out) {
            free(w);
            free(a);
            free(out);
            cli_error("bench kernels: out of memory");
            rc = 1;
            goto done;
        }
        j = (job){.k = &k, .n = n, .w = w, .a = a, .wrb = wrb, .arb = arb, .out = out};

        /* one activation row: vec_dot row by row, then the decode path (mv_x rows a call) */
        char mv_name[16];
        snprintf(mv_name, sizeof mv_name, "mv %dx1", k.mv_x);
        row_line(tt->name, "vec_dot", job_dot, &j, pools, max_t, l2_rows, big_rows, rb, min_ms);
        row_line(tt->name, mv_name, job_mv, &j, pools, max_t, l2_rows, big_rows, rb, min_ms);
        if (quick) goto next;

        /* vec_dot_n: nrc activation rows over the L2 matrix, one thread */
        {
            j.rows = l2_rows;
            j.passes = 16;
            const double t1 = time_runs(pools[1], job_dot, &j, min_ms) / (double)l2_rows / j.passes;
            j.passes = 1;
            static const int nrcs[] = {1, 2, 4, 8};
            printf("%-5s %-8s L2 1t GMAC/s (x vec_dot):", tt->name, "dot_n");
            uint64_t hn = 0xcbf29ce484222325ull;
            for (size_t q = 0; q < FQ_ARRAY_LEN(nrcs); q++) {
                const int nrc = nrcs[q];
                int64_t spent = 0, reps = 0, best = INT64_MAX;
                while (spent < min_ms * 1000 || reps < 3) {
                    const int64_t t0 = fq_time_us();
                    for (int64_t r = 0; r < l2_rows; r++)
                        k.dotn(n, &out[r], (size_t)l2_rows, w + (size_t)r * wrb, a, arb, nrc);
                    const int64_t dt = fq_time_us() - t0;
                    spent += dt;
                    best = FQ_MIN(best, dt);
                    reps++;
                }
                const double per = (double)FQ_MAX(best, 1) * 1e-6 / (double)l2_rows;
                hn ^= hash_floats(out, l2_rows * nrc) + (uint64_t)q;
                printf("  %d: %6.2f (%4.2fx)", nrc, (double)n * nrc / per * 1e-9, t1 * nrc / per);
            }
            printf("  %016llx\n", (unsigned long long)hn);
        }
        /* tiles: 5632 x n weights (TinyLlama's ffn) against pp activation rows */
        if (pp > 0) {
            j.rows = FQ_MIN(big_rows, 5632);
            j.T = pp;
            printf("%-5s %-8s %dx%d tiles, %lld x %ld weights x %ld rows: GMAC/s", tt->name, "mn",
                   k.mn_x, k.mn_y, (long long)j.rows, n, pp);
            for (long th = 1; th <= max_t; th++) {
                const double s = time_runs(pools[th], job_mn, &j, min_ms);
                printf(" %ldt %6.2f", th, (double)j.rows * (double)n * (double)pp / s * 1e-9);
            }
            printf("  %016llx\n", (unsigned long long)hash_floats(out, j.rows * pp));
        }
    next:
        fflush(stdout);
        free(out);
        free(a);
        free(w);
    }
done:
    for (long t = 1; t <= max_t; t++) fq_pool_free(pools[t]);
    return rc;
}
