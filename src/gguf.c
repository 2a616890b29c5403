/* gguf.c - GGUF v2/v3 reader (read-only mmap, every byte distrusted) and writer
 * (through outfile.h: a temporary file, fsync'd and renamed into place).
 *
 * Layout (ggml docs/gguf.md): "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv
 * key/value pairs, n_tensors tensor infos, zero padding to general.alignment, data.
 * All integers little-endian; this code assumes a little-endian host (x86-64). */
#include "gguf.h"
#include "outfile.h"
#include "qtypes.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
/* Nested arrays are legal but unused by llama models; the cap keeps recursion bounded. */
#define GGUF_MAX_NESTING 16
/* The spec limits keys to 65535 bytes; we apply the same cap to tensor names. */
#define GGUF_MAX_NAME_LEN 65535
/* Smallest encodings, for bounding counts: a key/value is at least u64 key length +
 * 1 key byte + u32 type + 1 value byte; a tensor info u64 name length + 1 name byte +
 * u32 n_dims + one u64 dimension + u32 type + u64 offset. */
#define GGUF_MIN_KV_BYTES 14
#define GGUF_MIN_TI_BYTES 33

/* Short cast for printing 64-bit values portably with %llu / %lld. */
#define LLU(x) ((unsigned long long)(x))
#define LLD(x) ((long long)(x))

/* ---- value types ------------------------------------------------------------------ */

static const struct {
    const char *name;   /* ggml's short name */
    const char *plural; /* for "array of N ..." messages */
    uint32_t size;      /* bytes of a scalar; 0 for string and array */
} vtypes[FQ_GGUF_VTYPE_COUNT] = {
    [FQ_GGUF_UINT8] = {"u8", "u8 values", 1},      [FQ_GGUF_INT8] = {"i8", "i8 values", 1},
    [FQ_GGUF_UINT16] = {"u16", "u16 values", 2},   [FQ_GGUF_INT16] = {"i16", "i16 values", 2},
    [FQ_GGUF_UINT32] = {"u32", "u32 values", 4},   [FQ_GGUF_INT32] = {"i32", "i32 values", 4},
    [FQ_GGUF_FLOAT32] = {"f32", "f32 values", 4},  [FQ_GGUF_BOOL] = {"bool", "bools", 1},
    [FQ_GGUF_STRING] = {"str", "strings", 0},      [FQ_GGUF_ARRAY] = {"arr", "arrays", 0},
    [FQ_GGUF_UINT64] = {"u64", "u64 values", 8},   [FQ_GGUF_INT64] = {"i64", "i64 values", 8},
    [FQ_GGUF_FLOAT64] = {"f64", "f64 values", 8},
};

const char *fq_gguf_vtype_name(uint32_t t) {
    return t < FQ_GGUF_VTYPE_COUNT ? vtypes[t].name : "unknown";
}

/* Smallest number of bytes a value of type t occupies in a file: bounds counts before
 * anything is allocated for them. String: its u64 length; array: u32 type + u64 count. */
static uint64_t vtype_min_size(uint32_t t) {
    if (t == FQ_GGUF_STRING) return 8;
    if (t == FQ_GGUF_ARRAY) return 12;
    return vtypes[t].size;
}

static bool vtype_is_int(uint32_t t) {
    return t <= FQ_GGUF_INT32 || t == FQ_GGUF_UINT64 || t == FQ_GGUF_INT64;
}
static bool vtype_is_signed(uint32_t t) {
    return t == FQ_GGUF_INT8 || t == FQ_GGUF_INT16 || t == FQ_GGUF_INT32 ||
           t == FQ_GGUF_INT64;
}

/* ---- reader cursor ---------------------------------------------------------------- */

typedef struct {
    const uint8_t *buf;
    uint64_t size, pos;
    const char *path;
    fq_err *e;
    char ctx[256]; /* where we are, for messages: "metadata key 12 ('general.name')" */
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->pos; }

/* Formats "N x K" as a number, or as the product expression when it overflows. */
static const char *fmt_product(char *buf, size_t cap, uint64_t n, uint64_t k) {
    uint64_t r;
    if (fq_mul_ok(n, k, &r))
        snprintf(buf, cap, "%llu", LLU(r));
    else
        snprintf(buf, cap, "%llu x %llu", LLU(n), LLU(k));
    return buf;
}

