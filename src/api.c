/* api.c - the public API (include/fqlm.h) over the internal modules. */
#include "fqlm.h"

#include <math.h>
#include <string.h>

#include "cpu.h"
#include "fakequant.h"
#include "formats.h"
#include "forward.h"
#include "metrics.h"
#include "model.h"
#include "nodediff.h"
#include "qtypes.h"
#include "sweep.h"
#include "api_bridge.h"
#include "requant.h"
#include "threadpool.h"
#include "tokenizer.h"

struct fqlm_model {
    fq_model *m;
};

typedef struct api_hook {
    uint8_t *mask;          /* fq_hook_mask_size bytes */
    fqlm_hook_fn fn;
    void *ud;
} api_hook;

struct fqlm_context {
    fqlm_model *model;
    fq_ctx *ctx;
    fq_fakequant *fq;
    int exact;
    uint64_t seed;
    /* user hooks (fqlm_context_set_hook), chained after the rules */
    api_hook *hooks;
    int n_hooks;
    uint8_t *mask;          /* rules' mask | every hook's: what the context hooks */
    int hook_failed;        /* a hook returned nonzero during this eval */
    char hook_err[256];
    int borrowed;           /* fq_api_context_wrap: model and ctx belong to the caller */
};

static _Thread_local char last_error[FQ_ERR_MAX];

const char *fqlm_last_error(void) { return last_error; }

static int fail(const fq_err *e) {
    snprintf(last_error, sizeof last_error, "%s", e->msg);
    return -1;
}

fqlm_model *fqlm_model_load(const char *path) {
    fq_err e;
    fq_qtypes_init();
    if (fq_cpu_isa_error()) { /* the environment asked for a level this CPU lacks */
        snprintf(last_error, sizeof last_error, "%s", fq_cpu_isa_error());
        return NULL;
    }
    fqlm_model *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    h->m = fq_model_load(path, &e);
    if (!h->m) {
        fail(&e);
        free(h);
        return NULL;
    }
    return h;
}

void fqlm_model_free(fqlm_model *m) {
    if (!m) return;
    fq_model_free(m->m);
    free(m);
}

int fqlm_model_n_vocab(const fqlm_model *m) { return m->m->hp.n_vocab; }
int fqlm_model_n_layer(const fqlm_model *m) { return m->m->hp.n_layer; }
int fqlm_model_n_embd(const fqlm_model *m) { return m->m->hp.n_embd; }
int fqlm_model_n_ctx_train(const fqlm_model *m) { return m->m->hp.n_ctx_train; }
int32_t fqlm_token_bos(const fqlm_model *m) { return fq_tokenizer_bos(m->m->tok); }
int32_t fqlm_token_eos(const fqlm_model *m) { return fq_tokenizer_eos(m->m->tok); }

int fqlm_tokenize(const fqlm_model *m, const char *text, int32_t *ids, int cap, int add_bos) {
    fq_err e;
    int32_t *out;
    size_t n;
    if (fq_tokenize(m->m->tok, text, strlen(text), add_bos != 0, false, &out, &n, &e)) return fail(&e);
    if (n > (size_t)INT32_MAX) n = INT32_MAX;
    memcpy(ids, out, (size_t)FQ_MIN((size_t)FQ_MAX(cap, 0), n) * sizeof *ids);
    free(out);
    return (int)n;
}

const char *fqlm_token_piece(const fqlm_model *m, int32_t id, size_t *len) {
    return fq_token_to_piece(m->m->tok, id, false, len);
}

fqlm_context_params fqlm_context_default_params(void) {
    fqlm_context_params p = {.n_ctx = 2048, .n_threads = fq_physical_cores(), .n_batch = 512};
    return p;
}

/* "f32"/"f16" -> the type; NULL -> dflt; anything else: -1 with last_error naming it */
static int cache_type_arg(const char *which, const char *name, uint32_t dflt, uint32_t *t) {
    if (!name) *t = dflt;
    else if (!strcmp(name, "f32")) *t = FQ_TYPE_F32;
    else if (!strcmp(name, "f16")) *t = FQ_TYPE_F16;
    else {
        snprintf(last_error, sizeof last_error, "%s cache type '%.64s' is not supported (f32, f16)", which, name);
        return -1;
    }
    return 0;
}

