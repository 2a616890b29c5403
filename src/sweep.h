/* sweep.h - the sweep engine: every (node, layer, format) combination of a selection against
 * the baseline, on a token sequence scored as `fqlm compare` scores it. `fqlm sweep` (CLI,
 * MPI ranks and shards) and fqlm_sweep_* of the public API (the Python package) both run
 * this code.
 *
 * Reuse: a rule that first acts at layer L cannot change anything below L, so the baseline
 * pass keeps the hidden state entering each layer and every combination recomputes only
 * layers L.. and the output from it (fq_ctx_eval_from). The numbers are the same to the last
 * bit as a run from scratch: layers below L see the same inputs and do the same arithmetic. */
#ifndef FQ_SWEEP_H
#define FQ_SWEEP_H

#include "common.h"
#include "forward.h"
#include "metrics.h"
#include "model.h"

/* ---- chunks ------------------------------------------------------------------------------
 * Chunks of at most ctx tokens, back to back in tok: chunk k is tok[off[k] .. off[k+1]).
 * When the text starts with BOS (the model adds one), the first chunk is the first ctx
 * tokens and every later chunk is BOS followed by the next ctx - 1 tokens of the text, so
 * no token of the text is skipped and every chunk starts as a text does. A last, shorter
 * chunk is kept. */
typedef struct fq_chunks {
    int32_t *tok;
    int64_t *off;      /* [n + 1] */
    int n;
    int ctx;
    int64_t n_tokens;  /* sum of the chunk lengths */
} fq_chunks;

/* max_chunks <= 0: all of them. bos: the BOS id when the model adds one, else -1.
 * Returns 0, or -1 with e set (empty text, no memory). */
int fq_chunks_make(fq_chunks *c, const int32_t *toks, size_t n, int ctx, int max_chunks, int32_t bos, fq_err *e);
void fq_chunks_free(fq_chunks *c);
static inline int fq_chunk_len(const fq_chunks *c, int k) { return (int)(c->off[k + 1] - c->off[k]); }
static inline const int32_t *fq_chunk_tok(const fq_chunks *c, int k) { return c->tok + c->off[k]; }
/* The token that follows each position of chunk k (-1 for the last): next must hold
 * fq_chunk_len(c, k) ids. */
void fq_chunk_next(const fq_chunks *c, int k, int32_t *next);

/* ---- the selection ------------------------------------------------------------------------ */

typedef struct fq_sweep_combo {
    int node;
    int layer;      /* -1: no layer */
    int fmt;        /* index into the selection's formats */
} fq_sweep_combo;

typedef struct fq_sweep_sel {
    int nodes[FQ_NODE_COUNT];
    int n_nodes;
    int *layers;    /* selected layers, ascending */
    int n_layers;
    char **formats; /* canonical specs */
    int n_formats;
} fq_sweep_sel;

/* nodes: names or globs, comma-separated; layers: N, N-M, N,M,... or "*"/"all"/"-1" (NULL: all);
 * formats: specs, comma-separated, where a piece that is no format on its own continues the
 * previous one's options ("int4:group=32,asym,bf16" is two formats). Messages start with
 * "nodes: ", "layers: " or "formats: ". Returns 0, or -1 with e set. */
int fq_sweep_sel_parse(fq_sweep_sel *s, const fq_model *m, const char *nodes, const char *layers, const char *formats,
                       fq_err *e);
/* The two list parsers fq_sweep_sel_parse uses, for every command that selects layers or
 * formats (sweep, plan): "N, N-M, N,M,... or * / all / -1 (every layer; NULL too)" for a
 * model of n_layer layers into *layers (malloc'd, ascending, no repeats), and format specs
 * as above into *formats (malloc'd canonical specs, repeats dropped). Messages name no
 * option (the caller prefixes its own). Return 0, or -1 with e set and nothing allocated. */
int fq_parse_layer_list(const char *list, int n_layer, int **layers, int *n, fq_err *e);
int fq_parse_format_list(const char *list, char ***formats, int *n_formats, fq_err *e);
void fq_sweep_sel_free(fq_sweep_sel *s);

