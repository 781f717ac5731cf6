/* Image decoding and raw frames: good files round-trip, bad ones are refused with a
 * message that names the problem, before any pixel memory is allocated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/image.h"

#define TMP SHOAL_BINARY_DIR "/tests/vision"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A PNG signature and IHDR declaring w x h, 8-bit RGB, followed by nothing else. */
static size_t png_header(uint8_t *b, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    memcpy(b, sig, 8);
    put32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put32(b + 16, w);
    put32(b + 20, h);
    b[24] = 8; /* depth */
    b[25] = 2; /* RGB */
    b[26] = b[27] = b[28] = 0;
    put32(b + 29, 0); /* CRC (stb does not check it) */
    return 33;
}

static uint8_t *make_png(sh_image *img, size_t *size)
{
    sh_err err = {0};
    assert_int_equal(sh_image_write_png(img, TMP "/tiny.png", &err), 0);
    FILE *f = fopen(TMP "/tiny.png", "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    *size = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static void png_round_trip(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(a, 7, 5, &img, &err), 0);
    for (int i = 0; i < 7 * 5 * 3; i++)
        img.data[i] = (uint8_t)(i * 37 + 11);
    size_t n;
    uint8_t *png = make_png(&img, &n);
    sh_image back;
    assert_int_equal(sh_image_load_memory(a, png, n, "tiny", &back, &err), 0);
    assert_int_equal(back.width, 7);
    assert_int_equal(back.height, 5);
    assert_int_equal(back.channels, 3);
    assert_memory_equal(back.data, img.data, 7 * 5 * 3);
    sh_image_free(&back);
    assert_int_equal(sh_image_load_file(a, TMP "/tiny.png", &back, &err), 0);
    assert_memory_equal(back.data, img.data, 7 * 5 * 3);
    sh_image_free(&back);
    sh_image_free(&img);
    sh_image_free(&img); /* twice is harmless */
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void missing_file(void **state)
{
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_load_file(NULL, TMP "/no/such/file.jpg", &img, &err), SHOAL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no/such/file.jpg"));
    assert_null(img.data);
}

static void corrupt_bytes(void **state)
{
    sh_err err = {0};
    sh_image img;
    const char junk[] = "this is not an image at all";
    assert_int_equal(sh_image_load_memory(NULL, junk, sizeof junk, "junk", &img, &err), SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "not a JPEG or PNG"));
    assert_int_equal(sh_image_load_memory(NULL, junk, 0, "empty", &img, &err), SHOAL_ERR_PARSE);

    /* a valid header with garbage where the compressed data should be */
    uint8_t b[64];
    size_t n = png_header(b, 4, 4);
    memset(b + n, 0xAB, sizeof b - n);
    assert_int_equal(sh_image_load_memory(NULL, b, sizeof b, "garbage.png", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "garbage.png"));

    /* JPEG: SOI then a marker with a zero length */
    const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x00, 0x00, 0x00};
    assert_int_equal(sh_image_load_memory(NULL, jpg, sizeof jpg, "bad.jpg", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "corrupt JPEG"));
}

