/* Every public function given NULL where it takes a handle or a pointer: SHOAL_ERR_INVALID_ARG
 * (or NULL / a negative value where it returns no status) and a message in shoal_last_error(),
 * never a crash. The list of functions called is checked against shoal.h, so a new function
 * without a case here fails the test. Also: the version and the one error convention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api_names.h"
#include "runtime/runtime-impl.h"
#include "shoal.h"

#define TINY SHOAL_SOURCE_DIR "/tests/runtime/data/tiny.yaml"

static char called[API_MAX_NAMES][API_NAME_LEN];
static int n_called;

/* Marks `fn` as covered and clears the last error, so each case shows its own message. */
static void covers(const char *fn)
{
    if (api_name_index(called, n_called, fn) < 0 && n_called < API_MAX_NAMES)
        snprintf(called[n_called++], API_NAME_LEN, "%s", fn);
    sh_api_fail(SHOAL_ERR_INTERNAL, "(reset)");
}

/* The call failed with a message of its own naming the problem. */
static void failed_with_message(const char *must_contain)
{
    const char *m = shoal_last_error();
    assert_non_null(m);
    if (!strstr(m, must_contain))
        fail_msg("last error '%s' does not mention '%s'", m, must_contain);
}

static shoal_runtime_t tiny_runtime(void)
{
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_path = TINY;
    p.preload = 0;
    shoal_runtime_t rt = NULL;
    int rc = shoal_runtime_create(&p, &rt);
    if (rc)
        fail_msg("tiny runtime: %s", shoal_last_error());
    return rt;
}

static void version_and_status(void **state)
{
    (void)state;
    covers("shoal_version");
    assert_string_equal(shoal_version(), SHOAL_VERSION);
    assert_string_equal(shoal_version(), SHOAL_PROJECT_VERSION);   /* header == CMake project */
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", SHOAL_VERSION_MAJOR, SHOAL_VERSION_MINOR, SHOAL_VERSION_PATCH);
    assert_string_equal(v, SHOAL_VERSION);
    covers("shoal_status_str");
    assert_string_equal(shoal_status_str(SHOAL_OK), shoal_status_str(0));
    assert_non_null(shoal_status_str(12345));
    assert_non_null(shoal_status_str(SHOAL_ERR_INVALID_ARG));
    covers("shoal_last_error");
    assert_non_null(shoal_last_error());
}

static void images(void **state)
{
    (void)state;
    shoal_image img;
    char buf[128] = "";
    covers("shoal_image_load");
    assert_int_equal(shoal_image_load(NULL, &img, buf, sizeof buf), SHOAL_ERR_INVALID_ARG);
    failed_with_message("path");
    assert_string_equal(buf, shoal_last_error());   /* the buffer gets the same message */
    assert_int_equal(shoal_image_load("x.png", NULL, NULL, 0), SHOAL_ERR_INVALID_ARG);
    failed_with_message("out");
    assert_int_equal(shoal_image_load("/nonexistent/x.png", &img, NULL, 0) < 0, 1);
    failed_with_message("x.png");
    assert_null(img.rgb);

    covers("shoal_image_decode");
    const unsigned char bytes[4] = {1, 2, 3, 4};
    assert_int_equal(shoal_image_decode(NULL, 4, &img, NULL, 0), SHOAL_ERR_INVALID_ARG);
    failed_with_message("data");
    assert_int_equal(shoal_image_decode(bytes, 4, NULL, NULL, 0), SHOAL_ERR_INVALID_ARG);
    failed_with_message("out");
    assert_true(shoal_image_decode(bytes, sizeof bytes, &img, NULL, 0) < 0);
    assert_null(img.rgb);

    covers("shoal_image_wrap");
    shoal_image w = shoal_image_wrap(NULL, 4, 4);   /* never fails; the run calls refuse it */
    assert_null(w.rgb);
    covers("shoal_image_free");
    shoal_image_free(NULL);
    shoal_image_free(&w);
}

