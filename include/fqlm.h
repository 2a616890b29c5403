/* fqlm.h - public API of libfqlm: load a llama-family GGUF model, run it, and apply
 * fake-quantization rules to its intermediate tensors.
 *
 * All handles are opaque. Functions that can fail return 0 on success and -1 on
 * failure, and then fqlm_last_error() gives a message naming what is wrong and where
 * (per thread). Nothing here exits the process.
 *
 *   fqlm_model *m = fqlm_model_load("model.gguf");
 *   fqlm_context_params p = fqlm_context_default_params();
 *   fqlm_context *c = fqlm_context_new(m, &p);
 *   fqlm_context_add_rule(c, "ffn_norm@21=bf16");
 *   int32_t toks[256]; int n = fqlm_tokenize(m, "Hello", toks, 256, 1);
 *   float *logits = malloc(sizeof(float) * fqlm_model_n_vocab(m));
 *   fqlm_eval(c, toks, n, 0, logits);
 */
#ifndef FQLM_H
#define FQLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FQLM_VERSION "0.1.0"

typedef struct fqlm_model fqlm_model;
typedef struct fqlm_context fqlm_context;

/* The message of the last failure on this thread ("" when none). */
const char *fqlm_last_error(void);

/* Loads a GGUF model (mmap'd, weights stay in their stored format). NULL on failure, also
 * when FQLM_ISA asks for a kernel level this CPU cannot run or does not name one. */
fqlm_model *fqlm_model_load(const char *path);
void fqlm_model_free(fqlm_model *m);
int fqlm_model_n_vocab(const fqlm_model *m);
int fqlm_model_n_layer(const fqlm_model *m);
int fqlm_model_n_embd(const fqlm_model *m);
int fqlm_model_n_ctx_train(const fqlm_model *m);

/* Tokenizes UTF-8 text into at most cap ids (BOS first when add_bos and the model adds
 * one). Returns the number of tokens (which may exceed cap: then only cap were written),
 * or -1. */
int fqlm_tokenize(const fqlm_model *m, const char *text, int32_t *ids, int cap, int add_bos);
/* The text of one token (byte tokens give their byte, U+2581 a space). Not NUL-terminated. */
const char *fqlm_token_piece(const fqlm_model *m, int32_t id, size_t *len);
int32_t fqlm_token_bos(const fqlm_model *m);
int32_t fqlm_token_eos(const fqlm_model *m);

/* A tokenizer on its own, from any GGUF file with tokenizer.ggml.* metadata: a whole model
 * or a vocabulary-only file (no tensors), as llama.cpp's --vocab-only. */
typedef struct fqlm_vocab fqlm_vocab;
fqlm_vocab *fqlm_vocab_load(const char *path);
void fqlm_vocab_free(fqlm_vocab *v);
int fqlm_vocab_n_tokens(const fqlm_vocab *v);
/* Tokenizes text[0..len) as llama_tokenize(add_special, parse_special): returns the token
 * count (which may exceed cap: then only cap ids were written), or -1. */
int fqlm_vocab_tokenize(const fqlm_vocab *v, const char *text, size_t len, int32_t *ids, int cap,
                        int add_special, int parse_special);
/* Detokenizes as llama_detokenize(remove_special = 0, unparse_special = special) into buf
 * (cap bytes, NUL-terminated when there is room): returns the length (which may reach cap:
 * then the text was cut), or -1. */
int fqlm_vocab_detokenize(const fqlm_vocab *v, const int32_t *ids, int n, char *buf, int cap,
                          int special);

typedef struct fqlm_context_params {
    int n_ctx;        /* KV cache length in tokens (default 2048) */
    int n_threads;    /* default: physical cores */
    int n_batch;      /* most tokens per forward step (default 512) */
    int exact;        /* 1: F32 activations everywhere (default 0: mirror llama.cpp) */
    int cache_f16;    /* 1: F16 KV cache (default 0: F32) */
    uint64_t seed;    /* seed of stochastic rounding (default 0) */
} fqlm_context_params;

fqlm_context_params fqlm_context_default_params(void);
fqlm_context *fqlm_context_new(fqlm_model *m, const fqlm_context_params *p);
void fqlm_context_free(fqlm_context *c);

/* Adds a fake-quantization rule, as `fqlm run --fq`: "NODES[@LAYERS]=FORMAT[:opts]"
 * (e.g. "ffn_norm@21=bf16", "k_cache=fp8_e4m3"). Weight rules ("weight:GLOB=...") are
 * applied to the model's weights immediately and affect every context of that model. */
