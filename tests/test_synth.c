/* test_synth.c - random-weight models (`fqlm synth`) and the model benchmark's CLI.
 *
 * - shapes: tinyllama-1.1b has TinyLlama-1.1B's hyperparameters, and its q4_k_m plan
 *   (dry run) the real file's 135 Q4_K + 21 Q6_K + 45 F32 tensors and 636.18 MiB;
 * - a tiny model (2 layers, embd 256, ff 512, 4 heads, 2 KV heads): loads and runs; weight
 *   std within 3% of 1/sqrt(fan_in), norms 1 + 0.1 normal; the vocabulary copied; the file
 *   is the same for every thread count and changes with the seed;
 * - synth TYPE == quantize(synth f32, TYPE) byte for byte (the same encoders and rules);
 * - errors and the CLI (synth, bench -m ... --json). */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forward.h"
#include "gguf.h"
#include "harness.h"
#include "model.h"
#include "qtypes.h"
#include "quantize.h"
#include "synth.h"
#include "testutil.h"

#define MODELS "tests/data/models"
#define STORIES "models/stories260K.gguf"

static const char *tmp_path(const char *tag) {
    static char p[64][256]; /* distinct per call: a test holds several paths at once */
    static int k;
    FQ_ASSERT(k < 64);
    char *s = p[k++];
    snprintf(s, 256, "/tmp/fqlm_test_synth_%ld_%s.gguf", (long)getpid(), tag);
    return s;
}

static int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = tu_read(a, &na), *y = tu_read(b, &nb);
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static void tiny(fq_synth_params *p, const char *type) {
    fq_synth_defaults(p);
    p->n_layer = 2;
    p->n_embd = 256;
    p->n_ff = 512;
    p->n_head = 4;
    p->n_head_kv = 2;
    p->n_ctx = 256;
    p->vocab = STORIES;
    p->type = type;
    p->n_threads = 2;
}

static void test_shapes(void) {
    fq_synth_params p;
    fq_err e;
    fq_synth_defaults(&p);
    CHECK(fq_synth_shape("TinyLlama-1.1B", &p, &e) == 0 && p.n_layer == 22 && p.n_embd == 2048 &&
              p.n_ff == 5632 && p.n_head == 32 && p.n_head_kv == 4 && p.n_embd / p.n_head == 64 &&
              p.n_ctx == 2048 && p.rope_base == 10000.0f && p.rms_eps == 1e-5f && p.n_vocab_hint == 32000,
          "tinyllama shape");
    CHECK(fq_synth_shape("gpt-5", &p, &e) == -1 && strstr(e.msg, "unknown shape 'gpt-5'") &&
              strstr(e.msg, "tinyllama-1.1b"),
          "unknown shape: %s", e.msg);

    /* the real TinyLlama-1.1B-Chat Q4_K_M: 135 Q4_K, 21 Q6_K, 45 F32, 636.18 MiB */
    fq_synth_defaults(&p);
    fq_synth_shape("tinyllama-1.1b", &p, &e);
    p.vocab = MODELS "/ggml-vocab-llama-spm.gguf";
    p.type = "q4_k_m";
    p.dry_run = 1;
    fq_synth_stats st;
    CHECK(fq_synth_write(&p, NULL, &st, &e) == 0, "dry run: %s", e.msg);
    CHECK(st.n_by_type[FQ_TYPE_Q4_K] == 135 && st.n_by_type[FQ_TYPE_Q6_K] == 21 &&
              st.n_by_type[FQ_TYPE_F32] == 45 && st.n_tensors == 201 && st.n_vocab == 32000,
          "tinyllama q4_k_m: Q4_K %d Q6_K %d F32 %d (%d tensors, vocab %d)", st.n_by_type[FQ_TYPE_Q4_K],
          st.n_by_type[FQ_TYPE_Q6_K], st.n_by_type[FQ_TYPE_F32], st.n_tensors, st.n_vocab);
    CHECK(st.n_params == 1100048384ull && fabs(st.bytes / 1048576.0 - 636.18) < 0.005,
          "tinyllama: %llu params, %.3f MiB", (unsigned long long)st.n_params, st.bytes / 1048576.0);
}

