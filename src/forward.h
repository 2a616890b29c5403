/* forward.h - the llama forward pass over a batch of tokens, with a KV cache and hook
 * points named as llama.cpp names its graph nodes.
 *
 * Arithmetic modes:
 *  - default: as llama.cpp's CPU backend: before each weight matrix product the
 *    activation rows are encoded in the weight type's partner format (traits
 *    from_float_act / vec_dot_type) and the dot product runs in that format;
 *  - exact: activations stay F32; weights are decoded exactly inside the dot product.
 *
 * Hooks: for every (node, layer) marked in the hook mask, the hook is called on the main
 * thread right after the node's values are computed and before anything reads them, with
 * a writable view of the values (fake quantization rounds them in place; capture copies
 * them). Nodes without a mark cost nothing.
 *
 * Graph and backend: this file and forward.c are the graph (which nodes, in what order,
 * which buffers, where the hooks sit); every computation goes through the operations table
 * of backend/backend.h, filled by the CPU backend (backend/cpu/). A hook always sees host
 * memory: a backend whose buffers live elsewhere copies the hooked node out and back. */
#ifndef FQ_FORWARD_H
#define FQ_FORWARD_H

#include "common.h"
#include "model.h"
#include "threadpool.h"

enum fq_node {
    FQ_NODE_INP_EMBD,      /* [T][n_embd] token embeddings (no layer) */
    FQ_NODE_ATTN_NORM,     /* [T][n_embd] */
    FQ_NODE_QCUR,          /* [T][n_head*head_dim], after RoPE */
    FQ_NODE_KCUR,          /* [T][n_head_kv*head_dim], after RoPE */
    FQ_NODE_VCUR,          /* [T][n_head_kv*head_dim] */
    FQ_NODE_K_CACHE,       /* [T][n_head_kv*head_dim]: the values stored in the K cache */
    FQ_NODE_V_CACHE,       /* [T][n_head_kv*head_dim]: the values stored in the V cache */
    FQ_NODE_KQ,            /* per token: [n_head][n_kv] scaled scores, before softmax */
    FQ_NODE_KQ_SOFT_MAX,   /* per token: [n_head][n_kv] attention weights */
    FQ_NODE_KQV,           /* [T][n_head*head_dim] heads merged (kqv_merged_cont) */
    FQ_NODE_KQV_OUT,       /* [T][n_embd] after W_o */
    FQ_NODE_FFN_INP,       /* [T][n_embd] residual */
    FQ_NODE_FFN_NORM,      /* [T][n_embd] */
    FQ_NODE_FFN_GATE,      /* [T][n_ff] */
    FQ_NODE_FFN_UP,        /* [T][n_ff] */
    FQ_NODE_FFN_SILU,      /* [T][n_ff] */
    FQ_NODE_FFN_GATE_PAR,  /* [T][n_ff] silu(gate) * up */
    FQ_NODE_FFN_OUT,       /* [T][n_embd] after W_down */
    FQ_NODE_L_OUT,         /* [T][n_embd] layer output */
    FQ_NODE_RESULT_NORM,   /* [T_out][n_embd] (no layer) */
    FQ_NODE_RESULT_OUTPUT, /* [T_out][n_vocab] logits (after the final soft-cap, if any) */
    /* nodes of the other families (and of llama files with biases) */
    FQ_NODE_INP_SCALED,    /* [T][n_embd] inp_embd * sqrt(n_embd) (gemma; no layer) */
    FQ_NODE_WQKV,          /* [T][(n_head + 2 n_head_kv) hd] fused projection (phi3) */
    FQ_NODE_QCUR_PROJ,     /* [T][n_head hd] W_q x (llama.cpp: the first write of Qcur) */
    FQ_NODE_KCUR_PROJ,     /* [T][n_head_kv hd] W_k x */
    FQ_NODE_VCUR_PROJ,     /* [T][n_head_kv hd] W_v x, before its bias (only with a V bias) */
    FQ_NODE_QCUR_BIASED,   /* [T][n_head hd] W_q x + b_q */
    FQ_NODE_KCUR_BIASED,   /* [T][n_head_kv hd] W_k x + b_k */
    FQ_NODE_QCUR_NORMED,   /* Q after its RMSNorm (per head or over the projection) */
    FQ_NODE_KCUR_NORMED,
    FQ_NODE_QCUR_SCALED,   /* Q after RoPE times the query scale (gemma2, phi3) */
    FQ_NODE_ATTN_POST_NORM,/* [T][n_embd] RMSNorm of kqv_out */
    FQ_NODE_SA_OUT,        /* [T][n_embd] attention residual (gemma's name for ffn_inp) */
    FQ_NODE_FFN_GELU,      /* [T][n_ff] gelu(ffn_gate) */
    FQ_NODE_FFN_MUL,       /* [T][n_ff] silu(gate rows) * up rows of a fused W_up (phi3) */
    FQ_NODE_FFN_POST_NORM, /* [T][n_embd] RMSNorm of ffn_out */
    FQ_NODE_COUNT
};

