/* sweep.c - the sweep engine (sweep.h): selection, chunks, baseline with kept hidden states,
 * and one combination at a time. No printing: callers (the CLI, the public API) report. */
#include "sweep.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <string.h>

#include "fakequant.h"
#include "formats.h"
#include "tokenizer.h"

/* ---- chunks ---------------------------------------------------------------------------------- */

int fq_chunks_make(fq_chunks *c, const int32_t *toks, size_t n, int ctx, int max_chunks, int32_t bos, fq_err *e) {
    memset(c, 0, sizeof *c);
    if (ctx < 2) return fq_errf(e, "chunks of %d tokens are too short to score (use -c 2 or more)", ctx);
    const int lead = bos >= 0 && n > 0 && toks[0] == bos;
    if (n < (size_t)(lead ? 2 : 1)) return fq_errf(e, "the text gives no tokens to score");
    /* the first chunk takes ctx tokens; later ones ctx - lead of the text (plus BOS) */
    size_t per = (size_t)(ctx - lead), n_chunks = 1;
    if (n > (size_t)ctx) n_chunks += (n - (size_t)ctx + per - 1) / per;
    if (max_chunks > 0 && n_chunks > (size_t)max_chunks) n_chunks = (size_t)max_chunks;
    c->tok = fq_malloc((n + n_chunks) * sizeof(int32_t), e);
    c->off = fq_malloc((n_chunks + 1) * sizeof(int64_t), e);
    if (!c->tok || !c->off) {
        fq_chunks_free(c);
        return -1;
    }
    size_t src = 0, dst = 0;
    for (size_t k = 0; k < n_chunks; k++) {
        c->off[k] = (int64_t)dst;
        size_t take = FQ_MIN((size_t)ctx, n - src);
        if (k > 0 && lead) {
            c->tok[dst++] = bos;
            take = FQ_MIN(per, n - src);
        }
        memcpy(c->tok + dst, toks + src, take * sizeof(int32_t));
        dst += take;
        src += take;
    }
    c->off[n_chunks] = (int64_t)dst;
    c->n = (int)n_chunks;
    c->ctx = ctx;
    c->n_tokens = (int64_t)dst;
    return 0;
}

void fq_chunks_free(fq_chunks *c) {
    free(c->tok);
    free(c->off);
    memset(c, 0, sizeof *c);
}

void fq_chunk_next(const fq_chunks *c, int k, int32_t *next) {
    const int n = fq_chunk_len(c, k);
    const int32_t *t = fq_chunk_tok(c, k);
    for (int i = 0; i + 1 < n; i++) next[i] = t[i + 1];
    next[n - 1] = -1;
}

/* ---- the selection --------------------------------------------------------------------------- */

void fq_sweep_sel_free(fq_sweep_sel *s) {
    free(s->layers);
    for (int i = 0; i < s->n_formats; i++) free(s->formats[i]);
    free(s->formats);
    memset(s, 0, sizeof *s);
}

static int parse_nodes(fq_sweep_sel *s, const char *list, const fq_model *m, fq_err *e) {
    char *copy = strdup(list);
    if (!copy) return fq_errf(e, "out of memory");
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        if (!*t) continue;
        if (!strncmp(t, "weight", 6)) {
            free(copy);
            return fq_errf(e, "nodes: weight rules cannot be swept (compare them one at a time with "
                              "fqlm compare --fq 'weight:GLOB=FORMAT')");
        }
        int hits = 0;
        int id = fq_node_from_name(t);
        for (int n = 0; n < FQ_NODE_COUNT; n++) {
            if (!fq_node_in_model(m, n)) continue; /* nodes of other families */
            if (n != id && fnmatch(t, fq_node_name(n), 0) != 0) continue;
            hits++;
            int dup = 0;
            for (int k = 0; k < s->n_nodes; k++) dup |= s->nodes[k] == n;
            if (!dup) s->nodes[s->n_nodes++] = n;
        }
        if (!hits) {
            char names[1024], shown[160];
            fq_node_list(m, names, sizeof names);
            fq_errf(e, "nodes: %s node '%s' (nodes of this %s model: %s)", id >= 0 ? "this model has no" : "unknown",
                    fq_show(shown, sizeof shown, t, strlen(t)), m->arch->name, names);
            free(copy);
            return -1;
        }
    }
    free(copy);
    if (!s->n_nodes) return fq_errf(e, "nodes: no node named in '%s'", list);
    return 0;
}

