/* Classification top-k: softmax of logits against values worked out by hand (and, for a
 * long random vector, against a full sort and softmax written out separately), probabilities
 * taken as they are, ties, k past the class count, and the inputs that must be refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vision/classify.h"

static void assert_rel(double got, double want, double tol)
{
    double err = fabs(got - want) / fabs(want);
    if (!(err <= tol))
        fail_msg("got %.9g, want %.9g (relative error %.3g > %.3g)", got, want, err, tol);
}

static void test_softmax_by_hand(void **state)
{
    (void)state;
    /* exp(x - 3) = e^-2, e^-1, 1, e^-2.5; their sum 1.585299723 */
    const float logits[4] = {1.0f, 2.0f, 3.0f, 0.5f};
    sh_class_score out[3] = {{0}};
    size_t n = 99;
    sh_err err = {0};
    assert_int_equal(sh_classify_top_k(logits, 4, SH_SCORES_LOGITS, 3, out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].class_id, 2);
    assert_int_equal(out[1].class_id, 1);
    assert_int_equal(out[2].class_id, 0);
    assert_rel(out[0].score, 0.630795543, 1e-6);
    assert_rel(out[1].score, 0.232056712, 1e-6);
    assert_rel(out[2].score, 0.085368894, 1e-6);
}

static void test_large_logits_do_not_overflow(void **state)
{
    (void)state;
    /* exp(1000) overflows a double; with the largest subtracted it is 1 / (1 + e^-1) */
    const float logits[2] = {999.0f, 1000.0f};
    sh_class_score out[2];
    size_t n;
    sh_err err = {0};
    assert_int_equal(sh_classify_top_k(logits, 2, SH_SCORES_LOGITS, 2, out, &n, &err), 0);
    assert_int_equal(out[0].class_id, 1);
    assert_rel(out[0].score, 0.731058579, 1e-6);
    assert_rel(out[1].score, 1.0 - 0.731058579, 1e-6);
}

static void test_probabilities_and_ties(void **state)
{
    (void)state;
    const float p[5] = {0.1f, 0.3f, 0.05f, 0.3f, 0.25f};
    sh_class_score out[8];
    size_t n;
    sh_err err = {0};
    assert_int_equal(sh_classify_top_k(p, 5, SH_SCORES_PROBABILITIES, 3, out, &n, &err), 0);
    assert_int_equal(n, 3);
    /* equal scores: the lower class id first */
    assert_int_equal(out[0].class_id, 1);
    assert_int_equal(out[1].class_id, 3);
    assert_int_equal(out[2].class_id, 4);
    assert_true(out[0].score == 0.3f && out[2].score == 0.25f);   /* taken as they are */
    /* k past the class count: every class, in order */
    assert_int_equal(sh_classify_top_k(p, 5, SH_SCORES_PROBABILITIES, 8, out, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_int_equal(out[4].class_id, 2);
}

static int by_value_desc(const void *a, const void *b)
{
    const double *x = a, *y = b;   /* pairs (value, index) */
    if (x[0] != y[0])
        return x[0] < y[0] ? 1 : -1;
    return x[1] < y[1] ? -1 : 1;
}

static void test_random_against_full_sort(void **state)
{
    (void)state;
    enum { N = 1000, K = 7 };
    float logits[N];
    double pairs[N][2], sum = 0, max = -1e300;
    srand(12345);
    for (int i = 0; i < N; i++) {
        logits[i] = (float)(rand() % 20001 - 10000) / 1000.0f;   /* [-10, 10], ties likely */
        max = logits[i] > max ? logits[i] : max;
    }
    for (int i = 0; i < N; i++) {
        sum += exp(logits[i] - max);
        pairs[i][0] = logits[i];
        pairs[i][1] = i;
    }
    qsort(pairs, N, sizeof pairs[0], by_value_desc);
    sh_class_score out[K];
    size_t n;
    sh_err err = {0};
    assert_int_equal(sh_classify_top_k(logits, N, SH_SCORES_LOGITS, K, out, &n, &err), 0);
    assert_int_equal(n, K);
    for (int j = 0; j < K; j++) {
        assert_int_equal(out[j].class_id, (int)pairs[j][1]);
        assert_rel(out[j].score, exp(pairs[j][0] - max) / sum, 1e-5);
    }
}

static void test_refused(void **state)
{
    (void)state;
    sh_class_score out[2];
    size_t n = 7;
    sh_err err = {0};
    const float bad[3] = {0.2f, NAN, 0.1f};
    assert_int_equal(sh_classify_top_k(bad, 3, SH_SCORES_LOGITS, 2, out, &n, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "class 1"));
    assert_int_equal(n, 0);
    const float not_p[3] = {0.2f, 1.5f, 0.1f};
    assert_int_equal(sh_classify_top_k(not_p, 3, SH_SCORES_PROBABILITIES, 2, out, &n, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "not a probability"));
    assert_int_equal(sh_classify_top_k(not_p, 3, SH_SCORES_LOGITS, 2, out, &n, &err), 0);   /* fine as logits */
    assert_int_equal(sh_classify_top_k(not_p, 0, SH_SCORES_LOGITS, 2, out, &n, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_classify_top_k(not_p, 3, SH_SCORES_LOGITS, 0, out, &n, &err), SHOAL_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_by_hand),
        cmocka_unit_test(test_large_logits_do_not_overflow),
        cmocka_unit_test(test_probabilities_and_ties),
        cmocka_unit_test(test_random_against_full_sort),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
