/* test_api.c - the public header: load, tokenize, eval, rules, errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fqlm.h"
#include "harness.h"

/* logits of the prompt in a context with K/V cache types k, v (fqlm_context_new_kv), or of
 * fqlm_context_new when both are "-" (cache_f16 as given) */
static int kv_logits(fqlm_model *m, const int32_t *toks, int n, int cache_f16, const char *k, const char *v,
                     const char *rule, float *out, char **stats) {
    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    p.cache_f16 = cache_f16;
    fqlm_context *c = k && !strcmp(k, "-") ? fqlm_context_new(m, &p) : fqlm_context_new_kv(m, &p, k, v);
    if (!c) return -1;
    int rc = (rule && fqlm_context_add_rule(c, rule)) || fqlm_eval(c, toks, n, 0, out) ? -1 : 0;
    if (stats) *stats = fqlm_context_stats_json(c);
    fqlm_context_free(c);
    return rc;
}

/* the max_abs_err of the first entry of node in a stats JSON (-1: none) */
static double stat_err(const char *js, const char *node) {
    char key[64];
    snprintf(key, sizeof key, "\"node\":\"%s\"", node);
    const char *q = js ? strstr(js, key) : NULL;
    q = q ? strstr(q, "\"max_abs_err\":") : NULL;
    return q ? atof(q + 14) : -1.0;
}

/* Separate K and V cache types through the public API (fqlm_context_new_kv). */
static void check_kv_types(fqlm_model *m, const int32_t *toks, int n) {
    enum { NV = 512 };
    static float f32[NV], f16[NV], kf32_vf16[NV], kf16_vf32[NV], x[NV];
    CHECK(kv_logits(m, toks, n, 0, "-", NULL, NULL, f32, NULL) == 0, "f32 context: %s", fqlm_last_error());
    CHECK(kv_logits(m, toks, n, 1, "-", NULL, NULL, f16, NULL) == 0, "f16 context: %s", fqlm_last_error());
    CHECK(memcmp(f32, f16, sizeof f32) != 0, "F16 cache changed nothing");
    /* NULL keeps cache_f16's type */
    CHECK(kv_logits(m, toks, n, 0, NULL, NULL, NULL, x, NULL) == 0 && !memcmp(x, f32, sizeof x),
          "new_kv(NULL, NULL) differs from the F32 context");
    CHECK(kv_logits(m, toks, n, 1, NULL, NULL, NULL, x, NULL) == 0 && !memcmp(x, f16, sizeof x),
          "new_kv(NULL, NULL) with cache_f16 differs from the F16 context");
    CHECK(kv_logits(m, toks, n, 0, "f16", "f16", NULL, x, NULL) == 0 && !memcmp(x, f16, sizeof x),
          "new_kv(f16, f16) differs from the F16 context");
    CHECK(kv_logits(m, toks, n, 0, "f32", "f16", NULL, kf32_vf16, NULL) == 0, "K f32, V f16: %s", fqlm_last_error());
    CHECK(kv_logits(m, toks, n, 1, "f32", NULL, NULL, x, NULL) == 0 && !memcmp(x, kf32_vf16, sizeof x),
          "new_kv(f32, NULL) with cache_f16 differs from new_kv(f32, f16)");
    CHECK(kv_logits(m, toks, n, 0, "f16", "f32", NULL, kf16_vf32, NULL) == 0, "K f16, V f32: %s", fqlm_last_error());
    CHECK(memcmp(kf32_vf16, f32, sizeof x) && memcmp(kf32_vf16, f16, sizeof x) && memcmp(kf16_vf32, f32, sizeof x) &&
              memcmp(kf16_vf32, f16, sizeof x) && memcmp(kf32_vf16, kf16_vf32, sizeof x),
          "mixed K/V cache types give the logits of a uniform cache");
    /* which cache is F16: rounding an F16 cache's values to fp16 changes nothing */
    char *js = NULL;
    CHECK(kv_logits(m, toks, n, 0, "f16", "f32", "k_cache,v_cache=fp16", x, &js) == 0, "rule: %s", fqlm_last_error());
    CHECK(stat_err(js, "k_cache") == 0.0 && stat_err(js, "v_cache") > 0.0, "K f16 / V f32: k err %g, v err %g",
          stat_err(js, "k_cache"), stat_err(js, "v_cache"));
    free(js);
    js = NULL;
    CHECK(kv_logits(m, toks, n, 0, "f32", "f16", "k_cache,v_cache=fp16", x, &js) == 0, "rule: %s", fqlm_last_error());
    CHECK(stat_err(js, "k_cache") > 0.0 && stat_err(js, "v_cache") == 0.0, "K f32 / V f16: k err %g, v err %g",
          stat_err(js, "k_cache"), stat_err(js, "v_cache"));
    free(js);
    /* bad names */
    CHECK(kv_logits(m, toks, n, 0, "q8_0", NULL, NULL, x, NULL) == -1 &&
              strstr(fqlm_last_error(), "K cache type 'q8_0'") && strstr(fqlm_last_error(), "f32, f16"),
          "bad K type: '%s'", fqlm_last_error());
    CHECK(kv_logits(m, toks, n, 0, "f32", "bf16", NULL, x, NULL) == -1 &&
              strstr(fqlm_last_error(), "V cache type 'bf16'"),
          "bad V type: '%s'", fqlm_last_error());
}