int fq_parse_layer_list(const char *list, int n_layer, int **layers, int *n, fq_err *e) {
    *layers = NULL;
    *n = 0;
    uint8_t *on = calloc((size_t)(n_layer > 0 ? n_layer : 1), 1);
    if (!on) return fq_errf(e, "out of memory");
    if (!list || !strcmp(list, "*") || !strcmp(list, "all") || !strcmp(list, "-1")) {
        memset(on, 1, (size_t)FQ_MAX(n_layer, 0));
    } else {
        const char *p = list;
        if (!*p) { /* it would select nothing and call that done */
            free(on);
            return fq_errf(e, "the list is empty (use N, N-M, N,M,... or * for all)");
        }
        while (*p) {
            char *end;
            errno = 0;
            long a = strtol(p, &end, 10), b;
            if (end == p || errno) goto bad;
            b = a;
            p = end;
            if (*p == '-') {
                p++;
                b = strtol(p, &end, 10);
                if (end == p) goto bad;
                p = end;
            }
            if (*p && *p != ',') goto bad;
            if (*p == ',' && !*++p) goto bad; /* a trailing comma: something left out? */
            if (b < a) {
                free(on);
                return fq_errf(e, "the range %ld-%ld in '%s' runs backwards (write %ld-%ld)", a, b, list, b, a);
            }
            for (long L = a; L <= b; L++) {
                if (L < 0 || L >= n_layer) {
                    free(on);
                    return fq_errf(e, "layer %ld out of range: the model has layers 0-%d", L, n_layer - 1);
                }
                on[L] = 1;
            }
        }
    }
    *layers = malloc((size_t)(n_layer > 0 ? n_layer : 1) * sizeof(int));
    if (!*layers) {
        free(on);
        return fq_errf(e, "out of memory");
    }
    for (int L = 0; L < n_layer; L++)
        if (on[L]) (*layers)[(*n)++] = L;
    free(on);
    return 0;
bad:
    free(on);
    return fq_errf(e, "bad list '%s' (use N, N-M, N,M,... or * for all)", list);
}

int fq_parse_format_list(const char *list, char ***formats, int *n_formats, fq_err *e) {
    *formats = NULL;
    *n_formats = 0;
    char **fl = NULL;
    int nc = 0;
    char *copy = strdup(list);
    char **specs = calloc(strlen(list) + 1, sizeof(char *));
    int n = 0, rc = -1;
    if (!copy || !specs) {
        fq_errf(e, "fl of memory");
        goto out;
    }
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        if (!*t) continue;
        fq_format *f;
        fq_err fe;
        const int standalone = fq_format_parse(t, &f, &fe) == 0;
        if (standalone) fq_format_free(f);
        if (n > 0 && strchr(specs[n - 1], ':') && !standalone) {
            size_t l = strlen(specs[n - 1]) + strlen(t) + 2;
            char *joined = malloc(l);
            if (!joined) {
                fq_errf(e, "fl of memory");
                goto out;
            }
            snprintf(joined, l, "%s,%s", specs[n - 1], t);
            free(specs[n - 1]);
            specs[n - 1] = joined;
            continue;
        }
        specs[n] = strdup(t);
        if (!specs[n]) {
            fq_errf(e, "fl of memory");
            goto out;
        }
        n++;
    }
    fl = calloc((size_t)FQ_MAX(n, 1), sizeof(char *));
    if (!fl) {
        fq_errf(e, "fl of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        fq_format *f;
        fq_err fe;
        if (fq_format_parse(specs[i], &f, &fe)) {
            fq_errf(e, "%s", fe.msg);
            goto out;
        }
        const char *canon = fq_format_str(f);
        int dup = 0;
        for (int k = 0; k < nc; k++) dup |= !strcmp(fl[k], canon);
        if (!dup) {
            fl[nc] = strdup(canon);
            if (!fl[nc]) {
                fq_format_free(f);
                fq_errf(e, "fl of memory");
                goto out;
            }
            nc++;
        }
        fq_format_free(f);
    }
    if (!nc) {
        fq_errf(e, "no format named in '%s'", list);
        goto out;
    }
    *formats = fl;
    *n_formats = nc;
    fl = NULL;
    rc = 0;
out:
    if (fl)
        for (int i = 0; i < nc; i++) free(fl[i]);
    free(fl);
    for (int i = 0; i < n; i++) free(specs[i]);
    free(specs);
    free(copy);
    return rc;
}

