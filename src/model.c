/* model.c - load a llama-architecture model from GGUF and check it. */
#include "model.h"

#include <string.h>

#include "qtypes.h"
#include "tokenizer.h"

/* Reads a required u32 hyperparameter "llama.<key>". */
static int hp_u32(const fq_gguf *g, const char *key, int *out, int required, fq_err *e) {
    char full[128];
    snprintf(full, sizeof full, "llama.%s", key);
    uint32_t v;
    int r = fq_gguf_get_u32(g, full, &v, e);
    if (r < 0) return -1;
    if (r == 1) {
        if (required) return fq_errf(e, "missing hyperparameter '%s'", full);
        return 0;
    }
    if (v > (1u << 30)) return fq_errf(e, "hyperparameter '%s' = %u is out of range", full, v);
    *out = (int)v;
    return 0;
}

/* Binds a 2-D weight tensor and checks its shape. */
static int bind_weight(fq_model *m, fq_weight *w, const char *name, int64_t n_in, int64_t n_out,
                       int optional, fq_err *e) {
    const fq_gguf_tensor *t = fq_gguf_find_tensor(&m->gguf, name);
    if (!t) {
        if (optional) return 1;
        return fq_errf(e, "tensor '%s' is missing", name);
    }
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != 1 || t->ne[3] != 1)
        return fq_errf(e,
                       "tensor '%s' has shape [%lld, %lld, %lld, %lld], the hyperparameters "
                       "give [%lld, %lld]",
                       name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3], (long long)n_in, (long long)n_out);
    const fq_type_traits *tt = fq_type_get(t->type);
    if (!tt || !tt->supported || !tt->vec_dot || !tt->to_float)
        return fq_errf(e, "tensor '%s' has type %s, which fqlm cannot compute with "
                          "(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, "
                          "Q4_K, Q5_K, Q6_K)",
                       name, fq_type_name(t->type));
    w->name = t->name;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->data = t->data;
    w->row_bytes = fq_row_size(t->type, n_in);
    w->owned = NULL;
    return 0;
}

/* Decodes a 1-D norm vector of n elements into dst. */
static int bind_norm(fq_model *m, float *dst, const char *name, int64_t n, fq_err *e) {
    const fq_gguf_tensor *t = fq_gguf_find_tensor(&m->gguf, name);
    if (!t) return fq_errf(e, "tensor '%s' is missing", name);
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return fq_errf(e, "tensor '%s' has %lld x %lld elements, expected a vector of %lld", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)n);
    const fq_type_traits *tt = fq_type_get(t->type);
    if (!tt || !tt->to_float || n % tt->blck)
        return fq_errf(e, "tensor '%s' has type %s, which fqlm cannot decode", name,
                       fq_type_name(t->type));
    tt->to_float(t->data, dst, n);
    return 0;
}