/* Ensures n more bytes exist. Returns 0, or -1 with "truncated in CTX: WHAT needs ...". */
static int need(cursor *c, uint64_t n, const char *what) {
    if (n <= left(c)) return 0;
    return fq_errf(c->e, "%s: truncated in %s: %s needs %llu bytes at byte %llu, file has %llu left",
                   c->path, c->ctx, what, LLU(n), LLU(c->pos), LLU(left(c)));
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    memcpy(v, c->buf + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    memcpy(v, c->buf + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* Reads a length-prefixed string in place. Returns 0, or -1 with e set. */
static int rd_str(cursor *c, fq_str *s, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return -1;
    if (n > left(c))
        return fq_errf(c->e, "%s: truncated in %s: %s of %llu bytes at byte %llu, file has %llu left",
                       c->path, c->ctx, what, LLU(n), LLU(c->pos), LLU(left(c)));
    s->ptr = (const char *)c->buf + c->pos;
    s->len = n;
    c->pos += n;
    return 0;
}

/* Reads a key or tensor name and returns a NUL-terminated copy, or NULL with e set.
 * Empty names and embedded NULs are rejected: lookups by C string could not find them. */
static char *rd_name(cursor *c, const char *what) {
    fq_str s;
    if (rd_str(c, &s, what)) return NULL;
    if (s.len == 0) {
        fq_errf(c->e, "%s: %s: empty %s", c->path, c->ctx, what);
        return NULL;
    }
    if (s.len > GGUF_MAX_NAME_LEN) {
        fq_errf(c->e, "%s: %s: %s is %llu bytes long, the limit is %d", c->path, c->ctx, what,
                LLU(s.len), GGUF_MAX_NAME_LEN);
        return NULL;
    }
    if (memchr(s.ptr, 0, s.len)) {
        char shown[160];
        fq_show(shown, sizeof shown, s.ptr, s.len);
        fq_errf(c->e, "%s: %s: %s '%s' contains a NUL byte", c->path, c->ctx, what, shown);
        return NULL;
    }
    char *r = fq_malloc(s.len + 1, c->e);
    if (!r) return NULL;
    memcpy(r, s.ptr, s.len);
    r[s.len] = 0;
    return r;
}

/* ---- metadata values -------------------------------------------------------------- */

/* Fills the u64/i64/f64 forms of a scalar from its little-endian bytes (already
 * bounds-checked). Float-to-integer forms are 0 when out of range (the conversion would
 * be undefined). */
static void decode_scalar(fq_gguf_kv *kv, uint32_t type, const uint8_t *p) {
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    switch (type) {
    case FQ_GGUF_UINT8: case FQ_GGUF_BOOL: u = p[0]; break;
    case FQ_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); u = v; break; }
    case FQ_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); u = v; break; }
    case FQ_GGUF_UINT64: memcpy(&u, p, 8); break;
    case FQ_GGUF_INT8: { int8_t v; memcpy(&v, p, 1); i = v; break; }
    case FQ_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); i = v; break; }
    case FQ_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); i = v; break; }
    case FQ_GGUF_INT64: memcpy(&i, p, 8); break;
    case FQ_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); f = v; break; }
    case FQ_GGUF_FLOAT64: memcpy(&f, p, 8); break;
    default: FQ_ASSERT(0);
    }
    if (type == FQ_GGUF_FLOAT32 || type == FQ_GGUF_FLOAT64) {
        i = (f > -9.2e18 && f < 9.2e18) ? (int64_t)f : 0;
        u = (f >= 0 && f < 1.8e19) ? (uint64_t)f : 0;
    } else if (vtype_is_signed(type)) {
        u = (uint64_t)i;
        f = (double)i;
    } else {
        i = (int64_t)u;
        f = (double)u;
    }
    kv->u64 = u;
    kv->i64 = i;
    kv->f64 = f;
}

static int check_bool(cursor *c, uint8_t b, const char *what) {
    if (b <= 1) return 0;
    return fq_errf(c->e, "%s: %s: %s at byte %llu is %u, expected 0 or 1", c->path, c->ctx,
                   what, LLU(c->pos), b);
}

/* Reads an array body (element type, count, elements). With out, fills its arr_* fields
 * (and strs for string arrays); without, only validates and skips (nested arrays).
 * Returns 0, or -1 with e set. */
static int rd_array(cursor *c, fq_gguf_kv *out, int depth) {
    if (depth > GGUF_MAX_NESTING)
        return fq_errf(c->e, "%s: %s: arrays nested deeper than %d levels", c->path, c->ctx,
                       GGUF_MAX_NESTING);
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, "array element type")) return -1;
    if (et >= FQ_GGUF_VTYPE_COUNT)
        return fq_errf(c->e, "%s: %s: unknown array element type %u", c->path, c->ctx, et);
    if (rd_u64(c, &n, "array count")) return -1;
    uint64_t minsz = vtype_min_size(et);
    if (n > left(c) / minsz) {
        char nb[64];
        return fq_errf(c->e, "%s: truncated in %s: array of %llu %s needs at least %s more bytes, file has %llu left",
                       c->path, c->ctx, LLU(n), vtypes[et].plural,
                       fmt_product(nb, sizeof nb, n, minsz), LLU(left(c)));
    }
    const uint8_t *start = c->buf + c->pos;
    if (out) {
        out->arr_type = et;
        out->arr_n = n;
        out->arr_data = start;
    }
    if (et == FQ_GGUF_STRING) {
        if (out && n) {
            out->strs = fq_calloc(n, sizeof(fq_str), c->e);
            if (!out->strs) return -1;
        }
        for (uint64_t i = 0; i < n; i++) {
            fq_str s;
            uint64_t at = c->pos;
            if (rd_str(c, &s, "array string"))
                return fq_errf(c->e, "%s: truncated in %s: string %llu of %llu at byte %llu runs "
                               "past the end of the file (%llu bytes)", c->path, c->ctx, LLU(i),
                               LLU(n), LLU(at), LLU(c->size));
            if (out) out->strs[i] = s;
        }
    } else if (et == FQ_GGUF_ARRAY) {
        for (uint64_t i = 0; i < n; i++)
            if (rd_array(c, NULL, depth + 1)) return -1;
    } else {
        if (et == FQ_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++, c->pos++)
                if (check_bool(c, c->buf[c->pos], "bool array element")) return -1;
        } else {
            c->pos += n * minsz; /* n <= left / minsz: cannot overflow or pass the end */
        }
    }
    return 0;
}

