/* api.c - the public API (include/fqlm.h) over the internal modules. */
#include "fqlm.h"

#include <string.h>

#include "cpu.h"
#include "fakequant.h"
#include "forward.h"
#include "model.h"
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
