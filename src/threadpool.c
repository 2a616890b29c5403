/* threadpool.c - a worker pool with dynamically claimed chunks.
 *
 * A job is n_chunks calls fn(arg, chunk, n_chunks), each chunk exactly once, on whichever
 * thread claims it first. The caller claims chunks too, so when a worker is not running
 * (more threads than free cores) the caller does its share instead of waiting for it: a
 * loaded machine slows down to one thread's speed instead of collapsing. Chunk boundaries
 * never depend on which thread runs a chunk, so results are the same for every thread
 * count and schedule.
 *
 * The claim counter holds (job generation << 32 | next chunk); a worker that wakes late
 * for an old job fails its claim and goes back to waiting. A new job first closes the
 * counter (its generation, no chunk left), then writes its function, argument and chunk
 * count, then opens the counter: a late worker that read the old job's counter and then
 * the new job's count cannot claim with that mix, since its claim compares against the
 * closed counter and fails. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FQ_PAUSE() _mm_pause()
#else
#define FQ_PAUSE() ((void)0)
#endif

/* Spin this long for the next job before sleeping: decode issues a job every few
 * microseconds, so an idle machine keeps its workers hot, while an oversubscribed one
 * stops burning the cores the other threads need. */
#define FQ_SPIN_NS 50000

/* tests/test_threadpool.c compiles this file with a delay here, to widen the windows
 * between the steps of a claim and of publishing a job */
#ifndef FQ_POOL_RACE_WINDOW
#define FQ_POOL_RACE_WINDOW(where) ((void)0)
#endif
#define CLAIM_CLOSED 0xffffffffu /* next chunk of a closed counter: past any job's count */

struct fq_pool {
    int n;
    pthread_t *threads;
    /* the current job: written by the caller before the generation bump */
    _Atomic(fq_pool_fn) fn;
    _Atomic(void *) arg;
    _Atomic int64_t n_chunks;
    _Atomic uint64_t claim;    /* (gen << 32) | next chunk */
    _Atomic int64_t done;      /* chunks finished */
    _Atomic uint32_t gen;      /* bumped for each job; workers wait for a change */
    _Atomic int stop;
    _Atomic int n_sleeping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct {
    fq_pool *p;
} worker_arg;

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Claims and runs chunks of job gen until none is left (or the job is another one). */
static void work(fq_pool *p, uint32_t gen) {
    for (;;) {
        uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
        if ((uint32_t)(v >> 32) != gen) return;
        FQ_POOL_RACE_WINDOW(0);
        /* gen's count, or a later job's: that one was written after the counter was
         * closed (release/acquire order), so the claim below then fails */
        const int64_t n = atomic_load_explicit(&p->n_chunks, memory_order_acquire);
        const int64_t c = (int64_t)(v & 0xffffffffu);
        if (c >= n) return;
        FQ_POOL_RACE_WINDOW(1);
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        /* chunk c of job gen is ours and unfinished, so job gen is still the current one */
        const fq_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
        void *arg = atomic_load_explicit(&p->arg, memory_order_acquire);
        fn(arg, (int)c, (int)n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker_main(void *v) {
    worker_arg *wa = v;
    fq_pool *p = wa->p;
    free(wa);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
        uint64_t t0 = 0;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            FQ_PAUSE();
            if ((++spins & 63) != 0) continue;
            if (!t0) t0 = now_ns();
            if (now_ns() - t0 < FQ_SPIN_NS) continue;
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
            t0 = 0;
        }
        seen = g;
        if (atomic_load(&p->stop)) return NULL;
        work(p, g);
    }
}

fq_pool *fq_pool_new(int n_threads, fq_err *e) {
    if (n_threads < 1) {
        fq_errf(e, "thread count must be at least 1 (got %d)", n_threads);
        return NULL;
    }
    fq_pool *p = fq_calloc(1, sizeof *p, e);
    if (!p) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = fq_calloc((size_t)n_threads, sizeof(pthread_t), e);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->p = p, pthread_create(&p->threads[i], NULL, worker_main, wa)) != 0) {
            free(wa);
            p->n = i;
            fq_pool_free(p);
            fq_errf(e, "cannot start thread %d of %d", i, n_threads);
            return NULL;
        }
    }
    return p;
}

void fq_pool_free(fq_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store(&p->stop, 1);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->gen, 1);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int fq_pool_size(const fq_pool *p) { return p ? p->n : 1; }

void fq_pool_run_n(fq_pool *p, fq_pool_fn fn, void *arg, int n_chunks) {
    if (n_chunks < 1) return;
    if (!p || p->n == 1 || n_chunks == 1) {
        for (int c = 0; c < n_chunks; c++) fn(arg, c, n_chunks);
        return;
    }
    const uint32_t gen = atomic_load(&p->gen) + 1;
    /* close the counter first: no claim of the old job succeeds from here on. Relaxed (a
     * plain store, not a locked one, on this per-job path): a worker that reads the new count
     * below synchronizes with its release store, so its claim sees this closed counter */
    atomic_store_explicit(&p->claim, (uint64_t)gen << 32 | CLAIM_CLOSED, memory_order_relaxed);
    FQ_POOL_RACE_WINDOW(2);
    atomic_store_explicit(&p->fn, fn, memory_order_release);
    atomic_store_explicit(&p->arg, arg, memory_order_release);
    atomic_store_explicit(&p->n_chunks, n_chunks, memory_order_release);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    FQ_POOL_RACE_WINDOW(3);
    atomic_store_explicit(&p->claim, (uint64_t)gen << 32, memory_order_release);
    /* seq_cst bump, then the sleeper count: pairs with the worker's increment of
     * n_sleeping before its own re-check of gen, so one of the two sees the other */
    atomic_store(&p->gen, gen);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    work(p, gen);
    /* every chunk is claimed; wait for the ones still running elsewhere */
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) {
        FQ_PAUSE();
        if ((++spins & 255) == 0) sched_yield();
    }
}

void fq_pool_run(fq_pool *p, fq_pool_fn fn, void *arg) { fq_pool_run_n(p, fn, arg, fq_pool_size(p)); }

int fq_physical_cores(void) {
    /* count distinct (physical id, core id) pairs in /proc/cpuinfo */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int pairs[1024][2], n = 0, phys = 0;
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int dup = 0;
                for (int i = 0; i < n; i++) dup |= pairs[i][0] == phys && pairs[i][1] == v;
                if (!dup && n < 1024) pairs[n][0] = phys, pairs[n][1] = v, n++;
            }
        }
        fclose(f);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = online > 0 ? (int)online : 1;
    if (online > 0 && n > online) n = (int)online;
    return n;
}
