/* forward.c - the graph of the forward pass for every family (fq_arch_desc): what is
 * computed, in what order, in which buffers, and where the hooks sit. How each step is
 * computed is the backend's business: this file calls only the operations table of
 * backend/backend.h (no kernels, no threads, no CPU types). */
#include "forward.h"

#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "qtypes.h"

static const char *const node_names[FQ_NODE_COUNT] = {
    [FQ_NODE_INP_EMBD] = "inp_embd",         [FQ_NODE_ATTN_NORM] = "attn_norm",
    [FQ_NODE_QCUR] = "Qcur",                 [FQ_NODE_KCUR] = "Kcur",
    [FQ_NODE_VCUR] = "Vcur",                 [FQ_NODE_K_CACHE] = "k_cache",
    [FQ_NODE_V_CACHE] = "v_cache",           [FQ_NODE_KQ] = "kq",
    [FQ_NODE_KQ_SOFT_MAX] = "kq_soft_max",   [FQ_NODE_KQV] = "kqv",
    [FQ_NODE_KQV_OUT] = "kqv_out",           [FQ_NODE_FFN_INP] = "ffn_inp",
    [FQ_NODE_FFN_NORM] = "ffn_norm",         [FQ_NODE_FFN_GATE] = "ffn_gate",
    [FQ_NODE_FFN_UP] = "ffn_up",             [FQ_NODE_FFN_SILU] = "ffn_silu",
    [FQ_NODE_FFN_GATE_PAR] = "ffn_gate_par", [FQ_NODE_FFN_OUT] = "ffn_out",
    [FQ_NODE_L_OUT] = "l_out",               [FQ_NODE_RESULT_NORM] = "result_norm",
    [FQ_NODE_RESULT_OUTPUT] = "result_output",
    [FQ_NODE_INP_SCALED] = "inp_scaled",     [FQ_NODE_WQKV] = "wqkv",
    [FQ_NODE_QCUR_PROJ] = "Qcur_proj",       [FQ_NODE_KCUR_PROJ] = "Kcur_proj",
    [FQ_NODE_VCUR_PROJ] = "Vcur_proj",       [FQ_NODE_QCUR_BIASED] = "Qcur_biased",
    [FQ_NODE_KCUR_BIASED] = "Kcur_biased",   [FQ_NODE_QCUR_NORMED] = "Qcur_normed",
    [FQ_NODE_KCUR_NORMED] = "Kcur_normed",   [FQ_NODE_QCUR_SCALED] = "Qcur_scaled",
    [FQ_NODE_ATTN_POST_NORM] = "attn_post_norm", [FQ_NODE_SA_OUT] = "sa_out",
    [FQ_NODE_FFN_GELU] = "ffn_gelu",         [FQ_NODE_FFN_MUL] = "ffn_mul",
    [FQ_NODE_FFN_POST_NORM] = "ffn_post_norm",
};

const char *fq_node_name(int node) {
    return node >= 0 && node < FQ_NODE_COUNT ? node_names[node] : "?";
}

int fq_node_from_name(const char *name) {
    for (int i = 0; i < FQ_NODE_COUNT; i++)
        if (!strcmp(name, node_names[i])) return i;
    if (!strcmp(name, "kq_soft_max_ext")) return FQ_NODE_KQ_SOFT_MAX;
    if (!strcmp(name, "kqv_merged_cont") || !strcmp(name, "kqv_merged")) return FQ_NODE_KQV;
    /* the reference graphs' names for Q/K after RoPE (olmo2 c392e509; qwen3 ik_llama.cpp) */
    if (!strcmp(name, "Qcur_rope") || !strcmp(name, "Qcur_roped")) return FQ_NODE_QCUR;
    if (!strcmp(name, "Kcur_rope") || !strcmp(name, "Kcur_roped")) return FQ_NODE_KCUR;
    return -1;
}

int fq_node_has_layer(int node) {
    return node != FQ_NODE_INP_EMBD && node != FQ_NODE_INP_SCALED && node != FQ_NODE_RESULT_NORM &&
           node != FQ_NODE_RESULT_OUTPUT;
}

