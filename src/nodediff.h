/* nodediff.h - node-by-node comparison of two runs on the same tokens: a reference A and
 * another side B (another file of the same architecture and shape, A's own file with
 * fake-quant rules, or both), teacher-forced.
 *
 * For every selected (node, layer) the statistics of b - a are accumulated in double while
 * the text streams through (no tensor is kept beyond one forward step), in two modes:
 *  - propagated: B runs on its own (B's layer L consumes B's layer L-1);
 *  - local: B's layer L is fed A's residual stream (A's layer input overwrites B's at
 *    every layer boundary: inp_embd / inp_scaled and each l_out, after their statistics
 *    are taken), so each layer's figures show the error it adds by itself.
 * The logits of the propagated run (else the local one) give KL / top-1 / perplexity as
 * compare computes them (metrics.h).
 *
 * How: A's context captures the selected nodes of one step (at most `step` tokens) into a
 * log; B's contexts then run the same tokens and every hooked call is matched, in order,
 * against the log entry of the same (node, layer, shape). */
#ifndef FQ_NODEDIFF_H
#define FQ_NODEDIFF_H

#include "common.h"
#include "forward.h"
#include "metrics.h"
#include "model.h"

enum { FQ_DIFF_PROPAGATED = 1, FQ_DIFF_LOCAL = 2 };

/* Statistics of b - a over every element seen at one (node, layer) in one mode. Pairs where
 * a == b (also equal infinities) add to elements only; other pairs with a NaN or an Inf are
 * counted in nonfinite and kept out of the sums. */
typedef struct fq_diff_acc {
    int64_t elements;
    int64_t nonfinite;
    int64_t n_gt1pct;     /* |b - a| > 0.01 |a| */
    double sum_a2, sum_b2, sum_ab, sum_d2;
    double max_abs;
} fq_diff_acc;

/* Figures of one accumulator (undefined ones are NAN; identical values give rel_l2 0,
 * cosine 1, sqnr +Inf). */
typedef struct fq_diff_stats {
    double rel_l2;        /* ||b - a|| / ||a|| */
    double cosine;        /* <a, b> / (||a|| ||b||); 1 when both are zero */
    double max_abs;       /* max |b - a| */
    double sqnr_db;       /* 10 log10(||a||^2 / ||b - a||^2) */
    double frac_rel_gt_1pct;
    double rmse;          /* sqrt(||b - a||^2 / counted elements): the fake-quant table's rmse */
    int64_t elements, nonfinite;
} fq_diff_stats;

void fq_diff_acc_add(fq_diff_acc *s, const float *a, const float *b, int64_t n);
void fq_diff_acc_stats(const fq_diff_acc *s, fq_diff_stats *out);

/* Checks that b can be compared with a node by node: architecture, layer count, every
 * shape, the nodes each computes, the vocabulary (size and every token's text). Returns 0,
 * or -1 with e naming the first difference. */
int fq_diff_check_models(const fq_model *a, const fq_model *b, fq_err *e);

typedef struct fq_diff_params {
    fq_ctx_params ctx;        /* both sides (n_ctx: the longest chunk) */
    int modes;                /* FQ_DIFF_PROPAGATED | FQ_DIFF_LOCAL (0: both) */
    const uint8_t *nodes;     /* hook-mask layout (fq_hook_mask_size of a); NULL: every node */
    const char *const *rules; /* fake-quant rules for B (as --fq), n_rules of them */
    int n_rules;
    uint64_t seed;            /* stochastic rounding seed of the rules */
    size_t step_bytes;        /* most bytes one step's capture may hold (0: 256 MiB) */
} fq_diff_params;

typedef struct fq_diff fq_diff;

/* b may equal a (then rules, if any, must not be weight rules: they would change A).
 * Weight rules are applied to b. NULL with e set (mismatched models, bad rule, memory). */
fq_diff *fq_diff_new(const fq_model *a, fq_model *b, const fq_diff_params *p, fq_err *e);
void fq_diff_free(fq_diff *d);

/* Runs one chunk (positions 0..n-1, a fresh start). next[i]: the token that follows
 * position i (-1: none); NULL: tokens[i + 1], and none for the last. 0, or -1 with e set. */
int fq_diff_eval(fq_diff *d, const int32_t *tokens, int n, const int32_t *next, fq_err *e);

/* The compared (node, layer) pairs in graph order (layer -1 for nodes without one). */
int fq_diff_n_rows(const fq_diff *d);
void fq_diff_row(const fq_diff *d, int i, int *node, int *layer);
/* The statistics of row i in mode (FQ_DIFF_PROPAGATED or FQ_DIFF_LOCAL); -1 when that mode
 * was not run. */
int fq_diff_row_stats(const fq_diff *d, int i, int mode, fq_diff_stats *out);
int fq_diff_modes(const fq_diff *d);
/* KL / top-1 / perplexity of B's logits against A's (propagated run if any, else local). */
int fq_diff_metrics(const fq_diff *d, fq_metrics_summary *s, fq_err *e);
/* The fake-quant rule sets acting on B (NULL when there are none): for the table. */
struct fq_fakequant *fq_diff_fakequant(const fq_diff *d, int mode);
/* Tokens per step the capture allows. */
int fq_diff_step_tokens(const fq_diff *d);

#endif
