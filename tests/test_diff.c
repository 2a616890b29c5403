/* test_diff.c - `fqlm diff` and the node-by-node comparison (nodediff.h, fqlm_diff_* of the
 * public API): a model against itself gives exactly zero everywhere; one rule's error shows
 * where it enters (local: nowhere else, and equal to the fake-quant table's rmse;
 * propagated: everywhere after it); the bundled real model against its Q8_0 / Q4_0 copies
 * gives the figures an independent computation from `ppl --dump`ed tensors of both runs
 * gives; mismatched models are refused naming the first difference. */
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakequant.h"
#include "fqlm.h"
#include "harness.h"
#include "model.h"
#include "nodediff.h"
#include "qtypes.h"
#include "testutil.h"
#include "tokenizer.h"

#define M_F32 "tests/data/models/stories260K-ff192-f32.gguf"
#define TEXT "tests/data/golden/fakequant-eval.txt"

static const char *bin(void) {
    const char *b = getenv("FQLM_BIN");
    return b ? b : "build/fqlm";
}

static char tmpdir[256];

/* Runs `fqlm ARGS`, stdout and stderr into files; returns the exit status. */
static int sh(const char *args, char **err) {
    char cmd[8192], e[300];
    snprintf(e, sizeof e, "%s/err", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s >%s/out 2>%s", bin(), args, tmpdir, e);
    int st = system(cmd);
    if (err) *err = tu_read(e, NULL);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* The number after "key": at or after p (NAN when absent or null). */
static double jnum_at(const char *p, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *q = p ? strstr(p, pat) : NULL;
    if (!q) return NAN;
    q += strlen(pat);
    if (!strncmp(q, "null", 4)) return NAN;
    return strtod(q, NULL);
}

/* The JSON row of (node, layer, mode) in diff's "nodes" array, or NULL. */
static const char *jrow(const char *js, const char *node, int layer, const char *mode) {
    char pat[160];
    snprintf(pat, sizeof pat, "{\"node\":\"%s\",\"layer\":%d,\"mode\":\"%s\"", node, layer, mode);
    return js ? strstr(js, pat) : NULL;
}

static int rel_close(double a, double b, double tol) {
    if (a == b) return 1;
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b));
}

static int32_t *text_tokens(const fq_model *m, int n) {
    char *txt = tu_read(TEXT, NULL);
    int32_t *t = NULL;
    size_t nt = 0;
    fq_err e;
    if (!txt || fq_tokenize(m->tok, txt, strlen(txt), true, false, &t, &nt, &e) || (int)nt < n) {
        free(t);
        t = NULL;
    }
    free(txt);
    return t;
}

/* ---- the library ---------------------------------------------------------------------- */

