/* test_requant.c - real weight types per tensor (issue 17): the public API that lists a
 * model's weight matrices, states a type's bits and whether rows fit it, and re-encodes
 * named weights in memory (fqlm_model_requantize).
 *
 * - requantizing every weight to one type gives, bit for bit, the logits of the file
 *   `fqlm quantize --pure` writes in that type (32-block types on stories260K-ff192, whose
 *   rows are 64 and 192; K-quants on synth-l2-e256);
 * - a requantized handle leaves the source model untouched, and an empty list gives the
 *   source's logits;
 * - `fqlm quantize --plan` (fq_quantize_file with a plan): the output's tensor types are
 *   exactly the plan's (the others IN's, or the default TYPE's), every metadata key of IN is
 *   kept with its value, general.file_type as llama-quantize / llama.cpp's loader give it;
 *   the in-memory requantization with the output's types gives its logits bit for bit, so
 *   the KL measured by fqlm_score_tokens is the same number; plan errors (activation
 *   entries, unknown tensor, rows that do not fit, a tensor twice, not JSON);
 * - the CLI: --plan, --tensor-type (llama-quantize's regex search, first match wins, its
 *   fallback), --print-llama-quantize, compare --fq-model FILE == compare --weight-plan;
 * - bits per weight, fits, and the errors: unknown tensor / type, a norm, rows not whole
 *   blocks (naming the fallback and the types that fit), a tensor given twice. */
#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fqlm.h"
#include "gguf.h"
#include "harness.h"
#include "quantize.h"
#include "qtypes.h"
#include "requant.h"
#include "testutil.h"

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

/* ---- item 2: fqlm quantize --plan ------------------------------------------------------ */

