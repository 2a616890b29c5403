/* quantize.c - llama-quantize's type mixes (llama_tensor_get_type) and model conversion. */
#include "quantize.h"

#include <ctype.h>
#include <regex.h>
#include <string.h>

#include "cpu.h"
#include "gguf.h"
#include "qtypes.h"
#include "requant.h"

/* ---- mixes -------------------------------------------------------------------------- */

/* llama.cpp's LLAMA_FTYPE numbers (include/llama.h): the value of general.file_type. */
enum {
    FT_ALL_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8,
    FT_Q5_1 = 9, FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13,
    FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18,
    FT_BF16 = 32
};

static const fq_qmix mixes[] = {
    {"f32", FT_ALL_F32, FQ_TYPE_F32, 0},   {"f16", FT_F16, FQ_TYPE_F16, 0},
    {"bf16", FT_BF16, FQ_TYPE_BF16, 0},    {"q4_0", FT_Q4_0, FQ_TYPE_Q4_0, 0},
    {"q4_1", FT_Q4_1, FQ_TYPE_Q4_1, 0},    {"q5_0", FT_Q5_0, FQ_TYPE_Q5_0, 0},
    {"q5_1", FT_Q5_1, FQ_TYPE_Q5_1, 0},    {"q8_0", FT_Q8_0, FQ_TYPE_Q8_0, 0},
    {"q2_k", FT_Q2_K, FQ_TYPE_Q2_K, 0},    {"q3_k_s", FT_Q3_K_S, FQ_TYPE_Q3_K, 0},
    {"q3_k_m", FT_Q3_K_M, FQ_TYPE_Q3_K, 0}, {"q3_k_l", FT_Q3_K_L, FQ_TYPE_Q3_K, 0},
    {"q4_k_s", FT_Q4_K_S, FQ_TYPE_Q4_K, 0}, {"q4_k_m", FT_Q4_K_M, FQ_TYPE_Q4_K, 0},
    {"q5_k_s", FT_Q5_K_S, FQ_TYPE_Q5_K, 0}, {"q5_k_m", FT_Q5_K_M, FQ_TYPE_Q5_K, 0},
    {"q6_k", FT_Q6_K, FQ_TYPE_Q6_K, 0},
    /* single K types: llama.cpp has no such file type; every weight gets the type */
    {"q3_k", FT_Q3_K_S, FQ_TYPE_Q3_K, 1},   {"q4_k", FT_Q4_K_S, FQ_TYPE_Q4_K, 1},
    {"q5_k", FT_Q5_K_S, FQ_TYPE_Q5_K, 1},
};

const char *fq_qmix_names(void) {
    return "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_s, q3_k_m, q3_k_l, "
           "q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k (llama-quantize's mixes); q3_k, q4_k, q5_k "
           "(that type for every weight)";
}

const char *fq_qmix_ftype_name(uint32_t ftype) {
    static const char *const names[] = {
        [FT_ALL_F32] = "F32",   [FT_F16] = "F16",       [FT_Q4_0] = "Q4_0",
        [FT_Q4_1] = "Q4_1",     [FT_Q8_0] = "Q8_0",     [FT_Q5_0] = "Q5_0",
        [FT_Q5_1] = "Q5_1",     [FT_Q2_K] = "Q2_K",     [FT_Q3_K_S] = "Q3_K_S",
        [FT_Q3_K_M] = "Q3_K_M", [FT_Q3_K_L] = "Q3_K_L", [FT_Q4_K_S] = "Q4_K_S",
        [FT_Q4_K_M] = "Q4_K_M", [FT_Q5_K_S] = "Q5_K_S", [FT_Q5_K_M] = "Q5_K_M",
        [FT_Q6_K] = "Q6_K",     [FT_BF16] = "BF16",
    };
    return ftype < FQ_ARRAY_LEN(names) ? names[ftype] : NULL;
}

int fq_qmix_find(const char *name, fq_qmix *out, fq_err *e) {
    char low[16];
    size_t n = name ? strlen(name) : 0;
    if (n > 0 && n < sizeof low) {
        for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)name[i]);
        for (size_t i = 0; i < FQ_ARRAY_LEN(mixes); i++)
            if (!strcmp(low, mixes[i].name)) {
                *out = mixes[i];
                return 0;
            }
    }
    return fq_errf(e, "unknown type '%s' (known: %s)", name ? name : "", fq_qmix_names());
}

/* ---- the planner: llama.cpp's llama_tensor_get_type (c392e509), no imatrix ---------- */

enum cat { C_TOKEN_EMBD, C_ATTN_Q, C_ATTN_V, C_ATTN_K, C_ATTN_QKV, C_ATTN_KV_B, C_ATTN_OUTPUT,
           C_FFN_UP, C_FFN_GATE, C_FFN_DOWN, C_OUTPUT, C_OTHER };

