/* The example program in shoal.h's top comment, extracted at build time and linked against
 * libshoal.so (the public API alone): its usage, a failure's message, and a run of the tiny
 * models on a PNG frame. argv[1] is the built example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vision/image.h"

#define TINY SHOAL_SOURCE_DIR "/tests/runtime/data/tiny.yaml"

static const char *example;

/* Runs the example with `args`; returns its exit status and its stdout+stderr in out. */
static int run_example(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", example, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void usage_without_arguments(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_example("", out, sizeof out), 2);
    assert_non_null(strstr(out, "usage:"));
}

static void failure_names_version_and_reason(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(run_example("/nonexistent/shoal.yaml navigation x.png", out, sizeof out), 1);
    char want[64];
    snprintf(want, sizeof want, "shoal %s: ", SHOAL_VERSION);
    if (!strstr(out, want) || !strstr(out, "/nonexistent/shoal.yaml"))
        fail_msg("unexpected output: %s", out);
}

static void runs_a_mode_on_a_png(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-example-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char png[256];
    snprintf(png, sizeof png, "%s/frame.png", dir);
    enum { W = 80, H = 60 };
    static uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (uint8_t)(i * 7 % 251);
    sh_image img = {.width = W, .height = H, .channels = 3, .data = px};
    sh_err err = {0};
    assert_int_equal(sh_image_write_png(&img, png, &err), 0);

    char args[512], out[4096];
    snprintf(args, sizeof args, "'%s' shopping '%s'", TINY, png);
    int rc = run_example(args, out, sizeof out);
    unlink(png);
    rmdir(dir);
    if (rc != 0)
        fail_msg("example exited %d: %s", rc, out);
    /* the mode's two models, in the mode's order */
    const char *a = strstr(out, "shopping: "), *b = strstr(out, "hand: ");
    if (!a || !b || b < a || !strstr(a, " detections"))
        fail_msg("unexpected output: %s", out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s HEADER_EXAMPLE\n", argv[0]);
        return 2;
    }
    example = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(usage_without_arguments),
        cmocka_unit_test(failure_names_version_and_reason),
        cmocka_unit_test(runs_a_mode_on_a_png),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
