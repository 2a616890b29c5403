/* nodediff.c - node-by-node comparison of a reference run A and another run B (see
 * nodediff.h). */
#include "nodediff.h"

#include <math.h>
#include <string.h>

#include "fakequant.h"
#include "tokenizer.h"

/* ---- statistics ------------------------------------------------------------------------ */

void fq_diff_acc_add(fq_diff_acc *s, const float *a, const float *b, int64_t n) {
    double a2 = 0, b2 = 0, ab = 0, d2 = 0, mx = s->max_abs;
    int64_t gt = 0, nf = 0;
    for (int64_t i = 0; i < n; i++) {
        const float x = a[i], y = b[i];
        if (x == y) { /* no error (also equal infinities); zero adds nothing to the sums */
            if (isfinite(x)) {
                const double xd = x;
                a2 += xd * xd;
                b2 += xd * xd;
                ab += xd * xd;
            }
            continue;
        }
        if (!isfinite(x) || !isfinite(y)) {
            nf++;
            continue;
        }
        const double xd = x, yd = y, d = yd - xd;
        a2 += xd * xd;
        b2 += yd * yd;
        ab += xd * yd;
        d2 += d * d;
        if (fabs(d) > mx) mx = fabs(d);
        gt += fabs(d) > 0.01 * fabs(xd);
    }
    s->elements += n;
    s->nonfinite += nf;
    s->n_gt1pct += gt;
    s->sum_a2 += a2;
    s->sum_b2 += b2;
    s->sum_ab += ab;
    s->sum_d2 += d2;
    s->max_abs = mx;
}

void fq_diff_acc_stats(const fq_diff_acc *s, fq_diff_stats *o) {
    const int64_t counted = s->elements - s->nonfinite;
    o->elements = s->elements;
    o->nonfinite = s->nonfinite;
    o->max_abs = counted > 0 ? s->max_abs : NAN;
    o->rmse = counted > 0 ? sqrt(s->sum_d2 / (double)counted) : NAN;
    o->frac_rel_gt_1pct = counted > 0 ? (double)s->n_gt1pct / (double)counted : NAN;
    if (s->sum_d2 == 0.0) {
        o->rel_l2 = counted > 0 ? 0.0 : NAN;
        o->sqnr_db = counted > 0 ? INFINITY : NAN;
    } else {
        o->rel_l2 = s->sum_a2 > 0 ? sqrt(s->sum_d2 / s->sum_a2) : INFINITY;
        o->sqnr_db = s->sum_a2 > 0 ? 10.0 * log10(s->sum_a2 / s->sum_d2) : -INFINITY;
    }
    if (s->sum_a2 == 0.0 && s->sum_b2 == 0.0) o->cosine = counted > 0 ? 1.0 : NAN;
    else if (s->sum_a2 == 0.0 || s->sum_b2 == 0.0) o->cosine = 0.0;
    else o->cosine = s->sum_ab / sqrt(s->sum_a2 * s->sum_b2);
}

/* ---- models ---------------------------------------------------------------------------- */

int fq_diff_check_models(const fq_model *a, const fq_model *b, fq_err *e) {
    if (strcmp(a->arch->name, b->arch->name))
        return fq_errf(e, "the models differ in architecture: %s vs %s", a->arch->name, b->arch->name);
    const fq_hparams *x = &a->hp, *y = &b->hp;
#define SAME(f, what)                                                                             \
    if (x->f != y->f) return fq_errf(e, "the models differ in %s: %d vs %d", what, (int)x->f, (int)y->f)
    SAME(n_layer, "layer count (block_count)");
    SAME(n_embd, "embedding length (n_embd)");
    SAME(n_ff, "feed-forward length (n_ff)");
    SAME(n_head, "attention head count");
    SAME(n_head_kv, "KV head count");
    SAME(head_dim, "head size");
    SAME(n_vocab, "vocabulary size");
#undef SAME
    for (int node = 0; node < FQ_NODE_COUNT; node++)
        if (fq_node_in_model(a, node) != fq_node_in_model(b, node))
            return fq_errf(e, "the models differ in their graph: node %s is computed only by %s", fq_node_name(node),
                           fq_node_in_model(a, node) ? "the first" : "the second");
    for (int il = 0; il < x->n_layer; il++)
        if (a->layers[il].swa != b->layers[il].swa)
            return fq_errf(e, "the models differ in layer %d: sliding-window attention in only one", il);
    if (a->tok && b->tok) {
        const int32_t V = fq_tokenizer_n_vocab(a->tok);
        if (V != fq_tokenizer_n_vocab(b->tok))
            return fq_errf(e, "the models differ in vocabulary size: %d vs %d", V, fq_tokenizer_n_vocab(b->tok));
        for (int32_t t = 0; t < V; t++) {
            size_t la, lb;
            const char *pa = fq_token_to_piece(a->tok, t, true, &la);
            const char *pb = fq_token_to_piece(b->tok, t, true, &lb);
            if (la != lb || memcmp(pa, pb, la))
                return fq_errf(e, "the models differ in vocabulary: token %d is '%.*s' vs '%.*s'", t,
                               (int)FQ_MIN(la, 40), pa, (int)FQ_MIN(lb, 40), pb);
        }
    }
    return 0;
}