/* tensor_get_category: the order of the tests matters ("attn_kv_b" before "attn_k") */
static enum cat category(const char *n) {
    if (!strcmp(n, "output.weight")) return C_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight"))
        return C_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return C_ATTN_QKV;
    if (strstr(n, "attn_kv_b.weight")) return C_ATTN_KV_B;
    if (strstr(n, "attn_v.weight")) return C_ATTN_V;
    if (strstr(n, "attn_k.weight")) return C_ATTN_K;
    if (strstr(n, "attn_q.weight")) return C_ATTN_Q;
    if (strstr(n, "attn_output.weight")) return C_ATTN_OUTPUT;
    if (strstr(n, "ffn_up")) return C_FFN_UP;
    if (strstr(n, "ffn_gate")) return C_FFN_GATE;
    if (strstr(n, "ffn_down")) return C_FFN_DOWN;
    return C_OTHER;
}

static int is_attn_v(enum cat c) { return c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B; }

/* ggml_n_dims: the highest dimension with more than one element. */
static int n_dims_eff(const fq_qtensor *t) {
    int d = 1;
    for (int i = 1; i < 4 && i < (int)t->n_dims; i++)
        if (t->ne[i] > 1) d = i + 1;
    return d;
}

/* tensor_allows_quantization, the parts that can apply to llama-family files */
static int allows_quantization(const fq_qtensor *t) {
    if (n_dims_eff(t) < 2) return 0;
    size_t n = strlen(t->name);
    if (n < 6 || strcmp(t->name + n - 6, "weight")) return 0;
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "time_mix_", "attn_rel_b.weight",
        "position_embd", "token_types.weight",
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(keep); i++)
        if (strstr(t->name, keep[i])) return 0;
    return 1;
}

static int blck_of(uint32_t type) { return (int)fq_type_get(type)->blck; }

int fq_qmix_quantizable(const fq_qtensor *t) { return allows_quantization(t); }

/* llama_model_loader's guess of the file type from the most common tensor type */
static uint32_t ftype_of_type(uint32_t t) {
    switch (t) {
    case FQ_TYPE_F32: return FT_ALL_F32;
    case FQ_TYPE_F16: return FT_F16;
    case FQ_TYPE_BF16: return FT_BF16;
    case FQ_TYPE_Q4_0: return FT_Q4_0;
    case FQ_TYPE_Q4_1: return FT_Q4_1;
    case FQ_TYPE_Q5_0: return FT_Q5_0;
    case FQ_TYPE_Q5_1: return FT_Q5_1;
    case FQ_TYPE_Q8_0: return FT_Q8_0;
    case FQ_TYPE_Q2_K: return FT_Q2_K;
    case FQ_TYPE_Q3_K: return FT_Q3_K_M;
    case FQ_TYPE_Q4_K: return FT_Q4_K_M;
    case FQ_TYPE_Q5_K: return FT_Q5_K_M;
    case FQ_TYPE_Q6_K: return FT_Q6_K;
    default: return UINT32_MAX;
    }
}

uint32_t fq_qmix_ftype_of_types(const uint32_t *types, size_t n) {
    int count[FQ_TYPE_COUNT] = {0};
    for (size_t i = 0; i < n; i++)
        if (types[i] < FQ_TYPE_COUNT) count[types[i]]++;
    int best = -1, best_q = -1;
    for (size_t i = 0; i < n; i++) { /* ties: the first in the given order */
        uint32_t t = types[i];
        if (t >= FQ_TYPE_COUNT) continue;
        if (best < 0 || count[t] > count[best]) best = (int)t;
        if (blck_of(t) > 1 && (best_q < 0 || count[t] > count[best_q])) best_q = (int)t;
    }
    if (best_q >= 0) return ftype_of_type((uint32_t)best_q);
    return best >= 0 ? ftype_of_type((uint32_t)best) : UINT32_MAX;
}