static fqlm_context *context_new(fqlm_model *m, const fqlm_context_params *p, int kv_split, uint32_t tk,
                                 uint32_t tv) {
    fq_err e;
    fqlm_context *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    fq_ctx_params cp = {.n_ctx = p->n_ctx, .n_threads = p->n_threads, .exact = p->exact,
                        .cache_type = p->cache_f16 ? FQ_TYPE_F16 : FQ_TYPE_F32, .n_batch = p->n_batch,
                        .kv_split = kv_split, .cache_type_k = tk, .cache_type_v = tv};
    c->model = m;
    c->exact = p->exact;
    c->seed = p->seed;
    c->ctx = fq_ctx_new(m->m, &cp, &e);
    if (!c->ctx) {
        fail(&e);
        free(c);
        return NULL;
    }
    c->mask = calloc(fq_hook_mask_size(m->m), 1);
    if (!c->mask) {
        snprintf(last_error, sizeof last_error, "out of memory");
        fq_ctx_free(c->ctx);
        free(c);
        return NULL;
    }
    return c;
}

fqlm_context *fqlm_context_new(fqlm_model *m, const fqlm_context_params *p) {
    return context_new(m, p, 0, 0, 0);
}

fqlm_context *fqlm_context_new_kv(fqlm_model *m, const fqlm_context_params *p, const char *cache_type_k,
                                  const char *cache_type_v) {
    const uint32_t dflt = p->cache_f16 ? FQ_TYPE_F16 : FQ_TYPE_F32;
    uint32_t tk, tv;
    if (cache_type_arg("K", cache_type_k, dflt, &tk) || cache_type_arg("V", cache_type_v, dflt, &tv)) return NULL;
    return context_new(m, p, 1, tk, tv);
}

void fqlm_context_free(fqlm_context *c) {
    if (!c) return;
    fqlm_context_clear_hooks(c);
    free(c->mask);
    if (c->borrowed) {
        free(c->model); /* the wrapper only */
        fq_fakequant_free(c->fq);
        free(c);
        return;
    }
    fq_ctx_free(c->ctx);
    fq_fakequant_free(c->fq);
    free(c);
}

static int ensure_fq(fqlm_context *c) {
    fq_err e;
    if (c->fq) return 0;
    c->fq = fq_fakequant_new(c->model->m, &e);
    if (!c->fq) return fail(&e);
    fq_fakequant_set_seed(c->fq, c->seed);
    return 0;
}

/* The context's hook: the rules where they act, then the user hooks in the order added. */
static void api_hook_fn(void *ud, const fq_hook_call *call) {
    fqlm_context *c = ud;
    const size_t s = (size_t)call->node * (size_t)(c->model->m->hp.n_layer + 1) + (size_t)(call->layer + 1);
    if (c->fq && fq_fakequant_mask(c->fq)[s]) fq_fakequant_hook(c->fq, call);
    for (int i = 0; i < c->n_hooks && !c->hook_failed; i++) {
        const api_hook *h = &c->hooks[i];
        if (!h->mask[s]) continue;
        int rc = h->fn(h->ud, fq_node_name(call->node), call->layer, call->data, call->nrows, call->ncols);
        if (rc) {
            c->hook_failed = 1;
            fq_ctx_stop(c->ctx); /* no further layer runs: the evaluation returns -1 */
            if (call->layer >= 0)
                snprintf(c->hook_err, sizeof c->hook_err, "hook on %s-%d returned %d: the evaluation stopped there",
                         fq_node_name(call->node), call->layer, rc);
            else
                snprintf(c->hook_err, sizeof c->hook_err, "hook on %s returned %d: the evaluation stopped there",
                         fq_node_name(call->node), rc);
        }
    }
}

/* Installs api_hook_fn with the union of the rules' and the hooks' marks. */
static void install(fqlm_context *c) {
    const size_t n = fq_hook_mask_size(c->model->m);
    memset(c->mask, 0, n);
    if (c->fq) memcpy(c->mask, fq_fakequant_mask(c->fq), n);
    for (int i = 0; i < c->n_hooks; i++)
        for (size_t s = 0; s < n; s++) c->mask[s] |= c->hooks[i].mask[s];
    fq_ctx_set_hook(c->ctx, api_hook_fn, c, c->mask);
}

