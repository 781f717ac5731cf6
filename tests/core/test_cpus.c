/* The CPU count behind the default thread pools: the cgroup quota parsers on the texts the
 * kernel writes (and on malformed ones, which must mean "no limit", never a bogus count), and
 * the count itself against the affinity mask. */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/cpus.h"

static void v2_quota(void **state)
{
    (void)state;
    assert_int_equal(sh_cpu_quota_from_text("max 100000\n"), 0);
    assert_int_equal(sh_cpu_quota_from_text("200000 100000\n"), 2);
    assert_int_equal(sh_cpu_quota_from_text("150000 100000\n"), 2);
    assert_int_equal(sh_cpu_quota_from_text("50000 100000"), 1);
    assert_int_equal(sh_cpu_quota_from_text("1600000 100000\n"), 16);
}

static void v2_malformed(void **state)
{
    (void)state;
    const char *bad[] = {"", "\n", "100000", "abc 100000", "100000 0", "100000 -5", "-100000 100000",
                         "100000 100000 junk", "1e5 100000", "99999999999999999999999 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sh_cpu_quota_from_text(bad[i]), 0);
    assert_int_equal(sh_cpu_quota_from_text(NULL), 0);
}

static void v1_quota(void **state)
{
    (void)state;
    assert_int_equal(sh_cpu_quota_from_v1("-1\n", "100000\n"), 0);
    assert_int_equal(sh_cpu_quota_from_v1("400000\n", "100000\n"), 4);
    assert_int_equal(sh_cpu_quota_from_v1("250000\n", "100000\n"), 3);
    assert_int_equal(sh_cpu_quota_from_v1("x\n", "100000\n"), 0);
    assert_int_equal(sh_cpu_quota_from_v1("100000\n", "0\n"), 0);
    assert_int_equal(sh_cpu_quota_from_v1(NULL, "100000"), 0);
}

/* At least one CPU, and never more than the affinity mask allows. */
static void count_within_affinity(void **state)
{
    (void)state;
    cpu_set_t set;
    int n = sh_cpu_count();
    assert_true(n >= 1);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        assert_true(n <= CPU_COUNT(&set));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(v2_quota),
        cmocka_unit_test(v2_malformed),
        cmocka_unit_test(v1_quota),
        cmocka_unit_test(count_within_affinity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
