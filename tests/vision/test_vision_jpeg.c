/* JPEG decoding through libjpeg-turbo: the pixels against the picture that was encoded (an
 * independent reference) and against stb_image (the decoder it replaced) on synthetic and
 * real photos; every chroma subsampling, greyscale, CMYK, progressive, restart-free and
 * EXIF-carrying files; hostile headers refused with nothing left allocated.
 *
 * Tolerances are the measured worst cases (libjpeg-turbo 2.1.5, whose accurate integer IDCT
 * gives the same bits with or without SIMD) with a little room, not guesses:
 * - decoded vs encoded picture at quality 95: the loss of the coding itself, largest on the
 *   test pattern's hard edges (max 19 with 4:4:4, 27 with 4:2:0), 2.4-3.8 on average;
 * - libjpeg-turbo vs stb_image: both use an accurate integer IDCT, so with 4:4:4 and 4:2:0
 *   they agree to 2-3 steps; with 4:2:2 they upsample chroma differently (stb's filter
 *   overshoots hard chroma edges: 41 from the source where libjpeg-turbo is 21), up to 27
 *   apart on those edges but 0.3 on average. Real 4:2:0 photos: at most 3 apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "vision/image-decode.h"

#define SRC_W 97   /* odd sizes: partial MCUs on both edges */
#define SRC_H 65

/* A picture with smooth gradients, hard edges and fine texture: what a camera sees. */
static void make_picture(uint8_t *rgb, int w, int h)
{
    unsigned seed = 12345;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            seed = seed * 1103515245u + 12345u;
            int noise = (int)(seed >> 28) - 8;
            int edge = (x / 16 + y / 16) % 2 ? 60 : 0;
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            int v[3] = {x * 255 / w + noise, y * 255 / h + edge, 128 + edge - noise};
            for (int c = 0; c < 3; c++)
                p[c] = (uint8_t)(v[c] < 0 ? 0 : v[c] > 255 ? 255 : v[c]);
        }
}

static unsigned char *encode(const uint8_t *px, int w, int h, int pf, int subsamp, int quality, int flags,
                             unsigned long *size)
{
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpeg = NULL;
    *size = 0;
    assert_int_equal(tjCompress2(tj, px, w, 0, h, pf, &jpeg, size, subsamp, quality, flags), 0);
    tjDestroy(tj);
    return jpeg;
}

typedef struct diff {
    int max;
    double mean;
} diff;

static diff compare(const uint8_t *a, const uint8_t *b, size_t n)
{
    diff d = {0, 0};
    for (size_t i = 0; i < n; i++) {
        int v = abs((int)a[i] - (int)b[i]);
        d.max = v > d.max ? v : d.max;
        d.mean += v;
    }
    d.mean /= (double)n;
    return d;
}

static void decode_both(sh_allocator *a, const void *jpeg, size_t size, int w, int h, sh_image *turbo,
                        sh_image *stb)
{
    sh_err err = {0};
    assert_int_equal(sh_image_load_memory(a, jpeg, size, "turbo", turbo, &err), 0);
    assert_int_equal(turbo->width, w);
    assert_int_equal(turbo->height, h);
    assert_int_equal(turbo->channels, 3);
    assert_int_equal(sh_image_decode_stb(a, jpeg, size, "stb", w, h, stb, &err), 0);
}