int fq_sweep_sel_parse(fq_sweep_sel *s, const fq_model *m, const char *nodes, const char *layers, const char *formats,
                       fq_err *e) {
    memset(s, 0, sizeof *s);
    if (!nodes || !formats) return fq_errf(e, "a sweep needs nodes and formats");
    if (parse_nodes(s, nodes, m, e) ||
        (fq_parse_layer_list(layers, m->hp.n_layer, &s->layers, &s->n_layers, e) && fq_err_prefix(e, "layers")) ||
        (fq_parse_format_list(formats, &s->formats, &s->n_formats, e) && fq_err_prefix(e, "formats"))) {
        fq_sweep_sel_free(s);
        return -1;
    }
    return 0;
}

int fq_sweep_combo_start(const fq_sweep_combo *c, int n_layer) {
    return c->layer >= 0 ? c->layer : c->node == FQ_NODE_INP_EMBD ? 0 : n_layer;
}

void fq_sweep_combo_label(char *buf, size_t n, const fq_sweep_sel *s, const fq_sweep_combo *c) {
    if (c->layer >= 0) snprintf(buf, n, "%s@%d=%s", fq_node_name(c->node), c->layer, s->formats[c->fmt]);
    else snprintf(buf, n, "%s=%s", fq_node_name(c->node), s->formats[c->fmt]);
}

/* Shard I of N (0-based): the combinations in canonical order are sorted costliest first
 * (earliest first layer; ties keep their canonical order) and dealt out round robin, so
 * every shard gets a like share of the work. Depends on nothing but the selection and the
 * layer count. Keeps shard I's combinations (costliest first) at the front of c and
 * returns their count. */
int fq_sweep_shard_pick(fq_sweep_combo *c, int n, int NL, int I, int N) {
    for (int a = 1; a < n; a++) /* stable insertion sort by first layer */
        for (int b = a; b > 0 && fq_sweep_combo_start(&c[b], NL) < fq_sweep_combo_start(&c[b - 1], NL); b--) {
            fq_sweep_combo t = c[b];
            c[b] = c[b - 1];
            c[b - 1] = t;
        }
    int k = 0;
    for (int j = 0; j < n; j++)
        if (j % N == I) c[k++] = c[j];
    return k;
}

/* ---- the engine -------------------------------------------------------------------------------- */

int fq_sweep_init(fq_sweep *s, const fq_model *m, fq_ctx *ctx, const int32_t *toks, size_t n, const fq_sweep_opts *o,
                  fq_err *e) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->ctx = ctx;
    s->reuse = o->reuse;
    s->seed = o->seed;
    s->n_layer = m->hp.n_layer;
    s->n_vocab = m->hp.n_vocab;
    s->n_embd = m->hp.n_embd;
    const int NL = s->n_layer;
    if (o->shard_n < 0 || (o->shard_n > 0 && (o->shard_i < 0 || o->shard_i >= o->shard_n)))
        return fq_errf(e, "shard %d of %d: the index counts from 0 to the count - 1", o->shard_i, o->shard_n);
    if (o->ctx > fq_ctx_n_ctx(ctx))
        return fq_errf(e, "chunks of %d tokens do not fit the context's %d", o->ctx, fq_ctx_n_ctx(ctx));
    if (fq_sweep_sel_parse(&s->sel, m, o->nodes, o->layers, o->formats, e)) return -1;
    const fq_sweep_sel *sel = &s->sel;
    /* the combinations, format by format */
    s->combos = fq_malloc((size_t)sel->n_formats * sel->n_nodes * (sel->n_layers + 1) * sizeof *s->combos, e);
    if (!s->combos) goto fail;
    for (int f = 0; f < sel->n_formats; f++)
        for (int k = 0; k < sel->n_nodes; k++) {
            const int node = sel->nodes[k];
            if (!fq_node_has_layer(node)) {
                s->combos[s->n_combo++] = (fq_sweep_combo){node, -1, f};
                continue;
            }
            for (int li = 0; li < sel->n_layers; li++) s->combos[s->n_combo++] = (fq_sweep_combo){node, sel->layers[li], f};
        }
    if (o->shard_n) s->n_combo = fq_sweep_shard_pick(s->combos, s->n_combo, NL, o->shard_i, o->shard_n);
    const int32_t bos = fq_tokenizer_adds_bos(m->tok) ? fq_tokenizer_bos(m->tok) : -1;
    if (fq_chunks_make(&s->ch, toks, n, o->ctx, o->max_chunks, bos, e)) goto fail;
    s->need = fq_calloc((size_t)NL + 1, 1, e);
    if (!s->need) goto fail;
    for (int i = 0; i < s->n_combo; i++) {
        const int L = fq_sweep_combo_start(&s->combos[i], NL);
        if (s->reuse && L > 0 && !s->need[L]) {
            s->need[L] = 1;
            s->n_need++;
        }
    }
    return 0;