int fqlm_context_add_rule(fqlm_context *c, const char *rule) {
    fq_err e;
    if (ensure_fq(c)) return -1;
    if (fq_fakequant_add_rule(c->fq, rule, &e)) return fail(&e);
    if (fq_fakequant_apply_weights(c->fq, c->model->m, &e)) return fail(&e);
    install(c);
    return 0;
}

static int eval(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits, int all) {
    fq_err e;
    c->hook_failed = 0;
    int rc = fq_ctx_eval(c->ctx, tokens, n, pos, logits, all, &e) ? fail(&e) : 0;
    if (c->hook_failed) {
        snprintf(last_error, sizeof last_error, "%s", c->hook_err);
        c->hook_failed = 0;
        rc = -1;
    }
    return rc;
}

int fqlm_eval(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits) {
    return eval(c, tokens, n, pos, logits, 0);
}

int fqlm_eval_all(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits) {
    return eval(c, tokens, n, pos, logits, 1);
}

char *fqlm_context_stats_json(const fqlm_context *c) {
    if (!c->fq) return strdup("{\"nodes\":[]}");
    return fq_fakequant_json(c->fq, c->exact);
}

/* ==== Python-facing additions (issue 18) ================================================ */

const char *fqlm_version(void) { return FQLM_VERSION; }

int fqlm_detokenize(const fqlm_model *m, const int32_t *ids, int n, char *buf, size_t cap) {
    fq_err e;
    char *text;
    size_t len;
    if (n < 0) n = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->m->hp.n_vocab) {
            snprintf(last_error, sizeof last_error, "token id %d at index %d is outside the vocabulary (0-%d)",
                     (int)ids[i], i, m->m->hp.n_vocab - 1);
            return -1;
        }
    if (fq_detokenize(m->m->tok, ids, (size_t)n, false, &text, &len, &e)) return fail(&e);
    if (cap) {
        size_t k = FQ_MIN(len, cap - 1);
        memcpy(buf, text, k);
        buf[k] = 0;
    }
    free(text);
    if (len > (size_t)INT32_MAX) len = INT32_MAX;
    return (int)len;
}

int fqlm_model_n_nodes(const fqlm_model *m) {
    int order[FQ_NODE_COUNT];
    return fq_node_order(m->m, order);
}

const char *fqlm_model_node(const fqlm_model *m, int i, int *has_layer, int64_t *cols) {
    int order[FQ_NODE_COUNT];
    int n = fq_node_order(m->m, order);
    if (i < 0 || i >= n) return NULL;
    if (has_layer) *has_layer = fq_node_has_layer(order[i]);
    if (cols) *cols = fq_node_cols(m->m, order[i]);
    return fq_node_name(order[i]);
}

int fqlm_context_set_hook(fqlm_context *c, const char *node_selector, fqlm_hook_fn fn, void *user_data) {
    fq_err e;
    if (!fn || !node_selector) {
        snprintf(last_error, sizeof last_error, "fqlm_context_set_hook: %s is NULL", fn ? "the selector" : "the hook");
        return -1;
    }
    if (ensure_fq(c)) return -1;
    const size_t n = fq_hook_mask_size(c->model->m);
    uint8_t *mask = calloc(n, 1);
    api_hook *hs = mask ? realloc(c->hooks, (size_t)(c->n_hooks + 1) * sizeof *hs) : NULL;
    if (!hs) {
        free(mask);
        snprintf(last_error, sizeof last_error, "out of memory");
        return -1;
    }
    c->hooks = hs;
    if (fq_fakequant_select(c->fq, node_selector, mask, &e)) {
        free(mask);
        return fail(&e);
    }
    c->hooks[c->n_hooks++] = (api_hook){.mask = mask, .fn = fn, .ud = user_data};
    install(c);
    return 0;
}

