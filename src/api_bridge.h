/* api_bridge.h - for the fqlm program only: the public API (include/fqlm.h) over a model and
 * context the CLI made itself (its options, messages and checks), so that the CLI runs the
 * same public entry points (fqlm_sweep_*) a C or Python user runs. Not part of the public API. */
#ifndef FQ_API_BRIDGE_H
#define FQ_API_BRIDGE_H

#include "fqlm.h"
#include "forward.h"
#include "model.h"

/* A context handle over m and ctx, which stay the caller's: fqlm_context_free frees the
 * handle only. seed: stochastic rounding; exact: for the statistics. NULL with e set. */
fqlm_context *fq_api_context_wrap(fq_model *m, fq_ctx *ctx, uint64_t seed, int exact, fq_err *e);

#endif
