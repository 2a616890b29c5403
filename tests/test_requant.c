/* test_requant.c - real weight types per tensor (issue 17): the public API that lists a
 * model's weight matrices, states a type's bits and whether rows fit it, and re-encodes
 * named weights in memory (fqlm_model_requantize).
 *
 * - requantizing every weight to one type gives, bit for bit, the logits of the file
 *   `fqlm quantize --pure` writes in that type (32-block types on stories260K-ff192, whose
 *   rows are 64 and 192; K-quants on synth-l2-e256);
 * - a requantized handle leaves the source model untouched, and an empty list gives the
 *   source's logits;
 * - bits per weight, fits, and the errors: unknown tensor / type, a norm, rows not whole
 *   blocks (naming the fallback and the types that fit), a tensor given twice. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "fqlm.h"
#include "harness.h"
#include "quantize.h"

#define MODELS "tests/data/models"
#define FF192 MODELS "/stories260K-ff192-f32.gguf"
#define E256 MODELS "/synth-l2-e256-f32.gguf"

static const char *tmp_path(const char *tag) {
    static char p[16][256];
    static int k;
    char *s = p[k++ % 16];
    snprintf(s, 256, "/tmp/fqlm_test_requant_%ld_%s.gguf", (long)getpid(), tag);
    return s;
}

/* every position's logits of a fixed prompt (n x n_vocab floats, malloc'd), NULL on error */
static float *logits_of(fqlm_model *m, int *n_out) {
    static const char *text = "Once upon a time, there was a little girl named Lily. She liked to play.";
    int32_t toks[64];
    int n = fqlm_tokenize(m, text, toks, 64, 1);
    if (n <= 0 || n > 64) return NULL;
    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    fqlm_context *c = fqlm_context_new(m, &p);
    if (!c) return NULL;
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)fqlm_model_n_vocab(m));
    if (out && fqlm_eval_all(c, toks, n, 0, out)) {
        free(out);
        out = NULL;
    }
    fqlm_context_free(c);
    *n_out = n * fqlm_model_n_vocab(m);
    return out;
}

static int same_bits(const float *a, const float *b, int n) { return a && b && !memcmp(a, b, sizeof(float) * (size_t)n); }

/* every weight matrix of m to type: the names and a type list */
static int all_weights(const fqlm_model *m, const char *type, const char **names, const char **types, int cap) {
    int n = fqlm_model_n_weights(m);
    for (int i = 0; i < n && i < cap; i++) {
        names[i] = fqlm_model_weight(m, i, NULL, NULL, NULL);
        types[i] = type;
    }
    return n < cap ? n : cap;
}

/* requantizing every weight of src to type equals the file fq_quantize_file writes (--pure) */
static void check_uniform(const char *src, const char *type) {
    const char *out = tmp_path(type);
    fq_quantize_params qp = {.type = type, .pure = 1, .n_threads = 2};
    fq_err e;
    CHECK(fq_quantize_file(src, out, &qp, NULL, &e) == 0, "quantize %s: %s", type, e.msg);
    fqlm_model *f = fqlm_model_load(out), *m = fqlm_model_load(src);
    CHECK(f && m, "load: %s", fqlm_last_error());
    if (!f || !m) goto out;
    const char *names[64], *types[64];
    int n = all_weights(m, type, names, types, 64);
    fqlm_model *r = fqlm_model_requantize(m, names, types, n, 1);
    CHECK(r != NULL, "requantize to %s: %s", type, fqlm_last_error());
    int nf = 0, nr = 0, nm = 0;
    float *lf = logits_of(f, &nf), *lr = r ? logits_of(r, &nr) : NULL, *lm = logits_of(m, &nm);
    CHECK(lf && lr && nf == nr && same_bits(lf, lr, nf), "%s %s: requantized logits are not the file's bits", src, type);
    CHECK(lm && !same_bits(lf, lm, nf), "%s %s: the quantized file gives the F32 logits (test cannot fail)", src, type);
    /* the handle's types are the file's */
    for (int i = 0; r && i < n; i++) {
        const char *tr = NULL, *tf = NULL;
        fqlm_model_weight(r, i, &tr, NULL, NULL);
        fqlm_model_weight(f, i, &tf, NULL, NULL);
        CHECK(tr && tf && !strcmp(tr, tf), "%s: %s vs %s", names[i], tr, tf);
    }
    /* the source model is unchanged */
    int nm2 = 0;
    float *lm2 = logits_of(m, &nm2);
    CHECK(same_bits(lm, lm2, nm), "requantize changed the source model");
    free(lf), free(lr), free(lm), free(lm2);
    fqlm_model_free(r);
out:
    fqlm_model_free(f), fqlm_model_free(m);
    unlink(out);
}