void fqlm_context_clear_hooks(fqlm_context *c) {
    for (int i = 0; i < c->n_hooks; i++) free(c->hooks[i].mask);
    free(c->hooks);
    c->hooks = NULL;
    c->n_hooks = 0;
    install(c);
}

void fqlm_context_reset_stats(fqlm_context *c) {
    if (c->fq) fq_fakequant_reset_stats(c->fq);
}

int fqlm_context_n_ctx(const fqlm_context *c) { return fq_ctx_n_ctx(c->ctx); }

int fqlm_score_tokens(fqlm_context *base, fqlm_context *fq, const int32_t *tokens, int n, int chunk,
                      fqlm_score *out) {
    fq_err e;
    memset(out, 0, sizeof *out);
    if (base->model != fq->model && base->model->m->hp.n_vocab != fq->model->m->hp.n_vocab) {
        snprintf(last_error, sizeof last_error, "the two contexts' models have different vocabularies (%d, %d)",
                 base->model->m->hp.n_vocab, fq->model->m->hp.n_vocab);
        return -1;
    }
    const int max_ctx = FQ_MIN(fq_ctx_n_ctx(base->ctx), fq_ctx_n_ctx(fq->ctx));
    if (chunk <= 0 || chunk > max_ctx) chunk = max_ctx;
    const int32_t bos = fq_tokenizer_bos(base->model->m->tok);
    const int lead = bos >= 0 && n > 0 && tokens[0] == bos;
    if (chunk < 2) {
        snprintf(last_error, sizeof last_error, "chunks of %d tokens are too short to score", chunk);
        return -1;
    }
    if (n < (lead ? 2 : 1)) {
        snprintf(last_error, sizeof last_error, "no tokens to score");
        return -1;
    }
    const int nv = base->model->m->hp.n_vocab;
    float *lb = malloc((size_t)chunk * (size_t)nv * sizeof(float));
    float *lf = malloc((size_t)chunk * (size_t)nv * sizeof(float));
    int32_t *tk = malloc((size_t)chunk * sizeof(int32_t));
    int32_t *next = malloc((size_t)chunk * sizeof(int32_t));
    fq_metrics mt;
    fq_metrics_init(&mt);
    int rc = -1;
    if (!lb || !lf || !tk || !next) {
        snprintf(last_error, sizeof last_error, "out of memory for %d x %d logits", chunk, nv);
        goto out;
    }
    /* chunks as `fqlm compare` cuts them: later chunks BOS + chunk - 1 tokens of the text */
    for (int src = 0, k = 0; src < n; k++) {
        int len = 0;
        if (k > 0 && lead) tk[len++] = bos;
        int take = FQ_MIN(chunk - len, n - src);
        memcpy(tk + len, tokens + src, (size_t)take * sizeof(int32_t));
        len += take;
        src += take;
        for (int i = 0; i < len; i++) next[i] = i + 1 < len ? tk[i + 1] : -1;
        if (eval(base, tk, len, 0, lb, 1) || eval(fq, tk, len, 0, lf, 1)) goto out;
        if (fq_metrics_add_rows(&mt, lb, lf, len, nv, next, fq_ctx_pool(fq->ctx), &e)) {
            fail(&e);
            goto out;
        }
        out->n_chunks++;
    }
    fq_metrics_summary sm;
    if (fq_metrics_summarize(&mt, &sm, &e)) {
        fail(&e);
        goto out;
    }
    out->n_pos = sm.n_pos;
    out->n_scored = sm.n_scored;
    out->n_nonfinite = sm.n_nonfinite;
    out->mean_kld = sm.mean_kld;
    out->kld_stderr = sm.kld_stderr;
    out->kld_median = sm.kld_median;
    out->kld_p90 = sm.kld_p90;
    out->kld_p99 = sm.kld_p99;
    out->max_kld = sm.max_kld;
    out->top1_agree = sm.top1_agree;
    out->ppl_base = sm.ppl_base;
    out->ppl_fq = sm.ppl_fq;
    out->ppl_ratio = sm.ppl_ratio;
    out->nll_base = sm.nll_base;
    out->nll_fq = sm.nll_fq;
    out->max_abs_logit_diff = sm.max_abs_logit_diff;
    rc = 0;
out:
    fq_metrics_free(&mt);
    free(lb);
    free(lf);
    free(tk);
    free(next);
    return rc;
}

