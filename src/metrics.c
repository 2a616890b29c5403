/* metrics.c - KL divergence, top-1 agreement, perplexity and next-token probability
 * changes between two sets of logits, in double precision. */
#include "metrics.h"

#include <math.h>
#include <string.h>

/* Max, argmax (lowest index on ties) and whether every value is finite. */
static void row_scan(const float *x, int n, double *mx, int *arg, int *finite) {
    double m = -INFINITY;
    int a = 0, fin = 1;
    for (int i = 0; i < n; i++) {
        const double v = x[i];
        if (!isfinite(v)) fin = 0;
        if (v > m) m = v, a = i;
    }
    *mx = m;
    *arg = a;
    *finite = fin;
}

/* log of sum_i exp(x_i - mx), in double. */
static double log_sum_exp(const float *x, int n, double mx) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return log(s);
}

double fq_nll(const float *logits, int n_vocab, int token) {
    double mx;
    int a, fin;
    row_scan(logits, n_vocab, &mx, &a, &fin);
    if (!fin) return NAN;
    return -((double)logits[token] - mx - log_sum_exp(logits, n_vocab, mx));
}

int64_t fq_count_nonfinite(const float *x, size_t n, int64_t *n_nan, int64_t *n_inf) {
    int64_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        a += isnan(x[i]) != 0;
        b += isinf(x[i]) != 0;
    }
    if (n_nan) *n_nan = a;
    if (n_inf) *n_inf = b;
    return a + b;
}

void fq_metrics_position(const float *base, const float *fq, int n_vocab, int next,
                         fq_pos_metrics *out) {
    double mb, mf;
    int ab, af, fb, ff;
    row_scan(base, n_vocab, &mb, &ab, &fb);
    row_scan(fq, n_vocab, &mf, &af, &ff);
    out->nonfinite = (fb ? 0 : 1) | (ff ? 0 : 2);
    /* a row with NaN/Inf has no argmax worth comparing (an all-NaN row would give 0 twice) */
    out->top1_same = !out->nonfinite && ab == af;
    double dmax = 0.0;
    for (int i = 0; i < n_vocab; i++) {
        const double d = fabs((double)fq[i] - (double)base[i]);
        if (d > dmax || d != d) dmax = d;
    }
    out->max_abs_logit_diff = dmax;
    out->has_next = next >= 0 && next < n_vocab;
    out->nll_base = out->nll_fq = out->dp = NAN;
    out->kld = NAN;
    /* log p(i) = x_i - lse, lse = mx + log sum exp(x - mx) */
    const double lse_b = fb ? mb + log_sum_exp(base, n_vocab, mb) : NAN;
    const double lse_f = ff ? mf + log_sum_exp(fq, n_vocab, mf) : NAN;
    if (out->has_next) {
        if (fb) out->nll_base = -((double)base[next] - lse_b);
        if (ff) out->nll_fq = -((double)fq[next] - lse_f);
    }
    if (out->nonfinite) return;
    const double shift = lse_f - lse_b;
    double kl = 0.0;
    for (int i = 0; i < n_vocab; i++) {
        const double lpb = (double)base[i] - lse_b;
        /* log p_b - log p_f = (b_i - f_i) + (lse_f - lse_b) */
        kl += exp(lpb) * (((double)base[i] - (double)fq[i]) + shift);
    }
    /* KL >= 0; rounding can leave -1e-18 when the rows are nearly equal */
    out->kld = kl > 0.0 ? kl : 0.0;
    if (out->has_next) out->dp = exp(-out->nll_fq) - exp(-out->nll_base);
}

double fq_percentile_sorted(const double *x, size_t n, double p) {
    if (n == 0) return NAN;
    if (p <= 0) return x[0];
    if (p >= 100) return x[n - 1];
    const double h = (double)(n - 1) * p / 100.0;
    const size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return x[n - 1];
    const double frac = h - (double)lo;
    /* equal neighbours (including infinities) need no interpolation */
    if (x[lo] == x[lo + 1] || frac == 0.0) return x[lo];
    return x[lo] + frac * (x[lo + 1] - x[lo]);
}