static void synthetic_against_source(void **state)
{
    static const struct {
        const char *name;
        int subsamp, flags;
        int max_src, max_stb;   /* measured: see the header */
        double mean_src, mean_stb;
    } kinds[] = {
        {"baseline 4:4:4", TJSAMP_444, 0, 22, 3, 2.6, 0.03},
        {"baseline 4:2:2", TJSAMP_422, 0, 24, 30, 3.4, 0.35},
        {"baseline 4:2:0", TJSAMP_420, 0, 30, 3, 4.0, 0.15},
        {"progressive 4:2:0", TJSAMP_420, TJFLAG_PROGRESSIVE, 30, 3, 4.0, 0.15},
        {"progressive 4:4:4", TJSAMP_444, TJFLAG_PROGRESSIVE, 22, 3, 2.6, 0.03},
    };
    sh_allocator *a = sh_allocator_create();
    static uint8_t src[SRC_W * SRC_H * 3];
    make_picture(src, SRC_W, SRC_H);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        unsigned long size;
        unsigned char *jpeg = encode(src, SRC_W, SRC_H, TJPF_RGB, kinds[k].subsamp, 95, kinds[k].flags, &size);
        sh_image turbo, stb;
        decode_both(a, jpeg, size, SRC_W, SRC_H, &turbo, &stb);
        diff vs_src = compare(turbo.data, src, sizeof src), stb_src = compare(stb.data, src, sizeof src),
             vs_stb = compare(turbo.data, stb.data, sizeof src);
        if (vs_src.max > kinds[k].max_src || vs_src.mean > kinds[k].mean_src || vs_stb.max > kinds[k].max_stb ||
            vs_stb.mean > kinds[k].mean_stb || vs_src.mean > stb_src.mean + 0.01)
            fail_msg("%s: turbo-source max %d mean %.3f, stb-source mean %.3f, turbo-stb max %d mean %.3f",
                     kinds[k].name, vs_src.max, vs_src.mean, stb_src.mean, vs_stb.max, vs_stb.mean);
        sh_image_free(&turbo);
        sh_image_free(&stb);
        tjFree(jpeg);
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void real_photos_against_stb(void **state)
{
    static const char *photos[] = {"street/000000002006.jpg", "street/000000001532.jpg", "indoor/000000000139.jpg",
                                   "people/1.jpg"};
    sh_allocator *a = sh_allocator_create();
    int seen = 0;
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/real-models/images/%s", SHOAL_SHARED_DIR, photos[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        static uint8_t buf[4 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        int w, h;
        sh_err err = {0};
        assert_int_equal(sh_image_probe(buf, n, &w, &h, &err), 0);
        sh_image turbo, stb;
        decode_both(a, buf, n, w, h, &turbo, &stb);
        diff d = compare(turbo.data, stb.data, (size_t)w * h * 3);
        if (d.max > 4 || d.mean > 0.05)
            fail_msg("%s: turbo-stb max %d mean %.3f", photos[i], d.max, d.mean);
        sh_image_free(&turbo);
        sh_image_free(&stb);
        seen++;
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    if (!seen)
        skip();
}

/* Greyscale comes out as RGB with three equal channels, as stb_image gives it. */
static void greyscale(void **state)
{
    sh_allocator *a = sh_allocator_create();
    static uint8_t src[SRC_W * SRC_H * 3], grey[SRC_W * SRC_H];
    make_picture(src, SRC_W, SRC_H);
    for (int i = 0; i < SRC_W * SRC_H; i++)
        grey[i] = src[3 * i + 1];
    for (int progressive = 0; progressive < 2; progressive++) {
        unsigned long size;
        unsigned char *jpeg = encode(grey, SRC_W, SRC_H, TJPF_GRAY, TJSAMP_GRAY, 95,
                                     progressive ? TJFLAG_PROGRESSIVE : 0, &size);
        sh_image turbo, stb;
        decode_both(a, jpeg, size, SRC_W, SRC_H, &turbo, &stb);
        for (int i = 0; i < SRC_W * SRC_H; i++) {
            assert_int_equal(turbo.data[3 * i], turbo.data[3 * i + 1]);
            assert_int_equal(turbo.data[3 * i], turbo.data[3 * i + 2]);
        }
        diff d = compare(turbo.data, stb.data, sizeof src);
        if (d.max > 2 || d.mean > 0.02)
            fail_msg("grey: turbo-stb max %d mean %.3f", d.max, d.mean);
        sh_image_free(&turbo);
        sh_image_free(&stb);
        tjFree(jpeg);
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* An EXIF block (APP1, as phones write it) changes nothing in the pixels; neither decoder
 * rotates by its orientation tag. CMYK files come out in the colours stb_image gave them. */
static void exif_and_cmyk(void **state)
{
    sh_allocator *a = sh_allocator_create();
    static uint8_t src[SRC_W * SRC_H * 4];
    make_picture(src, SRC_W, SRC_H);
    unsigned long size;
    unsigned char *jpeg = encode(src, SRC_W, SRC_H, TJPF_RGB, TJSAMP_420, 90, 0, &size);
    /* APP1 "Exif" with a little-endian TIFF header and one IFD entry: orientation = 6 */
    static const uint8_t app1[] = {0xff, 0xe1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2a, 0, 8, 0, 0, 0,
                                   1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
    static uint8_t with_exif[1 << 16];
    assert_true(size + sizeof app1 <= sizeof with_exif);
    memcpy(with_exif, jpeg, 2);
    memcpy(with_exif + 2, app1, sizeof app1);
    memcpy(with_exif + 2 + sizeof app1, jpeg + 2, size - 2);
    sh_image plain, exif;
    sh_err err = {0};
    assert_int_equal(sh_image_load_memory(a, jpeg, size, "plain.jpg", &plain, &err), 0);
    assert_int_equal(sh_image_load_memory(a, with_exif, size + sizeof app1, "exif.jpg", &exif, &err), 0);
    assert_int_equal(exif.width, SRC_W);
    assert_memory_equal(plain.data, exif.data, (size_t)SRC_W * SRC_H * 3);
    sh_image_free(&plain);
    sh_image_free(&exif);
    tjFree(jpeg);

    for (int i = 0; i < SRC_W * SRC_H * 4; i++)
        src[i] = (uint8_t)(i * 7);
    jpeg = encode(src, SRC_W, SRC_H, TJPF_CMYK, TJSAMP_444, 90, 0, &size);
    sh_image cmyk, stb;
    assert_int_equal(sh_image_load_memory(a, jpeg, size, "cmyk.jpg", &cmyk, &err), 0);
    assert_int_equal(sh_image_decode_stb(a, jpeg, size, "cmyk.jpg", SRC_W, SRC_H, &stb, &err), 0);
    diff d = compare(cmyk.data, stb.data, (size_t)SRC_W * SRC_H * 3);
    if (d.max > 2 || d.mean > 0.05)
        fail_msg("cmyk: turbo-stb max %d mean %.3f", d.max, d.mean);
    sh_image_free(&cmyk);
    sh_image_free(&stb);
    tjFree(jpeg);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* Hostile and broken files: a header at the pixel cap over a few bytes of data, a scan cut
 * short, a budget too small for the picture, damaged entropy data. Each fails with a
 * message (damaged data may decode, as with stb_image) and leaves nothing allocated. */
static void hostile(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    static uint8_t src[SRC_W * SRC_H * 3];
    make_picture(src, SRC_W, SRC_H);
    unsigned long size;
    unsigned char *jpeg = encode(src, SRC_W, SRC_H, TJPF_RGB, TJSAMP_420, 90, 0, &size);
    static uint8_t buf[1 << 16];
    assert_true(size <= sizeof buf);

    /* the frame header claims 16384 x 4096 (the whole pixel cap); the data is a 97x65 scan */
    memcpy(buf, jpeg, size);
    size_t sof = 2;
    while (!(buf[sof] == 0xff && buf[sof + 1] == 0xc0))
        sof += 2 + ((size_t)buf[sof + 2] << 8 | buf[sof + 3]);
    buf[sof + 5] = 0x10, buf[sof + 6] = 0x00;   /* height 4096 */
    buf[sof + 7] = 0x40, buf[sof + 8] = 0x00;   /* width 16384 */
    assert_int_equal(sh_image_load_memory(a, buf, size, "huge.jpg", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "huge.jpg: truncated JPEG"));
    assert_int_equal(sh_allocator_stats(a).in_use, 0);

    /* the same 97x65 scan cut short, its end-of-image marker kept */
    memcpy(buf, jpeg, size);
    memcpy(buf + size / 2, "\xff\xd9", 2);
    assert_int_equal(sh_image_load_memory(a, buf, size / 2 + 2, "cut.jpg", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "cut.jpg: truncated JPEG"));

    /* a budget that cannot hold the pixels */
    sh_allocator_set_limit(a, 4096);
    assert_int_equal(sh_image_load_memory(a, jpeg, size, "small-budget.jpg", &img, &err), SHOAL_ERR_NO_MEMORY);
    assert_non_null(strstr(err.msg, "small-budget.jpg: out of memory"));
    assert_null(img.data);
    sh_allocator_set_limit(a, 0);

    /* damaged entropy-coded data (bytes flipped in the middle of the scan) */
    memcpy(buf, jpeg, size);
    for (size_t i = size / 2; i < size / 2 + 16; i++)
        buf[i] ^= 0x5a;
    int rc = sh_image_load_memory(a, buf, size, "damaged.jpg", &img, &err);
    assert_true(rc == 0 || rc == SHOAL_ERR_PARSE);
    sh_image_free(&img);

    /* a second frame header disagreeing with the first (what the probe read) */
    memcpy(buf, jpeg, size);
    buf[sof + 8] = (uint8_t)(buf[sof + 8] + 1);
    assert_int_equal(sh_image_decode_jpeg(a, buf, size, "other.jpg", SRC_W, SRC_H, &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "inconsistent header"));

    /* not a JPEG at all past the marker */
    static const uint8_t junk[] = {0xff, 0xd8, 0xff, 0xdb, 0x00, 0x03, 0x00, 0xff, 0xd9};
    assert_int_equal(sh_image_decode_jpeg(a, junk, sizeof junk, "junk.jpg", 8, 8, &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "junk.jpg: corrupt or unsupported JPEG header"));
    tjFree(jpeg);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(synthetic_against_source),
        cmocka_unit_test(real_photos_against_stb),
        cmocka_unit_test(greyscale),
        cmocka_unit_test(exif_and_cmyk),
        cmocka_unit_test(hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
