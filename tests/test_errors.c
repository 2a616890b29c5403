/* test_errors.c - a real model made bad in every way a downloaded file can be: each load
 * through fq_model_load (a real file, as the CLI loads it) must fail with a message that
 * starts with the file's name, never crash, never read out of bounds, never allocate what
 * the file merely claims.
 *
 *  - truncated at every field boundary of the header, metadata and tensor infos (and one
 *    byte either side), at every tensor's data boundaries and at samples through the data;
 *  - every bit of every structural header field flipped (counts, lengths, types, dims,
 *    offsets): the load fails with a message, or succeeds and then evaluates tokens;
 *  - tensors overlapping or past the end of the file, offsets, counts and sizes that
 *    overflow 64 bits or size_t, a tensor claiming 10^12 elements (refused before any
 *    allocation: checked under an address-space limit);
 *  - inconsistent hyperparameters, written with the GGUF writer from a copy of the model;
 *  - a KV cache that cannot be allocated: the message gives the MiB it needed.
 *
 * Field offsets come from a small independent walker below (trusting its input, unlike the
 * reader). Run from the repository root; FQ_TEST_VERBOSE=1 prints each expected message. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forward.h"
#include "gguf.h"
#include "harness.h"
#include "model.h"
#include "qtypes.h"
#include "tokenizer.h"

#define MODEL "tests/data/models/stories260K-ff192-q4_0.gguf"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Under ASan an address-space limit cannot be used (its shadow memory needs terabytes of
 * address space); instead allocations above 3 GiB return NULL, as they would on a machine
 * without the memory. Read by the ASan runtime at start-up; unused otherwise. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "allocator_may_return_null=1:max_allocation_size_mb=3072";
}

static int verbose;

/* ---- independent layout walker -------------------------------------------------------- */

enum { F_COUNT, F_LEN, F_TYPE, F_ETYPE, F_NDIMS, F_DIM, F_OFFSET, F_MAGIC, F_VERSION };

typedef struct {
    uint64_t at;
    int size;  /* bytes */
    int kind;
    char label[96];
} field;

