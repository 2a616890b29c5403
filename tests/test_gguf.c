/* test_gguf.c - GGUF reader and writer: every bundled model opens with the known values,
 * the writer round-trips, and each class of bad input fails with a message, no crash.
 *
 * Bad files are made by patching bytes of a real model in memory. Offsets of the fields
 * come from a small independent walker below (trusting its input, unlike the reader), so
 * the tests do not depend on the code under test to find what to corrupt. Every buffer
 * handed to fq_gguf_open_mem is a heap copy of exactly the file's size, so that ASan
 * catches any read past the end. Run from the repository root; FQ_TEST_VERBOSE=1 prints
 * each expected error message. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "outfile.h"
#include "harness.h"
#include "qtypes.h"

#define STORIES "models/stories260K.gguf"
#define MODELS_DIR "tests/data/models"

/* ---- independent layout walker ------------------------------------------------------ */

typedef struct {
    uint64_t len_at;   /* the key's u64 length */
    uint64_t len;
    uint64_t type_at;  /* the value's u32 type */
    uint32_t type;
    uint64_t val_at;   /* the value itself (for arrays: the element type) */
} kv_at;

typedef struct {
    uint64_t len_at, len; /* the name's u64 length */
    uint64_t ndims_at;
    uint32_t n_dims;
    uint64_t dims_at, type_at, offset_at;
} ti_at;

typedef struct {
    kv_at kv[64];
    int n_kv;
    ti_at ti[256];
    int n_ti;
    uint64_t infos_end; /* end of the tensor infos */
} layout;

static uint32_t rd32(const uint8_t *b, uint64_t at) {
    uint32_t v;
    memcpy(&v, b + at, 4);
    return v;
}
static uint64_t rd64(const uint8_t *b, uint64_t at) {
    uint64_t v;
    memcpy(&v, b + at, 8);
    return v;
}
static void wr32(uint8_t *b, uint64_t at, uint32_t v) { memcpy(b + at, &v, 4); }
static void wr64(uint8_t *b, uint64_t at, uint64_t v) { memcpy(b + at, &v, 8); }

static uint64_t scalar_size(uint32_t t) {
    static const uint8_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof sz ? sz[t] : 0;
}

/* Position after a value of type t at `at` (input trusted). */
static uint64_t skip_value(const uint8_t *b, uint64_t at, uint32_t t) {
    if (t == FQ_GGUF_STRING) return at + 8 + rd64(b, at);
    if (t == FQ_GGUF_ARRAY) {
        uint32_t et = rd32(b, at);
        uint64_t n = rd64(b, at + 4);
        at += 12;
        if (et != FQ_GGUF_STRING && et != FQ_GGUF_ARRAY) return at + n * scalar_size(et);
        for (uint64_t i = 0; i < n; i++) at = skip_value(b, at, et);
        return at;
    }
    return at + scalar_size(t);
}

static void walk(const uint8_t *b, layout *L) {
    memset(L, 0, sizeof *L);
    uint64_t nt = rd64(b, 8), nk = rd64(b, 16), at = 24;
    FQ_ASSERT(nk <= FQ_ARRAY_LEN(L->kv) && nt <= FQ_ARRAY_LEN(L->ti));
    for (uint64_t i = 0; i < nk; i++) {
        kv_at *k = &L->kv[L->n_kv++];
        k->len_at = at;
        k->len = rd64(b, at);
        k->type_at = at + 8 + k->len;
        k->type = rd32(b, k->type_at);
        k->val_at = k->type_at + 4;
        at = skip_value(b, k->val_at, k->type);
    }
    for (uint64_t i = 0; i < nt; i++) {
        ti_at *t = &L->ti[L->n_ti++];
        t->len_at = at;
        t->len = rd64(b, at);
        t->ndims_at = at + 8 + t->len;
        t->n_dims = rd32(b, t->ndims_at);
        t->dims_at = t->ndims_at + 4;
        t->type_at = t->dims_at + 8 * (uint64_t)t->n_dims;
        t->offset_at = t->type_at + 4;
        at = t->offset_at + 8;
    }
    L->infos_end = at;
}

static const kv_at *find_kv(const uint8_t *b, const layout *L, const char *key) {
    for (int i = 0; i < L->n_kv; i++)
        if (L->kv[i].len == strlen(key) && !memcmp(b + L->kv[i].len_at + 8, key, L->kv[i].len))
            return &L->kv[i];
    FQ_ASSERT(!"key not in test model");
    return NULL;
}

static const ti_at *find_ti(const uint8_t *b, const layout *L, const char *name) {
    for (int i = 0; i < L->n_ti; i++)
        if (L->ti[i].len == strlen(name) && !memcmp(b + L->ti[i].len_at + 8, name, L->ti[i].len))
            return &L->ti[i];
    FQ_ASSERT(!"tensor not in test model");
    return NULL;
}

/* ---- helpers ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *buf;
    uint64_t size;
    layout L;
} model;

static int load(model *m, const char *path) {
    fq_err e;
    size_t n;
    m->buf = (uint8_t *)fq_read_file(path, &n, &e);
    if (!m->buf) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    m->size = n;
    walk(m->buf, &m->L);
    return 0;
}

/* Opens an exact-size heap copy of buf[0..n). Returns open's result; msg gets the error. */
static int open_copy(const uint8_t *buf, uint64_t n, char *msg, size_t cap) {
    uint8_t *copy = malloc(n ? n : 1);
    FQ_ASSERT(copy);
    memcpy(copy, buf, n);
    fq_gguf g;
    fq_err e = {{0}};
    int rc = fq_gguf_open_mem(&g, copy, n, "bad.gguf", &e);
    snprintf(msg, cap, "%s", rc ? e.msg : "");
    if (rc == 0) fq_gguf_close(&g);
    free(copy);
    return rc;
}

/* Opens buf and expects failure with `phrase` in the message. */
static void expect_fail(const uint8_t *buf, uint64_t n, const char *phrase, const char *label) {
    char msg[FQ_ERR_MAX];
    int rc = open_copy(buf, n, msg, sizeof msg);
    CHECK(rc == -1, "%s: opened, expected an error containing '%s'", label, phrase);
    if (rc == -1 && getenv("FQ_TEST_VERBOSE")) printf("%-34s %s\n", label, msg);
    if (rc == -1) {
        CHECK(strstr(msg, phrase) != NULL, "%s: message '%s' lacks '%s'", label, msg, phrase);
        CHECK(!strncmp(msg, "bad.gguf: ", 10), "%s: message '%s' does not start with the name",
              label, msg);
    }
}

/* A patched copy of the model: call, then edit p, then expect_fail(p, m->size, ...). */
static uint8_t *dup_model(const model *m) {
    uint8_t *p = malloc(m->size);
    FQ_ASSERT(p);
    memcpy(p, m->buf, m->size);
    return p;
}

static const char *tmp_path(const char *tag) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "/tmp/fqlm_test_gguf_%ld_%s.gguf", (long)getpid(), tag);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- good files ----------------------------------------------------------------------- */

/* Invariants every successfully opened file must satisfy. */
static void check_invariants(const fq_gguf *g, const char *path) {
    CHECK(g->version == 2 || g->version == 3, "%s: version %u", path, g->version);
    CHECK(g->alignment && !(g->alignment & (g->alignment - 1)), "%s: alignment", path);
    CHECK(g->data_offset <= g->size, "%s: data offset past end", path);
    int bad = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        const uint8_t *d = t->data;
        bad += d < g->map + g->data_offset || d + t->nbytes > g->map + g->size;
        bad += t->offset % g->alignment != 0;
        bad += fq_gguf_find_tensor(g, t->name) != t;
        bad += t->nbytes != fq_row_size(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    }
    for (uint64_t i = 0; i < g->n_kv; i++) bad += fq_gguf_find(g, g->kv[i].key) != &g->kv[i];
    CHECK(bad == 0, "%s: %d tensor/key invariant failures", path, bad);
}

