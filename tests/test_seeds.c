/* test_seeds.c - stochastic rounding as an axis (issue 17): `--seeds K` on compare, plan and
 * sweep. compare --seeds K: each run is the figure of a plain compare --seed S+k, the mean
 * and sample sd are those of the runs, a deterministic configuration runs once; plan --seeds
 * K: its figures are the means compare --seeds K re-measures from rules.txt, and the budget
 * holds against the mean plus one sd (every accepted step, also with a budget the plain
 * mean of the first plan would meet); sweep --seeds K: mean and sd per combination equal
 * compare --seeds K, deterministic formats once. */
#include <math.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

static char tmpdir[256];

static int sh(const char *args, char **out, char **err) { return tu_fqlm(tmpdir, args, out, err); }

#define SET "-m models/stories260K.gguf -f data/eval.txt -c 64 --chunks 2 -t 2"
#define SR "fp8_e4m3:round=stochastic"

/* compare SET ARGS --json; the JSON text (malloc'd) or NULL. */
static char *compare_json(const char *args) {
    char cmd[8192], jp[300];
    snprintf(jp, sizeof jp, "%s/c.json", tmpdir);
    unlink(jp);
    snprintf(cmd, sizeof cmd, "compare " SET " %s --json %s", args, jp);
    int rc = sh(cmd, NULL, NULL);
    char *js = tu_read(jp, NULL);
    if (rc != 0 && js) {
        free(js);
        js = NULL;
    }
    return js;
}

/* The k-th number of the "values" array of figure fig in the "seeds" object. */
static double seed_value(const char *js, const char *fig, int k) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":{", fig);
    const char *p = js ? strstr(js, "\"seeds\":") : NULL;
    p = p ? strstr(p, pat) : NULL;
    p = p ? strstr(p, "\"values\":[") : NULL;
    if (!p) return NAN;
    p += 10;
    for (int i = 0; i < k; i++) {
        p = strchr(p, ',');
        if (!p) return NAN;
        p++;
    }
    return strtod(p, NULL);
}

static double seed_stat(const char *js, const char *fig, const char *stat) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":{", fig);
    const char *p = js ? strstr(js, "\"seeds\":") : NULL;
    p = p ? strstr(p, pat) : NULL;
    return p ? tu_json_num_from(js, p, stat) : NAN;
}

/* --fq arguments from a rules.txt text */
static void fq_args(const char *rules, char *buf, size_t n) {
    buf[0] = 0;
    for (const char *p = rules; p && *p;) {
        size_t k = strcspn(p, "\n"), l = strlen(buf);
        snprintf(buf + l, n - l, " --fq '%.*s'", (int)k, p);
        p += k + (p[k] == '\n');
    }
}

