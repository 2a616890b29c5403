/* synth.c - random-weight llama models (`fqlm synth`). */
#include "synth.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "gguf.h"
#include "qtypes.h"
#include "quantize.h"
#include "threadpool.h"

void fq_synth_defaults(fq_synth_params *p) {
    memset(p, 0, sizeof *p);
    p->name = "synthetic-llama";
    p->n_ctx = 2048;
    p->rope_base = 10000.0f;
    p->rms_eps = 1e-5f;
    p->type = "f32";
    p->seed = 7;
    p->n_threads = 1;
}

typedef struct {
    const char *name;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_ctx, n_vocab;
} shape;

static const shape shapes[] = {
    {"tinyllama-1.1b", 22, 2048, 5632, 32, 4, 2048, 32000},
    {"stories260k", 5, 64, 172, 8, 4, 2048, 512},
    {"stories15m", 6, 288, 768, 6, 6, 256, 32000},
    {"stories42m", 8, 512, 1376, 8, 8, 1024, 32000},
    {"stories110m", 12, 768, 2048, 12, 12, 1024, 32000},
    {"llama2-7b", 32, 4096, 11008, 32, 32, 4096, 32000},
    {"synth-l2-e256", 2, 256, 768, 4, 2, 512, 512},
};

const char *fq_synth_shape_names(void) {
    return "tinyllama-1.1b, stories260k, stories15m, stories42m, stories110m, llama2-7b, "
           "synth-l2-e256";
}