typedef struct {
    uint64_t *cuts; /* field boundaries */
    size_t n_cuts, cap_cuts;
    field *fields;  /* structural fields, for bit flips */
    size_t n_fields, cap_fields;
    uint64_t infos_end, data_offset, used_end;
    uint64_t n_tensors, n_kv;
    struct {
        char name[96];
        uint64_t ndims_at, dims_at, type_at, offset_at, offset, nbytes;
        uint32_t n_dims, type;
    } t[64];
    struct {
        char key[96];
        uint64_t type_at, val_at;
        uint32_t type;
    } kv[64];
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

static void add_cut(layout *L, uint64_t at) {
    if (L->n_cuts == L->cap_cuts) {
        L->cap_cuts = L->cap_cuts ? 2 * L->cap_cuts : 1024;
        L->cuts = realloc(L->cuts, L->cap_cuts * sizeof *L->cuts);
        FQ_ASSERT(L->cuts);
    }
    L->cuts[L->n_cuts++] = at;
}

static void add_field(layout *L, uint64_t at, int size, int kind, const char *fmt, const char *arg) {
    if (L->n_fields == L->cap_fields) {
        L->cap_fields = L->cap_fields ? 2 * L->cap_fields : 256;
        L->fields = realloc(L->fields, L->cap_fields * sizeof *L->fields);
        FQ_ASSERT(L->fields);
    }
    field *f = &L->fields[L->n_fields++];
    f->at = at;
    f->size = size;
    f->kind = kind;
    snprintf(f->label, sizeof f->label, fmt, arg);
}

static const int scalar_size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Walks one value of type t at *at; records boundaries (and, for arrays, element
 * boundaries and the count / element-type fields). */
static void walk_value(const uint8_t *b, uint64_t *at, uint32_t t, layout *L, const char *key) {
    if (t == FQ_GGUF_STRING) {
        add_field(L, *at, 8, F_LEN, "string length of '%s'", key);
        uint64_t n = rd64(b, *at);
        *at += 8;
        add_cut(L, *at);
        *at += n;
    } else if (t == FQ_GGUF_ARRAY) {
        uint32_t et = rd32(b, *at);
        add_field(L, *at, 4, F_ETYPE, "array element type of '%s'", key);
        *at += 4;
        add_cut(L, *at);
        add_field(L, *at, 8, F_COUNT, "array count of '%s'", key);
        uint64_t n = rd64(b, *at);
        *at += 8;
        add_cut(L, *at);
        for (uint64_t i = 0; i < n; i++) {
            if (et == FQ_GGUF_STRING && i < 4) {
                walk_value(b, at, et, L, key); /* the first strings' lengths are flipped too */
            } else if (et == FQ_GGUF_STRING) {
                *at += 8;
                add_cut(L, *at);
                *at += rd64(b, *at - 8);
            } else {
                *at += (uint64_t)scalar_size[et];
            }
            add_cut(L, *at);
        }
    } else {
        *at += (uint64_t)scalar_size[t];
    }
    add_cut(L, *at);
}

static void walk(const uint8_t *b, uint64_t size, layout *L) {
    memset(L, 0, sizeof *L);
    add_field(L, 0, 4, F_MAGIC, "%s", "magic");
    add_field(L, 4, 4, F_VERSION, "%s", "version");
    add_field(L, 8, 8, F_COUNT, "%s", "tensor count");
    add_field(L, 16, 8, F_COUNT, "%s", "metadata key count");
    for (uint64_t i = 0; i <= 24; i++) add_cut(L, i);
    L->n_tensors = rd64(b, 8);
    L->n_kv = rd64(b, 16);
    FQ_ASSERT(L->n_tensors <= 64 && L->n_kv <= 64);
    uint64_t at = 24, alignment = 32;
    for (uint64_t i = 0; i < L->n_kv; i++) {
        uint64_t kl = rd64(b, at);
        char key[96];
        snprintf(key, sizeof key, "%.*s", (int)FQ_MIN(kl, 90), (const char *)b + at + 8);
        add_field(L, at, 8, F_LEN, "key length of '%s'", key);
        at += 8;
        add_cut(L, at);
        at += kl;
        add_cut(L, at);
        uint32_t t = rd32(b, at);
        add_field(L, at, 4, F_TYPE, "value type of '%s'", key);
        snprintf(L->kv[i].key, sizeof L->kv[i].key, "%s", key);
        L->kv[i].type_at = at;
        L->kv[i].type = t;
        at += 4;
        add_cut(L, at);
        L->kv[i].val_at = at;
        if (!strcmp(key, "general.alignment")) alignment = rd32(b, at);
        walk_value(b, &at, t, L, key);
    }
    for (uint64_t i = 0; i < L->n_tensors; i++) {
        uint64_t nl = rd64(b, at);
        char *name = L->t[i].name;
        snprintf(name, sizeof L->t[i].name, "%.*s", (int)FQ_MIN(nl, 90), (const char *)b + at + 8);
        add_field(L, at, 8, F_LEN, "name length of tensor '%s'", name);
        at += 8;
        add_cut(L, at);
        at += nl;
        add_cut(L, at);
        L->t[i].ndims_at = at;
        L->t[i].n_dims = rd32(b, at);
        add_field(L, at, 4, F_NDIMS, "n_dims of tensor '%s'", name);
        at += 4;
        add_cut(L, at);
        L->t[i].dims_at = at;
        uint64_t nel = 1;
        for (uint32_t d = 0; d < L->t[i].n_dims; d++) {
            add_field(L, at, 8, F_DIM, "a dimension of tensor '%s'", name);
            nel *= rd64(b, at);
            at += 8;
            add_cut(L, at);
        }
        L->t[i].type_at = at;
        L->t[i].type = rd32(b, at);
        add_field(L, at, 4, F_TYPE, "type of tensor '%s'", name);
        at += 4;
        add_cut(L, at);
        L->t[i].offset_at = at;
        L->t[i].offset = rd64(b, at);
        add_field(L, at, 8, F_OFFSET, "data offset of tensor '%s'", name);
        at += 8;
        add_cut(L, at);
        const fq_type_traits *tr = fq_type_get(L->t[i].type);
        FQ_ASSERT(tr && tr->name);
        L->t[i].nbytes = nel / (uint64_t)tr->blck * tr->type_size;
    }
    L->infos_end = at;
    L->data_offset = (at + alignment - 1) / alignment * alignment;
    L->used_end = L->infos_end;
    for (uint64_t i = 0; i < L->n_tensors; i++) {
        uint64_t s = L->data_offset + L->t[i].offset, e = s + L->t[i].nbytes;
        L->used_end = FQ_MAX(L->used_end, e);
        add_cut(L, s);
        add_cut(L, s + L->t[i].nbytes / 2);
        add_cut(L, e);
    }
    FQ_ASSERT(L->used_end <= size);
    /* one byte either side of every boundary: cuts inside a field */
    size_t n = L->n_cuts;
    for (size_t i = 0; i < n; i++) {
        if (L->cuts[i] > 0) add_cut(L, L->cuts[i] - 1);
        add_cut(L, L->cuts[i] + 1);
    }
    /* samples through the data */
    for (uint64_t k = 1; k < 256; k++) add_cut(L, L->data_offset + (size - L->data_offset) * k / 256);
}

static int find_kv(const layout *L, const char *key) {
    for (uint64_t i = 0; i < L->n_kv; i++)
        if (!strcmp(L->kv[i].key, key)) return (int)i;
    FQ_ASSERT(0);
    return -1;
}
static int find_t(const layout *L, const char *name) {
    for (uint64_t i = 0; i < L->n_tensors; i++)
        if (!strcmp(L->t[i].name, name)) return (int)i;
    FQ_ASSERT(0);
    return -1;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static uint8_t *g_buf;  /* the model file */
static uint64_t g_size;
static layout g_L;

static const char *tmp_path(const char *tag) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "/tmp/fqlm_test_errors_%ld_%s.gguf", (long)getpid(), tag);
    return p;
}

