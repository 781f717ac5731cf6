/* The hand landmarker's frame loop over stand-in models (no files needed): one palm on a known
 * anchor, landmarks at known crop pixels, presence and handedness set by the test. Checks the
 * loop itself: ROI from the palm, landmarks projected through it, labels, presence dropping a
 * hand, tracking skipping the palm model, wrong output sizes and model failures reported, and
 * every allocation failure returning SHOAL_ERR_NO_MEMORY without leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "vision/hand_landmarker.h"

enum { N_ANCHORS = 2016, PALM_ANCHOR = 300 };

typedef struct fake {
    float boxes[N_ANCHORS * 18], logits[N_ANCHORS];
    float lm[63], presence, handedness, world[63];
    int runs[2];
    int fail_model;          /* -1 none */
    size_t short_output;     /* > 0: the landmark output is this long */
} fake;

static int fake_run(void *ctx, sh_hand_model model, const sh_image *frame, const sh_hand_rect *rect,
                    const float **outputs, size_t *counts, int n_outputs, sh_err *err)
{
    fake *f = ctx;
    assert_int_equal(frame->width, 192);
    assert_int_equal(frame->height, 192);
    f->runs[model]++;
    if ((int)model == f->fail_model)
        return sh_errf(err, SHOAL_ERR_BACKEND, "fake model %d failed", (int)model);
    if (model == SH_HAND_MODEL_PALM) {
        sh_hand_rect whole = sh_palm_input_rect(frame->width, frame->height);   /* the letterbox */
        assert_memory_equal(rect, &whole, sizeof whole);
        assert_int_equal(n_outputs, 2);
        outputs[0] = f->boxes;
        counts[0] = N_ANCHORS * 18;
        outputs[1] = f->logits;
        counts[1] = N_ANCHORS;
        return 0;
    }
    assert_true(rect->width > 0 && rect->height > 0);   /* a hand's ROI */
    assert_int_equal(n_outputs, 4);
    outputs[0] = f->lm;
    counts[0] = f->short_output ? f->short_output : 63;
    outputs[1] = &f->presence;
    counts[1] = 1;
    outputs[2] = &f->handedness;
    counts[2] = 1;
    outputs[3] = f->world;
    counts[3] = 63;
    return 0;
}

static void fake_init(fake *f)
{
    memset(f, 0, sizeof *f);
    f->fail_model = -1;
    for (int i = 0; i < N_ANCHORS; i++)
        f->logits[i] = -10.0f;
    /* a 48-pixel palm on its anchor, wrist 10 px below the centre, middle MCP 10 px above */
    float *b = f->boxes + PALM_ANCHOR * 18;
    b[2] = b[3] = 48.0f;
    b[5] = 10.0f;
    b[9] = -10.0f;
    f->logits[PALM_ANCHOR] = 4.0f;
    for (int i = 0; i < 21; i++) {   /* landmarks spread over the crop's centre */
        f->lm[3 * i] = 112.0f + (float)(i % 5 - 2) * 10.0f;
        f->lm[3 * i + 1] = 112.0f + (float)(i / 5 - 2) * 10.0f;
    }
    f->presence = 0.9f;
    f->handedness = 0.2f;   /* class 0 ("Left") at 0.2: "Right" at 0.8 */
}

static sh_image gray_image(sh_allocator *a)
{
    sh_image img;
    assert_int_equal(sh_image_create(a, 192, 192, &img, NULL), 0);
    memset(img.data, 128, 192 * 192 * 3);
    return img;
}

/* One still frame (no tracker) of a grey image through f with the default parameters. */
static void still_frame(sh_allocator *a, fake *f, sh_hand *hands, int *n, sh_palm *palms, int *np)
{
    sh_image img = gray_image(a);
    sh_hand_params p = sh_hand_default_params();
    sh_hand_models m = {.run = fake_run, .ctx = f};
    assert_int_equal(sh_hand_landmarker_run(a, &p, &m, NULL, &img, hands, SH_HAND_MAX_HANDS, n, palms, np, NULL), 0);
    sh_image_free(&img);
}

