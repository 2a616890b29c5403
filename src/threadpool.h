/* threadpool.h - a pool of worker threads created once; the calling thread takes part.
 *
 * A job is a number of chunks: fq_pool_run_n(p, fn, arg, n) calls fn(arg, c, n) once for
 * each chunk c in 0..n-1, on whichever thread claims it first (the caller claims chunks
 * too), and returns when all have finished: a barrier per job. The chunk index, not the
 * thread, is what fn may depend on: kernels split their rows by (c, n), so results do
 * not depend on the thread count or on which thread ran what. fq_pool_run uses one chunk
 * per thread. Workers spin about 50 us for the next job (a decode step issues hundreds
 * of short jobs) and then sleep. */
#ifndef FQ_THREADPOOL_H
#define FQ_THREADPOOL_H

#include "common.h"

typedef struct fq_pool fq_pool;
typedef void (*fq_pool_fn)(void *arg, int ith, int nth);

/* Creates a pool of n_threads (>= 1) including the caller. NULL with e set on failure. */
fq_pool *fq_pool_new(int n_threads, fq_err *e);
void fq_pool_free(fq_pool *p);
int fq_pool_size(const fq_pool *p);
/* n_chunks calls fn(arg, chunk, n_chunks); none when n_chunks < 1. p NULL or of one
 * thread: the chunks run in order on the calling thread. */
void fq_pool_run_n(fq_pool *p, fq_pool_fn fn, void *arg, int n_chunks);
/* fq_pool_run_n with fq_pool_size(p) chunks. */
void fq_pool_run(fq_pool *p, fq_pool_fn fn, void *arg);

/* Rows [*r0, *r1) of n for chunk ith of nth (contiguous; the last ones may be empty). */
static inline void fq_split(int64_t n, int ith, int nth, int64_t *r0, int64_t *r1) {
    int64_t per = (n + nth - 1) / nth;
    *r0 = FQ_MIN(n, per * ith);
    *r1 = FQ_MIN(n, *r0 + per);
}

/* Number of physical cores (falls back to online CPUs). */
int fq_physical_cores(void);

#endif
