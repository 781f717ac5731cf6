/* A small fork-join pool owned by one CPU backend context.
 *
 * Workers sleep on a condition variable until the caller publishes a job (a generation
 * counter changes), then take chunks of the range from an atomic cursor until it runs
 * out; the caller takes chunks too and waits until every worker has checked back in.
 * One job at a time: the backend runs nodes in order and kernels never nest parallel_for. */
#include "backends/cpu/cpu_impl.h"
#include "core/cpus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

struct cpu_pool {
    sh_allocator *alloc;
    int n;                   /* threads including the caller */
    pthread_t *th;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    uint64_t gen;
    int busy;                /* workers still inside the current job */
    bool stop;
    /* current job */
    cpu_range_fn fn;
    void *arg;
    int64_t total, chunk;
    atomic_llong next;
};

typedef struct worker_arg {
    cpu_pool *p;
    int tid;
} worker_arg;

static void run_chunks(cpu_pool *p, int tid)
{
    for (;;) {
        int64_t b = (int64_t)atomic_fetch_add(&p->next, p->chunk);
        if (b >= p->total)
            break;
        int64_t e = b + p->chunk < p->total ? b + p->chunk : p->total;
        p->fn(p->arg, b, e, tid);
    }
}

static void *worker_main(void *v)
{
    cpu_pool *p = ((worker_arg *)v)->p;
    int tid = ((worker_arg *)v)->tid;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The worker args live right after the thread handles, in one block. */
int cpu_pool_create(sh_allocator *a, int n_threads, cpu_pool **out)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = sh_cpu_count();
    if (n_threads > 256)
        n_threads = 256;
    cpu_pool *p = sh_calloc(a, 1, sizeof *p);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->alloc = a;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->next, 0);
    if (n_threads > 1) {
        size_t nw = (size_t)(n_threads - 1);
        p->th = sh_calloc(a, nw, sizeof(pthread_t) + sizeof(worker_arg));
        if (!p->th) {
            cpu_pool_destroy(p);
            return SHOAL_ERR_NO_MEMORY;
        }
        worker_arg *wa = (worker_arg *)(p->th + nw);
        for (size_t i = 0; i < nw; i++) {
            wa[i].p = p;
            wa[i].tid = (int)i + 1;
            if (pthread_create(&p->th[i], NULL, worker_main, &wa[i]) != 0) {
                cpu_pool_destroy(p);
                return SHOAL_ERR_BACKEND;
            }
            p->n_started++;
        }
    }
    *out = p;
    return 0;
}

void cpu_pool_destroy(cpu_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    sh_free(p->alloc, p->th);
    sh_free(p->alloc, p);
}

int cpu_pool_threads(const cpu_pool *p)
{
    return p ? p->n : 1;
}

static void run_job(cpu_pool *p, int64_t n, int64_t chunk, cpu_range_fn fn, void *arg)
{
    int64_t n_chunks = (n + chunk - 1) / chunk;
    if (!p || p->n_started == 0 || n_chunks <= 1) {
        fn(arg, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    /* All workers wake (they share one generation); idle ones find the cursor exhausted. */
    p->busy = p->n_started;
    p->gen++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void cpu_parallel_for(cpu_pool *p, int64_t n, int64_t grain, cpu_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int nt = p ? p->n_started + 1 : 1;
    /* About 4 chunks per thread evens out uneven chunks without much cursor traffic. */
    int64_t chunk = (n + (int64_t)nt * 4 - 1) / ((int64_t)nt * 4);
    run_job(p, n, chunk < grain ? grain : chunk, fn, arg);
}

void cpu_parallel_for_chunks(cpu_pool *p, int64_t n, int64_t chunk, cpu_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    run_job(p, n, chunk < 1 ? 1 : chunk, fn, arg);
}
