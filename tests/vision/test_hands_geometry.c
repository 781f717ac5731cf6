/* The hand pipeline's geometry without models: SSD anchors as MediaPipe lays them out, box and
 * keypoint decoding with letterbox removal, weighted NMS against a hand computation, palm and
 * landmark ROIs (rotation, shift, square, scale), and the rotated crop against the landmark
 * projection (a crop pixel must read the image where the projection puts it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vision/hands.h"

#define N_ANCHORS 2016
#define VALS 18

static void test_anchors(void **state)
{
    (void)state;
    sh_palm_params p = sh_palm_default_params();
    static float xy[2 * SH_PALM_MAX_ANCHORS];
    assert_int_equal(sh_palm_anchors(&p, xy, SH_PALM_MAX_ANCHORS, NULL), N_ANCHORS);
    /* 24x24 cells of 2 (stride 8), then 12x12 cells of 6 (three stride-16 layers together) */
    assert_float_equal(xy[0], 0.5f / 24, 1e-7);
    assert_float_equal(xy[2], 0.5f / 24, 1e-7);
    assert_float_equal(xy[2 * 2], 1.5f / 24, 1e-7);
    assert_float_equal(xy[2 * 1152], 0.5f / 12, 1e-7);
    assert_float_equal(xy[2 * 1157], 0.5f / 12, 1e-7);
    assert_float_equal(xy[2 * 1158], 1.5f / 12, 1e-7);
    assert_float_equal(xy[2 * 2015], 11.5f / 12, 1e-7);
    assert_float_equal(xy[2 * 2015 + 1], 11.5f / 12, 1e-7);
    assert_true(sh_palm_anchors(&p, xy, 100, NULL) < 0);
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* A box (centre offset dx, dy and size w, h, model pixels) at anchor i, keypoint k at
 * (k, -k) pixels from the anchor. */
static void put(float *boxes, int i, float dx, float dy, float w, float h)
{
    float *r = boxes + (size_t)i * VALS;
    r[0] = dx;
    r[1] = dy;
    r[2] = w;
    r[3] = h;
    for (int k = 0; k < SH_PALM_KEYPOINTS; k++) {
        r[4 + 2 * k] = (float)k;
        r[5 + 2 * k] = (float)-k;
    }
}

