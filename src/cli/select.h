/* select.h - what sweep and plan select: layer lists and format lists, parsed one way for
 * both (on the public API, include/fqlm.h). */
#ifndef FQ_CLI_SELECT_H
#define FQ_CLI_SELECT_H

/* "N, N-M, N,M,... or * (all, -1)" for a model of n_layer layers into *layers (malloc'd,
 * ascending, no repeats) and *n. Returns 0, or -1 after printing an error naming opt. */
int cli_parse_layers(const char *opt, const char *list, int n_layer, int **layers, int *n);

/* Comma-separated format specs into *specs (malloc'd canonical specs, repeats dropped) and
 * *n. A piece that is not a format on its own continues the previous format's options
 * ("int4:group=32,asym,bf16" is two formats). Returns 0, or -1 after printing an error
 * naming opt (an unknown format: the message lists the valid ones). */
int cli_parse_formats(const char *opt, const char *list, char ***specs, int *n);

/* The rows of a sweep directory's results.csv (read only; a partial or damaged line is
 * dropped with a note), *rows malloc'd. Returns 0, or 1 after printing an error. */
#include "report.h"
int cli_sweep_read_rows(const char *dir, sweep_row **rows, int *n);

#endif
