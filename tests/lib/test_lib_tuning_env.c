/* The command's environment -> shoal_tuning mapping (src/cli/tuning_env.c): every variable
 * docs/DEVELOPING.md lists lands in its field, unset ones leave the defaults, and a bad number
 * is refused instead of becoming 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/tuning_env.h"

static const char *const VARS[] = {
    "SHOAL_CUDA_STREAMS", "SHOAL_CUDA_STREAM_WINDOW", "SHOAL_CUDA_STREAM_SIDE_KIB", "SHOAL_CUDA_IGEMM",
    "SHOAL_CUDA_IGEMM_MAX_GFLOP", "SHOAL_CUDA_IGEMM_MAX_PIXELS", "SHOAL_CUDA_WGMMA", "SHOAL_CUDA_PDL",
    "SHOAL_CUDA_PDL_SMALL", "SHOAL_CUDA_NO_PLANAR", "SHOAL_CUDA_NO_FUSE_ADD", "SHOAL_CUDA_CONVT_GEMM",
    "SHOAL_CUDA_NO_EARLY_DOWNLOAD", "SHOAL_CUDA_NO_TRANSPOSE_FOLD", "SHOAL_CUDA_NO_SLICE_VIEWS",
    "SHOAL_CUDA_LANE_PRIORITY", "SHOAL_CUDA_VIEWS_LOG", "SHOAL_CUDA_PROFILE_CONVS",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++)
        unsetenv(VARS[i]);
    return 0;
}

static void unset_leaves_defaults(void **state)
{
    (void)state;
    shoal_tuning t, zero;
    memset(&t, 0, sizeof t);
    memset(&zero, 0, sizeof zero);
    assert_int_equal(cli_tuning_from_env("test", &t), 0);
    assert_memory_equal(&t, &zero, sizeof t);
}

static void every_variable_lands_in_its_field(void **state)
{
    (void)state;
    setenv("SHOAL_CUDA_STREAMS", "1", 1);
    setenv("SHOAL_CUDA_STREAM_WINDOW", "6", 1);
    setenv("SHOAL_CUDA_STREAM_SIDE_KIB", "256", 1);
    setenv("SHOAL_CUDA_IGEMM", "0", 1);
    setenv("SHOAL_CUDA_IGEMM_MAX_GFLOP", "0.5", 1);
    setenv("SHOAL_CUDA_IGEMM_MAX_PIXELS", "6400", 1);
    for (size_t i = 6; i < sizeof VARS / sizeof VARS[0]; i++)
        setenv(VARS[i], strstr(VARS[i], "_NO_") || strstr(VARS[i], "_LOG") || strstr(VARS[i], "PROFILE") ? "1" : "0",
               1);
    shoal_tuning t = {0};
    assert_int_equal(cli_tuning_from_env("test", &t), 0);
    assert_int_equal(t.cuda_streams, 1);
    assert_int_equal(t.cuda_stream_window, 6);
    assert_int_equal(t.cuda_stream_side_kib, 256);
    assert_int_equal(t.cuda_igemm, -1);
    assert_true(t.cuda_igemm_max_gflop == 0.5);
    assert_int_equal(t.cuda_igemm_max_pixels, 6400);
    int flags[] = {t.cuda_no_wgmma, t.cuda_no_pdl, t.cuda_no_pdl_small, t.cuda_no_planar, t.cuda_no_fuse_add,
                   t.cuda_no_convt_gemm, t.cuda_no_early_download, t.cuda_no_transpose_fold,
                   t.cuda_no_slice_views, t.cuda_no_lane_priority, t.cuda_log_views, t.cuda_profile_convs};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!flags[i])
            fail_msg("flag %zu (%s) not set", i, VARS[i + 6]);
    setenv("SHOAL_CUDA_IGEMM", "1", 1);
    assert_int_equal(cli_tuning_from_env("test", &t), 0);
    assert_int_equal(t.cuda_igemm, 1);
}

static void off_switches_need_zero(void **state)
{
    (void)state;
    setenv("SHOAL_CUDA_PDL", "1", 1);          /* the default, said out loud */
    setenv("SHOAL_CUDA_NO_PLANAR", "0", 1);    /* a NO_ switch written 0 is off */
    shoal_tuning t = {0};
    assert_int_equal(cli_tuning_from_env("test", &t), 0);
    assert_int_equal(t.cuda_no_pdl, 0);
    assert_int_equal(t.cuda_no_planar, 0);
}

static void bad_numbers_are_refused(void **state)
{
    (void)state;
    const char *bad[][2] = {{"SHOAL_CUDA_STREAMS", "9"},          {"SHOAL_CUDA_STREAMS", "two"},
                            {"SHOAL_CUDA_STREAM_WINDOW", "0"},    {"SHOAL_CUDA_IGEMM", "2"},
                            {"SHOAL_CUDA_IGEMM_MAX_GFLOP", "nan"}, {"SHOAL_CUDA_IGEMM_MAX_PIXELS", "-5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_env(NULL);
        setenv(bad[i][0], bad[i][1], 1);
        shoal_tuning t = {0};
        if (cli_tuning_from_env("test", &t) != -1)
            fail_msg("%s=%s was accepted", bad[i][0], bad[i][1]);
    }
}

static void diagnostics_get_a_log_sink(void **state)
{
    (void)state;
    shoal_runtime_params p = shoal_runtime_default_params();
    assert_int_equal(cli_runtime_tuning("test", &p), 0);
    assert_null(p.log);
    setenv("SHOAL_CUDA_VIEWS_LOG", "1", 1);
    assert_int_equal(cli_runtime_tuning("test", &p), 0);
    assert_int_equal(p.tuning.cuda_log_views, 1);
    assert_non_null(p.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(unset_leaves_defaults, clear_env),
        cmocka_unit_test_setup(every_variable_lands_in_its_field, clear_env),
        cmocka_unit_test_setup(off_switches_need_zero, clear_env),
        cmocka_unit_test_setup(bad_numbers_are_refused, clear_env),
        cmocka_unit_test_setup(diagnostics_get_a_log_sink, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