static int use_more_bits(int i_layer, int n_layer) {
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

typedef struct {
    int n_attn_wv, i_attn_wv, i_ffn_down, n_layer, n_gqa, is_70b, tied;
} plan_state;

/* llama_tensor_get_type_impl, restricted to the file types of fq_qmix_find */
static uint32_t mix_rules(plan_state *s, uint32_t ft, uint32_t t, const fq_qtensor *x, enum cat c) {
    if (c == C_OUTPUT || (s->tied && c == C_TOKEN_EMBD)) {
        if (x->ne[0] % blck_of(t)) t = FQ_TYPE_Q8_0;
        else if (t != FQ_TYPE_Q8_0) t = FQ_TYPE_Q6_K;
    } else if (c == C_TOKEN_EMBD) {
        /* only the IQ and ternary types change it */
    } else if (c == C_ATTN_V) {
        if (ft == FT_Q2_K) t = s->n_gqa >= 4 ? FQ_TYPE_Q4_K : FQ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = s->i_attn_wv < 2 ? FQ_TYPE_Q5_K : FQ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = FQ_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(s->i_attn_wv, s->n_attn_wv))
            t = FQ_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && s->i_attn_wv < 4) t = FQ_TYPE_Q5_K;
        if (s->is_70b && (t == FQ_TYPE_Q3_K || t == FQ_TYPE_Q4_K)) t = FQ_TYPE_Q5_K;
        s->i_attn_wv++;
    } else if (c == C_FFN_DOWN) {
        int il = s->i_ffn_down, nl = s->n_layer;
        if (ft == FT_Q2_K) t = FQ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = il < nl / 16 ? FQ_TYPE_Q5_K : FQ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = FQ_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (use_more_bits(il, nl)) t = FQ_TYPE_Q6_K;
        } else if (ft == FT_Q5_K_M && use_more_bits(il, nl)) t = FQ_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && il < nl / 8) t = FQ_TYPE_Q5_K;
        s->i_ffn_down++;
    } else if (c == C_ATTN_OUTPUT) {
        if (ft == FT_Q2_K) t = FQ_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = FQ_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = FQ_TYPE_Q5_K;
    } else if (c == C_ATTN_QKV) {
        /* a fused QKV matrix (phi3) has its own rule in c392e509: it counts as an attn_v
         * for n_attention_wv but never takes the attn_v branch (Q4_K_M gives Q5_K, as in
         * llama-quantize's phi3 files) */
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L) t = FQ_TYPE_Q4_K;
        else if (ft == FT_Q4_K_M) t = FQ_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M) t = FQ_TYPE_Q6_K;
    }
    return t;
}

/* llama.cpp's tensor_type_fallback (src/llama-quant.cpp): the type for a tensor whose rows
 * (ncols elements) are not whole blocks of t. t itself when they are; FQ_TYPE_COUNT when
 * llama-quantize has no fallback for t and stops ("no tensor type fallback is defined for
 * type ..."): every type of block 32 (Q4_0 ... Q8_0) and Q8_K. Where the fallback's blocks
 * do not fit either, F16, as llama.cpp does.
 * Q2_K and Q3_K: llama.cpp's current code gives Q4_0, as here; the build the golden data
 * comes from (c392e509, February 2025) gave IQ4_NL, which fqlm cannot encode (see
 * fq_qmix_fallback_note). */
static uint32_t fallback(uint32_t t, int64_t ncols) {
    if (ncols % blck_of(t) == 0) return t;
    switch (t) {
    case FQ_TYPE_Q2_K: case FQ_TYPE_Q3_K: t = FQ_TYPE_Q4_0; break;
    case FQ_TYPE_Q4_K: t = FQ_TYPE_Q5_0; break;
    case FQ_TYPE_Q5_K: t = FQ_TYPE_Q5_1; break;
    case FQ_TYPE_Q6_K: t = FQ_TYPE_Q8_0; break;
    default: return FQ_TYPE_COUNT;
    }
    return ncols % blck_of(t) ? FQ_TYPE_F16 : t;
}

uint32_t fq_qmix_fallback_type(uint32_t t, int64_t ncols) { return fallback(t, ncols); }

const char *fq_qmix_fallback_note(uint32_t wanted, uint32_t got) {
    if (wanted == got) return "";
    if ((wanted == FQ_TYPE_Q2_K || wanted == FQ_TYPE_Q3_K) && got == FQ_TYPE_Q4_0)
        return "as llama-quantize now does; its build c392e509 wrote IQ4_NL, which fqlm lacks";
    if (got == FQ_TYPE_F16) return "no 32-element block fits either: llama-quantize's last resort";
    return "llama-quantize's fallback";
}

typedef struct {
    int layer;
    const char *name;
    size_t idx;
} order_key;

static int layer_of(const char *name) {
    int l = -1;
    if (strncmp(name, "blk.", 4) == 0 && sscanf(name + 4, "%d.", &l) != 1) l = -1;
    return l;
}