/* fqlm's name of a node ("ffn_norm"): llama.cpp's for the family, keeping mainline
 * llama.cpp's meaning of a name in every family (see tests/data/arch/README.md for where a
 * reference graph differs). fq_node_from_name also accepts llama.cpp's long names
 * (kq_soft_max_ext, kqv_merged_cont). Returns -1 for an unknown name. */
const char *fq_node_name(int node);
int fq_node_from_name(const char *name);
int fq_node_has_layer(int node);
/* 1 when the model's family (and its optional tensors) computes the node. */
int fq_node_in_model(const fq_model *m, int node);
/* The model's node names, in graph order, as "name, name, ..." into buf. */
void fq_node_list(const fq_model *m, char *buf, size_t n);
/* The model's nodes in graph order (at most FQ_NODE_COUNT); returns the count. */
int fq_node_order(const fq_model *m, int *out);
/* Values per token (columns) a node has in model m (kq, kq_soft_max: n_head x n_kv, given
 * as n_head here). */
int64_t fq_node_cols(const fq_model *m, int node);

typedef struct fq_hook_call {
    int node;            /* enum fq_node */
    int layer;           /* -1 for nodes without a layer */
    float *data;         /* nrows x ncols, contiguous, writable */
    int64_t nrows, ncols;
    int64_t pos;         /* position of the first row's token (kq, kq_soft_max: the token) */
    int64_t row0;        /* stable index of row 0 for position-dependent draws */
    fq_pool *pool;       /* host threads free for the hook to use (the backend's ops->host_pool) */
} fq_hook_call;

typedef void (*fq_hook_fn)(void *ud, const fq_hook_call *call);

typedef struct fq_ctx_params {
    int n_ctx;           /* KV cache length (tokens) */
    int n_threads;       /* >= 1 */
    int exact;           /* 1: --exact */
    uint32_t cache_type; /* FQ_TYPE_F32 or FQ_TYPE_F16: K and V (unless set below) */
    int kv_split;        /* 1: K and V take cache_type_k / cache_type_v instead */
    uint32_t cache_type_k, cache_type_v;
    int n_batch;         /* most tokens per forward step (prompts are split), >= 1 */
} fq_ctx_params;

typedef struct fq_ctx fq_ctx;

/* Allocates the KV cache and activations once. NULL with e set (the message gives the
 * size needed when memory runs out). */
fq_ctx *fq_ctx_new(const fq_model *m, const fq_ctx_params *p, fq_err *e);
void fq_ctx_free(fq_ctx *c);

/* Installs a hook: mask[node * (n_layer + 1) + (layer + 1)] != 0 marks (node, layer);
 * layer -1 (index 0) is for nodes without a layer. The mask is copied. */
void fq_ctx_set_hook(fq_ctx *c, fq_hook_fn fn, void *ud, const uint8_t *mask);
/* Called from a hook: the evaluation running now calls no further hook, stops at the end of
 * the layer (or output step) it is in, writes no logits, and returns -1 ("stopped by a
 * hook"). The cache rows of that pass are then not to be used; the next evaluation runs as
 * usual. */
void fq_ctx_stop(fq_ctx *c);
size_t fq_hook_mask_size(const fq_model *m);

/* Runs tokens[0..n) at positions pos..pos+n-1 (the cache must hold positions < pos).
 * logits: when all_logits, n x n_vocab floats; otherwise n_vocab floats of the last
 * token; may be NULL. Returns 0, or -1 with e set (context full, bad token id). */
int fq_ctx_eval(fq_ctx *c, const int32_t *tokens, int n, int pos, float *logits, int all_logits,
                fq_err *e);

/* Runs layers [layer0, n_layer) and the output on a given hidden state h (n x n_embd,
 * the input of layer layer0) at positions pos..: lets a sweep reuse a baseline's hidden
 * state. The KV cache of layers >= layer0 is written as usual. */
int fq_ctx_eval_from(fq_ctx *c, int layer0, const float *h, int n, int pos, float *logits,
                     int all_logits, fq_err *e);

/* The hidden state entering layer il (0..n_layer) of the last eval, n x n_embd; NULL
 * unless fq_ctx_keep_hidden(c, 1) was called before it. */
void fq_ctx_keep_hidden(fq_ctx *c, int on);
const float *fq_ctx_hidden(const fq_ctx *c, int il);

const fq_model *fq_ctx_model(const fq_ctx *c);
fq_pool *fq_ctx_pool(fq_ctx *c);
int fq_ctx_n_ctx(const fq_ctx *c);
uint64_t fq_ctx_kv_bytes(const fq_ctx *c);

/* internal (tests): the FFN activation of enum fq_ffn_act, in place, as the forward pass
 * computes it (defined by the CPU backend, backend/cpu/cpu_backend.c) */
void fq__gelu_row(float *x, int64_t n, int act);

#endif
