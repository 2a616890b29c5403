/* test_sweep_dist.c - one sweep spread over processes gives the rows of one process
 * (issue 15): `fqlm sweep --shard I/N` + `--merge`, and, when this build has MPI,
 * `mpirun -n 3 fqlm sweep` (skipped with the reason otherwise).
 *
 * Rows are compared without their last field (seconds, a timing): the other 18 fields must
 * be the same text, sorted. Runs the binary in FQLM_BIN (default build/fqlm) through
 * /bin/sh. */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

static char g_tmp[256];
static const char *g_bin;
static const char *ARGS_ = "-f %s/t.txt --nodes ffn_norm,attn_norm,ffn_out --layers 0-2 --formats bf16,int4,fp8_e4m3 "
                           "-c 64 --chunks 2 -t 1 --no-progress";

/* Runs a shell command (printf-style) with stdout+stderr into g_tmp/out; returns the exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd + 2, sizeof cmd - 300, fmt, ap) + 2;
    va_end(ap);
    cmd[0] = '(';
    cmd[1] = ' ';
    snprintf(cmd + n, sizeof cmd - (size_t)n, " ) >%s/out 2>&1", g_tmp);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *out_text(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/out", g_tmp);
    char *t = tu_read(p, NULL);
    return t ? t : strdup("");
}

static int has(const char *dir, const char *file) {
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s/%s", g_tmp, dir, file);
    return stat(p, &st) == 0 && st.st_size > 0;
}

/* The rows of DIR/results.csv without the seconds field, sorted, into DIR.rows; 1 when
 * the two directories' rows are the same text and there are `want` of them. */
static int same_rows(const char *a, const char *b, int want) {
    for (int k = 0; k < 2; k++) {
        const char *d = k ? b : a;
        if (sh("tail -n +2 %s/%s/results.csv | sed 's/,[^,]*$//' | LC_ALL=C sort > %s/%s.rows", g_tmp, d, g_tmp, d))
            return 0;
    }
    int n = sh("test $(wc -l < %s/%s.rows) -eq %d", g_tmp, a, want);
    return n == 0 && sh("cmp %s/%s.rows %s/%s.rows", g_tmp, a, g_tmp, b) == 0;
}

