/* test_plan.c - `fqlm plan` as a user runs it, on the bundled tiny model: a --budget-kl plan
 * whose figures `fqlm compare` with rules.txt re-measures exactly and which is within the
 * budget; interaction pairs equal to direct compare runs of the pairs; singles read from a
 * sweep directory give the same plan; resume measures nothing twice; the error cases. */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fqlm.h"
#include "harness.h"
#include "testutil.h"

static char tmpdir[256];

static int sh(const char *args, char **out, char **err) { return tu_fqlm(tmpdir, args, out, err); }

static double jnum_from(const char *js, const char *from, const char *key) { return tu_json_num_from(js, from, key); }

/* The string value after "key": at or after from, into buf; 0 when found. */
static int jstr_from(const char *js, const char *from, const char *key, char *buf, size_t n) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = js ? strstr(from ? from : js, pat) : NULL;
    if (!p) return -1;
    p += strlen(pat);
    size_t k = strcspn(p, "\"");
    if (k >= n) return -1;
    memcpy(buf, p, k);
    buf[k] = 0;
    return 0;
}

static int count(const char *s, const char *pat) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, pat)); p += strlen(pat)) n++;
    return n;
}

/* The (node, layer) sites the rules of a rules.txt text cover: NODE=F one, NODE@a-b,c=F
 * b - a + 2. */
static int rules_sites(const char *rules) {
    int n = 0;
    for (const char *p = rules; p && *p;) {
        size_t k = strcspn(p, "\n");
        const char *at = memchr(p, '@', k), *eq = memchr(p, '=', k);
        if (!at || !eq || at > eq) n++;
        else
            for (const char *q = at + 1; q < eq;) {
                char *end;
                long a = strtol(q, &end, 10), b = a;
                if (*end == '-') b = strtol(end + 1, &end, 10);
                n += (int)(b - a + 1);
                q = end + (*end == ',');
                if (end == q) break;
            }
        p += k + (p[k] == '\n');
    }
    return n;
}

#define MODEL "models/stories260K.gguf"
#define TEXT "data/eval.txt"
#define SET "-m " MODEL " -f " TEXT " -c 64 --chunks 2 -t 2"
#define SEL "--nodes ffn_norm,attn_norm,ffn_out --formats fp8_e4m3,int4"

