/* forward.c - llama forward pass: RMSNorm, GQA attention with RoPE and a KV cache,
 * SwiGLU FFN, logits; hooks after every named node. */
#include "forward.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "attn.h"
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

#define MM_MAX 3 /* weights that share one input in a matmul job */

struct fq_ctx {
    const fq_model *m;
    fq_ctx_params p;
    fq_pool *pool;
    int ub;                     /* most tokens per step */
    /* KV cache: per layer n_ctx rows of kv_dim, F32 or F16 */
    void *kv_mem;
    size_t k_elem, v_elem;      /* 4 or 2 */
    uint64_t k_bytes, kv_bytes; /* the V cache starts at k_bytes */
    /* activations, carved from one allocation */
    float *mem;
    float *x, *xn, *q, *k, *v, *kqv, *t1, *gate, *up, *logits, *scores;
    size_t scores_cap;
    void *qbuf;                 /* activations encoded in a weight's partner format */
    float *q82;                 /* activations rounded through Q8_2 (FQ_ARCH_ACT_Q8_2) */
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

static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;
static void gelu_table_init(void);

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
    c->pool = fq_pool_new(p->n_threads, e);
    if (!c->pool) goto fail;
    if (m->arch->ffn_act == FQ_ACT_GELU_FP16) pthread_once(&gelu_once, gelu_table_init);
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    c->k_elem = tk == FQ_TYPE_F16 ? 2 : 4;
    c->v_elem = tv == FQ_TYPE_F16 ? 2 : 4;
    c->k_bytes = (uint64_t)hp->n_layer * (uint64_t)p->n_ctx * (uint64_t)KV * c->k_elem;
    c->kv_bytes = c->k_bytes + (uint64_t)hp->n_layer * (uint64_t)p->n_ctx * (uint64_t)KV * c->v_elem;
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
    /* up also holds a fused gate|up row (2 n_ff) or a fused QKV row; t1 the F16 copies of
     * K/V rows and the attention residual */
    const size_t up_n = (size_t)FQ_MAX(2 * F, Q + 2 * KV), t1_n = (size_t)FQ_MAX(E, FQ_MAX(Q, KV));
    size_t sizes[] = {ub * E, ub * E, ub * Q, ub * KV, ub * KV, ub * Q, ub * t1_n, ub * F, ub * up_n,
                      ub * V, c->scores_cap};
    size_t total = 0;
    for (size_t i = 0; i < FQ_ARRAY_LEN(sizes); i++) total += (sizes[i] + 15) & ~(size_t)15;
    c->mem = fq_malloc(total * sizeof(float), e);
    c->qbuf = fq_malloc(MM_MAX * (ub * (maxin * 4 + 512) + 64), e);
    if (m->arch->flags & FQ_ARCH_ACT_Q8_2) c->q82 = fq_malloc(ub * maxin * sizeof(float), e);
    if (!c->mem || !c->qbuf || ((m->arch->flags & FQ_ARCH_ACT_Q8_2) && !c->q82)) {
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
    free(c->q82);
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
    const float *xf[MM_MAX];        /* non-NULL: float input for an exact-path product */
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


/* Tiles of rows x tokens small enough that a tile's weight rows and activation rows stay
 * in L2 while each weight row is reused from L1 across the tile's tokens. */
#define MM_ROW_TILE 32
#define MM_TOK_TILE 32

static void matmul_rows(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    for (int k = 0; k < j->n; k++) {
        const int exact = j->c->p.exact || j->xf[k];
        const float *xk = j->xf[k] ? j->xf[k] : j->x;
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
                            tw->vec_dot_f32(w->n_in, &y[t * w->n_out + r], wr, xk + t * w->n_in);
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
        /* SwiGLU's elementwise part as ggml computes it (attn.h's silu), then g *= u */
        const fq_attn_kernels *K = fq_attn_get();
        for (int64_t t = 0; t < j->T; t++) K->silu(j->y[0] + t * F, j->y[1] + t * F, r0, r1, F & ~(int64_t)7);
    }
}

/* ik_llama.cpp's Q8_2 activation rounding (its AVX2 quantize_row_q8_2_x4), as values: per
 * block of 32, d = max|x| / 127 rounded to bf16 (nearest even), q = x * (1/d) rounded to
 * the nearest integer (ties to even) and saturated to int8; the value is d * q. */
static int q82_type(uint32_t t) {
    return t == FQ_TYPE_Q8_0 || t == FQ_TYPE_Q5_0 || t == FQ_TYPE_Q4_K || t == FQ_TYPE_Q6_K;
}

typedef struct {
    const float *x;
    float *y;
    int64_t n, T;
} q82_job;

static void q82_rows(void *arg, int ith, int nth) {
    q82_job *j = arg;
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * j->n;
        float *y = j->y + t * j->n;
        for (int64_t b = 0; b < j->n; b += 32) {
            float amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b + i]));
            const float d = fq_bf16_to_f32(fq_f32_to_bf16(amax / 127.0f));
            const float id = d > 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++) {
                float q = nearbyintf(x[b + i] * id);
                q = q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q;
                y[b + i] = d * q;
            }
        }
    }
}

