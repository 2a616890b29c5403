/* forward.c - llama forward pass: RMSNorm, GQA attention with RoPE and a KV cache,
 * SwiGLU FFN, logits; hooks after every named node. */
#include "forward.h"

#include <math.h>
#include <string.h>

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
};

const char *fq_node_name(int node) {
    return node >= 0 && node < FQ_NODE_COUNT ? node_names[node] : "?";
}

int fq_node_from_name(const char *name) {
    for (int i = 0; i < FQ_NODE_COUNT; i++)
        if (!strcmp(name, node_names[i])) return i;
    if (!strcmp(name, "kq_soft_max_ext")) return FQ_NODE_KQ_SOFT_MAX;
    if (!strcmp(name, "kqv_merged_cont") || !strcmp(name, "kqv_merged")) return FQ_NODE_KQV;
    return -1;
}

int fq_node_has_layer(int node) {
    return node != FQ_NODE_INP_EMBD && node != FQ_NODE_RESULT_NORM && node != FQ_NODE_RESULT_OUTPUT;
}

#define MM_MAX 3 /* weights that share one input in a matmul job */

struct fq_ctx {
    const fq_model *m;
    fq_ctx_params p;
    fq_pool *pool;
    int ub;                     /* most tokens per step */
    /* KV cache: per layer n_ctx rows of kv_dim, F32 or F16 */
    void *kv_mem;
    size_t kv_elem;             /* 4 or 2 */
    uint64_t kv_bytes;
    /* activations, carved from one allocation */
    float *mem;
    float *x, *xn, *q, *k, *v, *kqv, *t1, *gate, *up, *logits, *scores;
    size_t scores_cap;
    void *qbuf;                 /* activations encoded in a weight's partner format */
    /* hooks */
    fq_hook_fn hook;
    void *hook_ud;
    uint8_t *mask;
    /* hidden states kept for sweeps */
    int keep_hidden;
    float *hidden;
    size_t hidden_cap;
    int hidden_n;
};

size_t fq_hook_mask_size(const fq_model *m) {
    return (size_t)FQ_NODE_COUNT * (size_t)(m->hp.n_layer + 1);
}

static inline int hooked(const fq_ctx *c, int node, int layer) {
    return c->hook && c->mask[(size_t)node * (c->m->hp.n_layer + 1) + (size_t)(layer + 1)];
}

static void run_hook(fq_ctx *c, int node, int layer, float *data, int64_t nrows, int64_t ncols,
                     int64_t pos, int64_t row0) {
    if (!hooked(c, node, layer)) return;
    fq_hook_call call = {node, layer, data, nrows, ncols, pos, row0, c->pool};
    c->hook(c->hook_ud, &call);
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
    if (p->cache_type != FQ_TYPE_F32 && p->cache_type != FQ_TYPE_F16) {
        fq_errf(e, "KV cache type %s is not supported (f32, f16)", fq_type_name(p->cache_type));
        return NULL;
    }
    fq_ctx *c = fq_calloc(1, sizeof *c, e);
    if (!c) return NULL;
    c->m = m;
    c->p = *p;
    c->ub = FQ_MAX(1, FQ_MIN(p->n_batch, p->n_ctx));
    c->pool = fq_pool_new(p->n_threads, e);
    if (!c->pool) goto fail;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    c->kv_elem = p->cache_type == FQ_TYPE_F16 ? 2 : 4;
    c->kv_bytes = (uint64_t)2 * hp->n_layer * (uint64_t)p->n_ctx * (uint64_t)KV * c->kv_elem;
    c->kv_mem = calloc(1, c->kv_bytes);
    if (!c->kv_mem) {
        fq_errf(e, "cannot allocate the KV cache: %d tokens x %d layers needs %.1f MiB",
                p->n_ctx, hp->n_layer, c->kv_bytes / 1048576.0);
        goto fail;
    }
    const size_t ub = (size_t)c->ub;
    c->scores_cap = FQ_MAX((size_t)hp->n_head * p->n_ctx,
                           FQ_MIN(ub * hp->n_head * (size_t)p->n_ctx, (size_t)1 << 22));
    const size_t maxin = (size_t)FQ_MAX(E, FQ_MAX(Q, F));
    size_t sizes[] = {ub * E, ub * E, ub * Q, ub * KV, ub * KV, ub * Q, ub * E, ub * F, ub * F,
                      ub * V, c->scores_cap};
    size_t total = 0;
    for (size_t i = 0; i < FQ_ARRAY_LEN(sizes); i++) total += (sizes[i] + 15) & ~(size_t)15;
    c->mem = fq_malloc(total * sizeof(float), e);
    c->qbuf = fq_malloc(MM_MAX * (ub * (maxin * 4 + 512) + 64), e);
    if (!c->mem || !c->qbuf) {
        fq_err_prefix(e, "cannot allocate activations for %zu tokens", ub);
        goto fail;
    }
    float **ptrs[] = {&c->x, &c->xn, &c->q, &c->k, &c->v, &c->kqv, &c->t1, &c->gate, &c->up,
                      &c->logits, &c->scores};
    float *cur = c->mem;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ptrs); i++) {
        *ptrs[i] = cur;
        cur += (sizes[i] + 15) & ~(size_t)15;
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
    fq_pool_free(c->pool);
    free(c->kv_mem);
    free(c->mem);
    free(c->qbuf);
    free(c->mask);
    free(c->hidden);
    free(c);
}

