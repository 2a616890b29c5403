/* session.h - what every model-evaluating command sets up: model, fake-quant rules,
 * context; and the prompt as tokens. */
#ifndef FQ_CLI_SESSION_H
#define FQ_CLI_SESSION_H

#include "fakequant.h"
#include "forward.h"
#include "model.h"
#include "opts.h"

typedef struct cli_session {
    fq_model *m;
    fq_ctx *ctx;
    fq_fakequant *fq;   /* NULL when no rule or dump was given */
    int n_ctx;
} cli_session;

/* Loads the model, checks and applies fake-quant options (with_fq), creates the context.
 * Prints errors; returns 0 or the exit status to return (1 runtime, 2 usage). */
int cli_session_open(cli_session *s, const cli_opts *o, int with_fq);
void cli_session_close(cli_session *s);

/* The prompt of -p / -f, with --chat applied, as tokens (BOS as the model asks).
 * Prints errors; returns 0 or an exit status. *toks is malloc'd. */
int cli_prompt_tokens(const cli_opts *o, const fq_model *m, int32_t **toks, size_t *n);

/* The text of -p or -f (malloc'd), or NULL after printing an error. */
char *cli_prompt_text(const cli_opts *o, size_t *len);

/* Builds a fake-quant rule set from the options; NULL with *rc set when there is none
 * (*rc = 0) or on error (*rc = exit status, message printed). */
fq_fakequant *cli_fakequant_from_opts(const cli_opts *o, const fq_model *m, int *rc);

/* After a run: writes --fq-stats (whole or not at all) and reports a failed --dump.
 * Prints errors; returns 0, or 1 when something could not be written. */
int cli_fq_outputs(const fq_fakequant *fq, const cli_opts *o);

/* When an output file was written to stdout ("-", /dev/stdout), points stdout at stderr
 * so that the summary printed after it does not end up inside the file. */
void cli_summary_after_stdout_file(const char *path);

#endif
