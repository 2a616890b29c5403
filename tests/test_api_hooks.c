/* test_api_hooks.c - the public API's user hooks, node list, scoring, formats and
 * detokenizer (include/fqlm.h, the block the Python package uses). */
#include <math.h>
#include <stdlib.h>

#include "fqlm.h"
#include "harness.h"

typedef struct {
    int calls[8];
    int fail_layer;     /* return nonzero at this layer (-2: never) */
    int bf16;           /* round to bf16 (nearest even) in place */
    float *keep;        /* copy of the values of keep_layer */
    int keep_layer;
    int64_t rows, cols;
} hook_state;

static int hook(void *ud, const char *node, int layer, float *x, int64_t rows, int64_t cols) {
    hook_state *s = ud;
    if (strcmp(node, "ffn_norm") || layer < 0 || layer > 7) return 99;
    s->calls[layer]++;
    s->rows = rows;
    s->cols = cols;
    if (layer == s->keep_layer && s->keep) memcpy(s->keep, x, (size_t)(rows * cols) * sizeof *x);
    if (layer == s->fail_layer) return 7;
    if (s->bf16)
        for (int64_t i = 0; i < rows * cols; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
            memcpy(&x[i], &u, 4);
        }
    return 0;
}

int main(void) {
    CHECK(!strcmp(fqlm_version(), FQLM_VERSION), "version %s", fqlm_version());
    fqlm_model *m = fqlm_model_load("models/stories260K.gguf");
    CHECK(m != NULL, "load: %s", fqlm_last_error());
    if (!m) return TEST_END();
    const int V = fqlm_model_n_vocab(m);

    /* nodes */
    int nn = fqlm_model_n_nodes(m), has_layer = -1;
    int64_t cols = 0;
    CHECK(nn > 10, "%d nodes", nn);
    CHECK(!strcmp(fqlm_model_node(m, 0, &has_layer, &cols), "inp_embd") && !has_layer && cols == 64, "node 0");
    CHECK(!strcmp(fqlm_model_node(m, nn - 1, &has_layer, &cols), "result_output") && cols == V, "last node");
    CHECK(fqlm_model_node(m, nn, NULL, NULL) == NULL && fqlm_model_node(m, -1, NULL, NULL) == NULL, "past the end");
    int found = 0;
    for (int i = 0; i < nn; i++)
        if (!strcmp(fqlm_model_node(m, i, &has_layer, &cols), "ffn_norm")) found = has_layer && cols == 64;
    CHECK(found, "ffn_norm listed per layer with 64 values");

    /* detokenize */
    int32_t toks[64];
    const char *text = "Once upon a time, there was a little girl.";
    int n = fqlm_tokenize(m, text, toks, 64, 1);
    char buf[128], small[8];
    int len = fqlm_detokenize(m, toks, n, buf, sizeof buf);
    CHECK(len > 0 && (size_t)len == strlen(buf) && strstr(buf, text), "detokenize '%s'", buf);
    CHECK(fqlm_detokenize(m, toks, n, small, sizeof small) == len && strlen(small) == 7, "cut text");
    int32_t badtok[2] = {1, 100000};
    CHECK(fqlm_detokenize(m, badtok, 2, buf, sizeof buf) == -1 && strstr(fqlm_last_error(), "100000"),
          "bad id: '%s'", fqlm_last_error());

    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    fqlm_context *base = fqlm_context_new(m, &p), *c = fqlm_context_new(m, &p);
    float *a = malloc((size_t)n * V * 4), *b = malloc((size_t)n * V * 4);
    CHECK(fqlm_eval_all(base, toks, n, 0, a) == 0, "eval");

    /* errors of set_hook */
    hook_state s = {.fail_layer = -2, .keep_layer = -1};
    CHECK(fqlm_context_set_hook(c, "ffn_nrm@*", hook, &s) == -1 && strstr(fqlm_last_error(), "ffn_nrm"),
          "bad selector: '%s'", fqlm_last_error());
    CHECK(fqlm_context_set_hook(c, "ffn_norm@7", hook, &s) == -1 && strstr(fqlm_last_error(), "0-4"),
          "bad layer: '%s'", fqlm_last_error());
    CHECK(fqlm_context_set_hook(c, "ffn_norm", NULL, &s) == -1, "NULL hook");

    /* a bf16 hook gives what the bf16 rule gives */
    fqlm_context *r = fqlm_context_new(m, &p);
    CHECK(fqlm_context_add_rule(r, "ffn_norm@*=bf16") == 0, "rule");
    s.bf16 = 1;
    CHECK(fqlm_context_set_hook(c, "ffn_norm@*", hook, &s) == 0, "set_hook: %s", fqlm_last_error());
    CHECK(fqlm_eval_all(c, toks, n, 0, b) == 0, "eval with hook: %s", fqlm_last_error());
    CHECK(s.calls[0] == 1 && s.calls[4] == 1 && s.rows == n && s.cols == 64, "hook calls %d %d rows %lld",
          s.calls[0], s.calls[4], (long long)s.rows);
    float *rb = malloc((size_t)n * V * 4);
    CHECK(fqlm_eval_all(r, toks, n, 0, rb) == 0, "eval with rule");
    CHECK(!memcmp(rb, b, (size_t)n * V * 4), "bf16 hook and bf16 rule differ");
    CHECK(memcmp(a, b, (size_t)n * V * 4), "bf16 changed nothing");

    /* scoring: the hook context against the baseline equals the rule's */
    fqlm_score sh, sr, s0;
    CHECK(fqlm_score_tokens(base, c, toks, n, 0, &sh) == 0, "score: %s", fqlm_last_error());
    CHECK(fqlm_score_tokens(base, r, toks, n, 0, &sr) == 0, "score rule");
    CHECK(sh.n_pos == n && sh.mean_kld > 0 && sh.mean_kld == sr.mean_kld && sh.top1_agree == sr.top1_agree &&
          sh.ppl_fq == sr.ppl_fq, "kld %g vs %g", sh.mean_kld, sr.mean_kld);
    /* chunks of 4: the first takes 4 tokens, each later one BOS and 3 more */
    const int nch = 1 + (n - 4 + 2) / 3;
    CHECK(fqlm_score_tokens(base, base, toks, n, 4, &s0) == 0 && s0.mean_kld == 0 && s0.top1_agree == 1 &&
          s0.n_chunks == nch && s0.n_pos == n + nch - 1, "self score: kld %g chunks %lld pos %lld", s0.mean_kld,
          (long long)s0.n_chunks, (long long)s0.n_pos);
    CHECK(fqlm_score_tokens(base, c, toks, 1, 0, &s0) == -1, "one BOS token: nothing to score");

    /* a hook that fails stops the eval with an error naming the node; no later hook runs;
     * the context stays usable */
    fqlm_context_clear_hooks(c);
    hook_state f = {.fail_layer = 1, .keep_layer = -1};
    CHECK(fqlm_context_set_hook(c, "ffn_norm@*", hook, &f) == 0, "set failing hook");
    memset(b, 0xAB, (size_t)n * V * 4);
    CHECK(fqlm_eval_all(c, toks, n, 0, b) == -1 && strstr(fqlm_last_error(), "ffn_norm-1") &&
          strstr(fqlm_last_error(), "7"), "failing hook: '%s'", fqlm_last_error());
    {   /* the pass stopped in layer 1: it never reached the output, so no logits were written */
        size_t untouched = 0;
        for (size_t i = 0; i < (size_t)n * V * 4; i++) untouched += ((unsigned char *)b)[i] == 0xAB;
        CHECK(untouched == (size_t)n * V * 4, "a failed hook's pass wrote logits (%zu of %zu bytes untouched)",
              untouched, (size_t)n * V * 4);
    }
    CHECK(f.calls[0] == 1 && f.calls[1] == 1 && f.calls[2] == 0 && f.calls[4] == 0, "calls after the failure");
    CHECK(fqlm_score_tokens(base, c, toks, n, 0, &s0) == -1 && strstr(fqlm_last_error(), "ffn_norm-1"),
          "score with a failing hook: '%s'", fqlm_last_error());
    fqlm_context_clear_hooks(c);
    CHECK(fqlm_eval_all(c, toks, n, 0, b) == 0 && !memcmp(a, b, (size_t)n * V * 4), "usable after the failure");

    /* hooks see the values after the rules; fqlm_quantize rounds as the rule did */
    float *raw = malloc((size_t)n * 64 * 4), *got = malloc((size_t)n * 64 * 4);
    hook_state k1 = {.fail_layer = -2, .keep = raw, .keep_layer = 2};
    CHECK(fqlm_context_set_hook(c, "ffn_norm@2", hook, &k1) == 0 && fqlm_eval(c, toks, n, 0, NULL) == 0, "capture");
    hook_state k2 = {.fail_layer = -2, .keep = got, .keep_layer = 2};
    /* two rules on the node act in order (and nothing before layer 2 changes its input) */
    fqlm_context *q = fqlm_context_new(m, &p);
    CHECK(fqlm_context_add_rule(q, "ffn_norm@2=bf16") == 0 && fqlm_context_add_rule(q, "ffn_norm@2=fp4_e2m1") == 0,
          "rules on layer 2");
    CHECK(fqlm_context_set_hook(q, "ffn_norm@2", hook, &k2) == 0 && fqlm_eval(q, toks, n, 0, NULL) == 0, "capture 2");
    fqlm_context_free(q);
    CHECK(fqlm_quantize("bf16", raw, n, 64, 0) == 0 && fqlm_quantize("fp4_e2m1", raw, n, 64, 0) == 0, "quantize");
    CHECK(!memcmp(raw, got, (size_t)n * 64 * 4), "fqlm_quantize differs from the rule");
    CHECK(fqlm_quantize("fp9", raw, 1, 1, 0) == -1 && strstr(fqlm_last_error(), "fp9"), "bad format: '%s'",
          fqlm_last_error());
    CHECK(fqlm_format_list(0) && fqlm_format_list(-1) == NULL, "format list");
    fqlm_context_reset_stats(r);
    char *js = fqlm_context_stats_json(r);
    CHECK(js && strstr(js, "\"applications\":0") && !strstr(js, "\"applications\":1"), "reset stats: %s", js);
    free(js);

    free(raw);
    free(got);
    free(a);
    free(b);
    free(rb);
    fqlm_context_free(r);
    fqlm_context_free(c);
    fqlm_context_free(base);
    fqlm_model_free(m);
    return TEST_END();
}