static void write_file(const char *path, const void *p, uint64_t n) {
    FILE *f = fopen(path, "wb");
    FQ_ASSERT(f);
    FQ_ASSERT(fwrite(p, 1, n, f) == n);
    FQ_ASSERT(fclose(f) == 0);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A message a user can act on: names the file, then says something. */
static int clear_message(const char *msg, const char *path) {
    size_t n = strlen(path);
    return !strncmp(msg, path, n) && !strncmp(msg + n, ": ", 2) && strlen(msg) > n + 10;
}

/* Evaluates two tokens on a model that loaded: must not crash. */
static int eval_some(fq_model *m) {
    fq_ctx_params p = {.n_ctx = 16, .n_threads = 1, .exact = 0, .cache_type = FQ_TYPE_F32, .n_batch = 8};
    fq_err e;
    fq_ctx *c = fq_ctx_new(m, &p, &e);
    if (!c) return -1;
    int32_t toks[2] = {1, m->hp.n_vocab - 1};
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    FQ_ASSERT(logits);
    int rc = fq_ctx_eval(c, toks, 2, 0, logits, 0, &e);
    free(logits);
    fq_ctx_free(c);
    return rc;
}

/* Loads buf[0..n) from a file; expects failure with phrase in a clear message. */
static void expect_load_fail(const uint8_t *buf, uint64_t n, const char *phrase, const char *label) {
    const char *path = tmp_path("bad");
    write_file(path, buf, n);
    fq_err e = {{0}};
    fq_model *m = fq_model_load(path, &e);
    CHECK(!m, "%s: loaded, expected an error containing '%s'", label, phrase);
    if (m) {
        fq_model_free(m);
    } else {
        if (verbose) printf("%-40s %s\n", label, e.msg);
        CHECK(clear_message(e.msg, path), "%s: message '%s' does not start with the path", label, e.msg);
        CHECK(strstr(e.msg, phrase) != NULL, "%s: message '%s' lacks '%s'", label, e.msg, phrase);
    }
    unlink(path);
}

static uint8_t *dup_model(void) {
    uint8_t *p = malloc(g_size);
    FQ_ASSERT(p);
    memcpy(p, g_buf, g_size);
    return p;
}

/* ---- truncation --------------------------------------------------------------------------- */

static void test_truncations(void) {
    uint64_t *cuts = malloc(g_L.n_cuts * sizeof *cuts);
    FQ_ASSERT(cuts);
    memcpy(cuts, g_L.cuts, g_L.n_cuts * sizeof *cuts);
    qsort(cuts, g_L.n_cuts, sizeof *cuts, cmp_u64);
    const char *path = tmp_path("trunc");
    write_file(path, g_buf, g_size);
    int fd = open(path, O_RDWR);
    FQ_ASSERT(fd >= 0);
    int tried = 0, wrong = 0, loaded = 0;
    /* largest first: each cut only shortens the file further */
    for (size_t i = g_L.n_cuts; i-- > 0;) {
        uint64_t n = cuts[i];
        if (n >= g_size || (i + 1 < g_L.n_cuts && cuts[i + 1] == n)) continue;
        FQ_ASSERT(ftruncate(fd, (off_t)n) == 0);
        fq_err e = {{0}};
        fq_model *m = fq_model_load(path, &e);
        tried++;
        int ok;
        if (n >= g_L.used_end) {
            ok = m != NULL; /* only padding after the last tensor was cut */
            loaded += ok;
        } else {
            ok = !m && clear_message(e.msg, path) &&
                 (strstr(e.msg, "truncated") || strstr(e.msg, "data ends at") ||
                  strstr(e.msg, "not a GGUF file") || strstr(e.msg, "header claims"));
        }
        if (!ok && wrong++ < 5)
            CHECK(0, "truncated to %llu bytes: %s '%s'", (unsigned long long)n,
                  m ? "loaded" : "failed", e.msg);
        fq_model_free(m);
    }
    close(fd);
    unlink(path);
    free(cuts);
    CHECK(wrong == 0, "%d of %d truncations misbehaved", wrong, tried);
    CHECK(tried > 3000, "only %d truncations", tried);
    printf("truncations: %d cut points (%zu field boundaries and neighbours, data samples), "
           "%d loaded (only padding cut)\n", tried, g_L.n_cuts, loaded);
}

/* ---- bit flips in header fields ----------------------------------------------------------- */

static void test_bit_flips(void) {
    const char *path = tmp_path("flip");
    write_file(path, g_buf, g_size);
    int fd = open(path, O_RDWR);
    FQ_ASSERT(fd >= 0);
    int tried = 0, failed = 0, loaded = 0, bad_msg = 0, bad_eval = 0;
    for (size_t i = 0; i < g_L.n_fields; i++) {
        const field *f = &g_L.fields[i];
        for (int bit = 0; bit < 8 * f->size; bit++) {
            uint64_t at = f->at + (uint64_t)(bit / 8);
            uint8_t orig = g_buf[at], flipped = (uint8_t)(orig ^ (1u << (bit % 8)));
            FQ_ASSERT(pwrite(fd, &flipped, 1, (off_t)at) == 1);
            fq_err e = {{0}};
            fq_model *m = fq_model_load(path, &e);
            tried++;
            if (m) {
                loaded++;
                if (eval_some(m) && bad_eval++ < 5) CHECK(0, "bit %d of %s: loaded, eval failed", bit, f->label);
                fq_model_free(m);
            } else {
                failed++;
                if (!clear_message(e.msg, path) && bad_msg++ < 5)
                    CHECK(0, "bit %d of %s: message '%s'", bit, f->label, e.msg);
                if (verbose && bit == 8 * f->size - 1) printf("%-50s %s\n", f->label, e.msg);
            }
            FQ_ASSERT(pwrite(fd, &orig, 1, (off_t)at) == 1);
        }
    }
    close(fd);
    unlink(path);
    CHECK(bad_msg == 0 && bad_eval == 0, "bit flips: %d unclear messages, %d failed evals", bad_msg, bad_eval);
    CHECK(tried > 10000 && failed > tried / 2, "bit flips: %d tried, %d failed", tried, failed);
    printf("bit flips: %d flips in %zu header fields: %d refused with a message, %d loaded and ran\n",
           tried, g_L.n_fields, failed, loaded);
}

/* ---- hostile structure -------------------------------------------------------------------- */

/* Runs fn in a child under an address-space limit of 1 GiB more than it uses now (under
 * ASan: allocations above 3 GiB fail instead), so that any allocation of what a file
 * claims fails. The child's message comes back in msg; returns the child's exit status
 * (128 + signal when it crashed). */
static int run_limited(void (*fn)(char *msg, size_t cap), char *msg, size_t cap) {
    int pfd[2];
    FQ_ASSERT(pipe(pfd) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    FQ_ASSERT(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (!UNDER_ASAN) {
            long pages = 0;
            FILE *f = fopen("/proc/self/statm", "r");
            if (f) {
                if (fscanf(f, "%ld", &pages) != 1) pages = 0;
                fclose(f);
            }
            rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
            struct rlimit rl = {lim, lim};
            if (pages <= 0 || setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        }
        char buf[FQ_ERR_MAX] = {0};
        fn(buf, sizeof buf);
        ssize_t w = write(pfd[1], buf, strlen(buf));
        (void)w;
        _exit(0);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(pfd[0], msg + n, cap - 1 - n)) > 0) n += (size_t)r;
    msg[n] = 0;
    close(pfd[0]);
    int st;
    FQ_ASSERT(waitpid(pid, &st, 0) == pid);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

static const char *g_child_path; /* the file the child loads */

static void child_load(char *msg, size_t cap) {
    fq_err e = {{0}};
    fq_model *m = fq_model_load(g_child_path, &e);
    snprintf(msg, cap, "%s", m ? "LOADED" : e.msg);
    fq_model_free(m);
}

/* A tensor claiming 10^12 elements must be refused from the file size, before anything is
 * allocated for it: under the limit, an allocation would fail with "out of memory". */
static void test_huge_tensor(void) {
    uint8_t *p = dup_model();
    int i = find_t(&g_L, "token_embd.weight");
    FQ_ASSERT(g_L.t[i].n_dims == 2);
    wr64(p, g_L.t[i].dims_at + 8, 15625000000ull); /* 64 x 15625000000 = 10^12 */
    const char *path = tmp_path("huge");
    write_file(path, p, g_size);
    g_child_path = path;
    char msg[FQ_ERR_MAX];
    int64_t t0 = fq_time_us();
    int rc = run_limited(child_load, msg, sizeof msg);
    double ms = (fq_time_us() - t0) / 1e3;
    if (verbose) printf("%-40s %s\n", "10^12-element tensor", msg);
    CHECK(rc == 0, "10^12-element tensor: child exit %d", rc);
    CHECK(clear_message(msg, path) && strstr(msg, "token_embd.weight") && strstr(msg, "data ends at") &&
              !strstr(msg, "out of memory"),
          "10^12-element tensor: '%s'", msg);
    CHECK(ms < 2000, "10^12-element tensor took %.0f ms", ms);
    /* the same claim through a huge vocabulary: 64 x 10^12 / 64 rows */
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[i].dims_at, 1000000ull);
    wr64(p, g_L.t[i].dims_at + 8, 1000000ull);
    write_file(path, p, g_size);
    rc = run_limited(child_load, msg, sizeof msg);
    CHECK(rc == 0 && clear_message(msg, path) && !strstr(msg, "out of memory"),
          "10^6 x 10^6 tensor: exit %d '%s'", rc, msg);
    unlink(path);
    free(p);
}

static void test_structure(void) {
    uint8_t *p = dup_model();
    char label[128];
    /* overlapping tensors: the second starts inside the first */
    int a = find_t(&g_L, "blk.0.attn_q.weight"), b = find_t(&g_L, "blk.0.attn_v.weight");
    wr64(p, g_L.t[b].offset_at, g_L.t[a].offset + 32);
    expect_load_fail(p, g_size, "overlap", "overlapping tensors");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].offset_at, g_L.t[a].offset);
    expect_load_fail(p, g_size, "overlap", "two tensors at one offset");
    /* past the end of the file, and straddling it */
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].offset_at, (g_size - g_L.data_offset + 31) / 32 * 32);
    expect_load_fail(p, g_size, "data ends at byte", "tensor past the end");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].offset_at, (g_size - g_L.data_offset) / 32 * 32 - 32);
    expect_load_fail(p, g_size, "data ends at byte", "tensor straddling the end");
    /* offsets and sizes that overflow 64 bits */
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].offset_at, UINT64_MAX - 31);
    expect_load_fail(p, g_size, "overflows", "offset near 2^64");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].offset_at, 7);
    expect_load_fail(p, g_size, "not a multiple of the alignment", "unaligned offset");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].dims_at, 1ull << 32);
    wr64(p, g_L.t[b].dims_at + 8, 1ull << 32);
    expect_load_fail(p, g_size, "element count overflows", "dims 2^32 x 2^32");
    memcpy(p, g_buf, g_size);
    int o = find_t(&g_L, "output_norm.weight"); /* F32, 1-D: 2^62 elements x 4 bytes */
    wr64(p, g_L.t[o].dims_at, 1ull << 62);
    expect_load_fail(p, g_size, "byte size overflows", "byte size 2^64");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].dims_at, (uint64_t)INT64_MAX + 1);
    expect_load_fail(p, g_size, "dimension 0", "dimension negative as int64");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.t[b].dims_at + 8, 0);
    expect_load_fail(p, g_size, "dimension 1 is 0", "dimension 0");
    /* counts whose allocation would overflow size_t */
    static const struct { uint64_t at; uint64_t v; const char *phrase; } counts[] = {
        {8, 1ull << 60, "header claims"},  {8, UINT64_MAX, "header claims"},
        {16, 1ull << 61, "header claims"}, {16, UINT64_MAX, "header claims"},
    };
    for (size_t k = 0; k < FQ_ARRAY_LEN(counts); k++) {
        memcpy(p, g_buf, g_size);
        wr64(p, counts[k].at, counts[k].v);
        snprintf(label, sizeof label, "%s = %llu", counts[k].at == 8 ? "n_tensors" : "n_kv",
                 (unsigned long long)counts[k].v);
        expect_load_fail(p, g_size, counts[k].phrase, label);
    }
    int s = find_kv(&g_L, "tokenizer.ggml.scores");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.kv[s].val_at + 4, 1ull << 62); /* x 4 bytes overflows */
    expect_load_fail(p, g_size, "truncated", "f32 array count 2^62");
    int tk = find_kv(&g_L, "tokenizer.ggml.tokens");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.kv[tk].val_at + 4, UINT64_MAX);
    expect_load_fail(p, g_size, "truncated", "string array count 2^64-1");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.kv[tk].val_at + 12, UINT64_MAX); /* first token's length */
    expect_load_fail(p, g_size, "truncated", "string length 2^64-1");
    int arch = find_kv(&g_L, "general.architecture");
    memcpy(p, g_buf, g_size);
    wr64(p, g_L.kv[arch].val_at, UINT64_MAX - 4);
    expect_load_fail(p, g_size, "truncated", "string value length 2^64-5");
    /* types out of range */
    memcpy(p, g_buf, g_size);
    wr32(p, g_L.kv[arch].type_at, 13);
    expect_load_fail(p, g_size, "unknown value type 13", "value type 13");
    memcpy(p, g_buf, g_size);
    wr32(p, g_L.kv[tk].val_at, 0xffffffffu);
    expect_load_fail(p, g_size, "unknown array element type", "array element type 2^32-1");
    memcpy(p, g_buf, g_size);
    wr32(p, g_L.t[b].type_at, 1000);
    expect_load_fail(p, g_size, "unknown type 1000", "tensor type 1000");
    memcpy(p, g_buf, g_size);
    wr32(p, g_L.t[b].ndims_at, 5);
    expect_load_fail(p, g_size, "n_dims is 5", "n_dims 5");
    free(p);
    test_huge_tensor();
}