/* Every node in the order the forward pass computes it (fused and per-family steps where
 * they happen). */
static const int graph_order[FQ_NODE_COUNT] = {
    FQ_NODE_INP_EMBD,     FQ_NODE_INP_SCALED,   FQ_NODE_ATTN_NORM,    FQ_NODE_WQKV,
    FQ_NODE_QCUR_PROJ,    FQ_NODE_QCUR_BIASED,  FQ_NODE_KCUR_PROJ,    FQ_NODE_KCUR_BIASED,
    FQ_NODE_VCUR_PROJ,    FQ_NODE_QCUR_NORMED,  FQ_NODE_KCUR_NORMED,  FQ_NODE_QCUR,
    FQ_NODE_KCUR,         FQ_NODE_QCUR_SCALED,  FQ_NODE_VCUR,         FQ_NODE_K_CACHE,
    FQ_NODE_V_CACHE,      FQ_NODE_KQ,           FQ_NODE_KQ_SOFT_MAX,  FQ_NODE_KQV,
    FQ_NODE_KQV_OUT,      FQ_NODE_ATTN_POST_NORM, FQ_NODE_FFN_INP,    FQ_NODE_SA_OUT,
    FQ_NODE_FFN_NORM,     FQ_NODE_FFN_GATE,     FQ_NODE_FFN_UP,       FQ_NODE_FFN_SILU,
    FQ_NODE_FFN_GELU,     FQ_NODE_FFN_GATE_PAR, FQ_NODE_FFN_MUL,      FQ_NODE_FFN_OUT,
    FQ_NODE_FFN_POST_NORM, FQ_NODE_L_OUT,       FQ_NODE_RESULT_NORM,  FQ_NODE_RESULT_OUTPUT,
};

int fq_node_in_model(const fq_model *m, int node) {
    const fq_arch_desc *A = m->arch;
    const fq_layer *L0 = &m->layers[0];
    const int fused_ffn = (A->flags & FQ_ARCH_FUSED_GATE_UP) != 0;
    const int gemma_names = (A->flags & FQ_ARCH_POST_NORMS) && !(A->flags & FQ_ARCH_NO_PRE_NORMS);
    switch (node) {
    case FQ_NODE_INP_SCALED: return (A->flags & FQ_ARCH_EMBD_SCALE) != 0;
    case FQ_NODE_ATTN_NORM:
    case FQ_NODE_FFN_NORM: return !(A->flags & FQ_ARCH_NO_PRE_NORMS);
    case FQ_NODE_WQKV: return L0->wqkv.data != NULL;
    case FQ_NODE_VCUR_PROJ: return L0->bv != NULL;
    case FQ_NODE_QCUR_BIASED: return L0->bq != NULL;
    case FQ_NODE_KCUR_BIASED: return L0->bk != NULL;
    case FQ_NODE_QCUR_NORMED:
    case FQ_NODE_KCUR_NORMED: return A->qk_norm != FQ_QKNORM_NONE;
    case FQ_NODE_QCUR_SCALED: return A->qscale != FQ_QSCALE_SOFTMAX;
    case FQ_NODE_ATTN_POST_NORM:
    case FQ_NODE_FFN_POST_NORM: return (A->flags & FQ_ARCH_POST_NORMS) != 0;
    case FQ_NODE_FFN_INP: return !gemma_names;
    case FQ_NODE_SA_OUT: return gemma_names;
    case FQ_NODE_FFN_GATE:
    case FQ_NODE_FFN_GATE_PAR: return !fused_ffn;
    case FQ_NODE_FFN_SILU: return !fused_ffn && A->ffn_act == FQ_ACT_SILU;
    case FQ_NODE_FFN_GELU: return A->ffn_act != FQ_ACT_SILU;
    case FQ_NODE_FFN_MUL: return fused_ffn;
    default: return node >= 0 && node < FQ_NODE_COUNT;
    }
}

int fq_node_order(const fq_model *m, int *out) {
    int n = 0;
    for (int i = 0; i < FQ_NODE_COUNT; i++)
        if (fq_node_in_model(m, graph_order[i])) out[n++] = graph_order[i];
    return n;
}

