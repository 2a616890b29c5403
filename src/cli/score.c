/* score.c - cutting a text into chunks for teacher-forced scoring. */
#include "score.h"

#include <string.h>

int cli_chunks_make(cli_chunks *c, const int32_t *toks, size_t n, int ctx, int max_chunks,
                    int32_t bos, fq_err *e) {
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
        cli_chunks_free(c);
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

void cli_chunks_free(cli_chunks *c) {
    free(c->tok);
    free(c->off);
    memset(c, 0, sizeof *c);
}

void cli_chunk_next(const cli_chunks *c, int k, int32_t *next) {
    const int n = cli_chunk_len(c, k);
    const int32_t *t = cli_chunk_tok(c, k);
    for (int i = 0; i + 1 < n; i++) next[i] = t[i + 1];
    next[n - 1] = -1;
}