/* Reads one value of type `type` into kv. Returns 0, or -1 with e set. */
static int rd_value(cursor *c, fq_gguf_kv *kv, uint32_t type) {
    if (type >= FQ_GGUF_VTYPE_COUNT)
        return fq_errf(c->e, "%s: %s: unknown value type %u", c->path, c->ctx, type);
    kv->type = type;
    if (type == FQ_GGUF_STRING) return rd_str(c, &kv->str, "string value");
    if (type == FQ_GGUF_ARRAY) return rd_array(c, kv, 1);
    char what[32];
    snprintf(what, sizeof what, "%s value", vtypes[type].name);
    if (need(c, vtypes[type].size, what)) return -1;
    if (type == FQ_GGUF_BOOL && check_bool(c, c->buf[c->pos], "bool value")) return -1;
    decode_scalar(kv, type, c->buf + c->pos);
    c->pos += vtypes[type].size;
    return 0;
}

/* ---- open / close ----------------------------------------------------------------- */

static int cmp_kv_key(const void *a, const void *b) {
    return strcmp((*(fq_gguf_kv *const *)a)->key, (*(fq_gguf_kv *const *)b)->key);
}
static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(fq_gguf_tensor *const *)a)->name, (*(fq_gguf_tensor *const *)b)->name);
}
static int cmp_tensor_offset(const void *a, const void *b) {
    uint64_t x = (*(fq_gguf_tensor *const *)a)->offset, y = (*(fq_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static int parse_header(cursor *c, fq_gguf *g) {
    snprintf(c->ctx, sizeof c->ctx, "header");
    if (c->size < 4) {
        if (c->size == 0) return fq_errf(c->e, "%s: not a GGUF file (file is empty)", c->path);
        return fq_errf(c->e, "%s: not a GGUF file (only %llu bytes)", c->path, LLU(c->size));
    }
    if (memcmp(c->buf, "GGUF", 4) != 0) {
        char m[40];
        fq_show(m, sizeof m, (const char *)c->buf, 4);
        return fq_errf(c->e, "%s: not a GGUF file (magic '%s' at byte 0, expected 'GGUF')",
                       c->path, m);
    }
    c->pos = 4;
    if (rd_u32(c, &g->version, "version")) return -1;
    uint32_t v = g->version, swapped = __builtin_bswap32(v);
    if (v == 1)
        return fq_errf(c->e, "%s: unsupported GGUF version 1 (fqlm reads v2 and v3)", c->path);
    if (v != 2 && v != 3) {
        if (swapped >= 1 && swapped <= 3)
            return fq_errf(c->e, "%s: unsupported GGUF version %u: a big-endian GGUF v%u file "
                           "(fqlm reads little-endian v2 and v3)", c->path, v, swapped);
        return fq_errf(c->e, "%s: unsupported GGUF version %u (fqlm reads v2 and v3)", c->path, v);
    }
    uint64_t n_tensors, n_kv;
    if (rd_u64(c, &n_tensors, "tensor count") || rd_u64(c, &n_kv, "metadata key count"))
        return -1;
    /* Bound both counts by what the rest of the file could encode, before allocating. */
    const uint64_t kv_min = GGUF_MIN_KV_BYTES, ti_min = GGUF_MIN_TI_BYTES;
    if (n_kv > left(c) / kv_min)
        return fq_errf(c->e, "%s: header claims %llu metadata keys, but the %llu bytes after the "
                       "header can hold at most %llu (corrupt or truncated file)", c->path,
                       LLU(n_kv), LLU(left(c)), LLU(left(c) / kv_min));
    if (n_tensors > left(c) / ti_min)
        return fq_errf(c->e, "%s: header claims %llu tensors, but the %llu bytes after the "
                       "header can hold at most %llu (corrupt or truncated file)", c->path,
                       LLU(n_tensors), LLU(left(c)), LLU(left(c) / ti_min));
    g->kv = fq_calloc(n_kv, sizeof(fq_gguf_kv), c->e);
    if (!g->kv) return -1;
    g->n_kv = n_kv;
    g->tensors = fq_calloc(n_tensors, sizeof(fq_gguf_tensor), c->e);
    if (!g->tensors) return -1;
    g->n_tensors = n_tensors;
    return 0;
}

static int parse_kv(cursor *c, fq_gguf *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        fq_gguf_kv *kv = &g->kv[i];
        snprintf(c->ctx, sizeof c->ctx, "metadata key %llu", LLU(i));
        kv->key = rd_name(c, "key");
        if (!kv->key) return -1;
        char shown[160];
        fq_show(shown, sizeof shown, kv->key, strlen(kv->key));
        snprintf(c->ctx, sizeof c->ctx, "metadata key %llu ('%s')", LLU(i), shown);
        uint32_t type;
        if (rd_u32(c, &type, "value type") || rd_value(c, kv, type)) return -1;
    }
    if (g->n_kv > 1) {
        fq_gguf_kv **s = fq_calloc(g->n_kv, sizeof *s, c->e);
        if (!s) return -1;
        for (uint64_t i = 0; i < g->n_kv; i++) s[i] = &g->kv[i];
        qsort(s, g->n_kv, sizeof *s, cmp_kv_key);
        for (uint64_t i = 1; i < g->n_kv; i++) {
            if (strcmp(s[i - 1]->key, s[i]->key)) continue;
            char shown[160];
            fq_show(shown, sizeof shown, s[i]->key, strlen(s[i]->key));
            uint64_t a = (uint64_t)(s[i - 1] - g->kv), b = (uint64_t)(s[i] - g->kv);
            free(s);
            return fq_errf(c->e, "%s: duplicate metadata key '%s' (keys %llu and %llu)", c->path,
                           shown, LLU(FQ_MIN(a, b)), LLU(FQ_MAX(a, b)));
        }
        free(s);
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const fq_gguf_kv *al = fq_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != FQ_GGUF_UINT32)
            return fq_errf(c->e, "%s: general.alignment has type %s, expected u32", c->path,
                           fq_gguf_vtype_name(al->type));
        if (al->u64 == 0 || (al->u64 & (al->u64 - 1)))
            return fq_errf(c->e, "%s: general.alignment is %llu, must be a nonzero power of two",
                           c->path, LLU(al->u64));
        g->alignment = al->u64;
    }
    return 0;
}

/* Validates dims and type and computes nbytes. Returns 0, or -1 with e set. */
static int check_tensor_shape(cursor *c, fq_gguf_tensor *t, const uint64_t *dims) {
    const fq_type_traits *tr = fq_type_get(t->type);
    if (!tr || !tr->name)
        return fq_errf(c->e, "%s: %s: unknown type %u", c->path, c->ctx, t->type);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (dims[d] == 0)
            return fq_errf(c->e, "%s: %s: dimension %u is 0", c->path, c->ctx, d);
        if (dims[d] > (uint64_t)INT64_MAX)
            return fq_errf(c->e, "%s: %s: dimension %u is %llu (negative as int64)", c->path,
                           c->ctx, d, LLU(dims[d]));
        if (!fq_mul_ok(nel, dims[d], &nel) || nel > (uint64_t)INT64_MAX)
            return fq_errf(c->e, "%s: %s: element count overflows (dimension product exceeds "
                           "2^63)", c->path, c->ctx);
        t->ne[d] = (int64_t)dims[d];
    }
    if (t->ne[0] % tr->blck)
        return fq_errf(c->e, "%s: %s: type %s needs dimension 0 to be a multiple of %lld, it is %lld",
                       c->path, c->ctx, tr->name, LLD(tr->blck), LLD(t->ne[0]));
    /* nel fits int64 and blck divides ne[0]: blocks * type_size is the only product left */
    if (!fq_mul_ok(nel / (uint64_t)tr->blck, tr->type_size, &t->nbytes))
        return fq_errf(c->e, "%s: %s: byte size overflows", c->path, c->ctx);
    return 0;
}