void fq_node_list(const fq_model *m, char *buf, size_t n) {
    int order[FQ_NODE_COUNT], k = fq_node_order(m, order);
    size_t len = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < k && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", fq_node_name(order[i]));
}

int64_t fq_node_cols(const fq_model *m, int node) {
    const fq_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    switch (node) {
    case FQ_NODE_WQKV: return Q + 2 * KV;
    case FQ_NODE_QCUR_PROJ: case FQ_NODE_QCUR_BIASED: case FQ_NODE_QCUR_NORMED: case FQ_NODE_QCUR:
    case FQ_NODE_QCUR_SCALED: case FQ_NODE_KQV: return Q;
    case FQ_NODE_KCUR_PROJ: case FQ_NODE_KCUR_BIASED: case FQ_NODE_KCUR_NORMED: case FQ_NODE_KCUR:
    case FQ_NODE_VCUR_PROJ: case FQ_NODE_VCUR: case FQ_NODE_K_CACHE: case FQ_NODE_V_CACHE: return KV;
    case FQ_NODE_KQ: case FQ_NODE_KQ_SOFT_MAX: return hp->n_head;
    case FQ_NODE_FFN_UP: return (m->arch->flags & FQ_ARCH_FUSED_GATE_UP) ? 2 * F : F;
    case FQ_NODE_FFN_GATE: case FQ_NODE_FFN_SILU: case FQ_NODE_FFN_GELU: case FQ_NODE_FFN_GATE_PAR:
    case FQ_NODE_FFN_MUL: return F;
    case FQ_NODE_RESULT_OUTPUT: return hp->n_vocab;
    default: return E;
    }
}

struct fq_ctx {
    const fq_model *m;
    fq_ctx_params p;
    fq_backend *be;             /* how: every operation goes through be->ops */
    const fq_backend_ops *ops;
    int ub;                     /* most tokens per step */
    /* activations (backend buffers) */
    float *x, *xn, *q, *k, *v, *kqv, *t1, *gate, *up, *logits;
    /* hooks */
    fq_hook_fn hook;
    void *hook_ud;
    uint8_t *mask;
    int stop;                   /* fq_ctx_stop: a hook ended this evaluation */
    /* hidden states kept for sweeps (host memory) */
    int keep_hidden;
    float *hidden;
    size_t hidden_cap;
    int hidden_n;
};

size_t fq_hook_mask_size(const fq_model *m) {
    return (size_t)FQ_NODE_COUNT * (size_t)(m->hp.n_layer + 1);
}

static inline int hooked(const fq_ctx *c, int node, int layer) {
    return c->hook && !c->stop && c->mask[(size_t)node * (c->m->hp.n_layer + 1) + (size_t)(layer + 1)];
}

/* The hook sees the node in host memory: the backend hands out a host view and takes the
 * hook's values back (the CPU backend's buffers are host memory: no copy). */
static void run_hook(fq_ctx *c, int node, int layer, float *data, int64_t nrows, int64_t ncols,
                     int64_t pos, int64_t row0) {
    if (!hooked(c, node, layer)) return;
    const size_t n = (size_t)(nrows * ncols);
    float *view = c->ops->host_view(c->be, data, n);
    fq_hook_call call = {node, layer, view, nrows, ncols, pos, row0, c->ops->host_pool(c->be)};
    c->hook(c->hook_ud, &call);
    c->ops->host_commit(c->be, data, view, n);
}