static int order_cmp(const void *a, const void *b) {
    const order_key *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

void fq_qorder(const char *const *names, size_t n, size_t *order) {
    order_key *k = n ? malloc(n * sizeof *k) : NULL;
    if (!k) { /* tiny and unlikely: keep the given order */
        for (size_t i = 0; i < n; i++) order[i] = i;
        return;
    }
    for (size_t i = 0; i < n; i++) k[i] = (order_key){layer_of(names[i]), names[i], i};
    qsort(k, n, sizeof *k, order_cmp);
    for (size_t i = 0; i < n; i++) order[i] = k[i].idx;
    free(k);
}

int fq_qmix_plan_detail(const fq_qmix *mix, const fq_qmix_hp *hp, const fq_qtensor *t, size_t n,
                        uint32_t *types, uint32_t *wanted, fq_err *e) {
    return fq_qmix_plan_over(mix, hp, t, n, NULL, types, wanted, e);
}

int fq_qmix_plan_over(const fq_qmix *mix, const fq_qmix_hp *hp, const fq_qtensor *t, size_t n,
                      const uint32_t *over, uint32_t *types, uint32_t *wanted, fq_err *e) {
    const char **names = n ? fq_malloc(n * sizeof *names, e) : NULL;
    size_t *order = n ? fq_malloc(n * sizeof *order, e) : NULL;
    if (n && (!names || !order)) {
        free(names);
        free(order);
        return -1;
    }
    plan_state s = {0};
    s.n_layer = hp->n_layer;
    s.n_gqa = hp->n_head_kv > 0 ? hp->n_head / hp->n_head_kv : 1;
    s.is_70b = hp->n_layer == 80 && hp->n_head != hp->n_head_kv; /* LLM_TYPE_70B */
    s.tied = 1;
    for (size_t i = 0; i < n; i++) {
        names[i] = t[i].name;
        enum cat c = category(t[i].name);
        if (is_attn_v(c)) s.n_attn_wv++;
        if (c == C_OUTPUT) s.tied = 0;
    }
    /* the counters (i-th attn_v, i-th ffn_down) advance in llama.cpp's tensor order */
    fq_qorder(names, n, order);
    const fq_type_traits *base = mix ? fq_type_get(mix->base_type) : NULL;
    int quantized = base && base->blck > 1, rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        const fq_qtensor *x = &t[order[k]];
        uint32_t ty = x->type, want = ty, ov = over ? over[order[k]] : FQ_TYPE_COUNT;
        if (allows_quantization(x)) {
            if (ov != FQ_TYPE_COUNT) {
                /* a manual type (llama-quantize's --tensor-type): no mix rule is consulted,
                 * so the attn_v / ffn_down counters do not advance either */
                ty = want = ov;
                ty = fallback(want, x->ne[0]);
            } else if (mix) {
                ty = want = mix->base_type;
                if (quantized) {
                    if (!mix->pure) ty = want = mix_rules(&s, mix->ftype, ty, x, category(x->name));
                    ty = fallback(want, x->ne[0]);
                }
            }
        }
        if (ty == FQ_TYPE_COUNT) {
            char shown[FQ_SHOW_CAP];
            rc = fq_errf(e, "tensor '%s': rows of %lld elements are not whole %s blocks (%lld), and "
                         "llama-quantize has no fallback type for %s (it stops here too)",
                         fq_show(shown, sizeof shown, x->name, strlen(x->name)), (long long)x->ne[0],
                         fq_type_name(want), (long long)blck_of(want), fq_type_name(want));
            break;
        }
        types[order[k]] = ty;
        if (wanted) wanted[order[k]] = want;
    }
    free(names);
    free(order);
    return rc;
}

int fq_qmix_plan(const fq_qmix *mix, const fq_qmix_hp *hp, const fq_qtensor *t, size_t n,
                 uint32_t *types, int *n_fallback, fq_err *e) {
    uint32_t *wanted = n ? fq_malloc(n * sizeof *wanted, e) : NULL;
    if (n && !wanted) return -1;
    int rc = fq_qmix_plan_detail(mix, hp, t, n, types, wanted, e), nfb = 0;
    for (size_t i = 0; i < n && !rc; i++) nfb += wanted[i] != types[i];
    free(wanted);
    if (n_fallback) *n_fallback = rc ? 0 : nfb;
    return rc;
}

/* ---- parallel row encoding ------------------------------------------------------------ */

typedef struct {
    void (*encode)(const float *src, void *dst, int64_t n);
    int64_t nrows, n;
    fq_row_fn src;
    void *ud;
    uint8_t *dst;
    size_t row_bytes;
    float *scratch; /* n floats per thread */
} enc_job;

static void enc_worker(void *arg, int ith, int nth) {
    enc_job *j = arg;
    int64_t r0, r1;
    fq_split(j->nrows, ith, nth, &r0, &r1);
    float *buf = j->scratch + (size_t)ith * (size_t)j->n;
    for (int64_t r = r0; r < r1; r++) {
        j->src(j->ud, r, buf, j->n);
        j->encode(buf, j->dst + (size_t)r * j->row_bytes, j->n);
    }
}

int fq_encode_rows(fq_pool *pool, uint32_t type, int64_t nrows, int64_t n_per_row,
                   fq_row_fn src, void *ud, void *dst, fq_err *e) {
    const fq_type_traits *tt = fq_type_get(type);
    if (!tt || !tt->name || !tt->from_float)
        return fq_errf(e, "type %s has no encoder", fq_type_name(type));
    size_t rb = fq_row_size(type, n_per_row);
    if (n_per_row <= 0 || !rb)
        return fq_errf(e, "rows of %lld elements are not a whole number of %s blocks (%lld)",
                       (long long)n_per_row, tt->name, (long long)tt->blck);
    int nth = pool ? fq_pool_size(pool) : 1;
    enc_job j = {tt->from_float, nrows, n_per_row, src, ud, dst, rb, NULL};
    if (fq_cpu_isa_requested() != FQ_ISA_GENERIC) { /* FQLM_ISA=generic: the reference */
        if (type == FQ_TYPE_Q4_K) j.encode = fq__encode_q4_K_fast;
        if (type == FQ_TYPE_Q5_K) j.encode = fq__encode_q5_K_fast;
        if (type == FQ_TYPE_Q6_K) j.encode = fq__encode_q6_K_fast;
    }
    j.scratch = fq_malloc((size_t)nth * (size_t)n_per_row * sizeof(float), e);
    if (!j.scratch) return -1;
    if (pool) fq_pool_run(pool, enc_worker, &j);
    else enc_worker(&j, 0, 1);
    free(j.scratch);
    return 0;
}