static void test_tiny_model(void) {
    fq_synth_params p;
    fq_err e;
    tiny(&p, "f32");
    const char *f32 = tmp_path("f32");
    fq_synth_stats st;
    CHECK(fq_synth_write(&p, f32, &st, &e) == 0, "synth f32: %s", e.msg);
    fq_gguf g;
    if (fq_gguf_open(&g, f32, &e) != 0) {
        CHECK(0, "open: %s", e.msg);
        return;
    }
    CHECK(g.n_tensors == 21, "%llu tensors", (unsigned long long)g.n_tensors);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const fq_gguf_tensor *t = &g.tensors[i];
        int64_t n = t->ne[0] * t->ne[1];
        const float *x = t->data;
        double s = 0, s2 = 0;
        for (int64_t k = 0; k < n; k++) s += x[k], s2 += (double)x[k] * x[k];
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        if (strstr(t->name, "norm")) {
            CHECK(t->n_dims == 1 && t->type == FQ_TYPE_F32 && fabs(mean - 1) < 0.03 && fabs(sd - 0.1) < 0.015,
                  "%s: mean %.4f sd %.4f", t->name, mean, sd);
        } else {
            double want = 1 / sqrt((double)t->ne[0]);
            CHECK(fabs(mean) < 0.05 * want && fabs(sd / want - 1) < 0.03, "%s: mean %.5f sd %.5f want %.5f",
                  t->name, mean, sd, want);
        }
    }
    /* vocabulary and hyperparameters */
    fq_gguf v;
    CHECK(fq_gguf_open(&v, STORIES, &e) == 0, "open vocab");
    for (uint64_t i = 0; i < v.n_kv; i++) {
        if (strncmp(v.kv[i].key, "tokenizer.", 10)) continue;
        const fq_gguf_kv *k = fq_gguf_find(&g, v.kv[i].key);
        CHECK(k && k->type == v.kv[i].type && k->arr_n == v.kv[i].arr_n, "key %s copied", v.kv[i].key);
    }
    fq_gguf_close(&v);
    uint32_t u = 0;
    CHECK(fq_gguf_get_u32(&g, "llama.rope.dimension_count", &u, &e) == 0 && u == 64, "rope dims %u", u);
    CHECK(fq_gguf_get_u32(&g, "general.file_type", &u, &e) == 0 && u == 0, "file_type %u", u);
    fq_gguf_close(&g);

    /* it runs */
    fq_model *m = fq_model_load(f32, &e);
    CHECK(m && m->hp.n_vocab == 512 && m->hp.n_head_kv == 2 && m->hp.n_ff == 512, "load: %s", m ? "" : e.msg);
    if (m) {
        fq_ctx_params cp = {.n_ctx = 32, .n_threads = 2, .cache_type = FQ_TYPE_F32, .n_batch = 32};
        fq_ctx *c = fq_ctx_new(m, &cp, &e);
        int32_t toks[5] = {1, 400, 17, 3, 511};
        float *lg = malloc(512 * sizeof(float));
        CHECK(c && fq_ctx_eval(c, toks, 5, 0, lg, 0, &e) == 0, "eval: %s", e.msg);
        int finite = 1;
        for (int i = 0; i < 512; i++) finite &= isfinite(lg[i]);
        CHECK(finite, "logits finite");
        free(lg);
        fq_ctx_free(c);
        fq_model_free(m);
    }

    /* determinism: thread count changes nothing, the seed changes everything */
    const char *t1 = tmp_path("t1"), *s8 = tmp_path("s8");
    p.n_threads = 1;
    CHECK(fq_synth_write(&p, t1, NULL, &e) == 0, "synth 1 thread");
    CHECK(files_equal(f32, t1), "1 vs 2 threads differ");
    p.seed = 8;
    CHECK(fq_synth_write(&p, s8, NULL, &e) == 0, "synth seed 8");
    CHECK(!files_equal(f32, s8), "seed 8 gives the same file as seed 7");

    /* synth TYPE == quantize(synth f32, TYPE), and types follow llama-quantize */
    const char *const types[] = {"q4_k_m", "q8_0", "q6_k", "bf16"};
    for (size_t k = 0; k < FQ_ARRAY_LEN(types); k++) {
        const char *a = tmp_path("typ"), *b = tmp_path("qnt");
        tiny(&p, types[k]);
        p.n_threads = 3;
        CHECK(fq_synth_write(&p, a, NULL, &e) == 0, "synth %s: %s", types[k], e.msg);
        fq_quantize_params qp = {.type = types[k], .n_threads = 2};
        CHECK(fq_quantize_file(f32, b, &qp, NULL, &e) == 0, "quantize %s: %s", types[k], e.msg);
        CHECK(files_equal(a, b), "%s: synth differs from quantize(synth f32)", types[k]);
        unlink(a);
        unlink(b);
    }
    unlink(t1);
    unlink(s8);
    unlink(f32);
}

