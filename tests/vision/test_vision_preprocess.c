/* Letterbox geometry, coordinate mapping, the OpenCV-compatible bilinear resize and the
 * float conversion, all against values worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "vision/preprocess.h"

static void letterbox_top_left(void **state)
{
    /* 200x100 into 64x64: r = min(64/200, 64/100) = 0.32, picture 64x32 at (0,0) */
    sh_preprocess_params p = sh_preprocess_yolox_params(64, 64);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(200, 100, &p, &xf, NULL), 0);
    assert_int_equal(xf.resized_w, 64);
    assert_int_equal(xf.resized_h, 32);
    assert_true(xf.pad_x == 0 && xf.pad_y == 0);
    assert_float_equal(xf.scale_x, 0.32f, 1e-7);
    float ix, iy;
    sh_transform_to_image(&xf, 32, 16, &ix, &iy);
    assert_float_equal(ix, 100, 1e-4);
    assert_float_equal(iy, 50, 1e-4);
    /* YOLOX truncates: 100x30 into 64x64 gives 64 x trunc(19.2) = 19 */
    assert_int_equal(sh_transform_compute(100, 30, &p, &xf, NULL), 0);
    assert_int_equal(xf.resized_h, 19);
    /* round trip of a box */
    const float box[4] = {12.5f, 3.25f, 87.0f, 29.0f};
    float m[4], back[4];
    sh_transform_to_model(&xf, box[0], box[1], &m[0], &m[1]);
    sh_transform_to_model(&xf, box[2], box[3], &m[2], &m[3]);
    sh_transform_to_image(&xf, m[0], m[1], &back[0], &back[1]);
    sh_transform_to_image(&xf, m[2], m[3], &back[2], &back[3]);
    for (int i = 0; i < 4; i++)
        assert_float_equal(back[i], box[i], 1e-4);
}

static void letterbox_centered(void **state)
{
    sh_preprocess_params p = sh_preprocess_default_params(64, 64);
    sh_transform xf;
    /* 200x100: picture 64x32, dh = 32, top = round(16 - 0.1) = 16 */
    assert_int_equal(sh_transform_compute(200, 100, &p, &xf, NULL), 0);
    assert_int_equal(xf.resized_h, 32);
    assert_true(xf.pad_x == 0 && xf.pad_y == 16);
    /* 100x30: r = 0.64, height round(19.2) = 19, dh = 45: top = round(22.4) = 22, bottom 23 */
    assert_int_equal(sh_transform_compute(100, 30, &p, &xf, NULL), 0);
    assert_int_equal(xf.resized_w, 64);
    assert_int_equal(xf.resized_h, 19);
    assert_true(xf.pad_x == 0 && xf.pad_y == 22);
    float ix, iy, mx, my;
    sh_transform_to_image(&xf, 32, 22 + 9.6f, &ix, &iy);
    assert_float_equal(ix, 50, 1e-4);
    assert_float_equal(iy, 15, 1e-4);
    sh_transform_to_model(&xf, 0, 30, &mx, &my);
    assert_float_equal(mx, 0, 1e-5);
    assert_float_equal(my, 22 + 19.2f, 1e-4);
    /* 30x100 (portrait): width round(19.2) = 19, left 22 */
    assert_int_equal(sh_transform_compute(30, 100, &p, &xf, NULL), 0);
    assert_true(xf.pad_x == 22 && xf.pad_y == 0 && xf.resized_w == 19);
    /* stretch: independent scales, no pad */
    p.resize = SH_RESIZE_STRETCH;
    assert_int_equal(sh_transform_compute(128, 32, &p, &xf, NULL), 0);
    assert_float_equal(xf.scale_x, 0.5f, 0);
    assert_float_equal(xf.scale_y, 2.0f, 0);
    sh_transform_to_image(&xf, 64, 64, &ix, &iy);
    assert_float_equal(ix, 128, 0);
    assert_float_equal(iy, 32, 0);
}

static void bilinear_by_hand(void **state)
{
    /* 1-D: [0, 100] -> 4: source x = (d + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25;
     * the ends clamp to the edge pixels; 100 * 512/2048 = 25, 100 * 1536/2048 = 75 */
    const uint8_t row[2] = {0, 100};
    uint8_t out[4];
    assert_int_equal(sh_resize_bilinear_u8(NULL, row, 2, 1, 2, out, 4, 1, 4, 1, NULL), 0);
    const uint8_t want[4] = {0, 25, 75, 100};
    assert_memory_equal(out, want, 4);

    /* 2x2 -> 3x3: source coordinate (d + 0.5) * 2/3 - 0.5 = -1/6, 1/2, 7/6 */
    const uint8_t sq[4] = {0, 60, 120, 240};
    uint8_t o9[9];
    assert_int_equal(sh_resize_bilinear_u8(NULL, sq, 2, 2, 2, o9, 3, 3, 3, 1, NULL), 0);
    const uint8_t w9[9] = {0, 30, 60, 60, 105, 150, 120, 180, 240};
    assert_memory_equal(o9, w9, 9);

    /* a flat picture stays flat through the vector-path arithmetic */
    static uint8_t flat[37 * 29 * 3], big[53 * 41 * 3];
    memset(flat, 200, sizeof flat);
    assert_int_equal(sh_resize_bilinear_u8(NULL, flat, 37, 29, 37 * 3, big, 53, 41, 53 * 3, 3, NULL), 0);
    for (size_t i = 0; i < sizeof big; i++)
        assert_int_equal(big[i], 200);

    float f[4], fo[9];
    const float fs[4] = {0, 60, 120, 240};
    memcpy(f, fs, sizeof f);
    sh_resize_bilinear_f32(f, 2, 2, fo, 3, 3);
    assert_float_equal(fo[4], 105, 1e-4);
    assert_float_equal(fo[0], 0, 1e-6);
    assert_float_equal(fo[8], 240, 1e-4);
}