/* ---- inconsistent hyperparameters (GGUF writer) ------------------------------------------- */

typedef struct {
    const char *key;
    int kind;          /* 0 u32, 1 f32, 2 str, 3 drop */
    double num;
    const char *str;
} edit;

/* Writes a copy of the model with one key changed, and optionally one tensor's rows or the
 * tokenizer arrays cut to n_vocab_cut entries; loads it and expects phrase. */
static void expect_hp_fail(const edit *ed, const char *tensor_rows, int64_t rows, int vocab_cut,
                           const char *phrase, const char *label) {
    fq_gguf g;
    fq_err e = {{0}};
    FQ_ASSERT(fq_gguf_open(&g, MODEL, &e) == 0);
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    FQ_ASSERT(w);
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const fq_gguf_kv *kv = &g.kv[i];
        if (ed && ed->kind == 3 && !strcmp(kv->key, ed->key)) continue;
        if (vocab_cut && kv->type == FQ_GGUF_ARRAY && !strncmp(kv->key, "tokenizer.ggml.", 15)) {
            fq_gguf_kv cut = *kv;
            cut.arr_n = (uint64_t)vocab_cut;
            FQ_ASSERT(fq_gguf_writer_copy_kv(w, &cut, &e) == 0);
            continue;
        }
        FQ_ASSERT(fq_gguf_writer_copy_kv(w, kv, &e) == 0);
    }
    if (ed && ed->kind == 0) FQ_ASSERT(fq_gguf_writer_set_u32(w, ed->key, (uint32_t)ed->num, &e) == 0);
    if (ed && ed->kind == 1) FQ_ASSERT(fq_gguf_writer_set_f32(w, ed->key, (float)ed->num, &e) == 0);
    if (ed && ed->kind == 2) FQ_ASSERT(fq_gguf_writer_set_str(w, ed->key, ed->str, &e) == 0);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const fq_gguf_tensor *t = &g.tensors[i];
        int64_t ne[4];
        memcpy(ne, t->ne, sizeof ne);
        if (tensor_rows && !strcmp(t->name, tensor_rows)) ne[1] = rows;
        FQ_ASSERT(fq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne, t->data, &e) == 0);
    }
    const char *path = tmp_path("hp");
    CHECK(fq_gguf_writer_write(w, path, &e) == 0, "%s: write: %s", label, e.msg);
    fq_gguf_writer_free(w);
    fq_gguf_close(&g);
    fq_model *m = fq_model_load(path, &e);
    CHECK(!m, "%s: loaded, expected an error containing '%s'", label, phrase);
    if (m) {
        fq_model_free(m);
    } else {
        if (verbose) printf("%-40s %s\n", label, e.msg);
        CHECK(clear_message(e.msg, path) && strstr(e.msg, phrase), "%s: '%s' (expected '%s')", label,
              e.msg, phrase);
    }
    unlink(path);
}