int fqlm_quantize(const char *spec, float *x, int64_t rows, int64_t cols, uint64_t seed) {
    fq_err e;
    fq_format *f;
    if (rows < 0 || cols < 0) {
        snprintf(last_error, sizeof last_error, "fqlm_quantize: negative shape %lld x %lld", (long long)rows,
                 (long long)cols);
        return -1;
    }
    fq_qtypes_init();
    if (fq_format_parse(spec, &f, &e)) return fail(&e);
    if (rows && cols) fq_format_apply(f, x, rows, cols, seed, 0, 0, NULL);
    fq_format_free(f);
    return 0;
}

const char *fqlm_format_list(int i) { return i < 0 ? NULL : fq_format_list(i); }
/* ==== end of the Python-facing additions ================================================ */

struct fqlm_diff {
    fq_diff *d;
    int modes;
};

fqlm_diff *fqlm_diff_new(fqlm_model *a, fqlm_model *b, const fqlm_context_params *p, const char *const *rules,
                         int n_rules, int modes) {
    fq_err e;
    if (!a || !b || !p || n_rules < 0 || (n_rules > 0 && !rules)) {
        snprintf(last_error, sizeof last_error, "fqlm_diff_new: missing model, parameters or rules");
        return NULL;
    }
    fqlm_diff *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    fq_diff_params dp = {.modes = modes, .rules = rules, .n_rules = n_rules, .seed = p->seed};
    dp.ctx = (fq_ctx_params){.n_ctx = p->n_ctx, .n_threads = p->n_threads, .exact = p->exact,
                             .cache_type = p->cache_f16 ? FQ_TYPE_F16 : FQ_TYPE_F32, .n_batch = p->n_batch};
    h->d = fq_diff_new(a->m, b->m, &dp, &e);
    if (!h->d) {
        fail(&e);
        free(h);
        return NULL;
    }
    h->modes = fq_diff_modes(h->d);
    return h;
}

void fqlm_diff_free(fqlm_diff *d) {
    if (!d) return;
    fq_diff_free(d->d);
    free(d);
}

int fqlm_diff_eval(fqlm_diff *d, const int32_t *tokens, int n) {
    fq_err e;
    return fq_diff_eval(d->d, tokens, n, NULL, &e) ? fail(&e) : 0;
}

int fqlm_diff_n_rows(const fqlm_diff *d) {
    return fq_diff_n_rows(d->d) * ((d->modes & 1) + ((d->modes >> 1) & 1));
}

int fqlm_diff_get_row(const fqlm_diff *d, int i, fqlm_diff_row *out) {
    const int per = (d->modes & 1) + ((d->modes >> 1) & 1);
    if (i < 0 || i >= fqlm_diff_n_rows(d)) {
        snprintf(last_error, sizeof last_error, "fqlm_diff_get_row: row %d out of range (0..%d)", i,
                 fqlm_diff_n_rows(d) - 1);
        return -1;
    }
    const int mode = per == 2 ? (i % 2 ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED) : d->modes;
    int node, layer;
    fq_diff_row(d->d, i / per, &node, &layer);
    fq_diff_stats st;
    fq_diff_row_stats(d->d, i / per, mode, &st);
    *out = (fqlm_diff_row){.node = fq_node_name(node), .layer = layer, .mode = mode, .rel_l2 = st.rel_l2,
                           .cosine = st.cosine, .max_abs = st.max_abs, .sqnr_db = st.sqnr_db,
                           .frac_rel_gt_1pct = st.frac_rel_gt_1pct, .rmse = st.rmse, .elements = st.elements,
                           .nonfinite = st.nonfinite};
    return 0;
}

int fqlm_diff_summary(const fqlm_diff *d, double *mean_kld, double *top1_agree, double *ppl_ratio) {
    fq_err e;
    fq_metrics_summary s;
    if (fq_diff_metrics(d->d, &s, &e)) return fail(&e);
    if (mean_kld) *mean_kld = s.mean_kld;
    if (top1_agree) *top1_agree = s.top1_agree;
    if (ppl_ratio) *ppl_ratio = s.ppl_ratio;
    return 0;
}

