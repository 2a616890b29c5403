/* metrics.h - how far one next-token distribution is from another, position by position,
 * and perplexity as llama-perplexity estimates it.
 *
 * Everything is computed in double precision from F32 logits: each row goes through a
 * log-softmax with its maximum subtracted, so a 16-bit store of the reference (as
 * llama.cpp's KL tool keeps it) never limits what can be seen. Per position:
 *   KL(base || fq) = sum_i p_b(i) (log p_b(i) - log p_fq(i))   (nats; identical rows give 0)
 *   top-1 agreement: argmax of both rows equal (lowest index on ties, as fq_argmax)
 *   when the next token t is known: -log p_b(t), -log p_fq(t), dp = p_fq(t) - p_b(t)
 *   max |logit_fq - logit_b|
 * An accumulator keeps every position's KL and dp (8 bytes each) so that medians and
 * tails are exact; sums run in position order, so the same positions in the same order
 * give the same numbers to the last bit whatever the thread count. */
#ifndef FQ_METRICS_H
#define FQ_METRICS_H

#include "common.h"
#include "threadpool.h"

/* What one position gives. nll_* and dp are NAN when the next token is unknown.
 * A row holding a NaN or an Inf has no softmax: nonfinite says which row does (bit 0 the
 * baseline, bit 1 the fake-quant row); kld and dp are then NAN, top1_same is 0, and the
 * nll of that row is NAN. */
typedef struct fq_pos_metrics {
    double kld;
    double nll_base, nll_fq;
    double dp;
    double max_abs_logit_diff;
    int top1_same;
    int has_next;
    int nonfinite;
} fq_pos_metrics;

/* One position: base and fq are n_vocab logits; next is the actual next token or -1. */
void fq_metrics_position(const float *base, const float *fq, int n_vocab, int next,
                         fq_pos_metrics *out);

/* Counts the NaN and the +-Inf values of x[0..n); returns their sum. */
int64_t fq_count_nonfinite(const float *x, size_t n, int64_t *n_nan, int64_t *n_inf);

/* Percentile p (0..100) of sorted x[0..n) with linear interpolation between order
 * statistics (numpy's default): x[(n-1) p / 100]. NAN when n = 0. */
double fq_percentile_sorted(const double *x, size_t n, double p);

/* Perplexity as llama-perplexity computes it: sums of the negative log-likelihood and its
 * square over scored tokens; ppl = exp(mean), and its error = ppl * sqrt(var / (n - 1))
 * with var = mean(nll^2) - mean(nll)^2 (0 when n < 2 or var <= 0). */
typedef struct fq_ppl {
    double sum_nll, sum_nll2;
    int64_t n;
} fq_ppl;

static inline void fq_ppl_add(fq_ppl *p, double nll) {
    p->sum_nll += nll;
    p->sum_nll2 += nll * nll;
    p->n++;
}
double fq_ppl_value(const fq_ppl *p);  /* NAN when n = 0 */
double fq_ppl_error(const fq_ppl *p);

/* -log softmax(logits)[token] in double. */
double fq_nll(const float *logits, int n_vocab, int token);

/* The accumulator: add positions, then summarize. */
typedef struct fq_metrics {
    int64_t n;              /* positions */
    int64_t n_top1;         /* positions whose argmax agrees */
    int64_t n_inf;          /* positions with a non-finite row (no KL) */
    int64_t n_inf_base;     /* ... whose baseline row holds NaN/Inf */
    int64_t n_inf_fq;       /* ... whose fake-quant row holds NaN/Inf */
    int64_t n_next;         /* positions with a known next token */
    double sum_kld;
    double max_kld;
    double max_abs_logit_diff;
    fq_ppl ppl_base, ppl_fq;
    double sum_dp;
    double *kld;            /* [n - n_inf]: the finite positions' KL */
    double *dp;             /* [n_dp]: positions with a next token and both rows finite */
    int64_t n_dp;
    size_t cap_kld, cap_dp;
    int oom;
} fq_metrics;

void fq_metrics_init(fq_metrics *m);
void fq_metrics_free(fq_metrics *m);
/* Adds one position's figures. Returns 0, or -1 with e set when memory runs out. */
int fq_metrics_add(fq_metrics *m, const fq_pos_metrics *p, fq_err *e);

/* Computes n_rows positions (rows of n_vocab logits; next[r] the token that follows row r,
 * -1 when unknown) on the pool's threads (pool may be NULL), then adds them in row order.
 * Returns 0, or -1 with e set. */
int fq_metrics_add_rows(fq_metrics *m, const float *base, const float *fq, int64_t n_rows,
                        int n_vocab, const int32_t *next, fq_pool *pool, fq_err *e);

/* Figures over every position: when any position holds NaN/Inf logits (n_nonfinite > 0)
 * there is no KL, top-1 or dp figure to give and those are NAN, and so is each run's
 * perplexity when one of its rows is non-finite: the counts say how many. */
typedef struct fq_metrics_summary {
    int64_t n_pos;          /* positions compared */
    int64_t n_scored;       /* positions with a known next token */
    int64_t n_nonfinite;    /* positions whose baseline or fake-quant logits hold NaN/Inf */
    int64_t n_nonfinite_base, n_nonfinite_fq;
    double mean_kld, kld_stderr;   /* stderr = sd / sqrt(n), sd with n - 1 */
    double kld_median, kld_p90, kld_p95, kld_p99, max_kld;
    double top1_agree;      /* fraction, 0..1 */
    int64_t n_top1;
    double ppl_base, ppl_base_err, ppl_fq, ppl_fq_err, ppl_ratio;
    double nll_base, nll_fq;       /* mean negative log-likelihoods */
    double dp_mean, dp_min, dp_p1, dp_p5, dp_median, dp_p95, dp_p99, dp_max;
    double max_abs_logit_diff;
} fq_metrics_summary;

/* Fills s from the positions added so far (sorts copies; m is unchanged). Returns 0, or
 * -1 with e set when memory runs out. Undefined figures (no positions, or non-finite
 * positions, see above) are NAN. */
int fq_metrics_summarize(const fq_metrics *m, fq_metrics_summary *s, fq_err *e);

#endif