static void test_decode_nms(void **state)
{
    (void)state;
    sh_palm_params p = sh_palm_default_params();
    static float xy[2 * SH_PALM_MAX_ANCHORS], boxes[N_ANCHORS * VALS], logits[N_ANCHORS];
    assert_int_equal(sh_palm_anchors(&p, xy, SH_PALM_MAX_ANCHORS, NULL), N_ANCHORS);
    for (int i = 0; i < N_ANCHORS; i++)
        logits[i] = -8.0f;
    memset(boxes, 0, sizeof boxes);
    /* two overlapping boxes on anchors 300/301 (same cell), one far away on 1500 */
    put(boxes, 300, 0, 0, 40, 40);
    put(boxes, 301, 4, 2, 44, 40);
    put(boxes, 1500, 0, 0, 30, 30);
    logits[300] = 3.0f;
    logits[301] = 2.0f;
    logits[1500] = 1.0f;
    logits[7] = 1e9f;     /* clipped to 100, still one palm; a tiny empty box absorbs nothing */
    logits[8] = NAN;      /* never passes */
    size_t sb = sh_palm_scratch_bytes(N_ANCHORS);
    void *scratch = malloc(sb);
    sh_palm out[8];
    int n = sh_palm_decode(&p, boxes, logits, xy, N_ANCHORS, 192, 192, scratch, sb, out, 8, NULL);
    assert_int_equal(n, 3);
    assert_float_equal(out[0].score, 1.0f, 1e-6);   /* anchor 7's zero-size box, alone */
    assert_float_equal(out[0].width, 0.0f, 1e-7);
    /* the merged pair: corners are the score-weighted means */
    float s0 = sigmoid(3.0f), s1 = sigmoid(2.0f);
    float ax = xy[600], ay = xy[601];
    float x0a = ax - 20.0f / 192, x0b = ax + 4.0f / 192 - 22.0f / 192;
    float x1a = ax + 20.0f / 192, x1b = ax + 4.0f / 192 + 22.0f / 192;
    float y0a = ay - 20.0f / 192, y0b = ay + 2.0f / 192 - 20.0f / 192;
    float xmin = (s0 * x0a + s1 * x0b) / (s0 + s1), xmax = (s0 * x1a + s1 * x1b) / (s0 + s1);
    assert_float_equal(out[1].score, s0, 1e-6);
    assert_float_equal(out[1].xmin, xmin, 1e-6);
    assert_float_equal(out[1].width, xmax - xmin, 1e-6);
    assert_float_equal(out[1].ymin, (s0 * y0a + s1 * y0b) / (s0 + s1), 1e-6);
    assert_float_equal(out[1].kp[3][0], ax + 3.0f / 192, 1e-6);
    assert_float_equal(out[1].kp[3][1], ay - 3.0f / 192, 1e-6);
    assert_float_equal(out[2].score, sigmoid(1.0f), 1e-6);
    /* cap: the best only */
    assert_int_equal(sh_palm_decode(&p, boxes, logits, xy, N_ANCHORS, 192, 192, scratch, sb, out, 1, NULL), 1);
    /* letterbox removal: a 384x192 image sits in the middle half of the square input */
    n = sh_palm_decode(&p, boxes, logits, xy, N_ANCHORS, 384, 192, scratch, sb, out, 8, NULL);
    assert_int_equal(n, 3);
    assert_float_equal(out[1].xmin, xmin, 1e-6);
    assert_float_equal(out[1].ymin, ((s0 * y0a + s1 * y0b) / (s0 + s1) - 0.25f) / 0.5f, 1e-6);
    assert_float_equal(out[1].height, 2 * 40.0f / 192, 1e-5);
    /* too little scratch is an error, not an overrun */
    assert_int_equal(sh_palm_decode(&p, boxes, logits, xy, N_ANCHORS, 192, 192, scratch, sb - 1, out, 8, NULL),
                     SHOAL_ERR_INVALID_ARG);
    free(scratch);
}

static void test_palm_rect(void **state)
{
    (void)state;
    /* fingers up (middle MCP above the wrist): no rotation; the ROI moves half a box up */
    sh_palm up = {.score = 1, .xmin = 0.4f, .ymin = 0.4f, .width = 0.2f, .height = 0.2f};
    up.kp[0][0] = 0.5f, up.kp[0][1] = 0.6f, up.kp[2][0] = 0.5f, up.kp[2][1] = 0.4f;
    sh_hand_rect r = sh_hand_rect_from_palm(&up, 100, 100);
    assert_float_equal(r.rotation, 0.0f, 1e-6);
    assert_float_equal(r.x_center, 0.5f, 1e-6);
    assert_float_equal(r.y_center, 0.5f - 0.5f * 0.2f, 1e-6);
    assert_float_equal(r.width, 0.2f * 2.6f, 1e-6);
    /* fingers right: rotation +90 degrees, the shift goes along +x */
    sh_palm right = up;
    right.kp[0][0] = 0.4f, right.kp[0][1] = 0.5f, right.kp[2][0] = 0.6f, right.kp[2][1] = 0.5f;
    r = sh_hand_rect_from_palm(&right, 100, 100);
    assert_float_equal(r.rotation, (float)M_PI / 2, 1e-6);
    assert_float_equal(r.x_center, 0.5f + 0.5f * 0.2f, 1e-6);
    assert_float_equal(r.y_center, 0.5f, 1e-6);
    /* square on the long side in pixels for a wide image */
    r = sh_hand_rect_from_palm(&up, 200, 100);
    assert_float_equal(r.width * 200, r.height * 100, 1e-3);
    assert_float_equal(r.width * 200, 0.2f * 200 * 2.6f, 1e-3);
}

