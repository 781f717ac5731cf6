/* YOLOv8 / YOLO11 detection head: [1, 4+nc, N], channel-major. The decoder reads it whole, or
 * (end2end.c) a set of held columns sorted by anchor; both become candidates through the same
 * code below. */
#include "vision/decode-impl.h"

#include <math.h>
#include <string.h>

int sh_yolo_cols_full(const sh_ftensor *t, const char *who, sh_yolo_cols *src, sh_err *err)
{
    memset(src, 0, sizeof *src);
    if (!t || !t->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: output tensor is NULL", who);
    int64_t channels, n;
    if (t->ndim == 3 && t->shape[0] == 1) {
        channels = t->shape[1];
        n = t->shape[2];
    } else if (t->ndim == 2) {
        channels = t->shape[0];
        n = t->shape[1];
    } else {
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: output must be [1, 4+nc, N], got rank %d (first dim %lld)", who,
                       t->ndim, t->ndim > 0 ? (long long)t->shape[0] : -1LL);
    }
    if (n <= 0 || n > INT32_MAX || channels <= 4 || channels > SH_YOLO_MAX_CHANNELS)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: output [1, %lld, %lld] is not [1, 4+nc, N]", who,
                       (long long)channels, (long long)n);
    src->channels = channels;
    src->n_anchors = n;
    src->full = t->data;
    return 0;
}

const float *sh_yolo_column(const sh_yolo_cols *src, int anchor, size_t *stride)
{
    if (src->full) {
        *stride = (size_t)src->n_anchors;
        return anchor >= 0 && anchor < src->n_anchors ? src->full + anchor : NULL;
    }
    *stride = 1;
    size_t lo = 0, hi = src->n_held;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (src->held[mid].anchor < anchor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < src->n_held && src->held[lo].anchor == anchor ? src->held[lo].values : NULL;
}

void sh_yolo_box(const float *col, size_t stride, float box[4])
{
    float cx = col[0], cy = col[stride], w = col[2 * stride], h = col[3 * stride];
    box[0] = cx - w / 2;
    box[1] = cy - h / 2;
    box[2] = cx + w / 2;
    box[3] = cy + h / 2;
}

/* The class scan's one rule, whatever the layout: the first class, then every strictly
 * greater score. A NaN never wins, and a NaN first score leaves best NaN, which fails every
 * threshold. */
static inline void best_update(float v, int k, float *best, int *best_c)
{
    if (v > *best) {
        *best = v;
        *best_c = k;
    }
}

static void put_candidate(sh_candidates *c, size_t i, const float *col, size_t stride, float best, int cls,
                          int anchor)
{
    sh_yolo_box(col, stride, c->boxes + 4 * i);
    c->scores[i] = best;
    c->classes[i] = cls;
    c->anchors[i] = anchor;
}

/* The whole tensor. Class rows are contiguous over anchors, so scan row by row keeping a
 * running best: reading the tensor in memory order instead of striding by N per anchor. */
static int full_candidates(sh_allocator *a, void *ws, const float *out, size_t n, int nc, float threshold,
                           sh_candidates *c, sh_err *err)
{
    float *best = ws ? ws : sh_alloc(a, sh_yolov8_candidates_ws((int64_t)n));
    if (!best)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8: cannot allocate scores of %zu anchors", n);
    int *best_c = (int *)(best + n);
    const float *row = out + 4 * n;
    for (size_t j = 0; j < n; j++) {
        best[j] = row[j];
        best_c[j] = 0;
    }
    for (int k = 1; k < nc; k++) {
        row = out + (4 + (size_t)k) * n;
        for (size_t j = 0; j < n; j++)
            best_update(row[j], k, &best[j], &best_c[j]);
    }
    size_t m = 0;
    for (size_t j = 0; j < n; j++)
        m += best[j] >= threshold;
    int rc = sh_candidates_alloc(a, m, c, err);
    for (size_t j = 0, i = 0; rc == 0 && j < n; j++)
        if (best[j] >= threshold)
            put_candidate(c, i++, out + j, n, best[j], best_c[j], (int)j);
    if (best != ws)
        sh_free(a, best);
    return rc;
}

static float column_best(const float *col, int nc, int *best_c)
{
    float best = col[4];
    *best_c = 0;
    for (int k = 1; k < nc; k++)
        best_update(col[4 + k], k, &best, best_c);
    return best;
}

/* Held columns, already in anchor order, each contiguous. The threshold is tested again: a
 * row the host would not keep never becomes a candidate. */
static int held_candidates(sh_allocator *a, const sh_yolo_cols *src, int nc, float threshold, sh_candidates *c,
                           sh_err *err)
{
    int cls;
    size_t m = 0;
    for (size_t i = 0; i < src->n_held; i++)
        m += column_best(src->held[i].values, nc, &cls) >= threshold;
    int rc = sh_candidates_alloc(a, m, c, err);
    for (size_t i = 0, k = 0; rc == 0 && i < src->n_held; i++) {
        const sh_yolo_held *h = &src->held[i];
        float best = column_best(h->values, nc, &cls);
        if (best >= threshold)
            put_candidate(c, k++, h->values, 1, best, cls, h->anchor);
    }
    return rc;
}

size_t sh_yolov8_candidates_ws(int64_t n_anchors)
{
    size_t bytes;
    if (n_anchors < 0 || !sh_mul_size((size_t)n_anchors, sizeof(float) + sizeof(int), &bytes))
        return SIZE_MAX;
    return bytes ? bytes : 1;
}

int sh_yolov8_candidates(sh_allocator *a, void *ws, const sh_yolo_cols *src, int nc, float threshold,
                         sh_candidates *c, sh_err *err)
{
    if (src->full)
        return full_candidates(a, ws, src->full, (size_t)src->n_anchors, nc, threshold, c, err);
    return held_candidates(a, src, nc, threshold, c, err);
}

static int detect(const sh_yolo_cols *src, const sh_transform *xf, const sh_decode_params *p, sh_detections *dets,
                  sh_err *err)
{
    sh_candidates c = {0};
    int rc = sh_yolov8_candidates(dets->alloc, NULL, src, (int)(src->channels - 4), p->score_threshold, &c, err);
    if (rc)
        return rc;
    rc = sh_detections_finish(dets, xf, p, &c, err);
    sh_candidates_free(dets->alloc, &c);
    return rc;
}

int sh_decode_yolov8(const sh_ftensor *out, const sh_transform *xf, const sh_decode_params *p,
                     sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "yolov8", err);
    sh_yolo_cols src = {0};
    if (rc == 0)
        rc = sh_yolo_cols_full(out, "yolov8", &src, err);
    return rc ? rc : detect(&src, xf, p, dets, err);
}

void sh_yolo_cols_free(sh_allocator *a, sh_yolo_cols *src)
{
    sh_free(a, src->held);
    memset(src, 0, sizeof *src);
}
