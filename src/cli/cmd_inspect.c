/* cmd_inspect.c - `fqlm inspect MODEL [--json] [--full]`: a GGUF file's header,
 * metadata, hyperparameters, the model family's graph choices (from its row in
 * arch_table.h), tensor table, per-type summary and file type, as text (in the spirit of
 * llama.cpp's model-loader log) or as JSON with the same content. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "arch_table.h"
#include "cli.h"
#include "gguf.h"
#include "qtypes.h"

#define LLU(x) ((unsigned long long)(x))
#define LLD(x) ((long long)(x))
#define MIB(x) ((double)(x) / 1048576.0)

/* How many array elements are shown unless --full: enough to recognise the content,
 * short enough that a 128k-token vocabulary stays one line. */
#define SHOW_NUMS 8
#define SHOW_STRS 3
/* Text mode cuts long strings (chat templates) to this many bytes. */
#define SHOW_STR_BYTES 160

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm inspect MODEL [--json] [--full]\n"
            "\n"
            "Shows a GGUF file's header, metadata, hyperparameters, the family's graph choices\n"
            "(head size, rope, biases, Q/K norms, soft-caps, sliding window, activation, tied\n"
            "output, ...), tensors, a per-type summary and the file type.\n"
            "\n"
            "  --json   print the same information as one JSON object\n"
            "  --full   print every element of metadata arrays (default: the first few)\n"
            "  --help   show this help\n");
}

/* ---- llama.cpp's file type names (general.file_type, enum llama_ftype) ------------- */

static const char *ftype_name(uint32_t ft) {
    static const char *const names[] = {
        [0] = "all F32",   [1] = "mostly F16", [2] = "Q4_0",     [3] = "Q4_1",
        [4] = "Q4_1, some F16",                [7] = "Q8_0",     [8] = "Q5_0",
        [9] = "Q5_1",      [10] = "Q2_K",      [11] = "Q3_K_S",  [12] = "Q3_K_M",
        [13] = "Q3_K_L",   [14] = "Q4_K_S",    [15] = "Q4_K_M",  [16] = "Q5_K_S",
        [17] = "Q5_K_M",   [18] = "Q6_K",      [19] = "IQ2_XXS", [20] = "IQ2_XS",
        [21] = "Q2_K_S",   [22] = "IQ3_XS",    [23] = "IQ3_XXS", [24] = "IQ1_S",
        [25] = "IQ4_NL",   [26] = "IQ3_S",     [27] = "IQ3_M",   [28] = "IQ2_S",
        [29] = "IQ2_M",    [30] = "IQ4_XS",    [31] = "IQ1_M",   [32] = "BF16",
        [36] = "TQ1_0",    [37] = "TQ2_0",     [38] = "MXFP4_MOE",
    };
    return ft < FQ_ARRAY_LEN(names) && names[ft] ? names[ft] : "unknown";
}