/* ---- the comparison -------------------------------------------------------------------- */

typedef struct log_entry {
    int node, layer;
    int64_t nrows, ncols;
    size_t off;
} log_entry;

typedef struct side {
    struct fq_diff *d;
    int mode;            /* FQ_DIFF_PROPAGATED or FQ_DIFF_LOCAL */
    fq_model *m;
    fq_ctx *ctx;
    fq_fakequant *fq;
    fq_diff_acc *acc;    /* [n_rows] */
    size_t cur;          /* next log entry */
    int bad;             /* a call did not match the log */
    char why[200];
} side;

struct fq_diff {
    const fq_model *a;
    fq_ctx *ctx_a;
    int n_layer;
    size_t nslots;
    uint8_t *sel;        /* compared (node, layer) */
    uint8_t *cap;        /* captured: compared + the residual stream in local mode */
    int *row_of;         /* slot -> row */
    int *row_node, *row_layer;
    int n_rows;
    side sides[2];       /* [0] propagated, [1] local */
    int modes;
    /* one step's capture of A */
    log_entry *log;
    size_t log_n, log_cap;
    float *buf;
    size_t buf_n, buf_cap;
    int oom;
    int step;
    float *la, *lb;      /* step x n_vocab logits */
    int32_t *next;       /* [n_ctx] */
    fq_metrics met;
};

static size_t slot_of(const fq_diff *d, int node, int layer) {
    return (size_t)node * (size_t)(d->n_layer + 1) + (size_t)(layer + 1);
}

static int is_stream(int node) {
    return node == FQ_NODE_INP_EMBD || node == FQ_NODE_INP_SCALED || node == FQ_NODE_L_OUT;
}

static void capture_hook(void *ud, const fq_hook_call *c) {
    fq_diff *d = ud;
    if (d->oom) return;
    const size_t n = (size_t)(c->nrows * c->ncols);
    if (d->log_n == d->log_cap) {
        size_t nc = d->log_cap ? 2 * d->log_cap : 256;
        log_entry *nl = realloc(d->log, nc * sizeof *nl);
        if (!nl) {
            d->oom = 1;
            return;
        }
        d->log = nl;
        d->log_cap = nc;
    }
    if (d->buf_n + n > d->buf_cap) {
        size_t nc = FQ_MAX(2 * d->buf_cap, d->buf_n + n);
        float *nb = realloc(d->buf, nc * sizeof(float));
        if (!nb) {
            d->oom = 1;
            return;
        }
        d->buf = nb;
        d->buf_cap = nc;
    }
    memcpy(d->buf + d->buf_n, c->data, n * sizeof(float));
    d->log[d->log_n++] = (log_entry){c->node, c->layer, c->nrows, c->ncols, d->buf_n};
    d->buf_n += n;
}

static void compare_hook(void *ud, const fq_hook_call *c) {
    side *s = ud;
    fq_diff *d = s->d;
    const size_t k = slot_of(d, c->node, c->layer);
    if (!d->cap[k] || s->bad) return;
    if (s->cur >= d->log_n) {
        s->bad = 1;
        snprintf(s->why, sizeof s->why, "node %s-%d has no counterpart in the reference run", fq_node_name(c->node),
                 c->layer);
        return;
    }
    const log_entry *en = &d->log[s->cur++];
    if (en->node != c->node || en->layer != c->layer || en->nrows != c->nrows || en->ncols != c->ncols) {
        s->bad = 1;
        snprintf(s->why, sizeof s->why, "node %s-%d (%lld x %lld) met %s-%d (%lld x %lld) of the reference run",
                 fq_node_name(c->node), c->layer, (long long)c->nrows, (long long)c->ncols, fq_node_name(en->node),
                 en->layer, (long long)en->nrows, (long long)en->ncols);
        return;
    }
    const float *a = d->buf + en->off;
    const int64_t n = c->nrows * c->ncols;
    if (d->sel[k]) fq_diff_acc_add(&s->acc[d->row_of[k]], a, c->data, n);
    if (s->mode == FQ_DIFF_LOCAL && is_stream(c->node)) memcpy(c->data, a, (size_t)n * sizeof(float));
}