static void test_open_all(void) {
    const char *dirs[] = {MODELS_DIR, "models"};
    int opened = 0;
    for (size_t d = 0; d < FQ_ARRAY_LEN(dirs); d++) {
        DIR *dir = opendir(dirs[d]);
        CHECK(dir != NULL, "cannot list %s (run from the repository root)", dirs[d]);
        if (!dir) continue;
        struct dirent *de;
        while ((de = readdir(dir))) {
            size_t n = strlen(de->d_name);
            if (n < 5 || strcmp(de->d_name + n - 5, ".gguf")) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dirs[d], de->d_name);
            fq_gguf g;
            fq_err e = {{0}};
            int rc = fq_gguf_open(&g, path, &e);
            CHECK(rc == 0, "%s: %s", path, e.msg);
            if (rc) continue;
            opened++;
            check_invariants(&g, path);
            fq_gguf_close(&g);
        }
        closedir(dir);
    }
    CHECK(opened >= 20, "only %d models opened", opened);
}

static void test_stories_values(void) {
    fq_gguf g;
    fq_err e = {{0}};
    int rc = fq_gguf_open(&g, STORIES, &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    CHECK(g.version == 3 && g.alignment == 32, "version %u alignment %llu", g.version,
          (unsigned long long)g.alignment);
    CHECK(g.n_tensors == 48 && g.n_kv == 19, "counts");
    uint32_t u = 0;
    CHECK(fq_gguf_get_u32(&g, "llama.block_count", &u, &e) == 0 && u == 5, "block_count %u", u);
    CHECK(fq_gguf_get_u32(&g, "llama.embedding_length", &u, &e) == 0 && u == 64, "n_embd %u", u);
    CHECK(fq_gguf_get_u32(&g, "llama.attention.head_count_kv", &u, &e) == 0 && u == 4, "n_kv");
    CHECK(fq_gguf_get_u32(&g, "tokenizer.ggml.padding_token_id", &u, &e) == 0 &&
          u == UINT32_MAX, "u32 max");
    u = 77;
    CHECK(fq_gguf_get_u32(&g, "no.such.key", &u, &e) == 1 && u == 77, "absent key");
    CHECK(fq_gguf_get_u32(&g, "general.architecture", &u, &e) == -1 &&
          strstr(e.msg, "expected an integer"), "str as u32: %s", e.msg);
    float f = 0;
    CHECK(fq_gguf_get_f32(&g, "llama.attention.layer_norm_rms_epsilon", &f, &e) == 0 &&
          f > 0 && f < 1e-3f, "rms eps %g", f);
    CHECK(fq_gguf_get_f32(&g, "llama.block_count", &f, &e) == -1 && strstr(e.msg, "expected f32"),
          "u32 as f32: %s", e.msg);
    fq_str s = {0};
    CHECK(fq_gguf_get_str(&g, "general.architecture", &s, &e) == 0 && s.len == 5 &&
          !memcmp(s.ptr, "llama", 5), "architecture");
    CHECK(fq_gguf_get_str(&g, "llama.block_count", &s, &e) == -1, "u32 as str");

    const fq_gguf_kv *tok = fq_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(tok && tok->type == FQ_GGUF_ARRAY && tok->arr_type == FQ_GGUF_STRING &&
          tok->arr_n == 512 && tok->strs, "tokens array");
    if (tok && tok->strs && tok->arr_n == 512) {
        CHECK(tok->strs[0].len == 5 && !memcmp(tok->strs[0].ptr, "<unk>", 5), "token 0");
        CHECK(tok->strs[1].len == 3 && !memcmp(tok->strs[1].ptr, "<s>", 3), "token 1");
        CHECK(tok->strs[2].len == 4 && !memcmp(tok->strs[2].ptr, "</s>", 4), "token 2");
    }
    const fq_gguf_kv *sc = fq_gguf_find(&g, "tokenizer.ggml.scores");
    const fq_gguf_kv *tt = fq_gguf_find(&g, "tokenizer.ggml.token_type");
    CHECK(sc && sc->arr_type == FQ_GGUF_FLOAT32 && sc->arr_n == 512, "scores");
    CHECK(tt && tt->arr_type == FQ_GGUF_INT32 && tt->arr_n == 512, "token types");
    if (sc && tt && sc->arr_n == 512 && tt->arr_n == 512) {
        float s0;
        int32_t t0;
        memcpy(&s0, sc->arr_data + 4 * 300, 4);
        memcpy(&t0, tt->arr_data + 4 * 300, 4);
        CHECK(fq_gguf_arr_f32(sc, 300) == s0 && fq_gguf_arr_i64(tt, 300) == t0, "array getters");
        CHECK(fq_gguf_arr_i64(tt, 0) == 2 && fq_gguf_arr_i64(tt, 1) == 3, "token types 0/1: %lld %lld",
              (long long)fq_gguf_arr_i64(tt, 0), (long long)fq_gguf_arr_i64(tt, 1));
    }
    const fq_gguf_tensor *t = fq_gguf_find_tensor(&g, "token_embd.weight");
    CHECK(t && t->type == FQ_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 &&
          t->ne[2] == 1 && t->ne[3] == 1 && t->nbytes == 64 * 512 * 4, "token_embd.weight");
    t = fq_gguf_find_tensor(&g, "output_norm.weight");
    CHECK(t && t->n_dims == 1 && t->ne[0] == 64 && t->ne[1] == 1, "output_norm.weight");
    CHECK(fq_gguf_find_tensor(&g, "nope") == NULL, "absent tensor");
    fq_gguf_close(&g);
}

static void test_kquant_types(void) {
    fq_gguf g;
    fq_err e = {{0}};
    int rc = fq_gguf_open(&g, MODELS_DIR "/synth-l2-e256-q4_k_m.gguf", &e);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;
    int n4 = 0, n6 = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        n4 += g.tensors[i].type == FQ_TYPE_Q4_K;
        n6 += g.tensors[i].type == FQ_TYPE_Q6_K;
    }
    CHECK(n4 > 0 && n6 > 0, "q4_k_m: %d Q4_K and %d Q6_K tensors", n4, n6);
    fq_gguf_close(&g);
}

/* ---- writer ------------------------------------------------------------------------- */

static bool kv_equal(const fq_gguf_kv *a, const fq_gguf_kv *b) {
    if (strcmp(a->key, b->key) || a->type != b->type) return false;
    if (a->type == FQ_GGUF_STRING)
        return a->str.len == b->str.len && !memcmp(a->str.ptr, b->str.ptr, a->str.len);
    if (a->type != FQ_GGUF_ARRAY)
        return a->u64 == b->u64 && a->i64 == b->i64 && !memcmp(&a->f64, &b->f64, 8);
    if (a->arr_type != b->arr_type || a->arr_n != b->arr_n) return false;
    if (a->arr_type == FQ_GGUF_STRING) {
        for (uint64_t i = 0; i < a->arr_n; i++)
            if (a->strs[i].len != b->strs[i].len ||
                memcmp(a->strs[i].ptr, b->strs[i].ptr, a->strs[i].len))
                return false;
        return true;
    }
    if (a->arr_type == FQ_GGUF_ARRAY) return true; /* compared through file bytes */
    return !memcmp(a->arr_data, b->arr_data, a->arr_n * scalar_size(a->arr_type));
}

/* Copies every key and tensor of src to dst with the writer. Returns 0 or -1. */
static int copy_model(const fq_gguf *g, const char *dst, fq_err *e) {
    fq_gguf_writer *w = fq_gguf_writer_new(e);
    if (!w) return -1;
    int rc = 0;
    for (uint64_t i = 0; i < g->n_kv && !rc; i++) rc = fq_gguf_writer_copy_kv(w, &g->kv[i], e);
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        rc = fq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, e);
    }
    if (!rc) rc = fq_gguf_writer_write(w, dst, e);
    fq_gguf_writer_free(w);
    return rc;
}

