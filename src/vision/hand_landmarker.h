/* MediaPipe's hand landmarker as one call per frame: palm detection, rotated crops, the
 * landmark model, landmarks in image pixels, handedness; in video mode the previous frame's
 * landmarks give the crops and the palm detector only runs when fewer than num_hands hands
 * were tracked (MediaPipe's HandLandmarkTrackingGpu graph, see vision/hands.h for each step).
 *
 * The two networks run through a callback, so the same code serves sessions, the runtime or
 * a device program:
 *
 *   sh_hand_models m = {.run = my_run, .ctx = sessions};
 *   sh_hand_params p = sh_hand_default_params();
 *   sh_hand hands[2];  int n;
 *   if (sh_hand_landmarker_run(alloc, &p, &m, NULL, &img, hands, 2, &n, NULL, NULL, &err)) ...
 *
 * Image mode passes tracker NULL; video mode passes the same zeroed sh_hand_tracker for every
 * frame of one stream. */
#ifndef SHOAL_VISION_HAND_LANDMARKER_H
#define SHOAL_VISION_HAND_LANDMARKER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"
#include "vision/hands.h"
#include "vision/image.h"

#define SH_HAND_MAX_HANDS 8

typedef enum sh_hand_model {
    SH_HAND_MODEL_PALM = 0,       /* input NHWC [1,192,192,3]; outputs boxes [2016*18], logits [2016] */
    SH_HAND_MODEL_LANDMARK = 1    /* input NHWC [1,224,224,3]; outputs landmarks [63], presence [1],
                                     handedness [1], world landmarks [63] */
} sh_hand_model;

typedef struct sh_hand_models {
    /* Runs `model` on its crop of `rect` from `frame`: sh_hand_crop to the model's input size,
     * with a zero border for the palm detector (rect is the frame's letterbox,
     * sh_palm_input_rect) and the nearest edge pixel for the landmark model (the hand's ROI).
     * The callee makes the crop (the runtime's stages do it on their backend: the FrameCrop
     * op, graph/frame_ops.h). Points outputs[i] at the i-th output (counts[i] floats), valid
     * until the next call. 0 or a negative status. */
    int (*run)(void *ctx, sh_hand_model model, const sh_image *frame, const sh_hand_rect *rect,
               const float **outputs, size_t *counts, int n_outputs, sh_err *err);
    void *ctx;
} sh_hand_models;

typedef struct sh_hand_params {
    sh_palm_params palm;          /* palm.min_score is MediaPipe's min_detection_confidence */
    int num_hands;                /* at most SH_HAND_MAX_HANDS; 2 */
    float min_presence;           /* min_tracking_confidence: hands below are dropped; 0.5 */
    int landmark_size;            /* landmark model input side; 224 */
    float track_iou;              /* a palm ROI overlapping a tracked one above this is the same hand; 0.5 */
} sh_hand_params;

sh_hand_params sh_hand_default_params(void);

typedef struct sh_hand {
    sh_hand_rect roi;             /* the crop the landmarks came from */
    bool from_palm;               /* roi came from this frame's palm detection (else tracked) */
    float landmarks[SH_HAND_LANDMARKS][3];   /* image pixels; z in x's unit, smaller is nearer */
    float world[SH_HAND_LANDMARKS][3];       /* metres, hand-centred, rotated upright */
    float presence;               /* probability that the crop holds a hand */
    int handedness;               /* 0 "Left", 1 "Right" in the npm label map (mirrored-selfie
                                     convention: a real right hand in a plain photo says "Left") */
    float handedness_score;       /* probability of that label */
} sh_hand;

typedef struct sh_hand_tracker {
    sh_hand_rect prev[SH_HAND_MAX_HANDS];
    int n_prev;
    long frames;                  /* frames run */
    long detector_runs;           /* frames on which the palm model ran */
} sh_hand_tracker;

/* "Left" / "Right" for a handedness index (npm handedness.txt). */
const char *sh_hand_label(int handedness);

/* Runs one frame. Hands go to out[0..*n_out) (at most cap and num_hands), in ROI order. When
 * the palm model ran, its palms go to palms[0..*n_palms) if palms is not NULL (at most
 * num_hands; *n_palms = 0 on a tracked frame). The palm decoder's scratch comes from `a`. */
int sh_hand_landmarker_run(sh_allocator *a, const sh_hand_params *p, const sh_hand_models *m,
                           sh_hand_tracker *tracker, const sh_image *img, sh_hand *out, int cap, int *n_out,
                           sh_palm *palms, int *n_palms, sh_err *err);

/* The palm detector alone on the whole frame (the landmarker's first step): its palms, at most
 * num_hands, in palms[0..*n). The palm decoder's scratch comes from `a`. */
int sh_hand_detect_palms(sh_allocator *a, const sh_hand_params *p, const sh_hand_models *m, const sh_image *img,
                         sh_palm *palms, int *n, sh_err *err);

/* The landmark model alone on one ROI (the crop is stretched to the model's square input when
 * the ROI is not square, as MediaPipe Tasks' landmark graph does). */
int sh_hand_landmarks_run(const sh_hand_params *p, const sh_hand_models *m, const sh_image *img,
                          const sh_hand_rect *roi, sh_hand *out, sh_err *err);

#endif
