/* gguf.h - GGUF v2/v3 reader (read-only mmap) and writer.
 *
 * Every byte of the file is distrusted: counts, string lengths, dimensions, offsets and
 * sizes are checked against the file size and for overflow before use. Errors name the
 * file, what is wrong and where, e.g.
 *   "model.gguf: tensor 'blk.3.ffn_up.weight': data ends at byte 812000000, file has 640000000".
 * Spec: ggml's docs/gguf.md. */
#ifndef FQ_GGUF_H
#define FQ_GGUF_H

#include "common.h"

/* Metadata value types, as stored in the file. */
enum fq_gguf_vtype {
    FQ_GGUF_UINT8 = 0, FQ_GGUF_INT8 = 1, FQ_GGUF_UINT16 = 2, FQ_GGUF_INT16 = 3,
    FQ_GGUF_UINT32 = 4, FQ_GGUF_INT32 = 5, FQ_GGUF_FLOAT32 = 6, FQ_GGUF_BOOL = 7,
    FQ_GGUF_STRING = 8, FQ_GGUF_ARRAY = 9, FQ_GGUF_UINT64 = 10, FQ_GGUF_INT64 = 11,
    FQ_GGUF_FLOAT64 = 12, FQ_GGUF_VTYPE_COUNT
};

/* A string inside the mapped file: NOT NUL-terminated. */
typedef struct fq_str {
    const char *ptr;
    uint64_t len;
} fq_str;

typedef struct fq_gguf_kv {
    char *key;              /* NUL-terminated copy (malloc'd) */
    uint32_t type;          /* enum fq_gguf_vtype */
    /* scalars (type != STRING, != ARRAY): value converted to all three forms */
    uint64_t u64;
    int64_t i64;
    double f64;
    fq_str str;             /* type == STRING */
    /* arrays (type == ARRAY): element type, count; numeric elements raw little-endian
     * (possibly unaligned: read with memcpy or the accessors below); string elements in
     * strs[] (malloc'd). Nested arrays are validated and skipped: arr_data points at the
     * first nested array's header, strs is NULL. */
    uint32_t arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;
    fq_str *strs;
} fq_gguf_kv;

#define FQ_GGUF_MAX_DIMS 4

typedef struct fq_gguf_tensor {
    char *name;             /* NUL-terminated copy (malloc'd) */
    uint32_t n_dims;
    int64_t ne[FQ_GGUF_MAX_DIMS]; /* ne[0] varies fastest; unused dims are 1 */
    uint32_t type;          /* ggml type id (enum fq_type in qtypes.h) */
    uint64_t offset;        /* relative to the start of the data section */
    uint64_t nbytes;        /* from type and shape (checked for overflow, block multiple) */
    const void *data;       /* into the mapping */
} fq_gguf_tensor;

typedef struct fq_gguf {
    char *path;             /* for messages */
    const uint8_t *map;     /* whole file */
    uint64_t size;
    int mapped;             /* 1: map came from mmap and is unmapped on close */
    uint32_t version;
    uint64_t n_kv;
    fq_gguf_kv *kv;
    uint64_t n_tensors;
    fq_gguf_tensor *tensors;
    uint64_t alignment;     /* general.alignment or 32 */
    uint64_t data_offset;   /* start of the tensor data section */
} fq_gguf;

/* Opens and validates a GGUF file (mmap, read-only). Returns 0, or -1 with e set
 * ("PATH: what is wrong"). A directory, a missing or unreadable file are errors. */
int fq_gguf_open(fq_gguf *g, const char *path, fq_err *e);
/* The same over a caller-owned buffer that must outlive g (fuzzing, tests). */
int fq_gguf_open_mem(fq_gguf *g, const void *buf, uint64_t size, const char *name, fq_err *e);
void fq_gguf_close(fq_gguf *g);

const fq_gguf_kv *fq_gguf_find(const fq_gguf *g, const char *key);
const fq_gguf_tensor *fq_gguf_find_tensor(const fq_gguf *g, const char *name);

/* Typed getters. Return 0 when found with a compatible type (any integer type for the
 * integer getters, if the value fits; float32/float64 for get_f32), 1 when the key is
 * absent (out untouched), -1 with e set when present with the wrong type or out of range. */
int fq_gguf_get_u32(const fq_gguf *g, const char *key, uint32_t *out, fq_err *e);
int fq_gguf_get_f32(const fq_gguf *g, const char *key, float *out, fq_err *e);
int fq_gguf_get_str(const fq_gguf *g, const char *key, fq_str *out, fq_err *e);
/* Array getters: element i of a numeric array as float / int64 (any numeric type). */
float fq_gguf_arr_f32(const fq_gguf_kv *kv, uint64_t i);
int64_t fq_gguf_arr_i64(const fq_gguf_kv *kv, uint64_t i);

const char *fq_gguf_vtype_name(uint32_t t);

/* ---- writer (for `fqlm synth` and `fqlm quantize`) ---------------------------------
 * Build a file in memory-light fashion: add metadata and tensor infos, then write.
 * Tensor data is supplied as pointers that must stay valid until fq_gguf_write. */
typedef struct fq_gguf_writer fq_gguf_writer;
fq_gguf_writer *fq_gguf_writer_new(fq_err *e);
void fq_gguf_writer_free(fq_gguf_writer *w);
/* Copies the key/value (including whole arrays) from an open file. */
int fq_gguf_writer_copy_kv(fq_gguf_writer *w, const fq_gguf_kv *kv, fq_err *e);
int fq_gguf_writer_set_u32(fq_gguf_writer *w, const char *key, uint32_t v, fq_err *e);
int fq_gguf_writer_set_f32(fq_gguf_writer *w, const char *key, float v, fq_err *e);
int fq_gguf_writer_set_str(fq_gguf_writer *w, const char *key, const char *v, fq_err *e);
/* Arrays: n numeric elements of elem_type (raw little-endian, e.g. float[] for
 * FQ_GGUF_FLOAT32), or n NUL-terminated strings. Setting a key again replaces its value
 * in place (all setters). Return 0, or -1 with e set. */
int fq_gguf_writer_set_arr(fq_gguf_writer *w, const char *key, uint32_t elem_type, uint64_t n,
                           const void *data, fq_err *e);
int fq_gguf_writer_set_arr_str(fq_gguf_writer *w, const char *key, const char *const *v,
                               uint64_t n, fq_err *e);
/* Adds a tensor; data holds nbytes (computed from type and shape) bytes. */
int fq_gguf_writer_add_tensor(fq_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const int64_t *ne, const void *data, fq_err *e);
/* Writes version 3, alignment 32, whole or not at all, by the rules of outfile.h. */
int fq_gguf_writer_write(fq_gguf_writer *w, const char *path, fq_err *e);

#endif
