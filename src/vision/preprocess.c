#include "vision/preprocess.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/scratch.h"

#define SH_MODEL_MAX_SIDE 8192

sh_preprocess_params sh_preprocess_default_params(int width, int height)
{
    sh_preprocess_params p = {
        .width = width, .height = height, .resize = SH_RESIZE_LETTERBOX, .place = SH_PLACE_CENTER,
        .pad_value = 114, .order = SH_CHANNELS_RGB, .scale = 1.0f / 255.0f,
        .mean = {0, 0, 0}, .std = {1, 1, 1},
    };
    return p;
}

sh_preprocess_params sh_preprocess_yolox_params(int width, int height)
{
    sh_preprocess_params p = sh_preprocess_default_params(width, height);
    p.place = SH_PLACE_TOP_LEFT;
    p.order = SH_CHANNELS_BGR;
    p.scale = 1.0f;
    return p;
}

int sh_transform_compute(int src_w, int src_h, const sh_preprocess_params *p, sh_transform *xf, sh_err *err)
{
    if (!p || !xf)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: NULL params or transform");
    if (p->width <= 0 || p->height <= 0 || p->width > SH_MODEL_MAX_SIDE || p->height > SH_MODEL_MAX_SIDE)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: model input %dx%d is out of range (1..%d)",
                       p->width, p->height, SH_MODEL_MAX_SIDE);
    if (src_w <= 0 || src_h <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: source picture %dx%d is empty", src_w, src_h);
    memset(xf, 0, sizeof *xf);
    xf->src_w = src_w;
    xf->src_h = src_h;
    xf->dst_w = p->width;
    xf->dst_h = p->height;
    if (p->resize == SH_RESIZE_STRETCH) {
        xf->resized_w = p->width;
        xf->resized_h = p->height;
        xf->scale_x = (float)((double)p->width / src_w);
        xf->scale_y = (float)((double)p->height / src_h);
        return 0;
    }
    if (p->resize != SH_RESIZE_LETTERBOX)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: unknown resize mode %d", (int)p->resize);
    /* Double precision and the same truncation/rounding as the Python references, so the
     * resized size never differs by a pixel from theirs. */
    double r = fmin((double)p->width / src_w, (double)p->height / src_h);
    int rw, rh;
    double left = 0, top = 0;
    if (p->place == SH_PLACE_TOP_LEFT) {
        rw = (int)(src_w * r);
        rh = (int)(src_h * r);
    } else if (p->place == SH_PLACE_CENTER) {
        rw = (int)nearbyint(src_w * r);
        rh = (int)nearbyint(src_h * r);
    } else {
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: unknown letterbox placement %d", (int)p->place);
    }
    rw = rw < 1 ? 1 : rw > p->width ? p->width : rw;
    rh = rh < 1 ? 1 : rh > p->height ? p->height : rh;
    if (p->place == SH_PLACE_CENTER) {
        left = nearbyint((p->width - rw) / 2.0 - 0.1);
        top = nearbyint((p->height - rh) / 2.0 - 0.1);
        if (left < 0)
            left = 0;
        if (top < 0)
            top = 0;
    }
    xf->resized_w = rw;
    xf->resized_h = rh;
    xf->scale_x = xf->scale_y = (float)r;
    xf->pad_x = (float)left;
    xf->pad_y = (float)top;
    return 0;
}

void sh_transform_to_image(const sh_transform *xf, float mx, float my, float *ix, float *iy)
{
    *ix = xf->origin_x + (mx - xf->pad_x) / xf->scale_x;
    *iy = xf->origin_y + (my - xf->pad_y) / xf->scale_y;
}

void sh_transform_to_model(const sh_transform *xf, float ix, float iy, float *mx, float *my)
{
    *mx = (ix - xf->origin_x) * xf->scale_x + xf->pad_x;
    *my = (iy - xf->origin_y) * xf->scale_y + xf->pad_y;
}