static void test_crop_matches_projection(void **state)
{
    (void)state;
    sh_image img = {.width = 200, .height = 180, .channels = 3};
    img.data = malloc(200 * 180 * 3);
    for (int y = 0; y < 180; y++)
        for (int x = 0; x < 200; x++) {   /* R = x, G = y: bilinear sampling reads coordinates back */
            uint8_t *px = img.data + (y * 200 + x) * 3;
            px[0] = (uint8_t)x;
            px[1] = (uint8_t)y;
            px[2] = 7;
        }
    sh_hand_rect r = {0.5f, 0.5f, 0.4f, 0.4f * 200 / 180, 0.7f};
    enum { S = 32 };
    float *crop = malloc(S * S * 3 * sizeof(float));
    sh_hand_crop(&img, &r, S, S, true, crop);
    float raw[3 * SH_HAND_LANDMARKS], lm[SH_HAND_LANDMARKS][3];
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
        raw[3 * i] = (float)((i * 7) % S);
        raw[3 * i + 1] = (float)((i * 11) % S);
        raw[3 * i + 2] = 0;
    }
    sh_hand_landmarks_project(raw, S, S, &r, 200, 180, lm);
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
        const float *c = crop + ((size_t)raw[3 * i + 1] * S + (size_t)raw[3 * i]) * 3;
        assert_float_equal(c[0] * 255, lm[i][0], 1e-2);
        assert_float_equal(c[1] * 255, lm[i][1], 1e-2);
        assert_float_equal(c[2] * 255, 7, 1e-3);
    }
    /* outside the image: zero border, or the nearest edge pixel */
    sh_hand_rect off = {0.0f, 0.0f, 0.2f, 0.2f, 0.0f};
    sh_hand_crop(&img, &off, S, S, true, crop);
    assert_float_equal(crop[2], 0.0f, 0);
    sh_hand_crop(&img, &off, S, S, false, crop);
    assert_float_equal(crop[2] * 255, 7, 1e-3);
    free(crop);
    free(img.data);
}

static void test_landmark_rect(void **state)
{
    (void)state;
    /* an upright hand: wrist at the bottom, MCPs above, fingertips higher */
    float lm[SH_HAND_LANDMARKS][3] = {{0}};
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
        int finger = i == 0 ? 0 : (i - 1) / 4, joint = i == 0 ? 0 : (i - 1) % 4;
        lm[i][0] = i == 0 ? 100.0f : 100.0f + (float)(finger - 2) * 10.0f;
        lm[i][1] = i == 0 ? 150.0f : 120.0f - (float)joint * 12.0f;
    }
    sh_hand_rect a = sh_hand_rect_from_landmarks(lm, 200, 200);
    assert_float_equal(a.rotation, 0.0f, 1e-5);
    assert_float_equal(a.width * 200, a.height * 200, 1e-3);
    /* the same hand turned by 0.5 rad about (100, 100): same size, rotation 0.5 */
    float rot[SH_HAND_LANDMARKS][3];
    float cs = cosf(0.5f), sn = sinf(0.5f);
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
        float dx = lm[i][0] - 100, dy = lm[i][1] - 100;
        rot[i][0] = 100 + cs * dx - sn * dy;
        rot[i][1] = 100 + sn * dx + cs * dy;
        rot[i][2] = 0;
    }
    sh_hand_rect b = sh_hand_rect_from_landmarks(rot, 200, 200);
    assert_float_equal(b.rotation, 0.5f, 1e-5);
    assert_float_equal(b.width, a.width, 1e-4);
    float ax = (a.x_center - 0.5f) * 200, ay = (a.y_center - 0.5f) * 200;
    assert_float_equal(b.x_center * 200 - 100, cs * ax - sn * ay, 1e-2);
    assert_float_equal(b.y_center * 200 - 100, sn * ax + cs * ay, 1e-2);
    assert_float_equal(sh_hand_rect_iou(&a, &a), 1.0f, 1e-6);
    sh_hand_rect far = a;
    far.x_center += 2 * a.width;
    assert_float_equal(sh_hand_rect_iou(&a, &far), 0.0f, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anchors),          cmocka_unit_test(test_decode_nms),
        cmocka_unit_test(test_palm_rect),        cmocka_unit_test(test_crop_matches_projection),
        cmocka_unit_test(test_landmark_rect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