int fqlm_context_add_rule(fqlm_context *c, const char *rule);

/* Runs n tokens at positions pos..pos+n-1; writes the last token's logits (n_vocab
 * floats) when logits is not NULL. */
int fqlm_eval(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits);
/* The same, writing the logits of every token (n x n_vocab floats). */
int fqlm_eval_all(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits);

/* The per-(node, layer, format) error table of the rules as JSON (malloc'd; free it). */
char *fqlm_context_stats_json(const fqlm_context *c);

/* ==== Python-facing additions (issue 18): version, nodes, hooks, scoring, formats ======
 * Everything below follows the conventions above: 0 / -1 and fqlm_last_error(). */

/* The library's version (FQLM_VERSION of the build). */
const char *fqlm_version(void);

/* The text of ids[0..n) (the pieces back to back, as the CLI prints them) into buf of
 * cap bytes, NUL-terminated. Returns the full length in bytes (which may be >= cap: then
 * the text was cut), or -1 for an id outside the vocabulary. */
int fqlm_detokenize(const fqlm_model *m, const int32_t *ids, int n, char *buf, size_t cap);

/* The nodes the model computes, in graph order (the names rules, hooks and --dump take):
 * fqlm_model_node(m, i, &has_layer, &cols) gives the i-th name (NULL past the end), whether
 * the node exists once per layer, and its values per token (kq, kq_soft_max: per token
 * n_head rows of n_kv values; cols is n_head there). Rows are the tokens of the batch. */
int fqlm_model_n_nodes(const fqlm_model *m);
const char *fqlm_model_node(const fqlm_model *m, int i, int *has_layer, int64_t *cols);

/* A user hook: called on the thread running fqlm_eval, right after the node's values are
 * computed and after the context's rules rounded them, before anything reads them. values
 * holds rows x cols floats, row-major, and may be changed in place. layer is -1 for nodes
 * without a layer. A nonzero return stops the evaluation: no further hook is called, no
 * further layer is computed (the layer it was in ends), no logits are written, and fqlm_eval
 * returns -1 with a message naming the node and the return value (the cache rows of that
 * pass are then not to be used; the context stays usable). */
typedef int (*fqlm_hook_fn)(void *user_data, const char *node, int layer, float *values,
                            int64_t rows, int64_t cols);

/* Adds a hook on the nodes of node_selector, written as a rule's left side:
 * "NODES[@LAYERS]" ("ffn_norm@*", "attn_norm,ffn_norm@0-3", "result_output"). Several
 * hooks may be added; they run in the order added. */
int fqlm_context_set_hook(fqlm_context *c, const char *node_selector, fqlm_hook_fn fn, void *user_data);
/* Removes every hook (the rules stay). */
void fqlm_context_clear_hooks(fqlm_context *c);
/* Zeroes the rules' statistics (fqlm_context_stats_json). */
void fqlm_context_reset_stats(fqlm_context *c);
int fqlm_context_n_ctx(const fqlm_context *c);

/* Teacher-forced scoring of a token sequence, as `fqlm compare`: base and fq are two
 * contexts of the same model (the baseline, and the one with rules or hooks); the tokens
 * are cut into chunks of at most chunk tokens (<= both contexts' n_ctx; <= 0: the smaller
 * n_ctx), each evaluated from position 0 on both; when tokens[0] is the model's BOS every
 * later chunk starts with BOS too. Every position's next-token distributions are compared.
 * Figures that cannot be given (no positions, NaN/Inf logits) are NAN. */
typedef struct fqlm_score {
    int64_t n_pos;          /* positions compared */
    int64_t n_scored;       /* positions with a known next token */
    int64_t n_nonfinite;    /* positions whose logits hold NaN/Inf */
    int64_t n_chunks;
    double mean_kld, kld_stderr, kld_median, kld_p90, kld_p99, max_kld; /* nats */
    double top1_agree;      /* 0..1 */
    double ppl_base, ppl_fq, ppl_ratio, nll_base, nll_fq;
    double max_abs_logit_diff;
} fqlm_score;

int fqlm_score_tokens(fqlm_context *base, fqlm_context *fq, const int32_t *tokens, int n, int chunk,
                      fqlm_score *out);