/* OpenCV's INTER_LINEAR on 8-bit data, reproduced operation by operation:
 * - source coordinate f = (float)((d + 0.5) * (src/dst) - 0.5), weights (1-frac, frac) as
 *   shorts scaled by 2048 with round-half-even (the two may not sum to 2048);
 * - columns left of 0 or right of the last use that edge pixel alone; rows are clamped
 *   after choosing the pair, so the weights keep their rounding;
 * - horizontal pass into int rows, vertical pass as in VResizeLinearVec_32s8u
 *   (((S0>>4)*b0>>16) + ((S1>>4)*b1>>16) + 2) >> 2 for the 16- and 8-lane blocks, and
 *   the scalar (S0*b0 + S1*b1 + 2^21) >> 22 for the last elements of a row.
 * The result equals cv2.resize on the baseline (SSE) build bit for bit as far as we know;
 * the ±1 that remains possible comes from compiler contraction of the coordinate. */
#define COEF_BITS 11
#define COEF_ONE (1 << COEF_BITS)

static short coef(float v) { return (short)lrintf(v * COEF_ONE); }

static void hresize_row(const uint8_t *s, int cn, int dst_w, const int *xofs, const short *alpha, int xmax,
                        int *d)
{
    for (int dx = 0; dx < dst_w; dx++) {
        int sx = xofs[dx];
        for (int k = 0; k < cn; k++) {
            if (dx < xmax)
                d[dx * cn + k] = s[sx + k] * alpha[2 * dx] + s[sx + k + cn] * alpha[2 * dx + 1];
            else
                d[dx * cn + k] = s[sx + k] * COEF_ONE;
        }
    }
}

static uint8_t sat_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

#ifdef __AVX2__
/* 16 outputs of the vector formula below at once, with the same integer steps: the rows' ints
 * >> 4 narrowed to int16 (they fit: at most 255 * 2048 >> 4), mulhi for the >> 16 of each
 * product, their sum + 2 >> 2, saturated to bytes. */
static void vresize_16(const int *s0, const int *s1, __m256i b0, __m256i b1, uint8_t *d)
{
    __m256i a = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_loadu_si256((const __m256i *)s0), 4),
                                   _mm256_srai_epi32(_mm256_loadu_si256((const __m256i *)(s0 + 8)), 4));
    __m256i b = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_loadu_si256((const __m256i *)s1), 4),
                                   _mm256_srai_epi32(_mm256_loadu_si256((const __m256i *)(s1 + 8)), 4));
    a = _mm256_permute4x64_epi64(a, 0xD8);   /* packs interleaves the 128-bit lanes */
    b = _mm256_permute4x64_epi64(b, 0xD8);
    __m256i v = _mm256_add_epi16(_mm256_mulhi_epi16(a, b0), _mm256_mulhi_epi16(b, b1));
    v = _mm256_srai_epi16(_mm256_add_epi16(v, _mm256_set1_epi16(2)), 2);
    _mm_storeu_si128((__m128i *)d, _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}
#endif

void sh_resize_vrow_u8(const int *s0, const int *s1, short b0, short b1, int width, uint8_t *d)
{
    int x = 0;
#ifdef __AVX2__
    __m256i vb0 = _mm256_set1_epi16(b0), vb1 = _mm256_set1_epi16(b1);
    for (; x + 16 <= width; x += 16)
        vresize_16(s0 + x, s1 + x, vb0, vb1, d + x);
#endif
    int vec_end = width / 16 * 16;
    if (width - vec_end > 8)
        vec_end += 8;
    for (; x < vec_end; x++) {
        int v = ((int16_t)(s0[x] >> 4) * b0 >> 16) + ((int16_t)(s1[x] >> 4) * b1 >> 16);
        d[x] = sat_u8((v + 2) >> 2);
    }
    for (; x < width; x++)
        d[x] = sat_u8((s0[x] * b0 + s1[x] * b1 + (1 << 21)) >> 22);
}

/* Scratch of a resize to dst_w columns of cn channels: two int rows, then xofs + alpha (2
 * shorts) per column. */
static size_t resize_scratch_bytes(int dst_w, int cn)
{
    size_t row = (size_t)dst_w * cn;
    return (size_t)dst_w * (sizeof(int) + 2 * sizeof(short)) + 2 * row * sizeof(int) + 64;
}

