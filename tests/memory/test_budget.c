#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fake_backend.h"
#include "memory/budget.h"
#include "memory/pool.h"

typedef struct watch {
    int n_events, violations;
} watch;

/* Runs at every charge/release under the budget's lock. */
static void watch_hook(void *user, const sh_budget_event *ev)
{
    watch *w = user;
    w->n_events++;
    if ((ev->device_limit && ev->device_in_use > ev->device_limit) || (ev->host_limit && ev->host_in_use > ev->host_limit))
        w->violations++;
}

static void charges_by_kind_and_model(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_budget *b;
    sh_err err = {0};
    assert_int_equal(sh_budget_create(a, "dev0", 1000, 300, 3, &b, &err), 0);
    watch w = {0};
    sh_budget_set_hook(b, watch_hook, &w);
    assert_int_equal(sh_budget_reserve(b, SH_MEM_WEIGHTS, 0, 400, &err), 0);
    assert_int_equal(sh_budget_reserve(b, SH_MEM_ACTIVATIONS, SH_BUDGET_SHARED, 300, &err), 0);
    assert_int_equal(sh_budget_reserve(b, SH_MEM_WEIGHTS, 2, 200, &err), 0);
    assert_int_equal(sh_budget_reserve(b, SH_MEM_HOST_CACHE, 1, 300, &err), 0);   /* own limit */
    assert_int_equal(sh_budget_available(b, SH_MEM_STAGING), 100);
    assert_int_equal(sh_budget_model_in_use(b, 0, SH_MEM_WEIGHTS), 400);
    assert_int_equal(sh_budget_model_in_use(b, 2, SH_MEM_WEIGHTS), 200);
    assert_int_equal(sh_budget_model_in_use(b, SH_BUDGET_SHARED, SH_MEM_ACTIVATIONS), 300);

    /* Refusal: names needed and available bytes; nothing changes. */
    sh_budget_stats before, after;
    sh_budget_get_stats(b, &before);
    assert_int_equal(sh_budget_reserve(b, SH_MEM_WORKSPACE, 1, 101, &err), SHOAL_ERR_BUDGET);
    assert_non_null(strstr(err.msg, "needs 101 bytes"));
    assert_non_null(strstr(err.msg, "100 available"));
    assert_non_null(strstr(err.msg, "dev0"));
    assert_int_equal(sh_budget_reserve(b, SH_MEM_HOST_CACHE, 1, 1, &err), SHOAL_ERR_BUDGET);
    assert_int_equal(sh_budget_reserve(b, SH_MEM_WEIGHTS, 3, 1, &err), SHOAL_ERR_INVALID_ARG);
    sh_budget_get_stats(b, &after);
    assert_int_equal(after.device_in_use, before.device_in_use);
    assert_memory_equal(after.in_use, before.in_use, sizeof after.in_use);
    assert_int_equal(after.n_refused, 2);

    sh_budget_release(b, SH_MEM_WEIGHTS, 0, 400);
    assert_true(sh_budget_fits(b, SH_MEM_WORKSPACE, 500));
    assert_int_equal(sh_budget_reserve(b, SH_MEM_WORKSPACE, 1, 500, &err), 0);
    sh_budget_get_stats(b, &after);
    assert_int_equal(after.device_in_use, 1000);
    assert_int_equal(after.device_peak, 1000);
    assert_int_equal(after.peak[SH_MEM_WEIGHTS], 600);
    assert_int_equal(w.violations, 0);
    assert_int_equal(w.n_events, 6);
    sh_budget_release(b, SH_MEM_WORKSPACE, 1, 500);
    sh_budget_release(b, SH_MEM_WEIGHTS, 2, 200);
    sh_budget_release(b, SH_MEM_ACTIVATIONS, SH_BUDGET_SHARED, 300);
    sh_budget_release(b, SH_MEM_HOST_CACHE, 1, 300);
    sh_budget_get_stats(b, &after);
    assert_int_equal(after.device_in_use, 0);
    assert_int_equal(after.in_use[SH_MEM_HOST_CACHE], 0);
    sh_budget_set_limit(b, 0, 0);
    assert_int_equal(sh_budget_available(b, SH_MEM_WEIGHTS), SIZE_MAX);
    sh_budget_destroy(b);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

typedef struct worker {
    sh_budget *b;
    unsigned seed;
    int ok;
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    size_t held[2][SH_MEM_KIND_COUNT] = {{0}};
    for (int i = 0; i < 20000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        sh_mem_kind k = (sh_mem_kind)((w->seed >> 8) % SH_MEM_KIND_COUNT);
        int m = (int)((w->seed >> 24) & 1);
        size_t n = (w->seed >> 12) % 200;
        if ((w->seed >> 20) & 1) {
            if (sh_budget_reserve(w->b, k, m, n, NULL) == 0) {
                held[m][k] += n;
                w->ok++;
            }
        } else if (held[m][k] >= n) {
            sh_budget_release(w->b, k, m, n);
            held[m][k] -= n;
        }
    }
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < SH_MEM_KIND_COUNT; k++)
            sh_budget_release(w->b, (sh_mem_kind)k, m, held[m][k]);
    return NULL;
}