/* ---- model conversion ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *data;
    size_t row_bytes;
    void (*to_float)(const void *, float *, int64_t);
} decode_src;

static void decode_row(void *ud, int64_t row, float *dst, int64_t n) {
    const decode_src *s = ud;
    s->to_float(s->data + (size_t)row * s->row_bytes, dst, n);
}

/* A u32 "ARCH.key" (any integer type), or def when absent or not a u32. */
static int arch_u32(const fq_gguf *g, const char *arch, const char *key, int def) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    if (fq_gguf_get_u32(g, full, &v, NULL) != 0 || v > (1u << 30)) return def;
    return (int)v;
}

/* The model facts llama-quantize's rules read, from the file's metadata. */
static int read_hp(const fq_gguf *g, const char *in_path, fq_qmix_hp *hp, fq_err *e) {
    char arch[64] = "llama", shown[FQ_SHOW_CAP];
    fq_str a;
    if (fq_gguf_get_str(g, "general.architecture", &a, NULL) == 0 && a.len < sizeof arch) {
        /* the name prefixes the keys read below: with a NUL it would read another's */
        if (memchr(a.ptr, 0, a.len))
            return fq_errf(e, "%s: general.architecture '%s' contains a NUL byte", in_path,
                           fq_show(shown, sizeof shown, a.ptr, a.len));
        memcpy(arch, a.ptr, a.len);
        arch[a.len] = 0;
    }
    *hp = (fq_qmix_hp){0, 0, 0};
    for (size_t i = 0; i < (size_t)g->n_tensors; i++) hp->n_layer = FQ_MAX(hp->n_layer, layer_of(g->tensors[i].name) + 1);
    hp->n_layer = arch_u32(g, arch, "block_count", hp->n_layer);
    hp->n_head = arch_u32(g, arch, "attention.head_count", 1);
    hp->n_head_kv = arch_u32(g, arch, "attention.head_count_kv", hp->n_head);
    return 0;
}

/* The manual types of p (a plan's exact names, or --tensor-type patterns) as over[i] per
 * tensor of g (FQ_TYPE_COUNT: none). */
static int manual_types(const fq_gguf *g, const char *in_path, const fq_quantize_params *p, const fq_qtensor *qt,
                        uint32_t *over, fq_err *e) {
    size_t n = (size_t)g->n_tensors;
    char shown[FQ_SHOW_CAP], alt[320];
    for (size_t i = 0; i < n; i++) over[i] = FQ_TYPE_COUNT;
    if (!p->tt_regex) {
        int *seen = fq_calloc(n ? n : 1, sizeof *seen, e);
        if (!seen) return -1;
        int rc = 0;
        for (int k = 0; k < p->n_tt && !rc; k++) {
            const char *nm = p->tt_names[k];
            size_t i = 0;
            while (i < n && strcmp(g->tensors[i].name, nm)) i++;
            uint32_t ty = p->tt_types[k];
            if (i == n)
                rc = fq_errf(e, "tensor '%s' (plan entry %d) is not in %s", fq_show(shown, sizeof shown, nm, strlen(nm)),
                             k + 1, in_path);
            else if (!allows_quantization(&qt[i]))
                rc = fq_errf(e, "tensor '%s' (plan entry %d) is not a weight matrix llama-quantize can change "
                             "(1-D, a norm, or a name not ending in 'weight'): it keeps its type", qt[i].name, k + 1);
            else if (seen[i])
                rc = fq_errf(e, "tensor '%s' is given twice (plan entries %d and %d)", qt[i].name, seen[i], k + 1);
            else if (!fq_wtype_fits(ty, qt[i].ne[0]))
                rc = fq_errf(e, "tensor '%s' (plan entry %d): rows of %lld elements are not whole %s blocks (%lld)%s",
                             qt[i].name, k + 1, (long long)qt[i].ne[0], fq_wtype_lname(ty), (long long)blck_of(ty),
                             fq_wtype_alternatives(ty, qt[i].ne[0], alt, sizeof alt));
            else {
                seen[i] = k + 1;
                over[i] = ty;
            }
        }
        free(seen);
        return rc;
    }
    /* llama-quantize's --tensor-type: the pattern (lower-cased) searched in the name; the
     * first pattern that matches wins */
    regex_t *re = fq_calloc(p->n_tt > 0 ? (size_t)p->n_tt : 1, sizeof *re, e);
    if (!re) return -1;
    int nre = 0, rc = 0;
    for (; nre < p->n_tt; nre++) {
        char low[512];
        size_t l = strlen(p->tt_names[nre]);
        if (l >= sizeof low) {
            rc = fq_errf(e, "--tensor-type pattern %d is longer than %zu bytes", nre + 1, sizeof low - 1);
            break;
        }
        for (size_t c = 0; c <= l; c++) low[c] = (char)tolower((unsigned char)p->tt_names[nre][c]);
        int r = regcomp(&re[nre], low, REG_EXTENDED | REG_NOSUB);
        if (r) {
            char why[128];
            regerror(r, &re[nre], why, sizeof why);
            rc = fq_errf(e, "--tensor-type pattern '%s': %s", fq_show(shown, sizeof shown, low, l), why);
            break;
        }
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (!allows_quantization(&qt[i])) continue;
        for (int k = 0; k < nre; k++)
            if (regexec(&re[k], qt[i].name, 0, NULL, 0) == 0) {
                over[i] = p->tt_types[k];
                break;
            }
    }
    for (int k = 0; k < nre; k++) regfree(&re[k]);
    free(re);
    return rc;
}

