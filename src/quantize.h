/* quantize.h - llama-quantize's tensor type mixes, and converting a model's weights.
 *
 * A "mix" is what llama.cpp calls a file type (LLAMA_FTYPE_MOSTLY_Q4_K_M, ...): one base
 * type for most weights plus rules that give some tensors more bits (output.weight in
 * Q6_K, about half of the attn_v / ffn_down tensors chosen by layer, ...). fq_qmix_plan
 * reproduces llama.cpp's llama_tensor_get_type (src/llama-quant.cpp, c392e509) for the
 * families fqlm runs (a fused attn_qkv has its own rule) without an importance matrix,
 * so a model converted here has the tensor
 * types llama-quantize gives it; the encoders are the reference ones (quantize_row_*_ref),
 * as llama-quantize uses without an imatrix, so the bytes agree too.
 *
 * Rows are encoded in parallel; a row's bytes depend only on its values, so the result
 * does not depend on the thread count. */
#ifndef FQ_QUANTIZE_H
#define FQ_QUANTIZE_H

#include "common.h"
#include "threadpool.h"

typedef struct fq_qmix {
    const char *name;   /* "q4_k_m", as given on the command line (lower case) */
    uint32_t ftype;     /* llama.cpp's LLAMA_FTYPE: the value of general.file_type */
    uint32_t base_type; /* enum fq_type most weights get */
    int pure;           /* 1: every quantizable weight gets base_type, no per-tensor rules */
} fq_qmix;

/* Finds a type or mix by name (case-insensitive): f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0
 * q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k give llama-quantize's
 * choices; q3_k q4_k q5_k give every weight that one type (pure). Returns 0, or -1 with e
 * set (listing the names). */
int fq_qmix_find(const char *name, fq_qmix *out, fq_err *e);
/* The accepted names, comma-separated (for help texts). */
const char *fq_qmix_names(void);
/* llama.cpp's name of a general.file_type value ("Q4_K_M", "F16"), or NULL when unknown. */
const char *fq_qmix_ftype_name(uint32_t ftype);

/* One tensor as the planner sees it. */
typedef struct fq_qtensor {
    const char *name;
    uint32_t type;      /* current type (kept when the tensor is not quantizable) */
    uint32_t n_dims;
    int64_t ne[4];
} fq_qtensor;

/* Model facts llama-quantize's rules look at. */
typedef struct fq_qmix_hp {
    int n_layer, n_head, n_head_kv;
} fq_qmix_hp;

/* Chooses the type of each of the n tensors (any order) as llama-quantize chooses it for
 * mix: types[i] for t[i]. 1-D tensors, norms and names not ending in "weight" keep their
 * type. A tensor whose rows are not a whole number of blocks of the chosen type falls
 * back as llama.cpp's tensor_type_fallback does (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0; F16 where those blocks do not fit either); for the types
 * llama-quantize has no fallback for (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) it refuses, and so
 * does this. The count of fallbacks goes to *n_fallback (may be NULL). Returns 0, or -1
 * with e set (a tensor llama-quantize refuses, naming it; memory). */
int fq_qmix_plan(const fq_qmix *mix, const fq_qmix_hp *hp, const fq_qtensor *t, size_t n,
                 uint32_t *types, int *n_fallback, fq_err *e);
/* The same, with wanted[i] (may be NULL): the type the mix's rules chose for t[i] before
 * any fallback (types[i] when its rows are whole blocks of it). */
int fq_qmix_plan_detail(const fq_qmix *mix, const fq_qmix_hp *hp, const fq_qtensor *t, size_t n,
                        uint32_t *types, uint32_t *wanted, fq_err *e);
/* The same, with manual types: over[i] (FQ_TYPE_COUNT: none) replaces the mix's rules for
 * t[i] when t[i] can be quantized at all (llama-quantize's --tensor-type; the fallback still
 * applies); mix may be NULL: then every tensor without a manual type keeps its type. */
int fq_qmix_plan_over(const fq_qmix *mix, const fq_qmix_hp *hp, const fq_qtensor *t, size_t n,
                      const uint32_t *over, uint32_t *types, uint32_t *wanted, fq_err *e);
/* 1 when llama-quantize would quantize the tensor at all (2-D or more, a name ending in
 * "weight", not a norm, ...). */
int fq_qmix_quantizable(const fq_qtensor *t);
/* general.file_type for a file whose quantizable weights have types[0..n) (n_per_type
 * counts): llama.cpp's LLAMA_FTYPE of the most common block type (Q4_K: Q4_K_M, as
 * llama.cpp's loader guesses it), or of the most common type when none is a block type;
 * UINT32_MAX when n is 0 or a type has no file type. */
uint32_t fq_qmix_ftype_of_types(const uint32_t *types, size_t n);

/* Why a tensor the rules gave `wanted` was written as `got` instead, for logs: "" when
 * they are equal; says where it differs from the reference llama.cpp build (Q2_K/Q3_K
 * rows: that build writes IQ4_NL, which fqlm has no encoder for; llama.cpp's current code
 * and fqlm write Q4_0). Never NULL. */
