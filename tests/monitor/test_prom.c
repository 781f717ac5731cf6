/* The Prometheus text writer, checked by an independent reader of the 0.0.4 format rules:
 * HELP/TYPE before samples, valid names, escapes that read back to the original values,
 * counters in _total, histogram buckets cumulative and rising with +Inf == _count. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/prom.h"
#include "prom_sample.h"
#include "prom_reader.h"

static void test_sample_reads_back(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_prom *p;
    sh_err err = {0};
    assert_int_equal(sh_prom_create(a, &p, &err), 0);
    if (write_sample(p, &err))
        fail_msg("%s", err.msg);
    size_t len;
    const char *text = sh_prom_text(p, &len);
    assert_int_equal(strlen(text), len);
    reader r = {.want_value = "we\\ird \"name\"\nline2 \xe7\x9b\xb2\xe9\x81\x93"};
    read_exposition(&r, text);
    assert_true(r.found_value);
    assert_int_equal(r.n_families, 6);
    assert_int_equal(r.n_buckets_checked, 9 + 4);
    /* exact pieces */
    assert_non_null(strstr(text, "# HELP shoal_model_bytes Bytes a model holds.\\nSecond line with \\\\.\n"));
    assert_non_null(strstr(text, "# TYPE shoal_model_loads_total counter\nshoal_model_loads_total{model=\"obstacle\"} 7\n"));
    assert_non_null(strstr(text, "shoal_device_bytes{device=\"cuda:0\",kind=\"arena\"} 0.1\n"));
    assert_non_null(strstr(text, "shoal_up 1\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_bucket{model=\"obstacle\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_bucket{model=\"obstacle\",le=\"1\"} 9\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_bucket{model=\"obstacle\",le=\"+Inf\"} 11\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_count{model=\"obstacle\"} 11\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_sum{model=\"obstacle\"} 5.191\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_count{model=\"hand\"} 0\n"));
    sh_prom_destroy(p);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_values(void **state)
{
    sh_prom *p;
    sh_err err;
    assert_int_equal(sh_prom_create(NULL, &p, &err), 0);
    assert_int_equal(sh_prom_family(p, "g", SH_PROM_GAUGE, "", &err), 0);
    static const double v[] = {NAN, INFINITY, -INFINITY, 1e21, -2.5, 1.0 / 3.0, 0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(sh_prom_sample(p, NULL, 0, v[i], &err), 0);
    assert_string_equal(sh_prom_text(p, NULL),
                        "# HELP g \n# TYPE g gauge\ng NaN\ng +Inf\ng -Inf\ng 1e+21\ng -2.5\ng 0.3333333333333333\ng 0\n");
    sh_prom_destroy(p);
}

static void test_rules(void **state)
{
    sh_prom *p;
    sh_err err;
    assert_int_equal(sh_prom_create(NULL, &p, &err), 0);
    assert_int_equal(sh_prom_sample(p, NULL, 0, 1, &err), SHOAL_ERR_INVALID_ARG);     /* no family open */
    assert_int_equal(sh_prom_family(p, "1abc", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "a-b", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "x_total", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "lat_count", SH_PROM_HISTOGRAM, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "ns:ok_name", SH_PROM_GAUGE, "", &err), 0);
    assert_int_equal(sh_prom_family(p, "ns:ok_name", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    sh_prom_label bad1[] = {{"__reserved", "x"}}, bad2[] = {{"a:b", "x"}}, dup[] = {{"a", "1"}, {"a", "2"}},
                  utf[] = {{"a", "\xff\xfe"}}, over[] = {{"a", "\xc0\xaf"}}, le[] = {{"le", "1"}};
    assert_int_equal(sh_prom_sample(p, bad1, 1, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, bad2, 1, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, dup, 2, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "label a given twice"));
    assert_int_equal(sh_prom_sample(p, utf, 1, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, over, 1, 1, &err), SHOAL_ERR_INVALID_ARG);   /* overlong '/' */
    assert_int_equal(sh_prom_sample(p, le, 1, 1, &err), 0);                          /* le is fine on a gauge */
    assert_int_equal(sh_prom_family(p, "c", SH_PROM_COUNTER, "", &err), 0);
    assert_int_equal(sh_prom_sample(p, NULL, 0, -1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, NULL, 0, NAN, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "c_total", SH_PROM_COUNTER, "", &err), SHOAL_ERR_INVALID_ARG); /* same family */
    assert_int_equal(sh_prom_family(p, "h", SH_PROM_HISTOGRAM, "", &err), 0);
    assert_int_equal(sh_prom_sample(p, NULL, 0, 1, &err), SHOAL_ERR_INVALID_ARG);
    sh_prom_hist h;
    static const double rising[] = {1, 2}, flat[] = {1, 1}, inf[] = {1, INFINITY};
    assert_int_equal(sh_prom_hist_init(&h, flat, 2), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_hist_init(&h, inf, 2), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_hist_init(&h, rising, 2), 0);
    assert_int_equal(sh_prom_histogram(p, le, 1, &h, &err), SHOAL_ERR_INVALID_ARG);
    h.bounds[1] = 0.5;   /* broken by hand: the writer checks again */
    assert_int_equal(sh_prom_histogram(p, NULL, 0, &h, &err), SHOAL_ERR_INVALID_ARG);
    /* nothing of the refused calls reached the text */
    assert_string_equal(sh_prom_text(p, NULL),
                        "# HELP ns:ok_name \n# TYPE ns:ok_name gauge\nns:ok_name{le=\"1\"} 1\n"
                        "# HELP c_total \n# TYPE c_total counter\n# HELP h \n# TYPE h histogram\n");
    sh_prom_reset(p);
    assert_string_equal(sh_prom_text(p, NULL), "");
    assert_int_equal(sh_prom_family(p, "c", SH_PROM_COUNTER, "", &err), 0);   /* a new exposition */
    sh_prom_destroy(p);
    sh_prom_destroy(NULL);
}

/* Fail each allocation of the sample in turn: an error, then text that still reads as valid,
 * and no leak. */
static void test_fault_injection(void **state)
{
    sh_allocator *a = sh_allocator_create();
    int n;
    for (n = 0; n < 1000; n++) {
        sh_prom *p = NULL;
        sh_err err = {0};
        uint64_t before = sh_allocator_stats(a).n_failed;
        sh_allocator_fail_after(a, n, 0);
        int rc = sh_prom_create(a, &p, &err);
        if (!rc)
            rc = write_sample(p, &err);
        bool injected = sh_allocator_stats(a).n_failed != before;
        sh_allocator_fail_after(a, -1, 0);
        if (rc) {
            assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
            if (p) {
                reader r = {0};
                read_exposition(&r, *sh_prom_text(p, NULL) ? sh_prom_text(p, NULL) : "\n");
            }
        }
        sh_prom_destroy(p);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        if (!rc && !injected)
            break;
    }
    assert_true(n > 3 && n < 1000);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_reads_back),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