void fq_ctx_set_hook(fq_ctx *c, fq_hook_fn fn, void *ud, const uint8_t *mask) {
    c->hook = fn;
    c->hook_ud = ud;
    size_t n = fq_hook_mask_size(c->m);
    if (mask) memcpy(c->mask, mask, n);
    else memset(c->mask, 0, n);
}

const fq_model *fq_ctx_model(const fq_ctx *c) { return c->m; }
fq_pool *fq_ctx_pool(fq_ctx *c) { return c->pool; }
int fq_ctx_n_ctx(const fq_ctx *c) { return c->p.n_ctx; }
uint64_t fq_ctx_kv_bytes(const fq_ctx *c) { return c->kv_bytes; }
void fq_ctx_keep_hidden(fq_ctx *c, int on) { c->keep_hidden = on; }

const float *fq_ctx_hidden(const fq_ctx *c, int il) {
    if (!c->hidden || il < 0 || il > c->m->hp.n_layer) return NULL;
    return c->hidden + (size_t)il * c->hidden_n * c->m->hp.n_embd;
}

/* ---- kernels: each is a pool job over rows ------------------------------------------ */

/* Several weights that read the same input (Q/K/V; gate/up) run in one pool job: the
 * input is encoded once per distinct partner format, and every thread takes its share of
 * each weight's rows with no barrier in between. */

typedef struct {
    fq_ctx *c;
    int n;
    const fq_weight *w[MM_MAX];
    float *y[MM_MAX];               /* T rows of w->n_out each */
    const char *xq[MM_MAX];         /* encoded input for each weight */
    size_t qrow[MM_MAX];            /* bytes per encoded row */
    const fq_type_traits *tw[MM_MAX];
    const float *x;                 /* T rows of n_in */
    int64_t n_in, T;
    int silu_mul;                   /* y[0] = silu(y[0]) * y[1] on each chunk's rows */
    /* encoding job */
    const fq_type_traits *enc;
    char *enc_dst;
    size_t enc_row;
} matmul_job;

static void matmul_encode(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        j->enc->from_float_act(j->x + t * j->n_in, j->enc_dst + t * j->enc_row, j->n_in);
}

/* SwiGLU's elementwise part as ggml computes it: g = g / (1 + expf(-g)), then g *= u. */
static void silu_mul_span(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float s = g[i] / (1.0f + expf(-g[i]));
        g[i] = s * u[i];
    }
}

/* Tiles of rows x tokens small enough that a tile's weight rows and activation rows stay
 * in L2 while each weight row is reused from L1 across the tile's tokens. */
#define MM_ROW_TILE 32
#define MM_TOK_TILE 32

