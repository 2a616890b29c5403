/* requant.c - weight types per tensor (see requant.h). */
#include "requant.h"

#include <ctype.h>
#include <string.h>

#include "jsonr.h"
#include "qtypes.h"
#include "quantize.h"
#include "threadpool.h"

/* most bits first; every one has an encoder, a decoder and a dot product */
static const uint32_t wtypes[] = {
    FQ_TYPE_F32,  FQ_TYPE_F16,  FQ_TYPE_BF16, FQ_TYPE_Q8_0, FQ_TYPE_Q6_K, FQ_TYPE_Q5_1, FQ_TYPE_Q5_0,
    FQ_TYPE_Q5_K, FQ_TYPE_Q4_1, FQ_TYPE_Q4_0, FQ_TYPE_Q4_K, FQ_TYPE_Q3_K, FQ_TYPE_Q2_K,
};

uint32_t fq_wtype_at(int i) {
    return i >= 0 && i < (int)FQ_ARRAY_LEN(wtypes) ? wtypes[i] : FQ_TYPE_COUNT;
}

const char *fq_wtype_lname(uint32_t type) {
    static const char *const names[FQ_TYPE_COUNT] = {
        [FQ_TYPE_F32] = "f32",   [FQ_TYPE_F16] = "f16",   [FQ_TYPE_BF16] = "bf16",
        [FQ_TYPE_Q8_0] = "q8_0", [FQ_TYPE_Q6_K] = "q6_k", [FQ_TYPE_Q5_1] = "q5_1",
        [FQ_TYPE_Q5_0] = "q5_0", [FQ_TYPE_Q5_K] = "q5_k", [FQ_TYPE_Q4_1] = "q4_1",
        [FQ_TYPE_Q4_0] = "q4_0", [FQ_TYPE_Q4_K] = "q4_k", [FQ_TYPE_Q3_K] = "q3_k",
        [FQ_TYPE_Q2_K] = "q2_k",
    };
    return type < FQ_TYPE_COUNT && names[type] ? names[type] : fq_type_name(type);
}

int fq_wtype_find(const char *name, uint32_t *type, fq_err *e) {
    for (size_t i = 0; name && i < FQ_ARRAY_LEN(wtypes); i++) {
        const char *n = fq_wtype_lname(wtypes[i]);
        size_t k = 0;
        while (n[k] && name[k] && tolower((unsigned char)name[k]) == n[k]) k++;
        if (!n[k] && !name[k]) {
            *type = wtypes[i];
            return 0;
        }
    }
    char list[256] = "", shown[FQ_SHOW_CAP];
    for (size_t i = 0; i < FQ_ARRAY_LEN(wtypes); i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", fq_wtype_lname(wtypes[i]));
    return fq_errf(e, "unknown weight type '%s' (known: %s)",
                   fq_show(shown, sizeof shown, name ? name : "", name ? strlen(name) : 0), list);
}

double fq_wtype_bpw(uint32_t type) {
    const fq_type_traits *t = fq_type_get(type);
    if (!t || !t->name || t->blck <= 0) return -1;
    return 8.0 * (double)t->type_size / (double)t->blck;
}

int fq_wtype_fits(uint32_t type, int64_t row_len) {
    const fq_type_traits *t = fq_type_get(type);
    return t && t->name && t->blck > 0 && row_len > 0 && row_len % t->blck == 0;
}

const char *fq_wtype_alternatives(uint32_t type, int64_t row_len, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    uint32_t fb = fq_qmix_fallback_type(type, row_len);
    if (fb != FQ_TYPE_COUNT && fb != type)
        n += (size_t)snprintf(buf, cap, "; llama-quantize would write %s instead", fq_wtype_lname(fb));
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "; types that fit rows of %lld:", (long long)row_len);
    int any = 0;
    for (size_t i = 0; i < FQ_ARRAY_LEN(wtypes) && n < cap; i++)
        if (fq_wtype_fits(wtypes[i], row_len)) {
            n += (size_t)snprintf(buf + n, cap - n, " %s", fq_wtype_lname(wtypes[i]));
            any = 1;
        }
    if (!any && n < cap) snprintf(buf + n, cap - n, " none");
    return buf;
}

