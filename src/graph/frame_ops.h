/* A model's graph extended with the frame ops (graph.h SH_OP_LIST_FRAME; their tensors are
 * described in vision/frame.h): the caller feeds an 8-bit frame and its size, and reads final
 * detections and masks from the graph outputs.
 *
 *   sh_frame_spec s = sh_frame_default_spec(640, 640);
 *   s.decoder = SH_FRAME_SPEC_YOLOV8;  s.masks = true;
 *   if (sh_graph_add_frame_ops(g, &s, &err)) ...   // before sh_graph_optimize / a session
 *
 * Inputs afterwards: "frame" u8 [max_pixels * 3] (packed rows, the first width * height * 3
 * bytes used), "frame_size" i32 [2] (width, height). Outputs, in this order: "frame_transform",
 * and with a decoder "detection_boxes", "detection_scores", "detection_ids", "detection_count",
 * with masks "mask_boxes", "mask_bits" (the mask pool), with the landmarks decoder "landmarks"; without a
 * decoder the model's own outputs follow the transform. */
#ifndef SHOAL_GRAPH_FRAME_OPS_H
#define SHOAL_GRAPH_FRAME_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "graph/graph.h"

typedef enum sh_frame_spec_decoder {
    SH_FRAME_SPEC_NONE = -1,      /* the model's outputs stay the results */
    SH_FRAME_SPEC_YOLOV8 = 0,     /* = sh_frame_decoder (vision/frame.h) */
    SH_FRAME_SPEC_YOLOX = 1,
    SH_FRAME_SPEC_LANDMARKS = 2   /* a hand regressor's 65 values mapped to the image */
} sh_frame_spec_decoder;

typedef struct sh_frame_spec {
    /* FrameToTensor (sh_preprocess_params's fields, enums as ints) */
    int width, height, resize, place, pad_value, order;
    float scale, mean[3], std[3];
    int pixel_format;             /* sh_pixel_format of the frame's bytes */
    int64_t max_pixels;           /* largest frame accepted, in pixels */
    int mask_pool_frames;         /* the mask pool holds this many frames' worth of masks
                                     (sh_frame_mask_pool; vision/frame.h says why a pool);
                                     0: sh_frame_default_pool_frames(max_detections) */
    /* post-processing (sh_decode_params's fields) */
    sh_frame_spec_decoder decoder;
    bool masks;                   /* yolov8-seg: output 1 of the model holds the prototypes */
    float score_threshold, iou_threshold, mask_threshold;
    int agnostic, max_detections, top_k;
    int landmark_logits;          /* landmarks: presence/handedness are logits (sigmoid applied) */
} sh_frame_spec;

/* The default mask pool: a quarter of a frame per detection. On the reference frames (960x720)
 * the seg models' mask boxes take 0.12 to 0.32 of a frame per detection and 4.5 frames at
 * most per frame (obstacle, 16 detections on the shelf), so max_detections 100 gets 25 frames. */
static inline int sh_frame_default_pool_frames(int max_detections)
{
    return max_detections > 0 ? (max_detections + 3) / 4 : 1;
}

/* ultralytics preprocessing (sh_preprocess_default_params), sh_decode_default_params, RGB
 * frames up to 1920 x 1080, the default mask pool, no decoder. */
sh_frame_spec sh_frame_default_spec(int width, int height);

/* Makes the graph's single input the output of a FrameToTensor node and, with a decoder,
 * appends decode, NMS and masks after its outputs (see above). The graph must not be
 * finalized yet or be finalized again afterwards (sh_graph_optimize does). */
int sh_graph_add_frame_ops(sh_graph *g, const sh_frame_spec *s, sh_err *err);

/* Makes the graph's single input, float32 NHWC [1,H,W,3], the output of a FrameCrop node:
 * MediaPipe's hand crop (vision/hands.h sh_hand_crop) of a rect of the 8-bit frame, with a
 * zero border (the palm detector's letterbox) or the nearest edge pixel (the landmark ROI).
 * Inputs afterwards: "frame" u8 [max_pixels * 3], "frame_size" i32 [2] (width, height) as
 * FrameToTensor takes them, and "crop_rect" f32 [SH_HAND_CROP_WORDS] (sh_hand_crop_words).
 * max_pixels 0 leaves the frame's length dynamic (a session fixes it with its first frame).
 * The outputs stay the model's. Same finalizing rule as sh_graph_add_frame_ops. */
int sh_graph_add_frame_crop(sh_graph *g, int64_t max_pixels, bool zero_border, sh_err *err);

/* Shape inference of the frame ops (called by sh_infer_node). */
int sh_infer_frame_op(sh_graph *g, const sh_node *n, sh_err *err);

#endif