static void test_library(void) {
    fq_err e;
    fq_model *a = fq_model_load(M_F32, &e);
    CHECK(a != NULL, "load: %s", a ? "" : e.msg);
    if (!a) return;
    const int n = 20;
    int32_t *toks = text_tokens(a, n);
    CHECK(toks != NULL, "tokens of %s", TEXT);
    if (!toks) {
        fq_model_free(a);
        return;
    }
    fq_diff_params p = {.ctx = {.n_ctx = n, .n_threads = 2, .n_batch = 512, .cache_type = FQ_TYPE_F32}};
    /* 1. a model against itself: exactly zero at every node of every layer, both modes; the
     * capture split into 3-token steps (a small step budget) changes nothing */
    p.step_bytes = 1;
    fq_diff *d = fq_diff_new(a, a, &p, &e);
    CHECK(d != NULL, "self diff: %s", d ? "" : e.msg);
    if (d) {
        CHECK(fq_diff_step_tokens(d) == 1, "step of a 1-byte budget: %d", fq_diff_step_tokens(d));
        CHECK(fq_diff_eval(d, toks, n, NULL, &e) == 0, "self eval: %s", e.msg);
        int nz = 0, nodes_seen = 0, layered = 0;
        for (int i = 0; i < fq_diff_n_rows(d); i++) {
            int node, layer;
            fq_diff_row(d, i, &node, &layer);
            nodes_seen += node == FQ_NODE_RESULT_OUTPUT || node == FQ_NODE_KQ_SOFT_MAX;
            layered += layer >= 0;
            for (int mode = 1; mode <= 2; mode++) {
                fq_diff_stats st;
                CHECK(fq_diff_row_stats(d, i, mode, &st) == 0, "row stats");
                if (!(st.rel_l2 == 0 && st.max_abs == 0 && st.cosine == 1 && st.elements > 0 && isinf(st.sqnr_db) &&
                      st.frac_rel_gt_1pct == 0))
                    nz++;
            }
        }
        CHECK(nz == 0, "self diff: %d (node, layer, mode) rows are not exactly zero", nz);
        CHECK(nodes_seen == 6 && layered == fq_diff_n_rows(d) - 3, "rows: %d (kq_soft_max/result_output %d)",
              fq_diff_n_rows(d), nodes_seen);
        fq_metrics_summary s;
        CHECK(fq_diff_metrics(d, &s, &e) == 0 && s.mean_kld == 0 && s.top1_agree == 1 && s.ppl_ratio == 1 &&
                  s.n_pos == n,
              "self metrics: kl %g top1 %g ratio %g n %lld", s.mean_kld, s.top1_agree, s.ppl_ratio, (long long)s.n_pos);
        fq_diff_free(d);
    }

    /* 2. one rule at ffn_norm@3 */
    const char *rules[] = {"ffn_norm@3=bf16"};
    p.step_bytes = 0;
    p.rules = rules;
    p.n_rules = 1;
    d = fq_diff_new(a, a, &p, &e);
    CHECK(d != NULL, "rule diff: %s", d ? "" : e.msg);
    if (d) {
        CHECK(fq_diff_eval(d, toks, n, NULL, &e) == 0, "rule eval: %s", e.msg);
        int at = -1;
        for (int i = 0; i < fq_diff_n_rows(d); i++) {
            int node, layer;
            fq_diff_row(d, i, &node, &layer);
            if (node == FQ_NODE_FFN_NORM && layer == 3) at = i;
        }
        CHECK(at > 0, "ffn_norm-3 row");
        int bad_before = 0, bad_after_prop = 0, bad_local = 0, n_after = 0;
        for (int i = 0; i < fq_diff_n_rows(d); i++) {
            int node, layer;
            fq_diff_row(d, i, &node, &layer);
            fq_diff_stats sp, sl;
            fq_diff_row_stats(d, i, FQ_DIFF_PROPAGATED, &sp);
            fq_diff_row_stats(d, i, FQ_DIFF_LOCAL, &sl);
            if (i < at) {
                bad_before += !(sp.rel_l2 == 0 && sl.rel_l2 == 0 && sp.max_abs == 0 && sl.max_abs == 0);
            } else {
                n_after++;
                bad_after_prop += !(sp.rel_l2 > 0);
                /* local: layer 3 from the rule on carries it; layer 4 and the output are fed
                 * A's stream again */
                if (layer == 3) bad_local += !(sl.rel_l2 > 0);
                else bad_local += !(sl.rel_l2 == 0);
            }
        }
        CHECK(bad_before == 0, "%d rows before ffn_norm-3 are not zero", bad_before);
        CHECK(n_after > 10 && bad_after_prop == 0, "%d of %d propagated rows after the rule are zero", bad_after_prop,
              n_after);
        CHECK(bad_local == 0, "%d local rows after the rule are off", bad_local);
        /* the hooked node's local error is the fake-quant table's rmse of that node */
        fq_diff_stats sl;
        fq_diff_row_stats(d, at, FQ_DIFF_LOCAL, &sl);
        char *js = fq_fakequant_json(fq_diff_fakequant(d, FQ_DIFF_LOCAL), 0);
        double rmse = jnum_at(js ? strstr(js, "\"ffn_norm\"") : NULL, "rmse");
        CHECK(rel_close(sl.rmse, rmse, 1e-8), "local rmse %.12g, fake-quant table %.12g", sl.rmse, rmse);
        free(js);
        fq_diff_free(d);
    }

    /* 3. a weight rule on the reference model itself is refused */
    const char *wr[] = {"weight:*=bf16"};
    p.rules = wr;
    d = fq_diff_new(a, a, &p, &e);
    CHECK(d == NULL && strstr(e.msg, "weight rule"), "weight rule on A: %s", d ? "accepted" : e.msg);
    fq_diff_free(d);

    /* 4. mismatched models */
    fq_model *o = fq_model_load("tests/data/models/synth-l2-e256-f32.gguf", &e);
    CHECK(o != NULL, "load synth");
    if (o) {
        CHECK(fq_diff_check_models(a, o, &e) == -1 && strstr(e.msg, "layer count") && strstr(e.msg, "5 vs 2"),
              "mismatch: %s", e.msg);
        p.rules = NULL;
        p.n_rules = 0;
        d = fq_diff_new(a, o, &p, &e);
        CHECK(d == NULL && strstr(e.msg, "layer count"), "mismatched diff: %s", d ? "accepted" : e.msg);
        fq_diff_free(d);
        fq_model_free(o);
    }
    free(toks);
    fq_model_free(a);
}

