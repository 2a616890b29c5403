/* model.c - load a model of any family of arch_table.h from GGUF and check it. */
#include "model.h"

#include <math.h>
#include <string.h>

#include "qtypes.h"
#include "tokenizer.h"

/* Reads a u32 hyperparameter "<arch>.<key>". */
static int hp_u32(const fq_gguf *g, const char *pre, const char *key, int *out, int required, fq_err *e) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", pre, key);
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

/* Reads an f32 hyperparameter "<arch>.<key>"; returns 1 when absent. */
static int hp_f32(const fq_gguf *g, const char *pre, const char *key, float *out, fq_err *e) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", pre, key);
    return fq_gguf_get_f32(g, full, out, e);
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

/* Decodes a 1-D vector (norm weight, bias) of n elements into dst. */
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
    m->arch = fq_arch_find(arch.ptr, arch.len);
    if (!m->arch) {
        char lab[FQ_SHOW_CAP];
        return fq_errf(e, "architecture '%s' is not supported (fqlm runs: %s)",
                       fq_show(lab, sizeof lab, arch.ptr, arch.len), fq_arch_names());
    }
    const fq_arch_desc *A = m->arch;
    const char *P = A->name;
    if (hp_u32(g, P, "block_count", &hp->n_layer, 1, e) || hp_u32(g, P, "embedding_length", &hp->n_embd, 1, e) ||
        hp_u32(g, P, "feed_forward_length", &hp->n_ff, 1, e) ||
        hp_u32(g, P, "attention.head_count", &hp->n_head, 1, e))
        return -1;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    if (hp_u32(g, P, "attention.head_count_kv", &hp->n_head_kv, 0, e) ||
        hp_u32(g, P, "context_length", &hp->n_ctx_train, 0, e))
        return -1;
    hp->rms_eps = A->rms_eps_default;
    hp->rope_base = 10000.0f;
    if (hp_f32(g, P, "attention.layer_norm_rms_epsilon", &hp->rms_eps, e) < 0 ||
        hp_f32(g, P, "rope.freq_base", &hp->rope_base, e) < 0)
        return -1;
    if (hp->n_layer < 1 || hp->n_embd < 1 || hp->n_ff < 1 || hp->n_head < 1 || hp->n_head_kv < 1)
        return fq_errf(e, "hyperparameters must be positive (block_count %d, embedding_length %d, "
                          "feed_forward_length %d, head_count %d, head_count_kv %d)",
                       hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head, hp->n_head_kv);
    /* head size: attention.key_length when present (Qwen3, Gemma, Mistral-Nemo), else
     * n_embd / n_head */
    int hd_k = 0, hd_v = 0;
    if (hp_u32(g, P, "attention.key_length", &hd_k, 0, e) || hp_u32(g, P, "attention.value_length", &hd_v, 0, e))
        return -1;
    if (!hd_k) {
        if (hp->n_embd % hp->n_head)
            return fq_errf(e, "embedding_length %d is not divisible by head_count %d and there is no "
                              "'%s.attention.key_length'",
                           hp->n_embd, hp->n_head, P);
        hd_k = hp->n_embd / hp->n_head;
    }
    if (hp->n_head % hp->n_head_kv)
        return fq_errf(e, "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    if (!hd_v) hd_v = hd_k;
    if (hd_v != hd_k)
        return fq_errf(e, "'%s.attention.value_length' %d differs from key_length %d (fqlm needs them equal)", P,
                       hd_v, hd_k);
    hp->head_dim = hd_k;
    if (hp->head_dim < 1 || hp->head_dim > 1024)
        return fq_errf(e, "head size %d is out of the range fqlm supports (1..1024)", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (hp_u32(g, P, "rope.dimension_count", &hp->n_rot, 0, e)) return -1;
    if (hp->n_rot > hp->head_dim || hp->n_rot < 0 || hp->n_rot % 2)
        return fq_errf(e, "rope.dimension_count %d must be even and at most the head size %d",
                       hp->n_rot, hp->head_dim);
    if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
        return fq_errf(e, "attention.layer_norm_rms_epsilon %g is out of range", hp->rms_eps);
    if (!(hp->rope_base > 0.0f)) return fq_errf(e, "rope.freq_base %g must be positive", hp->rope_base);
    if (hp->n_ctx_train < 1) hp->n_ctx_train = 2048;
    /* settings that change results: applied as llama.cpp applies them, or refused */
    int n_expert = 0;
    if (hp_u32(g, P, "expert_count", &n_expert, 0, e)) return -1;
    if (n_expert > 0)
        return fq_errf(e, "'%s.expert_count' = %d: mixture-of-experts models are not supported", P, n_expert);
    {
        char key[160];
        snprintf(key, sizeof key, "%s.rope.scaling.type", P);
        fq_str st;
        r = fq_gguf_get_str(g, key, &st, e);
        if (r < 0) return -1;
        if (r == 0 && !(st.len == 4 && !memcmp(st.ptr, "none", 4)) &&
            !(st.len == 6 && !memcmp(st.ptr, "linear", 6))) {
            char lab[FQ_SHOW_CAP];
            return fq_errf(e, "'%s' = '%s' is not supported (fqlm applies: none, linear)", key,
                           fq_show(lab, sizeof lab, st.ptr, st.len));
        }
        /* llama.cpp takes the factor whenever present (older files: rope.scale_linear) */
        float factor = 0.0f;
        r = hp_f32(g, P, "rope.scaling.factor", &factor, e);
        if (r < 0) return -1;
        if (r == 1 && hp_f32(g, P, "rope.scale_linear", &factor, e) < 0) return -1;
        if (!(factor >= 0.0f) || isinf(factor))
            return fq_errf(e, "'%s.rope.scaling.factor' %g must be positive", P, factor);
        hp->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    }
    hp->rope_base_swa = A->swa_rope_base > 0.0f ? A->swa_rope_base : hp->rope_base;
    hp->rope_freq_scale_swa = (A->flags & FQ_ARCH_SWA_LOCAL_UNSCALED) ? 1.0f : hp->rope_freq_scale;
    hp->n_swa = 0;
    if (A->swa_rule != FQ_SWA_NONE) {
        hp->n_swa = A->swa_default;
        char key[160];
        snprintf(key, sizeof key, "%s.attention.sliding_window", P);
        if (!fq_gguf_find(g, key) && A->swa_key_required) return fq_errf(e, "missing hyperparameter '%s'", key);
        if (hp_u32(g, P, "attention.sliding_window", &hp->n_swa, 0, e)) return -1;
        if (A->swa_key_required && hp->n_swa < 1)
            return fq_errf(e, "'%s' = %d must be positive", key, hp->n_swa);
    }
    hp->attn_softcap = A->attn_softcap_default;
    hp->final_softcap = A->final_softcap_default;
    if (A->attn_softcap_default > 0.0f) {
        if (hp_f32(g, P, "attn_logit_softcapping", &hp->attn_softcap, e) < 0 ||
            hp_f32(g, P, "final_logit_softcapping", &hp->final_softcap, e) < 0)
            return -1;
        if (!(hp->attn_softcap >= 0.0f) || !(hp->final_softcap >= 0.0f) || isinf(hp->attn_softcap) ||
            isinf(hp->final_softcap))
            return fq_errf(e, "'%s.attn_logit_softcapping' %g / 'final_logit_softcapping' %g must be "
                              "finite and not negative",
                           P, hp->attn_softcap, hp->final_softcap);
    }
    /* Gemma 2/3: llama.cpp derives the query scale from the model type; the 27B models
     * (46 / 62 layers) have query_pre_attn_scalar = n_embd / n_head */
    if (A->qscale_embd_layers && hp->n_layer == A->qscale_embd_layers)
        hp->q_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    else
        hp->q_scale = 1.0f / sqrtf((float)hp->head_dim);
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
    const fq_arch_desc *A = m->arch;
    const uint32_t present = A->required | A->optional;
    int n_req_layer = 0, first_req = -1;
    for (int r = FQ_T_FIRST_LAYER; r < FQ_T_COUNT; r++)
        if (A->required & FQ_TBIT(r)) {
            n_req_layer++;
            if (first_req < 0) first_req = r;
        }
    if ((uint64_t)hp->n_layer * (uint64_t)n_req_layer > m->gguf.n_tensors) {
        int have = 0;
        char nm[96];
        while (have < hp->n_layer) {
            snprintf(nm, sizeof nm, "blk.%d.%s", have, fq_tensor_role_name(first_req));
            if (!fq_gguf_find_tensor(&m->gguf, nm)) break;
            have++;
        }
        fq_errf(e, "block_count says %d layers but the file has %llu tensors; tensor "
                   "'blk.%d.%s' is missing",
                hp->n_layer, (unsigned long long)m->gguf.n_tensors, have, fq_tensor_role_name(first_req));
        goto fail;
    }
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff, D = hp->head_dim;
    const int64_t qn = A->qk_norm == FQ_QKNORM_HEAD ? D : Q, kn = A->qk_norm == FQ_QKNORM_HEAD ? D : KV;
    /* every decoded vector of a layer, at most: 4 norms of E, q/k norms, 3 biases, bo */
    const size_t per_layer = (size_t)(5 * E + qn + kn + Q + 2 * KV);
    m->layers = fq_calloc((size_t)hp->n_layer, sizeof *m->layers, e);
    m->norms = fq_calloc((size_t)hp->n_layer * per_layer + (size_t)E + (size_t)hp->n_rot / 2 + 1, sizeof(float), e);
    if (!m->layers || !m->norms) goto fail;
    float *nv = m->norms;
    if (bind_weight(m, &m->tok_embd, "token_embd.weight", E, hp->n_vocab, 0, e)) goto fail;
    int r = 1;
    if (A->tied_output != 1) {
        r = bind_weight(m, &m->output, "output.weight", E, hp->n_vocab, A->tied_output != 2, e);
        if (r < 0) goto fail;
    }
    if (r == 1) {
        m->output = m->tok_embd;
        m->output_tied = 1;
    }
    m->output_norm = nv;
    nv += E;
    if (bind_norm(m, m->output_norm, "output_norm.weight", E, e)) goto fail;
    if ((present & FQ_TBIT(FQ_T_ROPE_FREQS)) && fq_gguf_find_tensor(&m->gguf, "rope_freqs.weight")) {
        m->rope_freqs = nv;
        nv += hp->n_rot / 2;
        if (bind_norm(m, m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, e)) goto fail;
    } else if (fq_gguf_find_tensor(&m->gguf, "rope_freqs.weight")) {
        fq_errf(e, "tensor 'rope_freqs.weight' is not used by architecture '%s' (fqlm would ignore it)", A->name);
        goto fail;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        fq_layer *L = &m->layers[il];
        char nm[96];
        L->swa = A->swa_rule == FQ_SWA_ALL ? hp->n_swa > 0
                 : A->swa_rule == FQ_SWA_PATTERN ? (il + 1) % A->swa_pattern != 0
                                                  : 0;
        for (int role = FQ_T_FIRST_LAYER; role < FQ_T_COUNT; role++) {
            snprintf(nm, sizeof nm, "blk.%d.%s", il, fq_tensor_role_name(role));
            const int want = (present & FQ_TBIT(role)) != 0;
            if (!want) {
                /* a tensor the family does not use would be silently ignored: refuse */
                if (fq_gguf_find_tensor(&m->gguf, nm)) {
                    fq_errf(e, "tensor '%s' is not used by architecture '%s' (fqlm would ignore it)", nm,
                            A->name);
                    goto fail;
                }
                continue;
            }
            const int opt = !(A->required & FQ_TBIT(role));
            if (opt && !fq_gguf_find_tensor(&m->gguf, nm)) continue;
            fq_weight *w = NULL;
            float **vec = NULL;
            int64_t n_in = 0, n_out = 0, n = 0;
            switch (role) {
            case FQ_T_ATTN_NORM: vec = &L->attn_norm, n = E; break;
            case FQ_T_ATTN_Q: w = &L->wq, n_in = E, n_out = Q; break;
            case FQ_T_ATTN_K: w = &L->wk, n_in = E, n_out = KV; break;
            case FQ_T_ATTN_V: w = &L->wv, n_in = E, n_out = KV; break;
            case FQ_T_ATTN_QKV: w = &L->wqkv, n_in = E, n_out = Q + 2 * KV; break;
            case FQ_T_ATTN_OUTPUT: w = &L->wo, n_in = Q, n_out = E; break;
            case FQ_T_ATTN_Q_BIAS: vec = &L->bq, n = Q; break;
            case FQ_T_ATTN_K_BIAS: vec = &L->bk, n = KV; break;
            case FQ_T_ATTN_V_BIAS: vec = &L->bv, n = KV; break;
            case FQ_T_ATTN_OUTPUT_BIAS: vec = &L->bo, n = E; break;
            case FQ_T_ATTN_Q_NORM: vec = &L->q_norm, n = qn; break;
            case FQ_T_ATTN_K_NORM: vec = &L->k_norm, n = kn; break;
            case FQ_T_ATTN_POST_NORM: vec = &L->attn_post_norm, n = E; break;
            case FQ_T_FFN_NORM: vec = &L->ffn_norm, n = E; break;
            case FQ_T_FFN_GATE: w = &L->w_gate, n_in = E, n_out = F; break;
            case FQ_T_FFN_UP:
                w = &L->w_up, n_in = E, n_out = (A->flags & FQ_ARCH_FUSED_GATE_UP) ? 2 * F : F;
                break;
            case FQ_T_FFN_DOWN: w = &L->w_down, n_in = F, n_out = E; break;
            case FQ_T_FFN_POST_NORM: vec = &L->ffn_post_norm, n = E; break;
            default: break;
            }
            if (w && bind_weight(m, w, nm, n_in, n_out, 0, e)) goto fail;
            if (vec) {
                *vec = nv;
                nv += n;
                if (bind_norm(m, *vec, nm, n, e)) goto fail;
            }
        }
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
    /* every replaced matrix, walked as fq_model_weights lists them, however many layers (a
     * fixed table once leaked the copies of models over 146 layers) */
    free(m->tok_embd.owned);
    for (int il = 0; m->layers && il < m->hp.n_layer; il++) {
        fq_layer *L = &m->layers[il];
        fq_weight *ws[] = {&L->wqkv, &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < FQ_ARRAY_LEN(ws); i++) free(ws[i]->owned);
    }
    if (!m->output_tied) free(m->output.owned);
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
        fq_weight *ws[] = {&L->wqkv, &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < FQ_ARRAY_LEN(ws); i++)
            if (ws[i]->data) ADD(ws[i]);
    }
    if (!m->output_tied) ADD(&m->output);
#undef ADD
    return n;
}

uint64_t fq_model_weight_bytes(const fq_model *m) {
    uint64_t b = m->tok_embd.row_bytes;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const fq_layer *L = &m->layers[il];
        const fq_weight *ws[] = {&L->wqkv, &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < FQ_ARRAY_LEN(ws); i++)
            if (ws[i]->data) b += ws[i]->row_bytes * (uint64_t)ws[i]->n_out;
    }
    b += m->output.row_bytes * (uint64_t)m->output.n_out;
    return b;
}
