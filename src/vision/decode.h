/* Turning raw model outputs into detections, masks and landmarks in image pixels.
 *
 *   sh_detections *dets = sh_detections_create(alloc);
 *   sh_decode_params dp = sh_decode_default_params();
 *   sh_ftensor out = {data, 3, {1, 3549, 85}};
 *   if (sh_decode_yolox(&out, &xf, &dp, dets, &err) == 0)
 *       for (size_t i = 0; i < dets->count; i++) ...dets->items[i]...
 *   sh_detections_destroy(dets);
 *
 * Boxes come back as x1,y1,x2,y2 in pixels of the original image (through the sh_transform
 * the preprocessing returned), clipped to [0, width] x [0, height], sorted by score
 * (descending; equal scores keep anchor order). A decoder replaces what `dets` held before,
 * so one results object can serve frame after frame without reallocating. */
#ifndef SHOAL_VISION_DECODE_H
#define SHOAL_VISION_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"
#include "vision/preprocess.h"

/* A read-only float tensor handed to a decoder (row-major, batch 1). */
typedef struct sh_ftensor {
    const float *data;
    int ndim;
    int64_t shape[4];
} sh_ftensor;

/* An instance mask, encoded compactly.
 * Pixels outside the box [x, x+width) x [y, y+height) (original image pixels) are 0.
 * Inside it, `runs` lists run lengths over the box in row-major order, alternating
 * background and foreground and always starting with background (so runs[0] may be 0):
 * sum(runs) == width * height and sum(runs[1], runs[3], ...) == area. */
typedef struct sh_mask {
    int x, y, width, height;
    uint32_t *runs;
    size_t n_runs;
    size_t area;            /* foreground pixels */
} sh_mask;

typedef struct sh_detection {
    int class_id;
    float score;
    float x1, y1, x2, y2;   /* original image pixels, clipped */
    int anchor;             /* index of the anchor it came from */
    sh_mask *mask;          /* NULL unless decoded by a segmentation decoder */
} sh_detection;

/* Owns its arrays and masks. Create with sh_detections_create, free with
 * sh_detections_destroy. `count` entries of `items` are valid. */
typedef struct sh_detections {
    sh_allocator *alloc;
    sh_detection *items;
    size_t count, capacity;
    int image_w, image_h;   /* size of the image the boxes refer to */
    int masks_left_out;     /* segmentation through the frame ops: detections whose mask found no
                               room in the mask pool (they have none; vision/frame.h) */
} sh_detections;

sh_detections *sh_detections_create(sh_allocator *a);
void sh_detections_destroy(sh_detections *d);     /* accepts NULL */
void sh_detections_clear(sh_detections *d);       /* keeps the capacity, frees masks */

typedef struct sh_decode_params {
    float score_threshold;   /* keep score >= this (0.25) */
    float iou_threshold;     /* NMS suppresses IoU > this (0.45) */
    int agnostic;            /* 1: NMS across classes; 0: per class (default) */
    int max_detections;      /* after NMS (300) */
    int top_k;               /* best candidates kept before NMS, 0 = all (3000) */
    float mask_threshold;    /* sigmoid mask probability threshold (0.5) */
} sh_decode_params;

sh_decode_params sh_decode_default_params(void);

/* YOLOv8/YOLO11 detect: `out` [1, 4+nc, N], channel-major (cx, cy, w, h rows, then nc
 * class scores already through a sigmoid). `nc` is taken from the shape. */
int sh_decode_yolov8(const sh_ftensor *out, const sh_transform *xf, const sh_decode_params *p,
                     sh_detections *dets, sh_err *err);

/* YOLOv8/YOLO11 segment: `out` [1, 4+nc+nm, N], `protos` [1, nm, Hp, Wp]. Each kept
 * detection gets a mask: sigmoid(coeffs . protos) at proto resolution, zero outside the box,
 * bilinear up to the model input, letterbox removed, bilinear to the image size,
 * > mask_threshold, restricted to the box. */