static void test_roundtrip(const char *path) {
    fq_gguf a, b;
    fq_err e = {{0}};
    if (fq_gguf_open(&a, path, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    const char *out = tmp_path("rt");
    int rc = copy_model(&a, out, &e);
    CHECK(rc == 0, "round trip %s: %s", path, e.msg);
    if (rc == 0 && fq_gguf_open(&b, out, &e) == 0) {
        CHECK(b.version == 3 && b.n_kv == a.n_kv && b.n_tensors == a.n_tensors,
              "round trip %s: counts", path);
        int bad = 0;
        for (uint64_t i = 0; i < a.n_kv && i < b.n_kv; i++) bad += !kv_equal(&a.kv[i], &b.kv[i]);
        CHECK(bad == 0, "round trip %s: %d keys differ", path, bad);
        bad = 0;
        for (uint64_t i = 0; i < a.n_tensors && i < b.n_tensors; i++) {
            const fq_gguf_tensor *x = &a.tensors[i], *y = &b.tensors[i];
            bad += strcmp(x->name, y->name) || x->type != y->type || x->n_dims != y->n_dims ||
                   memcmp(x->ne, y->ne, sizeof x->ne) || x->nbytes != y->nbytes ||
                   memcmp(x->data, y->data, x->nbytes);
        }
        CHECK(bad == 0, "round trip %s: %d tensors differ", path, bad);
        check_invariants(&b, out);
        fq_gguf_close(&b);
    } else if (rc == 0) {
        CHECK(0, "round trip %s: reopen: %s", path, e.msg);
    }
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    CHECK(!file_exists(tmp), "temporary file left behind");
    snprintf(tmp, sizeof tmp, "%s.fqlm-tmp.%ld.0", out, (long)getpid());
    CHECK(!file_exists(tmp), "temporary file left behind");
    unlink(out);
    fq_gguf_close(&a);
}

static void test_writer(void) {
    fq_err e = {{0}};
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    FQ_ASSERT(w);
    static float data[256 * 2], small[32];
    for (int i = 0; i < 512; i++) data[i] = (float)i * 0.5f;
    for (int i = 0; i < 32; i++) small[i] = -(float)i;
    const char *toks[] = {"a", "", "\xff\x01 bytes", "last"};
    int32_t ints[] = {-1, 0, 7, INT32_MAX};
    int64_t ne[2] = {256, 2}, ne1[1] = {32}, ne_bad[1] = {33};
    CHECK(fq_gguf_writer_set_str(w, "general.architecture", "llama", &e) == 0, "set_str");
    CHECK(fq_gguf_writer_set_u32(w, "llama.block_count", 3, &e) == 0, "set_u32");
    CHECK(fq_gguf_writer_set_u32(w, "llama.block_count", 9, &e) == 0, "set_u32 again");
    CHECK(fq_gguf_writer_set_f32(w, "x.eps", 1e-5f, &e) == 0, "set_f32");
    CHECK(fq_gguf_writer_set_arr_str(w, "x.toks", toks, 4, &e) == 0, "set_arr_str");
    CHECK(fq_gguf_writer_set_arr(w, "x.ints", FQ_GGUF_INT32, 4, ints, &e) == 0, "set_arr");
    CHECK(fq_gguf_writer_set_arr(w, "x.bad", FQ_GGUF_STRING, 1, ints, &e) == -1, "set_arr str");
    CHECK(fq_gguf_writer_set_u32(w, "general.alignment", 64, &e) == 0, "alignment");
    CHECK(fq_gguf_writer_add_tensor(w, "a", FQ_TYPE_F32, 1, ne1, small, &e) == 0, "add a");
    CHECK(fq_gguf_writer_add_tensor(w, "b", FQ_TYPE_F32, 2, ne, data, &e) == 0, "add b");
    CHECK(fq_gguf_writer_add_tensor(w, "b", FQ_TYPE_F32, 1, ne1, small, &e) == -1 &&
          strstr(e.msg, "duplicate"), "duplicate tensor: %s", e.msg);
    CHECK(fq_gguf_writer_add_tensor(w, "c", 4, 1, ne1, small, &e) == -1 &&
          strstr(e.msg, "unknown type"), "unknown type: %s", e.msg);
    CHECK(fq_gguf_writer_add_tensor(w, "c", FQ_TYPE_Q4_0, 1, ne_bad, small, &e) == -1 &&
          strstr(e.msg, "block size"), "block multiple: %s", e.msg);
    CHECK(fq_gguf_writer_add_tensor(w, "c", FQ_TYPE_F32, 5, ne1, small, &e) == -1, "n_dims 5");

    const char *bad_path = "/nonexistent-dir-fqlm/x.gguf";
    CHECK(fq_gguf_writer_write(w, bad_path, &e) == -1 && strstr(e.msg, bad_path),
          "write to missing dir: %s", e.msg);
    const char *out = tmp_path("w");
    CHECK(fq_gguf_writer_write(w, out, &e) == 0, "write: %s", e.msg);
    fq_gguf_writer_free(w);

    fq_gguf g;
    if (fq_gguf_open(&g, out, &e)) {
        CHECK(0, "reopen: %s", e.msg);
        return;
    }
    uint32_t u = 0;
    CHECK(g.alignment == 64 && g.data_offset % 64 == 0, "alignment 64 honoured");
    CHECK(g.n_kv == 6 && !strcmp(g.kv[1].key, "llama.block_count"), "replace keeps order");
    CHECK(fq_gguf_get_u32(&g, "llama.block_count", &u, &e) == 0 && u == 9, "replaced value");
    const fq_gguf_kv *k = fq_gguf_find(&g, "x.toks");
    CHECK(k && k->arr_n == 4 && k->strs[1].len == 0 && k->strs[2].len == 8 &&
          !memcmp(k->strs[2].ptr, toks[2], 8), "string array");
    k = fq_gguf_find(&g, "x.ints");
    CHECK(k && k->arr_n == 4 && fq_gguf_arr_i64(k, 0) == -1 && fq_gguf_arr_i64(k, 3) == INT32_MAX &&
          fq_gguf_arr_f32(k, 2) == 7.0f, "int array");
    const fq_gguf_tensor *ta = fq_gguf_find_tensor(&g, "a"), *tb = fq_gguf_find_tensor(&g, "b");
    CHECK(ta && tb && ta->offset == 0 && tb->offset == 128 && !memcmp(tb->data, data, sizeof data) &&
          !memcmp(ta->data, small, sizeof small), "tensor data and offsets");
    check_invariants(&g, out);
    fq_gguf_close(&g);
    unlink(out);

    /* an invalid alignment must refuse to write */
    w = fq_gguf_writer_new(&e);
    fq_gguf_writer_set_u32(w, "general.alignment", 48, &e);
    CHECK(fq_gguf_writer_write(w, out, &e) == -1 && strstr(e.msg, "power of two") &&
          !file_exists(out), "alignment 48: %s", e.msg);
    fq_gguf_writer_free(w);
}

/* ---- hand-built files (nested arrays, bools, alignment) ------------------------------ */

typedef struct {
    uint8_t b[4096];
    uint64_t n;
} builder;

static void b_put(builder *B, const void *p, uint64_t n) {
    FQ_ASSERT(B->n + n <= sizeof B->b);
    memcpy(B->b + B->n, p, n);
    B->n += n;
}
static void b_u32(builder *B, uint32_t v) { b_put(B, &v, 4); }
static void b_u64(builder *B, uint64_t v) { b_put(B, &v, 8); }
static void b_str(builder *B, const char *s) {
    b_u64(B, strlen(s));
    b_put(B, s, strlen(s));
}
static void b_header(builder *B, uint64_t nt, uint64_t nk) {
    B->n = 0;
    b_put(B, "GGUF", 4);
    b_u32(B, 3);
    b_u64(B, nt);
    b_u64(B, nk);
}

/* ---- where the writer may write (issue 11, items 2 and 16) ---------------------------- */

/* Entries of dir whose name holds "tmp." (a temporary file of any writer, old or new). */
static int temps_in(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) n += strstr(de->d_name, "tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static fq_gguf_writer *small_writer(void) {
    static float data[64];
    fq_err e;
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    FQ_ASSERT(w);
    int64_t ne[1] = {64};
    FQ_ASSERT(fq_gguf_writer_set_str(w, "general.architecture", "llama", &e) == 0);
    FQ_ASSERT(fq_gguf_writer_add_tensor(w, "t", FQ_TYPE_F32, 1, ne, data, &e) == 0);
    return w;
}

static int is_gguf(const char *path) {
    fq_gguf g;
    fq_err e;
    if (fq_gguf_open(&g, path, &e)) return 0;
    fq_gguf_close(&g);
    return 1;
}

static void test_writer_targets(void) {
    char dir[256], p[300], q[600], victim[300];
    snprintf(dir, sizeof dir, "/tmp/fqlm_test_gguf_%ld_targets", (long)getpid());
    FQ_ASSERT(mkdir(dir, 0700) == 0);
    fq_gguf_writer *w = small_writer();
    fq_err e;
    struct stat st;
    /* a device node of our own (never the system's /dev/null): refused, left a device */
    snprintf(p, sizeof p, "%s/nulldev", dir);
    if (mknod(p, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        e.msg[0] = 0;
        CHECK(fq_gguf_writer_write(w, p, &e) == -1 && strstr(e.msg, "character device"),
              "writer over a device node: '%s'", e.msg);
        CHECK(lstat(p, &st) == 0 && S_ISCHR(st.st_mode), "the writer replaced a device node with a file");
        /* a link to it: refused too, link and device kept */
        snprintf(q, sizeof q, "%s/to-dev", dir);
        FQ_ASSERT(symlink("nulldev", q) == 0);
        e.msg[0] = 0;
        CHECK(fq_gguf_writer_write(w, q, &e) == -1 && strstr(e.msg, "character device"),
              "writer over a link to a device: '%s'", e.msg);
        CHECK(lstat(q, &st) == 0 && S_ISLNK(st.st_mode) && lstat(p, &st) == 0 && S_ISCHR(st.st_mode),
              "the writer replaced a link to a device");
    } else {
        printf("test_gguf: mknod not permitted here: device-node case skipped (FIFO case still runs)\n");
    }
    /* a FIFO: refused at once (no reader is waiting: opening it would block) */
    snprintf(p, sizeof p, "%s/fifo", dir);
    FQ_ASSERT(mkfifo(p, 0600) == 0);
    pid_t kid = fork();
    FQ_ASSERT(kid >= 0);
    if (kid == 0) {
        alarm(20); /* a writer that opens the FIFO blocks: end as a failure, not a hang */
        fq_err ce;
        _exit(fq_gguf_writer_write(w, p, &ce) == -1 && strstr(ce.msg, "FIFO") ? 0 : 1);
    }
    int ws = 0;
    waitpid(kid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "writer over a FIFO: not refused (status %d)", ws);
    CHECK(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode), "the writer replaced a FIFO");
    /* a directory */
    snprintf(p, sizeof p, "%s/sub", dir);
    FQ_ASSERT(mkdir(p, 0700) == 0);
    e.msg[0] = 0;
    CHECK(fq_gguf_writer_write(w, p, &e) == -1 && strstr(e.msg, "directory"), "writer over a directory: '%s'", e.msg);
    CHECK(temps_in(dir) == 0, "a refused write left a temporary file");
    /* a link to a regular file: written through, the link stays */
    snprintf(victim, sizeof victim, "%s/real.gguf", dir);
    snprintf(q, sizeof q, "%s/link.gguf", dir);
    FQ_ASSERT(fq_write_file_atomic(victim, "old", 3, &e) == 0 && symlink("real.gguf", q) == 0);
    CHECK(fq_gguf_writer_write(w, q, &e) == 0, "writer through a link: %s", e.msg);
    CHECK(lstat(q, &st) == 0 && S_ISLNK(st.st_mode) && is_gguf(victim), "a link was not written through");
    /* a link to nothing: refused */
    snprintf(q, sizeof q, "%s/dangling.gguf", dir);
    FQ_ASSERT(symlink("nowhere/x.gguf", q) == 0);
    e.msg[0] = 0;
    CHECK(fq_gguf_writer_write(w, q, &e) == -1 && strstr(e.msg, "does not exist"), "dangling link: '%s'", e.msg);
    /* links planted at every temporary name this process could use, aimed at a file of
     * someone else's: the write fails or goes elsewhere, the victim is never touched */
    snprintf(victim, sizeof victim, "%s/victim", dir);
    FQ_ASSERT(fq_write_file_atomic(victim, "keep me", 7, &e) == 0);
    snprintf(p, sizeof p, "%s/out.gguf", dir);
    snprintf(q, sizeof q, "%s.tmp.%ld", p, (long)getpid());
    FQ_ASSERT(symlink(victim, q) == 0);
    for (int k = 0; k < 400; k++) {
        snprintf(q, sizeof q, "%s.fqlm-tmp.%ld.%d", p, (long)getpid(), k);
        FQ_ASSERT(symlink(victim, q) == 0);
    }
    e.msg[0] = 0;
    int rc = fq_gguf_writer_write(w, p, &e);
    size_t vn = 0;
    char *v = fq_read_file(victim, &vn, &e);
    CHECK(v && vn == 7 && !memcmp(v, "keep me", 7), "a planted link at a temporary name redirected the write");
    CHECK(rc == 0 ? is_gguf(p) : strstr(e.msg, "temporary") != NULL, "planted links: rc %d '%s'", rc, e.msg);
    free(v);
    /* a temporary file that a killed writer left (its process is gone) is removed by the
     * next write of the same path; one of a live process is not */
    snprintf(p, sizeof p, "%s/killed.gguf", dir);
    pid_t dead = fork();
    FQ_ASSERT(dead >= 0);
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char stale[600], live[600];
    snprintf(stale, sizeof stale, "%s.fqlm-tmp.%ld.3", p, (long)dead);
    snprintf(live, sizeof live, "%s.fqlm-tmp.%ld.3", p, (long)getppid());
    FQ_ASSERT(fq_write_file_atomic(stale, "half a model", 12, &e) == 0 && fq_write_file_atomic(live, "x", 1, &e) == 0);
    const char *last = NULL;
    int before = fq_out_stale_removed(NULL);
    CHECK(fq_gguf_writer_write(w, p, &e) == 0 && is_gguf(p), "write after a killed one: %s", e.msg);
    CHECK(!file_exists(stale) && fq_out_stale_removed(&last) == before + 1 && last && strstr(last, "killed.gguf"),
          "the stale temporary file of a dead process was not removed");
    CHECK(file_exists(live), "the temporary file of a live process was removed");
    unlink(live);
    fq_gguf_writer_free(w);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "rm");
}

static void test_nested_and_bools(void) {
    builder B;
    b_header(&B, 0, 3);
    b_str(&B, "nest");
    b_u32(&B, FQ_GGUF_ARRAY);
    b_u32(&B, FQ_GGUF_ARRAY);
    b_u64(&B, 2);
    b_u32(&B, FQ_GGUF_UINT32); /* [1, 2, 3] */
    b_u64(&B, 3);
    b_u32(&B, 1), b_u32(&B, 2), b_u32(&B, 3);
    b_u32(&B, FQ_GGUF_STRING); /* ["x", "yz"] */
    b_u64(&B, 2);
    b_str(&B, "x"), b_str(&B, "yz");
    b_str(&B, "flag");
    b_u32(&B, FQ_GGUF_BOOL);
    uint8_t one = 1;
    uint64_t flag_at = B.n;
    b_put(&B, &one, 1);
    b_str(&B, "bools");
    b_u32(&B, FQ_GGUF_ARRAY);
    b_u32(&B, FQ_GGUF_BOOL);
    b_u64(&B, 3);
    uint8_t bools[3] = {0, 1, 1};
    uint64_t bools_at = B.n;
    b_put(&B, bools, 3);
    builder good = B;

    uint8_t *copy = malloc(B.n);
    memcpy(copy, B.b, B.n);
    fq_gguf g;
    fq_err e = {{0}};
    int rc = fq_gguf_open_mem(&g, copy, B.n, "nested.gguf", &e);
    CHECK(rc == 0, "nested arrays: %s", e.msg);
    if (rc == 0) {
        const fq_gguf_kv *k = fq_gguf_find(&g, "nest");
        CHECK(k && k->arr_type == FQ_GGUF_ARRAY && k->arr_n == 2 && !k->strs, "nested kv");
        k = fq_gguf_find(&g, "flag");
        CHECK(k && k->type == FQ_GGUF_BOOL && k->u64 == 1, "bool");
        /* the writer copies nested arrays byte for byte */
        const char *out = tmp_path("nest");
        CHECK(copy_model(&g, out, &e) == 0, "copy nested: %s", e.msg);
        size_t n = 0;
        uint8_t *back = (uint8_t *)fq_read_file(out, &n, &e);
        CHECK(back && n >= B.n && !memcmp(back, B.b, B.n), "nested copy is byte-identical");
        free(back);
        unlink(out);
        fq_gguf_close(&g);
    }
    free(copy);

    B.b[bools_at + 1] = 2;
    expect_fail(B.b, B.n, "bool array element", "bool array element 2");
    B = good;
    B.b[flag_at] = 9;
    expect_fail(B.b, B.n, "expected 0 or 1", "bool value 9");

    /* 40 levels of nesting: a recursion bomb must stop at the limit */
    b_header(&B, 0, 1);
    b_str(&B, "deep");
    b_u32(&B, FQ_GGUF_ARRAY);
    for (int i = 0; i < 40; i++) {
        b_u32(&B, FQ_GGUF_ARRAY);
        b_u64(&B, 1);
    }
    b_u32(&B, FQ_GGUF_UINT8);
    b_u64(&B, 0);
    expect_fail(B.b, B.n, "nested deeper", "nesting bomb");

    /* general.alignment: must be a u32 nonzero power of two */
    b_header(&B, 0, 1);
    b_str(&B, "general.alignment");
    uint64_t type_at = B.n;
    b_u32(&B, FQ_GGUF_UINT32);
    b_u32(&B, 48);
    expect_fail(B.b, B.n, "power of two", "alignment 48");
    wr32(B.b, type_at + 4, 0);
    expect_fail(B.b, B.n, "power of two", "alignment 0");
    wr32(B.b, type_at, FQ_GGUF_INT32);
    wr32(B.b, type_at + 4, 32);
    expect_fail(B.b, B.n, "expected u32", "alignment as i32");

    /* general.alignment 1 (a power of two, accepted by llama.cpp): the data section starts
     * right after the tensor infos, at byte 90. Data read in place must still be aligned
     * for its type: an F32 tensor there is refused (its loads would be misaligned), an F16
     * one is fine, and so is an F32 one at offset 2 (byte 92). */
    static const struct { uint32_t type; uint64_t offset; int ok; } al1[] = {
        {FQ_TYPE_F32, 0, 0}, {FQ_TYPE_F16, 0, 1}, {FQ_TYPE_F32, 2, 1}, {FQ_TYPE_Q8_0, 1, 0},
    };
    for (size_t k = 0; k < FQ_ARRAY_LEN(al1); k++) {
        b_header(&B, 1, 1);
        b_str(&B, "general.alignment");
        b_u32(&B, FQ_GGUF_UINT32);
        b_u32(&B, 1);
        b_str(&B, "w");
        b_u32(&B, 1);
        b_u64(&B, al1[k].type == FQ_TYPE_Q8_0 ? 32 : 2);
        b_u32(&B, al1[k].type);
        b_u64(&B, al1[k].offset);
        FQ_ASSERT(B.n == 90);
        uint8_t zeros[40] = {0};
        b_put(&B, zeros, sizeof zeros);
        char msg[FQ_ERR_MAX];
        int orc = open_copy(B.b, B.n, msg, sizeof msg);
        if (al1[k].ok)
            CHECK(orc == 0, "alignment 1, %s at byte %llu: %s", fq_type_name(al1[k].type),
                  (unsigned long long)(90 + al1[k].offset), msg);
        else
            CHECK(orc == -1 && strstr(msg, "bad.gguf: tensor 'w'") && strstr(msg, "general.alignment is 1") &&
                      strstr(msg, al1[k].type == FQ_TYPE_F32 ? "data starts at byte 90, not a multiple of 4"
                                                              : "data starts at byte 91, not a multiple of 2"),
                  "alignment 1, %s at byte %llu: rc %d: %s", fq_type_name(al1[k].type),
                  (unsigned long long)(90 + al1[k].offset), orc, msg);
    }
}

/* ---- bad inputs patched into a real model ------------------------------------------- */

static void test_header_errors(const model *m) {
    uint8_t *p = dup_model(m);
    memcpy(p, "ABCD", 4);
    expect_fail(p, m->size, "not a GGUF file (magic 'ABCD' at byte 0, expected 'GGUF')", "magic");
    memcpy(p, "\x7f" "ELF", 4);
    expect_fail(p, m->size, "magic '\\x7fELF'", "ELF magic escaped");
    memcpy(p, "GGUF", 4);
    wr32(p, 4, 1);
    expect_fail(p, m->size, "unsupported GGUF version 1 (fqlm reads v2 and v3)", "version 1");
    wr32(p, 4, 99);
    expect_fail(p, m->size, "unsupported GGUF version 99", "version 99");
    wr32(p, 4, 0);
    expect_fail(p, m->size, "unsupported GGUF version 0", "version 0");
    wr32(p, 4, 0x03000000);
    expect_fail(p, m->size, "big-endian", "big-endian");
    wr32(p, 4, 2); /* v2 has the same layout as v3 */
    char msg[FQ_ERR_MAX];
    CHECK(open_copy(p, m->size, msg, sizeof msg) == 0, "version 2 opens: %s", msg);
    wr32(p, 4, 3);

    const uint64_t huge[] = {(uint64_t)1 << 60, (uint64_t)1 << 63, UINT64_MAX, 1u << 20};
    for (size_t i = 0; i < FQ_ARRAY_LEN(huge); i++) {
        memcpy(p, m->buf, 24);
        wr64(p, 16, huge[i]);
        expect_fail(p, m->size, "metadata keys", "huge n_kv");
        memcpy(p, m->buf, 24);
        wr64(p, 8, huge[i]);
        expect_fail(p, m->size, "tensors", "huge n_tensors");
    }
    /* n_tensors that passes the first bound but not the one after the metadata */
    memcpy(p, m->buf, 24);
    wr64(p, 8, (m->size - 24) / 33);
    expect_fail(p, m->size, "tensors", "n_tensors past metadata");
    free(p);

    expect_fail(m->buf, 0, "file is empty", "empty buffer");
    expect_fail(m->buf, 3, "not a GGUF file", "3 bytes");
}

static void test_metadata_errors(const model *m) {
    uint8_t *p = dup_model(m);
    const kv_at *k0 = &m->L.kv[0];
    const uint64_t lens[] = {(uint64_t)1 << 63, ((uint64_t)1 << 63) - 1, UINT64_MAX, m->size};
    for (size_t i = 0; i < FQ_ARRAY_LEN(lens); i++) {
        wr64(p, k0->len_at, lens[i]);
        expect_fail(p, m->size, "truncated in metadata key 0", "huge key length");
    }
    wr64(p, k0->len_at, 0);
    expect_fail(p, m->size, "empty key", "empty key");
    memcpy(p, m->buf, m->size);
    p[k0->len_at + 8 + 3] = 0;
    expect_fail(p, m->size, "NUL byte", "NUL in key");
    memcpy(p, m->buf, m->size);

    const kv_at *arch = find_kv(m->buf, &m->L, "general.architecture");
    wr64(p, arch->val_at, (uint64_t)1 << 62);
    expect_fail(p, m->size, "('general.architecture'): string value of 4611686018427387904 bytes",
                "huge string value");
    memcpy(p, m->buf, m->size);

    /* array counts near 2^63: the count is bounded before anything is allocated */
    const kv_at *tok = find_kv(m->buf, &m->L, "tokenizer.ggml.tokens");
    wr64(p, tok->val_at + 4, ((uint64_t)1 << 63) + 5);
    expect_fail(p, m->size, "('tokenizer.ggml.tokens'): array of 9223372036854775813 strings needs at least",
                "huge string array");
    wr64(p, tok->val_at + 4, 600); /* plausible but too many for what follows: runs off */
    expect_fail(p, m->size, "", "string array overrun");
    memcpy(p, m->buf, m->size);
    const kv_at *sc = find_kv(m->buf, &m->L, "tokenizer.ggml.scores");
    wr64(p, sc->val_at + 4, UINT64_MAX);
    expect_fail(p, m->size, "f32 values needs at least", "huge f32 array");
    memcpy(p, m->buf, m->size);
    wr64(p, tok->val_at + 12 + 8 * 0, (uint64_t)1 << 63); /* first token's length */
    expect_fail(p, m->size, "string 0 of 512", "huge token length");
    memcpy(p, m->buf, m->size);

    wr32(p, tok->val_at, 13);
    expect_fail(p, m->size, "unknown array element type 13", "array element type");
    memcpy(p, m->buf, m->size);
    const kv_at *bc = find_kv(m->buf, &m->L, "llama.block_count");
    wr32(p, bc->type_at, 13);
    expect_fail(p, m->size, "('llama.block_count'): unknown value type 13", "value type");
    wr32(p, bc->type_at, FQ_GGUF_BOOL); /* its first byte is 5 */
    expect_fail(p, m->size, "expected 0 or 1", "bool 5");
    memcpy(p, m->buf, m->size);

    /* duplicate keys: bos and eos ids have the same length */
    const kv_at *eos = find_kv(m->buf, &m->L, "tokenizer.ggml.eos_token_id");
    memcpy(p + eos->len_at + 8, "tokenizer.ggml.bos_token_id", eos->len);
    expect_fail(p, m->size, "duplicate metadata key 'tokenizer.ggml.bos_token_id'", "dup key");
    free(p);
}

static void test_tensor_errors(const model *m) {
    uint8_t *p = dup_model(m);
    const layout *L = &m->L;
    const ti_at *emb = find_ti(m->buf, L, "token_embd.weight");
    const ti_at *last = &L->ti[L->n_ti - 1];

    wr32(p, emb->type_at, 4);
    expect_fail(p, m->size, "tensor 0 ('token_embd.weight'): unknown type 4", "type 4");
    wr32(p, emb->type_at, 1000);
    expect_fail(p, m->size, "unknown type 1000", "type 1000");
    memcpy(p, m->buf, m->size);

    wr32(p, emb->ndims_at, 5);
    expect_fail(p, m->size, "n_dims is 5", "n_dims 5");
    wr32(p, emb->ndims_at, 0);
    expect_fail(p, m->size, "n_dims is 0", "n_dims 0");
    wr32(p, emb->ndims_at, UINT32_MAX);
    expect_fail(p, m->size, "n_dims is 4294967295", "n_dims max");
    memcpy(p, m->buf, m->size);

    wr64(p, emb->dims_at + 8, 0);
    expect_fail(p, m->size, "dimension 1 is 0", "dim 0");
    wr64(p, emb->dims_at + 8, (uint64_t)1 << 63);
    expect_fail(p, m->size, "negative", "dim 2^63");
    wr64(p, emb->dims_at, (uint64_t)1 << 32);
    wr64(p, emb->dims_at + 8, (uint64_t)1 << 32);
    expect_fail(p, m->size, "overflows", "dim product 2^64");
    wr64(p, emb->dims_at, (uint64_t)1 << 40);
    wr64(p, emb->dims_at + 8, (uint64_t)1 << 22);
    expect_fail(p, m->size, "overflows", "dim product 2^62 x 4 bytes");
    wr64(p, emb->dims_at, 64);
    wr64(p, emb->dims_at + 8, 1 << 20); /* fits the arithmetic, not the file */
    expect_fail(p, m->size, "'token_embd.weight': data ends at byte", "dims past end");
    memcpy(p, m->buf, m->size);

    uint64_t off = rd64(m->buf, last->offset_at);
    wr64(p, last->offset_at, off + 32 * 1024);
    expect_fail(p, m->size, "data ends at byte", "data past end");
    char want[128];
    snprintf(want, sizeof want, "file has %llu", (unsigned long long)m->size);
    expect_fail(p, m->size, want, "data past end names the size");
    wr64(p, last->offset_at, UINT64_MAX - 31);
    expect_fail(p, m->size, "overflows", "offset overflow");
    wr64(p, last->offset_at, off + 1);
    expect_fail(p, m->size, "not a multiple of the alignment 32", "misaligned +1");
    wr64(p, last->offset_at, off + 16);
    expect_fail(p, m->size, "not a multiple of the alignment", "misaligned +16");
    memcpy(p, m->buf, m->size);

    /* overlap: tensor 2 placed on tensor 1, and tensor 1 half into tensor 0 */
    wr64(p, L->ti[2].offset_at, rd64(m->buf, L->ti[1].offset_at));
    expect_fail(p, m->size, "overlap", "overlap same offset");
    memcpy(p, m->buf, m->size);
    wr64(p, L->ti[2].offset_at, 32);
    expect_fail(p, m->size, "overlap", "overlap inside");
    memcpy(p, m->buf, m->size);

    /* duplicate tensor names: attn_k -> attn_q */
    const ti_at *k = find_ti(m->buf, L, "blk.0.attn_k.weight");
    p[k->len_at + 8 + 11] = 'q';
    expect_fail(p, m->size, "duplicate tensor name 'blk.0.attn_q.weight'", "dup tensor");
    memcpy(p, m->buf, m->size);

    /* tensor name length past the end, empty, with a NUL */
    wr64(p, emb->len_at, m->size);
    expect_fail(p, m->size, "truncated in tensor info 0", "huge name");
    wr64(p, emb->len_at, 0);
    expect_fail(p, m->size, "empty tensor name", "empty name");
    memcpy(p, m->buf, m->size);
    p[emb->len_at + 8] = 0;
    expect_fail(p, m->size, "NUL byte", "NUL in name");
    free(p);

    /* ne[0] not a multiple of the block size, in a Q4_0 model */
    model q;
    if (load(&q, MODELS_DIR "/stories260K-ff192-q4_0.gguf")) {
        CHECK(0, "cannot load q4_0 model");
        return;
    }
    const ti_at *t = NULL;
    for (int i = 0; i < q.L.n_ti && !t; i++)
        if (rd32(q.buf, q.L.ti[i].type_at) == FQ_TYPE_Q4_0) t = &q.L.ti[i];
    CHECK(t != NULL, "q4_0 model has a Q4_0 tensor");
    if (t) {
        p = dup_model(&q);
        wr64(p, t->dims_at, rd64(q.buf, t->dims_at) + 1);
        expect_fail(p, q.size, "multiple of 32", "Q4_0 ne[0] not a block multiple");
        free(p);
    }
    free(q.buf);
}

/* End of the bytes a file uses: data of the last tensor, or metadata when it has none. */
static uint64_t used_end(const model *m) {
    fq_gguf g;
    fq_err e;
    uint8_t *copy = dup_model(m);
    uint64_t end = 0;
    if (fq_gguf_open_mem(&g, copy, m->size, "x", &e) == 0) {
        end = m->L.infos_end;
        for (uint64_t i = 0; i < g.n_tensors; i++)
            end = FQ_MAX(end, g.data_offset + g.tensors[i].offset + g.tensors[i].nbytes);
        fq_gguf_close(&g);
    }
    free(copy);
    return end;
}

/* Truncates at every byte of the first 2 KiB and at ~200 points after: each must fail
 * cleanly, unless the cut only drops bytes nothing uses. */
static void test_truncation(const model *m, const char *label) {
    uint64_t end = used_end(m);
    CHECK(end > 0 && end <= m->size, "%s: used end %llu", label, (unsigned long long)end);
    int wrong = 0, tried = 0;
    uint64_t step = m->size > 2048 ? (m->size - 2048) / 200 + 1 : 1;
    for (uint64_t n = 0; n < m->size; n += n < 2048 ? 1 : step) {
        char msg[FQ_ERR_MAX];
        int rc = open_copy(m->buf, n, msg, sizeof msg);
        tried++;
        bool ok = n >= end ? rc == 0
                           : rc == -1 && (strstr(msg, "truncated") || strstr(msg, "data ends at") ||
                                          strstr(msg, "not a GGUF file"));
        if (!ok && wrong++ < 5)
            CHECK(0, "%s truncated to %llu bytes: rc %d, '%s'", label, (unsigned long long)n, rc, msg);
    }
    CHECK(wrong == 0, "%s: %d of %d truncations misbehaved", label, wrong, tried);
    CHECK(tried > 2200 || m->size < 2300, "%s: only %d truncations", label, tried);
}

/* Random byte corruption of the metadata and tensor infos: open must either succeed with
 * consistent results or fail with a message; never crash (ASan watches the reads). */
static void test_fuzz(const model *m) {
    uint8_t *p = dup_model(m);
    uint64_t span = m->L.infos_end + 64;
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int failed = 0, opened = 0, nomsg = 0;
    for (int it = 0; it < 3000; it++) {
        int nflip = 1 + it % 4;
        uint64_t at[4];
        for (int j = 0; j < nflip; j++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            at[j] = (seed >> 17) % span;
            p[at[j]] = (uint8_t)(seed >> 50);
        }
        fq_gguf g;
        fq_err e = {{0}};
        if (fq_gguf_open_mem(&g, p, m->size, "fuzz.gguf", &e) == 0) {
            opened++;
            fq_gguf_close(&g);
        } else {
            failed++;
            nomsg += e.msg[0] == 0;
        }
        for (int j = 0; j < nflip; j++) p[at[j]] = m->buf[at[j]];
    }
    CHECK(nomsg == 0, "fuzz: %d failures without a message", nomsg);
    CHECK(failed > 100 && opened > 10, "fuzz: %d failed, %d opened", failed, opened);
    free(p);
}

/* Errors that only real files can produce. */
static void test_files(const model *m) {
    fq_gguf g;
    fq_err e = {{0}};
    CHECK(fq_gguf_open(&g, "tests/data", &e) == -1 && strstr(e.msg, "tests/data: is a directory"),
          "directory: %s", e.msg);
    CHECK(fq_gguf_open(&g, "tests/data/no-such-model.gguf", &e) == -1 &&
          strstr(e.msg, "no-such-model.gguf: cannot open: No such file"), "missing: %s", e.msg);
    const char *path = tmp_path("bad");
    CHECK(fq_write_file_atomic(path, "", 0, &e) == 0, "%s", e.msg);
    CHECK(fq_gguf_open(&g, path, &e) == -1 && strstr(e.msg, "empty"), "empty file: %s", e.msg);
    CHECK(fq_write_file_atomic(path, m->buf, m->size / 2, &e) == 0, "%s", e.msg);
    CHECK(fq_gguf_open(&g, path, &e) == -1 && strstr(e.msg, "data ends at") &&
          !strncmp(e.msg, path, strlen(path)), "half file: %s", e.msg);
    uint8_t *p = dup_model(m);
    memcpy(p, "GGML", 4);
    CHECK(fq_write_file_atomic(path, p, m->size, &e) == 0, "%s", e.msg);
    CHECK(fq_gguf_open(&g, path, &e) == -1 && strstr(e.msg, "magic 'GGML'"), "magic file: %s",
          e.msg);
    free(p);
    CHECK(fq_gguf_open(&g, "/dev/null", &e) == -1 && strstr(e.msg, "not a regular file"),
          "/dev/null: %s", e.msg);
    unlink(path);
    fq_gguf_close(&g); /* closing a failed/zeroed handle is harmless */
}


/* ---- `fqlm inspect` (only when tests/run.sh passes FQLM_BIN) ------------------------ */

/* A strict JSON syntax check (RFC 8259): enough to prove --json output parses. Returns
 * the position after one value, or NULL. */
static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}
static const char *json_value_end(const char *p, int depth);
static const char *json_string_end(const char *p) {
    if (*p++ != '"') return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL; /* includes the terminating NUL */
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 5;
            } else if (*p && strchr("\"\\/bfnrt", *p)) {
                p++;
            } else {
                return NULL;
            }
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        int k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!k || c > 0xF4) return NULL;
        for (int i = 1; i < k; i++)
            if (((unsigned char)p[i] & 0xC0) != 0x80) return NULL;
        p += k;
    }
}
static const char *json_value_end(const char *p, int depth) {
    p = json_ws(p);
    if (depth > 64) return NULL;
    if (*p == '"') return json_string_end(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = json_string_end(json_ws(p));
                if (!p || *(p = json_ws(p)) != ':') return NULL;
                p++;
            }
            if (!(p = json_value_end(p, depth + 1))) return NULL;
            p = json_ws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    for (const char *lit = "true\0false\0null\0"; *lit; lit += strlen(lit) + 1)
        if (!strncmp(p, lit, strlen(lit))) return p + strlen(lit);
    const char *q = p;
    if (*q == '-') q++;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') while (*q >= '0' && *q <= '9') q++;
    else return NULL;
    if (*q == '.') {
        if (*++q < '0' || *q > '9') return NULL;
        while (*q >= '0' && *q <= '9') q++;
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (*q < '0' || *q > '9') return NULL;
        while (*q >= '0' && *q <= '9') q++;
    }
    return q;
}
static bool json_valid(const char *s) {
    const char *end = json_value_end(s, 0);
    return end && *json_ws(end) == 0;
}