const char *fq_qmix_fallback_note(uint32_t wanted, uint32_t got);
/* llama.cpp's tensor_type_fallback: the type a tensor with rows of ncols elements gets when
 * it should have type t (t itself when the rows are whole blocks of it; FQ_TYPE_COUNT when
 * llama-quantize has no fallback and stops). */
uint32_t fq_qmix_fallback_type(uint32_t t, int64_t ncols);

/* llama.cpp's order of tensors (llama_model_loader's weights map): tensors outside the
 * blk.N. layers first, then layer by layer; by name within each. Fills order[0..n) with
 * indices into names. */
void fq_qorder(const char *const *names, size_t n, size_t *order);

/* A row producer: writes row `row` (n F32 values) of a tensor into dst. Called from the
 * pool's threads, concurrently for different rows. */
typedef void (*fq_row_fn)(void *ud, int64_t row, float *dst, int64_t n);

/* Fills dst (nrows rows of type, fq_row_size(type, n_per_row) bytes each) from the rows
 * the producer gives, encoded with the type's reference encoder (traits from_float);
 * rows are split over the pool's threads (pool NULL: the calling thread). Only one row of
 * F32 values per thread is held at a time. Returns 0, or -1 with e set (the type has no
 * encoder, n_per_row not a whole number of blocks, memory). */
int fq_encode_rows(fq_pool *pool, uint32_t type, int64_t nrows, int64_t n_per_row,
                   fq_row_fn src, void *ud, void *dst, fq_err *e);

/* Internal: Q4_K / Q5_K / Q6_K encoders equal bit for bit to the reference ones (traits
 * from_float, ggml's quantize_row_q*_K_ref) and several times faster (quantize_k.c);
 * fq_encode_rows uses them unless the environment asks for the generic level (cpu.h). */
void fq__encode_q4_K_fast(const float *x, void *dst, int64_t n);
void fq__encode_q5_K_fast(const float *x, void *dst, int64_t n);
void fq__encode_q6_K_fast(const float *x, void *dst, int64_t n);

typedef struct fq_quantize_params {
    const char *type;   /* type or mix name (fq_qmix_find); NULL only with a plan (tt_regex 0):
                         * then the tensors the plan does not name keep their type */
    int pure;           /* 1: no per-tensor rules, every quantizable weight gets the base type */
    int n_threads;      /* >= 1 */
    FILE *log;          /* one line per tensor, or NULL */
    /* manual types (n_tt pairs; tensors they give are not touched by the mix's rules):
     * tt_regex 0, a plan: tt_names are exact tensor names, each a quantizable weight of the
     * input, given once, whose rows are whole blocks of its type (else an error: no fallback);
     * tt_regex 1, llama-quantize's --tensor-type: POSIX extended regular expressions
     * (lower-cased) searched in each quantizable tensor's name, the first one that matches
     * gives the type, then llama-quantize's fallback applies; needs a block type. */
    const char *const *tt_names;
    const uint32_t *tt_types;
    int n_tt;
    int tt_regex;
} fq_quantize_params;

typedef struct fq_quantize_stats {
    uint64_t bytes_in, bytes_out;   /* tensor data */
    int n_tensors, n_converted;
    int n_fallback;                 /* tensors written in a fallback type (see fq_qmix_plan) */
    int n_fallback_q4_0;            /* ... as Q4_0: from Q2_K/Q3_K, where the reference build
                                     * c392e509 writes IQ4_NL (fq_qmix_fallback_note) */
    int n_fallback_f16;             /* ... as F16: rows not whole blocks of 32 either */
    int n_by_type[32];              /* output tensors per type id (ids < 32) */
} fq_quantize_stats;

/* Converts the weights of the GGUF model in_path to p->type and writes out_path (whole or
 * not at all): metadata copied as llama-quantize copies it (general.file_type and
 * general.quantization_version set, at the end), tensors in llama.cpp's order, each
 * decoded with to_float and encoded with from_float unless its type does not change.
 * st may be NULL. Returns 0, or -1 with e set. */
int fq_quantize_file(const char *in_path, const char *out_path, const fq_quantize_params *p,
                     fq_quantize_stats *st, fq_err *e);

/* The llama-quantize command line that writes the file fq_quantize_file would write for
 * these arguments (malloc'd, one line, arguments quoted for a POSIX shell): with manual
 * types, every quantizable weight is named by an anchored --tensor-type pattern
 * ('^blk\.0\.attn_q\.weight$=q4_k') and TYPE is the file type written (so llama-quantize's
 * first-match and last-match versions agree); --allow-requantize when the input holds
 * block-type weights. Returns 0, or -1 with e set (the errors of fq_quantize_file's
 * planning; a plan whose weights hold no block type, which llama-quantize cannot express:
 * it ignores --tensor-type for a float TYPE). */
int fq_quantize_llama_cmd(const char *in_path, const char *out_path, const fq_quantize_params *p, char **cmd,
                          fq_err *e);

#endif
