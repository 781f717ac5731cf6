#include "vision/image.h"

#include "vision/image-decode.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* stb allocates through macros without a context argument. The allocator of the call in
 * progress is kept in a thread-local that is set on entry and restored on exit, so every
 * byte stb touches is charged to the caller's budget while two threads (or two runtimes)
 * decoding at once never see each other's allocator. It is not a setting: nothing outlives
 * the call. */
static _Thread_local sh_allocator *tl_stb_alloc;

static void *stb_realloc_sized(void *p, size_t old_size, size_t new_size)
{
    (void)old_size;
    return sh_realloc(tl_stb_alloc, p, new_size);
}

#define STBI_MALLOC(sz) sh_alloc(tl_stb_alloc, (sz))
#define STBI_FREE(p) sh_free(tl_stb_alloc, (p))
#define STBI_REALLOC_SIZED(p, oldsz, newsz) stb_realloc_sized((p), (oldsz), (newsz))
#define STBIW_MALLOC(sz) sh_alloc(tl_stb_alloc, (sz))
#define STBIW_FREE(p) sh_free(tl_stb_alloc, (p))
#define STBIW_REALLOC_SIZED(p, oldsz, newsz) stb_realloc_sized((p), (oldsz), (newsz))

/* Static linkage: another part of shoal (or the application) may embed stb too. */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_MAX_DIMENSIONS SH_IMAGE_MAX_SIDE
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
/* stb declares static functions it never defines in our configuration; GCC reports those
 * at the end of the file, so that warning stays off for the whole file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

/* Encoded files larger than this are not photos we are meant to see. */
#define SH_IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)

static const char *label(const char *name) { return name ? name : "image"; }

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef enum { FMT_UNKNOWN, FMT_PNG, FMT_JPEG } img_format;

static img_format sniff(const uint8_t *d, size_t n)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (n >= 8 && memcmp(d, png_sig, 8) == 0)
        return FMT_PNG;
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return FMT_JPEG;
    return FMT_UNKNOWN;
}

/* Reads the declared size from the header ourselves: stb refuses a 0-pixel or huge header
 * with a generic message, and we want to tell the user what the file claims. */
static int probe_png(const uint8_t *d, size_t n, const char *name, uint32_t *w, uint32_t *h, sh_err *err)
{
    if (n < 24 || memcmp(d + 12, "IHDR", 4) != 0)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: truncated or corrupt PNG header (no IHDR chunk)", label(name));
    *w = be32(d + 16);
    *h = be32(d + 20);
    return 0;
}

static int probe_jpeg(const uint8_t *d, size_t n, const char *name, uint32_t *w, uint32_t *h, sh_err *err)
{
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xff)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt JPEG (no marker at byte %zu)", label(name), i);
        uint8_t m = d[i + 1];
        if (m == 0xff) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) {
            i += 2;
            continue;
        }
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        if (len < 2)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt JPEG (segment length %zu)", label(name), len);
        int sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
        if (sof) {
            if (i + 9 > n)
                break;
            *h = (uint32_t)d[i + 5] << 8 | d[i + 6];
            *w = (uint32_t)d[i + 7] << 8 | d[i + 8];
            return 0;
        }
        if (m == 0xda || m == 0xd9)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt JPEG (no frame header before the scan)", label(name));
        i += 2 + len;
    }
    return sh_errf(err, SHOAL_ERR_PARSE, "%s: truncated JPEG (ends before the frame header)", label(name));
}

static int check_dims(uint32_t w, uint32_t h, const char *name, sh_err *err)
{
    if (w == 0 || h == 0)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: image declares %ux%u pixels (empty)", label(name), w, h);
    if (w > SH_IMAGE_MAX_SIDE || h > SH_IMAGE_MAX_SIDE || (uint64_t)w * h > SH_IMAGE_MAX_PIXELS)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                       "%s: image declares %ux%u pixels, limit is %d per side and %u Mpixel",
                       label(name), w, h, SH_IMAGE_MAX_SIDE, SH_IMAGE_MAX_PIXELS >> 20);
    return 0;
}

static int probe_named(const void *data, size_t size, const char *name, int *width, int *height, sh_err *err)
{
    const uint8_t *d = data;
    if (!d || size == 0)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: empty image data", label(name));
    uint32_t w = 0, h = 0;
    int rc;
    switch (sniff(d, size)) {
    case FMT_PNG: rc = probe_png(d, size, name, &w, &h, err); break;
    case FMT_JPEG: rc = probe_jpeg(d, size, name, &w, &h, err); break;
    default:
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "%s: not a JPEG or PNG image (first bytes %02x %02x)",
                       label(name), d[0], size > 1 ? d[1] : 0);
    }
    if (rc == 0)
        rc = check_dims(w, h, name, err);
    if (rc == 0) {
        *width = (int)w;
        *height = (int)h;
    }
    return rc;
}

