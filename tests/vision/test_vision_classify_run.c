/* task: classify through the runtime, as a user configures it: the tiny classifiers of
 * gen_classifiers.py (global average pool, then a 3 -> 4 Gemm, the second ending in Softmax)
 * on a one-colour picture, whose pooled input is the colour itself, so the expected
 * probabilities follow from the weights by hand: p = softmax(W c + B), c = rgb / 255. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "shoal.h"

#define DATA SHOAL_SOURCE_DIR "/tests/vision/data/"

/* gen_classifiers.py's W and B */
static const double WEIGHTS[4][3] = {{4, 0, 0}, {0, 4, 0}, {0, 0, 4}, {2, 2, 2}};
static const double BIAS[4] = {0.0, 0.1, 0.2, -1.0};
static const uint8_t COLOUR[3] = {200, 50, 120};

static void reference(double p[4], double logits[4])
{
    double max = -1e300, sum = 0;
    for (int k = 0; k < 4; k++) {
        logits[k] = BIAS[k];
        for (int c = 0; c < 3; c++)
            logits[k] += WEIGHTS[k][c] * (COLOUR[c] / 255.0);
        max = logits[k] > max ? logits[k] : max;
    }
    for (int k = 0; k < 4; k++)
        sum += exp(logits[k] - max);
    for (int k = 0; k < 4; k++)
        p[k] = exp(logits[k] - max) / sum;
}

typedef struct classified {
    int n;
    int class_id[4];
    char name[4][16];
    float score[4];
    float box[4];
} classified;

/* Runs `model` (a file in DATA) with the extra model keys `keys` (which may replace the
 * classes; decoder none takes none); returns the create or run status, the result copied into *out (detections up to
 * 4) and the message into msg. */
static int classify(const char *model, const char *keys, classified *out, char *msg, size_t cap)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "models:\n  cls:\n    path: %s%s\n    task: classify\n    input_size: 8\n    letterbox: stretch\n"
             "%s%s"
             "modes:\n  m: [cls]\ninference:\n  device: cpu\n  threads: 1\n",
             DATA, model, strstr(keys, "classes:") || strstr(keys, "decoder: none") ? "" : "    classes: [red, green, blue, grey]\n",
             keys);
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = yaml;
    p.error = msg;
    p.error_cap = cap;
    shoal_runtime_t rt;
    int rc = shoal_runtime_create(&p, &rt);
    if (rc)
        return rc;
    uint8_t px[30][40][3];
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++)
            memcpy(px[y][x], COLOUR, 3);
    shoal_image img = shoal_image_wrap(&px[0][0][0], 40, 30);
    shoal_results_t res = NULL;
    rc = shoal_runtime_run_mode(rt, "m", &img, &res);
    if (rc) {
        snprintf(msg, cap, "%s", shoal_runtime_last_error(rt));
    } else {
        const shoal_model_result *r = shoal_results_get(res, 0);
        assert_string_equal(r->task, "classify");
        memset(out, 0, sizeof *out);
        out->n = r->n_detections;
        for (int i = 0; i < r->n_detections && i < 4; i++) {
            const shoal_detection *d = &r->detections[i];
            out->class_id[i] = d->class_id;
            snprintf(out->name[i], sizeof out->name[i], "%s", d->class_name);
            out->score[i] = d->score;
            assert_null(d->mask_rle);
        }
        if (r->n_detections) {
            out->box[0] = r->detections[0].x1;
            out->box[1] = r->detections[0].y1;
            out->box[2] = r->detections[0].x2;
            out->box[3] = r->detections[0].y2;
        }
    }
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
    return rc;
}

static void assert_rel(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fabs(want)))
        fail_msg("got %.9g, want %.9g (relative tolerance %.1g)", got, want, tol);
}

/* the classes of the reference, best first */
static void ranked(const double p[4], int order[4])
{
    for (int i = 0; i < 4; i++)
        order[i] = i;
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (p[order[j]] > p[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
}

static void test_logits_get_a_softmax(void **state)
{
    (void)state;
    double p[4], logits[4];
    int order[4];
    reference(p, logits);
    ranked(p, order);
    classified c;
    char msg[512] = "";
    if (classify("classifier_logits.onnx", "    top_k: 3\n", &c, msg, sizeof msg))
        fail_msg("%s", msg);
    assert_int_equal(c.n, 3);
    static const char *const NAMES[4] = {"red", "green", "blue", "grey"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.class_id[i], order[i]);
        assert_string_equal(c.name[i], NAMES[order[i]]);
        assert_rel(c.score[i], p[order[i]], 1e-4);
    }
    /* the box is the whole picture */
    assert_true(c.box[0] == 0 && c.box[1] == 0 && c.box[2] == 40 && c.box[3] == 30);
}

static void test_softmax_output_is_detected(void **state)
{
    (void)state;
    double p[4], logits[4];
    int order[4];
    reference(p, logits);
    ranked(p, order);
    classified c;
    char msg[512] = "";
    /* scores: auto finds the Softmax: the probabilities are not squashed a second time */
    if (classify("classifier_softmax.onnx", "", &c, msg, sizeof msg))
        fail_msg("%s", msg);
    assert_int_equal(c.n, 4);   /* the default top_k of 5, clipped to 4 classes */
    for (int i = 0; i < 4; i++)
        assert_rel(c.score[i], p[order[i]], 1e-4);

    /* scores: logits, asked for, is honoured: a softmax over the probabilities */
    if (classify("classifier_softmax.onnx", "    scores: logits\n    top_k: 1\n", &c, msg, sizeof msg))
        fail_msg("%s", msg);
    double sum = 0;
    for (int k = 0; k < 4; k++)
        sum += exp(p[k]);
    assert_int_equal(c.n, 1);
    assert_rel(c.score[0], exp(p[order[0]]) / sum, 1e-4);
}

static void test_threshold_and_refusals(void **state)
{
    (void)state;
    double p[4], logits[4];
    int order[4];
    reference(p, logits);
    ranked(p, order);
    classified c;
    char msg[512] = "";
    /* score_threshold keeps the classes at or above it */
    char keys[128];
    snprintf(keys, sizeof keys, "    score_threshold: %.6f\n", (p[order[1]] + p[order[2]]) / 2);
    if (classify("classifier_logits.onnx", keys, &c, msg, sizeof msg))
        fail_msg("%s", msg);
    assert_int_equal(c.n, 2);

    /* decoder: none runs the classifier and reports nothing, as asked */
    if (classify("classifier_logits.onnx", "    decoder: none\n", &c, msg, sizeof msg))
        fail_msg("%s", msg);
    assert_int_equal(c.n, 0);

    /* logits said to be probabilities: refused at run, naming the model */
    assert_int_equal(classify("classifier_logits.onnx", "    scores: probabilities\n", &c, msg, sizeof msg),
                     SHOAL_ERR_PARSE);
    assert_non_null(strstr(msg, "model 'cls'"));
    assert_non_null(strstr(msg, "not a probability"));

    /* more names than the output has classes: refused at create */
    assert_int_equal(classify("classifier_logits.onnx", "    classes: [a, b, c, d, e]\n", &c, msg, sizeof msg),
                     SHOAL_ERR_SHAPE);
    assert_non_null(strstr(msg, "output has 4 classes but the config names 5"));
}

int main(void)
{
    FILE *f = fopen(DATA "classifier_logits.onnx", "rb");
    if (!f)
        return 77;
    fclose(f);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_get_a_softmax),
        cmocka_unit_test(test_softmax_output_is_detected),
        cmocka_unit_test(test_threshold_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