/* The public API: the same comparison through fqlm.h. */
static void test_public_api(void) {
    fqlm_model *a = fqlm_model_load(M_F32);
    fqlm_model *b = fqlm_model_load("tests/data/models/stories260K-ff192-q8_0.gguf");
    CHECK(a && b, "load: %s", fqlm_last_error());
    if (!a || !b) {
        fqlm_model_free(a);
        fqlm_model_free(b);
        return;
    }
    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 16;
    p.n_threads = 2;
    fqlm_diff *d = fqlm_diff_new(a, b, &p, NULL, 0, FQLM_DIFF_BOTH);
    CHECK(d != NULL, "fqlm_diff_new: %s", fqlm_last_error());
    int32_t toks[16];
    int n = fqlm_tokenize(a, "Once upon a time there was a little girl named Lily", toks, 16, 1);
    if (d) {
        CHECK(fqlm_diff_eval(d, toks, n) == 0, "fqlm_diff_eval: %s", fqlm_last_error());
        int found = 0;
        for (int i = 0; i < fqlm_diff_n_rows(d); i++) {
            fqlm_diff_row r;
            CHECK(fqlm_diff_get_row(d, i, &r) == 0, "row %d", i);
            if (!strcmp(r.node, "l_out") && r.layer == 4) {
                found++;
                CHECK(r.rel_l2 > 1e-4 && r.rel_l2 < 0.2 && r.cosine > 0.99 && r.cosine < 1 && r.elements == 64 * n,
                      "l_out-4 %s: rel_l2 %g cosine %g elements %lld", r.mode == 1 ? "propagated" : "local", r.rel_l2,
                      r.cosine, (long long)r.elements);
            }
        }
        CHECK(found == 2, "l_out-4 rows: %d", found);
        fqlm_diff_row r;
        CHECK(fqlm_diff_get_row(d, fqlm_diff_n_rows(d), &r) == -1 && strstr(fqlm_last_error(), "out of range"),
              "row out of range: %s", fqlm_last_error());
        double kl, top1, ratio;
        CHECK(fqlm_diff_summary(d, &kl, &top1, &ratio) == 0 && kl > 0 && kl < 0.1 && top1 > 0.5 && ratio > 0.9 &&
                  ratio < 1.1,
              "summary: kl %g top1 %g ratio %g", kl, top1, ratio);
        fqlm_diff_free(d);
    }
    fqlm_model *o = fqlm_model_load("models/stories260K.gguf");
    if (o) {
        d = fqlm_diff_new(a, o, &p, NULL, 0, FQLM_DIFF_BOTH);
        CHECK(d == NULL && strstr(fqlm_last_error(), "n_ff") && strstr(fqlm_last_error(), "192 vs 172"),
              "mismatch through the API: %s", fqlm_last_error());
        fqlm_diff_free(d);
        fqlm_model_free(o);
    }
    fqlm_model_free(a);
    fqlm_model_free(b);
}