struct fqlm_vocab {
    fq_tokenizer *t;
};

fqlm_vocab *fqlm_vocab_load(const char *path) {
    fq_err e;
    fqlm_vocab *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    if (fq_tokenizer_load_file(&v->t, path, &e)) {
        fail(&e);
        free(v);
        return NULL;
    }
    return v;
}

void fqlm_vocab_free(fqlm_vocab *v) {
    if (!v) return;
    fq_tokenizer_free(v->t);
    free(v);
}

int fqlm_vocab_n_tokens(const fqlm_vocab *v) { return fq_tokenizer_n_vocab(v->t); }

int fqlm_vocab_tokenize(const fqlm_vocab *v, const char *text, size_t len, int32_t *ids, int cap,
                        int add_special, int parse_special) {
    fq_err e;
    int32_t *out;
    size_t n;
    if (fq_tokenize(v->t, text, len, add_special != 0, parse_special != 0, &out, &n, &e)) return fail(&e);
    if (n > (size_t)INT32_MAX) n = INT32_MAX;
    memcpy(ids, out, (size_t)FQ_MIN((size_t)FQ_MAX(cap, 0), n) * sizeof *ids);
    free(out);
    return (int)n;
}

int fqlm_vocab_detokenize(const fqlm_vocab *v, const int32_t *ids, int n, char *buf, int cap,
                          int special) {
    fq_err e;
    char *s;
    size_t len;
    if (fq_detokenize(v->t, ids, (size_t)FQ_MAX(n, 0), special != 0, &s, &len, &e)) return fail(&e);
    if (cap > 0) {
        size_t k = FQ_MIN(len, (size_t)cap - 1);
        memcpy(buf, s, k);
        buf[k] = '\0';
    }
    free(s);
    return len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
}

/* ---- the bridge for the CLI (api_bridge.h) ------------------------------------------------ */

fqlm_context *fq_api_context_wrap(fq_model *m, fq_ctx *ctx, uint64_t seed, int exact, fq_err *e) {
    fqlm_context *c = calloc(1, sizeof *c);
    fqlm_model *h = calloc(1, sizeof *h);
    uint8_t *mask = calloc(fq_hook_mask_size(m), 1);
    if (!c || !h || !mask) {
        free(c);
        free(h);
        free(mask);
        fq_errf(e, "out of memory");
        return NULL;
    }
    h->m = m;
    c->model = h;
    c->ctx = ctx;
    c->seed = seed;
    c->exact = exact;
    c->mask = mask;
    c->borrowed = 1;
    return c;
}

/* ---- sweeps ------------------------------------------------------------------------------------ */

struct fqlm_sweep {
    fqlm_context *c;
    fq_sweep s;
};

fqlm_sweep_params fqlm_sweep_default_params(void) {
    fqlm_sweep_params p = {.layers = NULL, .reuse = 1};
    return p;
}

fqlm_sweep *fqlm_sweep_new(fqlm_context *c, const int32_t *tokens, int n, const fqlm_sweep_params *p) {
    fq_err e;
    if (!c || !p || (n > 0 && !tokens) || n < 0) {
        snprintf(last_error, sizeof last_error, "fqlm_sweep_new: %s", !c ? "no context" : !p ? "no parameters"
                                                                                    : "bad token array");
        return NULL;
    }
    fqlm_sweep *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    fq_sweep_opts o = {.nodes = p->nodes, .layers = p->layers, .formats = p->formats,
                       .ctx = p->chunk > 0 ? p->chunk : fq_ctx_n_ctx(c->ctx), .max_chunks = p->max_chunks,
                       .reuse = p->reuse != 0, .shard_i = p->shard_index, .shard_n = p->shard_count, .seed = c->seed};
    if (fq_sweep_init(&h->s, c->model->m, c->ctx, tokens, (size_t)n, &o, &e)) {
        fail(&e);
        free(h);
        return NULL;
    }
    h->c = c;
    return h;
}

void fqlm_sweep_free(fqlm_sweep *s) {
    if (!s) return;
    fq_sweep_free(&s->s);
    free(s);
}