/* ---- string output: text (C-like escapes, cut) and JSON ------------------------------ */

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 when the bytes are not
 * one (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static int utf8_len(const unsigned char *p, uint64_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if ((uint64_t)k > n || p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < k; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return k;
}

/* Prints s (quoted when `quote`); control characters and invalid UTF-8 bytes escaped as
 * \xNN, so hostile metadata cannot drive the terminal. Cuts after max bytes (at a
 * character boundary) and says how long the string was. Returns the columns printed
 * (approximate for wide characters). */
static int text_str_q(FILE *f, const char *s, uint64_t n, uint64_t max, bool quote) {
    const unsigned char *p = (const unsigned char *)s;
    int w = 0;
    if (quote) w += fputc('"', f) != EOF;
    uint64_t i = 0;
    while (i < n && i < max) {
        unsigned c = p[i];
        int k = utf8_len(p + i, n - i);
        if (c == '"' || c == '\\') w += fprintf(f, "\\%c", c);
        else if (c == '\n') w += fprintf(f, "\\n");
        else if (c == '\t') w += fprintf(f, "\\t");
        else if (c == '\r') w += fprintf(f, "\\r");
        else if (c < 0x20 || c == 0x7f || k == 0) w += fprintf(f, "\\x%02x", c);
        else {
            fwrite(p + i, 1, (size_t)k, f);
            i += (uint64_t)k;
            w++;
            continue;
        }
        i++;
    }
    if (quote) w += fputc('"', f) != EOF;
    if (i < n) w += fprintf(f, "... (%llu bytes)", LLU(n));
    return w;
}

static void text_str(FILE *f, const char *s, uint64_t n, uint64_t max) {
    text_str_q(f, s, n, max, true);
}

/* Prints s as a JSON string. Invalid UTF-8 bytes become \u00XX so the output is always
 * valid JSON (those bytes then read back as Latin-1 code points). */
static void json_str(FILE *f, const char *s, uint64_t n) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (uint64_t i = 0; i < n;) {
        unsigned c = p[i];
        int k = utf8_len(p + i, n - i);
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\b') fputs("\\b", f);
        else if (c == '\f') fputs("\\f", f);
        else if (c < 0x20 || c == 0x7f || k == 0) fprintf(f, "\\u%04x", c);
        else {
            fwrite(p + i, 1, (size_t)k, f);
            i += (uint64_t)k;
            continue;
        }
        i++;
    }
    fputc('"', f);
}

static void json_cstr(FILE *f, const char *s) { json_str(f, s, strlen(s)); }

/* JSON has no NaN or infinity: those become null. %.9g / %.17g round-trip f32 / f64. */
static void json_num(FILE *f, double v, bool is_f32) {
    if (!isfinite(v)) fputs("null", f);
    else fprintf(f, is_f32 ? "%.9g" : "%.17g", v);
}

/* ---- values ------------------------------------------------------------------------ */

/* Prints a scalar (not string, not array) in its natural form. */
static void print_scalar(FILE *f, const fq_gguf_kv *kv, bool json) {
    switch (kv->type) {
    case FQ_GGUF_BOOL: fputs(kv->u64 ? "true" : "false", f); break;
    case FQ_GGUF_INT8: case FQ_GGUF_INT16: case FQ_GGUF_INT32: case FQ_GGUF_INT64:
        fprintf(f, "%lld", LLD(kv->i64));
        break;
    case FQ_GGUF_FLOAT32: case FQ_GGUF_FLOAT64:
        if (json) json_num(f, kv->f64, kv->type == FQ_GGUF_FLOAT32);
        else fprintf(f, kv->type == FQ_GGUF_FLOAT32 ? "%.7g" : "%.15g", kv->f64);
        break;
    default: fprintf(f, "%llu", LLU(kv->u64)); break;
    }
}

/* Element i of a numeric array, printed like a scalar of the element type. */
static void print_elem(FILE *f, const fq_gguf_kv *kv, uint64_t i, bool json) {
    uint32_t t = kv->arr_type;
    fq_gguf_kv tmp = {.type = t};
    if (t == FQ_GGUF_FLOAT32) {
        tmp.f64 = fq_gguf_arr_f32(kv, i);
    } else if (t == FQ_GGUF_FLOAT64) {
        memcpy(&tmp.f64, kv->arr_data + 8 * i, 8);
    } else if (t == FQ_GGUF_UINT64) {
        memcpy(&tmp.u64, kv->arr_data + 8 * i, 8);
    } else {
        tmp.i64 = fq_gguf_arr_i64(kv, i);
        tmp.u64 = (uint64_t)tmp.i64;
    }
    print_scalar(f, &tmp, json);
}

static void text_value(FILE *f, const fq_gguf_kv *kv, bool full) {
    if (kv->type == FQ_GGUF_STRING) {
        text_str(f, kv->str.ptr, kv->str.len, full ? UINT64_MAX : SHOW_STR_BYTES);
        return;
    }
    if (kv->type != FQ_GGUF_ARRAY) {
        print_scalar(f, kv, false);
        return;
    }
    uint32_t et = kv->arr_type;
    const char *what = et == FQ_GGUF_STRING ? "strings" : et == FQ_GGUF_ARRAY ? "arrays"
                                                                              : fq_gguf_vtype_name(et);
    fprintf(f, "[%llu %s", LLU(kv->arr_n), what);
    if (et == FQ_GGUF_ARRAY || kv->arr_n == 0) {
        fputc(']', f);
        return;
    }
    uint64_t show = full ? kv->arr_n : FQ_MIN(kv->arr_n, et == FQ_GGUF_STRING ? SHOW_STRS : SHOW_NUMS);
    fputs(": ", f);
    for (uint64_t i = 0; i < show; i++) {
        if (i) fputs(", ", f);
        if (et == FQ_GGUF_STRING) text_str(f, kv->strs[i].ptr, kv->strs[i].len, full ? UINT64_MAX : 48);
        else print_elem(f, kv, i, false);
    }
    fputs(show < kv->arr_n ? ", ...]" : "]", f);
}

static void json_value(FILE *f, const fq_gguf_kv *kv, bool full) {
    if (kv->type == FQ_GGUF_STRING) {
        json_str(f, kv->str.ptr, kv->str.len);
        return;
    }
    if (kv->type != FQ_GGUF_ARRAY) {
        print_scalar(f, kv, true);
        return;
    }
    uint32_t et = kv->arr_type;
    uint64_t show = et == FQ_GGUF_ARRAY ? 0 : full ? kv->arr_n : FQ_MIN(kv->arr_n, SHOW_NUMS);
    fputc('[', f);
    for (uint64_t i = 0; i < show; i++) {
        if (i) fputs(", ", f);
        if (et == FQ_GGUF_STRING) json_str(f, kv->strs[i].ptr, kv->strs[i].len);
        else print_elem(f, kv, i, true);
    }
    fputc(']', f);
}

/* ---- derived facts ----------------------------------------------------------------- */

enum { HP_LAYER, HP_EMBD, HP_FF, HP_HEAD, HP_HEAD_KV, HP_HEAD_DIM, HP_ROPE_BASE, HP_ROPE_DIMS,
       HP_RMS_EPS, HP_CTX, HP_VOCAB, HP_COUNT };

typedef struct {
    const char *name;
    const char *suffix; /* key after "ARCH." */
    bool is_float;
    int status;         /* 0 absent, 1 from the file, 2 derived, 3 llama.cpp's default */
    double v;
} hparam;

typedef struct {
    char arch[64];      /* the prefix of the hyperparameter keys */
    char arch_shown[FQ_SHOW_CAP]; /* general.architecture as messages show it (fq_show) */
    bool has_hp;
    hparam hp[HP_COUNT];
    uint64_t type_n[FQ_TYPE_COUNT], type_bytes[FQ_TYPE_COUNT];
    uint64_t bytes, params;
    int ftype_status; /* 0 absent, 1 present, -1 present with a bad type */
    uint32_t ftype;
} facts;

static void gather(const fq_gguf *g, facts *F) {
    memset(F, 0, sizeof *F);
    static const hparam init[HP_COUNT] = {
        {"n_layer", "block_count", false, 0, 0},
        {"n_embd", "embedding_length", false, 0, 0},
        {"n_ff", "feed_forward_length", false, 0, 0},
        {"n_head", "attention.head_count", false, 0, 0},
        {"n_head_kv", "attention.head_count_kv", false, 0, 0},
        {"head_dim", "attention.key_length", false, 0, 0},
        {"rope_freq_base", "rope.freq_base", true, 0, 0},
        {"rope_dims", "rope.dimension_count", false, 0, 0},
        {"rms_eps", "attention.layer_norm_rms_epsilon", true, 0, 0},
        {"n_ctx_train", "context_length", false, 0, 0},
        {"n_vocab", "vocab_size", false, 0, 0},
    };
    memcpy(F->hp, init, sizeof init);
    fq_str a;
    int ra = fq_gguf_get_str(g, "general.architecture", &a, NULL);
    /* a name with a NUL byte names no keys (keys cannot hold one): no hyperparameters,
     * rather than those of the name's first part */
    if (ra == 0 && a.len < sizeof F->arch && !memchr(a.ptr, 0, a.len))
        snprintf(F->arch, sizeof F->arch, "%.*s", (int)a.len, a.ptr);
    else
        snprintf(F->arch, sizeof F->arch, ra == 0 ? "" : "llama");
    if (ra == 0) fq_show(F->arch_shown, sizeof F->arch_shown, a.ptr, a.len);
    else snprintf(F->arch_shown, sizeof F->arch_shown, "llama");
    for (int i = 0; i < HP_COUNT; i++) {
        hparam *h = &F->hp[i];
        char key[160];
        snprintf(key, sizeof key, "%s.%s", F->arch, h->suffix);
        if (h->is_float) {
            float v;
            if (fq_gguf_get_f32(g, key, &v, NULL) == 0) h->status = 1, h->v = v;
        } else {
            uint32_t v;
            if (fq_gguf_get_u32(g, key, &v, NULL) == 0) h->status = 1, h->v = v;
        }
    }
    F->has_hp = F->hp[HP_LAYER].status == 1;
    hparam *hd = &F->hp[HP_HEAD_DIM];
    if (!hd->status && F->hp[HP_EMBD].status && F->hp[HP_HEAD].status && F->hp[HP_HEAD].v > 0)
        hd->status = 2, hd->v = floor(F->hp[HP_EMBD].v / F->hp[HP_HEAD].v);
    if (!F->hp[HP_ROPE_DIMS].status && hd->status)
        F->hp[HP_ROPE_DIMS].status = 3, F->hp[HP_ROPE_DIMS].v = hd->v;
    if (!F->hp[HP_ROPE_BASE].status) F->hp[HP_ROPE_BASE].status = 3, F->hp[HP_ROPE_BASE].v = 10000;
    const fq_gguf_kv *tok = fq_gguf_find(g, "tokenizer.ggml.tokens");
    if (!F->hp[HP_VOCAB].status && tok && tok->type == FQ_GGUF_ARRAY)
        F->hp[HP_VOCAB].status = 2, F->hp[HP_VOCAB].v = (double)tok->arr_n;

    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        /* the reader guarantees a known type id and no overflow in either product */
        F->type_n[t->type]++;
        F->type_bytes[t->type] += t->nbytes;
        F->bytes += t->nbytes;
        F->params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    uint32_t ft;
    int rc = fq_gguf_get_u32(g, "general.file_type", &ft, NULL);
    F->ftype_status = rc == 0 ? 1 : rc == 1 ? 0 : -1;
    F->ftype = rc == 0 ? ft : 0;
}

/* ---- the family: its arch_table.h row read against this file ----------------------- */

typedef struct {
    const fq_arch_desc *d;  /* NULL: not a family fqlm runs (or no hyperparameters) */
    int head_k, head_v;     /* attention.key_length / value_length, else n_embd / n_head */
    int rope_dims;
    float rope_base, rope_scale;
    char rope_scaling[32];  /* rope.scaling.type, "" when absent */
    bool rope_freqs;        /* rope_freqs.weight present */
    bool bias_q, bias_k, bias_v, bias_o;
    int window;             /* effective sliding window, 0: none */
    bool window_from_file;
    float attn_cap, final_cap;
    bool caps_from_file;
    bool tied;              /* the output projection is token_embd */
    double embd_scale;      /* 0: none */
    double q_scale_of;      /* the query scale is 1/sqrt(q_scale_of) */
} family;

static bool arch_key_f32(const fq_gguf *g, const char *arch, const char *k, float *v) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return fq_gguf_get_f32(g, key, v, NULL) == 0;
}