static int stop_at_first_chunk(void *ud, int chunk, int n_chunks) {
    (void)chunk;
    (void)n_chunks;
    ++*(int *)ud;
    return 1;
}

/* fqlm_sweep_*: the selection's errors, shards that partition the combinations, reuse off
 * giving the same figures, abandoning through the callback, and the context's own rule in
 * force again afterwards. (tests/test_compare.c and python/tests check the rows against
 * compare and `fqlm sweep`.) */
static void check_sweep(fqlm_model *m) {
    static const char text[] = "Once upon a time, there was a little girl named Lily. She loved to play outside in "
                               "the park. One day, she saw a big, red ball. She wanted to play with it.";
    int32_t toks[128];
    const int n = fqlm_tokenize(m, text, toks, 128, 1);
    fqlm_context_params cp = fqlm_context_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 2;
    fqlm_context *c = fqlm_context_new(m, &cp);
    CHECK(c && fqlm_context_add_rule(c, "l_out@4=int3") == 0, "context: %s", fqlm_last_error());
    if (!c) return;
    float *before = malloc(512 * 4), *after = malloc(512 * 4);
    CHECK(fqlm_eval(c, toks, 8, 0, before) == 0, "eval");
    fqlm_sweep_params p = fqlm_sweep_default_params();
    p.nodes = "ffn_nrm";
    p.formats = "bf16";
    CHECK(fqlm_sweep_new(c, toks, n, &p) == NULL && strstr(fqlm_last_error(), "unknown node 'ffn_nrm'"),
          "bad node: '%s'", fqlm_last_error());
    p.nodes = "ffn_norm";
    p.layers = "3-1";
    CHECK(fqlm_sweep_new(c, toks, n, &p) == NULL && strstr(fqlm_last_error(), "runs backwards"), "bad layers: '%s'",
          fqlm_last_error());
    p.layers = "1,3";
    p.formats = "bf16,nosuch";
    CHECK(fqlm_sweep_new(c, toks, n, &p) == NULL && strstr(fqlm_last_error(), "formats: "), "bad format: '%s'",
          fqlm_last_error());
    p.formats = "int4,fp8_e4m3";
    p.nodes = "ffn_norm,result_norm";
    p.chunk = 16;
    fqlm_sweep *s = fqlm_sweep_new(c, toks, n, &p);
    CHECK(s && fqlm_sweep_n_combos(s) == 2 * (2 + 1) && fqlm_sweep_n_chunks(s) > 1, "sweep: %s",
          s ? "" : fqlm_last_error());
    if (!s) goto out;
    const char *node, *fmt;
    int layer, first;
    CHECK(fqlm_sweep_combo(s, 1, &node, &layer, &fmt, &first) == 0 && !strcmp(node, "ffn_norm") && layer == 3 &&
              !strcmp(fmt, "int4") && first == 3,
          "combination 1: %s@%d=%s from %d", node, layer, fmt, first);
    CHECK(fqlm_sweep_combo(s, 6, &node, &layer, &fmt, &first) == -1, "combination past the end");
    int calls = 0;
    fqlm_sweep_row r0, r1;
    CHECK(fqlm_sweep_run(s, 0, &r0, stop_at_first_chunk, &calls) == 1 && calls == 1, "abandoned run: %d calls", calls);
    CHECK(fqlm_sweep_run(s, 1, &r0, NULL, NULL) == 0 && r0.mean_kld > 0 && r0.applications > 0 &&
              r0.positions == fqlm_sweep_n_tokens(s) && r0.first_layer == 3,
          "run: %s", fqlm_last_error());
    /* shards partition the combinations */
    int total = 0;
    for (int i = 0; i < 4; i++) {
        fqlm_sweep_params q = p;
        q.shard_index = i;
        q.shard_count = 4;
        fqlm_sweep *sh = fqlm_sweep_new(c, toks, n, &q);
        total += sh ? fqlm_sweep_n_combos(sh) : 100;
        fqlm_sweep_free(sh);
    }
    CHECK(total == 6, "4 shards hold %d combinations, not 6", total);
    /* without reuse: every figure the same */
    fqlm_sweep_params q = p;
    q.reuse = 0;
    fqlm_sweep *s2 = fqlm_sweep_new(c, toks, n, &q);
    CHECK(s2 && fqlm_sweep_run(s2, 1, &r1, NULL, NULL) == 0 && r1.first_layer == 0, "no reuse: %s", fqlm_last_error());
    CHECK(r1.mean_kld == r0.mean_kld && r1.kld_p99 == r0.kld_p99 && r1.top1_agree == r0.top1_agree &&
              r1.ppl_ratio == r0.ppl_ratio && r1.max_abs_logit_diff == r0.max_abs_logit_diff,
          "reuse changed the figures: %.17g vs %.17g", r0.mean_kld, r1.mean_kld);
    fqlm_sweep_free(s2);
    fqlm_sweep_free(s);
    /* the context's rule acts again */
    CHECK(fqlm_eval(c, toks, 8, 0, after) == 0 && !memcmp(before, after, 512 * 4), "the context changed after a sweep");
out:
    free(before);
    free(after);
    fqlm_context_free(c);
}

