/* sweep_seeds.c - `fqlm sweep --seeds K`: stochastic rounding as an axis of a sweep.
 *
 * A wrapper around the sweep itself, so the sweep's engine stays as it is: seed S (--seed)
 * sweeps every combination into DIR/seed-S/, seeds S+1 .. S+K-1 sweep the stochastic formats
 * (round=stochastic) again into DIR/seed-N/ (a deterministic format gives the same figures
 * for every seed), each an ordinary, resumable sweep directory; then DIR/seeds.csv gets one
 * line per combination with the mean and sample sd of mean_kld, kld_p99, top1_agree and
 * ppl_ratio over its runs (cli_mean_sd: the bits compare --seeds K reports). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "opts.h"
#include "report.h"
#include "select.h"

int cli_sweep_seeds(int argc, char **argv);

static void csv_text(rbuf *b, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        rb_puts(b, s);
        return;
    }
    rb_puts(b, "\"");
    for (; *s; s++) rb_puts(b, *s == '"' ? "\"\"" : (char[2]){*s, 0});
    rb_puts(b, "\"");
}

static void csv_num(rbuf *b, double v) {
    if (v != v) rb_puts(b, ",nan");
    else rb_printf(b, ",%.17g", v);
}

int cli_sweep_seeds(int argc, char **argv) {
    cli_opts d;
    cli_opts_defaults(&d);
    unsigned long long seed0 = (unsigned long long)d.sp.seed;
    const char *dir = NULL, *formats_arg = NULL;
    int K = 1, help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) help = 1;
        const int valued = !strcmp(a, "--seeds") || !strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--formats") ||
                           !strcmp(a, "-s") || !strcmp(a, "--seed");
        if (!valued) continue;
        if (i + 1 >= argc) {
            cli_error("option %s needs a value", a);
            return 2;
        }
        const char *v = argv[++i];
        long long iv;
        if (!strcmp(a, "--seeds")) {
            if (cli_parse_int("--seeds", v, 1, 1000, &iv)) return 2;
            K = (int)iv;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (cli_parse_int(a, v, 0, (long long)(~0ULL >> 1), &iv)) return 2;
            seed0 = (unsigned long long)iv;
        } else if (!strcmp(a, "--formats")) formats_arg = v;
        else dir = v;
    }
    /* argv without --seeds K, -o DIR, --seed S (and, for the later seeds, --formats) */
    char **av = calloc((size_t)argc + 8, sizeof *av);
    if (!av) {
        cli_error("out of memory");
        return 1;
    }
    int n0 = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i > 0 && (!strcmp(a, "--seeds") || !strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "-s") ||
                      !strcmp(a, "--seed"))) {
            i++;
            continue;
        }
        av[n0++] = argv[i];
    }