static void test_hparams(void) {
    /* the unchanged copy loads: the edits below are what breaks each file */
    {
        fq_gguf g;
        fq_err e;
        FQ_ASSERT(fq_gguf_open(&g, MODEL, &e) == 0);
        fq_gguf_writer *w = fq_gguf_writer_new(&e);
        for (uint64_t i = 0; i < g.n_kv; i++) FQ_ASSERT(fq_gguf_writer_copy_kv(w, &g.kv[i], &e) == 0);
        for (uint64_t i = 0; i < g.n_tensors; i++)
            FQ_ASSERT(fq_gguf_writer_add_tensor(w, g.tensors[i].name, g.tensors[i].type,
                                                g.tensors[i].n_dims, g.tensors[i].ne,
                                                g.tensors[i].data, &e) == 0);
        const char *path = tmp_path("copy");
        FQ_ASSERT(fq_gguf_writer_write(w, path, &e) == 0);
        fq_gguf_writer_free(w);
        fq_gguf_close(&g);
        fq_model *m = fq_model_load(path, &e);
        CHECK(m && eval_some(m) == 0, "unchanged copy: %s", m ? "eval failed" : e.msg);
        fq_model_free(m);
        unlink(path);
    }
    static const struct {
        edit ed;
        const char *phrase;
    } cases[] = {
        {{"llama.attention.head_count", 0, 7, NULL}, "embedding_length 64 is not divisible by head_count 7"},
        {{"llama.attention.head_count", 0, 128, NULL}, "not divisible by head_count 128"},
        {{"llama.attention.head_count_kv", 0, 3, NULL}, "head_count 8 is not a multiple of head_count_kv 3"},
        {{"llama.attention.head_count_kv", 0, 16, NULL}, "not a multiple of head_count_kv 16"},
        {{"llama.attention.head_count_kv", 0, 0, NULL}, "must be positive"},
        {{"llama.attention.head_count", 0, 0, NULL}, "must be positive"},
        {{"llama.rope.dimension_count", 0, 16, NULL}, "rope.dimension_count 16 must be even and at most the head size 8"},
        {{"llama.rope.dimension_count", 0, 7, NULL}, "rope.dimension_count 7 must be even"},
        {{"llama.rope.dimension_count", 0, 0x80000000u, NULL}, "out of range"},
        {{"llama.block_count", 0, 0, NULL}, "must be positive"},
        {{"llama.block_count", 0, 6, NULL}, "tensor 'blk.5.attn_norm.weight' is missing"},
        {{"llama.block_count", 0, 0xffffffffu, NULL}, "out of range"},
        {{"llama.embedding_length", 0, 128, NULL}, "tensor 'token_embd.weight' has shape [64, 512, 1, 1], the hyperparameters give [128, 512]"},
        {{"llama.feed_forward_length", 0, 100, NULL}, "blk.0.ffn_gate.weight' has shape"},
        {{"llama.attention.layer_norm_rms_epsilon", 1, 0, NULL}, "layer_norm_rms_epsilon 0 is out of range"},
        {{"llama.attention.layer_norm_rms_epsilon", 1, NAN, NULL}, "out of range"},
        {{"llama.rope.freq_base", 1, -1, NULL}, "rope.freq_base -1 must be positive"},
        {{"llama.block_count", 2, 0, "five"}, "has type str, expected an integer"},
        {{"llama.attention.layer_norm_rms_epsilon", 2, 0, "1e-5"}, "expected f32"},
        {{"general.architecture", 2, 0, "gpt2"}, "architecture 'gpt2' is not supported"},
        {{"general.architecture", 3, 0, NULL}, "missing 'general.architecture'"},
        {{"llama.embedding_length", 3, 0, NULL}, "missing hyperparameter 'llama.embedding_length'"},
        {{"tokenizer.ggml.model", 2, 0, "bert"}, "tokenizer model 'bert' is not supported"},
        {{"tokenizer.ggml.tokens", 3, 0, NULL}, "tokenizer.ggml.tokens is missing"},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        char label[128];
        if (cases[i].ed.kind == 3)
            snprintf(label, sizeof label, "no %s", cases[i].ed.key);
        else if (cases[i].ed.kind == 2)
            snprintf(label, sizeof label, "%s = '%s'", cases[i].ed.key, cases[i].ed.str);
        else
            snprintf(label, sizeof label, "%s = %g", cases[i].ed.key, cases[i].ed.num);
        expect_hp_fail(&cases[i].ed, NULL, 0, 0, cases[i].phrase, label);
    }
    /* vocabulary size against the embedding rows, both ways */
    expect_hp_fail(NULL, NULL, 0, 511, "vocabulary has 511 tokens but 'token_embd.weight' has 512 rows",
                   "511 tokens, 512 embedding rows");
    expect_hp_fail(NULL, "token_embd.weight", 511, 0, "has 511 rows", "512 tokens, 511 embedding rows");
    expect_hp_fail(NULL, "output.weight", 511, 0, "output.weight' has shape [64, 511, 1, 1]",
                   "output with 511 rows");
}