static void matmul_rows(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    const int exact = j->c->p.exact;
    for (int k = 0; k < j->n; k++) {
        const fq_weight *w = j->w[k];
        const fq_type_traits *tw = j->tw[k];
        float *y = j->y[k];
        const char *wd = w->data, *qa = j->xq[k];
        const size_t qrow = j->qrow[k];
        int64_t r0, r1;
        fq_split(w->n_out, ith, nth, &r0, &r1);
        if (!exact && j->T == 1 && tw->vec_dot_mn && tw->mv_x > 1) {
            /* one token (decode): groups of mv_x rows share each activation load */
            const int mx = FQ_MIN(tw->mv_x, FQ_DOT_MX);
            for (int64_t r = r0; r < r1; r += mx)
                tw->vec_dot_mn(w->n_in, &y[r], 1, wd + (size_t)r * w->row_bytes, w->row_bytes,
                               (int)FQ_MIN(mx, r1 - r), qa, qrow, 1);
            continue;
        }
        for (int64_t rb = r0; rb < r1; rb += MM_ROW_TILE) {
            const int64_t re = FQ_MIN(r1, rb + MM_ROW_TILE);
            for (int64_t tb = 0; tb < j->T; tb += MM_TOK_TILE) {
                const int64_t te = FQ_MIN(j->T, tb + MM_TOK_TILE);
                if (!exact && tw->vec_dot_mn && te - tb > 1) {
                    /* register tiles: a few weight rows x a few tokens per call, each weight
                     * block unpacked once for all the tile's tokens (same bits as vec_dot) */
                    const int mx = FQ_MAX(1, FQ_MIN(tw->mn_x, FQ_DOT_MX));
                    const int my = FQ_MAX(1, FQ_MIN(tw->mn_y, FQ_DOT_NY));
                    for (int64_t r = rb; r < re; r += mx)
                        for (int64_t t = tb; t < te; t += my)
                            tw->vec_dot_mn(w->n_in, &y[t * w->n_out + r], (size_t)w->n_out,
                                           wd + (size_t)r * w->row_bytes, w->row_bytes, (int)FQ_MIN(mx, re - r),
                                           qa + t * qrow, qrow, (int)FQ_MIN(my, te - t));
                    continue;
                }
                for (int64_t r = rb; r < re; r++) {
                    const void *wr = wd + (size_t)r * w->row_bytes;
                    if (exact)
                        for (int64_t t = tb; t < te; t++)
                            tw->vec_dot_f32(w->n_in, &y[t * w->n_out + r], wr, j->x + t * w->n_in);
                    else
                        for (int64_t t = tb; t < te; t++)
                            tw->vec_dot(w->n_in, &y[t * w->n_out + r], wr, qa + t * qrow);
                }
            }
        }
    }
    if (j->silu_mul) { /* gate and up have the same rows, so this chunk's are all done */
        const int64_t F = j->w[0]->n_out;
        int64_t r0, r1;
        fq_split(F, ith, nth, &r0, &r1);
        for (int64_t t = 0; t < j->T; t++)
            silu_mul_span(j->y[0] + t * F + r0, j->y[1] + t * F + r0, r1 - r0);
    }
}

/* y_k[T][n_out_k] = x[T][n_in] W_k^T for n weights with the same n_in, in the context's
 * arithmetic mode. */
static void matmul_multi(fq_ctx *c, int n, const fq_weight *const *w, float *const *y, const float *x, int64_t T,
                         int silu_mul) {
    matmul_job j = {.c = c, .n = n, .x = x, .n_in = w[0]->n_in, .T = T, .silu_mul = silu_mul};
    FQ_ASSERT(!silu_mul || (n == 2 && w[0]->n_out == w[1]->n_out));
    int enc_types[MM_MAX], n_enc = 0;
    char *slot = c->qbuf;
    for (int k = 0; k < n; k++) {
        FQ_ASSERT(w[k]->n_in == j.n_in);
        j.w[k] = w[k];
        j.y[k] = y[k];
        j.tw[k] = fq_type_get(w[k]->type);
        if (c->p.exact) continue;
        const int pt = j.tw[k]->vec_dot_type;
        if (pt == FQ_TYPE_F32) { /* the partner is F32: the activations are used as they are */
            j.xq[k] = (const char *)x;
            j.qrow[k] = (size_t)j.n_in * sizeof(float);
            continue;
        }
        int found = -1;
        for (int e = 0; e < n_enc; e++)
            if (enc_types[e] == pt) found = e;
        const size_t qrow = fq_row_size((uint32_t)pt, j.n_in);
        if (found < 0) {
            j.enc = fq_type_get((uint32_t)pt);
            j.enc_dst = slot;
            j.enc_row = qrow;
            if (T == 1) matmul_encode(&j, 0, 1);
            else fq_pool_run(c->pool, matmul_encode, &j);
            enc_types[n_enc++] = pt;
            j.xq[k] = slot;
            slot += ((size_t)T * qrow + 63) & ~(size_t)63;
        } else {
            /* same partner as an earlier weight: reuse its encoding */
            for (int e = 0; e < k; e++)
                if (j.tw[e]->vec_dot_type == pt) j.xq[k] = j.xq[e];
        }
        j.qrow[k] = qrow;
    }
    /* several chunks per thread: a thread that falls behind is helped by the others */
    fq_pool_run_n(c->pool, matmul_rows, &j, 4 * fq_pool_size(c->pool));
}