static bool arch_key_u32(const fq_gguf *g, const char *arch, const char *k, uint32_t *v) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return fq_gguf_get_u32(g, key, v, NULL) == 0;
}

static void gather_family(const fq_gguf *g, const facts *F, family *fm) {
    memset(fm, 0, sizeof *fm);
    fm->d = F->has_hp ? fq_arch_find(F->arch, strlen(F->arch)) : NULL;
    if (!fm->d) return;
    const fq_arch_desc *d = fm->d;
    const char *a = d->name;
    const double E = F->hp[HP_EMBD].v, H = F->hp[HP_HEAD].v;
    fm->head_k = F->hp[HP_HEAD_DIM].status ? (int)F->hp[HP_HEAD_DIM].v : 0;
    uint32_t u;
    fm->head_v = arch_key_u32(g, a, "attention.value_length", &u) ? (int)u : fm->head_k;
    fm->rope_dims = F->hp[HP_ROPE_DIMS].status ? (int)F->hp[HP_ROPE_DIMS].v : fm->head_k;
    fm->rope_base = (float)F->hp[HP_ROPE_BASE].v;
    fm->rope_scale = 1.0f;
    char key[160];
    fq_str sv;
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (fq_gguf_get_str(g, key, &sv, NULL) == 0) {
        /* shown through text_str / json_str: the value is file content */
        size_t n = FQ_MIN(sv.len, sizeof fm->rope_scaling - 1);
        memcpy(fm->rope_scaling, sv.ptr, n);
        fm->rope_scaling[n] = 0;
    }
    float f;
    if (arch_key_f32(g, a, "rope.scaling.factor", &f)) fm->rope_scale = f;
    fm->rope_freqs = fq_gguf_find_tensor(g, "rope_freqs.weight") != NULL;
    fm->bias_q = fq_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    fm->bias_k = fq_gguf_find_tensor(g, "blk.0.attn_k.bias") != NULL;
    fm->bias_v = fq_gguf_find_tensor(g, "blk.0.attn_v.bias") != NULL;
    fm->bias_o = fq_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    if (d->swa_rule != FQ_SWA_NONE) {
        fm->window_from_file = arch_key_u32(g, a, "attention.sliding_window", &u);
        fm->window = fm->window_from_file ? (int)FQ_MIN(u, (uint32_t)INT32_MAX) : d->swa_default;
    }
    fm->attn_cap = d->attn_softcap_default;
    fm->final_cap = d->final_softcap_default;
    if (d->attn_softcap_default > 0 || d->final_softcap_default > 0) {
        bool a1 = arch_key_f32(g, a, "attn_logit_softcapping", &f);
        if (a1) fm->attn_cap = f;
        bool a2 = arch_key_f32(g, a, "final_logit_softcapping", &f);
        if (a2) fm->final_cap = f;
        fm->caps_from_file = a1 || a2;
    }
    fm->tied = d->tied_output == 1 || (d->tied_output == 0 && !fq_gguf_find_tensor(g, "output.weight"));
    fm->embd_scale = (d->flags & FQ_ARCH_EMBD_SCALE) ? sqrt(E) : 0;
    fm->q_scale_of = fm->head_k;
    /* llama.cpp derives Gemma 2's query_pre_attn_scalar from the model type: 27B (46
     * layers) scales by n_embd / n_head, the others by the head size (the row's field) */
    if (d->qscale_embd_layers > 0 && F->hp[HP_LAYER].v == d->qscale_embd_layers && H > 0)
        fm->q_scale_of = floor(E / H);
}

