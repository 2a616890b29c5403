/* sampler.c - repeat penalty, top-k, top-p, min-p, temperature, seeded draw. */
#include "sampler.h"

#include <math.h>
#include <string.h>

typedef struct {
    float logit;
    int id;
} cand;

struct fq_sampler {
    fq_sampler_params p;
    int n_vocab;
    cand *c;
    float *prob;
    int *hist;
    int n_hist, hist_pos;
    uint64_t rng;
};

void fq_sampler_defaults(fq_sampler_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 42;
}

fq_sampler *fq_sampler_new(const fq_sampler_params *p, int n_vocab, fq_err *e) {
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) {
        fq_errf(e, "--top-p %g must be in (0, 1]", p->top_p);
        return NULL;
    }
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) {
        fq_errf(e, "--min-p %g must be in [0, 1]", p->min_p);
        return NULL;
    }
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty)) {
        fq_errf(e, "--repeat-penalty %g must be positive", p->repeat_penalty);
        return NULL;
    }
    if (!isfinite(p->temp)) {
        fq_errf(e, "--temp %g must be finite", p->temp);
        return NULL;
    }
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20)) {
        fq_errf(e, "--repeat-last-n %d is out of range", p->repeat_last_n);
        return NULL;
    }
    fq_sampler *s = fq_calloc(1, sizeof *s, e);
    if (!s) return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->c = fq_calloc((size_t)n_vocab, sizeof *s->c, e);
    s->prob = fq_calloc((size_t)n_vocab, sizeof *s->prob, e);
    s->hist = fq_calloc((size_t)FQ_MAX(1, p->repeat_last_n), sizeof *s->hist, e);
    if (!s->c || !s->prob || !s->hist) {
        fq_sampler_free(s);
        return NULL;
    }
    s->rng = p->seed ^ 0x9E3779B97F4A7C15ull;
    return s;
}

void fq_sampler_free(fq_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->prob);
    free(s->hist);
    free(s);
}

void fq_sampler_accept(fq_sampler *s, int token) {
    if (s->p.repeat_last_n <= 0) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->n_hist < s->p.repeat_last_n) s->n_hist++;
}

int fq_argmax(const float *x, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    return best;
}

/* splitmix64: small, fast, and the whole state is the seed */
static uint64_t next_u64(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* Moves the k largest candidates to the front, sorted descending. */
static void top_k_sort(cand *c, int n, int k) {
    if (k < n) {
        /* quickselect for the k-th largest, then sort the front */
        int lo = 0, hi = n - 1;
        while (lo < hi) {
            cand pivot = c[(lo + hi) / 2];
            int i = lo, j = hi;
            while (i <= j) {
                while (cand_desc(&c[i], &pivot) < 0) i++;
                while (cand_desc(&c[j], &pivot) > 0) j--;
                if (i <= j) {
                    cand t = c[i];
                    c[i] = c[j];
                    c[j] = t;
                    i++;
                    j--;
                }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else break;
        }
    }
    qsort(c, (size_t)FQ_MIN(k, n), sizeof *c, cand_desc);
}

int fq_sampler_sample(fq_sampler *s, const float *logits) {
    const int V = s->n_vocab;
    cand *c = s->c;
    for (int i = 0; i < V; i++) c[i] = (cand){logits[i], i};
    if (s->p.repeat_penalty != 1.0f) {
        /* each distinct recent token once, as llama.cpp's penalty sampler does */
        for (int h = 0; h < s->n_hist; h++) {
            int tok = s->hist[h], seen = 0;
            for (int k = 0; k < h; k++) seen |= s->hist[k] == tok;
            if (seen || tok < 0 || tok >= V) continue;
            float *l = &c[tok].logit;
            *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
        }
    }
    /* NaN and -Inf can never be drawn: drop them, so that what is left is totally ordered.
     * +Inf outweighs every finite logit: when there is one, the +Inf tokens alone share the
     * probability equally (the limit of the softmax). */
    int n = 0, n_pinf = 0;
    for (int i = 0; i < V; i++) {
        const float l = c[i].logit;
        if (isnan(l) || l == -INFINITY) continue;
        n_pinf += l == INFINITY;
        c[n++] = c[i];
    }
    if (n == 0) return -1;
    if (n_pinf) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (c[i].logit == INFINITY) c[m++] = (cand){0.0f, c[i].id};
        n = m;
    }
    if (s->p.temp <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }
    int k = s->p.top_k > 0 ? FQ_MIN(s->p.top_k, n) : n;
    top_k_sort(c, n, k);
    n = k;
    /* top-p on the softmax of what is left */
    if (s->p.top_p < 1.0f) {
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += exp((double)c[i].logit - c[0].logit);
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - c[0].logit) / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: keep tokens whose probability is at least min_p times the top one's */
    if (s->p.min_p > 0.0f) {
        const float thr = c[0].logit + logf(s->p.min_p);
        int keep = 1;
        while (keep < n && c[keep].logit >= thr) keep++;
        n = keep;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s->prob[i] = (float)exp(((double)c[i].logit - c[0].logit) / s->p.temp);
        sum += s->prob[i];
    }
    const double r = (double)(next_u64(&s->rng) >> 11) * 0x1.0p-53 * sum;
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += s->prob[i];
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id;
}
