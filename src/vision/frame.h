/* The frame graph ops' semantics on plain buffers: what the CPU backend's kernels run and what
 * every other backend's kernels must reproduce. Each function is the host pipeline's own code
 * (preprocess.c, yolo.c, yolox.c, nms.c, segment.c) writing into the fixed-size tensors of a
 * graph instead of growing an sh_detections, so the two give the same results bit for bit.
 *
 *   frame u8 [capacity] + size i32 [2]  --shoal.FrameToTensor-->  input f32 [1,3,H,W], xf f32 [12]
 *   head                                --shoal.FrameDecode-->    candidates (boxes, scores, ids, count)
 *   candidates + xf                     --shoal.FrameNms-->       detections (boxes, scores, ids, count)
 *   head + protos + detections + xf     --shoal.FrameMasks-->     mask boxes i32 [M,5], bits u8 [M,slot]
 *   hand regressor output + xf          --shoal.FrameLandmarks--> landmarks f32 [65]
 *
 * Tensor layouts (capacity K: the head's anchors for candidates, max_detections for detections):
 *   boxes  f32 [K, 4]  x1, y1, x2, y2 (candidates: model-input pixels; detections: image pixels, clipped)
 *   scores f32 [K]
 *   ids    i32 [2, K]  row 0: class, row 1: anchor
 *   count  i32 [1]     entries in use, the first ones; the rest is left as it was
 *   xf     f32 [12]    sh_transform (sh_transform_pack), the frame's size and letterbox
 *   mask boxes i32 [M, 5]  x, y, width, height (image pixels, the sh_mask box), foreground area
 *   mask bits  u8 [M, slot]  the box's pixels row-major, pixel k at bit (k & 7) of byte k >> 3
 *   landmarks  f32 [65]  21 x (x, y, z) in image pixels, presence, handedness (sh_hand_landmarks) */
#ifndef SHOAL_VISION_FRAME_H
#define SHOAL_VISION_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "vision/decode.h"
#include "vision/image.h"
#include "vision/preprocess.h"

#define SH_FRAME_XF_WORDS 12
#define SH_FRAME_MASK_BOX_WORDS 5
#define SH_FRAME_LANDMARK_WORDS (3 * SH_HAND_POINTS + 2)

void sh_transform_pack(const sh_transform *xf, float words[SH_FRAME_XF_WORDS]);
/* SHOAL_ERR_INVALID_ARG when the words are not a transform sh_transform_compute could make. */
int sh_transform_unpack(const float words[SH_FRAME_XF_WORDS], sh_transform *xf, sh_err *err);

/* Bytes of one mask slot for frames of at most max_pixels pixels (0 when max_pixels is not in
 * 1..SH_IMAGE_MAX_PIXELS). */
size_t sh_frame_mask_slot(int64_t max_pixels);

/* FrameToTensor: the first width * height * 3 of `capacity` bytes at `pixels` (size = {width,
 * height}) letterboxed as sh_preprocess does, into 3 * p->height * p->width floats. */
int sh_frame_to_tensor(sh_allocator *a, const uint8_t *pixels, size_t capacity, const int32_t size[2],
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
int sh_frame_decode(sh_allocator *a, sh_frame_decoder d, const sh_ftensor *head, int n_classes, int in_w, int in_h,
                    float thr, size_t cap, float *boxes, float *scores, int32_t *ids, int32_t *count, sh_err *err);

/* Nms: rank, top_k, NMS and max_detections of p (iou_threshold, agnostic, top_k,
 * max_detections > 0 = out_cap), boxes mapped to the image through xf. */
int sh_frame_nms(sh_allocator *a, const sh_decode_params *p, const float *boxes, const float *scores,
                 const int32_t *ids, size_t cap, const int32_t *count, const float xf[SH_FRAME_XF_WORDS],
                 size_t out_cap, float *out_boxes, float *out_scores, int32_t *out_ids, int32_t *out_count,
                 sh_err *err);

/* SegMasks: the mask of each detection (sh_decode_yolov8_seg's), bit-packed. */
int sh_frame_masks(sh_allocator *a, const sh_ftensor *head, const sh_ftensor *protos, const float *boxes,
                   const int32_t *ids, size_t cap, const int32_t *count, const float xf[SH_FRAME_XF_WORDS],
                   float mask_threshold, int32_t *mask_boxes, uint8_t *bits, size_t slot, sh_err *err);

/* FrameLandmarks: sh_decode_hand_landmarks of `out` (65 values) into the layout above. */
int sh_frame_landmarks(const float *out, const float xf[SH_FRAME_XF_WORDS], int logits,
                       float landmarks[SH_FRAME_LANDMARK_WORDS], sh_err *err);

/* The graph's results as the host decoders' sh_detections (scores of the detections above;
 * mask_boxes NULL: no masks), replacing what `d` held. */
int sh_frame_results(const float *boxes, const float *scores, const int32_t *ids, size_t cap, const int32_t *count,
                     const float xf[SH_FRAME_XF_WORDS], const int32_t *mask_boxes, const uint8_t *bits, size_t slot,
                     sh_detections *d, sh_err *err);

#endif
