/* formats.h - number formats for fake quantization: round F32 values in place to the
 * nearest values a format can hold (quantize, then dequantize) and count what was lost.
 *
 * A format is parsed once from a spec string `FORMAT[:opt=value[,opt...]]` into an
 * immutable fq_format that any number of threads may apply at once. Every rule that
 * tools disagree on (ties, saturation, scale choice, specials) is explicit, named in the
 * canonical spec string, and listed by `fqlm formats`:
 *
 *  - rounding: round=rne (default, ties to even), rna (ties away from zero), rtz (toward
 *    zero; overflow then gives the largest finite value, as IEEE 754 says), stochastic
 *    (round away from zero with probability equal to the distance to the value below,
 *    drawn from 32 random bits that depend on (seed, stream, element index) only);
 *  - NaN stays NaN (payload kept); -0 stays -0 and every zero result keeps the sign of
 *    its input; Inf follows the format (kept where it can be held, else saturated or NaN);
 *  - subnormal=off flushes any input below the smallest normal to signed zero (decided
 *    on the input, before rounding);
 *  - block formats (MX, NVFP4, ggml blocks): a block holding NaN or Inf becomes all NaN;
 *    a row whose length is not a multiple of the block size ends with a shorter block
 *    (ggml blocks: zero-padded to a full block for the encoder, the padding dropped).
 * `fqlm formats --help` (fq_format_help) states every rule of every format.
 */
#ifndef FQ_FORMATS_H
#define FQ_FORMATS_H

#include "common.h"

typedef struct fq_format fq_format;

enum fq_round {
    FQ_ROUND_RNE = 0,       /* nearest, ties to even (the default) */
    FQ_ROUND_RNA = 1,       /* nearest, ties away from zero */
    FQ_ROUND_RTZ = 2,       /* toward zero */
    FQ_ROUND_STOCHASTIC = 3 /* seeded, position-keyed, unbiased */
};

/* Parses a spec such as "int4:group=32,asym". Returns 0 and sets *out, or -1 with a
 * message that names what is wrong and lists the valid formats or options. */
int fq_format_parse(const char *spec, fq_format **out, fq_err *e);
void fq_format_free(fq_format *f);

/* Canonical spec: the format name followed by the options that differ from its
 * defaults, in a fixed order ("fp8_e4m3:round=stochastic"). Parsing it gives the same
 * format. Valid as long as f is. */
const char *fq_format_str(const fq_format *f);

/* What was lost, accumulated over every application at one hook.
 *  n          elements seen (all of them, NaN included)
 *  n_clipped  inputs outside the format's range: saturated to the largest value, or
 *             overflowed to Inf/NaN (Inf inputs that became finite included)
 *  n_flushed  non-zero inputs whose result is zero
 *  n_nan      NaN results from non-NaN inputs (overflow without saturation, NaN blocks)
 *  n_summed   elements whose input and result are both finite: the ones that
 *             sum_x2, sum_err2, max_err and max_abs_x are taken over (the others are
 *             counted above, not summed).
 * All-zero is the empty state; fields may be added at the end. */
typedef struct fq_qstats {
    uint64_t n, n_clipped, n_flushed, n_nan;
    double sum_x2, sum_err2, max_err, max_abs_x;
    uint64_t n_summed;
} fq_qstats;

void fq_qstats_merge(fq_qstats *into, const fq_qstats *from);
double fq_qstats_rmse(const fq_qstats *s);        /* sqrt(sum_err2 / n_summed), 0 if none */
double fq_qstats_sqnr_db(const fq_qstats *s);     /* 10 log10(sum_x2 / sum_err2); +Inf when
                                                   * no error, NaN when no signal */
double fq_qstats_pct_clipped(const fq_qstats *s); /* 100 n_clipped / n */
double fq_qstats_pct_flushed(const fq_qstats *s); /* 100 n_flushed / n */

/* Rounds x (nrows x ncols, row-major, contiguous) in place and adds to *st (may be
 * NULL). seed and stream drive stochastic rounding: the draw for element (r, c) depends on
 * (seed, stream, (row0 + r) * ncols + c) only, so splitting rows across threads changes
 * nothing. stream is any 64-bit name of the application: the fake-quant hooks make it
 * from (rule, node, layer) and weight rules from (rule, weight index), both with
 * fq_fmix64; fq_stream_id below is one way to make it from a name. */
void fq_format_apply(const fq_format *f, float *x, int64_t nrows, int64_t ncols,
                     uint64_t seed, uint64_t stream, int64_t row0, fq_qstats *st);

/* 1 when rows can be processed independently (so the caller may split rows across
 * threads); 0 when a scale spans rows (per_tensor, per_col, nvfp4's tensor scale): then
 * the whole tensor must be passed in one call. */
int fq_format_row_local(const fq_format *f);

/* A stream id from a name and a layer (-1 for none): FNV-1a and fq_mix64. (The fake-quant
 * hooks do not use it; see fq_format_apply.) */
uint64_t fq_stream_id(const char *name, int layer);

/* Properties for the `fqlm formats` table. For block and integer formats the value
 * columns describe the element grid before scaling. Values not applicable are NAN. */
typedef struct fq_format_desc {
    const char *family;     /* "identity", "float", "mx", "nvfp4", "int", "ggml" */
    double bits;            /* bits per element, per-block scales included */
    double max_finite, min_normal, min_subnormal;
    int block;              /* elements sharing one scale; 0: no scale; -1 the whole
                             * tensor, -2 a row, -3 a column */
    char scale[64];         /* "none", "E8M0 2^k, floor rule", "F32 amax/127 per row" */
    char specials[96];      /* what Inf and NaN become */
    const char *rounding;   /* "rne", ... (the rounding this spec uses) */
} fq_format_desc;

void fq_format_describe(const fq_format *f, fq_format_desc *d);

/* The formats `fqlm formats` lists, as spec strings, in table order; NULL past the end. */
const char *fq_format_list(int i);

/* Help text: every format name and every option with its meaning. */
const char *fq_format_help(void);

/* Selects the SIMD kernels of the level fq_cpu_isa() chose (cpu.h: CPUID, FQLM_ISA,
 * FQLM_FORCE_GENERIC) once (thread-safe, idempotent; also done by the first
 * fq_format_apply). Returns that level: "avx512", "avx2" or "generic". */
const char *fq_formats_init(void);
/* For tests and benchmarks: force a level ("generic", "avx2", "avx512"). Returns 0, or
 * -1 for a name it does not know or a level this CPU cannot run (fq__cpu_isa_level). Not thread-safe: call while nothing applies. */
int fq_formats_set_isa(const char *name);

#endif