static void matmul(fq_ctx *c, const fq_weight *w, const float *x, float *y, int64_t T) {
    matmul_multi(c, 1, &w, &y, x, T, 0);
}

/* RMSNorm as ggml computes it: the mean of squares summed in double, then
 * scale = 1/sqrtf(mean + eps) in float, y = (x * scale) * w. */
static void rmsnorm_row(float *y, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

typedef struct {
    fq_ctx *c;
    int op;
    int layer;
    int64_t T, pos;
    const float *a;
    const float *w;
    float *y;
} rows_job;

enum { OP_RMSNORM, OP_ROPE, OP_SILU, OP_MUL, OP_ADD };

/* RoPE, llama.cpp's normal mode: pairs (x[2i], x[2i+1]) rotated by pos * base^(-2i/n_rot);
 * the angle advances by repeated multiplication in float, as ggml does. The cos/sin of a
 * position are computed once and applied to every head. */
static void rope_angles(float *cs, float *sn, int64_t n_rot, float base, int64_t pos) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < n_rot / 2; i++) {
        cs[i] = cosf(theta);
        sn[i] = sinf(theta);
        theta *= theta_scale;
    }
}

static void rope_apply(float *x, int64_t n_heads, int64_t hd, int64_t n_rot, const float *cs, const float *sn) {
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * hd;
        for (int64_t i = 0; i < n_rot; i += 2) {
            const float x0 = v[i], x1 = v[i + 1];
            v[i] = x0 * cs[i / 2] - x1 * sn[i / 2];
            v[i + 1] = x0 * sn[i / 2] + x1 * cs[i / 2];
        }
    }
}

static void rows_kernel(void *arg, int ith, int nth) {
    rows_job *j = arg;
    fq_ctx *c = j->c;
    const fq_hparams *hp = &c->m->hp;
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    const int64_t E = hp->n_embd, F = hp->n_ff, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int64_t t = t0; t < t1; t++) {
        switch (j->op) {
        case OP_RMSNORM:
            rmsnorm_row(j->y + t * E, j->a + t * E, j->w, E, hp->rms_eps);
            break;
        case OP_ROPE: {
            float cs[512], sn[512];
            rope_angles(cs, sn, hp->n_rot, hp->rope_base, j->pos + t);
            rope_apply(c->q + t * Q, hp->n_head, hp->head_dim, hp->n_rot, cs, sn);
            rope_apply(c->k + t * KV, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, sn);
            break;
        }
        case OP_SILU: {
            float *g = c->gate + t * F;
            for (int64_t i = 0; i < F; i++) g[i] = g[i] / (1.0f + expf(-g[i]));
            break;
        }
        case OP_MUL: {
            float *g = c->gate + t * F;
            const float *u = c->up + t * F;
            for (int64_t i = 0; i < F; i++) g[i] *= u[i];
            break;
        }
        case OP_ADD: { /* y += a */
            float *y = j->y + t * E;
            const float *a = j->a + t * E;
            for (int64_t i = 0; i < E; i++) y[i] = a[i] + y[i];
            break;
        }
        }
    }
}

static void rows_op(fq_ctx *c, int op, int64_t T, int64_t pos, const float *a, const float *w, float *y) {
    rows_job j = {c, op, 0, T, pos, a, w, y};
    /* one token has nothing to split: a pool job would only add a barrier */
    if (T == 1) rows_kernel(&j, 0, 1);
    else fq_pool_run(c->pool, rows_kernel, &j);
}

/* ---- attention ------------------------------------------------------------------------ */

#include "attn.h"

#define FQ_ATTN_UNIT_MAX 4096 /* most query values (heads x head_dim) in one unit */

typedef struct {
    fq_ctx *c;
    const fq_attn_kernels *k;
    int layer;
    int64_t T, pos;
    int phase;          /* 0: scores, 1: softmax, 2: weighted sum of V, 3: all three */
    int64_t hpu;        /* query heads per unit: a divisor of the heads sharing a KV head */
} attn_job;