static int parse_tensor_infos(cursor *c, fq_gguf *g) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        fq_gguf_tensor *t = &g->tensors[i];
        snprintf(c->ctx, sizeof c->ctx, "tensor info %llu", LLU(i));
        t->name = rd_name(c, "tensor name");
        if (!t->name) return -1;
        char shown[160];
        fq_show(shown, sizeof shown, t->name, strlen(t->name));
        snprintf(c->ctx, sizeof c->ctx, "tensor %llu ('%s')", LLU(i), shown);
        if (rd_u32(c, &t->n_dims, "n_dims")) return -1;
        if (t->n_dims < 1 || t->n_dims > FQ_GGUF_MAX_DIMS)
            return fq_errf(c->e, "%s: %s: n_dims is %u, expected 1 to %d", c->path, c->ctx,
                           t->n_dims, FQ_GGUF_MAX_DIMS);
        uint64_t dims[FQ_GGUF_MAX_DIMS];
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (rd_u64(c, &dims[d], "dimension")) return -1;
        for (uint32_t d = 0; d < FQ_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        if (rd_u32(c, &t->type, "type") || rd_u64(c, &t->offset, "data offset")) return -1;
        if (check_tensor_shape(c, t, dims)) return -1;
        if (t->offset % g->alignment)
            return fq_errf(c->e, "%s: %s: data offset %llu is not a multiple of the alignment %llu",
                           c->path, c->ctx, LLU(t->offset), LLU(g->alignment));
    }
    return 0;
}

/* Alignment the data of a tensor of type t needs to be read in place: its widest field
 * (the F16 scale of every ggml block type but MXFP4, whose blocks are bytes; the float of
 * Q8_K and F32/I32; 8 bytes for I64/F64). */
static uint64_t type_align(uint32_t t) {
    switch (t) {
    case FQ_TYPE_F32: case FQ_TYPE_Q8_K: case 26 /* I32 */: return 4;
    case 27 /* I64 */: case 28 /* F64 */: return 8;
    case 24 /* I8 */: case 39 /* MXFP4 */: return 1;
    default: return 2;
    }
}

