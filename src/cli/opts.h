/* opts.h - options shared by the commands that evaluate a model (run, compare, ppl,
 * sweep, bench), parsed the same way everywhere. */
#ifndef FQ_CLI_OPTS_H
#define FQ_CLI_OPTS_H

#include <stdint.h>

#include "sampler.h"

#define CLI_MAX_RULES 64

typedef struct cli_opts {
    const char *model;       /* -m; default: the bundled model */
    const char *prompt;      /* -p */
    const char *prompt_file; /* -f */
    int n_predict;           /* -n */
    int n_threads;           /* -t */
    int n_ctx;               /* -c */
    int n_batch;             /* -b */
    int exact;               /* --exact */
    uint32_t cache_type;     /* --cache-type (K and V) */
    uint32_t cache_type_k, cache_type_v; /* --cache-type-k / -v; UINT32_MAX: as cache_type */
    int chat;                /* --chat */
    const char *chat_template; /* --chat-template NAME */
    const char *sys;         /* -sys */
    const char *json;        /* --json FILE */
    int seed_given;
    fq_sampler_params sp;
    /* fake quantization */
    const char *rules[CLI_MAX_RULES]; /* --fq */
    int n_rules;
    const char *fq_ffn_norm;   /* --fake-quant-ffn-norm TYPE */
    const char *fq_layer;      /* --fake-quant-layer N */
    const char *fq_logits;     /* --fake-quant TYPE */
    const char *fq_stats;      /* --fq-stats FILE */
    const char *dump;          /* --dump NODES[@LAYERS]; repeated ones joined with ';' */
    const char *dump_dir;      /* --dump-dir DIR */
    const char *fq_model;      /* --fq-model FILE: the fake-quant run's model (default: -m) */
    const char *weight_plan;   /* --weight-plan plan.json: the fake-quant run's weights re-encoded
                                * in memory to the plan's ggml types (real kernels) */
    int verbose;
    uint64_t given;            /* value options seen (a second one is refused) */
} cli_opts;

void cli_opts_defaults(cli_opts *o);

/* Tries to parse argv[*i] (and its value) as a shared option. Returns 1 when consumed
 * (*i advanced past the value), 0 when not a shared option, -1 after printing an error. */
int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i);

/* Checks what single options cannot: -sys needs --chat. Returns 0, or 2 (the exit status)
 * after printing an error. */
int cli_opts_check(const cli_opts *o);

/* Help text of the shared options. */
void cli_opts_help(FILE *f);

/* The default model path: models/stories260K.gguf in the working directory, else beside
 * the fqlm executable. */
const char *cli_default_model(void);

/* Strict number parsing for option values: 0 on success, -1 after printing an error
 * naming the option. */
int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *opt, const char *s, double *out);
/* The same for an option's value that may be missing (v NULL: "needs a value"). */
int cli_parse_long(const char *opt, const char *v, long lo, long hi, long *out);

#endif