static void normalise_and_order(void **state)
{
    sh_err err = {0};
    sh_image img;
    const uint8_t px[3] = {10, 20, 30};
    assert_int_equal(sh_image_from_raw(NULL, px, 3, 1, 1, 3, SH_PIXEL_RGB, &img, &err), 0);
    sh_preprocess_params p = sh_preprocess_default_params(2, 2);
    p.resize = SH_RESIZE_STRETCH;
    p.mean[0] = 0.5f;
    p.std[0] = 0.25f;
    float out[12];
    for (int i = 0; i < 12; i++)
        out[i] = NAN;
    sh_transform xf;
    assert_int_equal(sh_preprocess(NULL, &img, &p, out, 12, &xf, &err), 0);
    for (int i = 0; i < 4; i++) {
        assert_float_equal(out[i], (10 / 255.0f - 0.5f) / 0.25f, 1e-6);
        assert_float_equal(out[4 + i], 20 / 255.0f, 1e-6);
        assert_float_equal(out[8 + i], 30 / 255.0f, 1e-6);
    }
    p = sh_preprocess_yolox_params(4, 4); /* BGR, raw, letterbox: 1x1 -> 4x4 */
    float o[48];
    assert_int_equal(sh_preprocess(NULL, &img, &p, o, 48, &xf, &err), 0);
    assert_float_equal(o[0], 30, 0);
    assert_float_equal(o[16], 20, 0);
    assert_float_equal(o[32], 10, 0);
    sh_image_free(&img);
}

static void padding(void **state)
{
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(NULL, 8, 4, &img, &err), 0);
    memset(img.data, 7, 8 * 4 * 3);
    sh_preprocess_params p = sh_preprocess_default_params(8, 8);
    p.scale = 1.0f;
    float out[3 * 64];
    sh_transform xf;
    assert_int_equal(sh_preprocess(NULL, &img, &p, out, 3 * 64, &xf, &err), 0);
    assert_true(xf.pad_y == 2 && xf.resized_h == 4); /* rows 0-1 and 6-7 are pad */
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                assert_float_equal(out[c * 64 + y * 8 + x], (y >= 2 && y < 6) ? 7 : 114, 0);
    p.place = SH_PLACE_TOP_LEFT;
    assert_int_equal(sh_preprocess(NULL, &img, &p, out, 3 * 64, &xf, &err), 0);
    assert_float_equal(out[0], 7, 0);
    assert_float_equal(out[4 * 8], 114, 0);
    sh_image_free(&img);
}

