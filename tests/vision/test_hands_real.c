/* The hand landmarker on MediaPipe's own test photo against MediaPipe's own expected results
 * (../shared/real-models/hands, README there), with the tolerances MediaPipe's tests use:
 *  - palm boxes and scores vs the hand detector test's detections: +-0.01 per field;
 *    hand-ROI width/height +-0.02;
 *  - the landmark model alone on the Tasks test's fixed ROIs: 0.03 (normalized) per x, y;
 *  - the whole pipeline vs the legacy Hands solution (the npm graph and models): < 20 px per
 *    x, y (full model), handedness label;
 *  - video mode: tracked frames skip the palm model and stay within the same tolerance (the
 *    legacy test runs 10 video frames of this photo against the same 20 px);
 *  - frames of another size (the sessions rebuilt for it): the photo's left half finds its
 *    hand, and the whole photo afterwards gives bit for bit the hands it gave before.
 * Skips (77) without models/ (make models) or ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

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
    sh_hand_models m = sh_hand_sessions_models(f->m.hs);
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

/* Reads the x, y landmarks of a NormalizedLandmarkList text proto. */
static int read_landmark_file(const char *path, float xy[SH_HAND_LANDMARKS][2])
{
    char *txt = hr_read_text(path);
    assert_non_null(txt);
    const char *at = txt;
    int n = 0;
    while (n < SH_HAND_LANDMARKS && (at = strstr(at, "landmark {")) != NULL) {
        xy[n][0] = (float)hr_pb_number(at, "x", &at);
        xy[n][1] = (float)hr_pb_number(at, "y", &at);
        n++;
    }
    free(txt);
    return n;
}

/* The Tasks landmark test: the landmark model on a fixed ROI, 0.03 (normalized) per x and y. */
static void check_fixed_roi(fixture *f, const char *file, sh_hand_rect roi)
{
    sh_hand_params p = sh_hand_default_params();
    sh_hand_models m = sh_hand_sessions_models(f->m.hs);
    sh_hand h;
    sh_err err = {0};
    assert_int_equal(sh_hand_landmarks_run(&p, &m, &f->img, &roi, &h, &err), 0);
    float want[SH_HAND_LANDMARKS][2];
    assert_int_equal(read_landmark_file(file, want), SH_HAND_LANDMARKS);
    float worst = 0;
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
        float dx = fabsf(h.landmarks[i][0] / (float)f->img.width - want[i][0]);
        float dy = fabsf(h.landmarks[i][1] / (float)f->img.height - want[i][1]);
        worst = fmaxf(worst, fmaxf(dx, dy));
    }
    printf("%s: largest |d| %.4f (normalized), presence %.3f, handedness %s %.3f\n", file, worst, h.presence,
           sh_hand_label(h.handedness), h.handedness_score);
    assert_true(worst <= 0.03f);
    assert_true(h.presence > 0.5f);
    /* Tasks says "Left" with its swapped label map; the npm map names the same class "Right" */
    assert_string_equal(sh_hand_label(h.handedness), "Right");
}

static void test_landmarks_fixed_roi(void **state)
{
    fixture *f = *state;
    check_fixed_roi(f, HAND_DIR "/left_hands.landmarks_left_up.expected.pbtxt",
                    (sh_hand_rect){0.25f, 0.5f, 0.5f, 1.0f, 0.0f});
    check_fixed_roi(f, HAND_DIR "/left_hands.landmarks_left_down.expected.pbtxt",
                    (sh_hand_rect){0.75f, 0.5f, 0.5f, 1.0f, (float)M_PI});
}

/* Pixel landmarks of both hands from one source of the JSON: 0 the legacy Python solution's
 * test, 1 tfjs-models' test of the npm package. */
static void read_legacy(int source, float want[2][SH_HAND_LANDMARKS][2], int *tol_px)
{
    char *txt = hr_read_text(HAND_DIR "/left_hands.legacy_solution.expected.json");
    assert_non_null(txt);
    cJSON *root = cJSON_Parse(txt);
    assert_non_null(root);
    cJSON *src = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "sources"), source);
    assert_non_null(src);
    cJSON *hands = cJSON_GetObjectItem(src, "hands");
    assert_int_equal(cJSON_GetArraySize(hands), 2);
    for (int h = 0; h < 2; h++) {
        cJSON *pts = cJSON_GetArrayItem(hands, h);
        assert_int_equal(cJSON_GetArraySize(pts), SH_HAND_LANDMARKS);
        for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
            cJSON *pt = cJSON_GetArrayItem(pts, i);
            want[h][i][0] = (float)cJSON_GetArrayItem(pt, 0)->valuedouble;
            want[h][i][1] = (float)cJSON_GetArrayItem(pt, 1)->valuedouble;
        }
    }
    cJSON *tol = cJSON_GetObjectItem(src, "tolerance_px");
    cJSON *full = cJSON_IsObject(tol) ? cJSON_GetObjectItem(tol, "model_complexity_1_full") : tol;
    assert_true(cJSON_IsNumber(full));
    *tol_px = full->valueint;
    cJSON_Delete(root);
    free(txt);
}

