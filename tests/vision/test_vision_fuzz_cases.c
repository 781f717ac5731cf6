/* Inputs on which fuzz_image found a fault, each with the outcome it must now have. The
 * files live in tests/vision/fuzz-cases/; run under `make test-asan` the sanitizers see what
 * the fuzzer saw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "vision/image.h"

#define CASES SHOAL_SOURCE_DIR "/tests/vision/fuzz-cases/"

static size_t read_case(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    assert_true(n > 0 && n < cap);
    return n;
}

/* stb_image copied an empty first IDAT chunk to a null pointer (UBSan: null + 0). */
static void png_empty_first_idat(void **state)
{
    static uint8_t buf[4096];
    size_t n = read_case(CASES "empty_first_idat.png", buf, sizeof buf);
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_load_memory(a, buf, n, "idat.png", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "idat.png: corrupt PNG (empty first IDAT chunk)"));
    assert_null(img.data);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* An 8x8 PNG whose IDAT chunk declares 268 MB (one flipped bit) in a 95-byte file:
 * stb_image allocated the declared size before finding the bytes missing (found by
 * fuzz_server, where that allocation took seconds under the sanitizers). Refused from the
 * chunk layout now: under an allocator capped at 1 MiB it is a parse error, not out of memory,
 * and nothing near the declared size is ever asked for. */
static void png_chunk_length_past_the_end(void **state)
{
    static uint8_t buf[4096];
    size_t n = read_case(CASES "idat_length_past_end.png", buf, sizeof buf);
    sh_allocator *a = sh_allocator_create();
    sh_allocator_set_limit(a, (size_t)1 << 20);
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_load_memory(a, buf, n, "len.png", &img, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "len.png: corrupt or truncated PNG (chunk 'IDAT' at byte 33 declares 268435494 bytes"));
    assert_null(img.data);
    assert_true(sh_allocator_stats(a).peak < ((size_t)1 << 20));
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* A CMYK JPEG whose Huffman table declares more codes than stb_image's table holds: stb wrote
 * past its array (UBSan: index 257 out of bounds). libjpeg decodes it; stb no longer sees
 * JPEG at all. */
static void jpeg_cmyk_bad_huffman_table(void **state)
{
    static uint8_t buf[4096];
    size_t n = read_case(CASES "cmyk_bad_dht.jpg", buf, sizeof buf);
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_load_memory(a, buf, n, "dht.jpg", &img, &err), 0);
    assert_int_equal(img.width, 12);
    assert_int_equal(img.height, 12);
    sh_image_free(&img);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(png_empty_first_idat),
        cmocka_unit_test(png_chunk_length_past_the_end),
        cmocka_unit_test(jpeg_cmyk_bad_huffman_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