/* Runs `FQLM_BIN inspect ARGS`, returns its exit status; stdout goes to *out (malloc'd). */
static int run_inspect(const char *bin, const char *args, char **out) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s inspect %s 2>/dev/null", bin, args);
    FILE *f = popen(cmd, "r");
    FQ_ASSERT(f);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
        FQ_ASSERT(buf);
    }
    buf[n] = 0;
    int st = pclose(f);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    /* the checker itself must reject what it is there to catch */
    CHECK(json_valid("{\"a\": [1, -2.5e3, true, null, \"x\\u00ff\\n\"], \"b\": {}}"), "json ok");
    CHECK(!json_valid("{\"a\": \"\x01\"}") && !json_valid("[1,]") && !json_valid("\"\xff\"") &&
          !json_valid("[nan]") && !json_valid("{\"a\" 1}") && !json_valid("[1] x"), "json bad");
    const char *bin = getenv("FQLM_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("test_gguf: FQLM_BIN not set or not executable: skipping the inspect checks\n");
        return;
    }
    char *out;
    int rc = run_inspect(bin, STORIES, &out);
    CHECK(rc == 0 && strstr(out, "GGUF version:  3") && strstr(out, "type F32:") &&
          strstr(out, "[512 strings: \"<unk>\", \"<s>\", \"</s>\", ...]") &&
          strstr(out, "token_embd.weight") && strstr(out, "n_layer         5"),
          "inspect text (rc %d):\n%s", rc, out);
    free(out);
    rc = run_inspect(bin, "--json " MODELS_DIR "/synth-l2-e256-q4_k_m.gguf", &out);
    CHECK(rc == 0 && json_valid(out) && strstr(out, "\"name\": \"Q4_K_M\"") &&
          strstr(out, "\"type\": \"Q6_K\""), "inspect --json (rc %d):\n%s", rc, out);
    free(out);

    /* hostile strings: control characters, invalid UTF-8, NaN must still give valid JSON */
    builder B;
    b_header(&B, 0, 4);
    b_str(&B, "key\x01\xff\"");
    b_u32(&B, FQ_GGUF_STRING);
    b_str(&B, "\xff\xfe \xe2\x82\xac \"q\" \\ \n\t\x7f \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \x1b[31m");
    b_str(&B, "nan");
    b_u32(&B, FQ_GGUF_FLOAT32);
    float nan = NAN;
    b_put(&B, &nan, 4);
    b_str(&B, "toks");
    b_u32(&B, FQ_GGUF_ARRAY);
    b_u32(&B, FQ_GGUF_STRING);
    b_u64(&B, 2);
    b_str(&B, "\x80");
    b_str(&B, "ok");
    b_str(&B, "general.file_type");
    b_u32(&B, FQ_GGUF_UINT32);
    b_u32(&B, 999);
    const char *path = tmp_path("cli");
    fq_err e;
    CHECK(fq_write_file_atomic(path, B.b, B.n, &e) == 0, "%s", e.msg);
    char args[512];
    snprintf(args, sizeof args, "--json --full %s", path);
    rc = run_inspect(bin, args, &out);
    CHECK(rc == 0 && json_valid(out) && strstr(out, "\\u00ff\\u00fe \xe2\x82\xac \\\"q\\\"") &&
          strstr(out, "\"value\": null"), "inspect --json hostile (rc %d):\n%s", rc, out);
    free(out);
    rc = run_inspect(bin, path, &out);
    CHECK(rc == 0 && strstr(out, "key\\x01\\xff\\\"") && !strchr(out, '\x1b'),
          "inspect text hostile (rc %d):\n%s", rc, out);
    free(out);
    unlink(path);

    /* general.architecture from the file: shown escaped in the hyperparameter heading, and
     * one with a NUL byte is not taken for its first part ('llama\0x' is not llama) */
    static const struct { const char *arch; size_t len; const char *want; } hostile[] = {
        {"\x1b[2Jllama", 9, "hyperparameters (\\x1b[2Jllama)"},
        {"llama\0x", 7, NULL},
    };
    for (size_t k = 0; k < FQ_ARRAY_LEN(hostile); k++) {
        b_header(&B, 0, 2);
        b_str(&B, "general.architecture");
        b_u32(&B, FQ_GGUF_STRING);
        b_u64(&B, hostile[k].len);
        b_put(&B, hostile[k].arch, hostile[k].len);
        char key[64];
        memcpy(key, hostile[k].arch, hostile[k].len);
        snprintf(key + hostile[k].len, sizeof key - hostile[k].len, ".block_count");
        b_str(&B, k == 0 ? key : "llama.block_count");
        b_u32(&B, FQ_GGUF_UINT32);
        b_u32(&B, 5);
        CHECK(fq_write_file_atomic(path, B.b, B.n, &e) == 0, "%s", e.msg);
        rc = run_inspect(bin, path, &out);
        if (hostile[k].want)
            CHECK(rc == 0 && strstr(out, hostile[k].want) && !strchr(out, '\x1b'),
                  "inspect arch %zu (rc %d):\n%s", k, rc, out);
        else
            CHECK(rc == 0 && !strstr(out, "hyperparameters (llama)") && strstr(out, "llama\\x00x"),
                  "inspect arch with a NUL (rc %d):\n%s", rc, out);
        free(out);
    }
    unlink(path);

    CHECK(run_inspect(bin, "tests/data/no-such.gguf", &out) == 1, "missing file exits 1");
    free(out);
    CHECK(run_inspect(bin, "", &out) == 2, "no model exits 2");
    free(out);
    CHECK(run_inspect(bin, "--bogus " STORIES, &out) == 2, "bad option exits 2");
    free(out);
    CHECK(run_inspect(bin, "--help", &out) == 0 && strstr(out, "usage: fqlm inspect"), "--help");
    free(out);
}