int sh_image_probe(const void *data, size_t size, int *width, int *height, sh_err *err)
{
    return probe_named(data, size, NULL, width, height, err);
}

int sh_image_create(sh_allocator *a, int width, int height, sh_image *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    if (width <= 0 || height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "image size %dx%d is empty", width, height);
    int rc = check_dims((uint32_t)width, (uint32_t)height, NULL, err);
    if (rc)
        return rc;
    size_t n;
    if (!sh_mul_size((size_t)width * 3, (size_t)height, &n))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "image size %dx%d overflows", width, height);
    out->data = sh_calloc(a, n, 1);
    if (!out->data)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "image %dx%d: cannot allocate %zu bytes", width, height, n);
    out->width = width;
    out->height = height;
    out->channels = 3;
    out->alloc = a;
    return 0;
}

void sh_image_free(sh_image *img)
{
    if (!img)
        return;
    sh_free(img->alloc, img->data);
    memset(img, 0, sizeof *img);
}

/* A JPEG cut short still decodes (libjpeg, like stb before it, fills the missing rows with
 * grey); a truncated frame must not reach a model, so we require the end-of-image marker. */
static int jpeg_has_eoi(const uint8_t *d, size_t n)
{
    for (size_t i = n; i >= 4; i--)
        if (d[i - 2] == 0xff && d[i - 1] == 0xd9)
            return 1;
    return 0;
}

int sh_image_load_memory(sh_allocator *a, const void *data, size_t size, const char *name,
                         sh_image *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    int w = 0, h = 0;
    int rc = probe_named(data, size, name, &w, &h, err);
    if (rc)
        return rc;
    if (size > INT_MAX)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "%s: %zu bytes is too large an encoded image", label(name), size);
    if (sniff(data, size) != FMT_JPEG)
        return sh_image_decode_stb(a, data, size, name, w, h, out, err);
    if (!jpeg_has_eoi(data, size))
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: truncated JPEG (no end-of-image marker)", label(name));
    return sh_image_decode_jpeg(a, data, size, name, w, h, out, err);
}

/* The PNG's chunk layout, checked before stb_image sees it. stb_image sizes its buffer for
 * the compressed data by each IDAT chunk's declared length before finding that the bytes are
 * not there, so a 150-byte file declaring a 256 MiB chunk cost a 256 MiB allocation (and a
 * second under a sanitizer to fill and free it, found by fuzz_server); with every chunk's
 * data inside the file, that buffer is bounded by the file's size. An empty first IDAT chunk
 * is refused as well: stb_image copies it to its null data pointer (null + 0: undefined
 * behaviour, found by fuzz_image); no encoder writes one. Returns 0 or a parse error. */
static int png_check_chunks(const uint8_t *d, size_t n, const char *name, sh_err *err)
{
    size_t pos = 8;   /* after the signature */
    bool seen_idat = false;
    while (n - pos >= 8) {
        size_t len = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (len > n - pos - 8)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt or truncated PNG (chunk '%c%c%c%c' at byte %zu declares "
                           "%zu bytes, %zu remain)", label(name), isprint(type[0]) ? type[0] : '?',
                           isprint(type[1]) ? type[1] : '?', isprint(type[2]) ? type[2] : '?',
                           isprint(type[3]) ? type[3] : '?', pos, len, n - pos - 8);
        if (memcmp(type, "IDAT", 4) == 0) {
            if (!seen_idat && len == 0)
                return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt PNG (empty first IDAT chunk)", label(name));
            seen_idat = true;
        }
        if (memcmp(type, "IEND", 4) == 0 || n - pos - 8 - len < 4)
            return 0;   /* the end, or a chunk without its CRC: stb_image's to judge */
        pos += 8 + len + 4;   /* length and type, data, CRC */
    }
    return 0;
}

int sh_image_decode_stb(sh_allocator *a, const void *data, size_t size, const char *name, int w, int h,
                        sh_image *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    if (sniff(data, size) == FMT_PNG) {
        int rc = png_check_chunks(data, size, name, err);
        if (rc)
            return rc;
    }
    sh_allocator *saved = tl_stb_alloc;
    tl_stb_alloc = a;
    int iw = 0, ih = 0, comp = 0;
    int ok = stbi_info_from_memory(data, (int)size, &iw, &ih, &comp);
    uint8_t *px = NULL;
    if (ok && iw == w && ih == h)
        px = stbi_load_from_memory(data, (int)size, &iw, &ih, &comp, 3);
    const char *why = stbi_failure_reason();
    tl_stb_alloc = saved;

    if (!ok)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt image header (%s)", label(name), why ? why : "?");
    if (iw != w || ih != h)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: inconsistent header (%dx%d vs %dx%d)", label(name), w, h, iw, ih);
    if (!px) {
        if (why && strcmp(why, "outofmem") == 0)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory decoding %dx%d image", label(name), w, h);
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt or truncated image data (%s)", label(name), why ? why : "?");
    }
    out->width = iw;
    out->height = ih;
    out->channels = 3;
    out->data = px;
    out->alloc = a;
    return 0;
}

