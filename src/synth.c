/* synth.c - random-weight models of every family (`fqlm synth`). */
#include "synth.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "arch_table.h"
#include "gguf.h"
#include "qtypes.h"
#include "quantize.h"
#include "threadpool.h"

void fq_synth_defaults(fq_synth_params *p) {
    memset(p, 0, sizeof *p);
    p->arch = "llama";
    p->name = "synthetic-llama";
    p->n_ctx = 2048;
    p->rope_base = 10000.0f;
    p->rms_eps = 1e-5f;
    p->tied = -1;
    p->type = "f32";
    p->seed = 7;
    p->n_threads = 1;
}

typedef struct {
    const char *name, *arch;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_ctx, n_vocab;
    float rope_base, rms_eps;
    int tied, sliding_window;
    float attn_softcap, final_softcap;
    fq_synth_rope3 rope3;
} shape;

/* Real models' hyperparameters, from their Hugging Face config.json as
 * convert_hf_to_gguf.py writes them (head_dim 0: n_embd / n_head). */
static const shape shapes[] = {
    {"tinyllama-1.1b", "llama", 22, 2048, 5632, 32, 4, 0, 2048, 32000, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    {"stories260k", "llama", 5, 64, 172, 8, 4, 0, 2048, 512, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    {"stories15m", "llama", 6, 288, 768, 6, 6, 0, 256, 32000, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    {"stories42m", "llama", 8, 512, 1376, 8, 8, 0, 1024, 32000, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    {"stories110m", "llama", 12, 768, 2048, 12, 12, 0, 1024, 32000, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    {"llama2-7b", "llama", 32, 4096, 11008, 32, 32, 0, 4096, 32000, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    {"synth-l2-e256", "llama", 2, 256, 768, 4, 2, 0, 512, 512, 10000.0f, 1e-5f, 0, 0, 0, 0, {0, 0, 0, 0}},
    /* Llama-3.2-1B: rope_scaling llama3, factor 32, low 1, high 4, original context 8192 */
    {"llama3.2-1b", "llama", 16, 2048, 8192, 32, 8, 0, 131072, 128256, 500000.0f, 1e-5f, 1, 0,
     0, 0, {32.0f, 1.0f, 4.0f, 8192}},
    {"qwen2.5-0.5b", "qwen2", 24, 896, 4864, 14, 2, 0, 32768, 151936, 1000000.0f, 1e-6f, 1, 0,
     0, 0, {0, 0, 0, 0}},
    {"qwen3-0.6b", "qwen3", 28, 1024, 3072, 16, 8, 128, 40960, 151936, 1000000.0f, 1e-6f, 1, 0,
     0, 0, {0, 0, 0, 0}},
    /* Gemma-2-2B: query_pre_attn_scalar 256 = head size (llama.cpp derives it) */
    {"gemma2-2b", "gemma2", 26, 2304, 9216, 8, 4, 256, 8192, 256000, 10000.0f, 1e-6f, 1, 4096,
     50.0f, 30.0f, {0, 0, 0, 0}},
    {"gemma3-1b", "gemma3", 26, 1152, 6912, 4, 1, 256, 32768, 262144, 1000000.0f, 1e-6f, 1, 512,
     0, 0, {0, 0, 0, 0}},
    /* Phi-3-mini-4k-instruct */
    {"phi3-mini", "phi3", 32, 3072, 8192, 32, 32, 0, 4096, 32064, 10000.0f, 1e-5f, 0, 2047, 0, 0,
     {0, 0, 0, 0}},
    /* OLMo-2-0425-1B */
    {"olmo2-1b", "olmo2", 16, 2048, 8192, 16, 16, 0, 4096, 100352, 500000.0f, 1e-6f, 0, 0, 0, 0,
     {0, 0, 0, 0}},
};

const char *fq_synth_shape_names(void) {
    return "tinyllama-1.1b, stories260k, stories15m, stories42m, stories110m, llama2-7b, "
           "synth-l2-e256, llama3.2-1b, qwen2.5-0.5b, qwen3-0.6b, gemma2-2b, gemma3-1b, "
           "phi3-mini, olmo2-1b";
}

int fq_synth_shape(const char *name, fq_synth_params *p, fq_err *e) {
    for (size_t i = 0; i < FQ_ARRAY_LEN(shapes); i++) {
        const shape *s = &shapes[i];
        if (strcasecmp(name, s->name)) continue;
        p->arch = s->arch;
        p->n_layer = s->n_layer;
        p->n_embd = s->n_embd;
        p->n_ff = s->n_ff;
        p->n_head = s->n_head;
        p->n_head_kv = s->n_head_kv;
        p->head_dim = s->head_dim;
        p->n_ctx = s->n_ctx;
        p->n_vocab_hint = s->n_vocab;
        p->rope_base = s->rope_base;
        p->rms_eps = s->rms_eps;
        p->tied = s->tied;
        p->sliding_window = s->sliding_window;
        p->attn_softcap = s->attn_softcap;
        p->final_softcap = s->final_softcap;
        p->rope3 = s->rope3;
        p->rope_scale = 0;
        return 0;
    }
    return fq_errf(e, "unknown shape '%s' (known: %s)", name, fq_synth_shape_names());
}

/* ---- Llama 3 rope factors -------------------------------------------------------------- */

int fq_synth_rope3_factors(const fq_synth_rope3 *r, float rope_base, int d, float *out, fq_err *e) {
    if (!(r->factor >= 1.0f) || !(r->low_freq_factor > 0.0f) ||
        !(r->high_freq_factor > r->low_freq_factor) || r->orig_ctx < 1 || d < 2 || d % 2)
        return fq_errf(e, "llama3 rope factors need factor >= 1, 0 < low_freq_factor < "
                          "high_freq_factor, a positive original context and an even head size "
                          "(got %g, %g, %g, %d, head size %d)",
                       r->factor, r->low_freq_factor, r->high_freq_factor, r->orig_ctx, d);
    /* the frequencies in float32 (the converter's float32 tensor), the rest in double and
     * rounded once: bit for bit the rope_freqs.weight of the llama3rope test model */
    const double low_wavelen = (double)r->orig_ctx / r->low_freq_factor;
    const double high_wavelen = (double)r->orig_ctx / r->high_freq_factor;
    for (int i = 0; i < d / 2; i++) {
        float freq = 1.0f / powf(rope_base, (float)(2 * i) / (float)d);
        double wavelen = 2.0 * M_PI / (double)freq;
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = r->factor;
        } else {
            double smooth = ((double)r->orig_ctx / wavelen - r->low_freq_factor) /
                            ((double)r->high_freq_factor - r->low_freq_factor);
            out[i] = (float)(1.0 / ((1.0 - smooth) / r->factor + smooth));
        }
    }
    return 0;
}

/* ---- random numbers ------------------------------------------------------------------- */

/* n normal values (Marsaglia's polar method on a splitmix64 stream), times std, plus mean. */
static void normal_row(uint64_t state, float *dst, int64_t n, float mean, float std) {
    int64_t i = 0;
    while (i < n) {
        state += 0x9e3779b97f4a7c15ull;
        uint64_t r = fq_mix64(state);
        /* two uniforms in (-1, 1) from 24 bits each */
        float u = (float)(int32_t)((r & 0xffffff) - 0x800000) * 0x1p-23f;
        float v = (float)(int32_t)(((r >> 24) & 0xffffff) - 0x800000) * 0x1p-23f;
        float s = u * u + v * v;
        if (s >= 1.0f || s == 0.0f) continue;
        float f = sqrtf(-2.0f * logf(s) / s);
        dst[i++] = mean + std * (u * f);
        if (i < n) dst[i++] = mean + std * (v * f);
    }
}

typedef struct {
    uint64_t base;   /* from the seed and the tensor name */
    float mean, std;
} synth_src;

static void synth_row(void *ud, int64_t row, float *dst, int64_t n) {
    const synth_src *s = ud;
    normal_row(fq_mix64(s->base + (uint64_t)(row + 1) * 0xd1b54a32d192ed03ull), dst, n, s->mean, s->std);
}

/* ---- the model ------------------------------------------------------------------------ */

enum { K_MATRIX, K_NORM, K_BIAS, K_OUTNORM_TIED, K_ROPE_FREQS };

typedef struct {
    char name[64];
    int64_t ne[2];
    int n_dims;
    int kind;
} synth_tensor;

/* The family's choices for this file, from its arch_table row and the parameters. */
typedef struct {
    const fq_arch_desc *d;
    uint32_t roles;     /* FQ_TBIT(role) of every tensor written */
    int head_dim, tied, window;
    float attn_cap, final_cap;
} family;

static int family_defaults_window(const char *arch) {
    if (!strcmp(arch, "phi3")) return 2047;     /* Phi-3-mini-4k */
    if (!strcmp(arch, "gemma3")) return 512;    /* Gemma-3-1B (4B and larger: 1024) */
    return 4096;                                /* gemma2, as llama.cpp's default */
}

static int resolve_family(const fq_synth_params *p, family *f, fq_err *e) {
    memset(f, 0, sizeof *f);
    const char *arch = p->arch ? p->arch : "llama";
    f->d = fq_arch_find(arch, strlen(arch));
    if (!f->d)
        return fq_errf(e, "unknown architecture '%s' (known: %s)", arch, fq_arch_names());
    const fq_arch_desc *d = f->d;
    f->roles = d->required;
    /* tying: the row says whether output.weight is optional, ignored or required */
    int tied = p->tied;
    if (d->tied_output == 1) {
        if (tied == 0)
            return fq_errf(e, "%s always ties the output to token_embd (it has no output.weight)",
                           d->name);
        tied = 1;
    } else if (d->tied_output == 2) {
        if (tied == 1) return fq_errf(e, "%s needs its own output.weight (it cannot be tied)", d->name);
        tied = 0;
    } else if (tied < 0) {
        tied = strcmp(d->name, "llama") != 0; /* qwen2, qwen3, gemma3: as their small models */
    }
    f->tied = tied;
    if (!tied) f->roles |= FQ_TBIT(FQ_T_OUTPUT);
    if (p->rope3.factor > 0) {
        if (!((d->required | d->optional) & FQ_TBIT(FQ_T_ROPE_FREQS)))
            return fq_errf(e, "%s has no rope_freqs.weight (Llama 3 rope factors are a llama "
                              "option)",
                           d->name);
        f->roles |= FQ_TBIT(FQ_T_ROPE_FREQS);
    }
    f->head_dim = p->head_dim > 0 ? p->head_dim : p->n_head > 0 ? p->n_embd / p->n_head : 0;
    if (d->swa_rule != FQ_SWA_NONE)
        f->window = p->sliding_window > 0 ? p->sliding_window : family_defaults_window(d->name);
    else if (p->sliding_window > 0)
        return fq_errf(e, "%s has no sliding window", d->name);
    if (d->attn_softcap_default > 0 || d->final_softcap_default > 0) {
        f->attn_cap = p->attn_softcap > 0 ? p->attn_softcap : d->attn_softcap_default;
        f->final_cap = p->final_softcap > 0 ? p->final_softcap : d->final_softcap_default;
    } else if (p->attn_softcap > 0 || p->final_softcap > 0) {
        return fq_errf(e, "%s has no logit soft-capping", d->name);
    }
    if (p->rope_scale > 1.0f && strcmp(d->name, "gemma3") && strcmp(d->name, "llama"))
        return fq_errf(e, "linear rope scaling is a gemma3 / llama option, not %s's", d->name);
    return 0;
}

static int check_shape(const fq_synth_params *p, const family *f, fq_err *e) {
    if (p->n_layer < 1 || p->n_embd < 1 || p->n_ff < 1 || p->n_head < 1 || p->n_head_kv < 1)
        return fq_errf(e, "the shape needs positive layers (%d), embd (%d), ff (%d), heads (%d) "
                          "and kv-heads (%d)",
                       p->n_layer, p->n_embd, p->n_ff, p->n_head, p->n_head_kv);
    if (p->n_layer > 4096 || p->n_embd > (1 << 20) || p->n_ff > (1 << 22) || p->n_head > 4096 ||
        p->head_dim > 4096)
        return fq_errf(e, "the shape is too large (layers %d, embd %d, ff %d, heads %d, head size %d)",
                       p->n_layer, p->n_embd, p->n_ff, p->n_head, p->head_dim);
    if (p->head_dim <= 0 && p->n_embd % p->n_head)
        return fq_errf(e, "embd %d is not divisible by heads %d (give the head size)", p->n_embd,
                       p->n_head);
    if (p->n_head % p->n_head_kv)
        return fq_errf(e, "heads %d is not a multiple of kv-heads %d", p->n_head, p->n_head_kv);
    if (f->head_dim < 2 || f->head_dim % 2)
        return fq_errf(e, "the head size %d must be even for RoPE", f->head_dim);
    if (p->n_ctx < 1) return fq_errf(e, "context length %d must be positive", p->n_ctx);
    if (!(p->rms_eps > 0.0f && p->rms_eps < 1.0f) || !(p->rope_base > 0.0f) || !isfinite(p->rope_base))
        return fq_errf(e, "rms eps %g or rope base %g out of range", p->rms_eps, p->rope_base);
    if (!(p->rope_scale >= 0.0f) || !isfinite(p->rope_scale) || !(p->attn_softcap >= 0.0f) ||
        !isfinite(p->attn_softcap) || !(p->final_softcap >= 0.0f) || !isfinite(p->final_softcap))
        return fq_errf(e, "rope scale %g and soft-caps %g / %g must be finite and not negative",
                       p->rope_scale, p->attn_softcap, p->final_softcap);
    if (p->sliding_window < 0) return fq_errf(e, "sliding window %d is negative", p->sliding_window);
    if (p->n_vocab < 0 || p->n_vocab > (1 << 24))
        return fq_errf(e, "vocabulary size %d out of range", p->n_vocab);
    if (p->n_threads < 1) return fq_errf(e, "thread count %d must be at least 1", p->n_threads);
    return 0;
}

/* Writes the tokenizer.* keys of voc, padded to n_vocab tokens when that is larger. */
static int write_vocab(fq_gguf_writer *w, const fq_gguf *voc, const char *vpath, int64_t n_vocab,
                       fq_err *e) {
    const fq_gguf_kv *toks = fq_gguf_find(voc, "tokenizer.ggml.tokens");
    const int64_t n0 = (int64_t)toks->arr_n;
    int rc = -1;
    const char **strs = NULL;
    char *text = NULL;
    void *num = NULL;
    for (uint64_t i = 0; i < voc->n_kv; i++) {
        const fq_gguf_kv *kv = &voc->kv[i];
        if (strncmp(kv->key, "tokenizer.", 10)) continue;
        int is_tok = !strcmp(kv->key, "tokenizer.ggml.tokens");
        int is_score = !strcmp(kv->key, "tokenizer.ggml.scores");
        int is_type = !strcmp(kv->key, "tokenizer.ggml.token_type");
        if (n_vocab <= n0 || !(is_tok || is_score || is_type)) {
            if (fq_gguf_writer_copy_kv(w, kv, e)) goto done;
            continue;
        }
        if (kv->type != FQ_GGUF_ARRAY || (int64_t)kv->arr_n != n0 ||
            (is_score && kv->arr_type != FQ_GGUF_FLOAT32) || (is_type && kv->arr_type != FQ_GGUF_INT32)) {
            fq_errf(e, "%s: '%s' is not an array of %lld %s (cannot pad it)", vpath, kv->key,
                    (long long)n0, is_score ? "f32" : is_type ? "i32" : "strings");
            goto done;
        }
        if (is_tok) {
            /* every string NUL-terminated in one buffer: the originals, then [PAD1].. */
            size_t bytes = 0;
            for (int64_t k = 0; k < n0; k++) bytes += kv->strs[k].len + 1;
            bytes += (size_t)(n_vocab - n0) * 16;
            if (!(strs = fq_malloc((size_t)n_vocab * sizeof *strs, e)) || !(text = fq_malloc(bytes, e)))
                goto done;
            size_t o = 0;
            for (int64_t k = 0; k < n_vocab; k++) {
                strs[k] = text + o;
                if (k < n0) {
                    memcpy(text + o, kv->strs[k].ptr, kv->strs[k].len);
                    o += kv->strs[k].len;
                    text[o++] = 0;
                } else {
                    o += (size_t)snprintf(text + o, 16, "[PAD%lld]", (long long)(k - n0 + 1)) + 1;
                }
            }
            if (fq_gguf_writer_set_arr_str(w, kv->key, strs, (uint64_t)n_vocab, e)) goto done;
            free(strs);
            free(text);
            strs = NULL;
            text = NULL;
        } else {
            if (!(num = fq_malloc((size_t)n_vocab * 4, e))) goto done;
            memcpy(num, kv->arr_data, (size_t)n0 * 4);
            for (int64_t k = n0; k < n_vocab; k++) {
                if (is_score) ((float *)num)[k] = -1000.0f;
                else ((int32_t *)num)[k] = 5; /* UNUSED */
            }
            if (fq_gguf_writer_set_arr(w, kv->key, kv->arr_type, (uint64_t)n_vocab, num, e)) goto done;
            free(num);
            num = NULL;
        }
    }
    rc = 0;
done:
    free(strs);
    free(text);
    free(num);
    return rc;
}

/* Per-layer roles in the order convert_hf_to_gguf.py writes them. */
static const int layer_order[] = {
    FQ_T_ATTN_NORM,   FQ_T_ATTN_Q,           FQ_T_ATTN_Q_BIAS,    FQ_T_ATTN_K,
    FQ_T_ATTN_K_BIAS, FQ_T_ATTN_V,           FQ_T_ATTN_V_BIAS,    FQ_T_ATTN_QKV,
    FQ_T_ATTN_Q_NORM, FQ_T_ATTN_K_NORM,      FQ_T_ATTN_OUTPUT,    FQ_T_ATTN_OUTPUT_BIAS,
    FQ_T_ATTN_POST_NORM, FQ_T_FFN_NORM,      FQ_T_FFN_GATE,       FQ_T_FFN_UP,
    FQ_T_FFN_DOWN,    FQ_T_FFN_POST_NORM,
};

/* Shape and kind of a role's tensor. */
static void role_shape(const family *f, const fq_synth_params *p, int64_t V, int role, synth_tensor *t) {
    const int64_t E = p->n_embd, F = p->n_ff, d = f->head_dim, Q = d * p->n_head,
                  KV = d * p->n_head_kv;
    const int full_qk = f->d->qk_norm == FQ_QKNORM_FULL;
    int64_t n0 = E, n1 = 1;
    int kind = K_NORM;
    switch (role) {
    case FQ_T_TOKEN_EMBD: n1 = V; kind = K_MATRIX; break;
    case FQ_T_OUTPUT: n1 = V; kind = K_MATRIX; break;
    case FQ_T_OUTPUT_NORM: kind = f->tied ? K_OUTNORM_TIED : K_NORM; break;
    case FQ_T_ROPE_FREQS: n0 = d / 2; kind = K_ROPE_FREQS; break;
    case FQ_T_ATTN_Q: n1 = Q; kind = K_MATRIX; break;
    case FQ_T_ATTN_K: case FQ_T_ATTN_V: n1 = KV; kind = K_MATRIX; break;
    case FQ_T_ATTN_QKV: n1 = Q + 2 * KV; kind = K_MATRIX; break;
    case FQ_T_ATTN_OUTPUT: n0 = Q; n1 = E; kind = K_MATRIX; break;
    case FQ_T_ATTN_Q_BIAS: n0 = Q; kind = K_BIAS; break;
    case FQ_T_ATTN_K_BIAS: case FQ_T_ATTN_V_BIAS: n0 = KV; kind = K_BIAS; break;
    case FQ_T_ATTN_OUTPUT_BIAS: kind = K_BIAS; break;
    case FQ_T_ATTN_Q_NORM: n0 = full_qk ? Q : d; break;
    case FQ_T_ATTN_K_NORM: n0 = full_qk ? KV : d; break;
    case FQ_T_FFN_GATE: n1 = F; kind = K_MATRIX; break;
    case FQ_T_FFN_UP: n1 = (f->d->flags & FQ_ARCH_FUSED_GATE_UP) ? 2 * F : F; kind = K_MATRIX; break;
    case FQ_T_FFN_DOWN: n0 = F; n1 = E; kind = K_MATRIX; break;
    default: break; /* the norms of [E] */
    }
    t->ne[0] = n0;
    t->ne[1] = n1;
    t->n_dims = kind == K_MATRIX ? 2 : 1;
    t->kind = kind;
}

static int add_keys(fq_gguf_writer *w, const fq_synth_params *p, const family *f, int64_t V, fq_err *e) {
    const char *a = f->d->name;
    char k[160];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    const int d = f->head_dim;
    if (fq_gguf_writer_set_str(w, "general.architecture", a, e) ||
        fq_gguf_writer_set_str(w, "general.name", p->name ? p->name : "synthetic-llama", e) ||
        fq_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)p->n_ctx, e) ||
        fq_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)p->n_embd, e) ||
        fq_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)p->n_layer, e) ||
        fq_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)p->n_ff, e) ||
        fq_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)p->n_head, e) ||
        fq_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv, e))
        return -1;
    if ((int64_t)d * p->n_head != p->n_embd &&
        (fq_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)d, e) ||
         fq_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)d, e)))
        return -1;
    if (fq_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)d, e) ||
        fq_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), p->rms_eps, e) ||
        fq_gguf_writer_set_f32(w, KEY("rope.freq_base"), p->rope_base, e))
        return -1;
    if (f->window && fq_gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)f->window, e))
        return -1;
    if ((f->attn_cap > 0 || f->final_cap > 0) &&
        (fq_gguf_writer_set_f32(w, KEY("attn_logit_softcapping"), f->attn_cap, e) ||
         fq_gguf_writer_set_f32(w, KEY("final_logit_softcapping"), f->final_cap, e)))
        return -1;
    if (p->rope_scale > 1.0f && (fq_gguf_writer_set_str(w, KEY("rope.scaling.type"), "linear", e) ||
                                 fq_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), p->rope_scale, e)))
        return -1;
    if (!strcmp(a, "llama") && fq_gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)V, e)) return -1;