/* Both hands against one legacy source, matched by nearest wrist; returns the largest error. */
static float compare_source(int source, const sh_hand *hands, int n)
{
    float want[2][SH_HAND_LANDMARKS][2];
    int tol;
    read_legacy(source, want, &tol);
    assert_int_equal(tol, 20);
    assert_int_equal(n, 2);
    float worst = 0;
    for (int e = 0; e < 2; e++) {
        int best = 0;
        float bd = INFINITY;
        for (int i = 0; i < n; i++) {
            float d = hypotf(hands[i].landmarks[0][0] - want[e][0][0], hands[i].landmarks[0][1] - want[e][0][1]);
            if (d < bd) {
                bd = d;
                best = i;
            }
        }
        for (int k = 0; k < SH_HAND_LANDMARKS; k++) {
            worst = fmaxf(worst, fabsf(hands[best].landmarks[k][0] - want[e][k][0]));
            worst = fmaxf(worst, fabsf(hands[best].landmarks[k][1] - want[e][k][1]));
        }
        /* the npm label map (mirrored-selfie convention) names both hands of this photo "Right" */
        assert_string_equal(sh_hand_label(hands[best].handedness), "Right");
    }
    assert_true(worst < (float)tol);
    return worst;
}

static float compare_legacy(const sh_hand *hands, int n)
{
    return compare_source(0, hands, n);
}

static void test_pipeline(void **state)
{
    fixture *f = *state;
    sh_hand_params p = sh_hand_default_params();
    sh_hand hands[SH_HAND_MAX_HANDS];
    int n;
    assert_int_equal(run_frame(f, &p, NULL, hands, &n, NULL, NULL), 0);
    float worst = compare_legacy(hands, n), tfjs = compare_source(1, hands, n);
    printf("pipeline: %d hands, largest |d| %.2f px vs the Python test, %.2f px vs tfjs (tolerance 20), "
           "handedness %s %.3f / %s %.3f\n", n, worst, tfjs,
           sh_hand_label(hands[0].handedness), hands[0].handedness_score, sh_hand_label(hands[1].handedness),
           hands[1].handedness_score);
}

/* Video mode: the second frame is tracked from the first one's landmarks (no palm model), a
 * blank frame loses the hands, and the next real frame detects them again. */
static void test_tracking(void **state)
{
    fixture *f = *state;
    sh_hand_params p = sh_hand_default_params();
    sh_hand_tracker t = {0};
    sh_hand hands[SH_HAND_MAX_HANDS];
    int n, np;
    long palm_runs = sh_hand_sessions_runs(f->m.hs, SH_HAND_MODEL_PALM);
    assert_int_equal(run_frame(f, &p, &t, hands, &n, NULL, &np), 0);
    assert_int_equal(np, 2);
    assert_true(hands[0].from_palm && hands[1].from_palm);
    compare_legacy(hands, n);
    for (int frame = 0; frame < 2; frame++) {
        assert_int_equal(run_frame(f, &p, &t, hands, &n, NULL, &np), 0);
        assert_int_equal(np, 0);
        assert_false(hands[0].from_palm || hands[1].from_palm);
        float worst = compare_legacy(hands, n);
        printf("tracked frame %d: largest |d| %.2f px\n", frame + 2, worst);
    }
    assert_int_equal(t.detector_runs, 1);
    assert_int_equal(sh_hand_sessions_runs(f->m.hs, SH_HAND_MODEL_PALM), palm_runs + 1);
    sh_image blank;
    sh_err err = {0};
    assert_int_equal(sh_image_create(f->a, f->img.width, f->img.height, &blank, &err), 0);
    sh_image real = f->img;
    f->img = blank;
    int rc = run_frame(f, &p, &t, hands, &n, NULL, &np);
    f->img = real;
    sh_image_free(&blank);
    /* the blank frame is still tracked (two ROIs were known): presence drops, both hands go */
    assert_int_equal(rc, 0);
    assert_int_equal(np, 0);
    assert_int_equal(n, 0);
    assert_int_equal(t.n_prev, 0);
    assert_int_equal(run_frame(f, &p, &t, hands, &n, NULL, &np), 0);
    assert_int_equal(np, 2);
    assert_int_equal(t.detector_runs, 2);
    compare_legacy(hands, n);
}

/* The photo's left `w` columns as a frame of their own. */
static sh_image left_part(fixture *f, int w)
{
    sh_image part;
    sh_err err = {0};
    assert_int_equal(sh_image_create(f->a, w, f->img.height, &part, &err), 0);
    for (int y = 0; y < f->img.height; y++)
        memcpy(part.data + (size_t)y * w * 3, f->img.data + (size_t)y * f->img.width * 3, (size_t)w * 3);
    return part;
}

static void test_frame_size_change(void **state)
{
    fixture *f = *state;
    sh_hand_params p = sh_hand_default_params();
    sh_hand before[SH_HAND_MAX_HANDS], half[SH_HAND_MAX_HANDS], after[SH_HAND_MAX_HANDS];
    int n_before, n_half, n_after;
    assert_int_equal(run_frame(f, &p, NULL, before, &n_before, NULL, NULL), 0);
    sh_image whole = f->img;
    f->img = left_part(f, whole.width / 2);
    int rc = run_frame(f, &p, NULL, half, &n_half, NULL, NULL);
    sh_image_free(&f->img);
    f->img = whole;
    assert_int_equal(rc, 0);
    assert_true(n_half >= 1);
    for (int i = 0; i < n_half; i++)   /* landmarks inside the half frame */
        for (int k = 0; k < SH_HAND_LANDMARKS; k++)
            assert_true(half[i].landmarks[k][0] > -20.0f && half[i].landmarks[k][0] < (float)(whole.width / 2) + 20.0f);
    assert_int_equal(run_frame(f, &p, NULL, after, &n_after, NULL, NULL), 0);
    assert_int_equal(n_after, n_before);
    assert_memory_equal(after, before, (size_t)n_before * sizeof *before);
    printf("frame size change: %d hands on the left half, the whole photo's %d hands unchanged after it\n", n_half,
           n_before);
}

int main(void)
{
    hr_require_data();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_palms),
        cmocka_unit_test(test_landmarks_fixed_roi),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_tracking),
        cmocka_unit_test(test_frame_size_change),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