/* y_k[T][n_out_k] = x[T][n_in] W_k^T for n weights with the same n_in, in the context's
 * arithmetic mode. */
static void matmul_multi(fq_ctx *c, int n, const fq_weight *const *w, float *const *y, const float *x, int64_t T,
                         int silu_mul) {
    matmul_job j = {.c = c, .n = n, .x = x, .n_in = w[0]->n_in, .T = T, .silu_mul = silu_mul};
    FQ_ASSERT(!silu_mul || (n == 2 && w[0]->n_out == w[1]->n_out));
    int enc_types[MM_MAX], n_enc = 0, q82_done = 0;
    char *slot = c->qbuf;
    for (int k = 0; k < n; k++) {
        FQ_ASSERT(w[k]->n_in == j.n_in);
        j.w[k] = w[k];
        j.y[k] = y[k];
        j.tw[k] = fq_type_get(w[k]->type);
        if (c->p.exact) continue;
        if (c->q82 && q82_type(w[k]->type)) {
            /* ik_llama.cpp's activation rounding, then the exact product of the decoded
             * weights with the rounded values */
            if (j.n_in % 32 == 0) {
                if (!q82_done) {
                    q82_job qj = {x, c->q82, j.n_in, T};
                    if (T == 1) q82_rows(&qj, 0, 1);
                    else fq_pool_run(c->pool, q82_rows, &qj);
                    q82_done = 1;
                }
                j.xf[k] = c->q82;
                continue;
            }
        }
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
    int64_t n;          /* row length (elements per token) */
    int64_t sub;        /* OP_RMSNORM: norm groups of sub elements (per head); 0: the row */
    float f;            /* OP_SCALE / OP_SOFTCAP */
} rows_job;

enum { OP_RMSNORM, OP_ROPE, OP_SILU, OP_MUL, OP_ADD, OP_ADD_VEC, OP_SCALE, OP_SOFTCAP, OP_GELU, OP_GLU_SPLIT };

/* RoPE angles of one position as ggml computes them (rope_yarn without extrapolation):
 * theta_i = freq_scale * (pos * theta_scale^i / ff_i), theta_scale = powf(base, -2/n_rot),
 * the power advanced by repeated float multiplication; cos/sin in float. The cos/sin of a
 * position are computed once and applied to every head. */
static void rope_angles(float *cs, float *sn, int64_t n_rot, float base, float freq_scale, const float *ff,
                        int64_t pos) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < n_rot / 2; i++) {
        const float th = freq_scale * (theta / (ff ? ff[i] : 1.0f));
        cs[i] = cosf(th);
        sn[i] = sinf(th);
        theta *= theta_scale;
    }
}

/* Rotates the pairs of each head: (2i, 2i+1) in normal mode (llama), (i, i + n_rot/2) in
 * NEOX mode; dimensions past n_rot are left as they are. */
static void rope_apply(float *x, int64_t n_heads, int64_t hd, int64_t n_rot, int neox, const float *cs,
                       const float *sn) {
    const int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * hd;
        for (int64_t i = 0; i < half; i++) {
            const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            /* as ggml's rope compiles on x86 (GCC contracts the first product of each sum
             * into a fused multiply-add) */
            v[a] = fmaf(x0, cs[i], -(x1 * sn[i]));
            v[b] = fmaf(x0, sn[i], x1 * cs[i]);
        }
    }
}