fq_ctx *fq_ctx_new(const fq_model *m, const fq_ctx_params *p, fq_err *e) {
    const fq_hparams *hp = &m->hp;
    if (p->n_ctx < 1) {
        fq_errf(e, "context size must be at least 1 (got %d)", p->n_ctx);
        return NULL;
    }
    if (p->n_ctx > (1 << 22)) {
        fq_errf(e, "context size %d is too large (at most %d)", p->n_ctx, 1 << 22);
        return NULL;
    }
    const uint32_t tk = p->kv_split ? p->cache_type_k : p->cache_type,
                   tv = p->kv_split ? p->cache_type_v : p->cache_type;
    for (int i = 0; i < 2; i++) {
        const uint32_t t = i ? tv : tk;
        if (t != FQ_TYPE_F32 && t != FQ_TYPE_F16) {
            fq_errf(e, "%s cache type %s is not supported (f32, f16)", p->kv_split ? (i ? "V" : "K") : "KV",
                    fq_type_name(t));
            return NULL;
        }
    }
    fq_ctx *c = fq_calloc(1, sizeof *c, e);
    if (!c) return NULL;
    c->m = m;
    c->p = *p;
    c->ub = FQ_MAX(1, FQ_MIN(p->n_batch, p->n_ctx));
    const fq_backend_params bp = {p->n_threads, p->exact, p->n_ctx, c->ub, tk, tv};
    c->be = fq_backend_cpu_new(m, &bp, e);
    if (!c->be) goto fail;
    c->ops = c->be->ops;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    const size_t ub = (size_t)c->ub;
    /* up also holds a fused gate|up row (2 n_ff) or a fused QKV row; t1 the staged K/V rows
     * and the attention residual */
    const size_t up_n = (size_t)FQ_MAX(2 * F, Q + 2 * KV), t1_n = (size_t)FQ_MAX(E, FQ_MAX(Q, KV));
    const size_t sizes[] = {ub * E, ub * E, ub * Q, ub * KV, ub * KV, ub * Q, ub * t1_n, ub * F, ub * up_n, ub * V};
    float **ptrs[] = {&c->x, &c->xn, &c->q, &c->k, &c->v, &c->kqv, &c->t1, &c->gate, &c->up, &c->logits};
    for (size_t i = 0; i < FQ_ARRAY_LEN(ptrs); i++)
        if (!(*ptrs[i] = c->ops->alloc(c->be, sizes[i], e))) {
            fq_err_prefix(e, "cannot allocate activations for %zu tokens", ub);
            goto fail;
        }
    c->mask = fq_calloc(fq_hook_mask_size(m), 1, e);
    if (!c->mask) goto fail;
    return c;
fail:
    fq_ctx_free(c);
    return NULL;
}

void fq_ctx_free(fq_ctx *c) {
    if (!c) return;
    if (c->be) {
        float *bufs[] = {c->x, c->xn, c->q, c->k, c->v, c->kqv, c->t1, c->gate, c->up, c->logits};
        for (size_t i = 0; i < FQ_ARRAY_LEN(bufs); i++)
            if (bufs[i]) c->ops->release(c->be, bufs[i]);
        c->ops->free(c->be);
    }
    free(c->mask);
    free(c->hidden);
    free(c);
}

void fq_ctx_stop(fq_ctx *c) { c->stop = 1; }

void fq_ctx_set_hook(fq_ctx *c, fq_hook_fn fn, void *ud, const uint8_t *mask) {
    c->hook = fn;
    c->hook_ud = ud;
    size_t n = fq_hook_mask_size(c->m);
    if (mask) memcpy(c->mask, mask, n);
    else memset(c->mask, 0, n);
}

const fq_model *fq_ctx_model(const fq_ctx *c) { return c->m; }
fq_pool *fq_ctx_pool(fq_ctx *c) { return c->ops->host_pool(c->be); }
int fq_ctx_n_ctx(const fq_ctx *c) { return c->p.n_ctx; }
uint64_t fq_ctx_kv_bytes(const fq_ctx *c) { return c->ops->kv_bytes(c->be); }
void fq_ctx_keep_hidden(fq_ctx *c, int on) { c->keep_hidden = on; }

const float *fq_ctx_hidden(const fq_ctx *c, int il) {
    if (!c->hidden || il < 0 || il > c->m->hp.n_layer) return NULL;
    return c->hidden + (size_t)il * c->hidden_n * c->m->hp.n_embd;
}

/* ---- graph helpers: one backend call each ------------------------------------------------ */

static void matmul(fq_ctx *c, const fq_weight *w, const float *x, float *y, int64_t T) {
    c->ops->matmul(c->be, 1, &w, &y, x, T, 0);
}

