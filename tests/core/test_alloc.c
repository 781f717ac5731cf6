#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/alloc.h"

static void counts_bytes_and_peak(void **state)
{
    sh_allocator *a = sh_allocator_create();
    void *p = sh_alloc(a, 100);
    void *q = sh_alloc(a, 50);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_int_equal(sh_allocator_stats(a).in_use, 150);
    sh_free(a, p);
    assert_int_equal(sh_allocator_stats(a).in_use, 50);
    assert_int_equal(sh_allocator_stats(a).peak, 150);
    sh_free(a, q);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void fails_the_nth_allocation(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_allocator_fail_after(a, 2, 0);
    void *p0 = sh_alloc(a, 8), *p1 = sh_alloc(a, 8), *p2 = sh_alloc(a, 8), *p3 = sh_alloc(a, 8);
    assert_non_null(p0);
    assert_non_null(p1);
    assert_null(p2);
    assert_non_null(p3);
    assert_int_equal(sh_allocator_stats(a).n_failed, 1);
    sh_free(a, p0);
    sh_free(a, p1);
    sh_free(a, p3);
    sh_allocator_destroy(a);
}

static void refuses_beyond_limit_and_overflow(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_allocator_set_limit(a, 1000);
    void *p = sh_alloc(a, 900);
    assert_non_null(p);
    assert_null(sh_alloc(a, 200));
    assert_null(sh_calloc(a, SIZE_MAX / 2, 4));
    void *q = sh_realloc(a, p, 950);
    assert_non_null(q);
    sh_free(a, q);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_bytes_and_peak),
        cmocka_unit_test(fails_the_nth_allocation),
        cmocka_unit_test(refuses_beyond_limit_and_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