/* GELU-tanh as ggml's CPU backend computes it (GGML_GELU_FP16): 0 below -10, x above 10,
 * else the input rounded to F16 looks up g(h) = 0.5h(1 + tanhf(0.79788456 h (1 + 0.044715 h^2)))
 * computed in float and stored as F16. The table is built once. */
static float *gelu_table;

/* g(h) as ggml's gelu compiles on x86: GCC contracts 1 + a*h*h into a fused multiply-add */
static float gelu_f32(float x) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286535587989211986876f * x * fmaf(0.044715f * x, x, 1.0f)));
}

static void gelu_table_init(void) {
    static float table[65536];
    for (int i = 0; i < 65536; i++) {
        const float h = fq_fp16_to_f32((uint16_t)i);
        table[i] = fq_fp16_to_f32(fq_f32_to_fp16(gelu_f32(h)));
    }
    gelu_table = table;
}

static void gelu_row(float *g, int64_t n, int act) {
    if (act == FQ_ACT_GELU_FP16) {
        for (int64_t i = 0; i < n; i++) {
            const float x = g[i];
            g[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x : gelu_table[fq_f32_to_fp16(x)];
        }
    } else {
        /* float32 GELU-tanh as ik_llama.cpp's SIMD path writes it: x e^{2u} / (e^{2u} + 1) */
        for (int64_t i = 0; i < n; i++) {
            const float x = g[i];
            if (x > 10.0f) continue;
            const float u = 0.79788456080286535587989211986876f * x * (1.0f + 0.044715f * x * x);
            const float e2 = expf(2.0f * u);
            g[i] = x * e2 / (e2 + 1.0f);
        }
    }
}

void fq__gelu_row(float *x, int64_t n, int act) {
    if (act == FQ_ACT_GELU_FP16) pthread_once(&gelu_once, gelu_table_init);
    gelu_row(x, n, act);
}

static void rows_kernel(void *arg, int ith, int nth) {
    rows_job *j = arg;
    fq_ctx *c = j->c;
    const fq_model *m = c->m;
    const fq_hparams *hp = &m->hp;
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    const int64_t n = j->n, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int64_t t = t0; t < t1; t++) {
        switch (j->op) {
        case OP_RMSNORM:
            if (j->sub)
                for (int64_t h = 0; h < n; h += j->sub)
                    rmsnorm_row(j->y + t * n + h, j->a + t * n + h, j->w, j->sub, hp->rms_eps);
            else
                rmsnorm_row(j->y + t * n, j->a + t * n, j->w, n, hp->rms_eps);
            break;
        case OP_ROPE: {
            const fq_layer *L = &m->layers[j->layer];
            float cs[512], sn[512];
            rope_angles(cs, sn, hp->n_rot, L->swa ? hp->rope_base_swa : hp->rope_base,
                        L->swa ? hp->rope_freq_scale_swa : hp->rope_freq_scale, m->rope_freqs, j->pos + t);
            const int neox = m->arch->rope_mode == FQ_ROPE_NEOX;
            rope_apply(c->q + t * Q, hp->n_head, hp->head_dim, hp->n_rot, neox, cs, sn);
            rope_apply(c->k + t * KV, hp->n_head_kv, hp->head_dim, hp->n_rot, neox, cs, sn);
            break;
        }
        case OP_SILU:
            fq_attn_get()->silu(j->y + t * n, NULL, 0, n, n & ~(int64_t)7);
            break;
        case OP_GELU:
            gelu_row(j->y + t * n, n, m->arch->ffn_act);
            break;
        case OP_MUL: { /* y *= a */
            float *g = j->y + t * n;
            const float *u = j->a + t * n;
            for (int64_t i = 0; i < n; i++) g[i] *= u[i];
            break;
        }
        case OP_GLU_SPLIT: { /* y = silu(a[0..n)) * a[n..2n) (fused gate|up rows, copied out first) */
            float *g = j->y + t * n;
            const float *u = j->a + t * 2 * n;
            memcpy(g, u, (size_t)n * sizeof(float));
            fq_attn_get()->silu(g, u + n, 0, n, n & ~(int64_t)7);
            break;
        }
        case OP_ADD: { /* y += a */
            float *y = j->y + t * n;
            const float *a = j->a + t * n;
            for (int64_t i = 0; i < n; i++) y[i] = a[i] + y[i];
            break;
        }
        case OP_ADD_VEC: { /* y += w (a bias, the same for every token) */
            float *y = j->y + t * n;
            for (int64_t i = 0; i < n; i++) y[i] = y[i] + j->w[i];
            break;
        }
        case OP_SCALE: {
            float *y = j->y + t * n;
            for (int64_t i = 0; i < n; i++) y[i] = y[i] * j->f;
            break;
        }
        case OP_SOFTCAP: { /* ggml: scale by 1/cap, tanh, scale by cap */
            float *y = j->y + t * n;
            const float inv = 1.0f / j->f;
            for (int64_t i = 0; i < n; i++) y[i] = tanhf(y[i] * inv) * j->f;
            break;
        }
        }
    }
}

