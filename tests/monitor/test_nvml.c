/* NVML loading without the driver (plain messages, no leaks), the /proc parsers, and on a
 * machine with a GPU a sample that adds up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/nvml.h"

static void test_missing_library(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_nvml *nv = (sh_nvml *)1;
    sh_err err = {0};
    assert_int_equal(sh_nvml_open(a, "libshoal-no-such-nvml.so.1", &nv, &err), SHOAL_ERR_NOT_FOUND);
    assert_null(nv);
    assert_string_equal(err.msg, "NVML not available: libshoal-no-such-nvml.so.1 not found (no NVIDIA driver)");
    /* a library that loads but is not NVML */
    assert_int_equal(sh_nvml_open(a, "libm.so.6", &nv, &err), SHOAL_ERR_BACKEND);
    assert_null(nv);
    assert_string_equal(err.msg, "NVML not available: libm.so.6 lacks nvmlInit");
    sh_nvml_close(NULL);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_proc_parsers(void **state)
{
    sh_host_sample h = {0};
    sh_host_parse_status("Name:\tshoal\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n", &h);
    assert_int_equal(h.rss, 1024 * 1024);
    assert_int_equal(h.peak_rss, 2048 * 1024);
    sh_host_parse_meminfo("MemTotal:       16384 kB\nMemFree:  1 kB\nMemAvailable:    8192 kB\n", &h);
    assert_int_equal(h.total, 16384 * 1024);
    assert_int_equal(h.available, 8192 * 1024);
    sh_host_sample z = {1, 1, 1, 1};
    sh_host_parse_status("Name: x\nVmRSS: garbage\n", &z);
    assert_int_equal(z.rss, 0);
    assert_int_equal(z.peak_rss, 0);

    sh_err err;
    sh_host_sample live;
    assert_int_equal(sh_host_sample_read(&live, &err), 0);
    assert_true(live.rss > 0);
    assert_true(live.peak_rss >= live.rss);
    assert_true(live.total > 0 && live.available <= live.total);
}

/* Runs only where the driver is; elsewhere it reports the message and passes. */
static void test_live_gpu(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_nvml *nv;
    sh_err err = {0};
    if (sh_nvml_open(a, NULL, &nv, &err) != 0) {
        printf("  (no GPU check: %s)\n", err.msg);
        assert_true(strncmp(err.msg, "NVML not available: ", 20) == 0);
        sh_allocator_destroy(a);
        return;
    }
    printf("  driver %s, %u GPU(s)\n", sh_nvml_driver_version(nv), sh_nvml_device_count(nv));
    for (unsigned i = 0; i < sh_nvml_device_count(nv); i++) {
        sh_gpu_sample s;
        assert_int_equal(sh_nvml_sample(nv, i, &s, &err), 0);
        printf("  GPU %u %s: total %llu used %llu free %llu reserved %llu util %d%% process %lld (%u processes)\n", i, s.name,
               (unsigned long long)s.total, (unsigned long long)s.used, (unsigned long long)s.free, (unsigned long long)s.reserved, s.util_gpu,
               (long long)s.process_used, s.n_processes);
        assert_true(s.total > 0);
        assert_true(s.used <= s.total && s.free <= s.total);
        /* used + reserved + free is the total (to the byte on an H100 with driver 580) */
        uint64_t sum = s.used + s.reserved + s.free;
        assert_true(sum <= s.total + s.total / 100 && sum + s.total / 100 >= s.total);
    }
    sh_gpu_sample s;
    assert_int_equal(sh_nvml_sample(nv, sh_nvml_device_count(nv), &s, &err), SHOAL_ERR_INVALID_ARG);
    sh_nvml_close(nv);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_proc_parsers),
        cmocka_unit_test(test_live_gpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
