/* NMS, the YOLOv8 / YOLOX / segmentation / landmark decoders on hand-built tensors whose
 * right answers are worked out in the comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "vision/decode.h"

static void nms_rules(void **state)
{
    const float boxes[] = {
        0, 0, 10, 10,    /* 0: 0.9 class 0 */
        1, 1, 11, 11,    /* 1: 0.8 class 0, IoU with 0 = 81/119 */
        1, 1, 11, 11,    /* 2: 0.8 class 1 */
        20, 20, 30, 30,  /* 3: 0.9 class 0, ties with 0 */
        0, 0, 10, 5,     /* 4: 0.7 class 0, IoU with 0 = 0.5 exactly */
    };
    const float scores[] = {0.9f, 0.8f, 0.8f, 0.9f, 0.7f};
    const int classes[] = {0, 0, 1, 0, 0};
    size_t keep[5], n;
    assert_int_equal(sh_nms(NULL, boxes, scores, classes, 5, 0.5f, 0, 5, keep, &n, NULL), 0);
    assert_int_equal(n, 4);
    assert_int_equal(keep[0], 0); /* equal scores: lower index first */
    assert_int_equal(keep[1], 3);
    assert_int_equal(keep[2], 2); /* other class survives class-aware NMS */
    assert_int_equal(keep[3], 4); /* IoU == threshold is not suppressed */
    assert_int_equal(sh_nms(NULL, boxes, scores, classes, 5, 0.5f, 1, 5, keep, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(keep[2], 4);
    assert_int_equal(sh_nms(NULL, boxes, scores, classes, 5, 0.45f, 1, 5, keep, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sh_nms(NULL, boxes, scores, classes, 5, 0.5f, 0, 2, keep, &n, NULL), 0);
    assert_int_equal(n, 2); /* max detections */
    assert_float_equal(sh_box_iou(boxes, boxes + 4), 81.0f / 119.0f, 1e-6);
    const float nan_scores[] = {0.5f, NAN};
    sh_err err = {0};
    assert_int_equal(sh_nms(NULL, boxes, nan_scores, NULL, 2, 0.5f, 1, 2, keep, &n, &err), SHOAL_ERR_INVALID_ARG);
}

/* 128x64 image letterboxed (centred) into 64x64: r = 0.5, picture 64x32, top pad 16. */
static sh_transform wide_transform(void)
{
    sh_preprocess_params p = sh_preprocess_default_params(64, 64);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(128, 64, &p, &xf, NULL), 0);
    assert_true(xf.pad_y == 16 && xf.scale_x == 0.5f);
    return xf;
}

static void yolov8_hand_built(void **state)
{
    enum { N = 4, NC = 2 };
    /* channel-major: row r holds value r of every anchor */
    const float t[(4 + NC) * N] = {
        32, 33, 10, 60,        /* cx */
        32, 32, 10, 20,        /* cy */
        16, 16, 4, 20,         /* w */
        8, 8, 4, 10,           /* h */
        0.1f, 0.8f, 0.2f, 0.5f, /* class 0 */
        0.9f, 0.2f, 0.1f, 0.3f, /* class 1 */
    };
    sh_ftensor out = {t, 3, {1, 4 + NC, N}};
    sh_transform xf = wide_transform();
    sh_decode_params p = sh_decode_default_params();
    sh_detections *d = sh_detections_create(NULL);
    sh_err err = {0};
    assert_int_equal(sh_decode_yolov8(&out, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 3);
    /* anchor 0, class 1: model [24,28,40,36] -> image ((x-0)/0.5, (y-16)/0.5) */
    assert_int_equal(d->items[0].class_id, 1);
    assert_int_equal(d->items[0].anchor, 0);
    assert_float_equal(d->items[0].score, 0.9f, 0);
    assert_float_equal(d->items[0].x1, 48, 1e-4);
    assert_float_equal(d->items[0].y1, 24, 1e-4);
    assert_float_equal(d->items[0].x2, 80, 1e-4);
    assert_float_equal(d->items[0].y2, 40, 1e-4);
    /* anchor 1 overlaps it but is class 0 */
    assert_int_equal(d->items[1].anchor, 1);
    assert_int_equal(d->items[1].class_id, 0);
    /* anchor 3: model [50,15,70,25] -> [100,-2,140,18], clipped to the 128x64 image */
    assert_int_equal(d->items[2].anchor, 3);
    assert_float_equal(d->items[2].x1, 100, 1e-4);
    assert_float_equal(d->items[2].y1, 0, 0);
    assert_float_equal(d->items[2].x2, 128, 0);
    assert_float_equal(d->items[2].y2, 18, 1e-4);

    p.agnostic = 1;
    assert_int_equal(sh_decode_yolov8(&out, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 2);
    p.agnostic = 0;
    p.max_detections = 1;
    assert_int_equal(sh_decode_yolov8(&out, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 1);
    p = sh_decode_default_params();
    p.top_k = 2; /* only anchors 0 and 1 reach NMS */
    assert_int_equal(sh_decode_yolov8(&out, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 2);

    sh_ftensor bad = {t, 3, {1, 4, N}};
    assert_int_equal(sh_decode_yolov8(&bad, &xf, &p, d, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "yolov8"));
    sh_transform unset = {0};
    assert_int_equal(sh_decode_yolov8(&out, &unset, &p, d, &err), SHOAL_ERR_INVALID_ARG);
    sh_detections_destroy(d);
}

static void yolox_grid(void **state)
{
    /* 64x64 input: grids 8x8 (s 8), 4x4 (s 16), 2x2 (s 32) = 84 anchors of 5 + 2 values */
    enum { N = 84, C = 7 };
    static float t[N * C];
    memset(t, 0, sizeof t);
    /* stride 16, gx = 2, gy = 1 -> row 64 + 1*4 + 2 = 70 */
    float *r = t + 70 * C;
    r[0] = 0.5f;             /* cx = (0.5 + 2) * 16 = 40 */
    r[1] = 0.25f;            /* cy = (0.25 + 1) * 16 = 20 */
    r[2] = logf(2.0f);       /* w = 2 * 16 = 32 */
    r[3] = 0;                /* h = 16 */
    r[4] = 0.8f;             /* objectness */
    r[5] = 0.5f;
    r[6] = 0.9f;             /* class 1: score 0.72 */
    /* stride 8, gx = 7, gy = 7 (row 63): a low-score anchor */
    t[63 * C + 4] = 0.5f;
    t[63 * C + 5] = 0.2f;
    sh_ftensor out = {t, 3, {1, N, C}};
    sh_preprocess_params pp = sh_preprocess_yolox_params(64, 64);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(128, 128, &pp, &xf, NULL), 0); /* r = 0.5, no pad */
    sh_decode_params p = sh_decode_default_params();
    p.score_threshold = 0.3f;
    sh_detections *d = sh_detections_create(NULL);
    sh_err err = {0};
    assert_int_equal(sh_decode_yolox(&out, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 1);
    assert_int_equal(d->items[0].anchor, 70);
    assert_int_equal(d->items[0].class_id, 1);
    assert_float_equal(d->items[0].score, 0.72f, 1e-6);
    /* model [24, 12, 56, 28] / 0.5 */
    assert_float_equal(d->items[0].x1, 48, 1e-4);
    assert_float_equal(d->items[0].y1, 24, 1e-4);
    assert_float_equal(d->items[0].x2, 112, 1e-4);
    assert_float_equal(d->items[0].y2, 56, 1e-4);
    p.score_threshold = 0.05f;
    assert_int_equal(sh_decode_yolox(&out, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 2);
    assert_float_equal(d->items[1].score, 0.1f, 1e-6);
    /* cx = (0 + 7) * 8 = 56, w = 8 */
    assert_float_equal(d->items[1].x1, (56 - 4) / 0.5f, 1e-4);

    sh_ftensor wrong = {t, 3, {1, 80, C}};
    assert_int_equal(sh_decode_yolox(&wrong, &xf, &p, d, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "80 anchors"));
    sh_detections_destroy(d);
}

static void mask_crop(void **state)
{
    /* One anchor, one class, one mask coefficient; 4x4 protos for a 16x16 input that is
     * also the image (no letterbox). Box [4,4,12,8] -> proto box [1,1,3,2]: only proto
     * cells (1,1) and (2,1) survive the crop (col >= x1 && col < x2). Upsampled x4 with
     * half-pixel centres, each input pixel is rowweight(y) * colweight(x) (worked out
     * below); > 0.5 inside the box is foreground. */
    const float t[6] = {8, 6, 8, 4, 0.9f, 1.0f};
    sh_ftensor out = {t, 3, {1, 6, 1}};
    float pr[16];
    for (int i = 0; i < 16; i++)
        pr[i] = 10.0f; /* sigmoid(10) ~ 1 everywhere before the crop */
    sh_ftensor protos = {pr, 4, {1, 1, 4, 4}};
    sh_preprocess_params pp = sh_preprocess_default_params(16, 16);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(16, 16, &pp, &xf, NULL), 0);
    sh_decode_params p = sh_decode_default_params();
    sh_allocator *a = sh_allocator_create();
    sh_detections *d = sh_detections_create(a);
    sh_err err = {0};
    assert_int_equal(sh_decode_yolov8_seg(&out, &protos, &xf, &p, d, &err), 0);
    assert_int_equal(d->count, 1);
    const sh_mask *m = d->items[0].mask;
    assert_non_null(m);
    assert_true(m->x == 4 && m->y == 4 && m->width == 8 && m->height == 4);
    /* expected plane, by hand: value = rowweight(y) * colweight(x)
     * rowweight: y4 0.625, y5 0.875, y6 0.875, y7 0.625
     * colweight: x4 0.625, x5 0.875, x6..x9 1, x10 0.875, x11 0.625 */
    const float rw[4] = {0.625f, 0.875f, 0.875f, 0.625f};
    const float cw[8] = {0.625f, 0.875f, 1, 1, 1, 1, 0.875f, 0.625f};
    size_t area = 0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            int in = x >= 4 && x < 12 && y >= 4 && y < 8;
            int want = in && rw[y - 4] * cw[x - 4] * 0.99995f > 0.5f;
            area += want;
            assert_int_equal(sh_mask_at(m, x, y), want);
        }
    assert_int_equal(m->area, area);
    /* row 4: x4 off (0.39), x5..x10 on, x11 off; rows 5-6 all 8 on; row 7 like row 4 */
    assert_int_equal(area, 6 + 8 + 8 + 6);
    const uint32_t runs[] = {1, 6, 1, 8 + 8, 1, 6, 1};
    assert_int_equal(m->n_runs, 7);
    assert_memory_equal(m->runs, runs, sizeof runs);
    uint8_t plane[256] = {0};
    sh_mask_paint(m, plane, 16, 16, 1);
    size_t painted = 0;
    for (int i = 0; i < 256; i++)
        painted += plane[i];
    assert_int_equal(painted, area);

    /* every allocation failure is reported and leaves nothing behind */
    for (long k = 0; k < 12; k++) {
        sh_allocator_fail_after(a, k, 0);
        int rc = sh_decode_yolov8_seg(&out, &protos, &xf, &p, d, &err);
        assert_true(rc == 0 || rc == SHOAL_ERR_NO_MEMORY);
    }
    sh_allocator_fail_after(a, -1, 0);
    sh_detections_destroy(d);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void landmarks(void **state)
{
    float t[65];
    for (int i = 0; i < 21; i++) {
        t[3 * i] = (float)i;          /* model x */
        t[3 * i + 1] = 16.0f + i;     /* model y */
        t[3 * i + 2] = 2.0f;
    }
    t[63] = 0.0f;
    t[64] = 2.0f;
    sh_ftensor out = {t, 2, {1, 65}};
    sh_transform xf = wide_transform();
    sh_hand_landmarks h;
    sh_err err = {0};
    assert_int_equal(sh_decode_hand_landmarks(&out, &xf, NULL, &h, &err), 0);
    for (int i = 0; i < 21; i++) {
        assert_float_equal(h.x[i], 2.0f * i, 1e-5);
        assert_float_equal(h.y[i], 2.0f * i, 1e-5);
        assert_float_equal(h.z[i], 4.0f, 1e-5);
    }
    assert_float_equal(h.presence, 0.5f, 1e-6);
    assert_float_equal(h.handedness, 1.0f / (1.0f + expf(-2.0f)), 1e-6);
    sh_landmark_params lp = {.logits = 0};
    assert_int_equal(sh_decode_hand_landmarks(&out, &xf, &lp, &h, &err), 0);
    assert_float_equal(h.handedness, 2.0f, 0);
    sh_ftensor wrong = {t, 2, {1, 63}};
    assert_int_equal(sh_decode_hand_landmarks(&wrong, &xf, NULL, &h, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "63 values"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nms_rules), cmocka_unit_test(yolov8_hand_built), cmocka_unit_test(yolox_grid),
        cmocka_unit_test(mask_crop), cmocka_unit_test(landmarks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
