/* The job queue's host gate (src/server/jobs.c): charges past the limit are refused and
 * counted, nothing is charged by a refusal, and what is given back can be charged again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/jobs.h"

static void host_gate_bounds_charges(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_job_queue *q = sh_job_queue_create(a, 1, 2, 100);
    assert_non_null(q);
    assert_true(sh_job_queue_charge(q, 60));
    assert_false(sh_job_queue_charge(q, 41));   /* 101 > 100 */
    assert_true(sh_job_queue_charge(q, 40));    /* exactly the limit */
    assert_false(sh_job_queue_charge(q, 1));
    assert_false(sh_job_queue_charge(q, SIZE_MAX));
    sh_job_queue_stats st;
    sh_job_queue_get_stats(q, &st);
    assert_int_equal(st.host_in_use, 100);
    assert_int_equal(st.host_peak, 100);
    assert_int_equal(st.host_limit, 100);
    assert_int_equal(st.host_refused, 3);
    sh_job_queue_uncharge(q, 60);
    assert_true(sh_job_queue_charge(q, 60));
    sh_job_queue_uncharge(q, 100);
    sh_job_queue_get_stats(q, &st);
    assert_int_equal(st.host_in_use, 0);
    assert_true(sh_job_queue_charge(q, 100));   /* one image as large as the limit fits alone */
    sh_job_queue_uncharge(q, 100);
    sh_job_queue_destroy(q);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* A job dropped before it was queued gives its frame's charge back with it. */
static void released_job_gives_its_charge_back(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_job_queue *q = sh_job_queue_create(a, 1, 2, 1000);
    assert_non_null(q);
    assert_true(sh_job_queue_charge(q, 700));
    sh_job *job = sh_job_new(q);
    assert_non_null(job);
    job->frame_charge = 700;
    assert_false(sh_job_cancel(q, job, true));   /* never queued: nothing to take out */
    sh_job_release(q, job);
    sh_job_queue_stats st;
    sh_job_queue_get_stats(q, &st);
    assert_int_equal(st.host_in_use, 0);
    assert_int_equal(st.client_gone, 0);
    sh_job_queue_destroy(q);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_gate_bounds_charges),
        cmocka_unit_test(released_job_gives_its_charge_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