/* Hyperparameters that claim huge sizes, in a file of 208 KB: the load must fail on the
 * tensors that do not match them, under a memory limit, without allocating what the
 * claim implies first (an "out of memory" message would blame the machine, not the file). */
static void test_hparams_huge(void) {
    static const struct { const char *key, *key2; uint32_t v, v2; const char *phrase; } cases[] = {
        {"llama.block_count", NULL, 1u << 30, 0, "blk.5"},
        {"llama.block_count", NULL, 1u << 24, 0, "blk.5"},
        {"llama.embedding_length", NULL, 1u << 30, 0, "head size"},
        {"llama.embedding_length", "llama.attention.head_count", 1u << 30, 1u << 20, "token_embd.weight"},
        {"llama.feed_forward_length", NULL, 1u << 30, 0, "ffn_gate.weight"},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        fq_gguf g;
        fq_err e;
        FQ_ASSERT(fq_gguf_open(&g, MODEL, &e) == 0);
        fq_gguf_writer *w = fq_gguf_writer_new(&e);
        for (uint64_t k = 0; k < g.n_kv; k++) FQ_ASSERT(fq_gguf_writer_copy_kv(w, &g.kv[k], &e) == 0);
        FQ_ASSERT(fq_gguf_writer_set_u32(w, cases[i].key, cases[i].v, &e) == 0);
        if (cases[i].key2) FQ_ASSERT(fq_gguf_writer_set_u32(w, cases[i].key2, cases[i].v2, &e) == 0);
        for (uint64_t k = 0; k < g.n_tensors; k++)
            FQ_ASSERT(fq_gguf_writer_add_tensor(w, g.tensors[k].name, g.tensors[k].type,
                                                g.tensors[k].n_dims, g.tensors[k].ne,
                                                g.tensors[k].data, &e) == 0);
        const char *path = tmp_path("hphuge");
        FQ_ASSERT(fq_gguf_writer_write(w, path, &e) == 0);
        fq_gguf_writer_free(w);
        fq_gguf_close(&g);
        g_child_path = path;
        char msg[FQ_ERR_MAX], label[128];
        snprintf(label, sizeof label, "%s = %u%s%s", cases[i].key, cases[i].v, cases[i].key2 ? ", " : "",
                 cases[i].key2 ? cases[i].key2 : "");
        int rc = run_limited(child_load, msg, sizeof msg);
        if (verbose) printf("%-40s %s\n", label, msg);
        CHECK(rc == 0 && clear_message(msg, path), "%s: exit %d, '%s'", label, rc, msg);
        CHECK(rc != 0 || (strstr(msg, cases[i].phrase) && !strstr(msg, "out of memory") &&
                          !strstr(msg, "allocat")),
              "%s: the claim was allocated before the tensors were checked: '%s' (expected '%s')",
              label, msg, cases[i].phrase);
        unlink(path);
    }
}

