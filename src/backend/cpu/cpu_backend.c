/* backend/cpu/cpu_backend.c - the CPU backend: fills the operations table of
 * backend/backend.h with host-memory buffers, its own thread pool and the kernels
 * (type traits' dot products, attn.h's attention kernels, the row operations here), each
 * chosen by the one CPU feature probe (cpu.h). Every operation splits its work over the
 * pool so that no result depends on the thread that computes it. */
#include "backend/backend.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "attn.h"
#include "qtypes.h"

#define MM_MAX FQ_MATMUL_MAX

typedef struct cpu_be {
    fq_backend base;            /* first: a cpu_be is an fq_backend */
    const fq_model *m;
    fq_backend_params p;
    fq_pool *pool;
    /* KV cache: per layer n_ctx rows of kv_dim, F32 or F16; the V cache starts at k_bytes */
    void *kv_mem;
    size_t k_elem, v_elem;      /* 4 or 2 */
    uint64_t k_bytes, kv_bytes;
    float *scores;              /* attention scores of one step (scores_offset layout) */
    size_t scores_cap;
    void *qbuf;                 /* activations encoded in a weight's partner format */
    float *q82;                 /* activations rounded through Q8_2 (FQ_ARCH_ACT_Q8_2) */
} cpu_be;

static inline cpu_be *CPU(fq_backend *b) { return (cpu_be *)b; }

/* ---- matmul: each kernel is a pool job over rows -------------------------------------- */

/* Several weights that read the same input (Q/K/V; gate/up) run in one pool job: the
 * input is encoded once per distinct partner format, and every thread takes its share of
 * each weight's rows with no barrier in between. */

typedef struct {
    cpu_be *c;
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
    int xdec[MM_MAX];               /* xf holds act_dec activations (vec_dot_dec_mn applies) */
    const fq__bf16_span *xspan[MM_MAX]; /* BF16 act_dec: each token's span (fq__bf16_fused_ok) */
    /* encoding job */
    const fq_type_traits *enc;
    char *enc_dst;
    size_t enc_row;
    fq__bf16_span *enc_span; /* non-NULL: matmul_encode_dec records each token's BF16 span */
} matmul_job;

static void matmul_encode(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        j->enc->from_float_act(j->x + t * j->n_in, j->enc_dst + t * j->enc_row, j->n_in);
}

/* the activations rounded to the partner format (F16 / BF16) and decoded back to F32, a
 * chunk at a time (act_dec types encode element by element) */
static void matmul_encode_dec(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    _Alignas(64) char tmp[256 * 4];
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        float *dst = (float *)(void *)(j->enc_dst + t * j->enc_row);
        fq__bf16_span sp = FQ_BF16_SPAN_EMPTY;
        for (int64_t i = 0; i < j->n_in; i += 256) {
            const int64_t m = FQ_MIN(256, j->n_in - i);
            j->enc->from_float_act(j->x + t * j->n_in + i, tmp, m);
            j->enc->to_float(tmp, dst + i, m);
            if (j->enc_span) fq__bf16_span_of((const uint16_t *)(const void *)tmp, m, &sp);
        }
        if (j->enc_span) j->enc_span[t] = sp;
    }
}

/* Tiles of rows x tokens small enough that a tile's weight rows and activation rows stay
 * in L2 while each weight row is reused from L1 across the tile's tokens. */
#define MM_ROW_TILE 32
#define MM_TOK_TILE 32
/* fewest prompt tokens for the fused BF16 tile: the rows' exponent scan (~0.1 cycle per
 * weight at AVX2) against the fused tile's saving (~0.02 cycle per weight and token) */
