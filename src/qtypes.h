/* qtypes.h - ggml tensor types: block layouts, decode to F32, reference encoders, dot
 * products of a weight row with an activation row in the weight type's partner format.
 *
 * Type ids mirror ggml's (and so GGUF's) numbering; the enum is append-only.
 * One trait table indexed by type (see STYLE.md): new types are table entries. */
#ifndef FQ_QTYPES_H
#define FQ_QTYPES_H

#include "common.h"

enum fq_type {
    FQ_TYPE_F32 = 0, FQ_TYPE_F16 = 1, FQ_TYPE_Q4_0 = 2, FQ_TYPE_Q4_1 = 3,
    /* 4, 5: removed Q4_2, Q4_3 */
    FQ_TYPE_Q5_0 = 6, FQ_TYPE_Q5_1 = 7, FQ_TYPE_Q8_0 = 8, FQ_TYPE_Q8_1 = 9,
    FQ_TYPE_Q2_K = 10, FQ_TYPE_Q3_K = 11, FQ_TYPE_Q4_K = 12, FQ_TYPE_Q5_K = 13,
    FQ_TYPE_Q6_K = 14, FQ_TYPE_Q8_K = 15,
    /* 16..29: IQ types and integer types we do not support (names known for messages) */
    FQ_TYPE_BF16 = 30,
    FQ_TYPE_COUNT = 40
};

#define FQ_QK 32     /* block size of the *_0 / *_1 formats */
#define FQ_QK_K 256  /* super-block size of the K-quants */

typedef struct fq_type_traits {
    const char *name;        /* "Q4_K", as ggml names it; NULL for unknown ids */
    int supported;           /* 1 when decode and dot product exist */
    int64_t blck;            /* elements per block */
    size_t type_size;        /* bytes per block */
    /* decode n elements (n a multiple of blck) to F32, bit-exact with ggml */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* reference encoder (as ggml's quantize_row_*_ref), n a multiple of blck; NULL if
     * the type has none */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* partner activation type for the default (llama.cpp-mirroring) mode */
    int vec_dot_type;
    /* dot product of n elements: x in this type (weight row), y in vec_dot_type */
    void (*vec_dot)(int64_t n, float *s, const void *x, const void *y);
    /* dot product of n elements: x in this type, y plain F32 (the --exact mode):
     * equal to decoding x and summing x[i]*y[i] in F32 */
    void (*vec_dot_f32)(int64_t n, float *s, const void *x, const float *y);
} fq_type_traits;

/* Traits of a type id, or NULL when the id is out of range. traits->name is NULL for ids
 * that never existed; supported is 0 for types we know by name but cannot compute. */
const fq_type_traits *fq_type_get(uint32_t type);
const char *fq_type_name(uint32_t type);   /* "Q4_K", or "type 17 (IQ2_XXS)", never NULL */
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size. */
size_t fq_row_size(uint32_t type, int64_t n);

/* Scalar conversions, bit-exact with ggml (F16: IEEE binary16 round-to-nearest-even;
 * BF16: round-to-nearest-even, NaN kept quiet). */
float fq_fp16_to_f32(uint16_t h);
uint16_t fq_f32_to_fp16(float f);
float fq_bf16_to_f32(uint16_t h);
uint16_t fq_f32_to_bf16(float f);

/* Selects the SIMD variants once from CPUID (idempotent, thread-safe to call before
 * threads start). FQLM_FORCE_GENERIC=1 in the environment forces the portable C path.
 * Returns the name of the chosen ISA level ("avx512", "avx2", "generic"). */
const char *fq_qtypes_init(void);

#endif