/* Rounds x (rows x cols, row-major) in place to the format spec, as a rule with that format
 * rounds a node of that shape (stochastic rounding: stream 0, rows numbered from 0). */
int fqlm_quantize(const char *spec, float *x, int64_t rows, int64_t cols, uint64_t seed);
/* The format specs `fqlm formats` lists, in order; NULL past the end. */
const char *fqlm_format_list(int i);
/* ---- sweeps (`fqlm sweep`'s engine) ----------------------------------------------------------
 * Every (node, layer, format) combination of a selection against the baseline, on a token
 * sequence cut into chunks as fqlm_score_tokens cuts it. The baseline pass keeps every
 * position's logits and the hidden state entering each layer a combination starts at, so a
 * combination at layer L recomputes only layers L.. (reuse; the figures are the same to the
 * last bit as from scratch). The context's own rules and hooks are set aside while the sweep
 * evaluates (weight rules already applied to the model stay); the context must outlive the
 * sweep and must not be evaluated by anything else meanwhile.
 *
 *   fqlm_sweep_params p = fqlm_sweep_default_params();
 *   p.nodes = "ffn_norm,attn_norm"; p.layers = "0-3"; p.formats = "bf16,int4:group=32";
 *   fqlm_sweep *s = fqlm_sweep_new(ctx, toks, n, &p);
 *   for (int i = 0; i < fqlm_sweep_n_combos(s); i++) fqlm_sweep_run(s, i, &row, NULL, NULL);
 */
typedef struct fqlm_sweep fqlm_sweep;

typedef struct fqlm_sweep_params {
    const char *nodes;    /* names or globs, comma-separated ("ffn_norm,attn_*", "*") */
    const char *layers;   /* "N", "N-M", "N,M,...", "*" (NULL: every layer) */
    const char *formats;  /* format specs, comma-separated; options may follow a spec
                             ("int4:group=32,asym,bf16" is two formats) */
    int chunk;            /* tokens per chunk (<= 0: the context's n_ctx) */
    int max_chunks;       /* score the first max_chunks chunks only (<= 0: all) */
    int reuse;            /* 1 (default): start each combination at its first layer */
    int shard_index;      /* with shard_count > 0: shard shard_index (from 0) of shard_count, */
    int shard_count;      /*   as `fqlm sweep --shard I/N` (costliest first); 0: everything */
} fqlm_sweep_params;

fqlm_sweep_params fqlm_sweep_default_params(void);

/* One combination's figures: the fields of `fqlm sweep`'s results.csv, in its order, plus
 * where NaN/Inf appeared. */
typedef struct fqlm_sweep_row {
    char node[32];
    int layer;             /* -1: a node without a layer */
    char format[160];      /* canonical spec */
    int first_layer;       /* where recomputation started (n_layer: only the output) */
    int64_t positions;
    double mean_kld, kld_stderr, kld_median, kld_p90, kld_p99, max_kld; /* nats */
    double top1_agree;     /* 0..1 */
    double ppl_base, ppl_fq, ppl_ratio, dp_mean, max_abs_logit_diff;
    int64_t applications;  /* times the rule rounded a tensor (0: it never fired) */
    double seconds;        /* wall time of the combination */
    int64_t n_nonfinite;   /* positions whose logits held NaN/Inf (their figures are NAN) */
    char nonfinite_at[512];/* where NaN/Inf first appeared, in words ("" when not known) */
} fqlm_sweep_row;

/* Called after each chunk of the baseline and of a combination; a nonzero return abandons
 * it (fqlm_sweep_baseline / fqlm_sweep_run then return 1). */
typedef int (*fqlm_sweep_progress_fn)(void *user_data, int chunk, int n_chunks);

/* Checks the selection (unknown nodes, bad layer lists and formats are refused, naming them)
 * and cuts the tokens into chunks; computes nothing yet. NULL on failure. */
fqlm_sweep *fqlm_sweep_new(fqlm_context *c, const int32_t *tokens, int n, const fqlm_sweep_params *p);
void fqlm_sweep_free(fqlm_sweep *s);
/* The combinations: format by format, then node, then layer (with a shard: the shard's,
 * costliest first). Any out-pointer may be NULL. */
int fqlm_sweep_n_combos(const fqlm_sweep *s);
int fqlm_sweep_combo(const fqlm_sweep *s, int i, const char **node, int *layer, const char **format,
                     int *first_layer);