static void check_api(void) {
    CHECK(fqlm_weight_type_bpw("q4_k") == 4.5, "q4_k bpw %g", fqlm_weight_type_bpw("q4_k"));
    CHECK(fqlm_weight_type_bpw("Q6_K") == 6.5625, "q6_k bpw");
    CHECK(fqlm_weight_type_bpw("q8_0") == 8.5, "q8_0 bpw");
    CHECK(fqlm_weight_type_bpw("q4_0") == 4.5 && fqlm_weight_type_bpw("q4_1") == 5.0, "q4_0/q4_1 bpw");
    CHECK(fqlm_weight_type_bpw("q5_0") == 5.5 && fqlm_weight_type_bpw("q5_1") == 6.0, "q5 bpw");
    CHECK(fqlm_weight_type_bpw("q2_k") == 2.625 && fqlm_weight_type_bpw("q3_k") == 3.4375, "q2/q3 bpw");
    CHECK(fqlm_weight_type_bpw("f16") == 16 && fqlm_weight_type_bpw("bf16") == 16 && fqlm_weight_type_bpw("f32") == 32, "float bpw");
    CHECK(fqlm_weight_type_bpw("q9_9") < 0 && strstr(fqlm_last_error(), "unknown weight type 'q9_9'"), "%s", fqlm_last_error());
    CHECK(fqlm_weight_type_bpw("q8_k") < 0, "q8_k is no weight type");
    int n = 0;
    while (fqlm_weight_type_list(n)) n++;
    CHECK(n == 13, "%d weight types", n);
    for (int i = 1; i < n; i++)
        CHECK(fqlm_weight_type_bpw(fqlm_weight_type_list(i)) <= fqlm_weight_type_bpw(fqlm_weight_type_list(i - 1)),
              "list not most bits first at %s", fqlm_weight_type_list(i));
    CHECK(fqlm_weight_type_fits("q4_k", 256) == 1 && fqlm_weight_type_fits("q4_k", 768) == 1, "q4_k 256");
    CHECK(fqlm_weight_type_fits("q4_k", 192) == 0, "q4_k 192");
    CHECK(strstr(fqlm_last_error(), "q5_0 instead") && strstr(fqlm_last_error(), "q4_0"), "%s", fqlm_last_error());
    CHECK(fqlm_weight_type_fits("q4_0", 192) == 1 && fqlm_weight_type_fits("q4_0", 48) == 0, "q4_0");
    CHECK(fqlm_weight_type_fits("f16", 7) == 1, "f16 any length");
    CHECK(fqlm_weight_type_fits("nope", 256) == -1, "unknown");
}

static void check_errors(void) {
    fqlm_model *m = fqlm_model_load(FF192);
    CHECK(m != NULL, "load: %s", fqlm_last_error());
    if (!m) return;
    /* the weight list: token_embd, 7 per layer, output */
    CHECK(fqlm_model_n_weights(m) == 1 + 5 * 7 + 1, "%d weights", fqlm_model_n_weights(m));
    const char *t = NULL;
    int64_t ne = 0, rl = 0;
    const char *nm = fqlm_model_weight(m, 0, &t, &ne, &rl);
    CHECK(nm && !strcmp(nm, "token_embd.weight") && !strcmp(t, "f32") && ne == 64 * 512 && rl == 64, "weight 0: %s", nm);
    nm = fqlm_model_weight(m, fqlm_model_n_weights(m) - 1, NULL, NULL, &rl);
    CHECK(nm && !strcmp(nm, "output.weight"), "last weight %s", nm);
    CHECK(fqlm_model_weight(m, fqlm_model_n_weights(m), NULL, NULL, NULL) == NULL, "past the end");
    struct {
        const char *tensor, *type, *msg;
    } bad[] = {
        {"blk.9.attn_q.weight", "q8_0", "'blk.9.attn_q.weight' is not a weight matrix"},
        {"blk.0.attn_norm.weight", "q8_0", "'blk.0.attn_norm.weight' is not a weight matrix"},
        {"blk.0.attn_q.weight", "q4_z", "unknown weight type 'q4_z'"},
        {"blk.0.ffn_down.weight", "q4_k", "rows of 192 elements are not whole q4_k blocks (256); llama-quantize would write q5_0"},
        {"blk.0.attn_q.weight", "q6_k", "rows of 64 elements are not whole q6_k blocks (256); llama-quantize would write q8_0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fqlm_model *r = fqlm_model_requantize(m, &bad[i].tensor, &bad[i].type, 1, 1);
        CHECK(!r && strstr(fqlm_last_error(), bad[i].msg), "%s=%s: %s", bad[i].tensor, bad[i].type, fqlm_last_error());
        fqlm_model_free(r);
    }
    const char *two[] = {"blk.1.ffn_up.weight", "blk.1.ffn_up.weight"}, *ty[] = {"q8_0", "q4_0"};
    fqlm_model *r = fqlm_model_requantize(m, two, ty, 2, 1);
    CHECK(!r && strstr(fqlm_last_error(), "given twice"), "%s", fqlm_last_error());
    fqlm_model_free(r);
    /* no pairs: the same logits as the source */
    r = fqlm_model_requantize(m, NULL, NULL, 0, 1);
    int n1 = 0, n2 = 0;
    float *a = logits_of(m, &n1), *b = r ? logits_of(r, &n2) : NULL;
    CHECK(r && same_bits(a, b, n1), "empty requantize changes logits");
    free(a), free(b);
    fqlm_model_free(r);
    fqlm_model_free(m);
}

int main(void) {
    check_api();
    check_errors();
    check_uniform(FF192, "q8_0");
    check_uniform(FF192, "q4_1");
    check_uniform(E256, "q4_k");
    check_uniform(E256, "q6_k");
    return TEST_END();
}