static const char *rope_mode_name(int m) { return m == FQ_ROPE_NEOX ? "neox" : "norm"; }

static const char *act_text(int a) {
    return a == FQ_ACT_GELU_FP16 ? "GeGLU, gelu-tanh through ggml's fp16 table"
           : a == FQ_ACT_GELU_F32 ? "GeGLU, gelu-tanh in float32"
                                  : "SwiGLU (silu)";
}

static const char *act_id(int a) {
    return a == FQ_ACT_GELU_FP16 ? "gelu_fp16" : a == FQ_ACT_GELU_F32 ? "gelu" : "silu";
}

static const char *qk_norm_id(int q) {
    return q == FQ_QKNORM_HEAD ? "head" : q == FQ_QKNORM_FULL ? "full" : "none";
}

static const char *qk_norm_text(int q) {
    return q == FQ_QKNORM_HEAD ? "per head (RMSNorm of each head, one weight shared by all)"
           : q == FQ_QKNORM_FULL ? "over the projection (RMSNorm of all heads of a token)"
                                 : "none";
}

static const char *qscale_id(int q) {
    return q == FQ_QSCALE_Q_AFTER_ROPE ? "q_after_rope" : q == FQ_QSCALE_Q_SCALED ? "qcur_scaled" : "softmax";
}