int main(void) {
    fqlm_model *bad = fqlm_model_load("tests/data/no-such-model.gguf");
    CHECK(bad == NULL && strstr(fqlm_last_error(), "no-such-model.gguf"), "missing model: '%s'", fqlm_last_error());
    fqlm_model *m = fqlm_model_load("models/stories260K.gguf");
    CHECK(m != NULL, "load: %s", fqlm_last_error());
    if (!m) return TEST_END();
    CHECK(fqlm_model_n_vocab(m) == 512 && fqlm_model_n_layer(m) == 5 && fqlm_model_n_embd(m) == 64, "hparams");
    int32_t toks[64];
    int n = fqlm_tokenize(m, "Once upon a time", toks, 64, 1);
    CHECK(n == 5 && toks[0] == 1 && toks[1] == 403 && toks[4] == 378, "tokens (n=%d)", n);
    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    fqlm_context *c = fqlm_context_new(m, &p);
    CHECK(c != NULL, "context: %s", fqlm_last_error());
    float *a = malloc(512 * 4), *b = malloc(512 * 4);
    CHECK(fqlm_eval(c, toks, n, 0, a) == 0, "eval: %s", fqlm_last_error());
    /* greedy next token of the golden continuation: ',' (432) */
    int best = 0;
    for (int i = 1; i < 512; i++)
        if (a[i] > a[best]) best = i;
    CHECK(best == 432, "greedy token %d, expected 432", best);
    CHECK(fqlm_context_add_rule(c, "ffn_norm@9=bf16") == -1 && strstr(fqlm_last_error(), "layers 0-4"),
          "bad rule error: '%s'", fqlm_last_error());
    CHECK(fqlm_context_add_rule(c, "ffn_norm@*=fp8_e4m3") == 0, "rule: %s", fqlm_last_error());
    CHECK(fqlm_eval(c, toks, n, 0, b) == 0, "eval with rule");
    double d = 0;
    for (int i = 0; i < 512; i++) d = fmax(d, fabs(a[i] - b[i]));
    CHECK(d > 0, "rule changed nothing");
    char *js = fqlm_context_stats_json(c);
    CHECK(js && strstr(js, "\"applications\":1"), "stats: %s", js ? js : "(null)");
    free(js);
    CHECK(fqlm_eval(c, toks, n, 60, b) == -1 && strstr(fqlm_last_error(), "context"), "overflow: '%s'",
          fqlm_last_error());
    free(a);
    free(b);
    fqlm_context_free(c);
    check_kv_types(m, toks, n);
    check_sweep(m);
    fqlm_model_free(m);
    return TEST_END();
}
