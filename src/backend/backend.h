/* backend.h - the one seam between the graph (src/forward.c: what is computed, in what
 * order, where the hooks sit, which buffers) and a backend (how it is computed).
 *
 * The graph calls only the operations table below. A backend is a folder under
 * src/backend/ (today: cpu/) that fills the table; a second backend (a GPU) is one more
 * folder and one more constructor, and nothing in the graph changes.
 *
 * Buffers. Activation buffers come from ops->alloc and are handed back to the backend's
 * operations; the graph never dereferences them except through the host view below. The
 * backend owns the KV cache, the attention scores and its scratch (encoded activations),
 * and its threads.
 *
 * Hooks see host memory. Before a hook runs on a buffer the graph calls
 * ops->host_view (a pointer to the values in host memory) and afterwards ops->host_commit
 * (the host values become the buffer's values). The CPU backend's buffers are host memory
 * already: the view is the buffer itself and the commit does nothing, so a hook costs
 * nothing extra. A GPU backend copies the hooked node out and back in these two calls.
 *
 * Arithmetic. Every operation of the CPU backend gives the same bits for any thread count
 * and ISA level; a backend reproduces llama.cpp's CPU arithmetic (forward.h) or says where
 * it does not. */
#ifndef FQ_BACKEND_H
#define FQ_BACKEND_H

#include "common.h"
#include "model.h"
#include "threadpool.h"

typedef struct fq_backend fq_backend;

typedef struct fq_backend_params {
    int n_threads;         /* >= 1 */
    int exact;             /* 1: F32 activations, weights decoded exactly */
    int n_ctx;             /* KV cache rows per layer */
    int ub;                /* most tokens per step */
    uint32_t cache_type_k, cache_type_v; /* FQ_TYPE_F32 or FQ_TYPE_F16 */
} fq_backend_params;

/* Rotary embedding of one step: per layer base / frequency scale, optional frequency
 * factors (rope_freqs), NORM or NEOX pairing (fq_arch_desc.rope_mode). */
typedef struct fq_rope_params {
    int64_t n_rot, head_dim, n_head, n_head_kv;
    float base, freq_scale;
    const float *freq_factors; /* NULL: none */
    int neox;
} fq_rope_params;

/* Attention of one layer: hpu/grouping is the backend's business; these are the graph's. */
typedef struct fq_attn_params {
    float kq_scale;  /* scale of Q.K (1 where the graph pre-scaled Q) */
    float softcap;   /* 0: none */
    int64_t window;  /* sliding window (0: none): key j visible from query i iff i - j < window */
} fq_attn_params;

enum fq_unary_op {
    FQ_UN_SCALE,   /* y *= f */
    FQ_UN_SOFTCAP, /* y = tanh(y / f) * f, as ggml */
    FQ_UN_SILU,    /* y = silu(y), as ggml's vector SiLU */
    FQ_UN_GELU,    /* y = gelu(y), f32 as enum fq_ffn_act in (int)f */
};

enum fq_binary_op {
    FQ_BIN_ADD,       /* y = a + y (T rows of n) */
    FQ_BIN_MUL,       /* y *= a */
    FQ_BIN_ADD_ROW,   /* y += a, a is one row (a bias) */
    FQ_BIN_GLU_SPLIT, /* y = silu(a[0..n)) * a[n..2n): a has rows of 2n (fused gate|up) */
};

/* Attention phases: scores (Q.K times kq_scale), then softmax (soft-cap, window mask,
 * softmax), then the weighted sum of V; FQ_ATTN_ALL runs the three per unit in one pass
 * (used when no hook reads the scores in between). */
enum { FQ_ATTN_SCORES = 0, FQ_ATTN_SOFTMAX = 1, FQ_ATTN_PV = 2, FQ_ATTN_ALL = 3 };

#define FQ_MATMUL_MAX 3 /* weights that share one input in one matmul call */

