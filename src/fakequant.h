/* fakequant.h - fake-quantization rules acting on the forward pass, and what they did.
 *
 * A rule names nodes (llama.cpp names, a comma list or a glob), layers and a number
 * format (formats.h); at every marked (node, layer) the forward pass hands the node's
 * values to the rule right after computing them, and the rule rounds them in place and
 * adds to its statistics. Weight rules (`weight:GLOB=FORMAT`) round decoded weights once
 * at load and keep them as F32. The first application at each (node, layer) is logged;
 * a rule that never fired is reported loudly. --dump selections write node values
 * (before and after rounding) as .npy files. */
#ifndef FQ_FAKEQUANT_H
#define FQ_FAKEQUANT_H

#include <stdio.h>

#include "common.h"
#include "forward.h"
#include "model.h"

typedef struct fq_fakequant fq_fakequant;

/* An empty rule set for model m. NULL with e set on no memory. */
fq_fakequant *fq_fakequant_new(const fq_model *m, fq_err *e);
void fq_fakequant_free(fq_fakequant *f);

/* Adds one --fq rule: NODES[@LAYERS]=FORMAT[:options], or weight:GLOB=FORMAT[:options].
 * Errors (unknown node, layer out of range, unknown format) list what is valid. */
int fq_fakequant_add_rule(fq_fakequant *f, const char *rule, fq_err *e);
/* The report's flags: --fake-quant-ffn-norm TYPE with --fake-quant-layer N (NULL: the
 * last layer; -1: all), and --fake-quant TYPE on the logits. Any may be NULL. */
int fq_fakequant_add_legacy(fq_fakequant *f, const char *ffn_norm_fmt, const char *layer,
                            const char *logits_fmt, fq_err *e);
/* Selects nodes whose values --dump writes into dir (NODES[@LAYERS], like a rule). */
int fq_fakequant_add_dump(fq_fakequant *f, const char *sel, const char *dir, fq_err *e);
int fq_fakequant_n_rules(const fq_fakequant *f);

/* Seed of stochastic rounding (default 0). */
void fq_fakequant_set_seed(fq_fakequant *f, uint64_t seed);
/* 1 when a rule rounds stochastically (its figures depend on the seed), else 0. */
int fq_fakequant_stochastic(const fq_fakequant *f);
/* Where first-application lines go (NULL: silent). */
void fq_fakequant_set_log(fq_fakequant *f, FILE *log);

/* Applies weight rules to m (decodes, rounds, keeps F32 copies). Logs the memory cost. */
int fq_fakequant_apply_weights(fq_fakequant *f, fq_model *m, fq_err *e);
/* Installs the rules (and dumps) as c's hook. */
void fq_fakequant_attach(fq_fakequant *f, fq_ctx *c);

/* Calls fn on every node after the rules acted (tests, capture). Call before attach. */
void fq_fakequant_set_observer(fq_fakequant *f, fq_hook_fn fn, void *ud);

/* Hooks every node (values are left as they are unless a rule targets them), so that
 * fq_fakequant_nonfinite names the node where NaN/Inf first appear. Call before attach. */
void fq_fakequant_set_check_all(fq_fakequant *f, int on);
/* The first hooked (node, layer) whose values held a NaN or an Inf since the rules were
 * made, in words into buf ("kq-0 at position 3 (12 NaN, 0 Inf of 64 values), made so by
 * rule 'kq=e2m1:fn,sat=off'"), and a weight rule that left NaN/Inf in a weight. Returns 0
 * when none was seen, 2 when a rule made them, 1 when a node computed them, 3 when only a
 * weight rule did. */
int fq_fakequant_nonfinite(const fq_fakequant *f, char *buf, size_t n);

/* Clears the statistics (not the first-application log state). */
void fq_fakequant_reset_stats(fq_fakequant *f);
/* Total applications over all rules. */
uint64_t fq_fakequant_applications(const fq_fakequant *f);

/* The per-(node, layer, format) table; states the arithmetic mode. Warns about rules
 * that never fired. Returns the number of rules that never fired. */
int fq_fakequant_report(const fq_fakequant *f, FILE *out, int exact);
/* The same as JSON into a malloc'd string: {"arithmetic", "note", "nodes": [rows]}. */
char *fq_fakequant_json(const fq_fakequant *f, int exact);
/* The "nodes" array of that object (one row per rule target), written into w. */
struct jsonw;
void fq_fakequant_json_nodes(const fq_fakequant *f, struct jsonw *w);
/* For callers that chain their own hook with the rules' (the public API): marks in mask
 * (fq_hook_mask_size bytes) the (node, layer) slots of a selection NODES[@LAYERS]; the
 * mask of the rules and dumps (as attach installs it); the rules' hook itself. */
int fq_fakequant_select(fq_fakequant *f, const char *sel, uint8_t *mask, fq_err *e);
const uint8_t *fq_fakequant_mask(const fq_fakequant *f);
void fq_fakequant_hook(void *ud, const fq_hook_call *c);
/* Error from a --dump write, if any happened (NULL when none). */
const char *fq_fakequant_dump_error(const fq_fakequant *f);

#endif
