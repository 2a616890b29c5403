/* fuzz_gguf.c - libFuzzer target for the GGUF loader: header, metadata of every type
 * (nested arrays included), tensor infos and offsets; then, on whatever the reader
 * accepts, the getters, the writer (copy every key and tensor, write, read back), the
 * tokenizer built from the metadata, and the model loader with a short forward pass.
 *
 * Promises checked (an abort is a crash to libFuzzer):
 *  - a rejected file comes with a message that starts with the file's name;
 *  - an accepted file's tensors lie inside the buffer and are aligned; lookups find
 *    every key and tensor; the getters return 0, or -1 with a message;
 *  - what the writer writes reads back with the same keys, shapes and tensor bytes;
 *  - a model that loads evaluates a few tokens, and rejects a token id out of range.
 * The input buffer is exactly `size` bytes on the heap, so ASan sees any read past it. */
#include "fuzz_common.h"

#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "qtypes.h"
#include "tokenizer.h"

#define NAME "fuzz.gguf"

static volatile uint64_t g_sink; /* keeps reads from being optimised away */

static void touch(const void *p, uint64_t n) {
    if (!n) return;
    const uint8_t *b = p;
    g_sink += b[0] + b[n - 1];
}

static void check_kvs(const fq_gguf *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const fq_gguf_kv *kv = &g->kv[i];
        FUZZ_REQUIRE(kv->key && kv->key[0], "key %llu is empty", (unsigned long long)i);
        FUZZ_REQUIRE(fq_gguf_find(g, kv->key) == kv, "key '%s' not found", kv->key);
        FUZZ_REQUIRE(kv->type < FQ_GGUF_VTYPE_COUNT, "key '%s' type %u", kv->key, kv->type);
        uint32_t u;
        float f;
        fq_str s;
        fq_err e = {{0}};
        int r = fq_gguf_get_u32(g, kv->key, &u, &e);
        FUZZ_REQUIRE(r == 0 || (r == -1 && e.msg[0]), "get_u32 returned %d", r);
        e.msg[0] = 0;
        r = fq_gguf_get_f32(g, kv->key, &f, &e);
        FUZZ_REQUIRE(r == 0 || (r == -1 && e.msg[0]), "get_f32 returned %d", r);
        e.msg[0] = 0;
        r = fq_gguf_get_str(g, kv->key, &s, &e);
        FUZZ_REQUIRE(r == 0 || (r == -1 && e.msg[0]), "get_str returned %d", r);
        if (r == 0) touch(s.ptr, s.len);
        if (kv->type != FQ_GGUF_ARRAY) continue;
        if (kv->arr_type == FQ_GGUF_STRING) {
            FUZZ_REQUIRE(kv->arr_n == 0 || kv->strs, "string array without strs");
            for (uint64_t j = 0; j < kv->arr_n; j++) touch(kv->strs[j].ptr, kv->strs[j].len);
        } else if (kv->arr_type != FQ_GGUF_ARRAY) {
            double sum = 0;
            for (uint64_t j = 0; j < kv->arr_n; j++)
                sum += fq_gguf_arr_f32(kv, j) + (double)fq_gguf_arr_i64(kv, j);
            g_sink += sum != sum;
        }
    }
}

static void check_tensors(const fq_gguf *g, const uint8_t *buf, size_t size) {
    FUZZ_REQUIRE(g->alignment && !(g->alignment & (g->alignment - 1)), "alignment %llu",
                 (unsigned long long)g->alignment);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        FUZZ_REQUIRE(fq_gguf_find_tensor(g, t->name) == t, "tensor '%s' not found", t->name);
        FUZZ_REQUIRE(t->n_dims >= 1 && t->n_dims <= FQ_GGUF_MAX_DIMS, "n_dims %u", t->n_dims);
        const uint8_t *d = t->data;
        FUZZ_REQUIRE(d >= buf && (uint64_t)(d - buf) <= size && t->nbytes <= size - (uint64_t)(d - buf),
                     "tensor '%s' outside the file", t->name);
        FUZZ_REQUIRE(t->offset % g->alignment == 0, "tensor '%s' offset %llu unaligned", t->name,
                     (unsigned long long)t->offset);
        uint64_t nel = 1;
        for (int k = 0; k < FQ_GGUF_MAX_DIMS; k++) {
            FUZZ_REQUIRE(t->ne[k] >= 1, "tensor '%s' ne[%d] = %lld", t->name, k, (long long)t->ne[k]);
            nel *= (uint64_t)t->ne[k];
        }
        const fq_type_traits *tr = fq_type_get(t->type);
        FUZZ_REQUIRE(tr && tr->name, "tensor '%s' unknown type %u accepted", t->name, t->type);
        FUZZ_REQUIRE(nel / (uint64_t)tr->blck * tr->type_size == t->nbytes, "tensor '%s' nbytes",
                     t->name);
        touch(t->data, t->nbytes);
    }
}