int main(void) {
    g_bin = getenv("FQLM_BIN") ? getenv("FQLM_BIN") : "build/fqlm";
    snprintf(g_tmp, sizeof g_tmp, "/tmp/fqlm-sweepdist-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char args[1024], p[400];
    snprintf(args, sizeof args, ARGS_, g_tmp);
    snprintf(p, sizeof p, "%s/t.txt", g_tmp);
    FILE *f = fopen(p, "w");
    for (int i = 0; f && i < 30; i++)
        fputs("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
              "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n", f);
    CHECK(f && fclose(f) == 0, "writing the text");
    const int want = 3 * 3 * 3; /* nodes x layers x formats */

    CHECK(sh("%s sweep %s -o %s/one", g_bin, args, g_tmp) == 0, "one-process sweep failed");
    /* shards: each runs a fixed third; shard 1 is cut short and resumed */
    for (int i = 0; i < 3; i++)
        CHECK(sh("%s sweep %s --shard %d/3 -o %s/sh/shard-%d", g_bin, args, i, g_tmp, i) == 0, "shard %d failed", i);
    int total = 0;
    for (int i = 0; i < 3; i++) {
        int n = -1;
        char q[500];
        snprintf(q, sizeof q, "%s/sh/shard-%d/results.csv", g_tmp, i);
        char *t = tu_read(q, NULL);
        if (t) {
            n = -1;
            for (char *c = t; *c; c++) n += *c == '\n';
        }
        free(t);
        CHECK(n == want / 3, "shard %d has %d rows, not %d", i, n, want / 3);
        total += n;
    }
    CHECK(total == want, "the shards hold %d rows, not %d", total, want);
    /* the split does not depend on the thread count */
    CHECK(sh("%s sweep %s -t 2 --shard 1/3 -o %s/t2", g_bin, args, g_tmp) == 0, "shard with -t 2 failed");
    CHECK(sh("cut -d, -f1-3 %s/t2/results.csv > %s/a && cut -d, -f1-3 %s/sh/shard-1/results.csv > %s/b && "
             "cmp %s/a %s/b", g_tmp, g_tmp, g_tmp, g_tmp, g_tmp, g_tmp) == 0,
          "shard 1/3 with -t 2 ran other combinations than with -t 1");

    /* a missing shard is named, with what it holds */
    CHECK(sh("%s sweep --merge %s/sh/shard-0 %s/sh/shard-2 -o %s/m", g_bin, g_tmp, g_tmp, g_tmp) == 1,
          "merge without shard 1 did not fail");
    char *t = out_text();
    CHECK(strstr(t, "shard 1/3 is not given") && strstr(t, "9 combinations") && !has("m", "results.csv"),
          "missing shard not named: %s", t);
    free(t);
    /* a partial shard is named with the combinations it lacks; rerunning it finishes it */
    CHECK(sh("head -n 5 %s/sh/shard-1/results.csv > %s/x && mv %s/x %s/sh/shard-1/results.csv", g_tmp, g_tmp, g_tmp,
             g_tmp) == 0, "truncating shard 1");
    CHECK(sh("%s sweep --merge %s/sh/shard-* -o %s/m", g_bin, g_tmp, g_tmp) == 1, "merge of a partial shard did not fail");
    t = out_text();
    CHECK(strstr(t, "is partial: 5 of its 9 combinations missing") && !has("m", "results.csv"),
          "partial shard not named: %s", t);
    free(t);
    CHECK(sh("%s sweep %s --shard 1/3 -o %s/sh/shard-1", g_bin, args, g_tmp) == 0, "resuming shard 1 failed");
    t = out_text();
    CHECK(strstr(t, "4 already done") != NULL, "resumed shard did not skip its rows: %s", t);
    free(t);
    /* the merge: the same rows as one process, and the same files */
    CHECK(sh("%s sweep --merge %s/sh/shard-* -o %s/m", g_bin, g_tmp, g_tmp) == 0, "merge failed");
    CHECK(same_rows("one", "m", want), "merged rows differ from one process's");
    CHECK(has("m", "heatmap.svg") && has("m", "report.html") && has("m", "results.json"),
          "merge did not write heatmap.svg, report.html and results.json");
    /* the merged directory is one process's: rerunning the plain command there finds it done */
    CHECK(sh("%s sweep %s -o %s/m", g_bin, args, g_tmp) == 0, "one-process rerun on the merged directory failed");
    t = out_text();
    CHECK(strstr(t, "27 already done") != NULL, "merged directory not resumable as one run: %s", t);
    free(t);

    /* shards of different sweeps are refused, naming the setting */
    char other[1024];
    snprintf(other, sizeof other, "%s", args);
    char *fp = strstr(other, "fp8_e4m3");
    memcpy(fp, "int8    ", 8);
    CHECK(sh("%s sweep %s --shard 2/3 -o %s/o2", g_bin, other, g_tmp) == 0, "other sweep's shard failed");
    CHECK(sh("%s sweep --merge %s/sh/shard-0 %s/sh/shard-1 %s/o2 -o %s/m2", g_bin, g_tmp, g_tmp, g_tmp, g_tmp) == 2,
          "shards of different sweeps merged");
    t = out_text();
    CHECK(strstr(t, "different sweeps") && strstr(t, "format=fp8_e4m3") && strstr(t, "format=int8"),
          "different sweeps: setting not named: %s", t);
    free(t);
    CHECK(sh("%s sweep %s --chunks 1 --shard 2/3 -o %s/o3", g_bin, args, g_tmp) == 0, "other text's shard failed");
    CHECK(sh("%s sweep --merge %s/sh/shard-0 %s/sh/shard-1 %s/o3 -o %s/m2", g_bin, g_tmp, g_tmp, g_tmp, g_tmp) == 2,
          "shards with other chunks merged");
    t = out_text();
    CHECK(strstr(t, "chunks=1") != NULL, "different chunks not named: %s", t);
    free(t);
    CHECK(sh("%s sweep %s --shard 3/3 -o %s/bad", g_bin, args, g_tmp) == 2, "--shard 3/3 accepted");
    CHECK(sh("%s sweep %s --shard 1 -o %s/bad", g_bin, args, g_tmp) == 2, "--shard 1 accepted");

    /* bench sweep: its figures, and nothing left behind */
    CHECK(sh("mkdir -p %s/bt && TMPDIR=%s/bt %s bench sweep -t 1", g_tmp, g_tmp, g_bin) == 0, "bench sweep failed");
    t = out_text();
    double cph = 0, tps = 0;
    const char *q = strstr(t, "own time");
    CHECK(q && sscanf(q, "own time %*f s: %lf combinations/hour, scoring %lf tokens/s", &cph, &tps) == 2 &&
              cph > 0 && tps > 0 && strstr(t, "6 combinations"),
          "bench sweep output: %s", t);
    free(t);
    CHECK(sh("test -z \"$(ls -A %s/bt)\"", g_tmp) == 0, "bench sweep left files in TMPDIR");

    /* MPI */
    if (sh("%s sweep --mpi-info", g_bin) != 0) {
        printf("SKIP test_sweep_dist: MPI tests skipped: this fqlm was built without MPI (`make MPI=1` builds "
               "build-mpi/fqlm with mpicc; Debian: apt-get install libopenmpi-dev openmpi-bin)\n");
    } else if (sh("command -v mpirun") != 0) {
        printf("SKIP test_sweep_dist: MPI tests skipped: mpirun is not installed\n");
    } else {
        CHECK(sh("mpirun --allow-run-as-root --oversubscribe -n 3 %s sweep %s -o %s/mpi", g_bin, args, g_tmp) == 0,
              "mpirun -n 3 sweep failed");
        CHECK(same_rows("one", "mpi", want), "MPI rows differ from one process's");
        CHECK(has("mpi", "heatmap.svg") && has("mpi", "report.html"), "MPI sweep did not write heatmap/report");
        /* resume: what rank 0 recorded is skipped, whichever rank computed it */
        CHECK(sh("head -n 11 %s/mpi/results.csv > %s/x && mv %s/x %s/mpi/results.csv", g_tmp, g_tmp, g_tmp, g_tmp) == 0,
              "truncating the MPI results");
        CHECK(sh("mpirun --allow-run-as-root --oversubscribe -n 3 %s sweep %s -o %s/mpi", g_bin, args, g_tmp) == 0,
              "mpirun -n 3 sweep resume failed");
        t = out_text();
        CHECK(strstr(t, "(10 already done)") != NULL, "MPI resume did not skip the recorded rows: %s", t);
        free(t);
        CHECK(same_rows("one", "mpi", want), "resumed MPI rows differ from one process's");
        /* SIGKILL one worker rank mid-sweep: mpirun reports it and stops the job; rank 0's rows
         * so far are on disk; rerunning the same command finishes with the rows of an
         * uninterrupted run */
        const char *kargs_ = "-f %s/t.txt --nodes ffn_norm,attn_norm,ffn_out,l_out --layers '*' "
                             "--formats bf16,int4,fp8_e4m3,int8,fp4_e2m1,int3 -c 64 --chunks 3 -t 1 --no-progress";
        const int kwant = 4 * 5 * 6;
        char kargs[1024], kdir[400], ks[400];
        snprintf(kargs, sizeof kargs, kargs_, g_tmp);
        snprintf(kdir, sizeof kdir, "%s/kill", g_tmp);
        snprintf(ks, sizeof ks, "%s/kill.sh", g_tmp);
        CHECK(sh("%s sweep %s -o %s/killref", g_bin, kargs, g_tmp) == 0, "one-process sweep for the kill test failed");
        FILE *kf = fopen(ks, "w");
        CHECK(kf != NULL, "writing %s", ks);
        if (kf) {
            /* the victim: the process of this sweep (its -o DIR is unique) that is rank 1 */
            fprintf(kf,
                    "dir=%s\n"
                    "for attempt in 1 2 3; do\n" /* again should the sweep end before the kill lands */
                    "rm -rf \"$dir\"\n"
                    "mpirun --allow-run-as-root --oversubscribe -n 3 %s sweep %s -o \"$dir\" > \"$dir.log\" 2>&1 &\n"
                    "mp=$!\n"
                    "i=0; victim=; killed=1\n"
                    "while [ $i -lt 6000 ] && kill -0 $mp 2>/dev/null; do\n"
                    "  n=$(grep -c '' \"$dir/results.csv\" 2>/dev/null || echo 0)\n"
                    "  if [ \"$n\" -ge 6 ]; then\n"
                    "    for p in $(pgrep -f -- \"$dir\"); do\n"
                    "      tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p\n"
                    "    done\n"
                    "    if [ -n \"$victim\" ]; then kill -9 $victim 2>/dev/null; killed=$?; break; fi\n"
                    "  fi\n"
                    "  sleep 0.01; i=$((i + 1))\n"
                    "done\n"
                    "wait $mp; rc=$?\n"
                    "[ -n \"$victim\" ] && [ $killed -eq 0 ] && break\n"
                    "done\n"
                    "echo \"victim=$victim rc=$rc rows=$(($(grep -c '' \"$dir/results.csv\") - 1)) attempt=$attempt\"\n"
                    "cat \"$dir.log\"\n",
                    kdir, g_bin, kargs);
            fclose(kf);
        }
        CHECK(sh("sh %s", ks) == 0, "the kill script failed");
        t = out_text();
        int krc = -1, krows = -1;
        const char *kv = strstr(t, "victim=");
        CHECK(kv && strncmp(kv, "victim= ", 8) != 0 && sscanf(strstr(kv, " rc="), " rc=%d rows=%d", &krc, &krows) == 2,
              "no rank 1 process was found to kill: %s", t);
        CHECK(krc != 0, "mpirun exited 0 after a rank was killed: %s", t);
        CHECK(krows >= 5 && krows < kwant, "the kill did not land mid-sweep (%d of %d rows recorded): %s", krows, kwant, t);
        CHECK(strstr(t, "rank 1") && (strstr(t, "signal 9") || strstr(t, "Killed")),
              "the run did not report the killed rank: %s", t);
        free(t);
        CHECK(sh("mpirun --allow-run-as-root --oversubscribe -n 3 %s sweep %s -o %s", g_bin, kargs, kdir) == 0,
              "rerun after the kill failed");
        t = out_text();
        /* a line cut by the kill is dropped and run again: krows or krows - 1 rows are kept */
        int kept = -1;
        const char *ad = strstr(t, "combinations (");
        CHECK(ad && sscanf(ad, "combinations (%d already done)", &kept) == 1 && kept >= krows - 1 && kept >= 4,
              "the rerun did not resume from the %d recorded rows: %s", krows, t);
        free(t);
        CHECK(same_rows("killref", "kill", kwant), "rows after kill + rerun differ from an uninterrupted run's");
        /* the lock still keeps a second sweep out */
        char lk[400];
        snprintf(lk, sizeof lk, "%s/mpi/sweep.lock", g_tmp);
        CHECK(sh("flock -n %s -c 'mpirun --allow-run-as-root --oversubscribe -n 2 %s sweep %s -o %s/mpi'", lk, g_bin,
                 args, g_tmp) != 0, "MPI sweep into a locked directory ran");
        t = out_text();
        CHECK(strstr(t, "another fqlm sweep") != NULL, "MPI sweep into a locked directory: %s", t);
        free(t);
    }
    if (!t_failed) sh("rm -rf %s", g_tmp);
    return TEST_END();
}