/* ---- KV cache allocation failure ---------------------------------------------------------- */

static void child_kv(char *msg, size_t cap) {
    fq_err e = {{0}};
    fq_model *m = fq_model_load(MODEL, &e);
    if (!m) {
        snprintf(msg, cap, "LOAD: %s", e.msg);
        return;
    }
    fq_ctx_params p = {.n_ctx = 1 << 22, .n_threads = 1, .exact = 0, .cache_type = FQ_TYPE_F32, .n_batch = 512};
    fq_ctx *c = fq_ctx_new(m, &p, &e);
    snprintf(msg, cap, "%s", c ? "ALLOCATED" : e.msg);
    fq_ctx_free(c);
    fq_model_free(m);
}

static void test_kv_cache(void) {
    char msg[FQ_ERR_MAX];
    int rc = run_limited(child_kv, msg, sizeof msg);
    if (verbose) printf("%-40s %s\n", "KV cache of 4194304 tokens", msg);
    /* 2 (K, V) x 5 layers x 4194304 tokens x 4 heads x 8 dims x 4 bytes = 5120 MiB */
    CHECK(rc == 0 && strstr(msg, "KV cache") && strstr(msg, "5120.0 MiB"), "KV cache: exit %d '%s'", rc, msg);
    fq_err e = {{0}};
    fq_model *m = fq_model_load(MODEL, &e);
    FQ_ASSERT(m);
    fq_ctx_params p = {.n_ctx = 0, .n_threads = 1, .cache_type = FQ_TYPE_F32, .n_batch = 1};
    CHECK(!fq_ctx_new(m, &p, &e) && strstr(e.msg, "at least 1"), "n_ctx 0: %s", e.msg);
    p.n_ctx = (1 << 22) + 1;
    CHECK(!fq_ctx_new(m, &p, &e) && strstr(e.msg, "too large"), "n_ctx 2^22+1: %s", e.msg);
    p.n_ctx = 8;
    p.cache_type = FQ_TYPE_Q4_0;
    CHECK(!fq_ctx_new(m, &p, &e) && strstr(e.msg, "not supported"), "cache type Q4_0: %s", e.msg);
    /* tokens out of range and a full context fail with a message */
    p.cache_type = FQ_TYPE_F32;
    fq_ctx *c = fq_ctx_new(m, &p, &e);
    FQ_ASSERT(c);
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    int32_t bad[2] = {1, m->hp.n_vocab};
    e.msg[0] = 0;
    CHECK(fq_ctx_eval(c, bad, 2, 0, logits, 0, &e) == -1 && e.msg[0], "token id n_vocab accepted");
    bad[1] = -1;
    e.msg[0] = 0;
    CHECK(fq_ctx_eval(c, bad, 2, 0, logits, 0, &e) == -1 && e.msg[0], "token id -1 accepted");
    int32_t ok[1] = {1};
    e.msg[0] = 0;
    CHECK(fq_ctx_eval(c, ok, 1, 8, logits, 0, &e) == -1 && e.msg[0], "position 8 of 8 accepted");
    free(logits);
    fq_ctx_free(c);
    fq_model_free(m);
}