static void rmsnorm(fq_ctx *c, int64_t T, int64_t n, int64_t sub, const float *x, const float *w, float *y) {
    c->ops->rmsnorm(c->be, T, n, sub, x, w, y, c->m->hp.rms_eps);
}

/* Writes the batch's K and V rows into the cache, through the k_cache/v_cache hooks: the
 * hook sees the values as they will be stored (the cache type's rounding), and its result is
 * what is stored. */
static void store_kv(fq_ctx *c, int il, int64_t T, int64_t pos) {
    const fq_hparams *hp = &c->m->hp;
    const int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int which = 0; which < 2; which++) {
        float *tmp = c->t1; /* ub x max(n_embd, Q, KV) */
        c->ops->kv_stage(c->be, which, which ? c->v : c->k, tmp, T);
        run_hook(c, which ? FQ_NODE_V_CACHE : FQ_NODE_K_CACHE, il, tmp, T, KV, pos, pos);
        c->ops->kv_write(c->be, il, which, tmp, T, pos);
    }
}

static void attention(fq_ctx *c, int il, int64_t T, int64_t pos) {
    const fq_hparams *hp = &c->m->hp;
    const fq_layer *L = &c->m->layers[il];
    const fq_attn_params ap = {c->m->arch->qscale == FQ_QSCALE_SOFTMAX ? hp->q_scale : 1.0f, hp->attn_softcap,
                               L->swa ? hp->n_swa : 0};
    if (!hooked(c, FQ_NODE_KQ, il) && !hooked(c, FQ_NODE_KQ_SOFT_MAX, il)) {
        /* no hook wants the score rows between the phases: each unit does all three while
         * its rows are in cache */
        c->ops->attention(c->be, il, T, pos, &ap, c->q, c->kqv, FQ_ATTN_ALL);
        return;
    }
    for (int phase = FQ_ATTN_SCORES; phase <= FQ_ATTN_PV; phase++) {
        c->ops->attention(c->be, il, T, pos, &ap, c->q, c->kqv, phase);
        const int node = phase == FQ_ATTN_SCORES ? FQ_NODE_KQ : FQ_NODE_KQ_SOFT_MAX;
        if (phase != FQ_ATTN_PV && hooked(c, node, il))
            for (int64_t t = 0; t < T; t++)
                run_hook(c, node, il, c->ops->attn_scores(c->be, T, pos, t), hp->n_head, pos + t + 1, pos + t,
                         (pos + t) * hp->n_head);
    }
}

/* ---- the forward pass ----------------------------------------------------------------- */

