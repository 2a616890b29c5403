/* model.h - a model of one of the families of arch_table.h over a mapped GGUF file.
 *
 * Weight matrices stay in their stored block format inside the mapping; only the small
 * norm vectors are decoded to F32. Shapes are ggml's: a weight W of ne = [n_in, n_out]
 * has n_out rows of n_in elements, and y = W x takes x of n_in. */
#ifndef FQ_MODEL_H
#define FQ_MODEL_H

#include "common.h"
#include "arch_table.h"
#include "gguf.h"

typedef struct fq_weight {
    const char *name;     /* tensor name in the file */
    uint32_t type;        /* enum fq_type of data */
    int64_t n_in;         /* ne[0]: elements per row */
    int64_t n_out;        /* ne[1]: rows */
    const void *data;     /* rows of row_bytes each (mapping, or owned when replaced) */
    size_t row_bytes;
    void *owned;          /* non-NULL when data was replaced (e.g. fake-quantized weights) */
} fq_weight;

/* A weight whose data is NULL is absent (e.g. w_gate of a fused gate/up family); a vector
 * pointer that is NULL is absent. Which ones exist is decided by the family's row. */
typedef struct fq_layer {
    float *attn_norm;     /* [n_embd] (NULL: olmo2) */
    fq_weight wqkv;       /* [n_embd] -> [(n_head + 2 n_head_kv) * head_dim] (phi3) */
    fq_weight wq;         /* [n_embd] -> [n_head * head_dim] */
    fq_weight wk;         /* [n_embd] -> [n_head_kv * head_dim] */
    fq_weight wv;         /* [n_embd] -> [n_head_kv * head_dim] */
    float *bq, *bk, *bv;  /* biases of the projections ([n_head * hd], [n_head_kv * hd]) */
    float *q_norm;        /* [head_dim] per head, or [n_head * head_dim] (qk_norm rule) */
    float *k_norm;        /* [head_dim] or [n_head_kv * head_dim] */
    fq_weight wo;         /* [n_head * head_dim] -> [n_embd] */
    float *bo;            /* [n_embd] */
    float *attn_post_norm;/* [n_embd] */
    float *ffn_norm;      /* [n_embd] (NULL: olmo2) */
    fq_weight w_gate;     /* [n_embd] -> [n_ff] (absent when fused into w_up) */
    fq_weight w_up;       /* [n_embd] -> [n_ff], or [2 n_ff]: gate rows then up rows */
    fq_weight w_down;     /* [n_ff] -> [n_embd] */
    float *ffn_post_norm; /* [n_embd] */
    int swa;              /* 1: sliding-window mask and the local rope base/scale */
} fq_layer;

typedef struct fq_hparams {
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_rot, n_vocab, n_ctx_train;
    float rms_eps, rope_base;
    float rope_freq_scale;     /* 1 / rope.scaling.factor (1 without scaling) */
    float rope_base_swa, rope_freq_scale_swa; /* local (sliding-window) layers */
    int n_swa;                 /* sliding window in positions (0: none) */
    float attn_softcap;        /* 0: none */
    float final_softcap;       /* 0: none */
    float q_scale;             /* the 1/sqrt(.) query scale, wherever the family applies it */
    uint32_t file_type;   /* general.file_type, or UINT32_MAX when absent */
} fq_hparams;

struct fq_tokenizer;

typedef struct fq_model {
    fq_gguf gguf;
    const fq_arch_desc *arch; /* the family's row */
    fq_hparams hp;
    fq_weight tok_embd;   /* [n_embd] x n_vocab rows */
    fq_weight output;     /* [n_embd] -> [n_vocab]; == tok_embd when the file ties them */
    int output_tied;
    float *output_norm;   /* [n_embd] */
    float *rope_freqs;    /* [n_rot / 2] frequency factors, or NULL */
    fq_layer *layers;
    float *norms;         /* one allocation holding every decoded norm vector */
    struct fq_tokenizer *tok;
    int64_t load_us;      /* time spent in fq_model_load */
} fq_model;

/* Loads and checks a model: architecture (a row of arch_table.h), hyperparameters against tensor shapes,
 * supported tensor types. Returns NULL with e set ("PATH: what is wrong"). */
fq_model *fq_model_load(const char *path, fq_err *e);
void fq_model_free(fq_model *m);

/* Every weight matrix of the model in a fixed order (for fake-quant weight rules and
 * stats): returns the count, fills up to cap pointers. */
int fq_model_weights(fq_model *m, fq_weight **out, int cap);

/* Bytes of weights read to decode one token (all matrices once, plus one embedding row). */
uint64_t fq_model_weight_bytes(const fq_model *m);

#endif