static void runtime_without_handle(void **state)
{
    (void)state;
    shoal_runtime_t rt = (shoal_runtime_t)&rt;   /* must come back NULL */
    covers("shoal_runtime_default_params");
    shoal_runtime_params p = shoal_runtime_default_params();
    assert_int_equal(p.preload, 1);
    assert_int_equal(p.tuning.cuda_streams, 0);
    covers("shoal_runtime_create");
    assert_int_equal(shoal_runtime_create(NULL, &rt), SHOAL_ERR_INVALID_ARG);
    assert_null(rt);
    failed_with_message("params");
    assert_int_equal(shoal_runtime_create(&p, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("out");
    p.config_path = "/nonexistent/shoal.yaml";
    assert_true(shoal_runtime_create(&p, &rt) < 0);
    assert_null(rt);
    failed_with_message("/nonexistent/shoal.yaml");
    covers("shoal_runtime_destroy");
    shoal_runtime_destroy(NULL);
    covers("shoal_runtime_last_error");
    assert_int_equal(shoal_runtime_load_model(NULL, "m"), SHOAL_ERR_INVALID_ARG);
    assert_string_equal(shoal_runtime_last_error(NULL), shoal_last_error());

    uint8_t px[12] = {0};
    shoal_image frame = shoal_image_wrap(px, 2, 2);
    shoal_results_t res = (shoal_results_t)&res;
    covers("shoal_runtime_run_mode");
    assert_int_equal(shoal_runtime_run_mode(NULL, "navigation", &frame, &res), SHOAL_ERR_INVALID_ARG);
    assert_null(res);
    failed_with_message("rt");
    covers("shoal_runtime_run_model");
    assert_int_equal(shoal_runtime_run_model(NULL, "hand", &frame, &res), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_video_create");
    shoal_video_t video = shoal_video_create();
    assert_non_null(video);
    covers("shoal_runtime_run_mode_video");
    res = (shoal_results_t)&res;
    assert_int_equal(shoal_runtime_run_mode_video(NULL, "navigation", &frame, video, &res), SHOAL_ERR_INVALID_ARG);
    assert_null(res);
    failed_with_message("rt");
    covers("shoal_video_destroy");
    shoal_video_destroy(video);
    shoal_video_destroy(NULL);
    covers("shoal_runtime_load_model");
    assert_int_equal(shoal_runtime_load_model(NULL, "hand"), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_runtime_unload_model");
    assert_int_equal(shoal_runtime_unload_model(NULL, "hand"), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_runtime_set_budget");
    assert_int_equal(shoal_runtime_set_budget(NULL, 0), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_runtime_prefetch_mode");
    assert_int_equal(shoal_runtime_prefetch_mode(NULL, "navigation"), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_runtime_is_ready");
    assert_int_equal(shoal_runtime_is_ready(NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_runtime_model_count");
    assert_int_equal(shoal_runtime_model_count(NULL), SHOAL_ERR_INVALID_ARG);
    covers("shoal_runtime_model_name");
    assert_null(shoal_runtime_model_name(NULL, 0));
    failed_with_message("rt");
    covers("shoal_runtime_mode_count");
    assert_int_equal(shoal_runtime_mode_count(NULL), SHOAL_ERR_INVALID_ARG);
    covers("shoal_runtime_mode_name");
    assert_null(shoal_runtime_mode_name(NULL, 0));
    failed_with_message("rt");

    shoal_stats st;
    covers("shoal_runtime_get_stats");
    assert_int_equal(shoal_runtime_get_stats(NULL, &st), SHOAL_ERR_INVALID_ARG);
    failed_with_message("rt");
    covers("shoal_stats_free");
    shoal_stats_free(&st);   /* empty after a failure: freeing it is fine */
    shoal_stats_free(NULL);
    covers("shoal_runtime_prometheus");
    assert_null(shoal_runtime_prometheus(NULL));
    failed_with_message("rt");
    covers("shoal_runtime_report_json");
    assert_null(shoal_runtime_report_json(NULL));
    failed_with_message("rt");
}

static void runtime_with_null_arguments(void **state)
{
    (void)state;
    shoal_runtime_t rt = tiny_runtime();
    uint8_t px[12] = {0};
    shoal_image frame = shoal_image_wrap(px, 2, 2);
    shoal_results_t res = (shoal_results_t)&res;

    assert_int_equal(shoal_runtime_run_mode(rt, "navigation", &frame, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("out");
    assert_int_equal(shoal_runtime_run_mode(rt, NULL, &frame, &res), SHOAL_ERR_INVALID_ARG);
    assert_null(res);
    failed_with_message("mode");
    assert_string_equal(shoal_runtime_last_error(rt), shoal_last_error());   /* kept on rt too */
    assert_int_equal(shoal_runtime_run_mode(rt, "navigation", NULL, &res), SHOAL_ERR_INVALID_ARG);
    failed_with_message("frame");
    shoal_image empty = shoal_image_wrap(NULL, 4, 4);
    assert_int_equal(shoal_runtime_run_mode(rt, "navigation", &empty, &res), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_runtime_run_mode_video(rt, "navigation", &frame, NULL, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("out");
    assert_int_equal(shoal_runtime_run_mode_video(rt, NULL, &frame, NULL, &res), SHOAL_ERR_INVALID_ARG);
    failed_with_message("mode");
    assert_int_equal(shoal_runtime_run_model(rt, "hand", &frame, NULL), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_runtime_run_model(rt, NULL, &frame, &res), SHOAL_ERR_INVALID_ARG);
    failed_with_message("model");
    assert_int_equal(shoal_runtime_run_model(rt, "hand", NULL, &res), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_runtime_load_model(rt, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("model");
    assert_int_equal(shoal_runtime_unload_model(rt, NULL), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(shoal_runtime_prefetch_mode(rt, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("mode");
    assert_int_equal(shoal_runtime_get_stats(rt, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("out");
    assert_null(shoal_runtime_model_name(rt, -1));
    assert_null(shoal_runtime_mode_name(rt, 1000));
    assert_int_equal(shoal_runtime_model_count(rt), 5);
    assert_int_equal(shoal_runtime_mode_count(rt), 3);

    /* results that exist, drawn with missing or unusable arguments */
    static uint8_t big[64 * 48 * 3];
    shoal_image picture = shoal_image_wrap(big, 64, 48);
    assert_int_equal(shoal_runtime_run_mode(rt, "crossing", &picture, &res), SHOAL_OK);
    assert_int_equal(shoal_results_count(res), 1);
    assert_int_equal(shoal_results_draw(res, NULL, "x.png"), SHOAL_ERR_INVALID_ARG);
    failed_with_message("frame");
    assert_int_equal(shoal_results_draw(res, &picture, NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("png_path");
    assert_true(shoal_results_draw(res, &picture, "/nonexistent/dir/x.png") < 0);
    failed_with_message("/nonexistent/dir/x.png");
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
}

static void results_without_handle(void **state)
{
    (void)state;
    uint8_t px[12] = {0};
    shoal_image frame = shoal_image_wrap(px, 2, 2);
    covers("shoal_results_count");
    assert_int_equal(shoal_results_count(NULL), SHOAL_ERR_INVALID_ARG);
    failed_with_message("res");
    covers("shoal_results_get");
    assert_null(shoal_results_get(NULL, 0));
    failed_with_message("res");
    covers("shoal_results_total_ms");
    assert_true(shoal_results_total_ms(NULL) < 0);
    covers("shoal_results_infer_ms");
    assert_true(shoal_results_infer_ms(NULL) < 0);
    covers("shoal_results_device_ms");
    assert_true(shoal_results_device_ms(NULL) < 0);
    covers("shoal_results_concurrent");
    assert_int_equal(shoal_results_concurrent(NULL), SHOAL_ERR_INVALID_ARG);
    covers("shoal_results_to_json");
    assert_null(shoal_results_to_json(NULL));
    failed_with_message("res");
    covers("shoal_results_draw");
    assert_int_equal(shoal_results_draw(NULL, &frame, "out.png"), SHOAL_ERR_INVALID_ARG);
    failed_with_message("res");
    covers("shoal_results_destroy");
    shoal_results_destroy(NULL);
    covers("shoal_free_string");
    shoal_free_string(NULL);
}

/* A stream count the backend cannot honour is refused at create, on any device. */
static void tuning_out_of_range(void **state)
{
    (void)state;
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_path = TINY;
    p.preload = 0;
    p.tuning.cuda_streams = 9;
    shoal_runtime_t rt = NULL;
    assert_int_equal(shoal_runtime_create(&p, &rt), SHOAL_ERR_INVALID_ARG);
    assert_null(rt);
    failed_with_message("cuda_streams 9");
    p.tuning.cuda_streams = 2;
    assert_int_equal(shoal_runtime_create(&p, &rt), SHOAL_OK);
    shoal_runtime_destroy(rt);
}

/* Runs last: every function shoal.h declares had a case above. */
static void every_public_function_is_covered(void **state)
{
    (void)state;
    static char api[API_MAX_NAMES][API_NAME_LEN];
    int n = api_names(SHOAL_SOURCE_DIR "/include/shoal.h", api, API_MAX_NAMES);
    assert_true(n > 30);
    for (int i = 0; i < n; i++)
        if (api_name_index(called, n_called, api[i]) < 0)
            fail_msg("%s has no NULL-argument case in test_lib_api.c", api[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_and_status),
        cmocka_unit_test(images),
        cmocka_unit_test(runtime_without_handle),
        cmocka_unit_test(runtime_with_null_arguments),
        cmocka_unit_test(results_without_handle),
        cmocka_unit_test(tuning_out_of_range),
        cmocka_unit_test(every_public_function_is_covered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
