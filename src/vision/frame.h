/* The frame graph ops' semantics on plain buffers: what the CPU backend's kernels run and what
 * every other backend's kernels must reproduce. Each function is the host pipeline's own code
 * (preprocess.c, yolo.c, yolox.c, nms.c, segment.c) writing into the fixed-size tensors of a
 * graph instead of growing an sh_detections, so the two give the same results bit for bit.
 *
 *   frame u8 [capacity] + size i32 [2]  --shoal.FrameToTensor-->  input f32 [1,3,H,W], xf f32 [12]
 *   head                                --shoal.FrameDecode-->    candidates (boxes, scores, ids, count)
 *   candidates + xf                     --shoal.FrameNms-->       detections (boxes, scores, ids, count)
 *   head + protos + detections + xf     --shoal.FrameMasks-->     mask boxes i32 [M,6], pool u8 [P]
 *   hand regressor output + xf          --shoal.FrameLandmarks--> landmarks f32 [65]
 *
 * Tensor layouts (capacity K: the head's anchors for candidates, max_detections for detections):
 *   boxes  f32 [K, 4]  x1, y1, x2, y2 (candidates: model-input pixels; detections: image pixels, clipped)
 *   scores f32 [K]
 *   ids    i32 [2, K]  row 0: class, row 1: anchor
 *   count  i32 [1]     entries in use, the first ones; the rest is left as it was
 *   xf     f32 [12]    sh_transform (sh_transform_pack), the frame's size and letterbox
 *   mask boxes i32 [M, 6]  x, y, width, height (image pixels, the sh_mask box), foreground area,
 *                          byte offset of the mask in the pool, or -1: no room left (no mask)
 *   mask pool  u8 [P]      each mask ceil(width * height / 8) bytes at its offset, the box's
 *                          pixels row-major, pixel k at bit (k & 7) of byte k >> 3; masks are
 *                          placed in detection (rank) order, each right after the last one
 *                          that fitted, so the bytes in use end with the last placed mask
 *
 * A mask lies inside its box and the box inside the frame, but boxes of different classes (or
 * IoU under the NMS threshold) overlap freely, so the only bound on the masks of one frame
 * is max_detections frames; P is a configured number of frames' worth (sh_frame_mask_pool)
 * and the masks past it are left out, which the results report (sh_detections.masks_left_out).
 *   landmarks  f32 [65]  21 x (x, y, z) in image pixels, presence, handedness (sh_hand_landmarks) */
#ifndef SHOAL_VISION_FRAME_H
#define SHOAL_VISION_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "vision/decode.h"
#include "vision/image.h"
#include "vision/preprocess.h"

#define SH_FRAME_XF_WORDS 12
#define SH_FRAME_MASK_BOX_WORDS 6
#define SH_FRAME_LANDMARK_WORDS (3 * SH_HAND_POINTS + 2)

void sh_transform_pack(const sh_transform *xf, float words[SH_FRAME_XF_WORDS]);
/* SHOAL_ERR_INVALID_ARG when the words are not a transform sh_transform_compute could make. */
int sh_transform_unpack(const float words[SH_FRAME_XF_WORDS], sh_transform *xf, sh_err *err);

/* Bytes of a mask pool holding `frames` frames' worth of masks (a frame: ceil(max_pixels / 8)
 * bytes), no more than max_detections of them (which hold any frame's masks); 0 when
 * max_pixels is not in 1..SH_IMAGE_MAX_PIXELS, frames or max_detections < 1, or the pool
 * would pass INT32_MAX bytes (the offsets are int32). */
size_t sh_frame_mask_pool(int64_t max_pixels, int64_t frames, int64_t max_detections);

/* Every function below takes its scratch from `ws` when it is not NULL (at least the bytes
 * its *_ws function gives for the same arguments: a graph op's planned workspace) and then
 * allocates nothing; with ws NULL it allocates from `a`. */

/* Whether a frame of size[0] x size[1] pixels fits a frame input of `capacity` bytes (and the
 * image limits); the error names both. */
int sh_frame_size_check(const int32_t size[2], size_t capacity, sh_err *err);

/* FrameToTensor: the first width * height * 3 of `capacity` bytes at `pixels` (size = {width,
 * height}) letterboxed as sh_preprocess does, into 3 * p->height * p->width floats. */
size_t sh_frame_to_tensor_ws(const sh_preprocess_params *p, size_t capacity, sh_pixel_format format);
int sh_frame_to_tensor(sh_allocator *a, void *ws, const uint8_t *pixels, size_t capacity, const int32_t size[2],
                       sh_pixel_format format, const sh_preprocess_params *p, float *out,
                       float xf[SH_FRAME_XF_WORDS], sh_err *err);