static int place_tensors(cursor *c, fq_gguf *g) {
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    if (!fq_add_ok(c->pos, pad, &g->data_offset))
        return fq_errf(c->e, "%s: data section offset overflows", c->path);
    /* A file without tensors may end right after its metadata, unpadded. */
    if (g->n_tensors == 0 && g->data_offset > c->size) g->data_offset = c->size;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        fq_gguf_tensor *t = &g->tensors[i];
        uint64_t start, end;
        char shown[160];
        fq_show(shown, sizeof shown, t->name, strlen(t->name));
        if (!fq_add_ok(g->data_offset, t->offset, &start) || !fq_add_ok(start, t->nbytes, &end))
            return fq_errf(c->e, "%s: tensor '%s': data range overflows (offset %llu, %llu bytes)",
                           c->path, shown, LLU(t->offset), LLU(t->nbytes));
        if (end > c->size)
            return fq_errf(c->e, "%s: tensor '%s': data ends at byte %llu, file has %llu",
                           c->path, shown, LLU(end), LLU(c->size));
        /* Data is read in place (mmap) as floats, halves and blocks: an alignment below
         * what the type needs would make those loads misaligned (undefined behaviour). */
        uint64_t need = type_align(t->type);
        if (start % need == 0 && (uintptr_t)(c->buf + start) % need)
            return fq_errf(c->e, "%s: tensor '%s' (%s): the buffer holding the file is not aligned to "
                           "%llu bytes", c->path, shown, fq_type_name(t->type), LLU(need));
        if (start % need)
            return fq_errf(c->e, "%s: tensor '%s' (%s): data starts at byte %llu, not a multiple of %llu "
                           "as %s data needs (general.alignment is %llu; fqlm needs every tensor's data "
                           "aligned to its type: 4 bytes for F32, 2 for F16, BF16 and the quantized blocks)",
                           c->path, shown, fq_type_name(t->type), LLU(start), LLU(need),
                           fq_type_name(t->type), LLU(g->alignment));
        t->data = c->buf + start;
    }
    if (g->n_tensors < 2) return 0;
    fq_gguf_tensor **s = fq_calloc(g->n_tensors, sizeof *s, c->e);
    if (!s) return -1;
    for (uint64_t i = 0; i < g->n_tensors; i++) s[i] = &g->tensors[i];
    int rc = 0;
    qsort(s, g->n_tensors, sizeof *s, cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++) {
        if (strcmp(s[i - 1]->name, s[i]->name)) continue;
        char shown[160];
        fq_show(shown, sizeof shown, s[i]->name, strlen(s[i]->name));
        rc = fq_errf(c->e, "%s: duplicate tensor name '%s'", c->path, shown);
    }
    if (!rc) qsort(s, g->n_tensors, sizeof *s, cmp_tensor_offset);
    for (uint64_t i = 1; i < g->n_tensors && !rc; i++) {
        const fq_gguf_tensor *a = s[i - 1], *b = s[i];
        if (a->offset + a->nbytes <= b->offset) continue; /* both checked in range above */
        char sa[160], sb[160];
        fq_show(sa, sizeof sa, a->name, strlen(a->name));
        fq_show(sb, sizeof sb, b->name, strlen(b->name));
        rc = fq_errf(c->e, "%s: tensors '%s' (data bytes %llu..%llu) and '%s' (from %llu) overlap",
                     c->path, sa, LLU(a->offset), LLU(a->offset + a->nbytes), sb, LLU(b->offset));
    }
    free(s);
    return rc;
}

/* Parses g->map[0..g->size). Returns 0, or -1 with e set (g's allocations are left for
 * fq_gguf_close). */
static int parse(fq_gguf *g, fq_err *e) {
    cursor c = {.buf = g->map, .size = g->size, .path = g->path, .e = e};
    if (parse_header(&c, g) || parse_kv(&c, g)) return -1;
    if (g->n_tensors > left(&c) / GGUF_MIN_TI_BYTES)
        return fq_errf(e, "%s: header claims %llu tensors, but the %llu bytes after the metadata "
                       "can hold at most %llu (corrupt or truncated file)", g->path,
                       LLU(g->n_tensors), LLU(left(&c)), LLU(left(&c) / GGUF_MIN_TI_BYTES));
    if (parse_tensor_infos(&c, g)) return -1;
    return place_tensors(&c, g);
}

int fq_gguf_open_mem(fq_gguf *g, const void *buf, uint64_t size, const char *name, fq_err *e) {
    memset(g, 0, sizeof *g);
    g->path = strdup(name ? name : "<memory>");
    if (!g->path) return fq_errf(e, "out of memory");
    g->map = buf;
    g->size = size;
    if (size && !buf) {
        fq_errf(e, "%s: NULL buffer", g->path);
        fq_gguf_close(g);
        return -1;
    }
    if (parse(g, e)) {
        fq_gguf_close(g);
        return -1;
    }
    return 0;
}

int fq_gguf_open(fq_gguf *g, const char *path, fq_err *e) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block: it is refused below */
    if (fd < 0) return fq_errf(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return fq_errf(e, "%s: cannot stat: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return fq_errf(e, "%s: is a directory, not a GGUF file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fq_errf(e, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return fq_errf(e, "%s: not a GGUF file (file is empty)", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return fq_errf(e, "%s: file too large to map", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the file open */
    if (m == MAP_FAILED) return fq_errf(e, "%s: cannot mmap: %s", path, strerror(err));
    if (fq_gguf_open_mem(g, m, (uint64_t)st.st_size, path, e)) {
        munmap(m, (size_t)st.st_size);
        return -1;
    }
    g->mapped = 1;
    return 0;
}

void fq_gguf_close(fq_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].strs);
        }
    free(g->kv);
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->mapped && g->map) munmap((void *)g->map, (size_t)g->size);
    free(g->path);
    memset(g, 0, sizeof *g);
}

/* ---- lookups and getters ---------------------------------------------------------- */