static int load_hparams(fq_model *m, fq_err *e) {
    fq_gguf *g = &m->gguf;
    fq_hparams *hp = &m->hp;
    fq_str arch;
    int r = fq_gguf_get_str(g, "general.architecture", &arch, e);
    if (r < 0) return -1;
    if (r == 1) return fq_errf(e, "missing 'general.architecture'");
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5) != 0)
        return fq_errf(e, "architecture '%.*s' is not supported (fqlm runs: llama)",
                       (int)FQ_MIN(arch.len, 64), arch.ptr);
    if (hp_u32(g, "block_count", &hp->n_layer, 1, e) || hp_u32(g, "embedding_length", &hp->n_embd, 1, e) ||
        hp_u32(g, "feed_forward_length", &hp->n_ff, 1, e) ||
        hp_u32(g, "attention.head_count", &hp->n_head, 1, e))
        return -1;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    if (hp_u32(g, "attention.head_count_kv", &hp->n_head_kv, 0, e) ||
        hp_u32(g, "context_length", &hp->n_ctx_train, 0, e))
        return -1;
    hp->rms_eps = 1e-5f;
    hp->rope_base = 10000.0f;
    if (fq_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps, e) < 0 ||
        fq_gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_base, e) < 0)
        return -1;
    if (hp->n_layer < 1 || hp->n_embd < 1 || hp->n_ff < 1 || hp->n_head < 1 || hp->n_head_kv < 1)
        return fq_errf(e, "hyperparameters must be positive (block_count %d, embedding_length %d, "
                          "feed_forward_length %d, head_count %d, head_count_kv %d)",
                       hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv);
    if (hp->n_embd % hp->n_head)
        return fq_errf(e, "embedding_length %d is not divisible by head_count %d", hp->n_embd,
                       hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return fq_errf(e, "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim > 1024)
        return fq_errf(e, "head size %d is larger than fqlm supports (1024)", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (hp_u32(g, "rope.dimension_count", &hp->n_rot, 0, e)) return -1;
    if (hp->n_rot > hp->head_dim || hp->n_rot < 0 || hp->n_rot % 2)
        return fq_errf(e, "rope.dimension_count %d must be even and at most the head size %d",
                       hp->n_rot, hp->head_dim);
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return fq_errf(e, "attention.layer_norm_rms_epsilon %g is out of range", hp->rms_eps);
    if (!(hp->rope_base > 0.0f)) return fq_errf(e, "rope.freq_base %g must be positive", hp->rope_base);
    if (hp->n_ctx_train < 1) hp->n_ctx_train = 2048;
    uint32_t ft = UINT32_MAX;
    if (fq_gguf_get_u32(g, "general.file_type", &ft, NULL) < 0) ft = UINT32_MAX;
    hp->file_type = ft;
    const fq_gguf_tensor *emb = fq_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return fq_errf(e, "tensor 'token_embd.weight' is missing");
    if (emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return fq_errf(e, "tensor 'token_embd.weight' has %lld rows (vocabulary size out of range)",
                       (long long)emb->ne[1]);
    hp->n_vocab = (int)emb->ne[1];
    const fq_gguf_kv *toks = fq_gguf_find(g, "tokenizer.ggml.tokens");
    if (toks && toks->type == FQ_GGUF_ARRAY && toks->arr_n != (uint64_t)hp->n_vocab)
        return fq_errf(e, "vocabulary has %llu tokens but 'token_embd.weight' has %d rows",
                       (unsigned long long)toks->arr_n, hp->n_vocab);
    return 0;
}

fq_model *fq_model_load(const char *path, fq_err *e) {
    int64_t t0 = fq_time_us();
    fq_model *m = fq_calloc(1, sizeof *m, e);
    if (!m) return NULL;
    if (fq_gguf_open(&m->gguf, path, e)) {
        free(m);
        return NULL;
    }
    fq_hparams *hp = &m->hp;
    if (load_hparams(m, e)) goto fail;
    /* the claims are checked against the tensors before anything is sized from them */
    const fq_gguf_tensor *emb = fq_gguf_find_tensor(&m->gguf, "token_embd.weight");
    if (emb->ne[0] != hp->n_embd) {
        fq_errf(e, "tensor 'token_embd.weight' has shape [%lld, %lld, %lld, %lld], the "
                   "hyperparameters give [%d, %d]",
                (long long)emb->ne[0], (long long)emb->ne[1], (long long)emb->ne[2],
                (long long)emb->ne[3], hp->n_embd, hp->n_vocab);
        goto fail;
    }
    if ((uint64_t)hp->n_layer * 9 > m->gguf.n_tensors) {
        int have = 0;
        char nm[96];
        while (have < hp->n_layer) {
            snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", have);
            if (!fq_gguf_find_tensor(&m->gguf, nm)) break;
            have++;
        }
        fq_errf(e, "block_count says %d layers but the file has %llu tensors; tensor "
                   "'blk.%d.attn_norm.weight' is missing",
                hp->n_layer, (unsigned long long)m->gguf.n_tensors, have);
        goto fail;
    }
    m->layers = fq_calloc((size_t)hp->n_layer, sizeof *m->layers, e);
    m->norms = fq_calloc((size_t)(2 * hp->n_layer + 1), (size_t)hp->n_embd * sizeof(float), e);
    if (!m->layers || !m->norms) goto fail;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    if (bind_weight(m, &m->tok_embd, "token_embd.weight", E, hp->n_vocab, 0, e)) goto fail;
    int r = bind_weight(m, &m->output, "output.weight", E, hp->n_vocab, 1, e);
    if (r < 0) goto fail;
    if (r == 1) {
        m->output = m->tok_embd;
        m->output_tied = 1;
    }
    m->output_norm = m->norms + (size_t)2 * hp->n_layer * E;
    if (bind_norm(m, m->output_norm, "output_norm.weight", E, e)) goto fail;
    for (int il = 0; il < hp->n_layer; il++) {
        fq_layer *L = &m->layers[il];
        char nm[96];
        L->attn_norm = m->norms + (size_t)(2 * il) * E;
        L->ffn_norm = m->norms + (size_t)(2 * il + 1) * E;
#define NAME(s) (snprintf(nm, sizeof nm, "blk.%d." s, il), nm)
        if (bind_norm(m, L->attn_norm, NAME("attn_norm.weight"), E, e) ||
            bind_norm(m, L->ffn_norm, NAME("ffn_norm.weight"), E, e) ||
            bind_weight(m, &L->wq, NAME("attn_q.weight"), E, Q, 0, e) ||
            bind_weight(m, &L->wk, NAME("attn_k.weight"), E, KV, 0, e) ||
            bind_weight(m, &L->wv, NAME("attn_v.weight"), E, KV, 0, e) ||
            bind_weight(m, &L->wo, NAME("attn_output.weight"), Q, E, 0, e) ||
            bind_weight(m, &L->w_gate, NAME("ffn_gate.weight"), E, F, 0, e) ||
            bind_weight(m, &L->w_up, NAME("ffn_up.weight"), E, F, 0, e) ||
            bind_weight(m, &L->w_down, NAME("ffn_down.weight"), F, E, 0, e))
            goto fail;
#undef NAME
    }
    if (fq_tokenizer_load(&m->tok, &m->gguf, e)) goto fail;
    if (fq_tokenizer_n_vocab(m->tok) != hp->n_vocab) {
        fq_errf(e, "vocabulary has %d tokens but 'token_embd.weight' has %d rows",
                (int)fq_tokenizer_n_vocab(m->tok), hp->n_vocab);
        goto fail;
    }
    m->load_us = fq_time_us() - t0;
    return m;
fail:
    /* the GGUF layer names the file itself; add it only where it is missing */
    if (e && strncmp(e->msg, path, strlen(path)) != 0) fq_err_prefix(e, "%s", path);
    fq_model_free(m);
    return NULL;
}

void fq_model_free(fq_model *m) {
    if (!m) return;
    fq_weight *ws[1024];
    int n = fq_model_weights(m, ws, 1024);
    for (int i = 0; i < n && i < 1024; i++) free(ws[i]->owned);
    fq_tokenizer_free(m->tok);
    free(m->layers);
    free(m->norms);
    fq_gguf_close(&m->gguf);
    free(m);
}

int fq_model_weights(fq_model *m, fq_weight **out, int cap) {
    int n = 0;
#define ADD(w) do { if (n < cap) out[n] = (w); n++; } while (0)
    if (!m->layers) return 0;
    ADD(&m->tok_embd);
    for (int il = 0; il < m->hp.n_layer; il++) {
        fq_layer *L = &m->layers[il];
        ADD(&L->wq); ADD(&L->wk); ADD(&L->wv); ADD(&L->wo);
        ADD(&L->w_gate); ADD(&L->w_up); ADD(&L->w_down);
    }
    if (!m->output_tied) ADD(&m->output);
#undef ADD
    return n;
}

uint64_t fq_model_weight_bytes(const fq_model *m) {
    uint64_t b = m->tok_embd.row_bytes;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const fq_layer *L = &m->layers[il];
        const fq_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < FQ_ARRAY_LEN(ws); i++) b += ws[i]->row_bytes * (uint64_t)ws[i]->n_out;
    }
    b += m->output.row_bytes * (uint64_t)m->output.n_out;
    return b;
}