typedef struct {
    const uint8_t *data;
    size_t row_bytes;
    void (*to_float)(const void *, float *, int64_t);
} src_rows;

static void src_row(void *ud, int64_t row, float *dst, int64_t n) {
    const src_rows *s = ud;
    s->to_float(s->data + (size_t)row * s->row_bytes, dst, n);
}

int fq_model_requantize(fq_model *m, const char *const *names, const uint32_t *types, int n,
                        int n_threads, fq_err *e) {
    int nw = fq_model_weights(m, NULL, 0), rc = -1;
    char shown[FQ_SHOW_CAP], alt[320];
    if (n < 0) return fq_errf(e, "negative tensor count %d", n);
    fq_weight **ws = fq_malloc((size_t)(nw > 0 ? nw : 1) * sizeof *ws, e);
    int *idx = fq_malloc((size_t)(n > 0 ? n : 1) * sizeof *idx, e);
    void **bufs = fq_calloc((size_t)(n > 0 ? n : 1), sizeof *bufs, e);
    fq_pool *pool = NULL;
    if (!ws || !idx || !bufs) goto out;
    fq_model_weights(m, ws, nw);
    /* every check before anything changes */
    for (int i = 0; i < n; i++) {
        const char *nm = names[i] ? names[i] : "";
        idx[i] = -1;
        for (int k = 0; k < nw; k++)
            if (!strcmp(ws[k]->name, nm)) idx[i] = k;
        if (idx[i] < 0) {
            fq_errf(e, "tensor '%s' is not a weight matrix of this model (%d weight matrices: "
                    "token_embd.weight, blk.N.attn_q.weight, ...; norms and biases keep their type)",
                    fq_show(shown, sizeof shown, nm, strlen(nm)), nw);
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (idx[j] == idx[i]) {
                fq_errf(e, "tensor '%s' is given twice (entries %d and %d)",
                        fq_show(shown, sizeof shown, nm, strlen(nm)), j + 1, i + 1);
                goto out;
            }
        const fq_weight *w = ws[idx[i]];
        if (fq_wtype_bpw(types[i]) < 0 || !fq_type_get(types[i])->from_float) {
            fq_errf(e, "tensor '%s': type %s cannot be written", w->name, fq_type_name(types[i]));
            goto out;
        }
        if (!fq_wtype_fits(types[i], w->n_in)) {
            fq_errf(e, "tensor '%s': rows of %lld elements are not whole %s blocks (%lld)%s",
                    w->name, (long long)w->n_in, fq_wtype_lname(types[i]),
                    (long long)fq_type_get(types[i])->blck,
                    fq_wtype_alternatives(types[i], w->n_in, alt, sizeof alt));
            goto out;
        }
        if (w->owned) {
            fq_errf(e, "tensor '%s' was already changed in memory (a weight rule?): requantize "
                    "from a model as loaded", w->name);
            goto out;
        }
    }
    if (!(pool = fq_pool_new(n_threads > 0 ? n_threads : 1, e))) goto out;
    for (int i = 0; i < n; i++) {
        const fq_weight *w = ws[idx[i]];
        if (types[i] == w->type) continue; /* as fq_quantize_file: the bytes stay */
        size_t rb = fq_row_size(types[i], w->n_in);
        uint64_t nb;
        if (!fq_mul_ok((uint64_t)w->n_out, rb, &nb) || nb > SIZE_MAX) {
            fq_errf(e, "tensor '%s': %lld rows of %zu bytes do not fit in memory", w->name,
                    (long long)w->n_out, rb);
            goto out;
        }
        if (!(bufs[i] = fq_malloc(nb ? (size_t)nb : 1, e))) goto out;
        const fq_type_traits *st = fq_type_get(w->type);
        src_rows s = {w->data, w->row_bytes, st->to_float};
        if (fq_encode_rows(pool, types[i], w->n_out, w->n_in, src_row, &s, bufs[i], e)) {
            fq_err_prefix(e, "tensor '%s'", w->name);
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!bufs[i]) continue;
        fq_weight *w = ws[idx[i]];
        w->owned = bufs[i];
        w->data = bufs[i];
        w->type = types[i];
        w->row_bytes = fq_row_size(types[i], w->n_in);
        bufs[i] = NULL;
    }
    if (m->output_tied) m->output = m->tok_embd;
    rc = 0;
out:
    if (bufs)
        for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(idx);
    free(ws);
    fq_pool_free(pool);
    return rc;
}

void fq_plan_free(char **names, uint32_t *types, int n) {
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(types);
}

int fq_plan_read_weights(const char *path, char ***names_out, uint32_t **types_out, int *n_out, fq_err *e) {
    size_t len;
    char shown[FQ_SHOW_CAP];
    *names_out = NULL, *types_out = NULL, *n_out = 0;
    char *text = fq_read_file(path, &len, e);
    if (!text) return -1;
    fq_jval doc;
    int rc = fq_json_parse(text, len, &doc, e);
    free(text);
    if (rc) return fq_err_prefix(e, "%s", path);
    const fq_jval *a = fq_json_get(&doc, "assignment");
    char **names = NULL;
    uint32_t *types = NULL;
    int n = 0;
    rc = -1;
    if (!a || a->type != FQ_J_ARR) {
        fq_errf(e, "%s: no \"assignment\" array (a plan from fqlm plan has one)", path);
        goto out;
    }
    names = fq_calloc(a->n ? a->n : 1, sizeof *names, e);
    types = fq_calloc(a->n ? a->n : 1, sizeof *types, e);
    if (!names || !types) goto out;
    for (size_t k = 0; k < a->n; k++) {
        const fq_jval *it = &a->items[k];
        const fq_jval *t = fq_json_get(it, "tensor"), *ty = fq_json_get(it, "type");
        const fq_jval *node = fq_json_get(it, "node"), *fmt = fq_json_get(it, "format");
        if (it->type != FQ_J_OBJ) {
            fq_errf(e, "%s: assignment entry %zu (line %d) is a %s, not an object", path, k + 1, it->line,
                    fq_json_type_name(it->type));
            goto out;
        }
        if (!t && (node || fmt)) {
            fq_errf(e, "%s: assignment entry %zu (line %d) is an activation rule (node '%s'%s%s): fqlm quantize "
                    "writes weight types only; activation formats are applied at run time (pass the plan's "
                    "rules.txt to fqlm compare --fq)", path, k + 1, it->line,
                    node && node->type == FQ_J_STR ? fq_show(shown, sizeof shown, node->str, node->len) : "?",
                    fmt && fmt->type == FQ_J_STR ? ", format " : "", fmt && fmt->type == FQ_J_STR ? fmt->str : "");
            goto out;
        }
        if (!t || t->type != FQ_J_STR || !ty || ty->type != FQ_J_STR) {
            fq_errf(e, "%s: assignment entry %zu (line %d) needs \"tensor\" and \"type\" strings", path, k + 1,
                    it->line);
            goto out;
        }
        if (strlen(t->str) != t->len || strlen(ty->str) != ty->len) {
            fq_errf(e, "%s: assignment entry %zu (line %d): a NUL inside a name", path, k + 1, it->line);
            goto out;
        }
        if (fq_wtype_find(ty->str, &types[k], e)) {
            fq_err_prefix(e, "%s: assignment entry %zu (line %d, tensor '%s')", path, k + 1, it->line,
                          fq_show(shown, sizeof shown, t->str, t->len));
            goto out;
        }
        const char *nm = strncmp(t->str, "weight:", 7) ? t->str : t->str + 7;
        if (!(names[k] = fq_malloc(strlen(nm) + 1, e))) goto out;
        memcpy(names[k], nm, strlen(nm) + 1);
        n = (int)k + 1;
    }
    n = (int)a->n;
    rc = 0;
out:
    fq_json_free(&doc);
    if (rc) {
        fq_plan_free(names, types, n);
        return -1;
    }
    *names_out = names, *types_out = types, *n_out = n;
    return 0;
}
