/* Images in shoal's vision pipeline: decoded JPEG/PNG files, or raw camera frames copied
 * from caller memory. Every image is 8-bit RGB, packed (stride = 3 * width).
 *
 *   sh_image img;
 *   if (sh_image_load_file(alloc, "frame.jpg", &img, &err) != 0) { ...err.msg... }
 *   ...preprocess, draw...
 *   sh_image_free(&img);
 *
 * Input is checked before anything is decoded: a file that declares a size of 0 or more
 * than SH_IMAGE_MAX_SIDE per side or SH_IMAGE_MAX_PIXELS in all is refused from its
 * header alone, so a 40-byte hostile PNG cannot make shoal allocate gigabytes.
 * Only JPEG and PNG are decoded (a smaller decoder is a smaller attack surface). */
#ifndef SHOAL_VISION_IMAGE_H
#define SHOAL_VISION_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"

#define SH_IMAGE_MAX_SIDE 16384
#define SH_IMAGE_MAX_PIXELS (64u * 1024u * 1024u)

typedef struct sh_image {
    int width;
    int height;
    int channels;          /* always 3 */
    uint8_t *data;         /* RGB, row-major, 3 * width bytes per row; owned, sh_image_free */
    sh_allocator *alloc;   /* the allocator data came from */
} sh_image;

/* Byte order of a raw frame handed in by the caller. */
typedef enum sh_pixel_format {
    SH_PIXEL_RGB = 0,
    SH_PIXEL_BGR = 1
} sh_pixel_format;

/* Allocates a width x height RGB image filled with 0. */
int sh_image_create(sh_allocator *a, int width, int height, sh_image *out, sh_err *err);

/* Decodes a JPEG or PNG file. On failure *out is zeroed and nothing stays allocated.
 * SHOAL_ERR_NOT_FOUND / SHOAL_ERR_IO for a missing/unreadable file, SHOAL_ERR_PARSE for
 * corrupt or truncated data, SHOAL_ERR_UNSUPPORTED for other formats or absurd sizes. */
int sh_image_load_file(sh_allocator *a, const char *path, sh_image *out, sh_err *err);

/* Same from memory; `name` only labels error messages (may be NULL). */
int sh_image_load_memory(sh_allocator *a, const void *data, size_t size, const char *name,
                         sh_image *out, sh_err *err);

/* Reads the size an encoded JPEG/PNG declares without decoding it. 0 or a negative status. */
int sh_image_probe(const void *data, size_t size, int *width, int *height, sh_err *err);

/* Copies a raw 8-bit RGB or BGR frame (3 bytes a pixel, rows `stride` bytes apart, `size`
 * bytes readable at `pixels`) into a new RGB image. Validates the geometry against size. */
int sh_image_from_raw(sh_allocator *a, const void *pixels, size_t size, int width, int height,
                      size_t stride, sh_pixel_format format, sh_image *out, sh_err *err);

/* Deep copy. */
int sh_image_clone(sh_allocator *a, const sh_image *src, sh_image *out, sh_err *err);

/* Frees the pixels and zeroes *img. Accepts NULL and an already freed image. */
void sh_image_free(sh_image *img);

/* Writes the image as PNG. SHOAL_ERR_IO when the file cannot be written. */
int sh_image_write_png(const sh_image *img, const char *path, sh_err *err);

#endif