static const char *qscale_text(int q) {
    return q == FQ_QSCALE_Q_AFTER_ROPE ? "on Q after RoPE (kq_scale 1)"
           : q == FQ_QSCALE_Q_SCALED   ? "on Q after RoPE, node Qcur_scaled (kq_scale 1)"
                                       : "in the softmax (kq_scale)";
}

static const char *swa_id(int r) {
    return r == FQ_SWA_ALL ? "all" : r == FQ_SWA_PATTERN ? "pattern" : "none";
}

static void text_family(FILE *f, const facts *F, const family *fm) {
    if (!F->has_hp) return;
    if (!fm->d) {
        fputs("\nfamily: ", f);
        text_str(f, F->arch, strlen(F->arch), 64);
        fprintf(f, " is not one fqlm runs (it runs: %s)\n", fq_arch_names());
        return;
    }
    const fq_arch_desc *d = fm->d;
    fprintf(f, "\nfamily (%s):\n", d->name);
    fprintf(f, "  %-18s %s\n", "covers", d->covers);
    fprintf(f, "  %-18s %s\n", "graph of", d->reference);
    fprintf(f, "  %-18s %d (K), %d (V)%s\n", "head size", fm->head_k, fm->head_v,
            F->hp[HP_HEAD_DIM].status == 1 ? " from attention.key_length" : " = n_embd / n_head");
    fprintf(f, "  %-18s %s, %d dims, base %g", "rope", rope_mode_name(d->rope_mode), fm->rope_dims,
            fm->rope_base);
    if (fm->rope_scaling[0]) {
        fputs(", scaling ", f);
        text_str_q(f, fm->rope_scaling, strlen(fm->rope_scaling), 31, false);
        fprintf(f, " x%g", fm->rope_scale);
    }
    fputc('\n', f);
    fprintf(f, "  %-18s %s\n", "rope freq factors", fm->rope_freqs ? "yes (rope_freqs.weight)" : "no");
    if (fm->bias_q || fm->bias_k || fm->bias_v || fm->bias_o)
        fprintf(f, "  %-18s%s%s%s%s\n", "attention biases", fm->bias_q ? " q" : "", fm->bias_k ? " k" : "",
                fm->bias_v ? " v" : "", fm->bias_o ? " output" : "");
    else
        fprintf(f, "  %-18s none\n", "attention biases");
    fprintf(f, "  %-18s %s\n", "Q/K norm", qk_norm_text(d->qk_norm));
    fprintf(f, "  %-18s 1/sqrt(%g) %s\n", "query scale", fm->q_scale_of, qscale_text(d->qscale));
    if (fm->attn_cap > 0 || fm->final_cap > 0)
        fprintf(f, "  %-18s attention %g, final %g%s\n", "logit soft-caps", fm->attn_cap, fm->final_cap,
                fm->caps_from_file ? "" : " (defaults)");
    else
        fprintf(f, "  %-18s none\n", "logit soft-caps");
    if (d->swa_rule == FQ_SWA_NONE || fm->window <= 0)
        fprintf(f, "  %-18s none\n", "sliding window");
    else if (d->swa_rule == FQ_SWA_ALL)
        fprintf(f, "  %-18s %d on every layer%s\n", "sliding window", fm->window,
                fm->window_from_file ? "" : " (default)");
    else
        fprintf(f, "  %-18s %d%s; layer L global iff (L + 1) %% %d == 0, the others local\n",
                "sliding window", fm->window, fm->window_from_file ? "" : " (default)", d->swa_pattern);
    if (d->swa_rule == FQ_SWA_PATTERN && fm->window > 0)
        fprintf(f, "  %-18s base %g, scale %s\n", "local-layer rope",
                d->swa_rope_base > 0 ? d->swa_rope_base : fm->rope_base,
                (d->flags & FQ_ARCH_SWA_LOCAL_UNSCALED) ? "1" : "as global layers");
    if (fm->embd_scale > 0) fprintf(f, "  %-18s x sqrt(n_embd) = %g\n", "embedding scale", fm->embd_scale);
    else fprintf(f, "  %-18s none\n", "embedding scale");
    fprintf(f, "  %-18s %s\n", "activation", act_text(d->ffn_act));
    fprintf(f, "  %-18s %s\n", "norms",
            (d->flags & FQ_ARCH_NO_PRE_NORMS) ? "post-attention and post-FFN only (no pre-norms)"
            : (d->flags & FQ_ARCH_POST_NORMS) ? "pre- and post-norms (attention and FFN)"
                                              : "pre-norms");
    fprintf(f, "  %-18s %s\n", "fused matrices",
            (d->flags & FQ_ARCH_FUSED_QKV) && (d->flags & FQ_ARCH_FUSED_GATE_UP) ? "attn_qkv, gate|up in ffn_up"
            : (d->flags & FQ_ARCH_FUSED_QKV)                                      ? "attn_qkv"
            : (d->flags & FQ_ARCH_FUSED_GATE_UP)                                  ? "gate|up in ffn_up"
                                                                                  : "none");
    fprintf(f, "  %-18s %s\n", "tied output",
            !fm->tied ? "no (output.weight)"
            : d->tied_output == 1 ? "yes (the family always uses token_embd)"
                                  : "yes (no output.weight)");
}

