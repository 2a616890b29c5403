/* threadpool.h - a pool of worker threads created once; the calling thread takes part.
 *
 * fq_pool_run(p, fn, arg) calls fn(arg, ith, nth) on every thread (ith = 0 is the
 * caller) and returns when all have finished: a barrier per step. Kernels split their
 * rows by ith/nth and so give the same result for every thread count. Workers spin
 * briefly between steps (a decode step issues hundreds of short jobs) and then sleep. */
#ifndef FQ_THREADPOOL_H
#define FQ_THREADPOOL_H

#include "common.h"

typedef struct fq_pool fq_pool;
typedef void (*fq_pool_fn)(void *arg, int ith, int nth);

/* Creates a pool of n_threads (>= 1) including the caller. NULL with e set on failure. */
fq_pool *fq_pool_new(int n_threads, fq_err *e);
void fq_pool_free(fq_pool *p);
int fq_pool_size(const fq_pool *p);
void fq_pool_run(fq_pool *p, fq_pool_fn fn, void *arg);
void fq_pool_run_n(fq_pool *p, fq_pool_fn fn, void *arg, int n_chunks);

/* Rows [*r0, *r1) of n for thread ith of nth, in contiguous chunks. */
static inline void fq_split(int64_t n, int ith, int nth, int64_t *r0, int64_t *r1) {
    int64_t per = (n + nth - 1) / nth;
    *r0 = FQ_MIN(n, per * ith);
    *r1 = FQ_MIN(n, *r0 + per);
}

/* Number of physical cores (falls back to online CPUs). */
int fq_physical_cores(void);

#endif