/* ---- the command ---------------------------------------------------------------------- */

/* npy float32 array (as --dump writes it) appended to *v. */
static int read_npy(const char *path, float **v, size_t *n, size_t *cap) {
    size_t len;
    char *b = tu_read(path, &len);
    if (!b || len < 10 || memcmp(b, "\x93NUMPY", 6)) {
        free(b);
        return -1;
    }
    size_t hl = b[6] == 1 ? (size_t)(unsigned char)b[8] | (size_t)(unsigned char)b[9] << 8 : 0;
    size_t off = 10 + hl;
    if (!strstr(b + 10, "'<f4'") || off > len) {
        free(b);
        return -1;
    }
    size_t k = (len - off) / 4;
    if (*n + k > *cap) {
        *cap = (*n + k) * 2;
        *v = realloc(*v, *cap * sizeof(float));
    }
    memcpy(*v + *n, b + off, k * 4);
    *n += k;
    free(b);
    return 0;
}

/* Every dumped value of (node, layer) in dir, in the order the run produced them. */
static float *dumped(const char *dir, const char *node, int layer, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, "%s/index.tsv", dir);
    char *idx = tu_read(path, NULL);
    float *v = NULL;
    size_t cap = 0;
    *n = 0;
    if (!idx) return NULL;
    for (char *line = strtok(idx, "\n"); line; line = strtok(NULL, "\n")) {
        char file[256], nd[64];
        int L;
        if (sscanf(line, "%255s %63s %d", file, nd, &L) != 3 || strcmp(nd, node) || L != layer) continue;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (read_npy(path, &v, n, &cap)) {
            free(v);
            v = NULL;
            *n = 0;
            break;
        }
    }
    free(idx);
    return v;
}

