/* Private to src/vision (and the JPEG benchmark): the two decoders behind
 * sh_image_load_memory. The caller has already sniffed the format, checked the size the
 * header declares (`width` x `height`, within SH_IMAGE_MAX_SIDE / SH_IMAGE_MAX_PIXELS) and,
 * for a JPEG, that an end-of-image marker is present; `size` is at most INT_MAX.
 * On failure *out is zeroed and nothing stays allocated. */
#ifndef SHOAL_VISION_IMAGE_DECODE_H
#define SHOAL_VISION_IMAGE_DECODE_H

#include "vision/image.h"

/* JPEG through libjpeg-turbo's TurboJPEG API: baseline and progressive, any chroma
 * subsampling, greyscale, CMYK and YCCK (print files, converted as stb_image did). The
 * pixels are charged to `a`; libjpeg's own working memory (a few rows for a baseline image,
 * the whole coefficient image for a progressive one: both proportional to the checked pixel
 * count) is malloc'd inside the library, which has no allocator hook. */
int sh_image_decode_jpeg(sh_allocator *a, const void *data, size_t size, const char *name, int width,
                         int height, sh_image *out, sh_err *err);

/* stb_image, every byte charged to `a`: PNG, and JPEG only for the benchmark's and the
 * tests' comparison (stb's JPEG decoder has out-of-bounds bugs on hostile files that
 * fuzz_image found; the library never hands it a JPEG). */
int sh_image_decode_stb(sh_allocator *a, const void *data, size_t size, const char *name, int width,
                        int height, sh_image *out, sh_err *err);

#endif