static void rows_run(fq_ctx *c, rows_job *j) {
    j->c = c;
    /* one token has nothing to split: a pool job would only add a barrier */
    if (j->T == 1) rows_kernel(j, 0, 1);
    else fq_pool_run(c->pool, rows_kernel, j);
}

static void rows_op(fq_ctx *c, int op, int64_t T, int64_t pos, const float *a, const float *w, float *y) {
    rows_job j = {c, op, 0, T, pos, a, w, y, c->m->hp.n_embd, 0, 0.0f};
    rows_run(c, &j);
}

/* The same op over rows of n elements. */
static void rows_op_n(fq_ctx *c, int op, int64_t T, int64_t n, const float *a, const float *w, float *y, float f) {
    rows_job j = {c, op, 0, T, 0, a, w, y, n, 0, f};
    rows_run(c, &j);
}

/* ---- attention ------------------------------------------------------------------------ */


#define FQ_ATTN_UNIT_MAX 4096 /* most query values (heads x head_dim) in one unit */

typedef struct {
    fq_ctx *c;
    const fq_attn_kernels *k;
    int layer;
    int64_t T, pos;
    int phase;          /* 0: scores, 1: softmax, 2: weighted sum of V, 3: all three */
    int64_t hpu;        /* query heads per unit: a divisor of the heads sharing a KV head */
    float scale;        /* kq_scale */
    float softcap;      /* 0: none */
    int64_t window;     /* sliding window (0: none): key j visible from i iff i - j < window */
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
    const char *kc = (const char *)c->kv_mem + (size_t)j->layer * c->p.n_ctx * KV * c->k_elem;
    const char *vc = (const char *)c->kv_mem + c->k_bytes + (size_t)j->layer * c->p.n_ctx * KV * c->v_elem;
    const int f16k = c->k_elem == 2, f16v = c->v_elem == 2;
    /* llama.cpp rounds Q (and the softmax weights) to F16 to multiply them with an F16
     * cache; ik_llama.cpp's reference for some families keeps the weights in f32 */
    const int round_q = f16k && !c->p.exact;
    const int round_w = f16v && !c->p.exact && !(c->m->arch->flags & FQ_ARCH_V_F16_PLAIN);
    const float scale = j->scale;
    int64_t u0, u1;
    fq_split(j->T * upt, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t t = j->T - 1 - u / upt, h0 = u % upt * hpu, g = h0 / gq, n_kv = j->pos + t + 1;
        float *s = c->scores + scores_offset(j->pos, t, H) + (size_t)h0 * n_kv;
        if (j->phase == 0 || j->phase == 3) {
            const float *q = c->q + t * Q + h0 * hd;
            if (f16k) {
                float qv[FQ_ATTN_UNIT_MAX];
                for (int64_t i = 0; i < hpu * hd; i++) qv[i] = round_q ? fq_fp16_to_f32(fq_f32_to_fp16(q[i])) : q[i];
                K->scores_f16(s, (size_t)n_kv, qv, (size_t)hd, (int)hpu, (const uint16_t *)kc + g * hd, (size_t)KV,
                              n_kv, hd, scale);
            } else {
                K->scores_f32(s, (size_t)n_kv, q, (size_t)hd, (int)hpu, (const float *)kc + g * hd, (size_t)KV, n_kv,
                              hd, scale);
            }
        }
        if (j->phase == 1 || j->phase == 3) {
            if (j->softcap > 0.0f) { /* ggml: scale by 1/cap, tanh, scale by cap */
                const float inv = 1.0f / j->softcap;
                for (int64_t i = 0; i < hpu * n_kv; i++) s[i] = tanhf(s[i] * inv) * j->softcap;
            }
            /* keys out of the window get -inf, as llama.cpp's mask gives them: exp() makes
             * them exact zeros, which leave the softmax sum and the V sum unchanged */
            const int64_t j0 = j->window > 0 ? FQ_MAX((int64_t)0, n_kv - j->window) : 0;
            for (int64_t h = 0; h < hpu; h++)
                for (int64_t i = 0; i < j0; i++) s[h * n_kv + i] = -INFINITY;
            K->softmax(s, (size_t)n_kv, (int)hpu, n_kv);
        }
        if (j->phase == 2 || j->phase == 3) {
            float *out = c->kqv + t * Q + h0 * hd;
            if (f16v)
                K->pv_f16(out, (size_t)hd, s, (size_t)n_kv, (int)hpu, (const uint16_t *)vc + g * hd, (size_t)KV, n_kv,
                          hd, round_w);
            else
                K->pv_f32(out, (size_t)hd, s, (size_t)n_kv, (int)hpu, (const float *)vc + g * hd, (size_t)KV, n_kv, hd);
        }
    }
}

