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
    fqlm_model_free(m);
    return TEST_END();
}
