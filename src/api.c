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

fqlm_context *fqlm_context_new(fqlm_model *m, const fqlm_context_params *p) {
    fq_err e;
    fqlm_context *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(last_error, sizeof last_error, "out of memory");
        return NULL;
    }
    fq_ctx_params cp = {.n_ctx = p->n_ctx, .n_threads = p->n_threads, .exact = p->exact,
                        .cache_type = p->cache_f16 ? FQ_TYPE_F16 : FQ_TYPE_F32, .n_batch = p->n_batch};
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
