/* synth.h - random-weight models of any family fqlm runs and any shape, for speed
 * measurements and tests.
 *
 * The family is a row of arch_table.h (general.architecture: llama, qwen2, qwen3, gemma2,
 * gemma3, phi3, olmo2): the file holds the tensors the row requires (plus output.weight
 * when untied, rope_freqs.weight with Llama-3 rope factors), with the shapes the loader
 * expects, and the family's GGUF keys (sliding window, soft-caps, key_length, ...).
 * Weights are normal with std 1/sqrt(fan_in) (fan_in = ne[0], the row length), norms
 * 1 + 0.1 * normal, biases 0.1 * normal, as tests/data/models/synth-l2-e256-* and the
 * architecture test models were made (those came from a different generator: same
 * distribution, other values). One exception, as in those models: a tied model (no
 * output.weight) gets output_norm N(0, 1), else a random tied model gives its own input
 * token the top logit and greedy decoding repeats one token for ever. Every row is drawn
 * from its own stream seeded by (seed, tensor name, row), so the file depends on the seed
 * only, not on the thread count. Tensors are generated and encoded a row at a time by the
 * thread pool: only the encoded model is held in memory, never its F32 weights. */
#ifndef FQ_SYNTH_H
#define FQ_SYNTH_H

#include "common.h"

/* Llama 3.1 / 3.2 rope frequency factors (HF rope_scaling with rope_type "llama3"). */
typedef struct fq_synth_rope3 {
    float factor;         /* 0: no rope_freqs.weight */
    float low_freq_factor, high_freq_factor;
    int orig_ctx;         /* original_max_position_embeddings */
} fq_synth_rope3;

typedef struct fq_synth_params {
    const char *arch;     /* general.architecture, a row of arch_table.h (default "llama") */
    const char *name;     /* general.name */
    int n_layer, n_embd, n_ff, n_head, n_head_kv;
    int head_dim;         /* head size d (0: n_embd / n_head); written as
                             ARCH.attention.key_length / value_length when it differs */
    int n_ctx;            /* ARCH.context_length */
    float rope_base, rms_eps;
    int tied;             /* -1: the family's default (tied for qwen2, qwen3, gemma3;
                             always for gemma2; never for phi3, olmo2; llama untied);
                             0: output.weight written; 1: none (the output is token_embd) */
    int sliding_window;   /* ARCH.attention.sliding_window of families with one (phi3,
                             gemma2, gemma3); 0: the family's default (2047, 4096, 512) */
    float attn_softcap, final_softcap; /* gemma2's soft-caps; 0: 50 / 30 */
    float rope_scale;     /* > 1: ARCH.rope.scaling.type linear with this factor */
    fq_synth_rope3 rope3; /* llama: rope_freqs.weight as convert_hf_to_gguf.py computes it */
    int n_vocab;          /* 0: the vocabulary file's token count; larger: the vocabulary is
                             padded with [PAD1].. tokens (UNUSED, score -1000) as
                             convert_hf_to_gguf.py pads a SentencePiece vocabulary */
    int n_vocab_hint;     /* vocabulary size the shape was made for (0: any); the CLI picks
                             a default vocabulary file from it */
    const char *vocab;    /* GGUF file whose tokenizer.* keys are copied */
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

/* Defaults: arch llama, name "synthetic-llama", rope base 10000, rms eps 1e-5, context
 * 2048, type f32, seed 7, 1 thread, the family's tying; no shape (fill it or use
 * fq_synth_shape). */
void fq_synth_defaults(fq_synth_params *p);

/* Fills the family and shape fields of a known model (fq_synth_shape_names(): real
 * models' hyperparameters, e.g. qwen2.5-0.5b, llama3.2-1b with its rope factors,
 * gemma2-2b with its soft-caps and window) and n_vocab_hint (the real vocabulary size; n_vocab
 * is left to the caller). Returns 0, or -1 with e set listing the names. */
int fq_synth_shape(const char *shape, fq_synth_params *p, fq_err *e);
const char *fq_synth_shape_names(void);

/* Generates the model and writes it to path (whole or not at all); with p->dry_run only
 * fills st (path may then be NULL). Checks the family (known, tying and options it
 * allows) and the shape (head size even, heads divisible by KV heads, ...). st may be
 * NULL. Returns 0, or -1 with e set. */
int fq_synth_write(const fq_synth_params *p, const char *path, fq_synth_stats *st, fq_err *e);

/* rope_freqs.weight for head size d (d/2 values) and rope base, as convert_hf_to_gguf.py
 * computes them for rope_type llama3 (frequencies in float32, then double; equal bit for
 * bit to the llama3rope test model's). Returns 0, or -1 with e set (bad factors). */
int fq_synth_rope3_factors(const fq_synth_rope3 *r, float rope_base, int d, float *out, fq_err *e);

#endif