fail:
    fq_sweep_free(s);
    return -1;
}

void fq_sweep_free(fq_sweep *s) {
    if (s->hid)
        for (int L = 0; L <= s->n_layer; L++) free(s->hid[L]);
    free(s->hid);
    free(s->base_logits);
    free(s->lf);
    free(s->next);
    free(s->need);
    free(s->combos);
    fq_chunks_free(&s->ch);
    fq_sweep_sel_free(&s->sel);
    memset(s, 0, sizeof *s);
}

int fq_sweep_baseline(fq_sweep *s, int (*stop)(void *ud, int chunk, int n_chunks), void *ud, fq_err *e) {
    const int NL = s->n_layer, V = s->n_vocab, E = s->n_embd;
    const fq_chunks *ch = &s->ch;
    if (!s->base_logits) {
        int max_len = 0;
        for (int k = 0; k < ch->n; k++) max_len = FQ_MAX(max_len, fq_chunk_len(ch, k));
        s->base_logits = fq_malloc((size_t)ch->n_tokens * V * sizeof(float), e);
        s->lf = s->base_logits ? fq_malloc((size_t)max_len * V * sizeof(float), e) : NULL;
        s->next = s->lf ? fq_malloc((size_t)ch->n_tokens * sizeof(int32_t), e) : NULL;
        s->hid = s->next ? fq_calloc((size_t)NL + 1, sizeof(float *), e) : NULL;
        if (!s->hid) return -1;
        for (int L = 0; L <= NL; L++)
            if (s->need[L] && !(s->hid[L] = fq_malloc((size_t)ch->n_tokens * E * sizeof(float), e)))
                return fq_err_prefix(e, "baseline hidden states (%d layers of %lld tokens x %d)", s->n_need,
                                     (long long)ch->n_tokens, E);
        for (int k = 0; k < ch->n; k++) fq_chunk_next(ch, k, s->next + ch->off[k]);
    }
    memset(&s->base_ppl, 0, sizeof s->base_ppl);
    s->base_nonfinite = 0;
    s->have_baseline = 0;
    fq_ctx_set_hook(s->ctx, NULL, NULL, NULL);
    if (s->n_need) fq_ctx_keep_hidden(s->ctx, 1);
    int rc = 0;
    for (int k = 0; k < ch->n; k++) {
        const int n = fq_chunk_len(ch, k);
        float *bl = s->base_logits + (size_t)ch->off[k] * V;
        if (fq_ctx_eval(s->ctx, fq_chunk_tok(ch, k), n, 0, bl, 1, e)) {
            rc = -1;
            break;
        }
        for (int L = 0; L <= NL; L++)
            if (s->need[L])
                memcpy(s->hid[L] + (size_t)ch->off[k] * E, fq_ctx_hidden(s->ctx, L), (size_t)n * E * sizeof(float));
        for (int i = 0; i < n; i++) {
            const float *row = bl + (size_t)i * V;
            int finite = 1;
            for (int v = 0; v < V && finite; v++) finite = isfinite(row[v]);
            s->base_nonfinite += !finite;
            if (i + 1 < n) {
                const double nll = fq_nll(row, V, s->next[ch->off[k] + i]);
                if (!isnan(nll)) fq_ppl_add(&s->base_ppl, nll);
            }
        }
        if (stop && stop(ud, k, ch->n)) {
            rc = 1;
            break;
        }
    }
    fq_ctx_keep_hidden(s->ctx, 0);
    if (rc == 0) s->have_baseline = 1;
    return rc;
}

