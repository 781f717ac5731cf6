#include "vision/classify.h"

#include "core/alloc.h"
#include "vision/decode-impl.h"

#include <limits.h>
#include <math.h>

/* A probability may come out of a model's fp16 Softmax a rounding step outside [0, 1]. */
#define PROBABILITY_SLACK 1e-3

int sh_classify_top_k(const float *scores, size_t n, sh_class_scores kind, size_t k, sh_class_score *out,
                      size_t *n_out, sh_err *err)
{
    *n_out = 0;
    if (n == 0 || k == 0 || n > INT_MAX)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "classification: %zu scores, top %zu: expected 1..%d scores and k >= 1",
                       n, k, INT_MAX);
    if (k > n)
        k = n;
    float max = scores[0];
    for (size_t i = 0; i < n; i++) {
        float v = scores[i];
        if (!isfinite(v))
            return sh_errf(err, SHOAL_ERR_PARSE, "classification: score of class %zu is %g, not a finite number", i,
                           (double)v);
        if (kind == SH_SCORES_PROBABILITIES && (v < -PROBABILITY_SLACK || v > 1.0 + PROBABILITY_SLACK))
            return sh_errf(err, SHOAL_ERR_PARSE,
                           "classification: score of class %zu is %g, not a probability (scores: probabilities was "
                           "given or detected; set scores: logits if the model outputs logits)",
                           i, (double)v);
        if (v > max)
            max = v;
    }
    /* Insertion into the sorted best-so-far: k is small next to n, and a strict comparison
     * keeps the earlier class first among equals. */
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        float v = scores[i];
        if (have == k && !(v > out[k - 1].score))
            continue;
        size_t at = have < k ? have++ : k - 1;
        while (at > 0 && v > out[at - 1].score) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = (sh_class_score){.class_id = (int)i, .score = v};
    }
    if (kind == SH_SCORES_LOGITS) {
        /* softmax in double with the largest logit subtracted: no overflow, and the sum is at
         * least 1 (the largest term) */
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += exp((double)scores[i] - (double)max);
        for (size_t j = 0; j < have; j++)
            out[j].score = (float)(exp((double)out[j].score - (double)max) / sum);
    } else {
        for (size_t j = 0; j < have; j++)
            out[j].score = out[j].score < 0.0f ? 0.0f : out[j].score > 1.0f ? 1.0f : out[j].score;
    }
    *n_out = have;
    return 0;
}

int sh_decode_classify(const float *scores, size_t n, sh_class_scores kind, size_t k, float min_score,
                       const sh_transform *xf, sh_detections *dets, sh_err *err)
{
    if (k > n)
        k = n;
    sh_class_score *best = sh_calloc(dets->alloc, k ? k : 1, sizeof *best);
    if (!best)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "classification: out of memory for the top %zu classes", k);
    size_t have = 0;
    int rc = sh_classify_top_k(scores, n, kind, k, best, &have, err);
    for (size_t i = 0; rc == 0 && i < have && best[i].score >= min_score; i++) {
        sh_detection d = {.class_id = best[i].class_id, .score = best[i].score, .anchor = -1,
                          .x1 = xf->origin_x, .y1 = xf->origin_y,
                          .x2 = xf->origin_x + (float)xf->src_w, .y2 = xf->origin_y + (float)xf->src_h};
        rc = sh_detections_push(dets, &d, err);
    }
    sh_free(dets->alloc, best);
    return rc;
}
