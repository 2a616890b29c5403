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
    static char p[256][256]; /* distinct for 256 calls: a test holds several paths at once */
    static int k;
    char *s = p[k++ % 256];
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

/* ---- families: the architecture test models' keys, tensors and types ---------------- */

typedef struct {
    const char *name, *arch;
    int layers, embd, ff, heads, kv, head_dim, ctx;
    float rope_base, eps;
    int tied, window;
    float cap_a, cap_f, rope_scale, llama3;
} fam_case;

/* the shapes and options of tests/data/synth/arch-manifest.txt's models */
static const fam_case fam_cases[] = {
    {"qwen2-l2-e256", "qwen2", 2, 256, 256, 4, 2, 0, 32768, 1e6f, 1e-6f, -1, 0, 0, 0, 0, 0},
    {"llama3rope-l2-e256", "llama", 2, 256, 256, 4, 2, 0, 131072, 5e5f, 1e-5f, 1, 0, 0, 0, 0, 8},
    {"llama-hd128-l2-e256", "llama", 2, 256, 256, 4, 2, 128, 2048, 1e6f, 1e-5f, -1, 0, 0, 0, 0, 0},
    {"gemma2-l26-e64", "gemma2", 26, 64, 128, 4, 2, 0, 2048, 1e4f, 1e-6f, -1, 8, 10, 5, 0, 0},
    {"phi3-l2-e256", "phi3", 2, 256, 256, 4, 2, 0, 2048, 1e4f, 1e-5f, -1, 12, 0, 0, 0, 0},
    {"olmo2-l2-e256", "olmo2", 2, 256, 256, 4, 4, 0, 2048, 5e5f, 1e-6f, -1, 0, 0, 0, 0, 0},
    {"qwen3-l2-e256", "qwen3", 2, 256, 256, 4, 2, 128, 2048, 1e6f, 1e-6f, -1, 0, 0, 0, 0, 0},
    {"gemma3-l6-e64", "gemma3", 6, 64, 128, 4, 2, 0, 2048, 1e6f, 1e-6f, -1, 8, 0, 0, 8, 0},
};

static void fam_params(fq_synth_params *p, const fam_case *c, const char *type) {
    fq_synth_defaults(p);
    p->arch = c->arch;
    p->name = "synthetic random-weight test model";
    p->n_layer = c->layers;
    p->n_embd = c->embd;
    p->n_ff = c->ff;
    p->n_head = c->heads;
    p->n_head_kv = c->kv;
    p->head_dim = c->head_dim;
    p->n_ctx = c->ctx;
    p->rope_base = c->rope_base;
    p->rms_eps = c->eps;
    p->tied = c->tied;
    p->sliding_window = c->window;
    p->attn_softcap = c->cap_a;
    p->final_softcap = c->cap_f;
    p->rope_scale = c->rope_scale;
    if (c->llama3 > 0) p->rope3 = (fq_synth_rope3){c->llama3, 1.0f, 4.0f, 8192};
    p->vocab = STORIES;
    p->type = type;
    p->n_threads = 2;
}

/* A key's value as the manifest writes it. */
static void kv_text(const fq_gguf_kv *kv, char *buf, size_t cap) {
    if (kv->type == FQ_GGUF_STRING) snprintf(buf, cap, "%.*s", (int)kv->str.len, kv->str.ptr);
    else if (kv->type == FQ_GGUF_FLOAT32) snprintf(buf, cap, "%.9g", kv->f64);
    else snprintf(buf, cap, "%llu", (unsigned long long)kv->u64);
}