/* Copies every key and tensor into a writer, writes it, reads it back and compares. */
static void roundtrip(const fq_gguf *g) {
    fq_err e = {{0}};
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    FQ_ASSERT(w);
    for (uint64_t i = 0; i < g->n_kv; i++)
        FUZZ_REQUIRE(fq_gguf_writer_copy_kv(w, &g->kv[i], &e) == 0, "copy_kv: %s", e.msg);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        FUZZ_REQUIRE(fq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e) == 0,
                     "add_tensor: %s", e.msg);
    }
    const char *path = fuzz_scratch_path("gguf_rt");
    if (fq_gguf_writer_write(w, path, &e) != 0) {
        /* only I/O can fail here: the alignment key was validated by the reader */
        FUZZ_REQUIRE_MSG(e);
        fq_gguf_writer_free(w);
        return;
    }
    fq_gguf_writer_free(w);
    fq_gguf r;
    int rc = fq_gguf_open(&r, path, &e);
    FUZZ_REQUIRE(rc == 0, "the writer's output does not read back: %s", e.msg);
    FUZZ_REQUIRE(r.n_kv == g->n_kv && r.n_tensors == g->n_tensors, "counts differ");
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const fq_gguf_kv *a = &g->kv[i], *b = &r.kv[i];
        FUZZ_REQUIRE(!strcmp(a->key, b->key) && a->type == b->type, "key %llu differs",
                     (unsigned long long)i);
        if (a->type == FQ_GGUF_STRING)
            FUZZ_REQUIRE(a->str.len == b->str.len && !memcmp(a->str.ptr, b->str.ptr, a->str.len),
                         "string '%s' differs", a->key);
        else if (a->type == FQ_GGUF_ARRAY)
            FUZZ_REQUIRE(a->arr_type == b->arr_type && a->arr_n == b->arr_n, "array '%s' differs",
                         a->key);
        else
            FUZZ_REQUIRE(a->u64 == b->u64 && a->i64 == b->i64, "scalar '%s' differs", a->key);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *a = &g->tensors[i], *b = &r.tensors[i];
        FUZZ_REQUIRE(!strcmp(a->name, b->name) && a->type == b->type && a->nbytes == b->nbytes &&
                         !memcmp(a->ne, b->ne, sizeof a->ne) && !memcmp(a->data, b->data, a->nbytes),
                     "tensor '%s' differs", a->name);
    }
    fq_gguf_close(&r);
    unlink(path);
}

static void tokenizer(const fq_gguf *g) {
    fq_tokenizer *t;
    fq_err e = {{0}};
    if (fq_tokenizer_load(&t, g, &e)) {
        FUZZ_REQUIRE_MSG(e);
        return;
    }
    static const char text[] = "Hello world <s> </s>\xe2\x96\x81x\xff\n";
    int32_t *ids;
    size_t n;
    for (int ps = 0; ps < 2; ps++) {
        if (fq_tokenize(t, text, sizeof text - 1, true, ps, &ids, &n, &e)) {
            FUZZ_REQUIRE_MSG(e);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < fq_tokenizer_n_vocab(t), "id %d", ids[i]);
        char *out;
        size_t len;
        if (fq_detokenize(t, ids, n, ps, &out, &len, &e) == 0) free(out);
        free(ids);
    }
    fq_tokenizer_free(t);
}

/* Loads the input as a model from a file, as the CLI would, and runs a few tokens. */
static void model(const uint8_t *data, size_t size) {
    const char *path = fuzz_scratch_path("model");
    if (fuzz_write(path, data, size)) return;
    fq_err e = {{0}};
    fq_model *m = fq_model_load(path, &e);
    unlink(path);
    if (!m) {
        FUZZ_REQUIRE(!strncmp(e.msg, path, strlen(path)), "load error without the path: '%s'", e.msg);
        return;
    }
    uint8_t last = size ? data[size - 1] : 0;
    fq_ctx_params p = {.n_ctx = 8, .n_threads = 1, .exact = last & 1,
                       .cache_type = (last & 2) ? FQ_TYPE_F16 : FQ_TYPE_F32, .n_batch = 2};
    fq_ctx *c = fq_ctx_new(m, &p, &e);
    if (!c) {
        FUZZ_REQUIRE_MSG(e);
    } else {
        int32_t V = m->hp.n_vocab;
        int32_t toks[3] = {fq_tokenizer_bos(m->tok) >= 0 ? fq_tokenizer_bos(m->tok) : 0, V - 1, V / 2};
        float *logits = malloc((size_t)V * 3 * sizeof(float));
        FQ_ASSERT(logits);
        FUZZ_REQUIRE(fq_ctx_eval(c, toks, 3, 0, logits, 1, &e) == 0, "eval: %s", e.msg);
        int32_t bad = V;
        FUZZ_REQUIRE(fq_ctx_eval(c, &bad, 1, 3, logits, 0, &e) == -1 && e.msg[0],
                     "token id %d accepted", bad);
        free(logits);
        fq_ctx_free(c);
    }
    fq_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fq_gguf g;
    fq_err e = {{0}};
    if (fq_gguf_open_mem(&g, data, size, NAME, &e)) {
        FUZZ_REQUIRE(!strncmp(e.msg, NAME ": ", strlen(NAME) + 2), "message '%s'", e.msg);
        return 0;
    }
    check_kvs(&g);
    check_tensors(&g, data, size);
    roundtrip(&g);
    tokenizer(&g);
    int is_model = fq_gguf_find(&g, "general.architecture") != NULL;
    fq_gguf_close(&g);
    if (is_model) model(data, size);
    return 0;
}