typedef struct fq_backend_ops {
    const char *name;
    void (*free)(fq_backend *b);

    /* ---- buffers and host copies ---- */
    /* n floats of activation memory (zeroed); NULL with e set */
    float *(*alloc)(fq_backend *b, size_t n, fq_err *e);
    void (*release)(fq_backend *b, float *buf);
    void (*to_host)(fq_backend *b, float *dst, const float *src, size_t n);
    void (*from_host)(fq_backend *b, float *dst, const float *src, size_t n);
    /* the hook protocol (see above) */
    float *(*host_view)(fq_backend *b, float *buf, size_t n);
    void (*host_commit)(fq_backend *b, float *buf, float *view, size_t n);
    /* the threads a host-side consumer (a hook) may use */
    fq_pool *(*host_pool)(fq_backend *b);
    uint64_t (*kv_bytes)(const fq_backend *b);

    /* ---- operations; every x/y/a is a buffer from alloc (T rows, contiguous) ---- */
    /* y[T][n] = rows ids of weight w, decoded to F32 (token embeddings) */
    void (*get_rows)(fq_backend *b, const fq_weight *w, const int32_t *ids, int64_t T, float *y);
    /* y_k[T][n_out_k] = x[T][n_in] W_k^T for n <= FQ_MATMUL_MAX weights with the same n_in,
     * the activations encoded once per partner format of the weights (or F32 in exact
     * mode). glu (n == 2, equal n_out): y_0 = silu(y_0) * y_1 afterwards. */
    void (*matmul)(fq_backend *b, int n, const fq_weight *const *w, float *const *y, const float *x, int64_t T,
                   int glu);
    /* RMSNorm of T rows of n as ggml computes it, per group of sub elements (0: the row),
     * times w (sub or n elements); y may be x */
    void (*rmsnorm)(fq_backend *b, int64_t T, int64_t n, int64_t sub, const float *x, const float *w, float *y,
                    float eps);
    /* RoPE of token t of q and k at position pos + t, in place */
    void (*rope)(fq_backend *b, int64_t T, int64_t pos, const fq_rope_params *p, float *q, float *k);
    void (*unary)(fq_backend *b, int op, int64_t T, int64_t n, float *y, float f);
    void (*binary)(fq_backend *b, int op, int64_t T, int64_t n, const float *a, float *y);
    /* dst[t][0..n) = src[t][col0..col0+n) for rows of src_cols (views of a fused output) */
    void (*copy_cols)(fq_backend *b, int64_t T, const float *src, int64_t src_cols, int64_t col0, int64_t n,
                      float *dst);
    /* KV cache (which 0: K, 1: V). kv_stage: dst = src's T rows as the cache will hold
     * them (rounded to the cache type); kv_write: stores T rows of src at positions pos.. of
     * layer il (src already staged: the store adds no further rounding). */
    void (*kv_stage)(fq_backend *b, int which, const float *src, float *dst, int64_t T);
    void (*kv_write)(fq_backend *b, int il, int which, const float *src, int64_t T, int64_t pos);
    /* attention of layer il for the T queries q at positions pos.. against the cache,
     * heads merged into out[T][n_head head_dim]; phase as above */
    void (*attention)(fq_backend *b, int il, int64_t T, int64_t pos, const fq_attn_params *p, const float *q,
                      float *out, int phase);
    /* token t's score rows after the scores or softmax phase: n_head rows of pos + t + 1 */
    float *(*attn_scores)(fq_backend *b, int64_t T, int64_t pos, int64_t t);
    /* most tokens (<= want) a step at pos may take (the scores must fit) */
    int64_t (*step_tokens)(const fq_backend *b, int64_t want, int64_t pos);
} fq_backend_ops;

struct fq_backend {
    const fq_backend_ops *ops;
};

/* The CPU backend (src/backend/cpu/). NULL with e set. */
fq_backend *fq_backend_cpu_new(const fq_model *m, const fq_backend_params *p, fq_err *e);

#endif
