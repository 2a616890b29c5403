/* api.c - the public API (include/fqlm.h) over the internal modules. */
#include "fqlm.h"

#include <string.h>

#include "cpu.h"
#include "fakequant.h"
#include "forward.h"
#include "model.h"
#include "nodediff.h"
#include "qtypes.h"
#include "threadpool.h"
#include "tokenizer.h"

struct fqlm_model {
    fq_model *m;
};

struct fqlm_context {
    fqlm_model *model;
    fq_ctx *ctx;
    fq_fakequant *fq;
    int exact;
    uint64_t seed;
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
    fq_ctx_free(c->ctx);
    fq_fakequant_free(c->fq);
    free(c);
}

int fqlm_context_add_rule(fqlm_context *c, const char *rule) {
    fq_err e;
    if (!c->fq) {
        c->fq = fq_fakequant_new(c->model->m, &e);
        if (!c->fq) return fail(&e);
        fq_fakequant_set_seed(c->fq, c->seed);
    }
    if (fq_fakequant_add_rule(c->fq, rule, &e)) return fail(&e);
    if (fq_fakequant_apply_weights(c->fq, c->model->m, &e)) return fail(&e);
    fq_fakequant_attach(c->fq, c->ctx);
    return 0;
}

int fqlm_eval(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits) {
    fq_err e;
    return fq_ctx_eval(c->ctx, tokens, n, pos, logits, 0, &e) ? fail(&e) : 0;
}

int fqlm_eval_all(fqlm_context *c, const int32_t *tokens, int n, int pos, float *logits) {
    fq_err e;
    return fq_ctx_eval(c->ctx, tokens, n, pos, logits, 1, &e) ? fail(&e) : 0;
}

char *fqlm_context_stats_json(const fqlm_context *c) {
    if (!c->fq) return strdup("{\"nodes\":[]}");
    return fq_fakequant_json(c->fq, c->exact);
}

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