static void region_of_interest(void **state)
{
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(NULL, 100, 80, &img, &err), 0);
    img.data[(25 * 100 + 15) * 3] = 255; /* a red dot at (15, 25) */
    sh_preprocess_params p = sh_preprocess_default_params(20, 20);
    p.resize = SH_RESIZE_STRETCH;
    p.scale = 1.0f;
    float out[3 * 400];
    sh_transform xf;
    assert_int_equal(sh_preprocess_roi(NULL, &img, 10, 20, 20, 20, &p, out, 1200, &xf, &err), 0);
    assert_float_equal(out[5 * 20 + 5], 255, 0); /* the dot, one to one */
    float ix, iy;
    sh_transform_to_image(&xf, 5, 5, &ix, &iy);
    assert_float_equal(ix, 15, 0);
    assert_float_equal(iy, 25, 0);
    assert_int_equal(sh_preprocess_roi(NULL, &img, 90, 20, 20, 20, &p, out, 1200, &xf, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not inside"));
    sh_image_free(&img);
}

static void bad_params(void **state)
{
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(NULL, 8, 8, &img, &err), 0);
    sh_preprocess_params p = sh_preprocess_default_params(8, 8);
    float out[3 * 64];
    assert_int_equal(sh_preprocess(NULL, &img, &p, out, 100, NULL, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "needs 192"));
    p.std[1] = 0;
    assert_int_equal(sh_preprocess(NULL, &img, &p, out, 192, NULL, &err), SHOAL_ERR_INVALID_ARG);
    p = sh_preprocess_default_params(0, 8);
    assert_int_equal(sh_preprocess(NULL, &img, &p, out, 192, NULL, &err), SHOAL_ERR_INVALID_ARG);
    sh_image_free(&img);
    sh_image empty = {0};
    p = sh_preprocess_default_params(8, 8);
    assert_int_equal(sh_preprocess(NULL, &empty, &p, out, 192, NULL, &err), SHOAL_ERR_INVALID_ARG);
    /* scratch allocation failure is reported, nothing leaks */
    sh_allocator *a = sh_allocator_create();
    assert_int_equal(sh_image_create(a, 8, 8, &img, &err), 0);
    for (long k = 0; k < 3; k++) {
        sh_allocator_fail_after(a, k, 0);
        int rc = sh_preprocess(a, &img, &p, out, 192, NULL, &err);
        assert_true(rc == 0 || rc == SHOAL_ERR_NO_MEMORY);
    }
    sh_allocator_fail_after(a, -1, 0);
    sh_image_free(&img);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* The 8-bit picture a device expands (sh_preprocess_u8 + sh_preprocess_lut) gives exactly
 * the floats of sh_preprocess, for either channel order and a non-trivial mean/std. */
static void bytes_then_table_equal_floats(void **state)
{
    (void)state;
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(NULL, 37, 23, &img, &err), 0);
    unsigned seed = 12345u;
    for (size_t i = 0; i < (size_t)37 * 23 * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        img.data[i] = (uint8_t)(seed >> 16);
    }
    for (int order = 0; order < 2; order++) {
        sh_preprocess_params p = sh_preprocess_default_params(32, 24);
        p.order = order ? SH_CHANNELS_BGR : SH_CHANNELS_RGB;
        p.mean[0] = 0.485f, p.mean[1] = 0.456f, p.mean[2] = 0.406f;
        p.std[0] = 0.229f, p.std[1] = 0.224f, p.std[2] = 0.225f;
        float want[3 * 32 * 24], got[3 * 32 * 24], lut[3][256];
        uint8_t bytes[3 * 32 * 24];
        memset(got, 0xff, sizeof got);
        sh_transform xa, xb;
        assert_int_equal(sh_preprocess(NULL, &img, &p, want, 3 * 32 * 24, &xa, &err), 0);
        assert_int_equal(sh_preprocess_u8(NULL, &img, &p, bytes, sizeof bytes, &xb, &err), 0);
        assert_int_equal(sh_preprocess_lut(&p, lut, &err), 0);
        sh_expand_u8(bytes, 32, 24, lut, got);
        assert_memory_equal(want, got, sizeof want);
        assert_memory_equal(&xa, &xb, sizeof xa);
        assert_int_equal(sh_preprocess_u8(NULL, &img, &p, bytes, sizeof bytes - 1, NULL, &err), SHOAL_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "needs 2304"));
    }
    sh_image_free(&img);
}

/* OpenCV's vertical blend of two 8-bit rows, the expressions of VResizeLinearVec_32s8u for the
 * 16- and 8-lane blocks and of its scalar tail, element by element: the row kernel, vector
 * path included, must give these bytes for every width and weight. */
static uint8_t sat8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static void vertical_blend_matches_opencv(void **state)
{
    (void)state;
    enum { W = 100 };
    int s0[W], s1[W];
    uint8_t got[W + 1], want[W];
    unsigned seed = 777u;
    for (int width = 1; width <= W; width++) {
        for (int x = 0; x < width; x++) {   /* horizontal sums: bytes times weights summing to 2048 */
            seed = seed * 1103515245u + 12345u;
            s0[x] = (int)((seed >> 8) % (255 * 2048 + 1));
            seed = seed * 1103515245u + 12345u;
            s1[x] = (int)((seed >> 8) % (255 * 2048 + 1));
        }
        seed = seed * 1103515245u + 12345u;
        short b0 = (short)((seed >> 8) % 2049), b1 = (short)(2048 - b0);
        int vec_end = width / 16 * 16 + (width % 16 > 8 ? 8 : 0);
        for (int x = 0; x < width; x++)
            want[x] = x < vec_end ? sat8((((int16_t)(s0[x] >> 4) * b0 >> 16) + ((int16_t)(s1[x] >> 4) * b1 >> 16) + 2) >> 2)
                                  : sat8((s0[x] * b0 + s1[x] * b1 + (1 << 21)) >> 22);
        memset(got, 0xA5, sizeof got);
        sh_resize_vrow_u8(s0, s1, b0, b1, width, got);
        assert_memory_equal(want, got, (size_t)width);
        assert_int_equal(got[width], 0xA5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(letterbox_top_left), cmocka_unit_test(letterbox_centered),
        cmocka_unit_test(bilinear_by_hand),   cmocka_unit_test(normalise_and_order),
        cmocka_unit_test(padding),            cmocka_unit_test(region_of_interest),
        cmocka_unit_test(bad_params),         cmocka_unit_test(bytes_then_table_equal_floats),
        cmocka_unit_test(vertical_blend_matches_opencv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