static int resize_u8(uint8_t *scratch, const uint8_t *src, int src_w, int src_h, size_t src_stride, uint8_t *dst,
                     int dst_w, int dst_h, size_t dst_stride, int cn)
{
    size_t row = (size_t)dst_w * cn;
    int *rows[2] = {(int *)scratch, (int *)scratch + row};
    int *xofs = rows[1] + row;
    short *alpha = (short *)(xofs + dst_w);

    double scale_x = 1.0 / ((double)dst_w / src_w), scale_y = 1.0 / ((double)dst_h / src_h);
    int xmax = dst_w;
    for (int dx = 0; dx < dst_w; dx++) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        if (sx < 0)
            fx = 0, sx = 0;
        if (sx + 1 >= src_w) {
            if (xmax > dx)
                xmax = dx;
            if (sx >= src_w - 1)
                fx = 0, sx = src_w - 1;
        }
        xofs[dx] = sx * cn;
        alpha[2 * dx] = coef(1.0f - fx);
        alpha[2 * dx + 1] = coef(fx);
    }
    int cached[2] = {-1, -1};
    for (int dy = 0; dy < dst_h; dy++) {
        float fy = (float)((dy + 0.5) * scale_y - 0.5);
        int sy = (int)floorf(fy);
        fy -= (float)sy;
        short b0 = coef(1.0f - fy), b1 = coef(fy);
        int want[2];
        for (int k = 0; k < 2; k++) {
            int y = sy + k;
            want[k] = y < 0 ? 0 : y >= src_h ? src_h - 1 : y;
        }
        int *hr[2];
        for (int k = 0; k < 2; k++) {
            int slot = cached[0] == want[k] ? 0 : cached[1] == want[k] ? 1 : -1;
            if (slot < 0) {
                /* reuse the slot not holding the other row we need */
                slot = (cached[0] == want[1 - k]) ? 1 : 0;
                hresize_row(src + (size_t)want[k] * src_stride, cn, dst_w, xofs, alpha, xmax, rows[slot]);
                cached[slot] = want[k];
            }
            hr[k] = rows[slot];
        }
        sh_resize_vrow_u8(hr[0], hr[1], b0, b1, (int)row, dst + (size_t)dy * dst_stride);
    }
    return 0;
}

int sh_resize_bilinear_u8(sh_allocator *a, const uint8_t *src, int src_w, int src_h, size_t src_stride,
                          uint8_t *dst, int dst_w, int dst_h, size_t dst_stride, int cn, sh_err *err)
{
    if (!src || !dst || src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0 || cn < 1 || cn > 4 ||
        src_stride < (size_t)src_w * cn || dst_stride < (size_t)dst_w * cn)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "resize: bad geometry %dx%dx%d -> %dx%d", src_w, src_h, cn,
                       dst_w, dst_h);
    size_t bytes = resize_scratch_bytes(dst_w, cn);
    uint8_t *scratch = sh_alloc(a, bytes);
    if (!scratch)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "resize %dx%d -> %dx%d: cannot allocate %zu bytes of scratch",
                       src_w, src_h, dst_w, dst_h, bytes);
    int rc = resize_u8(scratch, src, src_w, src_h, src_stride, dst, dst_w, dst_h, dst_stride, cn);
    sh_free(a, scratch);
    return rc;
}

void sh_resize_bilinear_f32(const float *src, int src_w, int src_h, float *dst, int dst_w, int dst_h)
{
    float sx_scale = (float)src_w / dst_w, sy_scale = (float)src_h / dst_h;
    for (int dy = 0; dy < dst_h; dy++) {
        float fy = (dy + 0.5f) * sy_scale - 0.5f;
        if (fy < 0)
            fy = 0;
        int y0 = (int)fy, y1 = y0 + (y0 < src_h - 1);
        float ly = fy - y0;
        for (int dx = 0; dx < dst_w; dx++) {
            float fx = (dx + 0.5f) * sx_scale - 0.5f;
            if (fx < 0)
                fx = 0;
            int x0 = (int)fx, x1 = x0 + (x0 < src_w - 1);
            float lx = fx - x0;
            const float *r0 = src + (size_t)y0 * src_w, *r1 = src + (size_t)y1 * src_w;
            dst[(size_t)dy * dst_w + dx] = (1 - ly) * ((1 - lx) * r0[x0] + lx * r0[x1]) +
                                           ly * ((1 - lx) * r1[x0] + lx * r1[x1]);
        }
    }
}

