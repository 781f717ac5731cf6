/* NMS-free heads (YOLOv10, ultralytics end-to-end exports): the graph itself already ranked
 * and de-duplicated its detections, so decoding is reading rows. Each row of [1, max_det, 6]
 * is x1 y1 x2 y2 (model-input pixels), score, class id (a float). */
#include "vision/decode-impl.h"

#include <math.h>

int sh_decode_end2end(const sh_ftensor *out, int n_classes, const sh_transform *xf, const sh_decode_params *p,
                      sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "end2end", err);
    if (rc)
        return rc;
    if (!out || !out->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "end2end: output tensor is NULL");
    int64_t n;
    if (out->ndim == 3 && out->shape[0] == 1 && out->shape[2] == 6)
        n = out->shape[1];
    else if (out->ndim == 2 && out->shape[1] == 6)
        n = out->shape[0];
    else
        return sh_errf(err, SHOAL_ERR_SHAPE, "end2end: output must be [1, max_det, 6] (x1 y1 x2 y2 score class)");
    const float *d = out->data;
    size_t m = 0;
    for (int64_t j = 0; j < n; j++)
        m += d[6 * j + 4] >= p->score_threshold;
    sh_candidates c;
    if ((rc = sh_candidates_alloc(dets->alloc, m, &c, err)))
        return rc;
    size_t i = 0;
    for (int64_t j = 0; j < n && i < m; j++) {
        const float *r = d + 6 * j;
        if (!(r[4] >= p->score_threshold))
            continue;
        float cls = r[5];
        /* a class id outside the head's classes means the model is not what its shape says */
        if (!(cls >= 0 && cls < (float)(n_classes > 0 ? n_classes : 1 << 20)) || cls != floorf(cls)) {
            sh_candidates_free(dets->alloc, &c);
            return sh_errf(err, SHOAL_ERR_SHAPE, "end2end: row %lld has class %g, not an id in [0, %d)", (long long)j,
                           cls, n_classes);
        }
        for (int k = 0; k < 4; k++)
            c.boxes[4 * i + k] = r[k];
        c.scores[i] = r[4];
        c.classes[i] = (int)cls;
        c.anchors[i] = (int)j;
        i++;
    }
    c.n = i;
    /* The shared tail maps to the image, clips, ranks and caps; at IoU threshold 1 its NMS
     * keeps every box (it drops IoU > threshold only), as the head already suppressed. */
    sh_decode_params keep_all = *p;
    keep_all.iou_threshold = 1.0f;
    keep_all.top_k = 0;
    rc = sh_detections_finish(dets, xf, &keep_all, &c, err);
    sh_candidates_free(dets->alloc, &c);
    return rc;
}
