/* synth.h - random-weight llama models of any shape, for speed measurements and tests.
 *
 * Weights are normal with std 1/sqrt(fan_in) (fan_in = ne[0], the row length), norms
 * 1 + 0.1 * normal, as tests/data/models/synth-l2-e256-* were made (those came from a
 * different generator: same distribution, other values). Every row is drawn from its own
 * stream seeded by (seed, tensor name, row), so the file depends on the seed only, not on
 * the thread count. Tensors are generated and encoded a row at a time by the thread pool:
 * only the encoded model is held in memory, never its F32 weights. */
#ifndef FQ_SYNTH_H
#define FQ_SYNTH_H

#include "common.h"

typedef struct fq_synth_params {
    const char *name;     /* general.name */
    int n_layer, n_embd, n_ff, n_head, n_head_kv;
    int n_ctx;            /* llama.context_length */
    float rope_base, rms_eps;
    int n_vocab_hint;     /* vocabulary size the shape was made for (0: any); the CLI picks
                             a default vocabulary file from it */
    const char *vocab;    /* GGUF file whose tokenizer.* keys are copied; its token count is
                             the vocabulary size */
    const char *type;     /* type or mix name (see fq_qmix_find), e.g. "q4_k_m" */
    int pure;             /* 1: the base type for every weight, no llama-quantize rules */
    uint64_t seed;
    int n_threads;        /* >= 1 */
    int dry_run;          /* 1: plan the tensor types and sizes only; nothing is written */
    FILE *log;            /* one line per tensor, or NULL */
} fq_synth_params;

typedef struct fq_synth_stats {
    uint64_t n_params;    /* elements of all tensors */
    uint64_t bytes;       /* tensor data */
    int n_tensors, n_vocab, n_fallback;
    int n_by_type[32];    /* tensors per type id */
    int64_t gen_us, write_us;
} fq_synth_stats;

/* Defaults: name "synthetic-llama", rope base 10000, rms eps 1e-5, context 2048, type f32,
 * seed 7, 1 thread; no shape (fill it or use fq_synth_shape). */
void fq_synth_defaults(fq_synth_params *p);

/* Fills the shape fields of a known model (tinyllama-1.1b, stories260k, stories15m,
 * stories42m, stories110m, llama2-7b, synth-l2-e256). Returns 0, or -1 with e set listing
 * the names. */
int fq_synth_shape(const char *shape, fq_synth_params *p, fq_err *e);
const char *fq_synth_shape_names(void);

/* Generates the model and writes it to path (whole or not at all); with p->dry_run only
 * fills st (path may then be NULL). Checks the shape (head size even, heads divisible by KV
 * heads, ...). st may be NULL. Returns 0, or -1 with e set. */
int fq_synth_write(const fq_synth_params *p, const char *path, fq_synth_stats *st, fq_err *e);

#endif