int sh_preprocess_lut(const sh_preprocess_params *p, float lut[3][256], sh_err *err)
{
    if (p->order != SH_CHANNELS_RGB && p->order != SH_CHANNELS_BGR)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: unknown channel order %d", (int)p->order);
    for (int c = 0; c < 3; c++) {
        if (!(p->std[c] != 0.0f) || !isfinite(p->std[c]) || !isfinite(p->mean[c]) || !isfinite(p->scale))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: channel %d has std %g, mean %g, scale %g", c,
                           p->std[c], p->mean[c], p->scale);
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v * p->scale - p->mean[c]) / p->std[c];
    }
    return 0;
}

/* Scratch of region_u8 for a p->width x p->height model input: the resize's rows (the
 * resized picture goes straight onto the canvas, and is never wider than the input). */
static size_t region_need(const sh_preprocess_params *p)
{
    return sh_scratch_need(0, resize_scratch_bytes(p->width, 3));
}

/* Fills the canvas outside the w x h picture placed at (left, top) with the pad value. */
static void pad_around(uint8_t *canvas, int width, int height, int left, int top, int w, int h, uint8_t pad)
{
    size_t pitch = (size_t)width * 3;
    memset(canvas, pad, (size_t)top * pitch);
    for (int y = top; y < top + h; y++) {
        uint8_t *row = canvas + (size_t)y * pitch;
        memset(row, pad, (size_t)left * 3);
        memset(row + (size_t)(left + w) * 3, pad, (size_t)(width - left - w) * 3);
    }
    memset(canvas + (size_t)(top + h) * pitch, pad, (size_t)(height - top - h) * pitch);
}

/* The model-size 8-bit picture: resized, placed, padded, channels in output order. */
static int letterbox_u8(sh_scratch *s, const uint8_t *src, int w, int h, size_t stride, const sh_preprocess_params *p,
                        const sh_transform *xf, uint8_t *canvas, sh_err *err)
{
    uint8_t *scratch = sh_scratch_take(s, resize_scratch_bytes(xf->resized_w, 3));
    if (!scratch)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "preprocess: the workspace lacks room for a %dx%d resize",
                       xf->resized_w, xf->resized_h);
    /* resized straight into its place on the canvas, then the channels swapped there for BGR
     * and the border filled */
    int left = (int)xf->pad_x, top = (int)xf->pad_y;
    size_t pitch = (size_t)p->width * 3;
    uint8_t *placed = canvas + (size_t)top * pitch + (size_t)left * 3;
    resize_u8(scratch, src, w, h, stride, placed, xf->resized_w, xf->resized_h, pitch, 3);
    if (p->order == SH_CHANNELS_BGR)
        for (int y = 0; y < xf->resized_h; y++)
            for (uint8_t *o = placed + (size_t)y * pitch, *end = o + (size_t)xf->resized_w * 3; o < end; o += 3) {
                uint8_t r = o[0];
                o[0] = o[2];
                o[2] = r;
            }
    pad_around(canvas, p->width, p->height, left, top, xf->resized_w, xf->resized_h, p->pad_value);
    return 0;
}

static int region_u8(sh_scratch *s, const uint8_t *src, int w, int h, size_t stride, const sh_preprocess_params *p,
                     uint8_t *out, size_t out_bytes, sh_transform *xf_out, sh_err *err)
{
    sh_transform xf;
    int rc = sh_transform_compute(w, h, p, &xf, err);
    if (rc)
        return rc;
    size_t need = (size_t)p->width * p->height * 3;
    if (!out || out_bytes < need)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: output holds %zu bytes, %dx%dx3 needs %zu",
                       out ? out_bytes : 0, p->width, p->height, need);
    if (p->order != SH_CHANNELS_RGB && p->order != SH_CHANNELS_BGR)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: unknown channel order %d", (int)p->order);
    rc = letterbox_u8(s, src, w, h, stride, p, &xf, out, err);
    if (rc == 0 && xf_out)
        *xf_out = xf;
    return rc;
}