int fqlm_sweep_n_combos(const fqlm_sweep *s) { return s->s.n_combo; }
int fqlm_sweep_n_chunks(const fqlm_sweep *s) { return s->s.ch.n; }
int64_t fqlm_sweep_n_tokens(const fqlm_sweep *s) { return s->s.ch.n_tokens; }
int fqlm_sweep_n_kept(const fqlm_sweep *s) { return s->s.n_need; }

int fqlm_sweep_combo(const fqlm_sweep *s, int i, const char **node, int *layer, const char **format,
                     int *first_layer) {
    if (i < 0 || i >= s->s.n_combo) {
        snprintf(last_error, sizeof last_error, "combination %d: the sweep has %d", i, s->s.n_combo);
        return -1;
    }
    const fq_sweep_combo *c = &s->s.combos[i];
    if (node) *node = fq_node_name(c->node);
    if (layer) *layer = c->layer;
    if (format) *format = s->s.sel.formats[c->fmt];
    if (first_layer) *first_layer = s->s.reuse ? fq_sweep_combo_start(c, s->s.n_layer) : 0;
    return 0;
}

const int32_t *fqlm_sweep_chunk(const fqlm_sweep *s, int k, int *n, const float **baseline_logits) {
    if (k < 0 || k >= s->s.ch.n) return NULL;
    if (n) *n = fq_chunk_len(&s->s.ch, k);
    if (baseline_logits)
        *baseline_logits = s->s.have_baseline ? s->s.base_logits + (size_t)s->s.ch.off[k] * s->s.n_vocab : NULL;
    return fq_chunk_tok(&s->s.ch, k);
}

/* The sweep sets its own hook on the context: the context's rules and hooks come back after. */
static void sweep_restore(fqlm_sweep *s) {
    if (s->c->fq || s->c->n_hooks) install(s->c);
    else fq_ctx_set_hook(s->c->ctx, NULL, NULL, NULL);
}

int fqlm_sweep_baseline(fqlm_sweep *s, fqlm_sweep_progress_fn fn, void *user_data, double *ppl, double *ppl_err,
                        int64_t *n_scored, int64_t *n_nonfinite) {
    fq_err e;
    int rc = fq_sweep_baseline(&s->s, fn, user_data, &e);
    sweep_restore(s);
    if (rc < 0) return fail(&e);
    if (ppl) *ppl = fq_ppl_value(&s->s.base_ppl);
    if (ppl_err) *ppl_err = fq_ppl_error(&s->s.base_ppl);
    if (n_scored) *n_scored = s->s.base_ppl.n;
    if (n_nonfinite) *n_nonfinite = s->s.base_nonfinite;
    return rc;
}

int fqlm_sweep_run(fqlm_sweep *s, int i, fqlm_sweep_row *row, fqlm_sweep_progress_fn fn, void *user_data) {
    fq_err e;
    fq_sweep_row r;
    int rc = fq_sweep_eval(&s->s, i, &r, fn, user_data, &e);
    sweep_restore(s);
    if (rc < 0) return fail(&e);
    if (rc == 0) {
        _Static_assert(sizeof r.node == sizeof row->node && sizeof r.format == sizeof row->format &&
                           sizeof r.nonfinite_at == sizeof row->nonfinite_at,
                       "fqlm_sweep_row and fq_sweep_row differ");
        memset(row, 0, sizeof *row);
        memcpy(row->node, r.node, sizeof row->node);
        row->layer = r.layer;
        memcpy(row->format, r.format, sizeof row->format);
        row->first_layer = r.first_layer;
        row->positions = r.positions;
        row->mean_kld = r.mean_kld;
        row->kld_stderr = r.kld_stderr;
        row->kld_median = r.kld_median;
        row->kld_p90 = r.kld_p90;
        row->kld_p99 = r.kld_p99;
        row->max_kld = r.max_kld;
        row->top1_agree = r.top1_agree;
        row->ppl_base = r.ppl_base;
        row->ppl_fq = r.ppl_fq;
        row->ppl_ratio = r.ppl_ratio;
        row->dp_mean = r.dp_mean;
        row->max_abs_logit_diff = r.max_abs_logit_diff;
        row->applications = r.applications;
        row->seconds = r.seconds;
        row->n_nonfinite = r.n_nonfinite;
        memcpy(row->nonfinite_at, r.nonfinite_at, sizeof row->nonfinite_at);
    }
    return rc;
}

