/* Private to src/vision: pieces the box decoders share. */
#ifndef SHOAL_VISION_DECODE_IMPL_H
#define SHOAL_VISION_DECODE_IMPL_H

#include "vision/decode.h"
#include "vision/frame.h"

/* Candidates of one frame in model-input coordinates, one allocation. */
typedef struct sh_candidates {
    float *boxes;      /* n x 4: x1, y1, x2, y2 */
    float *scores;
    int *classes;
    int *anchors;
    size_t n;
    void *block;
    size_t cap;        /* a view (sh_candidates_view): caller-owned arrays of cap entries */
} sh_candidates;

/* Makes room for n candidates: within a view's arrays (SHOAL_ERR_SHAPE past its cap), else
 * in one allocation; c must be zeroed or a view. */
int sh_candidates_alloc(sh_allocator *a, size_t n, sh_candidates *c, sh_err *err);
/* Candidates written straight into caller-owned arrays of cap entries (a graph op's outputs). */
void sh_candidates_view(sh_candidates *c, float *boxes, float *scores, int *classes, int *anchors, size_t cap);
void sh_candidates_free(sh_allocator *a, sh_candidates *c);

/* Appends one detection to `d`, growing its array. */
int sh_detections_push(sh_detections *d, const sh_detection *det, sh_err *err);

/* The shared tail: rank, top-k, NMS, max detections, map to the image and clip.
 * Clears `d` first. */
int sh_detections_finish(sh_detections *d, const sh_transform *xf, const sh_decode_params *p,
                         const sh_candidates *c, sh_err *err);

/* The shared tail's selection: candidates ranked by score (desc, index asc), the first top_k,
 * greedy NMS; at most max_keep indices into c written to keep[] in rank order. The ranking's
 * scratch is ws (sh_candidates_select_ws(c->n) bytes), or allocated from a when ws is NULL. */
int sh_candidates_select(sh_allocator *a, void *ws, const sh_decode_params *p, const sh_candidates *c,
                         size_t max_keep, size_t *keep, size_t *n_keep, sh_err *err);
size_t sh_candidates_select_ws(size_t n);
/* Most detections the tail can keep out of n candidates under p (top_k, max_detections). */
size_t sh_decode_max_keep(const sh_decode_params *p, size_t n);
/* A model-input box mapped to the image through xf and clipped to the transform's region. */
void sh_box_to_image(const sh_transform *xf, const float model_box[4], float image_box[4]);

/* Validates params and transform common to all decoders. */
int sh_decode_check(const sh_transform *xf, const sh_decode_params *p, sh_detections *d, const char *who,
                    sh_err *err);

/* Channels a YOLOv8 output may have (4 + classes + mask coefficients). */
#define SH_YOLO_MAX_CHANNELS 65536

/* The anchor columns of a YOLOv8 output [C, N] a decoder reads: the whole tensor (column j
 * at full + j, its values N floats apart), or held columns (end2end.c's kept rows), sorted by
 * anchor, each column's values contiguous. */
typedef struct sh_yolo_held {
    int32_t anchor;
    const float *values;     /* C floats */
} sh_yolo_held;

typedef struct sh_yolo_cols {
    int64_t channels, n_anchors;
    const float *full;       /* the whole output, or NULL */
    sh_yolo_held *held;      /* held: [n_held], anchors ascending (owned) */
    size_t n_held;
} sh_yolo_cols;

/* The whole output t ([1, C, N] or [C, N]); nothing to free. */
int sh_yolo_cols_full(const sh_ftensor *t, const char *who, sh_yolo_cols *src, sh_err *err);
void sh_yolo_cols_free(sh_allocator *a, sh_yolo_cols *src);
/* Column of `anchor` and the distance between its values; NULL when src does not hold it. */
const float *sh_yolo_column(const sh_yolo_cols *src, int anchor, size_t *stride);
/* A mask for each of dets' detections from the coefficients in its anchor's column of src
 * (after the box and nc scores) and protos [1, nm, Hp, Wp] (segment.c); on failure dets is
 * cleared. */
int sh_yolo_seg_masks(const sh_ftensor *protos, const sh_yolo_cols *src, int nc, const sh_transform *xf, float thr,
                      sh_detections *dets, sh_err *err);
/* The box of a column (cx, cy, w, h values `stride` apart) as x1, y1, x2, y2. */
void sh_yolo_box(const float *col, size_t stride, float box[4]);

/* Candidates over the nc score rows after the box: anchors whose best class score is >=
 * threshold, in anchor order. The class scan's scratch is ws (sh_yolov8_candidates_ws of the
 * anchors), or allocated from a when ws is NULL. */
int sh_yolov8_candidates(sh_allocator *a, void *ws, const sh_yolo_cols *src, int nc, float threshold,
                         sh_candidates *c, sh_err *err);
size_t sh_yolov8_candidates_ws(int64_t n_anchors);

/* YOLOX candidates of an undecoded [1, N, 5+nc] output for an in_w x in_h model input
 * (strides 8, 16, 32): score = obj * best class >= thr, boxes decoded, in anchor order. */
int sh_yolox_candidates(sh_allocator *a, const sh_ftensor *out, int in_w, int in_h, float thr, sh_candidates *c,
                        sh_err *err);

/* yolov8-seg masks of n detections (image boxes and anchors; their `mask` is not touched)
 * bit-packed into the frame op layout (vision/frame.h): boxes [n, SH_FRAME_MASK_BOX_WORDS], the
 * masks in a pool of pool_bytes. Scratch: bounds->slots slots of sh_frame_mask_slot_bytes(bounds)
 * at ws, or grown from a when ws is NULL (bounds unused then). */
int sh_seg_masks_packed(sh_allocator *a, void *ws, const sh_frame_mask_bounds *bounds, const sh_ftensor *out,
                        const sh_ftensor *protos, const sh_transform *xf, float thr, sh_detection *items, int n,
                        int32_t *boxes, uint8_t *pool, size_t pool_bytes, sh_err *err);
/* A bit-packed mask (box: x, y, width, height, area) at bits, with room bytes readable there,
 * run-length coded as sh_mask; free with the detections it is handed to. */
int sh_mask_from_bits(sh_allocator *a, const int32_t box[SH_FRAME_MASK_BOX_WORDS], const uint8_t *bits, size_t room,
                      sh_mask **out, sh_err *err);

#endif
