/* Drawing: glyph pixels land where the font table says, boxes/masks/hands change the
 * pixels they should and nothing outside the image is touched. Writes a demo PNG to the
 * build tree for a human look. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vision/draw.h"

static int is(const sh_image *img, int x, int y, sh_rgb c)
{
    const uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

static void text_pixels(void **state)
{
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(NULL, 20, 10, &img, &err), 0);
    sh_rgb w = {255, 255, 255}, k = {0, 0, 0};
    /* 'T': top row full, then the middle column */
    assert_int_equal(sh_draw_text(&img, 1, 1, "T", 1, w), 5);
    for (int x = 1; x <= 5; x++)
        assert_true(is(&img, x, 1, w));
    assert_true(is(&img, 3, 7, w));
    assert_true(is(&img, 1, 7, k));
    assert_true(is(&img, 0, 0, k));
    assert_int_equal(sh_text_width("ab", 2), 22);
    /* off-image text and shapes are clipped, not written out of bounds */
    sh_draw_text(&img, 15, 5, "WWWW", 3, w);
    sh_draw_rect(&img, -5, -5, 40, 40, w, 2);
    sh_draw_line(&img, -100, -100, 100, 100, w, 3);
    sh_draw_disc(&img, 19, 9, 4, w);
    sh_image_free(&img);
}

static void annotate_demo(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(a, 320, 240, &img, &err), 0);
    for (int y = 0; y < 240; y++)
        for (int x = 0; x < 320; x++) {
            uint8_t *p = img.data + ((size_t)y * 320 + x) * 3;
            p[0] = (uint8_t)(60 + x / 4);
            p[1] = (uint8_t)(80 + y / 4);
            p[2] = 120;
        }
    sh_detections *d = sh_detections_create(a);
    /* a detection with a hand-made mask: a 40x30 box whose middle rows are foreground */
    sh_mask *m = sh_calloc(a, 1, sizeof *m);
    m->x = 30;
    m->y = 40;
    m->width = 40;
    m->height = 30;
    m->runs = sh_alloc(a, 3 * sizeof *m->runs);
    m->runs[0] = 400;
    m->runs[1] = 400;
    m->runs[2] = 400;
    m->n_runs = 3;
    m->area = 400;
    sh_detection d0 = {.class_id = 0, .score = 0.87f, .x1 = 30, .y1 = 40, .x2 = 70, .y2 = 70, .mask = m};
    sh_detection d1 = {.class_id = 9, .score = 0.61f, .x1 = 150, .y1 = 2, .x2 = 310, .y2 = 120};
    sh_detection d2 = {.class_id = 77, .score = 0.5f, .x1 = 100, .y1 = 150, .x2 = 140, .y2 = 230};
    /* push through the public layout: items are owned by d */
    d->items = sh_alloc(a, 3 * sizeof *d->items);
    d->capacity = 3;
    d->items[0] = d0;
    d->items[1] = d1;
    d->items[2] = d2;
    d->count = 3;
    uint8_t before[3];
    memcpy(before, img.data + ((size_t)55 * 320 + 50) * 3, 3);
    sh_draw_params p = sh_draw_default_params();
    p.class_names = sh_coco80_names;
    p.n_class_names = 80;
    sh_draw_detections(&img, d, &p);
    /* inside the mask: blended, so neither the original nor the class colour */
    const uint8_t *px = img.data + ((size_t)55 * 320 + 50) * 3;
    sh_rgb c0 = sh_class_color(0);
    assert_true(memcmp(px, before, 3) != 0);
    assert_false(is(&img, 50, 55, c0));
    /* box outline in the class colour */
    assert_true(is(&img, 30, 60, c0));
    assert_true(is(&img, 100, 190, sh_class_color(77)));

    sh_hand_landmarks h;
    for (int i = 0; i < SH_HAND_POINTS; i++) {
        int finger = i == 0 ? 0 : (i - 1) / 4, joint = i == 0 ? 0 : (i - 1) % 4 + 1;
        h.x[i] = 240 + (finger - 2) * 14 + (i == 0 ? 28 : 0) * 0;
        h.y[i] = 225 - joint * 18;
        h.z[i] = 0;
    }
    h.x[0] = 240;
    h.y[0] = 230;
    sh_draw_hand(&img, &h, NULL);
    assert_true(is(&img, 240, 230, (sh_rgb){230, 30, 60}));
    assert_int_equal(sh_image_write_png(&img, SHOAL_BINARY_DIR "/tests/vision/draw_demo.png", &err), 0);
    assert_int_equal(sh_image_write_png(&img, SHOAL_BINARY_DIR "/no/such/dir/x.png", &err), SHOAL_ERR_IO);
    sh_detections_destroy(d);
    sh_image_free(&img);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_pixels),
        cmocka_unit_test(annotate_demo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