/* Every tensor's output type (and the type the rules wanted before a fallback) and the
 * general.file_type to write. */
static int choose_types(const fq_gguf *g, const char *in_path, const fq_quantize_params *p, fq_qtensor *qt,
                        uint32_t *types, uint32_t *wanted, uint32_t *ftype, fq_err *e) {
    size_t n = (size_t)g->n_tensors;
    fq_qmix mix, *mixp = NULL;
    if (p->type) {
        if (fq_qmix_find(p->type, &mix, e)) return -1;
        if (p->pure) mix.pure = 1;
        mixp = &mix;
    } else if (!p->n_tt || p->tt_regex) {
        return fq_errf(e, "no type given (a type is needed unless a plan gives the tensors' types)");
    }
    if (p->n_tt && p->tt_regex && fq_type_get(mix.base_type)->blck == 1)
        return fq_errf(e, "--tensor-type takes effect only with a block TYPE (q4_0 ... q6_k): llama-quantize "
                       "ignores it for %s", mix.name);
    fq_qmix_hp hp;
    if (read_hp(g, in_path, &hp, e)) return -1;
    for (size_t i = 0; i < n; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        qt[i] = (fq_qtensor){t->name, t->type, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}};
    }
    uint32_t *over = fq_malloc((n ? n : 1) * sizeof *over, e);
    if (!over) return -1;
    int rc = 0;
    if (p->n_tt && manual_types(g, in_path, p, qt, over, e)) rc = -1;
    if (!rc && fq_qmix_plan_over(mixp, &hp, qt, n, p->n_tt ? over : NULL, types, wanted, e)) {
        fq_err_prefix(e, "%s", in_path);
        rc = -1;
    }
    free(over);
    if (rc) return -1;
    if (mixp) {
        *ftype = mix.ftype; /* as llama-quantize: the TYPE argument's file type */
    } else {
        uint32_t *wt = fq_malloc((n ? n : 1) * sizeof *wt, e);
        if (!wt) return -1;
        size_t nw = 0;
        for (size_t i = 0; i < n; i++)
            if (allows_quantization(&qt[i])) wt[nw++] = types[i];
        *ftype = fq_qmix_ftype_of_types(wt, nw);
        free(wt);
        if (*ftype == UINT32_MAX) return fq_errf(e, "%s: no weight matrix to give a file type from", in_path);
    }
    return 0;
}

