/* libFuzzer entry for image decoding as the server does it (shoal_image_decode calls
 * sh_image_load_memory on the request body): JPEG through libjpeg-turbo, PNG through
 * stb_image. Any byte string must decode to the size its header declares or fail with a
 * message, never crash, hang or leak.
 * Run: build-fuzz/fuzz/fuzz_image -max_total_time=1800 CORPUS_DIR fuzz/corpus/fuzz_image */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vision/image.h"

/* The library admits up to SH_IMAGE_MAX_PIXELS (192 MiB of RGB, more of libjpeg's working
 * memory for a progressive file); the fuzzer only decodes what fits far below its RSS limit
 * so that limit flags real leaks, not a legitimately huge header. Larger headers still go
 * through the probe. */
#define FUZZ_MAX_PIXELS (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_err err;
    err.msg[0] = '\0';
    int w = 0, h = 0;
    if (sh_image_probe(data, size, &w, &h, &err) != 0) {
        if (err.msg[0] == '\0')
            abort();
    } else if ((uint64_t)w * (uint64_t)h > FUZZ_MAX_PIXELS) {
        return 0;
    }
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return 0;
    sh_allocator_set_limit(a, (size_t)256 << 20);
    sh_image img;
    err.msg[0] = '\0';
    int rc = sh_image_load_memory(a, data, size, "fuzz", &img, &err);
    if (rc == 0) {
        if (!img.data || img.width != w || img.height != h || img.channels != 3)
            abort();
        sh_image_free(&img);
    } else if (img.data || err.msg[0] == '\0') {
        abort();   /* a failure must leave nothing behind and say why */
    }
    if (sh_allocator_stats(a).in_use != 0)
        abort();
    sh_allocator_destroy(a);
    return 0;
}