int sh_decode_yolov8_seg(const sh_ftensor *out, const sh_ftensor *protos, const sh_transform *xf,
                         const sh_decode_params *p, sh_detections *dets, sh_err *err);

/* YOLOX: `out` [1, N, 5+nc], undecoded, for strides 8, 16, 32 over the model input of xf
 * (N = sum (W/s)*(H/s), row-major grids): cx = (x+gx)*s, w = exp(w)*s, score = obj*cls. */
int sh_decode_yolox(const sh_ftensor *out, const sh_transform *xf, const sh_decode_params *p,
                    sh_detections *dets, sh_err *err);

/* NMS-free heads (YOLOv10, end-to-end exports): `out` [1, max_det, 6], rows x1 y1 x2 y2 in
 * model-input pixels, score, class id. Rows with score >= threshold are kept as they are (no
 * NMS: the head already suppressed duplicates), mapped to the image, clipped, capped at
 * max_detections. A class id that is not an integer in [0, n_classes) (n_classes <= 0: any
 * id below 2^20) is SHOAL_ERR_SHAPE. */
int sh_decode_end2end(const sh_ftensor *out, int n_classes, const sh_transform *xf, const sh_decode_params *p,
                      sh_detections *dets, sh_err *err);
/* A segmenting NMS-free head: `out` [1, max_det, 6 + nm] (the rows above, then nm mask
 * coefficients), `protos` [1, nm, Hp, Wp]; each kept detection gets its mask as
 * sh_decode_yolov8_seg makes them. */
int sh_decode_end2end_seg(const sh_ftensor *out, const sh_ftensor *protos, int n_classes, const sh_transform *xf,
                          const sh_decode_params *p, sh_detections *dets, sh_err *err);

/* Greedy NMS. Candidates are visited by score descending, equal scores by index
 * ascending; a candidate is dropped when its IoU with a kept box of the same class (any
 * class when `agnostic`) is > iou_threshold. boxes: n x 4 (x1,y1,x2,y2). Writes at most
 * max_keep indices to keep[] in visiting order, and their number to *n_keep. */
int sh_nms(sh_allocator *a, const float *boxes, const float *scores, const int *classes, size_t n,
           float iou_threshold, int agnostic, size_t max_keep, size_t *keep, size_t *n_keep, sh_err *err);

float sh_box_iou(const float *a, const float *b);

/* Masks: 1 at (x, y) of the image when the mask covers it. */
int sh_mask_at(const sh_mask *m, int x, int y);
/* Expands into a full image_w x image_h plane: sets pixels the mask covers to `value`. */
void sh_mask_paint(const sh_mask *m, uint8_t *plane, int image_w, int image_h, uint8_t value);

/* Hand landmark regressor output. */
#define SH_HAND_POINTS 21
typedef struct sh_hand_landmarks {
    float x[SH_HAND_POINTS], y[SH_HAND_POINTS], z[SH_HAND_POINTS]; /* image pixels; z in the same scale */
    float presence;          /* probability a hand is there */
    float handedness;        /* probability of a right hand */
} sh_hand_landmarks;

typedef struct sh_landmark_params {
    int logits;              /* 1: presence/handedness are logits, apply a sigmoid (MediaPipe) */
} sh_landmark_params;

/* `out` holds 65 floats (any shape with 65 elements: [1,65], [65]): 21 x (x, y, z) in
 * model-input pixels, presence, handedness. Mapped to image pixels through xf. */
int sh_decode_hand_landmarks(const sh_ftensor *out, const sh_transform *xf, const sh_landmark_params *p,
                             sh_hand_landmarks *hand, sh_err *err);

/* Hand skeleton: SH_HAND_EDGES pairs of landmark indices. */
#define SH_HAND_EDGES 21
extern const uint8_t sh_hand_edges[SH_HAND_EDGES][2];

#endif