/* The manifest's section for case `name`: lines after "case NAME" up to the next case. */
static char *manifest_section(const char *all, const char *name) {
    char hdr[96];
    snprintf(hdr, sizeof hdr, "case %s\n", name);
    const char *s = strstr(all, hdr);
    if (!s) return NULL;
    s += strlen(hdr);
    const char *end = strstr(s, "\ncase ");
    size_t n = end ? (size_t)(end - s + 1) : strlen(s);
    char *r = malloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

static void check_against_manifest(const fam_case *c, const char *sect, const char *const paths[3]) {
    static const char *const tnames[3] = {"f32", "q8_0", "q4_k_m"};
    fq_gguf g[3];
    fq_err e;
    int open_ok = 1;
    for (int k = 0; k < 3; k++)
        if (fq_gguf_open(&g[k], paths[k], &e)) {
            CHECK(0, "%s %s: %s", c->name, tnames[k], e.msg);
            for (int j = 0; j < k; j++) fq_gguf_close(&g[j]);
            open_ok = 0;
            break;
        }
    if (!open_ok) return;
    int n_keys = 0, n_tensors = 0;
    char *copy = strdup(sect), *save = NULL;
    for (char *ln = strtok_r(copy, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        char a[128], b[32], v[512], t0[16], t1[16], t2[16];
        long long n0, n1;
        if (sscanf(ln, "key %127s %31s %511[^\n]", a, b, v) == 3) {
            n_keys++;
            const fq_gguf_kv *kv = fq_gguf_find(&g[0], a);
            char got[512] = "";
            if (kv) kv_text(kv, got, sizeof got);
            CHECK(kv && !strcmp(fq_gguf_vtype_name(kv->type), b) && !strcmp(got, v),
                  "%s: key %s = %s %s, synth wrote %s %s", c->name, a, b, v,
                  kv ? fq_gguf_vtype_name(kv->type) : "nothing", got);
        } else if (sscanf(ln, "tensor %127s %lld %lld %15s %15s %15s", a, &n0, &n1, t0, t1, t2) == 6) {
            n_tensors++;
            const char *want[3] = {t0, t1, t2};
            for (int k = 0; k < 3; k++) {
                const fq_gguf_tensor *t = fq_gguf_find_tensor(&g[k], a);
                CHECK(t && t->ne[0] == n0 && t->ne[1] == n1 && t->ne[2] == 1 &&
                          !strcmp(fq_type_name(t->type), want[k]),
                      "%s %s: tensor %s [%lld, %lld] %s, synth wrote [%lld, %lld] %s", c->name,
                      tnames[k], a, n0, n1, want[k], t ? (long long)t->ne[0] : -1LL,
                      t ? (long long)t->ne[1] : -1LL, t ? fq_type_name(t->type) : "nothing");
            }
        } else if (sscanf(ln, "f32 %127s %511s", a, v) == 2) {
            /* F32 data given in hex (rope_freqs.weight) */
            const fq_gguf_tensor *t = fq_gguf_find_tensor(&g[0], a);
            char hex[512] = "";
            for (uint64_t i = 0; t && i < t->nbytes && 2 * i + 2 < sizeof hex; i++)
                sprintf(hex + 2 * i, "%02x", ((const uint8_t *)t->data)[i]);
            CHECK(t && !strcmp(hex, v), "%s: %s data %s, want %s", c->name, a, hex, v);
        }
    }
    free(copy);
    /* nothing more than the manifest: its keys (+ general.quantization_version) and tensors */
    int file_keys = 0;
    for (uint64_t i = 0; i < g[0].n_kv; i++)
        if (strncmp(g[0].kv[i].key, "tokenizer.", 10) && strcmp(g[0].kv[i].key, "general.quantization_version"))
            file_keys++;
    CHECK(n_keys > 10 && file_keys == n_keys, "%s: %d keys in the file, %d in the manifest", c->name,
          file_keys, n_keys);
    for (int k = 0; k < 3; k++)
        CHECK(n_tensors > 10 && g[k].n_tensors == (uint64_t)n_tensors, "%s %s: %llu tensors, want %d",
              c->name, tnames[k], (unsigned long long)g[k].n_tensors, n_tensors);
    for (int k = 0; k < 3; k++) fq_gguf_close(&g[k]);
}

/* Weight statistics by kind in a synthesized F32 file. */
static void check_values(const fam_case *c, const char *path) {
    fq_gguf g;
    fq_err e;
    if (fq_gguf_open(&g, path, &e)) return;
    int tied = !fq_gguf_find_tensor(&g, "output.weight");
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const fq_gguf_tensor *t = &g.tensors[i];
        int64_t n = t->ne[0] * t->ne[1];
        if (n < 128 || !strcmp(t->name, "rope_freqs.weight")) continue;
        const float *x = t->data;
        double s = 0, s2 = 0;
        for (int64_t k = 0; k < n; k++) s += x[k], s2 += (double)x[k] * x[k];
        double mean = s / n, sd = sqrt(s2 / n - mean * mean), want_mean = 0, want_sd;
        if (t->n_dims == 2) want_sd = 1 / sqrt((double)t->ne[0]);
        else if (strstr(t->name, ".bias")) want_sd = 0.1;
        else if (tied && !strcmp(t->name, "output_norm.weight")) want_sd = 1;
        else want_mean = 1, want_sd = 0.1;
        double tol = 4 / sqrt((double)n); /* ~4 standard errors */
        CHECK(fabs(mean - want_mean) < tol * want_sd + 1e-9 && fabs(sd / want_sd - 1) < 3 * tol,
              "%s: %s mean %.4f sd %.4f, want %.4f %.4f", c->name, t->name, mean, sd, want_mean, want_sd);
    }
    fq_gguf_close(&g);
}

static void test_families(void) {
    char *all = tu_read("tests/data/synth/arch-manifest.txt", NULL);
    CHECK(all != NULL, "tests/data/synth/arch-manifest.txt is readable");
    if (!all) return;
    int n_cases = 0;
    for (const char *q = all; (q = strstr(q, "\ncase ")); q++) n_cases++;
    CHECK(n_cases == (int)FQ_ARRAY_LEN(fam_cases), "%d cases in the manifest", n_cases);
    for (size_t ci = 0; ci < FQ_ARRAY_LEN(fam_cases); ci++) {
        const fam_case *c = &fam_cases[ci];
        char *sect = manifest_section(all, c->name);
        CHECK(sect != NULL, "manifest has %s", c->name);
        if (!sect) continue;
        static const char *const types[3] = {"f32", "q8_0", "q4_k_m"};
        const char *paths[3];
        fq_synth_params p;
        fq_err e;
        int ok = 1;
        for (int k = 0; k < 3; k++) {
            paths[k] = tmp_path(types[k]);
            fam_params(&p, c, types[k]);
            if (fq_synth_write(&p, paths[k], NULL, &e)) {
                CHECK(0, "%s %s: %s", c->name, types[k], e.msg);
                ok = 0;
            }
        }
        if (ok) {
            check_against_manifest(c, sect, paths);
            check_values(c, paths[0]);
            /* the same seed gives the same bytes for any thread count, the quantized file is
             * quantize(F32 file), and another seed gives another file */
            const char *again = tmp_path("again"), *qnt = tmp_path("qnt");
            fam_params(&p, c, "q4_k_m");
            p.n_threads = 1;
            CHECK(fq_synth_write(&p, again, NULL, &e) == 0 && files_equal(paths[2], again),
                  "%s: q4_k_m with 1 and 2 threads differ", c->name);
            fq_quantize_params qp = {.type = "q4_k_m", .n_threads = 3};
            CHECK(fq_quantize_file(paths[0], qnt, &qp, NULL, &e) == 0 && files_equal(paths[2], qnt),
                  "%s: synth q4_k_m differs from quantize(synth f32)", c->name);
            p.seed = 8;
            CHECK(fq_synth_write(&p, again, NULL, &e) == 0 && !files_equal(paths[2], again),
                  "%s: seed 8 gives the seed-7 file", c->name);
            unlink(again);
            unlink(qnt);
        }
        for (int k = 0; k < 3; k++) unlink(paths[k]);
        free(sect);
    }
    free(all);
}

/* Every family at its test shape, in three types, loads with the loader and evaluates
 * finite logits; a padded vocabulary loads too. */
static void test_families_run(void) {
    static const char *const types[] = {"f32", "q8_0", "q4_k_m"};
    for (size_t ci = 0; ci < FQ_ARRAY_LEN(fam_cases); ci++) {
        const fam_case *c = &fam_cases[ci];
        for (size_t k = 0; k < FQ_ARRAY_LEN(types); k++) {
            fq_synth_params p;
            fq_err e;
            const char *path = tmp_path("run");
            fam_params(&p, c, types[k]);
            if (k == 2) p.n_vocab = 600; /* the padded vocabulary once per family */
            if (fq_synth_write(&p, path, NULL, &e)) {
                CHECK(0, "%s %s: %s", c->name, types[k], e.msg);
                continue;
            }
            fq_model *m = fq_model_load(path, &e);
            CHECK(m != NULL, "%s %s: load: %s", c->name, types[k], m ? "" : e.msg);
            if (m) {
                const int nv = m->hp.n_vocab;
                CHECK(m->hp.n_layer == c->layers && nv == (k == 2 ? 600 : 512), "%s: hparams", c->name);
                fq_ctx_params cp = {.n_ctx = 32, .n_threads = 2, .cache_type = FQ_TYPE_F32, .n_batch = 32};
                fq_ctx *x = fq_ctx_new(m, &cp, &e);
                int32_t toks[6] = {1, 403, 407, 261, 378, 383};
                float *lg = malloc((size_t)nv * sizeof(float));
                int ok = x && fq_ctx_eval(x, toks, 6, 0, lg, 0, &e) == 0;
                CHECK(ok, "%s %s: eval: %s", c->name, types[k], e.msg);
                int finite = 1;
                double s2 = 0;
                for (int i = 0; ok && i < nv; i++) finite &= isfinite(lg[i]), s2 += (double)lg[i] * lg[i];
                CHECK(ok && finite && s2 > 0, "%s %s: logits finite and not all zero", c->name, types[k]);
                free(lg);
                fq_ctx_free(x);
                fq_model_free(m);
            }
            unlink(path);
        }
    }
}

/* Every llama-quantize mix on every family: written, loaded, 3 tokens evaluated. */
static void test_families_mixes(void) {
    static const char *const mixes[] = {"f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k",
                                        "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q5_k_s",
                                        "q5_k_m", "q6_k", "q3_k", "q4_k", "q5_k"};
    int n_ok = 0, n = 0;
    for (size_t ci = 0; ci < FQ_ARRAY_LEN(fam_cases); ci++)
        for (size_t k = 0; k < FQ_ARRAY_LEN(mixes); k++) {
            fq_synth_params p;
            fq_err e;
            const char *path = tmp_path("mix");
            fam_params(&p, &fam_cases[ci], mixes[k]);
            n++;
            fq_model *m = NULL;
            fq_ctx *x = NULL;
            float lg[512];
            int32_t toks[3] = {1, 403, 407};
            fq_ctx_params cp = {.n_ctx = 8, .n_threads = 2, .cache_type = FQ_TYPE_F32, .n_batch = 8};
            int ok = fq_synth_write(&p, path, NULL, &e) == 0 && (m = fq_model_load(path, &e)) &&
                     (x = fq_ctx_new(m, &cp, &e)) && fq_ctx_eval(x, toks, 3, 0, lg, 0, &e) == 0;
            for (int i = 0; ok && i < 512; i++) ok &= isfinite(lg[i]) != 0;
            CHECK(ok, "%s %s: %s", fam_cases[ci].name, mixes[k], e.msg);
            n_ok += ok;
            fq_ctx_free(x);
            fq_model_free(m);
            unlink(path);
        }
    CHECK(n_ok == n && n == 8 * 17, "%d of %d family x mix models ran", n_ok, n);
}

/* The real models' shapes: parameter counts as their model cards give them, and the
 * options each family refuses. */
static void test_real_shapes(void) {
    static const struct {
        const char *shape, *arch;
        uint64_t params;
        int n_vocab;
    } real[] = {
        {"qwen2.5-0.5b", "qwen2", 494032768ull, 151936},
        {"qwen3-0.6b", "qwen3", 596049920ull, 151936},
        {"llama3.2-1b", "llama", 1235814400ull + 32, 128256}, /* + rope_freqs */
        {"gemma2-2b", "gemma2", 2614341888ull, 256000},
        {"gemma3-1b", "gemma3", 999885952ull, 262144},
        {"phi3-mini", "phi3", 3821079552ull, 32064},
        {"olmo2-1b", "olmo2", 1484916736ull, 100352},
    };
    fq_synth_params p;
    fq_err e;
    fq_synth_stats st;
    for (size_t i = 0; i < FQ_ARRAY_LEN(real); i++) {
        fq_synth_defaults(&p);
        CHECK(fq_synth_shape(real[i].shape, &p, &e) == 0 && !strcmp(p.arch, real[i].arch) &&
                  p.n_vocab_hint == real[i].n_vocab,
              "shape %s", real[i].shape);
        p.vocab = MODELS "/ggml-vocab-llama-spm.gguf";
        p.n_vocab = p.n_vocab_hint;
        p.dry_run = 1;
        CHECK(fq_synth_write(&p, NULL, &st, &e) == 0 && st.n_params == real[i].params &&
                  st.n_vocab == real[i].n_vocab,
              "%s: %llu parameters (want %llu), vocab %d: %s", real[i].shape,
              (unsigned long long)st.n_params, (unsigned long long)real[i].params, st.n_vocab, e.msg);
    }
    /* phi3-mini Q4_K_M: attn_qkv Q5_K (32), output and 16 of 32 ffn_down Q6_K, the rest Q4_K */
    fq_synth_defaults(&p);
    fq_synth_shape("phi3-mini", &p, &e);
    p.vocab = MODELS "/ggml-vocab-llama-spm.gguf";
    p.n_vocab = 32064;
    p.type = "q4_k_m";
    p.dry_run = 1;
    CHECK(fq_synth_write(&p, NULL, &st, &e) == 0 && st.n_by_type[FQ_TYPE_Q5_K] == 32 &&
              st.n_by_type[FQ_TYPE_Q6_K] == 17 && st.n_by_type[FQ_TYPE_Q4_K] == 81 &&
              st.n_by_type[FQ_TYPE_F32] == 65 && st.n_fallback == 0,
          "phi3-mini q4_k_m: Q4_K %d Q5_K %d Q6_K %d F32 %d fallback %d", st.n_by_type[FQ_TYPE_Q4_K],
          st.n_by_type[FQ_TYPE_Q5_K], st.n_by_type[FQ_TYPE_Q6_K], st.n_by_type[FQ_TYPE_F32], st.n_fallback);
    /* qwen2.5-0.5b rows of 896 are not whole K blocks: Q5_0 for Q4_K and Q8_0 for the 12
     * Q6_K attn_v, as llama-quantize falls back; ffn_down (rows of 4864) keeps Q4_K / Q6_K;
     * the tied token_embd is Q8_0 (the output rule's own choice, not a fallback) */
    fq_synth_defaults(&p);
    fq_synth_shape("qwen2.5-0.5b", &p, &e);
    p.vocab = STORIES;
    p.type = "q4_k_m";
    p.dry_run = 1;
    CHECK(fq_synth_write(&p, NULL, &st, &e) == 0 && st.n_by_type[FQ_TYPE_Q4_K] == 12 &&
              st.n_by_type[FQ_TYPE_Q6_K] == 12 && st.n_by_type[FQ_TYPE_Q5_0] == 24 * 6 - 12 &&
              st.n_by_type[FQ_TYPE_Q8_0] == 12 + 1 && st.n_fallback == 24 * 6,
          "qwen2.5 q4_k_m: Q4_K %d Q6_K %d Q5_0 %d Q8_0 %d fallback %d", st.n_by_type[FQ_TYPE_Q4_K],
          st.n_by_type[FQ_TYPE_Q6_K], st.n_by_type[FQ_TYPE_Q5_0], st.n_by_type[FQ_TYPE_Q8_0], st.n_fallback);

    /* what a family refuses */
    const fam_case *q2 = &fam_cases[0];
    const char *out = tmp_path("refuse");
    fam_params(&p, q2, "f32");
    p.arch = "mamba";
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "unknown architecture 'mamba'") &&
              strstr(e.msg, "gemma2"),
          "unknown arch: %s", e.msg);
    fam_params(&p, &fam_cases[3], "f32");
    p.tied = 0;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "gemma2 always ties"), "gemma2 untied: %s", e.msg);
    fam_params(&p, &fam_cases[4], "f32");
    p.tied = 1;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "phi3 needs its own output"), "phi3 tied: %s", e.msg);
    fam_params(&p, q2, "f32");
    p.rope3 = (fq_synth_rope3){8, 1, 4, 8192};
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "no rope_freqs"), "qwen2 rope3: %s", e.msg);
    fam_params(&p, q2, "f32");
    p.sliding_window = 16;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "no sliding window"), "qwen2 window: %s", e.msg);
    fam_params(&p, q2, "f32");
    p.attn_softcap = 5;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "no logit soft-capping"), "qwen2 cap: %s", e.msg);
    fam_params(&p, q2, "f32");
    p.n_vocab = 100;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "smaller than the 512 tokens"), "vocab: %s", e.msg);
    fam_params(&p, &fam_cases[1], "f32");
    p.rope3.high_freq_factor = 0.5f;
    CHECK(fq_synth_write(&p, out, NULL, &e) == -1 && strstr(e.msg, "llama3 rope factors"), "bad rope3: %s", e.msg);
    CHECK(access(out, F_OK) != 0, "no file after refusals");

    /* the padded vocabulary: [PAD1].., UNUSED, score -1000; the model's rows follow */
    fam_params(&p, q2, "q8_0");
    p.n_vocab = 520;
    fq_synth_stats st2;
    CHECK(fq_synth_write(&p, out, &st2, &e) == 0 && st2.n_vocab == 520, "padded: %s", e.msg);
    fq_gguf g;
    if (fq_gguf_open(&g, out, &e) == 0) {
        const fq_gguf_kv *tk = fq_gguf_find(&g, "tokenizer.ggml.tokens");
        const fq_gguf_kv *sc = fq_gguf_find(&g, "tokenizer.ggml.scores");
        const fq_gguf_kv *ty = fq_gguf_find(&g, "tokenizer.ggml.token_type");
        const fq_gguf_tensor *emb = fq_gguf_find_tensor(&g, "token_embd.weight");
        CHECK(tk && tk->arr_n == 520 && tk->strs[512].len == 6 && !memcmp(tk->strs[512].ptr, "[PAD1]", 6) &&
                  tk->strs[519].len == 6 && !memcmp(tk->strs[519].ptr, "[PAD8]", 6) &&
                  tk->strs[1].len == 3 && !memcmp(tk->strs[1].ptr, "<s>", 3),
              "padded tokens");
        CHECK(sc && sc->arr_n == 520 && fq_gguf_arr_f32(sc, 519) == -1000.0f && fq_gguf_arr_f32(sc, 511) > -1000.0f,
              "padded scores");
        CHECK(ty && ty->arr_n == 520 && fq_gguf_arr_i64(ty, 515) == 5 && fq_gguf_arr_i64(ty, 1) == 3, "padded types");
        CHECK(emb && emb->ne[1] == 520, "token_embd rows follow the padded vocabulary");
        fq_gguf_close(&g);
    } else {
        CHECK(0, "open padded: %s", e.msg);
    }
    unlink(out);
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