int fqlm_sweep_n_chunks(const fqlm_sweep *s);
int64_t fqlm_sweep_n_tokens(const fqlm_sweep *s);
/* Layers whose entering hidden state the baseline keeps (memory: that many x n_tokens x n_embd floats). */
int fqlm_sweep_n_kept(const fqlm_sweep *s);
/* The baseline pass (fqlm_sweep_run does it first when not done yet): *ppl and *ppl_err over
 * the *n_scored positions with a next token, *n_nonfinite positions whose logits hold NaN/Inf
 * (no combination can be measured against those). Pointers may be NULL. 0, 1 (abandoned) or -1. */
int fqlm_sweep_baseline(fqlm_sweep *s, fqlm_sweep_progress_fn fn, void *user_data, double *ppl, double *ppl_err,
                        int64_t *n_scored, int64_t *n_nonfinite);
/* Chunk k: its tokens and, after the baseline, its logits (n x n_vocab); NULL past the end. */
const int32_t *fqlm_sweep_chunk(const fqlm_sweep *s, int k, int *n, const float **baseline_logits);
/* Runs combination i into *row. 0, 1 (abandoned by fn) or -1. */
int fqlm_sweep_run(fqlm_sweep *s, int i, fqlm_sweep_row *row, fqlm_sweep_progress_fn fn, void *user_data);

/* ==== end of the Python-facing additions ================================================ */

/* ---- node-by-node comparison (`fqlm diff`) ------------------------------------------------
 * A reference model a and another side b (a second file of the same architecture and shape,
 * or a itself) with fake-quant rules on b, run on the same tokens; every (node, layer) is
 * compared in two modes: propagated (b runs on its own) and local (b's layer L is fed a's
 * residual stream, so a layer's figures are the error it adds by itself). Statistics are
 * accumulated in double while chunks stream through; nothing is kept per token.
 *
 *   fqlm_diff *d = fqlm_diff_new(a, b, &p, rules, n_rules, FQLM_DIFF_BOTH);
 *   fqlm_diff_eval(d, toks, n);              // once per chunk (positions 0..n-1)
 *   for (int i = 0; i < fqlm_diff_n_rows(d); i++) fqlm_diff_get_row(d, i, &row);
 */
typedef struct fqlm_diff fqlm_diff;

#define FQLM_DIFF_PROPAGATED 1
#define FQLM_DIFF_LOCAL 2
#define FQLM_DIFF_BOTH 3

typedef struct fqlm_diff_row {
    const char *node;       /* llama.cpp's name ("ffn_norm") */
    int layer;              /* -1 for nodes without a layer */
    int mode;               /* FQLM_DIFF_PROPAGATED or FQLM_DIFF_LOCAL */
    double rel_l2;          /* ||b - a|| / ||a|| */
    double cosine;
    double max_abs;         /* max |b - a| */
    double sqnr_db;         /* 10 log10(||a||^2 / ||b - a||^2); +Inf when equal */
    double frac_rel_gt_1pct;/* fraction of elements with |b - a| > 1% of |a| */
    double rmse;            /* sqrt(mean (b - a)^2), the fake-quant table's figure */
    int64_t elements, nonfinite;
} fqlm_diff_row;

/* b may be a (rules then must not be weight rules). p: n_ctx is the longest chunk; n_batch,
 * n_threads, exact, cache_f16 and seed act on both sides. Models of another architecture,
 * shape or vocabulary are refused with the first difference named. NULL on failure. */
fqlm_diff *fqlm_diff_new(fqlm_model *a, fqlm_model *b, const fqlm_context_params *p, const char *const *rules,
                         int n_rules, int modes);
void fqlm_diff_free(fqlm_diff *d);
/* One chunk, from position 0 (the next token of position i is tokens[i + 1]). */
int fqlm_diff_eval(fqlm_diff *d, const int32_t *tokens, int n);
/* Rows: every compared (node, layer) in graph order, times the modes run. */
int fqlm_diff_n_rows(const fqlm_diff *d);
int fqlm_diff_get_row(const fqlm_diff *d, int i, fqlm_diff_row *out);
/* KL(a||b) mean, top-1 agreement (0..1) and perplexity ratio b/a over the positions so far,
 * from the propagated run (else the local one); NAN when undefined. Any pointer may be NULL. */