/* Scratch of preprocess_region: the 8-bit canvas, then region_u8's. */
static size_t preprocess_need(const sh_preprocess_params *p)
{
    return sh_scratch_need(region_need(p), (size_t)p->width * p->height * 3);
}

static int preprocess_region(sh_scratch *s, const uint8_t *src, int w, int h, size_t stride,
                             const sh_preprocess_params *p, float *out, size_t out_count, sh_transform *xf_out,
                             sh_err *err)
{
    size_t plane = (size_t)p->width * p->height;
    if (!out || out_count < 3 * plane)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: output holds %zu floats, %dx%dx3 needs %zu",
                       out ? out_count : 0, p->width, p->height, 3 * plane);
    float lut[3][256];
    sh_transform probe;   /* a bad model size is named before any scratch is taken for it */
    int rc = sh_transform_compute(w, h, p, &probe, err);
    if (rc || (rc = sh_preprocess_lut(p, lut, err)))
        return rc;
    uint8_t *canvas = sh_scratch_take(s, 3 * plane);
    if (!canvas)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "preprocess: the workspace lacks room for a %dx%d picture", p->width,
                       p->height);
    rc = region_u8(s, src, w, h, stride, p, canvas, 3 * plane, xf_out, err);
    if (rc == 0)
        sh_expand_u8(canvas, p->width, p->height, lut, out);
    return rc;
}

/* A host caller's scratch: one block of `need` bytes from a. */
static int scratch_alloc(sh_allocator *a, size_t need, void **block, sh_scratch *s, sh_err *err)
{
    *block = need == SIZE_MAX ? NULL : sh_alloc(a, need);
    if (!*block)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "preprocess: cannot allocate %zu bytes of scratch", need);
    *s = sh_scratch_init(*block, need);
    return 0;
}

static bool model_size_ok(const sh_preprocess_params *p)
{
    return p && p->width > 0 && p->height > 0 && p->width <= SH_MODEL_MAX_SIDE && p->height <= SH_MODEL_MAX_SIDE;
}

void sh_expand_u8(const uint8_t *hwc, int width, int height, const float lut[3][256], float *out)
{
    size_t plane = (size_t)width * height;
    float *o0 = out, *o1 = out + plane, *o2 = out + 2 * plane;
    for (size_t i = 0; i < plane; i++, hwc += 3) {   /* one pass over the bytes, three planes out */
        o0[i] = lut[0][hwc[0]];
        o1[i] = lut[1][hwc[1]];
        o2[i] = lut[2][hwc[2]];
    }
}

int sh_preprocess_u8(sh_allocator *a, const sh_image *img, const sh_preprocess_params *p, uint8_t *out,
                     size_t out_bytes, sh_transform *xf, sh_err *err)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: empty image");
    sh_transform probe;
    int rc = sh_transform_compute(img->width, img->height, p, &probe, err);
    if (rc)
        return rc;
    void *block;
    sh_scratch s;
    if ((rc = scratch_alloc(a, region_need(p), &block, &s, err)) == 0)
        rc = region_u8(&s, img->data, img->width, img->height, (size_t)img->width * 3, p, out, out_bytes, xf, err);
    sh_free(a, block);
    return rc;
}

/* preprocess_region with its scratch from a. */
static int preprocess_alloc(sh_allocator *a, const uint8_t *src, int w, int h, size_t stride,
                            const sh_preprocess_params *p, float *out, size_t out_count, sh_transform *xf, sh_err *err)
{
    sh_transform probe;
    int rc = sh_transform_compute(w, h, p, &probe, err);
    if (rc)
        return rc;
    void *block;
    sh_scratch s;
    if ((rc = scratch_alloc(a, preprocess_need(p), &block, &s, err)) == 0)
        rc = preprocess_region(&s, src, w, h, stride, p, out, out_count, xf, err);
    sh_free(a, block);
    return rc;
}