const fq_gguf_kv *fq_gguf_find(const fq_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const fq_gguf_tensor *fq_gguf_find_tensor(const fq_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && !strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

int fq_gguf_get_u32(const fq_gguf *g, const char *key, uint32_t *out, fq_err *e) {
    const fq_gguf_kv *kv = fq_gguf_find(g, key);
    if (!kv) return 1;
    if (!vtype_is_int(kv->type))
        return fq_errf(e, "%s: metadata key '%s' has type %s, expected an integer", g->path, key,
                       fq_gguf_vtype_name(kv->type));
    if (vtype_is_signed(kv->type) ? (kv->i64 < 0 || kv->i64 > (int64_t)UINT32_MAX)
                                  : kv->u64 > UINT32_MAX) {
        if (vtype_is_signed(kv->type))
            return fq_errf(e, "%s: metadata key '%s' is %lld, out of range for u32", g->path,
                           key, LLD(kv->i64));
        return fq_errf(e, "%s: metadata key '%s' is %llu, out of range for u32", g->path, key,
                       LLU(kv->u64));
    }
    *out = (uint32_t)kv->u64;
    return 0;
}

int fq_gguf_get_f32(const fq_gguf *g, const char *key, float *out, fq_err *e) {
    const fq_gguf_kv *kv = fq_gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != FQ_GGUF_FLOAT32 && kv->type != FQ_GGUF_FLOAT64)
        return fq_errf(e, "%s: metadata key '%s' has type %s, expected f32", g->path, key,
                       fq_gguf_vtype_name(kv->type));
    *out = (float)kv->f64;
    return 0;
}

int fq_gguf_get_str(const fq_gguf *g, const char *key, fq_str *out, fq_err *e) {
    const fq_gguf_kv *kv = fq_gguf_find(g, key);
    if (!kv) return 1;
    if (kv->type != FQ_GGUF_STRING)
        return fq_errf(e, "%s: metadata key '%s' has type %s, expected str", g->path, key,
                       fq_gguf_vtype_name(kv->type));
    *out = kv->str;
    return 0;
}

/* Element i of a numeric array in the widest forms; strings and nested arrays read as 0
 * (their type is input the caller should have checked, not a reason to abort). */
static void arr_elem(const fq_gguf_kv *kv, uint64_t i, int64_t *iv, double *fv) {
    FQ_ASSERT(kv->type == FQ_GGUF_ARRAY && i < kv->arr_n);
    *iv = 0;
    *fv = 0;
    uint32_t t = kv->arr_type;
    if (t >= FQ_GGUF_VTYPE_COUNT || t == FQ_GGUF_STRING || t == FQ_GGUF_ARRAY) return;
    fq_gguf_kv tmp;
    decode_scalar(&tmp, t, kv->arr_data + i * vtypes[t].size);
    *iv = tmp.i64;
    *fv = tmp.f64;
}

float fq_gguf_arr_f32(const fq_gguf_kv *kv, uint64_t i) {
    int64_t iv;
    double fv;
    arr_elem(kv, i, &iv, &fv);
    return (float)fv;
}

int64_t fq_gguf_arr_i64(const fq_gguf_kv *kv, uint64_t i) {
    int64_t iv;
    double fv;
    arr_elem(kv, i, &iv, &fv);
    return iv;
}

/* ---- writer ----------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

/* Appends n bytes. Returns 0, or -1 with e set (out of memory). */
static int bytes_put(bytes *b, const void *p, size_t n, fq_err *e) {
    if (n > SIZE_MAX - b->n) return fq_errf(e, "out of memory: value too large");
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return fq_errf(e, "out of memory allocating %zu bytes", cap);
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}
static int bytes_u32(bytes *b, uint32_t v, fq_err *e) { return bytes_put(b, &v, 4, e); }
static int bytes_u64(bytes *b, uint64_t v, fq_err *e) { return bytes_put(b, &v, 8, e); }
static int bytes_str(bytes *b, const char *s, uint64_t n, fq_err *e) {
    return bytes_u64(b, n, e) || bytes_put(b, s, n, e) ? -1 : 0;
}

typedef struct {
    char *key;
    bytes val; /* encoded value: u32 type, then the payload */
} wkv;

typedef struct {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[FQ_GGUF_MAX_DIMS];
    const void *data;
    uint64_t nbytes, offset;
} wtensor;

struct fq_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

fq_gguf_writer *fq_gguf_writer_new(fq_err *e) {
    return fq_calloc(1, sizeof(fq_gguf_writer), e);
}

void fq_gguf_writer_free(fq_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Grows an array of elements of size sz to hold one more. Returns 0, or -1 with e set. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz, fq_err *e) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * sz);
    if (!p) return fq_errf(e, "out of memory allocating %zu bytes", nc * sz);
    *arr = p;
    *cap = nc;
    return 0;
}

/* Installs an encoded value under key, replacing an existing one in place (so copying a
 * file's metadata and then overriding one key keeps the original order). Takes ownership
 * of val's buffer in every case. Returns 0, or -1 with e set. */
static int put_kv(fq_gguf_writer *w, const char *key, bytes *val, fq_err *e) {
    if (!key || !key[0] || strlen(key) > GGUF_MAX_NAME_LEN) {
        free(val->p);
        return fq_errf(e, "gguf writer: invalid metadata key '%s'", key ? key : "(null)");
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key)) continue;
        free(w->kv[i].val.p);
        w->kv[i].val = *val;
        return 0;
    }
    char *k = strdup(key);
    if (!k || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof(wkv), e)) {
        free(k);
        free(val->p);
        return k ? -1 : fq_errf(e, "out of memory");
    }
    w->kv[w->n_kv++] = (wkv){.key = k, .val = *val};
    return 0;
}

/* Length in bytes of n nested arrays starting at p, from a file that was validated when
 * it was opened (so the walk needs no bounds). */
static uint64_t nested_len(const uint8_t *p, uint64_t n) {
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t et;
        uint64_t cnt;
        memcpy(&et, p + off, 4);
        memcpy(&cnt, p + off + 4, 8);
        off += 12;
        if (et == FQ_GGUF_STRING) {
            for (uint64_t j = 0; j < cnt; j++) {
                uint64_t len;
                memcpy(&len, p + off, 8);
                off += 8 + len;
            }
        } else if (et == FQ_GGUF_ARRAY) {
            off += nested_len(p + off, cnt);
        } else {
            off += cnt * vtypes[et].size;
        }
    }
    return off;
}

