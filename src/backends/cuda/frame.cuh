/* The frame ops on the device (graph.h SH_OP_LIST_FRAME, tensors in vision/frame.h): launchers
 * callable from C (conventions in ktypes.h). Each reproduces the CPU kernel's semantics (the
 * host pipeline in src/vision) on the device, with every count kept on the device and every
 * buffer of a fixed size, so a run needs no host synchronisation and is captured whole.
 * The tensors read from the network (the head, the prototypes, the regressor output) are fp16
 * or fp32 (`*_f32`); the frame ops' own tensors keep their graph dtype (cuda_frame.c). */
#ifndef SHOAL_CUDA_FRAME_CUH
#define SHOAL_CUDA_FRAME_CUH

#include <stddef.h>

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FrameToTensor: frame u8 + size i32[2] -> model input [3, height, width] and the transform. */
typedef struct sh_k_frame_pre_p {
    float lut[3][256];        /* sh_preprocess_lut: value of byte v in output channel c */
    int width, height;        /* model input */
    int stretch;              /* SH_RESIZE_STRETCH, else letterbox */
    int top_left;             /* SH_PLACE_TOP_LEFT, else centred */
    int out_bgr;              /* output planes B, G, R */
    int frame_bgr;            /* the frame's bytes are B, G, R */
    int pad_value;
    int max_side;             /* SH_IMAGE_MAX_SIDE */
    long long max_pixels;     /* min(SH_IMAGE_MAX_PIXELS, frame bytes / 3) */
    int out_f32;              /* model input stored fp32 (what cuda_frame.c chooses), else fp16 */
} sh_k_frame_pre_p;

/* A frame whose size is out of range leaves `out` as it was and writes an all-zero transform,
 * which every later frame op and sh_frame_results refuse: the device cannot return a status
 * without a synchronisation, so the error travels with the results. */
cudaError_t sh_k_frame_to_tensor(void *out, float *xf, const uint8_t *frame, const int32_t *size,
                                 const sh_k_frame_pre_p *p, cudaStream_t s);

/* FrameDecode: candidates in anchor order (score >= thresh), compacted on the device. */
typedef struct sh_k_frame_decode_p {
    int yolox;                /* [n, channels] YOLOX rows, else YOLOv8 [channels, n] */
    int n, channels, n_cls;
    int in_w, in_h;           /* YOLOX grids (strides 8, 16, 32) */
    float thresh;
    int head_f32;
} sh_k_frame_decode_p;

size_t sh_k_frame_decode_ws(int n);
cudaError_t sh_k_frame_decode(float *boxes, float *scores, int32_t *ids, int32_t *count, const void *head, void *ws,
                              const sh_k_frame_decode_p *p, cudaStream_t s);

/* FrameNms: rank (score desc, index asc), the first `rows` (top_k), greedy NMS, at most
 * out_cap kept, boxes mapped to the image. A count outside 0..cap or a transform the host would
 * refuse (FrameToTensor's all-zero one) gives 0 detections. */
typedef struct sh_k_frame_nms_p {
    int cap;                  /* candidate slots */
    int rows;                 /* min(cap, top_k > 0 ? top_k : cap): rows of the IoU bitmask */
    int out_cap;              /* max_detections */
    int agnostic;
    float iou;
    int max_side;             /* SH_IMAGE_MAX_SIDE, for the transform check */
    size_t sort_bytes;        /* set by sh_k_frame_nms_ws */
} sh_k_frame_nms_p;

/* Workspace bytes of sh_k_frame_nms for p (fills p->sort_bytes; asks CUB, no device work). */
cudaError_t sh_k_frame_nms_ws(sh_k_frame_nms_p *p, size_t *bytes);
cudaError_t sh_k_frame_nms(float *out_boxes, float *out_scores, int32_t *out_ids, int32_t *out_count,
                           const float *boxes, const float *scores, const int32_t *ids, const int32_t *count,
                           const float *xf, void *ws, const sh_k_frame_nms_p *p, cudaStream_t s);

/* FrameMasks: one bit-packed mask per detection (segment.c's composition) at its place in the
 * pool (vision/frame.h: rank order, -1 past the pool); nothing is written for a bad count or
 * transform, and no bits for a detection whose anchor is not in the head. */
typedef struct sh_k_frame_masks_p {
    int n, channels, n_cls;   /* head [channels, n]: box, classes, then nm coefficients */
    int nm, mh, mw;           /* prototypes [nm, mh, mw] */
    int cap;                  /* detection slots */
    long long pool;           /* bytes of the mask pool */
    float thresh;
    int max_side;
    int head_f32, protos_f32;
} sh_k_frame_masks_p;

size_t sh_k_frame_masks_ws(const sh_k_frame_masks_p *p);
cudaError_t sh_k_frame_masks(int32_t *mask_boxes, uint8_t *pool, const void *head, const void *protos,
                             const float *boxes, const int32_t *ids, const int32_t *count, const float *xf, void *ws,
                             const sh_k_frame_masks_p *p, cudaStream_t s);

/* FrameLandmarks: 65 regressor values mapped to the image; NaN everywhere on a bad transform. */
typedef struct sh_k_frame_landmarks_p {
    int logits;
    int in_f32;
    int max_side;
} sh_k_frame_landmarks_p;

cudaError_t sh_k_frame_landmarks(float *out, const void *in, const float *xf, const sh_k_frame_landmarks_p *p,
                                 cudaStream_t s);

/* FrameCrop: frame u8 + size i32[2] + rect f32[6] (vision/hands.h sh_hand_crop_words) ->
 * fp32 NHWC [height, width, 3], sh_hand_crop_at's samples bit for bit. A frame whose size is
 * out of range gives an all-NaN crop (the host kernel's error, carried by the data). */
typedef struct sh_k_frame_crop_p {
    int width, height;        /* crop */
    int zero_border;          /* else the nearest edge pixel */
    int max_side;             /* SH_IMAGE_MAX_SIDE */
    long long max_pixels;     /* frame bytes / 3 */
} sh_k_frame_crop_p;

cudaError_t sh_k_frame_crop(float *out, const uint8_t *frame, const int32_t *size, const float *rect,
                            const sh_k_frame_crop_p *p, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
