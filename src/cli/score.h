/* score.h - teacher-forced scoring shared by compare and sweep: a text cut into chunks,
 * each evaluated in one pass with every position's logits kept. */
#ifndef FQ_CLI_SCORE_H
#define FQ_CLI_SCORE_H

#include "common.h"
#include "sweep.h"

/* Chunks of a text (the library's fq_chunks, sweep.h: `compare` and `sweep` cut a text the
 * same way the public API does). */
typedef fq_chunks cli_chunks;
static inline int cli_chunks_make(cli_chunks *c, const int32_t *toks, size_t n, int ctx, int max_chunks, int32_t bos,
                                  fq_err *e) {
    return fq_chunks_make(c, toks, n, ctx, max_chunks, bos, e);
}
static inline void cli_chunks_free(cli_chunks *c) { fq_chunks_free(c); }
static inline int cli_chunk_len(const cli_chunks *c, int k) { return fq_chunk_len(c, k); }
static inline const int32_t *cli_chunk_tok(const cli_chunks *c, int k) { return fq_chunk_tok(c, k); }
static inline void cli_chunk_next(const cli_chunks *c, int k, int32_t *next) { fq_chunk_next(c, k, next); }

/* ---- NaN/Inf in the logits ---------------------------------------------------------------- */

struct cli_session;
struct cli_opts;

/* Non-finite logit rows seen by one run (a session), reported once. */
typedef struct cli_nonfinite {
    const char *what;    /* "" or a name for the message ("baseline", "fake-quant") */
    int64_t rows;        /* rows of logits that held NaN/Inf */
    int64_t nan_rows;    /* ... of which every value was NaN or -Inf: nothing to draw or score */
    int reported;
} cli_nonfinite;

/* Checks rows [0, n_rows) of logits (n_vocab each; row r is position pos0 + r). On the first
 * row with NaN/Inf prints one warning: the position, the counts, and where NaN/Inf first
 * appeared (cli_nonfinite_origin over the tokens a[0..na) then b[0..nb) that led to these
 * logits; with_rules: the session's activation rules act in that pass). Returns the number
 * of rows with NaN/Inf. */
int64_t cli_nonfinite_check(cli_nonfinite *nf, struct cli_session *s, const struct cli_opts *o, int with_rules,
                            const float *logits, int64_t n_rows, int n_vocab, int64_t pos0, const int32_t *a,
                            int na, const int32_t *b, int nb);

/* Where NaN/Inf first appeared, in words: what the session's rules saw them produce, or else
 * the tokens evaluated again on a fresh context with every node checked. */
void cli_nonfinite_origin(struct cli_session *s, const struct cli_opts *o, int with_rules, const int32_t *toks,
                          int n, char *buf, size_t cap);

#endif