static const char *write_text(const char *tag, const char *text) {
    const char *p = tmp_path(tag);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

/* every key of a in b with the same type and value, but file_type / quantization_version */
static void check_metadata(const fq_gguf *a, const fq_gguf *b, uint32_t want_ftype) {
    int missing = 0, differ = 0;
    for (uint64_t i = 0; i < a->n_kv; i++) {
        const fq_gguf_kv *x = &a->kv[i], *y = fq_gguf_find(b, x->key);
        if (!strcmp(x->key, "general.file_type") || !strcmp(x->key, "general.quantization_version")) continue;
        if (!y) {
            missing++;
            continue;
        }
        int same = x->type == y->type && x->u64 == y->u64 && x->str.len == y->str.len &&
                   (!x->str.len || !memcmp(x->str.ptr, y->str.ptr, x->str.len)) && x->arr_n == y->arr_n &&
                   x->arr_type == y->arr_type;
        for (uint64_t k = 0; same && x->strs && k < x->arr_n; k++)
            same = x->strs[k].len == y->strs[k].len && !memcmp(x->strs[k].ptr, y->strs[k].ptr, x->strs[k].len);
        differ += !same;
    }
    CHECK(!missing && !differ && b->n_kv == a->n_kv + !fq_gguf_find(a, "general.file_type") +
                                               !fq_gguf_find(a, "general.quantization_version"),
          "metadata: %d keys missing, %d differ (%llu vs %llu keys)", missing, differ, (unsigned long long)a->n_kv,
          (unsigned long long)b->n_kv);
    uint32_t ft = 0, qv = 0;
    CHECK(fq_gguf_get_u32(b, "general.file_type", &ft, NULL) == 0 && ft == want_ftype, "file_type %u, want %u", ft,
          want_ftype);
    CHECK(fq_gguf_get_u32(b, "general.quantization_version", &qv, NULL) == 0 && qv == 2, "quantization_version");
}

/* mean KL of fq against the base model over the test prompt, via fqlm_score_tokens */
static double kl_of(fqlm_model *base, fqlm_model *fq) {
    int32_t toks[64];
    int n = fqlm_tokenize(base, "One day a little dog found a big red ball in the garden. He was happy.", toks, 64, 1);
    fqlm_context_params p = fqlm_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    fqlm_context *a = fqlm_context_new(base, &p), *b = fqlm_context_new(fq, &p);
    fqlm_score s;
    double r = a && b && fqlm_score_tokens(a, b, toks, n, 0, &s) == 0 ? s.mean_kld : NAN;
    fqlm_context_free(a), fqlm_context_free(b);
    return r;
}

/* A plan (JSON text) applied by fq_quantize_file to src with default type dflt (NULL: keep):
 * the output's types are the plan's where it names a tensor and want_other(tensor) else
 * (ref: a file whose type each other tensor must have, NULL: src's); metadata kept; and
 * the requantized handle gives the file's logits bit for bit. */
static void check_plan(const char *src, const char *json, const char *dflt, const char *ref, uint32_t want_ftype) {
    const char *plan = write_text("plan.json", json), *out = tmp_path("plan_out");
    char **names = NULL;
    uint32_t *types = NULL;
    int n = 0;
    fq_err e;
    CHECK(fq_plan_read_weights(plan, &names, &types, &n, &e) == 0, "read plan: %s", e.msg);
    fq_quantize_params qp = {.type = dflt, .n_threads = 2, .tt_names = (const char *const *)names, .tt_types = types,
                             .n_tt = n};
    CHECK(fq_quantize_file(src, out, &qp, NULL, &e) == 0, "quantize --plan: %s", e.msg);
    fq_gguf gi, go, gr;
    int oi = fq_gguf_open(&gi, src, &e), oo = fq_gguf_open(&go, out, &e), orf = ref ? fq_gguf_open(&gr, ref, &e) : 0;
    CHECK(!oi && !oo && !orf, "open: %s", e.msg);
    if (oi || oo || orf) goto out;
    CHECK(go.n_tensors == gi.n_tensors, "tensor count");
    int n_named = 0, bad = 0;
    for (uint64_t i = 0; i < go.n_tensors; i++) {
        const fq_gguf_tensor *t = &go.tensors[i];
        uint32_t want = ref ? fq_gguf_find_tensor(&gr, t->name)->type : fq_gguf_find_tensor(&gi, t->name)->type;
        for (int k = 0; k < n; k++)
            if (!strcmp(names[k], t->name)) want = types[k], n_named++;
        if (t->type != want) {
            bad++;
            CHECK(0, "%s: type %s, want %s", t->name, fq_type_name(t->type), fq_type_name(want));
        }
    }
    CHECK(n_named == n && !bad, "%d of %d plan tensors found, %d wrong types", n_named, n, bad);
    check_metadata(&gi, &go, want_ftype);
    /* the in-memory twin: every weight to the output's type */
    fqlm_model *m = fqlm_model_load(src), *f = fqlm_model_load(out);
    CHECK(m && f, "load: %s", fqlm_last_error());
    if (m && f) {
        const char *wn[64], *wt[64];
        int nw = fqlm_model_n_weights(f);
        for (int i = 0; i < nw && i < 64; i++) wn[i] = fqlm_model_weight(f, i, &wt[i], NULL, NULL);
        fqlm_model *r = fqlm_model_requantize(m, wn, wt, nw < 64 ? nw : 64, 2);
        CHECK(r != NULL, "requantize: %s", fqlm_last_error());
        int nf = 0, nr = 0;
        float *lf = logits_of(f, &nf), *lr = r ? logits_of(r, &nr) : NULL;
        CHECK(nf == nr && same_bits(lf, lr, nf), "plan file and in-memory requantization differ in logits");
        double kf = kl_of(m, f), kr = r ? kl_of(m, r) : NAN;
        CHECK(kf == kr && kf > 0, "KL of the file %.9g, in memory %.9g", kf, kr);
        if (!dflt) { /* the plan's pairs alone, the others untouched: the same model */
            const char *pt[16];
            for (int k = 0; k < n && k < 16; k++) pt[k] = fq_wtype_lname(types[k]);
            fqlm_model *r2 = fqlm_model_requantize(m, (const char *const *)names, pt, n < 16 ? n : 16, 1);
            int n2 = 0;
            float *l2 = r2 ? logits_of(r2, &n2) : NULL;
            CHECK(r2 && same_bits(lf, l2, nf), "the plan's pairs in memory differ from the file: %s", fqlm_last_error());
            free(l2);
            fqlm_model_free(r2);
        }
        free(lf), free(lr);
        fqlm_model_free(r);
    }
    fqlm_model_free(m), fqlm_model_free(f);
out:
    if (!oi) fq_gguf_close(&gi);
    if (!oo) fq_gguf_close(&go);
    if (ref && !orf) fq_gguf_close(&gr);
    fq_plan_free(names, types, n);
    unlink(out);
    unlink(plan);
}

static void check_plan_errors(void) {
    struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"assignment\": [{\"node\": \"ffn_norm\", \"layer\": 2, \"format\": \"fp8_e4m3\"}]}",
         "is an activation rule (node 'ffn_norm', format fp8_e4m3)"},
        {"{\"assignment\": [{\"tensor\": \"blk.0.attn_q.weight\", \"type\": \"q4_x\"}]}", "unknown weight type 'q4_x'"},
        {"{\"assignment\": [{\"tensor\": \"blk.0.attn_q.weight\"}]}", "needs \"tensor\" and \"type\" strings"},
        {"{\"assignment\": {}}", "no \"assignment\" array"},
        {"{\"assignment\": [1]}", "entry 1 (line 1) is a number"},
        {"{\"assignment\": [", "line 1, column 17: unexpected end"},
        {"[1, 2] x", "text after the document"},
        /* JSON text is UTF-8: a byte that begins no UTF-8 sequence is refused where it stands */
        {"{\"assignment\": [{\"tensor\": \"blk.0\xff\"}]}", "line 1, column 34: invalid UTF-8 in a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_text("bad.json", bad[i].json);
        char **names;
        uint32_t *types;
        int n;
        fq_err e = {{0}};
        CHECK(fq_plan_read_weights(p, &names, &types, &n, &e) == -1 && strstr(e.msg, bad[i].msg), "%s: %s",
              bad[i].json, e.msg);
        unlink(p);
    }
    /* tensor-level errors come from fq_quantize_file */
    struct {
        const char *tensor;
        uint32_t type;
        const char *msg;
    } tb[] = {
        {"blk.7.attn_q.weight", FQ_TYPE_Q8_0, "tensor 'blk.7.attn_q.weight' (plan entry 1) is not in"},
        {"blk.0.ffn_norm.weight", FQ_TYPE_Q8_0, "is not a weight matrix llama-quantize can change"},
        {"blk.0.ffn_down.weight", FQ_TYPE_Q4_K, "rows of 192 elements are not whole q4_k blocks (256); llama-quantize would write q5_0"},
    };
    for (size_t i = 0; i < sizeof tb / sizeof tb[0]; i++) {
        fq_quantize_params qp = {.n_threads = 1, .tt_names = &tb[i].tensor, .tt_types = &tb[i].type, .n_tt = 1};
        fq_err e = {{0}};
        const char *out = tmp_path("err");
        CHECK(fq_quantize_file(FF192, out, &qp, NULL, &e) == -1 && strstr(e.msg, tb[i].msg), "%s: %s", tb[i].tensor,
              e.msg);
        CHECK(access(out, F_OK) != 0, "a failed plan left %s", out);
    }
    const char *two[] = {"blk.0.attn_q.weight", "blk.0.attn_q.weight"};
    uint32_t tt[] = {FQ_TYPE_Q8_0, FQ_TYPE_Q4_0};
    fq_quantize_params qp = {.n_threads = 1, .tt_names = two, .tt_types = tt, .n_tt = 2};
    fq_err e = {{0}};
    CHECK(fq_quantize_file(FF192, tmp_path("err2"), &qp, NULL, &e) == -1 && strstr(e.msg, "given twice (plan entries 1 and 2)"),
          "%s", e.msg);
}