static inline size_t scores_offset(int64_t pos, int64_t t, int64_t n_head) {
    /* token t's block holds n_head rows of (pos + t + 1) scores, blocks laid end to end */
    return (size_t)n_head * (size_t)(t * pos + t * (t + 1) / 2);
}

/* A unit is hpu query heads of one token that share a KV head: the kernels (attn.c, one
 * variant per ISA, the same bits on each) go over each K/V row once for all of them.
 * Units run from the last token down, so the longest rows are taken first and the short
 * ones even out the threads at the end; no result depends on who computes it. */
static void attn_kernel(void *arg, int ith, int nth) {
    attn_job *j = arg;
    fq_ctx *c = j->c;
    const fq_attn_kernels *K = j->k;
    const fq_hparams *hp = &c->m->hp;
    const int64_t H = hp->n_head, hd = hp->head_dim, KV = (int64_t)hp->n_head_kv * hd;
    const int64_t Q = H * hd, gq = H / hp->n_head_kv, hpu = j->hpu, upt = H / hpu;
    const size_t layer_off = (size_t)j->layer * c->p.n_ctx * KV * c->kv_elem;
    const char *kc = (const char *)c->kv_mem + layer_off;
    const char *vc = (const char *)c->kv_mem + c->kv_bytes / 2 + layer_off;
    const int f16 = c->kv_elem == 2, round16 = f16 && !c->p.exact;
    const float scale = 1.0f / sqrtf((float)hd);
    int64_t u0, u1;
    fq_split(j->T * upt, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t t = j->T - 1 - u / upt, h0 = u % upt * hpu, g = h0 / gq, n_kv = j->pos + t + 1;
        float *s = c->scores + scores_offset(j->pos, t, H) + (size_t)h0 * n_kv;
        if (j->phase == 0 || j->phase == 3) {
            const float *q = c->q + t * Q + h0 * hd;
            if (f16) {
                float qv[FQ_ATTN_UNIT_MAX];
                for (int64_t i = 0; i < hpu * hd; i++) qv[i] = round16 ? fq_fp16_to_f32(fq_f32_to_fp16(q[i])) : q[i];
                K->scores_f16(s, (size_t)n_kv, qv, (size_t)hd, (int)hpu, (const uint16_t *)kc + g * hd, (size_t)KV,
                              n_kv, hd, scale);
            } else {
                K->scores_f32(s, (size_t)n_kv, q, (size_t)hd, (int)hpu, (const float *)kc + g * hd, (size_t)KV, n_kv,
                              hd, scale);
            }
        }
        if (j->phase == 1 || j->phase == 3) K->softmax(s, (size_t)n_kv, (int)hpu, n_kv);
        if (j->phase == 2 || j->phase == 3) {
            float *out = c->kqv + t * Q + h0 * hd;
            if (f16)
                K->pv_f16(out, (size_t)hd, s, (size_t)n_kv, (int)hpu, (const uint16_t *)vc + g * hd, (size_t)KV, n_kv,
                          hd, round16);
            else
                K->pv_f32(out, (size_t)hd, s, (size_t)n_kv, (int)hpu, (const float *)vc + g * hd, (size_t)KV, n_kv, hd);
        }
    }
}

/* Writes the batch's K and V rows into the cache, through the k_cache/v_cache hooks. */
static void store_kv(fq_ctx *c, int il, int64_t T, int64_t pos) {
    const fq_hparams *hp = &c->m->hp;
    const int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const size_t layer_off = (size_t)il * c->p.n_ctx * KV * c->kv_elem;
    for (int which = 0; which < 2; which++) {
        float *src = which ? c->v : c->k;
        char *dst = (char *)c->kv_mem + (which ? c->kv_bytes / 2 : 0) + layer_off +
                    (size_t)pos * KV * c->kv_elem;
        int node = which ? FQ_NODE_V_CACHE : FQ_NODE_K_CACHE;
        if (c->kv_elem == 4) {
            memcpy(dst, src, (size_t)(T * KV) * sizeof(float));
            run_hook(c, node, il, (float *)dst, T, KV, pos, pos);
        } else {
            /* the hook sees the values as they will be stored (F16), then stores its result */
            float *tmp = c->t1; /* ub x n_embd >= ub x KV */
            for (int64_t i = 0; i < T * KV; i++) tmp[i] = fq_fp16_to_f32(fq_f32_to_fp16(src[i]));
            run_hook(c, node, il, tmp, T, KV, pos, pos);
            uint16_t *d16 = (uint16_t *)dst;
            for (int64_t i = 0; i < T * KV; i++) d16[i] = fq_f32_to_fp16(tmp[i]);
        }
    }
}