int sh_image_load_file(sh_allocator *a, const char *path, sh_image *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    if (!path)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "image path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return sh_errf(err, errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO, "image %s: %s", path, strerror(errno));
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_IO, "image %s: cannot determine the file size", path);
    }
    if ((size_t)len > SH_IMAGE_MAX_FILE_BYTES) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "image %s: file of %ld bytes exceeds the %zu-byte limit", path, len,
                       SH_IMAGE_MAX_FILE_BYTES);
    }
    uint8_t *buf = sh_alloc(a, len ? (size_t)len : 1);
    if (!buf) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "image %s: cannot allocate %ld bytes", path, len);
    }
    size_t got = fread(buf, 1, (size_t)len, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr || got != (size_t)len)
        rc = sh_errf(err, SHOAL_ERR_IO, "image %s: read %zu of %ld bytes", path, got, len);
    else
        rc = sh_image_load_memory(a, buf, got, path, out, err);
    sh_free(a, buf);
    return rc;
}

int sh_image_from_raw(sh_allocator *a, const void *pixels, size_t size, int width, int height,
                      size_t stride, sh_pixel_format format, sh_image *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    if (!pixels)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "raw frame: pixel pointer is NULL");
    if (width <= 0 || height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "raw frame: size %dx%d is empty", width, height);
    if (format != SH_PIXEL_RGB && format != SH_PIXEL_BGR)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "raw frame: unknown pixel format %d", (int)format);
    int rc = check_dims((uint32_t)width, (uint32_t)height, "raw frame", err);
    if (rc)
        return rc;
    size_t row = (size_t)width * 3, need;
    if (stride < row)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "raw frame %dx%d: stride %zu is less than %zu bytes a row",
                       width, height, stride, row);
    if (!sh_mul_size(stride, (size_t)height - 1, &need) || !sh_add_size(need, row, &need) || need > size)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                       "raw frame %dx%d with stride %zu needs %zu bytes, buffer holds %zu", width, height, stride,
                       need, size);
    rc = sh_image_create(a, width, height, out, err);
    if (rc)
        return rc;
    const uint8_t *src = pixels;
    for (int y = 0; y < height; y++) {
        const uint8_t *s = src + (size_t)y * stride;
        uint8_t *d = out->data + (size_t)y * row;
        if (format == SH_PIXEL_RGB) {
            memcpy(d, s, row);
        } else {
            for (int x = 0; x < width; x++) {
                d[3 * x] = s[3 * x + 2];
                d[3 * x + 1] = s[3 * x + 1];
                d[3 * x + 2] = s[3 * x];
            }
        }
    }
    return 0;
}

int sh_image_clone(sh_allocator *a, const sh_image *src, sh_image *out, sh_err *err)
{
    int rc = sh_image_create(a, src->width, src->height, out, err);
    if (rc == 0)
        memcpy(out->data, src->data, (size_t)src->width * 3 * (size_t)src->height);
    return rc;
}

typedef struct png_sink {
    FILE *f;
    int failed;
} png_sink;

static void png_write_cb(void *ctx, void *data, int size)
{
    png_sink *s = ctx;
    if (!s->failed && fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
        s->failed = 1;
}

int sh_image_write_png(const sh_image *img, const char *path, sh_err *err)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "write %s: empty image", path ? path : "(null)");
    FILE *f = fopen(path, "wb");
    if (!f)
        return sh_errf(err, SHOAL_ERR_IO, "write %s: %s", path, strerror(errno));
    png_sink sink = {f, 0};
    sh_allocator *saved = tl_stb_alloc;
    tl_stb_alloc = img->alloc;
    int ok = stbi_write_png_to_func(png_write_cb, &sink, img->width, img->height, 3, img->data, img->width * 3);
    tl_stb_alloc = saved;
    int cerr = fclose(f);
    if (!ok)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "write %s: PNG encoding failed (out of memory)", path);
    if (sink.failed || cerr)
        return sh_errf(err, SHOAL_ERR_IO, "write %s: %s", path, strerror(errno));
    return 0;
}