int fq_synth_shape(const char *name, fq_synth_params *p, fq_err *e) {
    for (size_t i = 0; i < FQ_ARRAY_LEN(shapes); i++) {
        const shape *s = &shapes[i];
        if (strcasecmp(name, s->name)) continue;
        p->n_layer = s->n_layer;
        p->n_embd = s->n_embd;
        p->n_ff = s->n_ff;
        p->n_head = s->n_head;
        p->n_head_kv = s->n_head_kv;
        p->n_ctx = s->n_ctx;
        p->n_vocab_hint = s->n_vocab;
        p->rope_base = 10000.0f;
        p->rms_eps = 1e-5f;
        return 0;
    }
    return fq_errf(e, "unknown shape '%s' (known: %s)", name, fq_synth_shape_names());
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

typedef struct {
    char name[48];
    int64_t ne[2];
    int is_norm;
} synth_tensor;

static int check_shape(const fq_synth_params *p, fq_err *e) {
    if (p->n_layer < 1 || p->n_embd < 1 || p->n_ff < 1 || p->n_head < 1 || p->n_head_kv < 1)
        return fq_errf(e, "the shape needs positive layers (%d), embd (%d), ff (%d), heads (%d) "
                          "and kv-heads (%d)",
                       p->n_layer, p->n_embd, p->n_ff, p->n_head, p->n_head_kv);
    if (p->n_layer > 4096 || p->n_embd > (1 << 20) || p->n_ff > (1 << 22))
        return fq_errf(e, "the shape is too large (layers %d, embd %d, ff %d)", p->n_layer,
                       p->n_embd, p->n_ff);
    if (p->n_embd % p->n_head)
        return fq_errf(e, "embd %d is not divisible by heads %d", p->n_embd, p->n_head);
    if (p->n_head % p->n_head_kv)
        return fq_errf(e, "heads %d is not a multiple of kv-heads %d", p->n_head, p->n_head_kv);
    if ((p->n_embd / p->n_head) % 2)
        return fq_errf(e, "the head size %d (embd / heads) must be even for RoPE",
                       p->n_embd / p->n_head);
    if (p->n_ctx < 1) return fq_errf(e, "context length %d must be positive", p->n_ctx);
    if (!(p->rms_eps > 0.0f && p->rms_eps < 1.0f) || !(p->rope_base > 0.0f))
        return fq_errf(e, "rms eps %g or rope base %g out of range", p->rms_eps, p->rope_base);
    if (p->n_threads < 1) return fq_errf(e, "thread count %d must be at least 1", p->n_threads);
    return 0;
}

int fq_synth_write(const fq_synth_params *p, const char *path, fq_synth_stats *st, fq_err *e) {
    fq_synth_stats stats;
    memset(&stats, 0, sizeof stats);
    if (check_shape(p, e)) return -1;
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
    const int64_t V = (int64_t)toks->arr_n, E = p->n_embd, F = p->n_ff;
    const int64_t hd = E / p->n_head, Q = hd * p->n_head, KV = hd * p->n_head_kv;
    stats.n_vocab = (int)V;

    /* the tensors, in the order convert_hf_to_gguf.py writes them */
    size_t cap = 3 + 9 * (size_t)p->n_layer;
    ts = fq_calloc(cap, sizeof *ts, e);
    qt = fq_calloc(cap, sizeof *qt, e);
    types = fq_calloc(cap, sizeof *types, e);
    order = fq_calloc(cap, sizeof *order, e);
    names = fq_calloc(cap, sizeof *names, e);
    bufs = fq_calloc(cap, sizeof *bufs, e);
    if (!ts || !qt || !types || !order || !names || !bufs) goto done;
#define ADD(nm, n0, n1, norm)                                                  \
    do {                                                                       \
        snprintf(ts[n].name, sizeof ts[n].name, "%s", nm);                     \
        ts[n].ne[0] = (n0);                                                    \
        ts[n].ne[1] = (n1);                                                    \
        ts[n].is_norm = (norm);                                                \
        n++;                                                                   \
    } while (0)
    ADD("token_embd.weight", E, V, 0);
    for (int il = 0; il < p->n_layer; il++) {
        static const struct { const char *s; int kind; } parts[] = {
            {"attn_norm", 0}, {"attn_q", 1}, {"attn_k", 2}, {"attn_v", 2}, {"attn_output", 3},
            {"ffn_norm", 0}, {"ffn_gate", 4}, {"ffn_up", 4}, {"ffn_down", 5}};
        for (size_t k = 0; k < FQ_ARRAY_LEN(parts); k++) {
            char nm[48];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", il, parts[k].s);
            switch (parts[k].kind) {
            case 0: ADD(nm, E, 1, 1); break;
            case 1: ADD(nm, E, Q, 0); break;
            case 2: ADD(nm, E, KV, 0); break;
            case 3: ADD(nm, Q, E, 0); break;
            case 4: ADD(nm, E, F, 0); break;
            default: ADD(nm, F, E, 0); break;
            }
        }
    }
    ADD("output_norm.weight", E, 1, 1);
    ADD("output.weight", E, V, 0);
#undef ADD
    for (size_t i = 0; i < n; i++) {
        qt[i] = (fq_qtensor){ts[i].name, FQ_TYPE_F32, ts[i].is_norm ? 1u : 2u,
                             {ts[i].ne[0], ts[i].ne[1], 1, 1}};
        names[i] = ts[i].name;
    }
    fq_qmix_hp hp = {p->n_layer, p->n_head, p->n_head_kv};
    if (fq_qmix_plan(&mix, &hp, qt, n, types, &stats.n_fallback, e)) goto done;
    fq_qorder(names, n, order);

    if (!(w = fq_gguf_writer_new(e))) goto done;
    if (fq_gguf_writer_set_str(w, "general.architecture", "llama", e) ||
        fq_gguf_writer_set_str(w, "general.name", p->name ? p->name : "synthetic-llama", e) ||
        fq_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx, e) ||
        fq_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)E, e) ||
        fq_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer, e) ||
        fq_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)F, e) ||
        fq_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head, e) ||
        fq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv, e) ||
        fq_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd, e) ||
        fq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->rms_eps, e) ||
        fq_gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_base, e) ||
        fq_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)V, e))
        goto done;
    for (uint64_t i = 0; i < voc.n_kv; i++)
        if (!strncmp(voc.kv[i].key, "tokenizer.", 10) && fq_gguf_writer_copy_kv(w, &voc.kv[i], e))
            goto done;
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
        synth_src src = {fq_fnv1a(t->name, strlen(t->name)) ^ seed_mix, t->is_norm ? 1.0f : 0.0f,
                         t->is_norm ? 0.1f : (float)(1.0 / sqrt((double)t->ne[0]))};
        if (fq_encode_rows(pool, types[i], t->ne[1], t->ne[0], synth_row, &src, bufs[i], e)) {
            fq_err_prefix(e, "tensor '%s'", t->name);
            goto done;
        }
        if (fq_gguf_writer_add_tensor(w, t->name, types[i], t->is_norm ? 1 : 2, t->ne, bufs[i], e))
            goto done;
        if (p->log)
            fprintf(p->log, "[%4zu/%4zu] %-28s [%6lld, %6lld] %-5s %9.3f MiB %8.1f ms\n", k + 1, n,
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