int fq_gguf_writer_copy_kv(fq_gguf_writer *w, const fq_gguf_kv *kv, fq_err *e) {
    bytes b = {0};
    uint32_t t = kv->type;
    if (t >= FQ_GGUF_VTYPE_COUNT)
        return fq_errf(e, "gguf writer: key '%s' has unknown type %u", kv->key, t);
    int rc = bytes_u32(&b, t, e);
    if (rc) {
        /* fall through to cleanup */
    } else if (t == FQ_GGUF_STRING) {
        rc = bytes_str(&b, kv->str.ptr, kv->str.len, e);
    } else if (t == FQ_GGUF_ARRAY) {
        uint32_t et = kv->arr_type;
        rc = et >= FQ_GGUF_VTYPE_COUNT ? fq_errf(e, "gguf writer: key '%s': unknown array type %u",
                                                 kv->key, et)
                                       : bytes_u32(&b, et, e) || bytes_u64(&b, kv->arr_n, e);
        if (rc) {
        } else if (et == FQ_GGUF_STRING) {
            for (uint64_t i = 0; i < kv->arr_n && !rc; i++)
                rc = bytes_str(&b, kv->strs[i].ptr, kv->strs[i].len, e);
        } else if (et == FQ_GGUF_ARRAY) {
            rc = bytes_put(&b, kv->arr_data, nested_len(kv->arr_data, kv->arr_n), e);
        } else {
            rc = bytes_put(&b, kv->arr_data, kv->arr_n * vtypes[et].size, e);
        }
    } else {
        uint8_t raw[8];
        switch (t) {
        case FQ_GGUF_UINT8: case FQ_GGUF_BOOL: raw[0] = (uint8_t)kv->u64; break;
        case FQ_GGUF_INT8: { int8_t v = (int8_t)kv->i64; memcpy(raw, &v, 1); break; }
        case FQ_GGUF_UINT16: { uint16_t v = (uint16_t)kv->u64; memcpy(raw, &v, 2); break; }
        case FQ_GGUF_INT16: { int16_t v = (int16_t)kv->i64; memcpy(raw, &v, 2); break; }
        case FQ_GGUF_UINT32: { uint32_t v = (uint32_t)kv->u64; memcpy(raw, &v, 4); break; }
        case FQ_GGUF_INT32: { int32_t v = (int32_t)kv->i64; memcpy(raw, &v, 4); break; }
        case FQ_GGUF_FLOAT32: { float v = (float)kv->f64; memcpy(raw, &v, 4); break; }
        case FQ_GGUF_UINT64: memcpy(raw, &kv->u64, 8); break;
        case FQ_GGUF_INT64: memcpy(raw, &kv->i64, 8); break;
        case FQ_GGUF_FLOAT64: memcpy(raw, &kv->f64, 8); break;
        default: FQ_ASSERT(0);
        }
        rc = bytes_put(&b, raw, vtypes[t].size, e);
    }
    if (rc) {
        free(b.p);
        return -1;
    }
    return put_kv(w, kv->key, &b, e);
}

int fq_gguf_writer_set_u32(fq_gguf_writer *w, const char *key, uint32_t v, fq_err *e) {
    bytes b = {0};
    if (bytes_u32(&b, FQ_GGUF_UINT32, e) || bytes_u32(&b, v, e)) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, &b, e);
}

int fq_gguf_writer_set_f32(fq_gguf_writer *w, const char *key, float v, fq_err *e) {
    bytes b = {0};
    if (bytes_u32(&b, FQ_GGUF_FLOAT32, e) || bytes_put(&b, &v, 4, e)) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, &b, e);
}

int fq_gguf_writer_set_str(fq_gguf_writer *w, const char *key, const char *v, fq_err *e) {
    bytes b = {0};
    if (bytes_u32(&b, FQ_GGUF_STRING, e) || bytes_str(&b, v, strlen(v), e)) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, &b, e);
}

int fq_gguf_writer_set_arr(fq_gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n,
                           const void *data, fq_err *e) {
    if (elem_type >= FQ_GGUF_VTYPE_COUNT || !vtypes[elem_type].size)
        return fq_errf(e, "gguf writer: key '%s': element type %u is not numeric", key, elem_type);
    uint64_t nb;
    if (!fq_mul_ok(n, vtypes[elem_type].size, &nb) || nb > SIZE_MAX)
        return fq_errf(e, "gguf writer: key '%s': array too large", key);
    bytes b = {0};
    if (bytes_u32(&b, FQ_GGUF_ARRAY, e) || bytes_u32(&b, elem_type, e) || bytes_u64(&b, n, e) ||
        bytes_put(&b, data, (size_t)nb, e)) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, &b, e);
}

int fq_gguf_writer_set_arr_str(fq_gguf_writer *w, const char *key, const char *const *v,
                               uint64_t n, fq_err *e) {
    bytes b = {0};
    int rc = bytes_u32(&b, FQ_GGUF_ARRAY, e) || bytes_u32(&b, FQ_GGUF_STRING, e) ||
             bytes_u64(&b, n, e);
    for (uint64_t i = 0; i < n && !rc; i++) rc = bytes_str(&b, v[i], strlen(v[i]), e);
    if (rc) {
        free(b.p);
        return -1;
    }
    return put_kv(w, key, &b, e);
}