void fq_diff_free(fq_diff *d) {
    if (!d) return;
    fq_ctx_free(d->ctx_a);
    for (int i = 0; i < 2; i++) {
        fq_ctx_free(d->sides[i].ctx);
        fq_fakequant_free(d->sides[i].fq);
        free(d->sides[i].acc);
    }
    free(d->sel);
    free(d->cap);
    free(d->row_of);
    free(d->row_node);
    free(d->row_layer);
    free(d->log);
    free(d->buf);
    free(d->la);
    free(d->lb);
    free(d->next);
    fq_metrics_free(&d->met);
    free(d);
}

fq_diff *fq_diff_new(const fq_model *a, fq_model *b, const fq_diff_params *p, fq_err *e) {
    if (fq_diff_check_models(a, b, e)) return NULL;
    fq_diff *d = fq_calloc(1, sizeof *d, e);
    if (!d) return NULL;
    fq_metrics_init(&d->met);
    d->a = a;
    d->n_layer = a->hp.n_layer;
    d->modes = p->modes ? p->modes & (FQ_DIFF_PROPAGATED | FQ_DIFF_LOCAL) : FQ_DIFF_PROPAGATED | FQ_DIFF_LOCAL;
    if (!d->modes) {
        fq_errf(e, "no comparison mode asked for");
        goto fail;
    }
    d->nslots = fq_hook_mask_size(a);
    d->sel = fq_calloc(d->nslots, 1, e);
    d->cap = d->sel ? fq_calloc(d->nslots, 1, e) : NULL;
    d->row_of = d->cap ? fq_calloc(d->nslots, sizeof(int), e) : NULL;
    d->row_node = d->row_of ? fq_calloc(d->nslots, sizeof(int), e) : NULL;
    d->row_layer = d->row_node ? fq_calloc(d->nslots, sizeof(int), e) : NULL;
    if (!d->row_layer) goto fail;
    /* rows in graph order: nodes without a layer before the layers (inp_*), after them
     * (result_*); inside a layer the family's node order */
    int order[FQ_NODE_COUNT];
    const int n_order = fq_node_order(a, order);
    for (int pass = 0; pass < 3; pass++) {
        const int L0 = pass == 1 ? 0 : -1, L1 = pass == 1 ? d->n_layer - 1 : -1;
        for (int L = L0; L <= L1; L++)
            for (int i = 0; i < n_order; i++) {
                const int node = order[i];
                if (fq_node_has_layer(node) != (pass == 1)) continue;
                const int before = node == FQ_NODE_INP_EMBD || node == FQ_NODE_INP_SCALED;
                if (pass == 0 && !before) continue;
                if (pass == 2 && before) continue;
                const size_t k = slot_of(d, node, L);
                if (p->nodes && !p->nodes[k]) continue;
                d->sel[k] = 1;
                d->row_of[k] = d->n_rows;
                d->row_node[d->n_rows] = node;
                d->row_layer[d->n_rows] = L;
                d->n_rows++;
            }
    }
    if (!d->n_rows) {
        fq_errf(e, "no node of the model is selected for comparison");
        goto fail;
    }
    memcpy(d->cap, d->sel, d->nslots);
    if (d->modes & FQ_DIFF_LOCAL) {
        for (int L = 0; L < d->n_layer; L++) d->cap[slot_of(d, FQ_NODE_L_OUT, L)] = 1;
        d->cap[slot_of(d, FQ_NODE_INP_EMBD, -1)] = 1;
        if (fq_node_in_model(a, FQ_NODE_INP_SCALED)) d->cap[slot_of(d, FQ_NODE_INP_SCALED, -1)] = 1;
    }
    int has_weight_rule = 0;
    for (int i = 0; i < p->n_rules; i++) has_weight_rule |= !strncmp(p->rules[i], "weight:", 7);
    if (has_weight_rule && b == a) {
        fq_errf(e, "a weight rule would change the reference model too: load the second model separately");
        goto fail;
    }
    /* capture: bytes per token of the captured nodes (kq, kq_soft_max: n_head x n_ctx) */
    double per_tok = 0;
    for (int node = 0; node < FQ_NODE_COUNT; node++)
        for (int L = -1; L < d->n_layer; L++) {
            if (!d->cap[slot_of(d, node, L)]) continue;
            double cols = (double)fq_node_cols(a, node);
            if (node == FQ_NODE_KQ || node == FQ_NODE_KQ_SOFT_MAX) cols *= p->ctx.n_ctx;
            per_tok += 4.0 * cols;
        }
    const double budget = p->step_bytes ? (double)p->step_bytes : 256.0 * 1024 * 1024;
    d->step = (int)FQ_MAX(1.0, FQ_MIN((double)FQ_MAX(p->ctx.n_batch, 1), floor(budget / FQ_MAX(per_tok, 1.0))));
    d->step = FQ_MIN(d->step, p->ctx.n_ctx);
    const size_t V = (size_t)a->hp.n_vocab;
    d->la = fq_malloc((size_t)d->step * V * sizeof(float), e);
    d->lb = d->la ? fq_malloc((size_t)d->step * V * sizeof(float), e) : NULL;
    d->next = d->lb ? fq_malloc((size_t)FQ_MAX(p->ctx.n_ctx, 1) * sizeof(int32_t), e) : NULL;
    if (!d->next) goto fail;
    d->ctx_a = fq_ctx_new(a, &p->ctx, e);
    if (!d->ctx_a) goto fail;
    fq_ctx_set_hook(d->ctx_a, capture_hook, d, d->cap);
    int weights_done = 0;
    for (int i = 0; i < 2; i++) {
        side *s = &d->sides[i];
        s->d = d;
        s->mode = i == 0 ? FQ_DIFF_PROPAGATED : FQ_DIFF_LOCAL;
        if (!(d->modes & s->mode)) continue;
        s->m = b;
        s->acc = fq_calloc((size_t)d->n_rows, sizeof(fq_diff_acc), e);
        if (!s->acc) goto fail;
        s->ctx = fq_ctx_new(b, &p->ctx, e);
        if (!s->ctx) goto fail;
        if (p->n_rules > 0) {
            s->fq = fq_fakequant_new(b, e);
            if (!s->fq) goto fail;
            for (int r = 0; r < p->n_rules; r++)
                if (fq_fakequant_add_rule(s->fq, p->rules[r], e)) goto fail;
            fq_fakequant_set_seed(s->fq, p->seed);
            if (has_weight_rule && !weights_done) {
                if (fq_fakequant_apply_weights(s->fq, b, e)) goto fail;
                weights_done = 1;
            }
            fq_fakequant_set_observer(s->fq, compare_hook, s);
            fq_fakequant_attach(s->fq, s->ctx);
        } else {
            fq_ctx_set_hook(s->ctx, compare_hook, s, d->cap);
        }
    }
    return d;
fail:
    fq_diff_free(d);
    return NULL;
}