int fq_quantize_file(const char *in_path, const char *out_path, const fq_quantize_params *p,
                     fq_quantize_stats *st, fq_err *e) {
    fq_quantize_stats stats;
    memset(&stats, 0, sizeof stats);
    fq_gguf g;
    if (fq_gguf_open(&g, in_path, e)) return -1;
    int rc = -1;
    size_t n = (size_t)g.n_tensors;
    fq_qtensor *qt = NULL;
    uint32_t *types = NULL, *wanted = NULL, ftype = 0;
    size_t *order = NULL;
    const char **names = NULL;
    void **bufs = NULL;
    fq_pool *pool = NULL;
    fq_gguf_writer *w = NULL;
    char shown[FQ_SHOW_CAP];

    qt = fq_calloc(n ? n : 1, sizeof *qt, e);
    types = fq_calloc(n ? n : 1, sizeof *types, e);
    wanted = fq_calloc(n ? n : 1, sizeof *wanted, e);
    order = fq_calloc(n ? n : 1, sizeof *order, e);
    names = fq_calloc(n ? n : 1, sizeof *names, e);
    bufs = fq_calloc(n ? n : 1, sizeof *bufs, e);
    if (!qt || !types || !wanted || !order || !names || !bufs) goto done;
    for (size_t i = 0; i < n; i++) names[i] = g.tensors[i].name;
    if (choose_types(&g, in_path, p, qt, types, wanted, &ftype, e)) goto done;
    for (size_t i = 0; i < n; i++) {
        stats.n_fallback += wanted[i] != types[i];
        stats.n_fallback_q4_0 += wanted[i] != types[i] && types[i] == FQ_TYPE_Q4_0;
        stats.n_fallback_f16 += wanted[i] != types[i] && types[i] == FQ_TYPE_F16;
    }
    fq_qorder(names, n, order);

    if (!(w = fq_gguf_writer_new(e))) goto done;
    /* as llama-quantize: every key copied, then quantization_version and file_type set
     * (gguf_set_val removes a key and appends it) */
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const char *k = g.kv[i].key;
        if (!strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version")) continue;
        if (fq_gguf_writer_copy_kv(w, &g.kv[i], e)) goto done;
    }
    if (fq_gguf_writer_set_u32(w, "general.quantization_version", 2, e) ||
        fq_gguf_writer_set_u32(w, "general.file_type", ftype, e))
        goto done;

    if (!(pool = fq_pool_new(p->n_threads > 0 ? p->n_threads : 1, e))) goto done;
    int warned_requant = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        const fq_gguf_tensor *t = &g.tensors[i];
        uint32_t to = types[i];
        const void *data = t->data;
        uint64_t out_bytes = t->nbytes;
        int64_t t0 = fq_time_us();
        if (to != t->type) {
            const fq_type_traits *src = fq_type_get(t->type);
            if (!src || !src->to_float) {
                fq_errf(e, "%s: tensor '%s': cannot decode type %s", in_path,
                        fq_show(shown, sizeof shown, t->name, strlen(t->name)), fq_type_name(t->type));
                goto done;
            }
            if (src->blck > 1 && !warned_requant && p->log) {
                fprintf(p->log, "note: requantizing from %s: the errors of both roundings add up\n",
                        src->name);
                warned_requant = 1;
            }
            int64_t nrows = t->ne[1] * t->ne[2] * t->ne[3];
            size_t rb = fq_row_size(to, t->ne[0]);
            uint64_t nb;
            if (!rb || !fq_mul_ok((uint64_t)nrows, rb, &nb)) {
                fq_errf(e, "tensor '%s': rows of %lld do not fit type %s",
                        fq_show(shown, sizeof shown, t->name, strlen(t->name)), (long long)t->ne[0],
                        fq_type_name(to));
                goto done;
            }
            if (!(bufs[i] = fq_malloc(nb ? (size_t)nb : 1, e))) {
                fq_err_prefix(e, "tensor '%s'", fq_show(shown, sizeof shown, t->name, strlen(t->name)));
                goto done;
            }
            decode_src ds = {t->data, fq_row_size(t->type, t->ne[0]), src->to_float};
            if (fq_encode_rows(pool, to, nrows, t->ne[0], decode_row, &ds, bufs[i], e)) {
                fq_err_prefix(e, "tensor '%s'", fq_show(shown, sizeof shown, t->name, strlen(t->name)));
                goto done;
            }
            data = bufs[i];
            out_bytes = nb;
            stats.n_converted++;
        }
        if (fq_gguf_writer_add_tensor(w, t->name, to, t->n_dims, t->ne, data, e)) goto done;
        stats.n_tensors++;
        stats.bytes_in += t->nbytes;
        stats.bytes_out += out_bytes;
        if (to < FQ_ARRAY_LEN(stats.n_by_type)) stats.n_by_type[to]++;
        if (p->log) {
            char shape[96];
            int len = snprintf(shape, sizeof shape, "[%lld", (long long)t->ne[0]);
            for (uint32_t d = 1; d < t->n_dims && len < (int)sizeof shape - 24; d++)
                len += snprintf(shape + len, sizeof shape - (size_t)len, ", %lld", (long long)t->ne[d]);
            snprintf(shape + len, sizeof shape - (size_t)len, "]");
            fprintf(p->log, "[%4zu/%4zu] %-32s %-18s %5s -> %-5s %9.3f MiB -> %9.3f MiB  %7.1f ms\n",
                    k + 1, n, fq_show(shown, sizeof shown, t->name, strlen(t->name)), shape,
                    fq_type_name(t->type), fq_type_name(to), t->nbytes / 1048576.0,
                    out_bytes / 1048576.0, (fq_time_us() - t0) / 1e3);
            if (wanted[i] != to)
                fprintf(p->log, "            fallback: rows of %lld are not whole %s blocks (%lld): %s "
                        "instead (%s)\n", (long long)t->ne[0], fq_type_name(wanted[i]),
                        (long long)blck_of(wanted[i]), fq_type_name(to), fq_qmix_fallback_note(wanted[i], to));
        }
    }
    if (fq_gguf_writer_write(w, out_path, e)) goto done;
    rc = 0;
