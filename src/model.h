/* model.h - a llama-architecture model over a mapped GGUF file.
 *
 * Weight matrices stay in their stored block format inside the mapping; only the small
 * norm vectors are decoded to F32. Shapes are ggml's: a weight W of ne = [n_in, n_out]
 * has n_out rows of n_in elements, and y = W x takes x of n_in. */
#ifndef FQ_MODEL_H
#define FQ_MODEL_H

#include "common.h"
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

typedef struct fq_layer {
    float *attn_norm;     /* [n_embd] */
    fq_weight wq;         /* [n_embd] -> [n_head * head_dim] */
    fq_weight wk;         /* [n_embd] -> [n_head_kv * head_dim] */
    fq_weight wv;         /* [n_embd] -> [n_head_kv * head_dim] */
    fq_weight wo;         /* [n_head * head_dim] -> [n_embd] */
    float *ffn_norm;      /* [n_embd] */
    fq_weight w_gate;     /* [n_embd] -> [n_ff] */
    fq_weight w_up;       /* [n_embd] -> [n_ff] */
    fq_weight w_down;     /* [n_ff] -> [n_embd] */
} fq_layer;

typedef struct fq_hparams {
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_rot, n_vocab, n_ctx_train;
    float rms_eps, rope_base;
    uint32_t file_type;   /* general.file_type, or UINT32_MAX when absent */
} fq_hparams;

struct fq_tokenizer;

typedef struct fq_model {
    fq_gguf gguf;
    fq_hparams hp;
    fq_weight tok_embd;   /* [n_embd] x n_vocab rows */
    fq_weight output;     /* [n_embd] -> [n_vocab]; == tok_embd when the file ties them */
    int output_tied;
    float *output_norm;   /* [n_embd] */
    fq_layer *layers;
    float *norms;         /* one allocation holding every decoded norm vector */
    struct fq_tokenizer *tok;
    int64_t load_us;      /* time spent in fq_model_load */
} fq_model;

/* Loads and checks a model: architecture, hyperparameters against tensor shapes,
 * supported tensor types. Returns NULL with e set ("PATH: what is wrong"). */
fq_model *fq_model_load(const char *path, fq_err *e);
void fq_model_free(fq_model *m);

/* Every weight matrix of the model in a fixed order (for fake-quant weight rules and
 * stats): returns the count, fills up to cap pointers. */
int fq_model_weights(fq_model *m, fq_weight **out, int cap);

/* Bytes of weights read to decode one token (all matrices once, plus one embedding row). */
uint64_t fq_model_weight_bytes(const fq_model *m);

#endif