static void test_vocab_and_errors(void) {
    fq_synth_params p;
    fq_err e;
    fq_synth_stats st;
    /* the 32000-token vocabulary: a narrow model keeps the file small */
    tiny(&p, "q8_0");
    p.n_embd = 64;
    p.n_head = 2;
    p.n_head_kv = 1;
    p.n_ff = 96;
    p.vocab = MODELS "/ggml-vocab-llama-spm.gguf";
    const char *out = tmp_path("spm");
    CHECK(fq_synth_write(&p, out, &st, &e) == 0 && st.n_vocab == 32000, "spm vocab: %s", e.msg);
    fq_model *m = fq_model_load(out, &e);
    CHECK(m && m->hp.n_vocab == 32000, "spm model: %s", m ? "" : e.msg);
    fq_model_free(m);
    unlink(out);

    tiny(&p, "q4_k_m");
    p.n_head = 3;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "not divisible"), "heads: %s", e.msg);
    tiny(&p, "q4_k_m");
    p.n_head_kv = 3;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "kv-heads"), "kv heads: %s", e.msg);
    tiny(&p, "q4_k_m");
    p.n_embd = 4 * 33;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "even"), "odd head size: %s", e.msg);
    tiny(&p, "q3_x");
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "unknown type"), "type: %s", e.msg);
    tiny(&p, "q8_0");
    p.vocab = MODELS "/synth-l2-e256-f32.gguf.missing";
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "vocabulary"), "vocab: %s", e.msg);
    CHECK(access(out, F_OK) != 0, "no file after failures");
}

/* ---- CLI ---------------------------------------------------------------------------- */