/* Writes the batch's K and V rows into the cache, through the k_cache/v_cache hooks. */
static void store_kv(fq_ctx *c, int il, int64_t T, int64_t pos) {
    const fq_hparams *hp = &c->m->hp;
    const int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int which = 0; which < 2; which++) {
        const size_t elem = which ? c->v_elem : c->k_elem;
        float *src = which ? c->v : c->k;
        char *dst = (char *)c->kv_mem + (which ? c->k_bytes : 0) + (size_t)il * c->p.n_ctx * KV * elem +
                    (size_t)pos * KV * elem;
        int node = which ? FQ_NODE_V_CACHE : FQ_NODE_K_CACHE;
        if (elem == 4) {
            memcpy(dst, src, (size_t)(T * KV) * sizeof(float));
            run_hook(c, node, il, (float *)dst, T, KV, pos, pos);
        } else {
            /* the hook sees the values as they will be stored (F16), then stores its result */
            float *tmp = c->t1; /* ub x max(n_embd, Q, KV) */
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
    const fq_layer *L = &c->m->layers[il];
    attn_job j = {c, fq_attn_get(), il, T, pos, 3, hpu,
                  c->m->arch->qscale == FQ_QSCALE_SOFTMAX ? hp->q_scale : 1.0f, hp->attn_softcap,
                  L->swa ? hp->n_swa : 0};
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
    const fq_arch_desc *A = m->arch;
    const fq_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KVd = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, V = hp->n_vocab,
                  D = hp->head_dim;
    const int resid_node = fq_node_in_model(m, FQ_NODE_SA_OUT) ? FQ_NODE_SA_OUT : FQ_NODE_FFN_INP;
    for (int il = layer0; il < hp->n_layer; il++) {
        const fq_layer *L = &m->layers[il];
        if (c->hidden)
            memcpy(c->hidden + ((size_t)il * c->hidden_n + hidden_row) * E, c->x,
                   (size_t)(T * E) * sizeof(float));
        /* ---- attention ---- */
        const float *ain = c->x;
        if (L->attn_norm) {
            rows_op(c, OP_RMSNORM, T, pos, c->x, L->attn_norm, c->xn);
            run_hook(c, FQ_NODE_ATTN_NORM, il, c->xn, T, E, pos, pos);
            ain = c->xn;
        }
        if (L->wqkv.data) {
            /* one matrix; Q, K, V are its row ranges, copied out (ggml_cont of views) */
            matmul(c, &L->wqkv, ain, c->up, T);
            run_hook(c, FQ_NODE_WQKV, il, c->up, T, Q + 2 * KVd, pos, pos);
            for (int64_t t = 0; t < T; t++) {
                const float *r = c->up + t * (Q + 2 * KVd);
                memcpy(c->q + t * Q, r, (size_t)Q * sizeof(float));
                memcpy(c->k + t * KVd, r + Q, (size_t)KVd * sizeof(float));
                memcpy(c->v + t * KVd, r + Q + KVd, (size_t)KVd * sizeof(float));
            }
        } else {
            const fq_weight *ws[3] = {&L->wq, &L->wk, &L->wv};
            float *ys[3] = {c->q, c->k, c->v};
            matmul_multi(c, 3, ws, ys, ain, T, 0);
        }
        run_hook(c, FQ_NODE_QCUR_PROJ, il, c->q, T, Q, pos, pos);
        if (L->bq) {
            rows_op_n(c, OP_ADD_VEC, T, Q, NULL, L->bq, c->q, 0.0f);
            run_hook(c, FQ_NODE_QCUR_BIASED, il, c->q, T, Q, pos, pos);
        }
        run_hook(c, FQ_NODE_KCUR_PROJ, il, c->k, T, KVd, pos, pos);
        if (L->bk) {
            rows_op_n(c, OP_ADD_VEC, T, KVd, NULL, L->bk, c->k, 0.0f);
            run_hook(c, FQ_NODE_KCUR_BIASED, il, c->k, T, KVd, pos, pos);
        }
        if (L->bv) {
            run_hook(c, FQ_NODE_VCUR_PROJ, il, c->v, T, KVd, pos, pos);
            rows_op_n(c, OP_ADD_VEC, T, KVd, NULL, L->bv, c->v, 0.0f);
        }
        if (L->q_norm) { /* per head (one weight of D for all heads) or over the projection */
            const int per_head = A->qk_norm == FQ_QKNORM_HEAD;
            rows_job jq = {c, OP_RMSNORM, il, T, pos, c->q, L->q_norm, c->q, Q, per_head ? D : 0, 0.0f};
            rows_run(c, &jq);
            run_hook(c, FQ_NODE_QCUR_NORMED, il, c->q, T, Q, pos, pos);
            rows_job jk = {c, OP_RMSNORM, il, T, pos, c->k, L->k_norm, c->k, KVd, per_head ? D : 0, 0.0f};
            rows_run(c, &jk);
            run_hook(c, FQ_NODE_KCUR_NORMED, il, c->k, T, KVd, pos, pos);
        }
        {
            rows_job jr = {c, OP_ROPE, il, T, pos, NULL, NULL, NULL, 0, 0, 0.0f};
            rows_run(c, &jr);
        }
        run_hook(c, FQ_NODE_QCUR, il, c->q, T, Q, pos, pos);
        run_hook(c, FQ_NODE_KCUR, il, c->k, T, KVd, pos, pos);
        if (A->qscale != FQ_QSCALE_SOFTMAX) {
            rows_op_n(c, OP_SCALE, T, Q, NULL, NULL, c->q, hp->q_scale);
            run_hook(c, FQ_NODE_QCUR_SCALED, il, c->q, T, Q, pos, pos);
        }
        run_hook(c, FQ_NODE_VCUR, il, c->v, T, KVd, pos, pos);
        store_kv(c, il, T, pos);
        attention(c, il, T, pos);
        run_hook(c, FQ_NODE_KQV, il, c->kqv, T, Q, pos, pos);
        matmul(c, &L->wo, c->kqv, c->t1, T);
        if (L->bo) rows_op_n(c, OP_ADD_VEC, T, E, NULL, L->bo, c->t1, 0.0f);
        run_hook(c, FQ_NODE_KQV_OUT, il, c->t1, T, E, pos, pos);
        if (L->attn_post_norm) {
            rows_op(c, OP_RMSNORM, T, pos, c->t1, L->attn_post_norm, c->t1);
            run_hook(c, FQ_NODE_ATTN_POST_NORM, il, c->t1, T, E, pos, pos);
        }
        rows_op(c, OP_ADD, T, pos, c->x, NULL, c->t1); /* t1 = attention + x: ffn_inp / sa_out */
        run_hook(c, resid_node, il, c->t1, T, E, pos, pos);
        /* ---- feed-forward ---- */
        const float *fin = c->t1;
        if (L->ffn_norm) {
            rows_op(c, OP_RMSNORM, T, pos, c->t1, L->ffn_norm, c->xn);
            run_hook(c, FQ_NODE_FFN_NORM, il, c->xn, T, E, pos, pos);
            fin = c->xn;
        }
        if (!L->w_gate.data) {
            /* fused W_up: gate rows then up rows (phi3) */
            matmul(c, &L->w_up, fin, c->up, T);
            run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, 2 * F, pos, pos);
            rows_op_n(c, OP_GLU_SPLIT, T, F, c->up, NULL, c->gate, 0.0f);
            run_hook(c, FQ_NODE_FFN_MUL, il, c->gate, T, F, pos, pos);
        } else if (A->ffn_act == FQ_ACT_SILU) {
            /* with no hook between them, SiLU and the product run in the matmul's chunks
             * (same operations per element; no extra pass, no barrier) */
            const int fuse = !hooked(c, FQ_NODE_FFN_GATE, il) && !hooked(c, FQ_NODE_FFN_UP, il) &&
                             !hooked(c, FQ_NODE_FFN_SILU, il);
            const fq_weight *ws[2] = {&L->w_gate, &L->w_up};
            float *ys[2] = {c->gate, c->up};
            matmul_multi(c, 2, ws, ys, fin, T, fuse);
            if (!fuse) {
                run_hook(c, FQ_NODE_FFN_GATE, il, c->gate, T, F, pos, pos);
                run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, F, pos, pos);
                rows_op_n(c, OP_SILU, T, F, NULL, NULL, c->gate, 0.0f);
                run_hook(c, FQ_NODE_FFN_SILU, il, c->gate, T, F, pos, pos);
                rows_op_n(c, OP_MUL, T, F, c->up, NULL, c->gate, 0.0f);
            }
            run_hook(c, FQ_NODE_FFN_GATE_PAR, il, c->gate, T, F, pos, pos);
        } else {
            const fq_weight *ws[2] = {&L->w_gate, &L->w_up};
            float *ys[2] = {c->gate, c->up};
            matmul_multi(c, 2, ws, ys, fin, T, 0);
            run_hook(c, FQ_NODE_FFN_GATE, il, c->gate, T, F, pos, pos);
            run_hook(c, FQ_NODE_FFN_UP, il, c->up, T, F, pos, pos);
            rows_op_n(c, OP_GELU, T, F, NULL, NULL, c->gate, 0.0f);
            run_hook(c, FQ_NODE_FFN_GELU, il, c->gate, T, F, pos, pos);
            rows_op_n(c, OP_MUL, T, F, c->up, NULL, c->gate, 0.0f);
            run_hook(c, FQ_NODE_FFN_GATE_PAR, il, c->gate, T, F, pos, pos);
        }
        matmul(c, &L->w_down, c->gate, c->x, T);
        run_hook(c, FQ_NODE_FFN_OUT, il, c->x, T, E, pos, pos);
        if (L->ffn_post_norm) {
            rows_op(c, OP_RMSNORM, T, pos, c->x, L->ffn_post_norm, c->x);
            run_hook(c, FQ_NODE_FFN_POST_NORM, il, c->x, T, E, pos, pos);
        }
        rows_op(c, OP_ADD, T, pos, c->t1, NULL, c->x); /* x = ffn + residual: l_out */
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
    if (hp->final_softcap > 0.0f) rows_op_n(c, OP_SOFTCAP, n_out, V, NULL, NULL, c->logits, hp->final_softcap);
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
            if (m->arch->flags & FQ_ARCH_EMBD_SCALE) {
                rows_op_n(c, OP_SCALE, T, E, NULL, NULL, c->x, sqrtf((float)E));
                run_hook(c, FQ_NODE_INP_SCALED, -1, c->x, T, E, p0, p0);
            }
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