/* One step of T <= ub tokens whose hidden state (input of layer layer0) is in c->x. */
static void step(fq_ctx *c, int layer0, int64_t T, int64_t pos, float *logits, int all_logits,
                 int64_t hidden_row) {
    const fq_model *m = c->m;
    const fq_arch_desc *A = m->arch;
    const fq_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KVd = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab,
                  D = hp->head_dim;
    const int resid_node = fq_node_in_model(m, FQ_NODE_SA_OUT) ? FQ_NODE_SA_OUT : FQ_NODE_FFN_INP;
    for (int il = layer0; il < hp->n_layer; il++) {
        if (c->stop) return; /* a hook ended the evaluation */
        const fq_layer *L = &m->layers[il];
        if (c->hidden)
            c->ops->to_host(c->be, c->hidden + ((size_t)il * c->hidden_n + hidden_row) * E, c->x, (size_t)(T * E));
        /* ---- attention ---- */
        const float *ain = c->x;
        if (L->attn_norm) {
            rmsnorm(c, T, E, 0, c->x, L->attn_norm, c->xn);
            run_hook(c, FQ_NODE_ATTN_NORM, il, c->xn, T, E, pos, pos);
            ain = c->xn;
        }
        if (L->wqkv.data) {
            /* one matrix; Q, K, V are its row ranges, copied out (ggml_cont of views) */
            matmul(c, &L->wqkv, ain, c->up, T);
            run_hook(c, FQ_NODE_WQKV, il, c->up, T, Q + 2 * KVd, pos, pos);
            c->ops->copy_cols(c->be, T, c->up, Q + 2 * KVd, 0, Q, c->q);
            c->ops->copy_cols(c->be, T, c->up, Q + 2 * KVd, Q, KVd, c->k);
            c->ops->copy_cols(c->be, T, c->up, Q + 2 * KVd, Q + KVd, KVd, c->v);
        } else {
            const fq_weight *ws[3] = {&L->wq, &L->wk, &L->wv};
            float *ys[3] = {c->q, c->k, c->v};
            c->ops->matmul(c->be, 3, ws, ys, ain, T, 0);
        }
        run_hook(c, FQ_NODE_QCUR_PROJ, il, c->q, T, Q, pos, pos);
        if (L->bq) {
            c->ops->binary(c->be, FQ_BIN_ADD_ROW, T, Q, L->bq, c->q);
            run_hook(c, FQ_NODE_QCUR_BIASED, il, c->q, T, Q, pos, pos);
        }
        run_hook(c, FQ_NODE_KCUR_PROJ, il, c->k, T, KVd, pos, pos);
        if (L->bk) {
            c->ops->binary(c->be, FQ_BIN_ADD_ROW, T, KVd, L->bk, c->k);
            run_hook(c, FQ_NODE_KCUR_BIASED, il, c->k, T, KVd, pos, pos);
        }
        if (L->bv) {
            run_hook(c, FQ_NODE_VCUR_PROJ, il, c->v, T, KVd, pos, pos);
            c->ops->binary(c->be, FQ_BIN_ADD_ROW, T, KVd, L->bv, c->v);
        }
        if (L->q_norm) { /* per head (one weight of D for all heads) or over the projection */
            const int per_head = A->qk_norm == FQ_QKNORM_HEAD;
            rmsnorm(c, T, Q, per_head ? D : 0, c->q, L->q_norm, c->q);
            run_hook(c, FQ_NODE_QCUR_NORMED, il, c->q, T, Q, pos, pos);
            rmsnorm(c, T, KVd, per_head ? D : 0, c->k, L->k_norm, c->k);
            run_hook(c, FQ_NODE_KCUR_NORMED, il, c->k, T, KVd, pos, pos);
        }
        {
            const fq_rope_params rp = {hp->n_rot, D, hp->n_head, hp->n_head_kv,
                                       L->swa ? hp->rope_base_swa : hp->rope_base,
                                       L->swa ? hp->rope_freq_scale_swa : hp->rope_freq_scale, m->rope_freqs,
                                       A->rope_mode == FQ_ROPE_NEOX};
            c->ops->rope(c->be, T, pos, &rp, c->q, c->k);
        }
        run_hook(c, FQ_NODE_QCUR, il, c->q, T, Q, pos, pos);
        run_hook(c, FQ_NODE_KCUR, il, c->k, T, KVd, pos, pos);
        if (A->qscale != FQ_QSCALE_SOFTMAX) {
            c->ops->unary(c->be, FQ_UN_SCALE, T, Q, c->q, hp->q_scale);
            run_hook(c, FQ_NODE_QCUR_SCALED, il, c->q, T, Q, pos, pos);
        }
        run_hook(c, FQ_NODE_VCUR, il, c->v, T, KVd, pos, pos);
        store_kv(c, il, T, pos);
        attention(c, il, T, pos);
        run_hook(c, FQ_NODE_KQV, il, c->kqv, T, Q, pos, pos);
        matmul(c, &L->wo, c->kqv, c->t1, T);
        if (L->bo) c->ops->binary(c->be, FQ_BIN_ADD_ROW, T, E, L->bo, c->t1);
        run_hook(c, FQ_NODE_KQV_OUT, il, c->t1, T, E, pos, pos);
        if (L->attn_post_norm) {
            rmsnorm(c, T, E, 0, c->t1, L->attn_post_norm, c->t1);
            run_hook(c, FQ_NODE_ATTN_POST_NORM, il, c->t1, T, E, pos, pos);
        }
        c->ops->binary(c->be, FQ_BIN_ADD, T, E, c->x, c->t1); /* t1 = attention + x: ffn_inp / sa_out */
        run_hook(c, resid_node, il, c->t1, T, E, pos, pos);
        /* ---- feed-forward ---- */
        const float *fin = c->t1;
        if (L->ffn_norm) {
            rmsnorm(c, T, E, 0, c->t1, L->ffn_norm, c->xn);
            run_hook(c, FQ_NODE_FFN_NORM, il, c->xn, T, E, pos, pos);
            fin = c->xn;
        }
        if (!L->w_gate.data) {
            /* fused W_up: gate rows then up rows (phi3) */
            matmul(c, &L->w_up, fin, c->up, T);
            run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, 2 * F, pos, pos);
            c->ops->binary(c->be, FQ_BIN_GLU_SPLIT, T, F, c->up, c->gate);
            run_hook(c, FQ_NODE_FFN_MUL, il, c->gate, T, F, pos, pos);
        } else if (A->ffn_act == FQ_ACT_SILU) {
            /* with no hook between them, SiLU and the product run in the matmul's chunks
             * (same operations per element; no extra pass, no barrier) */
            const int fuse = !hooked(c, FQ_NODE_FFN_GATE, il) && !hooked(c, FQ_NODE_FFN_UP, il) &&
                             !hooked(c, FQ_NODE_FFN_SILU, il);
            const fq_weight *ws[2] = {&L->w_gate, &L->w_up};
            float *ys[2] = {c->gate, c->up};
            c->ops->matmul(c->be, 2, ws, ys, fin, T, fuse);
            if (!fuse) {
                run_hook(c, FQ_NODE_FFN_GATE, il, c->gate, T, F, pos, pos);
                run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, F, pos, pos);
                c->ops->unary(c->be, FQ_UN_SILU, T, F, c->gate, 0.0f);
                run_hook(c, FQ_NODE_FFN_SILU, il, c->gate, T, F, pos, pos);
                c->ops->binary(c->be, FQ_BIN_MUL, T, F, c->up, c->gate);
            }
            run_hook(c, FQ_NODE_FFN_GATE_PAR, il, c->gate, T, F, pos, pos);
        } else {
            const fq_weight *ws[2] = {&L->w_gate, &L->w_up};
            float *ys[2] = {c->gate, c->up};
            c->ops->matmul(c->be, 2, ws, ys, fin, T, 0);
            run_hook(c, FQ_NODE_FFN_GATE, il, c->gate, T, F, pos, pos);
            run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, F, pos, pos);
            c->ops->unary(c->be, FQ_UN_GELU, T, F, c->gate, (float)A->ffn_act);
            run_hook(c, FQ_NODE_FFN_GELU, il, c->gate, T, F, pos, pos);
            c->ops->binary(c->be, FQ_BIN_MUL, T, F, c->up, c->gate);
            run_hook(c, FQ_NODE_FFN_GATE_PAR, il, c->gate, T, F, pos, pos);
        }
        matmul(c, &L->w_down, c->gate, c->x, T);
        run_hook(c, FQ_NODE_FFN_OUT, il, c->x, T, E, pos, pos);
        if (L->ffn_post_norm) {
            rmsnorm(c, T, E, 0, c->x, L->ffn_post_norm, c->x);
            run_hook(c, FQ_NODE_FFN_POST_NORM, il, c->x, T, E, pos, pos);
        }
        c->ops->binary(c->be, FQ_BIN_ADD, T, E, c->t1, c->x); /* x = ffn + residual: l_out */
        run_hook(c, FQ_NODE_L_OUT, il, c->x, T, E, pos, pos);
    }
    if (c->hidden)
        c->ops->to_host(c->be, c->hidden + ((size_t)hp->n_layer * c->hidden_n + hidden_row) * E, c->x,
                        (size_t)(T * E));
    if (!logits || c->stop) return;
    /* only the rows whose logits are wanted go through the output layer */
    const int64_t n_out = all_logits ? T : 1;
    const float *xin = c->x + (T - n_out) * E;
    rmsnorm(c, n_out, E, 0, xin, m->output_norm, c->xn);
    run_hook(c, FQ_NODE_RESULT_NORM, -1, c->xn, n_out, E, pos + T - n_out, pos + T - n_out);
    matmul(c, &m->output, c->xn, c->logits, n_out);
    if (hp->final_softcap > 0.0f) c->ops->unary(c->be, FQ_UN_SOFTCAP, n_out, V, c->logits, hp->final_softcap);
    run_hook(c, FQ_NODE_RESULT_OUTPUT, -1, c->logits, n_out, V, pos + T - n_out, pos + T - n_out);
    if (!c->stop) c->ops->to_host(c->be, logits, c->logits, (size_t)(n_out * V));
}