typedef enum sh_frame_decoder {
    SH_FRAME_DECODER_YOLOV8 = 0,   /* [1, 4+nc(+nm), N], channel-major; nc = n_classes */
    SH_FRAME_DECODER_YOLOX = 1     /* [1, N, 5+nc], undecoded, strides 8/16/32 of in_w x in_h */
} sh_frame_decoder;

/* Candidates slots a head gives (its anchors), or -1 when its shape fits no decoder. */
int64_t sh_frame_anchors(sh_frame_decoder d, const sh_ftensor *head);

/* YoloDecode: the candidates the host decoders make (score >= thr, anchor order) into
 * capacity `cap` (>= the head's anchors). */
size_t sh_frame_decode_ws(sh_frame_decoder d, int64_t anchors);
int sh_frame_decode(sh_allocator *a, void *ws, sh_frame_decoder d, const sh_ftensor *head, int n_classes, int in_w,
                    int in_h, float thr, size_t cap, float *boxes, float *scores, int32_t *ids, int32_t *count,
                    sh_err *err);

/* Nms: rank, top_k, NMS and max_detections of p (iou_threshold, agnostic, top_k,
 * max_detections > 0 = out_cap), boxes mapped to the image through xf. */
size_t sh_frame_nms_ws(size_t cap, size_t out_cap);
int sh_frame_nms(sh_allocator *a, void *ws, const sh_decode_params *p, const float *boxes, const float *scores,
                 const int32_t *ids, size_t cap, const int32_t *count, const float xf[SH_FRAME_XF_WORDS],
                 size_t out_cap, float *out_boxes, float *out_scores, int32_t *out_ids, int32_t *out_count,
                 sh_err *err);

/* What FrameMasks' scratch is sized for: one slot per thread that builds masks at once. */
typedef struct sh_frame_mask_bounds {
    int mh, mw;       /* prototypes [1, nm, mh, mw] */
    int up_w;         /* the model input's width (the widest resized picture) */
    int max_w;        /* the widest frame: min(SH_IMAGE_MAX_SIDE, max_pixels) */
    int slots;        /* threads */
} sh_frame_mask_bounds;

/* One thread's slot (SIZE_MAX for bounds out of range). */
size_t sh_frame_mask_slot_bytes(const sh_frame_mask_bounds *b);

/* SegMasks: the mask of each detection (sh_decode_yolov8_seg's), bit-packed into the pool of
 * pool_bytes; masks that find no room there get offset -1. bounds: what ws was sized for. */
size_t sh_frame_masks_ws(const sh_frame_mask_bounds *b, size_t cap);
int sh_frame_masks(sh_allocator *a, void *ws, const sh_frame_mask_bounds *b, const sh_ftensor *head,
                   const sh_ftensor *protos, const float *boxes, const int32_t *ids, size_t cap, const int32_t *count,
                   const float xf[SH_FRAME_XF_WORDS], float mask_threshold, int32_t *mask_boxes, uint8_t *pool,
                   size_t pool_bytes, sh_err *err);

/* FrameLandmarks: sh_decode_hand_landmarks of `out` (65 values) into the layout above. */
int sh_frame_landmarks(const float *out, const float xf[SH_FRAME_XF_WORDS], int logits,
                       float landmarks[SH_FRAME_LANDMARK_WORDS], sh_err *err);

/* The graph's results as the host decoders' sh_detections (scores of the detections above;
 * mask_boxes NULL: no masks), replacing what `d` held; pool_bytes: the pool's bytes at `pool`
 * (those in use suffice: sh_frame_mask_pool_used). A detection whose mask found no room has
 * none, counted in d->masks_left_out. pool NULL: the masks are left to sh_frame_result_mask. */
int sh_frame_results(const float *boxes, const float *scores, const int32_t *ids, size_t cap, const int32_t *count,
                     const float xf[SH_FRAME_XF_WORDS], const int32_t *mask_boxes, const uint8_t *pool,
                     size_t pool_bytes, sh_detections *d, sh_err *err);

/* Detection i's mask from the pool (*out NULL when it found no room); distinct detections
 * may be read at the same time. */
int sh_frame_result_mask(sh_allocator *a, const int32_t *mask_boxes, size_t i, const uint8_t *pool, size_t pool_bytes,
                         sh_mask **out, sh_err *err);
/* Bytes of the pool the first n masks use (where the last placed one ends); 0 for mask boxes
 * no FrameMasks wrote (a bad offset or size). */
size_t sh_frame_mask_pool_used(const int32_t *mask_boxes, size_t n);

#endif
