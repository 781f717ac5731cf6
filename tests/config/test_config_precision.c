/* Precision keys do what they say or are refused: a model's `precision` must be what its
 * device computes in (the CPU fp32, CUDA fp16), and `inference.fp16: false` (as written or
 * from the applied tier) asks for fp32, which a CUDA device refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/config.h"

static sh_allocator *A;

static int setup(void **state)
{
    (void)state;
    A = sh_allocator_create();
    return A ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sh_alloc_stats s = sh_allocator_stats(A);
    sh_allocator_destroy(A);
    return s.in_use == 0 ? 0 : -1;
}

/* Loads `yaml`, applies the tier for a device of `total` bytes (0: none) and checks it for a
 * device computing in `dev`; returns the status and copies the message into msg. */
static int check(const char *yaml, uint64_t total, sh_precision dev, char *msg, size_t cap)
{
    sh_config *c = NULL;
    sh_err err = {0};
    if (sh_config_load_string(A, yaml, strlen(yaml), "p.yaml", NULL, &c, &err))
        fail_msg("%s", err.msg);
    sh_config_pick_tier(c, total);
    int rc = sh_config_check_precision(c, dev, dev == SH_PRECISION_FP16 ? "cuda" : "cpu", &err);
    snprintf(msg, cap, "%s", rc ? err.msg : "");
    sh_config_destroy(c);
    return rc;
}

#define MODELS(precision_line) \
    "models:\n  a:\n    path: a.onnx\n    task: detect\n" precision_line "  b:\n    path: b.onnx\n    task: detect\n"

static void test_model_precision(void **state)
{
    (void)state;
    char msg[SH_ERR_MSG_MAX];
    /* nothing asked: every device */
    assert_int_equal(check(MODELS(""), 0, SH_PRECISION_FP32, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS(""), 0, SH_PRECISION_FP16, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS("    precision: auto\n"), 0, SH_PRECISION_FP16, msg, sizeof msg), 0);

    /* fp32: the CPU's; CUDA computes in fp16 only */
    assert_int_equal(check(MODELS("    precision: fp32\n"), 0, SH_PRECISION_FP32, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS("    precision: fp32\n"), 0, SH_PRECISION_FP16, msg, sizeof msg),
                     SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "p.yaml:2: models.a.precision: fp32 is not supported on cuda"));
    assert_non_null(strstr(msg, "computes in fp16 only"));

    /* fp16: CUDA's; the CPU computes in fp32 only */
    assert_int_equal(check(MODELS("    precision: fp16\n"), 0, SH_PRECISION_FP16, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS("    precision: fp16\n"), 0, SH_PRECISION_FP32, msg, sizeof msg),
                     SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "models.a.precision: fp16 is not supported on cpu"));
    assert_non_null(strstr(msg, "computes in fp32 only"));
}

static void test_inference_fp16(void **state)
{
    (void)state;
    char msg[SH_ERR_MSG_MAX];
    /* true: fp16 where the device computes in it, fp32 on the CPU (the shipped config's reading) */
    assert_int_equal(check(MODELS("") "inference:\n  fp16: true\n", 0, SH_PRECISION_FP16, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS("") "inference:\n  fp16: true\n", 0, SH_PRECISION_FP32, msg, sizeof msg), 0);

    /* false: fp32, which the CPU gives and CUDA cannot */
    assert_int_equal(check(MODELS("") "inference:\n  fp16: false\n", 0, SH_PRECISION_FP32, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS("") "inference:\n  fp16: false\n", 0, SH_PRECISION_FP16, msg, sizeof msg),
                     SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "inference.fp16: false asks for fp32 (model a)"));
    assert_non_null(strstr(msg, "fp16 only"));

    /* a model that states fp16 itself is not held to the global fp32 */
    const char *own = "models:\n  a:\n    path: a.onnx\n    task: detect\n    precision: fp16\n"
                      "inference:\n  fp16: false\n";
    assert_int_equal(check(own, 0, SH_PRECISION_FP16, msg, sizeof msg), 0);
}

static void test_tier_fp16(void **state)
{
    (void)state;
    char msg[SH_ERR_MSG_MAX];
    const char *tiered = MODELS("") "hardware:\n  tiers:\n    high:\n      fp16: false\n";
    /* 80 GiB picks high, whose fp16: false asks for fp32 */
    assert_int_equal(check(tiered, (uint64_t)80 << 30, SH_PRECISION_FP16, msg, sizeof msg), SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "hardware.tiers.high.fp16: false asks for fp32"));
    /* 4 GiB picks low, whose built-in fp16: true is what CUDA computes in */
    assert_int_equal(check(tiered, (uint64_t)4 << 30, SH_PRECISION_FP16, msg, sizeof msg), 0);
    /* the built-in tiers alone never ask for fp32 */
    assert_int_equal(check(MODELS(""), (uint64_t)80 << 30, SH_PRECISION_FP16, msg, sizeof msg), 0);
    assert_int_equal(check(MODELS(""), (uint64_t)4 << 30, SH_PRECISION_FP16, msg, sizeof msg), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model_precision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inference_fp16, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_fp16, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