int fqlm_diff_summary(const fqlm_diff *d, double *mean_kld, double *top1_agree, double *ppl_ratio);
/* A context with separate K and V cache types, as llama.cpp's --cache-type-k and
 * --cache-type-v: each "f32" or "f16", or NULL for the type p->cache_f16 gives. (ik_llama.cpp
 * keeps V in F16 and K in F32: fqlm_context_new_kv(m, &p, "f32", "f16") matches it.) A
 * separate function, so that fqlm_context_params keeps its layout for bindings. Returns
 * NULL on an unknown type name (fqlm_last_error() names it) or the errors of
 * fqlm_context_new. */
fqlm_context *fqlm_context_new_kv(fqlm_model *m, const fqlm_context_params *p, const char *cache_type_k,
                                  const char *cache_type_v);

/* ---- planning (`fqlm plan`) --------------------------------------------------------------- */

/* A format spec's canonical form (as sweep and compare print it) into canon (cap bytes,
 * may be NULL) and its cost in bits per element with per-block scales counted (per-tensor,
 * per-row and per-column scales not), the `bits` column of `fqlm formats`. Returns 0, or
 * -1 for an unknown format or option (the message lists the valid ones). */
int fqlm_format_info(const char *spec, char *canon, size_t cap, double *bits);
/* A hash of the model file's bytes (metadata and weights): the model_hash that a sweep
 * directory's sweep.conf records, so results can be matched to the model that made them. */
uint64_t fqlm_model_hash(const fqlm_model *m);
/* FNV-1a (64-bit) of n bytes: sweep.conf's text_hash is this over the text's token ids. */
uint64_t fqlm_hash_bytes(const void *p, size_t n);

/* ---- real weight types per tensor (issue 17) ------------------------------------------------
 * The model's weight matrices (the tensors weight rules, plans and requantization name), in
 * a fixed order (token_embd.weight, then layer by layer, output.weight last unless tied):
 * fqlm_model_weight(m, i, &type, &n_elements, &row_len) gives the i-th name (NULL past the
 * end), its current ggml type in lower case ("f32", "q4_k"), its element count and its row
 * length (ggml's ne[0], which block types must divide). Any out-pointer may be NULL. */
int fqlm_model_n_weights(const fqlm_model *m);
const char *fqlm_model_weight(const fqlm_model *m, int i, const char **type, int64_t *n_elements,
                              int64_t *row_len);

/* The ggml types a weight can be re-encoded to, most bits first: "f32", "f16", "bf16",
 * "q8_0", "q6_k", "q5_1", "q5_0", "q5_k", "q4_1", "q4_0", "q4_k", "q3_k", "q2_k"; NULL past the
 * end. Names are case-insensitive everywhere ("Q4_K" works too). */
const char *fqlm_weight_type_list(int i);
/* Bits per weight of a type with its block scales counted (8 x block bytes / block
 * elements: q4_k 4.5, q8_0 8.5, q6_k 6.5625, q4_0 4.5, f16 16), or -1 for an unknown name
 * (fqlm_last_error() lists the known ones). */
double fqlm_weight_type_bpw(const char *type);
/* 1 when rows of row_len elements are whole blocks of type (the K-quants need multiples of
 * 256, q4_0 ... q8_0 of 32, f32/f16/bf16 any length), 0 when not (fqlm_last_error() then
 * names the types that fit and llama-quantize's fallback), -1 for an unknown name. */
int fqlm_weight_type_fits(const char *type, int64_t row_len);

/* A new model handle (free it with fqlm_model_free) of m's file whose weight matrices
 * tensors[i] are re-encoded to types[i] (n pairs) in memory, so evaluation runs the real
 * kernels of those types: each from the file's stored data decoded to F32 and encoded with
 * the encoders of `fqlm quantize` (a model written by `fqlm quantize --plan` with the same
 * types gives the same logits, bit for bit); a tensor whose type does not change keeps its
 * bytes; the other tensors are unchanged. m itself is not changed (weight rules applied to
 * m are not carried over). n_threads <= 0: physical cores (the result does not depend on
 * it). NULL on failure, with fqlm_last_error() naming the tensor or type: a name that is
 * not one of the model's weight matrices, a tensor given twice, an unknown type, rows that
 * are not whole blocks of the type, memory, or m's file no longer readable. */
fqlm_model *fqlm_model_requantize(const fqlm_model *m, const char *const *tensors, const char *const *types,
                                  int n, int n_threads);

#ifdef __cplusplus
}
#endif

#endif