/* The first layer a combination recomputes (its cost with reuse is n_layer - start + 1). */
int fq_sweep_combo_start(const fq_sweep_combo *c, int n_layer);
/* Shard I of N (0-based): the combinations c[0..n) in canonical order are sorted costliest
 * first (earliest first layer; ties keep their order) and dealt out round robin, so every
 * shard gets a like share of the work. Depends on nothing but the selection and the layer
 * count. Keeps shard I's combinations (costliest first) at the front of c; returns their count. */
int fq_sweep_shard_pick(fq_sweep_combo *c, int n, int n_layer, int I, int N);
/* "node@L=format" or "node=format" (a rule). */
void fq_sweep_combo_label(char *buf, size_t n, const fq_sweep_sel *s, const fq_sweep_combo *c);

/* ---- one row ------------------------------------------------------------------------------ */

typedef struct fq_sweep_row {
    char node[32];
    int layer;             /* -1: a node without a layer */
    char format[160];      /* canonical spec */
    int first_layer;       /* where recomputation started (n_layer: only the output) */
    int64_t positions;
    double mean_kld, kld_stderr, kld_median, kld_p90, kld_p99, max_kld;
    double top1_agree, ppl_base, ppl_fq, ppl_ratio, dp_mean, max_abs_logit_diff;
    int64_t applications;  /* times the rule rounded a tensor */
    double seconds;        /* wall time of the combination */
    int64_t n_nonfinite;   /* positions whose logits held NaN/Inf */
    char nonfinite_at[512];/* where NaN/Inf first appeared ("" when fq could not tell) */
} fq_sweep_row;

/* ---- the engine ----------------------------------------------------------------------------- */

typedef struct fq_sweep {
    const fq_model *m;
    fq_ctx *ctx;           /* borrowed; its hook is set and cleared by each evaluation */
    fq_sweep_sel sel;
    fq_sweep_combo *combos;/* the selection's combinations (this shard's, costliest first, with a shard) */
    int n_combo;
    fq_chunks ch;
    int reuse;
    uint64_t seed;
    int n_layer, n_vocab, n_embd;
    uint8_t *need;         /* [n_layer + 1]: hidden states entering these layers are kept */
    int n_need;
    float *base_logits;    /* [n_tokens][n_vocab], after fq_sweep_baseline */
    float *lf;             /* one chunk's logits */
    int32_t *next;         /* [n_tokens] */
    float **hid;           /* [n_layer + 1] */
    int have_baseline;
    fq_ppl base_ppl;
    int64_t base_nonfinite;/* baseline positions whose logits held NaN/Inf */
} fq_sweep;

typedef struct fq_sweep_opts {
    const char *nodes, *layers, *formats;
    int ctx;               /* tokens per chunk (>= 2) */
    int max_chunks;        /* <= 0: all */
    int reuse;
    int shard_i, shard_n;  /* shard_n 0: every combination */
    uint64_t seed;         /* stochastic rounding */
} fq_sweep_opts;

/* Parses the selection, lists the combinations (format by format, then node, then layer;
 * with a shard: the shard's, costliest first) and cuts the tokens into chunks. Allocates
 * nothing big yet. Returns 0, or -1 with e set. */
int fq_sweep_init(fq_sweep *s, const fq_model *m, fq_ctx *ctx, const int32_t *toks, size_t n, const fq_sweep_opts *o,
                  fq_err *e);
void fq_sweep_free(fq_sweep *s);

/* The baseline pass: every position's logits and the hidden states the combinations start
 * from. Non-finite baseline logits are counted (base_nonfinite), not an error. Returns 0, or
 * -1 with e set. stop (may be NULL) is polled between chunks: nonzero abandons (returns 1). */
int fq_sweep_baseline(fq_sweep *s, int (*stop)(void *ud, int chunk, int n_chunks), void *ud, fq_err *e);

/* Combination i: fills row. stop as above (called after each chunk). Returns 0, 1 when
 * abandoned, or -1 with e set (a bad rule, no memory, an evaluation error). */
int fq_sweep_eval(fq_sweep *s, int i, fq_sweep_row *row, int (*stop)(void *ud, int chunk, int n_chunks), void *ud,
                  fq_err *e);

#endif
