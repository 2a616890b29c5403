/* test_api.c - the public header: load, tokenize, eval, rules, errors. */
#include <math.h>
#include <stdlib.h>

#include "fqlm.h"
#include "harness.h"

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
    fqlm_model_free(m);
    return TEST_END();
}