double fq_ppl_value(const fq_ppl *p) { return p->n ? exp(p->sum_nll / (double)p->n) : NAN; }

double fq_ppl_error(const fq_ppl *p) {
    if (p->n < 2) return 0.0;
    const double mean = p->sum_nll / (double)p->n;
    double var = p->sum_nll2 / (double)p->n - mean * mean;
    if (!(var > 0)) return 0.0;
    return exp(mean) * sqrt(var / (double)(p->n - 1));
}

void fq_metrics_init(fq_metrics *m) { memset(m, 0, sizeof *m); }

void fq_metrics_free(fq_metrics *m) {
    free(m->kld);
    free(m->dp);
    memset(m, 0, sizeof *m);
}

static int push(double **arr, size_t *cap, int64_t n, double v, fq_err *e) {
    if ((size_t)n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        double *na = realloc(*arr, nc * sizeof(double));
        if (!na) return fq_errf(e, "out of memory keeping %zu per-position metrics", nc);
        *arr = na;
        *cap = nc;
    }
    (*arr)[n] = v;
    return 0;
}

int fq_metrics_add(fq_metrics *m, const fq_pos_metrics *p, fq_err *e) {
    if (!p->nonfinite && push(&m->kld, &m->cap_kld, m->n - m->n_inf, p->kld, e)) return -1;
    m->n++;
    m->n_next += p->has_next;
    if (p->nonfinite) {
        m->n_inf++;
        m->n_inf_base += (p->nonfinite & 1) != 0;
        m->n_inf_fq += (p->nonfinite & 2) != 0;
    } else {
        m->sum_kld += p->kld;
        if (p->kld > m->max_kld) m->max_kld = p->kld;
    }
    if (p->max_abs_logit_diff > m->max_abs_logit_diff || p->max_abs_logit_diff != p->max_abs_logit_diff)
        m->max_abs_logit_diff = p->max_abs_logit_diff;
    m->n_top1 += p->top1_same;
    if (!isnan(p->nll_base)) fq_ppl_add(&m->ppl_base, p->nll_base);
    if (!isnan(p->nll_fq)) fq_ppl_add(&m->ppl_fq, p->nll_fq);
    if (!isnan(p->dp)) {
        if (push(&m->dp, &m->cap_dp, m->n_dp, p->dp, e)) return -1;
        m->n_dp++;
        m->sum_dp += p->dp;
    }
    return 0;
}

typedef struct {
    const float *base, *fq;
    int64_t n_rows;
    int n_vocab;
    const int32_t *next;
    fq_pos_metrics *out;
} rows_job;

