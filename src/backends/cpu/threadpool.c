/* A small fork-join pool owned by one CPU backend context.
 *
 * Workers wait for the caller to publish a job (a generation counter changes), then take
 * chunks of the range from an atomic cursor until it runs out; the caller takes chunks too
 * and waits until every worker has checked back in. One job at a time: the backend runs nodes
 * in order and kernels never nest parallel_for.
 *
 * Both waits spin for a short while before they sleep on a condition variable. A model is a
 * few hundred jobs with microseconds between them, and waking a sleeping thread costs tens of
 * microseconds on bare metal and more in a virtual machine, where an idle vCPU halts and needs
 * an interrupt from the host: on a 2-vCPU EPYC (AVX2) a 60 ms YOLO took 67-99 ms medians with
 * sleeping workers alone. The spin is bounded in time (spin_us), so an idle pool sleeps and a
 * loaded machine loses at most that much per gap; with more threads than CPUs it is off, as a
 * spinning thread would then hold the CPU its peer needs. */
#include "backends/cpu/cpu_impl.h"
#include "core/cpus.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

struct cpu_pool {
    sh_allocator *alloc;
    int n;                   /* threads including the caller */
    pthread_t *th;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int64_t spin_ns;         /* how long a wait spins before it sleeps; 0: it sleeps at once */
    atomic_ullong gen;       /* bumped (under mu) for each job and for stop */
    atomic_int busy;         /* workers still inside the current job */
    atomic_bool stop;
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

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until done(p, arg) or spin_ns have passed; returns done's last answer. The clock is
 * read every 64 pauses (a pause is tens of cycles). */
static bool spin_until(const cpu_pool *p, bool (*done)(const cpu_pool *, uint64_t), uint64_t arg)
{
    if (p->spin_ns <= 0)
        return done(p, arg);
    int64_t end = now_ns() + p->spin_ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(p, arg))
                return true;
            cpu_relax();
        }
        if (now_ns() >= end)
            return done(p, arg);
    }
}

static bool job_published(const cpu_pool *p, uint64_t seen)
{
    return atomic_load_explicit(&p->gen, memory_order_acquire) != seen;
}

static bool workers_done(const cpu_pool *p, uint64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&p->busy, memory_order_acquire) == 0;
}

static void *worker_main(void *v)
{
    cpu_pool *p = ((worker_arg *)v)->p;
    int tid = ((worker_arg *)v)->tid;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until(p, job_published, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!job_published(p, seen))
                pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (atomic_load(&p->stop))
            break;
        run_chunks(p, tid);
        /* The last one out wakes the caller if it went to sleep: under mu, so the caller's
         * check-then-wait cannot miss it. */
        if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* The worker args live right after the thread handles, in one block. */
int cpu_pool_create(sh_allocator *a, int n_threads, int spin_us, cpu_pool **out)
{
    *out = NULL;
    int cpus = sh_cpu_count();
    if (n_threads <= 0)
        n_threads = cpus;
    if (n_threads > 256)
        n_threads = 256;
    cpu_pool *p = sh_calloc(a, 1, sizeof *p);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->alloc = a;
    p->n = n_threads;
    if (spin_us == 0)
        spin_us = CPU_POOL_SPIN_US;
    p->spin_ns = spin_us > 0 && n_threads <= cpus ? (int64_t)spin_us * 1000 : 0;
    atomic_init(&p->gen, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->stop, false);
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
    atomic_store(&p->stop, true);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
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
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->chunk = chunk;
    atomic_store(&p->next, 0);
    /* All workers wake (they share one generation); idle ones find the cursor exhausted.
     * The release of gen publishes the job's fields to a spinning worker's acquire. */
    atomic_store(&p->busy, p->n_started);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    if (!spin_until(p, workers_done, 0)) {
        pthread_mutex_lock(&p->mu);
        while (!workers_done(p, 0))
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
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