static void attention(fq_ctx *c, int il, int64_t T, int64_t pos) {
    const fq_hparams *hp = &c->m->hp;
    const int64_t H = hp->n_head, gq = H / hp->n_head_kv, hd = hp->head_dim;
    const int nth = fq_pool_size(c->pool);
    /* a whole group per unit, unless that leaves too few units for the threads (decode) or
     * too many query values for the F16 path's copy */
    int64_t hpu = gq;
    while (hpu > 1 && (T * (H / hpu) < 4 * nth || hpu * hd > FQ_ATTN_UNIT_MAX)) {
        int64_t d = hpu - 1;
        while (gq % d) d--;
        hpu = d;
    }
    attn_job j = {c, fq_attn_get(), il, T, pos, 3, hpu};
    const int64_t units = T * (H / hpu);
    const int chunks = (int)FQ_MIN(units, (int64_t)16 * nth);
    if (!hooked(c, FQ_NODE_KQ, il) && !hooked(c, FQ_NODE_KQ_SOFT_MAX, il)) {
        /* no hook wants the score rows between the phases: each unit does all three while
         * its rows are in cache */
        fq_pool_run_n(c->pool, attn_kernel, &j, chunks);
        return;
    }
    j.phase = 0;
    fq_pool_run_n(c->pool, attn_kernel, &j, chunks);
    if (hooked(c, FQ_NODE_KQ, il))
        for (int64_t t = 0; t < T; t++)
            run_hook(c, FQ_NODE_KQ, il, c->scores + scores_offset(pos, t, hp->n_head), hp->n_head,
                     pos + t + 1, pos + t, (pos + t) * hp->n_head);
    j.phase = 1;
    fq_pool_run_n(c->pool, attn_kernel, &j, chunks);
    if (hooked(c, FQ_NODE_KQ_SOFT_MAX, il))
        for (int64_t t = 0; t < T; t++)
            run_hook(c, FQ_NODE_KQ_SOFT_MAX, il, c->scores + scores_offset(pos, t, hp->n_head),
                     hp->n_head, pos + t + 1, pos + t, (pos + t) * hp->n_head);
    j.phase = 2;
    fq_pool_run_n(c->pool, attn_kernel, &j, chunks);
}

/* ---- the forward pass ----------------------------------------------------------------- */

