/* YOLOv8 / YOLO11 detection head: [1, 4+nc, N], channel-major. */
#include "vision/decode-impl.h"

#include <math.h>
#include <string.h>

int sh_yolov8_shape(const sh_ftensor *t, const char *who, int64_t *channels, int64_t *n, sh_err *err)
{
    if (!t || !t->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: output tensor is NULL", who);
    if (t->ndim == 3 && t->shape[0] == 1) {
        *channels = t->shape[1];
        *n = t->shape[2];
    } else if (t->ndim == 2) {
        *channels = t->shape[0];
        *n = t->shape[1];
    } else {
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: output must be [1, 4+nc, N], got rank %d (first dim %lld)", who,
                       t->ndim, t->ndim > 0 ? (long long)t->shape[0] : -1LL);
    }
    if (*n <= 0 || *n > INT32_MAX || *channels <= 4 || *channels > 65536)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: output [1, %lld, %lld] is not [1, 4+nc, N]", who,
                       (long long)*channels, (long long)*n);
    return 0;
}

int sh_yolov8_candidates(sh_allocator *a, const float *out, int64_t n_anchors, int nc, float threshold,
                         sh_candidates *c, sh_err *err)
{
    size_t n = (size_t)n_anchors;
    /* Class rows are contiguous over anchors, so scan row by row keeping a running best:
     * reading the tensor in memory order instead of striding by N per anchor. */
    float *best = sh_alloc(a, n * (sizeof(float) + sizeof(int)));
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
            if (row[j] > best[j]) {
                best[j] = row[j];
                best_c[j] = k;
            }
    }
    size_t m = 0;
    for (size_t j = 0; j < n; j++)
        m += best[j] >= threshold;
    int rc = sh_candidates_alloc(a, m, c, err);
    if (rc) {
        sh_free(a, best);
        return rc;
    }
    size_t i = 0;
    for (size_t j = 0; j < n; j++) {
        if (!(best[j] >= threshold))
            continue;
        float cx = out[j], cy = out[n + j], w = out[2 * n + j], h = out[3 * n + j];
        c->boxes[4 * i] = cx - w / 2;
        c->boxes[4 * i + 1] = cy - h / 2;
        c->boxes[4 * i + 2] = cx + w / 2;
        c->boxes[4 * i + 3] = cy + h / 2;
        c->scores[i] = best[j];
        c->classes[i] = best_c[j];
        c->anchors[i] = (int)j;
        i++;
    }
    sh_free(a, best);
    return 0;
}

int sh_decode_yolov8(const sh_ftensor *out, const sh_transform *xf, const sh_decode_params *p,
                     sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "yolov8", err);
    if (rc)
        return rc;
    int64_t ch, n;
    if ((rc = sh_yolov8_shape(out, "yolov8", &ch, &n, err)))
        return rc;
    sh_candidates c;
    rc = sh_yolov8_candidates(dets->alloc, out->data, n, (int)(ch - 4), p->score_threshold, &c, err);
    if (rc)
        return rc;
    rc = sh_detections_finish(dets, xf, p, &c, err);
    sh_candidates_free(dets->alloc, &c);
    return rc;
}