/* ---- files that are not models ------------------------------------------------------------ */

static void test_not_files(void) {
    static const struct { const char *path, *phrase; } cases[] = {
        {"tests/data/no-such-model.gguf", "No such file"},
        {"tests/data", "is a directory"},
        {"/dev/null", "not a regular file"},
        {"tests/data/golden/README.md", "not a GGUF file"},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        fq_err e = {{0}};
        fq_model *m = fq_model_load(cases[i].path, &e);
        CHECK(!m && clear_message(e.msg, cases[i].path) && strstr(e.msg, cases[i].phrase),
              "%s: '%s'", cases[i].path, e.msg);
        fq_model_free(m);
    }
    /* a vocabulary-only file is a GGUF file but not a model */
    fq_err e = {{0}};
    fq_model *m = fq_model_load("tests/data/models/ggml-vocab-llama-spm.gguf", &e);
    CHECK(!m && strstr(e.msg, "ggml-vocab-llama-spm.gguf: "), "vocab-only file: '%s'", e.msg);
    fq_model_free(m);
}

int main(void) {
    verbose = getenv("FQ_TEST_VERBOSE") != NULL;
    fq_err e;
    size_t n;
    g_buf = (uint8_t *)fq_read_file(MODEL, &n, &e);
    if (!g_buf) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    g_size = n;
    walk(g_buf, g_size, &g_L);
    int64_t t0 = fq_time_us();
    test_not_files();
    test_truncations();
    test_bit_flips();
    test_structure();
    test_hparams();
    test_hparams_huge();
    test_kv_cache();
    printf("test_errors: %.1f s\n", (fq_time_us() - t0) / 1e6);
    free(g_L.cuts);
    free(g_L.fields);
    free(g_buf);
    return TEST_END();
}