/* ---- the CLI ---------------------------------------------------------------------------- */

static int sh(const char *args, char **out) {
    const char *b = getenv("FQLM_BIN");
    char cmd[8192], o[300];
    snprintf(o, sizeof o, "/tmp/fqlm_test_requant_%ld_stdout", (long)getpid());
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>&1", b ? b : "build/fqlm", args, o);
    int st = system(cmd);
    if (out) *out = tu_read(o, NULL);
    unlink(o);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static uint32_t type_in(const char *path, const char *tensor) {
    fq_gguf g;
    fq_err e;
    if (fq_gguf_open(&g, path, &e)) return FQ_TYPE_COUNT;
    const fq_gguf_tensor *t = fq_gguf_find_tensor(&g, tensor);
    uint32_t r = t ? t->type : FQ_TYPE_COUNT;
    fq_gguf_close(&g);
    return r;
}

static double json_num(const char *js, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = js ? strstr(js, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static void check_cli(void) {
    const char *plan = write_text("cli_plan.json",
                                  "{\"assignment\": [{\"tensor\": \"blk.0.attn_q.weight\", \"type\": \"q4_0\"},\n"
                                  " {\"tensor\": \"weight:blk.3.ffn_down.weight\", \"type\": \"Q8_0\"},\n"
                                  " {\"tensor\": \"token_embd.weight\", \"type\": \"q5_1\"}]}\n");
    const char *out = tmp_path("cli_out"), *txt = write_text("cli.txt", "Once upon a time there was a girl. She "
                                                                          "liked to play with her ball in the park.\n");
    char args[2048], *o = NULL;
    snprintf(args, sizeof args, "quantize -q --plan %s %s %s", plan, FF192, out);
    CHECK(sh(args, &o) == 0, "quantize --plan: %s", o);
    free(o);
    CHECK(type_in(out, "blk.0.attn_q.weight") == FQ_TYPE_Q4_0 && type_in(out, "blk.3.ffn_down.weight") == FQ_TYPE_Q8_0 &&
              type_in(out, "token_embd.weight") == FQ_TYPE_Q5_1 && type_in(out, "blk.0.attn_k.weight") == FQ_TYPE_F32,
          "plan types in the CLI's file");
    /* compare: the written file against the F32 model == the plan applied in memory */
    const char *j1 = tmp_path("c1.json"), *j2 = tmp_path("c2.json");
    snprintf(args, sizeof args, "compare -m %s -f %s -t 2 --fq-model %s --json %s", FF192, txt, out, j1);
    CHECK(sh(args, &o) == 0, "compare --fq-model: %s", o);
    free(o);
    snprintf(args, sizeof args, "compare -m %s -f %s -t 1 --weight-plan %s --json %s", FF192, txt, plan, j2);
    CHECK(sh(args, &o) == 0, "compare --weight-plan: %s", o);
    free(o);
    char *a = tu_read(j1, NULL), *b = tu_read(j2, NULL);
    double k1 = json_num(a, "mean_kld"), k2 = json_num(b, "mean_kld");
    CHECK(k1 == k2 && k1 > 0, "compare KL: file %.17g, --weight-plan %.17g", k1, k2);
    CHECK(json_num(a, "kld_p99") == json_num(b, "kld_p99") && json_num(a, "top1_agree") == json_num(b, "top1_agree"),
          "p99/top1 differ");
    free(a), free(b);
    unlink(j1), unlink(j2);
    /* the llama-quantize line: every weight anchored, TYPE the written file type */
    snprintf(args, sizeof args, "quantize --plan %s --print-llama-quantize %s %s", plan, FF192, out);
    CHECK(sh(args, &o) == 0 && o && strstr(o, "llama-quantize --tensor-type '^output\\.weight$=f32'") &&
              strstr(o, " --tensor-type '^blk\\.0\\.attn_q\\.weight$=q4_0'") &&
              strstr(o, " --tensor-type '^blk\\.3\\.ffn_down\\.weight$=q8_0'") && strstr(o, " Q5_1\n") &&
              !strstr(o, "attn_norm"),
          "print: %s", o);
    free(o);
    /* --tensor-type: regex search, first match wins, llama-quantize's fallback */
    snprintf(args, sizeof args,
             "quantize -q --tensor-type 'blk\\.1\\.=q4_1' --tensor-type 'attn_(q|k)=q4_0' --tensor-type ffn_down=q4_k "
             "%s %s q8_0", FF192, out);
    CHECK(sh(args, &o) == 0, "--tensor-type: %s", o);
    free(o);
    CHECK(type_in(out, "blk.1.attn_q.weight") == FQ_TYPE_Q4_1 && type_in(out, "blk.1.ffn_up.weight") == FQ_TYPE_Q4_1 &&
              type_in(out, "blk.2.attn_q.weight") == FQ_TYPE_Q4_0 && type_in(out, "blk.2.attn_k.weight") == FQ_TYPE_Q4_0 &&
              type_in(out, "blk.2.attn_v.weight") == FQ_TYPE_Q8_0 && type_in(out, "blk.2.ffn_down.weight") == FQ_TYPE_Q5_0 &&
              type_in(out, "blk.2.attn_norm.weight") == FQ_TYPE_F32,
          "--tensor-type types");
    /* errors and exit codes */
    const char *act = write_text("act.json", "{\"assignment\": [{\"node\": \"ffn_norm\", \"layer\": 1, \"format\": \"bf16\"}]}");
    snprintf(args, sizeof args, "quantize --plan %s %s %s", act, FF192, out);
    CHECK(sh(args, &o) == 1 && o && strstr(o, "is an activation rule"), "activation plan: %s", o);
    free(o);
    snprintf(args, sizeof args, "quantize --tensor-type attn_q=q4_0 %s %s", FF192, out);
    CHECK(sh(args, &o) == 2, "--tensor-type without TYPE: %s", o);
    free(o);
    snprintf(args, sizeof args, "quantize --tensor-type attn_q=q4_0 %s %s f16", FF192, out);
    CHECK(sh(args, &o) == 1 && o && strstr(o, "only with a block TYPE"), "--tensor-type with f16: %s", o);
    free(o);
    snprintf(args, sizeof args, "quantize --tensor-type 'attn_(q=q4_0' %s %s q8_0", FF192, out);
    CHECK(sh(args, &o) == 1 && o && strstr(o, "pattern 'attn_(q'"), "bad pattern: %s", o);
    free(o);
    snprintf(args, sizeof args, "quantize --tensor-type attn_q %s %s q8_0", FF192, out);
    CHECK(sh(args, &o) == 2 && o && strstr(o, "give NAME=TYPE"), "no '=': %s", o);
    free(o);
    snprintf(args, sizeof args, "quantize --plan %s --tensor-type attn_q=q4_0 %s %s q8_0", plan, FF192, out);
    CHECK(sh(args, &o) == 2 && o && strstr(o, "not both"), "plan and tensor-type: %s", o);
    free(o);
    unlink(act), unlink(out), unlink(plan), unlink(txt);
}

int main(void) {
    check_api();
    check_errors();
    check_uniform(FF192, "q8_0");
    check_uniform(FF192, "q4_1");
    check_uniform(E256, "q4_k");
    check_uniform(E256, "q6_k");
    /* a plan alone (others keep F32; file type of the most common block type: a tie, the
     * first in the file, token_embd's q5_1) */
    check_plan(FF192,
               "{\"assignment\": [{\"tensor\": \"blk.0.attn_q.weight\", \"type\": \"q4_0\"},"
               " {\"tensor\": \"blk.1.ffn_down.weight\", \"type\": \"q8_0\"},"
               " {\"tensor\": \"token_embd.weight\", \"type\": \"q5_1\"},"
               " {\"tensor\": \"blk.4.ffn_up.weight\", \"type\": \"q4_1\"}], \"avg_bits\": 20.5}",
               NULL, NULL, 9);
    /* a plan over a default type: the others as the uniform q8_0 file (file type Q8_0) */
    {
        const char *q8 = tmp_path("q8ref");
        fq_quantize_params qp = {.type = "q8_0", .n_threads = 2};
        fq_err e;
        CHECK(fq_quantize_file(FF192, q8, &qp, NULL, &e) == 0, "%s", e.msg);
        check_plan(FF192,
                   "{\"assignment\": [{\"tensor\": \"blk.2.attn_v.weight\", \"type\": \"q4_0\"},"
                   " {\"tensor\": \"output.weight\", \"type\": \"q5_0\"}]}",
                   "q8_0", q8, 7);
        unlink(q8);
    }
    /* K-quants mixed on synth-l2-e256 (rows of 256 and 768), most common block type q4_k:
     * file type Q4_K_M (15) */
    check_plan(E256,
               "{\"assignment\": [{\"tensor\": \"blk.0.attn_q.weight\", \"type\": \"q4_k\"},"
               " {\"tensor\": \"blk.0.ffn_down.weight\", \"type\": \"q6_k\"},"
               " {\"tensor\": \"blk.1.ffn_up.weight\", \"type\": \"q4_k\"},"
               " {\"tensor\": \"blk.1.attn_v.weight\", \"type\": \"q3_k\"},"
               " {\"tensor\": \"output.weight\", \"type\": \"q5_k\"}]}",
               NULL, NULL, 15);
    check_plan_errors();
    check_cli();
    return TEST_END();
}