static void rows_kernel(void *arg, int ith, int nth) {
    rows_job *j = arg;
    int64_t r0, r1;
    fq_split(j->n_rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        fq_metrics_position(j->base + r * j->n_vocab, j->fq + r * j->n_vocab, j->n_vocab,
                            j->next ? j->next[r] : -1, &j->out[r]);
}

int fq_metrics_add_rows(fq_metrics *m, const float *base, const float *fq, int64_t n_rows,
                        int n_vocab, const int32_t *next, fq_pool *pool, fq_err *e) {
    if (n_rows <= 0) return 0;
    fq_pos_metrics *pm = fq_malloc((size_t)n_rows * sizeof *pm, e);
    if (!pm) return -1;
    rows_job j = {base, fq, n_rows, n_vocab, next, pm};
    if (pool && fq_pool_size(pool) > 1 && n_rows > 1) fq_pool_run(pool, rows_kernel, &j);
    else rows_kernel(&j, 0, 1);
    int rc = 0;
    for (int64_t r = 0; r < n_rows && !rc; r++) rc = fq_metrics_add(m, &pm[r], e);
    free(pm);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double *sorted_copy(const double *x, size_t n, fq_err *e) {
    double *s = fq_malloc((n ? n : 1) * sizeof(double), e);
    if (!s) return NULL;
    if (n) memcpy(s, x, n * sizeof(double));
    qsort(s, n, sizeof(double), cmp_double);
    return s;
}

int fq_metrics_summarize(const fq_metrics *m, fq_metrics_summary *s, fq_err *e) {
    memset(s, 0, sizeof *s);
    s->n_pos = m->n;
    s->n_scored = m->n_next;
    s->n_top1 = m->n_top1;
    s->n_nonfinite = m->n_inf;
    s->n_nonfinite_base = m->n_inf_base;
    s->n_nonfinite_fq = m->n_inf_fq;
    const int64_t nf = m->n - m->n_inf;
    const int valid = m->n > 0 && m->n_inf == 0;
    if (valid) {
        s->mean_kld = m->sum_kld / (double)nf;
        /* two passes over the kept values: no cancellation when the spread is small */
        double ss = 0.0;
        for (int64_t i = 0; i < nf; i++) {
            const double d = m->kld[i] - s->mean_kld;
            ss += d * d;
        }
        s->kld_stderr = nf > 1 ? sqrt(ss / (double)(nf - 1) / (double)nf) : 0.0;
    } else {
        s->mean_kld = s->kld_stderr = NAN;
    }
    s->max_kld = valid ? m->max_kld : NAN;
    s->max_abs_logit_diff = m->n ? m->max_abs_logit_diff : NAN;
    s->top1_agree = valid ? (double)m->n_top1 / (double)m->n : NAN;
    const size_t nk = valid ? (size_t)nf : 0;
    double *k = sorted_copy(m->kld, nk, e);
    if (!k) return -1;
    s->kld_median = fq_percentile_sorted(k, nk, 50);
    s->kld_p90 = fq_percentile_sorted(k, nk, 90);
    s->kld_p95 = fq_percentile_sorted(k, nk, 95);
    s->kld_p99 = fq_percentile_sorted(k, nk, 99);
    free(k);
    const size_t nd = valid ? (size_t)m->n_dp : 0;
    double *d = sorted_copy(m->dp, nd, e);
    if (!d) return -1;
    s->dp_mean = nd ? m->sum_dp / (double)nd : NAN;
    s->dp_min = nd ? d[0] : NAN;
    s->dp_max = nd ? d[nd - 1] : NAN;
    s->dp_p1 = fq_percentile_sorted(d, nd, 1);
    s->dp_p5 = fq_percentile_sorted(d, nd, 5);
    s->dp_median = fq_percentile_sorted(d, nd, 50);
    s->dp_p95 = fq_percentile_sorted(d, nd, 95);
    s->dp_p99 = fq_percentile_sorted(d, nd, 99);
    free(d);
    /* a run's perplexity is defined when none of its rows was non-finite */
    const int base_ok = m->n_inf_base == 0, fq_ok = m->n_inf_fq == 0;
    const size_t nb = (size_t)m->ppl_base.n, nq = (size_t)m->ppl_fq.n;
    s->ppl_base = base_ok ? fq_ppl_value(&m->ppl_base) : NAN;
    s->ppl_fq = fq_ok ? fq_ppl_value(&m->ppl_fq) : NAN;
    s->ppl_base_err = base_ok ? fq_ppl_error(&m->ppl_base) : NAN;
    s->ppl_fq_err = fq_ok ? fq_ppl_error(&m->ppl_fq) : NAN;
    s->nll_base = base_ok && nb ? m->ppl_base.sum_nll / (double)nb : NAN;
    s->nll_fq = fq_ok && nq ? m->ppl_fq.sum_nll / (double)nq : NAN;
    s->ppl_ratio = base_ok && fq_ok && nb ? exp(s->nll_fq - s->nll_base) : NAN;
    return 0;
}
