/* bench_sweep.c - `fqlm bench sweep -m MODEL`: the speed of `fqlm sweep` on a fixed small
 * sweep, so that speed work and scaling (threads, `mpirun -n N`) can be compared.
 *
 * It runs the sweep command itself (same code path, MPI included when launched by mpirun)
 * into a temporary directory on a generated text, then reads the rows back: combinations
 * per hour over the wall time (baseline included, what a user waits for) and over the
 * combinations' own compute time, and tokens per second of scoring (positions scored per
 * second of combination time). Everything it wrote is removed afterwards. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "opts.h"

int bench_sweep(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm bench sweep [-m MODEL] [-t N] [--nodes LIST] [--layers LIST] [--formats LIST]\n"
            "                        [-c CTX] [--chunks K]\n\n"
            "Runs a fixed small `fqlm sweep` (default: nodes ffn_norm,attn_norm at layer 0, formats\n"
            "bf16,int8,fp8_e4m3, 2 chunks of 128 tokens of a generated text) into a temporary directory\n"
            "and prints combinations per hour (over the wall time, baseline included, and over the\n"
            "combinations' own time) and tokens per second of scoring. Layer 0 is the costliest\n"
            "point of a sweep (every layer is recomputed). Under `mpirun -n N` rank 0 prints for all.\n");
}

/* Removes the files of DIR and DIR itself. */
static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[4600];
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

int bench_sweep(int argc, char **argv) {
    const char *nodes = "ffn_norm,attn_norm", *layers = "0", *formats = "bf16,int8,fp8_e4m3", *ctx = "128",
               *chunks = "2";
    char **pass = calloc((size_t)argc + 24, sizeof(char *));
    int np = 0, rc = 1;
    if (!pass) {
        cli_error("out of memory");
        return 1;
    }
    pass[np++] = "sweep";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(pass);
            return 0;
        }
        const char **slot = !strcmp(a, "--nodes") ? &nodes : !strcmp(a, "--layers") ? &layers
                          : !strcmp(a, "--formats") ? &formats : !strcmp(a, "-c") || !strcmp(a, "--ctx-size") ? &ctx
                          : !strcmp(a, "--chunks") ? &chunks : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", a);
                free(pass);
                return 2;
            }
            *slot = argv[++i];
            continue;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "-f") || !strcmp(a, "--file") ||
            !strcmp(a, "--shard") || !strcmp(a, "--merge")) {
            cli_error("bench sweep: %s is not an option here (the benchmark picks its own text and directory)", a);
            free(pass);
            return 2;
        }
        pass[np++] = argv[i]; /* -m, -t and the other model options */
    }
    const char *rank = getenv("OMPI_COMM_WORLD_RANK") ? getenv("OMPI_COMM_WORLD_RANK") : getenv("PMI_RANK");
    const int rank0 = !rank || !strcmp(rank, "0");
    const char *tmpd = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[4096], out[4200], text[4200];
    snprintf(dir, sizeof dir, "%s/fqlm-bench-sweep-XXXXXX", tmpd);
    if (!mkdtemp(dir)) {
        cli_error("bench sweep: cannot make a temporary directory in %s", tmpd);
        free(pass);
        return 1;
    }
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(text, sizeof text, "%s/text.txt", dir);
    /* a text of varied words, the same every run */
    FILE *f = fopen(text, "w");
    static const char *const W[] = {"the", "little", "dog", "ran", "to", "a", "big", "tree", "and", "she",
                                    "saw", "one", "day", "happy", "bird", "in", "park", "with", "his", "mom"};
    uint32_t x = 12345;
    for (int i = 0; f && i < 6000; i++) {
        x = x * 1664525u + 1013904223u;
        fprintf(f, "%s%s", W[(x >> 16) % FQ_ARRAY_LEN(W)], i % 12 == 11 ? ".\n" : " ");
    }
    if (!f || fclose(f) != 0) {
        cli_error("bench sweep: cannot write %s", text);
        goto out;
    }
    const char *fixed[] = {"-f", text, "--nodes", nodes, "--layers", layers, "--formats", formats,
                           "-c", ctx, "--chunks", chunks, "-o", out, "--no-progress"};
    for (size_t k = 0; k < FQ_ARRAY_LEN(fixed); k++) pass[np++] = (char *)fixed[k];
    /* the sweep's own report goes to a file, shown only if the sweep fails: the benchmark
     * prints its figures */
    char log[4300];
    snprintf(log, sizeof log, "%s/sweep.log", dir);
    fflush(stdout);
    fflush(stderr);
    int saved1 = dup(1), saved2 = dup(2), lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (saved1 >= 0 && saved2 >= 0 && lfd >= 0) {
        dup2(lfd, 1);
        dup2(lfd, 2);
    }
    if (lfd >= 0) close(lfd);
    const int64_t t0 = fq_time_us();
    const int src = cmd_sweep(np, pass);
    const double wall = (fq_time_us() - t0) / 1e6;
    fflush(stdout);
    fflush(stderr);
    if (saved1 >= 0) {
        dup2(saved1, 1);
        close(saved1);
    }
    if (saved2 >= 0) {
        dup2(saved2, 2);
        close(saved2);
    }
    if (src != 0) {
        size_t ll;
        fq_err le;
        char *lt = fq_read_file(log, &ll, &le);
        if (lt) fputs(lt, stderr);
        free(lt);
        cli_error("bench sweep: the sweep failed (exit %d, see above)", src);
        rc = src;
        goto out;
    }
    rc = 0;
    if (!rank0) goto out;
    char csv[4300];
    snprintf(csv, sizeof csv, "%s/results.csv", out);
    fq_err e;
    size_t len;
    char *t = fq_read_file(csv, &len, &e);
    if (!t) {
        cli_error("bench sweep: %s", e.msg);
        rc = 1;
        goto out;
    }
    int rows = 0;
    double secs = 0, pos = 0;
    char *save = NULL;
    strtok_r(t, "\n", &save); /* header */
    for (char *l = strtok_r(NULL, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        /* positions is the 5th field, seconds the last (node names and formats hold no comma
         * for the default selection; a quoted one is skipped) */
        if (strchr(l, '"')) continue;
        char *fld[19];
        int nf = 0;
        for (char *q = l; nf < 19; q++) {
            fld[nf++] = q;
            q = strchr(q, ',');
            if (!q) break;
            *q = 0;
        }
        if (nf != 19) continue;
        rows++;
        pos += atof(fld[4]);
        secs += atof(fld[18]);
    }
    free(t);
    const char *model = NULL;
    for (int i = 1; i < np; i++)
        if (!strcmp(pass[i - 1], "-m") || !strcmp(pass[i - 1], "--model")) model = pass[i];
    printf("bench sweep: %s: %d combinations (nodes %s, layers %s, formats %s), %s chunks of %s tokens\n",
           model ? model : cli_default_model(), rows, nodes, layers, formats, chunks, ctx);
    printf("  wall %.2f s (baseline included): %.0f combinations/hour\n", wall, wall > 0 ? rows * 3600.0 / wall : 0.0);
    printf("  combinations' own time %.2f s: %.0f combinations/hour, scoring %.0f tokens/s\n", secs,
           secs > 0 ? rows * 3600.0 / secs : 0.0, secs > 0 ? pos / secs : 0.0);
out:
    rm_dir(out);
    rm_dir(dir);
    free(pass);
    return rc;
}
