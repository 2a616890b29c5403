/* score.c - NaN/Inf in the logits of teacher-forced scoring (the chunks are the library's: sweep.c). */
#include "score.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "metrics.h"
#include "session.h"

void cli_nonfinite_origin(cli_session *s, const cli_opts *o, int with_rules, const int32_t *toks, int n, char *buf,
                          size_t cap) {
    char weights[FQ_ERR_MAX] = "";
    if (s->fq && with_rules) {
        int k = fq_fakequant_nonfinite(s->fq, buf, cap);
        /* a rule that made them is the origin; values that arrived at a hooked node may have
         * been made by an earlier node nobody watched */
        if (k == 2) return;
        if (k == 3) snprintf(weights, sizeof weights, "%s", buf);
        else if (k == 1) {
            const char *w = strstr(buf, "; weight rule");
            if (w) snprintf(weights, sizeof weights, "%s", w + 2);
        }
    }
    snprintf(buf, cap, "(not found)");
    if (n <= 0) return;
    cli_opts o2 = *o;
    o2.dump = NULL;
    o2.fq_stats = NULL;
    if (!with_rules) o2.n_rules = 0, o2.fq_ffn_norm = o2.fq_logits = o2.fq_layer = NULL;
    int rc = 0;
    fq_err e;
    fq_fakequant *tr = cli_fakequant_from_opts(&o2, s->m, &rc);
    if (!tr && !rc) tr = fq_fakequant_new(s->m, &e);
    float *logits = fq_malloc((size_t)s->m->hp.n_vocab * sizeof(float), &e);
    fq_ctx_params cp = {.n_ctx = n, .n_threads = o->n_threads, .exact = o->exact, .cache_type = o->cache_type,
                        .n_batch = o->n_batch};
    fq_ctx *c = tr && logits ? fq_ctx_new(s->m, &cp, &e) : NULL;
    if (c) {
        fq_fakequant_set_log(tr, NULL);
        fq_fakequant_set_check_all(tr, 1);
        fq_fakequant_attach(tr, c);
        if (fq_ctx_eval(c, toks, n, 0, logits, 0, &e))
            snprintf(buf, cap, "(evaluating again to find it failed: %s)", e.msg);
        else if (!fq_fakequant_nonfinite(tr, buf, cap) || !strncmp(buf, "weight rule", 11))
            snprintf(buf, cap, "no node (the %d tokens evaluated again in one pass gave finite values)", n);
    }
    fq_ctx_free(c);
    fq_fakequant_free(tr);
    free(logits);
    if (*weights) {
        size_t len = strlen(buf);
        if (len + 3 < cap) snprintf(buf + len, cap - len, "; %s", weights);
    }
}

int64_t cli_nonfinite_check(cli_nonfinite *nf, cli_session *s, const cli_opts *o, int with_rules,
                            const float *logits, int64_t n_rows, int n_vocab, int64_t pos0, const int32_t *a,
                            int na, const int32_t *b, int nb) {
    int64_t bad = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *row = logits + (size_t)r * n_vocab;
        int64_t n_nan, n_inf;
        if (!fq_count_nonfinite(row, (size_t)n_vocab, &n_nan, &n_inf)) continue;
        bad++;
        nf->rows++;
        int64_t drawable = 0;
        for (int i = 0; i < n_vocab; i++) drawable += !isnan(row[i]) && row[i] != -INFINITY;
        if (!drawable) nf->nan_rows++;
        if (nf->reported) continue;
        nf->reported = 1;
        int32_t *t = malloc(((size_t)na + (size_t)nb + 1) * sizeof(int32_t));
        char where[2 * FQ_ERR_MAX + 256];
        if (t) {
            if (na) memcpy(t, a, (size_t)na * sizeof(int32_t));
            if (nb) memcpy(t + na, b, (size_t)nb * sizeof(int32_t));
            cli_nonfinite_origin(s, o, with_rules, t, na + nb, where, sizeof where);
            free(t);
        } else {
            snprintf(where, sizeof where, "(out of memory looking for it)");
        }
        fprintf(stderr, "fqlm: warning: %s%slogits at position %lld hold %lld NaN and %lld Inf values (of %d); "
                        "NaN/Inf first appeared at %s\n",
                nf->what && *nf->what ? nf->what : "", nf->what && *nf->what ? " " : "", (long long)(pos0 + r),
                (long long)n_nan, (long long)n_inf, n_vocab, where);
    }
    return bad;
}