#define BF16_FUSED_MIN_T 16

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
            fq__bf16_span wspan = FQ_BF16_SPAN_EMPTY;
            int wspan_set = 0;
            for (int64_t tb = 0; tb < j->T; tb += MM_TOK_TILE) {
                const int64_t te = FQ_MIN(j->T, tb + MM_TOK_TILE);
                if (!exact && tw->vec_dot_mn && te - tb > 1) {
                    /* register tiles: a few weight rows x a few tokens per call, each weight
                     * block unpacked once for all the tile's tokens (same bits as vec_dot) */
                    const int mx = FQ_MAX(1, FQ_MIN(tw->mn_x, FQ_DOT_MXL));
                    const int my = FQ_MAX(1, FQ_MIN(tw->mn_y, FQ_DOT_NY));
                    for (int64_t r = rb; r < re; r += mx)
                        for (int64_t t = tb; t < te; t += my)
                            tw->vec_dot_mn(w->n_in, &y[t * w->n_out + r], (size_t)w->n_out,
                                           wd + (size_t)r * w->row_bytes, w->row_bytes, (int)FQ_MIN(mx, re - r),
                                           qa + t * qrow, qrow, (int)FQ_MIN(my, te - t));
                    continue;
                }
                fq__dotmn_f32_fn fm = j->xdec[k] && tw->vec_dot_dec_mn ? tw->vec_dot_dec_mn : tw->vec_dot_f32_mn;
                if (fm && fm == tw->vec_dot_dec_mn && w->type == FQ_TYPE_BF16) {
                    /* BF16: the fused tile only where every product of these rows and
                     * tokens is exact (the rows' span once per row tile); without token
                     * spans (short prompts) the unfused tile */
                    fq__bf16_span as = FQ_BF16_SPAN_EMPTY;
                    if (j->xspan[k]) {
                        if (!wspan_set) {
                            wspan_set = 1;
                            for (int64_t r = rb; r < re; r++)
                                fq__bf16_span_of((const uint16_t *)(const void *)(wd + (size_t)r * w->row_bytes),
                                                 w->n_in, &wspan);
                        }
                        for (int64_t t = tb; t < te; t++) fq__bf16_span_merge(&as, j->xspan[k][t]);
                    }
                    if (!j->xspan[k] || !fq__bf16_fused_ok(wspan, as)) fm = tw->vec_dot_f32_mn;
                }
                if (exact && fm && te - tb > 1) {
                    /* register tiles on the F32 input (same bits as vec_dot_f32); the
                     * decoded-activation tile takes the whole row tile in one call, so its
                     * tiles of 3 rows (AVX2) leave one short tile per 32 rows, not per 8 */
                    const int mx = fm == tw->vec_dot_dec_mn ? (int)(re - rb) : FQ_MAX(1, FQ_MIN(tw->mn_x, FQ_DOT_MX));
                    const int my = FQ_MAX(1, FQ_MIN(tw->mn_y, FQ_DOT_NY));
                    for (int64_t r = rb; r < re; r += mx)
                        for (int64_t t = tb; t < te; t += my)
                            fm(w->n_in, &y[t * w->n_out + r], (size_t)w->n_out,
                                               wd + (size_t)r * w->row_bytes, w->row_bytes, (int)FQ_MIN(mx, re - r),
                                               xk + t * w->n_in, (size_t)w->n_in * sizeof(float), (int)FQ_MIN(my, te - t));
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

/* y_k[T][n_out_k] = x[T][n_in] W_k^T for n weights with the same n_in, in the backend's
 * arithmetic mode. */
static void matmul_multi(cpu_be *c, int n, const fq_weight *const *w, float *const *y, const float *x, int64_t T,
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
        if (T > 1 && j.tw[k]->act_dec && j.tw[k]->vec_dot_f32_mn) {
            /* a prompt against F16 / BF16 weights: the activations encoded and decoded back
             * to F32 once, then the F32-input tiles (the same bits as vec_dot_mn on the
             * encoded rows, act_dec, without converting the tokens in every tile) */
            for (int e = 0; e < k && !j.xf[k]; e++)
                if (j.tw[e]->act_dec && j.tw[e]->vec_dot_type == pt && j.xf[e]) {
                    j.xf[k] = j.xf[e];
                    j.xspan[k] = j.xspan[e];
                }
            if (!j.xf[k]) {
                j.enc = fq_type_get((uint32_t)pt);
                FQ_ASSERT(j.enc->blck == 1 && j.enc->type_size <= 4);
                j.enc_dst = slot;
                j.enc_row = (size_t)j.n_in * sizeof(float);
                slot += ((size_t)T * j.enc_row + 63) & ~(size_t)63;
                /* BF16 tokens: their spans, in the slot's spare bytes (ub * 512 per slot);
                 * below BF16_FUSED_MIN_T tokens the scan of the rows' spans would cost
                 * more than the fused tile saves, so no spans and the unfused tile */
                j.enc_span = pt == FQ_TYPE_BF16 && T >= BF16_FUSED_MIN_T ? (fq__bf16_span *)(void *)slot : NULL;
                if (j.enc_span) slot += ((size_t)T * sizeof(fq__bf16_span) + 63) & ~(size_t)63;
                fq_pool_run(c->pool, matmul_encode_dec, &j);
                j.xf[k] = (const float *)(void *)j.enc_dst;
                j.xspan[k] = j.enc_span;
                j.enc_span = NULL;
            }
            j.xdec[k] = 1;
            continue;
        }
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

/* RMSNorm as ggml computes it: the mean of squares summed in double, then
 * scale = 1/sqrtf(mean + eps) in float, y = (x * scale) * w. */
static void rmsnorm_row(float *y, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

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
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

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
typedef struct {
    int op;
    int64_t T, pos;
    const float *a;
    const float *w;
    float *y;
    int64_t n;          /* row length (elements per token) */
    int64_t sub;        /* OP_RMSNORM: norm groups of sub elements (per head); 0: the row */
    float f;            /* OP_SCALE / OP_SOFTCAP; OP_RMSNORM: eps; OP_GELU: the activation */
    const fq_rope_params *rp; /* OP_ROPE (y: q, a: k, both written) */
} rows_job;

enum { OP_RMSNORM, OP_ROPE, OP_SILU, OP_MUL, OP_ADD, OP_ADD_VEC, OP_SCALE, OP_SOFTCAP, OP_GELU, OP_GLU_SPLIT };

static void rows_kernel(void *arg, int ith, int nth) {
    rows_job *j = arg;
    int64_t t0, t1;
    fq_split(j->T, ith, nth, &t0, &t1);
    const int64_t n = j->n;
    for (int64_t t = t0; t < t1; t++) {
        switch (j->op) {
        case OP_RMSNORM:
            if (j->sub)
                for (int64_t h = 0; h < n; h += j->sub)
                    rmsnorm_row(j->y + t * n + h, j->a + t * n + h, j->w, j->sub, j->f);
            else
                rmsnorm_row(j->y + t * n, j->a + t * n, j->w, n, j->f);
            break;
        case OP_ROPE: {
            const fq_rope_params *p = j->rp;
            const int64_t Q = p->n_head * p->head_dim, KV = p->n_head_kv * p->head_dim;
            float cs[512], sn[512];
            rope_angles(cs, sn, p->n_rot, p->base, p->freq_scale, p->freq_factors, j->pos + t);
            rope_apply(j->y + t * Q, p->n_head, p->head_dim, p->n_rot, p->neox, cs, sn);
            rope_apply((float *)j->a + t * KV, p->n_head_kv, p->head_dim, p->n_rot, p->neox, cs, sn);
            break;
        }
        case OP_SILU:
            fq_attn_get()->silu(j->y + t * n, NULL, 0, n, n & ~(int64_t)7);
            break;
        case OP_GELU:
            gelu_row(j->y + t * n, n, (int)j->f);
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

static void rows_run(cpu_be *c, rows_job *j) {
    /* one token has nothing to split: a pool job would only add a barrier */
    if (j->T == 1) rows_kernel(j, 0, 1);
    else fq_pool_run(c->pool, rows_kernel, j);
}

/* ---- attention ------------------------------------------------------------------------ */



#define FQ_ATTN_UNIT_MAX 4096 /* most query values (heads x head_dim) in one unit */

typedef struct {
    cpu_be *c;
    const fq_attn_kernels *k;
    const float *q;     /* T rows of n_head head_dim */
    float *out;         /* T rows of n_head head_dim */
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
    cpu_be *c = j->c;
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
            const float *q = j->q + t * Q + h0 * hd;
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
            float *out = j->out + t * Q + h0 * hd;
            if (f16v)
                K->pv_f16(out, (size_t)hd, s, (size_t)n_kv, (int)hpu, (const uint16_t *)vc + g * hd, (size_t)KV, n_kv,
                          hd, round_w);
            else
                K->pv_f32(out, (size_t)hd, s, (size_t)n_kv, (int)hpu, (const float *)vc + g * hd, (size_t)KV, n_kv, hd);
        }
    }
}
/* ---- the operations table --------------------------------------------------------------- */

static void cpu_free(fq_backend *b) {
    cpu_be *c = CPU(b);
    if (!c) return;
    fq_pool_free(c->pool);
    free(c->kv_mem);
    free(c->scores);
    free(c->qbuf);
    free(c->q82);
    free(c);
}

static float *cpu_alloc(fq_backend *b, size_t n, fq_err *e) {
    (void)b;
    return fq_calloc(n ? n : 1, sizeof(float), e);
}

static void cpu_release(fq_backend *b, float *buf) {
    (void)b;
    free(buf);
}

static void cpu_copy(fq_backend *b, float *dst, const float *src, size_t n) {
    (void)b;
    if (dst != src) memcpy(dst, src, n * sizeof(float));
}

/* host memory already: a hook works on the buffer itself */
static float *cpu_host_view(fq_backend *b, float *buf, size_t n) {
    (void)b, (void)n;
    return buf;
}

static void cpu_host_commit(fq_backend *b, float *buf, float *view, size_t n) {
    (void)b, (void)buf, (void)view, (void)n;
}

static fq_pool *cpu_host_pool(fq_backend *b) { return CPU(b)->pool; }
static uint64_t cpu_kv_bytes(const fq_backend *b) { return ((const cpu_be *)b)->kv_bytes; }

static void cpu_get_rows(fq_backend *b, const fq_weight *w, const int32_t *ids, int64_t T, float *y) {
    (void)b;
    const fq_type_traits *tt = fq_type_get(w->type);
    for (int64_t t = 0; t < T; t++)
        tt->to_float((const char *)w->data + (size_t)ids[t] * w->row_bytes, y + t * w->n_in, w->n_in);
}

static void cpu_matmul(fq_backend *b, int n, const fq_weight *const *w, float *const *y, const float *x, int64_t T,
                       int glu) {
    matmul_multi(CPU(b), n, w, y, x, T, glu);
}

static void cpu_rmsnorm(fq_backend *b, int64_t T, int64_t n, int64_t sub, const float *x, const float *w, float *y,
                        float eps) {
    rows_job j = {OP_RMSNORM, T, 0, x, w, y, n, sub, eps, NULL};
    rows_run(CPU(b), &j);
}

static void cpu_rope(fq_backend *b, int64_t T, int64_t pos, const fq_rope_params *p, float *q, float *k) {
    rows_job j = {OP_ROPE, T, pos, k, NULL, q, 0, 0, 0.0f, p};
    rows_run(CPU(b), &j);
}

static void cpu_unary(fq_backend *b, int op, int64_t T, int64_t n, float *y, float f) {
    static const int ops[] = {[FQ_UN_SCALE] = OP_SCALE, [FQ_UN_SOFTCAP] = OP_SOFTCAP, [FQ_UN_SILU] = OP_SILU,
                              [FQ_UN_GELU] = OP_GELU};
    rows_job j = {ops[op], T, 0, NULL, NULL, y, n, 0, f, NULL};
    rows_run(CPU(b), &j);
}

static void cpu_binary(fq_backend *b, int op, int64_t T, int64_t n, const float *a, float *y) {
    static const int ops[] = {[FQ_BIN_ADD] = OP_ADD, [FQ_BIN_MUL] = OP_MUL, [FQ_BIN_ADD_ROW] = OP_ADD_VEC,
                              [FQ_BIN_GLU_SPLIT] = OP_GLU_SPLIT};
    rows_job j = {ops[op], T, 0, op == FQ_BIN_ADD_ROW ? NULL : a, op == FQ_BIN_ADD_ROW ? a : NULL, y, n, 0, 0.0f,
                  NULL};
    rows_run(CPU(b), &j);
}

static void cpu_copy_cols(fq_backend *b, int64_t T, const float *src, int64_t src_cols, int64_t col0, int64_t n,
                          float *dst) {
    (void)b;
    for (int64_t t = 0; t < T; t++) memcpy(dst + t * n, src + t * src_cols + col0, (size_t)n * sizeof(float));
}

static void cpu_kv_stage(fq_backend *b, int which, const float *src, float *dst, int64_t T) {
    cpu_be *c = CPU(b);
    const int64_t n = T * (int64_t)c->m->hp.n_head_kv * c->m->hp.head_dim;
    if ((which ? c->v_elem : c->k_elem) == 4) memcpy(dst, src, (size_t)n * sizeof(float));
    else
        for (int64_t i = 0; i < n; i++) dst[i] = fq_fp16_to_f32(fq_f32_to_fp16(src[i]));
}

static void cpu_kv_write(fq_backend *b, int il, int which, const float *src, int64_t T, int64_t pos) {
    cpu_be *c = CPU(b);
    const int64_t KV = (int64_t)c->m->hp.n_head_kv * c->m->hp.head_dim;
    const size_t elem = which ? c->v_elem : c->k_elem;
    char *dst = (char *)c->kv_mem + (which ? c->k_bytes : 0) + (size_t)il * c->p.n_ctx * KV * elem +
                (size_t)pos * KV * elem;
    if (elem == 4) {
        memcpy(dst, src, (size_t)(T * KV) * sizeof(float));
    } else {
        uint16_t *d16 = (uint16_t *)dst;
        for (int64_t i = 0; i < T * KV; i++) d16[i] = fq_f32_to_fp16(src[i]);
    }
}

static void cpu_attention(fq_backend *b, int il, int64_t T, int64_t pos, const fq_attn_params *p, const float *q,
                          float *out, int phase) {
    cpu_be *c = CPU(b);
    const fq_hparams *hp = &c->m->hp;
    const int64_t H = hp->n_head, gq = H / hp->n_head_kv, hd = hp->head_dim;
    const int nth = fq_pool_size(c->pool);
    /* a whole group per unit, unless that leaves too few units for the threads (decode) or
     * too many query values for the F16 path's copy (the same for every phase of a step) */
    int64_t hpu = gq;
    while (hpu > 1 && (T * (H / hpu) < 4 * nth || hpu * hd > FQ_ATTN_UNIT_MAX)) {
        int64_t d = hpu - 1;
        while (gq % d) d--;
        hpu = d;
    }
    attn_job j = {c, fq_attn_get(), q, out, il, T, pos, phase, hpu, p->kq_scale, p->softcap, p->window};
    const int64_t units = T * (H / hpu);
    const int chunks = (int)FQ_MIN(units, (int64_t)16 * nth);
    fq_pool_run_n(c->pool, attn_kernel, &j, chunks);
}

static float *cpu_attn_scores(fq_backend *b, int64_t T, int64_t pos, int64_t t) {
    (void)T;
    cpu_be *c = CPU(b);
    return c->scores + scores_offset(pos, t, c->m->hp.n_head);
}

static int64_t cpu_step_tokens(const fq_backend *b, int64_t want, int64_t pos) {
    const cpu_be *c = (const cpu_be *)b;
    const int64_t H = c->m->hp.n_head;
    int64_t T = FQ_MIN(want, (int64_t)c->p.ub);
    while (T > 1 && scores_offset(pos, T, H) > c->scores_cap) T /= 2;
    return T;
}

static const fq_backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .to_host = cpu_copy,
    .from_host = cpu_copy,
    .host_view = cpu_host_view,
    .host_commit = cpu_host_commit,
    .host_pool = cpu_host_pool,
    .kv_bytes = cpu_kv_bytes,
    .get_rows = cpu_get_rows,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .unary = cpu_unary,
    .binary = cpu_binary,
    .copy_cols = cpu_copy_cols,
    .kv_stage = cpu_kv_stage,
    .kv_write = cpu_kv_write,
    .attention = cpu_attention,
    .attn_scores = cpu_attn_scores,
    .step_tokens = cpu_step_tokens,
};

fq_backend *fq_backend_cpu_new(const fq_model *m, const fq_backend_params *p, fq_err *e) {
    const fq_hparams *hp = &m->hp;
    cpu_be *c = fq_calloc(1, sizeof *c, e);
    if (!c) return NULL;
    c->base.ops = &cpu_ops;
    c->m = m;
    c->p = *p;
    c->pool = fq_pool_new(p->n_threads, e);
    if (!c->pool) goto fail;
    if (m->arch->ffn_act == FQ_ACT_GELU_FP16) pthread_once(&gelu_once, gelu_table_init);
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    c->k_elem = p->cache_type_k == FQ_TYPE_F16 ? 2 : 4;
    c->v_elem = p->cache_type_v == FQ_TYPE_F16 ? 2 : 4;
    c->k_bytes = (uint64_t)hp->n_layer * (uint64_t)p->n_ctx * (uint64_t)KV * c->k_elem;
    c->kv_bytes = c->k_bytes + (uint64_t)hp->n_layer * (uint64_t)p->n_ctx * (uint64_t)KV * c->v_elem;
    c->kv_mem = calloc(1, c->kv_bytes);
    if (!c->kv_mem) {
        fq_errf(e, "cannot allocate the KV cache: %d tokens x %d layers needs %.1f MiB",
                p->n_ctx, hp->n_layer, c->kv_bytes / 1048576.0);
        goto fail;
    }
    const size_t ub = (size_t)p->ub;
    c->scores_cap = FQ_MAX((size_t)hp->n_head * p->n_ctx,
                           FQ_MIN(ub * hp->n_head * (size_t)p->n_ctx, (size_t)1 << 22));
    const size_t maxin = (size_t)FQ_MAX(E, FQ_MAX(Q, F));
    c->scores = fq_malloc(c->scores_cap * sizeof(float), e);
    c->qbuf = fq_malloc(MM_MAX * (ub * (maxin * 4 + 512) + 64), e);
    if (m->arch->flags & FQ_ARCH_ACT_Q8_2) c->q82 = fq_malloc(ub * maxin * sizeof(float), e);
    if (!c->scores || !c->qbuf || ((m->arch->flags & FQ_ARCH_ACT_Q8_2) && !c->q82)) {
        fq_err_prefix(e, "cannot allocate activations for %zu tokens", ub);
        goto fail;
    }
    return &c->base;
fail:
    cpu_free(&c->base);
    return NULL;
}