int fq_sweep_eval(fq_sweep *s, int i, fq_sweep_row *row, int (*stop)(void *ud, int chunk, int n_chunks), void *ud,
                  fq_err *e) {
    if (i < 0 || i >= s->n_combo) return fq_errf(e, "combination %d: the sweep has %d (0-%d)", i, s->n_combo, s->n_combo - 1);
    if (!s->have_baseline) {
        int r = fq_sweep_baseline(s, stop, ud, e);
        if (r) return r;
    }
    const int NL = s->n_layer, V = s->n_vocab, E = s->n_embd;
    const fq_chunks *ch = &s->ch;
    const fq_sweep_combo *c = &s->combos[i];
    const int start = s->reuse ? fq_sweep_combo_start(c, NL) : 0;
    char rule[256];
    fq_sweep_combo_label(rule, sizeof rule, &s->sel, c);
    const int64_t t0 = fq_time_us();
    fq_fakequant *fq = fq_fakequant_new(s->m, e);
    if (!fq) return -1;
    if (fq_fakequant_add_rule(fq, rule, e)) {
        fq_fakequant_free(fq);
        return -1;
    }
    fq_fakequant_set_seed(fq, s->seed);
    fq_fakequant_attach(fq, s->ctx);
    fq_metrics acc;
    fq_metrics_init(&acc);
    int rc = 0;
    for (int k = 0; k < ch->n && !rc; k++) {
        const int n = fq_chunk_len(ch, k);
        int r;
        if (start > 0) r = fq_ctx_eval_from(s->ctx, start, s->hid[start] + (size_t)ch->off[k] * E, n, 0, s->lf, 1, e);
        else r = fq_ctx_eval(s->ctx, fq_chunk_tok(ch, k), n, 0, s->lf, 1, e);
        if (r || fq_metrics_add_rows(&acc, s->base_logits + (size_t)ch->off[k] * V, s->lf, n, V, s->next + ch->off[k],
                                     fq_ctx_pool(s->ctx), e))
            rc = -1;
        else if (stop && stop(ud, k, ch->n))
            rc = 1;
    }
    fq_ctx_set_hook(s->ctx, NULL, NULL, NULL);
    fq_metrics_summary sm;
    if (!rc && fq_metrics_summarize(&acc, &sm, e)) rc = -1;
    if (!rc) {
        memset(row, 0, sizeof *row);
        snprintf(row->node, sizeof row->node, "%s", fq_node_name(c->node));
        row->layer = c->layer;
        snprintf(row->format, sizeof row->format, "%s", s->sel.formats[c->fmt]);
        row->first_layer = start;
        row->positions = sm.n_pos;
        row->mean_kld = sm.mean_kld;
        row->kld_stderr = sm.kld_stderr;
        row->kld_median = sm.kld_median;
        row->kld_p90 = sm.kld_p90;
        row->kld_p99 = sm.kld_p99;
        row->max_kld = sm.max_kld;
        row->top1_agree = sm.top1_agree;
        row->ppl_base = sm.ppl_base;
        row->ppl_fq = sm.ppl_fq;
        row->ppl_ratio = sm.ppl_ratio;
        row->dp_mean = sm.dp_mean;
        row->max_abs_logit_diff = sm.max_abs_logit_diff;
        row->applications = (int64_t)fq_fakequant_applications(fq);
        row->n_nonfinite = sm.n_nonfinite;
        if (sm.n_nonfinite && !fq_fakequant_nonfinite(fq, row->nonfinite_at, sizeof row->nonfinite_at))
            row->nonfinite_at[0] = 0;
        row->seconds = (fq_time_us() - t0) / 1e6;
    }
    fq_fakequant_free(fq);
    fq_metrics_free(&acc);
    return rc;
}
