/* MediaPipe's hand pipeline, the geometry and decoding between its two models (the legacy
 * Hands solution that npm @mediapipe/hands runs, parameters from its graphs):
 *
 *   image -> sh_hand_crop(whole image, letterboxed square, zero border) -> palm model
 *         -> sh_palm_decode (SSD anchors, box + 7 keypoints, sigmoid score, weighted NMS,
 *            letterbox removed) -> palms in image coordinates
 *         -> sh_hand_rect_from_palm (rotation from wrist -> middle-finger MCP, scaled 2.6,
 *            shifted -0.5 along the hand, square)  -> rotated ROI
 *         -> sh_hand_crop(ROI, replicate border) -> landmark model
 *         -> sh_hand_landmarks_project (21 points back to image pixels), presence, handedness
 *         -> sh_hand_rect_from_landmarks (scaled 2.0, shifted -0.1): next frame's ROI.
 *
 * Coordinates: palms and rects are normalized to the image (x / width, y / height) as in
 * MediaPipe; landmarks come out in image pixels. A rect's rotation is in radians, clockwise on
 * screen (y points down), as MediaPipe's NormalizedRect. Nothing here allocates. */
#ifndef SHOAL_VISION_HANDS_H
#define SHOAL_VISION_HANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "vision/image.h"

#define SH_PALM_KEYPOINTS 7
#define SH_HAND_LANDMARKS 21
#define SH_PALM_MAX_ANCHORS 4096

typedef struct sh_palm_params {
    int input_size;              /* square model input, 192 */
    int n_layers;                /* SSD layers, 4 */
    int strides[8];              /* 8, 16, 16, 16 */
    int anchors_per_cell;        /* per layer: aspect ratio 1 + the interpolated one = 2 */
    float coord_scale;           /* raw box and keypoint values are model pixels: 192 */
    float score_clip;            /* logits clipped to +-100 before the sigmoid */
    float min_score;             /* 0.5 */
    float nms_iou;               /* weighted NMS merges boxes above this IoU: 0.3 */
} sh_palm_params;

sh_palm_params sh_palm_default_params(void);

typedef struct sh_palm {
    float score;
    float xmin, ymin, width, height;            /* normalized to the image */
    float kp[SH_PALM_KEYPOINTS][2];             /* normalized; 0 wrist centre, 2 middle-finger MCP */
} sh_palm;

typedef struct sh_hand_rect {
    float x_center, y_center, width, height;    /* normalized to the image */
    float rotation;                             /* radians */
} sh_hand_rect;

/* Anchor centres (x, y pairs, normalized to the model input) in the model's output order.
 * Returns the count, or a negative status when `cap` anchors are too few. */
int sh_palm_anchors(const sh_palm_params *p, float *xy, int cap, sh_err *err);

/* The square region the palm model sees: the whole image centred in a square on its long side
 * (MediaPipe's keep_aspect_ratio letterbox). */
sh_hand_rect sh_palm_input_rect(int image_w, int image_h);

/* Decodes the palm model's outputs (`boxes`: n_anchors x 18, `logits`: n_anchors) into at
 * most `cap` palms, best first, for an image_w x image_h image that was fed through
 * sh_palm_input_rect. `scratch` holds 3 * n_anchors floats + n_anchors ints' worth of bytes
 * (sh_palm_scratch_bytes). Returns the number of palms or a negative status. */
size_t sh_palm_scratch_bytes(int n_anchors);
int sh_palm_decode(const sh_palm_params *p, const float *boxes, const float *logits, const float *anchors,
                   int n_anchors, int image_w, int image_h, void *scratch, size_t scratch_bytes, sh_palm *out,
                   int cap, sh_err *err);

/* Intersection over union of two palms' boxes (0 when either is empty). */
float sh_palm_iou(const sh_palm *a, const sh_palm *b);

/* The landmark model's ROI for a palm (DetectionsToRects + RectTransformation). */
sh_hand_rect sh_hand_rect_from_palm(const sh_palm *palm, int image_w, int image_h);

/* A rect as the crop reads it (the frame op FrameCrop's per-frame input): x_center, y_center,
 * width, height (normalized to the image) and the cosine and sine of the rotation. The host
 * takes the sine and cosine once, so every backend samples at the same points. */
#define SH_HAND_CROP_WORDS 6
void sh_hand_crop_words(const sh_hand_rect *r, float words[SH_HAND_CROP_WORDS]);

/* Samples the rotated rect `r` of `img` into a out_w x out_h float RGB picture in [0, 1],
 * NHWC (out has 3 * out_w * out_h floats): output pixel (u, v) reads the image at
 * centre + R(rotation) * ((u / out_w - 0.5) * width, (v / out_h - 0.5) * height) in pixels,
 * bilinear, as MediaPipe's warpPerspective from the rect's corners. Outside the image:
 * zero when `zero_border`, else the nearest edge pixel. sh_hand_crop_at takes the rect as
 * sh_hand_crop_words made it; the device kernel (cuda frame.cu) repeats its arithmetic
 * operation for operation. */
void sh_hand_crop(const sh_image *img, const sh_hand_rect *r, int out_w, int out_h, bool zero_border, float *out);
void sh_hand_crop_at(const sh_image *img, const float words[SH_HAND_CROP_WORDS], int out_w, int out_h,
                     bool zero_border, float *out);

/* Maps the landmark model's raw output (21 x (x, y, z) in input pixels of an in_w x in_h
 * model) through the rect back to image pixels; z is scaled like MediaPipe (/in_w, /0.4,
 * times the rect's width in pixels) so it shares x's unit. */
void sh_hand_landmarks_project(const float *raw, int in_w, int in_h, const sh_hand_rect *r, int image_w,
                               int image_h, float out[SH_HAND_LANDMARKS][3]);

/* The next frame's ROI from this frame's landmarks (image pixels): HandLandmarksToRect +
 * RectTransformation (scale 2, shift -0.1, square). */
sh_hand_rect sh_hand_rect_from_landmarks(const float lm[SH_HAND_LANDMARKS][3], int image_w, int image_h);

/* IoU of two rects' axis-aligned extents, rotation ignored (MediaPipe's AssociationNormRect). */
float sh_hand_rect_iou(const sh_hand_rect *a, const sh_hand_rect *b);

#endif