static void truncated(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img, back;
    assert_int_equal(sh_image_create(a, 32, 32, &img, &err), 0);
    for (int i = 0; i < 32 * 32 * 3; i++)
        img.data[i] = (uint8_t)rand();
    size_t n;
    uint8_t *png = make_png(&img, &n);
    assert_int_equal(sh_image_load_memory(a, png, n / 2, "half.png", &back, &err), SHOAL_ERR_PARSE);
    assert_int_equal(sh_image_load_memory(a, png, 20, "header.png", &back, &err), SHOAL_ERR_PARSE);
    sh_image_free(&img);

    /* a real JPEG cut in half has no end-of-image marker */
    FILE *f = fopen(SHOAL_SHARED_DIR "/real-models/images/street/000000002006.jpg", "rb");
    if (f) {
        static uint8_t jb[1 << 20];
        size_t jn = fread(jb, 1, sizeof jb, f);
        fclose(f);
        assert_int_equal(sh_image_load_memory(a, jb, jn, "whole.jpg", &back, &err), 0);
        assert_int_equal(back.width, 640);
        assert_int_equal(back.height, 480);
        sh_image_free(&back);
        assert_int_equal(sh_image_load_memory(a, jb, jn / 2, "half.jpg", &back, &err), SHOAL_ERR_PARSE);
        assert_non_null(strstr(err.msg, "truncated JPEG"));
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void declared_sizes(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    uint8_t b[64] = {0};
    size_t n = png_header(b, 0, 0);
    assert_int_equal(sh_image_load_memory(a, b, n, "empty.png", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "declares 0x0 pixels"));

    n = png_header(b, 100000, 100000);
    assert_int_equal(sh_image_load_memory(a, b, n, "huge.png", &img, &err), SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "image declares 100000x100000 pixels, limit"));

    /* within the per-side limit but over the pixel budget */
    n = png_header(b, 16000, 16000);
    assert_int_equal(sh_image_load_memory(a, b, n, "big.png", &img, &err), SHOAL_ERR_UNSUPPORTED);

    /* JPEG frame header declaring 0 x 100 */
    const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x64, 0x00, 0x00, 0x03,
                           1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9};
    assert_int_equal(sh_image_load_memory(a, jpg, sizeof jpg, "zero.jpg", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "declares 0x100 pixels"));

    int w, h;
    n = png_header(b, 640, 480);
    assert_int_equal(sh_image_probe(b, n, &w, &h, &err), 0);
    assert_int_equal(w, 640);
    assert_int_equal(h, 480);
    /* nothing was allocated for any refused image */
    assert_int_equal(sh_allocator_stats(a).n_allocs, 0);
    sh_allocator_destroy(a);
}

static void raw_frames(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    /* 2x2 BGR with 8 bytes per row (2 bytes of padding) */
    const uint8_t bgr[16] = {1, 2, 3, 4, 5, 6, 0xEE, 0xEE, 7, 8, 9, 10, 11, 12, 0xEE, 0xEE};
    assert_int_equal(sh_image_from_raw(a, bgr, sizeof bgr, 2, 2, 8, SH_PIXEL_BGR, &img, &err), 0);
    const uint8_t rgb[12] = {3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10};
    assert_memory_equal(img.data, rgb, 12);
    sh_image_free(&img);
    assert_int_equal(sh_image_from_raw(a, bgr, sizeof bgr, 2, 2, 8, SH_PIXEL_RGB, &img, &err), 0);
    assert_int_equal(img.data[6], 7);
    sh_image_free(&img);
    /* last row may omit its padding */
    assert_int_equal(sh_image_from_raw(a, bgr, 14, 2, 2, 8, SH_PIXEL_RGB, &img, &err), 0);
    sh_image_free(&img);

    assert_int_equal(sh_image_from_raw(a, bgr, sizeof bgr, 2, 2, 5, SH_PIXEL_RGB, &img, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "stride 5 is less than 6"));
    assert_int_equal(sh_image_from_raw(a, bgr, 13, 2, 2, 8, SH_PIXEL_RGB, &img, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "needs 14 bytes"));
    assert_int_equal(sh_image_from_raw(a, bgr, sizeof bgr, 0, 2, 8, SH_PIXEL_RGB, &img, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_image_from_raw(a, NULL, 16, 2, 2, 8, SH_PIXEL_RGB, &img, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_image_from_raw(a, bgr, SIZE_MAX, 2, 3, SIZE_MAX / 2, SH_PIXEL_RGB, &img, &err), /* overflow */
                     SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_image_from_raw(a, bgr, sizeof bgr, 100000, 1, 300000, SH_PIXEL_RGB, &img, &err),
                     SHOAL_ERR_UNSUPPORTED);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void allocation_failures(void **state)
{
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_create(NULL, 16, 16, &img, &err), 0);
    size_t n;
    uint8_t *png = make_png(&img, &n);
    sh_image_free(&img);
    /* fail every allocation in turn: each attempt either succeeds or reports NO_MEMORY and leaks nothing */
    for (long k = 0; k < 20; k++) {
        sh_allocator *a = sh_allocator_create();
        sh_allocator_fail_after(a, k, 0);
        int rc = sh_image_load_memory(a, png, n, "tiny.png", &img, &err);
        assert_true(rc == 0 || rc == SHOAL_ERR_NO_MEMORY || rc == SHOAL_ERR_PARSE);
        sh_image_free(&img);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        sh_allocator_destroy(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(png_round_trip), cmocka_unit_test(missing_file), cmocka_unit_test(corrupt_bytes),
        cmocka_unit_test(truncated),      cmocka_unit_test(declared_sizes), cmocka_unit_test(raw_frames),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
