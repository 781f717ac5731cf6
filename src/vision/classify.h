/* Image classification post-processing: the k best classes of one score vector, as
 * probabilities.
 *
 *   sh_class_score best[5];
 *   size_t n;
 *   if (sh_classify_top_k(logits, 1000, SH_SCORES_LOGITS, 5, best, &n, &err) == 0)
 *       printf("class %d: %.3f\n", best[0].class_id, best[0].score);
 *
 * Logits become probabilities through a softmax; since the softmax keeps the order, the k
 * best are picked on the raw values and only those k are converted (no scratch memory). */
#ifndef SHOAL_VISION_CLASSIFY_H
#define SHOAL_VISION_CLASSIFY_H

#include <stddef.h>

#include "core/error.h"
#include "vision/decode.h"
#include "vision/preprocess.h"

/* How a classifier's output reads. */
typedef enum sh_class_scores {
    SH_SCORES_LOGITS = 0,        /* unnormalised: a softmax makes them probabilities */
    SH_SCORES_PROBABILITIES      /* already probabilities (the model ends in a Softmax) */
} sh_class_scores;

typedef struct sh_class_score {
    int class_id;
    float score;                 /* probability in [0, 1] */
} sh_class_score;

/* Writes the min(k, n) best of the n `scores` into out[], best first (equal scores: the lower
 * class id first), and their count into *n_out. Fails with SHOAL_ERR_INVALID_ARG when n or k
 * is 0 or n exceeds INT_MAX, and SHOAL_ERR_PARSE when a score is not finite or, for
 * SH_SCORES_PROBABILITIES, lies outside [0, 1] (the output is not what the config says). */
int sh_classify_top_k(const float *scores, size_t n, sh_class_scores kind, size_t k, sh_class_score *out,
                      size_t *n_out, sh_err *err);

/* The decoder of task classify: the best min(k, n) classes whose probability is at least
 * min_score, appended to dets (best first) as detections whose box is the whole region xf
 * maps, the picture the model saw; so results, JSON and drawing treat them like any other
 * detection. Scratch for k scores comes from dets->alloc. Fails as sh_classify_top_k does,
 * or with SHOAL_ERR_NO_MEMORY. */
int sh_decode_classify(const float *scores, size_t n, sh_class_scores kind, size_t k, float min_score,
                       const sh_transform *xf, sh_detections *dets, sh_err *err);

#endif
