/* test_threadpool.c - the pool's promise under stress: every chunk of a job runs exactly
 * once, with that job's function, argument and chunk count, and all of them have finished
 * when fq_pool_run_n returns.
 *
 * Jobs of different chunk counts follow each other as the forward pass issues them (a
 * matmul of 8 chunks, attention of more, norms of 2). A worker that wakes late for a
 * finished job must not take a chunk of the next one with the old count, nor run one the
 * caller does not wait for: such a chunk shows up as a count other than 1, a wrong nth,
 * or an increment after the job returned (checked again at the end). The pools have more
 * threads than this machine has cores, and the pool is compiled here with random delays
 * at the points between the steps of a claim and of publishing a job (FQ_POOL_RACE_WINDOW),
 * so the interleavings that are one in millions in the engine happen here many times. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

/* a random pause of 0..~2 us, now and then a yield of the core */
static _Thread_local uint64_t t_rng;
static void race_window(int where) {
    if (!t_rng) t_rng = (uint64_t)(uintptr_t)&t_rng * 0x9E3779B97F4A7C15ull | 1;
    t_rng ^= t_rng << 13, t_rng ^= t_rng >> 7, t_rng ^= t_rng << 17;
    const unsigned r = (unsigned)(t_rng >> 40);
    if ((int)(r & 63) == where) sched_yield();
    for (volatile unsigned i = 0; i < (r & 1023); i++) {
    }
}
#define FQ_POOL_RACE_WINDOW(where) race_window(where)
#include "../src/threadpool.c"

#include "harness.h"

enum { MAX_CHUNKS = 40 };

typedef struct {
    int n;
    _Atomic int live;
    _Atomic int runs[MAX_CHUNKS];
    _Atomic int bad_nth;
    _Atomic int after_return;
} job;

static _Atomic long g_work;

static void chunk_fn(void *arg, int ith, int nth) {
    job *j = arg;
    if (nth != j->n || ith < 0 || ith >= j->n) {
        atomic_fetch_add(&j->bad_nth, 1);
        return;
    }
    if (!atomic_load(&j->live)) atomic_fetch_add(&j->after_return, 1);
    /* a little work, different per chunk, so that chunks end at different times */
    long s = 0;
    for (int i = 0; i < (ith * 37 + j->n * 11) % 97; i++) s += i ^ ith;
    atomic_fetch_add_explicit(&g_work, s, memory_order_relaxed);
    atomic_fetch_add(&j->runs[ith], 1);
}

static void stress(int n_threads, int n_jobs) {
    fq_err e;
    fq_pool *p = fq_pool_new(n_threads, &e);
    CHECK(p != NULL, "pool of %d threads", n_threads);
    if (!p) return;
    job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
    CHECK(jobs != NULL, "job array");
    if (!jobs) {
        fq_pool_free(p);
        return;
    }
    static const int counts[] = {8, 2, 40, 3, 8, 1, 17, 2, 5, 32};
    int wrong_at_return = 0, first_wrong = -1;
    for (int k = 0; k < n_jobs; k++) {
        job *j = &jobs[k];
        j->n = counts[(k * 7 + k / 10) % (int)(sizeof counts / sizeof *counts)];
        atomic_store(&j->live, 1);
        fq_pool_run_n(p, chunk_fn, j, j->n);
        atomic_store(&j->live, 0);
        int ok = atomic_load(&j->bad_nth) == 0;
        for (int c = 0; c < j->n; c++) ok &= atomic_load(&j->runs[c]) == 1;
        if (!ok) {
            wrong_at_return++;
            if (first_wrong < 0) first_wrong = k;
        }
    }
    fq_pool_free(p); /* joins the workers: nothing runs after this */
    int late = 0, wrong_at_end = 0, extra = 0;
    for (int k = 0; k < n_jobs; k++) {
        late += atomic_load(&jobs[k].after_return);
        int ok = atomic_load(&jobs[k].bad_nth) == 0;
        for (int c = 0; c < MAX_CHUNKS; c++) {
            const int r = atomic_load(&jobs[k].runs[c]);
            ok &= c < jobs[k].n ? r == 1 : r == 0;
            extra += c >= jobs[k].n && r;
        }
        wrong_at_end += !ok;
    }
    CHECK(wrong_at_return == 0, "%d threads: %d of %d jobs returned with a chunk not run exactly once or a wrong "
          "chunk count (first: job %d)", n_threads, wrong_at_return, n_jobs, first_wrong);
    CHECK(late == 0, "%d threads: %d chunks ran after their job had returned", n_threads, late);
    CHECK(wrong_at_end == 0 && extra == 0, "%d threads: %d jobs with chunks run twice or with another job's "
          "count (%d chunks past a job's count)", n_threads, wrong_at_end, extra);
    free(jobs);
}

int main(void) {
    /* one thread: the chunks run in order on the caller */
    stress(1, 1000);
    stress(2, 40000);
    stress(3, 40000);
    stress(5, 10000);
    return TEST_END();
}