static int run(const char *bin, const char *args, char **out) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", bin, args);
    FILE *f = popen(cmd, "r");
    FQ_ASSERT(f);
    size_t cap = 1 << 14, n = 0, r;
    char *buf = malloc(cap);
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0)
        if ((n += r) + 1 >= cap) buf = realloc(buf, cap *= 2);
    buf[n] = 0;
    int st = pclose(f);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    const char *bin = getenv("FQLM_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("test_synth: FQLM_BIN not set or not executable: skipping the CLI checks\n");
        return;
    }
    const char *model = tmp_path("cli");
    char args[1024], *out = NULL;
    snprintf(args, sizeof args,
             "synth --layers 2 --embd 256 --ff 512 --heads 4 --kv-heads 2 --type q4_k_m -t 2 -o %s", model);
    CHECK(run(bin, args, &out) == 0 && strstr(out, "Q4_K 13 Q6_K 3"), "synth: %s", out);
    free(out);
    CHECK(run(bin, "synth --shape tinyllama-1.1b --type q4_k_m --dry-run", &out) == 0 &&
              strstr(out, "F32 45 Q4_K 135 Q6_K 21") && strstr(out, "636.18 MiB"),
          "synth tinyllama dry run: %s", out);
    free(out);
    CHECK(run(bin, "synth --layers 2 --embd 256 --ff 512 --heads 4", NULL) == 2, "no -o: usage error");
    CHECK(run(bin, "synth --shape nope -o /tmp/x.gguf", NULL) == 2, "unknown shape: usage error");
    CHECK(run(bin, "synth --shape stories260k --type q9 -o /tmp/x.gguf", NULL) == 2, "bad type: usage error");
    CHECK(run(bin, "synth --help", NULL) == 0, "synth --help");

    char json[300];
    snprintf(json, sizeof json, "/tmp/fqlm_test_synth_%ld_bench.json", (long)getpid());
    snprintf(args, sizeof args, "bench -m %s -p 16 -n 8 -t 2 -r 2 --bw-mib 16 --json %s", model, json);
    int rc = run(bin, args, &out);
    if (rc == 2 && !strstr(out, "t/s")) {
        printf("test_synth: `fqlm bench -m` is not part of this build: skipping its checks\n");
    } else {
        CHECK(rc == 0 && strstr(out, " pp16 |") && strstr(out, " tg8 |") && strstr(out, "logits hash"),
              "bench table (rc %d):\n%s", rc, out);
        char *js = tu_read(json, NULL);
        static const char *const keys[] = {"\"pp_tps\":", "\"tg_tps\":", "\"bandwidth_gbs\":",
                                           "\"decode_efficiency\":", "\"rss_mib\":", "\"load_ms\":",
                                           "\"logits_hash\":", "\"weight_bytes_per_token\":"};
        for (size_t i = 0; i < FQ_ARRAY_LEN(keys); i++)
            CHECK(js && strstr(js, keys[i]), "bench json has %s", keys[i]);
        /* bandwidth passes: 2 beside each of the 2 decode runs and 2 after them, all kept */
        const char *bs = js ? strstr(js, "\"bandwidth_gbs_samples\":") : NULL;
        int n_bw = 0, bw_pos = 1;
        if (bs && (bs = strchr(bs, '['))) {
            const char *q = bs + 1;
            for (;;) {
                char *end;
                const double v = strtod(q, &end);
                if (end == q) break;
                n_bw++;
                bw_pos &= v > 0;
                q = end + strspn(end, ", ");
            }
        }
        CHECK(n_bw == 6 && bw_pos, "bench json: %d bandwidth samples (want 6, all positive)", n_bw);
        /* the hash does not depend on the thread count */
        char *h1 = js ? tu_json_str(js, "logits_hash") : NULL;
        free(js);
        snprintf(args, sizeof args, "bench model -m %s -p 16 -n 8 -t 1 -r 1 --bw-mib 0 --json %s", model, json);
        CHECK(run(bin, args, NULL) == 0, "bench model -t 1");
        js = tu_read(json, NULL);
        char *h2 = js ? tu_json_str(js, "logits_hash") : NULL;
        CHECK(h1 && h2 && !strcmp(h1, h2) && strlen(h1) == 16, "logits hash %s (2 threads) vs %s (1 thread)",
              h1 ? h1 : "-", h2 ? h2 : "-");
        free(h1);
        free(h2);
        free(js);
        unlink(json);
    }
    free(out);
    snprintf(args, sizeof args, "bench -m %s -p 0 -n 0", model);
    CHECK(run(bin, args, NULL) == 2, "bench with nothing to do: usage error");
    CHECK(run(bin, "bench -m /nonexistent.gguf -p 4 -n 2", NULL) == 1, "bench missing model: runtime error");
    unlink(model);
}

int main(void) {
    fq_qtypes_init();
    test_shapes();
    test_tiny_model();
    test_vocab_and_errors();
    test_cli();
    return TEST_END();
}