/* compare with the given --fq arguments; its JSON into *js. */
static int compare_json(const char *fq_args, char **js) {
    char args[12000], jp[300];
    snprintf(jp, sizeof jp, "%s/cmp.json", tmpdir);
    snprintf(args, sizeof args, "compare " SET " %s --json %s", fq_args, jp);
    int rc = sh(args, NULL, NULL);
    *js = tu_read(jp, NULL);
    unlink(jp);
    return rc;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fqlm_test_plan_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char args[4096], path[512], *out = NULL, *err = NULL;
    const double budget = 0.004;

    /* 1. a KL-budget plan, re-measured by compare with rules.txt */
    snprintf(args, sizeof args, "plan " SET " " SEL " --budget-kl %g -o %s/p", budget, tmpdir);
    int rc = sh(args, &out, &err);
    CHECK(rc == 0, "plan exits 0 (got %d): %s", rc, err ? err : "");
    snprintf(path, sizeof path, "%s/p/plan.json", tmpdir);
    char *pj = tu_read(path, NULL);
    snprintf(path, sizeof path, "%s/p/rules.txt", tmpdir);
    char *rules = tu_read(path, NULL);
    CHECK(pj && rules, "plan.json and rules.txt written");
    if (!pj || !rules) return TEST_END();
    const char *meas = strstr(pj, "\"measured\":");
    double kl = jnum_from(pj, meas, "mean_kld"), p99 = jnum_from(pj, meas, "kld_p99");
    double top1 = jnum_from(pj, meas, "top1_agree"), pr = jnum_from(pj, meas, "ppl_ratio");
    double bits = jnum_from(pj, NULL, "avg_bits");
    CHECK(kl > 0 && kl <= budget, "the plan's measured KL %g is within the budget %g", kl, budget);
    CHECK(bits < 32 && bits > 4, "average bits %g below F32's 32", bits);
    {
        const char *as = strstr(pj, "\"assignment\":[{");
        CHECK(as && strstr(as, "\"node\":\"") && strstr(as, "\"layer\":") && strstr(as, "\"format\":\"") &&
                  strstr(as, "\"node\":\"") < strstr(as, "}"),
              "assignment entries are {node, layer, format}");
    }
    int n_rules = count(rules, "\n");
    CHECK(n_rules >= 2, "the plan rounds several sites (%d rules)", n_rules);
    CHECK(count(strstr(pj, "\"assignment\":"), "\"rule\":") == rules_sites(rules),
          "rules.txt covers one site per assignment entry (%d, %d)", count(strstr(pj, "\"assignment\":"), "\"rule\":"),
          rules_sites(rules));
    {
        char fq[8192] = "";
        for (const char *p = rules; *p;) {
            size_t k = strcspn(p, "\n");
            size_t l = strlen(fq);
            snprintf(fq + l, sizeof fq - l, " --fq '%.*s'", (int)k, p);
            p += k + (p[k] == '\n');
        }
        char *cj = NULL;
        rc = compare_json(fq, &cj);
        CHECK(rc == 0 && cj, "compare with rules.txt runs (%d)", rc);
        double ckl = jnum_from(cj, NULL, "mean_kld");
        CHECK(ckl == kl, "compare re-measures the plan's KL exactly: plan %.17g, compare %.17g", kl, ckl);
        CHECK(jnum_from(cj, NULL, "kld_p99") == p99, "kld_p99 equal");
        CHECK(jnum_from(cj, NULL, "top1_agree") == top1, "top1_agree equal");
        CHECK(jnum_from(cj, NULL, "ppl_ratio") == pr, "ppl_ratio equal");
        free(cj);
    }
    /* every accepted step is within the budget, and the last accepted one is the plan */
    {
        int n_acc = 0, n_rej = 0;
        double last = NAN;
        for (const char *p = strstr(pj, "\"steps\":"); p && (p = strstr(p, "\"accepted\":")); p++) {
            int acc = !strncmp(p + 11, "true", 4);
            double v = jnum_from(pj, p, "mean_kld");
            if (acc) {
                n_acc++;
                last = v;
                CHECK(v <= budget, "accepted step within budget (%g)", v);
            } else {
                n_rej++;
            }
        }
        CHECK(n_acc >= 1 && last == kl, "the last accepted step is the plan (%d accepted)", n_acc);
        CHECK(n_rej >= 1, "some steps were over the budget and backed off (%d)", n_rej);
        snprintf(path, sizeof path, "%s/p/pareto.svg", tmpdir);
        char *svg = tu_read(path, NULL);
        CHECK(svg && !strncmp(svg, "<?xml", 5) && strstr(svg, "</svg>"), "pareto.svg is an SVG file");
        CHECK(svg && count(svg, "class=\"point\"") == n_acc + 1, "one point per accepted step plus the baseline (%d)",
              svg ? count(svg, "class=\"point\"") : -1);
        free(svg);
        snprintf(path, sizeof path, "%s/p/report.html", tmpdir);
        char *html = tu_read(path, NULL);
        CHECK(html && strstr(html, "<svg") && strstr(html, "Interactions") && strstr(html, "</html>"),
              "report.html has the plot and the interaction table");
        free(html);
    }

    /* 2. the interaction table agrees with direct compare runs */
    {
        const char *it = strstr(pj, "\"interactions\":");
        int n = 0;
        for (const char *p = it; p && (p = strstr(p, "\"a\":")) && n < 3; p++, n++) {
            char a[256], b[256], fq[700];
            if (jstr_from(pj, p, "a", a, sizeof a) || jstr_from(pj, p, "b", b, sizeof b)) break;
            char *cj = NULL;
            snprintf(fq, sizeof fq, "--fq '%s' --fq '%s'", a, b);
            compare_json(fq, &cj);
            double joint = jnum_from(pj, p, "kld_joint"), ka = jnum_from(pj, p, "kld_a");
            double ratio = jnum_from(pj, p, "ratio"), sum = jnum_from(pj, p, "kld_sum");
            CHECK(cj && jnum_from(cj, NULL, "mean_kld") == joint, "pair %s + %s: joint KL %.17g = compare's %.17g", a,
                  b, joint, cj ? jnum_from(cj, NULL, "mean_kld") : NAN);
            free(cj);
            snprintf(fq, sizeof fq, "--fq '%s'", a);
            compare_json(fq, &cj);
            CHECK(cj && jnum_from(cj, NULL, "mean_kld") == ka, "single %s: %.17g = compare's", a, ka);
            free(cj);
            CHECK(fabs(ratio - joint / sum) <= 1e-12 * ratio, "ratio = joint / sum");
        }
        CHECK(n >= 2, "the interaction table has pairs (%d)", n);
    }

    /* 3. resume: the same command measures nothing again and writes the same plan */
    free(out);
    free(err);
    snprintf(args, sizeof args, "plan " SET " " SEL " --budget-kl %g -o %s/p", budget, tmpdir);
    rc = sh(args, &out, &err);
    CHECK(rc == 0 && out && strstr(out, "; 0 new measurements"), "a rerun measures nothing: %s", out ? out : "");
    snprintf(path, sizeof path, "%s/p/rules.txt", tmpdir);
    char *rules2 = tu_read(path, NULL);
    CHECK(rules2 && !strcmp(rules, rules2), "the rerun gives the same rules");
    free(rules2);
    /* a state file cut inside its last line (a kill during the append): that one is measured again */
    {
        snprintf(path, sizeof path, "%s/p/plan.state", tmpdir);
        struct stat st;
        CHECK(stat(path, &st) == 0 && truncate(path, st.st_size - 5) == 0, "cut plan.state");
        free(out);
        free(err);
        rc = sh(args, &out, &err);
        CHECK(rc == 0 && out && strstr(out, "; 1 new measurements"), "after a cut, one measurement again: %s",
              out ? out : "");
        CHECK(err && strstr(err, "partial"), "the cut line is reported: %s", err ? err : "");
        snprintf(path, sizeof path, "%s/p/plan.json", tmpdir);
        char *pj2 = tu_read(path, NULL);
        CHECK(pj2 && jnum_from(pj2, strstr(pj2, "\"measured\":"), "mean_kld") == kl, "same figures after resume");
        free(pj2);
    }

    /* 4. singles from a sweep directory of the same model and settings: the same plan */
    free(out);
    free(err);
    snprintf(args, sizeof args, "sweep " SET " " SEL " -o %s/sw --no-progress", tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 0, "sweep runs (%d): %s", rc, err ? err : "");
    free(err);
    snprintf(args, sizeof args, "plan " SET " " SEL " --budget-kl %g --from-sweep %s/sw -o %s/ps", budget, tmpdir,
             tmpdir);
    rc = sh(args, &out, &err);
    CHECK(rc == 0 && err && strstr(err, "30 of 30 single-rounding figures from the sweep"), "plan reads the sweep: %s",
          err ? err : "");
    snprintf(path, sizeof path, "%s/ps/rules.txt", tmpdir);
    rules2 = tu_read(path, NULL);
    CHECK(rules2 && !strcmp(rules, rules2), "the plan from the sweep's singles is the measured plan");
    free(rules2);

    /* 4b. the other quality budgets: top-1 agreement at least P, perplexity ratio at most R */
    {
        static const char *const flag[2] = {"--budget-top1", "--budget-ppl"}, *const key[2] = {"top1_agree", "ppl_ratio"};
        static const double lim[2] = {0.97, 1.002};
        for (int b = 0; b < 2; b++) {
            free(out);
            free(err);
            snprintf(args, sizeof args, "plan " SET " " SEL " %s %g --pairs 0 -o %s/p", flag[b], lim[b], tmpdir);
            rc = sh(args, &out, &err);
            CHECK(rc == 0, "plan %s %g exits 0 (%d): %s", flag[b], lim[b], rc, err ? err : "");
            snprintf(path, sizeof path, "%s/p/plan.json", tmpdir);
            char *bj = tu_read(path, NULL);
            const char *m = bj ? strstr(bj, "\"measured\":") : NULL;
            const double v = jnum_from(bj, m, key[b]), bb = jnum_from(bj, NULL, "avg_bits");
            CHECK(bj && (b == 0 ? v >= lim[b] : v <= lim[b]) && bb < 32, "%s %.6g within %g at %.3f bits", key[b], v,
                  lim[b], bb);
            CHECK(bj && strstr(bj, b == 0 ? "\"metric\":\"top1_agree\",\"min\":" : "\"metric\":\"ppl_ratio\",\"max\":"),
                  "plan.json names the budget");
            free(bj);
        }
    }
    /* 4c. --weights with a KL budget: within it, and compare --weight-plan re-measures it */
    {
        free(out);
        free(err);
        snprintf(args, sizeof args, "plan --weights -m tests/data/models/stories260K-ff192-f32.gguf -f " TEXT
                 " -c 64 --chunks 2 -t 2 --formats q4_0,q8_0 --nodes 'blk.*.ffn_*' --budget-kl 0.01 --pairs 2 -o %s/wk",
                 tmpdir);
        rc = sh(args, &out, &err);
        CHECK(rc == 0, "plan --weights --budget-kl exits 0 (%d): %s", rc, err ? err : "");
        snprintf(path, sizeof path, "%s/wk/plan.json", tmpdir);
        char *wj = tu_read(path, NULL);
        const double wkl = jnum_from(wj, wj ? strstr(wj, "\"measured\":") : NULL, "mean_kld");
        CHECK(wj && wkl > 0 && wkl <= 0.01 && strstr(wj, "\"tensor\":\"blk."), "weights plan KL %.6g within 0.01", wkl);
        char cmd[1200], *cj;
        snprintf(cmd, sizeof cmd, "compare -m tests/data/models/stories260K-ff192-f32.gguf -f " TEXT
                 " -c 64 --chunks 2 -t 2 --weight-plan %s/wk/plan.json --json %s/wk.json", tmpdir, tmpdir);
        rc = sh(cmd, NULL, NULL);
        snprintf(path, sizeof path, "%s/wk.json", tmpdir);
        cj = tu_read(path, NULL);
        CHECK(rc == 0 && jnum_from(cj, NULL, "mean_kld") == wkl, "compare --weight-plan: %.17g = %.17g",
              jnum_from(cj, NULL, "mean_kld"), wkl);
        free(cj);
        free(wj);
    }

    /* 4d. more sites than a context takes rules (64): rules.txt joins a node's layers; Ctrl-C
     * stops with 130 and keeps what was measured, and the rerun resumes from it */
    {
        free(out);
        free(err);
        char cmd[5000];
        const char *bin = getenv("FQLM_BIN") ? getenv("FQLM_BIN") : "build/fqlm";
        snprintf(args, sizeof args, "plan " SET " --nodes '*' --layers 0-3 --formats fp8_e4m3,bf16 --budget-kl 0.002 "
                 "--pairs 1 -o %s/big", tmpdir);
        /* the interrupt once the first measurement is in plan.state (at most 120 s), not after
         * a fixed time: on a loaded machine a fixed 1.5 s came before plan had set its handler,
         * and a background job of a non-interactive shell ignores SIGINT until then */
        snprintf(cmd, sizeof cmd,
                 "%s %s >/dev/null 2>%s/big.err & p=$!; i=0; while [ $i -lt 1200 ] && "
                 "! grep -q '^m' %s/big/plan.state 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
                 "kill -INT $p; wait $p; exit $?",
                 bin, args, tmpdir, tmpdir);
        int st = system(cmd);
        snprintf(path, sizeof path, "%s/big.err", tmpdir);
        char *be = tu_read(path, NULL);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130 && be && strstr(be, "interrupted: "),
              "Ctrl-C: exit 130 and a message (%d): %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, be ? be : "");
        free(be);
        rc = sh(args, &out, &err);
        CHECK(rc == 0 && out && err && !strstr(err, " 0 measurements in") && strstr(out, " reused ("),
              "the rerun resumes (%d): %s %s", rc, out ? out : "", err ? err : "");
        snprintf(path, sizeof path, "%s/big/plan.json", tmpdir);
        char *bj = tu_read(path, NULL);
        snprintf(path, sizeof path, "%s/big/rules.txt", tmpdir);
        char *br = tu_read(path, NULL);
        const int n_as = bj ? count(strstr(bj, "\"assignment\":"), "\"rule\":") : 0;
        CHECK(n_as > 64 && br && rules_sites(br) == n_as && count(br, "\n") <= 64,
              "%d sites rounded by %d rules", n_as, br ? count(br, "\n") : -1);
        if (bj && br) {
            char fq[8192] = "", *cj = NULL;
            for (const char *p = br; *p;) {
                size_t k = strcspn(p, "\n"), l = strlen(fq);
                snprintf(fq + l, sizeof fq - l, " --fq '%.*s'", (int)k, p);
                p += k + (p[k] == '\n');
            }
            compare_json(fq, &cj);
            const double bkl = jnum_from(bj, strstr(bj, "\"measured\":"), "mean_kld");
            CHECK(cj && jnum_from(cj, NULL, "mean_kld") == bkl && bkl <= 0.002, "compare with rules.txt: %.17g = %.17g",
                  cj ? jnum_from(cj, NULL, "mean_kld") : NAN, bkl);
            free(cj);
        }
        free(bj);
        free(br);
    }

    /* 5. errors */
    free(out);
    free(err);
    snprintf(args, sizeof args, "plan " SET " " SEL " --budget-kl 1e-9 -o %s/p", tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 1 && err && strstr(err, "no assignment meets --budget-kl"), "a budget nothing meets: %d %s", rc,
          err ? err : "");
    free(err);
    snprintf(args, sizeof args, "plan " SET " --formats fp9_e9m9 --budget-kl 0.01 -o %s/e", tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "unknown format 'fp9_e9m9'"), "an unknown format: %d %s", rc, err ? err : "");
    free(err);
    snprintf(args, sizeof args, "plan " SET " " SEL " --budget-kl -1 -o %s/e", tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "must be > 0"), "a negative KL budget: %d %s", rc, err ? err : "");
    free(err);
    snprintf(args, sizeof args, "plan " SET " " SEL " --budget-kl 0.01 --budget-top1 0.9 -o %s/e", tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "exactly one budget"), "two budgets: %d", rc);
    free(err);
    snprintf(args, sizeof args,
             "plan -m tests/data/models/stories260K-f16.gguf -f " TEXT " -c 64 --chunks 2 " SEL
             " --budget-kl 0.01 --from-sweep %s/sw -o %s/e2", tmpdir, tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "another model"), "a sweep of another model: %d %s", rc, err ? err : "");
    free(err);
    snprintf(args, sizeof args, "plan -m " MODEL " -f " TEXT " -c 32 --chunks 2 --nodes ffn_norm --formats int4 "
             "--budget-kl 0.01 --from-sweep %s/sw -o %s/e3", tmpdir, tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "other settings"), "a sweep with another context: %d %s", rc, err ? err : "");
    free(err);
    snprintf(args, sizeof args, "plan " SET " --nodes no_such_node --formats int4 --budget-kl 0.01 -o %s/e", tmpdir);
    rc = sh(args, NULL, &err);
    CHECK(rc == 2 && err && strstr(err, "no node 'no_such_node'"), "an unknown node: %d %s", rc, err ? err : "");
    free(err);

    /* 6. --weights: real tensor types at the size of the uniform Q4_1 and Q5_0 files beat them */
    {
#define WM "tests/data/models/stories260K-ff192-"
#define WSET "-m " WM "f32.gguf -f " TEXT " -c 64 --chunks 2 -t 2"
        static const char *const uni[2] = {"q4_1", "q5_0"};
        for (int u = 0; u < 2; u++) {
            /* one directory for both: the second plan reuses the first one's single measurements */
            snprintf(args, sizeof args, "plan --weights " WSET " --formats q4_0,q4_1,q5_0,q5_1,q8_0 --budget-size-of "
                     WM "%s.gguf -o %s/w", uni[u], tmpdir);
            rc = sh(args, &out, &err);
            CHECK(rc == 0, "plan --weights at %s's size exits 0 (%d): %s", uni[u], rc, err ? err : "");
            free(out);
            free(err);
            snprintf(path, sizeof path, "%s/w/plan.json", tmpdir);
            char *wj = tu_read(path, NULL), *cj = NULL;
            CHECK(wj != NULL, "plan.json written");
            if (!wj) break;
            const double wkl = jnum_from(wj, strstr(wj, "\"measured\":"), "mean_kld");
            const double wbits = jnum_from(wj, NULL, "avg_bits"), wmax = jnum_from(wj, strstr(wj, "\"budget\":"), "max");
            CHECK(wbits <= wmax && wbits > wmax - 0.5, "average bits %g within the size of %s (%g bits per weight)", wbits,
                  uni[u], wmax);
            /* deploy.txt: the llama-quantize line, as quantize --print-llama-quantize prints it */
            {
                char cmd[1200];
                snprintf(cmd, sizeof cmd, "quantize --plan %s/w/plan.json --print-llama-quantize " WM "f32.gguf OUT.gguf",
                         tmpdir);
                char *lq = NULL;
                rc = sh(cmd, &lq, NULL);
                snprintf(path, sizeof path, "%s/w/deploy.txt", tmpdir);
                char *dep = tu_read(path, NULL);
                CHECK(rc == 0 && lq && !strncmp(lq, "llama-quantize --tensor-type '^", 31) && dep && strstr(dep, lq),
                      "deploy.txt has the llama-quantize line: %.80s", lq ? lq : "");
                free(lq);
                free(dep);
            }
            /* the uniform file, measured by compare against the F32 model on the same text */
            char fq[1200];
            snprintf(fq, sizeof fq, "compare " WSET " --fq-model " WM "%s.gguf --json %s/u.json", uni[u], tmpdir);
            rc = sh(fq, NULL, NULL);
            snprintf(path, sizeof path, "%s/u.json", tmpdir);
            cj = tu_read(path, NULL);
            const double ukl = jnum_from(cj, NULL, "mean_kld");
            CHECK(rc == 0 && wkl < ukl, "at the size of uniform %s the plan's KL %.6g is below the file's %.6g", uni[u], wkl,
                  ukl);
            printf("weights plan at %s size: %.4f bits, KL %.6g; uniform file KL %.6g\n", uni[u], wbits, wkl, ukl);
            free(cj);
            /* re-measured in memory by compare --weight-plan, and from the file quantize --plan writes */
            snprintf(fq, sizeof fq, "compare " WSET " --weight-plan %s/w/plan.json --json %s/r.json", tmpdir, tmpdir);
            rc = sh(fq, NULL, NULL);
            snprintf(path, sizeof path, "%s/r.json", tmpdir);
            cj = tu_read(path, NULL);
            CHECK(rc == 0 && jnum_from(cj, NULL, "mean_kld") == wkl, "compare --weight-plan re-measures the plan's KL");
            free(cj);
            snprintf(fq, sizeof fq, "quantize --plan %s/w/plan.json " WM "f32.gguf %s/w.gguf", tmpdir, tmpdir);
            rc = sh(fq, NULL, &err);
            CHECK(rc == 0, "quantize --plan writes the file (%d): %s", rc, err ? err : "");
            free(err);
            snprintf(fq, sizeof fq, "compare " WSET " --fq-model %s/w.gguf --json %s/f.json", tmpdir, tmpdir);
            rc = sh(fq, NULL, NULL);
            snprintf(path, sizeof path, "%s/f.json", tmpdir);
            cj = tu_read(path, NULL);
            CHECK(rc == 0 && jnum_from(cj, NULL, "mean_kld") == wkl, "the written file's KL is the plan's");
            free(cj);
            /* the file's tensor types are exactly the plan's */
            snprintf(path, sizeof path, "%s/w.gguf", tmpdir);
            fqlm_model *wm = fqlm_model_load(path);
            CHECK(wm != NULL, "the written file loads");
            int n_t = 0, n_ok = 0;
            for (const char *p = strstr(wj, "\"assignment\":"); wm && p && (p = strstr(p, "\"tensor\":")); p++) {
                char tn[128], ty[32];
                if (jstr_from(wj, p, "tensor", tn, sizeof tn) || jstr_from(wj, p, "type", ty, sizeof ty)) break;
                n_t++;
                for (int i = 0; i < fqlm_model_n_weights(wm); i++) {
                    const char *t = NULL, *nm = fqlm_model_weight(wm, i, &t, NULL, NULL);
                    if (nm && !strcmp(nm, tn) && t && !strcmp(t, ty)) n_ok++;
                }
            }
            CHECK(n_t > 30 && n_ok == n_t, "every tensor of the file has the plan's type (%d of %d)", n_ok, n_t);
            fqlm_model_free(wm);
            free(wj);
        }
        snprintf(args, sizeof args, "plan --weights " WSET " --formats q4_0,q9_9 --budget-bits 5 -o %s/w", tmpdir);
        rc = sh(args, NULL, &err);
        CHECK(rc == 2 && err && strstr(err, "'q9_9' is not a weight type"), "an unknown weight type: %d %s", rc,
              err ? err : "");
        free(err);
        snprintf(args, sizeof args, "plan --weights " WSET " --formats q8_0 --budget-bits 5 -o %s/w", tmpdir);
        rc = sh(args, NULL, &err);
        CHECK(rc == 1 && err && strstr(err, "no assignment meets --budget-bits"), "a bits budget nothing meets: %d %s", rc,
              err ? err : "");
        free(err);
    }

    free(pj);
    free(rules);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