/* Every accepted step of plan.json has mean_kld + mean_kld_sd <= budget; returns the count. */
static int check_steps(const char *pj, double budget) {
    int n_acc = 0;
    for (const char *p = strstr(pj, "\"steps\":"); p && (p = strstr(p, "\"accepted\":")); p++) {
        if (strncmp(p + 11, "true", 4)) continue;
        n_acc++;
        const char *m = strstr(p, "\"measured\":");
        double kl = tu_json_num_from(pj, m, "mean_kld"), sd = tu_json_num_from(pj, m, "mean_kld_sd");
        const char *next = strstr(p + 1, "\"accepted\":"), *sdp = strstr(m, "\"mean_kld_sd\":");
        if (!sdp || (next && sdp > next)) sd = 0; /* a deterministic step: one run */
        CHECK(kl + sd <= budget, "accepted step: mean KL %.6g + sd %.3g within %.6g", kl, sd, budget);
    }
    return n_acc;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fqlm_test_seeds_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char args[8192], path[512];

    /* 1. compare --seeds 3: run k is compare --seed 42+k; mean and sd of the runs */
    const char *figs[] = {"mean_kld", "kld_p99", "top1_agree", "ppl_ratio"};
    char *js = compare_json("--fq 'ffn_out=" SR "' --fq 'attn_norm=" SR "' --seeds 3");
    CHECK(js && strstr(js, "\"runs\":3") && strstr(js, "\"stochastic\":true"), "compare --seeds 3: three runs");
    double kl[3];
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "--fq 'ffn_out=" SR "' --fq 'attn_norm=" SR "' --seed %d", 42 + k);
        char *one = compare_json(args);
        CHECK(one != NULL, "compare --seed %d runs", 42 + k);
        for (int i = 0; i < 4; i++) {
            double a = seed_value(js, figs[i], k), b = tu_json_num_from(one, NULL, figs[i]);
            CHECK(a == b, "seed %d: %s %.17g = compare --seed's %.17g", 42 + k, figs[i], a, b);
        }
        kl[k] = tu_json_num_from(one, NULL, "mean_kld");
        free(one);
    }
    double mean = (kl[0] + kl[1] + kl[2]) / 3;
    double sd = sqrt(((kl[0] - mean) * (kl[0] - mean) + (kl[1] - mean) * (kl[1] - mean) +
                      (kl[2] - mean) * (kl[2] - mean)) / 2);
    CHECK(kl[0] != kl[1] && kl[1] != kl[2], "the seeds give different figures (%.6g %.6g %.6g)", kl[0], kl[1], kl[2]);
    CHECK(seed_stat(js, "mean_kld", "mean") == mean, "mean over the seeds %.17g", mean);
    CHECK(fabs(seed_stat(js, "mean_kld", "sd") - sd) <= 1e-12 * sd && sd > 0, "sample sd %.6g", sd);
    CHECK(tu_json_num_from(js, NULL, "mean_kld") == kl[0], "the single-run figures are the first seed's");
    free(js);
    /* a deterministic configuration: one run, whatever K */
    js = compare_json("--fq 'ffn_out=fp8_e4m3' --seeds 3");
    CHECK(js && strstr(js, "\"runs\":1") && strstr(js, "\"stochastic\":false") &&
              seed_stat(js, "mean_kld", "sd") == 0 && seed_stat(js, "mean_kld", "mean") == tu_json_num_from(js, NULL, "mean_kld"),
          "a deterministic configuration runs once");
    free(js);
    /* a stochastic weight rule is rounded again per seed */
    js = compare_json("--fq 'weight:blk.*.ffn_down.weight=" SR "' --seeds 2");
    CHECK(js && seed_value(js, "mean_kld", 0) != seed_value(js, "mean_kld", 1) && strstr(js, "\"runs\":2"),
          "a stochastic weight rule differs between seeds");
    free(js);
    char *err = NULL;
    CHECK(sh("compare " SET " --fq 'ffn_out=" SR "' --seeds 0", NULL, &err) == 2 && err && strstr(err, "--seeds"),
          "--seeds 0 is refused: %s", err ? err : "");
    free(err);

    /* 2. plan --seeds 3: means re-measured by compare --seeds 3, budget against mean + sd */
    const double budget = 0.004;
    snprintf(args, sizeof args, "plan " SET " --nodes ffn_norm,ffn_out --formats " SR ",int4 --budget-kl %g --seeds 3 "
             "--pairs 2 -o %s/p", budget, tmpdir);
    char *out = NULL;
    int rc = sh(args, &out, &err);
    CHECK(rc == 0 && out && strstr(out, "means of 3 seeds"), "plan --seeds 3 (%d): %s %s", rc, out ? out : "",
          err ? err : "");
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/p/plan.json", tmpdir);
    char *pj = tu_read(path, NULL);
    snprintf(path, sizeof path, "%s/p/rules.txt", tmpdir);
    char *rules = tu_read(path, NULL);
    CHECK(pj && rules && strstr(rules, "stochastic"), "plan.json and rules.txt with a stochastic format");
    double pm = NAN, psd = NAN;
    if (pj && rules) {
        const char *m = strstr(pj, "\"measured\":");
        pm = tu_json_num_from(pj, m, "mean_kld");
        psd = tu_json_num_from(pj, m, "mean_kld_sd");
        CHECK(pm + psd <= budget && psd > 0, "the plan's mean KL %.6g + sd %.3g within %g", pm, psd, budget);
        CHECK(check_steps(pj, budget) >= 1, "accepted steps");
        char fq[8192];
        fq_args(rules, fq, sizeof fq - 20);
        strcat(fq, " --seeds 3");
        js = compare_json(fq);
        for (int i = 0; i < 4; i++) {
            double a = seed_stat(js, figs[i], "mean"), b = tu_json_num_from(pj, m, figs[i]);
            CHECK(js && a == b, "compare --seeds 3 with rules.txt: %s mean %.17g = the plan's %.17g", figs[i], a, b);
        }
        CHECK(js && seed_stat(js, "mean_kld", "sd") == psd, "and the sd");
        free(js);
    }
    /* resume: nothing measured again */
    rc = sh(args, &out, NULL);
    CHECK(rc == 0 && out && strstr(out, "; 0 new measurements"), "a rerun measures nothing: %s", out ? out : "");
    free(out);
    /* a budget the first plan's mean meets but not its mean + sd: a plan within it all the same */
    if (pj && psd > 0) {
        const double b2 = pm + psd / 2;
        snprintf(args, sizeof args, "plan " SET " --nodes ffn_norm,ffn_out --formats " SR ",int4 --budget-kl %.17g "
                 "--seeds 3 --pairs 0 -o %s/p", b2, tmpdir);
        rc = sh(args, NULL, &err);
        CHECK(rc == 0, "plan with budget %.6g (%d): %s", b2, rc, err ? err : "");
        free(err);
        snprintf(path, sizeof path, "%s/p/plan.json", tmpdir);
        char *pj2 = tu_read(path, NULL);
        CHECK(pj2 != NULL, "plan.json rewritten");
        if (pj2) {
            const char *m = strstr(pj2, "\"measured\":");
            const double m2 = tu_json_num_from(pj2, m, "mean_kld");
            double s2 = tu_json_num_from(pj2, m, "mean_kld_sd");
            if (isnan(s2)) s2 = 0;
            CHECK(m2 + s2 <= b2, "mean %.6g + sd %.3g within %.6g", m2, s2, b2);
            check_steps(pj2, b2);
            /* the first plan's configuration was measured (the state has it) and is over b2 */
            CHECK(m2 != pm, "not the first plan's configuration (mean %.6g + sd %.3g > %.6g)", pm, psd, b2);
        }
        free(pj2);
    }
    free(pj);
    free(rules);

    /* 3. sweep --seeds 3: per-combination mean and sd equal compare --seeds 3's; a seed's
     * directory swept on its own beforehand (all formats, as an MPI job per seed would) is
     * taken as it is, and its deterministic row is not a second run */
    snprintf(args, sizeof args, "sweep " SET " --nodes ffn_out --layers 1 --formats " SR ",int4 --seed 43 -o %s/sw/seed-43 "
             "--no-progress", tmpdir);
    CHECK(sh(args, NULL, NULL) == 0, "a sweep of seed 43 alone");
    snprintf(args, sizeof args, "sweep " SET " --nodes ffn_out --layers 1 --formats " SR ",int4 --seeds 3 -o %s/sw "
             "--no-progress", tmpdir);
    rc = sh(args, &out, &err);
    CHECK(rc == 0, "sweep --seeds 3 (%d): %s", rc, err ? err : "");
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/sw/seeds.csv", tmpdir);
    char *csv = tu_read(path, NULL);
    CHECK(csv && !strncmp(csv, "node,layer,format,runs,mean_kld,mean_kld_sd,", 44), "seeds.csv written: %.60s",
          csv ? csv : "");
    if (csv) {
        js = compare_json("--fq 'ffn_out@1=" SR "' --seeds 3");
        char want[512];
        snprintf(want, sizeof want, "ffn_out,1," SR ",3,%.17g,%.17g,", seed_stat(js, "mean_kld", "mean"),
                 seed_stat(js, "mean_kld", "sd"));
        CHECK(strstr(csv, want) != NULL, "the stochastic row is compare --seeds 3's: %s in\n%s", want, csv);
        free(js);
        js = compare_json("--fq 'ffn_out@1=int4'");
        snprintf(want, sizeof want, "ffn_out,1,int4,1,%.17g,0,", tu_json_num_from(js, NULL, "mean_kld"));
        CHECK(strstr(csv, want) != NULL, "the deterministic row: one run: %s", want);
        free(js);
    }
    free(csv);
    rc = sh(args, &out, NULL);
    int zero = 0;
    for (const char *p = out; p && (p = strstr(p, "sweep: 0 combinations run")); p++) zero++;
    CHECK(rc == 0 && zero == 3 && !strstr(out, "sweep: 1 combination"), "a rerun of sweep --seeds runs nothing (%d): %s",
          zero, out ? out : "");
    free(out);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
