/* sampler.h - token sampling as llama.cpp's default chain orders it:
 * repeat penalty -> top-k -> top-p -> min-p -> temperature -> draw.
 * temp <= 0 is greedy (argmax, lowest id on ties). The draw uses a seeded 64-bit
 * generator, so the same seed gives the same tokens. */
#ifndef FQ_SAMPLER_H
#define FQ_SAMPLER_H

#include "common.h"

typedef struct fq_sampler_params {
    float temp;           /* 0.8 */
    int top_k;            /* 40; <= 0 keeps all */
    float top_p;          /* 0.95; 1 keeps all */
    float min_p;          /* 0.05; 0 keeps all */
    float repeat_penalty; /* 1.0 = off */
    int repeat_last_n;    /* 64 */
    uint64_t seed;
} fq_sampler_params;

void fq_sampler_defaults(fq_sampler_params *p);

typedef struct fq_sampler fq_sampler;

/* NULL with e set on bad parameters or no memory. */
fq_sampler *fq_sampler_new(const fq_sampler_params *p, int n_vocab, fq_err *e);
void fq_sampler_free(fq_sampler *s);
/* Picks the next token from logits (not modified). NaN and -Inf logits are never drawn;
 * when some logits are +Inf, one of those is drawn (equally likely; greedy: the lowest
 * id). Returns -1 when no logit can be drawn (all NaN or -Inf). */
int fq_sampler_sample(fq_sampler *s, const float *logits);
/* Records a token (prompt or generated) for the repeat penalty. */
void fq_sampler_accept(fq_sampler *s, int token);

/* argmax, lowest index on ties, NaN skipped; -1 when every value is NaN (or n <= 0) */
int fq_argmax(const float *x, int n);

#endif