static void json_opt_num(FILE *f, const char *key, bool present, double v, bool is_f32) {
    fprintf(f, ", \"%s\": ", key);
    if (present) json_num(f, v, is_f32);
    else fputs("null", f);
}

static void json_family(FILE *f, const family *fm) {
    fputs("  \"family\": ", f);
    if (!fm->d) {
        fputs("null,\n", f);
        return;
    }
    const fq_arch_desc *d = fm->d;
    fputs("{\"name\": ", f);
    json_cstr(f, d->name);
    fputs(", \"covers\": ", f);
    json_cstr(f, d->covers);
    fputs(", \"reference\": ", f);
    json_cstr(f, d->reference);
    fprintf(f, ", \"head_size_k\": %d, \"head_size_v\": %d, \"rope_mode\": \"%s\", \"rope_dims\": %d",
            fm->head_k, fm->head_v, rope_mode_name(d->rope_mode), fm->rope_dims);
    json_opt_num(f, "rope_base", true, fm->rope_base, true);
    fputs(", \"rope_scaling\": ", f);
    if (fm->rope_scaling[0]) json_cstr(f, fm->rope_scaling);
    else fputs("null", f);
    json_opt_num(f, "rope_scale", true, fm->rope_scale, true);
    fprintf(f, ", \"rope_freq_factors\": %s, \"biases\": {\"q\": %s, \"k\": %s, \"v\": %s, \"output\": %s}",
            fm->rope_freqs ? "true" : "false", fm->bias_q ? "true" : "false", fm->bias_k ? "true" : "false",
            fm->bias_v ? "true" : "false", fm->bias_o ? "true" : "false");
    fprintf(f, ", \"qk_norm\": \"%s\"", qk_norm_id(d->qk_norm));
    json_opt_num(f, "query_scale", fm->q_scale_of > 0, fm->q_scale_of > 0 ? 1.0 / sqrt(fm->q_scale_of) : 0, false);
    fprintf(f, ", \"query_scale_at\": \"%s\"", qscale_id(d->qscale));
    json_opt_num(f, "attn_softcap", fm->attn_cap > 0, fm->attn_cap, true);
    json_opt_num(f, "final_softcap", fm->final_cap > 0, fm->final_cap, true);
    json_opt_num(f, "sliding_window", fm->window > 0, fm->window, false);
    fprintf(f, ", \"swa_layers\": \"%s\"", swa_id(fm->window > 0 ? d->swa_rule : FQ_SWA_NONE));
    json_opt_num(f, "swa_pattern", d->swa_rule == FQ_SWA_PATTERN && fm->window > 0, d->swa_pattern, false);
    json_opt_num(f, "swa_rope_base", d->swa_rule == FQ_SWA_PATTERN && fm->window > 0,
                 d->swa_rope_base > 0 ? d->swa_rope_base : fm->rope_base, true);
    json_opt_num(f, "embedding_scale", fm->embd_scale > 0, fm->embd_scale, false);
    fprintf(f, ", \"activation\": \"%s\", \"pre_norms\": %s, \"post_norms\": %s, \"fused_qkv\": %s, "
               "\"fused_gate_up\": %s, \"tied_output\": %s},\n",
            act_id(d->ffn_act), (d->flags & FQ_ARCH_NO_PRE_NORMS) ? "false" : "true",
            (d->flags & FQ_ARCH_POST_NORMS) ? "true" : "false",
            (d->flags & FQ_ARCH_FUSED_QKV) ? "true" : "false",
            (d->flags & FQ_ARCH_FUSED_GATE_UP) ? "true" : "false", fm->tied ? "true" : "false");
}