/* ---- untrusted text in messages (fq_show) ---------------------------------------------- */

static void expect_show(const char *in, size_t n, size_t cap, const char *want) {
    char buf[256];
    memset(buf, 'Z', sizeof buf);
    fq_show(buf, cap, in, n);
    CHECK(!strcmp(buf, want) && buf[cap] == 'Z', "fq_show(cap %zu): got '%s', want '%s'", cap, buf, want);
}

static void test_show(void) {
    expect_show("llama", 5, 64, "llama");
    expect_show("\x1b[2Jx", 5, 64, "\\x1b[2Jx");                   /* ESC: the escape sequence is inert */
    expect_show("llama\0x", 7, 64, "llama\\x00x");                  /* a NUL does not end the name */
    expect_show("a\nb\tc\rd\x7f", 8, 64, "a\\nb\\tc\\rd\\x7f");
    expect_show("caf\xc3\xa9 \xe2\x82\xac", 9, 64, "caf\xc3\xa9 \xe2\x82\xac"); /* valid UTF-8 kept */
    expect_show("\xff\xc3(\xed\xa0\x80\xc0\xaf", 8, 64,                /* invalid, surrogate, overlong */
                "\\xff\\xc3(\\xed\\xa0\\x80\\xc0\\xaf");
    expect_show("\xc2\x9b" "31m", 5, 64, "\\u009b31m");            /* C1 CSI as UTF-8 */
    expect_show("ab\xe2\x80\xae" "cd", 7, 64, "ab\\u202ecd");          /* right-to-left override */
    expect_show("q'\"\\", 4, 64, "q\\'\\\"\\\\");
    /* caps: everything when it fits, else "..." and never a cut sequence or escape */
    expect_show("abcdefghi", 9, 10, "abcdefghi");
    expect_show("abcdefghij", 10, 10, "abcdef...");
    expect_show("ab\x1b" "cdefgh", 9, 10, "ab\\x1b...");
    expect_show("ab\x1b" "cdefgh", 9, 9, "ab...");
    expect_show("ab\xe2\x82\xac" "cdefgh", 11, 9, "ab\xe2\x82\xac...");
    expect_show("ab\xe2\x82\xac" "cdefgh", 11, 8, "ab...");
    expect_show("", 0, 4, "");
    expect_show("abcdef", 6, 1, "");
    char big[FQ_SHOW_CAP];
    char in[1000];
    memset(in, '\x1b', sizeof in);
    fq_show(big, sizeof big, in, sizeof in);
    CHECK(strlen(big) < sizeof big && !strchr(big, '\x1b') && strstr(big, "..."), "long hostile name: %s", big);
}

int main(void) {
    test_show();
    test_open_all();
    test_stories_values();
    test_kquant_types();
    test_roundtrip(STORIES);
    test_roundtrip(MODELS_DIR "/synth-l2-e256-q4_k_m.gguf");
    test_roundtrip(MODELS_DIR "/ggml-vocab-llama-spm.gguf");
    test_writer();
    test_writer_targets();
    test_nested_and_bools();

    model m, vocab;
    if (load(&m, STORIES) == 0) {
        test_header_errors(&m);
        test_metadata_errors(&m);
        test_tensor_errors(&m);
        test_truncation(&m, "stories260K");
        test_fuzz(&m);
        test_files(&m);
        free(m.buf);
    } else {
        CHECK(0, "cannot load %s", STORIES);
    }
    if (load(&vocab, MODELS_DIR "/ggml-vocab-llama-spm.gguf") == 0) {
        test_truncation(&vocab, "vocab (no tensors)");
        free(vocab.buf);
    }
    test_cli();
    return TEST_END();
}
