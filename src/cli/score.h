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

#endif