static void shape_str(char *buf, size_t cap, const fq_gguf_tensor *t) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", d ? ", " : "", LLD(t->ne[d]));
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static void human_count(char *buf, size_t cap, uint64_t n) {
    if (n >= 1000000000ull) snprintf(buf, cap, "%.2f B", n / 1e9);
    else if (n >= 1000000) snprintf(buf, cap, "%.2f M", n / 1e6);
    else if (n >= 1000) snprintf(buf, cap, "%.2f K", n / 1e3);
    else snprintf(buf, cap, "%llu", LLU(n));
}

/* ---- text and JSON reports --------------------------------------------------------- */

static void text_report(FILE *f, const fq_gguf *g, const facts *F, const family *fm, bool full) {
    fprintf(f, "file:          %s\n", g->path);
    fprintf(f, "GGUF version:  %u\n", g->version);
    fprintf(f, "file size:     %llu bytes (%.2f MiB)\n", LLU(g->size), MIB(g->size));
    fprintf(f, "n_kv:          %llu\n", LLU(g->n_kv));
    fprintf(f, "n_tensors:     %llu\n", LLU(g->n_tensors));
    fprintf(f, "alignment:     %llu\n", LLU(g->alignment));
    fprintf(f, "data offset:   %llu\n", LLU(g->data_offset));

    int kw = 24;
    for (uint64_t i = 0; i < g->n_kv; i++) kw = FQ_MAX(kw, FQ_MIN(48, (int)strlen(g->kv[i].key)));
    fprintf(f, "\nmetadata (%llu keys):\n", LLU(g->n_kv));
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const fq_gguf_kv *kv = &g->kv[i];
        char type[32];
        if (kv->type == FQ_GGUF_ARRAY)
            snprintf(type, sizeof type, "arr[%s]", fq_gguf_vtype_name(kv->arr_type));
        else
            snprintf(type, sizeof type, "%s", fq_gguf_vtype_name(kv->type));
        fputs("  ", f);
        int w = text_str_q(f, kv->key, strlen(kv->key), 200, false); /* keys are file content */
        fprintf(f, "%*s  %-9s  ", FQ_MAX(kw - w, 0), "", type);
        text_value(f, kv, full);
        fputc('\n', f);
    }

    if (F->has_hp) {
        fprintf(f, "\nhyperparameters (%s):\n", F->arch_shown);
        for (int i = 0; i < HP_COUNT; i++) {
            const hparam *h = &F->hp[i];
            fprintf(f, "  %-15s ", h->name);
            if (!h->status) fputs("-", f);
            else if (h->is_float) fprintf(f, "%g", h->v);
            else fprintf(f, "%.0f", h->v);
            fputs(h->status == 2 ? " (derived)" : h->status == 3 ? " (default)" : "", f);
            fputc('\n', f);
        }
    }
    text_family(f, F, fm);

    int nw = 20;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        nw = FQ_MAX(nw, FQ_MIN(48, (int)strlen(g->tensors[i].name)));
    fprintf(f, "\ntensors (%llu):\n", LLU(g->n_tensors));
    if (g->n_tensors)
        fprintf(f, "  %5s  %-*s  %-7s  %-22s  %12s  %12s\n", "#", nw, "name", "type", "shape",
                "bytes", "offset");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        char shape[128];
        shape_str(shape, sizeof shape, t);
        fprintf(f, "  %5llu  ", LLU(i));
        int w = text_str_q(f, t->name, strlen(t->name), 200, false);
        fprintf(f, "%*s  %-7s  %-22s  %12llu  %12llu\n", FQ_MAX(nw - w, 0), "",
                fq_type_name(t->type), shape, LLU(t->nbytes), LLU(t->offset));
    }

    fputc('\n', f);
    for (uint32_t t = 0; t < FQ_TYPE_COUNT; t++)
        if (F->type_n[t])
            fprintf(f, "type %s:%*s %4llu tensors, %10.2f MiB (%llu bytes)\n", fq_type_name(t),
                    (int)(7 - FQ_MIN(strlen(fq_type_name(t)), 7)), "", LLU(F->type_n[t]),
                    MIB(F->type_bytes[t]), LLU(F->type_bytes[t]));

    if (F->ftype_status == 1) {
        fprintf(f, "file type:     %s (%u)\n", ftype_name(F->ftype), F->ftype);
    } else {
        /* llama.cpp guesses from the tensors; we only say which type dominates */
        uint32_t top = 0;
        for (uint32_t t = 1; t < FQ_TYPE_COUNT; t++)
            if (F->type_bytes[t] > F->type_bytes[top]) top = t;
        fprintf(f, "file type:     %s", F->ftype_status ? "general.file_type has a bad type"
                                                        : "no general.file_type");
        if (F->bytes) fprintf(f, " (tensors mostly %s by size)", fq_type_name(top));
        fputc('\n', f);
    }
    char pc[32];
    human_count(pc, sizeof pc, F->params);
    fprintf(f, "model size:    %.2f MiB\n", MIB(F->bytes));
    fprintf(f, "model params:  %s\n", pc);
    if (F->params) fprintf(f, "bits/weight:   %.2f\n", (double)F->bytes * 8.0 / (double)F->params);
}