int fqlm_format_info(const char *spec, char *canon, size_t cap, double *bits) {
    fq_err e;
    fq_format *f;
    if (!spec) {
        snprintf(last_error, sizeof last_error, "no format spec given");
        return -1;
    }
    if (fq_format_parse(spec, &f, &e)) return fail(&e);
    if (canon && cap) snprintf(canon, cap, "%s", fq_format_str(f));
    if (bits) {
        fq_format_desc d;
        fq_format_describe(f, &d);
        *bits = d.bits;
    }
    fq_format_free(f);
    return 0;
}

uint64_t fqlm_model_hash(const fqlm_model *m) { return fq_content_hash(m->m->gguf.map, m->m->gguf.size); }

uint64_t fqlm_hash_bytes(const void *p, size_t n) { return fq_fnv1a(p, n); }

/* ---- real weight types per tensor ------------------------------------------------------- */

int fqlm_model_n_weights(const fqlm_model *m) { return fq_model_weights(m->m, NULL, 0); }

const char *fqlm_model_weight(const fqlm_model *m, int i, const char **type, int64_t *n_elements,
                              int64_t *row_len) {
    int nw = fq_model_weights(m->m, NULL, 0);
    if (i < 0 || i >= nw) return NULL;
    fq_weight **ws = malloc((size_t)nw * sizeof *ws);
    if (!ws) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    fq_model_weights(m->m, ws, nw);
    const fq_weight *w = ws[i];
    free(ws);
    if (type) *type = fq_wtype_lname(w->type);
    if (n_elements) *n_elements = w->n_in * w->n_out;
    if (row_len) *row_len = w->n_in;
    return w->name;
}

const char *fqlm_weight_type_list(int i) {
    uint32_t t = fq_wtype_at(i);
    return t == FQ_TYPE_COUNT ? NULL : fq_wtype_lname(t);
}

double fqlm_weight_type_bpw(const char *type) {
    fq_err e;
    uint32_t t;
    if (fq_wtype_find(type, &t, &e)) return fail(&e);
    return fq_wtype_bpw(t);
}

int fqlm_weight_type_fits(const char *type, int64_t row_len) {
    fq_err e;
    uint32_t t;
    if (fq_wtype_find(type, &t, &e)) return fail(&e);
    if (fq_wtype_fits(t, row_len)) return 1;
    char alt[320];
    snprintf(last_error, sizeof last_error, "rows of %lld elements are not whole %s blocks (%lld)%s",
             (long long)row_len, fq_wtype_lname(t), (long long)fq_type_get(t)->blck,
             fq_wtype_alternatives(t, row_len, alt, sizeof alt));
    return 0;
}

fqlm_model *fqlm_model_requantize(const fqlm_model *m, const char *const *tensors, const char *const *types,
                                  int n, int n_threads) {
    fq_err e;
    if (n < 0 || (n > 0 && (!tensors || !types))) {
        snprintf(last_error, sizeof last_error, "requantize: %d tensors with a NULL list", n);
        return NULL;
    }
    uint32_t *ty = malloc((size_t)(n > 0 ? n : 1) * sizeof *ty);
    if (!ty) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (fq_wtype_find(types[i], &ty[i], &e)) {
            fq_err_prefix(&e, "tensor '%.200s'", tensors[i] ? tensors[i] : "");
            fail(&e);
            free(ty);
            return NULL;
        }
    /* a second handle on the same file: its own weight pointers, the mapping shared */
    fqlm_model *r = fqlm_model_load(m->m->gguf.path);
    if (!r) {
        free(ty);
        return NULL;
    }
    if (fq_model_requantize(r->m, tensors, ty, n, n_threads > 0 ? n_threads : fq_physical_cores(), &e)) {
        fail(&e);
        fqlm_model_free(r);
        r = NULL;
    }
    free(ty);
    return r;
}