int fq_gguf_writer_add_tensor(fq_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const int64_t *ne, const void *data, fq_err *e) {
    if (!name || !name[0] || strlen(name) > GGUF_MAX_NAME_LEN)
        return fq_errf(e, "gguf writer: invalid tensor name");
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return fq_errf(e, "gguf writer: duplicate tensor name '%s'", name);
    const fq_type_traits *tr = fq_type_get(type);
    if (!tr || !tr->name)
        return fq_errf(e, "gguf writer: tensor '%s': unknown type %u", name, type);
    if (n_dims < 1 || n_dims > FQ_GGUF_MAX_DIMS)
        return fq_errf(e, "gguf writer: tensor '%s': n_dims %u, expected 1 to %d", name, n_dims,
                       FQ_GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims, .data = data, .ne = {1, 1, 1, 1}};
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || !fq_mul_ok(nel, (uint64_t)ne[d], &nel) || nel > (uint64_t)INT64_MAX)
            return fq_errf(e, "gguf writer: tensor '%s': bad dimension %u (%lld)", name, d,
                           LLD(ne[d]));
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % tr->blck)
        return fq_errf(e, "gguf writer: tensor '%s': dimension 0 (%lld) is not a multiple of %s's "
                       "block size %lld", name, LLD(t.ne[0]), tr->name, LLD(tr->blck));
    if (!fq_mul_ok(nel / (uint64_t)tr->blck, tr->type_size, &t.nbytes))
        return fq_errf(e, "gguf writer: tensor '%s': byte size overflows", name);
    if (!data) return fq_errf(e, "gguf writer: tensor '%s': no data", name);
    t.name = strdup(name);
    if (!t.name) return fq_errf(e, "out of memory");
    if (grow((void **)&w->t, &w->cap_t, w->n_t, sizeof(wtensor), e)) {
        free(t.name);
        return -1;
    }
    w->t[w->n_t++] = t;
    return 0;
}

/* The alignment the file will declare: general.alignment when set (it must then be a
 * u32 power of two), else 32. Returns 0, or -1 with e set. */
static int writer_alignment(const fq_gguf_writer *w, uint64_t *al, fq_err *e) {
    *al = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        uint32_t t, v;
        memcpy(&t, w->kv[i].val.p, 4);
        if (t == FQ_GGUF_UINT32) memcpy(&v, w->kv[i].val.p + 4, 4);
        if (t != FQ_GGUF_UINT32 || v == 0 || (v & (v - 1)))
            return fq_errf(e, "gguf writer: general.alignment must be a u32 power of two");
        *al = v;
    }
    return 0;
}

/* Writes n bytes unless an earlier write failed; *ok records failure. */
static void put(fq_out *f, const void *p, size_t n, int *ok) {
    if (*ok && n && fq_out_write(f, p, n) != 0) *ok = 0;
}
static void put_pad(fq_out *f, uint64_t pos, uint64_t al, int *ok) {
    static const uint8_t zeros[256];
    uint64_t pad = (al - pos % al) % al;
    while (pad > 0 && *ok) {
        size_t k = (size_t)FQ_MIN(pad, sizeof zeros);
        put(f, zeros, k, ok);
        pad -= k;
    }
}

int fq_gguf_writer_write(fq_gguf_writer *w, const char *path, fq_err *e) {
    uint64_t al;
    if (writer_alignment(w, &al, e)) return -1;
    /* Each tensor starts aligned: offsets stay multiples of al, padding follows data. */
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t pad = (al - w->t[i].nbytes % al) % al;
        if (!fq_add_ok(off, w->t[i].nbytes, &off) || !fq_add_ok(off, pad, &off))
            return fq_errf(e, "%s: total tensor size overflows", path);
    }
    /* the output rules of every writer (outfile.h): devices, FIFOs and directories are
     * refused, a regular file is replaced whole or not at all */
    fq_out out, *f = &out;
    if (fq_out_open(f, path, e)) return -1;
    int ok = 1;
    uint32_t version = 3;
    uint64_t nt = w->n_t, nk = w->n_kv, pos = 0;
    put(f, "GGUF", 4, &ok);
    put(f, &version, 4, &ok);
    put(f, &nt, 8, &ok);
    put(f, &nk, 8, &ok);
    pos = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        uint64_t kl = strlen(w->kv[i].key);
        put(f, &kl, 8, &ok);
        put(f, w->kv[i].key, kl, &ok);
        put(f, w->kv[i].val.p, w->kv[i].val.n, &ok);
        pos += 8 + kl + w->kv[i].val.n;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        put(f, &nl, 8, &ok);
        put(f, t->name, nl, &ok);
        put(f, &t->n_dims, 4, &ok);
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            put(f, &v, 8, &ok);
        }
        put(f, &t->type, 4, &ok);
        put(f, &t->offset, 8, &ok);
        pos += 8 + nl + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
    }
    put_pad(f, pos, al, &ok);
    for (size_t i = 0; i < w->n_t && ok; i++) {
        /* Large tensors go in chunks so a failing disk is noticed early. */
        const uint8_t *p = w->t[i].data;
        uint64_t left_n = w->t[i].nbytes;
        while (left_n > 0 && ok) {
            size_t k = (size_t)FQ_MIN(left_n, (uint64_t)1 << 26);
            put(f, p, k, &ok);
            p += k;
            left_n -= k;
        }
        put_pad(f, w->t[i].nbytes, al, &ok);
    }
    return fq_out_close(f, e);
}