int fq_diff_eval(fq_diff *d, const int32_t *tokens, int n, const int32_t *next, fq_err *e) {
    const int V = d->a->hp.n_vocab;
    if (n < 1) return fq_errf(e, "nothing to compare (0 tokens)");
    if (n > fq_ctx_n_ctx(d->ctx_a))
        return fq_errf(e, "a chunk of %d tokens does not fit the context of %d", n, fq_ctx_n_ctx(d->ctx_a));
    for (int i = 0; i < n; i++) d->next[i] = next ? next[i] : (i + 1 < n ? tokens[i + 1] : -1);
    const int msrc = (d->modes & FQ_DIFF_PROPAGATED) ? 0 : 1;
    for (int i0 = 0; i0 < n; i0 += d->step) {
        const int m = FQ_MIN(d->step, n - i0);
        d->log_n = 0;
        d->buf_n = 0;
        if (fq_ctx_eval(d->ctx_a, tokens + i0, m, i0, d->la, 1, e)) return -1;
        if (d->oom) return fq_errf(e, "out of memory capturing the reference run's nodes");
        for (int k = 0; k < 2; k++) {
            side *s = &d->sides[k];
            if (!s->ctx) continue;
            s->cur = 0;
            if (fq_ctx_eval(s->ctx, tokens + i0, m, i0, d->lb, 1, e)) return -1;
            if (!s->bad && s->cur != d->log_n) {
                s->bad = 1;
                snprintf(s->why, sizeof s->why, "the reference run computed %zu nodes more", d->log_n - s->cur);
            }
            if (s->bad) return fq_errf(e, "the two runs' graphs differ: %s", s->why);
            if (k == msrc && fq_metrics_add_rows(&d->met, d->la, d->lb, m, V, d->next + i0, fq_ctx_pool(d->ctx_a), e))
                return -1;
        }
    }
    return 0;
}

int fq_diff_n_rows(const fq_diff *d) { return d->n_rows; }

void fq_diff_row(const fq_diff *d, int i, int *node, int *layer) {
    *node = d->row_node[i];
    *layer = d->row_layer[i];
}

int fq_diff_row_stats(const fq_diff *d, int i, int mode, fq_diff_stats *out) {
    const side *s = &d->sides[mode == FQ_DIFF_LOCAL];
    if (i < 0 || i >= d->n_rows || !s->acc) return -1;
    fq_diff_acc_stats(&s->acc[i], out);
    return 0;
}

int fq_diff_modes(const fq_diff *d) { return d->modes; }

int fq_diff_metrics(const fq_diff *d, fq_metrics_summary *s, fq_err *e) {
    return fq_metrics_summarize(&d->met, s, e);
}

fq_fakequant *fq_diff_fakequant(const fq_diff *d, int mode) { return d->sides[mode == FQ_DIFF_LOCAL].fq; }

int fq_diff_step_tokens(const fq_diff *d) { return d->step; }