static void test_frame(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    static fake f;
    fake_init(&f);
    sh_hand hands[SH_HAND_MAX_HANDS];
    sh_palm palms[SH_HAND_MAX_HANDS];
    int n, np;
    still_frame(a, &f, hands, &n, palms, &np);
    assert_int_equal(np, 1);
    assert_int_equal(n, 1);
    /* the crop centre is the ROI centre: a landmark at crop (112, 112) lands there */
    sh_hand_rect r = sh_hand_rect_from_palm(&palms[0], 192, 192);
    assert_float_equal(hands[0].roi.x_center, r.x_center, 1e-6);
    assert_float_equal(hands[0].landmarks[12][0], r.x_center * 192, 1e-3);
    assert_float_equal(hands[0].landmarks[12][1], r.y_center * 192, 1e-3);
    assert_float_equal(r.rotation, 0.0f, 1e-6);   /* middle MCP straight above the wrist */
    assert_string_equal(sh_hand_label(hands[0].handedness), "Right");
    assert_float_equal(hands[0].handedness_score, 0.8f, 1e-6);
    assert_true(hands[0].from_palm);
    /* presence below the threshold drops the hand */
    f.presence = 0.3f;
    still_frame(a, &f, hands, &n, NULL, NULL);
    assert_int_equal(n, 0);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* Two palms 30 px apart: their boxes overlap too little for the palm NMS (IoU 0.23) but
 * their ROIs, 2.6 times larger, overlap at 0.61 > 0.5: association keeps only the later
 * ROI, the weaker palm's, as MediaPipe's AssociationNormRectCalculator does. */
static void test_overlapping_palms(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    static fake f;
    fake_init(&f);
    float *b = f.boxes + (PALM_ANCHOR + 2) * 18;   /* the next cell to the right: 8 px further */
    b[0] = 22.0f;                                    /* box centre 30 px right of the first palm */
    b[2] = b[3] = 48.0f;
    b[4] = 22.0f;
    b[5] = 10.0f;
    b[8] = 22.0f;
    b[9] = -10.0f;
    f.logits[PALM_ANCHOR + 2] = 3.0f;
    sh_hand hands[SH_HAND_MAX_HANDS];
    sh_palm palms[SH_HAND_MAX_HANDS];
    int n, np;
    still_frame(a, &f, hands, &n, palms, &np);
    assert_int_equal(np, 2);
    assert_true(palms[0].score > palms[1].score);
    sh_hand_rect r0 = sh_hand_rect_from_palm(&palms[0], 192, 192), r1 = sh_hand_rect_from_palm(&palms[1], 192, 192);
    assert_true(sh_hand_rect_iou(&r0, &r1) > sh_hand_default_params().track_iou);
    assert_int_equal(n, 1);
    assert_float_equal(hands[0].roi.x_center, r1.x_center, 1e-6);
    assert_int_equal(f.runs[SH_HAND_MODEL_LANDMARK], 1);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_tracking(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    static fake f;
    fake_init(&f);
    sh_image img = gray_image(a);
    sh_hand_params p = sh_hand_default_params();
    p.num_hands = 1;
    sh_hand_models m = {.run = fake_run, .ctx = &f};
    sh_hand_tracker t = {0};
    sh_hand hands[SH_HAND_MAX_HANDS];
    int n, np;
    for (int frame = 0; frame < 3; frame++) {
        assert_int_equal(sh_hand_landmarker_run(a, &p, &m, &t, &img, hands, SH_HAND_MAX_HANDS, &n, NULL, &np, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(np, frame == 0 ? 1 : 0);
        assert_int_equal(hands[0].from_palm, frame == 0);
    }
    assert_int_equal(f.runs[SH_HAND_MODEL_PALM], 1);
    assert_int_equal(f.runs[SH_HAND_MODEL_LANDMARK], 3);
    assert_int_equal(t.frames, 3);
    assert_int_equal(t.detector_runs, 1);
    sh_image_free(&img);
    sh_allocator_destroy(a);
}

static void test_errors(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    static fake f;
    fake_init(&f);
    sh_image img = gray_image(a);
    sh_hand_params p = sh_hand_default_params();
    sh_hand_models m = {.run = fake_run, .ctx = &f};
    sh_hand hands[SH_HAND_MAX_HANDS];
    int n;
    sh_err err = {0};
    f.short_output = 60;
    assert_int_equal(sh_hand_landmarker_run(a, &p, &m, NULL, &img, hands, SH_HAND_MAX_HANDS, &n, NULL, NULL, &err),
                     SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "landmark output has 60 values, expected 63"));
    f.short_output = 0;
    f.fail_model = SH_HAND_MODEL_PALM;
    assert_int_equal(sh_hand_landmarker_run(a, &p, &m, NULL, &img, hands, SH_HAND_MAX_HANDS, &n, NULL, NULL, &err),
                     SHOAL_ERR_BACKEND);
    f.fail_model = -1;
    p.num_hands = 0;
    assert_int_equal(sh_hand_landmarker_run(a, &p, &m, NULL, &img, hands, SH_HAND_MAX_HANDS, &n, NULL, NULL, &err),
                     SHOAL_ERR_INVALID_ARG);
    p.num_hands = 2;
    /* every allocation of a frame failing in turn */
    int failures = 0;
    for (long k = 0; k < 16; k++) {
        sh_allocator_fail_after(a, k, 0);
        int rc = sh_hand_landmarker_run(a, &p, &m, NULL, &img, hands, SH_HAND_MAX_HANDS, &n, NULL, NULL, &err);
        sh_allocator_fail_after(a, -1, 0);
        if (rc == 0)
            break;
        assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
        failures++;
    }
    assert_true(failures >= 1);   /* the palm decoder's scratch (the callee makes the crops) */
    sh_image_free(&img);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_overlapping_palms),
        cmocka_unit_test(test_tracking),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