static void never_exceeds_under_threads(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_budget *b;
    assert_int_equal(sh_budget_create(a, "dev", 5000, 2000, 2, &b, NULL), 0);
    watch w = {0};
    sh_budget_set_hook(b, watch_hook, &w);
    worker ws[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ws[i] = (worker){b, (unsigned)i * 7919u + 1, 0};
        pthread_create(&th[i], NULL, hammer, &ws[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(w.violations, 0);
    sh_budget_stats st;
    sh_budget_get_stats(b, &st);
    assert_true(st.device_peak <= 5000);
    assert_true(st.peak[SH_MEM_HOST_CACHE] <= 2000);
    assert_true(st.n_refused > 0);
    assert_int_equal(st.device_in_use, 0);
    assert_int_equal(st.in_use[SH_MEM_HOST_CACHE], 0);
    sh_budget_destroy(b);
    sh_allocator_destroy(a);
}

/* ---- device pool ---------------------------------------------------------------------- */

static void pool_first_fit_coalesces_and_returns_chunks(void **state)
{
    sh_allocator *a = sh_allocator_create();
    fake_dev d;
    sh_backend be;
    fake_backend_init(&d, &be, 0);
    sh_budget *b;
    assert_int_equal(sh_budget_create(a, "dev", 10000 + 2 * 255, 0, 1, &b, NULL), 0);
    watch w = {0};
    sh_budget_set_hook(b, watch_hook, &w);
    sh_device_pool *p;
    sh_err err = {0};
    assert_int_equal(sh_device_pool_create(a, &be, b, SH_MEM_WEIGHTS, 4096, 256, &p, &err), 0);
    void *x, *y, *z, *big;
    assert_int_equal(sh_device_pool_alloc(p, 1000, &x, &err), 0);   /* 1024 */
    assert_int_equal(sh_device_pool_alloc(p, 1024, &y, &err), 0);
    assert_int_equal(sh_device_pool_alloc(p, 100, &z, &err), 0);    /* 256 */
    assert_int_equal((uintptr_t)x % 256, 0);
    assert_ptr_equal((char *)y, (char *)x + 1024);
    assert_ptr_equal((char *)z, (char *)x + 2048);
    sh_device_pool_stats st;
    sh_device_pool_get_stats(p, &st);
    assert_int_equal(st.n_chunks, 1);
    assert_int_equal(st.reserved, 4096 + 255);   /* the fake aligns to 64 only */
    assert_int_equal(sh_budget_model_in_use(b, SH_BUDGET_SHARED, SH_MEM_WEIGHTS), 4096 + 255);
    /* Free x and y: they merge, so a 2048 request fits where they were. */
    sh_device_pool_free(p, x);
    sh_device_pool_free(p, y);
    assert_int_equal(sh_device_pool_charge_for(p, 2048), 0);
    void *xy;
    assert_int_equal(sh_device_pool_alloc(p, 2048, &xy, &err), 0);
    assert_ptr_equal(xy, x);
    /* Larger than a chunk: its own chunk of its size. */
    assert_int_equal(sh_device_pool_charge_for(p, 5000), 5120 + 255);
    assert_int_equal(sh_device_pool_alloc(p, 5000, &big, &err), 0);
    sh_device_pool_get_stats(p, &st);
    assert_int_equal(st.reserved, 4096 + 5120 + 2 * 255);
    /* Budget refusal and device refusal change nothing. */
    void *no;
    assert_int_equal(sh_device_pool_alloc(p, 4000, &no, &err), SHOAL_ERR_BUDGET);
    assert_null(no);
    d.fail_buffer_after = 0;
    sh_budget_set_limit(b, 0, 0);
    size_t dev_before = sh_allocator_stats(d.device).in_use;
    assert_int_equal(sh_device_pool_alloc(p, 4000, &no, &err), SHOAL_ERR_NO_MEMORY);
    assert_int_equal(sh_budget_model_in_use(b, SH_BUDGET_SHARED, SH_MEM_WEIGHTS), 4096 + 5120 + 2 * 255);
    assert_int_equal(sh_allocator_stats(d.device).in_use, dev_before);
    /* Host bookkeeping failure: the first allocation of a new chunk fails cleanly. */
    sh_allocator_fail_after(a, 0, 0);
    assert_int_equal(sh_device_pool_alloc(p, 4000, &no, &err), SHOAL_ERR_NO_MEMORY);
    assert_int_equal(sh_budget_model_in_use(b, SH_BUDGET_SHARED, SH_MEM_WEIGHTS), 4096 + 5120 + 2 * 255);
    /* Emptying a chunk gives it back to the device and the budget. */
    sh_device_pool_free(p, big);
    sh_device_pool_free(p, xy);
    sh_device_pool_free(p, z);
    sh_device_pool_get_stats(p, &st);
    assert_int_equal(st.n_chunks, 0);
    assert_int_equal(st.used, 0);
    assert_int_equal(sh_budget_model_in_use(b, SH_BUDGET_SHARED, SH_MEM_WEIGHTS), 0);
    assert_int_equal(sh_allocator_stats(d.device).in_use, 0);
    assert_int_equal(w.violations, 0);
    sh_device_pool_destroy(p);
    sh_budget_destroy(b);
    fake_backend_fini(&d);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void pool_random_churn_stays_consistent(void **state)
{
    sh_allocator *a = sh_allocator_create();
    fake_dev d;
    sh_backend be;
    fake_backend_init(&d, &be, 0);
    sh_budget *b;
    assert_int_equal(sh_budget_create(a, "dev", 1 << 20, 0, 1, &b, NULL), 0);
    sh_device_pool *p;
    assert_int_equal(sh_device_pool_create(a, &be, b, SH_MEM_ACTIVATIONS, 16384, 64, &p, NULL), 0);
    void *live[64] = {0};
    size_t sz[64] = {0};
    unsigned s = 12345;
    for (int i = 0; i < 5000; i++) {
        s = s * 1103515245u + 12345u;
        int k = (int)((s >> 8) % 64);
        if (live[k]) {
            /* The range still holds what was written: no overlap with any other. */
            for (size_t j = 0; j < sz[k]; j++)
                assert_int_equal(((unsigned char *)live[k])[j], (unsigned char)k);
            sh_device_pool_free(p, live[k]);
            live[k] = NULL;
        } else {
            sz[k] = 1 + (s >> 16) % 3000;
            if (sh_device_pool_alloc(p, sz[k], &live[k], NULL) == 0)
                memset(live[k], k, sz[k]);
        }
    }
    for (int k = 0; k < 64; k++)
        sh_device_pool_free(p, live[k]);
    sh_device_pool_stats st;
    sh_device_pool_get_stats(p, &st);
    assert_int_equal(st.n_chunks, 0);
    assert_int_equal(sh_allocator_stats(d.device).in_use, 0);
    sh_device_pool_destroy(p);
    sh_budget_destroy(b);
    fake_backend_fini(&d);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(charges_by_kind_and_model),
        cmocka_unit_test(never_exceeds_under_threads),
        cmocka_unit_test(pool_first_fit_coalesces_and_returns_chunks),
        cmocka_unit_test(pool_random_churn_stays_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