/* One step of T <= ub tokens whose hidden state (input of layer layer0) is in c->x. */
static void step(fq_ctx *c, int layer0, int64_t T, int64_t pos, float *logits, int all_logits,
                 int64_t hidden_row) {
    const fq_model *m = c->m;
    const fq_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KVd = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    for (int il = layer0; il < hp->n_layer; il++) {
        const fq_layer *L = &m->layers[il];
        if (c->hidden)
            memcpy(c->hidden + ((size_t)il * c->hidden_n + hidden_row) * E, c->x,
                   (size_t)(T * E) * sizeof(float));
        rows_op(c, OP_RMSNORM, T, pos, c->x, L->attn_norm, c->xn);
        run_hook(c, FQ_NODE_ATTN_NORM, il, c->xn, T, E, pos, pos);
        {
            const fq_weight *ws[3] = {&L->wq, &L->wk, &L->wv};
            float *ys[3] = {c->q, c->k, c->v};
            matmul_multi(c, 3, ws, ys, c->xn, T, 0);
        }
        rows_op(c, OP_ROPE, T, pos, NULL, NULL, NULL);
        run_hook(c, FQ_NODE_QCUR, il, c->q, T, Q, pos, pos);
        run_hook(c, FQ_NODE_KCUR, il, c->k, T, KVd, pos, pos);
        run_hook(c, FQ_NODE_VCUR, il, c->v, T, KVd, pos, pos);
        store_kv(c, il, T, pos);
        attention(c, il, T, pos);
        run_hook(c, FQ_NODE_KQV, il, c->kqv, T, Q, pos, pos);
        matmul(c, &L->wo, c->kqv, c->t1, T);
        run_hook(c, FQ_NODE_KQV_OUT, il, c->t1, T, E, pos, pos);
        rows_op(c, OP_ADD, T, pos, c->x, NULL, c->t1); /* t1 = kqv_out + x: ffn_inp */
        run_hook(c, FQ_NODE_FFN_INP, il, c->t1, T, E, pos, pos);
        rows_op(c, OP_RMSNORM, T, pos, c->t1, L->ffn_norm, c->xn);
        run_hook(c, FQ_NODE_FFN_NORM, il, c->xn, T, E, pos, pos);
        {
            /* with no hook between them, SiLU and the product run in the matmul's chunks
             * (same operations per element; no extra pass, no barrier) */
            const int fuse = !hooked(c, FQ_NODE_FFN_GATE, il) && !hooked(c, FQ_NODE_FFN_UP, il) &&
                             !hooked(c, FQ_NODE_FFN_SILU, il);
            const fq_weight *ws[2] = {&L->w_gate, &L->w_up};
            float *ys[2] = {c->gate, c->up};
            matmul_multi(c, 2, ws, ys, c->xn, T, fuse);
            if (!fuse) {
                run_hook(c, FQ_NODE_FFN_GATE, il, c->gate, T, F, pos, pos);
                run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, F, pos, pos);
                rows_op(c, OP_SILU, T, pos, NULL, NULL, NULL);
                run_hook(c, FQ_NODE_FFN_SILU, il, c->gate, T, F, pos, pos);
                rows_op(c, OP_MUL, T, pos, NULL, NULL, NULL);
            }
        }
        run_hook(c, FQ_NODE_FFN_GATE_PAR, il, c->gate, T, F, pos, pos);
        matmul(c, &L->w_down, c->gate, c->x, T);
        run_hook(c, FQ_NODE_FFN_OUT, il, c->x, T, E, pos, pos);
        rows_op(c, OP_ADD, T, pos, c->t1, NULL, c->x); /* x = ffn_out + ffn_inp: l_out */
        run_hook(c, FQ_NODE_L_OUT, il, c->x, T, E, pos, pos);
    }
    if (c->hidden)
        memcpy(c->hidden + ((size_t)hp->n_layer * c->hidden_n + hidden_row) * E, c->x,
               (size_t)(T * E) * sizeof(float));
    if (!logits) return;
    /* only the rows whose logits are wanted go through the output layer */
    const int64_t n_out = all_logits ? T : 1;
    const float *xin = c->x + (T - n_out) * E;
    rows_op(c, OP_RMSNORM, n_out, pos, xin, m->output_norm, c->xn);
    run_hook(c, FQ_NODE_RESULT_NORM, -1, c->xn, n_out, E, pos + T - n_out, pos + T - n_out);
    matmul(c, &m->output, c->xn, c->logits, n_out);
    run_hook(c, FQ_NODE_RESULT_OUTPUT, -1, c->logits, n_out, V, pos + T - n_out, pos + T - n_out);
    memcpy(logits, c->logits, (size_t)(n_out * V) * sizeof(float));
}

/* Most tokens a step at pos may take so that its attention scores fit the buffer. */
static int64_t step_tokens(const fq_ctx *c, int64_t left, int64_t pos) {
    const int64_t H = c->m->hp.n_head;
    int64_t T = FQ_MIN(left, (int64_t)c->ub);
    while (T > 1 && scores_offset(pos, T, H) > c->scores_cap) T /= 2;
    return T;
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
    int done = 0;
    while (done < n) {
        const int64_t T = step_tokens(c, n - done, pos + done);
        const int64_t p0 = pos + done;
        if (tokens) {
            const fq_weight *te = &m->tok_embd;
            const fq_type_traits *tt = fq_type_get(te->type);
            for (int64_t t = 0; t < T; t++)
                tt->to_float((const char *)te->data + (size_t)tokens[done + t] * te->row_bytes,
                             c->x + t * E, E);
            run_hook(c, FQ_NODE_INP_EMBD, -1, c->x, T, E, p0, p0);
        } else {
            memcpy(c->x, h + (size_t)done * E, (size_t)(T * E) * sizeof(float));
        }
        const int last = done + T == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + (size_t)done * V;
        else if (logits && last) out = logits;
        step(c, layer0, T, p0, out, all_logits, done);
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
