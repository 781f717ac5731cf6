/* The CPU backend's thread pool (backends/cpu/threadpool.c): every index of every job is run
 * exactly once and the job is complete when cpu_parallel_for returns, whether the workers
 * spin between jobs, sleep at once, or wake from sleep after a pause longer than the spin;
 * with more threads than CPUs (no spinning); and through create/destroy churn, idle or right
 * after a job. Jobs follow each other back to back (a worker still spinning on the last job
 * must not miss the next one nor run it twice). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backends/cpu/cpu_impl.h"
#include "core/alloc.h"

#define MAX_N 4096

typedef struct job {
    atomic_int hits[MAX_N];
    atomic_int calls;
    int max_tid;
    int n_threads;
    atomic_int bad_tid;
} job;

static void count_range(void *arg, int64_t b, int64_t e, int tid)
{
    job *j = arg;
    if (tid < 0 || tid >= j->n_threads)
        atomic_store(&j->bad_tid, 1);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&j->hits[i], 1);
    atomic_fetch_add(&j->calls, 1);
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Runs `jobs` jobs of pseudo-random sizes; pause_us > 0 sleeps that long between some of them. */
static void run_jobs(int n_threads, int spin_us, int jobs, long pause_us)
{
    sh_allocator *a = sh_allocator_create();
    cpu_pool *p = NULL;
    assert_int_equal(cpu_pool_create(a, n_threads, spin_us, &p), 0);
    assert_int_equal(cpu_pool_threads(p), n_threads);
    job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->n_threads = n_threads;
    uint32_t r = 12345u;
    for (int k = 0; k < jobs; k++) {
        r = r * 1664525u + 1013904223u;
        int64_t n = 1 + (int64_t)(r >> 8) % MAX_N;
        memset(j->hits, 0, sizeof j->hits);
        if (k % 2)
            cpu_parallel_for(p, n, 1 + (int64_t)(r & 7), count_range, j);
        else
            cpu_parallel_for_chunks(p, n, 1 + (int64_t)(r & 63), count_range, j);
        for (int64_t i = 0; i < MAX_N; i++)
            if (atomic_load(&j->hits[i]) != (i < n ? 1 : 0))
                fail_msg("job %d (n %lld): index %lld ran %d times", k, (long long)n, (long long)i,
                         atomic_load(&j->hits[i]));
        if (pause_us > 0 && k % 8 == 7)
            sleep_us(pause_us);
    }
    assert_int_equal(atomic_load(&j->bad_tid), 0);
    free(j);
    cpu_pool_destroy(p);
    sh_allocator_destroy(a);
}

static void spinning_back_to_back(void **state)
{
    (void)state;
    run_jobs(2, 0, 3000, 0);
    run_jobs(4, 1000, 1000, 0);
}

static void sleeping_at_once(void **state)
{
    (void)state;
    run_jobs(2, -1, 2000, 0);
    run_jobs(3, -1, 500, 0);
}

/* Pauses of 2 ms, ten times the default spin: the workers are asleep when the job comes. */
static void waking_after_the_spin(void **state)
{
    (void)state;
    run_jobs(2, 0, 200, 2000);
    run_jobs(2, 50, 200, 300);
}

static void more_threads_than_cpus(void **state)
{
    (void)state;
    run_jobs(32, 0, 300, 0);
}

static void single_thread_runs_inline(void **state)
{
    (void)state;
    run_jobs(1, 0, 300, 0);
}

static void create_destroy_churn(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    for (int k = 0; k < 200; k++) {
        cpu_pool *p = NULL;
        int threads = 2 + k % 3;
        assert_int_equal(cpu_pool_create(a, threads, k % 2 ? -1 : 0, &p), 0);
        j->n_threads = threads;
        if (k % 4) {   /* destroyed right after a job, its workers still spinning */
            memset(j->hits, 0, sizeof j->hits);
            cpu_parallel_for(p, 100, 1, count_range, j);
            for (int i = 0; i < 100; i++)
                assert_int_equal(atomic_load(&j->hits[i]), 1);
        }
        cpu_pool_destroy(p);
    }
    free(j);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spinning_back_to_back),
        cmocka_unit_test(sleeping_at_once),
        cmocka_unit_test(waking_after_the_spin),
        cmocka_unit_test(more_threads_than_cpus),
        cmocka_unit_test(single_thread_runs_inline),
        cmocka_unit_test(create_destroy_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
