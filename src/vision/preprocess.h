/* Turning an image into a model input tensor, and mapping model coordinates back.
 *
 *   sh_preprocess_params p = sh_preprocess_yolox_params(416, 416);
 *   float *in = ...3*416*416 floats...;
 *   sh_transform xf;
 *   if (sh_preprocess(alloc, &img, &p, in, 3 * 416 * 416, &xf, &err) != 0) ...
 *   ...run the model, decode with &xf: boxes come back in image pixels...
 *
 * The resize reproduces OpenCV's cv2.resize(INTER_LINEAR) on 8-bit images (half-pixel
 * centres, no antialiasing, 11-bit fixed-point weights, rounding to 8 bits) because the
 * reference inputs of YOLOX and the ultralytics models are made that way; the padded
 * 8-bit picture is then converted to float NCHW as (v * scale - mean[c]) / std[c]. */
#ifndef SHOAL_VISION_PREPROCESS_H
#define SHOAL_VISION_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"
#include "vision/image.h"

typedef enum sh_resize_mode {
    SH_RESIZE_LETTERBOX = 0,   /* keep aspect: r = min(W/w, H/h), pad the rest */
    SH_RESIZE_STRETCH = 1      /* plain resize to W x H, aspect not kept */
} sh_resize_mode;

typedef enum sh_letterbox_place {
    /* YOLOX: resized size is trunc(w*r) x trunc(h*r), pasted at (0,0). */
    SH_PLACE_TOP_LEFT = 0,
    /* ultralytics LetterBox: size round(w*r) x round(h*r), left = round(dw/2 - 0.1),
     * top = round(dh/2 - 0.1), the extra pixel of an odd pad goes right/bottom. */
    SH_PLACE_CENTER = 1
} sh_letterbox_place;

typedef enum sh_channel_order {
    SH_CHANNELS_RGB = 0,
    SH_CHANNELS_BGR = 1
} sh_channel_order;

typedef struct sh_preprocess_params {
    int width, height;           /* model input size */
    sh_resize_mode resize;
    sh_letterbox_place place;
    uint8_t pad_value;           /* grey of the letterbox border, 114 for YOLO/YOLOX */
    sh_channel_order order;      /* channel order of the output planes */
    float scale;                 /* applied to 0..255 first, e.g. 1/255 */
    float mean[3], std[3];       /* then (v*scale - mean[c]) / std[c], c in output order */
} sh_preprocess_params;

/* RGB, letterbox centred, pad 114, scale 1/255, mean 0, std 1 (ultralytics YOLOv8/11). */
sh_preprocess_params sh_preprocess_default_params(int width, int height);
/* YOLOX: BGR, raw 0..255, letterbox top-left, pad 114. */
sh_preprocess_params sh_preprocess_yolox_params(int width, int height);

/* How model-input pixels relate to the original image:
 *   image_x = origin_x + (model_x - pad_x) / scale_x   (same for y). */
typedef struct sh_transform {
    float scale_x, scale_y;      /* model pixels per image pixel */
    float pad_x, pad_y;          /* left / top border in model pixels */
    float origin_x, origin_y;    /* top-left of the region of interest in the image */
    int src_w, src_h;            /* size of the region (the whole image unless a ROI) */
    int dst_w, dst_h;            /* model input size */
    int resized_w, resized_h;    /* size of the resized picture inside the input */
} sh_transform;

/* Computes the transform for a src_w x src_h picture without touching pixels. */
int sh_transform_compute(int src_w, int src_h, const sh_preprocess_params *p, sh_transform *xf, sh_err *err);

/* Model coordinates -> image coordinates, and back. Not clipped. */
void sh_transform_to_image(const sh_transform *xf, float mx, float my, float *ix, float *iy);
void sh_transform_to_model(const sh_transform *xf, float ix, float iy, float *mx, float *my);

/* Writes 3 * p->height * p->width floats (NCHW, N = 1) to `out`; `out_count` is the room
 * there, in floats. Fills *xf (may be NULL). Scratch memory comes from `a` and is freed. */
int sh_preprocess(sh_allocator *a, const sh_image *img, const sh_preprocess_params *p, float *out,
                  size_t out_count, sh_transform *xf, sh_err *err);

/* sh_preprocess on a packed 8-bit frame (3 * width bytes a row) whose bytes are RGB or BGR:
 * the frame graph op's semantics (vision/frame.h). */
int sh_preprocess_pixels(sh_allocator *a, const uint8_t *pixels, int width, int height, sh_pixel_format format,
                         const sh_preprocess_params *p, float *out, size_t out_count, sh_transform *xf, sh_err *err);

/* sh_preprocess_pixels with its scratch in ws (ws_bytes; sh_preprocess_pixels_ws bytes hold
 * any frame of at most max_frame_bytes): allocates nothing. */
int sh_preprocess_pixels_in(void *ws, size_t ws_bytes, const uint8_t *pixels, int width, int height,
                            sh_pixel_format format, const sh_preprocess_params *p, float *out, size_t out_count,
                            sh_transform *xf, sh_err *err);
/* Scratch bytes of sh_preprocess_pixels_in for frames of at most max_frame_bytes; 0 when p's
 * model size is out of range, SIZE_MAX on overflow. */
size_t sh_preprocess_pixels_ws(const sh_preprocess_params *p, size_t max_frame_bytes, sh_pixel_format format);

/* The same picture before the float conversion: 3 * p->height * p->width bytes, interleaved
 * (HWC), channels in output order, letterboxed and padded; out_bytes is the room there.
 * sh_expand_u8 with sh_preprocess_lut's table turns it into exactly what sh_preprocess
 * writes (a device can do that step: a quarter of the bytes to copy). */
int sh_preprocess_u8(sh_allocator *a, const sh_image *img, const sh_preprocess_params *p, uint8_t *out,
                     size_t out_bytes, sh_transform *xf, sh_err *err);
/* lut[c][v] = (v * scale - mean[c]) / std[c], the one float conversion every path uses. */
int sh_preprocess_lut(const sh_preprocess_params *p, float lut[3][256], sh_err *err);
/* HWC bytes -> float NCHW planes through lut. */
void sh_expand_u8(const uint8_t *hwc, int width, int height, const float lut[3][256], float *out);

/* Same on the region [x, x+w) x [y, y+h) of the image (e.g. a hand crop); the transform
 * maps back to full-image coordinates. The region must lie inside the image. */
int sh_preprocess_roi(sh_allocator *a, const sh_image *img, int x, int y, int w, int h,
                      const sh_preprocess_params *p, float *out, size_t out_count, sh_transform *xf,
                      sh_err *err);

/* OpenCV-compatible INTER_LINEAR resize of an 8-bit interleaved picture with `cn` channels
 * (1..4). Rows of src are src_stride bytes apart, rows of dst dst_stride bytes apart. */
int sh_resize_bilinear_u8(sh_allocator *a, const uint8_t *src, int src_w, int src_h, size_t src_stride,
                          uint8_t *dst, int dst_w, int dst_h, size_t dst_stride, int cn, sh_err *err);

/* One output row of the bilinear resize's vertical pass (OpenCV's VResizeLinear for 8-bit
 * rows): the blend of two horizontally resized int rows s0 and s1 with weights b0 + b1 = 2048.
 * Exposed for its test, which holds the vector path to the scalar formula. */
void sh_resize_vrow_u8(const int *s0, const int *s1, short b0, short b1, int width, uint8_t *d);

/* Bilinear resize of a float plane (PyTorch interpolate, align_corners=False). */
void sh_resize_bilinear_f32(const float *src, int src_w, int src_h, float *dst, int dst_w, int dst_h);

#endif
