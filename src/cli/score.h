/* score.h - teacher-forced scoring shared by compare and sweep: a text cut into chunks,
 * each evaluated in one pass with every position's logits kept. */
#ifndef FQ_CLI_SCORE_H
#define FQ_CLI_SCORE_H

#include "common.h"

/* Chunks of at most ctx tokens, back to back in tok: chunk k is tok[off[k] .. off[k+1]).
 * When the text starts with BOS (the model adds one), the first chunk is the first ctx
 * tokens and every later chunk is BOS followed by the next ctx - 1 tokens of the text,
 * so no token of the text is skipped and every chunk starts as a text does. A last,
 * shorter chunk is kept. */
typedef struct cli_chunks {
    int32_t *tok;
    int64_t *off;      /* [n + 1] */
    int n;
    int ctx;
    int64_t n_tokens;  /* sum of the chunk lengths */
} cli_chunks;

/* max_chunks <= 0: all of them. bos: the BOS id when the model adds one, else -1.
 * Returns 0, or -1 with e set (empty text, no memory). */
int cli_chunks_make(cli_chunks *c, const int32_t *toks, size_t n, int ctx, int max_chunks,
                    int32_t bos, fq_err *e);
void cli_chunks_free(cli_chunks *c);

static inline int cli_chunk_len(const cli_chunks *c, int k) { return (int)(c->off[k + 1] - c->off[k]); }
static inline const int32_t *cli_chunk_tok(const cli_chunks *c, int k) { return c->tok + c->off[k]; }

/* The token that follows each position of chunk k (-1 for the last): next must hold
 * cli_chunk_len(c, k) ids. */
void cli_chunk_next(const cli_chunks *c, int k, int32_t *next);

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