static void json_report(FILE *f, const fq_gguf *g, const facts *F, const family *fm, bool full) {
    fputs("{\n  \"file\": ", f);
    json_cstr(f, g->path);
    fprintf(f, ",\n  \"version\": %u,\n  \"size\": %llu,\n  \"n_kv\": %llu,\n  \"n_tensors\": %llu,\n"
            "  \"alignment\": %llu,\n  \"data_offset\": %llu,\n",
            g->version, LLU(g->size), LLU(g->n_kv), LLU(g->n_tensors), LLU(g->alignment),
            LLU(g->data_offset));
    fputs("  \"metadata\": [", f);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const fq_gguf_kv *kv = &g->kv[i];
        fputs(i ? ",\n    {\"key\": " : "\n    {\"key\": ", f);
        json_cstr(f, kv->key);
        fprintf(f, ", \"type\": \"%s\"", fq_gguf_vtype_name(kv->type));
        if (kv->type == FQ_GGUF_ARRAY)
            fprintf(f, ", \"elem_type\": \"%s\", \"count\": %llu", fq_gguf_vtype_name(kv->arr_type),
                    LLU(kv->arr_n));
        fputs(", \"value\": ", f);
        json_value(f, kv, full);
        fputc('}', f);
    }
    fputs(g->n_kv ? "\n  ],\n" : "],\n", f);

    fputs("  \"hyperparameters\": ", f);
    if (F->has_hp) {
        fputs("{\"arch\": ", f);
        json_cstr(f, F->arch);
        for (int i = 0; i < HP_COUNT; i++) {
            const hparam *h = &F->hp[i];
            fprintf(f, ", \"%s\": ", h->name);
            if (!h->status) fputs("null", f);
            else if (h->is_float) json_num(f, h->v, true);
            else fprintf(f, "%.0f", h->v);
        }
        fputs("},\n", f);
    } else {
        fputs("null,\n", f);
    }
    json_family(f, fm);

    fputs("  \"tensors\": [", f);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const fq_gguf_tensor *t = &g->tensors[i];
        char shape[128];
        shape_str(shape, sizeof shape, t);
        fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        json_cstr(f, t->name);
        fprintf(f, ", \"type\": \"%s\", \"shape\": %s, \"bytes\": %llu, \"offset\": %llu}",
                fq_type_name(t->type), shape, LLU(t->nbytes), LLU(t->offset));
    }
    fputs(g->n_tensors ? "\n  ],\n" : "],\n", f);

    fputs("  \"types\": [", f);
    int n = 0;
    for (uint32_t t = 0; t < FQ_TYPE_COUNT; t++) {
        if (!F->type_n[t]) continue;
        fprintf(f, "%s{\"type\": \"%s\", \"tensors\": %llu, \"bytes\": %llu}", n++ ? ", " : "",
                fq_type_name(t), LLU(F->type_n[t]), LLU(F->type_bytes[t]));
    }
    fputs("],\n  \"file_type\": ", f);
    if (F->ftype_status == 1)
        fprintf(f, "{\"id\": %u, \"name\": \"%s\"}", F->ftype, ftype_name(F->ftype));
    else
        fputs("null", f);
    fprintf(f, ",\n  \"model_bytes\": %llu,\n  \"model_mib\": %.6f,\n  \"n_params\": %llu,\n"
            "  \"bits_per_weight\": ", LLU(F->bytes), MIB(F->bytes), LLU(F->params));
    if (F->params) json_num(f, (double)F->bytes * 8.0 / (double)F->params, false);
    else fputs("null", f);
    fputs("\n}\n", f);
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, full = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--full")) {
            full = true;
        } else if (a[0] == '-' && a[1]) {
            cli_error("inspect: unknown option '%s'", a);
            usage(stderr);
            return 2;
        } else if (path) {
            cli_error("inspect: more than one MODEL ('%s' and '%s')", path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        cli_error("inspect: no MODEL given");
        usage(stderr);
        return 2;
    }
    fq_gguf g;
    fq_err e = {{0}};
    if (fq_gguf_open(&g, path, &e)) {
        cli_error("%s", e.msg);
        return 1;
    }
    facts F;
    gather(&g, &F);
    family fm;
    gather_family(&g, &F, &fm);
    if (json) json_report(stdout, &g, &F, &fm, full);
    else text_report(stdout, &g, &F, &fm, full);
    fq_gguf_close(&g);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("inspect: cannot write output");
        return 1;
    }
    return 0;
}