done:
    fq_gguf_writer_free(w);
    fq_pool_free(pool);
    if (bufs)
        for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(order);
    free(types);
    free(wanted);
    free(qt);
    fq_gguf_close(&g);
    if (st) *st = stats;
    return rc;
}

/* ---- the equivalent llama-quantize command ---------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *t, size_t l) {
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t nc = (b->n + l + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns, b->cap = nc;
    }
    memcpy(b->s + b->n, t, l);
    b->n += l;
    b->s[b->n] = 0;
}

/* " 'arg'" quoted for a POSIX shell */
static void sb_arg(sbuf *b, const char *a) {
    int plain = *a != 0;
    for (const char *c = a; *c; c++)
        if (!(isalnum((unsigned char)*c) || strchr("-_./=:+,@%", *c))) plain = 0;
    sb_put(b, " ", 1);
    if (plain) {
        sb_put(b, a, strlen(a));
        return;
    }
    sb_put(b, "'", 1);
    for (const char *c = a; *c; c++) {
        if (*c == '\'') sb_put(b, "'\\''", 4);
        else sb_put(b, c, 1);
    }
    sb_put(b, "'", 1);
}

int fq_quantize_llama_cmd(const char *in_path, const char *out_path, const fq_quantize_params *p, char **cmd,
                          fq_err *e) {
    fq_gguf g;
    *cmd = NULL;
    if (fq_gguf_open(&g, in_path, e)) return -1;
    size_t n = (size_t)g.n_tensors;
    fq_qtensor *qt = fq_calloc(n ? n : 1, sizeof *qt, e);
    uint32_t *types = fq_calloc(n ? n : 1, sizeof *types, e), *wanted = fq_calloc(n ? n : 1, sizeof *wanted, e);
    size_t *order = fq_calloc(n ? n : 1, sizeof *order, e);
    const char **names = fq_calloc(n ? n : 1, sizeof *names, e);
    uint32_t ftype = 0;
    int rc = -1;
    sbuf b = {0};
    if (!qt || !types || !wanted || !order || !names) goto done;
    if (choose_types(&g, in_path, p, qt, types, wanted, &ftype, e)) goto done;
    const char *fname = fq_qmix_ftype_name(ftype);
    int requant = 0;
    for (size_t i = 0; i < n; i++) {
        names[i] = g.tensors[i].name;
        if (allows_quantization(&qt[i]) && blck_of(qt[i].type) > 1) requant = 1;
    }
    sb_put(&b, "llama-quantize", 14);
    if (requant) sb_put(&b, " --allow-requantize", 19);
    if (p->n_tt && !p->tt_regex) {
        if (!fname || ftype == FT_ALL_F32 || ftype == FT_F16 || ftype == FT_BF16) {
            fq_errf(e, "%s: the plan leaves no weight in a block type: llama-quantize ignores --tensor-type "
                    "for a float TYPE, so no llama-quantize command writes this file", in_path);
            goto done;
        }
        fq_qorder(names, n, order);
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            if (!allows_quantization(&qt[i])) continue;
            sbuf a = {0};
            sb_put(&a, "^", 1);
            for (const char *c = qt[i].name; *c; c++) {
                if (strchr(".[]()*+?{}|^$\\", *c)) sb_put(&a, "\\", 1);
                sb_put(&a, c, 1);
            }
            sb_put(&a, "$=", 2);
            const char *tn = fq_wtype_lname(types[i]);
            sb_put(&a, tn, strlen(tn));
            sb_put(&b, " --tensor-type", 14);
            if (!a.oom) sb_arg(&b, a.s);
            b.oom |= a.oom;
            free(a.s);
        }
    } else if (p->n_tt) {
        if (p->pure) sb_put(&b, " --pure", 7);
        for (int k = 0; k < p->n_tt; k++) {
            char arg[640];
            snprintf(arg, sizeof arg, "%s=%s", p->tt_names[k], fq_wtype_lname(p->tt_types[k]));
            sb_put(&b, " --tensor-type", 14);
            sb_arg(&b, arg);
        }
    } else {
        fq_qmix mm;
        if (p->pure || (p->type && !fq_qmix_find(p->type, &mm, NULL) && mm.pure)) sb_put(&b, " --pure", 7);
    }
    sb_arg(&b, in_path);
    sb_arg(&b, out_path);
    /* single K types (q4_k ...) are fqlm's pure mixes: llama-quantize's Q4_K is Q4_K_M */
    sb_arg(&b, fname ? fname : "?");
    if (b.oom) {
        fq_errf(e, "out of memory");
        goto done;
    }
    *cmd = b.s;
    b.s = NULL;
    rc = 0;
done:
    free(b.s);
    free(qt), free(types), free(wanted), free(order), free(names);
    fq_gguf_close(&g);
    return rc;
}