#ifdef FQ_MPI
    /* one MPI job runs one sweep (MPI_Init once): a job per seed instead */
    if (!help && (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") || getenv("SLURM_STEP_ID"))) {
        cli_error("--seeds under MPI: run one sweep per seed (--seed N -o DIR/seed-N), then `fqlm sweep --seeds K` "
                  "without MPI with the same settings and -o DIR writes DIR/seeds.csv from them (nothing left to run)");
        free(av);
        return 2;
    }
#endif
    if (help || !dir || !formats_arg) { /* the sweep's own usage or error */
        int rc = cmd_sweep(n0, av);
        free(av);
        return rc;
    }
    char **fmts = NULL, *stoch = NULL;
    int n_fmts = 0, rc = 1;
    sweep_row **rows = calloc((size_t)K, sizeof *rows);
    int *n_rows = calloc((size_t)K, sizeof *n_rows);
    rbuf sl, csv;
    rb_init(&sl);
    rb_init(&csv);
    if (!rows || !n_rows) goto oom;
    if (cli_parse_formats("--formats", formats_arg, &fmts, &n_fmts)) {
        rc = 2;
        goto out;
    }
    for (int f = 0; f < n_fmts; f++)
        if (strstr(fmts[f], "round=stochastic")) rb_printf(&sl, "%s%s", sl.len ? "," : "", fmts[f]);
    if (sl.oom) goto oom;
    stoch = sl.s;
    if (!stoch && K > 1)
        fprintf(stderr, "fqlm: note: --seeds %d: no format of --formats rounds stochastically (round=stochastic), so "
                        "every seed gives the same figures: one sweep\n", K);
    if (report_mkdir_p(dir)) {
        cli_error("cannot create the output directory '%s'", dir);
        goto out;
    }
    int runs = stoch ? K : 1, worst = 0;
    char sub[4096], seed_s[32];
    for (int k = 0; k < runs; k++) {
        int n = n0;
        char **a = av;
        snprintf(sub, sizeof sub, "%s/seed-%llu", dir, seed0 + (unsigned long long)k);
        snprintf(seed_s, sizeof seed_s, "%llu", seed0 + (unsigned long long)k);
        a[n++] = "-o";
        a[n++] = sub;
        a[n++] = "--seed";
        a[n++] = seed_s;
        if (k > 0) { /* the later seeds: the stochastic formats only */
            for (int i = 1; i < n0; i++)
                if (!strcmp(a[i], "--formats") && i + 1 < n0) a[i + 1] = stoch;
        }
        printf("sweep --seeds %d: seed %s into %s\n", K, seed_s, sub);
        fflush(stdout);
        int r = cmd_sweep(n, a);
        if (r != 0 && r != CLI_EXIT_NONFINITE) {
            rc = r;
            goto out;
        }
        if (r) worst = r;
        if (cli_sweep_read_rows(sub, &rows[k], &n_rows[k])) goto out;
    }
    /* DIR/seeds.csv: each combination of the first seed with its runs */
    rb_puts(&csv, "node,layer,format,runs,mean_kld,mean_kld_sd,kld_p99,kld_p99_sd,top1_agree,top1_agree_sd,"
                  "ppl_ratio,ppl_ratio_sd\n");
    int n_stoch = 0;
    double (*v)[4] = calloc((size_t)runs, sizeof *v);
    if (!v) goto oom;
    for (int r = 0; r < n_rows[0]; r++) {
        const sweep_row *x = &rows[0][r];
        int n = 0;
        /* a deterministic format: the first seed's run only (a later seed's directory may
         * hold it too, from a sweep of its own) */
        const int kk = strstr(x->format, "round=stochastic") ? runs : 1;
        for (int k = 0; k < kk; k++)
            for (int j = 0; j < n_rows[k]; j++) {
                const sweep_row *y = &rows[k][j];
                if (y->layer != x->layer || strcmp(y->node, x->node) || strcmp(y->format, x->format)) continue;
                v[n][0] = y->mean_kld, v[n][1] = y->kld_p99, v[n][2] = y->top1_agree, v[n][3] = y->ppl_ratio;
                n++;
                break;
            }
        n_stoch += n > 1;
        csv_text(&csv, x->node);
        rb_puts(&csv, ",");
        if (x->layer >= 0) rb_printf(&csv, "%d", x->layer);
        rb_puts(&csv, ",");
        csv_text(&csv, x->format);
        rb_printf(&csv, ",%d", n);
        for (int i = 0; i < 4; i++) {
            double col[1000], mean, sd;
            for (int k = 0; k < n; k++) col[k] = v[k][i];
            cli_mean_sd(col, n, &mean, &sd);
            csv_num(&csv, mean);
            csv_num(&csv, sd);
        }
        rb_puts(&csv, "\n");
    }
    free(v);
    if (csv.oom) goto oom;
    snprintf(sub, sizeof sub, "%s/seeds.csv", dir);
    fq_err e;
    if (fq_write_file_atomic(sub, csv.s, csv.len, &e)) {
        cli_error("%s", e.msg);
        rc = 1;
        goto out;
    }
    printf("sweep --seeds %d: wrote %s: %d combinations, %d of them stochastic with %d runs (seeds %llu..%llu); "
           "mean and sample sd of each figure\n",
           K, sub, n_rows[0], n_stoch, runs, seed0, seed0 + (unsigned long long)runs - 1);
    rc = worst;
    goto out;
oom:
    cli_error("out of memory");
    rc = 1;
out:
    for (int f = 0; f < n_fmts; f++) free(fmts[f]);
    free(fmts);
    for (int k = 0; rows && k < K; k++) free(rows[k]);
    free(rows);
    free(n_rows);
    free(av);
    rb_free(&sl);
    rb_free(&csv);
    return rc;
}