#undef KEY
    return 0;
}

int fq_synth_write(const fq_synth_params *p, const char *path, fq_synth_stats *st, fq_err *e) {
    fq_synth_stats stats;
    memset(&stats, 0, sizeof stats);
    family fam;
    if (resolve_family(p, &fam, e) || check_shape(p, &fam, e)) return -1;
    fq_qmix mix;
    if (fq_qmix_find(p->type, &mix, e)) return -1;
    if (p->pure) mix.pure = 1;
    if (!p->vocab) return fq_errf(e, "no vocabulary file given");
    fq_gguf voc;
    if (fq_gguf_open(&voc, p->vocab, e)) return fq_err_prefix(e, "vocabulary");
    int rc = -1;
    int64_t t_start = fq_time_us();
    size_t n = 0;
    synth_tensor *ts = NULL;
    fq_qtensor *qt = NULL;
    uint32_t *types = NULL;
    size_t *order = NULL;
    const char **names = NULL;
    void **bufs = NULL;
    fq_pool *pool = NULL;
    fq_gguf_writer *w = NULL;

    const fq_gguf_kv *toks = fq_gguf_find(&voc, "tokenizer.ggml.tokens");
    if (!toks || toks->type != FQ_GGUF_ARRAY || toks->arr_type != FQ_GGUF_STRING || toks->arr_n < 1 ||
        toks->arr_n > (1u << 24)) {
        fq_errf(e, "%s: no usable tokenizer.ggml.tokens array (a vocabulary file needs one)", p->vocab);
        goto done;
    }
    if (p->n_vocab && (uint64_t)p->n_vocab < toks->arr_n) {
        fq_errf(e, "vocabulary size %d is smaller than the %llu tokens of %s", p->n_vocab,
                (unsigned long long)toks->arr_n, p->vocab);
        goto done;
    }
    const int64_t V = p->n_vocab ? (int64_t)p->n_vocab : (int64_t)toks->arr_n;
    stats.n_vocab = (int)V;

    /* the tensors, in the order convert_hf_to_gguf.py writes them */
    size_t cap = 4 + FQ_ARRAY_LEN(layer_order) * (size_t)p->n_layer;
    ts = fq_calloc(cap, sizeof *ts, e);
    qt = fq_calloc(cap, sizeof *qt, e);
    types = fq_calloc(cap, sizeof *types, e);
    order = fq_calloc(cap, sizeof *order, e);
    names = fq_calloc(cap, sizeof *names, e);
    bufs = fq_calloc(cap, sizeof *bufs, e);
    if (!ts || !qt || !types || !order || !names || !bufs) goto done;
    static const int head_roles[] = {FQ_T_TOKEN_EMBD, FQ_T_ROPE_FREQS};
    static const int tail_roles[] = {FQ_T_OUTPUT_NORM, FQ_T_OUTPUT};
    for (size_t k = 0; k < FQ_ARRAY_LEN(head_roles); k++) {
        if (!(fam.roles & FQ_TBIT(head_roles[k]))) continue;
        snprintf(ts[n].name, sizeof ts[n].name, "%s", fq_tensor_role_name(head_roles[k]));
        role_shape(&fam, p, V, head_roles[k], &ts[n++]);
    }
    for (int il = 0; il < p->n_layer; il++)
        for (size_t k = 0; k < FQ_ARRAY_LEN(layer_order); k++) {
            if (!(fam.roles & FQ_TBIT(layer_order[k]))) continue;
            snprintf(ts[n].name, sizeof ts[n].name, "blk.%d.%s", il, fq_tensor_role_name(layer_order[k]));
            role_shape(&fam, p, V, layer_order[k], &ts[n++]);
        }
    for (size_t k = 0; k < FQ_ARRAY_LEN(tail_roles); k++) {
        if (!(fam.roles & FQ_TBIT(tail_roles[k]))) continue;
        snprintf(ts[n].name, sizeof ts[n].name, "%s", fq_tensor_role_name(tail_roles[k]));
        role_shape(&fam, p, V, tail_roles[k], &ts[n++]);
    }
    for (size_t i = 0; i < n; i++) {
        qt[i] = (fq_qtensor){ts[i].name, FQ_TYPE_F32, (uint32_t)ts[i].n_dims,
                             {ts[i].ne[0], ts[i].ne[1], 1, 1}};
        names[i] = ts[i].name;
    }
    fq_qmix_hp hp = {p->n_layer, p->n_head, p->n_head_kv};
    if (fq_qmix_plan(&mix, &hp, qt, n, types, &stats.n_fallback, e)) goto done;
    fq_qorder(names, n, order);

    if (!(w = fq_gguf_writer_new(e))) goto done;
    if (add_keys(w, p, &fam, V, e) || write_vocab(w, &voc, p->vocab, V, e)) goto done;
    if (fq_gguf_writer_set_u32(w, "general.quantization_version", 2, e) ||
        fq_gguf_writer_set_u32(w, "general.file_type", mix.ftype, e))
        goto done;

    if (!p->dry_run && !(pool = fq_pool_new(p->n_threads, e))) goto done;
    const uint64_t seed_mix = fq_mix64(p->seed ^ 0x5eed5eed5eed5eedull);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        const synth_tensor *t = &ts[i];
        int64_t t0 = fq_time_us();
        size_t rb = fq_row_size(types[i], t->ne[0]);
        uint64_t nb;
        if (!rb || !fq_mul_ok((uint64_t)t->ne[1], rb, &nb) || nb > SIZE_MAX / 2) {
            fq_errf(e, "tensor '%s': %lld x %lld does not fit type %s", t->name, (long long)t->ne[0],
                    (long long)t->ne[1], fq_type_name(types[i]));
            goto done;
        }
        stats.n_tensors++;
        stats.n_params += (uint64_t)(t->ne[0] * t->ne[1]);
        stats.bytes += nb;
        if (types[i] < FQ_ARRAY_LEN(stats.n_by_type)) stats.n_by_type[types[i]]++;
        if (p->dry_run) continue;
        if (!(bufs[i] = fq_malloc((size_t)nb, e))) {
            fq_err_prefix(e, "tensor '%s'", t->name);
            goto done;
        }
        if (t->kind == K_ROPE_FREQS) { /* computed, F32 (1-D tensors keep their type) */
            if (fq_synth_rope3_factors(&p->rope3, p->rope_base, fam.head_dim, bufs[i], e)) goto done;
        } else {
            float mean = 0.0f, sd = 1.0f;
            if (t->kind == K_MATRIX) sd = (float)(1.0 / sqrt((double)t->ne[0]));
            else if (t->kind == K_NORM) mean = 1.0f, sd = 0.1f;
            else if (t->kind == K_BIAS) sd = 0.1f;
            synth_src src = {fq_fnv1a(t->name, strlen(t->name)) ^ seed_mix, mean, sd};
            if (fq_encode_rows(pool, types[i], t->ne[1], t->ne[0], synth_row, &src, bufs[i], e)) {
                fq_err_prefix(e, "tensor '%s'", t->name);
                goto done;
            }
        }
        if (fq_gguf_writer_add_tensor(w, t->name, types[i], (uint32_t)t->n_dims, t->ne, bufs[i], e))
            goto done;
        if (p->log)
            fprintf(p->log, "[%4zu/%4zu] %-32s [%6lld, %6lld] %-5s %9.3f MiB %8.1f ms\n", k + 1, n,
                    t->name, (long long)t->ne[0], (long long)t->ne[1], fq_type_name(types[i]),
                    nb / 1048576.0, (fq_time_us() - t0) / 1e3);
    }
    stats.gen_us = fq_time_us() - t_start;
    int64_t t_w = fq_time_us();
    if (!p->dry_run && fq_gguf_writer_write(w, path, e)) goto done;
    stats.write_us = fq_time_us() - t_w;
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
    free(qt);
    free(ts);
    fq_gguf_close(&voc);
    if (st) *st = stats;
    return rc;
}