int sh_preprocess(sh_allocator *a, const sh_image *img, const sh_preprocess_params *p, float *out,
                  size_t out_count, sh_transform *xf, sh_err *err)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: empty image");
    return preprocess_alloc(a, img->data, img->width, img->height, (size_t)img->width * 3, p, out, out_count, xf, err);
}

size_t sh_preprocess_pixels_ws(const sh_preprocess_params *p, size_t max_frame_bytes, sh_pixel_format format)
{
    if (!model_size_ok(p))
        return 0;
    return sh_scratch_need(preprocess_need(p), format == SH_PIXEL_BGR ? max_frame_bytes : 0);
}

int sh_preprocess_pixels_in(void *ws, size_t ws_bytes, const uint8_t *pixels, int width, int height,
                            sh_pixel_format format, const sh_preprocess_params *p, float *out, size_t out_count,
                            sh_transform *xf, sh_err *err)
{
    if (!pixels || width <= 0 || height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: empty frame (%dx%d)", width, height);
    sh_scratch s = sh_scratch_init(ws, ws_bytes);
    if (format == SH_PIXEL_RGB)
        return preprocess_region(&s, pixels, width, height, (size_t)width * 3, p, out, out_count, xf, err);
    if (format != SH_PIXEL_BGR)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: unknown pixel format %d", (int)format);
    /* The resize's last elements of a row round differently from the vectorised ones, so each
     * channel's bytes must sit where they sit in an RGB picture: a BGR frame is made RGB first,
     * as sh_image_from_raw does on the host path. */
    size_t bytes = (size_t)width * height * 3;
    uint8_t *rgb = sh_scratch_take(&s, bytes);
    if (!rgb)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "preprocess: the workspace lacks room for a %dx%d RGB copy", width,
                       height);
    for (size_t i = 0; i < bytes; i += 3) {
        rgb[i] = pixels[i + 2];
        rgb[i + 1] = pixels[i + 1];
        rgb[i + 2] = pixels[i];
    }
    return preprocess_region(&s, rgb, width, height, (size_t)width * 3, p, out, out_count, xf, err);
}

int sh_preprocess_pixels(sh_allocator *a, const uint8_t *pixels, int width, int height, sh_pixel_format format,
                         const sh_preprocess_params *p, float *out, size_t out_count, sh_transform *xf, sh_err *err)
{
    if (!pixels || width <= 0 || height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: empty frame (%dx%d)", width, height);
    sh_transform probe;
    int rc = sh_transform_compute(width, height, p, &probe, err);
    if (rc)
        return rc;
    size_t need = sh_preprocess_pixels_ws(p, (size_t)width * height * 3, format);
    void *block = need == SIZE_MAX ? NULL : sh_alloc(a, need);
    if (!block)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "preprocess: cannot allocate %zu bytes of scratch", need);
    rc = sh_preprocess_pixels_in(block, need, pixels, width, height, format, p, out, out_count, xf, err);
    sh_free(a, block);
    return rc;
}

int sh_preprocess_roi(sh_allocator *a, const sh_image *img, int x, int y, int w, int h,
                      const sh_preprocess_params *p, float *out, size_t out_count, sh_transform *xf, sh_err *err)
{
    if (!img || !img->data || img->width <= 0 || img->height <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: empty image");
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x > img->width - w || y > img->height - h)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "preprocess: region %dx%d at (%d,%d) is not inside the %dx%d image",
                       w, h, x, y, img->width, img->height);
    size_t stride = (size_t)img->width * 3;
    int rc = preprocess_alloc(a, img->data + (size_t)y * stride + (size_t)x * 3, w, h, stride, p, out, out_count, xf,
                              err);
    if (rc == 0 && xf) {
        xf->origin_x = (float)x;
        xf->origin_y = (float)y;
    }
    return rc;
}
