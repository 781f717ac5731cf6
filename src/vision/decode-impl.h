/* Private to src/vision: pieces the box decoders share. */
#ifndef SHOAL_VISION_DECODE_IMPL_H
#define SHOAL_VISION_DECODE_IMPL_H

#include "vision/decode.h"

/* Candidates of one frame in model-input coordinates, one allocation. */
typedef struct sh_candidates {
    float *boxes;      /* n x 4: x1, y1, x2, y2 */
    float *scores;
    int *classes;
    int *anchors;
    size_t n;
    void *block;
} sh_candidates;

int sh_candidates_alloc(sh_allocator *a, size_t n, sh_candidates *c, sh_err *err);
void sh_candidates_free(sh_allocator *a, sh_candidates *c);

/* Appends one detection to `d`, growing its array. */
int sh_detections_push(sh_detections *d, const sh_detection *det, sh_err *err);

/* The shared tail: rank, top-k, NMS, max detections, map to the image and clip.
 * Clears `d` first. */
int sh_detections_finish(sh_detections *d, const sh_transform *xf, const sh_decode_params *p,
                         const sh_candidates *c, sh_err *err);

/* Validates params and transform common to all decoders. */
int sh_decode_check(const sh_transform *xf, const sh_decode_params *p, sh_detections *d, const char *who,
                    sh_err *err);

/* YOLOv8 layout [1, 4+nc+extra, N]: candidates over the first nc score rows. */
int sh_yolov8_candidates(sh_allocator *a, const float *out, int64_t n_anchors, int nc, float threshold,
                         sh_candidates *c, sh_err *err);

/* Reads the [1, C, N] (or [C, N]) shape of a YOLOv8 output. */
int sh_yolov8_shape(const sh_ftensor *t, const char *who, int64_t *channels, int64_t *n, sh_err *err);

#endif
