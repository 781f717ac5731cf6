/* Allocation-failure injection: fail the Nth allocation of an import, for N = 0, 1, ... until
 * the import succeeds. Each failure must be SHOAL_ERR_NO_MEMORY with nothing left allocated.
 * Every N for the corpus model with every dtype and a real IR-3 PyTorch export; for the larger
 * face detector (thousands of allocations, minutes under ASan) every `stride`-th N. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <sys/stat.h>

#include "import/onnx_import.h"

static void run(const char *path, long stride)
{
    long n, tried = 0;
    for (n = 0;; n += stride, tried++) {
        sh_allocator *a = sh_allocator_create();
        sh_allocator_fail_after(a, n, 0);
        sh_graph *g = NULL;
        sh_err err;
        int rc = sh_onnx_load_file(a, path, &g, &err);
        if (rc == 0) {
            sh_graph_destroy(g);
            assert_int_equal(sh_allocator_stats(a).in_use, 0);
            sh_allocator_destroy(a);
            break;
        }
        if (rc != SHOAL_ERR_NO_MEMORY)
            fail_msg("%s, allocation %ld failing: status %d: %s", path, n, rc, err.msg);
        assert_null(g);
        if (sh_allocator_stats(a).in_use != 0)
            fail_msg("%s, allocation %ld failing: %zu bytes leaked", path, n, sh_allocator_stats(a).in_use);
        sh_allocator_destroy(a);
    }
    printf("%s: %ld injected failures (of about %ld allocations), all clean\n", path, tried, n);
    assert_true(tried > 10);
}

static void test_corpus_model(void **state)
{
    (void)state;
    run(SHOAL_SOURCE_DIR "/tests/import/corpus/ok_dtypes.onnx", 1);
}

static void test_real_model(void **state)
{
    (void)state;
    struct stat st;
    if (stat(SHOAL_SHARED_DIR "/real-models/face_slim320/model.onnx", &st) != 0)
        skip();
    run(SHOAL_SHARED_DIR "/onnx-node-tests/pytorch-converted/test_Conv2d_groups/model.onnx", 1);
    run(SHOAL_SHARED_DIR "/real-models/face_slim320/model.onnx", 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_model),
        cmocka_unit_test(test_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