/* The family object of `inspect --json` output: from "family": { to its closing brace. */
static char *family_json(const char *out) {
    const char *s = strstr(out, "\"family\": {");
    const char *e = s ? strstr(s, "},\n") : NULL;
    if (!s || !e) return NULL;
    size_t n = (size_t)(e - s + 1);
    char *r = malloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* `fqlm inspect` on each synthesized family: the row's choices read against the file. */
static void test_inspect_families(const char *bin) {
    static const struct {
        int ci;                   /* fam_cases index */
        const char *json[8];      /* substrings of the family object */
        const char *text[4];      /* substrings of the text output */
    } want[] = {
        {0, {"\"name\": \"qwen2\"", "\"rope_mode\": \"neox\"", "\"biases\": {\"q\": true, \"k\": true, \"v\": true, \"output\": false}",
             "\"tied_output\": true", "\"sliding_window\": null", "\"activation\": \"silu\"", "\"rope_base\": 1000000", NULL},
         {"family (qwen2):", "attention biases   q k v", "tied output        yes (no output.weight)", NULL}},
        {1, {"\"name\": \"llama\"", "\"rope_mode\": \"norm\"", "\"rope_freq_factors\": true", "\"rope_base\": 500000",
             "\"qk_norm\": \"none\"", NULL},
         {"rope freq factors  yes (rope_freqs.weight)", "rope               norm, 64 dims, base 500000", NULL}},
        {2, {"\"head_size_k\": 128", "\"rope_dims\": 128", "\"tied_output\": false", "\"query_scale\": 0.0883883476", NULL},
         {"head size          128 (K), 128 (V) from attention.key_length", "query scale        1/sqrt(128) in the softmax", NULL}},
        {3, {"\"name\": \"gemma2\"", "\"attn_softcap\": 10, \"final_softcap\": 5", "\"sliding_window\": 8, \"swa_layers\": \"pattern\", \"swa_pattern\": 2",
             "\"embedding_scale\": 8,", "\"activation\": \"gelu_fp16\"", "\"post_norms\": true", "\"query_scale_at\": \"qcur_scaled\"", NULL},
         {"logit soft-caps    attention 10, final 5", "sliding window     8; layer L global iff (L + 1) % 2 == 0",
          "tied output        yes (the family always uses token_embd)", NULL}},
        {4, {"\"name\": \"phi3\"", "\"fused_qkv\": true, \"fused_gate_up\": true", "\"sliding_window\": 12, \"swa_layers\": \"all\"",
             "\"query_scale_at\": \"q_after_rope\"", "\"tied_output\": false", NULL},
         {"sliding window     12 on every layer", "fused matrices     attn_qkv, gate|up in ffn_up", NULL}},
        {5, {"\"name\": \"olmo2\"", "\"qk_norm\": \"full\"", "\"pre_norms\": false, \"post_norms\": true", NULL},
         {"norms              post-attention and post-FFN only", NULL}},
        {6, {"\"name\": \"qwen3\"", "\"qk_norm\": \"head\"", "\"head_size_k\": 128", "\"biases\": {\"q\": false", NULL},
         {"Q/K norm           per head", NULL}},
        {7, {"\"name\": \"gemma3\"", "\"rope_scaling\": \"linear\", \"rope_scale\": 8", "\"swa_pattern\": 6, \"swa_rope_base\": 10000",
             "\"activation\": \"gelu\"", "\"attn_softcap\": null", NULL},
         {"local-layer rope   base 10000, scale 1", "rope               neox, 16 dims, base 1e+06, scaling linear x8", NULL}},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(want); i++) {
        const fam_case *c = &fam_cases[want[i].ci];
        fq_synth_params p;
        fq_err e;
        const char *path = tmp_path("insp");
        fam_params(&p, c, "f32");
        if (fq_synth_write(&p, path, NULL, &e)) {
            CHECK(0, "%s: %s", c->name, e.msg);
            continue;
        }
        char args[512], *out = NULL;
        snprintf(args, sizeof args, "inspect --json %s", path);
        int rc = run(bin, args, &out);
        char *fj = family_json(out);
        CHECK(rc == 0 && fj, "%s: inspect --json has a family object (rc %d)", c->name, rc);
        for (int k = 0; fj && want[i].json[k]; k++)
            CHECK(strstr(fj, want[i].json[k]) != NULL, "%s: inspect --json lacks %s in\n%s", c->name,
                  want[i].json[k], fj);
        free(fj);
        free(out);
        snprintf(args, sizeof args, "inspect %s", path);
        rc = run(bin, args, &out);
        for (int k = 0; want[i].text[k]; k++)
            CHECK(rc == 0 && strstr(out, want[i].text[k]) != NULL, "%s: inspect lacks '%s' in\n%s", c->name,
                  want[i].text[k], out);
        free(out);
        unlink(path);
    }
    /* Gemma 2 27B's rule: a 46-layer gemma2 scales queries by 1/sqrt(n_embd / n_head) */
    {
        fq_synth_params p;
        fq_err e;
        const char *path = tmp_path("g27");
        fam_params(&p, &fam_cases[3], "f32");
        p.n_layer = 46;
        p.n_embd = 128;
        p.head_dim = 16;
        char args[512], *out = NULL;
        snprintf(args, sizeof args, "inspect %s", path);
        CHECK(fq_synth_write(&p, path, NULL, &e) == 0 && run(bin, args, &out) == 0 &&
                  strstr(out, "query scale        1/sqrt(32) on Q after RoPE, node Qcur_scaled"),
              "46-layer gemma2 query scale:\n%s", out ? out : e.msg);
        free(out);
        unlink(path);
    }
    /* an architecture fqlm does not run: said so in text, null in JSON */
    fq_err e;
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    const char *path = tmp_path("mamba");
    FQ_ASSERT(w);
    CHECK(fq_gguf_writer_set_str(w, "general.architecture", "mamba", &e) == 0 &&
              fq_gguf_writer_set_u32(w, "mamba.block_count", 2, &e) == 0 &&
              fq_gguf_writer_write(w, path, &e) == 0,
          "write a mamba header: %s", e.msg);
    fq_gguf_writer_free(w);
    char args[512], *out = NULL;
    snprintf(args, sizeof args, "inspect %s", path);
    CHECK(run(bin, args, &out) == 0 && strstr(out, "family: \"mamba\" is not one fqlm runs (it runs: llama"),
          "inspect mamba:\n%s", out);
    free(out);
    snprintf(args, sizeof args, "inspect --json %s", path);
    CHECK(run(bin, args, &out) == 0 && strstr(out, "\"family\": null,"), "inspect --json mamba:\n%s", out);
    free(out);
    unlink(path);
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

    /* families and real shapes from the command line */
    CHECK(run(bin, "synth --shape qwen2.5-0.5b --type q4_k_m --dry-run", &out) == 0 &&
              strstr(out, "qwen2, 24 layers, n_embd 896, n_ff 4864, 14 heads (2 KV) of 64, n_vocab 151936") &&
              strstr(out, "F32 121 Q5_0 132 Q8_0 13 Q4_K 12 Q6_K 12"),
          "synth qwen2.5-0.5b dry run: %s", out);
    free(out);
    CHECK(run(bin, "synth --shape gemma2-2b --dry-run", &out) == 0 &&
              strstr(out, "gemma2, 26 layers, n_embd 2304, n_ff 9216, 8 heads (4 KV) of 256, n_vocab 256000") &&
              strstr(out, "2614.34 M parameters"),
          "synth gemma2-2b dry run: %s", out);
    free(out);
    /* a shape's sizes in another family: llama3.2's rope factors do not carry over */
    CHECK(run(bin, "synth --shape llama3.2-1b --arch qwen3 --dry-run", &out) == 0 && strstr(out, "qwen3, 16 layers"),
          "llama3.2 shape as qwen3: %s", out);
    free(out);
    CHECK(run(bin, "synth --arch mamba --layers 2 --embd 64 --ff 64 --heads 2 -o /tmp/x.gguf", NULL) == 2,
          "unknown arch: usage error");
    CHECK(run(bin, "synth --arch gemma2 --untied --layers 2 --embd 64 --ff 64 --heads 2 -o /tmp/x.gguf", NULL) == 1,
          "gemma2 --untied refused");
    CHECK(run(bin, "synth --arch gemma2 --softcap 10 --layers 2 --embd 64 --ff 64 --heads 2 -o /tmp/x.gguf", NULL) == 2,
          "--softcap needs two numbers");
    CHECK(run(bin, "synth --arch llama --llama3-rope 0.5 --layers 2 --embd 64 --ff 64 --heads 2 -o /tmp/x.gguf", NULL) == 2,
          "--llama3-rope below 1");
    /* the default general.name keeps "phi3" out (llama.cpp would want an <|endoftext|> token) */
    const char *phi = tmp_path("phi");
    snprintf(args, sizeof args, "synth --arch phi3 --layers 1 --embd 64 --ff 64 --heads 2 -o %s", phi);
    CHECK(run(bin, args, NULL) == 0, "synth phi3");
    fq_gguf g;
    fq_err e;
    fq_str nm = {0};
    if (fq_gguf_open(&g, phi, &e) == 0) {
        CHECK(fq_gguf_get_str(&g, "general.name", &nm, &e) == 0 && nm.len == 24 &&
                  !memcmp(nm.ptr, "synthetic Phi 3 (random)", 24),
              "phi3 general.name '%.*s'", (int)nm.len, nm.ptr ? nm.ptr : "");
        fq_gguf_close(&g);
    } else {
        CHECK(0, "open %s: %s", phi, e.msg);
    }
    unlink(phi);
    test_inspect_families(bin);

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
    /* bench on family models: gemma2 (26 layers, soft-caps, windows) and qwen2 (biases) */
    for (int ci = 0; ci < 2; ci++) {
        const fam_case *c = &fam_cases[ci == 0 ? 3 : 0];
        fq_synth_params p;
        const char *fm = tmp_path("benchfam");
        fam_params(&p, c, "q4_k_m");
        CHECK(fq_synth_write(&p, fm, NULL, &e) == 0, "%s: %s", c->name, e.msg);
        snprintf(args, sizeof args, "bench -m %s -p 16 -n 4 -t 2 -r 1 --bw-mib 0", fm);
        rc = run(bin, args, &out);
        CHECK(rc == 0 && strstr(out, " pp16 |") && strstr(out, " tg4 |") && strstr(out, "logits hash"),
              "bench on %s (rc %d):\n%s", c->name, rc, out);
        free(out);
        unlink(fm);
    }
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
    test_families();
    test_families_run();
    test_families_mixes();
    test_real_shapes();
    test_cli();
    return TEST_END();
}