/* Reproduces diff's propagated figures of every dumped node from the two runs' dumps. */
static void test_vs_dumps(const char *type) {
    static const char *nodes[] = {"attn_norm", "kq_soft_max", "kqv_out", "ffn_norm", "ffn_gate_par", "l_out",
                                  "result_norm", "result_output"};
    const int n_nodes = (int)(sizeof nodes / sizeof *nodes);
    const char *sel = "attn_norm,kq_soft_max,kqv_out,ffn_norm,ffn_gate_par,l_out,result_norm,result_output";
    char args[4096], da[300], db[300], jpath[300];
    snprintf(da, sizeof da, "%s/dumpA-%s", tmpdir, type);
    snprintf(db, sizeof db, "%s/dumpB-%s", tmpdir, type);
    snprintf(jpath, sizeof jpath, "%s/diff-%s.json", tmpdir, type);
    mkdir(da, 0755);
    mkdir(db, 0755);
    char *err = NULL;
    snprintf(args, sizeof args, "ppl -m " M_F32 " -f " TEXT " -c 24 --chunks 1 --cache-type f32 -t 2 --dump %s --dump-dir %s",
             sel, da);
    int rc = sh(args, &err);
    CHECK(rc == 0, "ppl --dump A: %s", err ? err : "");
    free(err);
    snprintf(args, sizeof args,
             "ppl -m tests/data/models/stories260K-ff192-%s.gguf -f " TEXT " -c 24 --chunks 1 --cache-type f32 -t 2 "
             "--dump %s --dump-dir %s",
             type, sel, db);
    rc = sh(args, &err);
    CHECK(rc == 0, "ppl --dump B: %s", err ? err : "");
    free(err);
    snprintf(args, sizeof args,
             "diff -m " M_F32 " --vs tests/data/models/stories260K-ff192-%s.gguf -f " TEXT " -c 24 --chunks 1 -t 2 "
             "--nodes %s --json %s",
             type, sel, jpath);
    rc = sh(args, &err);
    CHECK(rc == 0, "diff vs %s: %s", type, err ? err : "");
    free(err);
    char *js = tu_read(jpath, NULL);
    CHECK(js != NULL, "diff json");
    if (!js) return;
    int compared = 0, nonzero = 0;
    for (int k = 0; k < n_nodes; k++) {
        const int has_layer = strncmp(nodes[k], "result", 6) != 0;
        for (int L = has_layer ? 0 : -1; L < (has_layer ? 5 : 0); L++) {
            size_t na, nb;
            float *a = dumped(da, nodes[k], L, &na), *b = dumped(db, nodes[k], L, &nb);
            CHECK(a && b && na == nb && na > 0, "%s-%d dumps: %zu vs %zu values", nodes[k], L, na, nb);
            const char *row = jrow(js, nodes[k], L, "propagated");
            CHECK(row != NULL, "%s-%d row in the diff JSON", nodes[k], L);
            if (a && b && na == nb && row) {
                double a2 = 0, b2 = 0, ab = 0, d2 = 0, mx = 0;
                long long gt = 0;
                for (size_t i = 0; i < na; i++) {
                    const double x = a[i], y = b[i], dd = y - x;
                    a2 += x * x, b2 += y * y, ab += x * y, d2 += dd * dd;
                    mx = fmax(mx, fabs(dd));
                    gt += fabs(dd) > 0.01 * fabs(x);
                }
                const double rel = sqrt(d2 / a2), cosv = ab / sqrt(a2 * b2), sq = 10 * log10(a2 / d2);
                const double frac = (double)gt / (double)na, rmse = sqrt(d2 / (double)na);
                CHECK(rel_close(jnum_at(row, "rel_l2"), rel, 1e-9) && rel_close(jnum_at(row, "cosine"), cosv, 1e-12) &&
                          rel_close(jnum_at(row, "sqnr_db"), sq, 1e-9) && jnum_at(row, "max_abs") == mx &&
                          rel_close(jnum_at(row, "frac_rel_gt_1pct"), frac, 1e-12) &&
                          rel_close(jnum_at(row, "rmse"), rmse, 1e-9) && jnum_at(row, "elements") == (double)na,
                      "%s %s-%d: diff rel_l2 %.9g cos %.12g sqnr %.6g max %.9g >1%% %.6g rmse %.9g n %.0f; "
                      "dumps %.9g %.12g %.6g %.9g %.6g %.9g %zu",
                      type, nodes[k], L, jnum_at(row, "rel_l2"), jnum_at(row, "cosine"), jnum_at(row, "sqnr_db"),
                      jnum_at(row, "max_abs"), jnum_at(row, "frac_rel_gt_1pct"), jnum_at(row, "rmse"),
                      jnum_at(row, "elements"), rel, cosv, sq, mx, frac, rmse, na);
                compared++;
                nonzero += rel > 0;
            }
            free(a);
            free(b);
        }
    }
    CHECK(compared == 6 * 5 + 2 && nonzero == compared, "%s: %d nodes compared, %d with an error", type, compared,
          nonzero);
    /* the final figures are in range (compare's own figures are checked with a rule in test_command) */
    double kl = jnum_at(js, "mean_kld"), top1 = jnum_at(js, "top1_agree"), ratio = jnum_at(js, "ppl_ratio");
    CHECK(kl > 0 && kl < 0.1 && top1 > 0.8 && top1 <= 1 && ratio > 0.9 && ratio < 1.1, "%s: kl %g top1 %g ratio %g",
          type, kl, top1, ratio);
    free(js);
}

/* Self-diff and the one-rule acceptance through the command, the rule's figure checked against
 * compare's fake-quant table; the outputs; errors. */
