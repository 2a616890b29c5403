/* threadpool.c - spin-then-sleep worker pool with a generation counter. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FQ_PAUSE() _mm_pause()
#else
#define FQ_PAUSE() ((void)0)
#endif

#define FQ_SPIN_ITERS (1 << 17)

struct fq_pool {
    int n;
    pthread_t *threads;
    fq_pool_fn fn;
    void *arg;
    _Atomic uint64_t gen;      /* bumped for each job; workers wait for a change */
    _Atomic int pending;       /* workers still running the current job */
    _Atomic int stop;
    _Atomic int n_sleeping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct {
    fq_pool *p;
    int ith;
} worker_arg;

static void *worker_main(void *v) {
    worker_arg *wa = v;
    fq_pool *p = wa->p;
    int ith = wa->ith;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            if (++spins < FQ_SPIN_ITERS) {
                FQ_PAUSE();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load(&p->stop)) return NULL;
        p->fn(p->arg, ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
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
        if (!wa || (wa->p = p, wa->ith = i, pthread_create(&p->threads[i], NULL, worker_main, wa)) != 0) {
            free(wa);
            p->n = i;
            fq_pool_free(p);
            fq_errf(e, "cannot start thread %d of %d", i, n_threads);
            return NULL;
        }
    }
    return p;
}

static void wake_all(fq_pool *p) {
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

void fq_pool_free(fq_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store(&p->stop, 1);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
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

void fq_pool_run(fq_pool *p, fq_pool_fn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    /* seq_cst bump, then the sleeper count: pairs with the worker's increment of
     * n_sleeping before its own re-check of gen, so one of the two always sees the other */
    atomic_fetch_add(&p->gen, 1);
    wake_all(p);
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < FQ_SPIN_ITERS) FQ_PAUSE();
        else sched_yield();
    }
}

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