/* Most tokens a step at pos may take so that its attention scores fit the buffer. */
static int64_t step_tokens(const fq_ctx *c, int64_t left, int64_t pos) {
    return c->ops->step_tokens(c->be, FQ_MIN(left, (int64_t)c->ub), pos);
}

static int eval_common(fq_ctx *c, int layer0, const int32_t *tokens, const float *h, int n, int pos,
                       float *logits, int all_logits, fq_err *e) {
    const fq_model *m = c->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    if (n < 1) return fq_errf(e, "nothing to evaluate (0 tokens)");
    if (pos < 0 || (int64_t)pos + n > c->p.n_ctx)
        return fq_errf(e, "context is full: positions %d..%d do not fit a context of %d tokens "
                          "(use -c to enlarge it)",
                       pos, pos + n - 1, c->p.n_ctx);
    if (tokens)
        for (int i = 0; i < n; i++)
            if (tokens[i] < 0 || tokens[i] >= V)
                return fq_errf(e, "token id %d at index %d is outside the vocabulary (0..%lld)",
                               tokens[i], i, (long long)V - 1);
    if (c->keep_hidden) {
        size_t need = (size_t)(m->hp.n_layer + 1) * (size_t)n * E;
        if (need > c->hidden_cap) {
            float *nh = realloc(c->hidden, need * sizeof(float));
            if (!nh) return fq_errf(e, "out of memory keeping hidden states (%zu MiB)", need * 4 >> 20);
            c->hidden = nh;
            c->hidden_cap = need;
        }
        c->hidden_n = n;
    } else {
        free(c->hidden);
        c->hidden = NULL;
        c->hidden_cap = 0;
    }
    c->stop = 0;
    int done = 0;
    while (done < n) {
        const int64_t T = step_tokens(c, n - done, pos + done);
        const int64_t p0 = pos + done;
        if (tokens) {
            c->ops->get_rows(c->be, &m->tok_embd, tokens + done, T, c->x);
            run_hook(c, FQ_NODE_INP_EMBD, -1, c->x, T, E, p0, p0);
            if (m->arch->flags & FQ_ARCH_EMBD_SCALE) {
                c->ops->unary(c->be, FQ_UN_SCALE, T, E, c->x, sqrtf((float)E));
                run_hook(c, FQ_NODE_INP_SCALED, -1, c->x, T, E, p0, p0);
            }
        } else {
            c->ops->from_host(c->be, c->x, h + (size_t)done * E, (size_t)(T * E));
        }
        const int last = done + T == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + (size_t)done * V;
        else if (logits && last) out = logits;
        step(c, layer0, T, p0, out, all_logits, done);
        if (c->stop) {
            c->stop = 0;
            return fq_errf(e, "the evaluation was stopped by a hook (positions %lld..%lld)", (long long)p0,
                           (long long)(p0 + T - 1));
        }
        done += (int)T;
    }
    return 0;
}

int fq_ctx_eval(fq_ctx *c, const int32_t *tokens, int n, int pos, float *logits, int all_logits,
                fq_err *e) {
    return eval_common(c, 0, tokens, NULL, n, pos, logits, all_logits, e);
}

int fq_ctx_eval_from(fq_ctx *c, int layer0, const float *h, int n, int pos, float *logits,
                     int all_logits, fq_err *e) {
    if (layer0 < 0 || layer0 > c->m->hp.n_layer)
        return fq_errf(e, "layer %d out of range: the model has layers 0-%d", layer0,
                       c->m->hp.n_layer - 1);
    return eval_common(c, layer0, NULL, h, n, pos, logits, all_logits, e);
}