static void test_command(void) {
    char args[4096], jpath[300];
    char *err = NULL;
    snprintf(jpath, sizeof jpath, "%s/self.json", tmpdir);
    snprintf(args, sizeof args, "diff -m " M_F32 " -f " TEXT " -c 32 -t 2 --json %s --csv %s/self.csv", jpath, tmpdir);
    int rc = sh(args, &err);
    CHECK(rc == 0, "self diff: rc %d %s", rc, err ? err : "");
    free(err);
    char *js = tu_read(jpath, NULL);
    CHECK(js && strstr(js, "\"mode_columns\":[\"propagated\",\"local\"]"), "mode_columns");
    int rows = 0, nonzero = 0;
    for (const char *p = js ? strstr(js, "{\"node\":") : NULL; p; p = strstr(p + 1, "{\"node\":")) {
        rows++;
        nonzero += !(jnum_at(p, "rel_l2") == 0 && jnum_at(p, "max_abs") == 0 && jnum_at(p, "cosine") == 1);
    }
    CHECK(rows > 100 && nonzero == 0, "self diff: %d of %d rows not exactly zero", nonzero, rows);
    CHECK(js && jnum_at(js, "mean_kld") == 0 && jnum_at(js, "top1_agree") == 1 && jnum_at(js, "ppl_ratio") == 1,
          "self diff final figures");
    free(js);
    snprintf(args, sizeof args, "%s/self.csv", tmpdir);
    char *csv = tu_read(args, NULL);
    int lines = 0;
    for (const char *p = csv; p && (p = strchr(p, '\n')); p++) lines++;
    static const char head[] = "node,layer,mode,rel_l2,cosine,max_abs,sqnr_db,frac_rel_gt_1pct,rmse,elements,nonfinite\n";
    CHECK(csv && !strncmp(csv, head, sizeof head - 1) &&
              lines == rows + 1,
          "csv: %d lines for %d rows", lines, rows);
    free(csv);

    /* one rule: local error of the hooked node = compare's fake-quant table rmse */
    char cpath[300], svg[300], md[300];
    snprintf(jpath, sizeof jpath, "%s/rule.json", tmpdir);
    snprintf(cpath, sizeof cpath, "%s/cmp.json", tmpdir);
    snprintf(svg, sizeof svg, "%s/rule.svg", tmpdir);
    snprintf(md, sizeof md, "%s/rule.md", tmpdir);
    snprintf(args, sizeof args,
             "diff -m " M_F32 " -f " TEXT " -c 32 -t 2 --fq ffn_norm@3=bf16 --json %s --svg %s --report %s", jpath,
             svg, md);
    rc = sh(args, &err);
    CHECK(rc == 0, "rule diff: %s", err ? err : "");
    free(err);
    snprintf(args, sizeof args, "compare -m " M_F32 " -f " TEXT " -c 32 -t 2 --fq ffn_norm@3=bf16 --json %s", cpath);
    rc = sh(args, &err);
    CHECK(rc == 0, "compare: %s", err ? err : "");
    free(err);
    js = tu_read(jpath, NULL);
    char *cj = tu_read(cpath, NULL);
    const char *crow = cj ? strstr(cj, "\"nodes\":[") : NULL;
    const double table = jnum_at(crow, "rmse");
    const double local = jnum_at(jrow(js, "ffn_norm", 3, "local"), "rmse");
    CHECK(isfinite(table) && table > 0 && rel_close(local, table, 1e-8), "local rmse %.12g vs compare's table %.12g",
          local, table);
    CHECK(rel_close(jnum_at(js, "mean_kld"), jnum_at(cj, "mean_kld"), 1e-9) &&
              jnum_at(js, "top1_agree") == jnum_at(cj, "top1_agree") &&
              rel_close(jnum_at(js, "ppl_ratio"), jnum_at(cj, "ppl_ratio"), 1e-12),
          "final figures as compare: kl %.12g / %.12g, top1 %g / %g, ratio %.12g / %.12g", jnum_at(js, "mean_kld"),
          jnum_at(cj, "mean_kld"), jnum_at(js, "top1_agree"), jnum_at(cj, "top1_agree"), jnum_at(js, "ppl_ratio"),
          jnum_at(cj, "ppl_ratio"));
    CHECK(jnum_at(jrow(js, "l_out", 2, "propagated"), "rel_l2") == 0 &&
              jnum_at(jrow(js, "l_out", 2, "local"), "rel_l2") == 0 &&
              jnum_at(jrow(js, "l_out", 3, "propagated"), "rel_l2") > 0 &&
              jnum_at(jrow(js, "result_output", -1, "propagated"), "rel_l2") > 0 &&
              jnum_at(jrow(js, "result_output", -1, "local"), "rel_l2") == 0 && jnum_at(js, "worst_layer") == 3,
          "rule rows around layer 3 / worst layer %g", jnum_at(js, "worst_layer"));
    free(js);
    free(cj);
    char *s = tu_read(svg, NULL);
    CHECK(s && strstr(s, "<svg") && strstr(s, "</svg>") && strstr(s, "stroke-dasharray=\"5,3\"") &&
              strstr(s, ">ffn_norm</text>") && strstr(s, "most error added"),
          "svg");
    free(s);
    s = tu_read(md, NULL);
    CHECK(s && strstr(s, "| 3 |") && strstr(s, "**most error added**") && strstr(s, "The layer adding the most error is **3**"),
          "report");
    free(s);

    /* errors */
    rc = sh("diff -m " M_F32 " --vs models/stories260K.gguf -p hello", &err);
    CHECK(rc == 1 && err && strstr(err, "n_ff") && strstr(err, "192 vs 172"), "mismatch: rc %d %s", rc, err ? err : "");
    free(err);
    rc = sh("diff -m " M_F32 " -p hello --nodes nosuch", &err);
    CHECK(rc == 2 && err && strstr(err, "nosuch") && strstr(err, "ffn_norm"), "bad --nodes: rc %d %s", rc,
          err ? err : "");
    free(err);
    rc = sh("diff -m " M_F32 " -p hello --fq ffn_norm@9=bf16", &err);
    CHECK(rc == 2 && err && strstr(err, "layers 0-4"), "bad rule: rc %d %s", rc, err ? err : "");
    free(err);
    rc = sh("diff -m " M_F32 " -p hello --mode sideways", &err);
    CHECK(rc == 2 && err && strstr(err, "sideways"), "bad mode: rc %d %s", rc, err ? err : "");
    free(err);
    /* NaN/Inf made by a rule: counted per node, no KL, exit status 3, no crash */
    snprintf(jpath, sizeof jpath, "%s/nan.json", tmpdir);
    snprintf(args, sizeof args,
             "diff -m " M_F32 " -p 'Once upon a time there was' --fq 'kq=e2m1:fn,sat=off' --nodes kq,result_output "
             "--json %s", jpath);
    rc = sh(args, &err);
    js = tu_read(jpath, NULL);
    CHECK(rc == 3 && js && jnum_at(jrow(js, "result_output", -1, "propagated"), "nonfinite") > 0 &&
              isnan(jnum_at(js, "mean_kld")) && jnum_at(jrow(js, "result_output", -1, "local"), "rel_l2") == 0,
          "NaN run: rc %d %s", rc, err ? err : "");
    free(js);
    free(err);
    snprintf(args, sizeof args, "diff -m " M_F32 " -p hello --json %s/no/such/dir/x.json", tmpdir);
    rc = sh(args, &err);
    CHECK(rc == 1 && err && strstr(err, "--json"), "unwritable json: rc %d %s", rc, err ? err : "");
    free(err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fqlm-test-diff-%d", (int)getpid());
    mkdir(tmpdir, 0755);
    test_library();
    test_public_api();
    test_command();
    test_vs_dumps("q8_0");
    test_vs_dumps("q4_0");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
