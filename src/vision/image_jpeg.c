/* JPEG decoding through libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0-dev, 2.1).
 *
 * Why not stb_image, which still decodes PNG: libjpeg-turbo's SIMD IDCT, upsampling and
 * colour conversion decode a baseline camera frame about 1.8 times as fast (progressive:
 * 1.2-1.3), and a frame arrives with every request to the server (docs/benchmarks.md, "JPEG
 * decode").
 *
 * Hostile input: sh_image_load_memory has checked the declared size against the pixel cap
 * before we get here, and we refuse a file whose frame header disagrees with that probe, so
 * the output buffer and libjpeg's working memory stay proportional to a checked pixel
 * count. TJFLAG_LIMITSCANS stops a progressive file after 500 scans, the known way to make
 * a tiny file cost minutes of CPU. */
#include <string.h>
#include <turbojpeg.h>

#include "vision/image-decode.h"

static const char *label(const char *name) { return name ? name : "image"; }

/* x * y / 255, rounded, exactly as stb_image computes it (its "blinn_8x8"), so a CMYK file
 * gives the colours it gave before. */
static uint8_t mul_255(uint8_t x, uint8_t y)
{
    unsigned t = (unsigned)x * y + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

/* libjpeg has no CMYK-to-RGB conversion; it hands out the inks as stored, which for the
 * Adobe files that carry CMYK are inverted (255 = no ink), so each channel times K is the
 * light left. Such files come from print workflows, never from a camera. */
static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t pixels)
{
    for (size_t i = 0; i < pixels; i++, cmyk += 4, rgb += 3) {
        rgb[0] = mul_255(cmyk[0], cmyk[3]);
        rgb[1] = mul_255(cmyk[1], cmyk[3]);
        rgb[2] = mul_255(cmyk[2], cmyk[3]);
    }
}

int sh_image_decode_jpeg(sh_allocator *a, const void *data, size_t size, const char *name, int width,
                         int height, sh_image *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    size_t pixels, bytes, cmyk_bytes;
    if (width <= 0 || height <= 0 || !sh_mul_size((size_t)width, (size_t)height, &pixels) ||
        !sh_mul_size(pixels, 3, &bytes) || !sh_mul_size(pixels, 4, &cmyk_bytes))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: cannot decode a %dx%d JPEG", label(name), width, height);
    /* One handle per call: it costs a few KiB and microseconds against milliseconds of
     * decoding, and keeps concurrent decodes (server workers) free of shared state. */
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: cannot create a JPEG decoder", label(name));
    const unsigned char *jpeg = data;
    int hw = 0, hh = 0, subsamp = 0, colorspace = 0, cmyk = 0, rc = 0;
    uint8_t *px = NULL, *inks = NULL;
    if (tjDecompressHeader3(tj, jpeg, (unsigned long)size, &hw, &hh, &subsamp, &colorspace) != 0) {
        rc = sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt or unsupported JPEG header (%s)", label(name),
                     tjGetErrorStr2(tj));
        goto done;
    }
    if (hw != width || hh != height) {
        rc = sh_errf(err, SHOAL_ERR_PARSE, "%s: inconsistent header (%dx%d vs %dx%d)", label(name), width, height,
                     hw, hh);
        goto done;
    }
    cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    if (!(px = sh_alloc(a, bytes)) || (cmyk && !(inks = sh_alloc(a, cmyk_bytes)))) {
        rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory decoding %dx%d image", label(name), width, height);
        goto done;
    }
    if (tjDecompress2(tj, jpeg, (unsigned long)size, cmyk ? inks : px, width, 0, height, cmyk ? TJPF_CMYK : TJPF_RGB,
                      TJFLAG_LIMITSCANS) != 0) {
        /* A warning still leaves every row written. Most (a damaged Huffman code, stray bytes
         * before a marker, which some webcams always send) are accepted, as stb_image did.
         * A scan that ends before the picture does is a truncated frame followed by an EOI,
         * refused like one without: the model must not see the grey fill. libjpeg names it
         * only in its first warning's text ("premature end of data segment" / "Premature
         * end of JPEG file"), the same since IJG 6. */
        const char *why = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) != TJERR_WARNING)
            rc = sh_errf(err, SHOAL_ERR_PARSE, "%s: corrupt JPEG data (%s)", label(name), why);
        else if (strstr(why, "remature end"))
            rc = sh_errf(err, SHOAL_ERR_PARSE, "%s: truncated JPEG (%s)", label(name), why);
    }
    if (rc == 0 && cmyk)
        cmyk_to_rgb(inks, px, pixels);
done:
    tjDestroy(tj);
    sh_free(a, inks);
    if (rc) {
        sh_free(a, px);
        return rc;
    }
    out->width = width;
    out->height = height;
    out->channels = 3;
    out->data = px;
    out->alloc = a;
    return 0;
}
